"""Analytic queueing (Erlang C, M/G/c) and the LLM-instance service-time model."""

from __future__ import annotations

import heapq
import math
from fractions import Fraction

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.analytic import (
    erlang_b,
    erlang_c,
    instance_latency,
    instance_service_model,
    mdc_mean_wait,
    mgc_mean_wait,
    mgc_wait_quantile,
    mmc_mean_wait,
    mmc_wait_cdf,
    mmc_wait_quantile,
)
from workbench.errors import ConfigError
from workbench.hardware import Batch, RooflineModel, TablePerformanceModel


def erlang_c_by_sum(c: int, a: Fraction) -> Fraction:
    """Textbook Erlang C with exact fractions: (a^c/c! c/(c-a)) / (sum_{k<c} a^k/k! + a^c/c! c/(c-a))."""
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


# ------------------------------------------------------------------------------------------------ Erlang C
def test_textbook_values():
    assert float(erlang_c(2, 0.5)) == pytest.approx(1 / 3, abs=1e-15)  # c = 2, a = 1
    assert float(erlang_c(3, 2 / 3)) == pytest.approx(4 / 9, abs=1e-15)  # c = 3, a = 2
    assert float(erlang_c(1, 0.7)) == pytest.approx(0.7, abs=1e-15)  # M/M/1: P(wait) = rho
    assert float(erlang_b(2, 1.0)) == pytest.approx(0.2, abs=1e-15)  # (1/2) / (1 + 1 + 1/2)
    assert float(mmc_mean_wait(3, 2 / 3, 1.0)) == pytest.approx(4 / 9)  # C / (c mu - lambda)
    assert float(mmc_mean_wait(1, 0.5, 2.0)) == pytest.approx(2.0)  # rho S / (1 - rho)


@pytest.mark.parametrize(
    ("c", "a"), [(5, Fraction(4)), (10, Fraction(8)), (20, Fraction(19)), (50, Fraction(30))]
)
def test_erlang_c_matches_exact_sum(c, a):
    assert float(erlang_c(c, float(a) / c)) == pytest.approx(float(erlang_c_by_sum(c, a)), rel=1e-12)


def test_vectorised_and_stable_for_large_c():
    c = np.array([1, 2, 8, 64, 512, 4096])
    p = erlang_c(c, 0.95)
    assert p.shape == (6,) and np.all(np.diff(p) < 0) and np.all((p > 0) & (p < 1))
    # Halfin-Whitt: beta = (1 - rho) sqrt(c) = 1 -> P(wait) ~ 1 / (1 + beta Phi(beta) / phi(beta)) = 0.2236
    assert float(erlang_c(10_000, 0.99)) == pytest.approx(0.2236, rel=0.01)
    assert float(erlang_c(4, 0.0)) == 0.0
    # unstable systems
    assert float(erlang_c(4, 1.2)) == 1.0 and math.isinf(float(mmc_mean_wait(4, 1.0, 1.0)))


@settings(max_examples=60, deadline=None)
@given(c=st.integers(1, 300), rho=st.floats(0.01, 0.98), step=st.floats(0.001, 0.02))
def test_erlang_c_monotone(c, rho, step):
    assert erlang_c(c, min(rho + step, 0.99)) >= erlang_c(c, rho)  # more load, more waiting
    assert erlang_c(c + 1, rho) <= erlang_c(c, rho) + 1e-15  # same utilisation, more servers: less waiting
    assert mmc_mean_wait(c, min(rho + step, 0.99), 1.0) >= mmc_mean_wait(c, rho, 1.0)


@settings(max_examples=60, deadline=None)
@given(c=st.integers(1, 100), rho=st.floats(0.05, 0.97), q=st.floats(0.0, 0.999))
def test_quantile_inverts_cdf(c, rho, q):
    t = mmc_wait_quantile(q, c, rho, 2.0)
    p0 = 1 - float(erlang_c(c, rho))
    if q <= p0:
        assert float(t) == 0.0
    else:
        assert float(mmc_wait_cdf(t, c, rho, 2.0)) == pytest.approx(q, abs=1e-9)


def test_mm1_quantile_by_hand():
    # M/M/1, rho 0.5, S = 1: P(W > t) = 0.5 exp(-0.5 t) -> P99 = ln(50) / 0.5
    assert float(mmc_wait_quantile(0.99, 1, 0.5, 1.0)) == pytest.approx(math.log(50) / 0.5)
    assert float(mgc_wait_quantile(0.99, 1, 0.5, 1.0, 1.0)) == pytest.approx(math.log(50) / 0.5)


# ------------------------------------------------------------------------------------------------ M/G/c
@pytest.mark.parametrize("method", ["allen-cunneen", "kimura"])
@pytest.mark.parametrize("cs2", [0.0, 0.5, 1.0, 4.0])
def test_mg1_is_pollaczek_khinchine(method, cs2):
    rho, s = 0.7, 3.0
    pk = rho * s * (1 + cs2) / (2 * (1 - rho))
    assert float(mgc_mean_wait(1, rho, s, cs2, method=method)) == pytest.approx(pk, rel=1e-12)


def test_mgc_reduces_to_mmc_and_mdc():
    c, rho = np.array([2, 8, 32]), np.array([0.5, 0.8, 0.95])
    mm = mmc_mean_wait(c, rho, 1.0)
    np.testing.assert_allclose(mgc_mean_wait(c, rho, 1.0, 1.0), mm)
    np.testing.assert_allclose(mgc_mean_wait(c, rho, 1.0, 1.0, method="kimura"), mm)
    np.testing.assert_allclose(mgc_mean_wait(c, rho, 1.0, 0.0, method="kimura"), mdc_mean_wait(c, rho, 1.0))
    assert np.all(mdc_mean_wait(c, rho, 1.0) < mm)


def _simulate_gc_wait(c, rho, sampler, n, seed):
    """FCFS c-server queue with Poisson arrivals (Kiefer-Wolfowitz): mean wait of customers after warm-up."""
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    service = sampler(rng, n)
    arrivals = np.cumsum(rng.exponential(service.mean() / (c * rho), n))
    free = [0.0] * c
    waits = np.empty(n)
    for i in range(n):
        start = max(arrivals[i], heapq.heappop(free))
        waits[i] = start - arrivals[i]
        heapq.heappush(free, start + service[i])
    return waits[n // 10 :].mean()


@pytest.mark.parametrize(
    ("name", "sampler", "mean", "cs2"),
    [
        ("deterministic", lambda rng, n: np.ones(n), 1.0, 0.0),
        # lognormal with sigma^2 = ln 2: mean sqrt(2), SCV exp(sigma^2) - 1 = 1
        ("lognormal", lambda rng, n: rng.lognormal(0.0, math.sqrt(math.log(2.0)), n), math.sqrt(2.0), 1.0),
        # 90 % exp(mean 0.5), 10 % exp(mean 5.5): mean 1, E[S^2] = 6.5, SCV 5.5
        ("hyperexp", lambda rng, n: rng.exponential(np.where(rng.random(n) < 0.9, 0.5, 5.5)), 1.0, 5.5),
    ],
)
def test_mgc_approximation_against_simulation(name, sampler, mean, cs2):
    c, rho = 4, 0.8
    simulated = _simulate_gc_wait(c, rho, sampler, 60_000, seed=11)
    for method in ("allen-cunneen", "kimura"):
        approx = float(mgc_mean_wait(c, rho, mean, cs2, method=method))
        assert approx == pytest.approx(simulated, rel=0.15), (name, method, approx, simulated)
    if cs2 != 1.0:  # the approximation beats plain M/M/c
        assert abs(approx - simulated) < abs(float(mmc_mean_wait(c, rho, mean)) - simulated)


def test_bad_inputs():
    with pytest.raises(ConfigError, match="servers"):
        erlang_c(0, 0.5)
    with pytest.raises(ConfigError, match="servers"):
        erlang_c(2.5, 0.5)
    with pytest.raises(ConfigError, match="rho"):
        erlang_c(2, -0.1)
    with pytest.raises(ConfigError, match="quantile"):
        mmc_wait_quantile(1.0, 2, 0.5, 1.0)
    with pytest.raises(ConfigError, match="method"):
        mgc_mean_wait(2, 0.5, 1.0, 1.0, method="magic")
    with pytest.raises(ConfigError, match="scv"):
        mgc_mean_wait(2, 0.5, 1.0, -1.0)


# ------------------------------------------------------------------------------------------------ LLM instance
@pytest.fixture(scope="module")
def perf():
    return RooflineModel("H100", "Llama-3.1-8B")


def test_service_model_by_hand(perf):
    svc = instance_service_model(perf, 1000, 100, batch_size=1, output_var=0.0)
    prefill = perf.prefill_time(1000)
    held = 1000 + 100 / 2  # deterministic outputs: a slot holds prompt + half the output on average
    decode = perf.iteration_time(Batch(decode_seqs=1, decode_context=round(held)))
    mixed = perf.iteration_time(Batch(1000, 1000 * 1000 / 2, 1, round(held)))
    tpot = decode + (mixed - decode) / 100
    assert svc.prefill_s[0] == pytest.approx(prefill)
    assert svc.tpot_s[0] == pytest.approx(tpot)
    assert svc.mean_s[0] == pytest.approx(prefill + 100 * tpot)
    assert svc.var_s[0] == 0.0
    assert svc.capacity_rps[0] == pytest.approx(1 / svc.mean_s[0])


def test_service_model_variance_and_capacity(perf):
    batches = np.array([1, 4, 16, 64, 256])
    svc = instance_service_model(perf, 800, 200, batches, prompt_var=400.0**2)
    assert np.all(np.diff(svc.tpot_s) > 0)  # bigger batches, slower iterations
    assert np.all(np.diff(svc.capacity_rps) > 0)  # ... but more throughput
    # geometric outputs: Var[O] = 200 x 199, so the service SCV is close to that of O (~0.995)
    assert np.all((svc.scv > 0.9) & (svc.scv < 1.1))
    frame = svc.to_frame()
    assert frame.columns[:3] == ["slots", "prefill_s", "tpot_s"] and frame.height == 5
    # KV memory caps the slots: 100k tokens / (800 + (200*199 + 200^2) / 400) = 100k / 999.5 -> 100
    capped = instance_service_model(perf, 800, 200, [64, 256], kv_capacity_tokens=100_000)
    assert capped.slots.tolist() == [64.0, 100.0]


def test_service_model_accepts_any_performance_model(perf):
    rows = [(p, p * p / 2, 0, 0) for p in (256, 1024, 4096)]
    rows += [(0, 0.0, d, d * ctx) for d in (1, 16, 128) for ctx in (500, 2000)]
    table = pl.DataFrame(
        rows, schema=["prefill_tokens", "prefill_context", "decode_seqs", "decode_context"], orient="row"
    ).with_columns(pl.Series("time_s", [perf.iteration_time(Batch(*r)) for r in rows]))
    svc = instance_service_model(TablePerformanceModel.from_table(table), 1024, 100, [16, 128])
    ref = instance_service_model(perf, 1024, 100, [16, 128])
    np.testing.assert_allclose(svc.prefill_s, ref.prefill_s, rtol=1e-9)
    # decode is reproduced exactly; mixed prefill+decode iterations are approximated by the table
    np.testing.assert_allclose(svc.mean_s, ref.mean_s, rtol=0.25)
    assert svc.mean_s[1] > svc.mean_s[0]


def test_instance_latency(perf):
    svc = instance_service_model(perf, 1000, 200, [8, 64])
    lat = instance_latency(svc, 0.8 * svc.capacity_rps)
    np.testing.assert_allclose(lat["rho"].to_numpy(), 0.8)
    expected = mgc_mean_wait(svc.slots, 0.8, svc.mean_s, svc.scv)
    np.testing.assert_allclose(lat["mean_wait_s"].to_numpy(), expected)
    assert (lat["ttft_q_s"] >= lat["ttft_mean_s"] - lat["mean_wait_s"]).all()
    over = instance_latency(svc, 2 * svc.capacity_rps)
    assert over["mean_wait_s"].is_infinite().all()
    with pytest.raises(ConfigError, match="arrival_rate"):
        instance_latency(svc, -1.0)
    with pytest.raises(ConfigError, match="batch_size"):
        instance_service_model(perf, 1000, 200, 0)
    with pytest.raises(ConfigError, match="prompt_mean"):
        instance_service_model(perf, 0, 200)


@pytest.mark.parametrize(
    ("call", "argument", "where"),
    [
        (lambda: mmc_mean_wait(2, 0.5, -1.0), "service_mean", "got -1.0"),
        (lambda: mmc_mean_wait(2, 0.5, np.nan), "service_mean", "got nan"),
        (lambda: mmc_mean_wait([2, 4], [0.5, 0.6], [1.0, 0.0]), "service_mean", "index 1"),
        (lambda: mmc_wait_quantile(0.9, 2, 0.5, [[1.0, 2.0], [3.0, -4.0]]), "service_mean", "index (1, 1)"),
        (lambda: mmc_wait_cdf(np.nan, 2, 0.5, 1.0), "t", "got nan"),
        (lambda: erlang_c([1, 2, 2.5], 0.5), "servers", "index 2"),
        (lambda: erlang_c(2, [0.5, np.nan]), "rho", "index 1"),
        (lambda: erlang_c(2, "high"), "rho", "'high'"),
        (lambda: erlang_b(2, -1.0), "offered load", "got -1.0"),
        (lambda: mdc_mean_wait(2, 0.5, -2.0), "service_mean", "got -2.0"),
        (lambda: mgc_mean_wait(2, 0.5, 1.0, [1.0, -2.0]), "service_scv", "index 1"),
        (lambda: mgc_mean_wait(2, 0.5, 1.0, 1.0, arrival_scv=np.inf), "arrival_scv", "got inf"),
        (lambda: mgc_wait_quantile(0.9, 2, 0.5, -1.0, 1.0), "service_mean", "got -1.0"),
    ],
)
def test_invalid_arguments_are_named_never_silent(call, argument, where):
    with pytest.raises(ConfigError, match=argument) as info:
        call()
    assert where in str(info.value)
    assert str(info.value).count("must be") == 1  # one clear error


def test_unstable_and_edge_values_stay_valid():
    assert float(mmc_mean_wait(2, np.inf, 1.0)) == np.inf  # rho = inf is overload, not an error
    assert float(mmc_wait_cdf(-1.0, 2, 0.5, 1.0)) == 0.0
    assert float(erlang_b(3, 0.0)) == 0.0
