"""Grid flexibility (demand response): how much power a serving fleet can shed and still meet its SLO.

Two levers, each with its power model:

* a batch cap (vLLM ``max_num_seqs``): an instance never runs more than ``cap`` sequences, so its GPUs never
  draw more than the busy power ``P(cap)`` of the power-versus-batch curve
  (:func:`workbench.power.power_curve`);
* a lower GPU clock (DVFS): busy power scales with the Wattlytics power-versus-clock shape
  (:data:`workbench.power.H100_WATTLYTICS`, via :func:`workbench.planning.costs.clock_power_scale`) and
  iteration times with ``1 / clock``.

The fleet's *power ceiling* under a (cap, clock) setting is ``instances x tp x max(P(cap) x s(clock), P_idle)``
-- the most it can draw, which is what a demand-response commitment must guarantee; the reduction is measured
against the ceiling of the configured setting. Loaded-idle power does not fall with either lever, so no cut
can go below ``instances x tp x P_idle``. The expected (mean) power under the workload is reported too.

Latency under each setting is predicted by the planning screen at the fleet's fixed instance count, and the
chosen setting is checked by simulating the fleet with the cap and the clock (:func:`check_setting`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from workbench.config import require_positive, require_range
from workbench.hardware import gpu
from workbench.planning import SLO, Candidate, Workload
from workbench.planning import screen as _screen
from workbench.planning.costs import clock_power_scale, pool_power_w, power_params
from workbench.whatif._common import WhatIfError, resolve_tp, simulate_fleet

CAPS: tuple[int, ...] = (256, 192, 128, 96, 64, 48, 32, 24, 16, 8, 4, 2, 1)
CLOCKS: tuple[float, ...] = (1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5)


@dataclass(frozen=True)
class GridFlexResult:
    """Answer of :func:`grid_flex`.

    Attributes
    ----------
    options
        One row per (cap, clock): ``max_num_seqs``, ``clock``, ``ceiling_kw``, ``reduction`` (share of the
        baseline ceiling), ``mean_kw`` (expected power under the workload), predicted ``ttft_p99_s``,
        ``tpot_p99_s``, ``slo_ratio`` (worst latency / target; <= 1 meets the SLO), ``slo_met``.
    curve
        The SLO cost of deeper cuts: for each reachable reduction level, the option with the smallest
        ``slo_ratio`` that sheds at least that much.
    best
        The option with the largest reduction that meets the SLO (row dict): verified by simulation when
        checked (the deepest analytically feasible option the simulator passes, scanned deepest first),
        else the analytic choice.
        With a requested ``cut``: the option shedding at least ``cut`` with the smallest SLO ratio.
    baseline_kw, floor_kw
        Power ceiling of the configured setting and the idle floor no cut can pass.
    analytic_best
        The analytic screen's choice (before the simulation check).
    checks
        Every simulated setting (:func:`check_setting` columns plus ``reduction``), or ``None``.
    exhaustive
        Every analytically feasible option deeper than ``best`` was simulated and failed (``False`` when
        the scan ran out of ``max_sims`` and bisected, or without a check).
    """

    options: pl.DataFrame
    curve: pl.DataFrame
    best: dict
    baseline_kw: float
    floor_kw: float
    analytic_best: dict
    checks: pl.DataFrame | None = None
    exhaustive: bool = False

    @property
    def max_reduction(self) -> float:
        """Largest reduction (share of the baseline ceiling) that meets the SLO."""
        return float(self.best["reduction"])


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
    """Fleet power ceiling (kW) per (cap, clock) pair and the idle floor (kW).

    ``node_power_w`` adds each node's baseline (``ceil(instances x tp / gpus_per_node)`` nodes) to both:
    no lever lowers it.
    """
    g = gpu(gpu_name)
    p_low, p_high, k, x0, idle = power_params(g.name, model, tp)
    b = np.maximum(np.asarray(caps, float), 1.0)
    busy = (p_low + (p_high - p_low) / (1.0 + np.exp(-k * (np.log2(b) - x0)))) * clock_power_scale(clocks)
    per_gpu = np.maximum(busy, idle)
    nodes_w = math.ceil(instances * tp / g.gpus_per_node) * node_power_w
    return (instances * tp * per_gpu + nodes_w) / 1000.0, (instances * tp * idle + nodes_w) / 1000.0


def _predict(wl: Workload, slo: SLO, cands: list[Candidate], model: str, n: int) -> dict[str, np.ndarray]:
    """Screen predictions (P99 TTFT and TPOT, batch, busy share, SLO verdict) at ``n`` instances."""
    probs, first, _, _ = _screen.build_problems(wl, slo, cands, model)
    q = slo.quantile
    nn = np.full(probs.lam.size, float(n))
    pred = probs.predict(nn, q)
    tpot = np.where(pred["stable"], pred["tpot_q"], np.inf)
    rows = np.flatnonzero(pred["stable"] & (probs.role == _screen.ROLE_COLOCATED))
    if rows.size:  # the prefill-stall tail of TPOT, as in the planning screen's solve()
        try:
            stall = probs.tpot_quantile(pred, q, rows)
        except TypeError:  # older signature without rows
            stall = probs.tpot_quantile(pred, q)[rows]
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
    node_power_w: float = 0.0,
    check: bool = True,
    sim_requests: int = 600,
    max_sims: int = 48,
    seed: int = 0,
) -> GridFlexResult:
    """The largest power cut (share of the fleet's power ceiling) that still meets ``slo``.

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
        Optional requested cut (share of the baseline ceiling): checked against the idle floor; ``best``
        then becomes the option meeting the cut with the smallest SLO ratio.
    node_power_w
        Baseline power of each node (CPUs, fans, NICs; e.g. :data:`workbench.tco.NODE_POWER_W`) counted in the
        fleet's power; default 0 (GPU power only).
    check
        Check by simulation on the first ``sim_requests`` requests of the workload (:func:`check_setting`):
        the analytically feasible options are simulated deepest cut first until one passes.
    max_sims
        Most simulations of that scan (each takes ~0.02-0.03 s at 600 requests); beyond it the remaining
        options are bisected (``exhaustive`` is then ``False``).
    seed
        Seed of the simulation.

    Raises
    ------
    WhatIfError
        A cut deeper than the idle power allows, or a fleet that misses the SLO even without a cut.
    """
    if not (isinstance(instances, int) and instances >= 1):
        raise WhatIfError(f"instances must be an integer >= 1, got {instances!r}")
    require_positive("max_num_seqs", max_num_seqs)
    require_positive("max_sims", max_sims)
    tp = resolve_tp(gpu_name, model, tp)
    caps = sorted({int(c) for c in caps if int(c) <= max_num_seqs} | {int(max_num_seqs)}, reverse=True)
    clocks = sorted({float(c) for c in clocks} | {1.0}, reverse=True)
    for c in clocks:
        require_range("clock", c, 0.1, 1.0)
    grid = [(c, f) for c in caps for f in clocks]
    cap_arr = np.array([c for c, _ in grid], float)
    clk_arr = np.array([f for _, f in grid], float)
    require_positive("node_power_w", node_power_w, allow_zero=True)
    ceiling, floor = power_ceiling_kw(
        gpu_name, model, tp, instances, cap_arr, clk_arr, node_power_w=node_power_w
    )
    baseline = float(ceiling[0])
    max_cut = 1.0 - floor / baseline
    if cut is not None:
        require_range("cut", cut, 0.0, 1.0)
        if cut > max_cut + 1e-12:
            idle_w = power_params(gpu(gpu_name).name, model, tp)[4]
            nodes_txt = f" + node baseline {node_power_w:g} W per node" if node_power_w else ""
            raise WhatIfError(
                f"a {cut:.0%} cut asks for <= {baseline * (1 - cut):,.2f} kW, below the fleet's idle power "
                f"{floor:,.2f} kW ({instances} x {tp} x {gpu(gpu_name).name} at "
                f"{idle_w:.0f} W loaded idle{nodes_txt}); the deepest possible cut is "
                f"{max_cut:.1%} "
                "(turn instances off for more)"
            )
    cands = [Candidate(gpu(gpu_name).name, tp, max_num_seqs=c, clock=f) for c, f in grid]
    pred = _predict(wl, slo, cands, model, instances)
    n = np.full(len(grid), float(instances))
    names = np.array([gpu(gpu_name).name] * len(grid), dtype=object)
    tps = np.full(len(grid), tp)
    nodes_kw = math.ceil(instances * tp / gpu(gpu_name).gpus_per_node) * node_power_w / 1000.0
    mean_kw = pool_power_w(names, tps, model, n, pred["batch"], pred["busy"], clk_arr) / 1000.0 + nodes_kw
    ttft_t = slo.ttft_s if slo.ttft_s is not None else math.inf
    tpot_t = slo.tpot_s if slo.tpot_s is not None else math.inf
    ratio = np.maximum(pred["ttft"] / ttft_t, pred["tpot"] / tpot_t)
    options = pl.DataFrame(
        {
            "max_num_seqs": cap_arr.astype(np.int64),
            "clock": clk_arr,
            "ceiling_kw": ceiling,
            "reduction": 1.0 - ceiling / baseline,
            "mean_kw": mean_kw,
            "ttft_p99_s": pred["ttft"],
            "tpot_p99_s": pred["tpot"],
            "slo_ratio": ratio,
            "slo_met": pred["ok"],
        }
    )
    if not bool(pred["ok"][0]):
        raise WhatIfError(
            f"the fleet ({instances} x {tp}x{gpu(gpu_name).name}) misses the SLO ({slo.label}) even without a "
            f"cut: predicted P99 TTFT {pred['ttft'][0]:.3g} s, TPOT {pred['tpot'][0] * 1e3:.3g} ms; "
            "add instances before offering flexibility"
        )
    if cut is None:
        ranked = options.filter("slo_met").sort(["reduction", "mean_kw"], descending=[True, False])
    else:
        ranked = options.filter(pl.col("reduction") >= cut - 1e-12).sort("slo_ratio")
        if ranked.height == 0:
            deep = options.sort("reduction").row(-1, named=True)
            raise WhatIfError(
                f"a {cut:.1%} cut is beyond the settings tried: the deepest is {deep['reduction']:.1%} "
                f"(cap {deep['max_num_seqs']}, clock {deep['clock']:g}; {deep['ceiling_kw']:,.2f} kW) while "
                f"the idle floor allows up to {max_cut:.1%}; add smaller caps or lower clocks to reach it"
            )
    analytic = ranked.row(0, named=True)
    best, checks, exhaustive = analytic, None, False
    if check:
        trace = wl.trace.with_requests(wl.trace.requests.head(sim_requests))

        def run(row: dict) -> dict:
            return check_setting(
                trace, slo, gpu_name, instances, model=model, tp=tp,
                max_num_seqs=int(row["max_num_seqs"]), clock=float(row["clock"]), seed=seed,
            )  # fmt: skip

        if cut is None:
            best, checks, exhaustive = _deepest_simulated(ranked, run, max_sims)
        else:
            found = run(analytic)
            checks = pl.DataFrame([found])
    return GridFlexResult(options, slo_cost_curve(options), best, baseline, floor, analytic, checks, exhaustive)


def _deepest_simulated(ranked: pl.DataFrame, run, max_sims: int) -> tuple[dict, pl.DataFrame, bool]:
    """Simulate the analytically feasible options deepest cut first and stop at the first that passes.

    Simulator verdicts are not monotone in the cut (two levers: a deeper cut with a larger batch cap can
    pass where a shallower one with a lower clock fails), so the scan does not skip options. After
    ``max_sims`` simulations without a pass, the remaining (shallower) options are bisected, which assumes
    monotonicity there; ``exhaustive`` says whether every option deeper than the answer was simulated.

    Returns ``(best, checks, exhaustive)``; every simulated setting is in ``checks``.
    """
    rows = list(ranked.iter_rows(named=True))
    done: dict[int, dict] = {}

    def ok(i: int) -> bool:
        if i not in done:
            done[i] = run(rows[i])
        return done[i]["slo_met"]

    found, exhaustive = None, True
    for i in range(min(max_sims, len(rows))):
        if ok(i):
            found = i
            break
    else:
        scanned = min(max_sims, len(rows))
        if scanned < len(rows):  # budget spent: bisect the rest for a passing option
            exhaustive = False
            lo, hi = scanned - 1, len(rows) - 1
            if ok(hi):
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    lo, hi = (lo, mid) if ok(mid) else (mid, hi)
                found = hi
    checks = pl.DataFrame([{**done[i], "reduction": rows[i]["reduction"]} for i in sorted(done)])
    if found is None:
        last = done[max(done)]
        raise WhatIfError(
            f"no cut passes the simulation check: {len(done)} simulated setting(s), down to the shallowest "
            f"simulated (cap {last['max_num_seqs']}, clock {last['clock']:g}), miss the SLO in simulation "
            f"(P99 TTFT {last['ttft_p99_s']:.3g} s); add instances"
        )
    return rows[found], checks, exhaustive


def slo_cost_curve(options: pl.DataFrame, step: float = 0.05) -> pl.DataFrame:
    """For cut levels 0, ``step``, 2 ``step`` ...: the option shedding at least that much with the best SLO
    ratio (the SLO cost of deeper cuts)."""
    top = float(options["reduction"].max())
    rows = []
    for level in np.arange(0.0, top + 1e-9, step):
        row = options.filter(pl.col("reduction") >= level - 1e-12).sort("slo_ratio").row(0, named=True)
        rows.append({"cut": float(level), **row})
    return pl.DataFrame(rows)


def check_setting(
    trace,
    slo: SLO,
    gpu_name: str,
    instances: int,
    *,
    model: str = "Llama-3.1-8B",
    tp: int = 1,
    max_num_seqs: int = 256,
    clock: float = 1.0,
    warmup: float = 0.1,
    seed: int = 0,
) -> dict:
    """Simulate the fleet under a (cap, clock) setting: latencies, SLO verdict, largest batch and power.

    Returns a dict with ``ttft_p99_s``, ``tpot_p99_s``, ``slo_met`` (scored after the first ``warmup`` share of
    arrivals), ``max_batch`` (largest running batch of any instance), ``mean_kw`` (exact energy integral of the
    segments over the makespan, busy power scaled by the clock) and ``peak_instance_kw`` (largest power of one
    instance in any segment).
    """
    from workbench.planning.check import measure
    from workbench.power import InstancePower, LogisticPower, energy, instance_power

    res = simulate_fleet(
        trace, gpu(gpu_name).name, model, tp, instances, max_num_seqs=max_num_seqs, clock=clock, seed=seed
    )
    cut = trace.requests["arrival_s"].quantile(warmup, "lower") if hasattr(trace, "requests") else 0.0
    m = measure(res.requests.filter(pl.col("arrival_s") >= cut), slo)
    base = instance_power(gpu(gpu_name).name, model, tp)
    s = float(clock_power_scale(np.array(clock)))
    c = base.curve
    scaled = InstancePower(LogisticPower(c.p_low_w * s, c.p_high_w * s, c.k, c.x0, c.source), base.idle_w, tp)
    rep = energy(res, power={int(i): scaled for i in res.instances["instance"]})
    span = float(rep.segments["end_s"].max() - rep.segments["start_s"].min())
    busy = rep.segments.filter(pl.col("state") == "busy")
    return {
        "max_num_seqs": max_num_seqs,
        "clock": clock,
        "ttft_p99_s": m["ttft_p99_s"],
        "tpot_p99_s": m["tpot_p99_s"],
        "slo_met": bool(m["met"]),
        "rejected": int(m["rejected"]),
        "max_batch": int(busy["batch_size"].max()) if busy.height else 0,
        "mean_kw": float(rep.fleet["energy_j"][0]) / span / 1000.0,
        "peak_instance_kw": float(rep.segments["power_w"].max()) / 1000.0,
    }
