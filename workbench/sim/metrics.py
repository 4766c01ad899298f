"""Summary metrics of a :class:`~workbench.sim.result.SimResult`: latency percentiles, throughput, SLOs."""

from __future__ import annotations

import polars as pl

from workbench.config import require_positive
from workbench.sim.result import SimResult

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
        (cached / prompt tokens at admission).
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
        (pl.col("cached_tokens").sum() / pl.col("prompt_tokens").filter(~pl.col("rejected")).sum()).alias(
            "prefix_hit_rate"
        ),
    ]
    seg = result.segments.filter(pl.col("state").is_in(["busy", "idle"]))
    util = (pl.col("end_s") - pl.col("start_s")).filter(pl.col("state") == "busy").sum() / (
        pl.col("end_s") - pl.col("start_s")
    ).sum()
    if by is None:
        out = req.select(aggs)
        u = seg.select(util.alias("utilization"))
        return pl.concat([out, u if u.height else pl.DataFrame({"utilization": [None]})], how="horizontal")
    out = req.group_by(by, maintain_order=True).agg(aggs).sort(by)
    if by in ("instance", "pool"):
        inst_pool = result.instances.select("instance", "pool")
        seg = seg.join(inst_pool, on="instance") if by == "pool" else seg
        out = out.join(seg.group_by(by).agg(util.alias("utilization")), on=by, how="left")
    return out
