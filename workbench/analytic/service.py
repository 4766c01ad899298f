"""Service-time model of one continuous-batching LLM instance, for analytic screens of fleets.

An instance running ``B`` sequences at once is treated as ``B`` servers (batch slots). A request holds a slot
for its prefill and its ``O`` decode iterations, so its service time is ``S = prefill(P) + O x t_iter``, where
``t_iter`` is the time of a decode iteration with ``B`` sequences at the batch's mean context, plus the share of
other requests' prefills that interrupt the decode stream (``B / E[O]`` prefills start per iteration in steady
state; each adds its prefill time minus the weight read it shares with the decode iteration). Prompt and
output lengths are independent; ``Var[S] = prefill'(P)^2 Var[P] + t_iter^2 Var[O]`` (delta method).

The slot count is ``min(batch_size, kv_capacity_tokens / mean context held)``, and the instance's capacity is
``slots / E[S]`` requests per second. Feed ``slots``, ``E[S]`` and ``Var[S] / E[S]^2`` to
:func:`~workbench.analytic.mgc_mean_wait` (M/G/c) to screen queueing delay.

Examples
--------
>>> from workbench.hardware import RooflineModel
>>> svc = instance_service_model(RooflineModel("H100", "Llama-3.1-8B"), 1000, 200, batch_size=[1, 64])
>>> bool(svc.capacity_rps[1] > 10 * svc.capacity_rps[0])
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import ArrayLike

from workbench.analytic.queueing import checked_values
from workbench.config import require_positive
from workbench.hardware.perf import Batch, PerformanceModel


@dataclass(frozen=True, slots=True)
class ServiceModel:
    """Per-configuration service statistics (arrays of equal length, one entry per batch size).

    Attributes
    ----------
    slots
        Concurrent sequences (servers of the M/G/c view): the batch size, capped by KV memory.
    prefill_s
        Prefill time of a mean-length prompt alone (the TTFT without queueing or interference).
    tpot_s
        Effective seconds per output token at ``slots`` concurrent sequences (decode + prefill interference).
    mean_s, var_s
        Mean and variance of a request's service time (slot holding time).
    output_mean
        Mean output tokens (for token throughput).
    """

    slots: np.ndarray
    prefill_s: np.ndarray
    tpot_s: np.ndarray
    mean_s: np.ndarray
    var_s: np.ndarray
    output_mean: float

    @property
    def scv(self) -> np.ndarray:
        """Squared coefficient of variation of the service time."""
        return self.var_s / self.mean_s**2

    @property
    def capacity_rps(self) -> np.ndarray:
        """Largest sustainable arrival rate, requests per second (``slots / E[S]``)."""
        return self.slots / self.mean_s

    @property
    def capacity_tokens_per_s(self) -> np.ndarray:
        """Output tokens per second at capacity."""
        return self.capacity_rps * self.output_mean

    def utilisation(self, arrival_rate: ArrayLike) -> np.ndarray:
        """Per-slot utilisation ``rho = lambda E[S] / slots`` at ``arrival_rate`` requests/s per instance."""
        return np.asarray(arrival_rate, dtype=float) * self.mean_s / self.slots

    def to_frame(self) -> pl.DataFrame:
        """Return the statistics as a polars table (one row per batch size)."""
        return pl.DataFrame(
            {
                "slots": self.slots,
                "prefill_s": self.prefill_s,
                "tpot_s": self.tpot_s,
                "mean_s": self.mean_s,
                "var_s": self.var_s,
                "scv": self.scv,
                "capacity_rps": self.capacity_rps,
                "capacity_tokens_per_s": self.capacity_tokens_per_s,
            }
        )


def instance_service_model(
    perf: PerformanceModel,
    prompt_mean: float,
    output_mean: float,
    batch_size: ArrayLike = 256,
    *,
    prompt_var: float = 0.0,
    output_var: float | None = None,
    kv_capacity_tokens: int | None = None,
) -> ServiceModel:
    """Mean and variance of a request's service time on one instance at each batch size.

    Parameters
    ----------
    perf
        Any :class:`~workbench.hardware.perf.PerformanceModel` (roofline, calibrated, measured table).
    prompt_mean, output_mean
        Mean prompt and output lengths in tokens.
    batch_size
        Maximum concurrent sequences (scalar or array: one result per entry).
    prompt_var, output_var
        Variances of the lengths; ``output_var`` defaults to a geometric output length
        (``output_mean * (output_mean - 1)``).
    kv_capacity_tokens
        KV-cache tokens of the instance; caps the slots at ``kv / (prompt_mean + E[O^2] / (2 E[O]))`` (the mean
        context a slot holds at a random time, length-biased).

    Returns
    -------
    ServiceModel
    """
    require_positive("prompt_mean", prompt_mean)
    require_positive("output_mean", output_mean)
    require_positive("prompt_var", prompt_var, allow_zero=True)
    if output_var is None:
        output_var = output_mean * max(output_mean - 1.0, 0.0)
    require_positive("output_var", output_var, allow_zero=True)
    batch = np.atleast_1d(checked_values("batch_size", batch_size, "a number >= 1", lambda a: a >= 1))
    held = prompt_mean + (output_var + output_mean**2) / (2.0 * output_mean)  # mean context per slot
    if kv_capacity_tokens is not None:
        require_positive("kv_capacity_tokens", kv_capacity_tokens)
        batch = np.minimum(batch, max(np.floor(kv_capacity_tokens / held), 1.0))
    slots = np.floor(batch)

    p = round(prompt_mean)
    prefill = perf.iteration_time(Batch(prefill_tokens=p, prefill_context=p * p / 2))
    dp = max(1, p // 8)
    slope = (
        perf.iteration_time(Batch(prefill_tokens=p + dp, prefill_context=(p + dp) ** 2 / 2)) - prefill
    ) / dp
    cache: dict[int, float] = {}
    tpot = np.empty_like(slots)
    for i, b in enumerate(slots.astype(int)):
        if b not in cache:
            ctx = round(b * held)
            decode = perf.iteration_time(Batch(decode_seqs=b, decode_context=ctx))
            # a prefill riding on a decode iteration costs the mixed iteration minus the decode alone
            mixed = perf.iteration_time(Batch(p, p * p / 2, b, ctx))
            cache[b] = decode + (b / output_mean) * max(mixed - decode, 0.0)
        tpot[i] = cache[b]
    mean = prefill + output_mean * tpot
    var = slope**2 * prompt_var + tpot**2 * output_var
    return ServiceModel(slots, np.full_like(slots, prefill), tpot, mean, var, float(output_mean))


def instance_latency(
    service: ServiceModel,
    arrival_rate: ArrayLike,
    *,
    q: float = 0.99,
    arrival_scv: ArrayLike = 1.0,
    method: str = "allen-cunneen",
) -> pl.DataFrame:
    """Analytic latency of instances fed ``arrival_rate`` requests/s each (M/G/c over the batch slots).

    ``arrival_rate`` broadcasts against the service arrays (e.g. one rate per batch size, or a scalar).

    Parameters
    ----------
    service
        Service model of the instances (:func:`instance_service_model`).
    arrival_rate
        Requests per second per instance.
    q
        Latency quantile.
    arrival_scv, method
        As :func:`~workbench.analytic.mgc_mean_wait`.

    Returns
    -------
    polars.DataFrame
        ``slots, arrival_rate, rho, p_wait, mean_wait_s, wait_q_s`` (the ``q``-quantile), ``ttft_mean_s``
        (wait + prefill), ``ttft_q_s``, ``tpot_s``, ``e2e_mean_s`` (wait + service); unstable rows
        (``rho >= 1``) have infinite waits.
    """
    from workbench.analytic.queueing import erlang_c, mgc_mean_wait, mgc_wait_quantile

    lam = checked_values("arrival_rate", arrival_rate, "a number >= 0", lambda a: a >= 0)
    lam, slots, mean, scv, prefill, tpot = np.broadcast_arrays(
        lam, service.slots, service.mean_s, service.scv, service.prefill_s, service.tpot_s
    )
    rho = lam * mean / slots
    wait = mgc_mean_wait(slots, rho, mean, scv, arrival_scv, method)
    wait_q = mgc_wait_quantile(q, slots, rho, mean, scv, arrival_scv, method)
    return pl.DataFrame(
        {
            "slots": slots,
            "arrival_rate": lam,
            "rho": rho,
            "p_wait": erlang_c(slots, rho),
            "mean_wait_s": wait,
            "wait_q_s": wait_q,
            "ttft_mean_s": wait + prefill,
            "ttft_q_s": wait_q + prefill,
            "tpot_s": tpot,
            "e2e_mean_s": wait + mean,
        }
    )
