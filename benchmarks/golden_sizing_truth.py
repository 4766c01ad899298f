"""The true answer of the golden sizing case of ``tests/test_golden.py`` from long runs (writes its golden).

The case: Poisson arrivals at 22 req/s, log-normal lengths (prompt median e^6.5 ~ 665 tokens, output median
e^5 ~ 148), Llama-3.1-8B on 1 x H100 per instance, monolithic, P99 TTFT <= 2 s and P99 TPOT <= 60 ms. For each
instance count around the answer, one run of ``--requests`` requests (default 400,000) on seed 99 (independent
of the test's seeds 0-2) is judged by the measurement kernel without extension: the fill of the empty fleet
removed, stability tested, the P99s with 95 % confidence intervals. The true answer is the smallest count
whose verdict meets. Run: ``.venv/bin/python benchmarks/golden_sizing_truth.py`` (about 5 minutes of CPU),
then review and commit ``tests/data/golden/sizing_truth.csv``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import polars as pl

from workbench.planning import SLO, Candidate
from workbench.planning.check import build_fleet, verdict_columns
from workbench.sim.measure import Precision, fleet_runner, measure, request_source, slo_targets
from workbench.traces import LogNormal, Poisson, Synthetic

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "golden" / "sizing_truth.csv"
QPS = 22.0  # one H100 is stable at this rate but fails P99 TPOT in steady state; two meet
GEN = Synthetic(arrivals=Poisson(QPS), lengths=LogNormal(6.5, 0.8, 5.0, 0.7), name="golden-sizing")
SLO_ = SLO(ttft_s=2.0, tpot_s=0.06)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=400_000)
    ap.add_argument("--counts", type=int, nargs="+", default=[1, 2, 3])
    args = ap.parse_args()
    rows = []
    for n in args.counts:
        t = time.process_time()
        fleet = build_fleet(Candidate("H100"), n, 0, "Llama-3.1-8B")
        p = Precision(start_requests=args.requests, max_requests=args.requests)
        v = measure(fleet_runner(fleet, request_source(GEN)), slo_targets(SLO_), seed=99, precision=p)
        row = {"qps": QPS, "instances": n, **verdict_columns(v, SLO_), "backlog_growth": v.backlog_growth}
        rows.append(row)
        print(f"{n} instances: {v.summary()} ({time.process_time() - t:.0f} s CPU)", flush=True)
    table = pl.DataFrame(rows).drop("marginal", "met", "requests")
    table.write_csv(OUT)
    print(table)


if __name__ == "__main__":
    main()
