"""Power curves, energy of a SimResult, execution-idle, DVFS."""

from __future__ import annotations

import itertools
import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.errors import ConfigError, HardwareError
from workbench.power import (
    EXEC_IDLE_POWER_RATIO,
    H100_WATTLYTICS,
    RULE_ERRORS,
    InstancePower,
    LogisticPower,
    energy,
    energy_timeseries,
    fit_report,
    idle_power_w,
    instance_power,
    leave_one_out,
    load_fits,
    lookup_rule_errors,
    mean_power_w,
    optimal_clock,
    power_curve,
)
from workbench.power.dvfs import DvfsCurve
from workbench.power.fitting import K_MAX, build_fits, fit_logistic, load_runs
from workbench.sim.result import INSTANCE_SCHEMA, REQUEST_SCHEMA, SEGMENT_SCHEMA, SimResult

LLAMA8 = "meta-llama/Llama-3.1-8B-Instruct"


def make_result(segments: list[tuple], instances: list[tuple], requests: list[tuple] = ()) -> SimResult:
    """SimResult from (instance, start, end, state, batch) and (instance, pool, gpu, model, tp, n_gpus) rows;
    requests are (instance, pool, output_tokens, finished)."""
    seg = pl.DataFrame(
        {
            "instance": [s[0] for s in segments],
            "start_s": [float(s[1]) for s in segments],
            "end_s": [float(s[2]) for s in segments],
            "state": [s[3] for s in segments],
            "batch_size": [s[4] for s in segments],
            "prefill_tokens": [0] * len(segments),
            "kv_blocks_used": [0] * len(segments),
            "iterations": [1] * len(segments),
        },
        schema=SEGMENT_SCHEMA,
    )
    inst = pl.DataFrame([(*row, 1000) for row in instances], schema=list(INSTANCE_SCHEMA), orient="row").cast(
        INSTANCE_SCHEMA
    )  # type: ignore[arg-type]
    req = pl.DataFrame(schema=REQUEST_SCHEMA)
    if requests:
        rows = {k: [None] * len(requests) for k in REQUEST_SCHEMA}
        rows["request_id"] = list(range(len(requests)))
        rows["instance"] = [r[0] for r in requests]
        rows["pool"] = [r[1] for r in requests]
        rows["output_tokens"] = [r[2] for r in requests]
        rows["finish_s"] = [1.0 if r[3] else None for r in requests]
        rows["rejected"] = [not r[3] for r in requests]
        req = pl.DataFrame(rows, schema=REQUEST_SCHEMA)
    return SimResult(req, seg, inst)


# --- curves -------------------------------------------------------------------------------------------------


def test_logistic_shape_and_midpoint() -> None:
    c = LogisticPower(200.0, 600.0, 1.0, 4.0)
    assert c(16) == pytest.approx(400.0)  # log2(16) = x0 -> midpoint
    assert c(0) == c(1)  # batches below 1 count as 1
    b = np.array([1, 2, 8, 64, 1024])
    assert np.all(np.diff(c(b)) > 0)
    assert 200 < c(1) < c(1024) < 600


def test_fit_logistic_recovers_parameters() -> None:
    b = 2.0 ** np.arange(0, 11)
    true = LogisticPower(300.0, 650.0, 1.3, 5.0)
    params, kind = fit_logistic(b, true(b), tdp_w=700.0, idle_w=143.0)
    assert kind == "4p"
    # the soft priors shift exact data by < 0.1 %
    np.testing.assert_allclose(params, [300.0, 650.0, 1.3, 5.0], rtol=1e-3)


def test_fit_logistic_is_monotone_above_idle_and_flat_on_flat_data() -> None:
    b = np.array([8.0, 16, 32, 64, 128, 256])
    falling = np.array([583.6, 362.9, 365.5, 402.7, 349.4, 370.0])  # a B200 run group that falls with batch
    p_low, p_high, k, _ = fit_logistic(b, falling, tdp_w=1000.0, idle_w=204.3)[0]
    assert 204.3 <= p_low <= p_high and 0.1 <= k <= K_MAX
    flat = fit_logistic(b, np.full(b.size, 880.0), tdp_w=1000.0, idle_w=204.3)[0]
    curve = LogisticPower(*flat)
    # flat measurements give a flat curve, also outside the measured range (no step to idle or to TDP)
    np.testing.assert_allclose(curve(np.array([1.0, 8.0, 256.0, 4096.0])), 880.0, rtol=1e-6)
    with pytest.raises(ConfigError, match="idle_w"):
        fit_logistic(b, falling, tdp_w=1000.0, idle_w=0.0)


def test_decreasing_curve_rejected() -> None:
    with pytest.raises(ConfigError, match="p_low_w must be <= p_high_w"):
        LogisticPower(600.0, 400.0, 1.0, 4.0)


def test_power_model_vs_mlenergy_runs_h100_b200(shared_traces) -> None:
    report = fit_report().to_dicts()
    by_gpu = {r["gpu"]: r for r in report}
    for gpu in ("H100-SXM", "B200"):
        assert by_gpu[gpu]["median_ape"] <= 0.08, by_gpu[gpu]
        assert by_gpu[gpu]["n_points"] >= 300  # almost every run has a fitted group
    # measured with the shipped fits: median 1.5 % (B200) and 0.65 % (H100) in sample
    assert by_gpu["B200"]["median_ape"] == pytest.approx(0.0153, abs=0.002)
    assert by_gpu["H100-SXM"]["median_ape"] == pytest.approx(0.0065, abs=0.001)


def test_leave_one_out_error(shared_traces) -> None:
    runs = load_runs().filter(pl.col("model_id").str.starts_with("meta-llama/"))
    loo = {r["gpu"]: r for r in leave_one_out(runs).to_dicts()}
    # interior points predicted by fits to the other points of their group (all models: 3.3 % B200, 1.4 % H100)
    assert loo["H100-SXM"]["n_points"] >= 20 and loo["H100-SXM"]["median_ape"] <= 0.03
    assert loo["B200"]["median_ape"] <= 0.08


def test_shipped_fits_are_physical() -> None:
    fits = load_fits()
    assert fits["idle_w"].null_count() == 0
    assert (fits["p_low_w"] >= fits["idle_w"]).all() and (fits["p_low_w"] <= fits["p_high_w"]).all()
    groups = fits.filter(pl.col("scope") == "run_group")
    assert groups.height >= 100 and (groups["k"] <= K_MAX).all()
    for row in groups.iter_rows(named=True):
        c = LogisticPower(row["p_low_w"], row["p_high_w"], row["k"], row["x0"])
        assert row["idle_w"] <= c(1) <= c(row["batch_min"]) + 1e-9, row
    # the audit's example: no more ~TDP at batch 1 with 477 W at batch 8
    c = power_curve("B200", "Qwen3-VL-8B-Instruct", 1)
    assert idle_power_w("B200") <= c(1) <= c(8) <= c(64)


@pytest.fixture(scope="module")
def rebuilt_fits(shared_traces) -> pl.DataFrame:
    """The fit table rebuilt from the runs (once for the module: ~15 s)."""
    return build_fits()


def test_shipped_fits_are_reproducible(rebuilt_fits) -> None:
    keys = ["gpu", "model_id", "task", "num_gpus", "tp", "ep"]
    shipped = load_fits().filter(pl.col("scope") == "run_group").sort(keys)
    rebuilt = rebuilt_fits.filter(pl.col("scope") == "run_group").sort(keys)
    assert shipped.height == rebuilt.height >= 100
    assert shipped.select(keys).equals(rebuilt.select(keys))
    # compare what the fits predict on a grid inside each measured range (parameters may sit on flat
    # directions of the logistic; predictions may not move)
    grid = np.linspace(0.0, 1.0, 9)
    for a, b in zip(shipped.iter_rows(named=True), rebuilt.iter_rows(named=True), strict=True):
        x = np.log2(a["batch_min"]) + grid * np.log2(a["batch_max"] / a["batch_min"])
        batches = 2.0**x
        pa = LogisticPower(a["p_low_w"], a["p_high_w"], a["k"], a["x0"])(batches)
        pb = LogisticPower(b["p_low_w"], b["p_high_w"], b["k"], b["x0"])(batches)
        np.testing.assert_allclose(pa, pb, rtol=1e-3, err_msg=str({k: a[k] for k in keys}))
    for col in ("rmse_w", "median_ape"):
        np.testing.assert_allclose(shipped[col], rebuilt[col], rtol=1e-3, atol=1e-4)


def test_shipped_gpu_defaults_are_reproducible(rebuilt_fits) -> None:
    cols = ["gpu", "fit_kind", "p_low_w", "p_high_w", "k", "x0", "idle_w", "idle_source", "source"]
    shipped = load_fits().filter(pl.col("scope") == "gpu_default").sort("gpu").select(cols)
    rebuilt = rebuilt_fits.filter(pl.col("scope") == "gpu_default").sort("gpu").select(cols)
    assert shipped.height == rebuilt.height >= 5
    assert shipped.drop("p_low_w", "p_high_w", "k", "x0").equals(rebuilt.drop("p_low_w", "p_high_w", "k", "x0"))
    for col in ("p_low_w", "p_high_w", "k", "x0"):
        np.testing.assert_allclose(shipped[col], rebuilt[col], rtol=1e-3, atol=1e-4)
    assert (rebuilt["idle_w"] <= rebuilt["p_low_w"]).all()


def test_power_curve_lookup_and_fallback() -> None:
    fit = power_curve("H100", LLAMA8, 1)
    assert fit.source.startswith("fit H100-SXM meta-llama/Llama-3.1-8B-Instruct lm-arena-chat")
    # ML.ENERGY: H100 Llama-3.1-8B TP1 draws 486 W at batch 8 and ~688 W from batch ~192 (hardware README)
    assert fit(8) == pytest.approx(486, rel=0.03)
    assert fit(256) == pytest.approx(690, rel=0.03)
    assert power_curve("H100-SXM", "llama-3.1-8b", 1).source == fit.source  # short, case-insensitive name
    assert power_curve("H100-SXM", "no-such-model", 1).source.startswith("gpu_default H100-SXM")
    assert power_curve("L4").source.startswith("gpu_default L4")
    with pytest.raises(HardwareError, match=r"(?i)unknown gpu 'Z100'"):
        power_curve("Z100")


def test_power_curve_lookup_rule_is_explicit() -> None:
    # the issue-17 case: 1-GPU video chat has two runs (472, 510 W at batch 8, 16); the 2-GPU fit (322-345 W)
    # is no longer used: the H100 default scaled to the two runs is
    c = power_curve("H100", "Qwen/Qwen3-VL-30B-A3B-Instruct", 1, task="video-chat")
    assert c.rule == "scaled_default" and "n=1" in c.source
    assert c(8) == pytest.approx(472, rel=0.05) and c(16) == pytest.approx(510, rel=0.05)
    assert c.rule_error == RULE_ERRORS["scaled_default"]
    # no run at this GPU count: the GPU default, saying so (never the 1-GPU fit)
    two = power_curve("H100", LLAMA8, 2)
    assert two.rule == "gpu_default" and "no ML.ENERGY run" in two.source
    assert "[1] GPUs are not used" in two.source
    # another task of the same model at the same GPU count
    other = power_curve("H100", "Qwen3-14B", 1, task="video-chat")
    assert other.rule == "other_task" and "lm-arena-chat" in other.source
    assert power_curve("H100", LLAMA8, 1).rule == "fit"
    assert LogisticPower(400, 600, 1, 4).rule == "user" and np.isnan(LogisticPower(400, 600, 1, 4).rule_error)


def test_lookup_rule_errors_match_the_documented_ones(shared_traces) -> None:
    errors = {r["rule"]: r for r in lookup_rule_errors(refit=False).to_dicts()}
    for rule in ("scaled_default", "other_task", "gpu_default"):
        assert errors[rule]["median_ape"] == pytest.approx(RULE_ERRORS[rule], abs=0.001), rule
    # the reason another GPU count's fit is not a step: worse than the GPU default
    assert errors["other_gpu_count"]["median_ape"] > RULE_ERRORS["gpu_default"] + 0.02
    runs = load_runs().filter(pl.col("model_id").str.starts_with("meta-llama/Llama-3"))
    fit = lookup_rule_errors(runs).filter(pl.col("rule") == "fit").row(0, named=True)
    assert fit["n_points"] >= 40 and fit["median_ape"] <= 2 * RULE_ERRORS["fit"]


def test_busy_power_at_clock_never_below_idle() -> None:
    from workbench.power import busy_power_at_clock, clock_power_scale

    assert clock_power_scale(1.0) == pytest.approx(1.0)
    assert busy_power_at_clock(600.0, 143.0, 1.0) == pytest.approx(600.0)
    half = busy_power_at_clock(600.0, 143.0, 0.5)
    assert half == pytest.approx(600.0 * clock_power_scale(0.5)) and 143.0 < half < 600.0
    assert busy_power_at_clock(200.0, 143.0, 0.1) == 143.0  # floored at loaded idle
    assert busy_power_at_clock(np.array([500.0, 200.0]), 143.0, 0.1).tolist() == pytest.approx([143.0, 143.0])


def test_idle_power_table() -> None:
    assert idle_power_w("H100-SXM") == 143.0  # measured loaded idle
    assert idle_power_w("B200") == pytest.approx(1000 * 143 / 700, abs=0.1)  # documented ratio rule


def test_mean_power_interpolates_busy_and_idle() -> None:
    p = InstancePower(LogisticPower(400, 600, 1, 4), idle_w=100.0, n_gpus=2)
    assert mean_power_w(p, 0.0, 16) == 200.0
    assert mean_power_w(p, 1.0, 16) == pytest.approx(1000.0)
    assert mean_power_w(p, 0.25, 16) == pytest.approx(0.25 * 1000 + 0.75 * 200)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"curve": LogisticPower(1, 2, 1, 0), "idle_w": -5.0}, "idle_w"),
        ({"curve": LogisticPower(1, 2, 1, 0), "idle_w": 5.0, "n_gpus": 0}, "n_gpus"),
        ({"curve": LogisticPower(1, 2, 1, 0), "idle_w": 5.0, "exec_idle_share": 1.5}, "exec_idle_share"),
    ],
)
def test_instance_power_rejects_bad_inputs(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        InstancePower(**kwargs)


def test_negative_power_rejected() -> None:
    with pytest.raises(ConfigError, match="p_low_w"):
        LogisticPower(-1.0, 600.0, 1.0, 4.0)


# --- energy of a simulation ---------------------------------------------------------------------------------


def test_constant_batch_timeline_integrates_to_p_times_t_exactly() -> None:
    res = make_result([(0, 0.0, 250.0, "busy", 32)], [(0, "p", "H100-SXM", LLAMA8, 1, 1.0)])
    rep = energy(res)
    p = power_curve("H100-SXM", LLAMA8, 1)(32)
    assert rep.fleet["energy_j"][0] == p * 250.0
    assert rep.fleet["it_kwh"][0] == pytest.approx(p * 250.0 / 3.6e6, rel=1e-15)


@settings(max_examples=30, deadline=None)
@given(
    cuts=st.lists(st.floats(0.01, 999.99), min_size=0, max_size=20, unique=True),
    batch=st.integers(1, 2048),
    n=st.sampled_from([1, 2, 4]),
)
def test_split_constant_timeline_sums_to_p_times_t(cuts: list[float], batch: int, n: int) -> None:
    edges = [0.0, *sorted(cuts), 1000.0]
    segs = [(0, a, b, "busy", batch) for a, b in itertools.pairwise(edges)]
    rep = energy(make_result(segs, [(0, "p", "B200", "no-model", n, float(n))]))
    p = n * power_curve("B200")(batch)
    assert rep.fleet["energy_j"][0] == pytest.approx(p * 1000.0, rel=1e-12)


def test_states_idle_starting_off_and_pools() -> None:
    segs = [
        (0, 0, 10, "starting", 0),
        (0, 10, 40, "busy", 8),
        (0, 40, 100, "idle", 0),
        (1, 0, 30, "busy", 64),
        (1, 30, 100, "off", 0),
    ]
    inst = [(0, "a", "H100-SXM", LLAMA8, 1, 1.0), (1, "b", "H100-SXM", LLAMA8, 2, 2.0)]
    reqs = [(0, "a", 100, True), (0, "a", 300, True), (1, "b", 50, True), (1, "b", 999, False)]
    rep = energy(make_result(segs, inst, reqs), pue=1.25)
    c0, c1 = power_curve("H100-SXM", LLAMA8, 1), power_curve("H100-SXM", LLAMA8, 2)
    e0 = 143.0 * 10 + c0(8) * 30 + 143.0 * 60
    e1 = 2 * c1(64) * 30
    by = {r["instance"]: r for r in rep.by_instance.to_dicts()}
    assert by[0]["energy_j"] == pytest.approx(e0, rel=1e-12)
    assert by[0]["starting_j"] == pytest.approx(1430.0)  # setup at idle power
    assert by[1]["off_j"] == 0.0 and by[1]["off_s"] == 70.0
    assert by[1]["energy_j"] == pytest.approx(e1, rel=1e-12)
    fleet = rep.fleet.row(0, named=True)
    assert fleet["energy_j"] == pytest.approx(e0 + e1, rel=1e-12)
    assert fleet["facility_kwh"] == pytest.approx((e0 + e1) * 1.25 / 3.6e6, rel=1e-12)
    assert fleet["requests"] == 3 and fleet["output_tokens"] == 450  # the unfinished request is excluded
    assert fleet["j_per_output_token"] == pytest.approx((e0 + e1) / 450, rel=1e-12)
    assert by[0]["j_per_request"] == pytest.approx(e0 / 2, rel=1e-12)
    assert rep.by_pool["energy_j"].sum() == pytest.approx(fleet["energy_j"], rel=1e-12)


def test_exec_idle_share_reproduces_study_shares() -> None:
    res = make_result([(0, 0, 100, "busy", 16)], [(0, "p", "H100-SXM", LLAMA8, 1, 1.0)])
    base = energy(res).fleet.row(0, named=True)
    rep = energy(res, exec_idle_share={"p": 0.197}).fleet.row(0, named=True)
    assert rep["exec_idle_time_share"] == pytest.approx(0.197)
    assert rep["exec_idle_energy_share"] == pytest.approx(0.107, abs=1e-9)
    saving = 1 - rep["energy_j"] / base["energy_j"]
    assert saving == pytest.approx(0.197 * (1 - EXEC_IDLE_POWER_RATIO), rel=1e-12)
    with pytest.raises(ConfigError, match="unknown instances or pools"):
        energy(res, exec_idle_share={"nope": 0.1})


def test_timeseries_splits_segments_exactly() -> None:
    segs = [(0, 0, 90, "busy", 4), (0, 90, 150, "idle", 0), (1, 30, 150, "busy", 128)]
    inst = [(0, "a", "B200", "x", 1, 1.0), (1, "a", "B200", "x", 1, 1.0)]
    rep = energy(make_result(segs, inst))
    ts = energy_timeseries(rep, 60.0)
    assert ts["start_s"].to_list() == [0.0, 60.0, 120.0]
    assert ts["energy_j"].sum() == pytest.approx(rep.fleet["energy_j"][0], rel=1e-12)
    c = power_curve("B200")
    assert ts["energy_j"][0] == pytest.approx(c(4) * 60 + c(128) * 30, rel=1e-12)
    assert ts["mean_power_w"][2] == pytest.approx(c(128) + idle_power_w("B200"), rel=1e-12)


@pytest.mark.parametrize(
    ("segs", "match"),
    [
        ([(0, 10, 5, "busy", 1)], "end_s >= start_s"),
        ([(0, 0, 5, "sleeping", 1)], "state"),
        ([(7, 0, 5, "busy", 1)], "missing from SimResult.instances"),
    ],
)
def test_bad_segments_give_one_clear_error(segs: list, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        energy(make_result(segs, [(0, "p", "H100-SXM", LLAMA8, 1, 1.0)]))


def test_pue_below_one_rejected() -> None:
    res = make_result([(0, 0, 5, "busy", 1)], [(0, "p", "H100-SXM", LLAMA8, 1, 1.0)])
    with pytest.raises(ConfigError, match="pue"):
        energy(res, pue=0.9)


def test_instance_power_unknown_gpu() -> None:
    with pytest.raises(HardwareError, match=r"(?i)unknown gpu"):
        instance_power("X999", LLAMA8)


# --- DVFS ---------------------------------------------------------------------------------------------------


def test_dvfs_piecewise_and_cap() -> None:
    c = H100_WATTLYTICS
    assert c.power_w(500) == pytest.approx(0.1 * 500 + 70)
    assert c.power_w(1500) == pytest.approx(0.000055 * 1500**2 + 0.042 * 1500 + 71)
    capped = DvfsCurve(975, 0.1, 70, 0.000055, 0.042, 71, tdp_w=300.0, f_min=210, f_max=1980)
    assert capped.power_w(1980) == 300.0
    assert c.scaled_to(650.0).power_w(1980) == pytest.approx(650.0)


def test_optimal_clock_analytic_and_slo() -> None:
    c = H100_WATTLYTICS
    free = optimal_clock(c, latency_ref_s=1.0, slo_s=100.0)
    # above f_t energy/work = a2 f + b2 + c2 / f, minimal at sqrt(c2 / a2)
    assert free.f_mhz == pytest.approx(math.sqrt(71 / 0.000055), abs=1.0)
    assert not free.slo_binding and free.saving > 0.1
    tight = optimal_clock(c, latency_ref_s=1.0, slo_s=1.2)
    assert tight.slo_binding and tight.f_mhz == pytest.approx(1980 / 1.2)
    assert tight.latency_s == pytest.approx(1.2)
    with pytest.raises(ConfigError, match="unreachable"):
        optimal_clock(c, latency_ref_s=1.0, slo_s=0.5)


# --- workload power classes ---------------------------------------------------------------------------------


def test_power_classes_held_out_by_model(shared_traces) -> None:
    from workbench.power import evaluate_held_out

    ev = {r["gpu"]: r for r in evaluate_held_out(n_trees=40, repeats=2).to_dicts()}
    assert ev["all"]["n"] == 838
    # mean over 2 random assignments of the models to 5 folds (README: 4 repeats, 200 trees: 8.4 % ± 0.3)
    assert ev["all"]["power_median_ape"] <= 0.10  # Minos-like target (<= 10 %) met for power: 8.4 %
    assert ev["all"]["power_median_ape_sd"] < 0.02
    # energy per token = predicted power / predicted throughput over a KV-aware roofline rate. Target <= 10 %
    # NOT met on unseen models overall: 13.0 % here (13.4 % ± 1.9 with 200 trees and 4 repeats; the one
    # unshuffled GroupKFold split gave a favourable 11.2 %). Met on H100 (8.7 %), missed on B200 (18.9 %).
    assert ev["all"]["energy_median_ape"] == pytest.approx(0.130, abs=0.01)
    assert ev["all"]["throughput_median_ape"] == pytest.approx(0.137, abs=0.01)
    assert ev["H100-SXM"]["energy_median_ape"] <= 0.10 and ev["B200"]["energy_median_ape"] > 0.15
    assert ev["all"]["energy_p90_ape"] <= 0.60  # was 0.64 on one split without the KV-cache roofline
    assert ev["all"]["class_accuracy"] >= 0.65
    one = evaluate_held_out(n_trees=2, repeats=1, n_splits=2)
    assert one["power_median_ape_sd"].is_null().all()  # one repeat: no spread


def test_model_architectures_cover_runs_and_match_zoo(shared_traces) -> None:
    from workbench.hardware import model
    from workbench.power.classes import KV_BYTES, model_architectures
    from workbench.power.fitting import load_runs

    arch = model_architectures()
    assert (
        set(load_runs()["model_id"]) == set(arch["model_id"])
        and arch["model_id"].n_unique() == arch.height == 34
    )
    gqa = arch.filter(pl.col("head_dim") > 0)
    assert (gqa["kv_values_per_layer"] == 2 * gqa["kv_heads"] * gqa["head_dim"]).all()
    assert ((arch["kv_layers"] + arch["window_layers"]) <= arch["layers"]).all()
    # KV bytes per token agree with the hardware model zoo (data/models.csv) where both list the model
    rows = {r["model_id"]: r for r in arch.to_dicts()}
    for mid, zoo in [
        ("meta-llama/Llama-3.1-8B-Instruct", "Llama-3.1-8B"),
        ("meta-llama/Llama-3.1-405B-Instruct", "Llama-3.1-405B"),
        ("Qwen/Qwen3-30B-A3B-Instruct-2507", "Qwen3-30B-A3B"),
        ("Qwen/Qwen3-235B-A22B-Instruct-2507", "Qwen3-235B-A22B"),
    ]:
        r = rows[mid]
        assert KV_BYTES * r["kv_values_per_layer"] * r["kv_layers"] == model(zoo).kv_bytes_per_token()


def test_kv_roofline_features_physics() -> None:
    from workbench.power.classes import STEP_OVERHEAD_S, kv_roofline_features

    cfg = pl.DataFrame(
        {
            "model_id": ["meta-llama/Llama-3.1-8B-Instruct"] * 3,
            "total_params_billions": [8.0] * 3,
            "activated_params_billions": [8.0] * 3,
            "weight_precision": ["bfloat16"] * 3,
            "avg_batch_size": [1.0, 64.0, 4096.0],
            "num_gpus": [1] * 3,
            "gpu": ["H100-SXM"] * 3,
            "task": ["lm-arena-chat"] * 3,
            "avg_output_len": [400.0] * 3,
            "avg_input_len": [500.0] * 3,
        }
    )
    roof, kv_step, kv_token = kv_roofline_features(cfg).T
    assert np.allclose(2.0**kv_token, 131072)  # 32 layers x 8 KV heads x 128 x 2 (K, V) x 2 bytes
    assert 2.0 ** kv_step[0] == pytest.approx(700 * 131072)  # batch 1 x (500 + 400 / 2) tokens
    assert 2.0 ** kv_step[2] == pytest.approx(0.9 * 80 * 2**30 - 16e9)  # capped at the HBM left
    # batch 1: one read of 16 GB of weights plus the KV at 3.35 TB/s, plus the fixed step overhead
    assert np.exp(roof[0]) == pytest.approx(1 / (STEP_OVERHEAD_S + (16e9 + 700 * 131072) / 3.35e12), rel=1e-6)
    assert np.all(np.diff(roof) > 0)
    with pytest.raises(ConfigError, match="row 0: model_id 'acme/unknown'"):
        kv_roofline_features(cfg.with_columns(model_id=pl.lit("acme/unknown")))
    explicit = cfg.drop("model_id").with_columns(
        kv_layers=pl.lit(32),
        window_layers=pl.lit(0),
        attention_window=pl.lit(0),
        kv_heads=pl.lit(8),
        kv_values_per_layer=pl.lit(2048),
    )
    assert np.array_equal(kv_roofline_features(explicit), kv_roofline_features(cfg))
    with pytest.raises(ConfigError, match="model_id column or all of"):
        kv_roofline_features(cfg.drop("model_id"))


def test_power_classes_predict_new_config(shared_traces) -> None:
    from workbench.power import fit_power_classes

    pc = fit_power_classes(n_trees=50)
    assert np.all(np.diff(pc.centroids) > 0) and pc.centroids.size == 3
    cfg = pl.DataFrame(
        {
            "model_id": ["meta-llama/Llama-3.1-8B-Instruct"] * 2,
            "total_params_billions": [8.0, 8.0],
            "activated_params_billions": [8.0, 8.0],
            "weight_precision": ["bfloat16"] * 2,
            "architecture": ["Dense Transformer"] * 2,
            "avg_batch_size": [8.0, 256.0],
            "num_gpus": [1, 1],
            "tensor_parallel": [1, 1],
            "expert_parallel": [1, 1],
            "gpu": ["H100", "H100"],
            "task": ["lm-arena-chat"] * 2,
            "avg_output_len": [600.0, 600.0],
        }
    )
    out = pc.predict(cfg)
    p, e = out["power_per_gpu_w"].to_list(), out["energy_per_token_j"].to_list()
    t = out["output_tokens_per_s"].to_list()
    assert 300 < p[0] < p[1] <= 700  # more power and less energy per token at the larger batch
    assert e[0] > 2 * e[1] and t[1] > 4 * t[0]
    # ML.ENERGY H100 Llama-3.1-8B chat at batch ~255: 9,010 tokens/s, 0.077 J/token (model in training)
    assert 6_000 < t[1] < 12_000 and 0.05 < e[1] < 0.12
    assert set(out["power_class"]) <= {"low", "medium", "high"}
    with pytest.raises(ConfigError, match="unknown task"):
        pc.predict(cfg.with_columns(task=pl.lit("poetry")))


def test_power_classes_predict_without_architecture(shared_traces) -> None:
    """Power and class need only CONFIG_COLUMNS; throughput and energy are NaN where the model is unknown."""
    from workbench.power import fit_power_classes
    from workbench.power.classes import CONFIG_COLUMNS
    from workbench.power.fitting import load_runs

    runs = load_runs()
    pc = fit_power_classes(runs, n_trees=5)
    known = runs.head(3).select(*CONFIG_COLUMNS, "model_id")
    full = pc.predict(known)
    assert full["energy_per_token_j"].is_finite().all() and full["output_tokens_per_s"].is_finite().all()
    bare = pc.predict(known.drop("model_id"))  # no model_id, no ARCH_COLUMNS: power and class only
    assert bare["power_per_gpu_w"].to_list() == full["power_per_gpu_w"].to_list()
    assert bare["power_class"].to_list() == full["power_class"].to_list()
    assert bare["energy_per_token_j"].is_nan().all() and bare["output_tokens_per_s"].is_nan().all()
    # a new model id among known ones: its row gets power and class, NaN energy; the others are unchanged
    mixed = pc.predict(known.with_columns(model_id=pl.Series(["acme/NewModel-8B", *known["model_id"][1:]])))
    assert mixed["power_per_gpu_w"].to_list() == full["power_per_gpu_w"].to_list()
    assert np.isnan(mixed["energy_per_token_j"][0]) and np.isnan(mixed["output_tokens_per_s"][0])
    assert mixed["energy_per_token_j"][1:].to_list() == full["energy_per_token_j"][1:].to_list()
    with pytest.raises(ConfigError, match=r"lack column\(s\) \['task'\]"):
        pc.predict(known.drop("task"))
    with pytest.raises(ConfigError, match=r"give \['kv_heads'\] but not all of"):
        pc.predict(known.drop("model_id").with_columns(kv_heads=pl.lit(8)))


ARCH_8B = {
    "kv_layers": 32,
    "window_layers": 0,
    "attention_window": 0,
    "kv_heads": 8,
    "kv_values_per_layer": 2048,
}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"kv_heads": 0}, "kv_heads must be >= 1"),
        ({"kv_values_per_layer": 0}, "kv_values_per_layer must be > 0"),
        ({"kv_values_per_layer": -2048}, "kv_values_per_layer must be > 0"),
        ({"kv_layers": 0}, "kv_layers \\+ window_layers must be >= 1"),
        ({"kv_layers": -1, "window_layers": 2, "attention_window": 4096}, "kv_layers must be >= 0"),
        ({"kv_layers": 16, "window_layers": 16}, "attention_window must be >= 1 where window_layers > 0"),
    ],
)
def test_with_architecture_checks_given_columns(change, message) -> None:
    from workbench.power.classes import with_architecture

    cfg = pl.DataFrame([ARCH_8B, {**ARCH_8B, **change}])
    assert with_architecture(cfg.head(1)).height == 1
    with pytest.raises(ConfigError, match=rf"^row 1: {message}"):
        with_architecture(cfg)


def test_with_architecture_rejects_nulls_and_text() -> None:
    from workbench.power.classes import with_architecture

    with pytest.raises(ConfigError, match=r"row 1: architecture value\(s\) \['kv_heads'\] are null"):
        with_architecture(pl.DataFrame([ARCH_8B, {**ARCH_8B, "kv_heads": None}]))
    with pytest.raises(ConfigError, match=r"\['kv_heads'\] must hold numbers"):
        with_architecture(pl.DataFrame([{**ARCH_8B, "kv_heads": "8"}]))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_splits": 1}, "n_splits must be an integer >= 2"),
        ({"n_splits": 35}, "at most 34"),
        ({"repeats": 0}, "repeats must be an integer >= 1"),
    ],
)
def test_held_out_split_count_is_checked(shared_traces, kwargs, message) -> None:
    from workbench.power import evaluate_held_out

    with pytest.raises(ConfigError, match=message):
        evaluate_held_out(**kwargs, n_trees=2)


# --- with the simulator and charts --------------------------------------------------------------------------


def test_energy_of_a_simulated_fleet() -> None:
    from workbench.sim.fleet import simulate

    rng = np.random.default_rng(0)
    n = 120
    reqs = pl.DataFrame(
        {
            "request_id": np.arange(n),
            "arrival_s": np.sort(rng.uniform(0, 30, n)),
            "prompt_tokens": rng.integers(100, 1500, n),
            "output_tokens": rng.integers(20, 200, n),
        }
    )
    res = simulate(reqs, 3, router="jsq")
    rep = energy(res, pue=1.3)
    seg = res.segments
    # every second of every instance is accounted for, and the energy is the segment sum
    span = seg.group_by("instance").agg((pl.col("end_s").max() - pl.col("start_s").min()).alias("t"))["t"].sum()
    f = rep.fleet.row(0, named=True)
    assert f["busy_s"] + f["idle_s"] + f["starting_s"] + f["off_s"] == pytest.approx(span, rel=1e-9)
    assert f["energy_j"] == pytest.approx(rep.segments["energy_j"].sum(), rel=1e-12)
    assert f["requests"] == n and f["output_tokens"] == int(reqs["output_tokens"].sum())
    c = power_curve("H100-SXM", "Llama-3.1-8B", 1)
    assert c.source.startswith("fit H100-SXM meta-llama/Llama-3.1-8B-Instruct")
    assert 143.0 * span <= f["energy_j"] <= c(2048) * span  # between all-idle and all-saturated


def test_power_chart_spec() -> None:
    from workbench.viz.energy import power_timeline, power_vs_batch

    runs = pl.DataFrame({"avg_batch_size": [8.0, 64.0, 512.0], "power_per_gpu_w": [480.0, 610.0, 690.0]})
    spec = power_vs_batch(runs, LogisticPower(480, 694, 1.2, 5.5, source="t")).to_dict()
    assert spec["title"] == "t"
    layers = spec["layer"]
    assert layers[0]["mark"]["type"] == "line" and layers[1]["mark"]["type"] == "point"
    assert layers[0]["encoding"]["x"]["scale"] == {"type": "log", "base": 2}
    res = make_result([(0, 0, 100, "busy", 8)], [(0, "p", "B200", "x", 1, 1.0)])
    ts = energy_timeseries(energy(res), 25.0)
    spec = power_timeline(ts).to_dict()
    assert spec["encoding"]["y"]["title"] == "IT power (kW)"
    data = next(iter(spec["datasets"].values()))
    assert len(data) == 4 and data[0]["kw"] == pytest.approx(power_curve("B200")(8) / 1000)


def test_data_readme_lists_every_shipped_file(shipped_data) -> None:
    text = (shipped_data / "README.md").read_text()
    files = [p.relative_to(shipped_data).as_posix() for p in shipped_data.rglob("*") if p.is_file()]
    assert "power_fits.csv" in files and "LICENSES/Apache-2.0.txt" in files
    for name in files:
        if name != "README.md":
            assert f"`{name}`" in text or f"`{name.split('/')[-1]}`" in text, name
