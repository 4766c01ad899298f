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
        "ttft_mean_s": float(served["ttft_s"].mean()),
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


__all__ = ["METRICS", "POLICIES", "RoutingArm", "claim", "run", "study"]
