"""Charts of one simulated instance: latency percentiles, batch-size and KV-use timeline, latency vs load."""

from __future__ import annotations

import altair as alt
import polars as pl

from workbench.sim.result import SimResult
from workbench.viz import HEIGHT, WIDTH

_METRICS = {"ttft": "TTFT", "tpot": "TPOT", "e2e": "end-to-end"}
_CURVE_TITLES = {
    "ttft_mean_s": "mean TTFT",
    "ttft_p99_s": "P99 TTFT",
    "e2e_mean_s": "mean end-to-end",
    "tpot_mean_s": "mean TPOT",
}


def latency_percentiles(summary: pl.DataFrame) -> alt.HConcatChart:
    """Bars of P50/P90/P99 TTFT, TPOT and end-to-end latency, one panel per metric.

    Parameters
    ----------
    summary
        One row of :func:`workbench.sim.summary`.
    """
    row = summary.row(0, named=True)
    data = pl.DataFrame(
        [
            {"metric": label, "percentile": f"P{p}", "seconds": row[f"{m}_p{p}_s"]}
            for m, label in _METRICS.items()
            for p in (50, 90, 99)
            if row.get(f"{m}_p{p}_s") is not None
        ]
    )
    panels = [
        alt.Chart(data.filter(pl.col("metric") == label), width=WIDTH / 3, height=HEIGHT, title=label)
        .mark_bar()
        .encode(
            x=alt.X("percentile:N", title=None, sort=["P50", "P90", "P99"], axis=alt.Axis(labelAngle=0)),
            y=alt.Y("seconds:Q", title="seconds"),
            color=alt.Color("percentile:N", legend=None, sort=["P50", "P90", "P99"]),
            tooltip=["metric:N", "percentile:N", alt.Tooltip("seconds:Q", format=".4f")],
        )
        for label in _METRICS.values()
    ]
    return alt.hconcat(*panels)


def timeline(
    result: SimResult, instance: int = 0, *, start_s: float | None = None, end_s: float | None = None
) -> alt.VConcatChart:
    """Batch size and KV-cache use of one instance over time (exact step functions from the segments).

    Parameters
    ----------
    result
        A simulation result.
    instance
        Instance index.
    start_s, end_s
        Time window (default: the whole run; keep it short for long runs, each segment is one step).
    """
    seg = result.segments.filter(pl.col("instance") == instance)
    if start_s is not None:
        seg = seg.filter(pl.col("end_s") > start_s)
    if end_s is not None:
        seg = seg.filter(pl.col("start_s") < end_s)
    cap = result.instances.filter(pl.col("instance") == instance)["kv_capacity_blocks"]
    capacity = float(cap[0]) if cap.len() else 1.0
    data = seg.select(
        pl.col("start_s").alias("time_s"),
        pl.col("batch_size"),
        (100.0 * pl.col("kv_blocks_used") / capacity).alias("kv_use_pct"),
        pl.col("state"),
    )
    base = alt.Chart(data, width=WIDTH * 1.5, height=HEIGHT * 0.6)
    batch = base.mark_line(interpolate="step-after").encode(
        x=alt.X("time_s:Q", title="time (s)"),
        y=alt.Y("batch_size:Q", title="batch size (sequences)"),
        tooltip=[alt.Tooltip("time_s:Q", format=".3f"), "batch_size:Q", "state:N"],
    )
    kv = base.mark_line(interpolate="step-after", color="#e45756").encode(
        x=alt.X("time_s:Q", title="time (s)"),
        y=alt.Y("kv_use_pct:Q", title="KV cache used (%)", scale=alt.Scale(domain=[0, 100])),
        tooltip=[alt.Tooltip("time_s:Q", format=".3f"), alt.Tooltip("kv_use_pct:Q", format=".1f")],
    )
    return alt.vconcat(
        batch.properties(title=f"instance {instance}: running batch"),
        kv.properties(title=f"instance {instance}: KV-cache blocks in use (at step start)"),
    )


def middle_timeline(result: SimResult, instance: int = 0, *, span_s: float = 30.0) -> alt.VConcatChart:
    """Draw the :func:`timeline` of ``span_s`` seconds from the middle of the run (the median arrival).

    This is the ``instance_timeline`` figure and notebook 02's chart.
    """
    import numpy as np

    from workbench.config import require_positive

    require_positive("span_s", span_s)
    mid = float(np.median(result.requests["arrival_s"].to_numpy()))
    return timeline(result, instance, start_s=mid, end_s=mid + span_s)


TITLE = "latency vs load: simulation (solid) and analytic M/G/c model (dashed)"


def latency_vs_load(curve: pl.DataFrame, *, log_y: bool = True) -> alt.Chart:
    """Latency against arrival rate: simulation (solid) next to the analytic model (dashed).

    Parameters
    ----------
    curve
        The table of :func:`workbench.sim.curves.load_curve`.
    log_y
        Logarithmic latency axis.
    """
    data = curve.with_columns(pl.col("metric").replace_strict(_CURVE_TITLES, default=pl.col("metric")))
    return (
        alt.Chart(data, width=WIDTH, height=HEIGHT, title=TITLE)
        .mark_line(point=True)
        .encode(
            x=alt.X("arrival_rate:Q", title="arrival rate (requests/s)"),
            y=alt.Y("value:Q", title="seconds", scale=alt.Scale(type="log") if log_y else alt.Scale()),
            color=alt.Color("metric:N", title="metric"),
            strokeDash=alt.StrokeDash("source:N", sort=["simulation", "analytic"], legend=None),
            tooltip=[
                "source:N",
                "metric:N",
                alt.Tooltip("load:Q", format=".0%"),
                alt.Tooltip("arrival_rate:Q", format=".2f"),
                alt.Tooltip("value:Q", format=".4f"),
            ],
        )
    )
