"""Fleet-simulation benchmark: 64 instances, 1,000,000 requests, one core.

Targets (issue 16): ``jsq`` at >= 0.066 x the reference loop's customers per second (``../shared/bench/
ref_loop.py``, run next to each timed run in this process), and ``lmetric`` with prefix caching within 1.5 x
``jsq``'s time. The simulator core in use (compiled or pure Python) is printed first. The workload is a
synthetic multi-turn trace (Poisson sessions, log-normal lengths, shared system prompts, Mooncake-style
512-token prefix hashes) at about 70 % of the fleet's capacity. In the same process, ``round_robin`` (the
cheapest router) is the baseline: the ratio shows what a routing policy costs on top of the engine.

The process pins itself to one CPU core and polars to one thread. Target verdicts are printed only at the
default size (other sizes print timings only).

Run: ``.venv/bin/python benchmarks/bench_fleet.py [--requests N] [--instances K]``.
"""

from __future__ import annotations

import os

# one core, as the targets say: pin the process and keep polars to one thread (before polars is imported)
os.environ["POLARS_MAX_THREADS"] = "1"
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

import argparse
import resource
import time

from _ref import core, ref_speed

from workbench.sim.fleet import simulate, summarize
from workbench.sim.topology import monolithic
from workbench.traces import LogNormal, Poisson, Sessions, Synthetic

#: The size the issue's targets are stated for; verdicts are printed only there.
DEFAULT_REQUESTS, DEFAULT_INSTANCES = 1_000_000, 64


def workload(n: int, instances: int, seed: int = 0):
    """Multi-turn trace with prefix reuse at about 8 requests/s per instance."""
    lengths = LogNormal(prompt_mu=6.0, prompt_sigma=0.8, output_mu=4.6, output_sigma=0.7)
    sessions = Sessions(mean_turns=3.0, think_s=20.0, system_prompt_tokens=1024, n_system_prompts=32,
                        system_prompt_share=0.6, block_tokens=512)  # fmt: skip
    gen = Synthetic(arrivals=Poisson(8.0 * instances), lengths=lengths, sessions=sessions, name="bench")
    return gen.generate(n, seed=seed)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(trace, instances: int, router: str) -> tuple[float, float, float, dict]:
    """Wall and CPU seconds of one simulation, its requests per second over the reference loop's customers
    per second (the faster of the reference runs before and after), and its summary."""
    ref = ref_speed()
    cpu, t0 = time.process_time(), time.perf_counter()
    res = simulate(trace, monolithic(instances, router=router), record_segments=False, progress=False)
    dt, cpu = time.perf_counter() - t0, time.process_time() - cpu
    ratio = len(trace) / cpu / max(ref, ref_speed())  # CPU seconds on both sides (see _ref.py)
    return dt, cpu, ratio, summarize(res)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=DEFAULT_REQUESTS)
    ap.add_argument("--instances", type=int, default=DEFAULT_INSTANCES)
    args = ap.parse_args()
    load1, load5, _ = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, load average {load1:.1f} (1 min), {load5:.1f} (5 min); "
          "the machine is shared when the load exceeds 1: read the ratios to the reference loop")
    print(f"simulator core: {core()}")
    at_target_size = (args.requests, args.instances) == (DEFAULT_REQUESTS, DEFAULT_INSTANCES)
    t0 = time.perf_counter()
    trace = workload(args.requests, args.instances)
    print(f"workload: {len(trace):,} requests, {args.instances} instances, generated in "
          f"{time.perf_counter() - t0:.1f} s; peak RSS {peak_rss_mb():,.0f} MiB")  # fmt: skip
    times = {}
    for router in ("round_robin", "jsq", "lmetric"):
        dt, cpu, ratio, s = run(trace, args.instances, router)
        times[router] = dt
        verdict = ""
        if at_target_size and router == "jsq":
            verdict = f"  target >= 0.066 x reference: {'met' if ratio >= 0.066 else 'MISSED'}"
        if at_target_size and router == "lmetric":
            verdict = f"  target <= 1.5 x jsq: {'met' if dt <= 1.5 * times['jsq'] else 'MISSED'}"
        print(
            f"{router:12s} {dt:7.1f} s (CPU {cpu:6.1f} s)  {len(trace) / dt:10,.0f} simulated req/s "
            f"= {ratio:.4f} x reference  x{dt / times['round_robin']:.2f} vs round_robin  "
            f"x{dt / times.get('jsq', dt):.2f} vs jsq  peak RSS {peak_rss_mb():,.0f} MiB  "
            f"TTFT p50 {s['ttft_p50_s']:.3f} s p99 {s['ttft_p99_s']:.3f} s  hit rate {s['hit_rate']:.2f}"
            f"{verdict}"
        )


if __name__ == "__main__":
    main()
