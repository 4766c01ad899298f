"""Golden test: the summary of a small fixed workload is stored and compared (regenerate deliberately with
``WORKBENCH_REGEN_GOLDEN=1``; a missing golden file fails)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from workbench.sim import InstanceConfig, LinearPerfModel, SchedulerConfig, SimConfig, Simulation, summary

GOLDEN = Path(__file__).parent / "data" / "sim_golden_summary.json"
PERF = LinearPerfModel(
    overhead_s=5e-3, prefill_s_per_token=5e-5, prefill_attn_s=1e-9, decode_s_per_seq=2e-4, decode_attn_s=1e-8
)


def workload() -> pl.DataFrame:
    rng = np.random.default_rng(20240501)
    n = 300
    prompt = rng.integers(16, 2_000, n)
    groups = np.where(
        rng.random(n) < 0.5, rng.integers(0, 4, n), np.arange(10, 10 + n)
    )  # half share 4 prefixes
    return pl.DataFrame(
        {
            "request_id": pl.Series(np.arange(n), dtype=pl.UInt64),
            "arrival_s": np.cumsum(rng.exponential(1 / 40.0, n)),
            "prompt_tokens": pl.Series(prompt, dtype=pl.Int32),
            "output_tokens": pl.Series(rng.integers(1, 300, n), dtype=pl.Int32),
            "prefix_hashes": pl.Series(
                [[1000 * g + j for j in range(p // 64)] for g, p in zip(groups, prompt, strict=True)],
                dtype=pl.List(pl.UInt64),
            ),
        }
    )


def result():
    config = SimConfig(
        instance=InstanceConfig(
            perf=PERF,
            kv_capacity_tokens=12_000,
            scheduler=SchedulerConfig(max_num_seqs=48, max_num_batched_tokens=2048),
        ),
        n_instances=2,
    )
    sim = Simulation(seed=0, prefix_block_tokens=64)
    for _ in range(config.n_instances):
        sim.add_instance(config.instance)
    return sim.run(workload())


def test_golden_summary():
    table = summary(result(), ttft_slo=0.5, tpot_slo=0.012)
    got = {k: (round(v, 9) if isinstance(v, float) else v) for k, v in table.row(0, named=True).items()}
    if os.environ.get("WORKBENCH_REGEN_GOLDEN"):
        GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    if not GOLDEN.exists():  # a missing golden file fails; it is never written silently
        pytest.fail(
            f"{GOLDEN} is missing: run WORKBENCH_REGEN_GOLDEN=1 pytest {__file__}, review and commit it"
        )
    want = json.loads(GOLDEN.read_text())
    assert set(got) == set(want)
    for key, value in want.items():
        if isinstance(value, float):
            assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
        else:  # counts, and the reject_reasons text (null: nothing rejected)
            assert got[key] == value, key
    # the golden workload exercises what it should
    assert 0 < want["prefix_hit_rate"] < 1
    assert want["preemptions"] > 0
    assert 0 < want["slo_attainment"] < 1
