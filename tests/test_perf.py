"""Performance models: roofline (closed forms vs generic), calibration, measured tables."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.errors import ConfigError, HardwareError
from workbench.hardware import Batch, DecodeRunMixin, PerformanceModel, RooflineModel, gpu, model


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
]


@pytest.fixture(scope="module", params=CONFIGS, ids=lambda c: f"{c[1]}@{c[2]}x{c[0]}")
def roofline(request):
    g, m, tp = request.param
    return RooflineModel(g, m, tp)


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
    assert n == Generic(roofline).decode_iterations_within(seqs, seqs * ctx, duration) or math.isclose(
        roofline.decode_run_time(seqs, seqs * ctx, max(n, 1)), duration, rel_tol=1e-9
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
