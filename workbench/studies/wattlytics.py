"""Wattlytics (arXiv 2604.08182): energy-efficient against faster GPUs under a budget or power limit.

Can an energy-efficient GPU beat a faster one under a budget or power limit?

Wattlytics argues that, under a fixed budget or energy/power limit, the GPU that gives the most work is not
always the fastest one. For LLM serving we measure, per GPU type, the capacity of one Llama-3.1-8B instance
at an SLO by simulation (the largest Poisson rate whose run meets P99 TTFT and P99 TPOT; bisection on the
rate, the same requests and arrival uniforms at every rate and on every GPU: common random numbers), its
mean power at that load (:func:`workbench.power.energy`) and its cloud price per GPU-hour (``data/gpus.csv``,
cited). A budget of ``B`` USD per hour buys ``floor(B / price)`` instances, a power limit of ``W`` watts
``floor(W / power)``; the fleet's throughput is the count times the capacity. :func:`limits` sweeps budgets
and power limits and names the winner with paired confidence intervals.

The runs start from an empty instance and count every request (no warm-up removal); the capacity is that
of a finite run of ``requests`` requests, replicated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from workbench import stats
from workbench.power import energy
from workbench.seeds import Streams
from workbench.sim.fleet import simulate, summarize
from workbench.sim.topology import monolithic
from workbench.studies.claims import NOT_REPRODUCED, UNDER_CONDITIONS, Claim, percent
from workbench.studies.replications import REPLICATIONS, Replicated, replicate
from workbench.tco import CostBasis, gpu_hour_usd
from workbench.traces import LogNormal, Trace

#: GPUs with a cited cloud price (B200's is an estimate in ``data/gpus.csv``, so it is left out).
GPUS = ("L40S", "A100-80GB", "H100", "H200")
#: Log-normal chat lengths (prompt median ~1,100, output median ~250 tokens).
LENGTHS = LogNormal(prompt_mu=7.0, prompt_sigma=0.7, output_mu=5.5, output_sigma=0.6)


@dataclass(frozen=True)
class GpuArm:
    """One GPU type serving the workload.

    Attributes
    ----------
    arm
        GPU name (catalog name or alias).
    model
        Model served (TP 1).
    ttft_s, tpot_s
        SLO: P99 TTFT and P99 TPOT targets (s).
    requests
        Requests per simulated run.
    bisection_steps
        Halvings of the rate bracket.
    """

    arm: str
    model: str = "Llama-3.1-8B"
    ttft_s: float = 1.0
    tpot_s: float = 0.05
    requests: int = 1000
    bisection_steps: int = 6


def _trace(arm: GpuArm, seed: int, rate: float, unit: tuple[np.ndarray, np.ndarray, np.ndarray]) -> Trace:
    gaps, prompt, output = unit
    arrival = np.cumsum(gaps) / rate
    return Trace(
        pl.DataFrame({"request_id": np.arange(len(gaps), dtype=np.uint64), "arrival_s": arrival - arrival[0],
                      "prompt_tokens": prompt, "output_tokens": output}),
        name="wattlytics",
    )  # fmt: skip


def _meets(arm: GpuArm, trace: Trace):
    result = simulate(trace, monolithic(1, gpu=arm.arm, model=arm.model))
    row = summarize(result)
    ok = row["rejected"] == 0 and row["ttft_p99_s"] <= arm.ttft_s and row["tpot_p99_s"] <= arm.tpot_s
    return ok, result


def run(arm: GpuArm, seed: int) -> dict[str, float]:
    """Capacity of one instance at the SLO (bisection), its power there, and per-dollar and per-joule work."""
    streams = Streams(seed)
    n = arm.requests
    unit = (
        streams.rng("wattlytics/arrivals").exponential(1.0, n),
        np.maximum(streams.rng("wattlytics/prompt").lognormal(LENGTHS.prompt_mu, LENGTHS.prompt_sigma, n), 1)
        .astype(np.int32),
        np.maximum(streams.rng("wattlytics/output").lognormal(LENGTHS.output_mu, LENGTHS.output_sigma, n), 1)
        .astype(np.int32),
    )  # fmt: skip
    lo, hi = 0.0, 1.0
    best = None
    while True:  # grow the bracket until the SLO fails
        ok, result = _meets(arm, _trace(arm, seed, hi, unit))
        if not ok:
            break
        lo, best = hi, result
        hi *= 2.0
    for _ in range(arm.bisection_steps):
        mid = 0.5 * (lo + hi)
        ok, result = _meets(arm, _trace(arm, seed, mid, unit))
        if ok:
            lo, best = mid, result
        else:
            hi = mid
    if best is None:
        return {"capacity_rps": 0.0, "tokens_per_s": 0.0, "power_w": math.nan, "price_usd_h": math.nan}
    report = energy(best).fleet.row(0, named=True)
    served = best.requests.filter(~pl.col("rejected"))
    span = float(served["finish_s"].max() - served["arrival_s"].min())
    tokens = float(served["output_tokens"].sum()) / span
    power = report["energy_j"] / span
    price = gpu_hour_usd(arm.arm, CostBasis(), arm.model)
    return {
        "capacity_rps": lo,
        "tokens_per_s": tokens,
        "power_w": power,
        "price_usd_h": price,
        "tokens_per_usd": tokens * 3600.0 / price,
        "tokens_per_j": tokens / power,
    }


def study(gpus: tuple[str, ...] = GPUS, *, replications: int = REPLICATIONS, seed: int = 0, n_jobs: int = 1,
          **setting) -> Replicated:  # fmt: skip
    """Every GPU on the same ``replications`` request samples (``setting``: :class:`GpuArm` fields)."""
    return replicate(run, [GpuArm(g, **setting) for g in gpus], replications=replications, seed=seed,
                     n_jobs=n_jobs)  # fmt: skip


def limits(
    rep: Replicated, *, budgets_usd_h: tuple[float, ...] = (2, 4, 6, 8, 12, 16, 24, 32, 48, 64),
    power_limits_w: tuple[float, ...] = (500, 1000, 1500, 2000, 3000, 4000, 6000, 8000),
) -> pl.DataFrame:  # fmt: skip
    """Fleet throughput of each GPU under each budget and power limit, the winner and its margin.

    One row per (limit kind, limit, GPU): ``instances`` (mean over replications), ``tokens_per_s`` with CI,
    ``winner`` (largest mean) and, on the winner's rows, ``margin`` with CI (paired relative gain over the
    runner-up) and ``significant``.
    """
    rows = []
    for kind, values, column in (
        ("budget", budgets_usd_h, "price_usd_h"),
        ("power", power_limits_w, "power_w"),
    ):
        for limit in values:
            fleet = {}
            for g in rep.arms:
                per = rep.values(g, column).to_numpy()
                count = np.floor(limit / per)
                fleet[g] = (count, count * rep.values(g, "tokens_per_s").to_numpy())
            means = {g: float(v[1].mean()) for g, v in fleet.items()}
            order = sorted(means, key=means.__getitem__, reverse=True)
            best, second = order[0], order[1]
            margin = None
            if means[second] > 0 and np.all(fleet[second][1] > 0):
                margin = stats.relative_change(fleet[best][1], fleet[second][1])
            for g, (count, tput) in fleet.items():
                est = stats.t_interval(tput)  # replicate() runs at least two replications
                rows.append({
                    "kind": kind, "limit": float(limit), "gpu": g, "instances": float(count.mean()),
                    "tokens_per_s": est.value, "tokens_per_s_lo": est.low, "tokens_per_s_hi": est.high,
                    "winner": g == best, "runner_up": second if g == best else None,
                    "margin": margin.value if (g == best and margin) else None,
                    "margin_lo": margin.low if (g == best and margin) else None,
                    "significant": bool(margin.low > 0) if (g == best and margin) else None,
                })  # fmt: skip
    return pl.DataFrame(rows)


def claim(rep: Replicated, table: pl.DataFrame | None = None) -> Claim:
    """Where (budget, power limit) a GPU other than the fastest one gives the most throughput."""
    table = limits(rep) if table is None else table
    speed = {g: rep.estimate(g, "tokens_per_s").value for g in rep.arms}
    fastest = max(speed, key=speed.__getitem__)
    eff = {g: rep.estimate(g, "tokens_per_j").value for g in rep.arms}
    efficient = max(eff, key=eff.__getitem__)
    per_usd = {g: rep.estimate(g, "tokens_per_usd").value for g in rep.arms}
    cheapest = max(per_usd, key=per_usd.__getitem__)
    wins = table.filter(pl.col("winner") & (pl.col("gpu") != fastest) & pl.col("significant").fill_null(False))
    if efficient == fastest:  # the headline estimate: how much more the cheapest does per dollar
        headline = rep.ratio(cheapest, fastest, "tokens_per_usd") if cheapest != fastest else None
    else:
        headline = rep.ratio(efficient, fastest, "tokens_per_j")
    where = "; ".join(
        f"{kind} " + ", ".join(f"{v:g} ({w})" for v, w in zip(g["limit"], g["gpu"], strict=True))
        for (kind,), g in wins.group_by(["kind"], maintain_order=True)
    )
    eff_gain = rep.ratio(efficient, fastest, "tokens_per_j") if efficient != fastest else None
    efficient_wins = wins.filter(pl.col("gpu") == efficient).height > 0 and efficient != fastest
    if efficient_wins:
        verdict = UNDER_CONDITIONS
        reason = (
            f"{efficient} does more work per joule than the faster {fastest} and wins under tight limits; "
            "integer instance counts decide near the edges"
        )
    elif efficient == fastest:
        verdict = NOT_REPRODUCED
        reason = (
            f"for this memory-bound serving workload the most efficient GPU is also the fastest ({fastest}: "
            "bandwidth raises speed and work per joule together), so no efficient-but-slower GPU exists; "
            + (
                f"under budgets the cheaper {cheapest} wins (a price effect), and under a power limit below "
                f"one {fastest}'s draw only smaller GPUs fit"
                if wins.height
                else ""
            )
        )
    else:
        verdict, reason = NOT_REPRODUCED, f"{fastest} wins at every budget and power limit tried"
    eff_text = f" ({percent(eff_gain)} tokens/J vs {fastest})" if eff_gain is not None else ""
    return Claim(
        paper="Wattlytics (arXiv 2604.08182)",
        published="under a budget or energy/power limit an energy-efficient GPU can beat a faster one",
        setup=(
            f"Llama-3.1-8B, one instance per GPU ({', '.join(rep.arms)}), capacity at P99 TTFT <= 1 s and "
            f"P99 TPOT <= 50 ms by simulated bisection, {rep.replications} request samples; cloud prices "
            "(data/gpus.csv, H200 RunPod 3.99 USD/h); budgets 2-64 USD/h, power limits 0.5-8 kW"
        ),
        result=(
            f"fastest {fastest}, most tokens/J {efficient}{eff_text}, most tokens/USD {cheapest}"
            + (f" ({percent(headline)} vs {fastest})" if efficient == fastest and headline is not None else "")
            + "; "
            f"significant wins by another GPU: {where or 'none'}"
        ),
        verdict=verdict,
        reason=reason,
        estimate=headline,
    )


__all__ = ["GPUS", "LENGTHS", "GpuArm", "claim", "limits", "run", "study"]
