"""Simulations that exercise the whole simulator core (prefix caching, preemption, chunked and whole-prompt
prefill, prefill-first, disaggregation, failures, autoscaling, cache-aware routing); run directly, it writes
their request tables to a folder (``python tests/_core_scenarios.py OUT``) so that the compiled and the
pure-Python core can be compared (tests/test_compiled_core.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import polars as pl

from workbench.sim import InstanceConfig, LinearPerfModel, SchedulerConfig, Simulation
from workbench.sim.autoscale import AutoscaleConfig
from workbench.sim.engine import PRIO_CONTROL
from workbench.sim.fleet import simulate
from workbench.sim.topology import Fleet, Pool
from workbench.traces import LogNormal, Poisson, Sessions, Synthetic
from workbench.traces.schema import Trace

PERF = LinearPerfModel(
    overhead_s=5e-3, prefill_s_per_token=5e-5, prefill_attn_s=1e-9, decode_s_per_seq=2e-4, decode_attn_s=1e-8
)


def _prefix_workload(n: int = 400, seed: int = 7) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    prompt = rng.integers(16, 3_000, n)
    groups = np.where(rng.random(n) < 0.6, rng.integers(0, 5, n), np.arange(10, 10 + n))
    return pl.DataFrame(
        {
            "request_id": pl.Series(np.arange(n), dtype=pl.UInt64),
            "arrival_s": np.cumsum(rng.exponential(1 / 50.0, n)),
            "prompt_tokens": pl.Series(prompt, dtype=pl.Int32),
            "output_tokens": pl.Series(rng.integers(1, 400, n), dtype=pl.Int32),
            "prefix_hashes": pl.Series(
                [[1000 * g + j for j in range(p // 64)] for g, p in zip(groups, prompt, strict=True)],
                dtype=pl.List(pl.UInt64),
            ),
        }
    )


def _instances(**sched) -> dict[str, pl.DataFrame]:
    cfg = InstanceConfig(
        perf=PERF, kv_capacity_tokens=10_000, scheduler=SchedulerConfig(max_num_seqs=48, **sched)
    )
    sim = Simulation(seed=0, prefix_block_tokens=64)
    for _ in range(2):
        sim.add_instance(cfg)
    a = sim.instances[0]
    sim.engine.schedule(3.0, PRIO_CONTROL, lambda inst, now: sim.fail_instance(inst, repair_s=0.5), a)
    return {"requests": sim.run(_prefix_workload()).requests}


def _sessions(n: int, rate: float, seed: int):
    sessions = Sessions(mean_turns=3.0, think_s=5.0, system_prompt_tokens=1024, n_system_prompts=4,
                        system_prompt_share=0.6, block_tokens=512)  # fmt: skip
    lengths = LogNormal(prompt_mu=7.0, prompt_sigma=0.8, output_mu=4.5, output_sigma=0.6)
    return Synthetic(arrivals=Poisson(rate), lengths=lengths, sessions=sessions).generate(n, seed=seed)


def _mixed(trace):
    """``trace`` with requests without prefix hashes (every fifth null, every fifth an empty list) and a few
    prompts too long for a small GPU's KV cache (a heterogeneous pool routes them over a sub-view)."""
    r = trace.requests
    rid = pl.col("request_id")
    empty = pl.lit([], dtype=r.schema["prefix_hashes"])
    hashes = pl.when(rid % 5 == 0).then(None).when(rid % 5 == 1).then(empty).otherwise(pl.col("prefix_hashes"))
    long = pl.when(rid % 40 == 7).then(pl.lit(60_000, dtype=pl.Int32)).otherwise(pl.col("prompt_tokens"))
    return trace.with_requests(r.with_columns(hashes.alias("prefix_hashes"), long.alias("prompt_tokens")))


def _lazy_evictions() -> pl.DataFrame:
    """LMetric on two small instances (2,686 KV tokens each): A's 100 prefix blocks are cached on instance 0,
    B's long decode run there borrows them and evicts them lazily, and C (A's prefix) arrives at 40, 60 or
    70 s, before and after the run has evicted most of them: the router must see the cache as a per-iteration
    loop has it then (one table, a row per request and arrival time of C)."""
    prefix = [1000 + j for j in range(100)]
    pool = Pool("m", gpu="H200-SXM", mig="1g", model="Llama-2-7B", instances=2, router="lmetric")
    tables = []
    for arrival in (40.0, 60.0, 70.0):
        rows = pl.DataFrame(
            {
                "request_id": pl.Series(range(3), dtype=pl.UInt64),
                "arrival_s": [0.0, 0.5, arrival],
                "prompt_tokens": pl.Series([1601, 17, 1617], dtype=pl.Int32),
                "output_tokens": pl.Series([2, 2500, 2], dtype=pl.Int32),
                "prefix_hashes": pl.Series([prefix, [7], prefix], dtype=pl.List(pl.UInt64)),
            }
        )
        tables.append(simulate(Trace(rows, prefix_block_tokens=16), Fleet(pools=(pool,))).requests)
    return pl.concat(tables)


def scenarios() -> dict[str, pl.DataFrame]:
    """Name -> requests table of each scenario."""
    out = {
        "chunked": _instances()["requests"],
        "whole_prompt": _instances(chunked_prefill=False, max_num_batched_tokens=4096)["requests"],
        "prefill_first": _instances(priority="prefill_first")["requests"],
        "no_skipping": _instances(event_skipping=False)["requests"],
    }
    tr = _sessions(1500, 40.0, 3)
    for router in ("lmetric", "llmd", "jsq"):
        out[f"fleet_{router}"] = simulate(
            tr, Fleet(pools=(Pool("m", gpu="A10G", instances=4, router=router),))
        ).requests
    # LMetric's compiled fast path against its router (pure Python): both batch rules, a heterogeneous pool
    mixed = _mixed(tr)
    for batch in ("running", "outstanding"):
        pool = Pool("h", gpu={"A10G": 2, "H100-SXM": 2}, router="lmetric", router_params={"batch": batch})
        out[f"fleet_lmetric_{batch}_mixed"] = simulate(mixed, Fleet(pools=(pool,))).requests
    out["fleet_lmetric_lazy_evictions"] = _lazy_evictions()
    pd = Fleet(pools=(Pool("p", role="prefill", instances=2), Pool("d", role="decode", instances=2)))
    out["disaggregated"] = simulate(tr, pd).requests
    auto = AutoscaleConfig(policy="threshold", max_instances=4, interval_s=2.0, setup_delay_s=5.0)
    out["autoscaled"] = simulate(
        tr, Fleet(pools=(Pool("a", gpu="A10G", instances=1, autoscale=auto),))
    ).requests
    return out


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    for name, df in scenarios().items():
        df.write_parquet(folder / f"{name}.parquet")
