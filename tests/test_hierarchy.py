"""KV hierarchy in the simulator: demotion, promotion (overlap / blocking), the store, P/D flows, TOML
(workbench.sim.hierarchy)."""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest

from workbench.errors import ConfigError
from workbench.sim import InstanceConfig, LinearPerfModel, SchedulerConfig, Simulation, simulate
from workbench.sim.fleet import simulate as fleet_simulate
from workbench.sim.hierarchy import TIER_COLUMNS, attach_hierarchy, finish_hierarchy
from workbench.sim.kvtiers import KVHierarchy
from workbench.sim.links import LINKS, LinkSpec
from workbench.sim.topology import Fleet, Pool, monolithic
from workbench.traces import Fixed, Poisson, Sessions, Synthetic

H = 512  # tokens per prefix block
ENTRY = H * 131072  # bytes of one entry of Llama-3.1-8B (128 KiB of KV per token)
CFG = InstanceConfig(perf=LinearPerfModel(), kv_capacity_tokens=8000, model="Llama-3.1-8B")


def _rows(*reqs):
    """Trace rows from (arrival, prompt, output, hashes or None)."""
    return pl.DataFrame(
        {
            "request_id": list(range(len(reqs))),
            "arrival_s": [r[0] for r in reqs],
            "prompt_tokens": [r[1] for r in reqs],
            "output_tokens": [r[2] for r in reqs],
            "prefix_hashes": [r[3] for r in reqs],
        },
        schema_overrides={"prefix_hashes": pl.List(pl.UInt64)},
    )


def _run(rows, hierarchy, cfg=CFG, n=1, audit=True):
    sim = Simulation(prefix_block_tokens=H)
    sim.audit = audit
    for _ in range(n):
        sim.add_instance(cfg)
    runtime = attach_hierarchy(sim, hierarchy, rows.height)
    return finish_hierarchy(sim.run(rows), runtime)


def _evicting_trace(second_prefix_at=10.0):
    """A computes blocks 1-4; B (no hashes) fills the GPU, evicting A's tail 2-4 (LRU, released tail first);
    C asks for 1-4 again: entry 1 is on the GPU, 2-4 must come from below."""
    return _rows(
        (0.0, 4 * H + 10, 2, [1, 2, 3, 4, 5]),
        (2.0, 7000, 2, None),
        (second_prefix_at, 4 * H + 10, 2, [1, 2, 3, 4, 9]),
    )


def test_a_demoted_prefix_loads_back_from_dram_in_latency_plus_size_over_bandwidth():
    res = _run(_evicting_trace(), KVHierarchy(dram={"capacity_gb": 1}))
    c = res.requests.row(2, named=True)
    pcie = LINKS["pcie5_x16"]
    assert c["kv_load_s"] == pytest.approx(pcie.latency_s + 3 * ENTRY / (pcie.bandwidth_gbps * 1e9), rel=1e-12)
    assert (c["gpu_hit_tokens"], c["dram_hit_tokens"], c["cached_tokens"]) == (H, 3 * H, 4 * H)
    base = _run(_evicting_trace(), None)
    assert base.requests["cached_tokens"][2] == H  # without the tier only the GPU's entry 1 is a hit
    # the request waited for its load, then prefilled 10 tokens instead of 3 x 512 + 10
    assert c["ttft_s"] < base.requests["ttft_s"][2]
    tiers = res.counters["kv_hierarchy"]["tiers"]
    assert tiers.filter(pl.col("tier") == "dram")["hits"][0] == 3
    links = res.counters["kv_hierarchy"]["links"]
    assert links.filter(pl.col("link") == "0.pcie_h2d")["bytes"][0] == pytest.approx(3 * ENTRY)
    assert links.filter(pl.col("link") == "0.pcie_d2h")["bytes"][0] >= 3 * ENTRY  # the demotions


def test_an_ssd_load_crosses_the_drive_and_pcie():
    # no DRAM tier: evictions go straight to the SSD, loads cross the NVMe read link then PCIe
    res = _run(_evicting_trace(), KVHierarchy(ssd={"capacity_gb": 1}))
    c = res.requests.row(2, named=True)
    nvme, pcie = LINKS["nvme_gen4_read"], LINKS["pcie5_x16"]
    expect = nvme.latency_s + pcie.latency_s + 3 * ENTRY / (nvme.bandwidth_gbps * 1e9)
    assert c["kv_load_s"] == pytest.approx(expect, rel=1e-12)
    assert c["ssd_hit_tokens"] == 3 * H


def test_blocking_promotion_stalls_the_batch_by_the_load_time():
    # D decodes for a long time; C's load either overlaps D's decoding (overlap) or stalls it (blocking)
    rows = _rows(
        (0.0, 4 * H + 10, 2, [1, 2, 3, 4, 5]),
        (2.0, 7000, 2, None),
        (9.0, 100, 400, None),  # D
        (10.0, 4 * H + 10, 2, [1, 2, 3, 4, 9]),  # C
    )
    over = _run(rows, KVHierarchy(dram={"capacity_gb": 1}))
    block = _run(rows, KVHierarchy(dram={"capacity_gb": 1}, promotion="blocking"))
    load = LINKS["pcie5_x16"].latency_s + 3 * ENTRY / 64e9
    for res in (over, block):
        assert res.requests["kv_load_s"][3] == pytest.approx(load, rel=1e-12)
        assert res.requests["dram_hit_tokens"][3] == 3 * H
    # D's tokens are the same work in both; blocking adds exactly the stall to its finish
    assert block.requests["finish_s"][2] - over.requests["finish_s"][2] == pytest.approx(load, rel=1e-6)


def test_the_store_shares_prefixes_across_instances():
    rows = _rows((0.0, 4 * H + 10, 2, [1, 2, 3, 4, 5]), (5.0, 4 * H + 10, 2, [1, 2, 3, 4, 9]))
    res = _run(rows, KVHierarchy(store={"capacity_gb": 10}), n=2)  # round robin: A on 0, C on 1
    c = res.requests.row(1, named=True)
    assert c["instance"] == 1 and c["store_hit_tokens"] == 4 * H
    nic, store = LINKS["cx7_400g"], LINKS["mooncake_store"]
    expect = nic.latency_s + store.latency_s + 4 * ENTRY / (nic.bandwidth_gbps * 1e9)  # the NIC is slower
    assert c["kv_load_s"] == pytest.approx(expect, rel=1e-12)
    # without the store the second instance recomputes everything
    assert _run(rows, None, n=2).requests["cached_tokens"][1] == 0


def test_loads_from_the_store_share_its_bandwidth():
    # two instances load 4 entries each at the same time through a 50 GB/s store: each takes 2 x 4 x entry
    rows = _rows(
        (0.0, 4 * H + 10, 2, [1, 2, 3, 4, 5]),
        (5.0, 4 * H + 10, 2, [1, 2, 3, 4, 7]),
        (5.0, 4 * H + 10, 2, [1, 2, 3, 4, 8]),
    )
    spec = LinkSpec(50.0, 0.0)
    h = KVHierarchy(store={"capacity_gb": 10, "link": spec}, nic=LinkSpec(100.0, 0.0))
    res = _run(rows, h, n=3)  # round robin: 0, 1, 2
    assert res.requests["kv_load_s"].to_list()[1:] == pytest.approx([2 * 4 * ENTRY / 50e9] * 2, rel=1e-12)
    alone = _run(rows, dataclasses.replace(h, contention=False), n=3)
    assert alone.requests["kv_load_s"].to_list()[1:] == pytest.approx([4 * ENTRY / 50e9] * 2, rel=1e-12)


def test_no_tiers_and_no_store_leave_every_result_unchanged():
    trace = Synthetic(
        Poisson(3.0), Fixed(1500, 40), Sessions(mean_turns=4, think_s=5.0, block_tokens=H)
    ).generate(n=200, seed=2)
    cfg = dataclasses.replace(CFG, kv_capacity_tokens=30_000)
    base = simulate(trace, cfg)
    same = simulate(trace, cfg, hierarchy=KVHierarchy())
    assert same.requests.drop(TIER_COLUMNS).equals(base.requests)
    assert same.requests["gpu_hit_tokens"].equals(same.requests["cached_tokens"].cast(pl.Int64))
    tiered = simulate(trace, cfg, hierarchy=KVHierarchy(dram={"capacity_gb": 2}))
    hit = lambda r: r.requests["cached_tokens"].sum() / r.requests["prompt_tokens"].sum()  # noqa: E731
    assert hit(tiered) > hit(base) + 0.05
    q = tiered.requests
    assert (q["gpu_hit_tokens"] + q["dram_hit_tokens"] + q["ssd_hit_tokens"] + q["store_hit_tokens"]).equals(
        q["cached_tokens"].cast(pl.Int64)
    )


@pytest.mark.parametrize("promotion", ["overlap", "blocking"])
def test_bookkeeping_holds_with_every_tier_under_pressure(promotion):
    trace = Synthetic(
        Poisson(4.0), Fixed(2000, 30), Sessions(mean_turns=6, think_s=8.0, block_tokens=H)
    ).generate(n=250, seed=5)
    cfg = dataclasses.replace(CFG, kv_capacity_tokens=30_000)
    h = KVHierarchy(dram={"capacity_gb": 1}, ssd={"capacity_gb": 2}, store={"capacity_gb": 4, "write": "evict"},
                    promotion=promotion)  # fmt: skip
    rows = trace.requests.filter(pl.col("prompt_tokens") < 25_000)
    res = _run(rows, h, cfg, n=2)  # audit between every step
    q = res.requests
    assert not q["rejected"].any() and q["finish_s"].is_not_null().all()
    assert (q.select(pl.col("^.*_hit_tokens$").sum()).row(0)) and q["ssd_hit_tokens"].sum() > 0
    assert (q["kv_load_s"] >= 0).all() and (q["gpu_hit_tokens"] >= 0).all()


def test_pd_transfer_is_a_flow_over_the_nics():
    rows = _rows((0.0, 4000, 20, None))
    fleet = Fleet(pools=(Pool("p", role="prefill"), Pool("d", role="decode")), interconnect="infiniband")
    plain = fleet_simulate(rows, fleet).requests.row(0, named=True)
    net = fleet_simulate(rows, dataclasses.replace(fleet, hierarchy=KVHierarchy(gpus_per_node=1)))
    flow = net.requests.row(0, named=True)
    # same 50 GB/s; the flow crosses two NICs (5 us each), the fixed link has one 5 us latency
    assert flow["finish_s"] - plain["finish_s"] == pytest.approx(5e-6, rel=1e-6)
    assert flow["kv_transfer_s"] == pytest.approx(1e-5 + 4001 * 131072 / 50e9, rel=1e-12)
    assert net.counters["kv_hierarchy"]["pd_transfers"] == 1
    # in one node it goes over NVLink (450 GB/s): faster than the NICs
    node = fleet_simulate(rows, dataclasses.replace(fleet, hierarchy=KVHierarchy()))
    assert node.requests["finish_s"][0] < flow["finish_s"]


def test_pd_transfers_into_one_decode_instance_share_its_nic():
    rows = _rows((0.0, 4000, 20, None), (0.0, 4000, 20, None))
    fleet = Fleet(pools=(Pool("p", role="prefill", instances=2), Pool("d", role="decode")),
                  hierarchy=KVHierarchy(gpus_per_node=1))  # fmt: skip
    shared = fleet_simulate(rows, fleet)
    alone = fleet_simulate(
        rows, dataclasses.replace(fleet, hierarchy=KVHierarchy(gpus_per_node=1, contention=False))
    )
    size = 4001 * 131072
    # both prefills end together; sharing the decode NIC doubles the time their KV takes to arrive
    assert shared.requests["finish_s"].max() - alone.requests["finish_s"].max() == pytest.approx(
        size / 50e9, rel=0.05
    )


def test_fleet_toml_with_a_hierarchy(tmp_path):
    path = tmp_path / "fleet (kv).toml"
    path.write_text(
        'router = "jsq"\n[[pools]]\nname = "main"\ninstances = 2\nrouter = "kv_aware"\n'
        '[hierarchy]\npromotion = "overlap"\n[hierarchy.dram]\ncapacity_gb = 64\n[hierarchy.store]\n'
        'capacity_gb = 512\nwrite = "prefill"\n'
    )
    fleet = Fleet.from_toml(path)
    assert fleet.hierarchy.tiers == ("dram",) and fleet.hierarchy.store.capacity_gb == 512
    trace = Synthetic(
        Poisson(2.0), Fixed(1200, 20), Sessions(mean_turns=4, think_s=3.0, block_tokens=H)
    ).generate(n=60, seed=1)
    res = fleet_simulate(trace, fleet)
    assert set(TIER_COLUMNS) <= set(res.requests.columns)
    path.write_text('[[pools]]\nname = "main"\n[hierarchy]\npromotion = "eventually"\n')
    with pytest.raises(ConfigError, match="promotion"):
        Fleet.from_toml(path)


def test_a_store_serves_one_model():
    fleet = Fleet(pools=(Pool("a"), Pool("b", model="Llama-2-7B")), router="jsq",
                  hierarchy=KVHierarchy(store={}))  # fmt: skip
    with pytest.raises(ConfigError, match="one store serves one model"):
        fleet_simulate(_rows((0.0, 100, 2, None)), fleet)


def test_a_dram_tier_raises_the_hit_rate_of_a_fleet_that_routes_blind_to_caches():
    # round robin sends a session's turns to every instance in turn: the GPU cache of each loses them, the
    # DRAM tier keeps them (a cache-aware router changes its choices with the hits, so it is not used here)
    trace = Synthetic(
        Poisson(6.0), Fixed(3000, 30), Sessions(mean_turns=8, think_s=20.0, block_tokens=H)
    ).generate(n=400, seed=3)
    base = monolithic(2, router="round_robin", scheduler=SchedulerConfig(max_num_seqs=64))
    tiers = dataclasses.replace(base, hierarchy=KVHierarchy(dram={"capacity_gb": 16}))
    r0, r1 = fleet_simulate(trace, base), fleet_simulate(trace, tiers)
    assert r1.requests["cached_tokens"].sum() > 1.03 * r0.requests["cached_tokens"].sum()
    assert r1.requests["dram_hit_tokens"].sum() > 0
    assert np.isfinite(r1.requests["kv_load_s"].to_numpy()).all()
