"""Arrival processes: when requests arrive (sorted times in seconds from 0).

Small frozen objects behind the :class:`ArrivalProcess` protocol: :class:`Poisson`, :class:`Renewal` (Gamma or
Weibull gaps with a target rate and CV) and :class:`TimeVarying` (a :class:`PiecewiseRate` or :class:`Diurnal`
rate profile; Poisson by thinning, other CVs by time rescaling of a unit-rate renewal process).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from workbench.config import require_choice, require_positive, require_range
from workbench.errors import ConfigError


def check_count_or_duration(n: int | None, duration_s: float | None) -> None:
    """Raise :class:`ConfigError` unless exactly one of ``n`` (integer >= 1) and ``duration_s`` (> 0) is set."""
    if (n is None) == (duration_s is None):
        raise ConfigError("give exactly one of n (requests) or duration_s (seconds)")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1):
        raise ConfigError(f"n must be an integer >= 1, got {n!r}")
    if duration_s is not None:
        require_positive("duration_s", duration_s)


@runtime_checkable
class ArrivalProcess(Protocol):
    """Arrival times (sorted, seconds from 0) of ``n`` requests or of all requests in ``[0, duration_s)``."""

    def sample(
        self, rng: np.random.Generator, n: int | None = None, duration_s: float | None = None
    ) -> np.ndarray:
        """Arrival times of ``n`` requests, or of all requests in ``[0, duration_s)``.

        Parameters
        ----------
        rng
            The arrival stream (spawned from the generator's seed).
        n
            Number of arrivals; give this or ``duration_s``.
        duration_s
            Generate all arrivals in ``[0, duration_s)``.

        Returns
        -------
        numpy.ndarray
            Sorted arrival times in seconds (float64).
        """
        ...

    @property
    def mean_rate(self) -> float:
        """Mean arrival rate (requests per second)."""
        ...


def weibull_shape(cv: float) -> float:
    """Weibull shape ``k`` whose coefficient of variation is ``cv``."""
    from scipy import optimize, special  # only for Weibull gaps: keeps scipy out of `import workbench.sim`

    def f(logk: float) -> float:
        k = math.exp(logk)
        return math.exp(special.gammaln(1 + 2 / k) - 2 * special.gammaln(1 + 1 / k)) - 1 - cv**2

    return math.exp(optimize.brentq(f, math.log(0.05), math.log(200.0)))


def _gaps(rng: np.random.Generator, family: str, cv: float, mean: float, size: int) -> np.ndarray:
    """``size`` i.i.d. inter-arrival gaps with the given mean and CV."""
    if family == "exponential" or (family == "gamma" and cv == 1.0):
        return rng.exponential(mean, size)
    if family == "gamma":
        shape = 1.0 / cv**2
        return rng.gamma(shape, mean / shape, size)
    k = weibull_shape(cv)
    return rng.weibull(k, size) * (mean / math.gamma(1 + 1 / k))


def _renewal(rng, family, cv, rate, n=None, duration_s=None) -> np.ndarray:
    """Renewal-process arrival times: exactly ``n`` or all before ``duration_s`` (none when it is 0)."""
    if n is not None:
        return np.cumsum(_gaps(rng, family, cv, 1.0 / rate, n))
    chunks, t = [], 0.0
    while t < duration_s:
        k = max(16, int(1.2 * (duration_s - t) * rate) + 16)
        times = t + np.cumsum(_gaps(rng, family, cv, 1.0 / rate, k))
        chunks.append(times)
        t = float(times[-1])
    if not chunks:  # e.g. a rate profile that is zero over the whole span (the caller reports no requests)
        return np.empty(0)
    out = np.concatenate(chunks)
    return out[out < duration_s]


@dataclass(frozen=True, slots=True)
class Poisson:
    """Poisson arrivals at ``rate`` requests per second (exponential gaps, CV 1, never capped)."""

    rate: float

    def __post_init__(self) -> None:
        require_positive("rate", self.rate)

    @property
    def mean_rate(self) -> float:
        return self.rate

    def sample(
        self, rng: np.random.Generator, n: int | None = None, duration_s: float | None = None
    ) -> np.ndarray:
        """Poisson arrival times: exponential gaps of mean ``1 / rate``.

        Parameters and returns: see :meth:`ArrivalProcess.sample`.
        """
        check_count_or_duration(n, duration_s)
        return _renewal(rng, "exponential", 1.0, self.rate, n, duration_s)


@dataclass(frozen=True, slots=True)
class Renewal:
    """Renewal arrivals: i.i.d. Gamma or Weibull gaps of mean ``1/rate`` and coefficient of variation ``cv``.

    ``cv > 1`` is burstier than Poisson, ``cv < 1`` more regular.
    """

    rate: float
    cv: float = 1.0
    family: str = "gamma"

    def __post_init__(self) -> None:
        require_positive("rate", self.rate)
        require_range("cv", self.cv, 0.05, 50.0)
        object.__setattr__(self, "family", require_choice("family", self.family, ("gamma", "weibull")))

    @property
    def mean_rate(self) -> float:
        return self.rate

    def sample(
        self, rng: np.random.Generator, n: int | None = None, duration_s: float | None = None
    ) -> np.ndarray:
        """Renewal arrival times: i.i.d. gaps of mean ``1 / rate`` and CV ``cv`` from ``family``.

        Parameters and returns: see :meth:`ArrivalProcess.sample`.
        """
        check_count_or_duration(n, duration_s)
        return _renewal(rng, self.family, self.cv, self.rate, n, duration_s)


@dataclass(frozen=True, slots=True, eq=False)
class PiecewiseRate:
    """Rate (req/s) constant on ``[edges_s[i], edges_s[i+1])``, held or repeated after the last edge.

    Without ``period_s`` the last rate holds after the last edge (forever). With ``period_s`` the profile is
    periodic: the last piece ends at ``period_s`` and the whole profile repeats, ``rate(t) = rate(t mod
    period_s)``, so its long-run mean rate is its mean over one period. :func:`~workbench.traces.fit` builds a
    periodic profile from a trace (the twin keeps the trace's mean rate however many requests it generates).

    Attributes
    ----------
    edges_s
        Piece starts in seconds: 0 first, increasing.
    rates
        Rate of each piece (>= 0).
    period_s
        Length of one period (> the last edge), or ``None`` for a profile whose last rate holds.
    """

    edges_s: np.ndarray
    rates: np.ndarray
    period_s: float | None = None

    def __post_init__(self) -> None:
        edges = np.asarray(self.edges_s, dtype=float)
        rates = np.asarray(self.rates, dtype=float)
        if edges.ndim != 1 or rates.shape != edges.shape or edges.size == 0:
            raise ConfigError("edges_s and rates must be 1-D arrays of equal, non-zero length")
        if edges[0] != 0.0 or np.any(np.diff(edges) <= 0):
            raise ConfigError("edges_s must start at 0 and increase")
        if np.any(~np.isfinite(rates)) or np.any(rates < 0):
            raise ConfigError("rates must be finite and >= 0")
        if self.period_s is None:
            if rates[-1] <= 0:
                raise ConfigError("the last rate holds after the last edge: it must be > 0 (or give period_s)")
        else:
            require_positive("period_s", self.period_s)
            if self.period_s <= edges[-1]:
                raise ConfigError(f"period_s ({self.period_s}) must be > the last edge ({edges[-1]})")
            if (rates * np.diff(np.append(edges, self.period_s))).sum() <= 0:
                raise ConfigError("a periodic profile needs a rate > 0 somewhere in the period")
            object.__setattr__(self, "period_s", float(self.period_s))
        object.__setattr__(self, "edges_s", edges)
        object.__setattr__(self, "rates", rates)

    def __repr__(self) -> str:
        extend = f"periodic, period {self.period_s:g} s" if self.period_s else "last rate held"
        return f"PiecewiseRate({self.rates.size} pieces, mean {self.mean_rate:.4g} req/s, {extend})"

    def _piece(self, t: np.ndarray) -> np.ndarray:
        return np.clip(np.searchsorted(self.edges_s, t, side="right") - 1, 0, self.rates.size - 1)

    def _knots(self) -> np.ndarray:
        return np.concatenate([[0.0], np.cumsum(self.rates[:-1] * np.diff(self.edges_s))])

    def _per_period(self) -> float:
        """Return the expected arrivals in one period (periodic profiles)."""
        assert self.period_s is not None
        return float(self._knots()[-1] + self.rates[-1] * (self.period_s - self.edges_s[-1]))

    def rate(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=float)
        if self.period_s is not None:
            t = np.mod(t, self.period_s)
        return self.rates[self._piece(t)]

    @property
    def max_rate(self) -> float:
        return float(self.rates.max())

    @property
    def mean_rate(self) -> float:
        if self.period_s is not None:
            return self._per_period() / self.period_s
        widths = np.diff(self.edges_s)
        return float((self.rates[:-1] * widths).sum() / widths.sum()) if widths.size else float(self.rates[0])

    def cumulative(self, t: np.ndarray) -> np.ndarray:
        """Return the expected number of arrivals in ``[0, t]``."""
        t = np.asarray(t, dtype=float)
        base: float | np.ndarray = 0.0
        if self.period_s is not None:
            cycles = np.floor(t / self.period_s)
            base = cycles * self._per_period()
            t = t - cycles * self.period_s
        idx = self._piece(t)
        return base + self._knots()[idx] + self.rates[idx] * (t - self.edges_s[idx])

    def inverse_cumulative(self, lam: np.ndarray) -> np.ndarray:
        """Time ``t`` at which :meth:`cumulative` reaches ``lam`` (the first such time)."""
        lam = np.asarray(lam, dtype=float)
        offset: float | np.ndarray = 0.0
        if self.period_s is not None:
            per = self._per_period()
            cycles = np.floor(lam / per)
            offset = cycles * self.period_s
            lam = lam - cycles * per
        knots = self._knots()
        # side="right" lands on the last piece starting at a knot value, which skips zero-rate pieces
        idx = np.clip(np.searchsorted(knots, lam, side="right") - 1, 0, self.rates.size - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            inside = np.where(self.rates[idx] > 0, (lam - knots[idx]) / self.rates[idx], 0.0)
        return offset + self.edges_s[idx] + inside


@dataclass(frozen=True, slots=True)
class Diurnal:
    """Sinusoidal daily rate: ``mean_rate * (1 + amplitude * cos(2 pi (t - peak_s) / period_s))``."""

    mean_rate: float
    amplitude: float = 0.5
    period_s: float = 86_400.0
    peak_s: float = 14 * 3600.0

    def __post_init__(self) -> None:
        require_positive("mean_rate", self.mean_rate)
        require_range("amplitude", self.amplitude, 0.0, 1.0)
        require_positive("period_s", self.period_s)

    def rate(self, t: np.ndarray) -> np.ndarray:
        w = 2 * np.pi / self.period_s
        return self.mean_rate * (1 + self.amplitude * np.cos(w * (np.asarray(t) - self.peak_s)))

    @property
    def max_rate(self) -> float:
        return self.mean_rate * (1 + self.amplitude)

    def cumulative(self, t: np.ndarray) -> np.ndarray:
        w = 2 * np.pi / self.period_s
        t = np.asarray(t, dtype=float)
        return self.mean_rate * (
            t + self.amplitude / w * (np.sin(w * (t - self.peak_s)) + np.sin(w * self.peak_s))
        )

    def inverse_cumulative(self, lam: np.ndarray) -> np.ndarray:
        """Time ``t`` at which :meth:`cumulative` reaches ``lam``.

        The cumulative rate is non-decreasing and at least ``mean_rate * (t - 2 amplitude / w)``, so
        ``t <= lam / mean_rate + 2 amplitude / w``; it is inverted on a grid of 1/1000 period up to that bound,
        then refined by Newton steps kept inside each grid cell (safe where the rate touches 0, amplitude 1).
        """
        lam = np.asarray(lam, dtype=float)
        w = 2 * np.pi / self.period_s
        hi = float(lam.max(initial=0.0)) / self.mean_rate + 2 * self.amplitude / w + self.period_s / 1000
        grid = np.linspace(0.0, hi, max(1001, int(1000 * hi / self.period_s) + 1))
        cum = self.cumulative(grid)
        k = np.clip(np.searchsorted(cum, lam), 1, grid.size - 1)
        lo_t, hi_t = grid[k - 1], grid[k]
        t = np.interp(lam, cum, grid)
        for _ in range(3):
            t = np.clip(t - (self.cumulative(t) - lam) / np.maximum(self.rate(t), 1e-12), lo_t, hi_t)
        return t


RateProfile = PiecewiseRate | Diurnal


@dataclass(frozen=True, slots=True)
class TimeVarying:
    """Arrivals following a rate profile.

    With ``cv == 1`` this is a non-homogeneous Poisson process generated by thinning (candidates at the peak
    rate, each kept with probability rate(t)/peak). Otherwise a unit-rate Gamma/Weibull renewal process with
    that CV is mapped through the inverse cumulative rate (time rescaling), which keeps the profile and the
    local burstiness.
    """

    profile: RateProfile
    cv: float = 1.0
    family: str = "gamma"

    def __post_init__(self) -> None:
        require_range("cv", self.cv, 0.05, 50.0)
        object.__setattr__(self, "family", require_choice("family", self.family, ("gamma", "weibull")))

    @property
    def mean_rate(self) -> float:
        return self.profile.mean_rate

    def sample(
        self, rng: np.random.Generator, n: int | None = None, duration_s: float | None = None
    ) -> np.ndarray:
        """Arrival times following the rate profile (thinning for CV 1, time rescaling otherwise).

        Parameters and returns: see :meth:`ArrivalProcess.sample`.
        """
        check_count_or_duration(n, duration_s)
        if self.cv == 1.0:
            return self._thinning(rng, n, duration_s)
        if n is not None:
            return self.profile.inverse_cumulative(_renewal(rng, self.family, self.cv, 1.0, n=n))
        assert duration_s is not None  # check_count_or_duration: n or duration_s
        total = float(self.profile.cumulative(np.asarray(duration_s, dtype=float)))
        units = _renewal(rng, self.family, self.cv, 1.0, duration_s=total)
        return self.profile.inverse_cumulative(units)

    def _thinning(self, rng, n, duration_s) -> np.ndarray:
        peak = self.profile.max_rate
        out, t = [], 0.0
        got = 0
        while (n is not None and got < n) or (duration_s is not None and t < duration_s):
            k = max(64, int(1.2 * ((n - got) if n is not None else (duration_s - t) * peak)) + 64)
            cand = t + np.cumsum(rng.exponential(1.0 / peak, k))
            keep = cand[rng.random(k) * peak < self.profile.rate(cand)]
            out.append(keep)
            got += keep.size
            t = float(cand[-1])
        times = np.concatenate(out)
        return times[:n] if n is not None else times[times < duration_s]
