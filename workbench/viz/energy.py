"""Charts of power, energy, carbon and cost.

The TCO breakdown, Sobol indices, tornado, power versus batch with its fit, fleet power over time and the
site trade-off.

Builders take the tables of :mod:`workbench.tco`, :mod:`workbench.sensitivity`, :mod:`workbench.power` and
:mod:`workbench.carbon` and return altair charts (tested through ``chart.to_dict()``).
"""

from __future__ import annotations

import altair as alt
import numpy as np
import polars as pl

from workbench.config import as_float
from workbench.viz import HEIGHT, WIDTH


def tco_breakdown(breakdown: pl.DataFrame, *, title: str = "TCO breakdown") -> alt.LayerChart:
    """Horizontal bars of TCO components (USD), coloured capex / opex, labelled with their share.

    Parameters
    ----------
    breakdown
        Columns ``component``, ``kind``, ``usd``, ``share`` (:attr:`workbench.tco.TcoResult.breakdown`).
    """
    order = breakdown.sort("usd", descending=True)["component"].to_list()
    base = alt.Chart(breakdown, width=WIDTH, height=HEIGHT * 0.7)
    y = alt.Y("component:N", sort=order, title=None)
    bars = base.mark_bar().encode(
        x=alt.X("usd:Q", title="USD over the lifetime", axis=alt.Axis(format="~s")),
        y=y,
        color=alt.Color(
            "kind:N", title=None, scale=alt.Scale(domain=["capex", "opex"]), legend=alt.Legend(orient="bottom")
        ),
        tooltip=[
            "component",
            "kind",
            alt.Tooltip("usd:Q", format=",.0f"),
            alt.Tooltip("share:Q", format=".1%"),
        ],
    )
    labels = base.mark_text(align="left", dx=3).encode(x="usd:Q", y=y, text=alt.Text("share:Q", format=".1%"))
    return (bars + labels).properties(title=title)


def sobol_bars(indices: pl.DataFrame, *, title: str = "Sobol sensitivity indices") -> alt.LayerChart:
    """Draw grouped bars of first-order (S1) and total (ST) Sobol indices per parameter, with 95 % intervals.

    Parameters
    ----------
    indices
        Columns ``param``, ``S1``, ``S1_conf``, ``ST``, ``ST_conf`` (:func:`workbench.sensitivity.sobol`).
    """
    long = pl.concat(
        [
            indices.select(
                "param", pl.lit(k).alias("index"), pl.col(k).alias("value"), pl.col(f"{k}_conf").alias("conf")
            )
            for k in ("S1", "ST")
        ]
    ).with_columns(lo=pl.col("value") - pl.col("conf"), hi=pl.col("value") + pl.col("conf"))
    order = indices.sort("ST", descending=True)["param"].to_list()
    base = alt.Chart(long, width=WIDTH, height=HEIGHT * 0.8, title=title)
    enc = {
        "y": alt.Y("param:N", sort=order, title=None),
        "yOffset": alt.YOffset("index:N", sort=["S1", "ST"]),
        "color": alt.Color("index:N", title="index", sort=["S1", "ST"]),
    }
    bars = base.mark_bar().encode(
        x=alt.X("value:Q", title="share of output variance"),
        tooltip=["param", "index", alt.Tooltip("value:Q", format=".3f"), alt.Tooltip("conf:Q", format=".3f")],
        **enc,
    )
    errs = base.mark_rule(color="black").encode(x="lo:Q", x2="hi:Q", **enc)
    return bars + errs


def tornado(swings: pl.DataFrame, *, output: str = "USD per million output tokens") -> alt.LayerChart:
    """Tornado chart: output with each input at its low and high value, around the base value.

    Parameters
    ----------
    swings
        Columns ``param``, ``low``, ``high``, ``y_low``, ``y_high``, ``y_base``
        (:func:`workbench.sensitivity.tornado`).
    """
    long = pl.concat(
        [
            swings.select(
                "param",
                pl.lit(end).alias("end"),
                pl.col(end).alias("input"),
                pl.col(f"y_{end}").alias("y"),
                "y_base",
            )
            for end in ("low", "high")
        ]
    )
    order = swings.sort("swing", descending=True)["param"].to_list()
    base_value = float(swings["y_base"][0])
    base = alt.Chart(long, width=WIDTH, height=HEIGHT * 0.8, title=f"Tornado: {output}")
    bars = base.mark_bar().encode(
        y=alt.Y("param:N", sort=order, title=None),
        x=alt.X("y:Q", title=output, scale=alt.Scale(zero=False)),
        x2="y_base:Q",
        color=alt.Color("end:N", title="input at", sort=["low", "high"]),
        tooltip=["param", "end", alt.Tooltip("input:Q", format=".4g"), alt.Tooltip("y:Q", format=".4g")],
    )
    rule = alt.Chart(pl.DataFrame({"y_base": [base_value]})).mark_rule(strokeDash=[4, 3]).encode(x="y_base:Q")
    return bars + rule


def power_vs_batch(runs: pl.DataFrame, curve, *, title: str | None = None) -> alt.LayerChart | alt.FacetChart:
    """Measured per-GPU power against batch (points) with the logistic fit (line), log2 batch axis.

    Parameters
    ----------
    runs
        Columns ``avg_batch_size`` and ``power_per_gpu_w`` (and optionally ``task``), e.g. ML.ENERGY runs
        from :func:`workbench.power.load_runs` filtered to one configuration.
    curve
        A :class:`workbench.power.LogisticPower`.
    """
    lo = max(1.0, as_float(runs["avg_batch_size"].min()) / 2) if runs.height else 1.0
    hi = as_float(runs["avg_batch_size"].max()) * 2 if runs.height else 1024.0
    b = np.exp2(np.linspace(np.log2(lo), np.log2(hi), 80))
    fit = pl.DataFrame({"batch": b, "power_w": curve(b)})
    x = alt.X("batch:Q", title="running batch (sequences)", scale=alt.Scale(type="log", base=2))
    y = alt.Y("power_w:Q", title="power per GPU (W)", scale=alt.Scale(zero=False))
    line = alt.Chart(fit).mark_line(color="black").encode(x=x, y=y)
    pts = runs.select(
        pl.col("avg_batch_size").alias("batch"),
        pl.col("power_per_gpu_w").alias("power_w"),
        (pl.col("task") if "task" in runs.columns else pl.lit("measured")).alias("task"),
    )
    points = (
        alt.Chart(pts)
        .mark_point(filled=True, size=50)
        .encode(
            x=x, y=y, color=alt.Color("task:N", title="ML.ENERGY task"), tooltip=["batch", "power_w", "task"]
        )
    )
    return alt.layer(line, points).properties(width=WIDTH, height=HEIGHT, title=title or curve.source)


def power_timeline(series: pl.DataFrame, *, by: str | None = None) -> alt.Chart:
    """Mean power (kW) per time bin (:func:`workbench.power.energy_timeseries`), stacked by ``by`` if given."""
    data = series.with_columns(kw=pl.col("mean_power_w") / 1000.0)
    enc = {
        "x": alt.X("start_s:Q", title="time (s)"),
        "y": alt.Y("kw:Q", title="IT power (kW)", stack=True if by else None),
        "tooltip": ["start_s", alt.Tooltip("kw:Q", format=".2f")],
    }
    if by:
        enc["color"] = alt.Color(f"{by}:N", title=by)
    return (
        alt.Chart(data, width=WIDTH, height=HEIGHT * 0.8, title="Fleet power")
        .mark_area(interpolate="step-after", opacity=0.8)
        .encode(**enc)
    )


def site_tradeoff(candidates: pl.DataFrame) -> alt.LayerChart | alt.FacetChart:
    """Draw cost against carbon per site (:func:`workbench.carbon.choose_site` output), labelled.

    The chosen site is the large square; the colour tells whether a site meets the water cap.
    """
    base = alt.Chart(candidates)
    x = alt.X("cost_usd:Q", title="cost (USD)", scale=alt.Scale(zero=False))
    y = alt.Y("carbon_kg:Q", title="carbon (kg CO2e)")
    points = base.mark_point(filled=True, opacity=0.8).encode(
        x=x,
        y=y,
        shape=alt.Shape(
            "chosen:N", title="chosen", scale=alt.Scale(domain=[False, True], range=["circle", "square"])
        ),
        size=alt.Size("chosen:N", scale=alt.Scale(domain=[False, True], range=[80, 300]), legend=None),
        color=alt.Color("water_ok:N", title="within water cap", scale=alt.Scale(domain=[False, True])),
        tooltip=["name", alt.Tooltip("cost_usd:Q", format=",.2f"), alt.Tooltip("carbon_kg:Q", format=",.1f")],
    )
    labels = base.mark_text(align="left", dx=9, dy=-7, fontSize=11).encode(x=x, y=y, text="name:N")
    return alt.layer(points, labels).properties(
        width=WIDTH,
        height=HEIGHT,
        title=alt.TitleParams(
            "Sites: cost vs carbon", subtitle="large square: chosen; orange: within the water cap"
        ),
    )
