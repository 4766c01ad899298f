"""Charts of the KV hierarchy studies (:mod:`workbench.studies.kv_hierarchy`).

Where prompt tokens were served from, and a metric's mean with its confidence interval per arm.
"""

from __future__ import annotations

import altair as alt
import polars as pl

from workbench.viz import HEIGHT, WIDTH

#: Hit-share columns of a tier study's summary, in stacking order, with their legend names.
TIERS = {"gpu_share": "GPU", "dram_share": "host DRAM", "ssd_share": "local SSD", "store_share": "store"}


def tier_shares(summary: pl.DataFrame) -> alt.Chart:
    """Draw stacked bars of the share of prompt tokens served from each tier, per arm (mean of replications).

    Parameters
    ----------
    summary
        :func:`workbench.studies.kv_hierarchy.summary` of a study with ``*_share`` metrics (missing tiers
        count 0).

    Returns
    -------
    altair.Chart
        One stacked bar per arm.
    """
    cols = [c for c in TIERS if c in summary.columns]
    long = summary.select("arm", *cols).unpivot(index="arm", variable_name="tier", value_name="share")
    long = long.with_columns(pl.col("tier").replace_strict(TIERS), pl.col("arm").cast(pl.Utf8))
    order = summary["arm"].to_list()
    return (
        alt.Chart(long, width=WIDTH, height=HEIGHT, title="prompt tokens served from each tier")
        .mark_bar()
        .encode(
            x=alt.X("arm:N", sort=order, title=None),
            y=alt.Y("share:Q", title="share of prompt tokens", axis=alt.Axis(format="%")),
            color=alt.Color("tier:N", sort=list(TIERS.values()), title="tier"),
            order=alt.Order("tier_order:Q"),
            tooltip=["arm", "tier", alt.Tooltip("share:Q", format=".3f")],
        )
        .transform_calculate(tier_order=f"indexof({list(TIERS.values())!r}, datum.tier)")
    )


def mean_with_interval(summary: pl.DataFrame, metric: str, title: str | None = None) -> alt.LayerChart:
    """Draw a metric's mean per arm with its confidence interval (``<metric>_lo``/``_hi``) as error bars.

    Parameters
    ----------
    summary
        Columns ``arm``, ``metric``, ``<metric>_lo`` and ``<metric>_hi``.
    metric
        The metric to draw.
    title
        Chart title (default: the metric name).

    Returns
    -------
    altair.LayerChart
        The error bars and the means, arms in the table's order.

    Raises
    ------
    ValueError
        When ``summary`` lacks one of those columns.
    """
    need = {metric, f"{metric}_lo", f"{metric}_hi", "arm"}
    missing = need - set(summary.columns)
    if missing:
        raise ValueError(f"summary lacks column(s) {sorted(missing)}")
    order = summary["arm"].to_list()
    base = alt.Chart(summary.select(sorted(need)), width=WIDTH, height=HEIGHT, title=title or metric)
    x = alt.X("arm:N", sort=order, title=None)
    points = base.mark_point(filled=True, size=60).encode(x=x, y=alt.Y(f"{metric}:Q", title=title or metric))
    bars = base.mark_errorbar().encode(x=x, y=alt.Y(f"{metric}_lo:Q"), y2=f"{metric}_hi:Q")
    return points + bars


__all__ = ["TIERS", "mean_with_interval", "tier_shares"]
