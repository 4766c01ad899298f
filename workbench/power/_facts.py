"""GPU facts the power/TCO side needs (TDP, idle power, price, cloud rates), from the hardware layer.

Names resolve through :func:`workbench.hardware.gpu` (case-insensitive, aliases such as ``"H100"``); unknown
names raise its one :class:`~workbench.errors.HardwareError` listing the known GPUs. The second cloud rate
(``alt_cloud_usd_per_gpu_hr``) is read from the same ``data/gpus.csv`` table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl

from workbench.hardware import gpu, list_gpus


@dataclass(frozen=True, slots=True)
class GpuFacts:
    """The few facts of one accelerator used by power, carbon and TCO (NaN where the table has none)."""

    name: str
    tdp_w: float
    idle_power_w: float
    price_usd: float
    cloud_usd_per_gpu_hr: float
    alt_cloud_usd_per_gpu_hr: float


def gpu_names() -> list[str]:
    """Names of the GPUs in the table."""
    return list_gpus()["gpu"].to_list()


def resolve(name: str) -> str:
    """Canonical table name of ``name`` (accepts aliases such as ``"H100"``); HardwareError if unknown."""
    return gpu(name).name


def gpu_facts(name: str) -> GpuFacts:
    """Facts of GPU ``name`` (see :class:`GpuFacts`)."""
    g = gpu(name)
    alt = list_gpus().filter(pl.col("gpu") == g.name)["alt_cloud_usd_per_gpu_hr"]
    alt_value = float(alt[0]) if alt.len() and alt[0] is not None else math.nan
    return GpuFacts(g.name, g.tdp_w, g.idle_power_w, g.purchase_price_usd, g.cloud_usd_per_gpu_hr, alt_value)
