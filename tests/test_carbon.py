"""Sites, carbon (constant and hourly), water, embodied carbon and the Green-LLM choice."""

from __future__ import annotations

import math

import polars as pl
import pytest

from workbench.carbon import (
    USD_PER_EUR,
    choose_site,
    compare_sites,
    diurnal_profile,
    embodied_carbon_kg,
    footprint,
    footprint_of,
    operational_carbon_kg,
    per_mtok,
    site,
    water_l,
)
from workbench.config import PUE_RANGE
from workbench.errors import ConfigError


def test_site_joins_region_and_facility() -> None:
    us = site("us-avg")
    assert (us.grid_gco2e_per_kwh, us.pue, us.wue_l_per_kwh, us.electricity_usd_per_kwh) == (
        370,
        1.56,
        1.8,
        0.0806,
    )
    fi = site("finland")  # PUE/WUE from the default facility profile, EUR price converted
    assert fi.pue == 1.56 and fi.electricity_usd_per_kwh == pytest.approx(0.089 * USD_PER_EUR)
    g = site("france", facility="google-fleet-2023", electricity_usd_per_kwh=0.1)
    assert g.name == "france+google-fleet-2023" and g.pue == 1.10 and g.grid_gco2e_per_kwh == 56


def test_site_errors() -> None:
    with pytest.raises(ConfigError, match="unknown site 'atlantis'"):
        site("atlantis")
    with pytest.raises(ConfigError, match="pue"):
        site("us-avg", pue=0.95)
    with pytest.raises(ConfigError, match="electricity_usd_per_kwh"):
        site("us-avg", electricity_usd_per_kwh=-0.1)
    with pytest.raises(ConfigError, match="unknown Site field"):
        site("us-avg", price=1.0)
    with pytest.raises(ConfigError, match="site 'france' has no electricity_usd_per_kwh"):
        site("france").need("electricity_usd_per_kwh")


def test_operational_carbon_constant_and_hourly() -> None:
    s = site("germany", pue=1.2)
    assert operational_carbon_kg(1000.0, s) == pytest.approx(1000 * 1.2 * 381 / 1000)
    prof = site("germany", pue=1.2, carbon_profile=[100.0, 300.0])
    assert prof.grid_gco2e_per_kwh == 200.0  # mean of the profile
    # hours 0..2 at 100, 300, 100 g/kWh (profile repeats)
    assert operational_carbon_kg([10.0, 20.0, 30.0], prof) == pytest.approx(
        (10 * 100 + 20 * 300 + 30 * 100) * 1.2 / 1000
    )
    assert operational_carbon_kg([10.0, 20.0, 30.0], prof, start_hour=1) == pytest.approx(
        (10 * 300 + 20 * 100 + 30 * 300) * 1.2 / 1000
    )
    day = diurnal_profile(400.0, 100.0, low_hour=13)
    assert len(day) == 24 and min(day) == pytest.approx(300.0) and day[13] == pytest.approx(300.0)


def test_water_embodied_and_footprint() -> None:
    s = site("us-avg", offsite_water_l_per_kwh=2.0)
    assert water_l(100.0, s) == pytest.approx((180.0, 100.0 * 1.56 * 2.0))
    assert embodied_carbon_kg(8, 8760.0, kg_per_gpu=1500.0, lifetime_years=4) == pytest.approx(8 * 1500 / 4)
    with pytest.raises(ConfigError, match="lifetime_years"):
        embodied_carbon_kg(8, 10.0, kg_per_gpu=1.0, lifetime_years=0)
    f = footprint(100.0, s, n_gpus=8, hours=876.0, embodied_kg_per_gpu=1000.0, lifetime_years=5).row(
        0, named=True
    )
    assert f["facility_kwh"] == pytest.approx(156.0)
    assert f["energy_cost_usd"] == pytest.approx(156.0 * 0.0806)
    assert f["operational_kgco2e"] == pytest.approx(156.0 * 0.370)
    assert f["embodied_kgco2e"] == pytest.approx(8 * 1000 * 876 / (5 * 8760))
    assert f["total_kgco2e"] == pytest.approx(f["operational_kgco2e"] + f["embodied_kgco2e"])


def _candidates() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "name": ["A", "B", "C", "D"],
            "cost_usd": [100.0, 103.0, 104.0, 150.0],
            "carbon_kg": [50.0, 20.0, 21.0, 1.0],
            "delay_s": [0.01, 0.08, 0.02, 0.0],
            "water_l": [10.0, 500.0, 30.0, 5.0],
        }
    )


def test_choose_site_lexicographic() -> None:
    # cost within 5 % of 100 keeps A, B, C; carbon within 10 % of 20 keeps B, C; lowest delay -> C
    out = choose_site(_candidates(), cost_tol=0.05, carbon_tol=0.10)
    assert out.filter("chosen")["name"].to_list() == ["C"]
    assert out.filter("cost_ok")["name"].sort().to_list() == ["A", "B", "C"]
    assert out.filter("carbon_ok")["name"].sort().to_list() == ["B", "C"]
    # zero tolerance: cheapest wins outright
    assert choose_site(_candidates(), cost_tol=0.0).filter("chosen")["name"][0] == "A"
    # a 20 L water cap removes B and C; of A and D, only A is within 5 % of the cheapest
    assert (
        choose_site(_candidates(), cost_tol=0.05, carbon_tol=0.10, water_cap_l=20.0).filter("chosen")["name"][0]
        == "A"
    )
    with pytest.raises(ConfigError, match="water cap"):
        choose_site(_candidates(), water_cap_l=1.0)


def test_compare_sites_feeds_choice() -> None:
    sites = [site("us-avg"), site("finland"), site("cyprus")]
    cand = compare_sites(1000.0, sites, delay_s={"finland": 0.05})
    assert cand["cost_usd"].to_list() == pytest.approx(
        [1560 * 0.0806, 1560 * 0.089 * USD_PER_EUR, 1560 * 0.276 * USD_PER_EUR]
    )
    pick = choose_site(cand, cost_tol=0.25, carbon_tol=0.05)
    assert pick.filter("chosen")["name"][0] == "finland"  # 21 % dearer than us-avg, 4.7x less carbon
    with pytest.raises(ConfigError, match="has no electricity_usd_per_kwh"):
        compare_sites(1.0, [site("france")])
    assert math.isnan(site("france").electricity_usd_per_kwh)


def test_site_chart_spec() -> None:
    from workbench.viz.energy import site_tradeoff

    spec = site_tradeoff(choose_site(_candidates(), cost_tol=0.05, carbon_tol=0.10)).to_dict()
    points, labels = spec["layer"]
    assert points["encoding"]["x"]["field"] == "cost_usd" and labels["encoding"]["text"]["field"] == "name"
    rows = next(iter(spec["datasets"].values()))
    assert [r["name"] for r in rows if r["chosen"]] == ["C"]


def _one_instance_run(end_s: float, output_tokens: int):
    """A SimResult of one 2-GPU instance busy from 0 to ``end_s`` that finished one request."""
    from workbench.sim.result import INSTANCE_SCHEMA, REQUEST_SCHEMA, SEGMENT_SCHEMA, SimResult

    seg = pl.DataFrame(
        {
            "instance": [0],
            "start_s": [0.0],
            "end_s": [end_s],
            "state": ["busy"],
            "batch_size": [8],
            "prefill_tokens": [0],
            "kv_blocks_used": [0],
            "iterations": [1],
        },
        schema=SEGMENT_SCHEMA,
    )
    inst = pl.DataFrame(
        [(0, "p", "H100-SXM", "Llama-3.1-8B", 2, 2.0, 1000)], schema=list(INSTANCE_SCHEMA), orient="row"
    ).cast(INSTANCE_SCHEMA)  # type: ignore[arg-type]
    rows = {k: [None] for k in REQUEST_SCHEMA} | {
        "request_id": [0],
        "instance": [0],
        "pool": ["p"],
        "output_tokens": [output_tokens],
        "finish_s": [end_s],
        "rejected": [False],
    }
    return SimResult(pl.DataFrame(rows, schema=REQUEST_SCHEMA), seg, inst)


def test_footprint_of_a_simulation_hour_by_hour() -> None:
    from workbench.power import InstancePower, LogisticPower, energy

    res = _one_instance_run(5400.0, 1_000_000)  # 1.5 h
    flat = InstancePower(LogisticPower(400.0, 400.0, 1.0, 0.0), idle_w=100.0, n_gpus=2.0)
    report = energy(res, power={0: flat})  # 800 W: 0.8 kWh in hour 0, 0.4 kWh in hour 1
    s = site("germany", pue=1.25, carbon_profile=[100.0, 300.0])
    f = footprint_of(report, s, embodied_kg_per_gpu=1000.0, lifetime_years=4.0).row(0, named=True)
    assert f["it_kwh"] == pytest.approx(1.2) and f["hours"] == pytest.approx(1.5)
    assert f["operational_kgco2e"] == pytest.approx((0.8 * 100 + 0.4 * 300) * 1.25 / 1000)
    assert f["embodied_kgco2e"] == pytest.approx(2 * 1000.0 * 1.5 / (4 * 8760))
    assert f["water_onsite_l"] == pytest.approx(1.2 * 1.8)
    assert f["kgco2e_per_mtok"] == pytest.approx(f["total_kgco2e"])  # one million tokens
    assert f["water_l_per_mtok"] == pytest.approx(f["water_total_l"])
    assert math.isnan(footprint_of(_one_instance_run(10.0, 0), s)["kgco2e_per_mtok"][0])
    # from the SimResult directly (default power curves, the site's PUE)
    g = footprint_of(res, site("germany")).row(0, named=True)
    assert g["it_kwh"] == pytest.approx(energy(res).fleet["it_kwh"][0])
    assert g["operational_kgco2e"] == pytest.approx(g["it_kwh"] * 1.56 * 0.381)


def test_pue_bound_is_one_rule() -> None:
    from workbench.power import energy
    from workbench.tco import TcoInputs

    res = _one_instance_run(10.0, 10)
    assert PUE_RANGE == (1.0, 5.0)
    energy(res, pue=5.0)
    site("us-avg", pue=5.0)
    TcoInputs(n_gpus=1, gpu_price_usd=1.0, gpu_busy_w=2.0, gpu_idle_w=1.0, pue=5.0)
    for build in (
        lambda: energy(res, pue=5.01),
        lambda: site("us-avg", pue=5.01),
        lambda: TcoInputs(n_gpus=1, gpu_price_usd=1.0, gpu_busy_w=2.0, gpu_idle_w=1.0, pue=5.01),
    ):
        with pytest.raises(ConfigError, match=r"pue must be in \[1.0, 5.0\]"):
            build()


def test_per_mtok_is_the_one_intensity_rule() -> None:
    f = footprint(1000.0, site("germany"))
    out = per_mtok(f, 2_000_000).row(0, named=True)
    assert out["kgco2e_per_mtok"] == pytest.approx(out["total_kgco2e"] / 2)
    assert out["water_l_per_mtok"] == pytest.approx(out["water_total_l"] / 2)
    assert per_mtok(f, 0).columns == [*f.columns, "kgco2e_per_mtok", "water_l_per_mtok"]
    assert math.isnan(per_mtok(f, 0)["kgco2e_per_mtok"][0])
    assert math.isnan(per_mtok(f, -1)["water_l_per_mtok"][0])
