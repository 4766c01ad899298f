"""What-if sweep: arrival rate against several GPU types side by side, sized by the planning screen.

For every rate and GPU type the planning screen (:func:`workbench.planning.screen_table`) gives the fewest
instances meeting the SLO; the table adds the units explicitly: ``gpus = instances x tp`` and
``usd_per_hour = gpus x usd_per_gpu_hour`` -- a tensor-parallel instance costs all of its GPUs. Energy per
output token comes twice: ``gpu_j_per_output_token`` counts the GPUs only (the screen's figure) and
``facility_j_per_output_token`` adds the node baseline of ``ceil(gpus / gpus_per_node)`` nodes and the PUE,
from the same :class:`~workbench.tco.CostBasis` that prices the GPU-hours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl

from workbench.config import require_positive
from workbench.errors import ConfigError
from workbench.hardware import gpu
from workbench.planning import SLO, Candidate, screen_table, workload
from workbench.tco import CostBasis, gpu_hour_usd
from workbench.whatif._common import resolve_tps

COLUMNS = (
    "qps",
    "gpu",
    "tp",
    "instances",
    "gpus",
    "usd_per_gpu_hour",
    "usd_per_hour",
    "usd_per_m_output_tokens",
    "gpu_j_per_output_token",
    "facility_j_per_output_token",
    "ttft_p99_s",
    "tpot_p99_s",
    "slo_met",
)


def rate_sweep(
    trace,
    slo: SLO,
    gpus: Sequence[str],
    rates: Sequence[float],
    *,
    model: str = "Llama-3.1-8B",
    tp: int | Mapping[str, int] | None = None,
    cost: CostBasis | None = None,
    seed: int = 0,
) -> pl.DataFrame:
    """Size a fleet per (arrival rate, GPU type) and tabulate what it costs.

    The table gives instances, cost per hour and per million output tokens, energy per token and P99
    latencies.

    Parameters
    ----------
    trace
        Workload whose lengths and burstiness are kept while its rate is set to each of ``rates``.
    slo
        Latency targets.
    gpus
        GPU types compared side by side.
    rates
        Mean arrival rates (requests per second).
    model
        Model served.
    tp
        Tensor-parallel degree (one, a {gpu: tp} mapping keyed by any catalog name or alias, or ``None``: the
        smallest that fits each GPU).
    cost
        Cost basis: GPU-hour prices (cloud $/GPU-hour by default), and the node baseline power and PUE of the
        facility energy column (default ``CostBasis()``: the site's PUE).

    Returns
    -------
    polars.DataFrame
        Columns :data:`COLUMNS` (one row per rate and GPU; metrics null where the SLO cannot be met): energy in
        ``gpu_j_per_output_token`` (GPUs only) and ``facility_j_per_output_token`` (plus node baseline, times
        PUE).
    """
    if not gpus:
        raise ConfigError("gpus is empty: give at least one GPU type")
    if not rates:
        raise ConfigError("rates is empty: give at least one arrival rate")
    for r in rates:
        require_positive("rate", r)
    cost = cost or CostBasis()
    names = [gpu(g).name for g in gpus]
    tps = resolve_tps(names, model, tp)
    cands = [Candidate(g, t) for g, t in zip(names, tps, strict=True)]
    price = {g: gpu_hour_usd(g, cost, model, t) for g, t in zip(names, tps, strict=True)}
    per_node = {g: gpu(g).gpus_per_node for g in names}
    frames = []
    for r in rates:
        wl = workload(trace, float(r), seed=seed)
        table = screen_table(wl, slo, cands, model, cost)
        frames.append(table.select("gpu", "tp", "instances", "gpus", "usd_per_hour", "usd_per_m_output_tokens",
                                   pl.col("j_per_output_token").alias("gpu_j_per_output_token"), "ttft_p99_s",
                                   "tpot_p99_s", "slo_met")
                      .with_columns(qps=pl.lit(float(r)), tok_s=pl.lit(wl.output_tokens_per_s)))  # fmt: skip
    out = pl.concat(frames)
    nodes = (out["gpus"] / out["gpu"].replace_strict(per_node, return_dtype=pl.Int64)).ceil()
    out = out.with_columns(
        pl.col("gpu").replace_strict(price, return_dtype=pl.Float64).alias("usd_per_gpu_hour"),
        (
            (pl.col("gpu_j_per_output_token") + nodes * cost.node_power_w / pl.col("tok_s")) * cost.facility_pue
        ).alias("facility_j_per_output_token"),
    )
    return out.select(COLUMNS)
