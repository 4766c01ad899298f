"""Reliability margin of a fleet.

Availability from failure rates and repair times, the spare instances that keep the SLO with a given
probability, and failure injection in the fleet simulator.

An instance of ``tp`` GPUs in one node is up when all its GPUs and its node are up. With independent
failures (rate ``lambda`` per hour) and repairs (mean ``MTTR`` hours), each part is up a share
``A = 1 / (1 + lambda x MTTR)`` of the time (MTBF / (MTBF + MTTR)), so ``A_instance = A_gpu^tp x A_node``.
A fleet that needs ``n`` instances up to meet the SLO and runs ``n + s`` meets it with probability
``P(Binomial(n + s, A_instance) >= n)``; :func:`spares_needed` finds the smallest ``s`` reaching a target.

:func:`failure_study` checks the margin by simulation: GPUs and nodes fail as Poisson processes and come back
after exponential repair times (``Simulation.fail_instance``; a node failure takes all its instances down);
the requests a failed instance was running restart on the others (``interrupted``) and its queue moves
(``requeued``), and the SLO and cost of the fleet with and without spares are compared, each scenario judged
by the measurement kernel (:mod:`workbench.sim.measure`: steady-state verdict with CIs, the run as long as
the verdict needs). With node failures,
instances of one node go down together, so :func:`prob_enough` convolves per-node outcomes instead of using
the binomial.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
from scipy.stats import binom

from workbench.config import require_int, require_positive, require_range
from workbench.hardware import gpu
from workbench.planning import SLO
from workbench.seeds import Streams
from workbench.sim.measure import Precision
from workbench.tco import CostBasis, gpu_hour_usd
from workbench.whatif._common import WhatIfError, measure_fleet, simulate_fleet

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

    Returns
    -------
    float
        The availability, in (0, 1].

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
    tp = require_int("tp", tp)
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


def prob_enough(
    n_needed: int, n_total: int | np.ndarray, avail: float, *, node_avail: float = 1.0, per_node: int = 1
) -> np.ndarray:
    """Return ``P(at least n_needed of n_total instances are up)``.

    With ``node_avail = 1``: instances up independently with availability ``avail``. Otherwise instances sit
    ``per_node`` to a node (filled in order, the last one partial): a node is up with ``node_avail`` and each
    instance of an up node with ``avail`` (its GPU part), so a node failure takes its instances down together
    -- fewer, larger outages than the independent model with ``avail x node_avail``.

    Parameters
    ----------
    n_needed
        Instances the load needs.
    n_total
        Instances deployed: one count or an array of counts.
    avail
        Availability of one instance's GPUs (:func:`availability`).
    node_avail, per_node
        Availability of a node and instances per node.

    Returns
    -------
    numpy.ndarray
        The probability for each count of ``n_total`` (its shape).
    """
    totals = np.asarray(n_total)
    if node_avail >= 1.0:
        return binom.sf(n_needed - 1, totals, avail)
    flat = np.atleast_1d(totals).astype(np.int64)
    order = np.argsort(flat)
    out = np.empty(flat.size)
    node_pmf = _node_pmf(per_node, avail, node_avail)
    base, full = np.ones(1), 0  # pmf of the up count of `full` whole nodes
    for j in order:
        t = int(flat[j])
        while full < t // per_node:
            base, full = np.convolve(base, node_pmf), full + 1
        pmf = np.convolve(base, _node_pmf(t % per_node, avail, node_avail))
        out[j] = float(pmf[n_needed:].sum()) if n_needed < pmf.size else 0.0
    return out.reshape(totals.shape) if totals.ndim else out[0]


def _node_pmf(k: int, avail: float, node_avail: float) -> np.ndarray:
    """Pmf of the up instances of one node holding ``k`` instances."""
    pmf = node_avail * binom.pmf(np.arange(k + 1), k, avail)
    pmf[0] += 1.0 - node_avail
    return pmf


def spares_needed(
    n_needed: int, avail: float, target: float = 0.99, *, node_avail: float = 1.0, per_node: int = 1
) -> int:
    """Return the fewest spare instances that keep enough instances up with probability ``target``.

    That is the smallest ``s`` with ``P(at least n_needed of n_needed + s instances up) >= target``
    (:func:`prob_enough`).

    Parameters
    ----------
    n_needed
        Instances the load needs.
    avail
        Availability of one instance's GPUs (:func:`availability`).
    target
        Probability to reach.
    node_avail, per_node
        Availability of a node and instances per node (node failures take down all its instances).

    Returns
    -------
    int
        The spare count ``s``.

    Raises
    ------
    WhatIfError
        When more than :data:`MAX_INSTANCES` instances would be needed.
    """
    n_needed = require_int("n_needed", n_needed)
    require_range("target", target, 0.0, 0.999999999)
    require_range("availability", avail, 1e-12, 1.0)
    require_range("node_avail", node_avail, 1e-12, 1.0)
    per_node = require_int("per_node", per_node)
    if avail >= 1.0 and node_avail >= 1.0:
        return 0
    # the mean up count must exceed n_needed: scan upwards in blocks
    lo, step = n_needed, 4096 if node_avail >= 1.0 else 64
    while lo <= MAX_INSTANCES:
        block = np.arange(lo, min(lo + step, MAX_INSTANCES + 1))
        p = prob_enough(n_needed, block, avail, node_avail=node_avail, per_node=per_node)
        ok = np.flatnonzero(p >= target)
        if ok.size:
            return int(block[ok[0]] - n_needed)
        lo = int(block[-1]) + 1
    raise WhatIfError(
        f"{n_needed} instances up with probability {target:g} at availability {avail * node_avail:.4g} need "
        f"more than {MAX_INSTANCES:,} instances in total (limit MAX_INSTANCES)"
    )


def margin_table(
    n_needed: int,
    avail: float,
    *,
    target: float = 0.99,
    tp: int = 1,
    usd_per_gpu_hr: float = math.nan,
    extra: int = 2,
    node_avail: float = 1.0,
    per_node: int = 1,
) -> pl.DataFrame:
    """Probability of meeting the SLO and cost for 0 .. (needed spares + ``extra``) spares.

    ``node_avail`` and ``per_node`` model correlated node outages (:func:`prob_enough`).

    Parameters
    ----------
    n_needed
        Instances the load needs.
    avail
        Availability of one instance's GPUs (:func:`availability`).
    target
        Probability of meeting the SLO to reach (``meets_target``).
    tp
        GPUs per instance.
    usd_per_gpu_hr
        Price of a GPU-hour (NaN: ``usd_per_hour`` is NaN).
    extra
        Spare counts to show beyond the needed ones.
    node_avail, per_node
        Availability of a node and instances per node.

    Returns
    -------
    polars.DataFrame
        One row per spare count: ``spares``, ``instances``, ``gpus`` (instances x tp), ``p_slo``,
        ``meets_target``, ``usd_per_hour`` (every GPU of every instance, spares included),
        ``extra_cost_share``.
    """
    s_star = spares_needed(n_needed, avail, target, node_avail=node_avail, per_node=per_node)
    spares = np.arange(0, s_star + extra + 1)
    total = n_needed + spares
    p = prob_enough(n_needed, total, avail, node_avail=node_avail, per_node=per_node)
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
    """Alternating up (exponential, mean ``1 / rate``) and repair (exponential) periods per unit.

    Returns sorted ``(fail_time_s, unit, repair_s)`` for failures before ``horizon_s``.
    """
    events: list[tuple[float, int, float]] = []
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


def down_periods(
    gpu_events: list[tuple[float, int, float]],
    node_events: list[tuple[float, int, float]],
    instances_per_node: int,
) -> list[tuple[float, int, float, str]]:
    """Merge instance (GPU) and node down periods into one list of down periods per instance.

    A node failure takes down every instance of the node (instance ``i`` is on node
    ``i // instances_per_node``); overlapping periods of one instance merge into one (it is back when both
    repairs are done). Returns sorted ``(start_s, instance, duration_s, cause)`` with cause ``"gpu"``,
    ``"node"`` or ``"gpu+node"``.
    """
    spans: dict[int, list[tuple[float, float, str]]] = {}
    for t, i, d in gpu_events:
        spans.setdefault(i, []).append((t, t + d, "gpu"))
    for t, node, d in node_events:
        for i in range(node * instances_per_node, (node + 1) * instances_per_node):
            spans.setdefault(i, []).append((t, t + d, "node"))
    out = []
    for i, items in spans.items():
        items.sort()
        start, end, causes = items[0][0], items[0][1], {items[0][2]}
        for s0, e0, c0 in items[1:]:
            if s0 <= end:
                end, causes = max(end, e0), causes | {c0}
            else:
                out.append((start, i, end - start, "+".join(sorted(causes))))
                start, end, causes = s0, e0, {c0}
        out.append((start, i, end - start, "+".join(sorted(causes))))
    return sorted(out)


def _node_size(gpu_name: str, tp: int, gpus_per_node: int | None) -> int:
    """GPUs per node (the GPU table's by default), checked to hold at least one ``tp``-GPU instance."""
    gpn = require_int("gpus_per_node", gpu(gpu_name).gpus_per_node if gpus_per_node is None else gpus_per_node)
    if gpn < tp:
        raise WhatIfError(f"gpus_per_node must be an integer >= tp = {tp}, got {gpn!r}")
    return gpn


def simulate_with_failures(
    trace,
    gpu_name: str,
    instances: int,
    *,
    model: str = "Llama-3.1-8B",
    tp: int = 1,
    failure_rate_per_h: float = 0.0,
    mttr_h: float = 1.0,
    node_failure_rate_per_h: float = 0.0,
    node_mttr_h: float | None = None,
    gpus_per_node: int | None = None,
    seed: int = 0,
    progress: bool | None = None,
):
    """Simulate a monolithic fleet whose GPUs and nodes fail and recover.

    Each instance fails at ``tp x failure_rate_per_h`` (any of its GPUs) and is repaired after an exponential
    time of mean ``mttr_h``; each node (``gpus_per_node // tp`` instances, from the GPU table by default)
    fails at ``node_failure_rate_per_h`` and takes all its instances down for an exponential repair of mean
    ``node_mttr_h`` (default ``mttr_h``). Overlapping down periods of an instance merge (:func:`down_periods`).
    Failures stop at the last arrival. Requests that find every instance down wait for the first repair (a
    load balancer that retries).

    Parameters
    ----------
    trace
        Requests to serve.
    gpu_name, instances
        GPU type and instance count of the fleet.
    model, tp
        Model served and GPUs per instance.
    failure_rate_per_h, mttr_h
        Failures per GPU-hour and mean time to repair (hours).
    node_failure_rate_per_h, node_mttr_h
        Node failures per hour and their mean repair time (default ``mttr_h``).
    gpus_per_node
        GPUs per node (default: the GPU table's).
    seed
        Seed of the failure schedule and of the simulation.
    progress
        Progress bar of the simulation (``None``: when interactive).

    Returns
    -------
    SimResult
        With ``counters``: ``failures`` (down periods), ``retried`` (the simulator's count of requests moved
        off failed instances: ``interrupted + requeued``), ``interrupted`` (running requests restarted
        elsewhere), ``requeued`` (waiting requests moved, no work lost), ``node_failures`` (node down
        periods) and ``repairs`` (instances back up: the simulator's ``cold_starts``, there being no
        autoscaler here).
    """
    from workbench.sim.engine import PRIO_CONTROL

    require_positive("node_failure_rate_per_h", node_failure_rate_per_h, allow_zero=True)
    node_mttr_h = mttr_h if node_mttr_h is None else node_mttr_h
    require_positive("node_mttr_h", node_mttr_h, allow_zero=True)
    tp, instances = require_int("tp", tp), require_int("instances", instances)
    per_node = _node_size(gpu_name, tp, gpus_per_node) // tp
    seq = Streams(seed).sequence("failures/schedule")
    rng = np.random.default_rng(seq)
    node_rng = np.random.default_rng(seq.spawn(1)[0])
    reqs = trace.requests if hasattr(trace, "requests") else trace
    horizon = float(reqs["arrival_s"].max())
    gpu_events = failure_schedule(instances, tp * failure_rate_per_h / 3600.0, mttr_h * 3600.0, horizon, rng)
    nodes = -(-instances // per_node)
    node_events = failure_schedule(
        nodes, node_failure_rate_per_h / 3600.0, node_mttr_h * 3600.0, horizon, node_rng
    )
    events = down_periods(gpu_events, node_events, per_node)
    events = [e for e in events if e[1] < instances]
    extra = {"interrupted": 0, "requeued": 0, "node_failures": len(node_events)}

    def inject(sim, ctl) -> None:
        sim.hold_unroutable = True  # requests wait for a repair when every instance is down

        def fail(arg: tuple[int, float], now: float) -> None:
            inst = sim.instances[arg[0]]
            extra["interrupted"] += len(inst.running)
            extra["requeued"] += len(inst.waiting)
            sim.fail_instance(inst, repair_s=arg[1])

        for t, i, d, _cause in events:
            sim.engine.schedule(t, PRIO_CONTROL, fail, (i, d))

    res = simulate_fleet(
        trace, gpu(gpu_name).name, model, tp, instances, failures=inject, seed=seed, progress=progress
    )
    res.counters.update(extra, repairs=res.counters["cold_starts"])  # no autoscaler: every start is a repair
    return res


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
    node_failure_rate_per_h: float = 0.0,
    node_mttr_h: float | None = None,
    gpus_per_node: int | None = None,
    target: float = 0.99,
    spares: int | None = None,
    usd_per_gpu_hr: float | None = None,
    seed: int = 0,
    precision: Precision | None = None,
) -> pl.DataFrame:
    """SLO and cost of a fleet without failures, with failures, and with failures plus spares (kernel verdicts).

    Parameters
    ----------
    trace
        The workload: a generator or prepared :class:`~workbench.planning.Workload` (the kernel draws as many
        requests as each verdict needs) or a trace (finite: a verdict that needs more is "undecided").
    slo
        Latency targets.
    gpu_name, n_needed, model, tp
        The fleet sized for the SLO without failures (``n_needed`` instances of ``tp`` GPUs).
    failure_rate_per_h, mttr_h
        Failures per GPU-hour and mean repair time (hours); use accelerated rates for short traces.
    node_failure_rate_per_h, node_mttr_h, gpus_per_node
        Node failures (each takes the node's ``gpus_per_node // tp`` instances down together; repair defaults
        to ``mttr_h``, node size to the GPU table's).
    target
        Probability target of :func:`spares_needed` (the spares used when ``spares`` is ``None``).
    usd_per_gpu_hr
        Price of a GPU-hour (default: the GPU table's cloud rate).
    seed, precision
        The kernel's seed and precision (:class:`~workbench.sim.measure.Precision`).

    Returns
    -------
    polars.DataFrame
        ``scenario``, ``instances``, ``gpus``, ``spares``, ``availability`` (of one instance, node included),
        ``p_slo`` (:func:`prob_enough`, node outages correlated), then from the kernel's deciding run:
        ``failures`` (instance down periods), ``node_failures``, ``interrupted`` (running requests restarted
        on another instance), ``requeued`` (waiting requests moved to another instance; the simulator's
        ``retried`` counter is the sum), ``repairs`` (instances back up), ``rejected``; and the verdict:
        ``verdict``, ``ttft_p99_s`` and ``tpot_p99_s`` with their 95 % CIs (``_lo``/``_hi``), ``slo_met``
        (``verdict == "meets"``), ``requests`` (simulated for the verdict), ``usd_per_hour``.
    """
    from workbench.planning.check import verdict_columns

    tp, n_needed = require_int("tp", tp), require_int("n_needed", n_needed)
    gpn = _node_size(gpu_name, tp, gpus_per_node)
    if spares is not None:
        spares = require_int("spares", spares, low=0)
    a_gpu = availability(failure_rate_per_h, mttr_h, tp=tp)
    a_node = availability(0.0, 0.0, node_failure_rate_per_h=node_failure_rate_per_h,
                          node_mttr_h=mttr_h if node_mttr_h is None else node_mttr_h)  # fmt: skip
    per_node = gpn // tp
    if spares is None:
        spares = spares_needed(n_needed, a_gpu, target, node_avail=a_node, per_node=per_node)
    s = spares
    price = gpu_hour_usd(gpu_name, CostBasis(), model, tp) if usd_per_gpu_hr is None else float(usd_per_gpu_hr)
    rows = []
    for name, n, on in (
        ("no failures", n_needed, False),
        ("failures", n_needed, True),
        (f"failures + {s} spare(s)", n_needed + s, True),
    ):

        def simulate(t, sd: int, n: int = n, on: bool = on):
            return simulate_with_failures(
                t, gpu_name, n, model=model, tp=tp, failure_rate_per_h=failure_rate_per_h if on else 0.0,
                mttr_h=mttr_h, node_failure_rate_per_h=node_failure_rate_per_h if on else 0.0,
                node_mttr_h=node_mttr_h, gpus_per_node=gpn, seed=sd, progress=False,
            )  # fmt: skip

        v = measure_fleet(trace, slo, gpu_name, model, tp, n, seed=seed, precision=precision, simulate=simulate)
        c = v.result.counters
        cols = verdict_columns(v, slo)
        rows.append(
            {
                "scenario": name,
                "instances": n,
                "gpus": n * tp,
                "spares": n - n_needed,
                "availability": a_gpu * a_node if on else 1.0,
                "p_slo": (
                    float(prob_enough(n_needed, n, a_gpu, node_avail=a_node, per_node=per_node)) if on else 1.0
                ),
                "failures": int(c.get("failures", 0)),
                "node_failures": int(c["node_failures"]),
                "interrupted": int(c["interrupted"]),
                "requeued": int(c["requeued"]),
                "repairs": int(c["repairs"]),
                "rejected": int(v.result.requests["rejected"].sum()),
                "verdict": v.status,
                **{k: cols[k] for k in ("ttft_p99_s", "ttft_p99_lo", "ttft_p99_hi")},
                **{k: cols[k] for k in ("tpot_p99_s", "tpot_p99_lo", "tpot_p99_hi")},
                "slo_met": v.meets,
                "requests": v.requests,
                "usd_per_hour": n * tp * price,
            }
        )
    return pl.DataFrame(rows)
