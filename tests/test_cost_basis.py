"""The one cost basis (:class:`workbench.tco.CostBasis`), its Wattlytics running costs and heat-reuse
credit, and the one GPU-hour pricer (:func:`workbench.tco.gpu_hour_usd`)."""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest

from workbench.errors import ConfigError, HardwareError
from workbench.power.energy import instance_power
from workbench.tco import (
    HEAT_REUSE_USD_PER_KWH,
    CostBasis,
    TcoInputs,
    annuity,
    gpu_hour_usd,
    tco,
)
from workbench.whatif import ModeCosts, fleet_metrics, plan

# one node of 8 GPUs: 8 x 400 W + 500 W = 3.7 kW IT at full utilisation
BASE = TcoInputs(n_gpus=8, gpu_price_usd=25_000.0, gpu_busy_w=400.0, gpu_idle_w=400.0, utilisation=1.0)
IT_KW = 8 * 0.4 + 0.5
CAP = pl.DataFrame(
    {
        "gpu": ["H100"],
        "tp": [2],
        "gpus_per_node": [8],
        "requests_per_s": [2.0],
        "tokens_per_s": [400.0],
        "busy_w": [600.0],
        "idle_w": [150.0],
    }
)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"kind": "lease"}, "CostBasis.kind"),
        ({"site": "mars"}, "CostBasis.site"),
        ({"utilisation": 1.5}, "CostBasis.utilisation"),
        ({"lifetime_years": 0.0}, "CostBasis.lifetime_years"),
        ({"discount_rate": 2.0}, "CostBasis.discount_rate"),
        ({"pue": 0.8}, "CostBasis.pue"),
        ({"electricity_usd_per_kwh": -0.1}, "CostBasis.electricity_usd_per_kwh"),
        ({"node_power_w": float("nan")}, "CostBasis.node_power_w"),
        ({"subscription_usd_per_year": -1.0}, "CostBasis.subscription_usd_per_year"),
        ({"depreciation_usd_per_year": float("inf")}, "CostBasis.depreciation_usd_per_year"),
        ({"heat_reuse_fraction": 1.1}, "CostBasis.heat_reuse_fraction"),
        ({"heat_reuse_usd_per_kwh": -0.01}, "CostBasis.heat_reuse_usd_per_kwh"),
        ({"gpu_price_usd": {"H100": 0.0}}, r"CostBasis.gpu_price_usd\['H100'\]"),
        ({"usd_per_gpu_hr": {"H100": -2.0}}, r"CostBasis.usd_per_gpu_hr\['H100'\]"),
        (
            {"usd_per_gpu_hr": {"h100": 2.0, "H100-SXM": 2.5}},
            r"CostBasis.usd_per_gpu_hr prices 'H100-SXM' twice",
        ),
        ({"gpu_price_usd": [("H100", 1.0)]}, "CostBasis.gpu_price_usd must be a dict"),
    ],
)
def test_validation_names_the_field(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        CostBasis(**kwargs)


def test_unknown_gpu_and_tco_inputs_validation():
    with pytest.raises(HardwareError, match="Q100"):
        CostBasis(gpu_price_usd={"Q100": 1.0})
    with pytest.raises(ConfigError, match="heat_reuse_fraction"):
        TcoInputs(n_gpus=1, gpu_price_usd=1.0, gpu_busy_w=2.0, gpu_idle_w=1.0, heat_reuse_fraction=-0.1)
    with pytest.raises(ConfigError, match="inefficiency_usd_per_year"):
        TcoInputs(n_gpus=1, gpu_price_usd=1.0, gpu_busy_w=2.0, gpu_idle_w=1.0, inefficiency_usd_per_year=-1.0)


def test_defaults_and_site_resolution():
    basis = CostBasis()
    assert (basis.kind, basis.site, basis.utilisation, basis.lifetime_years) == ("cloud", "us-avg", 0.6, 5.0)
    assert basis.facility_pue == 1.56 and basis.electricity == pytest.approx(0.0806)  # us-avg row of sites.csv
    assert basis.place().pue == 1.56
    given = CostBasis(pue=1.2, electricity_usd_per_kwh=0.2)
    assert (given.facility_pue, given.electricity, given.place().pue) == (1.2, 0.2, 1.2)
    # GPU names are canonical once, at construction; the basis hashes (a cache key) and compares by value
    keyed = CostBasis(gpu_price_usd={"h100": 30_000.0})
    assert keyed.gpu_price_usd == {"H100-SXM": 30_000.0} and keyed.purchase_price("H100") == 30_000.0
    assert hash(keyed) == hash(CostBasis(gpu_price_usd={"H100-SXM": 30_000.0}))
    assert keyed == CostBasis(gpu_price_usd={"H100-SXM": 30_000.0})
    with pytest.raises(ConfigError, match=r"'H200-SXM' has no purchase price.*CostBasis\(gpu_price_usd="):
        basis.purchase_price("H200")


def test_running_costs_closed_form():
    """Wattlytics: lifetime x (depreciation + subscription + inefficiency), per system, in opex."""
    run = dataclasses.replace(
        BASE,
        depreciation_usd_per_year=1_000.0,
        subscription_usd_per_year=2_000.0,
        inefficiency_usd_per_year=500.0,
    )
    base, res = tco(BASE), tco(run)
    assert res["opex_running_usd"] == pytest.approx(5 * 3_500.0)
    assert res["tco_usd"] - base["tco_usd"] == pytest.approx(17_500.0)
    assert res["capex_usd"] == base["capex_usd"]
    # discounted like every other recurring cost
    disc = tco(dataclasses.replace(run, discount_rate=0.05))
    assert disc["opex_running_usd"] == pytest.approx(3_500.0 * annuity(5.0, 0.05))
    # a per-system cost: the same for 8 and 16 GPUs
    assert tco(dataclasses.replace(run, n_gpus=16))["opex_running_usd"] == pytest.approx(17_500.0)
    row = res.breakdown.filter(pl.col("component").str.starts_with("running costs"))
    assert row["usd"].to_list() == [pytest.approx(17_500.0)] and row["kind"].to_list() == ["opex"]


def test_heat_reuse_credit_closed_form():
    """Wattlytics nets f x heat price from the electricity price of the facility energy."""
    heat = dataclasses.replace(BASE, heat_reuse_fraction=0.5, heat_reuse_usd_per_kwh=0.04)
    base, res = tco(BASE), tco(heat)
    facility_kwh = 1.2 * IT_KW * 8760.0 * 5  # default PUE 1.2
    assert res["facility_kwh"] == pytest.approx(facility_kwh)
    assert res["opex_heat_reuse_usd"] == pytest.approx(-0.5 * 0.04 * facility_kwh)
    assert res["tco_usd"] == pytest.approx(base["tco_usd"] - 0.5 * 0.04 * facility_kwh)
    # the same as an electricity price lowered by f x heat price (Wattlytics' form)
    net = tco(dataclasses.replace(BASE, electricity_usd_per_kwh=0.0806 - 0.5 * 0.04))
    assert res["tco_usd"] == pytest.approx(net["tco_usd"])
    assert res.breakdown.filter(pl.col("component") == "heat-reuse credit")["usd"][0] < 0
    # Wattlytics' revenue default (EUR 0.01/kWh) with its factor 0: no credit and no breakdown row
    assert HEAT_REUSE_USD_PER_KWH == pytest.approx(0.011) and base["opex_heat_reuse_usd"] == 0.0
    assert base.breakdown["component"].to_list() == [
        "GPUs",
        "servers, infrastructure, facility",
        "software",
        "electricity (x PUE)",
        "maintenance",
    ]


def test_basis_builds_tco_inputs():
    basis = CostBasis(pue=1.3, electricity_usd_per_kwh=0.1, lifetime_years=4.0, subscription_usd_per_year=900.0)
    inputs = basis.tco_inputs("H100", 16, busy_w=600.0, idle_w=150.0, tokens_per_s_per_gpu=100.0)
    assert (inputs.pue, inputs.electricity_usd_per_kwh, inputs.lifetime_years) == (1.3, 0.1, 4.0)
    assert inputs.gpu_price_usd == CostBasis().purchase_price("H100") and inputs.gpus_per_node == 8
    assert inputs.subscription_usd_per_year == 900.0 and inputs.utilisation == 0.6


def test_gpu_hour_pricer_takes_the_model():
    cloud = CostBasis()
    # a rental price does not depend on the model
    assert gpu_hour_usd("H100", cloud, "Llama-3.1-8B", 1) == gpu_hour_usd("H100", cloud, "Qwen3-32B", 1) == 2.99
    assert gpu_hour_usd("h100", CostBasis(usd_per_gpu_hr={"H100-SXM": 2.0}), "Llama-3.1-8B", 1) == 2.0
    owned = CostBasis(kind="tco")
    small = gpu_hour_usd("H100", owned, "Llama-3.1-8B", 1)
    large = gpu_hour_usd("H100", owned, "Qwen3-32B", 1)
    # the larger model draws more power per GPU at the same batch, so its owned GPU-hour costs more ...
    p_small = float(instance_power("H100-SXM", "Llama-3.1-8B", 1).curve(64.0))
    p_large = float(instance_power("H100-SXM", "Qwen3-32B", 1).curve(64.0))
    assert p_large > p_small and large > small
    # ... by exactly the energy of the extra busy power: u x (dP / 1000) kW x PUE x USD/kWh per GPU-hour
    assert large - small == pytest.approx(0.6 * (p_large - p_small) / 1000 * 1.56 * 0.0806, rel=1e-9)
    assert 0.3 < small < 2.99  # owning over 5 years is cheaper than renting
    with pytest.raises(ConfigError, match="per-system costs with no per-GPU-hour share"):
        gpu_hour_usd("H100", CostBasis(kind="tco", depreciation_usd_per_year=1.0), "Llama-3.1-8B", 1)
    assert gpu_hour_usd("H100", cloud) == 2.99  # no model needed to rent
    with pytest.raises(ConfigError, match="prices the model's power: give model"):
        gpu_hour_usd("H100", owned)
    # B200 has no on-demand rate in the table: its second reference rate prices it
    assert gpu_hour_usd("B200", cloud, "Llama-3.1-8B", 1) == 8.0


def test_planning_modes_compose_the_basis():
    basis = CostBasis(pue=1.2, gpu_price_usd={"H100": 25_000.0})
    bare = plan("count", 16, CAP, costs=basis)
    wrapped = plan("count", 16, CAP, costs=ModeCosts(basis))
    assert bare.equals(wrapped)
    # the modes' TCO is tco()'s on the same basis
    one = tco(basis.tco_inputs("H100", 16, busy_w=600.0, idle_w=150.0, tokens_per_s_per_gpu=0.0))
    assert bare["tco_usd"][0] == pytest.approx(one["tco_usd"])
    # per-system running costs add lifetime x cost to the fleet's TCO; a heat credit lowers it
    run = dataclasses.replace(basis, subscription_usd_per_year=10_000.0)
    m = fleet_metrics(CAP.row(0, named=True), ModeCosts(run), np.array([16]))
    assert m["tco_usd"][0] == pytest.approx(bare["tco_usd"][0] + 5 * 10_000.0)
    with pytest.raises(ConfigError, match=r"ModeCosts\.basis must be a CostBasis"):
        ModeCosts("cheap")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"ModeCosts\.eta_node"):
        ModeCosts(basis, eta_node=0.0)
