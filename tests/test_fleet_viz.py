"""Fleet charts (:mod:`workbench.viz.fleet`, checked through ``to_dict()``) and the routing widget's logic."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from workbench.errors import ConfigError
from workbench.sim.fleet import compare, instance_stats, latency_cdf, simulate
from workbench.sim.topology import monolithic
from workbench.traces import LogNormal, Poisson, Synthetic
from workbench.viz import fleet as vf
from workbench.widgets.fleet import build_fleet, explore


def _trace(n=200, seed=1):
    lengths = LogNormal(prompt_mu=6.5, prompt_sigma=1.0, output_mu=4.5, output_sigma=0.6)
    return Synthetic(arrivals=Poisson(10.0), lengths=lengths).generate(n, seed=seed)


@pytest.fixture(scope="module")
def results():
    tr = _trace()
    return {p: simulate(tr, monolithic(2, router=p)) for p in ("jsq", "round_robin")}


def _values(spec: dict) -> list[dict]:
    (values,) = spec["datasets"].values()
    return values


def _datasets(spec: dict) -> list[list[dict]]:
    return list(spec["datasets"].values())


def test_latency_cdfs_one_panel_per_metric_holds_the_quantiles(results):
    cdf = latency_cdf(results, points=21)
    spec = vf.latency_cdfs(cdf).to_dict()
    assert [p["title"] for p in spec["hconcat"]] == ["TTFT (s)", "TPOT (s/token)"]
    ttft = spec["hconcat"][0]
    assert ttft["mark"]["type"] == "line" and ttft["mark"]["interpolate"] == "step-after"
    assert ttft["encoding"]["x"]["scale"]["type"] == "log"
    assert ttft["encoding"]["color"]["field"] == "policy"
    rows = spec["datasets"][ttft["data"]["name"]]
    largest = results["jsq"].requests["ttft_s"].max()
    top = max(r["value"] for r in rows if r["policy"] == "jsq" and r["metric"] == "ttft_s")
    assert top == pytest.approx(largest)
    linear = vf.latency_cdfs(cdf, log_x=False).to_dict()
    assert "type" not in linear["hconcat"][0]["encoding"]["x"]["scale"]


def test_instance_load_bars_requests_and_hit_rate(results):
    spec = vf.instance_load(instance_stats(results)).to_dict()
    load, hits = spec["hconcat"]
    assert load["facet"]["row"]["field"] == "policy"
    assert load["spec"]["encoding"]["y"]["field"] == "requests"
    assert hits["spec"]["encoding"]["y"]["scale"]["domain"] == [0, 1]
    rows = _datasets(spec)[0]
    assert sum(r["requests"] for r in rows if r["policy"] == "jsq") == 200


def test_instance_count_step_lines():
    counts = pl.DataFrame({"policy": ["a", "a", "b"], "time_s": [0.0, 5.0, 0.0], "instances": [1, 3, 2]})
    spec = vf.instance_count(counts).to_dict()
    assert spec["mark"]["interpolate"] == "step-after"
    assert spec["encoding"]["strokeDash"]["field"] == "policy"
    assert [r["instances"] for r in _values(spec)] == [1, 3, 2]


def test_cost_latency_points_labelled_by_policy(results):
    table = compare(results)
    spec = vf.cost_latency(table).to_dict()
    points, labels = spec["layer"]
    assert points["mark"]["type"] == "point" and labels["encoding"]["text"]["field"] == "policy"
    assert points["encoding"]["x"]["field"] == "gpu_hours" and points["encoding"]["y"]["field"] == "ttft_p99_s"
    assert sorted(r["policy"] for r in _values(spec)) == ["jsq", "round_robin"]


def test_policy_bars_facet_by_load_when_present(results):
    table = compare(results, load="x1")
    faceted = vf.policy_bars(table).to_dict()
    assert faceted["facet"]["column"]["field"] == "load"
    y = faceted["spec"]["encoding"]["y"]
    rows = _values(faceted)
    # log bars render only unstacked and above a positive floor (stacked log bars are drawn empty)
    assert y["scale"]["type"] == "log" and y["stack"] is None
    smallest = min(r["value"] for r in rows)
    assert 0 < y["scale"]["domainMin"] < smallest and y["scale"]["domainMin"] > smallest / 100
    assert {r["variable"] for r in rows} == {"ttft_p50_s", "ttft_p99_s"} and len(rows) == 4
    plain = vf.policy_bars(table.drop("load")).to_dict()
    assert "facet" not in plain and plain["encoding"]["xOffset"]["field"] == "variable"


def test_tradeoff_curves_static_reference_and_one_line_per_knob():
    table = pl.DataFrame({
        "policy": ["static", "static", "kpa", "kpa", "threshold"],
        "knob": ["instances", "instances", "target_concurrency", "target_concurrency", "up_threshold"],
        "value": [2.0, 4.0, 8.0, 16.0, 4.0],
        "gpu_hours": [1.0, 2.0, 1.8, 1.5, 1.7],
        "ttft_p99_s": [5.0, 0.5, 0.6, 0.9, 0.7],
    }).with_columns((pl.col("policy") + ": " + pl.col("knob")).alias("curve"))  # fmt: skip
    spec = vf.tradeoff_curves(table).to_dict()
    dashed, labels, curves = spec["layer"]
    assert dashed["mark"]["strokeDash"] == [4, 3] and labels["mark"]["type"] == "text"
    assert curves["encoding"]["color"]["field"] == "curve" and curves["encoding"]["order"]["field"] == "order"
    assert curves["encoding"]["y"]["scale"]["type"] == "log"
    static_rows = spec["datasets"][spec["data"]["name"]]  # the static layers share the top-level data
    auto_rows = spec["datasets"][curves["data"]["name"]]
    assert [r["value"] for r in static_rows] == [2.0, 4.0]
    assert [r["curve"] for r in auto_rows] == ["kpa: target_concurrency"] * 2 + ["threshold: up_threshold"]
    linear = vf.tradeoff_curves(table, log_y=False).to_dict()
    assert "type" not in linear["layer"][2]["encoding"]["y"]["scale"]


def test_build_fleet_shapes():
    assert [p.instances for p in build_fleet("length pools", 8, "jsq").pools] == [6, 2]
    dis = build_fleet("disaggregated", 5, "lmetric")
    assert [(p.role, p.instances) for p in dis.pools] == [("prefill", 2), ("decode", 3)]
    assert build_fleet("monolithic", 3, "jsq").pools[0].instances == 3
    with pytest.raises(ConfigError, match="unknown topology 'ring'"):
        build_fleet("ring", 4, "jsq")


def test_explore_simulates_each_policy_on_the_chosen_fleet():
    tr = _trace(150, seed=3)
    cdf, per_instance, table = explore(tr, ("jsq", "round_robin"), load=2.0, instances=4,
                                       topology="length pools")  # fmt: skip
    assert table["policy"].to_list() == ["jsq", "round_robin"] and table["load"].to_list() == ["x2", "x2"]
    assert (table["requests"] == 150).all()
    faster = tr.with_requests(tr.requests.with_columns(pl.col("arrival_s") / 2.0))
    direct = simulate(faster, build_fleet("length pools", 4, "jsq"))
    assert table["ttft_p99_s"][0] == pytest.approx(compare({"jsq": direct})["ttft_p99_s"][0])
    assert len(cdf.to_dict()["hconcat"]) == 2
    pools = {r["pool"] for r in _datasets(per_instance.to_dict())[0]}
    assert pools == {"short", "long"}


def test_routing_explorer_widget_runs():
    from workbench.widgets.fleet import routing_explorer
    from workbench.widgets.live import Results

    results = Results()
    box = routing_explorer(_trace(60), instances=2, results=results)
    policies = box.controls["policies"]
    assert "analytic" in box.live.out.outputs[0]["data"]["text/plain"]  # shown before any simulation
    policies.value = ("jsq",)  # the first run (four policies) is now stale: only this one is shown
    assert box.live.wait(120)
    assert results.tables["routing"]["policy"].to_list() == ["jsq"]
    assert box.live.bar.value == 1.0 and "done in" in box.live.status.value
    assert np.isin(["round_robin", "lmetric"], list(policies.options)).all()


def test_policy_cdfs_is_the_routing_cdf_recipe(results):
    """One recipe for the routing_cdf figure and notebook 03: the CDFs of the chosen policies at one load."""
    keyed = {(2.0, p): r for p, r in results.items()}
    spec = vf.policy_cdfs(keyed, ("jsq", "round_robin"), 2.0).to_dict()
    assert spec == vf.latency_cdfs(latency_cdf(results)).to_dict()
    with pytest.raises(ConfigError, match=r"no result for \['lmetric'\] at load 2"):
        vf.policy_cdfs(keyed, ("jsq", "lmetric"), 2.0)


def test_autoscale_overview_is_the_autoscale_recipe(results):
    """Trade-off curves (fleets that cannot keep up left out) over the instances of the picked settings."""
    table = pl.DataFrame({
        "policy": ["static", "static", "kpa"], "knob": ["instances", "instances", "target_concurrency"],
        "value": [1.0, 4.0, 8.0], "gpu_hours": [0.5, 2.0, 1.5], "ttft_p99_s": [250.0, 0.5, 0.7],
    }).with_columns((pl.col("policy") + ": " + pl.col("knob")).alias("curve"))  # fmt: skip
    runs = {("kpa", "target_concurrency", 8.0): results["jsq"]}
    spec = vf.autoscale_overview(table, runs, picked=[("kpa", "target_concurrency", 8.0)]).to_dict()
    top, bottom = spec["vconcat"]
    assert top["title"].startswith("cost vs tail latency") and bottom["title"] == "instances powered over time"
    rows = [r for values in _datasets(spec) for r in values]
    assert {r["policy"] for r in rows if "instances" in r and "time_s" in r} == {"kpa (8)"}
    assert 250.0 not in {r.get("ttft_p99_s") for r in rows}  # a fleet that cannot keep up is left out
    assert spec["resolve"]["scale"] == {"color": "independent", "strokeDash": "independent"}
    with pytest.raises(ConfigError, match="no result for"):
        vf.autoscale_overview(table, runs)  # the default picks are not in these results
