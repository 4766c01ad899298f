"""GPU facts the power/TCO side needs (TDP, idle power, price, cloud rate), from the hardware table.

Uses :func:`workbench.hardware.gpu` when the hardware layer provides it, else reads ``gpus.csv`` (the shipped
``data/gpus.csv``, or the shared reference copy) directly. Either way unknown names raise one
:class:`~workbench.errors.HardwareError` that lists the known GPUs.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from workbench._paths import DATA_DIR
from workbench.errors import HardwareError

#: ML.ENERGY and common short names -> rows of the GPU table.
ALIASES = {"H100": "H100-SXM", "H200": "H200-SXM", "A100": "A100-80GB-SXM", "A100-80GB": "A100-80GB-SXM"}
_SHARED = Path(
    os.environ.get("WORKBENCH_HARDWARE_DIR", DATA_DIR.parent.parent / "shared" / "data" / "hardware")
)


@dataclass(frozen=True, slots=True)
class GpuFacts:
    """The few facts of one accelerator used by power, carbon and TCO (NaN where the table has none)."""

    name: str
    tdp_w: float
    idle_power_w: float
    price_usd: float
    cloud_usd_per_gpu_hr: float
    alt_cloud_usd_per_gpu_hr: float


@functools.cache
def _table() -> pl.DataFrame:
    for path in (DATA_DIR / "gpus.csv", _SHARED / "gpus.csv"):
        if path.exists():
            return pl.read_csv(path, infer_schema_length=None)
    raise HardwareError(f"GPU table gpus.csv not found in {DATA_DIR} or {_SHARED}")


def _num(value: object) -> float:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return out


def gpu_names() -> list[str]:
    """Names of the GPUs in the table."""
    return _table()["gpu"].to_list()


def resolve(name: str) -> str:
    """Canonical table name of ``name`` (accepts aliases such as ``"H100"``); HardwareError if unknown."""
    names = gpu_names()
    if name in names:
        return name
    alias = ALIASES.get(name) or next((n for n in names if n.lower() == str(name).lower()), None)
    if alias is None or alias not in names:
        raise HardwareError(f"unknown GPU {name!r}; known: {', '.join(names)}")
    return alias


def gpu_facts(name: str) -> GpuFacts:
    """Facts of GPU ``name`` (see :class:`GpuFacts`)."""
    canon = resolve(name)
    try:  # the hardware layer is the owner of the table once it exists
        from workbench.hardware import gpu as _hw_gpu  # type: ignore[attr-defined]

        _hw_gpu(canon)
    except ImportError:
        pass
    row = _table().filter(pl.col("gpu") == canon).row(0, named=True)
    return GpuFacts(
        name=canon,
        tdp_w=_num(row["tdp_w"]),
        idle_power_w=_num(row["idle_power_w"]),
        price_usd=_num(row["purchase_price_usd_approx"]),
        cloud_usd_per_gpu_hr=_num(row["cloud_usd_per_gpu_hr"]),
        alt_cloud_usd_per_gpu_hr=_num(row["alt_cloud_usd_per_gpu_hr"]),
    )
