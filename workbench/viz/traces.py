"""Altair chart builders for workloads: rate over time, length CDFs, inter-arrival CDF, prefix reuse.

Each builder takes one :class:`~workbench.traces.Trace` or a list (one colour per trace) and returns an altair
chart whose data are small summaries (at most a few hundred points per trace), so specs stay small.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import altair as alt
import numpy as np
import polars as pl

from workbench.config import as_float
from workbench.traces import Trace
from workbench.traces.describe import block_reuse, rate_series
from workbench.viz import HEIGHT, WIDTH

LEVELS = np.linspace(0.0, 1.0, 201)
COLOR = alt.Color("trace:N", title="trace")
X_MIN = 1e-4


def _list(traces: Trace | Sequence[Trace]) -> list[Trace]:
    return [traces] if isinstance(traces, Trace) else list(traces)


def _time_unit(traces: list[Trace]) -> tuple[str, float]:
    longest = max((t.duration_s for t in traces if t.has_arrivals), default=0.0)
    return ("h", 3600.0) if longest > 6 * 3600 else ("min", 60.0) if longest > 600 else ("s", 1.0)


def nice_bin(seconds: float) -> float:
    """Round a bin width up to 1, 2, 5, 10, 15, 30 s, 1, 2, 5, 10, 15, 30 min, 1, 2, 6, 12, 24 h."""
    steps = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)
    return float(next((s for s in steps if s >= seconds), steps[-1]))


def _ecdf(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(value, cumulative share) at 201 evenly spaced quantile levels."""
    return np.quantile(values, LEVELS, method="inverted_cdf"), LEVELS


def rate_chart(traces: Trace | Sequence[Trace], bin_s: float | None = None) -> alt.Chart:
    """Request rate (req/s) over time, one line per trace, in bins of ``bin_s`` (default ~1/60 of duration).

    Traces without arrival times (length-only tables) or without requests are left out; when none is left
    the chart is empty and its title says why.
    """
    items = [t for t in _list(traces) if t.has_arrivals and len(t)]
    unit, div = _time_unit(items)
    if not items:
        data = pl.DataFrame(schema={"trace": pl.Utf8, "t": pl.Float64, "rate_rps": pl.Float64})
        title = "Request rate (no arrival times in these traces)"
    else:
        bin_s = bin_s or nice_bin(max(t.duration_s for t in items) / 60)
        data = pl.concat(
            [
                rate_series(t, bin_s).with_columns((pl.col("t_s") / div).alias("t"), trace=pl.lit(t.name))
                for t in items
            ]
        ).select("trace", "t", "rate_rps")
        title = f"Request rate ({bin_s:g}-s bins)"
    return (
        alt.Chart(data, title=title)
        .mark_line(interpolate="step-after")
        .encode(
            x=alt.X("t:Q", title=f"time ({unit})"),
            y=alt.Y("rate_rps:Q", title="requests / s"),
            color=COLOR,
        )
        .properties(width=WIDTH, height=HEIGHT)
    )


def length_cdf_chart(traces: Trace | Sequence[Trace]) -> alt.FacetChart:
    """Empirical CDFs of prompt and output lengths (log x), one panel each, one line per trace."""
    rows = []
    for t in _list(traces):
        for col, label in (("prompt_tokens", "prompt tokens"), ("output_tokens", "output tokens")):
            x, y = _ecdf(t.requests[col].to_numpy())
            rows.append(pl.DataFrame({"trace": t.name, "length": label, "tokens": x.astype(float), "cdf": y}))
    data = pl.concat(rows)
    return (
        alt.Chart(data)
        .mark_line()
        .encode(
            x=alt.X("tokens:Q", scale=alt.Scale(type="log"), title="tokens (log scale)"),
            y=alt.Y("cdf:Q", title="share of requests ≤ x"),
            color=COLOR,
        )
        .properties(width=WIDTH * 0.75, height=HEIGHT)
        .facet(column=alt.Column("length:N", title=None, sort=["prompt tokens", "output tokens"]))
        .resolve_scale(x="independent")
        .properties(title="Length distributions (CDF)")
    )


def iat_cdf_chart(traces: Trace | Sequence[Trace]) -> alt.LayerChart:
    """CDF of inter-arrival gaps divided by their mean, against the exponential (Poisson) CDF ``1 - e^-x``.

    A curve above the dashed line at small x and below it at large x means bursty (CV > 1) arrivals. Gaps
    below ``X_MIN`` x the mean (batched arrivals) are drawn at the left edge. Traces without arrival times,
    with fewer than 3 requests or with all requests at one instant are left out; when none is left only the
    reference curve is drawn and the title says why.
    """
    rows = [pl.DataFrame(schema={"trace": pl.Utf8, "x": pl.Float64, "cdf": pl.Float64})]
    for t in _list(traces):
        if not t.has_arrivals or len(t) < 3 or t.duration_s <= 0:
            continue
        gaps = np.diff(t.requests["arrival_s"].to_numpy())
        x, y = _ecdf(gaps / gaps.mean())
        rows.append(pl.DataFrame({"trace": t.name, "x": x, "cdf": y}).filter(pl.col("x") > 0))
    data = pl.concat(rows)
    title = "Inter-arrival CDF vs exponential (dashed)"
    if data.height == 0:
        title += ": no trace with 3 or more timed requests"
    hi = max(as_float(data["x"].max() or 0.0), 10.0)
    grid = np.geomspace(X_MIN, hi, 120)
    expo = pl.DataFrame({"x": grid, "cdf": 1 - np.exp(-grid), "trace": "exponential (Poisson)"})
    scale = alt.Scale(type="log", domain=[X_MIN, hi], clamp=True)
    base = (
        alt.Chart(data)
        .mark_line()
        .encode(
            x=alt.X("x:Q", scale=scale, title="inter-arrival gap / mean gap (log scale)"),
            y=alt.Y("cdf:Q", title="share of gaps ≤ x"),
            color=COLOR,
        )
    )
    ref = (
        alt.Chart(expo)
        .mark_line(strokeDash=[5, 4], color="black")
        .encode(x=alt.X("x:Q", scale=scale), y="cdf:Q", detail="trace:N")
    )
    return (base + ref).properties(width=WIDTH, height=HEIGHT, title=title)


def prefix_reuse_chart(traces: Trace | Sequence[Trace], bin_s: float | None = None) -> alt.Chart:
    """Share of prompt blocks already seen earlier, per time bin, for traces that have prefix hashes."""
    items = [t for t in _list(traces) if t.has_arrivals and t.has_prefix_hashes]
    if not items:
        data = pl.DataFrame(schema={"trace": pl.Utf8, "t": pl.Float64, "reuse": pl.Float64})
        unit, bin_s = "s", bin_s or 1.0
        title = "Prefix reuse over time (no prefix hashes in these traces)"
    else:
        unit, div = _time_unit(items)
        bin_s = bin_s or nice_bin(max(t.duration_s for t in items) / 40)
        parts = []
        for t in items:
            r = block_reuse(t).with_columns((pl.col("arrival_s") // bin_s * bin_s / div).alias("t"))
            parts.append(
                r.group_by("t")
                .agg(reuse=pl.col("reused_blocks").sum() / pl.col("blocks").sum())
                .sort("t")
                .with_columns(trace=pl.lit(t.name))
            )
        data = pl.concat(parts).select("trace", "t", "reuse")
        title = f"Prefix reuse over time ({bin_s:g}-s bins)"
    return (
        alt.Chart(data, title=title)
        .mark_line(point=True)
        .encode(
            x=alt.X("t:Q", title=f"time ({unit})"),
            y=alt.Y("reuse:Q", title="reused prompt blocks (share)", scale=alt.Scale(domain=[0, 1])),
            color=COLOR,
        )
        .properties(width=WIDTH, height=HEIGHT)
    )


#: Chart builders by short name (used by the CLI demo and the widgets).
CHARTS: dict[str, Callable[[Trace | Sequence[Trace]], alt.TopLevelMixin]] = {
    "rate": rate_chart,
    "lengths": length_cdf_chart,
    "interarrival": iat_cdf_chart,
    "prefix_reuse": prefix_reuse_chart,
}
