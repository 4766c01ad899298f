"""Multi-server queueing formulas, vectorised with numpy (every argument may be an array; they broadcast).

Notation: ``c`` servers, per-server utilisation ``rho = lambda / (c mu)`` (offered load ``a = c rho``), mean
service time ``service_mean = 1 / mu``; ``scv`` is a squared coefficient of variation (variance / mean^2).

- M/M/c (exact, Erlang C): :func:`erlang_c` (probability of waiting), :func:`mmc_mean_wait`,
  :func:`mmc_wait_cdf`, :func:`mmc_wait_quantile`.
- M/G/c and G/G/c (approximations): :func:`mgc_mean_wait` with ``method="allen-cunneen"`` (M/M/c wait x
  (ca^2 + cs^2) / 2; Allen 1990) or ``"kimura"`` (Kimura 1986: interpolation between M/M/c and M/D/c, the
  latter by Cosmetatos' formula; for cs^2 <= 1, falls back to Allen-Cunneen above), and
  :func:`mgc_wait_quantile` (P(wait) from Erlang C, exponential conditional wait with the approximate mean).

Unstable systems (``rho >= 1``) give ``inf`` waits and ``P(wait) = 1``. Invalid arguments (a negative or
nan service time, a fractional server count, ...) raise one :class:`~workbench.errors.ConfigError` naming the
argument and, for arrays, the first bad entry.

Examples
--------
>>> float(erlang_c(2, 0.5))  # c = 2, offered load 1 Erlang: P(wait) = 1/3
0.3333333333333333
>>> float(mmc_mean_wait(2, 0.5, 1.0))  # = C / (c mu - lambda) = (1/3) / (2 - 1)
0.3333333333333333
>>> mmc_mean_wait(2, [0.5, 0.7], [1.0, -1.0])
Traceback (most recent call last):
...
workbench.errors.ConfigError: service_mean must be a finite number > 0, got -1.0 at index 1
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import gammaln, pdtr

from workbench.errors import ConfigError

METHODS = ("allen-cunneen", "kimura")


def checked_values(name: str, x: ArrayLike, what: str, ok: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``x`` as a float array; :class:`ConfigError` naming ``name`` and the first entry failing ``ok``."""
    try:
        a = np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be {what}, got {x!r}") from None
    with np.errstate(invalid="ignore"):
        good = ok(a)
    if not np.all(good):
        i = int(np.flatnonzero(~np.broadcast_to(good, a.shape).ravel())[0])
        index = i if a.ndim == 1 else tuple(int(j) for j in np.unravel_index(i, a.shape))
        where = f" at index {index}" if a.ndim else ""
        raise ConfigError(f"{name} must be {what}, got {float(a.ravel()[i])!r}{where}")
    return a


def _servers(c: ArrayLike) -> np.ndarray:
    return checked_values(
        "c (number of servers)", c, "an integer >= 1", lambda a: np.isfinite(a) & (a >= 1) & (a == np.floor(a))
    )


def _positive(name: str, x: ArrayLike) -> np.ndarray:
    return checked_values(name, x, "a finite number > 0", lambda a: np.isfinite(a) & (a > 0))


def _non_negative(name: str, x: ArrayLike) -> np.ndarray:
    return checked_values(name, x, "a finite number >= 0", lambda a: np.isfinite(a) & (a >= 0))


def _check(c: ArrayLike, rho: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    c = _servers(c)
    rho = checked_values("rho (utilisation)", rho, "a number >= 0", lambda a: a >= 0)  # inf: unstable
    return c, rho


def erlang_b(c: ArrayLike, a: ArrayLike) -> np.ndarray:
    """Erlang-B blocking probability of ``c`` servers with offered load ``a`` Erlangs (Poisson pmf / cdf).

    Parameters
    ----------
    c
        Number of servers (integer >= 1).
    a
        Offered load in Erlangs (>= 0; ``inf`` blocks everything).

    Returns
    -------
    numpy.ndarray
        Probability that an arrival finds every server busy.
    """
    c, a = _servers(c), checked_values("a (offered load)", a, "a number >= 0", lambda x: x >= 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_pmf = np.where(a > 0, c * np.log(np.where(a > 0, a, 1.0)) - a - gammaln(c + 1), -np.inf)
        b = np.exp(log_pmf) / pdtr(c, a)
    return np.where(np.isinf(a), 1.0, np.where(a > 0, np.clip(b, 0.0, 1.0), 0.0))


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
    """Mean time in queue (before service) of an M/M/c queue: ``C / (c mu (1 - rho))``.

    Parameters
    ----------
    c, rho, service_mean
        Servers (integer >= 1), per-server utilisation ``lambda / (c mu)`` and mean service time ``1 / mu``.

    Returns
    -------
    numpy.ndarray
        Mean wait, in the unit of ``service_mean``; ``inf`` when ``rho >= 1``.
    """
    c, rho = _check(c, rho)
    s = _positive("service_mean", service_mean)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = erlang_c(c, rho) * s / (c * (1.0 - rho))
    return np.where(rho >= 1.0, np.inf, w)


def mmc_wait_cdf(t: ArrayLike, c: ArrayLike, rho: ArrayLike, service_mean: ArrayLike) -> np.ndarray:
    """P(wait <= t) in an M/M/c queue: ``1 - C exp(-c mu (1 - rho) t)``.

    Parameters
    ----------
    t
        Waiting times, in the unit of ``service_mean``.
    c, rho, service_mean
        Servers (integer >= 1), per-server utilisation ``lambda / (c mu)`` and mean service time ``1 / mu``.

    Returns
    -------
    numpy.ndarray
        P(wait <= t); 0 for ``t < 0`` and when ``rho >= 1``.
    """
    c, rho = _check(c, rho)
    t = checked_values("t", t, "a number (not nan)", lambda a: ~np.isnan(a))
    s = _positive("service_mean", service_mean)
    with np.errstate(over="ignore", invalid="ignore"):
        cdf = 1.0 - erlang_c(c, rho) * np.exp(-c * (1.0 - rho) * t / s)
    return np.where(rho >= 1.0, 0.0, np.where(t < 0, 0.0, cdf))


def _exp_tail_quantile(q: np.ndarray, p_wait: np.ndarray, cond_mean: np.ndarray) -> np.ndarray:
    """Quantile of a wait that is 0 with prob. 1 - p_wait, else exponential with mean ``cond_mean``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = cond_mean * np.log(p_wait / (1.0 - q))
    return np.where(q <= 1.0 - p_wait, 0.0, t)


def _check_q(q: ArrayLike) -> np.ndarray:
    return checked_values("quantile q", q, "in [0, 1)", lambda a: (a >= 0) & (a < 1))


def mmc_wait_quantile(q: ArrayLike, c: ArrayLike, rho: ArrayLike, service_mean: ArrayLike) -> np.ndarray:
    """Return the ``q``-quantile of the M/M/c waiting time (0 when ``q <= 1 - P(wait)``), exact.

    ``t_q = ln(C / (1 - q)) / (c mu (1 - rho))`` for ``q > 1 - C``.

    Parameters
    ----------
    q
        Quantile in [0, 1).
    c, rho, service_mean
        Servers (integer >= 1), per-server utilisation ``lambda / (c mu)`` and mean service time ``1 / mu``.

    Returns
    -------
    numpy.ndarray
        The waiting time, in the unit of ``service_mean``; ``inf`` when ``rho >= 1``.
    """
    q = _check_q(q)
    c, rho = _check(c, rho)
    s = _positive("service_mean", service_mean)
    p = erlang_c(c, rho)
    with np.errstate(divide="ignore", invalid="ignore"):
        cond = s / (c * (1.0 - rho))
    return np.where(rho >= 1.0, np.inf, _exp_tail_quantile(q, p, cond))


def mdc_mean_wait(c: ArrayLike, rho: ArrayLike, service_mean: ArrayLike) -> np.ndarray:
    """M/D/c mean wait by Cosmetatos' approximation (1975).

    ``W(M/D/c) = W(M/M/c) / 2 x (1 + (1 - rho)(c - 1)(sqrt(4 + 5c) - 2) / (16 rho c))``; exact for c = 1.

    Parameters
    ----------
    c, rho, service_mean
        Servers (integer >= 1), per-server utilisation ``lambda / (c mu)`` and the (deterministic) service time.

    Returns
    -------
    numpy.ndarray
        Mean wait, in the unit of ``service_mean``.
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
    cs2, ca2 = _non_negative("service_scv", service_scv), _non_negative("arrival_scv", arrival_scv)
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

    Parameters
    ----------
    q
        Quantile in [0, 1).
    c, rho, service_mean, service_scv, arrival_scv, method
        As :func:`mgc_mean_wait`.

    Returns
    -------
    numpy.ndarray
        The waiting time, in the unit of ``service_mean``.
    """
    q = _check_q(q)
    p = erlang_c(c, rho)
    w = mgc_mean_wait(c, rho, service_mean, service_scv, arrival_scv, method)
    with np.errstate(divide="ignore", invalid="ignore"):
        cond = np.where(p > 0, w / p, 0.0)
    return np.where(np.asarray(rho) >= 1.0, np.inf, _exp_tail_quantile(q, p, cond))
