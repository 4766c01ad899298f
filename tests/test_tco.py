"""TCO: a golden example computed by hand, NPV, cloud break-even, fleet_tco wiring and bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from workbench.carbon import site
from workbench.errors import ConfigError, HardwareError
from workbench.power import idle_power_w, power_curve
from workbench.tco import TcoInputs, annuity, break_even_utilisation, fleet_tco, tco, throughput_per_gpu

GOLDEN = TcoInputs(
    n_gpus=16,
    gpu_price_usd=30_000.0,
    gpu_busy_w=600.0,
    gpu_idle_w=100.0,
    utilisation=0.5,
    tokens_per_s_per_gpu=1000.0,
    electricity_usd_per_kwh=0.10,
    pue=1.5,
    lifetime_years=4.0,
    gpus_per_node=8,
    server_usd_per_node=20_000.0,
    infra_usd_per_node=16_500.0,
    facility_usd_per_node=1_000.0,
    software_usd=5_000.0,
    node_power_w=500.0,
    maintenance_usd_per_node_year=220.0,
    cloud_usd_per_gpu_hr=2.0,
)


def test_golden_tco_by_hand() -> None:
    r = tco(GOLDEN)
    # capex: 16 GPUs x 30k + 2 nodes x (20k + 16.5k + 1k) + 5k software
    capex = 16 * 30_000 + 2 * (20_000 + 16_500 + 1_000) + 5_000
    assert capex == 560_000
    # power per GPU at 50 % utilisation: 100 + 0.5 x (600 - 100) = 350 W; IT = 16 x 350 + 2 x 500 = 6.6 kW
    energy_kwh_yr = 1.5 * 6.6 * 8760  # 86,724 kWh a year at the meter
    energy_usd = 0.10 * energy_kwh_yr * 4  # 34,689.6
    maint_usd = 220 * 2 * 4  # 1,760
    total = capex + energy_usd + maint_usd  # 596,449.6
    tokens = 0.5 * 1000 * 16 * 3600 * 8760 * 4  # 1.009152e12
    assert r["capex_usd"] == pytest.approx(capex)
    assert r["opex_energy_usd"] == pytest.approx(34_689.6)
    assert r["opex_maintenance_usd"] == pytest.approx(maint_usd)
    assert r["tco_usd"] == pytest.approx(596_449.6)
    assert r["gpu_power_w"] == pytest.approx(350.0)
    assert r["output_tokens"] == pytest.approx(tokens)
    assert r["usd_per_mtok"] == pytest.approx(total / tokens * 1e6)
    assert r["tokens_per_usd"] == pytest.approx(tokens / total)
    cloud_yr = 2.0 * 16 * 8760  # 280,320 a year
    assert r["cloud_usd"] == pytest.approx(cloud_yr * 4)
    # own == cloud when capex + opex_yr t = cloud_yr t
    assert r["break_even_years"] == pytest.approx(capex / (cloud_yr - (energy_usd + maint_usd) / 4))
    bd = {row["component"]: row for row in r.breakdown.to_dicts()}
    assert bd["GPUs"]["usd"] == 480_000 and bd["GPUs"]["share"] == pytest.approx(480_000 / total)
    assert r.breakdown["share"].sum() == pytest.approx(1.0)


def test_discounted_tco_and_break_even() -> None:
    from dataclasses import replace

    r = tco(replace(GOLDEN, discount_rate=0.05))
    a = (1 - 1.05**-4) / 0.05
    assert annuity(4.0, 0.05) == pytest.approx(a) and annuity(4.0, 0.0) == 4.0
    assert r["opex_energy_usd"] == pytest.approx(0.10 * 1.5 * 6.6 * 8760 * a)
    assert r["cloud_usd"] == pytest.approx(2.0 * 16 * 8760 * a)
    tokens_pv = 0.5 * 1000 * 16 * 3600 * 8760 * a
    assert r["usd_per_mtok"] == pytest.approx(r["tco_usd"] / tokens_pv * 1e6)
    # at the break-even time the discounted costs are equal
    t = r["break_even_years"]
    own = r["capex_usd"] + (r["opex_usd"] / a) * annuity(t, 0.05)
    assert own == pytest.approx(2.0 * 16 * 8760 * annuity(t, 0.05))
    assert t > tco(GOLDEN)["break_even_years"]  # discounting delays the pay-back


def test_break_even_utilisation_against_elastic_cloud() -> None:
    from dataclasses import replace

    u = break_even_utilisation(GOLDEN)
    assert 0 < u < 1
    at = tco(replace(GOLDEN, utilisation=u, cloud_elastic=True))
    assert at["tco_usd"] == pytest.approx(at["cloud_usd"])
    assert (
        tco(replace(GOLDEN, utilisation=min(1, u + 0.1), cloud_elastic=True))["tco_usd"]
        < tco(replace(GOLDEN, utilisation=min(1, u + 0.1), cloud_elastic=True))["cloud_usd"]
    )
    assert math.isinf(break_even_utilisation(replace(GOLDEN, cloud_usd_per_gpu_hr=0.01)))
    # a cloud cheaper to run than the own fleet: owning never pays back (inf); no cloud price: NaN
    assert math.isinf(tco(replace(GOLDEN, cloud_usd_per_gpu_hr=0.01))["break_even_years"])
    assert math.isnan(tco(replace(GOLDEN, cloud_usd_per_gpu_hr=math.nan))["break_even_years"])
    with pytest.raises(ConfigError, match="needs cloud_usd_per_gpu_hr"):
        break_even_utilisation(replace(GOLDEN, cloud_usd_per_gpu_hr=math.nan))


def test_fleet_tco_uses_power_model_and_tables() -> None:
    model = "meta-llama/Llama-3.1-8B-Instruct"
    r = fleet_tco("H100-SXM", 16, utilisation=0.5, batch=128, model=model, site=site("us-avg"))
    i = r.inputs
    assert i.gpu_busy_w == pytest.approx(power_curve("H100-SXM", model, 1)(128))
    assert i.gpu_idle_w == idle_power_w("H100-SXM")
    assert i.gpu_price_usd == 30_000 and i.pue == 1.56 and i.electricity_usd_per_kwh == 0.0806
    # ML.ENERGY: H100 Llama-3.1-8B at batch ~128 delivers ~7,037 tokens/s
    assert i.tokens_per_s_per_gpu == pytest.approx(7036.5, rel=0.01)
    assert throughput_per_gpu("H100-SXM", model, 1, 128) == pytest.approx(i.tokens_per_s_per_gpu)
    assert r["usd_per_mtok"] > 0 and r["break_even_years"] > 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("pue", 0.9),
        ("electricity_usd_per_kwh", -0.1),
        ("gpu_price_usd", -1.0),
        ("gpu_busy_w", -5.0),
        ("lifetime_years", 0.0),
        ("utilisation", 1.5),
        ("n_gpus", 0),
        ("n_gpus", 16.5),
        ("n_gpus", True),
        ("gpus_per_node", 8.0),
        ("gpu_idle_w", 700.0),  # above the busy power of 600 W
        ("pue", 5.5),
    ],
)
def test_bad_inputs_one_clear_error(field: str, value: float) -> None:
    from dataclasses import asdict

    with pytest.raises(ConfigError, match=field):
        TcoInputs(**{**asdict(GOLDEN), field: value})


def test_numpy_integer_gpu_count_accepted() -> None:
    from dataclasses import replace

    assert tco(replace(GOLDEN, n_gpus=np.int64(16)))["tco_usd"] == pytest.approx(tco(GOLDEN)["tco_usd"])
    assert type(replace(GOLDEN, n_gpus=np.int64(16), gpus_per_node=np.int32(8)).gpus_per_node) is int


def test_shipped_throughput_table_is_reproducible(shared_traces) -> None:
    from workbench.tco import THROUGHPUT_COLUMNS, build_throughput_table, load_throughput

    shipped, rebuilt = load_throughput(), build_throughput_table()
    assert shipped.columns == THROUGHPUT_COLUMNS and shipped.height == rebuilt.height == 838
    assert shipped.select(THROUGHPUT_COLUMNS[:7]).equals(rebuilt.select(THROUGHPUT_COLUMNS[:7]))
    for col in ("avg_batch_size", "output_tokens_per_s_per_gpu"):
        np.testing.assert_allclose(shipped[col], rebuilt[col], rtol=0, atol=5.1e-5)  # written to 4 decimals


def test_fleet_tco_and_widget_work_without_shared_data(tmp_path, monkeypatch) -> None:
    import workbench.power.fitting as curves
    from workbench.tco import load_throughput
    from workbench.widgets.energy import explore

    def no_runs(*_args, **_kwargs):
        raise AssertionError("the ML.ENERGY runs were read")

    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path))  # an empty folder
    monkeypatch.setattr(curves, "load_runs", no_runs)
    monkeypatch.setattr(curves, "_runs_path", no_runs)
    load_throughput.cache_clear()
    r = fleet_tco("H100-SXM", 16, batch=128, model="meta-llama/Llama-3.1-8B-Instruct", site=site("us-avg"))
    assert r.inputs.tokens_per_s_per_gpu == pytest.approx(7036.5, rel=0.01)
    _, numbers = explore("B200", 8, "finland", model="Qwen3-8B")
    assert numbers["USD per M output tokens"][0] > 0


def test_fleet_tco_errors() -> None:
    with pytest.raises(HardwareError, match=r"(?i)unknown gpu 'Q100'"):
        fleet_tco("Q100", 8)
    with pytest.raises(ConfigError, match="no purchase price"):
        fleet_tco("H200-SXM", 8)  # the table has no citable H200 price
    with pytest.raises(ConfigError, match="unknown TCO input"):
        fleet_tco("H100-SXM", 8, price=1.0)
    with pytest.raises(ConfigError, match="unknown site"):
        fleet_tco("H100-SXM", 8, site=site("mars"))


def test_lifetime_footprint_and_chart() -> None:
    from workbench.tco import lifetime_footprint
    from workbench.viz.energy import tco_breakdown

    s = site("germany", electricity_usd_per_kwh=0.2, pue=1.5)
    r = tco(GOLDEN)
    fp = lifetime_footprint(r, s, embodied_kg_per_gpu=1000.0).row(0, named=True)
    it_kwh = 6.6 * 8760 * 4
    assert fp["it_kwh"] == pytest.approx(it_kwh)
    assert fp["operational_kgco2e"] == pytest.approx(it_kwh * 1.5 * 0.381)
    assert fp["embodied_kgco2e"] == pytest.approx(16 * 1000.0)  # whole life of 16 GPUs
    assert fp["water_onsite_l"] == pytest.approx(it_kwh * 1.8)
    assert fp["kgco2e_per_mtok"] == pytest.approx(fp["total_kgco2e"] / (r["output_tokens"] / 1e6))
    spec = tco_breakdown(r.breakdown).to_dict()
    bars = spec["layer"][0]
    assert bars["mark"]["type"] == "bar" and bars["encoding"]["y"]["sort"][0] == "GPUs"
    assert len(next(iter(spec["datasets"].values()))) == 5


def test_widget_explore_logic(shared_traces) -> None:
    from workbench.widgets.energy import explore, tco_explorer

    chart, numbers = explore("H100-SXM", 16, "finland", electricity_usd_per_kwh=0.1, pue=1.2, utilisation=0.5)
    row = numbers.row(0, named=True)
    direct = fleet_tco(
        "H100-SXM",
        16,
        utilisation=0.5,
        batch=128.0,
        model="Llama-3.1-8B",
        site=site("finland", electricity_usd_per_kwh=0.1, pue=1.2),
    )
    assert row["TCO (USD)"] == pytest.approx(direct["tco_usd"])
    assert row["USD per M output tokens"] == pytest.approx(direct["usd_per_mtok"])
    assert chart.to_dict()["title"].startswith("16 x H100-SXM at finland")
    box = tco_explorer()
    assert len(box.children) == 3  # controls, status line, output


def test_widget_redraws_once_per_change(monkeypatch) -> None:
    import workbench.widgets.energy as widget

    calls = []
    real = widget.explore
    monkeypatch.setattr(widget, "explore", lambda **kw: calls.append(kw) or real(**kw))
    box = widget.tco_explorer()
    controls = {c.description: c for column in box.children[0].children for c in column.children}
    assert len(calls) == 1
    controls["site"].value = "finland"  # moves the price slider to Finland's EUR 0.089 = USD 0.098 per kWh
    assert len(calls) == 2 and calls[-1]["electricity_usd_per_kwh"] == 0.098
    assert calls[-1]["site_name"] == "finland"
    controls["site"].value = "france"  # no price in the table: the slider stays
    assert len(calls) == 3 and calls[-1]["electricity_usd_per_kwh"] == 0.098
    controls["PUE"].value = 1.5
    assert len(calls) == 4 and calls[-1]["pue"] == 1.5


def test_cost_explorer_has_every_number_for_every_gpu_it_offers():
    """Issue 14 item 5: 7 of the 9 GPUs offered showed NaN per-token cost and carbon (no ML.ENERGY run)."""
    import polars as pl

    from workbench.hardware import list_gpus
    from workbench.tco import estimated_throughput_per_gpu, throughput_with_source
    from workbench.widgets.energy import explore

    offered = list_gpus().filter(pl.col("purchase_price_usd_approx").is_not_null())["gpu"].to_list()
    assert len(offered) >= 9
    cases = [(g, "us-avg", 0.6) for g in offered] + [("L4", "france", 0.05), ("MI300X", "india", 1.0)]
    for gpu, site_name, utilisation in cases:
        _, numbers = explore(gpu, site_name=site_name, utilisation=utilisation)
        row = numbers.row(0, named=True)
        assert all(v is not None and not (isinstance(v, float) and math.isnan(v)) for v in row.values()), row
        assert row["USD per M output tokens"] > 0 and row["g CO2e per M tokens"] > 0
        measured = gpu in ("H100-SXM", "B200")
        assert row["throughput source"].startswith("ML.ENERGY" if measured else "roofline estimate"), row
    # the estimate is the roofline's, within a factor of two of the measurement where both exist
    est = estimated_throughput_per_gpu("H100-SXM", "Llama-3.1-8B", 1, 128)
    meas, _ = throughput_with_source("H100-SXM", "Llama-3.1-8B", 1, 128)
    assert 0.5 < est / meas < 2.0
    # a model that does not fit: no number, and the reason
    value, why = throughput_with_source("L4", "Llama-3.1-70B", 1, 128)
    assert value is None and why.startswith("not computed:") and "L4" in why
