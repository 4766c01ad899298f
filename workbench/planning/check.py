"""Step 2 of sizing: verify the best analytic candidates with the fleet simulator.

For a candidate, each pool's instance count is bisected with the simulator until the SLO holds with the fewest
instances: starting from the analytic count, the search doubles upwards while the SLO fails (or halves the
interval downwards while it holds). Pools are searched one at a time, the other pool held at a generous count
(twice its analytic count), then fixed at its own minimum: the short and long pools of a length split serve
disjoint requests, and the prefill and decode pools of a disaggregated fleet answer for TTFT and TPOT.

A length split is then refined: the SLO is the fleet's (its P99 is over all requests, as for a monolithic
fleet), and two pools that each meet it on their own requests are more than it asks: the long pool, a small
share of requests, may have a worse tail of its own, as the longest requests of a monolithic fleet may. So the
long pool and then the short pool are each bisected down while the whole fleet still meets the SLO (Azure code
trace at 100 req/s on L40S, 2048-token split: the long pool shrank from 121 to 116 instances). Sizing both
pools on the fleet-wide SLO from the start is worse: the first pool searched uses up the slack and the second
needs many more instances (36 + 168 instead of 40 + 116 there). The analytic screen sizes each pool for the
quantile on its own requests, so it is conservative for two-pool fleets.

Latencies are measured on the requests of a window of the trace after a warm-up (the first
:data:`WARMUP_SHARE` of arrivals are simulated but not scored, so the empty start does not flatter the fleet).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import polars as pl

from workbench.planning.spec import SLO, Candidate, CostBasis
from workbench.planning.workload import Workload

#: Share of the window's first arrivals that warm the fleet up and are not scored.
WARMUP_SHARE = 0.1
#: Largest factor above the analytic count the upward search tries.
MAX_GROWTH = 16


def build_fleet(cand: Candidate, n1: int, n2: int, model: str):
    """The :class:`~workbench.sim.topology.Fleet` of a candidate with ``n1``/``n2`` instances."""
    from workbench.sim.config import SchedulerConfig
    from workbench.sim.topology import Fleet, Pool

    sched = SchedulerConfig(max_num_seqs=cand.max_num_seqs, max_num_batched_tokens=max(8192, cand.max_num_seqs))
    common = {"model": model, "router": cand.router, "scheduler": sched}
    if cand.topology == "monolithic":
        return Fleet(pools=(Pool("main", gpu=cand.gpu, tp=cand.tp, instances=n1, **common),))
    if cand.topology == "length_pools" and min(n1, n2) == 0:
        # a pool without instances is left out (the window has no request for it)
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


def measure(requests: pl.DataFrame, slo: SLO, pool: str | None = None) -> dict:
    """Latency quantiles, goodput and SLO verdict of a simulation's scored requests (optionally one pool)."""
    df = requests if pool is None else requests.filter(pl.col("pool") == pool)
    served = df.filter(~pl.col("rejected"))
    q = slo.quantile
    if served.height == 0:
        return {
            "ttft_p50_s": 0.0,
            "ttft_p99_s": 0.0,
            "tpot_p50_s": 0.0,
            "tpot_p99_s": 0.0,
            "goodput": 1.0,
            "rejected": df.height,
            "met": df.height == 0,
        }
    ttft = served["ttft_s"].fill_null(np.inf)
    tpot = served["tpot_s"].fill_null(0.0)
    good = pl.Series([True] * served.height)
    if slo.ttft_s is not None:
        good = good & (ttft <= slo.ttft_s)
    if slo.tpot_s is not None:
        good = good & (tpot <= slo.tpot_s)
    out = {
        "ttft_p50_s": float(ttft.quantile(0.5, "linear")),
        "ttft_p99_s": float(ttft.quantile(q, "linear")),
        "tpot_p50_s": float(tpot.quantile(0.5, "linear")),
        "tpot_p99_s": float(tpot.quantile(q, "linear")),
        "goodput": float(good.mean()) * served.height / df.height,
        "rejected": df.height - served.height,
    }
    if slo.goodput is not None:
        met = out["goodput"] >= slo.goodput
    else:
        met = (slo.ttft_s is None or out["ttft_p99_s"] <= slo.ttft_s) and (
            slo.tpot_s is None or out["tpot_p99_s"] <= slo.tpot_s
        )
    out["met"] = bool(met) and out["rejected"] == 0
    return out


def _window(wl: Workload, sim_requests: int):
    trace = wl.trace
    if trace.requests.height <= sim_requests:
        return trace
    return trace.with_requests(trace.requests.head(sim_requests))


def _scored(result, trace) -> pl.DataFrame:
    cut = trace.requests["arrival_s"].quantile(WARMUP_SHARE, "lower")
    return result.requests.filter(pl.col("arrival_s") >= cut)


def bisect_count(met: Callable[[int], bool], start: int, *, low: int = 0) -> int | None:
    """Smallest ``n > low`` with ``met(n)`` (monotone), searching from ``start``; ``None`` if not found."""
    start = max(start, low + 1)
    if met(start):
        hi, lo = start, low
    else:
        lo, hi = start, None
        step = start
        while hi is None:
            step *= 2
            nxt = lo + step if lo + step <= start * MAX_GROWTH else None
            if nxt is None:
                return None
            if met(nxt):
                hi = nxt
            else:
                lo = nxt
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if met(mid):
            hi = mid
        else:
            lo = mid
    return hi


def check_candidates(
    wl: Workload,
    slo: SLO,
    cands: Sequence[Candidate],
    analytic: pl.DataFrame,
    *,
    model: str,
    cost: CostBasis,
    budget: int = 3,
    sim_requests: int = 3000,
    seed: int = 0,
    stop_early: bool = False,
    progress: bool | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Verify the cheapest analytic candidates by simulation until none left can beat the best verified one.

    Candidates are taken in order of analytic cost per hour (``analytic`` has columns ``_i`` - the index into
    ``cands`` - ``usd_per_hour``, ``instances1``, ``instances2`` and ``slo_met``). Each is bisected; the loop
    stops after ``budget`` candidates, or (``stop_early``) when the next candidate's analytic cost is already at
    least the cheapest simulated cost (the analytic count is normally optimistic, so it cannot win). When the
    simulator refutes all ``budget`` candidates (no count up to :data:`MAX_GROWTH` x the analytic one meets the
    SLO), up to ``budget`` more are tried, so that one unlucky shortlist does not turn into "no fleet".
    Candidates at a reduced clock are not simulated (the fleet simulator runs GPUs at full clock).
    ``progress`` shows a bar over the candidates (``None``: in a terminal or notebook only).

    Returns ``(rows, runs)``: one row per simulated candidate (``_i`` and ``sim_*`` columns) and one row per
    simulation run.
    """
    from tqdm.auto import tqdm

    from workbench._progress import progress_enabled
    from workbench.carbon import site
    from workbench.planning.costs import gpu_hour_usd

    place = site(cost.site)
    g_per_j = 1000.0 * place.pue / 3.6e6 * place.need("grid_gco2e_per_kwh")  # per 1k tokens

    checker = _Checker(_window(wl, sim_requests), slo, model, seed)
    order = analytic.filter(pl.col("slo_met") & (pl.col("clock") == 1.0)).sort("usd_per_hour", "gpus")
    rows: list[dict] = []
    best = np.inf
    bar = tqdm(
        total=min(budget, order.height), desc="check", unit="cand", disable=not progress_enabled(progress)
    )
    with bar:
        for a in order.iter_rows(named=True):
            limit = budget if np.isfinite(best) else 2 * budget
            if len(rows) >= limit or (stop_early and a["usd_per_hour"] >= best):
                break
            if len(rows) >= bar.total:  # retrying after the simulator refuted the shortlist
                bar.total = min(2 * budget, order.height)
                bar.refresh()
            cand = cands[a["_i"]]
            bar.set_postfix_str(cand.label, refresh=True)
            row = checker.one(cand, int(a["instances1"]), int(a["instances2"] or 0))
            bar.update(1)
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
                sim_gco2e_per_1k_output_tokens=row["sim_j_per_output_token"] * g_per_j if met else None,
            )
            rows.append(row)
            if met:
                best = min(best, usd)
    schema = {c: pl.Int64 for c in ("sim_instances1", "sim_instances2", "sim_instances", "sim_gpus", "_i")}
    floats = ("sim_usd_per_hour", "sim_usd_per_m_output_tokens", "sim_j_per_output_token")
    schema.update({c: pl.Float64 for c in (*floats, "sim_gco2e_per_1k_output_tokens")})
    return pl.DataFrame(rows, schema_overrides=schema), pl.DataFrame(checker.runs)


def _met_on(m: dict, slo: SLO, which: str) -> bool:
    """SLO verdict on one latency only (the one the pool being searched answers for)."""
    if m["rejected"]:
        return False
    if which == "ttft":
        return slo.ttft_s is None or m["ttft_p99_s"] <= slo.ttft_s
    return slo.tpot_s is None or m["tpot_p99_s"] <= slo.tpot_s


class _Checker:
    """Runs (and memoises) the simulations of one candidate at a time; records every run."""

    def __init__(self, trace, slo: SLO, model: str, seed: int) -> None:
        self.trace, self.slo, self.model, self.seed = trace, slo, model, seed
        self.runs: list[dict] = []
        self._cache: dict[tuple[int, int], pl.DataFrame] = {}
        self._raw: dict[tuple[int, int], object] = {}
        self._cand: Candidate | None = None

    def run(self, n1: int, n2: int, pool: str | None = None) -> dict:
        """Measurements of the current candidate with ``n1``/``n2`` instances (whole fleet or one pool)."""
        from workbench.sim.fleet import simulate as simulate_fleet

        assert self._cand is not None
        if (n1, n2) not in self._cache:
            res = simulate_fleet(self.trace, build_fleet(self._cand, n1, n2, self.model), seed=self.seed)
            scored = _scored(res, self.trace)
            self._cache[(n1, n2)], self._raw[(n1, n2)] = scored, res
            self.runs.append(
                {"candidate": self._cand.label, "instances1": n1, "instances2": n2, **measure(scored, self.slo)}
            )
        return measure(self._cache[(n1, n2)], self.slo, pool)

    def one(self, cand: Candidate, a1: int, a2: int) -> dict:
        """Bisect the pools of ``cand`` from its analytic counts ``a1``/``a2``; the ``sim_*`` row."""
        self._cand, self._cache, self._raw = cand, {}, {}
        slo = self.slo
        n2: int | None = 0
        if cand.topology == "monolithic":
            n1 = bisect_count(lambda n: self.run(n, 0)["met"], a1)
        elif cand.topology == "disaggregated":
            n1 = bisect_count(lambda n: _met_on(self.run(n, 2 * a2 + 1), slo, "ttft"), a1)
            if n1 is not None:
                n2 = bisect_count(lambda n: _met_on(self.run(n1, n), slo, "tpot"), a2)
        else:
            short = self.trace.requests["prompt_tokens"] <= cand.threshold
            has_short, has_long = bool(short.any()), bool((~short).any())
            n1 = bisect_count(lambda n: self.run(n, 2 * a2 + 1, "short")["met"], max(a1, 1)) if has_short else 0
            if n1 is not None and has_long:
                n2 = bisect_count(lambda n: self.run(n1, n, "long")["met"], max(a2, 1))
            if n1 and n2 and self.run(n1, n2)["met"]:
                # each pool meets the SLO on its own requests; the SLO is the fleet's: shrink the long pool,
                # then the short one, while the whole fleet still meets it (see the module docstring)
                n2 = bisect_count(lambda n: self.run(n1, n)["met"], n2)
                n1 = bisect_count(lambda n: self.run(n, n2)["met"], n1)
        found = n1 is not None and n2 is not None
        final = self.run(n1, n2) if found else {}
        if found:
            from workbench.power import energy

            final["j_per_output_token"] = float(energy(self._raw[(n1, n2)]).fleet["j_per_output_token"][0])
        return {
            "sim_instances1": n1 if found else None,
            "sim_instances2": n2 if found else None,
            "sim_slo_met": bool(found and final["met"]),
            "sim_ttft_p50_s": final.get("ttft_p50_s"),
            "sim_ttft_p99_s": final.get("ttft_p99_s"),
            "sim_tpot_p50_s": final.get("tpot_p50_s"),
            "sim_tpot_p99_s": final.get("tpot_p99_s"),
            "sim_goodput": final.get("goodput"),
            "sim_j_per_output_token": final.get("j_per_output_token"),
            "sim_runs": len(self._cache),
        }
