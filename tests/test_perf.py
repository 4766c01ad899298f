"""Performance models: roofline (closed forms vs generic), calibration, measured tables."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench._paths import data_path
from workbench.errors import ConfigError, HardwareError
from workbench.hardware import Batch, DecodeRunMixin, PerformanceModel, RooflineModel, gpu, model
from workbench.hardware.calibrate import (
    FITS_FILE,
    calibrated_roofline,
    fit_roofline,
    fit_splitwise,
    holdout_split,
    splitwise_profile,
)
from workbench.hardware.table import BATCH_COLUMNS, TablePerformanceModel


class Generic(DecodeRunMixin):
    """The protocol's generic O(k) event-skipping helpers around any model's ``iteration_time``."""

    def __init__(self, inner: PerformanceModel) -> None:
        self.inner = inner

    def iteration_time(self, batch: Batch) -> float:
        return self.inner.iteration_time(batch)


CONFIGS = [
    ("H100", "Llama-3.1-8B", 1),
    ("A100", "Llama-2-70B", 4),
    ("H100", "Mixtral-8x7B", 2),
    ("H200", "Qwen3-235B-A22B", 8),
    ("L40S", "Llama-2-7B", 1),
    # architectures beyond the plain transformer: windows, Mamba state, MLA, a step floor (piecewise runs)
    ("H100", "gpt-oss-120b", 2),
    ("B200", "gemma-3-12b", 1, {"step_floor_s": 0.012}),
    ("H100", "Nemotron-Nano-12B-v2", 1),
    ("B200", "DeepSeek-V3", 8),
    ("H100", "Llama-4-Scout-17B-16E", 4, {"step_floor_s": 0.02, "clock": 0.6}),
]


@pytest.fixture(scope="module", params=CONFIGS, ids=lambda c: f"{c[1]}@{c[2]}x{c[0]}" + "+" * (len(c) > 3))
def roofline(request):
    g, m, tp, *kw = request.param
    return RooflineModel(g, m, tp, **(kw[0] if kw else {}))


def test_satisfies_protocol(roofline):
    assert isinstance(roofline, PerformanceModel)
    assert roofline.iteration_time(Batch()) == 0.0


def test_single_request_times_by_hand():
    """Llama-3.1-8B on one H100 with the documented defaults, computed from the formula by hand."""
    perf = RooflineModel("H100", "Llama-3.1-8B")
    m, g = model("Llama-3.1-8B"), gpu("H100")
    linear_params = m.params - m.vocab_size * m.hidden_size  # input embedding is gathered, not multiplied
    # decode, batch 1, 1000 tokens of context: memory-bound weights + KV read + overhead
    weights = linear_params * 2 / (g.mem_bw * 0.75)
    kv = 1000 * m.kv_bytes_per_token() / (g.mem_bw * 0.75)
    assert perf.decode_time(1, 1000) == pytest.approx(weights + kv + 1e-3, rel=1e-12)
    assert perf.decode_time(1, 1000) == pytest.approx(7.03e-3, abs=0.01e-3)
    # prefill of 2048 tokens: compute-bound linear layers + causal attention + one logit row + overhead
    n = 2048
    flops = 2 * (linear_params - m.vocab_size * m.hidden_size) * n + 2 * m.vocab_size * m.hidden_size
    flops += 4 * m.layers * m.attention_heads * m.head_dim * n * n / 2
    assert perf.prefill_time(n) == pytest.approx(flops / (g.peak_flops * 0.5) + 1e-3, rel=1e-12)


def test_architectures_beyond_the_plain_transformer():
    # windows: a gpt-oss decode reads at most 128 tokens per sequence in its sliding layers
    oss = RooflineModel("H100", "gpt-oss-120b", 2)
    short, long = oss.decode_time(64, 100), oss.decode_time(64, 10_000)
    full_only = oss._c_dattn * 64 * (10_000 - 100)
    assert long - short == pytest.approx(full_only + oss._c_wattn * 64 * (128 - 100), rel=1e-9)
    # Mamba state: read and written once per decoding sequence and iteration
    nemo = RooflineModel("H100", "Nemotron-Nano-12B-v2", 1)
    assert nemo._c_state == pytest.approx(2 * 148.9e6 / (3.35e12 * 0.75), rel=2e-3)
    # FP8 weights: half the weight bytes read at batch 1
    bf16, fp8 = RooflineModel("H100", "Llama-3.1-70B", 4), RooflineModel("H100", "Llama-3.1-70B-FP8", 4)
    assert fp8._w_dense < 0.52 * bf16._w_dense
    # the step floor holds short iterations up
    floor = RooflineModel("B200", "Qwen3-8B", 1, step_floor_s=0.03)
    assert floor.decode_time(8, 500) == 0.03 and floor.prefill_time(8192) > 0.03


@settings(max_examples=30, deadline=None)
@given(p=st.integers(0, 8192), d=st.integers(0, 512), ctx=st.integers(0, 20_000))
def test_vectorised_iteration_times_equal_the_scalar_ones(roofline, p, d, ctx):
    batch = Batch(p, p * (ctx + p / 2), d, d * ctx)
    many = roofline.iteration_times(*(np.array([getattr(batch, f)] * 2) for f in BATCH_COLUMNS))
    assert many.tolist() == pytest.approx([roofline.iteration_time(batch)] * 2, rel=1e-12, abs=1e-15)


def test_clock_slows_compute_not_memory():
    full, slow = RooflineModel("H100", "Llama-3.1-8B", 1), RooflineModel("H100", "Llama-3.1-8B", 1, clock=0.5)
    # a compute-bound prefill takes ~twice as long at half clock; a memory-bound decode barely changes
    assert slow.prefill_time(8192) / full.prefill_time(8192) == pytest.approx(2.0, rel=0.05)
    assert slow.decode_time(8, 1000) / full.decode_time(8, 1000) < 1.05
    assert 1.05 < slow.decode_time(512, 1000) / full.decode_time(512, 1000) < 2.0
    with pytest.raises(ConfigError, match="clock"):
        RooflineModel("H100", "Llama-3.1-8B", 1, clock=1.5)


def test_clocked_models():
    from workbench.hardware import ClockedPerf, clocked

    roof = RooflineModel("H100", "Llama-3.1-8B", 1)
    assert clocked(roof, 1.0) is roof
    assert clocked(roof, 0.5) == RooflineModel("H100", "Llama-3.1-8B", 1, clock=0.5)

    class Measured:  # a model that cannot say what is compute-bound: every time / clock
        def iteration_time(self, batch):
            return 0.01

    slow = clocked(Measured(), 0.5)
    assert isinstance(slow, ClockedPerf) and slow.iteration_time(Batch(decode_seqs=1)) == pytest.approx(0.02)
    assert slow.decode_run_time(4, 400, 3) == pytest.approx(0.06)
    with pytest.raises(ConfigError, match="clock"):
        ClockedPerf(Measured(), 0.0)


def test_screen_tables_follow_the_clocked_roofline():
    from workbench.planning.screen import perf_tables

    full, half = perf_tables("H100", "Llama-3.1-8B", 1), perf_tables("H100", "Llama-3.1-8B", 1, clock=0.5)
    assert half["prefill"][-1] / full["prefill"][-1] == pytest.approx(2.0, rel=0.05)  # compute-bound prefill
    assert half["decode"][0][0] / full["decode"][0][0] < 1.05  # memory-bound decode at batch 1


def test_prefill_chunk_after_context_costs_more():
    perf = RooflineModel("H100", "Llama-3.1-8B")
    assert perf.prefill_time(512, context=4096) > perf.prefill_time(512)
    # chunked prefill of 4096 tokens in 8 chunks does the same attention work as one chunk
    chunks = sum(perf.prefill_time(512, context=512 * i) for i in range(8))
    assert chunks > perf.prefill_time(4096)  # more fixed overhead and weight reads
    assert chunks - 7 * 1e-3 == pytest.approx(perf.prefill_time(4096), rel=0.1)


def test_tensor_parallel_speeds_up_and_costs_communication():
    t1 = RooflineModel("H100", "Llama-3.1-8B", 1)
    t2 = RooflineModel("H100", "Llama-3.1-8B", 2)
    assert t2.decode_time(1, 100) < t1.decode_time(1, 100)
    assert t2.decode_time(1, 100) > t1.decode_time(1, 100) / 2  # all-reduce + overhead do not shrink
    assert t2.prefill_time(4096) > t1.prefill_time(4096) / 2


def test_moe_touches_more_experts_with_larger_batches():
    perf = RooflineModel("H100", "Mixtral-8x7B", 2)
    dense_like = RooflineModel("H100", "Llama-3.1-8B", 2)
    # batch 1 reads 2 of 8 experts (~13B params), batch 64 reads nearly all (~47B): decode slows down >2x
    assert perf.decode_time(64, 100) > 2.5 * perf.decode_time(1, 100)
    assert dense_like.decode_time(64, 100) < 1.2 * dense_like.decode_time(1, 100)


@settings(max_examples=60, deadline=None)
@given(p=st.integers(0, 8192), d=st.integers(0, 256), ctx=st.integers(0, 4000), extra=st.integers(1, 512))
def test_monotone_in_batch(p, d, ctx, extra):
    perf = RooflineModel("H100", "Mixtral-8x7B", 2)
    base = Batch(prefill_tokens=p, prefill_context=p * p / 2, decode_seqs=d, decode_context=d * ctx)
    t = perf.iteration_time(base)
    assert t >= 0.0
    more_decode = Batch(p, p * p / 2, d + extra, (d + extra) * ctx)
    more_context = Batch(p, p * p / 2, d, d * (ctx + extra))
    assert perf.iteration_time(more_decode) >= t
    assert perf.iteration_time(more_context) >= t


@settings(max_examples=40, deadline=None)
@given(seqs=st.integers(1, 300), ctx=st.integers(1, 8000), iters=st.integers(0, 400))
def test_decode_run_time_matches_generic(roofline, seqs, ctx, iters):
    closed = roofline.decode_run_time(seqs, seqs * ctx, iters)
    assert closed == pytest.approx(Generic(roofline).decode_run_time(seqs, seqs * ctx, iters), rel=1e-9)


@settings(max_examples=40, deadline=None)
@given(seqs=st.integers(1, 300), ctx=st.integers(1, 8000), duration=st.floats(0.0, 20.0))
def test_decode_iterations_within_matches_generic(roofline, seqs, ctx, duration):
    n = roofline.decode_iterations_within(seqs, seqs * ctx, duration)
    generic = Generic(roofline).decode_iterations_within(seqs, seqs * ctx, duration)
    # equal, or one apart where a run ends within rounding of the duration (the generic sum accumulates it)
    assert n == generic or math.isclose(
        roofline.decode_run_time(seqs, seqs * ctx, max(n, generic)), duration, rel_tol=1e-9
    )
    # n whole iterations fit, n + 1 do not
    assert roofline.decode_run_time(seqs, seqs * ctx, n) <= duration
    assert roofline.decode_run_time(seqs, seqs * ctx, n + 1) > duration


def test_decode_iterations_exact_boundary():
    perf = RooflineModel("H100", "Llama-3.1-8B")
    total = perf.decode_run_time(8, 8000, 100)
    assert perf.decode_iterations_within(8, 8000, total) == 100
    assert perf.decode_iterations_within(8, 8000, total * (1 - 1e-9)) == 99
    assert perf.decode_iterations_within(8, 8000, 0.0) == 0
    assert perf.decode_iterations_within(0, 0, 1.0) == 0
    assert perf.decode_run_time(8, 8000, 0) == 0.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tp": 3}, "attention_heads"),
        ({"tp": 0}, "tp"),
        ({"mfu": 0.0}, "mfu"),
        ({"mbu": 1.5}, "mbu"),
        ({"overhead_s": -1.0}, "overhead_s"),
        ({"comm_efficiency": 0}, "comm_efficiency"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        RooflineModel("H100", "Llama-3.1-8B", **kwargs)


def test_unknown_names():
    with pytest.raises(HardwareError, match="known"):
        RooflineModel("TPUv5", "Llama-3.1-8B")


# ---------------------------------------------------------------------------------------------- calibration
@pytest.fixture(scope="module")
def splitwise(shared_traces):
    return splitwise_profile(shared_traces / "splitwise_sim_perf_model.csv")


def test_splitwise_profile_shape(splitwise):
    assert splitwise.height == 2 * 1260
    assert set(splitwise["kind"]) == {"prefill", "decode"}
    # the three TP-2 runs of 64 x 512 tokens whose prefill is 3-8x faster than 32 x 512 are flagged
    suspect = splitwise.filter(pl.col("suspect"))
    assert suspect.height == 30 and set(suspect["tp"]) == {2} and set(suspect["decode_seqs"]) == {0, 64}
    row = splitwise.filter(pl.col("config") == "llama2-70b/a100-80gb/2/512/1/128", pl.col("kind") == "decode")
    assert row["decode_context"][0] == 512 + 64 and row["time_s"][0] == pytest.approx(0.05488, rel=1e-3)


def test_splitwise_fit_meets_target_on_held_out_rows(splitwise):
    fits, errors = fit_splitwise(splitwise, frac=0.2, seed=0)
    err = {(m, k): v for m, k, v, _, _ in errors.iter_rows()}
    assert err[("roofline", "all")] <= 10.0
    assert err[("roofline", "decode")] <= 5.0
    assert err[("roofline", "prefill")] <= 12.0
    assert err[("table", "all")] <= 10.0
    assert fits.height == 12 and fits["mfu"].is_between(0.02, 1.0).all()
    # the shipped file is this fit
    shipped = pl.read_csv(data_path(FITS_FILE)).sort("model", "hardware", "tp")
    fits = fits.sort("model", "hardware", "tp")
    for col in ("mfu", "mbu", "overhead_s", "seq_overhead_s", "comm_efficiency", "test_mape_all_pct"):
        np.testing.assert_allclose(shipped[col].to_numpy(), fits[col].to_numpy(), rtol=1e-4, atol=1e-9)


def test_calibrated_roofline_lookup():
    perf = calibrated_roofline("llama2-70b", "h100-80gb", 4)
    assert isinstance(perf, RooflineModel) and perf.tp == 4
    assert calibrated_roofline("Llama-2-70B", "H100", 4) == perf
    # Splitwise measured ~29-30 ms per decode iteration at batch 1 on 4 H100
    assert perf.decode_time(1, 600) == pytest.approx(0.0295, rel=0.1)
    with pytest.raises(HardwareError, match=r"no calibrated fit.*known"):
        calibrated_roofline("Llama-3.1-8B", "h100-80gb", 1)


def _synthetic_profile(perf: RooflineModel) -> pl.DataFrame:
    rows = []
    for p in (128, 512, 2048, 8192):
        rows.append((p, p * p / 2, 0, 0))
    for d in (1, 8, 32, 128):
        for ctx in (256, 2048):
            rows.append((0, 0.0, d, d * ctx))
    frame = pl.DataFrame(rows, schema=list(BATCH_COLUMNS), orient="row")
    times = [perf.iteration_time(Batch(*r)) for r in rows]
    return frame.with_columns(
        pl.Series("time_s", times),
        pl.lit(perf.tp).alias("tp"),
        pl.Series("kind", ["prefill"] * 4 + ["decode"] * 8),
    )


def test_fit_roofline_recovers_known_parameters():
    truth = RooflineModel("A100", "Llama-3.1-8B", 1, mfu=0.37, mbu=0.62, overhead_s=2.5e-3, seq_overhead_s=5e-5)
    fit = fit_roofline(
        _synthetic_profile(truth), "A100", "Llama-3.1-8B", params=("mfu", "mbu", "overhead_s", "seq_overhead_s")
    )
    for name in ("mfu", "mbu", "overhead_s", "seq_overhead_s"):
        assert fit.params[name] == pytest.approx(getattr(truth, name), rel=1e-3), name
    assert fit.train_mape < 1e-3
    with pytest.raises(ConfigError, match="cannot fit"):
        fit_roofline(_synthetic_profile(truth), "A100", "Llama-3.1-8B", params=("nonsense",))


def test_holdout_split_is_grouped_and_reproducible(splitwise):
    train, test = holdout_split(splitwise, 0.2, seed=3)
    assert not set(train["config"]) & set(test["config"])
    assert train.height + test.height == splitwise.height
    assert holdout_split(splitwise, 0.2, seed=3)[1].equals(test)
    assert not holdout_split(splitwise, 0.2, seed=4)[1].equals(test)


# ---------------------------------------------------------------------------------------------- measured table
def test_table_model_reproduces_affine_measurements():
    truth = RooflineModel("H100", "Llama-3.1-8B")
    table = TablePerformanceModel.from_table(_synthetic_profile(truth))
    assert isinstance(table, PerformanceModel)
    assert table.kv_s_per_token == pytest.approx(truth._c_dattn, rel=1e-9)
    for d in (1, 8, 32, 128):
        assert table.decode_time(d, 1000) == pytest.approx(truth.decode_time(d, 1000), rel=1e-9)
    assert table.prefill_time(2048) == pytest.approx(truth.prefill_time(2048), rel=1e-12)
    # between knots: linear interpolation, beyond: proportional
    mid = (truth.prefill_time(512) + truth.prefill_time(2048)) / 2
    assert table.prefill_time(1280) == pytest.approx(mid, rel=1e-12)
    assert table.prefill_time(16384) == pytest.approx(2 * truth.prefill_time(8192), rel=1e-12)
    assert table.iteration_time(Batch()) == 0.0


@settings(max_examples=30, deadline=None)
@given(seqs=st.integers(1, 200), ctx=st.integers(1, 4000), iters=st.integers(0, 300), duration=st.floats(0, 10))
def test_table_closed_forms_match_generic(seqs, ctx, iters, duration):
    table = TablePerformanceModel.from_table(_synthetic_profile(RooflineModel("L40S", "Llama-2-7B")))
    generic = Generic(table)
    assert table.decode_run_time(seqs, seqs * ctx, iters) == pytest.approx(
        generic.decode_run_time(seqs, seqs * ctx, iters), rel=1e-9
    )
    n = table.decode_iterations_within(seqs, seqs * ctx, duration)
    assert (
        table.decode_run_time(seqs, seqs * ctx, n) <= duration < table.decode_run_time(seqs, seqs * ctx, n + 1)
    )


def test_table_model_errors():
    good = _synthetic_profile(RooflineModel("H100", "Llama-3.1-8B"))
    with pytest.raises(ConfigError, match="lacks column"):
        TablePerformanceModel.from_table(good.drop("time_s"))
    with pytest.raises(ConfigError, match="time_s"):
        TablePerformanceModel.from_table(good.with_columns(pl.lit(-1.0).alias("time_s")))
    with pytest.raises(ConfigError, match="no usable prefill"):
        TablePerformanceModel.from_table(good.filter(pl.col("prefill_tokens") == 0))


# ---------------------------------------------------------------------------------------------- Vidur profiles
@pytest.fixture(scope="module")
def vidur_comparison(shared_traces):
    from workbench.errors import DatasetError
    from workbench.hardware.vidur import compare_vidur

    try:
        return compare_vidur(shared_traces.parent / "profiles" / "vidur")
    except DatasetError:
        pytest.skip("Vidur profiles not available")


def test_roofline_against_vidur_profiles(vidur_comparison):
    rows = {(k, g, m): (d, f) for k, g, m, _, d, _, f in vidur_comparison.iter_rows()}
    assert len(rows) == 6
    for (kind, _, _), (default, fitted) in rows.items():
        if kind == "linear":  # GEMM layers: within ~25 % with defaults, <= 10 % once MFU/MBU are fitted
            assert default < 30.0
            assert fitted < 10.0
    assert rows[("attention_decode", "A100-80GB-SXM", "Llama-2-70B")][1] < 15.0
    assert rows[("attention_prefill", "A100-80GB-SXM", "Llama-2-70B")][1] < 30.0
    fitted_text = vidur_comparison.filter(pl.col("model") == "Llama-2-70B", pl.col("kind") == "linear")[
        "fitted"
    ][0]
    mfu = float(fitted_text.split("mfu=")[1].split(",")[0])
    assert 0.4 < mfu < 0.9  # A100 BF16 GEMMs reach 60-70 % of peak


def test_layer_times_add_up_to_iteration():
    perf = RooflineModel("H100", "Llama-3.1-8B", overhead_s=0.0)
    m = perf.model
    # at batch 1 the whole iteration is memory-bound: layers x layer time + output head read + KV read
    head = m.vocab_size * m.hidden_size * 2 / (perf.gpu.mem_bw * 0.75)
    expected = m.layers * (perf.layer_linear_time(1) + perf.layer_attention_time(0.0, 500)) + head
    assert perf.decode_time(1, 500) == pytest.approx(expected, rel=1e-12)


# ------------------------------------------------------------------------------------------- curves and charts
def test_curves_and_charts():
    from workbench.hardware.curves import decode_curve, prefill_curve
    from workbench.viz.hardware import calibration_parity, decode_roofline, prefill_roofline

    perfs = {
        "8B@H100": RooflineModel("H100", "Llama-3.1-8B"),
        "70B@4xH100": RooflineModel("H100", "Llama-3.1-70B", 4),
    }
    dec = decode_curve(perfs, [1, 8, 64], context=512)
    assert dec.height == 6 and dec.columns == ["config", "batch", "iteration_ms", "tokens_per_s"]
    first = dec.row(0, named=True)
    assert first["iteration_ms"] == pytest.approx(perfs["8B@H100"].decode_time(1, 512) * 1e3)
    assert first["tokens_per_s"] == pytest.approx(1 / perfs["8B@H100"].decode_time(1, 512))
    pre = prefill_curve(perfs, [256, 1024])
    assert pre["prefill_ms"][1] == pytest.approx(perfs["8B@H100"].prefill_time(1024) * 1e3)
    spec = decode_roofline(dec).to_dict()
    assert [c["encoding"]["y"]["field"] for c in spec["hconcat"]] == ["iteration_ms", "tokens_per_s"]
    assert spec["hconcat"][0]["encoding"]["x"]["scale"]["type"] == "log"
    assert prefill_roofline(pre).to_dict()["encoding"]["y"]["field"] == "prefill_ms"
    parity = calibration_parity(
        pl.DataFrame({"time_s": [0.01, 0.1], "pred_s": [0.012, 0.09], "kind": ["a", "b"]})
    )
    layers = parity.to_dict()["layer"]
    assert (
        layers[1]["encoding"]["x"]["field"] == "measured_ms"
        and layers[1]["encoding"]["color"]["field"] == "kind"
    )
    with pytest.raises(ConfigError, match="batch_sizes"):
        decode_curve(perfs, [0])


class OnlyIterationTime:
    """A user's model: nothing but ``iteration_time`` (affine, so a closed form exists to compare with)."""

    def iteration_time(self, batch: Batch) -> float:
        if batch.prefill_tokens + batch.decode_seqs == 0:
            return 0.0
        return 4e-3 + 6e-5 * batch.prefill_tokens + 2e-4 * batch.decode_seqs + 2e-8 * batch.decode_context


def test_as_performance_model_adapts_a_bare_iteration_time_model():
    from workbench.hardware.perf import IterationTimeModel, as_performance_model
    from workbench.sim import LinearPerfModel

    roof = RooflineModel("H100", "Llama-3.1-8B")
    assert as_performance_model(roof) is roof  # complete models are used as they are
    adapted = as_performance_model(OnlyIterationTime())
    assert isinstance(adapted, IterationTimeModel) and isinstance(adapted, PerformanceModel)
    closed = LinearPerfModel(
        overhead_s=4e-3, prefill_s_per_token=6e-5, decode_s_per_seq=2e-4, decode_attn_s=2e-8
    )
    for seqs, ctx, k in ((1, 10, 1), (7, 3_000, 250), (64, 50_000, 1_000)):
        assert adapted.decode_run_time(seqs, ctx, k) == pytest.approx(
            closed.decode_run_time(seqs, ctx, k), 1e-12
        )
        t = closed.decode_run_time(seqs, ctx, k)
        assert adapted.decode_iterations_within(seqs, ctx, t * (1 + 1e-9)) == k
        assert adapted.decode_iterations_within(seqs, ctx, t * (1 - 1e-6)) == k - 1
    with pytest.raises(ConfigError, match=r"iteration_time\(batch\).*got str"):
        as_performance_model("H100")


def test_generic_iterations_within_when_times_fall_with_context():
    from workbench.hardware.perf import as_performance_model

    class Falling:  # the first iteration is the slowest: a guess from it alone would stop short
        def iteration_time(self, batch):
            return 0.01 if batch.decode_context < 100 else 0.001

    m = as_performance_model(Falling())
    assert m.decode_iterations_within(1, 99, 0.0505) == 41  # 0.01 + 40 x 0.001 <= 0.0505 < 0.01 + 41 x 0.001

    class Free:
        def iteration_time(self, batch):
            return 0.0

    with pytest.raises(ConfigError, match="take no time"):
        as_performance_model(Free()).decode_iterations_within(1, 0, 1.0)
