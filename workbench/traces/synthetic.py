"""Synthetic workloads: arrival processes, length models, sessions with prefix reuse, and generators.

All randomness flows from one :class:`numpy.random.SeedSequence`: a generator's ``generate(..., seed=s)``
spawns one independent stream per random source (arrivals, lengths, sessions; one per client in a
:class:`ServeGenMix`), so the same seed gives an identical table and changing one source leaves the others
unchanged.

Building blocks (small frozen objects, swappable behind the :class:`ArrivalProcess` / :class:`LengthModel`
protocols):

* arrivals: :class:`Poisson`, :class:`Renewal` (Gamma or Weibull gaps with target rate and CV),
  :class:`TimeVarying` (a :class:`PiecewiseRate` or :class:`Diurnal` rate profile; Poisson by thinning,
  other CVs by time rescaling of a unit-rate renewal process);
* lengths: :class:`Fixed`, :class:`LogNormal` (fit by moments of the logs), :class:`Empirical` (resample rows of
  a table), :class:`Pmf` (independent probability mass functions, as ServeGen publishes them);
* prefix models (Mooncake hash convention: one id per ``block_tokens`` prompt block, equal id = same prefix
  up to and including that block): :class:`Sessions`, multi-turn conversations whose later turns reuse the
  earlier turns' prefix blocks and shared system prompts; :class:`PrefixReuse`, reuse depths and distances
  resampled from a trace (what :func:`~workbench.traces.transforms.fit` uses);
* generators: :class:`Synthetic` (arrivals x lengths [x prefix model]) and :class:`ServeGenMix` (per-client
  ServeGen windows and length PMFs), both with ``.generate(n | duration_s, seed) -> Trace``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import polars as pl
from scipy import optimize, special

from workbench.config import require_choice, require_positive, require_range
from workbench.errors import ConfigError, WorkloadError
from workbench.seeds import SeedLike, Streams
from workbench.traces.schema import SCHEMA, Trace
from workbench.traces.validate import conform

MAX_TOKENS = 2**31 - 1


def _need_one(n: int | None, duration_s: float | None) -> None:
    if (n is None) == (duration_s is None):
        raise ConfigError("give exactly one of n (requests) or duration_s (seconds)")
    if n is not None and (not isinstance(n, int | np.integer) or n < 1):
        raise ConfigError(f"n must be an integer >= 1, got {n!r}")
    if duration_s is not None:
        require_positive("duration_s", duration_s)


# ----------------------------------------------------------------------------------------------- arrivals
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
    def mean_rate(self) -> float: ...


def weibull_shape(cv: float) -> float:
    """Weibull shape ``k`` whose coefficient of variation is ``cv``."""

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
        _need_one(n, duration_s)
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
        require_choice("family", self.family, ("gamma", "weibull"))

    @property
    def mean_rate(self) -> float:
        return self.rate

    def sample(
        self, rng: np.random.Generator, n: int | None = None, duration_s: float | None = None
    ) -> np.ndarray:
        """Renewal arrival times: i.i.d. gaps of mean ``1 / rate`` and CV ``cv`` from ``family``.

        Parameters and returns: see :meth:`ArrivalProcess.sample`.
        """
        _need_one(n, duration_s)
        return _renewal(rng, self.family, self.cv, self.rate, n, duration_s)


@dataclass(frozen=True, slots=True, eq=False)
class PiecewiseRate:
    """Rate (req/s) constant on ``[edges_s[i], edges_s[i+1])``; the last rate holds after the last edge."""

    edges_s: np.ndarray
    rates: np.ndarray

    def __post_init__(self) -> None:
        edges = np.asarray(self.edges_s, dtype=float)
        rates = np.asarray(self.rates, dtype=float)
        if edges.ndim != 1 or rates.shape != edges.shape or edges.size == 0:
            raise ConfigError("edges_s and rates must be 1-D arrays of equal, non-zero length")
        if edges[0] != 0.0 or np.any(np.diff(edges) <= 0):
            raise ConfigError("edges_s must start at 0 and increase")
        if np.any(~np.isfinite(rates)) or np.any(rates < 0) or rates[-1] <= 0:
            raise ConfigError(
                "rates must be finite and >= 0, and the last rate (which holds after the last edge) > 0"
            )
        object.__setattr__(self, "edges_s", edges)
        object.__setattr__(self, "rates", rates)

    def rate(self, t: np.ndarray) -> np.ndarray:
        idx = np.clip(np.searchsorted(self.edges_s, t, side="right") - 1, 0, self.rates.size - 1)
        return self.rates[idx]

    @property
    def max_rate(self) -> float:
        return float(self.rates.max())

    @property
    def mean_rate(self) -> float:
        widths = np.diff(self.edges_s)
        return float((self.rates[:-1] * widths).sum() / widths.sum()) if widths.size else float(self.rates[0])

    def cumulative(self, t: np.ndarray) -> np.ndarray:
        """Expected number of arrivals in ``[0, t]``."""
        knots = np.concatenate([[0.0], np.cumsum(self.rates[:-1] * np.diff(self.edges_s))])
        idx = np.clip(np.searchsorted(self.edges_s, t, side="right") - 1, 0, self.rates.size - 1)
        return knots[idx] + self.rates[idx] * (np.asarray(t) - self.edges_s[idx])

    def inverse_cumulative(self, lam: np.ndarray) -> np.ndarray:
        """Time ``t`` at which :meth:`cumulative` reaches ``lam`` (the first such time)."""
        knots = np.concatenate([[0.0], np.cumsum(self.rates[:-1] * np.diff(self.edges_s))])
        # side="right" lands on the last piece starting at a knot value, which skips zero-rate pieces
        idx = np.clip(np.searchsorted(knots, lam, side="right") - 1, 0, self.rates.size - 1)
        return self.edges_s[idx] + (lam - knots[idx]) / self.rates[idx]


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
        require_choice("family", self.family, ("gamma", "weibull"))

    @property
    def mean_rate(self) -> float:
        return self.profile.mean_rate

    def sample(
        self, rng: np.random.Generator, n: int | None = None, duration_s: float | None = None
    ) -> np.ndarray:
        """Arrival times following the rate profile (thinning for CV 1, time rescaling otherwise).

        Parameters and returns: see :meth:`ArrivalProcess.sample`.
        """
        _need_one(n, duration_s)
        if self.cv == 1.0:
            return self._thinning(rng, n, duration_s)
        if n is not None:
            return self.profile.inverse_cumulative(_renewal(rng, self.family, self.cv, 1.0, n=n))
        units = _renewal(rng, self.family, self.cv, 1.0, duration_s=float(self.profile.cumulative(duration_s)))
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


# ----------------------------------------------------------------------------------------------- lengths
@runtime_checkable
class LengthModel(Protocol):
    """Prompt and output token counts (int32 arrays, >= 1) for ``n`` requests."""

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Prompt and output token counts of ``n`` requests.

        Parameters
        ----------
        rng
            The length stream (spawned from the generator's seed).
        n
            Number of requests.

        Returns
        -------
        tuple of numpy.ndarray
            ``(prompt_tokens, output_tokens)``, int32 arrays of length ``n``, values >= 1.
        """
        ...


def _tokens(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 1, MAX_TOKENS).astype(np.int32)


@dataclass(frozen=True, slots=True)
class Fixed:
    """Every request has the same prompt and output length."""

    prompt_tokens: int = 512
    output_tokens: int = 128

    def __post_init__(self) -> None:
        require_positive("prompt_tokens", self.prompt_tokens)
        require_positive("output_tokens", self.output_tokens)

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` copies of the fixed prompt and output lengths.

        Parameters and returns: see :meth:`LengthModel.sample`.
        """
        return np.full(n, self.prompt_tokens, np.int32), np.full(n, self.output_tokens, np.int32)


@dataclass(frozen=True, slots=True)
class LogNormal:
    """Log-normal prompt and output lengths (parameters of the natural logs) with correlation ``rho``."""

    prompt_mu: float
    prompt_sigma: float
    output_mu: float
    output_sigma: float
    rho: float = 0.0

    def __post_init__(self) -> None:
        require_positive("prompt_sigma", self.prompt_sigma, allow_zero=True)
        require_positive("output_sigma", self.output_sigma, allow_zero=True)
        require_range("rho", self.rho, -1.0, 1.0)

    @classmethod
    def fit(cls, prompt: np.ndarray, output: np.ndarray) -> LogNormal:
        """Maximum-likelihood fit (mean and std of the logs, correlation of the logs)."""
        lp, lo = np.log(np.asarray(prompt, float)), np.log(np.asarray(output, float))
        rho = float(np.corrcoef(lp, lo)[0, 1]) if lp.std() > 0 and lo.std() > 0 else 0.0
        return cls(float(lp.mean()), float(lp.std()), float(lo.mean()), float(lo.std()), rho)

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Correlated log-normal lengths, rounded to whole tokens (at least 1).

        Parameters and returns: see :meth:`LengthModel.sample`.
        """
        z1, z2 = rng.standard_normal(n), rng.standard_normal(n)
        z2 = self.rho * z1 + math.sqrt(1 - self.rho**2) * z2
        return (
            _tokens(np.exp(self.prompt_mu + self.prompt_sigma * z1)),
            _tokens(np.exp(self.output_mu + self.output_sigma * z2)),
        )


@dataclass(frozen=True, slots=True, eq=False)
class Empirical:
    """Resample (prompt, output) pairs of a table with replacement (keeps their joint distribution)."""

    prompt: np.ndarray
    output: np.ndarray

    def __post_init__(self) -> None:
        p, o = np.asarray(self.prompt, np.int32), np.asarray(self.output, np.int32)
        if p.size == 0 or p.shape != o.shape or p.min() < 1 or o.min() < 1:
            raise ConfigError("Empirical lengths need equal-length, non-empty arrays of tokens >= 1")
        object.__setattr__(self, "prompt", p)
        object.__setattr__(self, "output", o)

    @classmethod
    def from_trace(cls, trace: Trace) -> Empirical:
        return cls(trace.requests["prompt_tokens"].to_numpy(), trace.requests["output_tokens"].to_numpy())

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` (prompt, output) pairs drawn from the table with replacement.

        Parameters and returns: see :meth:`LengthModel.sample`.
        """
        idx = rng.integers(0, self.prompt.size, n)
        return self.prompt[idx], self.output[idx]


@dataclass(frozen=True, slots=True, eq=False)
class Pmf:
    """Independent prompt and output lengths drawn from probability mass functions (values, probabilities)."""

    prompt_values: np.ndarray
    prompt_probs: np.ndarray
    output_values: np.ndarray
    output_probs: np.ndarray

    def __post_init__(self) -> None:
        for name in ("prompt", "output"):
            v = np.asarray(getattr(self, f"{name}_values"), float)
            p = np.asarray(getattr(self, f"{name}_probs"), float)
            if v.size == 0 or v.shape != p.shape or np.any(p < 0) or p.sum() <= 0:
                raise ConfigError(f"{name} PMF must have matching non-empty values and probabilities >= 0")
            object.__setattr__(self, f"{name}_values", v)
            object.__setattr__(self, f"{name}_probs", p / p.sum())

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Prompt and output lengths drawn independently from their PMFs, rounded to whole tokens.

        Parameters and returns: see :meth:`LengthModel.sample`.
        """
        p = rng.choice(self.prompt_values, n, p=self.prompt_probs)
        o = rng.choice(self.output_values, n, p=self.output_probs)
        return _tokens(p), _tokens(o)


# ----------------------------------------------------------------------------------------------- sessions
@dataclass(frozen=True, slots=True)
class Sessions:
    """Multi-turn sessions with prefix reuse.

    Each session has ``1 + Geometric`` turns with mean ``mean_turns``. Turn ``j``'s prompt is the whole
    conversation so far (system prompt + earlier user messages and answers) plus a new user message whose
    length is drawn from the generator's length model; its output length too. Turns of one session are spaced by
    exponential think times of mean ``think_s`` and keep their order. A share ``system_prompt_share`` of the
    sessions starts with one of ``n_system_prompts`` shared system prompts of ``system_prompt_tokens`` tokens.

    Prefix hashes follow the Mooncake convention: one id per ``block_tokens`` block of the prompt; a full block
    keeps its id in every later turn of the session; blocks entirely inside a shared system prompt carry that
    prompt's ids in every session using it; a partial last block gets a fresh id. Ids are numbered 0, 1, ... in
    order of first appearance. More turns and a larger system-prompt share raise the prefix-reuse ratio.
    """

    mean_turns: float = 3.0
    think_s: float = 60.0
    system_prompt_tokens: int = 0
    n_system_prompts: int = 1
    system_prompt_share: float = 0.0
    block_tokens: int = 512

    def __post_init__(self) -> None:
        require_range("mean_turns", self.mean_turns, 1.0, 1000.0)
        require_positive("think_s", self.think_s, allow_zero=True)
        require_positive("system_prompt_tokens", self.system_prompt_tokens, allow_zero=True)
        require_positive("n_system_prompts", self.n_system_prompts)
        require_range("system_prompt_share", self.system_prompt_share, 0.0, 1.0)
        require_positive("block_tokens", self.block_tokens)

    def build(
        self, rng: np.random.Generator, arrivals: np.ndarray, user: np.ndarray, output: np.ndarray
    ) -> dict[str, np.ndarray | list]:
        """Assign the ``n`` sorted arrivals to sessions; return session columns, prompts and prefix hashes."""
        n = arrivals.size
        turns = rng.geometric(1.0 / self.mean_turns, size=n)  # at most n sessions are needed
        ends = np.cumsum(turns)
        n_sessions = int(np.searchsorted(ends, n) + 1)
        turns = turns[:n_sessions]
        turns[-1] -= ends[n_sessions - 1] - n
        session = np.repeat(np.arange(n_sessions), turns)
        first = np.concatenate([[0], np.cumsum(turns)[:-1]])
        turn = np.arange(n) - np.repeat(first, turns)
        span = float(arrivals[-1] - arrivals[0]) if n > 1 else 1.0
        start = rng.uniform(0, span, n_sessions)
        gaps = np.where(turn > 0, rng.exponential(self.think_s, n), 0.0)
        key = np.repeat(start, turns) + _group_cumsum(gaps, first, turns)
        order = np.lexsort((turn, key))  # ranks -> arrival slots; turns keep their order
        shared = rng.random(n_sessions) < self.system_prompt_share
        sys_id = np.where(shared, rng.integers(0, self.n_system_prompts, n_sessions), -1)
        sys_len = np.where(shared, self.system_prompt_tokens, 0)
        # prompt_j = sys + sum_{i<=j} user_i + sum_{i<j} output_i   (context grows by each exchange)
        prev_out = np.where(turn > 0, np.roll(output, 1), 0)
        prompt = np.repeat(sys_len, turns) + _group_cumsum(user.astype(np.int64) + prev_out, first, turns)
        prompt = np.minimum(prompt, MAX_TOKENS).astype(np.int32)
        hashes = self._hashes(session, prompt, np.repeat(sys_id, turns), np.repeat(sys_len, turns))
        # rows are (session, turn)-ordered; put them into arrival order
        return {
            "arrival_s": arrivals,
            "session_id": session[order].astype(np.uint64),
            "turn": turn[order].astype(np.int32),
            "prompt_tokens": prompt[order],
            "output_tokens": output[order],
            "prefix_hashes": [hashes[i] for i in order],
        }

    def _hashes(self, session, prompt, sys_id, sys_len) -> list[np.ndarray]:
        b = self.block_tokens
        nblocks = -(-prompt.astype(np.int64) // b)
        row = np.repeat(np.arange(prompt.size), nblocks)
        blk = np.arange(row.size) - np.repeat(np.cumsum(nblocks) - nblocks, nblocks)
        full_end = (blk + 1) * b
        in_sys = (sys_id[row] >= 0) & (full_end <= sys_len[row])
        complete = full_end <= prompt[row]
        tag = np.where(in_sys, 1, np.where(complete, 2, 3)).astype(np.uint64)
        owner = np.where(in_sys, sys_id[row], np.where(complete, session[row], row)).astype(np.uint64)
        key = _mix(tag, owner, blk.astype(np.uint64))
        uniq, first_idx, inverse = np.unique(key, return_index=True, return_inverse=True)
        rank = np.empty(uniq.size, np.uint64)
        rank[np.argsort(first_idx, kind="stable")] = np.arange(uniq.size, dtype=np.uint64)
        ids = rank[inverse]
        return np.split(ids, np.cumsum(nblocks)[:-1])


@dataclass(frozen=True, slots=True, eq=False)
class PrefixReuse:
    """Shared prompt prefixes resampled from a trace: a request reuses the leading blocks of an earlier one.

    The model behind the Mooncake hash convention (equal id = same prefix up to and including that block): a
    request's first ``depth`` prompt blocks are those of an earlier request ``lag`` positions back, the rest are
    new. :meth:`from_trace` measures, for every request of a trace with prefix hashes, its prompt block count,
    ``depth`` (leading blocks whose hash was seen before) and ``lag`` (requests back to the latest earlier
    request holding that prefix). :meth:`build` gives each generated request the (depth, lag) of a random source
    request with the same block count (the nearest count present otherwise). When the request ``lag`` back does
    not exist or holds fewer than ``depth`` blocks, the lag is redrawn from the observed lags that fit (up to 32
    times); failing that, the request copies the latest longest earlier request and its depth is cut to that
    request's blocks. This keeps the prefix-reuse ratio, its dependence on prompt length and the reuse
    distances, but not a trend of reuse over time (a warming cache in the source). Sessions are not modelled (no
    ``session_id``/``turn``), and reuse of blocks that are not leading (other hash conventions) is not
    reproduced.

    Attributes
    ----------
    blocks
        Prompt blocks (``ceil(prompt_tokens / block_tokens)``) of each source request.
    depth
        Leading blocks of each source request that were seen in an earlier request (<= ``blocks``).
    lag
        Requests back to the latest earlier request holding that prefix (ignored where ``depth`` is 0).
    block_tokens
        Tokens per prefix block.
    """

    blocks: np.ndarray
    depth: np.ndarray
    lag: np.ndarray
    block_tokens: int = 512

    def __post_init__(self) -> None:
        require_positive("block_tokens", self.block_tokens)
        blocks, depth, lag = (np.asarray(getattr(self, k), np.int64) for k in ("blocks", "depth", "lag"))
        if blocks.ndim != 1 or blocks.size == 0 or depth.shape != blocks.shape or lag.shape != blocks.shape:
            raise ConfigError("PrefixReuse needs equal-length, non-empty blocks, depth and lag arrays")
        if np.any(blocks < 1) or np.any(depth < 0) or np.any(depth > blocks) or np.any((depth > 0) & (lag < 1)):
            raise ConfigError(
                "PrefixReuse needs blocks >= 1, 0 <= depth <= blocks, and lag >= 1 where depth > 0"
            )
        for k, v in (("blocks", blocks), ("depth", depth), ("lag", lag)):
            object.__setattr__(self, k, v)

    @classmethod
    def from_trace(cls, trace: Trace, block_tokens: int | None = None) -> PrefixReuse:
        """Measure block counts, reuse depths and reuse lags of a trace with ``prefix_hashes``.

        Parameters
        ----------
        trace
            Requests in arrival order; rows without hashes count as requests that reuse nothing.
        block_tokens
            Tokens per block (default: ``trace.prefix_block_tokens``).

        Returns
        -------
        PrefixReuse

        Raises
        ------
        WorkloadError
            When the trace has no prefix hashes or its block size is unknown.
        """
        block = block_tokens or trace.prefix_block_tokens
        df = trace.requests
        if block is None or not trace.has_prefix_hashes:
            raise WorkloadError(
                f"{trace.name!r} has no prefix hashes with a known block size (prefix_block_tokens)",
                field="prefix_hashes",
            )
        flat = (
            df.select(pl.col("prefix_hashes").alias("h"))
            .with_row_index("i")
            .explode("h")
            .drop_nulls("h")
            .with_columns(prev=pl.col("i").shift(1).over("h"))  # latest earlier row holding the same block
        )
        i = flat["i"].to_numpy().astype(np.int64)
        seen = flat["prev"].is_not_null().to_numpy()
        lag_flat = i - flat["prev"].fill_null(0).to_numpy().astype(np.int64)
        counts = np.bincount(i, minlength=df.height)
        first = np.concatenate([[0], np.cumsum(counts)[:-1]])
        # leading run of seen blocks: position of the first unseen block in each request (or its length)
        unseen_pos = np.where(seen, np.iinfo(np.int64).max, np.arange(i.size) - first[i])
        # one reduceat segment per row with hashes (a row without any has no segment: its start would be
        # i.size after trailing empty rows, out of reduceat's bounds)
        has = counts > 0
        depth = np.zeros(df.height, np.int64)
        if i.size:
            depth[has] = np.minimum(np.minimum.reduceat(unseen_pos, first[has]), counts[has])
        last = np.where(depth > 0, first + depth - 1, 0)
        lag = np.where(depth > 0, np.maximum(lag_flat[last] if i.size else 0, 1), 0)
        blocks = -(-df["prompt_tokens"].to_numpy().astype(np.int64) // block)
        return cls(blocks, np.minimum(depth, blocks), lag, block)

    @property
    def reuse_ratio(self) -> float:
        """Share of the source's prompt blocks that were reused (``sum(depth) / sum(blocks)``)."""
        return float(self.depth.sum() / self.blocks.sum())

    def build(
        self, rng: np.random.Generator, arrivals: np.ndarray, prompt: np.ndarray, output: np.ndarray
    ) -> dict[str, np.ndarray | list]:
        """Columns of ``n`` requests (arrival order) with prefix hashes drawn as described above.

        Parameters
        ----------
        rng
            Random stream of this model.
        arrivals, prompt, output
            Sorted arrival times and the sampled prompt and output lengths of the requests.

        Returns
        -------
        dict
            ``arrival_s``, ``prompt_tokens``, ``output_tokens`` (unchanged) and ``prefix_hashes`` (one id list
            per request, ids numbered 0, 1, ... in order of first appearance).
        """
        n = prompt.size
        nb = -(-prompt.astype(np.int64) // self.block_tokens)
        order = np.argsort(self.blocks, kind="stable")
        keys, starts, sizes = np.unique(self.blocks[order], return_index=True, return_counts=True)
        hi = np.minimum(np.searchsorted(keys, nb), keys.size - 1)
        lo = np.maximum(hi - 1, 0)
        pos = np.where(np.abs(keys[lo] - nb) <= np.abs(keys[hi] - nb), lo, hi)  # nearest count in the source
        src = order[starts[pos] + (rng.random(n) * sizes[pos]).astype(np.int64)]
        depth, lag = np.minimum(self.depth[src], nb), self.lag[src].copy()
        idx = np.arange(n)
        pool = np.sort(self.lag[self.depth > 0])
        fits = np.searchsorted(pool, idx, side="right")  # observed lags that reach back no further than 0
        parent = idx - lag
        ok = (depth == 0) | ((parent >= 0) & (nb[np.maximum(parent, 0)] >= depth))
        for _ in range(32):
            bad = np.flatnonzero(~ok & (fits > 0))
            if bad.size == 0:
                break
            parent[bad] = bad - pool[(rng.random(bad.size) * fits[bad]).astype(np.int64)]
            ok[bad] = nb[parent[bad]] >= depth[bad]
        # still no earlier request holding `depth` blocks: copy from the latest longest one, cut the depth
        longest = np.maximum.accumulate(np.where(nb == np.maximum.accumulate(nb), idx, 0))
        bad = ~ok
        parent[bad] = longest[np.maximum(idx[bad] - 1, 0)]
        depth = np.where(idx == 0, 0, np.minimum(depth, nb[parent]))
        return {
            "arrival_s": arrivals,
            "prompt_tokens": prompt,
            "output_tokens": output,
            "prefix_hashes": _chain_ids(nb, parent, depth),
        }


def _chain_ids(nb: np.ndarray, parent: np.ndarray, depth: np.ndarray) -> list[np.ndarray]:
    """Block ids when request ``i``'s first ``depth[i]`` blocks are those of request ``parent[i] < i``.

    Each block points at the block it copies; pointer jumping finds the original, and originals are numbered in
    order of first appearance.
    """
    off = np.concatenate([[0], np.cumsum(nb)])
    req = np.repeat(np.arange(nb.size), nb)
    j = np.arange(off[-1]) - off[req]
    ptr = np.arange(off[-1])
    copy = j < depth[req]
    ptr[copy] = off[parent[req[copy]]] + j[copy]
    while True:
        nxt = ptr[ptr]
        if np.array_equal(nxt, ptr):
            break
        ptr = nxt
    ids = np.unique(ptr, return_inverse=True)[1].astype(np.uint64)
    return np.split(ids, off[1:-1])


def _group_cumsum(x: np.ndarray, first: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Cumulative sum of ``x`` restarting at each group (groups are consecutive runs)."""
    c = np.cumsum(x)
    base = np.repeat(c[first] - x[first], sizes)
    return c - base


def _mix(*parts: np.ndarray) -> np.ndarray:
    """64-bit hash (splitmix64 rounds) of equal-length uint64 arrays."""
    with np.errstate(over="ignore"):
        h = np.zeros_like(parts[0], dtype=np.uint64)
        for p in parts:
            h = (h ^ p) + np.uint64(0x9E3779B97F4A7C15)
            h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            h = h ^ (h >> np.uint64(31))
    return h


# ----------------------------------------------------------------------------------------------- generators
def to_trace(columns: dict, *, name: str, block_tokens: int | None = None, source: str = "", **meta) -> Trace:
    """Build a canonical :class:`Trace` from column arrays (missing columns become null)."""
    n = len(columns["prompt_tokens"])
    cols = {"request_id": np.arange(n, dtype=np.uint64)} | columns
    data = {k: pl.Series(k, v, dtype=SCHEMA[k]) for k, v in cols.items()}
    df = conform(pl.DataFrame(data))
    return Trace(df, name=name, prefix_block_tokens=block_tokens, source=source or "synthetic", meta=meta)


@dataclass(frozen=True, slots=True)
class Synthetic:
    """A workload generator: an arrival process, a length model and optionally a prefix model.

    Attributes
    ----------
    arrivals
        Arrival process (:class:`Poisson`, :class:`Renewal`, :class:`TimeVarying`, ...).
    lengths
        Length model (:class:`Fixed`, :class:`LogNormal`, :class:`Empirical`, :class:`Pmf`); with
        :class:`Sessions` it gives each turn's new user message and its output.
    sessions
        Prefix model that assigns ``prefix_hashes``: :class:`Sessions` (multi-turn conversations, also sets
        ``session_id`` and ``turn``) or :class:`PrefixReuse` (reuse resampled from a trace); ``None`` for no
        hashes.
    name, request_class, client
        Trace name and the constant ``request_class`` / ``client`` tags of the generated requests.

    Examples
    --------
    >>> from workbench.traces.synthetic import Synthetic, Renewal, LogNormal
    >>> gen = Synthetic(Renewal(rate=5.0, cv=2.0), LogNormal(7.0, 1.0, 5.0, 1.0))
    >>> trace = gen.generate(n=1000, seed=1)
    >>> len(trace)
    1000
    """

    arrivals: ArrivalProcess = field(default_factory=lambda: Poisson(1.0))
    lengths: LengthModel = field(default_factory=Fixed)
    sessions: Sessions | PrefixReuse | None = None
    name: str = "synthetic"
    request_class: str | None = None
    client: str | None = None

    def generate(self, n: int | None = None, *, duration_s: float | None = None, seed: SeedLike = 0) -> Trace:
        """Generate ``n`` requests, or all requests arriving in ``[0, duration_s)``.

        Parameters
        ----------
        n
            Number of requests; give this or ``duration_s``.
        duration_s
            Length of the generated span in seconds.
        seed
            Seed (or SeedSequence) from which the arrival, length and prefix streams are spawned.

        Returns
        -------
        Trace
            The requests in the canonical schema. The first arrival is at the first sampled gap (not forced
            to 0). Same seed -> identical trace.

        Raises
        ------
        WorkloadError
            When no request arrives in the span.
        """
        _need_one(n, duration_s)
        streams = Streams(seed)
        r_arr, r_len, r_ses = (streams.rng(f"synthetic/{s}") for s in ("arrivals", "lengths", "sessions"))
        t = self.arrivals.sample(r_arr, n=n, duration_s=duration_s)
        if t.size == 0:
            raise WorkloadError(f"generator {self.name!r} produced no requests; raise the rate or duration")
        prompt, output = self.lengths.sample(r_len, t.size)
        if self.sessions is None:
            cols: dict = {"arrival_s": t, "prompt_tokens": prompt, "output_tokens": output}
            block = None
        else:
            cols = self.sessions.build(r_ses, t, prompt, output)
            block = self.sessions.block_tokens
        if self.request_class is not None:
            cols["request_class"] = [self.request_class] * t.size
        if self.client is not None:
            cols["client"] = [self.client] * t.size
        return to_trace(cols, name=self.name, block_tokens=block, generator=repr(self))


# ----------------------------------------------------------------------------------------------- ServeGen
SERVEGEN_WINDOW_S = 600.0
SERVEGEN_PDF_WINDOW_S = 21_600.0
SERVEGEN_SOURCE = (
    'Generated from ServeGen per-client data (alibaba/ServeGen), Apache-2.0. Cite: Xiang et al., "ServeGen: '
    'Workload Characterization and Generation of Large Language Model Serving in Production", arXiv:2505.09999.'
)


@dataclass(frozen=True, slots=True, eq=False)
class ServeGenMix:
    """Client-mixture generator from ServeGen per-client windows (rate, CV, Gamma/Weibull) and length PMFs.

    For every client and 600-s window with a non-zero rate, inter-arrival gaps are drawn from the fitted
    family (shape ``pat_arg1``) rescaled to the window's mean rate, as the ServeGen generator does. Lengths come
    from the client's input/output PMFs of the 6-hour window containing the request; clients whose PMFs are
    missing from the data (55 of 430) use the model's pooled PMF. Each client gets its own random stream.

    Attributes
    ----------
    windows
        Rows of ``servegen_client_windows.parquet`` for the chosen model and time span.
    pmfs
        Rows of ``servegen_client_length_pdfs.parquet`` (fields ``input_tokens``/``output_tokens``).
    model
        The ServeGen model name, stored as ``request_class``; clients go to ``client`` as ``model/id``.
    start_s, end_s
        Time span (seconds from 00:00 of day 1) that ``generate`` covers; arrivals are shifted to start at 0.
    rate_scale
        Multiplies every client's rate (e.g. 0.01 for a laptop-sized slice of a production mix); the mix
        shares, CVs and lengths are unchanged.
    """

    windows: pl.DataFrame
    pmfs: pl.DataFrame
    model: str
    start_s: float
    end_s: float
    name: str = "servegen"
    rate_scale: float = 1.0

    def __post_init__(self) -> None:
        require_positive("rate_scale", self.rate_scale)

    @classmethod
    def from_files(
        cls,
        windows_path: str | Path,
        pdfs_path: str | Path,
        *,
        model: str = "m-large",
        start_s: float = 72_000.0,
        end_s: float = 75_600.0,
        clients: list[int] | None = None,
        top_clients: int | None = None,
        rate_scale: float = 1.0,
    ) -> ServeGenMix:
        """Read the two ServeGen Parquet files lazily, keeping ``model`` and ``[start_s, end_s)``.

        ``top_clients`` keeps the clients with the most requests in the span; ``clients`` keeps given ids.
        The default span is 20:00-21:00 of day 1, as in the ServeGen README.
        """
        if end_s <= start_s:
            raise ConfigError(f"end_s must be > start_s, got {start_s}..{end_s}")
        win = (
            pl.scan_parquet(windows_path)
            .filter(
                (pl.col("model") == model)
                & (pl.col("timestamp") >= start_s - SERVEGEN_WINDOW_S + 1)
                & (pl.col("timestamp") < end_s)
            )
            .collect()
        )
        if win.height == 0:
            raise WorkloadError(
                f"no ServeGen windows for model {model!r} in [{start_s}, {end_s})",
                file=str(windows_path),
                field="model",
            )
        if clients is not None:
            win = win.filter(pl.col("client_id").is_in(clients))
        if top_clients is not None:
            top = (
                win.group_by("client_id")
                .agg((pl.col("rate") * SERVEGEN_WINDOW_S).sum().alias("n"))
                .sort(["n", "client_id"], descending=[True, False])
                .head(top_clients)["client_id"]
            )
            win = win.filter(pl.col("client_id").is_in(top.implode()))
        lo = math.floor(start_s / SERVEGEN_PDF_WINDOW_S) * SERVEGEN_PDF_WINDOW_S
        pmfs = (
            pl.scan_parquet(pdfs_path)
            .filter(
                (pl.col("model") == model)
                & pl.col("field").is_in(["input_tokens", "output_tokens"])
                & (pl.col("window_start_s") >= lo)
                & (pl.col("window_start_s") < end_s)
            )
            .collect()
        )
        return cls(
            win.sort(["client_id", "timestamp"]),
            pmfs,
            model,
            float(start_s),
            float(end_s),
            name=f"servegen_{model}",
            rate_scale=rate_scale,
        )

    @classmethod
    def from_datasets(cls, **kwargs) -> ServeGenMix:
        """:meth:`from_files` on the registered datasets ``servegen_windows`` and ``servegen_length_pdfs``."""
        from workbench import datasets

        return cls.from_files(
            datasets.fetch("servegen_windows"), datasets.fetch("servegen_length_pdfs"), **kwargs
        )

    @property
    def clients(self) -> list[int]:
        return self.windows["client_id"].unique().sort().to_list()

    def _pmf(self, client: int | None, t: float) -> Pmf:
        w = math.floor(t / SERVEGEN_PDF_WINDOW_S) * SERVEGEN_PDF_WINDOW_S
        sel = self.pmfs.filter(pl.col("window_start_s") == w)
        own = sel.filter(pl.col("client_id") == client) if client is not None else sel.clear()
        if own.select(pl.col("field").n_unique()).item() < 2:
            own = sel
        if own.select(pl.col("field").n_unique()).item() < 2:
            own = self.pmfs
        if own.select(pl.col("field").n_unique()).item() < 2:
            raise WorkloadError(f"no ServeGen length PMFs for model {self.model!r}", field="probability")
        agg = own.group_by("field", "value").agg(pl.col("probability").sum()).sort("field", "value")
        inp, out = agg.filter(pl.col("field") == "input_tokens"), agg.filter(pl.col("field") == "output_tokens")
        return Pmf(
            inp["value"].to_numpy(),
            inp["probability"].to_numpy(),
            out["value"].to_numpy(),
            out["probability"].to_numpy(),
        )

    def generate(self, n: int | None = None, *, duration_s: float | None = None, seed: SeedLike = 0) -> Trace:
        """Generate the mix over ``duration_s`` (default: the whole span), or its first ``n`` requests.

        Parameters
        ----------
        n
            Keep only the first ``n`` requests.
        duration_s
            Seconds from ``start_s`` to generate (cut at ``end_s``).
        seed
            Seed from which one stream per client is spawned.

        Returns
        -------
        Trace
            Requests with ``client`` (``model/id``) and ``request_class`` (the model), arrivals from 0.
        """
        if duration_s is None:
            duration_s = self.end_s - self.start_s
        require_positive("duration_s", duration_s)
        end = min(self.end_s, self.start_s + duration_s)
        clients = self.clients
        streams = Streams(seed)  # one stream per client, keyed by its position in the client list
        rngs = {client: streams.rng(k) for k, client in enumerate(clients)}
        parts = []
        for (client,), rows in self.windows.group_by(["client_id"], maintain_order=True):
            rng = rngs[client]
            times = []
            for w in rows.filter(pl.col("rate") > 0).iter_rows(named=True):
                lo, hi = max(w["timestamp"], self.start_s), min(w["timestamp"] + SERVEGEN_WINDOW_S, end)
                if hi <= lo:
                    continue
                family = {"Gamma": "gamma", "Weibull": "weibull"}.get(w["pat_name"], "exponential")
                t = _servegen_gaps(rng, family, w["pat_arg1"], w["rate"] * self.rate_scale, hi - lo)
                times.append(lo + t)
            if not times:
                continue
            t = np.concatenate(times)
            prompt = np.empty(t.size, np.int32)
            output = np.empty(t.size, np.int32)
            win = np.floor(t / SERVEGEN_PDF_WINDOW_S)
            for wv in np.unique(win):
                m = win == wv
                prompt[m], output[m] = self._pmf(client, float(wv * SERVEGEN_PDF_WINDOW_S)).sample(
                    rng, int(m.sum())
                )
            parts.append(
                pl.DataFrame(
                    {
                        "arrival_s": t - self.start_s,
                        "prompt_tokens": prompt,
                        "output_tokens": output,
                        "client": f"{self.model}/{client}",
                    }
                )
            )
        if not parts:
            raise WorkloadError("ServeGen mix produced no requests in the chosen span", field="rate")
        df = pl.concat(parts).sort("arrival_s", "client", maintain_order=True)
        if n is not None:
            df = df.head(n)
        cols = {c: df[c].to_numpy() if c != "client" else df[c].to_list() for c in df.columns}
        cols["request_class"] = [self.model] * df.height
        return to_trace(cols, name=self.name, source=SERVEGEN_SOURCE, clients=len(parts))


def _servegen_gaps(rng, family: str, shape: float, rate: float, span: float) -> np.ndarray:
    """Arrival offsets in ``[0, span)`` with gaps from the fitted family, rescaled to mean ``1/rate``."""
    k = int(rate * span * 1.5) + 16
    if family == "gamma" and shape > 0:
        g = rng.gamma(shape, 1.0, k)
    elif family == "weibull" and shape > 0:
        g = rng.weibull(shape, k)
    else:
        g = rng.exponential(1.0, k)
    g = g / g.mean() / rate if g.mean() > 0 else np.full(k, 1.0 / rate)
    t = np.cumsum(g) - g[0] * rng.random()  # random phase: the window does not start with an arrival
    while t[-1] < span:  # rare: extend
        more = _servegen_gaps(rng, family, shape, rate, span - t[-1])
        t = np.concatenate([t, t[-1] + more + 1e-9])
    return t[(t >= 0) & (t < span)]
