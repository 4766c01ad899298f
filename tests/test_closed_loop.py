"""Closed-loop runs of session workloads (workbench.sim.closed_loop)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from workbench.sim import InstanceConfig, LinearPerfModel, simulate
from workbench.sim.closed_loop import NOT_ISSUED
from workbench.sim.fleet import simulate as fleet_simulate
from workbench.traces import Fixed, Poisson
from workbench.traces.agentic import AgentSessions

CFG = InstanceConfig(perf=LinearPerfModel(), kv_capacity_tokens=200_000, model="Llama-3.1-8B")


def _workload(n=40, **kw):
    base = dict(sessions=Poisson(0.5), mean_steps=5, think_s=2.0, lengths=Fixed(600, 100), block_tokens=512)
    base.update(kw)
    return AgentSessions(**base).generate(n_sessions=n, seed=1)


def _step_finish(workload, result) -> dict[int, float]:
    fin = result.requests["finish_s"].to_numpy()
    out: dict[int, float] = {}
    for i, s in enumerate(workload.step.tolist()):
        out[s] = max(out.get(s, -np.inf), fin[i])
    return out


@pytest.mark.parametrize("fanout_prob", [0.0, 0.5])
def test_each_step_is_released_its_think_time_after_its_parent_step_finished(fanout_prob):
    w = _workload(fanout_prob=fanout_prob)
    res = simulate(w, CFG)
    q = res.requests
    assert not q["rejected"].any()
    arrival = q["arrival_s"].to_numpy()
    done = _step_finish(w, res)
    child = np.flatnonzero(w.parent >= 0)
    expect = np.array([done[int(w.parent[i])] + w.think_s[i] for i in child])
    assert arrival[child] == pytest.approx(expect, rel=1e-12, abs=1e-12)
    roots = np.flatnonzero(w.parent < 0)
    assert arrival[roots] == pytest.approx(w.trace.requests["arrival_s"].to_numpy()[roots])
    # TTFT counts from the release
    assert (q["ttft_s"] >= 0).all()


def test_a_rejected_call_stops_its_session_and_later_steps_are_recorded_as_not_issued():
    w = _workload(mean_steps=30, lengths=Fixed(3000, 50), n=3)
    small = InstanceConfig(perf=LinearPerfModel(), kv_capacity_tokens=20_000, model="Llama-3.1-8B")
    res = simulate(w, small)
    q = res.requests.with_columns(pl.Series("step", w.step), pl.Series("parent", w.parent))
    too_long = q.filter(pl.col("reject_reason").str.contains("KV blocks"))
    assert too_long.height >= 1
    not_issued = q.filter(pl.col("reject_reason").str.starts_with(NOT_ISSUED.split("(")[0]))
    assert not_issued.height >= 1
    assert not_issued["arrival_s"].is_null().all() and not_issued["ttft_s"].is_null().all()
    # every row is accounted for: served, rejected as too long, or not issued
    assert q["finish_s"].is_not_null().sum() + too_long.height + not_issued.height == q.height


def test_closed_loop_self_throttles_where_its_open_loop_replay_overloads():
    # the open-loop layout assumes answers in ~0.5 s + 2 ms/token; a slow instance answers slower, so the
    # replay keeps sending at the nominal pace while the closed loop waits for the answers
    w = _workload(sessions=Poisson(2.0), think_s=0.5, lengths=Fixed(2000, 200), n=80)
    slow = InstanceConfig(perf=LinearPerfModel(decode_s_per_seq=4e-3), kv_capacity_tokens=400_000,
                          model="Llama-3.1-8B")  # fmt: skip
    closed = simulate(w, slow).requests
    opened = simulate(w.trace, slow).requests
    assert closed["queue_s"].mean() < opened["queue_s"].mean()
    assert closed["arrival_s"].max() > opened["arrival_s"].max()  # the sessions stretch instead


def test_replay_is_the_open_loop_trace_of_a_closed_loop_run():
    w = _workload()
    res = simulate(w, CFG)
    replay = w.replay(res)
    assert replay.requests["arrival_s"].is_sorted()
    assert sorted(replay.requests["arrival_s"].to_list()) == pytest.approx(
        sorted(res.requests["arrival_s"].to_list())
    )
    again = simulate(replay, CFG)
    assert again.requests.height == res.requests.height


def test_fleet_runs_a_session_workload_closed_loop():
    w = _workload(fanout_prob=0.3)
    res = fleet_simulate(w, 2)
    arrival = res.requests["arrival_s"].to_numpy()
    done = _step_finish(w, res)
    i = int(np.flatnonzero(w.parent >= 0)[0])
    assert arrival[i] == pytest.approx(done[int(w.parent[i])] + w.think_s[i])
