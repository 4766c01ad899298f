"""Charts of fleet simulations.

Latency CDFs per policy, per-instance load and cache hits, instance count over time, and the cost-latency
trade-off of autoscalers (one point per policy, or curves over a knob).

Every builder takes polars tables produced by :mod:`workbench.sim.fleet` (``latency_cdf``,
``instance_stats``, ``instance_count``, ``compare``) or :mod:`workbench.studies.fleets` and returns an altair
chart.
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import polars as pl

from workbench.config import as_float
from workbench.viz import HEIGHT, WIDTH

_METRIC_TITLES = {
    "ttft_s": "TTFT (s)",
    "tpot_s": "TPOT (s/token)",
    "e2e_s": "end-to-end latency (s)",
    "queue_s": "queueing delay (s)",
}
#: Axis titles of the cost-latency charts' columns (others are titled by their column name).
_AXIS_TITLES = {
    "gpu_hours": "GPU-hours",
    "cost_usd": "cloud cost (USD)",
    "ttft_p50_s": "median TTFT (s)",
    "ttft_p99_s": "P99 TTFT (s)",
    "tpot_p50_s": "median TPOT (s/token)",
}


def latency_cdfs(cdf: pl.DataFrame, *, log_x: bool = True) -> alt.HConcatChart:
    """Draw latency CDF curves side by side, one panel per metric, one colour per policy.

    Parameters
    ----------
    cdf
        Columns ``policy``, ``metric``, ``value``, ``quantile`` (see :func:`workbench.sim.fleet.latency_cdf`).
    log_x
        Logarithmic latency axis.

    Returns
    -------
    altair.HConcatChart
        One CDF panel per metric.
    """
    panels = []
    for metric in cdf["metric"].unique(maintain_order=True).to_list():
        data = cdf.filter((pl.col("metric") == metric) & (pl.col("value") > 0 if log_x else pl.lit(True)))
        scale = alt.Scale(type="log") if log_x else alt.Scale()
        panels.append(
            alt.Chart(data, width=WIDTH * 0.8, height=HEIGHT, title=_METRIC_TITLES.get(metric, metric))
            .mark_line(interpolate="step-after")
            .encode(
                x=alt.X(
                    "value:Q",
                    title=_METRIC_TITLES.get(metric, metric),
                    scale=scale,
                    axis=alt.Axis(labelOverlap="greedy", format="~g"),
                ),
                y=alt.Y("quantile:Q", title="fraction of requests", scale=alt.Scale(domain=[0, 1])),
                color=alt.Color("policy:N", title="policy"),
                tooltip=[
                    "policy:N",
                    alt.Tooltip("value:Q", format=".3f"),
                    alt.Tooltip("quantile:Q", format=".2f"),
                ],
            )
        )
    return alt.hconcat(*panels).resolve_scale(color="shared")


def instance_load(stats: pl.DataFrame) -> alt.HConcatChart:
    """Draw per-instance requests served and prefix-cache hit rate, one row of bars per policy.

    Parameters
    ----------
    stats
        Columns ``policy``, ``instance``, ``requests``, ``hit_rate`` (see
        :func:`workbench.sim.fleet.instance_stats`).

    Returns
    -------
    altair.HConcatChart
        Requests per instance beside hit rate per instance.
    """
    base = alt.Chart(stats, width=WIDTH * 0.8, height=HEIGHT * 0.6)
    x = alt.X("instance:O", title="instance")
    color = alt.Color("policy:N", title="policy", legend=None)
    load = base.mark_bar().encode(
        x=x,
        y=alt.Y("requests:Q", title="requests served"),
        color=color,
        tooltip=["policy", "instance", "requests"],
    )
    hits = base.mark_bar().encode(
        x=x,
        y=alt.Y("hit_rate:Q", title="prefix-cache hit rate", scale=alt.Scale(domain=[0, 1])),
        color=color,
        tooltip=["policy", "instance", alt.Tooltip("hit_rate:Q", format=".2f")],
    )
    return alt.hconcat(
        load.facet(row=alt.Row("policy:N", title=None)), hits.facet(row=alt.Row("policy:N", title=None))
    )


def instance_count(counts: pl.DataFrame) -> alt.Chart:
    """Draw the instances powered (starting, on or draining) over time, one line per policy.

    Parameters
    ----------
    counts
        Columns ``policy``, ``time_s``, ``instances`` (see :func:`workbench.sim.fleet.instance_count`).

    Returns
    -------
    altair.Chart
        A step line per policy.
    """
    return (
        alt.Chart(counts, width=WIDTH * 1.4, height=HEIGHT, title="instances powered over time")
        .mark_line(interpolate="step-after")
        .encode(
            x=alt.X("time_s:Q", title="time (s)"),
            y=alt.Y("instances:Q", title="instances (starting + on + draining)"),
            color=alt.Color("policy:N", title="policy"),
            strokeDash=alt.StrokeDash("policy:N", title="policy"),
        )
    )


def cost_latency(table: pl.DataFrame, *, x: str = "gpu_hours", y: str = "ttft_p99_s") -> alt.LayerChart:
    """Draw a trade-off scatter (e.g. GPU-hours vs P99 TTFT), one labelled point per policy.

    Parameters
    ----------
    table
        A comparison table with columns ``policy``, ``x`` and ``y`` (see :func:`workbench.sim.fleet.compare`).

    x, y
        Columns of the two axes.

    Returns
    -------
    altair.LayerChart
        The points and their policy labels.
    """
    base = alt.Chart(table, width=WIDTH, height=HEIGHT).encode(
        x=alt.X(f"{x}:Q", title=_AXIS_TITLES.get(x, x), scale=alt.Scale(zero=False)),
        y=alt.Y(f"{y}:Q", title=_AXIS_TITLES.get(y, y), scale=alt.Scale(zero=False)),
    )
    points = base.mark_point(filled=True, size=80, color="black")
    labels = base.mark_text(align="left", dx=7, dy=-4).encode(text="policy:N")
    return (points + labels).properties(title="cost vs tail latency (one point per policy)")


def tradeoff_curves(
    table: pl.DataFrame, *, x: str = "gpu_hours", y: str = "ttft_p99_s", log_y: bool = True
) -> alt.LayerChart:
    """Draw cost-latency curves: one line per swept knob (``curve``), in sweep order, static fleets dashed.

    Parameters
    ----------
    table
        Columns ``curve``, ``policy``, ``knob``, ``value``, ``x`` and ``y`` (see
        :func:`workbench.studies.fleets.autoscale_curve`); rows with ``policy == "static"`` form the reference.
    x, y
        Columns of the two axes.
    log_y
        Logarithmic latency axis.

    Returns
    -------
    altair.LayerChart
        The lines and points of every curve; the static fleets dashed and labelled.
    """
    data = table.with_row_index("order")
    y_scale = alt.Scale(type="log") if log_y else alt.Scale()
    enc = {
        "x": alt.X(f"{x}:Q", title=_AXIS_TITLES.get(x, x), scale=alt.Scale(zero=False)),
        "y": alt.Y(f"{y}:Q", title=_AXIS_TITLES.get(y, y), scale=y_scale),
        "order": alt.Order("order:Q"),
        "tooltip": [
            "curve:N",
            "value:Q",
            alt.Tooltip(f"{x}:Q", format=".3f"),
            alt.Tooltip(f"{y}:Q", format=".3f"),
        ],
    }
    color = alt.Color("curve:N", title="policy: knob")
    auto = alt.Chart(data.filter(pl.col("policy") != "static"))
    static = alt.Chart(data.filter(pl.col("policy") == "static"))
    dashed = static.mark_line(color="black", strokeDash=[4, 3], point=alt.OverlayMarkDef(color="black"))
    labels = static.mark_text(align="left", dx=6, dy=-6, color="black")
    return (
        dashed.encode(**enc)
        + labels.encode(x=enc["x"], y=enc["y"], text=alt.Text("value:Q", format="d"))
        + auto.mark_line(point=True).encode(color=color, **enc)
    ).properties(width=WIDTH * 1.2, height=HEIGHT,
                 title="cost vs tail latency (static fleets dashed, labelled by instances)")  # fmt: skip


def policy_bars(table: pl.DataFrame, *, metrics: tuple[str, ...] = ("ttft_p50_s", "ttft_p99_s")) -> alt.Chart:
    """Draw grouped bars of latency percentiles per policy (log scale), faceted by load when present.

    Parameters
    ----------
    table
        A comparison table: ``policy``, the ``metrics`` columns and optionally ``load`` (one row per policy
        and load, :func:`workbench.sim.fleet.compare`).
    metrics
        The percentile columns drawn side by side.

    Returns
    -------
    altair.Chart
        The bars, faceted by load when ``table`` has a ``load`` column.
    """
    long = table.unpivot(index=[c for c in ("policy", "load") if c in table.columns], on=list(metrics))
    positive = long.filter(pl.col("value") > 0)["value"]
    # a log axis has no zero: bars are not stacked and rise from a decade below the smallest value
    low = 10.0 ** np.floor(np.log10(0.99 * as_float(positive.min()))) if positive.len() else 1e-3
    chart = (
        alt.Chart(long, width=WIDTH * 0.6, height=HEIGHT * 0.8)
        .mark_bar()
        .encode(
            x=alt.X("policy:N", title=None, sort=None),
            xOffset="variable:N",
            y=alt.Y("value:Q", title="seconds (log)", scale=alt.Scale(type="log", domainMin=low), stack=None),
            color=alt.Color("variable:N", title="metric"),
            tooltip=["policy", "variable", alt.Tooltip("value:Q", format=".3f")],
        )
    )
    if "load" in table.columns:
        return chart.facet(column=alt.Column("load:N", title="load"))
    return chart


def policy_cdfs(results: dict, policies: Sequence[str], load: float) -> alt.HConcatChart:
    """Draw the :func:`latency_cdfs` of ``policies`` at ``load`` from a policy study's results.

    This is the ``routing_cdf`` figure and notebook 03's chart.

    Parameters
    ----------
    results
        Simulation results keyed by ``(load, policy)`` (:func:`workbench.studies.fleets.policy_study`).
    policies
        Policies to draw.
    load
        The load whose results are drawn.

    Returns
    -------
    altair.HConcatChart
        As :func:`latency_cdfs`.

    Raises
    ------
    ConfigError
        When ``results`` lacks a policy at that load.
    """
    from workbench.errors import ConfigError
    from workbench.sim.fleet import latency_cdf

    missing = [p for p in policies if (load, p) not in results]
    if missing:
        raise ConfigError(f"policy_cdfs: no result for {missing} at load {load:g}")
    return latency_cdfs(latency_cdf({p: results[(load, p)] for p in policies}))


#: The autoscaler settings whose instance counts :func:`autoscale_overview` draws: ``(policy, knob, value)``.
AUTOSCALE_PICKED: tuple[tuple[str, str, float], ...] = (
    ("kpa", "target_concurrency", 32.0),
    ("delayed_off", "target_concurrency", 64.0),
    ("saturation", "queue_threshold", 5.0),
    ("threshold", "up_threshold", 16.0),
)


def autoscale_overview(
    curve: pl.DataFrame,
    results: dict,
    *,
    picked: Sequence[tuple[str, str, float]] = AUTOSCALE_PICKED,
    max_ttft_s: float = 100.0,
) -> alt.VConcatChart:
    """Draw the :func:`tradeoff_curves` over the :func:`instance_count` of the ``picked`` settings.

    This is the ``autoscale_tradeoff`` figure and notebook 03's chart.

    Parameters
    ----------
    curve, results
        What :func:`workbench.studies.fleets.autoscale_curve` returns (results keyed by ``(policy, knob,
        value)``).
    picked
        The settings whose instances over time are drawn.
    max_ttft_s
        Points with a P99 TTFT at or above it are left out of the trade-off (fleets that cannot keep up).

    Returns
    -------
    altair.VConcatChart
        The trade-off curves above the instance counts over time of the picked settings.
    """
    from workbench.errors import ConfigError
    from workbench.sim.fleet import instance_count as counts_of

    missing = [key for key in picked if tuple(key) not in results]
    if missing:
        raise ConfigError(f"autoscale_overview: no result for {missing}")
    counts = pl.concat(
        counts_of(results[tuple(key)]).with_columns(pl.lit(f"{key[0]} ({key[2]:g})").alias("policy"))
        for key in picked
    )
    tradeoff = tradeoff_curves(curve.filter(pl.col("ttft_p99_s") < max_ttft_s))
    return (tradeoff & instance_count(counts)).resolve_scale(color="independent", strokeDash="independent")


__all__ = [
    "AUTOSCALE_PICKED",
    "autoscale_overview",
    "cost_latency",
    "instance_count",
    "instance_load",
    "latency_cdfs",
    "policy_bars",
    "policy_cdfs",
    "tradeoff_curves",
]
