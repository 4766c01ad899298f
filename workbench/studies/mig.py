"""MIG partitioning (arXiv 2604.08451): slices cut GPU under-utilisation, but share the GPU's power limit.

The paper finds that partitioning a GPU with MIG reduces resource under-utilisation and improves system
throughput and energy (up to 1.4x and 26 %), while co-located slices still interfere through shared
resources such as power throttling.

Here two independent services (each its own Llama-3.1-8B, its own Poisson stream) run either on two whole
H100s (each mostly idle at this load) or on one H100 split into two ``3g.40gb`` slices. The interference
model: the slices of one GPU share its power limit. Each step, a slice's power demand is its share of the
whole GPU's busy power at its batch (the power curve of :mod:`workbench.power`), an idle slice its share of
the loaded-idle power; when the GPU's summed demand exceeds ``power_cap_w`` every slice starting a step runs
at the clock ``f`` that brings the demand down to the cap (dynamic power ~ f^2) and its iteration takes
``1 / f`` times longer (the bound for compute-bound work). A whole GPU is one "slice" of share 1 under the
same rule, so a cap throttles it too. Slices are simulated iteration by iteration (event skipping off), so
every step sees its siblings' state at its start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl

from workbench.config import as_float
from workbench.hardware import RooflineModel, kv_capacity_tokens
from workbench.hardware.perf import Batch
from workbench.power import energy
from workbench.power.curves import power_curve
from workbench.power.energy import idle_power_w
from workbench.seeds import Streams
from workbench.sim.config import InstanceConfig, SchedulerConfig
from workbench.sim.fleet import summarize
from workbench.sim.simulation import Simulation
from workbench.sim.topology import MIG_PROFILES, instance_gpu
from workbench.studies.claims import NOT_REPRODUCED, REPRODUCED, UNDER_CONDITIONS, Claim, percent
from workbench.studies.replications import REPLICATIONS, Replicated, replicate
from workbench.traces import LogNormal, Poisson, Synthetic, merge

#: Lowest clock factor the throttle may reach (a floor, so a wildly low cap cannot stall the GPU).
MIN_CLOCK = 0.3


class PowerLimit:
    """The power limit one physical GPU's slices share, and the clock it imposes on them.

    Parameters
    ----------
    cap_w
        GPU power limit (W).
    gpu, model
        For the whole GPU's busy-power curve and loaded-idle power.
    engine
        The simulation's engine (its clock tells which siblings are busy).
    """

    def __init__(self, cap_w: float, gpu: str, model: str, engine) -> None:
        self.cap_w = cap_w
        self.curve = power_curve(gpu, model)
        self.idle_w = idle_power_w(gpu)
        self.engine = engine
        self.slices: list[list[float]] = []  # per slice: [share, busy_until, batch]
        self.throttled_s = 0.0
        self.step_s = 0.0
        self.clock_time = 0.0

    def add(self, share: float) -> int:
        """Register a slice of ``share`` of the GPU; returns its slot."""
        self.slices.append([share, -math.inf, 0.0])
        return len(self.slices) - 1

    def clock(self, slot: int, batch: float) -> float:
        """Clock factor (<= 1) for a step that ``slot`` starts now with ``batch`` sequences."""
        now = self.engine.now
        self.slices[slot][2] = batch
        demand = 0.0
        for i, (share, until, b) in enumerate(self.slices):
            busy = i == slot or until > now
            demand += share * (float(self.curve(max(b, 1.0))) if busy else self.idle_w)
        if demand <= self.cap_w:
            return 1.0
        floor = self.idle_w * sum(s[0] for s in self.slices)
        f2 = (self.cap_w - floor) / max(demand - floor, 1e-9)
        return max(MIN_CLOCK, math.sqrt(max(f2, 0.0)))

    def ran(self, slot: int, start: float, seconds: float, clock: float) -> None:
        """Record that ``slot`` is busy from ``start`` for ``seconds`` at ``clock``."""
        self.slices[slot][1] = start + seconds
        self.step_s += seconds
        self.clock_time += clock * seconds
        if clock < 1.0:
            self.throttled_s += seconds


class SlicePerformance:
    """A slice's roofline model, slowed by its GPU's power limit (needs event skipping off)."""

    def __init__(self, base: RooflineModel, limit: PowerLimit, share: float) -> None:
        self.base = base
        self.limit = limit
        self.slot = limit.add(share)

    def _throttled(self, seconds: float, batch: float) -> float:
        if seconds <= 0.0:
            return seconds
        f = self.limit.clock(self.slot, batch)
        out = seconds / f
        self.limit.ran(self.slot, self.limit.engine.now, out, f)
        return out

    def iteration_time(self, batch: Batch) -> float:
        """Seconds of one iteration at the clock the power limit allows now."""
        seqs = batch.decode_seqs + (1 if batch.prefill_tokens else 0)
        return self._throttled(self.base.iteration_time(batch), seqs)

    def decode_run_time(self, decode_seqs: int, decode_context: int, iterations: int) -> float:
        """Seconds of a decode run (one iteration with event skipping off) at the allowed clock."""
        return self._throttled(self.base.decode_run_time(decode_seqs, decode_context, iterations), decode_seqs)

    def decode_iterations_within(self, decode_seqs: int, decode_context: int, duration: float) -> int:
        """Unthrottled count (only read with event skipping on, which this model requires off)."""
        return self.base.decode_iterations_within(decode_seqs, decode_context, duration)


class ByClass:
    """Route each request to the instance serving its class (service ``a`` -> 0, ``b`` -> 1, ...)."""

    name = "by_class"

    def __init__(self, classes: tuple[str, ...]) -> None:
        self.index = {c: i for i, c in enumerate(classes)}

    def choose(self, request, view, now: float) -> int:
        """Return the position of the instance serving ``request``'s class."""
        return self.index[request.request_class]


@dataclass(frozen=True)
class MigArm:
    """Two services on two whole GPUs or on MIG slices of one GPU.

    Attributes
    ----------
    arm
        Label.
    mig
        MIG profile of each service's slice (``None``: a whole GPU per service).
    power_cap_w
        Power limit of each physical GPU (W); the H100 TDP by default.
    rate
        Poisson rate of each service (requests/s).
    requests
        Requests per service and replication.
    gpu, model
        Hardware and model of both services.
    """

    arm: str
    mig: str | None = None
    power_cap_w: float = 700.0
    rate: float = 3.0
    requests: int = 400
    gpu: str = "H100"
    model: str = "Llama-3.1-8B"


#: Log-normal lengths (prompt median ~670, output median ~150 tokens).
LENGTHS = LogNormal(prompt_mu=6.5, prompt_sigma=0.7, output_mu=5.0, output_sigma=0.6)
SERVICES = ("a", "b")


def run(arm: MigArm, seed: int) -> dict[str, float]:
    """One replication: latency of the two services, GPU count, energy and the time spent throttled."""
    parts = [
        Synthetic(arrivals=Poisson(arm.rate), lengths=LENGTHS, request_class=c).generate(
            arm.requests, seed=Streams(seed).sequence(f"service/{c}")
        )
        for c in SERVICES
    ]
    trace = merge(parts)
    sim = Simulation(seed=seed, router=ByClass(SERVICES), prefix_block_tokens=trace.prefix_block_tokens)
    scheduler = SchedulerConfig(event_skipping=False)
    limits = []
    if arm.mig is None:
        for _ in SERVICES:
            limit = PowerLimit(arm.power_cap_w, arm.gpu, arm.model, sim.engine)
            limits.append(limit)
            perf = SlicePerformance(RooflineModel(arm.gpu, arm.model), limit, 1.0)
            sim.add_instance(InstanceConfig(gpu=arm.gpu, model=arm.model, scheduler=scheduler, perf=perf))
        gpus = float(len(SERVICES))
    else:
        limit = PowerLimit(arm.power_cap_w, arm.gpu, arm.model, sim.engine)
        limits.append(limit)
        sl = instance_gpu(arm.gpu, arm.mig)
        share = MIG_PROFILES[arm.mig][0]
        for _ in SERVICES:
            perf = SlicePerformance(RooflineModel(sl, arm.model), limit, share)
            sim.add_instance(InstanceConfig(gpu=sl.name, model=arm.model, scheduler=scheduler, perf=perf,
                                            kv_capacity_tokens=kv_capacity_tokens(sl, arm.model),
                                            n_gpus=share))  # fmt: skip
        gpus = 1.0
    result = sim.run(trace, progress=False)
    row = summarize(result)
    report = energy(result).fleet.row(0, named=True)
    served = result.requests.filter(~pl.col("rejected"))
    span = as_float(served["finish_s"].max()) - as_float(served["arrival_s"].min())
    step = sum(x.step_s for x in limits)
    return {
        "ttft_p99_s": row["ttft_p99_s"],
        "tpot_p50_s": row["tpot_p50_s"],
        "e2e_p99_s": row["e2e_p99_s"],
        "gpus": gpus,
        "tokens_per_gpu_s": float(served["output_tokens"].sum()) / span / gpus,
        "j_per_token": report["j_per_output_token"],
        "throttled_share": sum(x.throttled_s for x in limits) / step if step else 0.0,
        "mean_clock": sum(x.clock_time for x in limits) / step if step else 1.0,
    }


#: Whole GPUs vs 2 x 3g slices, at the H100's TDP and under a 400 W cap.
ARMS = (
    MigArm("2 whole GPUs"),
    MigArm("1 GPU, 2 x 3g", mig="3g"),
    MigArm("2 whole GPUs, 400 W cap", power_cap_w=400.0),
    MigArm("1 GPU, 2 x 3g, 400 W cap", mig="3g", power_cap_w=400.0),
)


def study(arms: tuple[MigArm, ...] = ARMS, *, replications: int = REPLICATIONS, seed: int = 0,
          n_jobs: int = 1) -> Replicated:  # fmt: skip
    """Every arm on the same ``replications`` seeds (the same two request streams)."""
    return replicate(run, arms, replications=replications, seed=seed, n_jobs=n_jobs)


def claim(rep: Replicated) -> Claim:
    """Throughput and energy per GPU of the MIG split, and the latency and throttling it brings."""
    mig, whole = "1 GPU, 2 x 3g", "2 whole GPUs"
    tput = rep.ratio(mig, whole, "tokens_per_gpu_s")
    joule = rep.ratio(mig, whole, "j_per_token")
    tpot = rep.ratio(mig, whole, "tpot_p50_s")
    capped = rep.ratio("1 GPU, 2 x 3g, 400 W cap", mig, "tpot_p50_s")
    thr = rep.estimate("1 GPU, 2 x 3g, 400 W cap", "throttled_share")
    thr_tdp = rep.estimate(mig, "throttled_share")
    gains = tput.low > 0 and joule.high < 0
    if gains and capped.low > 0 and thr_tdp.high < 0.01:
        verdict = UNDER_CONDITIONS
        reason = (
            "sharing one GPU doubles the tokens per GPU and cuts energy per token at this light load, at a "
            "latency cost; power-limit interference appears only under a cap below the GPU's busy power "
            "(slices drawing their share of a whole GPU's power never exceed its TDP)"
        )
    elif gains:
        verdict, reason = REPRODUCED, "MIG raises utilisation and cuts energy; interference shows at the TDP"
    else:
        verdict, reason = NOT_REPRODUCED, "no significant throughput or energy gain from the split"
    return Claim(
        paper="MIG partitioning (arXiv 2604.08451)",
        published="MIG reduces GPU under-utilisation (up to 1.4x throughput, 26 % energy) but co-located "
        "slices interfere through power throttling",
        setup=(
            f"two Llama-3.1-8B services at {rep.runs['rate'][0]:g} req/s each: two whole H100s vs one H100 "
            f"as 2 x 3g.40gb; slices share the GPU power limit (TDP 700 W, or a 400 W cap); "
            f"{rep.replications} seeds"
        ),
        result=(
            f"tokens/s per GPU {percent(tput)}, J/token {percent(joule)}, TPOT P50 {percent(tpot)}; "
            f"throttled {100 * thr_tdp.value:.1f} % of step time at 700 W, {100 * thr.value:.0f} % under a "
            f"400 W cap (TPOT {percent(capped)} more)"
        ),
        verdict=verdict,
        reason=reason,
        estimate=joule,
    )


__all__ = ["ARMS", "MIN_CLOCK", "ByClass", "MigArm", "PowerLimit", "SlicePerformance", "claim", "run", "study"]
