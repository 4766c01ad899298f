"""The seed papers' directions, where they are stable across seeds (numbers in notebooks/03_routing.ipynb)."""

from __future__ import annotations

import polars as pl
import pytest

from workbench.sim.studies import (
    SEED_POLICIES,
    cdf_trace,
    disaggregation_study,
    length_split_study,
    policy_study,
)
from workbench.traces import LogNormal, Poisson, Synthetic


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_two_pool_split_protects_short_requests(seed):
    """inference-fleet-sim (arXiv 2603.16054): on the agent-heavy mix, two pools split at 8,192 tokens cut the
    short requests' P99 TTFT several-fold against one pool of the same 8 GPUs (about 0.5 s vs 2.2 s)."""
    agent = cdf_trace("ifs_agent_heavy_cdf", 1500, rate=20.0, seed=seed)
    table, _ = length_split_study(agent, gpus=8, thresholds=(8192,))
    mono, two = table.iter_rows(named=True)
    assert two["policy"].startswith("two-pool @8192")
    assert two["short_ttft_p99_s"] < 0.35 * mono["short_ttft_p99_s"]
    assert two["short_ttft_p99_s"] < 0.8 and mono["short_ttft_p99_s"] > 1.5
    assert two["rejected"] == mono["rejected"] == 0


@pytest.mark.parametrize("seed", [0, 1])
def test_disaggregation_trades_ttft_for_tpot(seed):
    """Disaggregated 2P:6D vs colocated on 8 GPUs: decode free of prefill interference (lower TPOT), but two
    prefill GPUs queue the prompts (several times the P99 TTFT)."""
    lengths = LogNormal(prompt_mu=7.6, prompt_sigma=0.6, output_mu=5.5, output_sigma=0.6)
    mixed = Synthetic(arrivals=Poisson(30.0), lengths=lengths).generate(1000, seed=seed)
    table, _ = disaggregation_study(mixed, gpus=8, prefill_shares=(0.25,))
    colo, dis = table.iter_rows(named=True)
    assert dis["policy"] == "disaggregated 2P:6D"
    assert dis["ttft_p99_s"] > 4 * colo["ttft_p99_s"]
    assert dis["tpot_p50_s"] < 0.9 * colo["tpot_p50_s"]


def test_mooncake_cache_aware_routers_far_ahead_at_high_load(shared_traces):
    """LMetric (arXiv 2603.15202) on the whole Mooncake trace at 3x on 8 instances with prefix caching: LMetric
    and llm-d have P50 TTFT under 0.3x round robin's; LMetric is best or second at P50 and far ahead at P99."""
    from workbench.traces import load

    trace = load(shared_traces / "mooncake_synthetic_trace.jsonl")
    table, _ = policy_study(trace, SEED_POLICIES, loads=(3.0,), instances=8)
    row = {r["policy"]: r for r in table.iter_rows(named=True)}
    rr = row["round_robin"]
    for p in ("lmetric", "llmd"):
        assert row[p]["ttft_p50_s"] < 0.3 * rr["ttft_p50_s"]
    ranks = table.select("policy", pl.col("ttft_p50_s").rank("min").alias("rank"))
    assert ranks.filter(pl.col("policy") == "lmetric")["rank"][0] <= 2
    assert row["lmetric"]["ttft_p99_s"] < 0.3 * rr["ttft_p99_s"]
    assert row["lmetric"]["hit_rate"] > 3 * rr["hit_rate"]
