"""What-if tools: planning modes (hand-computed golden values), grid flexibility (checked by simulation),
reliability margins (binomial spares by hand, failure injection), rate sweep units, bad input."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.errors import ConfigError
from workbench.planning import SLO, workload
from workbench.power import idle_power_w, power_curve
from workbench.sim.measure import Precision
from workbench.tco import CostBasis
from workbench.traces import Fixed, LogNormal, Poisson, Synthetic
from workbench.whatif import (
    ModeCosts,
    WhatIfError,
    availability,
    capacity_at_slo,
    efficiency,
    failure_study,
    fleet_metrics,
    grid_flex,
    instances_in,
    margin_table,
    plan,
    plan_workload,
    prob_enough,
    rate_sweep,
    simulate_with_failures,
    spares_needed,
)
from workbench.whatif.reliability import down_periods

#: A coarse measurement kernel for tests (20 % tolerance, at most 32,000 requests a verdict).
FAST = Precision(tolerance=0.2, max_requests=32_000)

# ---------------------------------------------------------------------------------------------- fixtures
#: One hand-made capacity row: 2-GPU instances, 400 output tokens/s (2 req/s) each, 600 W busy, 150 W idle.
CAP = pl.DataFrame(
    {
        "gpu": ["H100-SXM"],
        "tp": [2],
        "gpus_per_node": [8],
        "requests_per_s": [2.0],
        "tokens_per_s": [400.0],
        "busy_w": [600.0],
        "idle_w": [150.0],
    }
)
COSTS_KW = {
    "utilisation": 0.5,
    "electricity_usd_per_kwh": 0.1,
    "pue": 1.5,
    "lifetime_years": 4.0,
    "node_power_w": 500.0,
    "server_usd_per_node": 20_000.0,
    "infra_usd_per_node": 10_000.0,
    "maintenance_usd_per_node_year": 1_000.0,
    "gpu_price_usd": {"H100": 25_000.0},
}
COSTS = CostBasis(**COSTS_KW)
# By hand, one node (8 GPUs, 4 instances):
#   capex = 8 x 25,000 + 20,000 + 10,000 = 230,000
#   average GPU power = 150 + 0.5 x (600 - 150) = 375 W; IT = 8 x 375 + 500 = 3,500 W
#   energy = 1.5 x 3.5 kW x 8,760 h x 0.1 $/kWh = 4,599 $/yr -> 18,396 over 4 years; maintenance 4,000
TCO_NODE = 230_000.0 + 18_396.0 + 4_000.0  # 252,396 per node, affine with no fixed part
FACILITY_KW_NODE = (8 * 600 + 500) / 1000 * 1.5  # 7.95 kW at the SLO operating power


@pytest.fixture(scope="module")
def small_wl():
    gen = Synthetic(arrivals=Poisson(20.0), lengths=LogNormal(6.5, 0.8, 5.0, 0.7))
    return workload(gen, 20.0, seed=1, n_requests=500)


# ---------------------------------------------------------------------------------------------- modes
def test_budget_mode_golden():
    row = plan("budget", 1_000_000, CAP, costs=COSTS).row(0, named=True)
    assert row["nodes"] == 3  # 3 x 252,396 = 757,188 <= 1e6 < 4 x 252,396
    assert (row["gpus"], row["instances"]) == (24, 12)
    assert row["tco_usd"] == pytest.approx(3 * TCO_NODE)
    assert row["tokens_per_s"] == pytest.approx(12 * 400.0)
    assert row["requests_per_s"] == pytest.approx(24.0)
    assert row["facility_kw"] == pytest.approx(3 * FACILITY_KW_NODE)
    # lifetime tokens = 0.5 x 4,800 tok/s x 3,600 x 8,760 x 4
    assert row["usd_per_mtok"] == pytest.approx(3 * TCO_NODE / (0.5 * 4800 * 3600 * 8760 * 4) * 1e6)
    assert row["tokens_per_s_per_musd"] == pytest.approx(4800 / (3 * TCO_NODE / 1e6))
    assert row["kw_per_musd"] == pytest.approx(3 * FACILITY_KW_NODE / (3 * TCO_NODE / 1e6))
    tok_per_j = 4800 / (3 * FACILITY_KW_NODE * 1000)
    assert row["tokens_per_j_per_musd"] == pytest.approx(tok_per_j / (3 * TCO_NODE / 1e6))


def test_power_performance_count_modes_golden():
    assert plan("power", 20.0, CAP, costs=COSTS)["nodes"][0] == 2  # floor(20 / 7.95)
    assert plan("power", 3 * FACILITY_KW_NODE, CAP, costs=COSTS)["nodes"][0] == 3  # exactly 3 nodes fit
    perf = plan("performance", 5000.0, CAP, costs=COSTS).row(0, named=True)
    assert perf["nodes"] == 4 and perf["tokens_per_s"] == pytest.approx(6400.0)  # ceil(5000 / 1600)
    req = plan("performance", 16.0, CAP, costs=COSTS, unit="requests").row(0, named=True)
    assert req["nodes"] == 2  # 8 req/s per node
    count = plan("count", 12, CAP, costs=COSTS).row(0, named=True)
    assert (count["gpus"], count["nodes"], count["instances"]) == (12, 2, 6)


def test_multi_gpu_efficiency_golden():
    costs = ModeCosts(CostBasis(gpu_price_usd={"H100": 25_000.0}), eta_gpu=0.99, eta_node=0.9)
    row = plan("count", 16, CAP, costs=costs).row(0, named=True)
    eta = 0.9**1 * 0.99**15
    assert row["eta"] == pytest.approx(eta)
    assert row["tokens_per_s"] == pytest.approx(8 * 400.0 * eta)
    assert efficiency(np.array([1]), np.array([1]), 0.5, 0.5)[0] == 1.0
    assert instances_in(np.array([8, 12, 13, 3]), 8, 4).tolist() == [2, 3, 3, 0]


def test_modes_rank_several_gpus():
    cap = pl.concat([CAP, CAP.with_columns(gpu=pl.lit("A100-80GB-SXM"), tokens_per_s=pl.lit(100.0))])
    costs = CostBasis(gpu_price_usd={"H100": 25_000.0, "A100": 10_000.0})
    table = plan("count", 64, cap, costs=costs)
    assert table["gpu"].to_list() == ["H100-SXM", "A100-80GB-SXM"]  # more work per TCO dollar
    assert table["rank"].to_list() == [1, 2]
    by_cost = plan("performance", 3000.0, cap, costs=costs)
    assert by_cost["rank_by"][0] == "tco_usd" and by_cost["tco_usd"].is_sorted()


def test_budget_or_power_too_small_names_limit():
    with pytest.raises(WhatIfError, match=r"252,396.*budget \$100,000"):
        plan("budget", 100_000, CAP, costs=COSTS)
    with pytest.raises(WhatIfError, match=r"7\.95 kW.*cap 5\.00 kW"):
        plan("power", 5.0, CAP, costs=COSTS)
    # one GPU type too big for the budget: kept, last, with its reason
    cheap = CAP.with_columns(gpu=pl.lit("L4"))
    table = plan("budget", 400_000, pl.concat([CAP, cheap]), costs=CostBasis(gpu_price_usd={"H100": 60_000.0}))
    assert table["gpu"].to_list() == ["L4", "H100-SXM"]
    assert table["nodes"][1] is None and "budget" in table["note"][1]


def test_gpu_that_cannot_meet_slo_is_ranked_last():
    cap = pl.concat(
        [CAP, CAP.with_columns(gpu=pl.lit("L4"), requests_per_s=pl.lit(0.0), tokens_per_s=pl.lit(0.0))]
    )
    for mode, target in (("budget", 1e6), ("power", 30.0), ("count", 16)):
        table = plan(mode, target, cap, costs=COSTS)
        assert table["gpu"].to_list() == ["H100-SXM", "L4"]
        assert table["nodes"][1] is None and "cannot meet the SLO" in table["note"][1]


def test_gpu_without_price_is_ranked_last_with_a_note():
    """H200 and A10G have no purchase price in gpus.csv: they made the whole call raise."""
    cap = pl.concat([CAP, CAP.with_columns(gpu=pl.lit("H200")), CAP.with_columns(gpu=pl.lit("A10G"))])
    for mode, target in (("budget", 1e6), ("power", 30.0), ("performance", 5000.0), ("count", 16)):
        table = plan(mode, target, cap, costs=COSTS)
        assert table["gpu"].to_list()[0] == "H100-SXM" and table["nodes"][0] is not None
        assert set(table["gpu"].to_list()[1:]) == {"H200-SXM", "A10G"}  # catalog names
        for row in table.filter(pl.col("gpu") != "H100-SXM").iter_rows(named=True):
            assert row["nodes"] is None and row["tco_usd"] is None
            assert "no purchase price" in row["note"] and "gpu_price_usd={'" in row["note"]
    prices = {"H100": 25e3, "H200": 3e4}
    priced = plan("count", 16, cap, costs=CostBasis(**{**COSTS_KW, "gpu_price_usd": prices}))
    assert priced.filter(pl.col("gpu") == "H200-SXM")["nodes"][0] == 2  # an override prices it
    keys = list(fleet_metrics(CAP.row(0, named=True), COSTS, np.array([8])))
    unpriced_first = plan("count", 16, cap.reverse(), costs=COSTS)  # a failing GPU type in the first row
    for table in (plan("count", 16, cap, costs=COSTS), unpriced_first):
        assert [c for c in table.columns if c in keys] == keys  # every metric, in fleet_metrics' order
        assert table.filter(pl.col("nodes").is_null()).select(keys).null_count().row(0) == (2,) * len(keys)
    with pytest.raises(WhatIfError, match="not enough for any GPU type: H200-SXM: no purchase price"):
        plan("count", 16, cap.filter(pl.col("gpu") == "H200"), costs=COSTS)
    with pytest.raises(ConfigError, match=r"capacity row 0 \(H999\): unknown gpu"):
        plan("count", 16, CAP.with_columns(gpu=pl.lit("H999")), costs=COSTS)


def test_impossible_targets_name_units():
    with pytest.raises(WhatIfError, match=r"the power cap 1 kW \(facility\) is not enough"):
        plan("power", 1.0, CAP, costs=COSTS)
    with pytest.raises(WhatIfError, match=r"the budget \$100,000 \(TCO\) is not enough"):
        plan("budget", 100_000, CAP, costs=COSTS)
    with pytest.raises(WhatIfError, match=r"the GPU count 1 GPUs is not enough.*1 GPUs < tp = 2"):
        plan("count", 1, CAP, costs=COSTS)


def test_capacity_row_with_tp_above_node_names_the_row():
    """tp 16 on 8-GPU nodes: budget mode returned 34 nodes with 0 instances, performance mode divided by 0."""
    bad = pl.concat([CAP, CAP.with_columns(gpu=pl.lit("A100-80GB-SXM"), tp=pl.lit(16, pl.Int64))])
    for mode, target in (("budget", 1e7), ("power", 100.0), ("performance", 1000.0), ("count", 64)):
        with pytest.raises(ConfigError, match=r"capacity row 1 \(A100-80GB-SXM\): tp 16 > gpus_per_node 8"):
            plan(mode, target, bad, costs=COSTS)
    with pytest.raises(ConfigError, match=r"capacity row 0 \(H100-SXM\): busy_w must be finite"):
        plan("budget", 1e7, CAP.with_columns(busy_w=pl.lit(float("nan"))), costs=COSTS)


def test_capacity_from_screen(small_wl):
    cap = capacity_at_slo(small_wl, SLO(ttft_s=2.0, tpot_s=0.1), ["H100", "L4"], instances=2)
    h100, l4 = cap.row(0, named=True), cap.row(1, named=True)
    assert h100["usable"] and l4["usable"]
    assert h100["requests_per_s"] > 5 * l4["requests_per_s"] > 0
    assert h100["tokens_per_s"] == pytest.approx(h100["requests_per_s"] * small_wl.output.mean())
    assert h100["idle_w"] == idle_power_w("H100") and h100["busy_w"] > h100["idle_w"]


def test_plan_measures_capacity_at_the_fleet_size_it_chooses(small_wl):
    """Per-instance capacity depends on the fleet size (70B on A100: 0.055 req/s alone, 0.80 in a fleet of 4);
    scaling the single-instance figure made a $5M A100 fleet serve 9.9 req/s instead of 141."""
    slo, gpus, model = SLO(2.0, 0.1), ["H100", "A100"], "Llama-3.1-70B"
    one = capacity_at_slo(small_wl, slo, ["A100"], model=model, instances=1)["requests_per_s"][0]
    four = capacity_at_slo(small_wl, slo, ["A100"], model=model, instances=4)["requests_per_s"][0]
    assert four > 10 * one
    budget = plan_workload("budget", 5e6, small_wl, slo, gpus, model=model, instances=1, verify=False)
    naive = plan("budget", 5e6, capacity_at_slo(small_wl, slo, gpus, model=model, instances=1))
    for row in budget.iter_rows(named=True):
        k = row["instances"]
        assert row["capacity_instances"] == k > 50
        at_k = capacity_at_slo(small_wl, slo, [row["gpu"]], model=model, instances=k).row(0, named=True)
        assert row["requests_per_s"] == pytest.approx(k * at_k["requests_per_s"], rel=1e-9)
        assert row["tco_usd"] <= 5e6
    a100 = budget.filter(pl.col("gpu") == "A100-80GB-SXM").row(0, named=True)
    assert a100["requests_per_s"] > 10 * naive.filter(pl.col("gpu") == "A100-80GB-SXM")["requests_per_s"][0]
    assert naive["capacity_instances"].to_list() == [1, 1]
    # performance mode: the fewest nodes whose capacity, measured at their own size, reaches the target
    perf = plan_workload("performance", 20_000.0, small_wl, slo, gpus, model=model, verify=False)
    for row in perf.iter_rows(named=True):
        k, per_node = row["instances"], row["instances"] // row["nodes"]
        assert row["tokens_per_s"] >= 20_000.0 and row["capacity_instances"] == k
        fewer = capacity_at_slo(small_wl, slo, [row["gpu"]], model=model, instances=k - per_node)
        assert (k - per_node) * fewer["tokens_per_s"][0] < 20_000.0  # one node less misses it
    assert plan("budget", 1e6, CAP, costs=COSTS)["capacity_instances"][0] is None  # hand-made table: unknown


def test_plan_workload_rests_on_kernel_verdicts(small_wl):
    """With verify (the default) every capacity is the largest rate whose whole-fleet verdict meets: the screen
    overstated the H100's capacity at 8 instances (235 req/s where the kernel's TPOT verdicts meet at 178)."""
    from workbench.sim.measure import request_source
    from workbench.whatif import kernel_capacity
    from workbench.whatif._common import measure_fleet

    slo = SLO(2.0, 0.1)
    screen = plan_workload("performance", 20_000.0, small_wl, slo, ["H100"], verify=False).row(0, named=True)
    kernel = plan_workload("performance", 20_000.0, small_wl, slo, ["H100"], precision=FAST).row(0, named=True)
    assert screen["capacity_from"] == "screen" and screen["verdict"] is None
    assert kernel["capacity_from"] == "kernel" and kernel["verdict"] == "meets"
    assert kernel["tokens_per_s"] >= 20_000.0 and kernel["tpot_p99_hi"] <= 0.1 * (1 + FAST.tolerance)
    # the kernel's capacity at that size: a rate 1.25x above it does not meet
    k = kernel["instances"]
    row = kernel_capacity(small_wl, slo, precision=FAST)("H100", 1, k)
    assert row["requests_per_s"] * k == pytest.approx(kernel["requests_per_s"], rel=1e-9)
    above = 1.25 * kernel["requests_per_s"]
    source = request_source(small_wl).rescaled(above / small_wl.qps)
    assert not measure_fleet(source, slo, "H100", "Llama-3.1-8B", 1, k, precision=FAST).meets


def test_a_gpu_the_screen_refuses_is_judged_by_the_kernel(small_wl):
    """The screen says an L4 cannot meet a 60 ms TPOT at any load; with verify the refusal is the kernel's,
    with the verdict at the lowest rate it tried in the note."""
    slo = SLO(2.0, 0.06)
    with pytest.raises(WhatIfError, match="L4: L4 cannot meet the SLO at any load"):
        plan_workload("count", 8, small_wl, slo, ["L4"], verify=False)
    with pytest.raises(WhatIfError, match=r"L4 meets the SLO at no rate the measurement kernel tried \(at the "
                       r"lowest: fails, .*P99 TPOT [0-9.]+ ms\)"):  # fmt: skip
        plan_workload("count", 8, small_wl, slo, ["L4"], precision=FAST)


def test_refinement_is_bounded():
    """A capacity that shrinks as fast as the fleet grows never reaches the target: a note, not a hang."""
    calls = []

    def shrinking(gpu_name, tp, k):
        calls.append(k)
        return {"capacity_instances": k, "requests_per_s": 2.0 / k, "tokens_per_s": 400.0 / k}

    with pytest.raises(WhatIfError, match="H100-SXM: sizing did not settle within 64 capacity measurements"):
        plan("performance", 5000.0, CAP, costs=COSTS, measure=shrinking)
    assert len(calls) == 64


# ---------------------------------------------------------------------------------------------- grid flex
def test_grid_flex_cut_meets_slo_in_simulation(small_wl):
    slo = SLO(ttft_s=2.0, tpot_s=0.06)
    kw = {"caps": (256, 64, 32, 16), "clocks": (1.0, 0.8, 0.6), "precision": FAST, "node_power_w": 0.0}
    res = grid_flex(small_wl, slo, "H100", 2, **kw)
    curve = power_curve("H100-SXM", "Llama-3.1-8B", 1)
    assert res.baseline_kw == pytest.approx(2 * curve(256) / 1000)
    assert res.floor_kw == pytest.approx(2 * idle_power_w("H100") / 1000)
    best = res.best
    assert 0.0 < best["ceiling_reduction"] < 1 - res.floor_kw / res.baseline_kw
    same = (pl.col("max_num_seqs") == best["max_num_seqs"]) & (pl.col("clock") == best["clock"])
    sim = res.checks.filter(same)
    row = sim.row(0, named=True)
    assert row["slo_met"] and row["rejected"] == 0
    assert row["ttft_p99_s"] <= slo.ttft_s and row["tpot_p99_s"] <= slo.tpot_s
    assert row["max_batch"] <= best["max_num_seqs"]  # the cap holds in the simulator
    assert row["peak_instance_kw"] <= best["ceiling_kw"] / 2 + 1e-9  # and so does the power ceiling
    assert row["mean_kw"] < res.baseline_kw
    # the SLO cost of deeper cuts grows: the curve's SLO ratio does not fall as the cut deepens
    ratios = res.curve["slo_ratio"].to_numpy()
    assert np.all(np.diff(ratios) >= -1e-9)
    assert res.curve["cut"][0] == 0.0


@pytest.fixture(scope="module")
def flex_wl():
    gen = Synthetic(arrivals=Poisson(20.0), lengths=LogNormal(6.5, 0.8, 5.0, 0.7))
    return workload(gen, 20.0, seed=1, n_requests=1500)


def test_grid_flex_scans_deepest_first(flex_wl):
    """The verdicts are not monotone in the cut (two levers): cap 32 / clock 0.5 (63.4 %) and cap 24 /
    clock 0.55 (61.6 %) are unstable in steady state while the shallower cap 48 / clock 0.5 (61.0 %) meets,
    so the scan tries every deeper option first. (Under the clock-aware roofline of issue 17, where a lower
    clock slows compute but not memory-bound decode; the earlier 1 / clock model kept cap 96 / 0.55.)"""
    slo = SLO(2.0, 0.06)
    res = grid_flex(flex_wl, slo, "H100", 2, precision=FAST, node_power_w=0.0)
    assert (res.best["max_num_seqs"], res.best["clock"]) == (48, 0.5)
    assert res.best["ceiling_reduction"] == pytest.approx(0.6099, abs=1e-4)
    assert res.best["sim_verdict"] == "meets" and res.best["sim_ttft_p99_hi"] < slo.ttft_s
    verdicts = {(r["max_num_seqs"], r["clock"]): r["verdict"] for r in res.checks.iter_rows(named=True)}
    assert verdicts[(32, 0.5)] == "unstable" and verdicts[(24, 0.55)] == "unstable"
    assert res.exhaustive
    feasible = res.options.filter("slo_met")
    deeper = feasible.filter(pl.col("ceiling_reduction") > res.best["ceiling_reduction"])
    sims = res.checks.join(deeper.select("max_num_seqs", "clock"), on=["max_num_seqs", "clock"])
    assert sims.height == deeper.height == res.checks.height - 1  # every deeper option simulated ...
    assert not sims["slo_met"].any()  # ... and failed; the answer passed
    assert res.checks.filter(pl.col("slo_met")).height == 1 and res.baseline_sim["slo_met"]
    # a budget of 3 simulations runs out before the pass: the rest is bisected and flagged
    small = grid_flex(flex_wl, slo, "H100", 2, precision=FAST, node_power_w=0.0, max_sims=3)
    assert not small.exhaustive and small.checks.height <= 3 + 7
    assert small.checks.filter(pl.col("slo_met")).height >= 1
    assert small.best["ceiling_reduction"] <= res.best["ceiling_reduction"]


def test_grid_flex_reports_ceiling_and_mean_power_cuts(flex_wl):
    """A batch cap above the batches the workload reaches lowers the power ceiling (18.8 % at cap 32) but not
    the power drawn (simulated mean ~0 %): both are reported, and the objective picks which to maximise."""
    slo = SLO(2.0, 0.06)
    kw = {"precision": FAST, "node_power_w": 0.0}
    caps = grid_flex(flex_wl, slo, "H100", 2, caps=(256, 32), clocks=(1.0,), **kw)
    best = caps.best
    assert (best["max_num_seqs"], best["clock"]) == (32, 1.0)
    assert best["ceiling_reduction"] == pytest.approx(0.188, abs=1e-3)
    assert abs(best["mean_reduction"]) < 0.01 and abs(best["sim_mean_reduction"]) < 0.01
    assert (
        caps.mean_reduction == best["sim_mean_reduction"]
        and caps.ceiling_reduction == best["ceiling_reduction"]
    )
    assert caps.reduction == caps.ceiling_reduction  # the objective's reduction
    assert caps.baseline_sim["max_num_seqs"] == 256 and caps.baseline_sim["clock"] == 1.0
    assert best["sim_mean_kw"] == pytest.approx(caps.baseline_sim["mean_kw"], rel=0.01)
    assert caps.sims == caps.checks.height + 1
    text = caps.summary()
    assert "ceiling cut 18.7%" in text and "mean-power cut 0.0% predicted, " in text and "simulated" in text
    # both objectives over two levers: "mean" trades the cap for the clock, which cuts the power drawn
    two = {"caps": (256, 32), "clocks": (1.0, 0.7), **kw}
    ceil = grid_flex(flex_wl, slo, "H100", 2, **two)
    mean = grid_flex(flex_wl, slo, "H100", 2, objective="mean", **two)
    assert mean.objective == "mean" and mean.best["sim_mean_reduction"] > 0.25
    assert mean.reduction == mean.best["sim_mean_reduction"] != mean.ceiling_reduction  # not the ceiling's
    assert mean.best["sim_mean_reduction"] >= ceil.best["sim_mean_reduction"] - 1e-9
    assert mean.curve["mean_reduction"].min() >= 0.0 and "sim_mean_reduction" in mean.checks.columns
    # a requested mean-power cut holds in simulation, not only in the prediction
    asked = grid_flex(flex_wl, slo, "H100", 2, objective="mean", cut=0.3, **two)
    assert asked.best["sim_mean_reduction"] >= 0.3 and asked.best["sim_slo_met"]
    with pytest.raises(Exception, match="objective"):
        grid_flex(flex_wl, slo, "H100", 2, objective="peak", check=False)
    for caps in ((256, 0), (256, 0.5)):
        with pytest.raises(ConfigError, match="caps must be an integer >= 1"):
            grid_flex(flex_wl, slo, "H100", 2, caps=caps, check=False)
    with pytest.raises(ConfigError, match="max_sims must be an integer"):
        grid_flex(flex_wl, slo, "H100", 2, max_sims=0)
    for bad in (True, 2.0):  # True was taken for one instance
        with pytest.raises(ConfigError, match=rf"^instances must be an integer >= 1, got {bad!r}$"):
            grid_flex(flex_wl, slo, "H100", bad, check=False)
    with pytest.raises(ConfigError, match=r"max_num_seqs must be an integer >= 1, got 64\.5"):
        grid_flex(flex_wl, slo, "H100", 2, max_num_seqs=64.5, check=False)
    assert (
        grid_flex(flex_wl, slo, "H100", np.int64(2), caps=(np.int64(32),), clocks=(1.0,), check=False).nodes
        == 1
    )


def test_grid_flex_requested_cut_and_node_baseline(small_wl):
    slo = SLO(ttft_s=2.0, tpot_s=0.06)
    kw = {"caps": (256, 32), "clocks": (1.0, 0.7), "precision": FAST}
    res = grid_flex(small_wl, slo, "H100", 2, cut=0.3, node_power_w=0.0, **kw)
    # cap 32 at clock 0.7 (48 %) meets under the clocked roofline (memory-bound decode barely slows; it was
    # unstable under the 1 / clock model): the deepest option is judged first and kept
    assert res.best["ceiling_reduction"] >= 0.3 and res.checks.height == 1 and res.sims == 2
    assert res.checks["verdict"].to_list() == ["meets"] and res.best["max_num_seqs"] == 32
    # a 500 W node baseline (2 GPUs -> one node) is in both the ceiling and the floor, so cuts are shallower
    nodes = grid_flex(small_wl, slo, "H100", 2, node_power_w=500.0, check=False, **kw)
    assert nodes.baseline_kw == pytest.approx(res.baseline_kw + 0.5)
    assert nodes.floor_kw == pytest.approx(res.floor_kw + 0.5)
    assert nodes.options["ceiling_reduction"].max() < res.options["ceiling_reduction"].max()
    # the default node baseline is the planning modes' (workbench.tco.NODE_POWER_W), and the answer says so
    default = grid_flex(small_wl, slo, "H100", 2, check=False, **kw)
    assert CostBasis().node_power_w == 500.0 and default.node_power_w == 500.0 and default.nodes == 1
    assert default.baseline_kw == pytest.approx(nodes.baseline_kw)
    assert "node baseline 500 W x 1 node(s) (the planning modes' default)" in default.summary()


def test_grid_flex_cut_below_idle_names_limit(small_wl):
    with pytest.raises(WhatIfError, match=r"95% cut .* idle power 0\.29 kW .*143 W"):
        grid_flex(small_wl, SLO(2.0, 0.06), "H100", 2, cut=0.95, node_power_w=0.0, check=False)
    # between the deepest setting tried (cap 1, clock 0.5: 68.4 %) and the idle floor (79.1 %): one clear error
    beyond = r"70\.0% cut of the ceiling is beyond .* deepest is 68\.4% \(cap 1, clock 0\.5\).*79\.1%"
    with pytest.raises(WhatIfError, match=beyond):
        grid_flex(small_wl, SLO(2.0, 0.06), "H100", 2, cut=0.7, node_power_w=0.0, check=False)


# ---------------------------------------------------------------------------------------------- reliability
def test_availability_and_spares_by_hand():
    assert availability(0.01, 10.0) == pytest.approx(1 / 1.1)
    assert availability(0.01, 10.0, tp=2) == pytest.approx(1 / 1.21)
    with_node = availability(0.01, 10.0, node_failure_rate_per_h=0.02, node_mttr_h=5.0)
    assert with_node == pytest.approx(1 / 1.1 / 1.1)
    # n = 2 needed, A = 0.9: P(2 of 2) = 0.81; P(>=2 of 3) = 3 x 0.81 x 0.1 + 0.729 = 0.972;
    # P(>=2 of 4) = 1 - 0.1^4 - 4 x 0.9 x 0.1^3 = 0.9963
    assert prob_enough(2, 3, 0.9) == pytest.approx(0.972)
    assert prob_enough(2, 4, 0.9) == pytest.approx(0.9963)
    assert spares_needed(2, 0.9, 0.95) == 1
    assert spares_needed(2, 0.9, 0.99) == 2
    assert spares_needed(5, 1.0, 0.999) == 0
    table = margin_table(2, 0.9, target=0.99, tp=4, usd_per_gpu_hr=2.0)
    assert table["meets_target"].to_list() == [False, False, True, True, True]
    assert table["usd_per_hour"].to_list() == [16.0, 24.0, 32.0, 40.0, 48.0]  # instances x 4 GPUs x $2


def test_zero_availability_names_limit():
    with pytest.raises(WhatIfError, match=r"availability is .*1e\+12/h.*MTTR 1 h"):
        availability(1e12, 1.0)


def test_failure_injection_retries_and_costs():
    """Two H100 at 30 req/s: an outage of one (20 failures a GPU-hour, 11 s repairs) overloads the other, so
    the kernel fails the fleet on its steady-state P99 TTFT; one spare restores the SLO."""
    gen = Synthetic(arrivals=Poisson(30.0), lengths=Fixed(800, 120))
    slo = SLO(ttft_s=2.0, tpot_s=0.06)
    kw = {"failure_rate_per_h": 20.0, "mttr_h": 0.003}
    study = failure_study(gen, slo, "H100", 2, spares=1, usd_per_gpu_hr=3.0, seed=1, precision=FAST, **kw)
    base, failing, spare = (study.row(i, named=True) for i in range(3))
    assert base["failures"] == 0 and base["interrupted"] == base["requeued"] == 0 and base["slo_met"]
    assert failing["failures"] >= 1 and failing["interrupted"] + failing["requeued"] >= 1
    assert failing["repairs"] <= failing["failures"] and failing["node_failures"] == 0
    assert (study["rejected"] == 0).all()  # requests wait for a repair instead of being dropped
    assert spare["instances"] == 3 and spare["usd_per_hour"] == pytest.approx(3 * 3.0)
    assert base["usd_per_hour"] == pytest.approx(2 * 3.0)
    assert failing["availability"] == pytest.approx(1 / (1 + 20 * 0.003))
    assert spare["p_slo"] > failing["p_slo"]
    # failures break the SLO (the whole CI above the target); one spare restores it
    assert failing["verdict"] == "fails" and failing["ttft_p99_lo"] > slo.ttft_s
    assert spare["verdict"] == "meets" and spare["requests"] >= 8000
    tr = gen.generate(3000, seed=2)
    res = simulate_with_failures(tr, "H100", 2, failure_rate_per_h=200.0, mttr_h=0.0005, seed=1)
    assert res.counters["failures"] >= 1
    assert int(res.requests["retries"].sum()) == res.counters["retried"]
    assert res.counters["retried"] == res.counters["interrupted"] + res.counters["requeued"]
    assert res.counters["repairs"] == res.counters["cold_starts"]  # the simulator counts repairs as cold starts
    assert res.requests["finish_s"].is_not_null().all()  # every retried request finished somewhere
    off = res.segments.filter(pl.col("state") == "off")
    assert off.height >= res.counters["failures"]  # down periods are in the timeline


def test_node_failures_by_hand():
    """Two instances per node, node up 0.8, instance (GPU part) up 0.9: node outages correlate the instances."""
    # one node holding both: P(>= 1 up) = 0.8 x (1 - 0.1^2) = 0.792 (independent model: 1 - 0.28^2 = 0.9216)
    assert prob_enough(1, 2, 0.9, node_avail=0.8, per_node=2) == pytest.approx(0.792)
    assert prob_enough(1, 2, 0.72) == pytest.approx(0.9216)
    # two nodes, pmf of one = [0.2 + 0.8 x 0.01, 0.8 x 0.18, 0.8 x 0.81] = [0.208, 0.144, 0.648]
    two = 1 - 0.208**2 - 2 * 0.208 * 0.144
    assert prob_enough(2, 4, 0.9, node_avail=0.8, per_node=2) == pytest.approx(two)
    # a partial last node: 3 instances = one full node + one alone
    one = np.array([0.208, 0.144, 0.648])
    alone = np.array([0.2 + 0.8 * 0.1, 0.8 * 0.9])
    three = np.convolve(one, alone)[2:].sum()
    assert prob_enough(2, 3, 0.9, node_avail=0.8, per_node=2) == pytest.approx(three)
    vec = prob_enough(2, np.array([4, 3]), 0.9, node_avail=0.8, per_node=2)
    assert vec.tolist() == pytest.approx([two, three])
    assert prob_enough(2, 4, 0.9, node_avail=1.0, per_node=2) == pytest.approx(prob_enough(2, 4, 0.9))
    correlated = spares_needed(8, 0.99, 0.999, node_avail=0.98, per_node=4)
    assert correlated > spares_needed(8, 0.99 * 0.98, 0.999)  # whole-node outages need more spares
    # merged down periods: a node failure over a GPU repair keeps the instance down until both are done
    periods = down_periods([(1.0, 0, 2.0), (10.0, 1, 1.0)], [(2.0, 0, 0.5), (5.0, 0, 1.0)], 2)
    assert periods == [(1.0, 0, 2.0, "gpu+node"), (2.0, 1, 0.5, "node"), (5.0, 0, 1.0, "node"),
                       (5.0, 1, 1.0, "node"), (10.0, 1, 1.0, "gpu")]  # fmt: skip


def test_failure_study_checks_node_size_first(monkeypatch):
    """A node smaller than an instance was caught only after spares_needed ran with a made-up one-instance
    node; numpy integer node sizes were refused."""
    from workbench.whatif import reliability

    tr = Synthetic(arrivals=Poisson(12.0), lengths=Fixed(800, 120)).generate(60, seed=2)
    kw = {"failure_rate_per_h": 1.0, "mttr_h": 0.001}

    def untouched(*args, **kwargs):
        raise AssertionError("spares_needed ran before the arguments were checked")

    monkeypatch.setattr(reliability, "spares_needed", untouched)
    with pytest.raises(WhatIfError, match=r"gpus_per_node must be an integer >= tp = 2, got 1"):
        failure_study(tr, SLO(2.0, 0.06), "H100", 2, tp=2, gpus_per_node=1, **kw)
    with pytest.raises(ConfigError, match=r"gpus_per_node must be an integer >= 1, got True"):
        failure_study(tr, SLO(2.0, 0.06), "H100", 2, gpus_per_node=True, **kw)
    with pytest.raises(ConfigError, match=r"spares must be an integer >= 0, got 1\.5"):
        failure_study(tr, SLO(2.0, 0.06), "H100", 2, spares=1.5, **kw)
    monkeypatch.undo()
    study = failure_study(tr, SLO(2.0, 0.06), "H100", 2, gpus_per_node=np.int64(2), spares=np.int64(1), **kw)
    assert study["instances"].to_list() == [2, 2, 3]
    assert spares_needed(np.int64(2), 0.9, 0.99, per_node=np.int64(2), node_avail=0.99) >= 2


def test_node_failure_injection():
    tr = Synthetic(arrivals=Poisson(12.0), lengths=Fixed(800, 120)).generate(300, seed=2)
    kw = {"tp": 1, "gpus_per_node": 2, "node_failure_rate_per_h": 300.0, "node_mttr_h": 0.0005, "seed": 1}
    res = simulate_with_failures(tr, "H100", 4, **kw)
    c = res.counters
    assert c["node_failures"] >= 1 and c["failures"] >= 2 * c["node_failures"] - 2  # both instances of a node
    assert c["retried"] == c["interrupted"] + c["requeued"] == int(res.requests["retries"].sum())
    assert c["repairs"] == c["failures"] and res.requests["finish_s"].is_not_null().all()
    off = res.segments.filter(pl.col("state") == "off").sort("start_s")
    starts = off.group_by("start_s").agg(pl.col("instance").n_unique().alias("n"))
    assert (starts["n"] == 2).any()  # a node failure takes its two instances down at the same instant
    study = failure_study(tr, SLO(2.0, 0.06), "H100", 3, failure_rate_per_h=0.0, mttr_h=0.0005, spares=1,
                          usd_per_gpu_hr=3.0, **kw)  # fmt: skip
    base, failing = study.row(0, named=True), study.row(1, named=True)
    assert base["node_failures"] == 0 and failing["node_failures"] >= 1
    a_node = 1 / (1 + 300.0 * 0.0005)
    assert failing["availability"] == pytest.approx(a_node)
    assert failing["p_slo"] == pytest.approx(float(prob_enough(3, 3, 1.0, node_avail=a_node, per_node=2)))


# ---------------------------------------------------------------------------------------------- sweep
def test_rate_sweep_counts_every_tp_gpu():
    tr = Synthetic(arrivals=Poisson(5.0), lengths=LogNormal(6.5, 0.8, 5.0, 0.7)).generate(500, seed=1)
    cost = CostBasis(usd_per_gpu_hr={"H100": 3.0, "A100": 2.0})
    table = rate_sweep(tr, SLO(2.0, 0.1), ["H100", "A100"], [5.0, 20.0], model="Llama-3.1-70B", cost=cost)
    assert table.height == 4 and set(table["tp"]) == {2}  # 70B needs 2 GPUs per instance on 80 GB GPUs
    for row in table.iter_rows(named=True):
        price = 3.0 if row["gpu"] == "H100-SXM" else 2.0
        assert row["gpus"] == 2 * row["instances"]
        assert row["usd_per_hour"] == pytest.approx(row["instances"] * 2 * price)
        tok_s = row["qps"] * workload(tr, row["qps"]).output.mean()
        assert row["usd_per_m_output_tokens"] == pytest.approx(row["usd_per_hour"] / (tok_s * 3600) * 1e6)
        # facility energy: GPUs + 500 W per (8-GPU) node, times the basis' PUE (its site's: us-avg, 1.56)
        nodes = math.ceil(row["gpus"] / 8)
        facility = (row["gpu_j_per_output_token"] * tok_s + 500.0 * nodes) * 1.56 / tok_s
        assert cost.facility_pue == 1.56
        assert row["facility_j_per_output_token"] == pytest.approx(facility)
        assert row["facility_j_per_output_token"] > 1.56 * row["gpu_j_per_output_token"]
    h100 = table.filter(pl.col("gpu") == "H100-SXM")
    assert h100["instances"].to_list()[0] < h100["instances"].to_list()[1]


def test_tp_mapping_keys_go_through_the_catalog(small_wl):
    """{"H100": 2} names the H100-SXM: it was silently ignored (looked up under the canonical name)."""
    slo = SLO(2.0, 0.1)
    for tp in ({"H100": 2}, {"h100-sxm": 2}, 2):
        assert capacity_at_slo(small_wl, slo, ["H100"], tp=tp)["tp"].to_list() == [2]
        assert rate_sweep(small_wl.trace, slo, ["H100", "L40S"], [10.0], tp=tp)["tp"].to_list()[0] == 2
    assert rate_sweep(small_wl.trace, slo, ["H100", "L40S"], [10.0], tp={"H100": 2})["tp"].to_list() == [2, 1]
    with pytest.raises(ConfigError, match=r"tp key 'H999'.*unknown gpu"):
        capacity_at_slo(small_wl, slo, ["H100"], tp={"H999": 2})
    with pytest.raises(ConfigError, match=r"tp key 'A100' \(A100-80GB-SXM\) is not one of the GPUs compared"):
        rate_sweep(small_wl.trace, slo, ["H100"], [10.0], tp={"A100": 2})
    with pytest.raises(ConfigError, match="H100-SXM twice"):
        capacity_at_slo(small_wl, slo, ["H100"], tp={"H100": 2, "H100-SXM": 4})
    with pytest.raises(ConfigError, match="tp for H100-SXM must be an integer >= 1"):
        capacity_at_slo(small_wl, slo, ["H100"], tp={"H100": 0})


def test_bad_inputs():
    with pytest.raises(Exception, match="mode"):
        plan("speed", 1.0, CAP)
    with pytest.raises(Exception, match="target"):
        plan("budget", -1.0, CAP)
    with pytest.raises(Exception, match="capacity table lacks"):
        plan("budget", 1e6, CAP.drop("busy_w"))
    with pytest.raises(Exception, match="whole number"):
        plan("count", 12.5, CAP)
    with pytest.raises(Exception, match="eta_gpu"):
        ModeCosts(eta_gpu=1.5)
    assert math.isclose(availability(0.0, 5.0), 1.0)


@settings(max_examples=40, deadline=None)
@given(
    budget=st.floats(3e5, 5e7),
    power=st.floats(8.0, 2000.0),
    work=st.floats(100.0, 1e6),
    eta=st.floats(0.95, 1.0),
)
def test_modes_are_tight(budget, power, work, eta):
    """Property: every mode's answer satisfies its limit and one more node would break it (or is not needed)."""
    costs = ModeCosts(CostBasis(**COSTS_KW), eta_gpu=eta)
    one_more = lambda row: fleet_metrics(CAP.row(0, named=True), costs, np.array([row["gpus"] + 8]))  # noqa: E731
    row = plan("budget", budget, CAP, costs=costs).row(0, named=True)
    assert row["tco_usd"] <= budget < one_more(row)["tco_usd"][0]
    row = plan("power", power, CAP, costs=costs).row(0, named=True)
    assert row["facility_kw"] <= power < one_more(row)["facility_kw"][0]
    try:
        row = plan("performance", work, CAP, costs=costs).row(0, named=True)
    except WhatIfError:  # efficiency losses cap the work below the target
        return
    assert row["tokens_per_s"] >= work * (1 - 1e-9)
    fewer = fleet_metrics(CAP.row(0, named=True), costs, np.arange(8, row["gpus"], 8))["tokens_per_s"]
    assert (fewer < work).all()
