"""Altair chart builders for fleet planning: Pareto fronts, ranked sizing tables, analytic vs simulated counts.

Inputs are the tables of :mod:`workbench.planning` (:func:`~workbench.planning.tradeoff_table`,
:func:`~workbench.planning.pareto_front`, :class:`~workbench.planning.SizingResult`); every point carries hover
details (candidate, GPUs, instances, cost, energy, carbon and latencies).
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import polars as pl

from workbench.errors import ConfigError
from workbench.viz import HEIGHT, WIDTH

#: Axis titles of the planning metrics.
LABELS: dict[str, str] = {
    "usd_per_m_output_tokens": "$ per million output tokens",
    "usd_per_hour": "$ per hour",
    "j_per_output_token": "energy per output token (J)",
    "gco2e_per_1k_output_tokens": "gCO2e per 1k output tokens",
    "ttft_p99_s": "P99 TTFT (s)",
    "tpot_p99_s": "P99 TPOT (s)",
    "ttft_p50_s": "P50 TTFT (s)",
    "gpus": "GPUs",
}
TOOLTIP_COLUMNS = (
    "candidate",
    "gpus",
    "instances",
    "usd_per_hour",
    "usd_per_m_output_tokens",
    "j_per_output_token",
    "gco2e_per_1k_output_tokens",
    "ttft_p99_s",
    "tpot_p99_s",
)


def _tooltip(table: pl.DataFrame) -> list[alt.Tooltip]:
    out = []
    for col in TOOLTIP_COLUMNS:
        if col in table.columns:
            dtype = table.schema[col]
            fmt = ".3g" if dtype.is_float() else None
            out.append(alt.Tooltip(col, title=LABELS.get(col, col), format=fmt) if fmt else alt.Tooltip(col))
    return out


def _check_columns(table: pl.DataFrame, cols: Sequence[str]) -> None:
    missing = [c for c in cols if c not in table.columns]
    if missing:
        raise ConfigError(f"column(s) {missing} not in the table; columns: {', '.join(table.columns)}")


def front_2d(table: pl.DataFrame, x: str, y: str) -> pl.DataFrame:
    """Rows on the two-objective front of ``x`` and ``y`` (both minimised), sorted by ``x`` (step line)."""
    from workbench.planning.pareto import pareto_mask

    ok = table.filter(pl.col("slo_met").fill_null(False)) if "slo_met" in table.columns else table
    mask = pareto_mask(ok.select(pl.col(x).cast(float), pl.col(y).cast(float)).to_numpy())
    return ok.filter(pl.Series(mask)).sort(x, y)


def pareto_chart(
    table: pl.DataFrame,
    x: str = "usd_per_m_output_tokens",
    y: str = "ttft_p99_s",
    *,
    color: str = "topology",
    title: str | None = None,
) -> alt.LayerChart | alt.FacetChart:
    """Scatter of all SLO-meeting points, the Pareto front highlighted, hover details on every point.

    Points with ``pareto = True`` (the front over all objectives of
    :func:`~workbench.planning.pareto_front`) are drawn large and coloured by ``color``; the others small and
    grey. A step line joins the two-objective front of ``x`` and ``y``.
    """
    _check_columns(table, [x, y, color])
    data = table.filter(pl.col("slo_met").fill_null(False)) if "slo_met" in table.columns else table
    data = data.filter(pl.col(x).is_not_null() & pl.col(y).is_not_null())
    if "pareto" not in data.columns:
        data = data.with_columns(pareto=pl.lit(True))
    data = data.with_columns(
        front=pl.when(pl.col("pareto")).then(pl.lit("on the front")).otherwise(pl.lit("dominated"))
    )
    n_front = int(data["pareto"].sum())
    keep = list(dict.fromkeys([x, y, color, "front", *[c for c in TOOLTIP_COLUMNS if c in data.columns]]))
    data = data.select(keep)
    log_x = _log_scale(data[x])
    log_y = _log_scale(data[y])
    xe = alt.X(f"{x}:Q", title=LABELS.get(x, x), scale=alt.Scale(type="log" if log_x else "linear", zero=False))
    ye = alt.Y(f"{y}:Q", title=LABELS.get(y, y), scale=alt.Scale(type="log" if log_y else "linear", zero=False))
    base = alt.Chart(data)
    dominated = (
        base.transform_filter(alt.datum.front == "dominated")
        .mark_circle(size=30, color="#bbbbbb", opacity=0.6)
        .encode(x=xe, y=ye, tooltip=_tooltip(data))
    )
    front = (
        base.transform_filter(alt.datum.front == "on the front")
        .mark_point(size=110, filled=True, opacity=0.95, stroke="black", strokeWidth=0.6)
        .encode(x=xe, y=ye, color=alt.Color(f"{color}:N", title=color), tooltip=_tooltip(data))
    )
    line_data = front_2d(data, x, y).select(x, y)
    line = (
        alt.Chart(line_data)
        .mark_line(interpolate="step-after", color="black", strokeDash=[4, 3])
        .encode(x=xe, y=ye)
    )
    return alt.layer(dominated, line, front).properties(
        width=WIDTH,
        height=HEIGHT,
        title=title
        or f"Trade-off: {LABELS.get(y, y)} vs {LABELS.get(x, x)} ({n_front} of {data.height} on the front)",
    )


def _log_scale(values: pl.Series) -> bool:
    v = values.drop_nulls().to_numpy().astype(float)
    v = v[np.isfinite(v)]
    return bool(v.size and v.min() > 0 and v.max() / v.min() > 30)


def pareto_panels(
    table: pl.DataFrame,
    x: str = "usd_per_m_output_tokens",
    ys: Sequence[str] = ("ttft_p99_s", "j_per_output_token", "gco2e_per_1k_output_tokens"),
    *,
    color: str = "topology",
) -> alt.HConcatChart:
    """One :func:`pareto_chart` per objective in ``ys`` against ``x``, side by side."""
    return alt.hconcat(
        *[
            pareto_chart(table, x, y, color=color, title=LABELS.get(y, y)).properties(width=300, height=240)
            for y in ys
        ]
    ).resolve_scale(color="shared")


def sizing_chart(table: pl.DataFrame, *, top: int = 15) -> alt.LayerChart | alt.FacetChart:
    """Cost per hour of the ``top`` ranked SLO-meeting candidates: analytic bars, simulated ticks."""
    _check_columns(table, ["candidate", "usd_per_hour", "slo_met"])
    rows = table.filter(pl.col("slo_met").fill_null(False)).head(top)
    sim = "sim_usd_per_hour" in rows.columns
    cols = ["candidate", "usd_per_hour", *([c for c in ("rank",) if c in rows.columns])]
    data = rows.select(
        *cols,
        *[c for c in TOOLTIP_COLUMNS if c in rows.columns and c not in cols],
        *(["sim_usd_per_hour", "sim_instances"] if sim else []),
    )
    order = data["candidate"].to_list()
    y = alt.Y("candidate:N", sort=order, title=None, axis=alt.Axis(labelLimit=320))
    bars = (
        alt.Chart(data)
        .mark_bar(color="#4c78a8")
        .encode(
            x=alt.X("usd_per_hour:Q", title="$ per hour (bar: analytic, tick: simulated)"),
            y=y,
            tooltip=_tooltip(data),
        )
    )
    layers = [bars]
    if sim:
        ticks = (
            alt.Chart(data.filter(pl.col("sim_usd_per_hour").is_not_null()))
            .mark_tick(color="#e45756", thickness=3, size=16)
            .encode(x="sim_usd_per_hour:Q", y=y, tooltip=["candidate", "sim_instances", "sim_usd_per_hour"])
        )
        layers.append(ticks)
    return alt.layer(*layers).properties(
        width=WIDTH, height=max(120, 18 * data.height), title="Cheapest candidates meeting the SLO"
    )


def check_chart(table: pl.DataFrame) -> alt.LayerChart | alt.FacetChart:
    """Analytic vs simulated instance counts of the candidates the simulation checked (dumbbell)."""
    _check_columns(table, ["candidate", "instances", "sim_instances"])
    data = table.filter(pl.col("sim_instances").is_not_null()).select(
        "candidate", pl.col("instances").alias("analytic"), pl.col("sim_instances").alias("simulated")
    )
    long = data.unpivot(index="candidate", variable_name="method", value_name="instances")
    y = alt.Y("candidate:N", title=None, sort=data["candidate"].to_list(), axis=alt.Axis(labelLimit=320))
    rule = alt.Chart(data).mark_rule(color="#999999").encode(x="analytic:Q", x2="simulated:Q", y=y)
    dots = (
        alt.Chart(long)
        .mark_point(filled=True, size=90)
        .encode(
            x=alt.X("instances:Q", title="instances"),
            y=y,
            color=alt.Color("method:N", title=None, scale=alt.Scale(range=["#4c78a8", "#e45756"])),
            tooltip=["candidate", "method", "instances"],
        )
    )
    return alt.layer(rule, dots).properties(
        width=WIDTH, height=max(80, 24 * data.height), title="Instances: analytic screen vs simulation"
    )


def _sizing_parts(sizing: pl.DataFrame, top: int) -> list:
    parts: list = [sizing_chart(sizing, top=top)]
    if "sim_instances" in sizing.columns and sizing["sim_instances"].is_not_null().any():
        parts.append(check_chart(sizing))
    return parts


def sizing_overview(sizing: pl.DataFrame, *, top: int = 10) -> alt.VConcatChart:
    """Stack the sizing bars over the analytic-vs-simulated counts (when any candidate was checked).

    This is the ``fleet_sizing`` figure and notebook 05's chart of one sizing table (``plan.result.table``).
    """
    return alt.vconcat(*_sizing_parts(sizing, top)).resolve_scale(color="independent")


def plan_overview(sizing: pl.DataFrame, tradeoffs: pl.DataFrame, *, top: int = 10) -> alt.VConcatChart:
    """Stack the :func:`sizing_overview` and the Pareto front of one plan.

    These are the charts of one :class:`~workbench.planning.workflow.Plan` (``plan.result.table``,
    ``plan.tradeoffs``) that the sizing explorer shows.
    """
    return alt.vconcat(*_sizing_parts(sizing, top), pareto_chart(tradeoffs)).resolve_scale(color="independent")
