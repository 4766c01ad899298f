"""Energy and cost of the KV hierarchy (workbench.power.kv, energy report, TCO)."""

from __future__ import annotations

import dataclasses

import polars as pl
import pytest

from workbench.power.energy import energy
from workbench.power.kv import hierarchy_capex, hierarchy_energy
from workbench.sim.fleet import simulate
from workbench.sim.kvtiers import TIERS, KVHierarchy
from workbench.sim.links import LINKS
from workbench.sim.result import SimResult
from workbench.sim.topology import monolithic
from workbench.tco import TcoInputs, tco
from workbench.traces import Fixed, Poisson, Sessions, Synthetic

TRACE = Synthetic(
    Poisson(3.0), Fixed(2500, 40), Sessions(mean_turns=6, think_s=15.0, block_tokens=512)
).generate(n=150, seed=7)
HIER = KVHierarchy(dram={"capacity_gb": 64}, ssd={"capacity_gb": 500}, store={"capacity_gb": 1000})


@pytest.fixture(scope="module")
def run():
    fleet = dataclasses.replace(monolithic(2, router="round_robin"), hierarchy=HIER)
    return simulate(TRACE, fleet)


def test_components_follow_capacity_power_and_bytes(run):
    kv = hierarchy_energy(run)
    powered = (
        run.segments.filter(pl.col("state") != "off")
        .group_by("instance")
        .agg((pl.col("end_s") - pl.col("start_s")).sum().alias("t"))
        .sort("instance")["t"]
        .to_list()
    )
    per = kv.filter(pl.col("instance") >= 0).sort("instance")
    assert per["dram_j"].to_list() == pytest.approx([64 * TIERS["dram"].idle_w_per_gb * t for t in powered])
    links = run.counters["kv_hierarchy"]["links"]
    assert kv["network_j"].sum() == pytest.approx(links["energy_j"].sum())
    h2d = links.filter(pl.col("link") == "0.pcie_h2d")
    assert h2d["energy_j"][0] == pytest.approx(h2d["bytes"][0] * LINKS["pcie5_x16"].energy_nj_per_byte * 1e-9)
    ssd_busy = links.filter(pl.col("link").str.starts_with("0.ssd"))["busy_s"].sum()
    ssd_idle = 500 * TIERS["ssd"].idle_w_per_gb * powered[0]
    assert per["ssd_j"][0] == pytest.approx(ssd_idle + TIERS["ssd"].active_w * ssd_busy)
    store = kv.filter(pl.col("instance") == -1)
    assert store["store_j"][0] == pytest.approx(1000 * 0.1 * run.counters["makespan_s"])
    assert (kv["kv_j"] >= 0).all() and kv["kv_j"].sum() > 0


def test_the_energy_report_adds_the_hierarchy(run):
    with_kv = energy(run)
    counters = {k: v for k, v in run.counters.items() if k != "kv_hierarchy"}
    gpu_only = energy(SimResult(run.requests, run.segments, run.instances, counters))
    kv = hierarchy_energy(run)
    assert with_kv.fleet["energy_j"][0] == pytest.approx(gpu_only.fleet["energy_j"][0] + kv["kv_j"].sum())
    assert with_kv.fleet["kv_j"][0] == pytest.approx(kv["kv_j"].sum())
    assert with_kv.by_instance["kv_j"].sum() == pytest.approx(kv.filter(pl.col("instance") >= 0)["kv_j"].sum())
    assert "kv_j" not in gpu_only.fleet.columns


def test_no_hierarchy_no_energy_and_no_change():
    plain = simulate(TRACE, monolithic(1))
    assert hierarchy_energy(plain).height == 0


def test_capex_of_a_dgx_h100_class_hierarchy_enters_the_tco():
    h = KVHierarchy(dram={}, ssd={})
    cap = hierarchy_capex(h, 8)
    assert cap["kv_capex_usd"] == pytest.approx(2048 * 4.0 + 8 * 3840 * 0.10)
    assert cap["kv_power_w"] == pytest.approx(2048 * 0.1 + 8 * 5.0)
    base = TcoInputs(n_gpus=8, gpu_price_usd=25_000, gpu_busy_w=600, gpu_idle_w=100)
    plain, priced = tco(base), tco(dataclasses.replace(base, **cap))
    assert priced["capex_usd"] - plain["capex_usd"] == pytest.approx(cap["kv_capex_usd"])
    assert priced["opex_energy_usd"] > plain["opex_energy_usd"]
    assert "KV hierarchy (host memory, SSDs, store)" in priced.breakdown["component"].to_list()
    assert "KV hierarchy (host memory, SSDs, store)" not in plain.breakdown["component"].to_list()
    store = hierarchy_capex(KVHierarchy(store={"capacity_gb": 1000}), 8)
    assert store["kv_capex_usd"] == pytest.approx(1000 * 4.0)
