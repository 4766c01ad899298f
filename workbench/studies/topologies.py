"""Fleet shapes of the seed papers, replicated: two pools by length, P/D disaggregation, autoscaling.

Each study replicates one of the single-run comparisons of :mod:`workbench.studies.fleets` (which builds and
simulates the fleets) over independent workload draws shared by all compared fleets (common random numbers),
so notebook 03 reports means, 95 % intervals and paired differences instead of one seed's numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workbench.studies.fleets import autoscale_curve, cdf_trace, disaggregation_study, length_split_study
from workbench.studies.replications import REPLICATIONS, Replicated, replicate
from workbench.traces import LogNormal, Poisson, ServeGenMix, Synthetic


@dataclass(frozen=True)
class SplitArm:
    """One fleet of the length-split comparison: ``"monolithic"`` or a two-pool split at ``threshold``."""

    arm: str
    threshold: int = 0
    gpus: int = 8
    rate: float = 20.0
    requests: int = 3000


def split_run(arm: SplitArm, seed: int) -> dict[str, float]:
    """One draw of the agent-heavy mix through the arm's fleet (``studies.fleets.length_split_study``)."""
    agent = cdf_trace("ifs_agent_heavy_cdf", arm.requests, rate=arm.rate, seed=seed)
    thresholds = (arm.threshold,) if arm.threshold else (4096,)
    table, _ = length_split_study(agent, gpus=arm.gpus, thresholds=thresholds)
    row = table.row(1 if arm.threshold else 0, named=True)
    return {
        k: float(row[k]) for k in ("ttft_p50_s", "ttft_p99_s", "short_ttft_p99_s", "tpot_p50_s", "cost_usd")
    }


def split_study(thresholds: tuple[int, ...] = (4096, 8192), *, replications: int = REPLICATIONS, seed: int = 0,
                n_jobs: int = 1, **setting) -> Replicated:  # fmt: skip
    """One pool vs two pools split at each threshold (token-proportional GPUs), on the same draws."""
    arms = [SplitArm("monolithic", 0, **setting)] + [
        SplitArm(f"two-pool @{t}", t, **setting) for t in thresholds
    ]
    return replicate(split_run, arms, replications=replications, seed=seed, n_jobs=n_jobs)


@dataclass(frozen=True)
class DisaggregationArm:
    """Colocated (``prefill_share`` 0) or prefill/decode pools on the same GPUs."""

    arm: str
    prefill_share: float = 0.0
    gpus: int = 8
    rate: float = 30.0
    requests: int = 3000


#: Log-normal lengths of the disaggregation comparison (mean prompt ~2,400, output ~290 tokens).
PD_LENGTHS = LogNormal(prompt_mu=7.6, prompt_sigma=0.6, output_mu=5.5, output_sigma=0.6)


def disaggregation_run(arm: DisaggregationArm, seed: int) -> dict[str, float]:
    """One draw through the arm's fleet (:func:`~workbench.studies.fleets.disaggregation_study`)."""
    trace = Synthetic(arrivals=Poisson(arm.rate), lengths=PD_LENGTHS).generate(arm.requests, seed=seed)
    shares = (arm.prefill_share,) if arm.prefill_share else ()
    table, _ = disaggregation_study(trace, gpus=arm.gpus, prefill_shares=shares)
    row = table.row(1 if arm.prefill_share else 0, named=True)
    return {k: float(row[k]) for k in ("ttft_p50_s", "ttft_p99_s", "tpot_p50_s", "tpot_p99_s", "e2e_p99_s")}


def disaggregation(shares: tuple[float, ...] = (0.25, 0.5), *, replications: int = REPLICATIONS, seed: int = 0,
                   n_jobs: int = 1, **setting) -> Replicated:  # fmt: skip
    """Colocated vs each prefill share, on the same draws; arms ``"colocated"``, ``"<p>P:<d>D"``."""
    gpus = setting.get("gpus", 8)
    arms = [DisaggregationArm("colocated", 0.0, **setting)]
    for share in shares:
        n_p = max(1, min(gpus - 1, round(gpus * share)))
        arms.append(DisaggregationArm(f"{n_p}P:{gpus - n_p}D", share, **setting))
    return replicate(disaggregation_run, arms, replications=replications, seed=seed, n_jobs=n_jobs)


@dataclass(frozen=True)
class AutoscaleArm:
    """A static fleet (``policy="static"``, ``value`` instances) or an autoscaler with one knob set."""

    arm: str
    policy: str
    knob: str
    value: float
    max_instances: int = 8
    setup_delay_s: float = 30.0


#: The bursty ServeGen window of notebook 03 (three m-large clients, 20:15-20:30 of day 1).
SERVEGEN_WINDOW: dict[str, Any] = {
    "model": "m-large",
    "clients": (12, 120, 133),
    "start_s": 72_900,
    "end_s": 73_800,
}


def autoscale_run(arm: AutoscaleArm, seed: int) -> dict[str, float]:
    """Run one draw of the bursty ServeGen window through the arm's fleet.

    See :func:`~workbench.studies.fleets.autoscale_curve`.
    """
    w = SERVEGEN_WINDOW
    mix = ServeGenMix.from_datasets(model=w["model"], clients=list(w["clients"]), start_s=w["start_s"],
                                    end_s=w["end_s"])  # fmt: skip
    trace = mix.generate(duration_s=w["end_s"] - w["start_s"], seed=seed)
    if arm.policy == "static":
        table, _ = autoscale_curve(trace, (), static=(int(arm.value),), max_instances=arm.max_instances)
    else:
        table, _ = autoscale_curve(trace, ((arm.policy, arm.knob, (arm.value,)),), static=(),
                                   max_instances=arm.max_instances, min_instances=1,
                                   autoscale={"setup_delay_s": arm.setup_delay_s})  # fmt: skip
    row = table.row(0, named=True)
    return {k: float(row[k]) for k in ("ttft_p50_s", "ttft_p99_s", "gpu_hours", "cost_usd", "cold_starts")}


#: Static fleets and the autoscaler settings notebook 03 compares.
AUTOSCALE_ARMS = (
    AutoscaleArm("static 4", "static", "instances", 4),
    AutoscaleArm("static 8", "static", "instances", 8),
    AutoscaleArm("kpa (32)", "kpa", "target_concurrency", 32.0),
    AutoscaleArm("delayed_off (64)", "delayed_off", "target_concurrency", 64.0),
    AutoscaleArm("saturation (5)", "saturation", "queue_threshold", 5.0),
    AutoscaleArm("threshold (16)", "threshold", "up_threshold", 16.0),
)


def autoscaling(arms: tuple[AutoscaleArm, ...] = AUTOSCALE_ARMS, *, replications: int = REPLICATIONS,
                seed: int = 0, n_jobs: int = 1) -> Replicated:  # fmt: skip
    """Run static fleets and autoscalers on the same ServeGen draws."""
    return replicate(autoscale_run, arms, replications=replications, seed=seed, n_jobs=n_jobs)


__all__ = [
    "AUTOSCALE_ARMS",
    "AutoscaleArm",
    "DisaggregationArm",
    "SplitArm",
    "autoscale_run",
    "autoscaling",
    "disaggregation",
    "disaggregation_run",
    "split_run",
    "split_study",
]
