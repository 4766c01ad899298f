"""Workload inputs a newcomer tries (issue 18 item 7, issue 14 item 8): inference-fleet-sim CDFs, repeated
lines in a real trace, and twins that keep their trace's rate past its span."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from workbench import datasets, traces
from workbench.errors import ConfigError, DatasetError, WorkloadError
from workbench.traces import Poisson, Synthetic, TotalTokenCdf


# ------------------------------------------------------------------------------ inference-fleet-sim CDF JSON
def _ifs_reference(pairs: list, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """inference-fleet-sim's CdfWorkload sampling and 80/20 split, re-stated in plain Python (the reference)."""
    rng = random.Random(seed)
    prompts, outputs = [], []
    for _ in range(n):
        u = rng.random()
        prev, total = 1, pairs[-1][0]
        for thresh, frac in pairs:
            if u <= frac:
                lo = max(1, prev)
                total = rng.randint(lo, max(lo, thresh))
                break
            prev = thresh
        l_in = max(1, int(total * 0.8))
        prompts.append(l_in)
        outputs.append(max(1, total - l_in))
    return np.array(prompts), np.array(outputs)


def _pmf(values: np.ndarray, support: int) -> np.ndarray:
    return np.bincount(values, minlength=support + 1)[: support + 1] / values.size


@pytest.mark.parametrize("name", ["ifs_lmsys_cdf", "ifs_agent_heavy_cdf"])
def test_cdf_json_samples_like_inference_fleet_sim(name, shared_traces):
    cdf = TotalTokenCdf.from_json(name)
    raw = json.loads((shared_traces / datasets.get(name).file).read_text())
    pairs = raw["cdf"] if isinstance(raw, dict) else raw
    assert cdf.tokens.tolist() == [p[0] for p in pairs] and cdf.cumulative.tolist() == [p[1] for p in pairs]
    n = 200_000
    prompt, output = cdf.sample(np.random.default_rng(1), n)
    ref_p, ref_o = _ifs_reference(pairs, n, seed=1)
    # the split is exact: output = total - floor(0.8 * total)
    total = prompt.astype(np.int64) + output
    assert np.array_equal(prompt, np.maximum(1, np.floor(total * 0.8)).astype(np.int64))
    # same distribution as the reference: bin masses within sampling noise, means within 1.5 %
    edges = np.array([0] + [p[0] for p in pairs])
    ours = np.histogram(total, edges)[0] / n
    theirs = np.histogram(ref_p + ref_o, edges)[0] / n
    assert np.abs(ours - theirs).max() < 0.006
    assert total.mean() == pytest.approx((ref_p + ref_o).mean(), rel=0.015)
    assert total.mean() == pytest.approx(cdf.mean_total_tokens, rel=0.015)
    assert output.mean() == pytest.approx(ref_o.mean(), rel=0.015)


def test_cdf_split_and_bins_exactly():
    cdf = TotalTokenCdf(np.array([4, 10]), np.array([0.5, 1.0]))
    prompt, output = cdf.sample(np.random.default_rng(0), 50_000)
    total = prompt.astype(int) + output
    # first bin: totals 1..4 uniformly; second: 4..10 uniformly (the breakpoint is in both, as upstream);
    # a total of 1 becomes 1 + 1 tokens
    counts = np.bincount(total, minlength=11) / total.size
    assert set(np.flatnonzero(counts)) == set(range(2, 11))
    assert counts[2] == pytest.approx(0.5 * 2 / 4, abs=0.01)  # totals 1 and 2 of the first bin
    assert counts[4] == pytest.approx(0.5 / 4 + 0.5 / 7, abs=0.01)
    assert counts[7] == pytest.approx(0.5 / 7, abs=0.01)
    assert (prompt[total == 10] == 8).all() and (output[total == 10] == 2).all()
    assert (prompt[total == 2] == 1).all() and (output[total == 2] == 1).all()


def test_cdf_generator_end_to_end_is_seeded():
    gen = Synthetic(Poisson(3.0), TotalTokenCdf.from_json("ifs_agent_heavy_cdf"), name="agent")
    a, b = gen.generate(n=500, seed=4), gen.generate(n=500, seed=4)
    assert a.requests.equals(b.requests) and len(a) == 500
    assert a.requests["prompt_tokens"].min() >= 1 and a.requests["output_tokens"].max() <= 65_536 // 5 + 1


def test_cdf_files_are_refused_as_request_tables_with_a_pointer(shared_traces):
    for name in ("ifs_lmsys_cdf", "ifs_agent_heavy_cdf"):
        with pytest.raises(DatasetError, match=r"TotalTokenCdf\.from_json"):
            traces.load(name)
        with pytest.raises(WorkloadError, match=r"CDF of total tokens.*TotalTokenCdf\.from_json"):
            traces.load(shared_traces / datasets.get(name).file)


@pytest.mark.parametrize(
    "text, field, row, words",
    [
        ("[[64, 0.5], [32, 1.0]]", "tokens", 2, "must increase"),
        ("[[64, 0.5], [128, 0.4]]", "cumulative", 2, "must not decrease"),
        ("[[64, 1.5]]", "cumulative", 1, "in [0, 1]"),
        ('{"cdf": [[64, 0.5], [128, "x"]]}', "cdf", 2, "pair of numbers"),
        ("[[0, 0.5], [8, 1.0]]", "tokens", 1, "whole number of tokens"),
        ("[[64.5, 1.0]]", "tokens", 1, "whole number of tokens"),
        ('{"source": "x"}', "cdf", None, "'cdf' list"),
        ("[[8, 0.0]]", "cumulative", None, "no probability"),
    ],
)
def test_bad_cdf_files_name_the_pair(tmp_path, text, field, row, words):
    path = tmp_path / "bad cdf [1].json"
    path.write_text(text)
    with pytest.raises(WorkloadError) as info:
        TotalTokenCdf.from_json(path)
    assert words in str(info.value) and info.value.field == field and info.value.row == row


# --------------------------------------------------------------------------------- repeated lines in a trace
def test_a_repeated_line_loads_by_default_counted_and_warned(tmp_path):
    # BurstGPT logs whole seconds: the same request size twice in one second repeats a line exactly
    path = tmp_path / "burst.csv"
    path.write_text(
        "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
        "0,ChatGPT,472,18,490,Conversation log\n"
        "3,ChatGPT,1087,21,1108,Conversation log\n"
        "3,ChatGPT,1087,21,1108,Conversation log\n"
        "9,GPT-4,31,7,38,Conversation log\n"
    )
    with pytest.warns(UserWarning, match=r"1 row\(s\) repeat an earlier row exactly.*kept them"):
        trace = traces.load(path)
    assert len(trace) == 4 and trace.meta["duplicate_rows"] == 1
    with pytest.raises(WorkloadError, match="repeats an earlier row exactly") as info:
        traces.load(path, duplicates="error")
    assert (info.value.field, info.value.row) == ("Timestamp", 3)


# -------------------------------------------------------------------------------- twins past the trace's span
def test_twin_keeps_the_trace_rate_past_its_span():
    trace = traces.load("azure_code")
    span = trace.duration_s
    rate = len(trace) / span
    gen = traces.fit(trace)
    profile = gen.arrivals.profile
    assert profile.period_s == pytest.approx(span) and profile.mean_rate == pytest.approx(rate, rel=1e-9)
    assert "periodic" in repr(gen.arrivals)
    inside, after = [], []
    for seed in range(3):
        t = gen.generate(n=30_000, seed=seed).requests["arrival_s"].to_numpy()
        inside.append((t < span).sum() / span)
        after.append(((t >= span) & (t < 3 * span)).sum() / (2 * span))
    # within 15 % of the trace's 2.57 req/s before and after the span (main: 1.0-1.1 req/s after it)
    assert np.mean(inside) == pytest.approx(rate, rel=0.15)
    assert np.mean(after) == pytest.approx(rate, rel=0.15)
    held = traces.fit(trace, extend="hold").arrivals.profile
    assert held.period_s is None


def test_periodic_profile_inverts_its_cumulative():
    profile = traces.PiecewiseRate(np.array([0.0, 10.0, 25.0]), np.array([2.0, 0.0, 4.0]), period_s=40.0)
    assert profile.mean_rate == pytest.approx((20 + 60) / 40)
    t = np.array([0.0, 5.0, 12.0, 30.0, 40.0, 47.0, 95.0])
    lam = profile.cumulative(t)
    assert lam.tolist() == pytest.approx([0, 10, 20, 40, 80, 94, 180])
    back = profile.inverse_cumulative(lam[[1, 3, 5]])
    assert back.tolist() == pytest.approx([5.0, 30.0, 47.0])
    # a level the cumulative holds over a zero-rate piece (90..105 s) maps into that flat stretch
    assert profile.cumulative(profile.inverse_cumulative(np.array([180.0])))[0] == pytest.approx(180.0)
    assert profile.rate(np.array([5.0, 45.0, 52.0])).tolist() == [2.0, 2.0, 0.0]
    with pytest.raises(ConfigError, match="must be > the last edge"):
        traces.PiecewiseRate(np.array([0.0, 10.0]), np.array([1.0, 1.0]), period_s=5.0)
