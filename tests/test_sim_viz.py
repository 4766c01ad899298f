"""Chart builders of :mod:`workbench.viz.sim`, the instance widget logic and the latency-vs-load curve."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from workbench.errors import ConfigError
from workbench.sim import InstanceConfig, LinearPerfModel, SchedulerConfig, simulate, summary
from workbench.sim.curves import load_curve
from workbench.traces import poisson_requests
from workbench.viz.sim import latency_percentiles, latency_vs_load, timeline
from workbench.widgets.instance import explore, instance_config

PERF = LinearPerfModel()
LENGTHS = pl.DataFrame({"prompt_tokens": [200, 800, 1500, 60], "output_tokens": [50, 10, 120, 300]})


def small_result():
    reqs = poisson_requests(LENGTHS, 20.0, 300, seed=1)
    return simulate(
        reqs, InstanceConfig(perf=PERF, kv_capacity_tokens=50_000, scheduler=SchedulerConfig(max_num_seqs=32))
    )


def test_latency_percentiles_chart_holds_the_summary_values():
    table = summary(small_result())
    spec = latency_percentiles(table).to_dict()
    assert len(spec["hconcat"]) == 3
    values = spec["datasets"][next(iter(spec["datasets"]))]
    ttft = {v["percentile"]: v["seconds"] for v in values if v["metric"] == "TTFT"}
    assert ttft["P99"] == pytest.approx(table["ttft_p99_s"][0])
    assert ttft["P50"] <= ttft["P90"] <= ttft["P99"]


def test_timeline_window_and_units():
    res = small_result()
    spec = timeline(res, 0, start_s=2.0, end_s=4.0).to_dict()
    assert spec["vconcat"][0]["encoding"]["y"]["title"] == "batch size (sequences)"
    assert spec["vconcat"][1]["encoding"]["y"]["scale"]["domain"] == [0, 100]
    rows = next(iter(spec["datasets"].values()))
    times = [r["time_s"] for r in rows]
    assert rows and min(times) < 4.0 and max(times) < 4.0
    assert all(0 <= r["kv_use_pct"] <= 100 for r in rows)
    assert max(r["batch_size"] for r in rows) <= 32


def test_load_curve_sim_and_analytic_rise_with_load():
    cfg = InstanceConfig(perf=PERF, kv_capacity_tokens=200_000, scheduler=SchedulerConfig(max_num_seqs=16))
    curve = load_curve(cfg, LENGTHS, loads=(0.3, 0.85), requests=800, seed=2)
    assert curve.height == 2 * 2 * 4
    for source in ("simulation", "analytic"):
        e2e = curve.filter((pl.col("source") == source) & (pl.col("metric") == "e2e_mean_s"))
        assert e2e["value"][1] > e2e["value"][0] > 0
    spec = latency_vs_load(curve).to_dict()
    assert spec["encoding"]["strokeDash"]["field"] == "source"
    with pytest.raises(ConfigError, match="loads"):
        load_curve(cfg, LENGTHS, loads=(0.0,))


def test_explore_returns_summary_and_charts():
    table, pct, tl = explore(LENGTHS, qps=4.0, requests=200, max_batch=64)
    assert table.columns[:2] == ["requests", "rejected"]
    assert table["requests"][0] == 200
    assert "hconcat" in pct.to_dict() and "vconcat" in tl.to_dict()
    assert instance_config(max_batch=512).scheduler.max_num_batched_tokens >= 512


def test_poisson_requests_seeded():
    a = poisson_requests(LENGTHS, 3.0, 100, seed=4)
    assert a.equals(poisson_requests(LENGTHS, 3.0, 100, seed=4))
    gaps = np.diff(a["arrival_s"].to_numpy())
    assert (gaps >= 0).all() and 0.2 < gaps.mean() < 0.5


def test_summary_token_sums_do_not_overflow():
    res = small_result()
    big = res.requests.with_columns(pl.lit(2**30, dtype=pl.Int32).alias("prompt_tokens"))
    from workbench.sim import SimResult

    table = summary(SimResult(big, res.segments, res.instances))
    assert table["input_tok_s"][0] > 0


def test_summary_by_instance_and_slo_goodput():
    reqs = poisson_requests(LENGTHS, 30.0, 400, seed=2)
    from workbench.sim import SimConfig

    res = simulate(
        reqs, SimConfig(instance=InstanceConfig(perf=PERF, kv_capacity_tokens=50_000), n_instances=2)
    )
    per = summary(res, by="instance")
    assert per["instance"].to_list() == [0, 1]
    assert per["requests"].sum() == 400
    assert per["utilization"].is_between(0, 1).all()
    loose = summary(res, ttft_slo=100.0, tpot_slo=100.0).row(0, named=True)
    tight = summary(res, ttft_slo=1e-4).row(0, named=True)
    assert loose["slo_attainment"] == 1.0 and tight["slo_attainment"] == 0.0
    assert loose["goodput_req_s"] == pytest.approx(loose["request_rate"])
    with pytest.raises(ConfigError, match="ttft_slo"):
        summary(res, ttft_slo=-1.0)


def test_instance_explorer_answers_at_once_then_simulates():
    from workbench.widgets.instance import instance_explorer
    from workbench.widgets.live import Results

    results = Results()
    box = instance_explorer(LENGTHS, requests=200, results=results)
    first = box.live.out.outputs
    assert first and "analytic" in first[0]["data"]["text/plain"]  # the analytic answer, before any simulation
    assert box.live.wait(60)
    assert (
        set(results.tables) == {"instance_summary"} and results.tables["instance_summary"]["requests"][0] == 200
    )
    assert "application/vnd.vegalite.v5+json" in box.live.out.outputs[1]["data"]  # the chart, drawn offline
    box.controls["qps"].value = 20.0
    assert box.live.wait(60) and results.tables["instance_summary"]["requests"][0] == 200
    box.controls["model"].value = "Llama-3.1-405B"  # does not fit one GPU: one line with the memory numbers
    assert box.live.wait(60)
    assert "does not fit" in box.live.status.value and "Traceback" not in box.live.status.value


def test_middle_timeline_is_the_instance_timeline_recipe():
    """One recipe for the instance_timeline figure and notebook 02: span_s seconds from the median arrival."""
    from workbench.errors import ConfigError
    from workbench.viz.sim import middle_timeline

    res = small_result()
    mid = float(res.requests["arrival_s"].median())
    expected = timeline(res, 0, start_s=mid, end_s=mid + 3).to_dict()
    assert middle_timeline(res, 0, span_s=3.0).to_dict() == expected
    with pytest.raises(ConfigError, match="span_s"):
        middle_timeline(res, span_s=0.0)
