"""Generators, sessions, transforms and fit: property tests with statistical tolerances and exact checks."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench import traces
from workbench.errors import ConfigError, WorkloadError
from workbench.traces.synthetic import weibull_shape

PROPS = settings(max_examples=12, deadline=None)


def _gaps(trace):
    return np.diff(trace.requests["arrival_s"].to_numpy())


@PROPS
@given(
    rate=st.floats(0.2, 50.0),
    cv=st.floats(0.3, 2.5),
    family=st.sampled_from(["gamma", "weibull"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_renewal_hits_rate_and_cv(rate, cv, family, seed):
    trace = traces.Synthetic(traces.Renewal(rate, cv, family)).generate(n=20_000, seed=seed)
    g = _gaps(trace)
    # std of the estimates at n=20k is <= 2 % (rate) and <= 3 % (CV); tolerances are ~5 sigma
    assert 1 / g.mean() == pytest.approx(rate, rel=0.10)
    assert g.std() / g.mean() == pytest.approx(cv, rel=0.15)


@PROPS
@given(rate=st.floats(0.5, 20.0), seed=st.integers(0, 2**32 - 1))
def test_poisson_count_over_duration(rate, seed):
    duration = 2000.0
    trace = traces.Synthetic(traces.Poisson(rate)).generate(duration_s=duration, seed=seed)
    mean = rate * duration
    assert abs(len(trace) - mean) < 5 * math.sqrt(mean)
    assert trace.requests["arrival_s"].max() < duration
    assert traces.interarrival_cv(trace.requests["arrival_s"]) == pytest.approx(1.0, abs=0.12)


@pytest.mark.parametrize("cv", [1.0, 2.0])
def test_piecewise_rate_profile(cv):
    profile = traces.PiecewiseRate([0.0, 100.0, 200.0], [2.0, 10.0, 5.0])
    trace = traces.Synthetic(traces.TimeVarying(profile, cv=cv)).generate(duration_s=300.0, seed=4)
    t = trace.requests["arrival_s"].to_numpy()
    counts = np.histogram(t, bins=[0, 100, 200, 300])[0]
    expected = np.array([200, 1000, 500])
    tol = 5 * np.sqrt(expected) * cv
    assert np.all(np.abs(counts - expected) < tol), counts


def test_diurnal_thinning_matches_integral():
    profile = traces.Diurnal(mean_rate=4.0, amplitude=0.8, period_s=1000.0, peak_s=250.0)
    trace = traces.Synthetic(traces.TimeVarying(profile)).generate(duration_s=4000.0, seed=7)
    t = trace.requests["arrival_s"].to_numpy()
    # peak quarter vs trough quarter of each period, against the analytic integral
    phase = (t - 250.0) % 1000.0
    peak = np.sum((phase < 125) | (phase >= 875))
    trough = np.sum((phase >= 375) & (phase < 625))
    lam = profile.cumulative(np.array([125.0 + 250, 375.0 + 250, 625.0 + 250])) - profile.cumulative(250.0)
    expected_peak = 4 * 2 * lam[0]  # 4 periods x both half-quarters around the peak
    expected_trough = 4 * (lam[2] - lam[1])
    assert peak == pytest.approx(expected_peak, rel=0.06)
    assert trough == pytest.approx(expected_trough, rel=0.15)
    assert profile.cumulative(1000.0) == pytest.approx(4000.0)
    lam_grid = np.array([10.0, 1234.5, 3999.0])
    assert profile.cumulative(profile.inverse_cumulative(lam_grid)) == pytest.approx(lam_grid, rel=1e-6)


def test_piecewise_inverse_skips_zero_pieces():
    profile = traces.PiecewiseRate([0.0, 10.0, 20.0], [1.0, 0.0, 2.0])
    assert profile.inverse_cumulative(np.array([5.0, 10.0, 12.0])) == pytest.approx([5.0, 20.0, 21.0])
    with pytest.raises(ConfigError, match="last rate"):
        traces.PiecewiseRate([0.0, 10.0], [1.0, 0.0])


def test_weibull_shape_analytic():
    assert weibull_shape(1.0) == pytest.approx(1.0, rel=1e-6)
    k = weibull_shape(0.5)
    cv2 = math.gamma(1 + 2 / k) / math.gamma(1 + 1 / k) ** 2 - 1
    assert math.sqrt(cv2) == pytest.approx(0.5, rel=1e-6)


def test_same_seed_same_table_and_independent_streams():
    gen = traces.Synthetic(traces.Renewal(3.0, 2.0), traces.LogNormal(7.0, 1.0, 5.0, 1.0))
    a, b = gen.generate(n=500, seed=11), gen.generate(n=500, seed=11)
    assert a.requests.equals(b.requests)
    assert not a.requests.equals(gen.generate(n=500, seed=12).requests)
    other = traces.Synthetic(traces.Renewal(3.0, 2.0), traces.Fixed(100, 10)).generate(n=500, seed=11)
    assert other.requests["arrival_s"].equals(a.requests["arrival_s"])  # lengths have their own stream


def test_generator_arguments_validated():
    with pytest.raises(ConfigError, match="exactly one of n"):
        traces.Synthetic().generate()
    with pytest.raises(ConfigError, match="cv must be in"):
        traces.Renewal(1.0, cv=0.0)
    with pytest.raises(ConfigError, match="unknown family"):
        traces.Renewal(1.0, family="pareto")
    with pytest.raises(ConfigError, match="rate must be a finite number > 0"):
        traces.Poisson(-1.0)


def test_length_models():
    rng = np.random.default_rng(0)
    p, o = traces.Fixed(100, 7).sample(rng, 5)
    assert p.tolist() == [100] * 5 and o.tolist() == [7] * 5
    ln = traces.LogNormal(6.0, 0.5, 4.0, 0.3, rho=0.8)
    p, o = ln.sample(rng, 50_000)
    fitted = traces.LogNormal.fit(p, o)
    assert (fitted.prompt_mu, fitted.prompt_sigma) == pytest.approx((6.0, 0.5), abs=0.02)
    assert (fitted.output_mu, fitted.output_sigma, fitted.rho) == pytest.approx((4.0, 0.3, 0.8), abs=0.03)
    pmf = traces.Pmf([10, 20], [0.25, 0.75], [1, 2, 3], [1, 1, 2])
    p, o = pmf.sample(rng, 40_000)
    assert np.mean(p == 20) == pytest.approx(0.75, abs=0.01) and np.mean(o == 3) == pytest.approx(0.5, abs=0.01)
    emp = traces.Empirical([5, 6], [50, 60])
    p, o = emp.sample(rng, 100)
    assert set(zip(p.tolist(), o.tolist(), strict=True)) <= {(5, 50), (6, 60)}


SESSIONS = traces.Sessions(
    mean_turns=4.0,
    think_s=20.0,
    system_prompt_tokens=1100,
    n_system_prompts=2,
    system_prompt_share=0.5,
    block_tokens=512,
)


def _session_trace(sessions=SESSIONS, n=1500, seed=5):
    return traces.Synthetic(traces.Poisson(2.0), traces.LogNormal(6.0, 0.8, 5.0, 0.8), sessions).generate(
        n=n, seed=seed
    )


def test_sessions_turn_order_prompt_growth_and_hashes():
    trace = _session_trace()
    df = trace.requests.with_row_index("pos")
    assert trace.prefix_block_tokens == 512
    by = df.sort("session_id", "turn")
    for (sid,), g in by.group_by(["session_id"], maintain_order=True):
        assert g["turn"].to_list() == list(range(g.height))
        assert g["pos"].is_sorted() and g["arrival_s"].is_sorted()  # turns arrive in order
        prompts, outputs, hashes = (
            g["prompt_tokens"].to_list(),
            g["output_tokens"].to_list(),
            g["prefix_hashes"],
        )
        for j in range(1, g.height):
            assert prompts[j] > prompts[j - 1] + outputs[j - 1]  # context + new user message
            full = prompts[j - 1] // 512
            assert hashes[j].to_list()[:full] == hashes[j - 1].to_list()[:full]  # earlier full blocks reused
        for h, p in zip(hashes, prompts, strict=True):
            assert len(h) == math.ceil(p / 512)
        if sid > 40:
            break


def test_shared_system_prompt_blocks():
    trace = _session_trace(
        traces.Sessions(mean_turns=1.0, system_prompt_tokens=1100, n_system_prompts=1, system_prompt_share=1.0)
    )
    first_two = {tuple(h[:2]) for h in trace.requests["prefix_hashes"].to_list()}
    assert first_two == {(0, 1)}  # 1100 tokens = 2 full shared blocks, same ids in every session
    none = _session_trace(traces.Sessions(mean_turns=1.0, system_prompt_share=0.0))
    assert traces.describe(none)["prefix_reuse"].item() == 0.0


def test_reuse_ratio_grows_with_turns_and_sharing():
    reuse = [
        traces.describe(
            _session_trace(traces.Sessions(mean_turns=t, system_prompt_tokens=2048, system_prompt_share=s))
        )["prefix_reuse"].item()
        for t, s in [(1.0, 0.0), (1.0, 0.5), (3.0, 0.5), (8.0, 0.5)]
    ]
    assert reuse[0] == 0.0 and reuse == sorted(reuse) and reuse[-1] > 0.7


def test_describe_analytic():
    df = pl.DataFrame(
        {
            "arrival_s": [0.0, 1.0, 2.0, 4.0],
            "prompt_tokens": [10, 20, 30, 40],
            "output_tokens": [1, 2, 3, 4],
            "session_id": [0, 0, 1, 1],
            "prefix_hashes": [[1, 2], [1, 2, 3], [4], [4, 5]],
        }
    )
    trace = traces.Trace(traces.validate(df), name="toy")
    row = traces.describe(trace).row(0, named=True)
    gaps = np.array([1.0, 1.0, 2.0])
    assert row["rate_rps"] == pytest.approx(4 / 4.0)
    assert row["iat_cv"] == pytest.approx(gaps.std() / gaps.mean())
    assert row["prefix_reuse"] == pytest.approx(3 / 8)
    assert (row["sessions"], row["turns_per_session"]) == (2, 2.0)
    assert (row["prompt_p50"], row["output_p99"], row["prompt_mean"]) == (20, 4, 25.0)


@settings(max_examples=6, deadline=None)
@given(rate=st.floats(1.0, 10.0), cv=st.floats(0.5, 2.0), seed=st.integers(0, 2**32 - 1))
def test_fit_recovers_parameters(rate, cv, seed):
    src = traces.Synthetic(traces.Renewal(rate, cv), traces.LogNormal(6.0, 0.7, 4.0, 0.5))
    trace = src.generate(n=8000, seed=seed)
    gen = traces.fit(trace, lengths="lognormal")
    assert gen.arrivals.mean_rate == pytest.approx(rate, rel=0.10)
    assert gen.arrivals.cv == pytest.approx(cv, rel=0.15)
    assert (gen.lengths.prompt_mu, gen.lengths.output_sigma) == pytest.approx((6.0, 0.5), abs=0.05)
    twin = gen.generate(duration_s=trace.duration_s, seed=seed + 1)
    assert len(twin) == pytest.approx(len(trace), rel=0.1)


def test_fit_follows_rate_profile():
    profile = traces.PiecewiseRate([0.0, 300.0, 600.0], [1.0, 6.0, 2.0])
    trace = traces.Synthetic(traces.TimeVarying(profile)).generate(duration_s=900.0, seed=2)
    gen = traces.fit(trace, bin_s=60.0)
    rates = gen.arrivals.profile.rates
    assert rates[:5].mean() == pytest.approx(1.0, rel=0.25)
    assert rates[5:10].mean() == pytest.approx(6.0, rel=0.15)
    assert gen.arrivals.cv == pytest.approx(1.0, rel=0.15)


def test_transforms():
    base = traces.Synthetic(traces.Poisson(2.0), traces.Fixed(100, 10), name="a").generate(n=400, seed=1)
    fast = traces.rescale(base, 2.0)
    assert fast.duration_s == pytest.approx(base.duration_s / 2)
    scaled = traces.scale_lengths(base, prompt=1.5, output=0.01)
    assert set(scaled.requests["prompt_tokens"]) == {150} and set(scaled.requests["output_tokens"]) == {1}
    window = traces.slice(base, 50.0, 100.0)
    assert window.requests["arrival_s"].min() >= 0 and window.requests["arrival_s"].max() < 50.0
    expected = base.requests.filter(pl.col("arrival_s").is_between(50.0, 100.0, closed="left")).height
    assert len(window) == expected and window.requests["request_id"].to_list() == list(range(expected))
    short = traces.filter(base, pl.col("arrival_s") < 10)
    assert len(short) == base.requests.filter(pl.col("arrival_s") < 10).height
    other = _session_trace(n=200)
    mixed = traces.merge([base, other], classes=["batch", "chat"])
    assert len(mixed) == 600 and mixed.requests["arrival_s"].is_sorted()
    counts = dict(mixed.requests.group_by("request_class").len().rows())
    assert counts == {"batch": 400, "chat": 200}
    assert mixed.prefix_block_tokens == 512
    with pytest.raises(WorkloadError, match="length-only"):
        traces.rescale(base.with_requests(base.requests, has_arrivals=False), 2.0)


def test_attach_arrivals_to_length_table():
    lengths = traces.Trace(
        traces.validate(
            pl.DataFrame({"prompt_tokens": [5, 6, 7], "output_tokens": [1, 2, 3]}), has_arrivals=False
        ),
        name="lens",
        has_arrivals=False,
    )
    out = traces.attach_arrivals(lengths, traces.Poisson(1.0), seed=3)
    assert out.has_arrivals and out.requests["arrival_s"].is_sorted()
    assert sorted(out.requests["prompt_tokens"].to_list()) == [5, 6, 7]
    more = traces.attach_arrivals(lengths, traces.Poisson(1.0), seed=3, n=50)
    assert len(more) == 50 and set(more.requests["prompt_tokens"]) <= {5, 6, 7}


def test_fit_trace_that_does_not_start_at_zero():
    profile = traces.PiecewiseRate([0.0, 300.0], [2.0, 6.0])
    base = traces.Synthetic(traces.TimeVarying(profile, cv=2.0)).generate(duration_s=600.0, seed=3)
    shifted = base.with_requests(base.requests.with_columns(pl.col("arrival_s") + 1800.0))
    gen = traces.fit(shifted, bin_s=60.0)
    rates = gen.arrivals.profile.rates
    assert gen.arrivals.profile.edges_s[-1] < 600.0  # profile starts at the first arrival, not at t = 0
    assert rates[:5].mean() == pytest.approx(2.0, rel=0.3) and rates[5:10].mean() == pytest.approx(6.0, rel=0.3)
    # the same fit as the unshifted trace (up to the first arrival's offset)
    assert gen.arrivals.cv == pytest.approx(traces.fit(base, bin_s=60.0).arrivals.cv, rel=0.05)
    counts = [len(gen.generate(duration_s=shifted.duration_s, seed=s)) for s in range(5)]
    assert np.mean(counts) == pytest.approx(len(shifted), rel=0.1)


def test_zero_rate_span_is_a_workload_error():
    gen = traces.Synthetic(traces.TimeVarying(traces.PiecewiseRate([0.0, 100.0], [0.0, 1.0]), cv=2.0))
    with pytest.raises(WorkloadError, match="'synthetic' produced no requests; raise the rate or duration"):
        gen.generate(duration_s=50.0)
    assert gen.arrivals.sample(np.random.default_rng(0), duration_s=50.0).size == 0
    # a fitted twin whose profile is zero over the asked span reports the same
    base = traces.Synthetic(traces.Poisson(1.0)).generate(n=400, seed=1)
    twin = traces.fit(base)
    zero = dataclasses.replace(
        twin, arrivals=dataclasses.replace(twin.arrivals, profile=traces.PiecewiseRate([0.0, 1e6], [0.0, 1.0]))
    )
    with pytest.raises(WorkloadError, match="_twin' produced no requests"):
        zero.generate(duration_s=60.0)


TWIN_COLUMNS = ("rate_rps", "iat_cv", "prompt_p50", "prompt_p90", "prompt_p99", "output_p50", "output_p99")
# Tolerances on the median over 10 twins: rate 6 %, inter-arrival CV 15 % (heavy-tailed gaps: single twins of
# the Azure code trace range ~10..18 around 13.2), length percentiles 5 %, prefix-reuse ratio 0.03.
TWIN_TOLERANCE = {"rate_rps": 0.06, "iat_cv": 0.15} | {c: 0.05 for c in TWIN_COLUMNS[2:]}


def _twin_medians(trace, seeds=10, **fit):
    gen = traces.fit(trace, **fit)
    rows = [traces.describe(gen.generate(duration_s=trace.duration_s, seed=s)) for s in range(seeds)]
    return gen, pl.concat(rows).select(pl.exclude("trace").median()).row(0, named=True)


def test_twin_describe_matches_bursty_azure_trace(shipped_data):
    trace = traces.load(shipped_data / "AzureLLMInferenceTrace_code.csv")
    ref = traces.describe(trace).row(0, named=True)
    gen, twin = _twin_medians(trace)
    assert ref["iat_cv"] == pytest.approx(13.15, abs=0.01)
    for col in TWIN_COLUMNS:
        assert twin[col] == pytest.approx(ref[col], rel=TWIN_TOLERANCE[col]), col
    # the renewal CV is well below the trace's: the profile explains part of the variation
    assert 5.0 < gen.arrivals.cv < 11.0
    assert gen.sessions is None and twin["prefix_reuse"] is None


def test_twin_keeps_prefix_reuse_of_session_trace():
    trace = _session_trace(n=3000)
    ref = traces.describe(trace).row(0, named=True)
    gen, twin = _twin_medians(trace, sessions=False)  # fit keeps sessions unless told not to (test_agentic)
    assert isinstance(gen.sessions, traces.PrefixReuse) and gen.sessions.block_tokens == 512
    assert gen.sessions.reuse_ratio == pytest.approx(ref["prefix_reuse"], abs=1e-12)  # measured exactly
    assert twin["prefix_reuse"] == pytest.approx(ref["prefix_reuse"], abs=0.03)
    for col in TWIN_COLUMNS:
        assert twin[col] == pytest.approx(ref[col], rel=TWIN_TOLERANCE[col]), col
    assert traces.fit(trace, prefix=False, sessions=False).sessions is None


def test_twin_keeps_prefix_reuse_of_mooncake(shared_traces):
    trace = traces.load(shared_traces / "mooncake_synthetic_trace.jsonl")
    ref = traces.describe(trace).row(0, named=True)
    _, twin = _twin_medians(trace)
    assert ref["prefix_reuse"] == pytest.approx(0.6396, abs=1e-4)
    assert twin["prefix_reuse"] == pytest.approx(ref["prefix_reuse"], abs=0.03)
    for col in TWIN_COLUMNS:
        assert twin[col] == pytest.approx(ref[col], rel=TWIN_TOLERANCE[col]), col


def test_prefix_reuse_measures_depth_and_lag_exactly():
    df = pl.DataFrame(
        {
            "arrival_s": [0.0, 1.0, 2.0, 3.0, 4.0],
            "prompt_tokens": [1024, 1500, 512, 2048, 100],
            "output_tokens": [1, 1, 1, 1, 1],
            "prefix_hashes": [[0, 1], [0, 1, 2], [3], [0, 1, 2, 4], [3]],
        }
    )
    model = traces.PrefixReuse.from_trace(traces.Trace(traces.validate(df), prefix_block_tokens=512))
    assert model.blocks.tolist() == [2, 3, 1, 4, 1]
    assert model.depth.tolist() == [0, 2, 0, 3, 1]
    assert model.lag.tolist() == [0, 1, 0, 2, 2]  # request 3 copies request 1 (latest holder of block 2)
    assert model.reuse_ratio == pytest.approx(6 / 11)


@pytest.mark.parametrize("tail", [None, []])
def test_prefix_reuse_counts_trailing_rows_without_hashes(tail):
    df = pl.DataFrame(
        {
            "arrival_s": [0.0, 1.0, 2.0, 3.0],
            "prompt_tokens": [1000, 1000, 1000, 1000],
            "output_tokens": [10, 10, 10, 10],
            "prefix_hashes": [[1, 2], [1, 3], tail, tail],
        },
        schema_overrides={"prefix_hashes": pl.List(pl.UInt64)},
    )
    model = traces.PrefixReuse.from_trace(traces.Trace(traces.validate(df), prefix_block_tokens=512))
    assert model.blocks.tolist() == [2, 2, 2, 2]
    assert model.depth.tolist() == [0, 1, 0, 0]
    assert model.lag.tolist() == [0, 1, 0, 0]


def test_fit_accepts_trace_ending_in_rows_without_hashes():
    rng = np.random.default_rng(0)
    n = 50
    hashes = [[int(k), int(k) + 100] for k in rng.integers(0, 5, n)]
    hashes[-1] = None
    df = pl.DataFrame(
        {
            "arrival_s": np.sort(rng.random(n) * 100),
            "prompt_tokens": np.full(n, 1000),
            "output_tokens": np.full(n, 10),
            "prefix_hashes": hashes,
        },
        schema_overrides={"prefix_hashes": pl.List(pl.UInt64)},
    )
    gen = traces.fit(traces.Trace(traces.validate(df), prefix_block_tokens=512))
    assert isinstance(gen.sessions, traces.PrefixReuse)
    assert gen.sessions.depth[-1] == 0 and gen.sessions.depth.sum() > 0


def test_prefix_reuse_hashes_follow_mooncake_convention():
    model = traces.PrefixReuse(
        blocks=np.array([1, 4, 4, 8]), depth=np.array([0, 2, 4, 6]), lag=np.array([0, 1, 3, 2]), block_tokens=16
    )
    gen = traces.Synthetic(traces.Poisson(5.0), traces.LogNormal(3.5, 0.8, 2.0, 0.5), model)
    trace = gen.generate(n=2000, seed=4)
    hashes = trace.requests["prefix_hashes"].to_list()
    prompts = trace.requests["prompt_tokens"].to_list()
    assert all(len(h) == math.ceil(p / 16) for h, p in zip(hashes, prompts, strict=True))
    first_at: dict[int, tuple] = {}
    for h in hashes:  # equal id at position j => equal prefix up to and including j
        for j, x in enumerate(h):
            assert first_at.setdefault(x, tuple(h[: j + 1])) == tuple(h[: j + 1])
    flat = [x for h in hashes for x in h]
    assert sorted(set(flat)) == list(range(len(set(flat))))  # ids numbered by first appearance
    assert [x for x in dict.fromkeys(flat)] == list(range(len(set(flat))))
    assert gen.generate(n=2000, seed=4).requests.equals(trace.requests)


@pytest.mark.parametrize("amplitude", [1.0, 0.6])
def test_diurnal_time_rescaling_full_amplitude(amplitude):
    profile = traces.Diurnal(mean_rate=3.0, amplitude=amplitude, period_s=600.0, peak_s=150.0)
    lam = np.linspace(0.0, 9000.0, 20_001)
    t = profile.inverse_cumulative(lam)
    assert t[-1] < 9000.0 / 3.0 + 600.0  # bounded search (amplitude 1 once asked for petabytes)
    assert np.all(np.diff(t) >= 0) and profile.cumulative(t) == pytest.approx(lam, abs=1e-6)
    trace = traces.Synthetic(traces.TimeVarying(profile, cv=2.0)).generate(duration_s=6000.0, seed=9)
    arr = trace.requests["arrival_s"].to_numpy()
    assert abs(len(trace) - 18_000) < 5 * 2.0 * math.sqrt(18_000)
    phase = (arr - 150.0) % 600.0
    near_peak = np.sum((phase < 75) | (phase >= 525))
    near_trough = np.sum((phase >= 225) & (phase < 375))
    lam_peak = 2 * (profile.cumulative(225.0) - profile.cumulative(150.0)) * 10  # 10 periods
    lam_trough = (profile.cumulative(525.0) - profile.cumulative(375.0)) * 10
    assert near_peak == pytest.approx(lam_peak, rel=0.1)
    assert near_trough == pytest.approx(lam_trough, rel=0.3 if amplitude == 1.0 else 0.15)
