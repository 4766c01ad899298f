"""The analytic screen's error against the measurement kernel on a fixed panel (workloads x GPUs x topologies).

The screen (:mod:`workbench.planning.screen`) only brackets the sizing; the measurement kernel
(:mod:`workbench.sim.measure`) decides. This script measures how far the screen's instance count is from the
kernel's on a fixed panel and prints the table README's "How far to trust the models" quotes:

* workloads: a Poisson generator with log-normal lengths at 10 req/s (P99 TTFT <= 1 s, TPOT <= 50 ms); the
  Azure 2023 code trace at 20 req/s, at 2 s / 100 ms and at 1 s / 50 ms (finite: each verdict replays the whole
  trace, 8,818 requests); the inference-fleet-sim LMSYS prompt CDF with log-normal outputs (median 500) at
  200 req/s, P99 TTFT <= 0.5 s only, on A100 TP2 (the issue-13 case, screen 15);
* GPUs H100, A100, L40S (Llama-3.1-8B, TP 1); topologies monolithic and two pools split at 2,048 prompt tokens;
* kernel precision: 10 % tolerance, at most 64,000 requests a verdict (``--tolerance``, ``--max-requests``).

``ratio`` is screen / kernel instances (> 1: the screen over-counts); ``off_2x`` marks cases off by more than
2x, which :func:`workbench.planning.size_fleet`'s explanation flags. Results go to
``benchmarks/screen_panel.csv``.
Run: ``.venv/bin/python benchmarks/bench_screen_panel.py [--quick]`` (the full panel takes tens of minutes of
CPU).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import polars as pl

from workbench.planning import SLO, Candidate, size_fleet, workload
from workbench.sim.measure import Precision
from workbench.traces import LogNormal, Poisson, Synthetic, load

HERE = Path(__file__).resolve().parent
MODEL = "Llama-3.1-8B"


def panel(quick: bool) -> list[tuple[str, object, float, SLO, list[Candidate]]]:
    """(name, workload, qps, SLO, candidates) of each panel row group."""
    from workbench.studies.fleets import cdf_workload

    poisson = Synthetic(
        Poisson(10.0), LogNormal(math.log(800), 1.0, math.log(150), 0.8), name="poisson-lognormal"
    )
    azure = load("azure_code", allow_download=False)
    gpus = ["H100"] if quick else ["H100", "A100", "L40S"]

    def cands(g: str) -> list[Candidate]:
        return [Candidate(g), Candidate(g, topology="length_pools", threshold=2048)]

    rows = [
        (
            "poisson-lognormal 10 req/s, 1 s / 50 ms",
            poisson,
            10.0,
            SLO(1.0, 0.05),
            [c for g in gpus for c in cands(g)],
        ),
        ("azure_code 20 req/s, 2 s / 100 ms", azure, 20.0, SLO(2.0, 0.1), [c for g in gpus for c in cands(g)]),
    ]
    if not quick:
        rows.append(
            ("azure_code 20 req/s, 1 s / 50 ms", azure, 20.0, SLO(1.0, 0.05), [Candidate(g) for g in gpus])
        )
        lmsys = cdf_workload("ifs_lmsys_cdf", 200.0, output_median=500.0)
        rows.append(("lmsys-cdf 200 req/s, 0.5 s", lmsys, 200.0, SLO(0.5, None), [Candidate("A100", tp=2)]))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="H100 only, first two workloads")
    ap.add_argument("--tolerance", type=float, default=0.1)
    ap.add_argument("--max-requests", type=int, default=64_000)
    args = ap.parse_args()
    precision = Precision(tolerance=args.tolerance, max_requests=args.max_requests)
    out = []
    t0, c0 = time.perf_counter(), time.process_time()
    for name, source, qps, slo, cands in panel(args.quick):
        wl = workload(source, qps, seed=0)
        for cand in cands:
            t, c = time.perf_counter(), time.process_time()
            res = size_fleet(wl, slo, [cand], model=MODEL, check=1, precision=precision, seed=0)
            r = res.table.row(0, named=True)
            screen, kernel = r["instances"], r.get("sim_instances")
            row = {
                "workload": name,
                "candidate": cand.label,
                "screen": screen,
                "kernel": kernel,
                "ratio": screen / kernel if screen and kernel else None,
                "below": r.get("sim_below"),
                "requests": r.get("sim_requests"),
                "cpu_s": round(time.process_time() - c, 1),
            }
            row["off_2x"] = row["ratio"] is not None and (row["ratio"] > 2.0 or row["ratio"] < 0.5)
            out.append(row)
            print(f"{name} | {cand.label}: screen {screen}, kernel {kernel}, {row['cpu_s']} s CPU "
                  f"({time.perf_counter() - t:.0f} s wall)", flush=True)  # fmt: skip
    table = pl.DataFrame(out, infer_schema_length=None)
    table.write_csv(HERE / "screen_panel.csv")
    ok = table.filter(pl.col("ratio").is_not_null())
    err = (ok["ratio"] - 1.0).abs()
    print(
        f"\n{ok.height} cases with both counts; |screen / kernel - 1|: median {err.median():.0%}, max "
        f"{err.max():.0%}; off by more than 2x: {int(ok['off_2x'].sum())}; "
        f"{time.process_time() - c0:.0f} s CPU, {time.perf_counter() - t0:.0f} s wall"
    )
    with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=200, fmt_str_lengths=60):
        print(table.drop("below"))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
