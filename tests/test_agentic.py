"""Closed-loop session workloads: structure, prefixes, fan-out (workbench.traces.agentic)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from workbench.errors import ConfigError, WorkloadError
from workbench.traces import Fixed, LogNormal, Poisson, Sessions, Synthetic
from workbench.traces.agentic import AgentSessions, SessionWorkload, from_trace
from workbench.traces.mmpp import MMPP


def _gen(**kw):
    base = dict(sessions=Poisson(1.0), mean_steps=5, think_s=2.0, lengths=Fixed(600, 100), block_tokens=256)
    base.update(kw)
    return AgentSessions(**base)


def test_each_step_extends_its_sessions_prefix():
    w = _gen().generate(n_sessions=30, seed=3)
    req = w.trace.requests
    assert w.n_sessions == 30 and int((w.parent < 0).sum()) == 30
    for sid in range(30):
        s = req.filter(pl.col("session_id") == sid).sort("turn")
        prompts = s["prompt_tokens"].to_list()
        outs = s["output_tokens"].to_list()
        # fixed lengths, no fan-out: prompt_j = j * (600 + 100) + 600
        assert prompts == [600 + j * 700 for j in range(len(prompts))]
        hashes = s["prefix_hashes"].to_list()
        for j in range(1, len(hashes)):
            full = prompts[j - 1] // 256  # the previous prompt's full blocks are a prefix of this one
            assert hashes[j][:full] == hashes[j - 1][:full]
        assert all(o == 100 for o in outs)


def test_parents_come_first_and_think_times_are_positive():
    w = _gen(mean_steps=8).generate(n_sessions=50, seed=1)
    child = w.parent >= 0
    assert np.all(w.parent[child] < w.step[child])
    assert np.all(w.think_s[child] > 0) and np.all(w.think_s[~child] == 0)
    arr = w.trace.requests["arrival_s"].to_numpy()
    # nominal layout: a child arrives after its parent's nominal answer (ttft + 99 x tpot) plus its think
    first_row = {int(s): i for i, s in reversed(list(enumerate(w.step)))}
    for i in np.flatnonzero(child):
        p = first_row[int(w.parent[i])]
        assert arr[i] == pytest.approx(arr[p] + 0.5 + 99 * 0.02 + w.think_s[i])


def test_fan_out_branches_share_the_prefix_and_join():
    w = _gen(fanout_prob=1.0, fanout=3, mean_steps=4).generate(n_sessions=40, seed=2)
    req = w.trace.requests.with_columns(pl.Series("step", w.step), pl.Series("parent", w.parent))
    widths = req.group_by("step").agg(
        pl.len(), pl.col("turn").first(), pl.col("prefix_hashes"), pl.col("prompt_tokens").first()
    )
    assert set(widths.filter(pl.col("turn") == 0)["len"]) == {1}
    later = widths.filter(pl.col("turn") > 0)
    assert later.height > 0 and set(later["len"]) == {3}
    for hs, prompt in zip(later["prefix_hashes"].to_list(), later["prompt_tokens"].to_list(), strict=True):
        common = (prompt - 600) // 256  # the conversation before this step's own 600-token messages
        assert common >= 2 and all(h[:common] == hs[0][:common] for h in hs)
        assert len({tuple(h[common:]) for h in hs}) == 3 and not set(hs[1][common:]) & set(hs[2][common:])
    # a join: every row of a step has the same parent step
    assert req.group_by("step").agg(pl.col("parent").n_unique())["parent"].max() == 1


def test_system_prompt_blocks_are_shared_across_sessions():
    w = _gen(system_prompt_tokens=1024, n_system_prompts=1, mean_steps=1).generate(n_sessions=10, seed=0)
    heads = {tuple(h[:4]) for h in w.trace.requests["prefix_hashes"].to_list()}
    assert len(heads) == 1


def test_same_seed_same_workload_and_mmpp_starts():
    g = _gen(sessions=MMPP.bursts(1.0, 5.0, 0.2, 10.0), fanout_prob=0.3)
    a, b = g.generate(n_sessions=20, seed=9), g.generate(n_sessions=20, seed=9)
    assert a.trace.requests.equals(b.trace.requests) and np.array_equal(a.parent, b.parent)
    d = g.generate(duration_s=30.0, seed=9)
    assert d.trace.requests.filter(pl.col("turn") == 0)["arrival_s"].max() < 30.0


def test_max_context_ends_sessions():
    w = _gen(mean_steps=50, max_context_tokens=3000).generate(n_sessions=10, seed=0)
    assert w.trace.requests["prompt_tokens"].max() + 100 <= 3000


def test_from_trace_closes_the_loop_on_session_turns():
    t = Synthetic(Poisson(2.0), Fixed(200, 50), Sessions(mean_turns=4, think_s=30.0, block_tokens=64)).generate(
        n=300, seed=1
    )
    w = from_trace(t, nominal_ttft_s=0.0, nominal_tpot_s=0.0)
    req = t.requests
    child = w.parent >= 0
    assert child.sum() == (req["turn"] > 0).sum()
    sid = req["session_id"].to_numpy()
    assert np.all(sid[w.parent[child]] == sid[child])
    arr = req["arrival_s"].to_numpy()
    assert w.think_s[child] == pytest.approx(arr[child] - arr[w.parent[child]])
    with pytest.raises(WorkloadError, match="no session_id"):
        from_trace(Synthetic(Poisson(1.0)).generate(n=5, seed=0))


def test_bad_inputs():
    with pytest.raises(ConfigError, match="exactly one"):
        _gen().generate()
    with pytest.raises(ConfigError, match="fanout_prob"):
        _gen(fanout_prob=2.0)
    w = _gen().generate(n_sessions=2, seed=0)
    with pytest.raises(WorkloadError, match="parent step must come before"):
        SessionWorkload(w.trace, w.step, w.step, w.think_s)
    with pytest.raises(WorkloadError, match="one value per row"):
        SessionWorkload(w.trace, w.step[:1], w.parent, w.think_s)


def test_fit_keeps_sessions_when_the_trace_has_them():
    from workbench.traces import fit

    gen = Synthetic(Poisson(2.0), Fixed(300, 80), Sessions(mean_turns=4, think_s=20.0, block_tokens=64))
    trace = gen.generate(n=2000, seed=3)
    twin = fit(trace)
    assert isinstance(twin.sessions, Sessions)
    assert twin.sessions.mean_turns == pytest.approx(4.0, rel=0.15)
    assert twin.sessions.think_s == pytest.approx(20.0, rel=0.15)
    out = twin.generate(n=2000, seed=4).requests
    assert out["session_id"].null_count() == 0 and out["turn"].max() > 2
    # new messages of 300 tokens: the twin's turn-0 prompts are the trace's
    assert out.filter(pl.col("turn") == 0)["prompt_tokens"].median() == 300
    assert not isinstance(fit(trace, sessions=False).sessions, Sessions)  # the prefix-reuse model instead


def test_a_session_twin_matches_the_traces_statistics_and_system_prompt():
    from workbench.traces import describe, fit

    sessions = Sessions(mean_turns=4.0, think_s=20.0, system_prompt_tokens=1100, n_system_prompts=3,
                        system_prompt_share=0.6, block_tokens=512)  # fmt: skip
    trace = Synthetic(Poisson(2.0), LogNormal(6.0, 0.8, 5.0, 0.8), sessions).generate(n=3000, seed=5)
    gen = fit(trace)
    assert gen.sessions.system_prompt_tokens == 1024  # the whole blocks of the 1,100-token prompt
    assert gen.sessions.n_system_prompts == 3
    assert gen.sessions.system_prompt_share == pytest.approx(0.6, abs=0.06)
    ref = describe(trace).row(0, named=True)
    rows = [describe(gen.generate(duration_s=trace.duration_s, seed=s)) for s in range(6)]
    twin = pl.concat(rows).select(pl.exclude("trace").median()).row(0, named=True)
    assert twin["prefix_reuse"] == pytest.approx(ref["prefix_reuse"], abs=0.03)
    for col, tol in (("rate_rps", 0.06), ("iat_cv", 0.15), ("prompt_p50", 0.06), ("prompt_p90", 0.06),
                     ("prompt_p99", 0.08), ("output_p50", 0.05)):  # fmt: skip
        assert twin[col] == pytest.approx(ref[col], rel=tol), col
