"""Charts of the what-if tools.

Planning-mode ranking, the SLO cost of grid power cuts, spare instances against the probability of meeting
the SLO, and the arrival-rate sweep across GPU types.

Every builder takes a polars table produced by :mod:`workbench.whatif` and returns an altair chart.
"""

from __future__ import annotations

import altair as alt
import polars as pl

from workbench.viz import HEIGHT, WIDTH
from workbench.whatif.modes import target_text

_METRIC_TITLES = {
    "tokens_per_s": "output tokens/s at the SLO",
    "requests_per_s": "requests/s at the SLO",
    "tokens_per_s_per_musd": "output tokens/s per $1M TCO",
    "kw_per_musd": "facility kW per $1M TCO",
    "tokens_per_j_per_musd": "output tokens/J per $1M TCO",
    "usd_per_mtok": "TCO $ per 1M output tokens",
    "tco_usd": "TCO ($)",
    "facility_kw": "facility power (kW)",
    "instances": "instances",
    "usd_per_hour": "cost ($/hour, all GPUs)",
    "usd_per_m_output_tokens": "$ per 1M output tokens",
    "gpu_j_per_output_token": "J per output token (GPUs only)",
    "facility_j_per_output_token": "J per output token (facility)",
    "ttft_p99_s": "P99 TTFT (s)",
    "tpot_p99_s": "P99 TPOT (s)",
}


#: Default panels of :func:`rate_sweep_chart`.
SWEEP_METRICS = ("instances", "usd_per_hour", "usd_per_m_output_tokens", "facility_j_per_output_token")


def _finite(table: pl.DataFrame) -> pl.DataFrame:
    """NaN and infinite floats as nulls (JSON has no NaN; unreachable latencies are infinite)."""
    floats = [c for c, t in table.schema.items() if t.is_float()]
    return table.with_columns(pl.when(pl.col(c).is_finite()).then(pl.col(c)).alias(c) for c in floats)


def mode_ranking(table: pl.DataFrame, metric: str | None = None) -> alt.Chart:
    """Horizontal bars of one metric per GPU type, best first, labelled with nodes and GPUs.

    Parameters
    ----------
    table
        Output of :func:`workbench.whatif.plan`.
    metric
        Column to show (default: the table's ``rank_by``).
    """
    metric = metric or table["rank_by"][0]
    mode, target = table["mode"][0], table["target"][0]
    data = (
        _finite(table)
        .filter(pl.col(metric).is_not_null())
        .with_columns(label=pl.format("{} nodes, {} GPUs", pl.col("nodes"), pl.col("gpus")))
    )
    what = target_text(mode, target, table["target_unit"][0])
    title = f"{mode} mode, {what}: ranked by {_METRIC_TITLES.get(metric, metric)}"
    base = alt.Chart(data, width=WIDTH, height=max(60, 40 * data.height), title=title).encode(
        y=alt.Y("gpu:N", sort=alt.EncodingSortField("rank", order="ascending"), title="GPU"),
        x=alt.X(f"{metric}:Q", title=_METRIC_TITLES.get(metric, metric)),
    )
    bars = base.mark_bar().encode(
        color=alt.Color("gpu:N", legend=None),
        tooltip=["rank:O", "gpu:N", "nodes:Q", "gpus:Q", "instances:Q",
                 alt.Tooltip("tokens_per_s:Q", format=",.0f"), alt.Tooltip("facility_kw:Q", format=",.1f"),
                 alt.Tooltip("tco_usd:Q", format="$,.0f"), alt.Tooltip("usd_per_mtok:Q", format="$.3f")],
    )  # fmt: skip
    text = base.mark_text(align="left", dx=4).encode(text="label:N")
    return bars + text


def flex_curve(result) -> alt.LayerChart | alt.FacetChart:
    """Draw the SLO ratio (worst P99 latency / target) against the power cut of the result's objective.

    The objective is the ceiling or the mean power; the SLO line and the chosen cut are marked.

    Parameters
    ----------
    result
        A :class:`workbench.whatif.GridFlexResult`.
    """
    col = result.objective_column
    what = "mean power drawn" if result.objective == "mean" else "power ceiling"
    opts = _finite(
        result.options.with_columns(
            pl.col("slo_ratio").clip(upper_bound=5.0).alias("slo_ratio_shown"),
            pl.format("cap {}, clock {}", pl.col("max_num_seqs"), pl.col("clock")).alias("setting"),
        )
    )
    title = f"power cut (share of the fleet's {what}, predicted)"
    x = alt.X(f"{col}:Q", title=title, axis=alt.Axis(format="%"))
    y = alt.Y("slo_ratio_shown:Q", title="worst P99 latency / SLO target (capped at 5)")
    points = (
        alt.Chart(opts, width=WIDTH, height=HEIGHT, title=f"Grid flexibility: SLO cost of deeper cuts ({what})")
        .mark_circle(size=40, opacity=0.6)
        .encode(x=x, y=y, color=alt.Color("clock:O", title="GPU clock"),
                tooltip=["setting:N", alt.Tooltip("ceiling_reduction:Q", format=".1%", title="ceiling cut"),
                         alt.Tooltip("mean_reduction:Q", format=".1%", title="mean-power cut"),
                         alt.Tooltip("ceiling_kw:Q", format=".2f"), alt.Tooltip("mean_kw:Q", format=".2f"),
                         alt.Tooltip("ttft_p99_s:Q", format=".3f"), alt.Tooltip("tpot_p99_s:Q", format=".3f")])
    )  # fmt: skip
    curve = _finite(
        result.curve.with_columns(pl.col("slo_ratio").clip(upper_bound=5.0).alias("slo_ratio_shown"))
    )
    line = (
        alt.Chart(curve)
        .mark_line(color="black", interpolate="step-after")
        .encode(
            x="cut:Q",
            y="slo_ratio_shown:Q",
            tooltip=[alt.Tooltip("cut:Q", format=".0%"), "max_num_seqs:Q", "clock:Q"],
        )
    )
    slo = alt.Chart(pl.DataFrame({"y": [1.0]})).mark_rule(color="red", strokeDash=[4, 4]).encode(y="y:Q")
    best = pl.DataFrame({col: [float(result.best[col])]})
    chosen = alt.Chart(best).mark_rule(color="green").encode(x=f"{col}:Q")
    return alt.layer(points, line, slo, chosen)


def spares_chart(table: pl.DataFrame, target: float) -> alt.LayerChart | alt.FacetChart:
    """Probability of keeping enough instances up against the number of spares, with the target line.

    Parameters
    ----------
    table
        Output of :func:`workbench.whatif.margin_table`.
    target
        The probability target.
    """
    bars = (
        alt.Chart(table, width=WIDTH * 0.7, height=HEIGHT, title="Spare instances for the SLO under failures")
        .mark_bar()
        .encode(
            x=alt.X("spares:O", title="spare instances"),
            y=alt.Y("p_slo:Q", title="P(enough instances up)", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("meets_target:N", title="meets target"),
            tooltip=["spares:O", "instances:Q", "gpus:Q", alt.Tooltip("p_slo:Q", format=".5f"),
                     alt.Tooltip("usd_per_hour:Q", format="$,.2f")],
        )
    )  # fmt: skip
    rule = alt.Chart(pl.DataFrame({"y": [target]})).mark_rule(color="red", strokeDash=[4, 4]).encode(y="y:Q")
    return alt.layer(bars, rule)


def rate_sweep_chart(
    table: pl.DataFrame,
    metrics: tuple[str, ...] = SWEEP_METRICS,
) -> alt.ConcatChart:
    """One panel per metric against the arrival rate, one line per GPU type.

    Parameters
    ----------
    table
        Output of :func:`workbench.whatif.rate_sweep`.
    metrics
        Columns to plot (energy: ``facility_j_per_output_token`` by default, GPUs plus node baseline, times
        PUE; ``gpu_j_per_output_token`` for GPUs only).
    """
    panels = [
        alt.Chart(_finite(table).filter(pl.col(m).is_not_null()), width=WIDTH * 0.55, height=HEIGHT * 0.7,
                  title=_METRIC_TITLES.get(m, m))
        .mark_line(point=True)
        .encode(
            x=alt.X("qps:Q", title="arrival rate (requests/s)"),
            y=alt.Y(f"{m}:Q", title=_METRIC_TITLES.get(m, m)),
            color=alt.Color("gpu:N", title="GPU"),
            tooltip=["gpu:N", "tp:Q", "qps:Q", "instances:Q", "gpus:Q", alt.Tooltip(f"{m}:Q", format=",.3f")],
        )
        for m in metrics
    ]  # fmt: skip
    return alt.concat(*panels, columns=2).resolve_scale(color="shared")
