"""Reliability margin: availability from failure rates and repair times, the spare instances that keep the
SLO with a given probability, and failure injection in the fleet simulator.

An instance of ``tp`` GPUs in one node is up when all its GPUs and its node are up. With independent
failures (rate ``lambda`` per hour) and repairs (mean ``MTTR`` hours), each part is up a share
``A = 1 / (1 + lambda x MTTR)`` of the time (MTBF / (MTBF + MTTR)), so ``A_instance = A_gpu^tp x A_node``.
A fleet that needs ``n`` instances up to meet the SLO and runs ``n + s`` meets it with probability
``P(Binomial(n + s, A_instance) >= n)``; :func:`spares_needed` finds the smallest ``s`` reaching a target.

:func:`failure_study` checks the margin by simulation: instances fail as a Poisson process and come back after
exponential repair times (``Simulation.fail_instance``); the requests they were running are retried on the
others and counted (``retried``), and the SLO and cost of the fleet with and without spares are compared.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
from scipy.stats import binom

from workbench.config import require_positive, require_range
from workbench.hardware import gpu
from workbench.planning import SLO
from workbench.whatif._common import WhatIfError, gpu_hour_price, simulate_fleet

#: Largest fleet :func:`spares_needed` searches before giving up.
MAX_INSTANCES = 100_000


def availability(
    failure_rate_per_h: float,
    mttr_h: float,
    *,
    tp: int = 1,
    node_failure_rate_per_h: float = 0.0,
    node_mttr_h: float | None = None,
) -> float:
    """Steady-state share of time an instance of ``tp`` GPUs (and its node) is up.

    Parameters
    ----------
    failure_rate_per_h, mttr_h
        Failures per GPU-hour and mean time to repair a GPU (hours).
    tp
        GPUs per instance.
    node_failure_rate_per_h, node_mttr_h
        Node-level failures (any failure of the node takes its instances down); repair defaults to ``mttr_h``.

    Raises
    ------
    WhatIfError
        When the availability is zero (or rounds to zero): no number of spares can help.
    """
    require_positive("failure_rate_per_h", failure_rate_per_h, allow_zero=True)
    require_positive("mttr_h", mttr_h, allow_zero=True)
    require_positive("node_failure_rate_per_h", node_failure_rate_per_h, allow_zero=True)
    node_mttr_h = mttr_h if node_mttr_h is None else node_mttr_h
    require_positive("node_mttr_h", node_mttr_h, allow_zero=True)
    if not (isinstance(tp, int) and tp >= 1):
        raise WhatIfError(f"tp must be an integer >= 1, got {tp!r}")
    a_gpu = 1.0 / (1.0 + failure_rate_per_h * mttr_h)
    a_node = 1.0 / (1.0 + node_failure_rate_per_h * node_mttr_h)
    a = a_gpu**tp * a_node
    if not a > 1e-12:
        raise WhatIfError(
            f"availability is {a:.3g}: a failure rate of {failure_rate_per_h:g}/h per GPU"
            + (f" and {node_failure_rate_per_h:g}/h per node" if node_failure_rate_per_h else "")
            + f" with MTTR {mttr_h:g} h leaves each {tp}-GPU instance down "
            f"{1 - a:.4%} of the time (limit: availability > 1e-12); no number of spares meets the SLO"
        )
    return float(a)


def prob_enough(n_needed: int, n_total: int | np.ndarray, avail: float) -> np.ndarray:
    """``P(at least n_needed of n_total instances are up)`` with independent availability ``avail``."""
    return binom.sf(n_needed - 1, np.asarray(n_total), avail)


def spares_needed(n_needed: int, avail: float, target: float = 0.99) -> int:
    """Smallest ``s`` with ``P(Binomial(n_needed + s, avail) >= n_needed) >= target``.

    Raises
    ------
    WhatIfError
        When more than :data:`MAX_INSTANCES` instances would be needed.
    """
    if not (isinstance(n_needed, int | np.integer) and n_needed >= 1):
        raise WhatIfError(f"n_needed must be an integer >= 1, got {n_needed!r}")
    require_range("target", target, 0.0, 0.999999999)
    require_range("availability", avail, 1e-12, 1.0)
    if avail >= 1.0:
        return 0
    # the mean up count must exceed n_needed: start near n / A and scan upwards in blocks
    lo = n_needed
    while lo <= MAX_INSTANCES:
        block = np.arange(lo, min(lo + 4096, MAX_INSTANCES + 1))
        ok = np.flatnonzero(prob_enough(n_needed, block, avail) >= target)
        if ok.size:
            return int(block[ok[0]] - n_needed)
        lo = int(block[-1]) + 1
    raise WhatIfError(
        f"{n_needed} instances up with probability {target:g} at availability {avail:.4g} need more than "
        f"{MAX_INSTANCES:,} instances in total (limit MAX_INSTANCES)"
    )


def margin_table(
    n_needed: int,
    avail: float,
    *,
    target: float = 0.99,
    tp: int = 1,
    usd_per_gpu_hr: float = math.nan,
    extra: int = 2,
) -> pl.DataFrame:
    """Probability of meeting the SLO and cost for 0 .. (needed spares + ``extra``) spares.

    Columns: ``spares``, ``instances``, ``gpus`` (instances x tp), ``p_slo``, ``meets_target``,
    ``usd_per_hour`` (every GPU of every instance, spares included), ``extra_cost_share``.
    """
    s_star = spares_needed(n_needed, avail, target)
    spares = np.arange(0, s_star + extra + 1)
    total = n_needed + spares
    p = prob_enough(n_needed, total, avail)
    return pl.DataFrame(
        {
            "spares": spares,
            "instances": total,
            "gpus": total * tp,
            "p_slo": p,
            "meets_target": p >= target,
            "usd_per_hour": total * tp * usd_per_gpu_hr,
            "extra_cost_share": spares / n_needed,
        }
    )


def failure_schedule(
    instances: int, rate_per_s: float, mean_repair_s: float, horizon_s: float, rng: np.random.Generator
) -> list[tuple[float, int, float]]:
    """Alternating up (exponential, mean ``1 / rate``) and repair (exponential) periods per instance.

    Returns sorted ``(fail_time_s, instance, repair_s)`` for failures before ``horizon_s``.
    """
    events = []
    if rate_per_s <= 0:
        return events
    for i in range(instances):
        t = 0.0
        while True:
            t += rng.exponential(1.0 / rate_per_s)
            if t >= horizon_s:
                break
            d = float(rng.exponential(mean_repair_s)) if mean_repair_s > 0 else 0.0
            events.append((t, i, d))
            t += d
    return sorted(events)


def simulate_with_failures(
    trace,
    gpu_name: str,
    instances: int,
    *,
    model: str = "Llama-3.1-8B",
    tp: int = 1,
    failure_rate_per_h: float = 0.0,
    mttr_h: float = 1.0,
    seed: int = 0,
):
    """Simulate a monolithic fleet whose instances fail and recover (rates per instance-hour).

    Each instance fails at ``tp x failure_rate_per_h`` (any of its GPUs) and is repaired after an exponential
    time of mean ``mttr_h``; failures stop at the last arrival. Requests that find every instance down wait
    for the first repair (a load balancer that retries). Returns the
    :class:`~workbench.sim.result.SimResult` (``counters["failures"]``, ``counters["retried"]``).
    """
    from workbench.sim.engine import PRIO_CONTROL

    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    reqs = trace.requests if hasattr(trace, "requests") else trace
    horizon = float(reqs["arrival_s"].max())
    events = failure_schedule(instances, tp * failure_rate_per_h / 3600.0, mttr_h * 3600.0, horizon, rng)

    def inject(sim, ctl) -> None:
        sim.hold_unroutable = True  # requests wait for a repair when every instance is down

        def fail(arg: tuple[int, float], now: float) -> None:
            sim.fail_instance(sim.instances[arg[0]], arg[1])

        for t, i, d in events:
            sim.engine.schedule(t, PRIO_CONTROL, fail, (i, d))

    return simulate_fleet(trace, gpu(gpu_name).name, model, tp, instances, failures=inject, seed=seed)


def failure_study(
    trace,
    slo: SLO,
    gpu_name: str,
    n_needed: int,
    *,
    model: str = "Llama-3.1-8B",
    tp: int = 1,
    failure_rate_per_h: float,
    mttr_h: float,
    target: float = 0.99,
    spares: int | None = None,
    usd_per_gpu_hr: float | None = None,
    warmup: float = 0.1,
    seed: int = 0,
) -> pl.DataFrame:
    """SLO and cost of a fleet without failures, with failures, and with failures plus spares (simulated).

    Parameters
    ----------
    trace
        Requests to replay (keep it small: a few hundred requests).
    slo
        Latency targets.
    gpu_name, n_needed, model, tp
        The fleet sized for the SLO without failures (``n_needed`` instances of ``tp`` GPUs).
    failure_rate_per_h, mttr_h
        Failures per GPU-hour and mean repair time (hours); use accelerated rates for short traces.
    target
        Probability target of :func:`spares_needed` (the spares used when ``spares`` is ``None``).
    usd_per_gpu_hr
        Price of a GPU-hour (default: the GPU table's cloud rate).

    Returns
    -------
    polars.DataFrame
        ``scenario``, ``instances``, ``gpus``, ``spares``, ``availability``, ``p_slo`` (binomial), ``failures``,
        ``retried``, ``rejected``, ``ttft_p99_s``, ``tpot_p99_s``, ``slo_met``, ``usd_per_hour``.
    """
    from workbench.planning.check import measure

    avail = availability(failure_rate_per_h, mttr_h, tp=tp)
    s = spares_needed(n_needed, avail, target) if spares is None else int(spares)
    price = gpu_hour_price(gpu_name) if usd_per_gpu_hr is None else float(usd_per_gpu_hr)
    reqs = trace.requests if hasattr(trace, "requests") else trace
    cut = reqs["arrival_s"].quantile(warmup, "lower")
    rows = []
    for name, n, rate in (
        ("no failures", n_needed, 0.0),
        ("failures", n_needed, failure_rate_per_h),
        (f"failures + {s} spare(s)", n_needed + s, failure_rate_per_h),
    ):
        res = simulate_with_failures(
            trace, gpu_name, n, model=model, tp=tp, failure_rate_per_h=rate, mttr_h=mttr_h, seed=seed
        )
        m = measure(res.requests.filter(pl.col("arrival_s") >= cut), slo)
        rows.append(
            {
                "scenario": name,
                "instances": n,
                "gpus": n * tp,
                "spares": n - n_needed,
                "availability": avail if rate > 0 else 1.0,
                "p_slo": float(prob_enough(n_needed, n, avail)) if rate > 0 else 1.0,
                "failures": int(res.counters.get("failures", 0)),
                "retried": int(res.counters.get("retried", 0)),
                "rejected": int(m["rejected"]),
                "ttft_p99_s": m["ttft_p99_s"],
                "tpot_p99_s": m["tpot_p99_s"],
                "slo_met": bool(m["met"]),
                "usd_per_hour": n * tp * price,
            }
        )
    return pl.DataFrame(rows)
