"""Charts of replicated studies: every estimate drawn with its 95 % confidence interval.

Builders take the tables of :mod:`workbench.studies` (``Replicated.summary()`` columns ``<metric>``,
``<metric>_lo``, ``<metric>_hi``; ``Replicated.versus()`` paired differences; study-specific tables) and
return altair charts: a point per arm with an error bar, differences against a baseline with the zero line
(a bar that crosses it is not significant), and curves with bands.
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import polars as pl

from workbench.viz import HEIGHT, WIDTH


def intervals(
    summary: pl.DataFrame,
    metric: str,
    *,
    by: str = "arm",
    title: str | None = None,
    axis: str | None = None,
    color: str | None = None,
    log: bool = False,
) -> alt.LayerChart | alt.FacetChart:
    """Draw one point per row of ``summary`` (``by`` on the y axis) with its confidence interval as error bar.

    Parameters
    ----------
    summary
        Columns ``by``, ``metric``, ``metric_lo``, ``metric_hi`` (:meth:`Replicated.summary`).
    metric
        The estimate to draw.
    by
        Column naming the rows (arms).
    title, axis
        Chart title and x-axis title (default: the metric name).
    color
        Optional column to colour points by.
    log
        Logarithmic x axis.

    Returns
    -------
    altair.LayerChart or altair.FacetChart
        The error bars and the points.
    """
    lo, hi = f"{metric}_lo", f"{metric}_hi"
    missing = {by, metric, lo, hi} - set(summary.columns)
    if missing:
        raise ValueError(f"summary lacks column(s) {sorted(missing)}")
    data = summary.select(by, metric, lo, hi, *([color] if color and color != by else []))
    scale = alt.Scale(type="log") if log else alt.Scale(zero=False)
    y = alt.Y(f"{by}:N", title=None, sort=None)
    x_title = axis or metric
    tooltip = [f"{by}:N", alt.Tooltip(f"{metric}:Q", format=".4g"), alt.Tooltip(f"{lo}:Q", format=".4g"),
               alt.Tooltip(f"{hi}:Q", format=".4g")]  # fmt: skip
    base = alt.Chart(data, width=WIDTH, height=max(HEIGHT * 0.35, 28 * data.height), title=title or metric)
    bars = base.mark_rule(strokeWidth=2).encode(
        x=alt.X(f"{lo}:Q", title=x_title, scale=scale), x2=f"{hi}:Q", y=y, tooltip=tooltip
    )
    points = base.mark_point(filled=True, size=60).encode(
        x=alt.X(f"{metric}:Q", scale=scale),
        y=y,
        color=alt.Color(f"{color}:N") if color else alt.value("#1f77b4"),
        tooltip=tooltip,
    )
    return alt.layer(bars, points)


def differences(
    versus: pl.DataFrame, metric: str, *, by: str = "arm", title: str | None = None, axis: str | None = None
) -> alt.LayerChart | alt.FacetChart:
    """Draw paired differences against the baseline, with their intervals and the zero line.

    Parameters
    ----------
    versus
        Columns ``by``, ``metric``, ``difference``, ``difference_lo``, ``difference_hi``, ``significant``
        (:meth:`Replicated.versus`).
    metric
        The metric whose rows to draw.
    by, title, axis
        As :func:`intervals`.

    Returns
    -------
    altair.LayerChart or altair.FacetChart
        The zero line, the interval bars and the points, coloured by significance.
    """
    data = versus.filter(pl.col("metric") == metric)
    if data.height == 0:
        raise ValueError(f"no paired differences for metric {metric!r}")
    base = alt.Chart(data, width=WIDTH, height=max(HEIGHT * 0.35, 28 * data.height), title=title or metric)
    y = alt.Y(f"{by}:N", title=None, sort=None)
    tooltip = [f"{by}:N", alt.Tooltip("difference:Q", format=".4g"), alt.Tooltip("p_value:Q", format=".3g"),
               "significant:N"]  # fmt: skip
    zero = (
        alt.Chart(pl.DataFrame({"zero": [0.0]})).mark_rule(strokeDash=[4, 3], color="gray").encode(x="zero:Q")
    )
    bars = base.mark_rule(strokeWidth=2).encode(
        x=alt.X("difference_lo:Q", title=axis or f"difference in {metric}"), x2="difference_hi:Q", y=y,
        color=alt.Color("significant:N", title="significant"), tooltip=tooltip,
    )  # fmt: skip
    points = base.mark_point(filled=True, size=60).encode(
        x="difference:Q", y=y, color=alt.Color("significant:N"), tooltip=tooltip
    )
    return alt.layer(zero, bars, points)


def bands(
    table: pl.DataFrame,
    *,
    x: str,
    y: str,
    color: str,
    facet: str | None = None,
    title: str | None = None,
    axes: Sequence[str] | None = None,
) -> alt.LayerChart | alt.FacetChart:
    """Draw lines of ``y`` against ``x`` with a band from ``<y>_lo`` to ``<y>_hi``, one colour per ``color``.

    Parameters
    ----------
    table
        Columns ``x``, ``y``, ``y_lo``, ``y_hi``, ``color`` (and ``facet``).
    facet
        Optional column: one panel per value (independent x scales).
    axes
        Titles of the x and y axes.

    Returns
    -------
    altair.LayerChart or altair.FacetChart
        The bands and lines, faceted when ``facet`` is given.
    """
    xt, yt = axes or (x, y)
    base = alt.Chart(table, width=WIDTH * 0.8, height=HEIGHT)
    band = base.mark_area(opacity=0.25).encode(
        x=alt.X(f"{x}:Q", title=xt), y=alt.Y(f"{y}_lo:Q", title=yt), y2=f"{y}_hi:Q", color=f"{color}:N"
    )
    line = base.mark_line(point=True).encode(
        x=f"{x}:Q", y=f"{y}:Q", color=alt.Color(f"{color}:N", title=color),
        tooltip=[f"{color}:N", f"{x}:Q", alt.Tooltip(f"{y}:Q", format=".4g")],
    )  # fmt: skip
    chart = alt.layer(band, line)
    if facet is not None:
        return chart.facet(column=alt.Column(f"{facet}:N", title=None), title=title or "").resolve_scale(
            x="independent"
        )
    return chart.properties(title=title or y)


def verdicts(claims: pl.DataFrame) -> alt.Chart:
    """Draw one mark per claim, coloured by verdict (the notebook's overview).

    Parameters
    ----------
    claims
        Columns ``paper``, ``verdict`` (one of the four verdicts) and ``result``.

    Returns
    -------
    altair.Chart
        A square per claim.
    """
    order = ["reproduced", "reproduced under conditions", "not reproduced", "not testable here"]
    colors = ["#2ca02c", "#98df8a", "#d62728", "#c7c7c7"]
    return (
        alt.Chart(claims, width=WIDTH * 0.6, height=max(HEIGHT * 0.5, 22 * claims.height), title="verdicts")
        .mark_square(size=160)
        .encode(
            y=alt.Y("paper:N", title=None, sort=None),
            x=alt.X("verdict:N", title=None, scale=alt.Scale(domain=order), axis=alt.Axis(labelAngle=-20)),
            color=alt.Color("verdict:N", scale=alt.Scale(domain=order, range=colors), legend=None),
            tooltip=["paper:N", "verdict:N", "result:N"],
        )
    )


def allocation_gaps(allocation) -> alt.LayerChart | alt.FacetChart:
    """Draw the simulated gap of each simple server-allocation policy to the optimum, per scenario (95 % CI).

    This is notebook 07's chart of :func:`workbench.studies.server_allocation.study` (exact gaps: its
    ``gap_table``).

    Parameters
    ----------
    allocation
        The study's result.

    Returns
    -------
    altair.LayerChart or altair.FacetChart
        As :func:`intervals`, one row per scenario and policy.
    """
    from workbench.studies import server_allocation

    gaps = server_allocation.gap_table(allocation).filter(pl.col("policy") != "optimal")
    return intervals(gaps.with_columns(arm=pl.col("scenario") + ": " + pl.col("policy")), "gap",
                     title="simulated gap to the optimum (95 % CI; exact gap in the table)",
                     axis="cost / optimal cost - 1")  # fmt: skip


def kv_loading(headline, gains: pl.DataFrame) -> alt.HConcatChart:
    """Draw SLO attainment per arm of the CALVO headline study beside the paired gain of overlapped KV loading.

    The gain is drawn at each condition (95 % CI). This is notebook 07's chart of
    :func:`workbench.studies.calvo.study` (``headline``) and :func:`workbench.studies.calvo.gains` (``gains``).

    Parameters
    ----------
    headline
        The headline study (its ``summary()`` gives SLO attainment per arm).
    gains
        The paired gains per condition (``rate``, ``nic``, ``loaded_share``, ``gain`` and its CI).

    Returns
    -------
    altair.HConcatChart
        The two :func:`intervals` charts side by side.
    """
    by_load = gains.with_columns(
        arm=pl.format("{}/s burst, {}: {} % loaded", "rate", "nic",
                      (100 * pl.col("loaded_share")).round(0).cast(pl.Int64))
    )  # fmt: skip
    return alt.hconcat(
        intervals(headline.summary(), "slo_attainment",
                  title="SLO attainment (TTFT <= 2 s, TPOT <= 100 ms; 95 % CI)",
                  axis="share of requests meeting the SLO"),
        intervals(by_load, "gain", title="overlap vs blocking (lmetric): paired change (95 % CI)",
                  axis="relative change in SLO attainment"),
    )  # fmt: skip


__all__ = ["allocation_gaps", "bands", "differences", "intervals", "kv_loading", "verdicts"]
