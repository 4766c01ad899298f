"""Speed of the exact energy integral (workbench.power.energy) against a per-segment Python loop baseline.

Prints timings and the ratio baseline / vectorised measured in the same process (the machine is noisy), and the
time of the hourly carbon footprint of the same run (:func:`workbench.carbon.footprint_of`).

Usage: ``python benchmarks/bench_energy.py [--quick]`` (``--quick``: one small run, a few seconds).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import polars as pl

from workbench.carbon import diurnal_profile, footprint_of, site
from workbench.power import energy, instance_power
from workbench.sim.result import INSTANCE_SCHEMA, REQUEST_SCHEMA, SEGMENT_SCHEMA, SimResult


def make(n_instances: int, per_instance: int, seed: int = 0) -> SimResult:
    rng = np.random.default_rng(seed)
    n = n_instances * per_instance
    dur = rng.exponential(0.05, n)
    inst = np.repeat(np.arange(n_instances), per_instance)
    end = np.concatenate([np.cumsum(d) for d in dur.reshape(n_instances, per_instance)])
    seg = pl.DataFrame(
        {
            "instance": inst,
            "start_s": end - dur,
            "end_s": end,
            "state": rng.choice(["busy", "busy", "busy", "idle"], n),
            "batch_size": rng.integers(1, 256, n),
            "prefill_tokens": np.zeros(n, int),
            "kv_blocks_used": np.zeros(n, int),
            "iterations": np.ones(n, int),
        },
        schema=SEGMENT_SCHEMA,
    )
    inst_tab = pl.DataFrame(
        {
            "instance": np.arange(n_instances),
            "pool": ["p"] * n_instances,
            "gpu": ["H100-SXM"] * n_instances,
            "model": ["Llama-3.1-8B"] * n_instances,
            "tp": [1] * n_instances,
            "n_gpus": [1.0] * n_instances,
            "kv_capacity_blocks": [1000] * n_instances,
        },
        schema=INSTANCE_SCHEMA,
    )
    return SimResult(pl.DataFrame(schema=REQUEST_SCHEMA), seg, inst_tab)


def baseline(res: SimResult) -> float:
    p = instance_power("H100-SXM", "Llama-3.1-8B", 1)
    total = 0.0
    for row in res.segments.iter_rows(named=True):
        total += p.power_w(row["state"], row["batch_size"]) * (row["end_s"] - row["start_s"])
    return total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one small run (20,000 segments)")
    args = parser.parse_args(argv)
    sizes = ((4, 5_000),) if args.quick else ((16, 6_250), (64, 15_625))
    place = site("germany", carbon_profile=diurnal_profile(381.0, 100.0))
    for n_inst, per in sizes:
        res = make(n_inst, per)
        t0 = time.perf_counter()
        report = energy(res)
        t1 = time.perf_counter()
        slow = baseline(res)
        t2 = time.perf_counter()
        footprint_of(report, place)
        t3 = time.perf_counter()
        assert abs(report.fleet["energy_j"][0] / slow - 1) < 1e-9
        n = res.segments.height
        print(
            f"{n:>9,} segments: energy() {t1 - t0:.3f} s, Python loop {t2 - t1:.3f} s, "
            f"speed-up x{(t2 - t1) / (t1 - t0):.0f}; hourly footprint_of() {t3 - t2:.3f} s"
        )


if __name__ == "__main__":
    main()
