"""LMetric (arXiv 2603.15202): cache- and load-aware routing against vLLM v1 and a production linear scheduler.

The paper routes to ``argmin P_i x (B_i + 1)`` on 16 instances with prefix caching, traces replayed at a
speed-up, and reports TTFT 92 % lower than vLLM v1's score (``4 x waiting + running``) and 39 % lower than
the production linear-weights scheduler (Alibaba Bailian, ``linear_weights``: 0.7 x hit share + 0.15 x
fewest requests + 0.15 x fewest tokens, sampled in proportion to the score).

Here each replication draws a fresh sample of the Mooncake trace's fitted twin (:mod:`._workloads`) and
replays it through ``instances`` H100 / Llama-3.1-8B instances with prefix caching under every policy (common
random numbers: the same requests and prefixes for all policies of a replication).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from workbench.config import as_float
from workbench.sim.fleet import simulate, summarize
from workbench.sim.topology import monolithic
from workbench.studies._workloads import twin_trace
from workbench.studies.claims import NOT_REPRODUCED, REPRODUCED, UNDER_CONDITIONS, Claim, interval, percent
from workbench.studies.replications import REPLICATIONS, Replicated, replicate

#: Arms of the LMetric comparison, baselines first: (label, registered router, router parameters).
POLICIES: tuple[tuple[str, str, tuple[tuple[str, object], ...]], ...] = (
    ("vllm_v1", "vllm_v1", ()),
    ("linear_weights", "linear_weights", ()),
    ("linear_weights_argmax", "linear_weights", (("sample", False),)),
    ("llmd", "llmd", ()),
    ("lmetric", "lmetric", ()),
)
#: Metrics each run reports.
METRICS = ("ttft_mean_s", "ttft_p50_s", "ttft_p99_s", "tpot_p50_s", "hit_rate")


@dataclass(frozen=True)
class RoutingArm:
    """One policy in the LMetric setting.

    Attributes
    ----------
    arm
        Label of the policy.
    router
        Registered router name (default: ``arm``).
    router_params
        The router's parameters as ``(name, value)`` pairs.
    instances
        Instances of the pool (16 in the paper).
    speedup
        Trace replay speed-up.
    requests
        Requests per replication.
    dataset
        Registered trace whose twin is sampled.
    gpu, model
        Instance hardware and model.
    """

    arm: str
    router: str = ""
    router_params: tuple[tuple[str, object], ...] = ()
    instances: int = 16
    speedup: float = 6.0
    requests: int = 2000
    dataset: str = "mooncake_synthetic"
    gpu: str = "H100"
    model: str = "Llama-3.1-8B"


def run(arm: RoutingArm, seed: int) -> dict[str, float]:
    """One replication of one policy: TTFT mean and percentiles, TPOT median and prefix-cache hit rate."""
    trace = twin_trace(arm.dataset, arm.requests, seed, arm.speedup)
    fleet = monolithic(arm.instances, router=arm.router or arm.arm, router_params=dict(arm.router_params),
                       gpu=arm.gpu, model=arm.model)  # fmt: skip
    result = simulate(trace, fleet, seed=seed)
    row = summarize(result)
    served = result.requests.filter(~pl.col("rejected"))
    return {
        "ttft_mean_s": as_float(served["ttft_s"].mean()),
        "ttft_p50_s": row["ttft_p50_s"],
        "ttft_p99_s": row["ttft_p99_s"],
        "tpot_p50_s": row["tpot_p50_s"],
        "hit_rate": row["hit_rate"],
    }


def study(
    policies: tuple[tuple[str, str, tuple[tuple[str, object], ...]], ...] = POLICIES,
    *,
    replications: int = REPLICATIONS,
    seed: int = 0,
    n_jobs: int = 1,
    **setting,
) -> Replicated:
    """Every policy on the same ``replications`` twin samples (``setting``: :class:`RoutingArm` fields)."""
    arms = [RoutingArm(label, router, params, **setting) for label, router, params in policies]
    return replicate(run, arms, replications=replications, seed=seed, n_jobs=n_jobs)


#: Policies of the load sweep (notebook 03): cache-blind baselines and the cache-aware routers.
SWEEP_POLICIES = ("round_robin", "vllm_v1", "sglang_cache_aware", "llmd", "lmetric")


def loads_study(
    policies: tuple[str, ...] = SWEEP_POLICIES,
    loads: tuple[float, ...] = (1.0, 2.0, 3.0),
    *,
    instances: int = 8,
    requests: int = 2000,
    replications: int = REPLICATIONS,
    seed: int = 0,
    n_jobs: int = 1,
) -> Replicated:
    """Every policy at every load (trace speed-up) on the same twin samples; arms ``"<policy> @x<load>"``."""
    arms = [RoutingArm(f"{p} @x{load:g}", p, (), instances, load, requests) for load in loads for p in policies]
    return replicate(run, arms, replications=replications, seed=seed, n_jobs=n_jobs)


def ranking(rep: Replicated, metric: str = "ttft_p99_s", baseline: str = "lmetric") -> pl.DataFrame:
    """Per load and policy: the metric's mean and CI, and the paired difference against ``baseline``.

    Columns ``load``, ``policy``, ``<metric>``, ``_lo``, ``_hi``, ``vs_<baseline>`` (mean difference),
    ``vs_lo``, ``vs_hi``, ``significant`` (the difference's interval excludes zero; null on the baseline's
    rows) and ``rank`` (1 = lowest mean at that load).
    """
    rows = []
    for (router, speedup), group in rep.runs.group_by(["router", "speedup"], maintain_order=True):
        arm = group["arm"][0]
        base = f"{baseline} @x{speedup:g}"
        est = rep.estimate(arm, metric)
        diff = rep.difference(arm, base, metric) if router != baseline else None
        d = None if diff is None else diff.estimate
        rows.append({
            "load": f"x{speedup:g}", "policy": router, metric: est.value, f"{metric}_lo": est.low,
            f"{metric}_hi": est.high, f"vs_{baseline}": None if d is None else d.value,
            "vs_lo": None if d is None else d.low, "vs_hi": None if d is None else d.high,
            "significant": None if diff is None else diff.significant,
        })  # fmt: skip
    table = pl.DataFrame(rows)
    return table.with_columns(pl.col(metric).rank("min").over("load").cast(pl.Int32).alias("rank"))


def claim(rep: Replicated, metric: str = "ttft_mean_s") -> Claim:
    """LMetric's TTFT change against vLLM v1 and the linear-weights scheduler, paired over replications."""
    vs_vllm = rep.ratio("lmetric", "vllm_v1", metric)
    vs_linear = rep.ratio("lmetric", "linear_weights", metric)
    vs_argmax = rep.ratio("lmetric", "linear_weights_argmax", metric)
    first = rep.runs.row(0, named=True)
    both_lower = vs_vllm.high < 0 and vs_linear.high < 0
    if both_lower and vs_vllm.value <= -0.75 and vs_linear.value <= -0.25:
        verdict, reason = REPRODUCED, "both reductions are significant and of the published size"
    elif both_lower:
        verdict = UNDER_CONDITIONS
        reason = (
            "LMetric is significantly ahead of both baselines, but by less than published: the twin of the "
            "public Mooncake sample reuses prefixes less than the paper's production traces"
        )
    else:
        verdict, reason = NOT_REPRODUCED, "no significant reduction against at least one baseline"
    return Claim(
        paper="LMetric (arXiv 2603.15202)",
        published="mean TTFT -92 % vs vLLM v1, -39 % vs the production linear-weights scheduler (16 instances)",
        setup=(
            f"{first['instances']} x {first['gpu']} / {first['model']}, prefix caching; {rep.replications} "
            f"samples of {first['requests']} requests of the Mooncake twin at {first['speedup']:g}x"
        ),
        result=(
            f"mean TTFT {percent(vs_vllm)} vs vLLM v1, {percent(vs_linear)} vs linear weights as published "
            f"(sampled), {percent(vs_argmax)} vs its argmax; LMetric mean TTFT "
            f"{interval(rep.estimate('lmetric', metric), 's')}"
        ),
        verdict=verdict,
        reason=reason,
        estimate=vs_linear,
    )


__all__ = [
    "METRICS",
    "POLICIES",
    "SWEEP_POLICIES",
    "RoutingArm",
    "claim",
    "loads_study",
    "ranking",
    "run",
    "study",
]
