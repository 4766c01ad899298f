"""Benchmark of the KV hierarchy (issue 20): what switching it on costs, next to the same run without it.

A 16-instance H100 / Llama-3.1-8B fleet (LMetric routing) replays a synthetic multi-turn trace (Poisson
sessions, log-normal lengths, shared system prompts, 512-token prefix hashes) without a hierarchy, with an
empty one (no tiers, no store: only the wrappers), with host DRAM tiers, and with DRAM plus a shared store. It
prints CPU seconds, requests per CPU second as a ratio to the reference loop (``../shared/bench/ref_loop.py``,
measured in this process), the cost relative to the run without a hierarchy, and the flows the links carried.

With the hierarchy off (``hierarchy=None``, the default) the simulator runs no code of it: the switch costs one
attribute test per routed request and per finished request (see ``benchmarks/README.md`` for the comparison
with the commit before the hierarchy).

Run: ``.venv/bin/python benchmarks/bench_kv.py [--requests N]``.
"""

from __future__ import annotations

import os

os.environ["POLARS_MAX_THREADS"] = "1"
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

import argparse
import dataclasses

from _ref import core, timed_ratio

from workbench.sim.fleet import simulate
from workbench.sim.kvtiers import KVHierarchy
from workbench.sim.topology import monolithic
from workbench.traces import LogNormal, Poisson, Sessions, Synthetic

ARMS = {
    "off": None,
    "empty hierarchy": KVHierarchy(),
    "DRAM 64 GB/GPU": KVHierarchy(dram={"capacity_gb": 64}),
    "DRAM + store": KVHierarchy(dram={"capacity_gb": 64}, store={"capacity_gb": 1024}),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=60_000)
    ap.add_argument("--instances", type=int, default=16)
    args = ap.parse_args()
    sessions = Sessions(mean_turns=4.0, think_s=30.0, system_prompt_tokens=1024, system_prompt_share=0.5)
    trace = Synthetic(Poisson(9.0 * args.instances), LogNormal(7.0, 1.0, 5.0, 0.8), sessions).generate(
        n=args.requests, seed=1
    )
    print(f"simulator core: {core()}; {args.requests:,} requests on {args.instances} instances (lmetric)")
    base = None
    for name, hierarchy in ARMS.items():
        fleet = dataclasses.replace(monolithic(args.instances, router="lmetric"), hierarchy=hierarchy)
        result, dt, ratio = timed_ratio(lambda f=fleet: simulate(trace, f, record_segments=False),
                                        args.requests, repeat=2)  # fmt: skip
        base = base or dt
        info = result.counters.get("kv_hierarchy")
        extra = f", {info['loads']:,} loads" if info else ""
        hit = float(result.requests["cached_tokens"].sum()) / float(result.requests["prompt_tokens"].sum())
        print(f"  {name:16s} {dt:6.2f} CPU s  {args.requests / dt:9,.0f} req/s = {ratio:.3f} x the reference "
              f"loop, {dt / base:4.2f} x off; hit rate {hit:.3f}{extra}")


if __name__ == "__main__":
    main()
