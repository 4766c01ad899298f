"""Shared pieces of the what-if tools.

The error type, SLO capacity per instance, clocked performance models and the fleet-simulation runner with a
batch cap, a clock and injected failures.

Capacity at the SLO comes from the planning screen (:mod:`workbench.planning.screen`): for each GPU type the
largest arrival rate a fleet of ``instances`` instances serves while the predicted P99 latencies meet the SLO
(bisection on the rate, vectorised over GPU types).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import polars as pl

from workbench.config import require_int, require_range
from workbench.errors import ConfigError
from workbench.hardware import gpu, min_tensor_parallel
from workbench.hardware.perf import clocked
from workbench.planning import SLO, Candidate, Workload
from workbench.planning import screen as _screen
from workbench.power.dvfs import busy_power_at_clock
from workbench.sim.measure import Precision, Verdict


class WhatIfError(ConfigError):
    """A what-if question that has no answer (budget, power cap, cut or failure rate beyond a limit).

    The message names the limit and the numbers.
    """


def resolve_tp(gpu_name: str, model: str, tp: int | None) -> int:
    """``tp`` or the smallest tensor-parallel degree at which ``model`` fits on ``gpu_name``."""
    if tp is None:
        return min_tensor_parallel(gpu_name, model)
    return require_int(f"tp for {gpu_name}", tp)


def resolve_tps(names: Sequence[str], model: str, tp: int | Mapping[str, int] | None) -> list[int]:
    """Return the tensor-parallel degree of each canonical GPU name in ``names``.

    ``tp`` is one degree for all, a ``{gpu: tp}`` mapping or ``None`` (the smallest that fits).

    Mapping keys go through the GPU catalog (``"H100"`` means ``"H100-SXM"``); a key that is not a known GPU,
    or a GPU that is not in ``names``, raises instead of being ignored, as do two keys naming one GPU.
    """
    if not isinstance(tp, Mapping):
        return [resolve_tp(g, model, tp) for g in names]
    by_name: dict[str, int] = {}
    for key, value in tp.items():
        try:
            name = gpu(key).name
        except ConfigError as exc:
            raise ConfigError(f"tp key {key!r}: {exc}") from None
        if name not in names:
            raise ConfigError(f"tp key {key!r} ({name}) is not one of the GPUs compared: {', '.join(names)}")
        if name in by_name and by_name[name] != value:
            raise ConfigError(f"tp names {name} twice with different degrees ({by_name[name]} and {value})")
        by_name[name] = value
    return [resolve_tp(g, model, by_name.get(g)) for g in names]


def _problems_at(probs: _screen.PoolProblems, base_lam: np.ndarray, rate: np.ndarray):
    return dataclasses.replace(probs, lam=base_lam * rate)


def capacity_at_slo(
    wl: Workload,
    slo: SLO,
    gpus: Sequence[str],
    *,
    model: str = "Llama-3.1-8B",
    tp: int | Mapping[str, int] | None = None,
    instances: int = 1,
    max_num_seqs: int = 256,
    clock: float = 1.0,
    rel_tol: float = 1e-3,
    perf: str = "roofline",
) -> pl.DataFrame:
    """Largest request rate per instance at which ``instances`` instances meet ``slo`` (analytic screen).

    Parameters
    ----------
    wl
        The workload: its length sample and arrival burstiness (its own rate is ignored).
    slo
        Latency targets.
    gpus
        GPU types.
    model
        Model served.
    tp
        Tensor-parallel degree (one for all, a {gpu: tp} mapping keyed by any catalog name or alias, or
        ``None``: the smallest that fits).
    instances
        Fleet size the capacity is measured at (pooling makes larger fleets slightly more efficient).
    max_num_seqs, clock
        Batch cap and clock fraction of every instance.
    rel_tol
        Relative precision of the bisection on the rate.
    perf
        Performance model by name (``"roofline"`` or ``"calibrated:<name>"``;
        :func:`workbench.hardware.performance_model`): GPUs a calibration was not measured on are not usable.

    Returns
    -------
    polars.DataFrame
        One row per GPU: ``gpu``, ``tp``, ``capacity_instances`` (the fleet size measured at),
        ``gpus_per_node``, ``requests_per_s`` and ``tokens_per_s`` (output tokens) per instance, ``batch`` and
        ``busy`` (mean running batch and busy share at that rate),
        ``busy_w`` and ``idle_w`` (per GPU at that batch and clock), ``usable`` (the SLO can be met at all).
    """
    if not gpus:
        raise ConfigError("gpus is empty: give at least one GPU type")
    instances = require_int("instances", instances)
    names = [gpu(g).name for g in gpus]
    tps = resolve_tps(names, model, tp)
    cands = [Candidate(g, t, max_num_seqs=max_num_seqs, clock=clock) for g, t in zip(names, tps, strict=True)]
    unit = dataclasses.replace(wl, qps=1.0)
    probs, first, _, _ = _screen.build_problems(unit, slo, cands, model, _screen.perf_factory(perf))
    base = probs.lam.copy()
    q = slo.quantile
    n = np.full(base.size, float(instances))
    lo = np.zeros(base.size)
    hi = np.full(base.size, 0.05)
    grow = np.ones(base.size, bool)
    for _ in range(40):  # double until infeasible
        ok = _problems_at(probs, base, hi).feasible(n, q)
        grow = ok & (hi < 1e6)
        if not grow.any():
            break
        lo = np.where(grow, hi, lo)
        hi = np.where(grow, hi * 2, hi)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        ok = _problems_at(probs, base, mid).feasible(n, q)
        lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid)
        if np.all(hi - lo <= rel_tol * np.maximum(hi, 1e-9)):
            break
    pred = _problems_at(probs, base, np.maximum(lo, 1e-9)).predict(n, q)
    rate = lo[first] / instances
    usable = rate > 0
    mean_out = float(wl.output.mean())
    from workbench.planning.costs import power_params

    busy_w, idle_w = [], []
    for g, t, b, u in zip(names, tps, pred["batch"][first], pred["util"][first], strict=True):
        curve, idle = power_params(g, model, t)
        p = float(busy_power_at_clock(curve(float(b) / max(float(u), 1e-9)), idle, clock))
        busy_w.append(max(p, idle))
        idle_w.append(idle)
    return pl.DataFrame(
        {
            "gpu": names,
            "tp": tps,
            "capacity_instances": [int(instances)] * len(names),
            "gpus_per_node": [gpu(g).gpus_per_node for g in names],
            "requests_per_s": rate,
            "tokens_per_s": rate * mean_out,
            "batch": np.where(usable, pred["batch"][first], 0.0),
            "busy": np.where(usable, pred["util"][first], 0.0),
            "busy_w": busy_w,
            "idle_w": idle_w,
            "usable": usable,
        }
    )


def capacity_measure(
    wl: Workload,
    slo: SLO,
    *,
    model: str = "Llama-3.1-8B",
    max_num_seqs: int = 256,
    clock: float = 1.0,
    perf: str = "roofline",
) -> Callable[[str, int, int], dict]:
    """Return a cached ``measure(gpu, tp, instances)`` of the screen's capacity.

    ``measure`` gives the :func:`capacity_at_slo` row of one GPU type at a fleet of ``instances`` instances:
    what :func:`~workbench.whatif.plan` uses to re-measure capacity at the fleet size it chooses.

    Parameters
    ----------
    wl, slo
        Workload and SLO, as :func:`capacity_at_slo` takes them.
    model
        Model served.
    max_num_seqs, clock
        Batch cap and clock fraction of every instance.
    perf
        Performance model by name, as :func:`capacity_at_slo` takes it.

    Returns
    -------
    callable
        ``measure(gpu, tp, instances) -> dict``: one capacity row, computed once per fleet (catalog GPU name,
        ``tp``, ``instances``) and then cached.
    """

    def measure(gpu_name: str, tp: int, instances: int) -> dict:
        return capacity_at_slo(
            wl, slo, [gpu_name], model=model, tp=tp, instances=instances, max_num_seqs=max_num_seqs,
            clock=clock, perf=perf,
        ).row(0, named=True)  # fmt: skip

    return _per_fleet(measure)


def _per_fleet(measure: Callable[[str, int, int], dict]) -> Callable[[str, int, int], dict]:
    """``measure(gpu, tp, instances)`` called once per fleet (catalog GPU name, tp, instances), then cached."""
    cache: dict[tuple[str, int, int], dict] = {}

    def cached(gpu_name: str, tp: int, instances: int) -> dict:
        key = (gpu(gpu_name).name, int(tp), int(instances))
        if key not in cache:
            cache[key] = measure(*key)
        return cache[key]

    return cached


#: Ratio by which :func:`kernel_capacity` steps the rate while it brackets the largest rate that meets.
RATE_STEP = 1.25


def kernel_capacity(
    wl: Workload,
    slo: SLO,
    *,
    model: str = "Llama-3.1-8B",
    max_num_seqs: int = 256,
    clock: float = 1.0,
    perf: str = "roofline",
    seed: int = 0,
    precision: Precision | None = None,
    rel_tol: float = 0.05,
) -> Callable[[str, int, int], dict]:
    """Return a cached ``measure(gpu, tp, instances)`` whose capacity comes from the measurement kernel.

    The screen's row (:func:`capacity_measure`) gives the starting rate; the fleet of ``instances`` instances
    is then judged by :func:`measure_fleet` on fresh draws of ``wl`` at each rate tried: the rate steps by
    :data:`RATE_STEP` until one verdict meets and a higher one does not, then is bisected until the two are
    within ``rel_tol``. The row's ``requests_per_s`` and ``tokens_per_s`` become the largest rate that
    *meets* (an undecided or unstable verdict counts as not meeting), per instance; ``capacity_from`` says
    ``"kernel"``, and ``verdict`` and ``ttft_p99_*`` / ``tpot_p99_*`` are those of the verdict at that rate.
    Power (``busy_w``, ``batch``, ``busy``) stays the screen's at its own rate.

    Parameters
    ----------
    wl
        The workload (its own rate is rescaled to every rate tried).
    slo
        Latency targets (fleet-level).
    model, max_num_seqs, clock, perf
        As for :func:`capacity_at_slo` (``perf``: the performance model by name, simulated too).
    seed, precision
        Seed and precision of every verdict (:class:`~workbench.sim.measure.Precision`).
    rel_tol
        Relative width of the final rate bracket.

    Returns
    -------
    Callable
        ``measure(gpu, tp, instances) -> dict`` (cached per argument triple).
    """
    from workbench.planning.check import verdict_columns
    from workbench.sim.measure import request_source

    require_range("rel_tol", rel_tol, 1e-3, 0.5)
    screen_row = capacity_measure(wl, slo, model=model, max_num_seqs=max_num_seqs, clock=clock, perf=perf)
    source = request_source(wl)
    mean_out = float(wl.output.mean())

    def measure(gpu_name: str, tp: int, instances: int) -> dict:
        row = {**screen_row(gpu_name, tp, instances), "capacity_from": "kernel"}
        verdicts: dict[float, Verdict] = {}

        def meets(rate: float) -> bool:
            if rate not in verdicts:
                verdicts[rate] = measure_fleet(
                    source.rescaled(rate / wl.qps), slo, gpu_name, model, tp, instances,
                    max_num_seqs=max_num_seqs, clock=clock, seed=seed, precision=precision, perf=perf,
                )  # fmt: skip
            return verdicts[rate].meets

        start = row["requests_per_s"] * instances if row["usable"] else wl.qps / instances
        lo = hi = None
        rate = start
        for _ in range(12):  # bracket: one rate that meets, one above it that does not
            if meets(rate):
                lo = rate
                if hi is not None:
                    break
                rate *= RATE_STEP
            else:
                hi = rate
                if lo is not None:
                    break
                rate /= RATE_STEP
        while lo is not None and hi is not None and hi / lo - 1 > rel_tol:
            mid = math.sqrt(lo * hi)
            lo, hi = (mid, hi) if meets(mid) else (lo, mid)
        if lo is None:  # no rate tried meets: the SLO is out of reach for this fleet
            lowest = verdicts[min(verdicts)]
            row.update(requests_per_s=0.0, tokens_per_s=0.0, usable=False, **verdict_columns(lowest, slo))
        else:
            row.update(requests_per_s=lo / instances, tokens_per_s=lo / instances * mean_out,
                       **verdict_columns(verdicts[lo], slo))  # fmt: skip
        row["verdicts"] = len(verdicts)
        return row

    return _per_fleet(measure)


def simulate_fleet(
    trace,
    gpu_name: str,
    model: str,
    tp: int,
    instances: int,
    *,
    max_num_seqs: int = 256,
    clock: float = 1.0,
    failures: Callable | None = None,
    seed: int = 0,
    perf: str = "roofline",
    progress: bool | None = None,
):
    """Simulate a monolithic pool (JSQ router) with a batch cap, a clock and optional failure injection.

    ``failures(sim, controller)`` is called before the run (see :func:`workbench.sim.fleet.simulate`'s
    ``setup`` hook) to schedule ``sim.fail_instance`` events. ``perf`` names the performance model
    (:func:`workbench.hardware.performance_model`); ``progress`` as for that function (the measurement kernel's
    runs pass ``False``: one verdict is many runs).
    """
    from workbench.hardware import token_budget
    from workbench.sim.config import SchedulerConfig
    from workbench.sim.fleet import simulate
    from workbench.sim.topology import Fleet, Pool

    sched = SchedulerConfig(max_num_seqs=max_num_seqs, max_num_batched_tokens=token_budget(perf, max_num_seqs))
    main = Pool("main", gpu=gpu_name, model=model, tp=tp, instances=instances, scheduler=sched, perf=perf)
    fleet = Fleet(pools=(main,))

    def setup(sim, ctl) -> None:
        if clock != 1.0:
            for inst in sim.instances:
                inst.perf = clocked(inst.perf, clock)
        if failures is not None:
            failures(sim, ctl)

    return simulate(trace, fleet, seed=seed, setup=setup, progress=progress)


def measure_fleet(
    workload,
    slo: SLO,
    gpu_name: str,
    model: str,
    tp: int,
    instances: int,
    *,
    max_num_seqs: int = 256,
    clock: float = 1.0,
    seed: int = 0,
    precision: Precision | None = None,
    simulate: Callable | None = None,
    perf: str = "roofline",
) -> Verdict:
    """Return the measurement kernel's verdict for a monolithic pool with a batch cap and a clock.

    ``workload`` is anything :func:`workbench.sim.measure.request_source` takes (a prepared
    :class:`~workbench.planning.Workload`, a trace, a generator). ``simulate(trace, seed)`` replaces the plain
    :func:`simulate_fleet` run (e.g. with failures injected).
    """
    from workbench.sim.measure import measure, request_source, slo_targets, trace_runner

    def plain(trace, s: int):
        return simulate_fleet(
            trace, gpu_name, model, tp, instances, max_num_seqs=max_num_seqs, clock=clock, seed=s, perf=perf,
            progress=False,
        )  # fmt: skip

    good = slo if slo.goodput is not None else None
    run = trace_runner(request_source(workload), simulate or plain, good=good)
    return measure(run, slo_targets(slo), seed=seed, precision=precision)
