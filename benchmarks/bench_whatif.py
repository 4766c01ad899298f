"""Cost and quality of the what-if tools' searches: the grid-flex simulation check and the capacity refinement.

Run: ``.venv/bin/python benchmarks/bench_whatif.py``. Grid flex: two H100 instances at 20 req/s (P99 TTFT 2 s,
TPOT 60 ms), the default grid of 13 batch caps x 11 clocks, 800 simulated requests; the deepest-first scan
against the exhaustive check (every analytically feasible setting simulated: the baseline) and against the old
bisection, which assumed the simulator's verdict is monotone in the cut. Planning: ``plan_workload`` (capacity
re-measured at each fleet's size) against ``plan`` on capacity measured at one instance, 70B on three GPUs.
"""

from __future__ import annotations

import time

import polars as pl

from workbench.planning import SLO, workload
from workbench.traces import LogNormal, Poisson, Synthetic
from workbench.whatif import capacity_at_slo, check_setting, grid_flex, plan, plan_workload


def _bisect(rows: list[dict], passes) -> tuple[dict | None, int]:
    """The old search: bisection over options sorted deepest first, assuming monotone verdicts."""
    done: dict[int, bool] = {}

    def ok(i: int) -> bool:
        if i not in done:
            done[i] = passes(rows[i])
        return done[i]

    lo, hi = -1, len(rows) - 1
    if not ok(hi):
        return None, len(done)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return rows[hi], len(done)


def bench_grid_flex() -> None:
    tr = Synthetic(arrivals=Poisson(20.0), lengths=LogNormal(6.5, 0.8, 5.0, 0.7)).generate(1500, seed=1)
    wl, slo = workload(tr, 20.0), SLO(2.0, 0.06)
    grid_flex(wl, slo, "H100", 2, check=False)  # warm caches (screen tables, imports)
    t0 = time.perf_counter()
    res = grid_flex(wl, slo, "H100", 2)
    t_scan = time.perf_counter() - t0
    trace = wl.trace.with_requests(wl.trace.requests.head(800))
    ranked = res.options.filter("slo_met").sort(["ceiling_reduction", "mean_reduction"], descending=True)
    rows = list(ranked.iter_rows(named=True))

    def passes(row: dict) -> bool:
        found = check_setting(trace, slo, "H100", 2, max_num_seqs=row["max_num_seqs"], clock=row["clock"])
        return found["slo_met"]

    t0 = time.perf_counter()
    verdicts = [passes(r) for r in rows]
    t_all = time.perf_counter() - t0
    truth = next(r for r, v in zip(rows, verdicts, strict=True) if v)
    old, n_old = _bisect(rows, passes)
    b = res.best
    print(f"grid flex: {res.options.height} settings, {len(rows)} analytically feasible, "
          f"{sum(verdicts)} pass in simulation ({t_all / len(rows) * 1e3:.1f} ms per simulation)")  # fmt: skip
    print(f"  exhaustive check (baseline): {len(rows)} simulations, {t_all:.2f} s -> cap "
          f"{truth['max_num_seqs']}, clock {truth['clock']:g}, "
          f"ceiling cut {truth['ceiling_reduction']:.1%}")  # fmt: skip
    print(f"  old bisection: {n_old} simulations -> cap {old['max_num_seqs']}, clock {old['clock']:g}, "
          f"ceiling cut {old['ceiling_reduction']:.1%}")  # fmt: skip
    print(f"  deepest-first scan: {res.sims} simulations incl. baseline, grid_flex {t_scan:.2f} s -> cap "
          f"{b['max_num_seqs']}, clock {b['clock']:g}, ceiling cut {b['ceiling_reduction']:.1%}, mean-power "
          f"cut {b['mean_reduction']:.1%} predicted / {b['sim_mean_reduction']:.1%} simulated")  # fmt: skip
    assert (b["max_num_seqs"], b["clock"]) == (truth["max_num_seqs"], truth["clock"])


def bench_refine() -> None:
    tr = Synthetic(arrivals=Poisson(20.0), lengths=LogNormal(6.5, 0.8, 5.0, 0.7)).generate(1000, seed=1)
    wl, slo = workload(tr, 20.0), SLO(2.0, 0.1)
    gpus, model = ["H100", "A100", "L40S"], "Llama-3.1-70B"
    cols = ["gpu", "nodes", "instances", "capacity_instances", "requests_per_s"]
    for mode, target in (("budget", 5e6), ("performance", 20_000.0)):
        t0 = time.perf_counter()
        naive = plan(mode, target, capacity_at_slo(wl, slo, gpus, model=model, instances=1))
        t_naive = time.perf_counter() - t0
        t0 = time.perf_counter()
        refined = plan_workload(mode, target, wl, slo, gpus, model=model, instances=1, verify=False)
        t_ref = time.perf_counter() - t0
        both = naive.select(cols).join(refined.select(cols), on="gpu", suffix="_refined").rename(
            lambda c: c.replace("capacity_instances", "measured_at").replace("requests_per_s", "req_s")
        )
        print(f"{mode} {target:g}: plan on capacity at 1 instance {t_naive * 1e3:.0f} ms, plan_workload "
              f"{t_ref * 1e3:.0f} ms")  # fmt: skip
        with pl.Config(tbl_cols=12, tbl_width_chars=160, float_precision=2):
            print(both)


def main() -> None:
    bench_grid_flex()
    bench_refine()


if __name__ == "__main__":
    main()
