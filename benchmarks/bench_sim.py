"""Benchmark of the instance simulator (issue 16's targets: 1,000,000 requests at >= 0.1 x the reference loop's
customers per second, measured in the same process, and <= 1 GB peak; start-up, ``import workbench.sim`` and a
1,000-request run in a fresh process, <= 1 s).

One Llama-3.1-8B instance on an H100 (roofline model), Azure code-trace lengths resampled, Poisson arrivals
at 80 % of the instance's saturated throughput (measured by a run with all requests arriving at once).
Prints wall times, simulated requests per second, the peak resident memory, the speed ratio against a
per-iteration loops (the same engine with event skipping off, and the straightforward per-sequence loop of
:mod:`workbench.sim.reference`) and the queueing mode's customers per second
for M/M/8 at rho = 0.8. ``--erlang`` adds the Erlang-C validation runs of ``tests/test_sim_queueing.py``
(M/M/4 at rho 0.5, 0.8, 0.95 with 1.5, 2.5 and 18 million customers, about 15 s) and prints their errors and
95 % confidence half-widths.

The reference is ``../shared/bench/ref_loop.py`` (a plain heapq M/M/8 loop), run next to each timed run; the
simulator core in use (compiled or pure Python, ``WORKBENCH_PURE_PYTHON=1``) is printed first.

Run: ``.venv/bin/python benchmarks/bench_sim.py [--quick] [--erlang]``.
"""

from __future__ import annotations

import argparse
import gc
import resource
import subprocess
import sys
import time
from pathlib import Path

from _ref import core, ref_speed, timed_ratio

from workbench.analytic import erlang_c, mmc_mean_wait
from workbench.sim import Exponential, InstanceConfig, SchedulerConfig, simulate, simulate_queue, summary
from workbench.sim.reference import simulate_reference
from workbench.traces import Empirical, Poisson, Synthetic, load

TRACES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "traces"


def azure_lengths() -> Empirical:
    return Empirical.from_trace(load("azure_code", allow_download=False))


def sharegpt_lengths() -> Empirical | None:
    import os

    path = (
        Path(os.environ.get("WORKBENCH_DATA_DIR", TRACES))
        / "sarathi_sharegpt_8k_filtered_stats_llama2_tokenizer.csv"
    )
    return Empirical.from_trace(load(path)) if path.exists() else None


def timed(fn, *args, **kw):
    gc.collect()
    t = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


#: The Erlang-C validation runs (same as tests/test_sim_queueing.py): (rho, customers) of M/M/4, seed 11.
ERLANG_RUNS = ((0.5, 1_500_000), (0.8, 2_500_000), (0.95, 18_000_000))


def erlang(c: int, rho: float) -> tuple[float, float]:
    """P(wait > 0) and mean wait of M/M/c with unit mean service time."""
    return float(erlang_c(c, rho)), float(mmc_mean_wait(c, rho, 1.0))


STARTUP = """
import numpy as np, polars as pl
from workbench.sim import InstanceConfig, simulate
n = 1000
rng = np.random.default_rng(0)
reqs = pl.DataFrame({"request_id": np.arange(n), "arrival_s": np.cumsum(rng.exponential(0.08, n)),
                     "prompt_tokens": rng.integers(50, 2000, n), "output_tokens": rng.integers(5, 300, n)})
simulate(reqs, InstanceConfig(gpu="H100", model="Llama-3.1-8B"), progress=False)
"""


def startup_s() -> tuple[float, float]:
    """Wall and CPU seconds of a fresh interpreter that imports workbench.sim and simulates 1,000 requests (the
    CPU time, user + system, is what a loaded machine distorts least)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", STARTUP], check=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="skip the 1,000,000-request run")
    ap.add_argument("--erlang", action="store_true", help="long Erlang-C validation runs")
    args = ap.parse_args()
    print(f"simulator core: {core()}; reference loop {ref_speed():,.0f} customers/s now")
    config = InstanceConfig(gpu="H100", model="Llama-3.1-8B")
    lengths = azure_lengths()

    sat = Synthetic(Poisson(1e9), lengths).generate(n=20_000, seed=1)
    res, _ = timed(simulate, sat, config)
    capacity = sat.requests.height / res.counters["makespan_s"]
    rate = 0.8 * capacity
    print(f"Llama-3.1-8B on 1x H100: saturated throughput {capacity:.2f} req/s; 80 % load = {rate:.2f} req/s")

    sizes = [100_000] if args.quick else [100_000, 1_000_000]
    for n in sizes:
        trace = Synthetic(Poisson(rate), lengths).generate(n=n, seed=2)
        gc.collect()
        res, dt, ratio = timed_ratio(lambda trace=trace: simulate(trace, config, progress=False), n)
        s = summary(res).row(0, named=True)
        print(
            f"{n:>9,} requests: {dt:6.2f} CPU s, {n / dt:,.0f} req/s = {ratio:.3f} x the reference loop, "
            f"{res.counters['events']:,} events, "
            f"{res.segments.height:,} segments, peak RSS {peak_rss_mb():,.0f} MB; "
            f"TTFT p50/p99 {s['ttft_p50_s']:.3f}/{s['ttft_p99_s']:.3f} s, "
            f"TPOT p50 {s['tpot_p50_s'] * 1e3:.1f} ms"
        )
        del res, trace
        if n == 1_000_000:
            ok = ratio >= 0.1 and peak_rss_mb() <= 1024
            print(f"target: >= 0.1 x the reference loop and <= 1,024 MB peak: {'met' if ok else 'MISSED'}")
    runs = [startup_s() for _ in range(3)]
    wall, cpu = min(w for w, _ in runs), min(c for _, c in runs)
    print(f"start-up (fresh process: import workbench.sim + a 1,000-request run): {wall:.2f} s wall, "
          f"{cpu:.2f} s CPU (target <= 1 s: {'met' if min(wall, cpu) <= 1.0 else 'MISSED'})")  # fmt: skip

    slow_cfg = InstanceConfig(gpu="H100", model="Llama-3.1-8B", scheduler=SchedulerConfig(event_skipping=False))
    workloads = [("Azure code lengths", lengths, rate)]
    share = sharegpt_lengths()
    if share is not None:  # decode-heavy: ~440 output tokens per request
        sat = Synthetic(Poisson(1e9), share).generate(n=5_000, seed=1)
        cap = sat.requests.height / timed(simulate, sat, config)[0].counters["makespan_s"]
        workloads.append(("ShareGPT lengths", share, 0.8 * cap))
    for label, lens, r in workloads:
        trace = Synthetic(Poisson(r), lens).generate(n=10_000, seed=3)
        fast, t_fast = timed(simulate, trace, config)
        slow, t_slow = timed(simulate, trace, slow_cfg)
        ref, t_ref = timed(simulate_reference, trace.requests, config)
        same = max(
            (fast.requests["finish_s"] - other["finish_s"]).abs().max() for other in (slow.requests, ref)
        )
        print(
            f"10,000 requests, {label} at 80 % load: event skipping {t_fast:.2f} s "
            f"({fast.counters['events']:,} events); same engine, one event per iteration {t_slow:.2f} s "
            f"({slow.counters['events']:,} events, ratio {t_slow / t_fast:.1f}x); straightforward "
            f"per-iteration, per-sequence loop {t_ref:.2f} s (ratio {t_ref / t_fast:.1f}x); "
            f"max |finish difference| {same:.1e} s"
        )

    c, rho, customers = 8, 0.8, 1_000_000
    q, dt = timed(simulate_queue, rho * c, Exponential(1.0), c, customers, seed=1)
    p, w = erlang(c, rho)
    print(
        f"queueing mode M/M/8 at rho 0.8: {customers / dt:,.0f} customers/s; P(wait>0) {q.p_wait:.4f} "
        f"(Erlang-C {p:.4f}), mean wait {q.mean_wait:.4f} (Erlang-C {w:.4f})"
    )
    if args.erlang:
        for rho, customers in ERLANG_RUNS:
            q, dt = timed(
                simulate_queue, rho * 4, Exponential(1.0), 4, customers, seed=11, warmup=0.02, table=False
            )
            p, w = erlang(4, rho)
            inside = abs(q.p_wait - p) <= q.p_wait_ci and abs(q.mean_wait - w) <= q.mean_wait_ci
            print(
                f"M/M/4 rho {rho}: {customers:,} customers in {dt:.1f} s: P(wait>0) error "
                f"{q.p_wait / p - 1:+.2%} (95 % CI +-{q.p_wait_ci / p:.2%}), mean wait error "
                f"{q.mean_wait / w - 1:+.2%} (95 % CI +-{q.mean_wait_ci / w:.2%}); Erlang-C inside both CIs: "
                f"{'yes' if inside else 'NO'}"
            )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
