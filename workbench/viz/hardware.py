"""Charts of the performance models: roofline curves and calibration parity plots.

Builders take polars tables from :mod:`workbench.hardware.curves` (``decode_curve``, ``prefill_curve``) or a
profile with predictions, and return altair charts.
"""

from __future__ import annotations

import altair as alt
import polars as pl

from workbench.config import as_float
from workbench.viz import HEIGHT, WIDTH


def decode_roofline(curve: pl.DataFrame) -> alt.HConcatChart:
    """Decode iteration time and throughput against batch size (log-log), one colour per configuration.

    Parameters
    ----------
    curve
        Columns ``config, batch, iteration_ms, tokens_per_s`` (:func:`workbench.hardware.curves.decode_curve`).
    """
    base = alt.Chart(curve, width=WIDTH * 0.8, height=HEIGHT).encode(
        x=alt.X("batch:Q", title="decode batch size (sequences)", scale=alt.Scale(type="log", base=2)),
        color=alt.Color("config:N", title="configuration", legend=alt.Legend(labelLimit=320)),
        tooltip=[
            "config:N",
            "batch:Q",
            alt.Tooltip("iteration_ms:Q", format=".2f"),
            alt.Tooltip("tokens_per_s:Q", format=",.0f"),
        ],
    )
    time = (
        base.mark_line(point=True)
        .encode(y=alt.Y("iteration_ms:Q", title="iteration time (ms)", scale=alt.Scale(type="log")))
        .properties(title="Decode iteration time")
    )
    rate = (
        base.mark_line(point=True)
        .encode(y=alt.Y("tokens_per_s:Q", title="output tokens / s", scale=alt.Scale(type="log")))
        .properties(title="Decode throughput")
    )
    return alt.hconcat(time, rate).resolve_scale(color="shared")


def prefill_roofline(curve: pl.DataFrame) -> alt.Chart:
    """Prefill time against prompt length (log-log), one colour per configuration.

    Parameters
    ----------
    curve
        Columns ``config, tokens, prefill_ms`` (:func:`workbench.hardware.curves.prefill_curve`).
    """
    return (
        alt.Chart(curve, width=WIDTH, height=HEIGHT, title="Prefill time of one prompt")
        .mark_line(point=True)
        .encode(
            x=alt.X("tokens:Q", title="prompt tokens", scale=alt.Scale(type="log", base=2)),
            y=alt.Y("prefill_ms:Q", title="prefill time (ms)", scale=alt.Scale(type="log")),
            color=alt.Color("config:N", title="configuration", legend=alt.Legend(labelLimit=320)),
            tooltip=["config:N", "tokens:Q", alt.Tooltip("prefill_ms:Q", format=".1f")],
        )
    )


def calibration_parity(frame: pl.DataFrame, *, color: str = "kind") -> alt.LayerChart:
    """Predicted against measured iteration time (log-log) with the y = x line.

    Parameters
    ----------
    frame
        Columns ``time_s`` (measured), ``pred_s`` (predicted) and ``color`` (e.g. ``kind``).
    color
        Column that colours the points.
    """
    data = frame.with_columns(
        (pl.col("time_s") * 1e3).alias("measured_ms"), (pl.col("pred_s") * 1e3).alias("predicted_ms")
    )
    lo, hi = as_float(data["measured_ms"].min()), as_float(data["measured_ms"].max())
    scale = alt.Scale(type="log", domain=[lo / 1.5, hi * 1.5], nice=False)
    points = (
        alt.Chart(data, width=HEIGHT * 1.3, height=HEIGHT * 1.3, title="Calibration: predicted vs measured")
        .mark_circle(size=30, opacity=0.6)
        .encode(
            x=alt.X("measured_ms:Q", title="measured (ms)", scale=scale),
            y=alt.Y("predicted_ms:Q", title="predicted (ms)", scale=scale),
            color=alt.Color(f"{color}:N", title=color),
            tooltip=[
                f"{color}:N",
                alt.Tooltip("measured_ms:Q", format=".1f"),
                alt.Tooltip("predicted_ms:Q", format=".1f"),
            ],
        )
    )
    diagonal = (
        alt.Chart(pl.DataFrame({"measured_ms": [lo / 1.5, hi * 1.5], "predicted_ms": [lo / 1.5, hi * 1.5]}))
        .mark_line(color="gray", strokeDash=[4, 4])
        .encode(x="measured_ms:Q", y="predicted_ms:Q")
    )
    return diagonal + points
