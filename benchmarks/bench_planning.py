"""Benchmark of fleet planning (targets: 10,000-candidate screen <= 1 s, 2-worker sweep >= 1.8x, sizing <= 60s).

1. Analytic screen of 10,000 distinct candidate fleets drawn at random (seeded) from a grid of 12,150 (8 GPU
   types, TP 1/2/4, monolithic / two-pool / P-D, thresholds, heterogeneous second pools, batch caps, clocks; the
   mix is printed) on the Azure code trace at 20 req/s; cold (first call: performance tables, power curves) and
   warm. Baseline in the same process: the same screen called one
   candidate at a time (200 candidates, extrapolated), printed as a ratio.
2. A 64-point simulation sweep (fixed fleets x routers x batch caps, 8,000 requests each) through
   :func:`workbench.experiments.sweep` on 1 and 2 workers (loky processes, started before timing): wall
   times, speed-up, and a check that both tables are identical.
3. The full sizing of the default workload (Azure code trace at 20 req/s, P99 TTFT <= 2 s, P99 TPOT <= 100 ms,
   H100/A100/L40S x three topologies, simulation check of the 3 cheapest): wall time end to end.

The machine is shared: rerun when it is quiet and read the ratios, not only the absolute times.
Run: ``.venv/bin/python benchmarks/bench_planning.py [--quick]``.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import statistics
import time
from collections import Counter
from pathlib import Path

import numpy as np

from workbench.experiments import sweep
from workbench.planning import SLO, Candidate, candidate_grid, pareto_front, screen_table, size_fleet, workload
from workbench.planning.pareto import SimPoint, point_configs
from workbench.sim.measure import Precision
from workbench.traces import load
from workbench.traces.synthetic import LogNormal, Poisson, Synthetic

TRACES = Path(os.environ.get("WORKBENCH_DATA_DIR", Path(__file__).resolve().parents[2] / "shared/data/traces"))
MODEL = "Llama-3.1-8B"


def timed(fn, *args, **kw):
    gc.collect()
    t = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t


def screen_candidates(n: int, seed: int = 0) -> tuple[list[Candidate], int]:
    """``n`` distinct candidates drawn at random (seeded) from the full grid, and the grid's size."""
    gpus = ["H100", "A100", "L40S", "L4", "H200", "A10G", "MI300X", "B200"]
    full = candidate_grid(
        gpus,
        tps=[1, 2, 4],
        topologies=["monolithic", "length_pools", "disaggregated"],
        thresholds=[512, 1024, 2048, 4096, 8192, 16384],
        gpus2=[None, "H100", "A100"],
        max_num_seqs=[32, 64, 128, 256, 512],
        clocks=[0.6, 0.7, 0.8, 0.9, 1.0],
    )
    assert len(set(full)) == len(full) >= n, (len(set(full)), len(full), n)
    pick = np.sort(np.random.default_rng(seed).choice(len(full), size=n, replace=False))
    return [full[i] for i in pick], len(full)


def describe_mix(cands: list[Candidate]) -> str:
    """Counts of the sample by topology, heterogeneous fleets, GPU types, TP degrees, clocks and batch caps."""
    topo = Counter(c.topology for c in cands)
    het = sum(c.topology != "monolithic" and c.gpu2 is not None for c in cands)
    return (
        f"monolithic {topo['monolithic']:,}, two-pool {topo['length_pools']:,}, P/D {topo['disaggregated']:,} "
        f"({het:,} heterogeneous); {len({c.gpu for c in cands})} GPU types, "
        f"TP {sorted({c.tp for c in cands})}, {len({c.clock for c in cands})} clocks, "
        f"{len({c.max_num_seqs for c in cands})} batch caps, "
        f"{len({c.threshold for c in cands if c.threshold})} thresholds"
    )


def bench_screen(n: int) -> None:
    wl = workload(load(TRACES / "AzureLLMInferenceTrace_code.csv"), 20.0)
    slo = SLO(2.0, 0.1)
    cands, grid_size = screen_candidates(n)
    assert len(set(cands)) == n
    print(f"[screen] {n:,} distinct candidates drawn at random from {grid_size:,}: {describe_mix(cands)}")
    table, cold = timed(screen_table, wl, slo, cands, MODEL)
    warm = statistics.median(timed(screen_table, wl, slo, cands, MODEL)[1] for _ in range(3))
    sub = cands[:: max(1, n // 200)][:200]
    _, loop = timed(lambda: [screen_table(wl, slo, [c], MODEL) for c in sub])
    per_loop = loop / len(sub)
    print(
        f"[screen] {n:,} candidates: cold {cold:.2f} s, warm {warm:.3f} s (target <= 1 s) "
        f"-> {n / warm:,.0f} candidates/s; {int(table['slo_met'].sum()):,} meet the SLO"
    )
    print(
        f"[screen] one-at-a-time baseline: {per_loop * 1e3:.1f} ms per candidate "
        f"(~{per_loop * n:.0f} s for {n:,}); vectorised speed-up {per_loop * n / warm:,.0f}x"
    )


def sweep_points(n_points: int, sim_requests: int):
    gen = Synthetic(Poisson(20.0), LogNormal(math.log(800), 1.0, math.log(150), 0.8), name="poisson-lognormal")
    wl = workload(gen.generate(n=sim_requests, seed=0))
    routers = ["jsq", "round_robin", "p2c", "least_tokens"]
    shapes = [("H100", n) for n in (2, 3, 4, 6)] + [("L40S", n) for n in (4, 6, 8, 10)]
    fleets = [
        (Candidate(g, router=r, max_num_seqs=c), n) for g, n in shapes for r in routers for c in (128, 256)
    ]
    fleets = fleets[:n_points]
    cands = [c for c, _ in fleets]
    counts = [(n, 0) for _, n in fleets]
    fixed = Precision(start_requests=sim_requests, max_requests=sim_requests)  # one look of sim_requests each
    configs = point_configs(cands, counts, wl, slo=SLO(1.0, 0.05), model=MODEL, precision=fixed)
    return SimPoint(wl), configs


def bench_sweep(n_points: int, sim_requests: int) -> None:
    run, configs = sweep_points(n_points, sim_requests)
    sweep(configs[:2], run, n_jobs=2, progress=False)  # start the 2 loky workers (reused below)
    t1, s1 = timed(sweep, configs, run, n_jobs=1, progress=False)
    t2, s2 = timed(sweep, configs, run, n_jobs=2, progress=False)
    same = t1.equals(t2)
    print(
        f"[sweep] {len(configs)} simulation points x {sim_requests:,} requests: 1 worker {s1:.1f} s, "
        f"2 workers {s2:.1f} s, speed-up {s1 / s2:.2f}x (target >= 1.8x on 2 free cores); "
        f"tables identical: {same}"
    )
    front = pareto_front(t1)
    print(
        f"[sweep] {int(t1['slo_met'].sum())} of {t1.height} fleets meet P99 TTFT <= 1 s / TPOT <= 50 ms; "
        f"{int(front['pareto'].sum())} on the Pareto front"
    )


def bench_sizing() -> None:
    trace = load(TRACES / "AzureLLMInferenceTrace_code.csv")
    cands = candidate_grid(
        ["H100", "A100", "L40S"],
        topologies=["monolithic", "length_pools", "disaggregated"],
        thresholds=[2048, 4096],
    )
    res, sec = timed(size_fleet, trace, SLO(2.0, 0.1), cands, model=MODEL, qps=20.0, check=3)
    best = res.best
    print(
        f"[sizing] default workload end to end: {sec:.1f} s (target <= 60 s; "
        f"screen {res.timings['screen_s']:.2f} s, "
        f"check {res.timings['check_s']:.1f} s, {res.checks.height} simulations)"
    )
    if best is not None:
        print(
            f"[sizing] answer: {best['candidate']} x {best['sim_instances']} instances, "
            f"${best['sim_usd_per_hour']:.2f}/h (analytic {best['instances']})"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1,000 candidates and 16 sweep points")
    args = ap.parse_args()
    print(f"os.cpu_count() = {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}")
    bench_sizing()  # first: a cold process, as a user would run it
    bench_screen(1_000 if args.quick else 10_000)
    bench_sweep(16 if args.quick else 64, 2000 if args.quick else 8000)


if __name__ == "__main__":
    main()
