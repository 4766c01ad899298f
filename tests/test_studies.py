"""Single-run fleet studies (`studies.fleets`): tables, SLO sizing and autoscaling curves on small traces."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from workbench.errors import ConfigError
from workbench.sim.fleet import SUMMARY_SCHEMA, simulate, summarize
from workbench.sim.measure import Precision
from workbench.sim.topology import monolithic
from workbench.studies.fleets import (
    autoscale_curve,
    cdf_trace,
    disaggregation_study,
    length_split_study,
    policy_ranks,
    policy_study,
    slo_sizing,
)
from workbench.traces import Fixed, LogNormal, Poisson, Synthetic, TimeVarying
from workbench.traces.synthetic import PiecewiseRate


def test_summarize_keys_match_schema():
    tr = Synthetic(arrivals=Poisson(5.0), lengths=Fixed(500, 20)).generate(30, seed=0)
    row = summarize(simulate(tr, monolithic(1)))
    assert list(row) == list(SUMMARY_SCHEMA)


def test_policy_ranks_and_ratios():
    table = pl.DataFrame({
        "load": ["x1"] * 3 + ["x2"] * 3,
        "policy": ["round_robin", "jsq", "lmetric"] * 2,
        "ttft_p50_s": [1.0, 0.5, 0.5, 4.0, 2.0, 0.4],
        "ttft_p99_s": [10.0, 5.0, 6.0, 40.0, 30.0, 50.0],
    })  # fmt: skip
    ranks = policy_ranks(table)
    lm = ranks.filter(pl.col("policy") == "lmetric")
    assert lm["rank_p50"].to_list() == [1, 1] and lm["rank_p99"].to_list() == [2, 3]
    assert lm["p50_vs_base"].to_list() == pytest.approx([0.5, 0.1])
    assert lm["p99_vs_base"].to_list() == pytest.approx([0.6, 1.25])
    with pytest.raises(ConfigError, match="baseline: policy 'random' is not in the table; it has: round_robin"):
        policy_ranks(table, baseline="random")


def test_policy_study_rows_per_load_and_policy():
    tr = Synthetic(arrivals=Poisson(20.0), lengths=Fixed(800, 30)).generate(120, seed=0)
    table, results = policy_study(tr, ("round_robin", "jsq"), loads=(1.0, 2.0), instances=2)
    assert table.select("load", "policy").rows() == [
        ("x1", "round_robin"), ("x1", "jsq"), ("x2", "round_robin"), ("x2", "jsq"),
    ]  # fmt: skip
    assert set(results) == {(1.0, "round_robin"), (1.0, "jsq"), (2.0, "round_robin"), (2.0, "jsq")}
    x2 = table.filter(pl.col("load") == "x2")["ttft_p50_s"]
    x1 = table.filter(pl.col("load") == "x1")["ttft_p50_s"]
    assert (x2 >= x1).all()  # the same requests twice as fast wait at least as long


def test_cdf_trace_is_seeded_and_follows_the_cdf():
    a = cdf_trace("ifs_agent_heavy_cdf", 500, rate=10.0, seed=4)
    b = cdf_trace("ifs_agent_heavy_cdf", 500, rate=10.0, seed=4)
    assert a.requests.equals(b.requests)
    assert not a.requests.equals(cdf_trace("ifs_agent_heavy_cdf", 500, rate=10.0, seed=5).requests)
    prompts = a.requests["prompt_tokens"]
    assert 1000 < prompts.median() < 10_000 and prompts.max() > 20_000  # heavy tail


@pytest.fixture(scope="module")
def agent():
    return cdf_trace("ifs_agent_heavy_cdf", 600, rate=8.0, seed=0)


def test_length_split_study_columns_and_split(agent):
    table, results = length_split_study(agent, gpus=4, thresholds=(8192,))
    size = agent.requests["prompt_tokens"].cast(pl.Int64) + agent.requests["output_tokens"]
    n_short = round(4 * size.filter(size <= 8192).sum() / size.sum())  # GPUs in proportion to the tokens
    name = f"two-pool @8192 ({n_short}+{4 - n_short})"
    assert table["policy"].to_list() == ["monolithic", name]
    two = results[name].requests.filter(~pl.col("rejected"))
    size = two["prompt_tokens"] + two["output_tokens"]
    assert (two.filter(size <= 8192)["pool"] == "short").all()
    assert (two.filter(size > 8192)["pool"] == "long").all()
    assert (table["cost_usd"] > 0).all() and table["short_ttft_p99_s"].is_not_null().all()


#: A coarse measurement kernel for tests (20 % tolerance, at most 32,000 requests a verdict).
FAST = Precision(tolerance=0.2, max_requests=32_000)


def test_slo_sizing_finds_the_fewest_gpus_by_kernel_verdicts():
    """Log-normal prompts (median 1,000, P99 ~10,000 tokens) at 12 req/s on H100, P99 TTFT <= 1 s: every count
    is a whole-fleet verdict of the measurement kernel, and the count below the answer is judged too."""
    gen = Synthetic(arrivals=Poisson(12.0), lengths=LogNormal(math.log(1000), 1.0, math.log(100), 0.8))
    table, results = slo_sizing(gen, slo_s=1.0, thresholds=(2048,), max_gpus=8, precision=FAST)
    mono, two = table.iter_rows(named=True)
    assert mono["policy"] == "monolithic" and mono["meets_slo"] and mono["verdict"] == "meets"
    n = mono["gpus"]
    assert mono["ttft_p99_lo"] <= mono["ttft_p99_s"] <= mono["ttft_p99_hi"] < 1.0
    assert n == 1 or mono["below"].split(":")[0] in ("fails", "unstable", "undecided")
    assert mono["simulated_requests"] >= 8000 * (2 if n > 1 else 1)
    assert results["monolithic"].instances.height == n
    assert two["policy"] == "two-pool @2048" and two["short_gpus"] + two["long_gpus"] == two["gpus"]
    assert two["meets_slo"] and two["ttft_p99_hi"] < 1.0  # the whole fleet's P99, not one pool's
    from workbench.hardware import gpu

    assert mono["usd_per_hour"] == pytest.approx(n * gpu("H100-SXM").cloud_usd_per_gpu_hr)


def test_slo_sizing_limits_and_bad_input(agent):
    # an SLO below the prefill time of the longest prompts cannot be met: rows stay, with nulls
    none, _ = slo_sizing(agent, slo_s=0.05, thresholds=(8192,), max_gpus=3, precision=FAST)
    assert none["gpus"].to_list() == [None, None] and not none["meets_slo"].any()
    with pytest.raises(ConfigError, match="max_gpus must be an integer >= 2"):
        slo_sizing(agent, slo_s=1.0, max_gpus=1)
    with pytest.raises(ConfigError, match="slo_s"):
        slo_sizing(agent, slo_s=-1.0)


def test_slo_sizing_prices_the_gpus_of_the_instances():
    from workbench.hardware import gpu

    gen = Synthetic(arrivals=Poisson(4.0), lengths=Fixed(1000, 50))
    for g in ("H100-SXM", "A100-80GB-SXM"):
        table, results = slo_sizing(gen, slo_s=2.0, thresholds=(600,), max_gpus=4, gpu=g, tp=2, precision=FAST)
        mono = table.row(0, named=True)
        n = mono["gpus"]  # instances, of two GPUs each
        assert mono["meets_slo"] and (results["monolithic"].instances["n_gpus"] == 2).all()
        assert mono["usd_per_hour"] == pytest.approx(n * 2 * gpu(g).cloud_usd_per_gpu_hr)
    with pytest.raises(ConfigError, match="slo_sizing grows each pool one instance at a time, which a GPU mix"):
        slo_sizing(gen, slo_s=2.0, gpu={"H100-SXM": 1, "A100-80GB-SXM": 1})


def test_disaggregation_study_rows():
    tr = Synthetic(arrivals=Poisson(4.0), lengths=Fixed(2000, 100)).generate(150, seed=0)
    table, results = disaggregation_study(tr, gpus=4, prefill_shares=(0.25, 0.5))
    assert table["policy"].to_list() == ["colocated", "disaggregated 1P:3D", "disaggregated 2P:2D"]
    dis = results["disaggregated 1P:3D"].requests
    assert dis["prefill_instance"].is_not_null().all() and (dis["pool"] == "decode").all()


def _bursty():
    profile = PiecewiseRate(edges_s=np.array([0.0, 60.0, 120.0, 240.0]), rates=np.array([1.0, 20.0, 1.0, 1.0]))
    return Synthetic(arrivals=TimeVarying(profile, cv=2.0), lengths=Fixed(2000, 200)).generate(
        duration_s=240.0, seed=0
    )


def test_autoscale_curve_sweeps_a_knob_next_to_static_fleets():
    sweeps = (("kpa", "target_concurrency", (2.0, 32.0)), ("delayed_off", "target_concurrency", (2.0, 32.0)),
              ("threshold", "up_threshold", (2.0, 16.0)))  # fmt: skip
    table, results = autoscale_curve(_bursty(), sweeps, max_instances=4, autoscale={"setup_delay_s": 10})
    assert table.select("policy", "value").rows() == [
        ("static", 1.0), ("static", 2.0), ("static", 4.0), ("kpa", 2.0), ("kpa", 32.0), ("delayed_off", 2.0),
        ("delayed_off", 32.0), ("threshold", 2.0), ("threshold", 16.0),
    ]  # fmt: skip
    assert table["curve"][3] == "kpa: target_concurrency"
    assert set(results) == set(table.select("policy", "knob", "value").rows())
    hours = dict(zip(table.select("policy", "value").rows(), table["gpu_hours"], strict=True))
    p99 = dict(zip(table.select("policy", "value").rows(), table["ttft_p99_s"], strict=True))
    # static fleets: more instances, more GPU-hours, lower tail
    assert hours[("static", 1.0)] < hours[("static", 2.0)] < hours[("static", 4.0)]
    assert p99[("static", 1.0)] > p99[("static", 4.0)]
    # a larger target concurrency / up threshold scales up later: fewer GPU-hours ...
    for policy, low, high in (("kpa", 2.0, 32.0), ("delayed_off", 2.0, 32.0), ("threshold", 2.0, 16.0)):
        assert hours[(policy, high)] < hours[(policy, low)]
    # ... and a longer tail (the threshold policy adds one instance per tick: its P99 is the cold start anyway)
    for policy in ("kpa", "delayed_off"):
        assert p99[(policy, 32.0)] > 5 * p99[(policy, 2.0)]
    unknown = r"sweeps\[0\] \('delayed_off', 'tau', 1.0\): unknown field\(s\) \['tau'\] for AutoscaleConfig"
    with pytest.raises(ConfigError, match=unknown + "; valid fields: policy, min_instances"):
        autoscale_curve(_bursty(), (("delayed_off", "tau", (1.0,)),), static=())
    # an unknown shared field is named as such (not the swept knob)
    with pytest.raises(ConfigError, match=r"2.0\): unknown field\(s\) \['bogus'\] for AutoscaleConfig; valid"):
        autoscale_curve(_bursty(), (("kpa", "target_concurrency", (2.0,)),), static=(), autoscale={"bogus": 1})
