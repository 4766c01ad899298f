"""Power of the pools the screen sized, vectorised over candidates.

GPU-hour prices are not computed here: they are :func:`workbench.tco.gpu_hour_usd`'s.
"""

from __future__ import annotations

import functools

import numpy as np

from workbench.hardware import gpu
from workbench.power.curves import LogisticPower
from workbench.power.dvfs import busy_power_at_clock


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
