"""Markov-modulated Poisson arrivals (MMPP): bursts that come and go.

A hidden continuous-time Markov chain moves between states; in state ``k`` requests arrive as a Poisson
process of rate ``rates[k]``. The chain stays in state ``k`` an exponential time of mean ``mean_sojourn_s[k]``
and then jumps to another state (by default chosen uniformly; ``jumps`` gives the probabilities). The process
starts in its stationary state distribution, so a sample has the long-run rate from the first second.

Facts the tests check (two states, leaving rates ``r1 = 1/s1``, ``r2 = 1/s2``):

* mean rate ``(l1 s1 + l2 s2) / (s1 + s2)`` (stationary weights proportional to the sojourns);
* asymptotic index of dispersion of counts
  ``1 + 2 r1 r2 (l1 - l2)^2 / ((r1 + r2)^2 (l1 r2 + l2 r1))`` (> 1: burstier than Poisson).

:meth:`MMPP.bursts` builds the usual two-state burst model from a mean rate, how much hotter a burst is, the
share of time in bursts and the mean burst length.

Examples
--------
>>> import numpy as np
>>> arr = MMPP.bursts(mean_rate=10.0, peak_ratio=5.0, burst_share=0.1, burst_s=30.0)
>>> round(arr.mean_rate, 6)
10.0
>>> t = arr.sample(np.random.default_rng(0), n=1000)
>>> t.size, bool(np.all(np.diff(t) >= 0))
(1000, True)
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

import numpy as np

from workbench.config import require_positive, require_range
from workbench.errors import ConfigError


def _need_one(n: int | None, duration_s: float | None) -> None:
    if (n is None) == (duration_s is None):
        raise ConfigError("give exactly one of n (requests) or duration_s (seconds)")
    if n is not None and (not isinstance(n, int | np.integer) or isinstance(n, bool) or n < 1):
        raise ConfigError(f"n must be an integer >= 1, got {n!r}")
    if duration_s is not None:
        require_positive("duration_s", duration_s)


@dataclass(frozen=True, slots=True, eq=False)
class MMPP:
    """Markov-modulated Poisson process (see module docstring).

    Parameters
    ----------
    rates
        Arrival rate (req/s) in each state, >= 0, at least one > 0.
    mean_sojourn_s
        Mean time (s) the chain stays in each state, > 0.
    jumps
        Optional row-stochastic matrix of jump probabilities between states (zero diagonal); default: uniform
        over the other states.
    """

    rates: tuple[float, ...]
    mean_sojourn_s: tuple[float, ...]
    jumps: tuple[tuple[float, ...], ...] | None = None

    def __post_init__(self) -> None:
        rates = tuple(float(r) for r in self.rates)
        sojourn = tuple(float(s) for s in self.mean_sojourn_s)
        k = len(rates)
        if k < 2 or len(sojourn) != k:
            raise ConfigError(
                f"rates and mean_sojourn_s must have the same length >= 2, got {len(rates)} and {len(sojourn)}"
            )
        for i, (r, s) in enumerate(zip(rates, sojourn, strict=True)):
            require_positive(f"rates[{i}]", r, allow_zero=True)
            require_positive(f"mean_sojourn_s[{i}]", s)
        if max(rates) <= 0:
            raise ConfigError("at least one state needs a rate > 0")
        if self.jumps is None:
            jumps = tuple(tuple(0.0 if i == j else 1.0 / (k - 1) for j in range(k)) for i in range(k))
        else:
            jumps = tuple(tuple(float(x) for x in row) for row in self.jumps)
            m = np.asarray(jumps)
            if m.shape != (k, k) or not np.all(np.isfinite(m)) or np.any(m < 0):
                raise ConfigError(f"jumps must be a {k} x {k} matrix of probabilities >= 0")
            if np.any(np.diag(m) != 0) or not np.allclose(m.sum(axis=1), 1.0):
                raise ConfigError("jumps must have a zero diagonal and rows that sum to 1")
        object.__setattr__(self, "rates", rates)
        object.__setattr__(self, "mean_sojourn_s", sojourn)
        object.__setattr__(self, "jumps", jumps)

    @classmethod
    def bursts(cls, mean_rate: float, peak_ratio: float, burst_share: float, burst_s: float) -> MMPP:
        """Two states, calm and burst, with the given long-run ``mean_rate``.

        Parameters
        ----------
        mean_rate
            Long-run arrival rate (req/s).
        peak_ratio
            Burst rate / calm rate (>= 1).
        burst_share
            Long-run share of time in bursts, in (0, 1).
        burst_s
            Mean burst length (s); calm spells last ``burst_s (1 - share) / share`` on average.
        """
        require_positive("mean_rate", mean_rate)
        require_range("peak_ratio", peak_ratio, 1.0, 1e6)
        require_range("burst_share", burst_share, 1e-6, 1 - 1e-6)
        require_positive("burst_s", burst_s)
        calm = mean_rate / (1 - burst_share + burst_share * peak_ratio)
        return cls(
            rates=(calm, calm * peak_ratio),
            mean_sojourn_s=(burst_s * (1 - burst_share) / burst_share, burst_s),
        )

    @property
    def stationary(self) -> np.ndarray:
        """Long-run share of time in each state."""
        m = np.asarray(self.jumps)
        k = m.shape[0]
        # stationary law of the jump chain (left eigenvector for 1), weighted by the mean sojourns
        a = np.vstack([m.T - np.eye(k), np.ones(k)])
        b = np.zeros(k + 1)
        b[-1] = 1.0
        nu = np.linalg.lstsq(a, b, rcond=None)[0]
        w = np.clip(nu, 0.0, None) * np.asarray(self.mean_sojourn_s)
        return w / w.sum()

    @property
    def mean_rate(self) -> float:
        """Long-run arrival rate (req/s)."""
        return float(self.stationary @ np.asarray(self.rates))

    def sample(
        self, rng: np.random.Generator, n: int | None = None, duration_s: float | None = None
    ) -> np.ndarray:
        """MMPP arrival times: spells of the hidden chain, each a Poisson stream at its state's rate.

        Parameters and returns: see :meth:`~workbench.traces.arrivals.ArrivalProcess.sample`.
        """
        _need_one(n, duration_s)
        rates = np.asarray(self.rates)
        sojourn = np.asarray(self.mean_sojourn_s)
        assert self.jumps is not None  # filled by __post_init__
        cum = [list(np.cumsum(row)[:-1]) for row in self.jumps]  # bisect a uniform into the next state
        k = rates.size
        state = int(rng.choice(k, p=self.stationary))
        t = 0.0
        chunks: list[np.ndarray] = []
        got = 0
        # spells are drawn in batches: a state path, then all the arrivals of those spells at once
        batch = 64
        while (n is not None and got < n) or (duration_s is not None and t < duration_s):
            path = []
            for u in rng.random(batch).tolist():
                path.append(state)
                state = bisect_right(cum[state], u)
            states = np.asarray(path, dtype=np.int64)
            lengths = rng.exponential(sojourn[states])
            starts = t + np.concatenate([[0.0], np.cumsum(lengths[:-1])])
            counts = rng.poisson(rates[states] * lengths)
            total = int(counts.sum())
            if total:
                offsets = rng.random(total) * np.repeat(lengths, counts)
                times = np.repeat(starts, counts) + offsets
                times.sort()
                chunks.append(times)
                got += total
            t = float(starts[-1] + lengths[-1])
            batch = min(4 * batch, 65_536)
        times = np.concatenate(chunks) if chunks else np.empty(0)
        if n is not None:
            return times[:n]
        assert duration_s is not None  # _need_one: n or duration_s
        return times[times < duration_s]


def index_of_dispersion(process: MMPP) -> float:
    """Return the asymptotic index of dispersion of counts of a two-state MMPP.

    The index is the variance / mean of the count in a long window (the closed form in the module docstring).
    """
    if len(process.rates) != 2:
        raise ConfigError("the closed form holds for two states")
    l1, l2 = process.rates
    r1, r2 = (1.0 / s for s in process.mean_sojourn_s)
    return 1.0 + 2 * r1 * r2 * (l1 - l2) ** 2 / ((r1 + r2) ** 2 * (l1 * r2 + l2 * r1))


__all__ = ["MMPP", "index_of_dispersion"]
