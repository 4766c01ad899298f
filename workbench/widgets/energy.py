"""Widgets for power, cost and carbon: a TCO explorer (GPU, count, site, price, PUE, lifetime, utilisation).

The logic lives in :func:`explore`, a plain function that the widget calls on every change (and tests call
directly); the widget only wires controls to it and shows the chart and the key numbers.
"""

from __future__ import annotations

import math

import altair as alt
import polars as pl

from workbench.carbon import load_sites, site
from workbench.hardware import list_gpus
from workbench.tco import fleet_tco, lifetime_footprint, throughput_with_source
from workbench.viz.energy import tco_breakdown


def explore(
    gpu: str = "H100-SXM",
    n_gpus: int = 64,
    site_name: str = "us-avg",
    *,
    electricity_usd_per_kwh: float = 0.08,
    pue: float = 1.3,
    lifetime_years: float = 5.0,
    utilisation: float = 0.6,
    model: str = "Llama-3.1-8B",
    batch: float = 128.0,
    embodied_kg_per_gpu: float = 0.0,
) -> tuple[alt.LayerChart, pl.DataFrame]:
    """TCO breakdown chart and a one-row table of key numbers for one scenario.

    The site supplies the grid carbon intensity and WUE; the electricity price and PUE come from the
    arguments (the widget's sliders). Per-token numbers need the GPU's output throughput: the ML.ENERGY
    measurement where there is one, else the roofline estimate (:func:`workbench.tco.throughput_with_source`);
    the ``throughput source`` column says which. A number that cannot be computed is null (never NaN) and
    that column gives the reason.
    """
    s = site(site_name, electricity_usd_per_kwh=electricity_usd_per_kwh, pue=pue)
    tok_s, source = throughput_with_source(gpu, model, 1, batch)
    res = fleet_tco(
        gpu,
        n_gpus,
        utilisation=utilisation,
        batch=batch,
        model=model,
        site=s,
        lifetime_years=lifetime_years,
        tokens_per_s_per_gpu=tok_s or 0.0,
    )
    fp = lifetime_footprint(res, s, embodied_kg_per_gpu=embodied_kg_per_gpu)
    numbers = pl.DataFrame(
        {
            "TCO (USD)": [res["tco_usd"]],
            "USD per M output tokens": [res["usd_per_mtok"]],
            "output tokens per USD": [res["tokens_per_usd"]],
            "cloud (USD)": [res["cloud_usd"]],
            "break-even (years)": [res["break_even_years"]],
            "GPU power (W)": [res["gpu_power_w"]],
            "CO2e (t)": [fp["total_kgco2e"][0] / 1000],
            "water (m3)": [fp["water_total_l"][0] / 1000],
            "g CO2e per M tokens": [fp["kgco2e_per_mtok"][0] * 1000],
        }
    )
    numbers = numbers.with_columns(pl.col(pl.Float64).fill_nan(None), pl.lit(source).alias("throughput source"))
    title = f"{n_gpus} x {gpu} at {site_name}: TCO over {lifetime_years:g} years"
    return tco_breakdown(res.breakdown, title=title), numbers


def tco_explorer(model: str = "Llama-3.1-8B", batch: float = 128.0, *, results=None):
    """Build the TCO explorer: GPU, count, site, electricity price, PUE, lifetime and utilisation controls.

    Every change redraws once (analytic: milliseconds); choosing a site also moves the price slider to the
    site's price (when the table has one). Works from the shipped tables alone (no shared data folder).

    Parameters
    ----------
    model
        Model whose power curve and throughput price the fleet.
    batch
        Concurrent sequences per instance at which power and throughput are read.
    results
        A :class:`~workbench.widgets.live.Results` that receives the table and chart shown.

    Returns
    -------
    ipywidgets.VBox
        The controls, a status line and the output; ``box.live`` and ``box.controls`` (the controls by name)
        serve tests and benchmarks.
    """
    import ipywidgets as w

    from workbench.widgets.live import Live, live_parts

    priced = list_gpus().filter(pl.col("purchase_price_usd_approx").is_not_null())["gpu"].to_list()
    grids = load_sites().filter(pl.col("grid_carbon_gco2e_per_kwh").is_not_null())["site_id"].to_list()
    style = {"description_width": "150px"}
    c = {
        "gpu": w.Dropdown(options=priced, value="H100-SXM", description="GPU", style=style),
        "n_gpus": w.IntSlider(64, min=8, max=1024, step=8, description="GPUs", style=style),
        "site_name": w.Dropdown(options=grids, value="us-avg", description="site", style=style),
        "electricity_usd_per_kwh": w.FloatSlider(
            0.08,
            min=0.02,
            max=0.40,
            step=0.005,
            readout_format=".3f",
            description="electricity USD/kWh",
            style=style,
        ),
        "pue": w.FloatSlider(1.3, min=1.0, max=2.0, step=0.01, description="PUE", style=style),
        "lifetime_years": w.FloatSlider(
            5.0, min=1.0, max=8.0, step=0.5, description="lifetime (years)", style=style
        ),
        "utilisation": w.FloatSlider(0.6, min=0.05, max=1.0, step=0.05, description="utilisation", style=style),
    }
    out, status, _ = live_parts()
    live = Live(out, status)

    def redraw(_=None) -> None:
        def quick():
            chart, numbers = explore(**{k: v.value for k, v in c.items()}, model=model, batch=batch)
            if results is not None:
                results.publish({"tco": numbers}, {"tco_breakdown": chart})
            return [chart, numbers]

        live.update(quick)

    def on_site(change) -> None:
        """Take the site's electricity price (its slider redraws); redraw here only if the price stays."""
        price = site(change["new"]).electricity_usd_per_kwh
        slider = c["electricity_usd_per_kwh"]
        if not math.isnan(price) and round(price, 3) != slider.value:
            slider.value = round(price, 3)
        else:
            redraw()

    c["site_name"].observe(on_site, names="value")
    for name, ctl in c.items():
        if name != "site_name":
            ctl.observe(redraw, names="value")
    redraw()
    box = w.VBox([w.HBox([w.VBox(list(c.values())[:4]), w.VBox(list(c.values())[4:])]), status, out])
    box.live, box.controls = live, c
    return box
