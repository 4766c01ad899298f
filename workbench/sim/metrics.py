"""Metrics of :class:`~workbench.sim.result.SimResult` tables.

:func:`summary` (latency percentiles, throughput, SLO attainment, utilisation), the fleet comparisons
(:func:`summarize`, :func:`compare`, :func:`latency_cdf`, :func:`instance_stats`) and the time series
(:func:`gpu_hours`, :func:`instance_count`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from workbench.config import require_positive
from workbench.sim.result import REQUEST_SCHEMA, SimResult

PERCENTILES = (50, 90, 99)


def summary(
    result: SimResult, ttft_slo: float | None = None, tpot_slo: float | None = None, *, by: str | None = None
) -> pl.DataFrame:
    """One row of headline metrics (or one per ``by`` group, e.g. ``by="pool"``).

    Parameters
    ----------
    result
        A simulation result.
    ttft_slo, tpot_slo
        Targets in seconds for SLO attainment and goodput (``None``: not checked). A request meets the SLO
        when it finished and meets every given target (TPOT is not checked for one-token outputs);
        rejected requests never meet it.
    by
        Optional request column to group by (``"pool"``, ``"instance"``).

    Returns
    -------
    polars.DataFrame
        ``requests``, ``finished``, ``rejected``, ``ttft_p50_s`` ... ``e2e_p99_s`` (also ``tpot_*``),
        ``queue_mean_s``, ``duration_s`` (first arrival to last finish), ``throughput_tok_s`` (output
        tokens/s), ``input_tok_s``, ``request_rate``, ``slo_attainment``, ``goodput_req_s``,
        ``utilization`` (busy share of the instances' on time), ``preemptions``, ``prefix_hit_rate``
        (cached / prompt tokens at admission), ``reject_reasons`` (``"<count> <kind>; ..."`` of the rejected
        requests, null when none was: :func:`rejection_summary`).
    """
    for name, value in (("ttft_slo", ttft_slo), ("tpot_slo", tpot_slo)):
        if value is not None:
            require_positive(name, value)
    # Int32 token columns would overflow when summed over millions of requests: sum in Int64
    req = result.requests.with_columns(
        pl.col("prompt_tokens", "output_tokens", "cached_tokens", "preemptions").cast(pl.Int64)
    )
    ok = pl.col("finish_s").is_not_null() & ~pl.col("rejected")
    if ttft_slo is not None:
        ok = ok & (pl.col("ttft_s") <= ttft_slo)
    if tpot_slo is not None:
        ok = ok & (pl.col("tpot_s").is_null() | (pl.col("tpot_s") <= tpot_slo))
    duration = pl.col("finish_s").max() - pl.col("arrival_s").min()
    aggs = [
        pl.len().alias("requests"),
        pl.col("finish_s").is_not_null().sum().alias("finished"),
        pl.col("rejected").sum().alias("rejected"),
    ]
    for metric in ("ttft", "tpot", "e2e"):
        aggs += [
            pl.col(f"{metric}_s").quantile(p / 100, "linear").alias(f"{metric}_p{p}_s") for p in PERCENTILES
        ]
    aggs += [
        pl.col("queue_s").mean().alias("queue_mean_s"),
        duration.alias("duration_s"),
        (pl.col("output_tokens").filter(~pl.col("rejected")).sum() / duration).alias("throughput_tok_s"),
        (pl.col("prompt_tokens").filter(~pl.col("rejected")).sum() / duration).alias("input_tok_s"),
        (pl.col("finish_s").is_not_null().sum() / duration).alias("request_rate"),
        ok.mean().alias("slo_attainment"),
        (ok.sum() / duration).alias("goodput_req_s"),
        pl.col("preemptions").sum().alias("preemptions"),
        _ratio(pl.col("cached_tokens").sum(), pl.col("prompt_tokens").filter(~pl.col("rejected")).sum()).alias(
            "prefix_hit_rate"
        ),
    ]
    seg = result.segments.filter(pl.col("state").is_in(["busy", "idle"]))
    util = _ratio(
        (pl.col("end_s") - pl.col("start_s")).filter(pl.col("state") == "busy").sum(),
        (pl.col("end_s") - pl.col("start_s")).sum(),
    )
    if by is None:
        out = req.select(aggs).with_columns(
            pl.lit(rejection_summary(req), dtype=pl.Utf8).alias("reject_reasons")
        )
        u = seg.select(util.alias("utilization"))
        return pl.concat([out, u if u.height else pl.DataFrame({"utilization": [None]})], how="horizontal")
    reasons = pl.DataFrame(
        [(key, rejection_summary(part)) for (key,), part in req.group_by(by)],
        schema={by: req.schema[by], "reject_reasons": pl.Utf8},
        orient="row",
    )
    out = req.group_by(by, maintain_order=True).agg(aggs).sort(by).join(reasons, on=by, how="left")
    if by in ("instance", "pool"):
        inst_pool = result.instances.select("instance", "pool")
        seg = seg.join(inst_pool, on="instance") if by == "pool" else seg
        out = out.join(seg.group_by(by).agg(util.alias("utilization")), on=by, how="left")
    return out


def _ratio(num: pl.Expr, den: pl.Expr) -> pl.Expr:
    """``num / den``, null (not NaN) when ``den`` is 0."""
    return pl.when(den > 0).then(num / den).otherwise(None)


def rejection_summary(requests: pl.DataFrame) -> str | None:
    """``"<count> <kind>; ..."`` for the rejected requests (most frequent first, then by kind), or ``None``.

    The kind of a reason is its text before the first colon (``"longer than the model's context: 200000+10
    tokens > 131072 (Llama-3.1-8B)"`` is of kind ``"longer than the model's context"``). This is the
    ``reject_reasons`` column of :func:`summary` and :func:`summarize`, and the simulator's warning.
    """
    if "rejected" not in requests.columns or not requests["rejected"].any():
        return None
    kinds = (
        requests.filter(pl.col("rejected"))
        .select(pl.col("reject_reason").fill_null("no reason").str.split(":").list.first().alias("kind"))
        .group_by("kind")
        .len()
        .sort(["len", "kind"], descending=[True, False])
    )
    return "; ".join(f"{n} {kind}" for kind, n in kinds.iter_rows())


def gpu_hours(result: SimResult) -> float:
    """GPU-hours of powered instances (segments not ``off``), MIG slices counted by their share."""
    seg = result.segments.filter(pl.col("state") != "off").join(
        result.instances.select("instance", "n_gpus"), on="instance"
    )
    return float(((seg["end_s"] - seg["start_s"]) * seg["n_gpus"]).sum()) / 3600.0


def instance_count(result: SimResult) -> pl.DataFrame:
    """Powered instances (starting, on, draining) over time: ``time_s``, ``instances`` (a step series)."""
    seg = result.segments.filter(pl.col("state") != "off")
    events = pl.concat([
        seg.select(pl.col("start_s").alias("time_s"), pl.lit(1).alias("d")),
        seg.select(pl.col("end_s").alias("time_s"), pl.lit(-1).alias("d")),
    ])  # fmt: skip
    return (
        events.group_by("time_s").agg(pl.col("d").sum()).sort("time_s")
        .with_columns(pl.col("d").cum_sum().alias("instances"))
        .filter(pl.col("d") != 0).select("time_s", "instances")
    )  # fmt: skip


def _summary(requests: pl.DataFrame, counters: Mapping) -> pl.DataFrame:
    """:func:`summarize`'s one-row table (latencies and hit rate over the served requests)."""
    ok = ~pl.col("rejected")

    def served(col: str) -> pl.Expr:
        return pl.col(col).filter(ok)

    return requests.select(
        served("ttft_s").quantile(0.5).alias("ttft_p50_s"),
        served("ttft_s").quantile(0.99).alias("ttft_p99_s"),
        served("tpot_s").quantile(0.5).alias("tpot_p50_s"),
        served("tpot_s").quantile(0.99).alias("tpot_p99_s"),
        served("e2e_s").quantile(0.99).alias("e2e_p99_s"),
        _ratio(
            served("cached_tokens").cast(pl.Int64).sum(), served("prompt_tokens").cast(pl.Int64).sum()
        ).alias("hit_rate"),
        pl.len().cast(pl.Int64).alias("requests"),
        pl.col("rejected").sum().cast(pl.Int64).alias("rejected"),
        pl.lit(rejection_summary(requests), dtype=pl.Utf8).alias("reject_reasons"),
        pl.lit(int(counters.get("preemptions", 0)), dtype=pl.Int64).alias("preemptions"),
        pl.lit(int(counters.get("cold_starts", 0)), dtype=pl.Int64).alias("cold_starts"),
        pl.lit(counters.get("gpu_hours"), dtype=pl.Float64).fill_nan(None).alias("gpu_hours"),
    )


#: Columns of :func:`summarize` (one row of :func:`compare`), in order, with their types (read off the
#: summary of an empty result).
SUMMARY_SCHEMA: dict[str, pl.DataType] = dict(_summary(pl.DataFrame(schema=REQUEST_SCHEMA), {}).schema)


def summarize(result: SimResult) -> dict:
    """Latency percentiles, hit rate, rejections and cost of one result (one row of :func:`compare`).

    Keys and types: :data:`SUMMARY_SCHEMA`.
    """
    return _summary(result.requests, result.counters).row(0, named=True)


def compare(results: Mapping[str, SimResult], **extra_columns) -> pl.DataFrame:
    """One row per named result with :func:`summarize`'s columns (plus constant ``extra_columns``)."""
    rows = [{"policy": name, **extra_columns, **summarize(res)} for name, res in results.items()]
    return pl.DataFrame(rows)


def latency_cdf(
    results: Mapping[str, SimResult], metrics: Sequence[str] = ("ttft_s", "tpot_s"), points: int = 200
) -> pl.DataFrame:
    """Empirical CDFs (``points`` quantiles) of ``metrics`` per named result, long format for charts."""
    qs = np.linspace(0.0, 1.0, points)
    frames = []
    for name, res in results.items():
        ok = res.requests.filter(~pl.col("rejected"))
        for m in metrics:
            col = ok[m].drop_nulls().drop_nans().to_numpy()
            if col.size == 0:
                continue
            frames.append(
                pl.DataFrame({"policy": name, "metric": m, "value": np.quantile(col, qs), "quantile": qs})
            )
    return pl.concat(frames)


def instance_stats(results: Mapping[str, SimResult]) -> pl.DataFrame:
    """Per instance and result: requests served, prefix-cache hit rate, busy fraction."""
    frames = []
    for name, res in results.items():
        r = res.requests.filter(~pl.col("rejected"))
        per = r.group_by("instance", "pool").agg(
            pl.len().alias("requests"),
            (pl.col("cached_tokens").cast(pl.Int64).sum() / pl.col("prompt_tokens").cast(pl.Int64).sum()).alias(
                "hit_rate"
            ),
        )
        span = float(res.counters.get("makespan_s", 1.0)) or 1.0
        busy = (
            res.segments.filter(pl.col("state") == "busy")
            .group_by("instance")
            .agg(((pl.col("end_s") - pl.col("start_s")).sum() / span).alias("busy_fraction"))
        )
        frames.append(
            res.instances.select("instance", "pool").join(per.drop("pool"), on="instance", how="left")
            .join(busy, on="instance", how="left").fill_null(0).with_columns(pl.lit(name).alias("policy"))
        )  # fmt: skip
    return pl.concat(frames).select("policy", "instance", "pool", "requests", "hit_rate", "busy_fraction")
