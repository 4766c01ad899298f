"""Charts and widget logic of the what-if tools (specifications via ``to_dict()``)."""

from __future__ import annotations

import polars as pl
import pytest

from workbench.planning import SLO, workload
from workbench.traces import LogNormal, Poisson, Synthetic
from workbench.viz import whatif as vw
from workbench.whatif import ModeCosts, grid_flex, margin_table, plan, rate_sweep
from workbench.widgets.whatif import describe_cut, explore_cut, explore_modes, flex_explorer, slider_max

CAP = pl.DataFrame(
    {
        "gpu": ["H100-SXM", "L40S"],
        "tp": [1, 1],
        "gpus_per_node": [8, 8],
        "requests_per_s": [20.0, 5.0],
        "tokens_per_s": [4000.0, 1000.0],
        "busy_w": [600.0, 250.0],
        "idle_w": [143.0, 71.5],
    }
)


@pytest.fixture(scope="module")
def flex():
    tr = Synthetic(arrivals=Poisson(20.0), lengths=LogNormal(6.5, 0.8, 5.0, 0.7)).generate(300, seed=1)
    return grid_flex(
        workload(tr, 20.0), SLO(2.0, 0.06), "H100", 2, caps=(256, 32), clocks=(1.0, 0.7), check=False
    )


def test_mode_ranking_spec():
    table = plan("budget", 2e6, CAP)
    spec = vw.mode_ranking(table).to_dict()
    bars, text = spec["layer"]
    assert bars["mark"]["type"] == "bar" and bars["encoding"]["x"]["field"] == "tokens_per_s"
    assert text["mark"]["type"] == "text" and text["encoding"]["text"]["field"] == "label"
    assert bars["title"] == "budget mode, $2,000,000 (TCO): ranked by output tokens/s at the SLO"
    power = vw.mode_ranking(plan("power", 50.0, CAP)).to_dict()["layer"][0]["title"]
    assert power == "power mode, 50 kW (facility): ranked by output tokens/s at the SLO"
    perf = vw.mode_ranking(plan("performance", 2000.0, CAP, unit="requests")).to_dict()["layer"][0]["title"]
    assert perf == "performance mode, 2,000 requests/s: ranked by TCO ($)"
    count = vw.mode_ranking(plan("count", 64, CAP)).to_dict()["layer"][0]["title"]
    assert count.startswith("count mode, 64 GPUs: ranked by")
    values = spec["datasets"][next(iter(spec["datasets"]))]
    assert [v["gpu"] for v in values] == ["H100-SXM", "L40S"]
    assert values[0]["label"] == f"{table['nodes'][0]} nodes, {table['gpus'][0]} GPUs"


def test_flex_curve_spec_has_slo_line_and_no_infinities(flex):
    spec = vw.flex_curve(flex).to_dict()
    marks = [
        layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"] for layer in spec["layer"]
    ]
    assert marks == ["circle", "line", "rule", "rule"]
    text = vw.flex_curve(flex).to_json()
    assert "Infinity" not in text and "NaN" not in text


def test_spares_and_sweep_charts():
    spec = vw.spares_chart(margin_table(4, 0.95, target=0.99), 0.99).to_dict()
    assert spec["layer"][0]["encoding"]["y"]["field"] == "p_slo"
    tr = Synthetic(arrivals=Poisson(5.0), lengths=LogNormal(6.5, 0.8, 5.0, 0.7)).generate(300, seed=1)
    sweep = rate_sweep(tr, SLO(2.0, 0.1), ["H100", "L40S"], [5.0, 10.0])
    spec = vw.rate_sweep_chart(sweep).to_dict()
    assert len(spec["concat"]) == 4
    assert spec["concat"][1]["encoding"]["y"]["field"] == "usd_per_hour"
    energy = spec["concat"][3]
    assert energy["encoding"]["y"]["field"] == "facility_j_per_output_token"
    assert energy["encoding"]["y"]["title"] == "J per output token (facility)"


def test_widget_logic():
    chart, table, msg = explore_modes(CAP, "count", 64, costs=ModeCosts(), pue=1.5)
    assert chart is not None and table["gpu"][0] == "H100-SXM" and msg.startswith("best: H100-SXM")
    chart, table, msg = explore_modes(CAP, "budget", 1000.0)
    assert chart is None and table.height == 0 and "not enough for any GPU type" in msg
    # with a measure, capacity is taken at each fleet's own size (a stub: 200 output tokens/s per instance)
    stub = lambda g, tp, k: {"capacity_instances": k, "requests_per_s": 1.0, "tokens_per_s": 200.0}  # noqa: E731
    chart, table, msg = explore_modes(CAP, "count", 64, measure=stub)
    assert table["capacity_instances"].to_list() == [64, 64] and table["tokens_per_s"][0] == 64 * 200.0


def test_explore_cut(flex):
    row = explore_cut(flex, 0.2)
    assert row.height == 1 and row["ceiling_reduction"][0] >= 0.2
    assert explore_cut(flex, 0.99).height == 0


def test_flex_curve_and_cut_follow_the_objective():
    tr = Synthetic(arrivals=Poisson(20.0), lengths=LogNormal(6.5, 0.8, 5.0, 0.7)).generate(300, seed=1)
    res = grid_flex(workload(tr, 20.0), SLO(2.0, 0.06), "H100", 2, caps=(256, 32), clocks=(1.0, 0.7),
                    objective="mean", check=False)  # fmt: skip
    spec = vw.flex_curve(res).to_dict()
    assert spec["layer"][0]["encoding"]["x"]["field"] == "mean_reduction"
    assert "mean power drawn" in str(spec["layer"][0]["title"])
    assert spec["layer"][3]["encoding"]["x"]["field"] == "mean_reduction"
    row = explore_cut(res, 0.2)  # a 20 % mean-power cut needs the lower clock (the cap alone sheds ~0 %)
    assert row["clock"][0] == 0.7 and row["mean_reduction"][0] >= 0.2


def test_flex_slider_end_is_reachable():
    """round(top, 2) put the slider's end above the deepest option (0.599 -> 0.60): an empty table, then an
    IndexError in the widget."""
    tr = Synthetic(arrivals=Poisson(20.0), lengths=LogNormal(6.5, 0.8, 5.0, 0.7)).generate(500, seed=1)
    kw = {"caps": (256, 64, 32, 16), "clocks": (1.0, 0.8, 0.6), "node_power_w": 0.0, "check": False}
    res = grid_flex(workload(tr, 20.0), SLO(2.0, 0.06), "H100", 2, **kw)
    top = res.options["ceiling_reduction"].max()
    assert top == pytest.approx(0.5997, abs=1e-4) and slider_max(res) == pytest.approx(0.59)
    assert explore_cut(res, slider_max(res)).height == 1
    text, row = describe_cut(res, 0.65)
    assert row.height == 0 and "beyond the deepest setting tried (60.0%)" in text
    box = flex_explorer(res)
    slider = box.children[0]
    assert slider.max == pytest.approx(0.59)
    slider.value = slider.max  # redraws without raising
    slider.value = 0.3


def test_cut_widget_curve_and_grid_flex_agree_on_ties():
    """Beyond 47.5 % every option misses the SLO (ratio inf; 45 % under the earlier 1 / clock performance model,
    before the clock-aware roofline of issue 17): a tie that grid_flex broke by the deeper cut while the curve
    and the widget took whichever row the sort left first."""
    tr = Synthetic(arrivals=Poisson(20.0), lengths=LogNormal(6.5, 0.8, 5.0, 0.7)).generate(300, seed=1)
    wl, slo = workload(tr, 20.0), SLO(2.0, 0.06)
    res = grid_flex(wl, slo, "H100", 2, check=False)
    assert res.objective_column == "ceiling_reduction"
    curve = {round(r["cut"], 2): r for r in res.curve.iter_rows(named=True)}
    for cut in (0.3, 0.45, 0.5):
        asked = grid_flex(wl, slo, "H100", 2, check=False, cut=cut).best
        shown = explore_cut(res, cut).row(0, named=True)
        key = ("max_num_seqs", "clock")
        assert [asked[k] for k in key] == [shown[k] for k in key] == [curve[cut][k] for k in key], cut
    tied = explore_cut(res, 0.5).row(0, named=True)
    assert tied["slo_ratio"] == float("inf") and (tied["max_num_seqs"], tied["clock"]) == (1, 0.5)  # deepest
