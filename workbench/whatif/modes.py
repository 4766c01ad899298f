"""Planning modes (Wattlytics, arXiv 2604.08182).

Size and rank fleets of several GPU types under one fixed quantity.

Modes
-----
``"budget"``
    The most whole nodes whose TCO (:func:`workbench.tco.tco_arrays`) is at most ``target`` USD.
``"power"``
    The most whole nodes whose facility power is at most ``target`` kW: ``PUE x (GPUs x P_busy + nodes x
    P_node) / 1000`` with ``P_busy`` the per-GPU power at the SLO operating batch (the power model of
    :mod:`workbench.power`, at the clock) and ``P_node`` the node baseline (CPUs, fans, NICs).
``"performance"``
    The fewest whole nodes whose work at the SLO reaches ``target`` (output tokens/s, or requests/s with
    ``unit="requests"``).
``"count"``
    Exactly ``target`` GPUs (in ``ceil(target / gpus_per_node)`` nodes; the last one may be partial).

Work of a fleet of ``n`` GPUs in ``m`` nodes running ``k`` instances of ``tp`` GPUs each (tensor parallelism
never crosses a node): ``k x c x eta`` with ``c`` the per-instance capacity at the SLO
(:func:`~workbench.whatif.capacity_at_slo`) and the multi-GPU efficiency
``eta = eta_node^(m - 1) x eta_gpu^(n - 1)`` (Wattlytics' form; 1 by default because data-parallel inference
replicas do not communicate).

Ranking metrics (one row per GPU type): ``tokens_per_s_per_musd`` (work per TCO), ``kw_per_musd`` (facility
power per TCO), ``tokens_per_j_per_musd`` (work per watt per TCO) and ``usd_per_mtok`` (TCO per million
output tokens served over the lifetime at ``utilisation`` of the capacity).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import polars as pl

from workbench.config import require_choice, require_int, require_positive, require_range
from workbench.errors import ConfigError, WorkbenchError
from workbench.hardware import gpu
from workbench.planning import SLO, Question, Workload
from workbench.planning.question import ask
from workbench.sim.measure import Precision
from workbench.tco import CostBasis, tco_arrays
from workbench.whatif._common import WhatIfError, capacity_at_slo, capacity_measure, kernel_capacity

MODES: tuple[str, ...] = ("budget", "power", "performance", "count")
#: Metric -> True when larger is better.
METRICS: dict[str, bool] = {
    "tokens_per_s": True,
    "requests_per_s": True,
    "tokens_per_s_per_musd": True,
    "kw_per_musd": False,
    "tokens_per_j_per_musd": True,
    "usd_per_mtok": False,
    "tco_usd": False,
    "facility_kw": False,
}
DEFAULT_RANK = {
    "budget": "tokens_per_s",
    "power": "tokens_per_s",
    "performance": "tco_usd",
    "count": "tokens_per_s_per_musd",
}
CAPACITY_COLUMNS = ("gpu", "tp", "gpus_per_node", "requests_per_s", "tokens_per_s", "busy_w", "idle_w")


@dataclass(frozen=True, slots=True)
class ModeCosts:
    """A cost basis with the multi-GPU efficiency of the planning modes.

    Every function taking ``costs`` also takes a bare :class:`~workbench.tco.CostBasis` (efficiency 1).

    Attributes
    ----------
    basis
        Prices, site, utilisation, lifetime (default: the default :class:`~workbench.tco.CostBasis`).
    eta_gpu, eta_node
        Multi-GPU efficiency factors in (0, 1].
    """

    basis: CostBasis = field(default_factory=CostBasis)
    eta_gpu: float = 1.0
    eta_node: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.basis, CostBasis):
            raise ConfigError(f"ModeCosts.basis must be a CostBasis, got {type(self.basis).__name__}")
        for name in ("eta_gpu", "eta_node"):
            require_positive(f"ModeCosts.{name}", getattr(self, name))
            require_range(f"ModeCosts.{name}", getattr(self, name), 0.0, 1.0)

    @classmethod
    def of(cls, costs: CostBasis | ModeCosts | None) -> ModeCosts:
        """``costs`` as :class:`ModeCosts` (a bare basis with efficiency 1; ``None``: the default)."""
        if costs is None:
            return cls()
        if isinstance(costs, CostBasis):
            return cls(costs)
        if not isinstance(costs, ModeCosts):
            raise ConfigError(f"costs must be a CostBasis or ModeCosts, got {type(costs).__name__}")
        return costs


def instances_in(n_gpus: np.ndarray, gpus_per_node: int, tp: int) -> np.ndarray:
    """Return the instances of ``tp`` GPUs that fit in ``n_gpus`` GPUs filling nodes of ``gpus_per_node``.

    Nodes are filled in order; a partial last node holds as many whole instances as fit. Vectorised over
    ``n_gpus`` (an integer array of the same shape is returned).
    """
    n = np.asarray(n_gpus, dtype=np.int64)
    return (n // gpus_per_node) * (gpus_per_node // tp) + (n % gpus_per_node) // tp


def efficiency(n_gpus: np.ndarray, nodes: np.ndarray, eta_gpu: float, eta_node: float) -> np.ndarray:
    """Return the multi-GPU efficiency ``eta_node^(nodes - 1) x eta_gpu^(n_gpus - 1)`` (1 for an empty fleet).

    Vectorised over ``n_gpus`` and ``nodes`` (broadcast together); ``eta_gpu`` and ``eta_node`` are the
    per-extra-GPU and per-extra-node factors of :class:`ModeCosts`.
    """
    n, m = np.asarray(n_gpus, float), np.asarray(nodes, float)
    return np.where(n > 0, eta_node ** np.maximum(m - 1, 0) * eta_gpu ** np.maximum(n - 1, 0), 1.0)


def fleet_metrics(cap: dict, costs: CostBasis | ModeCosts, n_gpus: np.ndarray) -> dict[str, np.ndarray]:
    """Return the work, power and TCO of fleets of ``n_gpus`` GPUs of one capacity row (vectorised).

    Parameters
    ----------
    cap
        One row of :func:`capacity_at_slo` (as a dict): GPU, ``tp``, ``gpus_per_node``, per-instance
        capacity and per-GPU power.
    costs
        Cost basis, with the multi-GPU efficiency factors when a :class:`ModeCosts`.
    n_gpus
        Fleet sizes in GPUs.

    Returns
    -------
    dict of str to numpy.ndarray
        One array per metric, shaped like ``n_gpus``: ``nodes``, ``gpus``, ``instances``, ``eta``,
        ``tokens_per_s``, ``requests_per_s``, ``it_kw``, ``facility_kw``, the costs and the ranking metrics
        (the columns :func:`plan` reports).
    """
    costs = ModeCosts.of(costs)
    gpn, tp = int(cap["gpus_per_node"]), int(cap["tp"])
    n = np.asarray(n_gpus, dtype=np.int64)
    nodes = -(-n // gpn)
    k = instances_in(n, gpn, tp)
    eta = efficiency(n, nodes, costs.eta_gpu, costs.eta_node)
    tok = k * float(cap["tokens_per_s"]) * eta
    req = k * float(cap["requests_per_s"]) * eta
    basis = costs.basis
    it_kw = (n * float(cap["busy_w"]) + nodes * basis.node_power_w) / 1000.0
    one = basis.tco_inputs(
        cap["gpu"], gpn, busy_w=float(cap["busy_w"]), idle_w=float(cap["idle_w"]), gpus_per_node=gpn
    )
    base = asdict(one)
    base.update(
        n_gpus=n.astype(float),
        n_nodes=nodes.astype(float),
        tokens_per_s_per_gpu=np.where(n > 0, tok / np.maximum(n, 1), 0.0),
        cloud_usd_per_gpu_hr=math.nan,
        cloud_elastic=0.0,
    )
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):  # tiny work at large eta losses
        t = tco_arrays(base)
    tco_usd = np.asarray(t["tco_usd"], float)
    musd = np.where(tco_usd > 0, tco_usd / 1e6, np.nan)
    fac_kw = it_kw * basis.facility_pue
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "nodes": nodes,
            "gpus": n,
            "instances": k,
            "eta": eta,
            "tokens_per_s": tok,
            "requests_per_s": req,
            "it_kw": it_kw,
            "facility_kw": fac_kw,
            "capex_usd": np.asarray(t["capex_usd"], float),
            "opex_usd": np.asarray(t["opex_usd"], float),
            "tco_usd": tco_usd,
            "usd_per_mtok": np.asarray(t["usd_per_mtok"], float),
            "tokens_per_s_per_musd": tok / musd,
            "kw_per_musd": fac_kw / musd,
            "tokens_per_j_per_musd": np.where(fac_kw > 0, tok / (fac_kw * 1000.0), np.nan) / musd,
        }


def _nodes_for(mode: str, target: float, cap: dict, costs: ModeCosts, unit: str) -> tuple[int, str]:
    """Node count (or GPU count for ``"count"``) of one GPU type under ``mode``; (0, reason) if none."""
    costs = ModeCosts.of(costs)
    gpn = int(cap["gpus_per_node"])
    if not float(cap["requests_per_s"]) > 0:
        if cap.get("capacity_from") == "kernel":
            targets = (("TTFT", "ttft_p99_s", 1.0, "s"), ("TPOT", "tpot_p99_s", 1e3, "ms"))
            seen = [f"P99 {n} {cap[c] * k:.3g} {u}" for n, c, k, u in targets if cap.get(c) is not None]
            return 0, (f"{cap['gpu']} meets the SLO at no rate the measurement kernel tried (at the lowest: "
                       f"{cap.get('verdict')}, {', '.join(seen)})")  # fmt: skip
        return 0, f"{cap['gpu']} cannot meet the SLO at any load (capacity 0)"
    one = fleet_metrics(cap, costs, np.array([gpn, 2 * gpn]))
    if mode == "budget":
        t1, slope = float(one["tco_usd"][0]), float(one["tco_usd"][1] - one["tco_usd"][0])
        if t1 > target:
            return 0, f"one node costs ${t1:,.0f} TCO > budget ${target:,.0f}"
        m = math.floor((target - t1) / slope + 1e-9) + 1
        while m > 1 and float(fleet_metrics(cap, costs, np.array([m * gpn]))["tco_usd"][0]) > target:
            m -= 1
        return m, ""
    if mode == "power":
        per_node = float(one["facility_kw"][0])
        if per_node > target:
            pue = costs.basis.facility_pue
            return 0, f"one node draws {per_node:,.2f} kW (facility, PUE {pue:g}) > cap {target:,.2f} kW"
        return math.floor(target / per_node + 1e-9), ""
    if mode == "performance":
        col = "tokens_per_s" if unit == "tokens" else "requests_per_s"
        per_node = float(one[col][0])
        lin = math.ceil(target / per_node)
        nodes = np.arange(1, 8 * lin + 9)
        work = fleet_metrics(cap, costs, nodes * gpn)[col]
        hit = np.flatnonzero(work >= target * (1 - 1e-12))
        if hit.size == 0:
            peak = f"{work.max():,.1f} {_UNIT[unit]}"
            return 0, f"work peaks at {peak} (multi-GPU efficiency) < target {target:,.1f}"
        return int(nodes[hit[0]]), ""
    # count
    if target != int(target):
        raise ConfigError(f"a GPU count must be a whole number, got target={target!r}")
    if target < int(cap["tp"]):
        return 0, f"{int(target)} GPUs < tp = {cap['tp']} of one instance"
    return int(target), ""


_UNIT = {"tokens": "output tokens/s", "requests": "requests/s"}
#: What each mode's target is called and its unit (a performance target's unit comes from ``unit``).
_TARGETS: dict[str, tuple[str, str | None]] = {
    "budget": ("budget", "USD (TCO)"),
    "power": ("power cap", "kW (facility)"),
    "performance": ("target", None),
    "count": ("GPU count", "GPUs"),
}


def target_unit(mode: str, unit: str = "tokens") -> str:
    """Return the unit of a mode's target (the ``target_unit`` column of :func:`plan`)."""
    return _TARGETS[mode][1] or _UNIT[unit]


def target_text(mode: str, target: float, label: str) -> str:
    """Return a mode's target as messages and chart titles write it.

    ``label`` is its :func:`target_unit`; e.g. ``$2,000,000 (TCO)``, ``50 kW (facility)``,
    ``100,000 output tokens/s``, ``64 GPUs``.
    """
    if mode == "budget":
        return f"${target:,.0f} {label.removeprefix('USD ')}"
    return f"{target:,.6g} {label}"


def _check_capacity(capacity: pl.DataFrame) -> pl.DataFrame:
    """Return the table with catalog GPU names; one clear error naming the row if it cannot describe a fleet."""
    names = []
    for i, row in enumerate(capacity.iter_rows(named=True)):
        where = f"capacity row {i} ({row['gpu']})"
        try:
            names.append(gpu(row["gpu"]).name)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        tp, gpn = row["tp"], row["gpus_per_node"]
        for name, value in (("tp", tp), ("gpus_per_node", gpn)):
            require_int(f"{where}: {name}", value)
        if tp > gpn:
            raise ConfigError(
                f"{where}: tp {tp} > gpus_per_node {gpn}; tensor parallelism never crosses a node, so no "
                "instance fits"
            )
        for name in ("requests_per_s", "tokens_per_s", "busy_w", "idle_w"):
            value = row[name]
            if value is None or not math.isfinite(value) or value < 0:
                raise ConfigError(f"{where}: {name} must be finite and >= 0, got {value!r}")
    return capacity.with_columns(pl.Series("gpu", names, pl.String))


#: Most capacity measurements :func:`refine_count` makes for one GPU type.
MAX_MEASUREMENTS = 64


class _Unsettled(Exception):
    """The measurement budget of :func:`refine_count` is spent."""


def refine_count(
    mode: str,
    target: float,
    cap: dict,
    costs: CostBasis | ModeCosts,
    unit: str,
    count: int,
    measure: Callable[[str, int, int], dict],
) -> tuple[int, dict, str]:
    """Re-size one GPU type's fleet on the capacity measured at the fleet's own instance count.

    Starting from ``count`` (nodes, or GPUs in ``"count"`` mode) sized on ``cap``: up to three fixed-point
    steps (re-size on the capacity measured at the current answer), then a local search for the tight answer
    with the capacity measured at each count tried -- the most nodes within the budget or power cap, the
    fewest reaching the performance target.

    Parameters
    ----------
    mode, target, unit
        The planning mode, its target and the performance unit, as :func:`plan` takes them.
    cap
        Capacity row the first answer was sized on.
    costs
        Cost basis (:class:`ModeCosts` or a :class:`~workbench.tco.CostBasis`).
    count
        The first answer: nodes, or GPUs in ``"count"`` mode.
    measure
        ``measure(gpu, tp, instances)``, the capacity row at a fleet size (:func:`capacity_measure`).

    Returns
    -------
    tuple of (int, dict, str)
        ``(count, capacity row used, note)``: ``count`` 0 with a note when none satisfies the mode or the
        search needs more than :data:`MAX_MEASUREMENTS` measurements.
    """
    costs = ModeCosts.of(costs)
    gpn, tp = int(cap["gpus_per_node"]), int(cap["tp"])
    per = 1 if mode == "count" else gpn
    col = {"budget": "tco_usd", "power": "facility_kw"}.get(mode, f"{unit}_per_s")
    seen: dict[int, dict] = {}

    def at(m: int) -> dict:
        k = int(instances_in(np.array([m * per]), gpn, tp)[0])
        if k not in seen:
            if len(seen) >= MAX_MEASUREMENTS:
                raise _Unsettled
            seen[k] = {**cap, **measure(cap["gpu"], tp, k)}
        return seen[k]

    def ok(m: int) -> bool:
        value = float(fleet_metrics(at(m), costs, np.array([m * per]))[col][0])
        return value >= target * (1 - 1e-12) if mode == "performance" else value <= target

    try:
        if mode == "count":
            return count, at(count), ""
        for _ in range(3):
            new, note = _nodes_for(mode, target, at(count), costs, unit)
            if new == 0:
                return 0, cap, note
            if new == count:
                break
            count = new
        if mode == "performance":
            while not ok(count):
                count += 1
            while count > 1 and ok(count - 1):
                count -= 1
        else:
            while count >= 1 and not ok(count):
                count -= 1
            if count == 0:
                return 0, cap, f"one node exceeds the {mode} limit with the capacity measured at its size"
            while ok(count + 1):
                count += 1
        return count, at(count), ""
    except _Unsettled:
        return (
            0,
            cap,
            (
                f"sizing did not settle within {MAX_MEASUREMENTS} capacity measurements (MAX_MEASUREMENTS); "
                f"fleet sizes tried up to {max(seen)} instances"
            ),
        )


def plan_workload(
    mode: str,
    target: float,
    wl: Question | Workload | object,
    slo: SLO | Sequence[str] | None = None,
    gpus: Sequence[str] | None = None,
    *,
    model: str | None = None,
    tp: int | Mapping[str, int] | None = None,
    max_num_seqs: int = 256,
    clock: float = 1.0,
    costs: CostBasis | ModeCosts | None = None,
    unit: str = "tokens",
    rank_by: str | None = None,
    instances: int = 4,
    perf: str | None = None,
    verify: bool = True,
    seed: int | None = None,
    precision: Precision | None = None,
) -> pl.DataFrame:
    """Run :func:`plan` straight from a workload.

    Capacity at the SLO is measured at ``instances`` instances per GPU type
    (:func:`~workbench.whatif.capacity_at_slo`), then every fleet is re-sized on the capacity measured at its
    own instance count (``capacity_instances == instances`` in the answer).

    With ``verify`` (the default) every capacity the answer rests on is the measurement kernel's: the largest
    rate at which the fleet of that size *meets* the SLO on a steady-state whole-fleet simulation
    (:func:`~workbench.whatif.kernel_capacity`, columns ``capacity_from = "kernel"``, ``verdict``,
    ``ttft_p99_lo/hi``, ``tpot_p99_lo/hi``); without it the analytic screen's (``capacity_from = "screen"``:
    fast, for exploring, not a verdict).

    Two forms: ``plan_workload(mode, target, question, gpus, ...)`` with a
    :class:`~workbench.planning.Question` (workload, SLO, model, cost basis, seed, named performance model),
    or its parts loose, ``plan_workload(mode, target, wl, slo, gpus, model=..., costs=..., perf=...,
    seed=...)`` (unset ones take the question's defaults). With a question, ``costs`` may only add multi-GPU
    efficiency to the question's basis (``ModeCosts(question.cost, eta_gpu=...)``).

    Parameters are those of :func:`capacity_at_slo` and :func:`plan`, plus ``verify``, and the ``seed`` and
    ``precision`` of the kernel's verdicts.

    Returns
    -------
    polars.DataFrame
        :func:`plan`'s ranked table (one row per GPU type), with ``capacity_instances``, ``capacity_from``
        and, when verified, the kernel's ``verdict`` and latency CIs of the capacity each fleet rests on.

    Raises
    ------
    WhatIfError
        As :func:`plan`: no GPU type can satisfy the mode.
    """
    basis = None if costs is None else ModeCosts.of(costs).basis
    if isinstance(wl, Question):
        question, names = ask(wl, slo, gpus, model=model, perf=perf, seed=seed)
        if basis is not None and basis != question.cost:
            raise ConfigError(
                "costs: the cost basis is the Question's (Question.cost); pass ModeCosts(question.cost, ...) "
                "only to add multi-GPU efficiency"
            )
        costs = costs if costs is not None else question.cost
    else:
        question, names = ask(wl, slo, gpus, model=model, perf=perf, seed=seed, cost=basis)
    if names is None:
        raise ConfigError("gpus is required: the GPU types to plan")
    if not isinstance(question.perf, str):
        perf_given = question.perf
        raise ConfigError(f"plan_workload needs a named performance model (Question.perf), got {perf_given!r}")
    w, slo_, name, spec, s = question.prepared(), question.slo, question.model, question.perf, question.seed
    cap = capacity_at_slo(w, slo_, names, model=name, tp=tp, instances=instances, max_num_seqs=max_num_seqs,
                          clock=clock, perf=spec)  # fmt: skip
    if verify:
        measure = kernel_capacity(w, slo_, model=name, max_num_seqs=max_num_seqs, clock=clock, perf=spec,
                                  seed=s, precision=precision)  # fmt: skip
        cap = _kernel_checks_refusals(cap, measure)
    else:
        measure = capacity_measure(w, slo_, model=name, max_num_seqs=max_num_seqs, clock=clock, perf=spec)
    return plan(mode, target, cap, costs=costs, unit=unit, rank_by=rank_by, measure=measure)


def _kernel_checks_refusals(cap: pl.DataFrame, measure: Callable[[str, int, int], dict]) -> pl.DataFrame:
    """Return ``cap`` with the GPUs the screen refused judged by the measurement kernel instead.

    A GPU the screen found unable to meet the SLO at any load (capacity 0) is simulated, so that no GPU type
    is refused without a simulation; rows the kernel cannot time stay as they are.
    """
    rows = []
    for row in cap.iter_rows(named=True):
        if not row["requests_per_s"] > 0:
            try:
                row = {**row, **measure(row["gpu"], int(row["tp"]), int(row["capacity_instances"]))}
            except WorkbenchError:
                pass  # e.g. a calibration that does not cover this GPU: the screen's reason stands
        rows.append(row)
    return pl.DataFrame(rows, infer_schema_length=None)


def plan(
    mode: str,
    target: float,
    capacity: pl.DataFrame,
    *,
    costs: CostBasis | ModeCosts | None = None,
    unit: str = "tokens",
    rank_by: str | None = None,
    measure: Callable[[str, int, int], dict] | None = None,
) -> pl.DataFrame:
    """Size and rank one fleet per GPU type under a fixed budget, power, performance or GPU count.

    Parameters
    ----------
    mode
        One of :data:`MODES`.
    target
        The fixed quantity: TCO in USD (``"budget"``), facility kW (``"power"``), work in output tokens/s or
        requests/s (``"performance"``, see ``unit``), GPUs (``"count"``).
    capacity
        Per-GPU capacity at the SLO (:func:`~workbench.whatif.capacity_at_slo`, or a table with the columns of
        :data:`CAPACITY_COLUMNS`).
    costs
        Cost basis (:class:`~workbench.tco.CostBasis`, default ``CostBasis()``), or a :class:`ModeCosts`
        adding multi-GPU efficiency.
    unit
        ``"tokens"`` or ``"requests"``: the unit of a performance target.
    rank_by
        A metric of :data:`METRICS` (default per mode: :data:`DEFAULT_RANK`).
    measure
        ``measure(gpu, tp, instances)`` -> the capacity row of one GPU type measured at a fleet of
        ``instances`` instances (:func:`~workbench.whatif.capacity_measure`). Per-instance capacity depends on
        the fleet size (pooling: a 70B model on A100s serves 0.055 req/s per instance alone, 0.80 in a fleet of
        4), so with ``measure`` each fleet is re-sized on the capacity measured at its own instance count
        (:func:`refine_count`); without it the table's capacity is scaled linearly.

    Returns
    -------
    polars.DataFrame
        One row per GPU type, ranked (``rank`` 1 = best; GPUs that cannot satisfy the mode, or have no
        purchase price, last, with ``note`` saying why): ``mode``, ``target``, ``target_unit``, ``gpu``, ``tp``,
        ``gpus_per_node``, ``nodes``, ``gpus``, ``instances``, ``capacity_instances`` (the fleet size the
        capacity used was measured at; null when the table does not say), ``eta``, ``tokens_per_s``,
        ``requests_per_s``, ``it_kw``, ``facility_kw``, ``capex_usd``, ``opex_usd``, ``tco_usd``,
        ``usd_per_mtok`` and the ranking metrics.

    Raises
    ------
    WhatIfError
        When no GPU type can satisfy the mode (e.g. a budget or power cap below one node of every type); the
        message lists each type's limit.
    """
    mode = require_choice("mode", mode, MODES)
    unit = require_choice("unit", unit, tuple(_UNIT))
    require_positive("target", target)
    costs = ModeCosts.of(costs)
    rank_by = rank_by or DEFAULT_RANK[mode]
    rank_by = require_choice("rank_by", rank_by, tuple(METRICS))
    missing = [c for c in CAPACITY_COLUMNS if c not in capacity.columns]
    if missing:
        raise ConfigError(f"capacity table lacks column(s) {missing}; build it with capacity_at_slo()")
    if capacity.height == 0:
        raise ConfigError("capacity table is empty: give at least one GPU type")
    capacity = _check_capacity(capacity)
    label = target_unit(mode, unit)
    rows, notes = [], []  # (leading columns, fleet_metrics or None, trailing columns) per GPU type
    for cap in capacity.iter_rows(named=True):
        if math.isnan(costs.basis.purchase_price_or_nan(cap["gpu"])):
            count, note = 0, f"no purchase price in gpus.csv (no TCO); {costs.basis.price_hint(cap['gpu'])}"
        else:
            count, note = _nodes_for(mode, float(target), cap, costs, unit)
            if count and measure is not None:
                count, cap, note = refine_count(mode, float(target), cap, costs, unit, count, measure)
        metrics = None
        if count:
            n_gpus = count if mode == "count" else count * int(cap["gpus_per_node"])
            metrics = {k: float(v[0]) for k, v in fleet_metrics(cap, costs, np.array([n_gpus])).items()}
        else:
            notes.append(f"{cap['gpu']}: {note}")
        measured = cap.get("capacity_instances") if count else None
        rows.append((
            {"mode": mode, "target": float(target), "target_unit": label, "gpu": cap["gpu"],
             "tp": int(cap["tp"]), "gpus_per_node": int(cap["gpus_per_node"])},
            metrics,
            {"capacity_instances": None if measured is None else int(measured),
             "capacity_from": cap.get("capacity_from", "screen") if count else None,
             "verdict": cap.get("verdict") if count else None,
             "ttft_p99_lo": cap.get("ttft_p99_lo") if count else None,
             "ttft_p99_hi": cap.get("ttft_p99_hi") if count else None,
             "tpot_p99_lo": cap.get("tpot_p99_lo") if count else None,
             "tpot_p99_hi": cap.get("tpot_p99_hi") if count else None,
             "note": note},
        ))  # fmt: skip
    if len(notes) == len(rows):
        what = f"{_TARGETS[mode][0]} {target_text(mode, float(target), label)}"
        raise WhatIfError(f"the {what} is not enough for any GPU type: " + "; ".join(notes))
    empty = dict.fromkeys(next(m for _, m, _ in rows if m is not None))  # fleet_metrics' keys, all null
    records = [{**head, **(empty if m is None else m), **tail} for head, m, tail in rows]
    table = pl.DataFrame(records, infer_schema_length=None).with_columns(
        pl.col("nodes", "gpus", "instances", "capacity_instances").cast(pl.Int64)
    )
    return (
        table.with_columns(_ok=pl.col("nodes").is_not_null())
        .sort(["_ok", rank_by], descending=[True, METRICS[rank_by]], nulls_last=True)
        .drop("_ok")
        .with_row_index("rank", offset=1)
        .with_columns(pl.lit(rank_by).alias("rank_by"))
    )
