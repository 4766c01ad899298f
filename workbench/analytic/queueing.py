"""Multi-server queueing formulas, vectorised with numpy (every argument may be an array; they broadcast).

Notation: ``c`` servers, per-server utilisation ``rho = lambda / (c mu)`` (offered load ``a = c rho``), mean
service time ``service_mean = 1 / mu``; ``scv`` is a squared coefficient of variation (variance / mean^2).

- M/M/c (exact, Erlang C): :func:`erlang_c` (probability of waiting), :func:`mmc_mean_wait`,
  :func:`mmc_wait_cdf`, :func:`mmc_wait_quantile`.
- M/G/c and G/G/c (approximations): :func:`mgc_mean_wait` with ``method="allen-cunneen"`` (M/M/c wait x
  (ca^2 + cs^2) / 2; Allen 1990) or ``"kimura"`` (Kimura 1986: interpolation between M/M/c and M/D/c, the
  latter by Cosmetatos' formula; for cs^2 <= 1, falls back to Allen-Cunneen above), and
  :func:`mgc_wait_quantile` (P(wait) from Erlang C, exponential conditional wait with the approximate mean).

Unstable systems (``rho >= 1``) give ``inf`` waits and ``P(wait) = 1``.

Examples
--------
>>> float(erlang_c(2, 0.5))  # c = 2, offered load 1 Erlang: P(wait) = 1/3
0.3333333333333333
>>> float(mmc_mean_wait(2, 0.5, 1.0))  # = C / (c mu - lambda) = (1/3) / (2 - 1)
0.3333333333333333
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import gammaln, pdtr

from workbench.errors import ConfigError

METHODS = ("allen-cunneen", "kimura")


def _check(c: ArrayLike, rho: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    c, rho = np.asarray(c, dtype=float), np.asarray(rho, dtype=float)
    if np.any(~np.isfinite(c)) or np.any(c < 1) or np.any(c != np.floor(c)):
        raise ConfigError("c (number of servers) must be an integer >= 1")
    if np.any(~(rho >= 0)):
        raise ConfigError("rho (utilisation) must be >= 0")
    return c, rho


def erlang_b(c: ArrayLike, a: ArrayLike) -> np.ndarray:
    """Erlang-B blocking probability of ``c`` servers with offered load ``a`` Erlangs (Poisson pmf / cdf)."""
    c, a = np.asarray(c, dtype=float), np.asarray(a, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_pmf = np.where(a > 0, c * np.log(np.where(a > 0, a, 1.0)) - a - gammaln(c + 1), -np.inf)
        b = np.exp(log_pmf) / pdtr(c, a)
    return np.where(a > 0, np.clip(b, 0.0, 1.0), 0.0)


def erlang_c(c: ArrayLike, rho: ArrayLike) -> np.ndarray:
    """Probability that an arrival waits in an M/M/c queue (Erlang C).

    Parameters
    ----------
    c
        Number of servers (integer >= 1).
    rho
        Per-server utilisation ``lambda / (c mu)``; values >= 1 give 1.

    Returns
    -------
    numpy.ndarray
        P(wait > 0), computed stably from Erlang B: ``C = B / (1 - rho (1 - B))``.
    """
    c, rho = _check(c, rho)
    b = erlang_b(c, c * rho)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = b / (1.0 - rho * (1.0 - b))
    return np.where(rho >= 1.0, 1.0, np.clip(out, 0.0, 1.0))


def mmc_mean_wait(c: ArrayLike, rho: ArrayLike, service_mean: ArrayLike) -> np.ndarray:
    """Mean time in queue (before service) of an M/M/c queue: ``C / (c mu (1 - rho))``."""
    c, rho = _check(c, rho)
    s = np.asarray(service_mean, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = erlang_c(c, rho) * s / (c * (1.0 - rho))
    return np.where(rho >= 1.0, np.inf, w)


def mmc_wait_cdf(t: ArrayLike, c: ArrayLike, rho: ArrayLike, service_mean: ArrayLike) -> np.ndarray:
    """P(wait <= t) in an M/M/c queue: ``1 - C exp(-c mu (1 - rho) t)``."""
    c, rho = _check(c, rho)
    t, s = np.asarray(t, dtype=float), np.asarray(service_mean, dtype=float)
    with np.errstate(over="ignore", invalid="ignore"):
        cdf = 1.0 - erlang_c(c, rho) * np.exp(-c * (1.0 - rho) * t / s)
    return np.where(rho >= 1.0, 0.0, np.where(t < 0, 0.0, cdf))


def _exp_tail_quantile(q: np.ndarray, p_wait: np.ndarray, cond_mean: np.ndarray) -> np.ndarray:
    """Quantile of a wait that is 0 with prob. 1 - p_wait, else exponential with mean ``cond_mean``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = cond_mean * np.log(p_wait / (1.0 - q))
    return np.where(q <= 1.0 - p_wait, 0.0, t)


def _check_q(q: ArrayLike) -> np.ndarray:
    q = np.asarray(q, dtype=float)
    if np.any(~((q >= 0) & (q < 1))):
        raise ConfigError(f"quantile q must be in [0, 1), got {q!r}")
    return q


def mmc_wait_quantile(q: ArrayLike, c: ArrayLike, rho: ArrayLike, service_mean: ArrayLike) -> np.ndarray:
    """The ``q``-quantile of the M/M/c waiting time (0 when ``q <= 1 - P(wait)``), exact.

    ``t_q = ln(C / (1 - q)) / (c mu (1 - rho))`` for ``q > 1 - C``.
    """
    q = _check_q(q)
    c, rho = _check(c, rho)
    s = np.asarray(service_mean, dtype=float)
    p = erlang_c(c, rho)
    with np.errstate(divide="ignore", invalid="ignore"):
        cond = s / (c * (1.0 - rho))
    return np.where(rho >= 1.0, np.inf, _exp_tail_quantile(q, p, cond))


def mdc_mean_wait(c: ArrayLike, rho: ArrayLike, service_mean: ArrayLike) -> np.ndarray:
    """M/D/c mean wait by Cosmetatos' approximation (1975).

    ``W(M/D/c) = W(M/M/c) / 2 x (1 + (1 - rho)(c - 1)(sqrt(4 + 5c) - 2) / (16 rho c))``; exact for c = 1.
    """
    c, rho = _check(c, rho)
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = 1.0 + (1.0 - rho) * (c - 1.0) * (np.sqrt(4.0 + 5.0 * c) - 2.0) / (16.0 * rho * c)
    return 0.5 * mmc_mean_wait(c, rho, service_mean) * np.where(rho > 0, corr, 1.0)


def mgc_mean_wait(
    c: ArrayLike,
    rho: ArrayLike,
    service_mean: ArrayLike,
    service_scv: ArrayLike,
    arrival_scv: ArrayLike = 1.0,
    method: str = "allen-cunneen",
) -> np.ndarray:
    """Approximate mean time in queue of an M/G/c (or G/G/c) queue.

    Parameters
    ----------
    c, rho, service_mean
        Servers, per-server utilisation, mean service time.
    service_scv, arrival_scv
        Squared coefficients of variation of service and inter-arrival times (1 and 1: M/M/c, exact).
    method
        ``"allen-cunneen"``: ``W(M/M/c) (ca^2 + cs^2) / 2``. ``"kimura"`` (Poisson arrivals):
        ``(1 + cs^2) / (2 cs^2 / W(M/M/c) + (1 - cs^2) / W(M/D/c))`` for ``cs^2 <= 1``, Allen-Cunneen above.

    Returns
    -------
    numpy.ndarray
        Mean wait in the units of ``service_mean``.
    """
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; choose one of: {', '.join(METHODS)}")
    cs2, ca2 = np.asarray(service_scv, dtype=float), np.asarray(arrival_scv, dtype=float)
    if np.any(~(cs2 >= 0)) or np.any(~(ca2 >= 0)):
        raise ConfigError("service_scv and arrival_scv must be >= 0")
    w_mm = mmc_mean_wait(c, rho, service_mean)
    allen = w_mm * (ca2 + cs2) / 2.0
    if method == "allen-cunneen":
        return allen
    w_md = mdc_mean_wait(c, rho, service_mean)
    with np.errstate(divide="ignore", invalid="ignore"):
        kim = (1.0 + cs2) / (2.0 * cs2 / w_mm + (1.0 - cs2) / w_md)
    kim = np.where((w_mm == 0) | ~np.isfinite(w_mm), w_mm, kim)
    return np.where(cs2 <= 1.0, kim, allen)


def mgc_wait_quantile(
    q: ArrayLike,
    c: ArrayLike,
    rho: ArrayLike,
    service_mean: ArrayLike,
    service_scv: ArrayLike,
    arrival_scv: ArrayLike = 1.0,
    method: str = "allen-cunneen",
) -> np.ndarray:
    """Approximate ``q``-quantile of the M/G/c wait: P(wait) from Erlang C, exponential tail, M/G/c mean.

    Exact for M/M/c (``service_scv = arrival_scv = 1``).
    """
    q = _check_q(q)
    p = erlang_c(c, rho)
    w = mgc_mean_wait(c, rho, service_mean, service_scv, arrival_scv, method)
    with np.errstate(divide="ignore", invalid="ignore"):
        cond = np.where(p > 0, w / p, 0.0)
    return np.where(np.asarray(rho) >= 1.0, np.inf, _exp_tail_quantile(q, p, cond))
