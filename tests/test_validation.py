"""Validation against ML.ENERGY v3: the simulated runs, the replay of their shapes, out-of-fold fits."""

from __future__ import annotations

import polars as pl
import pytest

import workbench.validation.mlenergy as mlv
from workbench.errors import ConfigError
from workbench.hardware import RooflineModel
from workbench.power import load_runs
from workbench.validation import (
    RunSteps,
    held_out_errors,
    load_validation_table,
    mlenergy_errors,
    mlenergy_requests,
    predict_runs,
    record_steps,
    simulate_mlenergy_run,
    step_itl,
    validation_summary,
)


@pytest.fixture(scope="module")
def runs(shared_traces) -> pl.DataFrame:
    return load_runs().with_row_index("run")


def _run(runs: pl.DataFrame, model: str, gpu: str, task: str, cap: int, n: int = 1) -> dict:
    return runs.filter(
        pl.col("model_id") == model,
        pl.col("gpu_model") == gpu,
        pl.col("task") == task,
        pl.col("max_num_seqs") == cap,
        pl.col("num_gpus") == n,
    ).row(0, named=True)


def test_request_counts_follow_the_benchmark():
    assert [mlenergy_requests("gpqa", c) for c in (8, 128, 192, 256, 384)] == [198, 198, 396, 396, 594]
    assert mlenergy_requests("lm-arena-chat", 512) == 1024 and mlenergy_requests("video-chat", 512) == 1024
    with pytest.raises(ConfigError, match=r"unknown ML\.ENERGY task"):
        mlenergy_requests("chess", 8)


def test_shapes_do_not_depend_on_the_performance_model(runs):
    run = _run(runs, "Qwen/Qwen3-8B", "H100", "lm-arena-chat", 16)
    slow = {"seq_overhead_s": 1e-4, "mbu": 0.4, "step_floor_s": 0.02}
    a, b = record_steps(run), record_steps(run, params=slow)
    assert a.equals(b) and a.height > 100
    # replaying the default shapes under other parameters gives what a fresh simulation with them gives
    fresh = simulate_mlenergy_run(run, slow)
    replay = step_itl(a, RooflineModel("H100", "Qwen3-8B", 1, **slow))
    assert replay["median_itl_ms"] == pytest.approx(fresh["median_itl_ms"], rel=1e-9)
    cols = (a[c].to_numpy() for c in ("prefill_tokens", "prefill_context", "decode_seqs", "decode_context"))
    times = RooflineModel("H100", "Qwen3-8B", 1, **slow).iteration_times(*cols)
    makespan = float((a["weight"].to_numpy() * times).sum())
    assert makespan == pytest.approx(fresh["makespan_s"], rel=2e-3)  # each decode run kept as 4 points
    assert fresh["requests"] == 1024 and fresh["measured_median_itl_ms"] == run["median_itl_ms"]


def test_held_out_fits_never_see_the_models_they_predict(runs, monkeypatch):
    models = ["Qwen/Qwen3-8B", "Qwen/Qwen3-14B", "meta-llama/Llama-3.1-8B-Instruct", "google/gemma-3-12b-it"]
    sub = runs.filter(
        pl.col("model_id").is_in(models), pl.col("gpu_model") == "H100", pl.col("task") == "lm-arena-chat",
        pl.col("max_num_seqs") <= 32,
    )  # fmt: skip
    data = RunSteps(sub, {int(r["run"]): record_steps(r).to_numpy() for r in sub.iter_rows(named=True)})
    seen: list[tuple[set, set]] = []
    fit, predict = mlv.fit_corrections, mlv.predict_runs

    def spy_fit(d, names, **kw):
        seen.append((set(d.runs["model_id"]), set()))
        return fit(d, names, **kw)

    def spy_predict(d, params=None):
        if params:
            seen[-1][1].update(d.runs["model_id"])
        return predict(d, params)

    monkeypatch.setattr(mlv, "fit_corrections", spy_fit)
    monkeypatch.setattr(mlv, "predict_runs", spy_predict)
    table, summary = held_out_errors(data, repeats=2, folds=2, names=("seq_overhead_s",))
    assert len(seen) == 4 and all(train and test and not train & test for train, test in seen)
    assert table["oof_0"].is_not_null().all() and table["oof_1"].is_not_null().all()
    row = summary.row(0, named=True)
    assert row["runs"] == sub.height and row["held_out_abs_error_sd"] >= 0.0


def test_shipped_table_and_its_summary(runs):
    table = load_validation_table()
    assert table.height == 838 and table["predicted_median_itl_ms"].is_not_null().all()
    summary = validation_summary(table)
    h100_dense = summary.filter(pl.col("gpu") == "H100", pl.col("arch") == "dense", pl.col("inputs") == "text")
    assert h100_dense["runs"][0] == 101
    # the shipped default predictions are what the package simulates today (two runs re-simulated)
    for key in (("Qwen/Qwen3-8B", "H100", "lm-arena-chat", 16), ("openai/gpt-oss-20b", "B200", "gpqa", 8)):
        run = _run(runs, *key)
        shipped = table.filter(
            pl.col("model_id") == key[0], pl.col("gpu_model") == key[1], pl.col("task") == key[2],
            pl.col("max_num_seqs") == key[3], pl.col("num_gpus") == 1,
        )["predicted_median_itl_ms"][0]  # fmt: skip
        data = RunSteps(pl.DataFrame([run]), {int(run["run"]): record_steps(run).to_numpy()})
        assert predict_runs(data)[0] == pytest.approx(shipped, rel=1e-3)


def test_error_table_groups():
    t = pl.DataFrame(
        {
            "gpu_model": ["H100", "H100", "B200"],
            "architecture": ["Dense Transformer", "MoE", "Mamba-Transformer Hybrid"],
            "task": ["gpqa", "image-chat", "lm-arena-chat"],
            "median_itl_ms": [10.0, 20.0, 40.0],
            "predicted_median_itl_ms": [11.0, 15.0, 40.0],
        }
    )
    e = {(r["gpu"], r["arch"], r["inputs"]): r for r in mlenergy_errors(t).to_dicts()}
    assert e[("H100", "dense", "text")]["median_abs_error"] == pytest.approx(0.1)
    assert e[("H100", "moe", "multimodal")]["bias"] == pytest.approx(-0.25)
    assert e[("B200", "hybrid", "text")]["median_abs_error"] == 0.0
    assert mlenergy_errors(t)["median_abs_error"].is_finite().all()
