"""The fast engine reproduces a straightforward per-iteration, per-sequence simulator (independent oracle)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from workbench.errors import ConfigError
from workbench.sim import InstanceConfig, LinearPerfModel, SchedulerConfig, simulate
from workbench.sim.reference import simulate_reference


def workload(rng: np.random.Generator, n: int, rate: float) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "request_id": pl.Series(np.arange(n), dtype=pl.UInt64),
            "arrival_s": np.cumsum(rng.exponential(1 / rate, n)),
            "prompt_tokens": pl.Series(rng.integers(1, 1500, n), dtype=pl.Int32),
            "output_tokens": pl.Series(rng.integers(1, 200, n), dtype=pl.Int32),
        }
    )


@pytest.mark.parametrize("seed", range(6))
def test_engine_matches_reference_loop(seed):
    rng = np.random.default_rng(seed)
    reqs = workload(rng, 250, rng.uniform(5, 60))
    sched = SchedulerConfig(
        max_num_seqs=int(rng.integers(1, 64)),
        max_num_batched_tokens=int(rng.integers(64, 4096)),
        chunked_prefill=bool(seed % 2),
        prefill_chunk_tokens=None if seed % 3 else 256,
    )
    perf = None if seed == 0 else LinearPerfModel()  # the roofline once, the affine model otherwise
    cfg = InstanceConfig(perf=perf, kv_capacity_tokens=int(rng.integers(100, 2000)) * 16, scheduler=sched)
    fast = simulate(reqs, cfg).requests
    ref = simulate_reference(reqs, cfg)
    assert (fast["finish_s"].is_null() == ref["finish_s"].is_null()).all()
    for col in ("first_token_s", "finish_s"):
        diff = (fast[col] - ref[col]).abs().max()
        assert diff is None or diff < 1e-9, (col, diff)
    assert fast["preemptions"].to_list() == ref["preemptions"].to_list()


def test_reference_scope_is_checked():
    with pytest.raises(ConfigError, match="decode_first"):
        simulate_reference(
            workload(np.random.default_rng(0), 3, 1.0),
            InstanceConfig(scheduler=SchedulerConfig(priority="prefill_first")),
        )
