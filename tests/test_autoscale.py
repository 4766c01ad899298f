"""Scaling policies on hand-built pool observations."""

from __future__ import annotations

import math

import numpy as np

from workbench.sim.autoscale import AutoscaleConfig, PoolObservation, clamp, drain_order, get_scaler

INF = math.inf


def obs(now, outstanding, *, waiting=None, kv=None, idle_since=None, starting=0):
    out = np.asarray(outstanding, dtype=float)
    n = out.size
    return PoolObservation(
        now=now,
        n_on=n,
        n_starting=starting,
        outstanding=out,
        waiting=np.zeros(n) if waiting is None else np.asarray(waiting, float),
        kv_utilization=np.zeros(n) if kv is None else np.asarray(kv, float),
        idle_since=np.full(n, INF) if idle_since is None else np.asarray(idle_since, float),
    )


def test_static_keeps_count():
    s = get_scaler(AutoscaleConfig())
    assert s.desired(obs(0, [100, 100], starting=1)) == 3


def test_kpa_stable_window_average():
    cfg = AutoscaleConfig(policy="kpa", target_concurrency=10, target_utilization=0.5)  # 5 per instance
    s = get_scaler(cfg)
    # constant concurrency 20 on 4 instances: desired ceil(20 / 5) = 4, no panic (4 < 2 x 4)
    for t in range(0, 60, 2):
        d = s.desired(obs(t, [5, 5, 5, 5]))
    assert d == 4


def test_kpa_panics_and_does_not_scale_down_while_panicking():
    cfg = AutoscaleConfig(policy="kpa", target_concurrency=10, target_utilization=0.5, max_instances=100)
    s = get_scaler(cfg)
    for t in range(0, 60, 2):
        s.desired(obs(t, [5, 5]))  # 10 total -> 2 instances
    # burst to 60 outstanding on 2 instances: panic window avg jumps, desired panic >= 2 x 2
    d = s.desired(obs(60, [30, 30]))
    assert d >= 4 and d == math.ceil(((10 * 2 + 60) / 3) / 5)  # panic window holds samples 56, 58, 60
    # load vanishes: while panicking (60 s) the count never drops
    d2 = s.desired(obs(62, [0, 0]))
    assert d2 >= d
    # after a full stable window without panic the count follows the (now low) stable average
    for t in range(64, 200, 2):
        d3 = s.desired(obs(t, [0, 0]))
    assert d3 == 0 and clamp(cfg, d3) == 1


def test_saturation_scales_up_only_when_all_saturated():
    s = get_scaler(AutoscaleConfig(policy="saturation", idle_timeout_s=30))
    assert s.desired(obs(0, [3, 3], kv=[0.9, 0.5], waiting=[0, 6])) == 3  # one by KV, one by queue
    assert s.desired(obs(0, [3, 3], kv=[0.9, 0.5], waiting=[0, 4])) == 2
    assert s.desired(obs(0, [3, 3], kv=[0.9, 0.9], starting=1)) == 3  # one already starting: wait
    assert s.desired(obs(100, [0, 0, 3], idle_since=[50, 80, INF])) == 2  # idle 50 s > 30 s -> drain one


def test_delayed_off():
    s = get_scaler(AutoscaleConfig(policy="delayed_off", target_concurrency=4, idle_timeout_s=20))
    assert s.desired(obs(0, [4, 4], waiting=[3, 6])) == 2 + 3  # 9 waiting / 4 -> 3 more
    assert s.desired(obs(0, [4, 2], waiting=[3, 0])) == 2  # instance 1 has spare concurrency
    assert s.desired(obs(100, [0, 0, 1], idle_since=[70, 90, INF])) == 2  # 30 s idle > tau, 10 s not


def test_threshold_hysteresis():
    s = get_scaler(AutoscaleConfig(policy="threshold", up_threshold=10, down_threshold=2))
    assert s.desired(obs(0, [12, 12])) == 3
    assert s.desired(obs(0, [5, 5])) == 2
    assert s.desired(obs(0, [1, 2])) == 1
    assert s.desired(obs(0, [1, 2], starting=1)) == 3  # no scale-down while starting


def test_drain_order_prefers_idle_longest():
    order = drain_order(np.array([0, 3, 0, 0]), np.array([50.0, INF, 10.0, 10.0]))
    assert order.tolist() == [2, 3, 0, 1]
