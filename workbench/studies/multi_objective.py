"""Multi-objective load balancing (arXiv 2603.15400): accuracy floor first, then latency and energy.

The paper keeps the device/model pairs whose accuracy is acceptable, then picks the lowest weighted sum of
expected latency and energy, and reports about half the energy and far lower latency than its baselines at a
small accuracy cost.

Here a fleet of three pools (Llama-3.1-8B on H100, Llama-3.1-8B on A100, Llama-3.1-70B on 4 x H100) serves a
Poisson chat stream under three front routers: ``quality-first`` (every request to the most accurate pool),
``load-balanced`` (join the pool with the fewest outstanding requests per instance, blind to accuracy and
energy) and ``multi-objective`` (:class:`workbench.sim.routing.pools.MultiObjective`: accuracy floor 0.70,
equal weights). Accuracy per model is the published MMLU (0-shot, CoT) of the instruction-tuned Llama 3.1
models (Meta's model card: 8B 73.0, 70B 86.0); energy is the simulated fleet's energy from the ML.ENERGY v3
power fits (:func:`workbench.power.energy`), idle pools included.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from workbench.config import as_float
from workbench.power import energy
from workbench.sim.fleet import simulate, summarize
from workbench.sim.topology import Fleet, Pool
from workbench.studies.claims import NOT_REPRODUCED, REPRODUCED, UNDER_CONDITIONS, Claim, percent
from workbench.studies.replications import REPLICATIONS, Replicated, replicate
from workbench.traces import LogNormal, Poisson, Synthetic

#: MMLU (0-shot, CoT) of the instruction-tuned Llama 3.1 models, Meta's Llama 3.1 model card
#: (github.com/meta-llama/llama-models, models/llama3_1/MODEL_CARD.md), as a fraction.
ACCURACY = {"Llama-3.1-8B": 0.730, "Llama-3.1-70B": 0.860}
#: (pool name, GPU, model, TP, instances).
POOLS = (
    ("8B-H100", "H100", "Llama-3.1-8B", 1, 2),
    ("8B-A100", "A100-80GB", "Llama-3.1-8B", 1, 2),
    ("70B-H100x4", "H100", "Llama-3.1-70B", 4, 1),
)
#: Front routers compared: (label, router, parameters).
POLICIES: tuple[tuple[str, str, tuple[tuple[str, float], ...]], ...] = (
    ("quality-first", "multi_objective", (("a_min", 0.85),)),
    ("load-balanced", "jsq", ()),
    ("multi-objective", "multi_objective", (("a_min", 0.70), ("w", 0.5))),
)
#: Log-normal chat lengths (prompt median ~900, output median ~200 tokens).
LENGTHS = LogNormal(prompt_mu=6.8, prompt_sigma=0.7, output_mu=5.3, output_sigma=0.6)


@dataclass(frozen=True)
class BalancingArm:
    """One front router over the three pools."""

    arm: str
    router: str
    router_params: tuple[tuple[str, float], ...] = ()
    rate: float = 6.0
    requests: int = 1000


def fleet_of(arm: BalancingArm) -> Fleet:
    """Return the three-pool fleet behind ``arm``'s front router."""
    pools = tuple(
        Pool(name, gpu=gpu, model=model, tp=tp, instances=n, accuracy=ACCURACY[model])
        for name, gpu, model, tp, n in POOLS
    )
    return Fleet(pools=pools, router=arm.router, router_params=dict(arm.router_params))


def run(arm: BalancingArm, seed: int) -> dict[str, float]:
    """One replication: mean accuracy of the served requests, energy per request, tail latency."""
    trace = Synthetic(arrivals=Poisson(arm.rate), lengths=LENGTHS).generate(arm.requests, seed=seed)
    fleet = fleet_of(arm)
    result = simulate(trace, fleet, seed=seed)
    accuracy = pl.DataFrame({"pool": [p.name for p in fleet.pools], "_acc": [p.accuracy for p in fleet.pools]})
    served = result.requests.filter(~pl.col("rejected")).join(accuracy, on="pool")
    row = summarize(result)
    report = energy(result).fleet.row(0, named=True)
    return {
        "accuracy": as_float(served["_acc"].mean()),
        "j_per_request": report["j_per_request"],
        "ttft_p99_s": row["ttft_p99_s"],
        "e2e_p99_s": row["e2e_p99_s"],
        "share_70b": as_float((served["pool"] == "70B-H100x4").mean()),
    }


def study(*, replications: int = REPLICATIONS, seed: int = 0, n_jobs: int = 1, **setting) -> Replicated:
    """Return the three front routers on the same ``replications`` request streams."""
    arms = [BalancingArm(label, router, params, **setting) for label, router, params in POLICIES]
    return replicate(run, arms, replications=replications, seed=seed, n_jobs=n_jobs)


def claim(rep: Replicated) -> Claim:
    """Energy, latency and accuracy of the multi-objective router against both baselines (paired)."""
    mo = "multi-objective"
    e_lb, e_qf = (
        rep.ratio(mo, "load-balanced", "j_per_request"),
        rep.ratio(mo, "quality-first", "j_per_request"),
    )
    l_lb, l_qf = rep.ratio(mo, "load-balanced", "e2e_p99_s"), rep.ratio(mo, "quality-first", "e2e_p99_s")
    a_lb = rep.difference(mo, "load-balanced", "accuracy").estimate
    a_qf = rep.difference(mo, "quality-first", "accuracy").estimate
    lower = e_lb.high < 0 and e_qf.high < 0 and l_lb.high < 0 and l_qf.high < 0
    small_cost = a_lb.low > -0.03
    if lower and small_cost and a_qf.low > -0.03:
        verdict, reason = REPRODUCED, "lower energy and latency than both baselines at a small accuracy cost"
    elif lower and small_cost:
        verdict = UNDER_CONDITIONS
        reason = (
            "against the load-balanced baseline energy falls by about half at an accuracy cost of a "
            "point or two; against quality-first the accuracy cost is the 8B/70B gap (13 points), not small"
        )
    else:
        verdict, reason = NOT_REPRODUCED, "the router does not lower both energy and latency significantly"
    return Claim(
        paper="Multi-objective load balancing (arXiv 2603.15400)",
        published="about half the energy and far lower latency than baselines, at a small accuracy cost",
        setup=(
            "pools 2 x 8B/H100, 2 x 8B/A100, 1 x 70B/4xH100; accuracy = Llama 3.1 MMLU (model card), energy "
            f"= ML.ENERGY power fits; Poisson {rep.runs['rate'][0]:g} req/s, {rep.replications} seeds"
        ),
        result=(
            f"energy/request {percent(e_lb)} vs load-balanced, {percent(e_qf)} vs quality-first; P99 E2E "
            f"{percent(l_lb)} / {percent(l_qf)}; accuracy {100 * a_lb.value:+.1f} / {100 * a_qf.value:+.1f} "
            "points"
        ),
        verdict=verdict,
        reason=reason,
        estimate=e_lb,
    )


__all__ = ["ACCURACY", "POLICIES", "POOLS", "BalancingArm", "claim", "fleet_of", "run", "study"]
