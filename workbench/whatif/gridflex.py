"""Grid flexibility (demand response): how much power a serving fleet can shed and still meet its SLO.

Two levers, each with its power model:

* a batch cap (vLLM ``max_num_seqs``): an instance never runs more than ``cap`` sequences, so its GPUs never
  draw more than the busy power ``P(cap)`` of the power-versus-batch curve
  (:func:`workbench.power.power_curve`);
* a lower GPU clock (DVFS): busy power scales with the Wattlytics power-versus-clock shape
  (:func:`workbench.power.dvfs.busy_power_at_clock`, BORROWED from an HPC code) and iteration times follow
  the clocked roofline (:func:`workbench.hardware.clocked`: compute slows with the clock, memory-bound decode
  barely does).

The fleet's *power ceiling* under a (cap, clock) setting is
``instances x tp x max(P(cap) x s(clock), P_idle) + nodes x P_node`` -- the most it can draw, which is what a
demand-response commitment must guarantee. Its *mean power* is what it actually draws under the workload: a
batch cap above the batches the workload reaches lowers the ceiling but not the mean. Both reductions are
reported against the configured setting (the mean one predicted and simulated); ``objective`` picks the one
to maximise. Loaded-idle power and the node baseline (``P_node``, by default
:data:`workbench.tco.NODE_POWER_W` as in the planning modes) do not fall with either lever, so no cut can go
below ``instances x tp x P_idle + nodes x P_node``.

Latency under each setting is predicted by the planning screen at the fleet's fixed instance count; the
feasible settings are then judged by the measurement kernel with the cap and the clock (:func:`check_setting`:
a steady-state verdict with the CI of the SLO quantile, :mod:`workbench.sim.measure`), deepest cut first,
until one meets the SLO. "Undecided" (the CI straddles the target at the request cap) does not pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from workbench.config import as_float, as_int, require_choice, require_int, require_positive, require_range
from workbench.hardware import gpu
from workbench.planning import SLO, Candidate, Workload
from workbench.planning import screen as _screen
from workbench.planning.costs import pool_power_w, power_params
from workbench.power.dvfs import busy_power_at_clock, clock_power_scale
from workbench.sim.measure import Precision
from workbench.tco import NODE_POWER_W
from workbench.whatif._common import WhatIfError, measure_fleet, resolve_tp

CAPS: tuple[int, ...] = (256, 192, 128, 96, 64, 48, 32, 24, 16, 8, 4, 2, 1)
CLOCKS: tuple[float, ...] = (1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5)


OBJECTIVES: tuple[str, ...] = ("ceiling", "mean")
#: Options column of each objective's reduction (also :attr:`GridFlexResult.objective_column`).
OBJECTIVE_COLUMNS: dict[str, str] = {"ceiling": "ceiling_reduction", "mean": "mean_reduction"}


@dataclass(frozen=True)
class GridFlexResult:
    """Answer of :func:`grid_flex`.

    Two reductions, both shares of the configured setting (cap ``max_num_seqs``, clock 1):

    * ``ceiling_reduction``: cut in the fleet's power *ceiling*, the most it can draw under the setting (a
      demand-response guarantee: the grid operator can count on it at any load);
    * ``mean_reduction``: cut in the power the fleet actually draws on average under the workload
      (predicted by the screen in ``options``; simulated against a simulated baseline in ``checks`` and
      ``best``). A batch cap above the batches the workload reaches lowers the ceiling, not the mean.

    Attributes
    ----------
    options
        One row per (cap, clock): ``max_num_seqs``, ``clock``, ``ceiling_kw``, ``ceiling_reduction``,
        ``mean_kw`` (predicted power under the workload), ``mean_reduction``, predicted ``ttft_p99_s``,
        ``tpot_p99_s``, ``slo_ratio`` (worst latency / target; <= 1 meets the SLO), ``slo_met``.
    curve
        The SLO cost of deeper cuts of the objective: for each reachable level, the option with the
        smallest ``slo_ratio`` that sheds at least that much (:func:`least_damaging`).
    best
        The option with the deepest cut of the objective that meets the SLO (row dict): verified by
        simulation when checked (analytically feasible options simulated deepest first, the first that passes),
        else the analytic choice; with a requested ``cut``, the least SLO-damaging option that sheds at least
        ``cut`` (and passes the simulation). When checked it adds ``sim_ttft_p99_s``, ``sim_tpot_p99_s``,
        ``sim_slo_met``, ``sim_mean_kw`` and ``sim_mean_reduction``.
    baseline_kw, floor_kw
        Power ceiling of the configured setting and the idle floor no cut can pass (kW, node baseline
        included).
    analytic_best
        The analytic screen's choice (before the simulation check).
    checks
        Every simulated setting (:func:`check_setting` columns plus ``ceiling_reduction`` and
        ``sim_mean_reduction``), or ``None``.
    exhaustive
        Every analytically feasible option deeper than ``best`` was simulated and failed (``False`` when
        the scan ran out of ``max_sims`` and bisected, or without a check).
    objective
        ``"ceiling"`` or ``"mean"``: the reduction ``best`` maximises.
    node_power_w, nodes
        Baseline power of each node and the node count (``ceil(instances x tp / gpus_per_node)``), counted in
        every power and reduction (no lever lowers it).
    baseline_sim
        The simulated configured setting (:func:`check_setting` dict), the reference of ``sim_mean_reduction``.
    """

    options: pl.DataFrame
    curve: pl.DataFrame
    best: dict
    baseline_kw: float
    floor_kw: float
    analytic_best: dict
    checks: pl.DataFrame | None = None
    exhaustive: bool = False
    objective: str = "ceiling"
    node_power_w: float = 0.0
    nodes: int = 0
    baseline_sim: dict | None = None

    @property
    def objective_column(self) -> str:
        """Column of ``options`` (and ``curve``) holding the objective's reduction."""
        return OBJECTIVE_COLUMNS[self.objective]

    @property
    def ceiling_reduction(self) -> float:
        """Ceiling reduction of ``best`` (share of the baseline ceiling)."""
        return float(self.best["ceiling_reduction"])

    @property
    def mean_reduction(self) -> float:
        """Mean-power reduction of ``best``: simulated when checked, else predicted."""
        sim = self.best.get("sim_mean_reduction")
        return float(self.best["mean_reduction"] if sim is None else sim)

    @property
    def reduction(self) -> float:
        """The objective's reduction of ``best``: :attr:`ceiling_reduction` or :attr:`mean_reduction`."""
        return self.ceiling_reduction if self.objective == "ceiling" else self.mean_reduction

    @property
    def sims(self) -> int:
        """Fleet simulations run (the baseline and every checked setting)."""
        return 0 if self.checks is None else self.checks.height + 1

    def summary(self) -> str:
        """Return the answer in words: both reductions, the setting, the simulation check, the power basis."""
        b = self.best
        sim = b.get("sim_mean_reduction")
        base_kw = None if self.baseline_sim is None else self.baseline_sim["mean_kw"]
        lines = [
            f"objective {self.objective}: cap {b['max_num_seqs']}, clock {b['clock']:g}",
            f"ceiling cut {b['ceiling_reduction']:.1%} ({self.baseline_kw:,.2f} -> {b['ceiling_kw']:,.2f} kW, "
            "guaranteed at any load)",
            f"mean-power cut {b['mean_reduction']:.1%} predicted"
            + ("" if sim is None else f", {sim:.1%} simulated ({base_kw:,.2f} -> "
               f"{b['sim_mean_kw']:,.2f} kW)"),
        ]  # fmt: skip
        if self.checks is not None:
            scan = "every option ranked before it failed" if self.exhaustive else "budget spent, rest bisected"
            b_ci = _latency_text(b | {k.removeprefix("sim_"): v for k, v in b.items() if k.startswith("sim_")})
            lines.append(
                f"measurement kernel: meets the SLO{b_ci}; {self.sims} verdicts incl. the baseline ({scan})"
            )
        source = "the planning modes' default" if self.node_power_w == NODE_POWER_W else "as given"
        lines.append(
            f"power: GPUs + node baseline {self.node_power_w:g} W x {self.nodes} node(s) ({source}); IT power, "
            "no PUE"
        )
        return "\n".join(lines)


def power_ceiling_kw(
    gpu_name: str,
    model: str,
    tp: int,
    instances: int,
    caps: np.ndarray,
    clocks: np.ndarray,
    *,
    node_power_w: float = 0.0,
) -> tuple[np.ndarray, float]:
    """Return the fleet power ceiling (kW) per (cap, clock) pair and the idle floor (kW).

    ``node_power_w`` adds each node's baseline (``ceil(instances x tp / gpus_per_node)`` nodes) to both:
    no lever lowers it.

    Parameters
    ----------
    gpu_name, model, tp, instances
        The fleet: GPU type, model served, GPUs per instance and instance count.
    caps, clocks
        Batch caps and clock fractions, paired element-wise (broadcast together).
    node_power_w
        Baseline power of each node.

    Returns
    -------
    ceiling_kw : numpy.ndarray
        Power ceiling of the fleet per pair: every GPU at the busy power of its cap and clock.
    floor_kw : float
        Power of the fleet with every GPU idle.
    """
    name = gpu(gpu_name).name
    curve, idle = power_params(name, model, tp)
    busy = busy_power_at_clock(curve(np.asarray(caps, float)), idle, clocks)
    per_gpu = np.maximum(busy, idle)
    nodes_w = fleet_nodes(name, instances, tp) * node_power_w
    return (instances * tp * per_gpu + nodes_w) / 1000.0, (instances * tp * idle + nodes_w) / 1000.0


def fleet_nodes(gpu_name: str, instances: int, tp: int) -> int:
    """Nodes a fleet of ``instances`` x ``tp`` GPUs fills: ``ceil(instances x tp / gpus_per_node)``."""
    return math.ceil(instances * tp / gpu(gpu_name).gpus_per_node)


def least_damaging(options: pl.DataFrame, column: str, cut: float) -> pl.DataFrame:
    """Return the options that shed at least ``cut`` of ``column``, least SLO-damaging first.

    Ordered by ``slo_ratio`` (smallest first); ties (e.g. several options that cannot meet the SLO at all)
    go to the deeper cut, then to the options' own order (larger cap, higher clock first). The one rule behind
    :func:`grid_flex` with ``cut``, :func:`slo_cost_curve` and the grid-flexibility widget, so they agree.

    Parameters
    ----------
    options
        The options table of a :class:`GridFlexResult` (``slo_ratio`` and the reduction columns).
    column
        Reduction column the cut applies to (``"ceiling_reduction"`` or ``"mean_reduction"``).
    cut
        Least share to shed.

    Returns
    -------
    polars.DataFrame
        The qualifying rows of ``options`` in that order (empty when no option sheds ``cut``).
    """
    return options.filter(pl.col(column) >= cut - 1e-12).sort(
        ["slo_ratio", column], descending=[False, True], maintain_order=True
    )


def _predict(wl: Workload, slo: SLO, cands: list[Candidate], model: str, n: int) -> dict[str, np.ndarray]:
    """Screen predictions (P99 TTFT and TPOT, batch, busy share, SLO verdict) at ``n`` instances."""
    probs, first, _, _ = _screen.build_problems(wl, slo, cands, model)
    q = slo.quantile
    nn = np.full(probs.lam.size, float(n))
    pred = probs.predict(nn, q)
    tpot = np.where(pred["stable"], pred["tpot_q"], np.inf)
    rows = np.flatnonzero(pred["stable"] & (probs.role == _screen.ROLE_COLOCATED))
    if rows.size:  # the prefill-stall tail of TPOT, as in the planning screen's solve()
        stall = probs.tpot_quantile(pred, q, rows)
        tpot[rows] = np.maximum(tpot[rows], stall)
    ok = probs.feasible(nn, q)
    return {
        "ttft": pred["ttft_q"][first],
        "tpot": tpot[first],
        "batch": pred["batch"][first],
        "busy": pred["util"][first],
        "ok": ok[first],
    }


def grid_flex(
    wl: Workload,
    slo: SLO,
    gpu_name: str,
    instances: int,
    *,
    model: str = "Llama-3.1-8B",
    tp: int | None = None,
    max_num_seqs: int = 256,
    caps: Sequence[int] = CAPS,
    clocks: Sequence[float] = CLOCKS,
    cut: float | None = None,
    objective: str = "ceiling",
    node_power_w: float = NODE_POWER_W,
    check: bool = True,
    precision: Precision | None = None,
    max_sims: int = 48,
    seed: int = 0,
) -> GridFlexResult:
    """Find the largest power cut (share of the fleet's power) that still meets ``slo``.

    Parameters
    ----------
    wl
        Workload at its rate (the fleet keeps serving all of it).
    slo
        Latency targets.
    gpu_name, instances, model, tp
        The fleet: ``instances`` instances of ``model`` on ``tp`` x ``gpu_name`` (``tp=None``: smallest fit).
    max_num_seqs
        The configured batch cap (the baseline; the clock baseline is 1).
    caps, clocks
        Settings to try (caps above ``max_num_seqs`` are dropped).
    cut
        Optional requested cut of the objective (share of the baseline): checked against the idle floor
        and the settings tried; ``best`` then becomes the option meeting the cut with the smallest SLO ratio
        (ties to the deeper cut, :func:`least_damaging`).
    objective
        ``"ceiling"``: maximise the cut in the power ceiling (what a demand-response commitment guarantees);
        ``"mean"``: maximise the cut in mean power drawn under the workload (energy). Both are reported.
    node_power_w
        Baseline power of each node (CPUs, fans, NICs) counted in the fleet's power: by default
        :data:`workbench.tco.NODE_POWER_W`, the same source as the planning modes
        (:class:`~workbench.tco.CostBasis`); 0 counts GPU power only.
    check
        Judge settings with the measurement kernel on the workload (:func:`check_setting`): the configured
        setting once (the mean-power reference), then the analytically feasible options deepest cut first until
        one meets the SLO (every setting on the same requests: common random numbers).
    precision
        The kernel's tolerance and request cap (:class:`~workbench.sim.measure.Precision`).
    max_sims
        Most verdicts of that scan; beyond it the remaining options are bisected (``exhaustive`` is then
        ``False``).
    seed
        Seed of the kernel's runs.

    Returns
    -------
    GridFlexResult
        Every (cap, clock) option with its predicted power and SLO ratio, the cost curve of deeper cuts, the
        chosen setting ``best`` and, with ``check``, the kernel's verdicts.

    Raises
    ------
    WhatIfError
        A cut deeper than the idle power or the settings tried allow, a fleet that misses the SLO even
        without a cut, or no setting that passes the simulation check.
    """
    instances = require_int("instances", instances)
    max_num_seqs = require_int("max_num_seqs", max_num_seqs)
    max_sims = require_int("max_sims", max_sims)
    objective = require_choice("objective", objective, OBJECTIVES)
    require_positive("node_power_w", node_power_w, allow_zero=True)
    name = gpu(gpu_name).name
    tp = resolve_tp(name, model, tp)
    caps = [require_int("caps", c) for c in caps]
    caps = sorted({c for c in caps if c <= max_num_seqs} | {max_num_seqs}, reverse=True)
    clocks = sorted({float(c) for c in clocks} | {1.0}, reverse=True)
    for c in clocks:
        require_range("clock", c, 0.1, 1.0)
    if cut is not None:
        require_range("cut", cut, 0.0, 1.0)
    grid = [(c, f) for c in caps for f in clocks]
    cap_arr = np.array([c for c, _ in grid], float)
    clk_arr = np.array([f for _, f in grid], float)
    ceiling, floor = power_ceiling_kw(name, model, tp, instances, cap_arr, clk_arr, node_power_w=node_power_w)
    nodes = fleet_nodes(name, instances, tp)
    cands = [Candidate(name, tp, max_num_seqs=c, clock=f) for c, f in grid]
    pred = _predict(wl, slo, cands, model, instances)
    n = np.full(len(grid), float(instances))
    names = np.array([name] * len(grid), dtype=object)
    tps = np.full(len(grid), tp)
    mean_kw = (
        pool_power_w(names, tps, model, n, pred["batch"], pred["busy"], clk_arr) / 1000.0
        + nodes * node_power_w / 1000.0
    )
    ttft_t = slo.ttft_s if slo.ttft_s is not None else math.inf
    tpot_t = slo.tpot_s if slo.tpot_s is not None else math.inf
    options = pl.DataFrame(
        {
            "max_num_seqs": cap_arr.astype(np.int64),
            "clock": clk_arr,
            "ceiling_kw": ceiling,
            "ceiling_reduction": 1.0 - ceiling / ceiling[0],
            "mean_kw": mean_kw,
            "mean_reduction": 1.0 - mean_kw / mean_kw[0],
            "ttft_p99_s": pred["ttft"],
            "tpot_p99_s": pred["tpot"],
            "slo_ratio": np.maximum(pred["ttft"] / ttft_t, pred["tpot"] / tpot_t),
            "slo_met": pred["ok"],
        }
    )
    col = OBJECTIVE_COLUMNS[objective]
    other = OBJECTIVE_COLUMNS["mean" if objective == "ceiling" else "ceiling"]
    if cut is not None:
        _check_cut(cut, objective, options, floor, node_power_w, name, instances, model, tp)
    if not bool(pred["ok"][0]):
        raise WhatIfError(
            f"the fleet ({instances} x {tp}x{name}) misses the SLO ({slo.label}) even without a "
            f"cut: predicted P99 TTFT {pred['ttft'][0]:.3g} s, TPOT {pred['tpot'][0] * 1e3:.3g} ms; "
            "add instances before offering flexibility"
        )
    if cut is None:
        ranked = options.filter("slo_met").sort([col, other], descending=True)
    else:
        ranked = least_damaging(options, col, cut)
    analytic = ranked.row(0, named=True)
    best, checks, exhaustive, base = {**analytic, **dict.fromkeys(_SIM_KEYS)}, None, False, None
    if check:

        def sim(cap: int, clock: float) -> dict:
            return check_setting(
                wl, slo, name, instances, model=model, tp=tp, max_num_seqs=cap, clock=clock,
                node_power_w=node_power_w, seed=seed, precision=precision,
            )  # fmt: skip

        base = sim(int(max_num_seqs), 1.0)

        def run(row: dict) -> dict:
            found = sim(int(row["max_num_seqs"]), float(row["clock"]))
            red = 1.0 - found["mean_kw"] / base["mean_kw"]
            meets_cut = cut is None or objective == "ceiling" or red >= cut - 1e-9
            return {**found, "ceiling_reduction": row["ceiling_reduction"], "sim_mean_reduction": red,
                    "passes": bool(found["slo_met"] and meets_cut)}  # fmt: skip

        what = "no cut" if cut is None else f"no setting shedding >= {cut:.1%} ({objective})"
        pick, simulated, checks, exhaustive = _first_passing(
            ranked, run, max_sims, bisect=cut is None, what=what
        )
        best = {**pick, **_sim_fields(simulated)}
    return GridFlexResult(
        options, slo_cost_curve(options, col), best, float(ceiling[0]), floor, analytic, checks, exhaustive,
        objective, float(node_power_w), nodes, base,
    )  # fmt: skip


_SIM_KEYS = (
    "sim_verdict", "sim_ttft_p99_s", "sim_ttft_p99_lo", "sim_ttft_p99_hi", "sim_tpot_p99_s", "sim_tpot_p99_lo",
    "sim_tpot_p99_hi", "sim_slo_met", "sim_mean_kw", "sim_mean_reduction", "sim_requests",
)  # fmt: skip


def _sim_fields(row: dict) -> dict:
    """Return the ``sim_*`` fields of ``best`` from its row of the checks (the kernel's verdict and CIs)."""
    return {
        "sim_verdict": row["verdict"],
        **{f"sim_{k}": row[k] for k in ("ttft_p99_s", "ttft_p99_lo", "ttft_p99_hi")},
        **{f"sim_{k}": row[k] for k in ("tpot_p99_s", "tpot_p99_lo", "tpot_p99_hi")},
        "sim_slo_met": row["slo_met"],
        "sim_mean_kw": row["mean_kw"],
        "sim_mean_reduction": row["sim_mean_reduction"],
        "sim_requests": row["requests"],
    }


def _check_cut(
    cut: float, objective: str, options: pl.DataFrame, floor: float, node_power_w: float, name: str,
    instances: int, model: str, tp: int,
) -> None:  # fmt: skip
    """One clear error for a requested cut below the idle floor or beyond the deepest setting tried."""
    col = OBJECTIVE_COLUMNS[objective]
    ref = float(options["ceiling_kw" if objective == "ceiling" else "mean_kw"][0])
    max_cut = 1.0 - floor / ref
    what = "ceiling" if objective == "ceiling" else "mean power"
    if cut > max_cut + 1e-12:
        idle_w = power_params(name, model, tp)[1]
        nodes_txt = f" + node baseline {node_power_w:g} W per node" if node_power_w else ""
        raise WhatIfError(
            f"a {cut:.0%} cut of the {what} asks for <= {ref * (1 - cut):,.2f} kW, below the fleet's idle "
            f"power {floor:,.2f} kW ({instances} x {tp} x {name} at {idle_w:.0f} W loaded idle{nodes_txt}); "
            f"the deepest possible cut is {max_cut:.1%} (turn instances off for more)"
        )
    deep = options.sort(col).row(-1, named=True)
    if cut > deep[col] + 1e-12:
        raise WhatIfError(
            f"a {cut:.1%} cut of the {what} is beyond the settings tried: the deepest is {deep[col]:.1%} "
            f"(cap {deep['max_num_seqs']}, clock {deep['clock']:g}) while the idle floor allows up to "
            f"{max_cut:.1%}; add smaller caps or lower clocks to reach it"
        )


def _first_passing(
    ranked: pl.DataFrame, run, max_sims: int, *, bisect: bool, what: str
) -> tuple[dict, dict, pl.DataFrame, bool]:
    """Simulate ``ranked`` options in order and stop at the first that passes.

    The order is the deepest cut, or the least SLO damage, first.

    Simulator verdicts are not monotone in the cut (two levers: a deeper cut with a larger batch cap can
    pass where a shallower one with a lower clock fails), so the scan does not skip options. After
    ``max_sims`` simulations without a pass and with ``bisect``, the remaining (shallower) options are
    bisected, which assumes monotonicity there; ``exhaustive`` says whether every option ranked before the
    answer was simulated.

    Returns ``(best, its simulation, checks, exhaustive)``; every simulated setting is in ``checks``.
    """
    rows = list(ranked.iter_rows(named=True))
    done: dict[int, dict] = {}

    def ok(i: int) -> bool:
        if i not in done:
            done[i] = run(rows[i])
        return done[i]["passes"]

    scanned = min(max_sims, len(rows))
    found = next((i for i in range(scanned) if ok(i)), None)
    exhaustive = found is not None
    if found is None and bisect and scanned < len(rows):  # budget spent: bisect the rest for a passing option
        lo, hi = scanned - 1, len(rows) - 1
        if ok(hi):
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (lo, mid) if ok(mid) else (mid, hi)
            found = hi
    checks = pl.DataFrame([done[i] for i in sorted(done)])
    if found is None:
        last = done[max(done)]
        raise WhatIfError(
            f"{what} passes the simulation check: {len(done)} simulated setting(s), the last "
            f"(cap {last['max_num_seqs']}, clock {last['clock']:g}), is {last['verdict']}"
            + _latency_text(last)
            + "; add instances"
        )
    return rows[found], done[found], checks, exhaustive


def _latency_text(row: dict) -> str:
    """``" (P99 TTFT 0.61 s [0.55, 0.7], TPOT 48 ms [46, 51])"`` of a checked setting (empty when unstable)."""
    parts = []
    if row.get("ttft_p99_s") is not None:
        parts.append(f"P99 TTFT {row['ttft_p99_s']:.3g} s [{row['ttft_p99_lo']:.3g}, {row['ttft_p99_hi']:.3g}]")
    if row.get("tpot_p99_s") is not None:
        lo, hi = row["tpot_p99_lo"] * 1e3, row["tpot_p99_hi"] * 1e3
        parts.append(f"TPOT {row['tpot_p99_s'] * 1e3:.3g} ms [{lo:.3g}, {hi:.3g}]")
    return f" ({', '.join(parts)})" if parts else ""


def slo_cost_curve(
    options: pl.DataFrame, column: str = "ceiling_reduction", step: float = 0.05
) -> pl.DataFrame:
    """Return the SLO cost of deeper cuts: the least damaging option at each cut level.

    For cut levels 0, ``step``, 2 ``step`` ... of ``column``, the option shedding at least that much with the
    best SLO ratio (ties as :func:`least_damaging`).
    """
    top = as_float(options[column].max())
    rows = []
    for level in np.arange(0.0, top + 1e-9, step):
        rows.append({"cut": float(level), **least_damaging(options, column, level).row(0, named=True)})
    return pl.DataFrame(rows)


def check_setting(
    workload,
    slo: SLO,
    gpu_name: str,
    instances: int,
    *,
    model: str = "Llama-3.1-8B",
    tp: int = 1,
    max_num_seqs: int = 256,
    clock: float = 1.0,
    node_power_w: float = NODE_POWER_W,
    seed: int = 0,
    precision: Precision | None = None,
) -> dict:
    """Return the measurement kernel's verdict on the fleet under a (cap, clock) setting, with its power.

    Parameters
    ----------
    workload
        A prepared :class:`~workbench.planning.Workload`, a trace (finite) or a generator: what
        :func:`workbench.sim.measure.request_source` takes.
    slo, gpu_name, instances, model, tp
        The SLO and the fleet.
    max_num_seqs, clock
        The setting.
    node_power_w
        Baseline power of each node, added to ``mean_kw``.
    seed, precision
        The kernel's seed and precision.

    Returns
    -------
    dict
        ``verdict`` (meets / fails / unstable / undecided), ``slo_met`` (``verdict == "meets"``),
        ``ttft_p99_s`` and ``tpot_p99_s`` with their 95 % CIs (``_lo``/``_hi``), ``requests`` (simulated for the
        verdict), ``warmup``, ``rejected`` (in the deciding run), ``max_batch`` (largest running batch of any
        instance), ``mean_kw`` (exact energy integral of the deciding run's segments over its makespan, busy
        power scaled by the clock, plus ``node_power_w`` per node) and ``peak_instance_kw``.
    """
    from workbench.planning.check import verdict_columns
    from workbench.power import InstancePower, energy, instance_power

    name = gpu(gpu_name).name
    v = measure_fleet(
        workload, slo, name, model, tp, instances, max_num_seqs=max_num_seqs, clock=clock, seed=seed,
        precision=precision,
    )  # fmt: skip
    res = v.result
    base = instance_power(name, model, tp)
    scaled = InstancePower(base.curve.scaled(float(clock_power_scale(clock))), base.idle_w, tp)
    rep = energy(res, power={int(i): scaled for i in res.instances["instance"]})
    span = as_float(rep.segments["end_s"].max()) - as_float(rep.segments["start_s"].min())
    busy = rep.segments.filter(pl.col("state") == "busy")
    nodes_kw = fleet_nodes(name, instances, tp) * node_power_w / 1000.0
    cols = verdict_columns(v, slo)
    return {
        "max_num_seqs": max_num_seqs,
        "clock": clock,
        "verdict": v.status,
        "ttft_p99_s": cols["ttft_p99_s"],
        "ttft_p99_lo": cols["ttft_p99_lo"],
        "ttft_p99_hi": cols["ttft_p99_hi"],
        "tpot_p99_s": cols["tpot_p99_s"],
        "tpot_p99_lo": cols["tpot_p99_lo"],
        "tpot_p99_hi": cols["tpot_p99_hi"],
        "slo_met": v.meets,
        "requests": v.requests,
        "warmup": v.warmup,
        "rejected": int(res.requests["rejected"].sum()),
        "max_batch": as_int(busy["batch_size"].max()) if busy.height else 0,
        "mean_kw": float(rep.fleet["energy_j"][0]) / span / 1000.0 + nodes_kw,
        "peak_instance_kw": as_float(rep.segments["power_w"].max()) / 1000.0,
    }
