"""inference-fleet-sim (arXiv 2603.16054): its published scenarios, re-run here next to its own answers.

inference-fleet-sim sizes fleets from a workload's token-length CDF: homogeneous ("homo") or two pools split
at a length threshold, the fewest GPUs whose P99 TTFT meets an SLO. Its documentation
(``bench/fleet-simulator/docs/USE_CASES.md`` in vllm-project/semantic-router, commit
``ea7fab6aaf5dc9c2bb56a7e841af4cce94d747f9``) publishes the answers for the two CDFs shipped here
(:data:`PUBLISHED`). This study draws workloads the way its ``CdfWorkload`` does (a total length from the CDF,
uniform within the bin; 80 % prompt, 20 % output; Poisson arrivals; the first 10 % of requests excluded as
warm-up) and finds, for each scenario and fleet shape, the fewest Llama-3.1-8B instances on the named GPU
whose P99 TTFT meets the SLO, by galloping from the published answer and bisecting (one count per
replication). Two-pool fleets route by length (``length_pools``) and split their instances in proportion to
the two classes' tokens; the SLO is the whole fleet's (every request), so the count is the fewest total with
that split (another split might need fewer).

Its "GPU" is a calibrated profile of one serving instance (``W`` = 4 ms (H100) / 8 ms (A100) base
iteration, chunked prefill 1,024 / 512 tokens) with KV slots reserved per maximum context; ours is the
roofline of Llama-3.1-8B on one GPU with paged, on-demand KV blocks. Differences in the answers come from
those two models.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from workbench import datasets
from workbench.config import as_float
from workbench.seeds import Streams
from workbench.sim.fleet import simulate
from workbench.sim.topology import Fleet, Pool, monolithic
from workbench.studies.claims import NOT_REPRODUCED, REPRODUCED, UNDER_CONDITIONS, Claim, interval, percent
from workbench.studies.replications import REPLICATIONS, Replicated, replicate
from workbench.traces import Trace

#: inference-fleet-sim's published answers (USE_CASES.md @ ea7fab6): GPUs for homo and the two-pool split
#: (short + long), and whether homo met the SLO.
PUBLISHED: dict[str, dict] = {
    "LMSYS": {
        "cdf": "ifs_lmsys_cdf", "rate": 100.0, "gpu": "A100-80GB", "slo_s": 0.5, "threshold": 4096,
        "homo": 14, "homo_meets": True, "short": 3, "long": 5,
        "text": "homo 14 A100 -> two pools 3 + 5 = 8 (-43 %)",
    },
    "agent-heavy": {
        "cdf": "ifs_agent_heavy_cdf", "rate": 20.0, "gpu": "H100", "slo_s": 1.0, "threshold": 4096,
        "homo": 24, "homo_meets": False, "short": 2, "long": 23,
        "text": "homo 24 H100 fails (P99 1,052 ms); two pools 2 + 23 = 25 meet it (+4 %)",
    },
}  # fmt: skip
#: Largest fleet searched (instances).
MAX_INSTANCES = 64  # per fleet
#: Share of the first requests excluded from the P99 (as inference-fleet-sim's PoissonWorkload).
WARM_UP = 0.10


def cdf_of(name: str) -> np.ndarray:
    """Return the (tokens, cumulative fraction) pairs of a shipped inference-fleet-sim CDF."""
    raw = json.loads(datasets.fetch(name, allow_download=False).read_text())
    return np.array(raw["cdf"] if isinstance(raw, dict) else raw, dtype=float)


def ifs_trace(name: str, n: int, rate: float, seed: int) -> Trace:
    """``n`` requests drawn as inference-fleet-sim's ``CdfWorkload`` draws them, Poisson at ``rate``."""
    cdf = cdf_of(name)
    streams = Streams(seed)
    u = streams.rng("ifs/length").random(n)
    k = np.minimum(np.searchsorted(cdf[:, 1], u, side="left"), len(cdf) - 1)
    lo = np.where(k > 0, cdf[np.maximum(k - 1, 0), 0], 1.0)
    hi = np.maximum(lo, cdf[k, 0])
    total = np.floor(lo + streams.rng("ifs/within").random(n) * (hi - lo + 1)).astype(np.int64)
    prompt = np.maximum(1, (0.8 * total).astype(np.int64))
    output = np.maximum(1, total - prompt)
    arrival = np.cumsum(streams.rng("ifs/arrivals").exponential(1.0 / rate, n))
    table = pl.DataFrame(
        {
            "request_id": np.arange(n, dtype=np.uint64),
            "arrival_s": arrival - arrival[0],
            "prompt_tokens": prompt.astype(np.int32),
            "output_tokens": output.astype(np.int32),
        }
    )
    return Trace(table, name=f"{name} (inference-fleet-sim draw)")  # fmt: skip


def _p99(trace: Trace, fleet: Fleet, seed: int) -> float:
    result = simulate(trace, fleet, seed=seed)
    req = result.requests.sort("arrival_s")
    req = req.slice(int(WARM_UP * req.height))
    if req["rejected"].any():
        return math.inf
    return as_float(req["ttft_s"].quantile(0.99))


def fewest(trace: Trace, make, slo_s: float, start: int, seed: int) -> tuple[int | None, float]:
    """Fewest instances ``n`` (1..MAX_INSTANCES) with ``make(n)`` meeting P99 TTFT <= ``slo_s``; its P99."""
    memo: dict[int, float] = {}

    def p99(n: int) -> float:
        if n not in memo:
            memo[n] = _p99(trace, make(n), seed)
        return memo[n]

    hi = max(1, min(start, MAX_INSTANCES))
    while p99(hi) > slo_s:  # gallop up until it meets
        if hi == MAX_INSTANCES:
            return None, p99(hi)
        hi = min(2 * hi, MAX_INSTANCES)
    lo = 0  # largest count known to fail (0: none)
    step = 1
    while hi - step > lo and p99(hi - step) <= slo_s:  # gallop down
        hi -= step
        step *= 2
    lo = max(lo, hi - step) if hi - step > lo else lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if p99(mid) <= slo_s:
            hi = mid
        else:
            lo = mid
    return hi, p99(hi)


@dataclass(frozen=True)
class ScenarioArm:
    """One published scenario and fleet shape (``homo`` or ``two-pool``)."""

    arm: str
    scenario: str
    shape: str
    requests: int = 3000


def run(arm: ScenarioArm, seed: int) -> dict[str, float]:
    """Fewest instances meeting the scenario's SLO for the arm's shape (NaN-free: ``met`` says if found)."""
    pub = PUBLISHED[arm.scenario]
    trace = ifs_trace(pub["cdf"], arm.requests, pub["rate"], seed)
    gpu, slo = pub["gpu"], pub["slo_s"]
    if arm.shape == "homo":
        n, p99 = fewest(trace, lambda k: monolithic(k, gpu=gpu), slo, pub["homo"], seed)
        found = n is not None
        return {"gpus": float(n) if n is not None else float(MAX_INSTANCES), "met": float(found), "p99_s": p99,
                "short": 0.0, "long": 0.0}  # fmt: skip
    th = pub["threshold"]
    req = trace.requests
    size = (req["prompt_tokens"].cast(pl.Int64) + req["output_tokens"]).to_numpy()
    share = float(size[size <= th].sum() / size.sum())  # the short pool's share of the tokens

    def split(k: int) -> tuple[int, int]:
        n_short = min(max(1, round(k * share)), k - 1)
        return n_short, k - n_short

    start = pub["short"] + pub["long"]
    n, p99 = fewest(trace, lambda k: two_pool_fleet(gpu, *split(max(k, 2)), th), slo, start, seed)
    found = n is not None
    n_short, n_long = split(max(n or MAX_INSTANCES, 2))
    return {"gpus": float(n_short + n_long), "met": float(found), "p99_s": p99, "short": float(n_short),
            "long": float(n_long)}  # fmt: skip


def two_pool_fleet(gpu: str, short: int, long: int, threshold: int) -> Fleet:
    """Two pools split at ``threshold`` tokens (prompt + output) behind ``length_pools``."""
    return Fleet(
        pools=(
            Pool("short", gpu=gpu, instances=short, max_tokens=threshold),
            Pool("long", gpu=gpu, instances=long),
        ),
        router="length_pools",
    )


def study(
    *, replications: int = REPLICATIONS, seed: int = 0, n_jobs: int = 1, requests: int = 3000
) -> Replicated:
    """Both published scenarios, homo and two-pool, on the same ``replications`` draws."""
    arms = [
        ScenarioArm(f"{s}: {shape}", s, shape, requests) for s in PUBLISHED for shape in ("homo", "two-pool")
    ]
    return replicate(run, arms, replications=replications, seed=seed, n_jobs=n_jobs)


def side_by_side(rep: Replicated) -> pl.DataFrame:
    """Per scenario and shape: the published count, ours (mean and CI over replications), and how often met."""
    rows = []
    for scenario, pub in PUBLISHED.items():
        for shape in ("homo", "two-pool"):
            arm = f"{scenario}: {shape}"
            met = rep.values(arm, "met").to_numpy()
            est = rep.estimate(arm, "gpus")
            published = pub["homo"] if shape == "homo" else pub["short"] + pub["long"]
            rows.append({
                "scenario": scenario, "shape": shape, "published_gpus": published,
                "published_meets": pub["homo_meets"] if shape == "homo" else True,
                "gpus": est.value, "gpus_lo": est.low, "gpus_hi": est.high, "met_share": float(met.mean()),
                "p99_s": as_float(rep.values(arm, "p99_s").mean()),
            })  # fmt: skip
    return pl.DataFrame(rows)


def claim(rep: Replicated) -> Claim:
    """Return the split's saving (or cost) in each scenario, ours next to the published one."""
    parts, agree = [], 0
    for scenario, pub in PUBLISHED.items():
        homo, two = f"{scenario}: homo", f"{scenario}: two-pool"
        met_homo, met_two = as_float(rep.values(homo, "met").mean()), as_float(rep.values(two, "met").mean())
        published = (pub["short"] + pub["long"]) / pub["homo"] - 1.0
        if met_homo < 1 or met_two < 1:
            p99 = as_float(rep.values(two, "p99_s").mean())
            parts.append(
                f"{scenario}: met in {met_homo:.0%} (homo) / {met_two:.0%} (two-pool) of the draws with <= "
                f"{MAX_INSTANCES} instances (P99 {p99:.2f} s); published: "
                f"{pub['text']}"
            )
            continue
        change = rep.ratio(two, homo, "gpus")
        agree += (change.high < 0) == (published < 0)
        parts.append(
            f"{scenario}: homo {interval(rep.estimate(homo, 'gpus'))}, two-pool "
            f"{interval(rep.estimate(two, 'gpus'))} instances ({percent(change)}); published {pub['text']}"
        )
    verdict = REPRODUCED if agree == len(PUBLISHED) else UNDER_CONDITIONS if agree else NOT_REPRODUCED
    reason = (
        "the split's direction holds where our fleets can meet the SLO at all, but the counts differ: our 8B "
        "roofline prefills long prompts several times slower than its calibrated profiles, so the P99 is set "
        "by the prefill of the longest 1-2 % of prompts (LMSYS needs many homogeneous instances to keep them "
        "unqueued; heavy-tailed agent prompts cannot meet 1 s at all), and our instances allocate KV on "
        "demand, so a short pool gains no KV slots from its shorter context"
    )
    return Claim(
        paper="inference-fleet-sim (arXiv 2603.16054)",
        published="; ".join(f"{s}: {p['text']}" for s, p in PUBLISHED.items()),
        setup=(
            f"its CDFs drawn its way (80/20 prompt/output, Poisson, 10 % warm-up), {rep.replications} draws "
            f"of {rep.runs['requests'][0]} requests; Llama-3.1-8B per GPU; fewest instances meeting the "
            "fleet's P99"
        ),
        result="; ".join(parts),
        verdict=verdict,
        reason=reason,
    )


__all__ = ["MAX_INSTANCES", "PUBLISHED", "ScenarioArm", "claim", "fewest", "ifs_trace", "run", "side_by_side",
           "study", "two_pool_fleet"]  # fmt: skip
