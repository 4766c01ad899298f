"""Characterisation of workloads: :func:`describe` and the small series the charts plot.

Definitions
-----------
rate
    requests / (last arrival - first arrival), in requests per second.
inter-arrival CV
    standard deviation / mean of the gaps between consecutive arrivals (1 for a Poisson process).
prefix-reuse ratio
    share of prompt blocks (``prefix_hashes`` entries) whose hash was already seen in an earlier request, i.e.
    the best-case hit ratio of an unbounded shared prefix cache.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from workbench.config import as_float
from workbench.traces.schema import Trace

PERCENTILES = (50, 90, 99)


def interarrival_cv(arrivals: np.ndarray | pl.Series) -> float:
    """Coefficient of variation of the gaps between sorted arrival times (NaN with < 3 arrivals).

    Parameters
    ----------
    arrivals
        Sorted arrival times in seconds.

    Returns
    -------
    float
        Standard deviation over mean of the gaps.
    """
    gaps = np.diff(np.asarray(arrivals, dtype=float))
    if gaps.size < 2 or gaps.mean() <= 0:
        return float("nan")
    return float(gaps.std() / gaps.mean())


def block_reuse(trace: Trace) -> pl.DataFrame:
    """Per request: ``arrival_s``, ``blocks`` and ``reused_blocks`` (blocks whose hash appeared earlier).

    Requests without hashes count zero blocks.
    """
    df = trace.requests.select("request_id", "arrival_s", "prefix_hashes").with_row_index("__i")
    exploded = df.select("__i", pl.col("prefix_hashes").alias("h")).explode("h").drop_nulls("h")
    per = (
        exploded.with_columns(seen=~pl.col("h").is_first_distinct())
        .group_by("__i")
        .agg(blocks=pl.len(), reused_blocks=pl.col("seen").sum())
    )
    return (
        df.select("__i", "arrival_s")
        .join(per, on="__i", how="left")
        .sort("__i")
        .select("arrival_s", pl.col("blocks").fill_null(0), pl.col("reused_blocks").fill_null(0))
    )


def _one(trace: Trace) -> dict:
    df = trace.requests
    row: dict = {"trace": trace.name, "requests": df.height}
    if trace.has_arrivals and df.height:
        row["duration_s"] = trace.duration_s
        row["rate_rps"] = df.height / trace.duration_s if trace.duration_s > 0 else float("nan")
        row["iat_cv"] = interarrival_cv(df["arrival_s"].to_numpy())
    else:
        row.update(duration_s=None, rate_rps=None, iat_cv=None)
    for col, short in (("prompt_tokens", "prompt"), ("output_tokens", "output")):
        values = df[col].to_numpy()
        row[f"{short}_mean"] = float(values.mean())
        # inverted CDF: the smallest length x with share(length <= x) >= p (an observed value)
        qs = np.quantile(values, [p / 100 for p in PERCENTILES], method="inverted_cdf")
        row.update({f"{short}_p{p}": float(q) for p, q in zip(PERCENTILES, qs, strict=True)})
    if trace.has_prefix_hashes:
        reuse = block_reuse(trace)
        total = int(reuse["blocks"].sum())
        row["prefix_reuse"] = int(reuse["reused_blocks"].sum()) / total if total else 0.0
    else:
        row["prefix_reuse"] = None
    sessions = df["session_id"].drop_nulls()
    row["sessions"] = sessions.n_unique() if sessions.len() else None
    row["turns_per_session"] = sessions.len() / sessions.n_unique() if sessions.len() else None
    classes = df["request_class"].drop_nulls()
    row["classes"] = classes.n_unique() if classes.len() else None
    return row


DESCRIBE_SCHEMA: dict[str, pl.DataType] = {
    "trace": pl.Utf8(),
    "requests": pl.Int64(),
    "duration_s": pl.Float64(),
    "rate_rps": pl.Float64(),
    "iat_cv": pl.Float64(),
    **{
        f"{s}_{k}": pl.Float64()
        for s in ("prompt", "output")
        for k in ("mean", *(f"p{p}" for p in PERCENTILES))
    },
    "prefix_reuse": pl.Float64(),
    "sessions": pl.Int64(),
    "turns_per_session": pl.Float64(),
    "classes": pl.Int64(),
}


def describe(trace: Trace | Sequence[Trace]) -> pl.DataFrame:
    """Summary statistics of one or more traces, one row per trace.

    Columns: ``trace, requests, duration_s, rate_rps, iat_cv, prompt_mean, prompt_p50, prompt_p90,
    prompt_p99, output_mean, output_p50, output_p90, output_p99, prefix_reuse, sessions,
    turns_per_session, classes`` (nulls where a trace lacks the information, e.g. rate of a length-only table).

    Parameters
    ----------
    trace
        A trace or a sequence of traces.


    Returns
    -------
    polars.DataFrame
        One row per trace, with the columns above.

    Examples
    --------
    >>> from workbench import traces
    >>> traces.describe(traces.load("azure_code"))["requests"].item()
    8819
    """
    items = [trace] if isinstance(trace, Trace) else list(trace)
    return pl.DataFrame([_one(t) for t in items], schema=DESCRIBE_SCHEMA)


def rate_series(trace: Trace, bin_s: float | None = None) -> pl.DataFrame:
    """Return the requests per second in consecutive bins: columns ``t_s`` (bin start), ``rate_rps``.

    ``bin_s`` defaults to about 1/60 of the duration (at least 1 s).

    Parameters
    ----------
    trace
        A trace with arrival times.
    bin_s
        Bin width in seconds.

    Returns
    -------
    polars.DataFrame
        Columns ``t_s`` and ``rate_rps``, one row per bin from 0 to the last arrival.
    """
    bin_s = bin_s or max(1.0, trace.duration_s / 60)
    t = trace.requests["arrival_s"]
    n_bins = int(np.floor(as_float(t.max() or 0.0) / bin_s)) + 1 if len(t) else 0
    counts = np.bincount((t.to_numpy() // bin_s).astype(np.int64), minlength=n_bins) if n_bins else np.zeros(0)
    return pl.DataFrame({"t_s": np.arange(n_bins) * bin_s, "rate_rps": counts / bin_s})


def summary_table(table: pl.DataFrame) -> pl.DataFrame:
    """Transpose a :func:`describe` table to ``metric`` rows and one column per trace (for printing).

    Parameters
    ----------
    table
        A :func:`describe` table.

    Returns
    -------
    polars.DataFrame
        Column ``metric`` and one column per trace, values rounded to 3 decimals.
    """
    names = table["trace"].cast(pl.Utf8).to_list()
    body = table.drop("trace").cast(pl.Float64)
    out = body.transpose(include_header=True, header_name="metric", column_names=names)
    return out.with_columns(pl.col(n).round(3) for n in names)
