"""DVFS: power versus SM clock (Wattlytics, arXiv 2604.08182) and the energy-optimal clock under a latency SLO.

Per-GPU power at clock ``f`` (MHz) is linear below the transition clock ``f_t`` and quadratic above::

    P(f) = b1 f + c1                    (f <= f_t)
    P(f) = a2 f^2 + b2 f + c2           (f >  f_t)

capped at the TDP. Performance is proportional to ``f``, so a job that takes ``t_ref`` at ``f_ref`` takes
``t_ref f_ref / f`` and uses energy ``P(f) t_ref f_ref / f``. :func:`optimal_clock` minimises that energy over
``[f_min, f_max]`` subject to ``t_ref f_ref / f <= slo``.

The default H100 coefficients are Wattlytics' fitted H100 GROMACS (1 node) entry in ``Inputs/DVFS_PARAMS.js``
(AyeshaAfzal91/PerfPerTCO); they describe an HPC code, not LLM inference, so :meth:`DvfsCurve.scaled_to`
rescales the shape so that ``P(f_max)`` equals a measured operating power (e.g. the batch-power curve).

**LLM serving (what the planners use).** Power at a clock is BORROWED: no public power-versus-SM-clock table of
LLM serving was found to fit (the ML.ENERGY runs are all at the default clock; arXiv 2605.11999 reports H200
decode at 137-300 W and up to 32 % of decode energy recovered by clock locking, arXiv 2501.08219 42 % energy at
1-6 % latency on an RTX PRO 6000, neither with a table), so :func:`busy_power_at_clock` scales the busy power by
the Wattlytics GROMACS shape (:func:`clock_power_scale`), never below loaded idle. Performance at a clock is
LLM-aware: :meth:`workbench.hardware.RooflineModel.with_clock` slows the compute terms only, so memory-bound
decode barely slows while compute-bound prefill slows as ``1 / clock``; :func:`optimal_clock` below keeps the
proportional-performance assumption of Wattlytics for a single job.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import polars as pl

from workbench.config import require_positive
from workbench.errors import ConfigError


@dataclass(frozen=True, slots=True)
class DvfsCurve:
    """Piecewise power-versus-clock curve of one GPU (W, MHz)."""

    f_t: float
    b1: float
    c1: float
    a2: float
    b2: float
    c2: float
    tdp_w: float
    f_min: float
    f_max: float

    def __post_init__(self) -> None:
        for name in ("f_t", "tdp_w", "f_min", "f_max"):
            require_positive(name, getattr(self, name))
        if not self.f_min < self.f_max:
            raise ConfigError(f"f_min must be < f_max, got {self.f_min} and {self.f_max}")

    def power_w(self, f: float | np.ndarray) -> float | np.ndarray:
        """Per-GPU power (W) at clock ``f`` (MHz), capped at the TDP."""
        f = np.asarray(f, dtype=float)
        p = np.where(f <= self.f_t, self.b1 * f + self.c1, self.a2 * f**2 + self.b2 * f + self.c2)
        p = np.minimum(p, self.tdp_w)
        return float(p) if p.ndim == 0 else p

    def scaled_to(self, power_at_fmax_w: float) -> DvfsCurve:
        """Return the same shape scaled so that ``P(f_max)`` equals ``power_at_fmax_w``."""
        require_positive("power_at_fmax_w", power_at_fmax_w)
        s = power_at_fmax_w / float(self.power_w(self.f_max))
        return replace(self, b1=self.b1 * s, c1=self.c1 * s, a2=self.a2 * s, b2=self.b2 * s, c2=self.c2 * s)


#: Wattlytics H100 GROMACS (1 node) coefficients; H100 SXM clock range 210-1980 MHz, TDP 700 W.
H100_WATTLYTICS = DvfsCurve(
    f_t=975, b1=0.1, c1=70, a2=0.000055, b2=0.042, c2=71, tdp_w=700.0, f_min=210.0, f_max=1980.0
)


@dataclass(frozen=True, slots=True)
class ClockChoice:
    """Result of :func:`optimal_clock`: the clock, its power, latency, energy and the savings vs ``f_max``."""

    f_mhz: float
    power_w: float
    latency_s: float
    energy_j: float
    energy_at_fmax_j: float
    saving: float
    slo_binding: bool


def optimal_clock(
    curve: DvfsCurve, *, latency_ref_s: float, slo_s: float, f_ref: float | None = None, step_mhz: float = 1.0
) -> ClockChoice:
    """Clock that minimises the energy of a job meeting a latency SLO (grid search at ``step_mhz``).

    Parameters
    ----------
    curve
        Power-versus-clock curve.
    latency_ref_s
        Latency of the job at ``f_ref`` (default ``curve.f_max``).
    slo_s
        Latency bound; must be reachable at ``f_max``.

    Returns
    -------
    ClockChoice
        The chosen clock, its power, latency and energy, and the saving against ``f_max``.
    """
    require_positive("latency_ref_s", latency_ref_s)
    require_positive("slo_s", slo_s)
    require_positive("step_mhz", step_mhz)
    f_ref = curve.f_max if f_ref is None else f_ref
    work = latency_ref_s * f_ref  # MHz x s: latency(f) = work / f
    f_lo = max(curve.f_min, work / slo_s)
    if f_lo > curve.f_max * (1 + 1e-12):
        raise ConfigError(
            f"slo_s={slo_s} is unreachable: even f_max={curve.f_max} MHz gives {work / curve.f_max:.4g} s"
        )
    grid = np.unique(np.append(np.arange(f_lo, curve.f_max, step_mhz), [f_lo, curve.f_max]))
    e = curve.power_w(grid) * work / grid
    i = int(np.argmin(e))
    e_max = float(curve.power_w(curve.f_max)) * work / curve.f_max
    return ClockChoice(
        f_mhz=float(grid[i]),
        power_w=float(curve.power_w(grid[i])),
        latency_s=float(work / grid[i]),
        energy_j=float(e[i]),
        energy_at_fmax_j=e_max,
        saving=1.0 - float(e[i]) / e_max,
        slo_binding=i == 0 and f_lo > curve.f_min,
    )


def clock_sweep(curve: DvfsCurve, *, latency_ref_s: float, n: int = 50) -> pl.DataFrame:
    """Power, latency and energy of a job over ``n`` clocks from ``f_min`` to ``f_max`` (for charts).

    Parameters
    ----------
    curve
        Power-versus-clock curve.
    latency_ref_s
        Latency of the job at ``f_max``.
    n
        Number of clocks.

    Returns
    -------
    polars.DataFrame
        Columns ``f_mhz``, ``power_w``, ``latency_s``, ``energy_j``.
    """
    f = np.linspace(curve.f_min, curve.f_max, n)
    p = curve.power_w(f)
    lat = latency_ref_s * curve.f_max / f
    return pl.DataFrame({"f_mhz": f, "power_w": p, "latency_s": lat, "energy_j": p * lat})


def clock_power_scale(clock: float | np.ndarray) -> float | np.ndarray:
    """Share of the clock-dependent power left at clock fraction ``clock`` of ``f_max``.

    ``P(f) / P(f_max)`` of the Wattlytics H100 shape (BORROWED from an HPC code, GROMACS; no public LLM
    power-versus-clock data was found to fit, see the module docstring).

    Parameters
    ----------
    clock
        Clock fraction(s) of ``f_max``.

    Returns
    -------
    float or numpy.ndarray
        The power ratio; a float for a scalar clock.
    """
    c = H100_WATTLYTICS
    out = np.asarray(c.power_w(np.asarray(clock, dtype=float) * c.f_max)) / float(c.power_w(c.f_max))
    return float(out) if out.ndim == 0 else out


def busy_power_at_clock(
    busy_w: float | np.ndarray, idle_w: float | np.ndarray, clock: float | np.ndarray
) -> float | np.ndarray:
    """Per-GPU busy power at clock fraction ``clock``: ``max(busy x clock_power_scale(clock), idle)``.

    The BORROWED Wattlytics shape scales the whole busy power (the shape has its own static share, 25 % at the
    lowest clock); a lower clock never takes a GPU below its loaded-idle power.

    Parameters
    ----------
    busy_w, idle_w
        Busy and loaded-idle power per GPU at the maximum clock (W).
    clock
        Clock fraction(s) of ``f_max``.

    Returns
    -------
    float or numpy.ndarray
        Busy power in W; a float for scalar inputs.
    """
    scaled = np.asarray(busy_w, float) * np.asarray(clock_power_scale(clock))
    out = np.maximum(scaled, np.asarray(idle_w, float))
    return float(out) if out.ndim == 0 else out
