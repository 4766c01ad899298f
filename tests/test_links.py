"""Links with contention: closed forms of max-min fair sharing (workbench.sim.links)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.errors import ConfigError
from workbench.sim.engine import PRIO_CONTROL, Engine
from workbench.sim.links import GB, LINKS, Network, link_spec, max_min_rates


def _net(bw_gbps=10.0, latency=0.0):
    eng = Engine()
    net = Network(eng)
    link = net.add_link("l", bw_gbps, latency)
    return eng, net, link


def _record(out):
    return lambda flow, now: out.append((flow, now))


def test_single_flow_takes_latency_plus_size_over_bandwidth():
    eng, net, link = _net(bw_gbps=25.0, latency=7e-6)
    out = []
    net.transfer(3e9, (link,), _record(out))
    eng.run()
    assert out[0][1] == pytest.approx(7e-6 + 3e9 / 25e9, rel=1e-12)
    assert net.bytes_moved[link] == pytest.approx(3e9)
    assert net.busy_s[link] == pytest.approx(3e9 / 25e9)


@pytest.mark.parametrize("n", [1, 2, 3, 8, 50])
def test_n_equal_flows_each_take_n_times_size_over_bandwidth(n):
    eng, net, link = _net(bw_gbps=50.0, latency=5e-6)
    out = []
    size = 64 * 2**20
    for _ in range(n):
        net.transfer(size, (link,), _record(out))
    eng.run()
    assert len(out) == n
    for _, t in out:
        assert t == pytest.approx(5e-6 + n * size / 50e9, rel=1e-12)


def test_late_flow_shares_as_processor_sharing():
    # A: 10 GB from 0; B: 5 GB from 0.5 s, link 10 GB/s. Until 0.5 s A sends 5 GB alone; then both at 5 GB/s:
    # B needs 1 s (ends 1.5 s, A has 0 left at 1.5 s as well).
    eng, net, link = _net(bw_gbps=10.0)
    out = []
    net.transfer(10e9, (link,), lambda f, now: out.append(("A", now)))
    eng.schedule(
        0.5, PRIO_CONTROL, lambda _, now: net.transfer(5e9, (link,), lambda f, t: out.append(("B", t)))
    )
    eng.run()
    assert dict(out) == pytest.approx({"A": 1.5, "B": 1.5})
    # and a shorter late flow leaves first, after which the first gets the whole link back
    eng, net, link = _net(bw_gbps=10.0)
    out = []
    net.transfer(10e9, (link,), lambda f, now: out.append(("A", now)))
    eng.schedule(
        0.5, PRIO_CONTROL, lambda _, now: net.transfer(1e9, (link,), lambda f, t: out.append(("B", t)))
    )
    eng.run()
    # B at 5 GB/s: 0.2 s -> 0.7 s; A: 5 GB by 0.5 + 1 GB by 0.7, 4 GB left at 10 GB/s -> 1.1 s
    assert dict(out) == pytest.approx({"A": 1.1, "B": 0.7})


def test_max_min_on_two_links_gives_the_unconstrained_flow_the_rest():
    assert max_min_rates([10.0, 4.0], [[0], [0, 1], [1]]) == pytest.approx([8.0, 2.0, 2.0])
    # the classic parking lot: a long flow over 3 links, one short flow per link
    rates = max_min_rates([1.0, 1.0, 1.0], [[0, 1, 2], [0], [1], [2]])
    assert rates == pytest.approx([0.5, 0.5, 0.5, 0.5])


def test_two_link_path_is_limited_by_its_bottleneck_and_sums_latencies():
    eng = Engine()
    net = Network(eng)
    nic = net.add_link("nic", spec="cx7_400g")
    store = net.add_link("store", spec="mooncake_store")
    out = []
    net.transfer(1e9, (store, nic), _record(out))
    eng.run()
    expect = LINKS["cx7_400g"].latency_s + LINKS["mooncake_store"].latency_s + 1e9 / (50.0 * GB)
    assert out[0][1] == pytest.approx(expect, rel=1e-12)
    assert net.uncontended_time(1e9, (store, nic)) == pytest.approx(expect, rel=1e-12)


def test_store_is_shared_by_loads_to_many_nics():
    # 8 instances each load 1 GB from a 100 GB/s store over their own 50 GB/s NIC: the store is the
    # bottleneck (12.5 GB/s each) -> 8 x 1 GB / 100 GB/s = 0.08 s for all
    eng = Engine()
    net = Network(eng)
    store = net.add_link("store", 100.0, 0.0)
    nics = [net.add_link(f"nic{i}", 50.0, 0.0) for i in range(8)]
    out = []
    for nic in nics:
        net.transfer(1e9, (store, nic), _record(out))
    assert net.estimated_time(1e9, (store, nics[0])) == pytest.approx(1e9 / (100e9 / 9))
    eng.run()
    assert [t for _, t in out] == pytest.approx([0.08] * 8)


def test_zero_size_flow_is_delivered_after_latency_and_cancel_frees_bandwidth():
    eng, net, link = _net(bw_gbps=1.0, latency=0.25)
    out = []
    net.transfer(0.0, (link,), _record(out))
    big = net.transfer(10e9, (link,), _record(out))
    net.transfer(1e9, (link,), _record(out))
    eng.schedule(1.0, PRIO_CONTROL, lambda _, now: net.cancel(big))
    eng.run()
    # zero flow at 0.25; small flow: 0.5 GB by 1 s at half rate, then alone: 0.5 s more -> 1.5 + 0.25
    assert [t for _, t in out] == pytest.approx([0.25, 1.75])
    assert net.in_flight == 0


def test_bad_inputs_are_clear_errors():
    _eng, net, link = _net()
    with pytest.raises(ConfigError, match="already exists"):
        net.add_link("l", 1.0, 0.0)
    with pytest.raises(ConfigError, match="unknown link"):
        link_spec("carrier-pigeon")
    with pytest.raises(ConfigError, match="bandwidth_gbps"):
        net.add_link("m", 0.0, 0.0)
    with pytest.raises(Exception, match="finite"):
        net.transfer(math.nan, (link,), _record([]))
    with pytest.raises(ConfigError, match="no link"):
        net.link("x")


def test_every_default_link_cites_its_source():
    for name, spec in LINKS.items():
        assert spec.source, name
        assert spec.bandwidth_gbps > 0


@settings(max_examples=60, deadline=None)
@given(
    caps=st.lists(st.floats(0.5, 100.0), min_size=1, max_size=4),
    raw_paths=st.lists(
        st.lists(st.integers(0, 3), min_size=1, max_size=3, unique=True), min_size=1, max_size=8
    ),
)
def test_max_min_is_feasible_and_every_flow_has_a_saturated_bottleneck(caps, raw_paths):
    paths = [[link % len(caps) for link in p] for p in raw_paths]
    paths = [sorted(set(p)) for p in paths]
    rates = max_min_rates(caps, paths)
    load = [0.0] * len(caps)
    for r, p in zip(rates, paths, strict=True):
        assert r > 0
        for link in p:
            load[link] += r
    for link, c in enumerate(caps):
        assert load[link] <= c * (1 + 1e-9)
    # max-min: each flow crosses a saturated link on which it has the largest rate
    for f, p in enumerate(paths):
        assert any(
            load[link] >= caps[link] * (1 - 1e-9)
            and all(rates[g] <= rates[f] * (1 + 1e-9) for g, q in enumerate(paths) if link in q)
            for link in p
        )


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.floats(1e6, 1e9), min_size=1, max_size=12), bw=st.floats(1.0, 500.0))
def test_flows_started_together_on_one_link_finish_as_processor_sharing(sizes, bw):
    eng, net, link = _net(bw_gbps=bw)
    out = []
    for s in sizes:
        net.transfer(s, (link,), _record(out))
    eng.run()
    # processor sharing of jobs present at 0: the k-th smallest finishes at sum_{j<k} s_j + (n-k+1) s_k, / B
    order = sorted(sizes)
    n = len(order)
    expect = sorted(sum(order[:k]) + (n - k) * order[k] for k in range(n))
    got = sorted(t for _, t in out)
    assert got == pytest.approx([e / (bw * GB) for e in expect], rel=1e-9)
    assert sum(net.bytes_moved) == pytest.approx(sum(sizes), rel=1e-9)


def test_without_contention_every_flow_sees_its_path_alone():
    eng = Engine()
    net = Network(eng, contention=False)
    link = net.add_link("l", 10.0, 1e-3)
    out = []
    for _ in range(5):
        net.transfer(1e9, (link,), _record(out))
    eng.run()
    assert [t for _, t in out] == pytest.approx([0.1 + 1e-3] * 5)
    assert net.bytes_moved[link] == pytest.approx(5e9)
