"""Prices, power and carbon of the pools the screen sized (vectorised over candidates)."""

from __future__ import annotations

import functools
import math

import numpy as np

from workbench.errors import ConfigError
from workbench.hardware import gpu
from workbench.planning.spec import CostBasis
from workbench.power.curves import LogisticPower
from workbench.power.dvfs import busy_power_at_clock

HOURS_PER_YEAR = 8760.0


@functools.lru_cache(maxsize=512)
def gpu_hour_usd(gpu_name: str, basis: CostBasis, model_name: str, tp: int) -> float:
    """Cost of one GPU-hour of ``gpu_name`` under ``basis`` (USD).

    ``"cloud"``: the on-demand rate of the GPU table (its second reference rate when the first is missing);
    ``"tco"``: :func:`workbench.tco.fleet_tco` of one node at the basis' utilisation, spread over the GPU-hours
    of its lifetime. ``basis.usd_per_gpu_hr`` overrides either.
    """
    g = gpu(gpu_name)
    for name, price in basis.usd_per_gpu_hr.items():
        if gpu(name).name == g.name:
            return float(price)
    if basis.kind == "cloud":
        price = g.cloud_usd_per_gpu_hr
        if math.isnan(price):
            from workbench.power._facts import gpu_facts

            price = gpu_facts(g.name).alt_cloud_usd_per_gpu_hr
        if math.isnan(price):
            raise ConfigError(
                f"GPU {g.name!r} has no cloud price in gpus.csv; "
                f"pass CostBasis(usd_per_gpu_hr={{{g.name!r}: ...}})"
            )
        return float(price)
    from workbench.carbon import site
    from workbench.tco import fleet_tco

    n = g.gpus_per_node
    result = fleet_tco(
        g.name,
        n,
        utilisation=basis.utilisation,
        model=model_name,
        tp=tp,
        site=site(basis.site),
        lifetime_years=basis.lifetime_years,
        tokens_per_s_per_gpu=0.0,
    )
    return result["tco_usd"] / (n * HOURS_PER_YEAR * basis.lifetime_years)


@functools.lru_cache(maxsize=512)
def power_params(gpu_name: str, model_name: str, tp: int) -> tuple[LogisticPower, float]:
    """Per-GPU busy power curve and loaded-idle power (W) of a (GPU, model, TP).

    The curve is :func:`workbench.power.power_curve`'s (its ``rule`` says how it was looked up).
    """
    from workbench.power import idle_power_w, power_curve

    return power_curve(gpu(gpu_name).name, model_name, tp), idle_power_w(gpu(gpu_name).name)


def pool_power_w(
    gpus: np.ndarray,
    tps: np.ndarray,
    model_name: str,
    n: np.ndarray,
    batch: np.ndarray,
    busy: np.ndarray,
    clock: np.ndarray,
) -> np.ndarray:
    """Average power (W) of pools of ``n`` instances: idle + busy share x (P(batch while busy) - idle)."""
    out = np.zeros(len(gpus))
    for key in {(g, int(t)) for g, t in zip(gpus, tps, strict=True) if g}:
        sel = (gpus == key[0]) & (tps == key[1])
        curve, idle = power_params(key[0], model_name, key[1])
        u = np.clip(busy[sel], 1e-9, 1.0)
        p_busy = busy_power_at_clock(curve(batch[sel] / u), idle, clock[sel])
        per_gpu = idle + u * (p_busy - idle)
        out[sel] = n[sel] * key[1] * per_gpu
    return out
