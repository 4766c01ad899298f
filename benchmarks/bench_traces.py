"""Benchmark: load a 10-million-row Azure-format CSV with the workbench and with pandas.read_csv.

Writes the CSV to a temporary folder (deleted afterwards), then loads it in separate subprocesses so that each
peak resident memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) is its own. Prints both times, the ratio
and the peaks. Targets: workbench >= 5x faster than pandas and <= 1 GB peak RSS. Each loader's CPU time (user +
system, all threads) and the machine's load average are printed too: pandas runs on one core and the workbench
on all of them, so on a busy machine the wall-clock ratio falls towards the CPU-time ratio.

The pandas baseline does the same job as the workbench's Azure adapter: ``read_csv`` plus parsing the
``TIMESTAMP`` strings into seconds from the first request; ``read_csv`` alone is reported too.

Usage: ``python benchmarks/bench_traces.py [--rows 10000000] [--repeat 1]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def write_csv(path: Path, rows: int, seed: int = 0) -> None:
    """An Azure LLM inference 2023 CSV: TIMESTAMP (7 fractional digits), ContextTokens, GeneratedTokens."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    chunk = 2_000_000
    t0 = np.datetime64("2023-11-16T18:17:03.9799600", "ns")
    offset = 0
    with path.open("wb") as fh:
        fh.write(b"TIMESTAMP,ContextTokens,GeneratedTokens\n")
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            gaps_ns = rng.exponential(0.05e9, n).astype(np.int64) // 100 * 100
            stamps = t0 + offset + np.cumsum(gaps_ns)
            offset = int((stamps[-1] - t0).astype(np.int64))
            df = pl.DataFrame(
                {
                    "TIMESTAMP": pl.Series(stamps).dt.strftime("%Y-%m-%d %H:%M:%S%.9f").str.slice(0, 27),
                    "ContextTokens": np.clip(rng.lognormal(7.2, 1.2, n), 1, 8000).astype(np.int32),
                    "GeneratedTokens": np.clip(rng.lognormal(3.0, 1.0, n), 1, 2000).astype(np.int32),
                }
            )
            df.write_csv(fh, include_header=False)


def child(kind: str, path: str) -> dict:
    """Load ``path`` once with ``kind`` and report seconds, rows and peak RSS (run in a fresh process)."""
    if kind == "workbench":
        from workbench.traces import load

        cpu, start = time.process_time(), time.perf_counter()
        trace = load(path)
        seconds = time.perf_counter() - start
        rows, check = len(trace), float(trace.requests["arrival_s"][-1])
    else:
        import pandas as pd

        cpu, start = time.process_time(), time.perf_counter()
        df = pd.read_csv(path)
        read_s = time.perf_counter() - start
        ts = pd.to_datetime(df["TIMESTAMP"], format="%Y-%m-%d %H:%M:%S.%f")
        df["arrival_s"] = (ts - ts.min()).dt.total_seconds()
        seconds = time.perf_counter() - start
        rows, check = len(df), float(df["arrival_s"].iloc[-1])
    cpu = time.process_time() - cpu
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    out = {"kind": kind, "seconds": seconds, "cpu_seconds": cpu, "rows": rows, "peak_rss_mb": peak_mb}
    out["last_arrival_s"] = check
    if kind == "pandas":
        out["read_csv_seconds"] = read_s
    return out


def run_child(kind: str, path: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=1, help="runs per loader (best time, max peak reported)")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    with tempfile.TemporaryDirectory(prefix="bench_traces_") as tmp:
        path = Path(tmp) / "azure_10m.csv"
        start = time.perf_counter()
        write_csv(path, args.rows)
        size_mb = path.stat().st_size / 1e6
        print(f"wrote {args.rows:,} rows ({size_mb:,.0f} MB) in {time.perf_counter() - start:.1f} s")
        results = {}
        for kind in ("workbench", "pandas"):
            runs = [run_child(kind, path) for _ in range(args.repeat)]
            best = min(runs, key=lambda r: r["seconds"])
            best["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
            results[kind] = best
            assert best["rows"] == args.rows, best
        wb, pd_ = results["workbench"], results["pandas"]
        assert abs(wb["last_arrival_s"] - pd_["last_arrival_s"]) < 1e-6, (wb, pd_)
        ratio = pd_["seconds"] / wb["seconds"]
        print(
            f"workbench.traces.load : {wb['seconds']:7.2f} s   peak RSS {wb['peak_rss_mb']:7.0f} MB"
            f"   (CPU {wb['cpu_seconds']:.2f} s)"
        )
        print(
            f"pandas read_csv+dates : {pd_['seconds']:7.2f} s   peak RSS {pd_['peak_rss_mb']:7.0f} MB"
            f"   (CPU {pd_['cpu_seconds']:.2f} s; read_csv alone {pd_['read_csv_seconds']:.2f} s)"
        )
        print(
            f"speed-up vs pandas    : {ratio:7.1f}x  (vs read_csv alone "
            f"{pd_['read_csv_seconds'] / wb['seconds']:.1f}x)   "
            f"target >= 5x: {'met' if ratio >= 5 else 'MISSED'}"
        )
        print(
            f"workbench peak RSS    : {wb['peak_rss_mb']:7.0f} MB   target <= 1024 MB: "
            f"{'met' if wb['peak_rss_mb'] <= 1024 else 'MISSED'}"
        )
        load1, load5, _ = os.getloadavg()
        print(
            f"machine               : {os.cpu_count()} CPUs, load average {load1:.1f} (1 min), {load5:.1f} "
            f"(5 min); CPU-time ratio {pd_['cpu_seconds'] / wb['cpu_seconds']:.1f}x"
        )


if __name__ == "__main__":
    main()
