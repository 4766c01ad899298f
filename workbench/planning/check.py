"""Step 2 of sizing: the measurement kernel decides the instance counts, bracketed by the analytic screen.

Every count is judged by :func:`workbench.sim.measure.measure` on the whole fleet: a steady-state verdict
(meets / fails / unstable / undecided) with the confidence interval of the SLO quantile, the run extended until
the verdict is clear. The SLO is the fleet's (all requests of the workload) unless per-pool targets are asked
for (``per_pool=True``); a pool is never sized or refuted on its own requests alone.

* One pool (monolithic): :func:`~workbench.sim.measure.smallest_count` bisects on verdicts inside the
  screen's bracket: the lower end is the fewest instances whose capacity exceeds the load (below it the fleet
  cannot be stable), the start is the screen's count; the upper end doubles from it until a count meets. The
  answer is the smallest count that meets, and the count below it is always judged, so the answer says how
  it failed.
* Two pools (length split, prefill/decode; :func:`~workbench.sim.measure.smallest_pair`): from the screen's
  counts (each pool sized for the quantile on its own requests, which the screen makes conservative) both
  pools grow together until the whole fleet meets; then the second pool and the first are each bisected down
  on whole-fleet verdicts, the other held. Only whole-fleet verdicts refute a candidate.

The kernel's "undecided" (the CI straddles the target at the request cap, or a finite trace ran out) counts as
not meeting: a count is accepted only on evidence.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import polars as pl

from workbench.carbon import gco2e_per_1k_tokens
from workbench.planning.spec import SLO, Candidate
from workbench.planning.workload import Workload
from workbench.sim.measure import (
    Precision,
    Verdict,
    fleet_runner,
    measure,
    slo_targets,
    smallest_count,
    smallest_pair,
)
from workbench.tco import CostBasis, gpu_hour_usd

if TYPE_CHECKING:
    from workbench.hardware import CalibratedModel

#: What the check simulates: a model name (``"roofline"``, ``"calibrated:<name>"``) or a calibration.
PerfName: TypeAlias = "str | CalibratedModel | None"


def build_fleet(cand: Candidate, n1: int, n2: int, model: str, perf: PerfName = "roofline"):
    """Return the :class:`~workbench.sim.topology.Fleet` of a candidate with ``n1``/``n2`` instances.

    ``perf`` names the instances' performance model (:func:`workbench.hardware.performance_model`); with a
    calibrated one an iteration batches at most the tokens its benchmark exercised (8,192 otherwise).
    """
    from workbench.hardware import token_budget
    from workbench.sim.config import SchedulerConfig
    from workbench.sim.topology import Fleet, Pool

    tokens = token_budget(perf, cand.max_num_seqs)
    sched = SchedulerConfig(max_num_seqs=cand.max_num_seqs, max_num_batched_tokens=tokens)
    common: dict[str, Any] = {"model": model, "router": cand.router, "scheduler": sched, "perf": perf}
    if cand.topology == "monolithic":
        return Fleet(pools=(Pool("main", gpu=cand.gpu, tp=cand.tp, instances=n1, **common),))
    if cand.topology == "length_pools" and min(n1, n2) == 0:
        # a pool without instances is left out (the workload has no request for it)
        name, g, tp, n = (
            ("short", cand.gpu, cand.tp, n1) if n1 else ("long", cand.second_gpu, cand.second_tp, n2)
        )
        return Fleet(pools=(Pool(name, gpu=g, tp=tp, instances=n, **common),))
    if cand.topology == "length_pools":
        from workbench.hardware import kv_capacity_tokens
        from workbench.hardware import model as model_spec

        longest = min(model_spec(model).max_context, kv_capacity_tokens(cand.second_gpu, model, cand.second_tp))
        return Fleet(
            pools=(
                Pool("short", gpu=cand.gpu, tp=cand.tp, instances=n1, max_tokens=cand.threshold, **common),
                Pool(
                    "long", gpu=cand.second_gpu, tp=cand.second_tp, instances=n2, max_tokens=longest, **common
                ),
            ),
            router="length_pools",
            router_params={"include_output": False},
        )
    return Fleet(
        pools=(
            Pool("prefill", gpu=cand.gpu, tp=cand.tp, instances=n1, role="prefill", **common),
            Pool("decode", gpu=cand.second_gpu, tp=cand.second_tp, instances=n2, role="decode", **common),
        ),
        link_bandwidth_gbs=cand.link_gbps,
    )


def pool_names(cand: Candidate) -> tuple[str, ...]:
    """Names of the candidate's pools, in the order of ``instances1``/``instances2``."""
    return {"monolithic": ("main",), "length_pools": ("short", "long"), "disaggregated": ("prefill", "decode")}[
        cand.topology
    ]


def verdict_columns(v: Verdict, slo: SLO) -> dict:
    """Flat latency columns of a verdict: ``verdict``, ``ttft_p99_s`` (+ ``_lo``/``_hi``), ``tpot_p99_s`` ...

    The names keep the ``p99`` of the default SLO whatever the quantile (the SLO says which one); latencies
    of targets the SLO does not set are null.
    """
    out: dict = {"verdict": v.status, "marginal": v.marginal}
    for col, name in (("ttft_s", "ttft_p99"), ("tpot_s", "tpot_p99")):
        e = v.estimate(col)
        out[f"{name}_s"] = None if e is None else e.value
        out[f"{name}_lo"] = None if e is None else e.low
        out[f"{name}_hi"] = None if e is None else e.high
    g = v.estimate("good")
    out["goodput"] = None if g is None else g.value
    rejected = [m.rejected_share for m in v.measurements]
    out["rejected_share"] = max(rejected) if rejected else None
    out.update(requests=v.requests, run_requests=v.run_requests, warmup=v.warmup)
    out["met"] = v.meets
    return out


@dataclass(frozen=True)
class Bracket:
    """The screen's bracket of one candidate: its counts (start) and the stability floor of each pool."""

    n1: int
    n2: int
    floor1: int = 0
    floor2: int = 0


def check_candidates(
    wl: Workload,
    slo: SLO,
    cands: Sequence[Candidate],
    analytic: pl.DataFrame,
    *,
    model: str,
    cost: CostBasis,
    budget: int = 3,
    seed: int = 0,
    precision: Precision | None = None,
    per_pool: bool = False,
    stop_early: bool = False,
    progress: bool | Callable[[int, int], None] | None = None,
    perf: PerfName = "roofline",
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Size the cheapest analytic candidates with the measurement kernel until none left can beat the best.

    Candidates are taken in order of analytic cost per hour (``analytic`` has columns ``_i`` - the index into
    ``cands`` - ``usd_per_hour``, ``instances1``, ``instances2``, ``stable_instances1``,
    ``stable_instances2`` and ``slo_met``).
    The loop stops after ``budget`` candidates, or (``stop_early``) when the next candidate's analytic cost is
    already at least the cheapest verified cost. When the kernel refutes all ``budget`` candidates, up to
    ``budget`` more are tried. Candidates at a reduced clock are not simulated (the fleet simulator runs GPUs at
    full clock). ``progress`` shows a bar over the candidates (``None``: in a terminal or notebook only); a
    callable is called as ``progress(done, total)`` after each candidate instead (an explorer's own bar).

    Returns ``(rows, runs)``: one row per sized candidate (``_i`` and ``sim_*`` columns) and one row per
    verdict (candidate, counts, :func:`verdict_columns`).
    """
    from tqdm.auto import tqdm

    from workbench._progress import progress_enabled

    place = cost.place()

    checker = _Checker(wl, slo, model, seed, precision, per_pool, perf)
    order = analytic.filter(pl.col("slo_met") & (pl.col("clock") == 1.0)).sort("usd_per_hour", "gpus")
    rows: list[dict] = []
    best = np.inf
    report = progress if callable(progress) else None
    shown = report is None and progress_enabled(progress)  # type: ignore[arg-type]
    bar = tqdm(total=min(budget, order.height), desc="check", unit="cand", disable=not shown)
    total = min(budget, order.height)
    with bar:
        for a in order.iter_rows(named=True):
            limit = budget if np.isfinite(best) else 2 * budget
            if len(rows) >= limit or (stop_early and a["usd_per_hour"] >= best):
                break
            if len(rows) >= total:  # retrying after the kernel refuted the shortlist
                bar.total = total = min(2 * budget, order.height)
                bar.refresh()
            cand = cands[a["_i"]]
            bar.set_postfix_str(cand.label, refresh=True)
            bracket = Bracket(
                int(a["instances1"]), int(a["instances2"] or 0), int(a.get("stable_instances1") or 0),
                int(a.get("stable_instances2") or 0),
            )  # fmt: skip
            row = checker.one(cand, bracket)
            bar.update(1)
            if report is not None:
                report(len(rows) + 1, total)
            n1, n2 = row["sim_instances1"] or 0, row["sim_instances2"] or 0
            usd = n1 * cand.tp * gpu_hour_usd(cand.gpu, cost, model, cand.tp)
            if n2:
                usd += n2 * cand.second_tp * gpu_hour_usd(cand.second_gpu, cost, model, cand.second_tp)
            met = row["sim_slo_met"]
            row.update(
                _i=a["_i"],
                sim_instances=n1 + n2 if met else None,
                sim_gpus=n1 * cand.tp + n2 * cand.second_tp if met else None,
                sim_usd_per_hour=usd if met else None,
                sim_usd_per_m_output_tokens=usd / (wl.output_tokens_per_s * 3600.0) * 1e6 if met else None,
                sim_gco2e_per_1k_output_tokens=gco2e_per_1k_tokens(row["sim_j_per_output_token"], place)
                if met
                else None,
            )
            rows.append(row)
            if met:
                best = min(best, usd)
    schema: dict[str, Any]
    schema = {c: pl.Int64 for c in ("sim_instances1", "sim_instances2", "sim_instances", "sim_gpus", "_i")}
    schema.update({c: pl.Int64 for c in ("sim_requests", "sim_verdicts", "sim_below_instances")})
    floats = ("sim_usd_per_hour", "sim_usd_per_m_output_tokens", "sim_j_per_output_token")
    schema.update({c: pl.Float64 for c in (*floats, "sim_gco2e_per_1k_output_tokens")})
    schema.update({c: pl.Float64 for c in _LATENCY_COLUMNS})
    schema.update({"sim_verdict": pl.Utf8, "sim_below": pl.Utf8, "sim_below_verdict": pl.Utf8})
    return pl.DataFrame(rows, schema_overrides=schema), pl.DataFrame(checker.runs, infer_schema_length=None)


_LATENCY_COLUMNS = (
    *(f"sim_{m}_{s}" for m in ("ttft_p99", "tpot_p99") for s in ("s", "lo", "hi")),
    "sim_goodput",
)


class _Checker:
    """Judges (and memoises) the counts of one candidate at a time with the kernel; records every verdict."""

    def __init__(
        self,
        wl: Workload,
        slo: SLO,
        model: str,
        seed: int,
        precision: Precision | None,
        per_pool: bool,
        perf: PerfName = "roofline",
    ) -> None:
        self.wl, self.slo, self.model, self.seed, self.perf = wl, slo, model, seed, perf
        self.precision, self.per_pool = precision, per_pool
        self.runs: list[dict] = []
        self._cache: dict[tuple[int, int], Verdict] = {}
        self._cand: Candidate | None = None

    def verdict(self, n1: int, n2: int) -> Verdict:
        """Return the whole fleet's verdict with ``n1``/``n2`` instances (memoised per candidate)."""
        cand = self._cand
        assert cand is not None
        key = (n1, n2)
        if key not in self._cache:
            fleet = build_fleet(cand, n1, n2, self.model, self.perf)
            present = [p.name for p in fleet.pools]
            pools = present if self.per_pool and len(present) > 1 else None
            good = self.slo if self.slo.goodput is not None else None
            run = fleet_runner(fleet, self.wl.requests, good=good)
            v = measure(run, slo_targets(self.slo, pools), seed=self.seed, precision=self.precision)
            self._cache[key] = v
            self.runs.append(
                {"candidate": cand.label, "instances1": n1, "instances2": n2, **verdict_columns(v, self.slo)}
            )
        return self._cache[key]

    def one(self, cand: Candidate, b: Bracket) -> dict:
        """Size ``cand`` from the screen's bracket; the ``sim_*`` row."""
        self._cand, self._cache = cand, {}
        if cand.topology == "monolithic":
            n1 = smallest_count(lambda n: self.verdict(n, 0), low=max(b.floor1 - 1, 0), start=max(b.n1, 1))
            n2: int | None = 0
        else:
            n1, n2 = self._two_pools(cand, b)
        found = n1 is not None and n2 is not None
        final = self.verdict(n1, n2) if found else None  # type: ignore[arg-type]
        row: dict = {"sim_instances1": n1 if found else None, "sim_instances2": n2 if found else None}
        row["sim_slo_met"] = bool(final is not None and final.meets)
        cols = verdict_columns(final, self.slo) if final is not None else {}
        for key in ("ttft_p99_s", "ttft_p99_lo", "ttft_p99_hi", "tpot_p99_s", "tpot_p99_lo", "tpot_p99_hi"):
            row[f"sim_{key}"] = cols.get(key)
        row["sim_goodput"] = cols.get("goodput")
        row["sim_verdict"] = final.status if final is not None else self._worst()
        row["sim_marginal"] = bool(final is not None and final.marginal)
        row["sim_j_per_output_token"] = None
        if final is not None:
            from workbench.power import energy

            row["sim_j_per_output_token"] = float(energy(final.result).fleet["j_per_output_token"][0])
        below = self._below(cand, n1, n2) if found else None
        row["sim_below_instances"] = None if below is None else below[0]
        row["sim_below_verdict"] = None if below is None else below[1].status
        row["sim_below"] = None if below is None else below[1].summary()
        row["sim_requests"] = sum(v.requests for v in self._cache.values())
        row["sim_verdicts"] = len(self._cache)
        return row

    def _worst(self) -> str:
        """Status of the largest fleet judged (the candidate was refuted)."""
        if not self._cache:
            return "undecided"
        return self._cache[max(self._cache, key=lambda k: k[0] + k[1])].status

    def _below(self, cand: Candidate, n1: int | None, n2: int | None) -> tuple[int, Verdict] | None:
        """Return the next-smaller fleet's verdict, for the explanation.

        The next-smaller fleet has one instance fewer in the last pool shrunk.
        """
        assert n1 is not None and n2 is not None
        options = [(n1 - 1, n2)] if cand.topology == "monolithic" else [(n1, n2 - 1), (n1 - 1, n2)]
        judged = [(k, self._cache[k]) for k in options if k in self._cache and min(k) >= 0 and sum(k) > 0]
        if not judged:
            return None
        k, v = judged[0]
        return k[0] + k[1], v

    def _two_pools(self, cand: Candidate, b: Bracket) -> tuple[int | None, int | None]:
        """Grow both pools from the screen's counts until the whole fleet meets, then shrink each."""
        reqs = self.wl.trace.requests
        if cand.topology == "length_pools":
            short = reqs["prompt_tokens"] <= cand.threshold
            need = (bool(short.any()), bool((~short).any()))
        else:
            need = (True, True)
        found = smallest_pair(self.verdict, (b.n1, b.n2), need=need, floor=(b.floor1, b.floor2))
        return (None, None) if found is None else found


def fmt_ci(
    value: float | None, low: float | None, high: float | None, unit: str = "s", scale: float = 1.0
) -> str:
    """``"0.43 s [0.41, 0.45]"`` (``"-"`` without a value)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if low is None or high is None:
        return f"{value * scale:.3g} {unit}"
    return f"{value * scale:.3g} {unit} [{low * scale:.3g}, {high * scale:.3g}]"
