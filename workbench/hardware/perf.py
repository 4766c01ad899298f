"""The performance-model protocol: how long one batch iteration of an LLM instance takes.

The simulator only needs :meth:`PerformanceModel.iteration_time`; the two ``decode_*`` methods let it jump
over a whole run of identical decode iterations in one step (event skipping). :class:`DecodeRunMixin` gives
generic (O(k) sums of ``iteration_time``) versions; models whose iteration time is piecewise affine in the
context override them with closed forms. :func:`as_performance_model` plugs in any object with an
``iteration_time(batch)`` method (e.g. a user's measured table), adding the generic versions when it lacks
them.

Examples
--------
>>> class Measured:  # a user's model: only iteration_time
...     def iteration_time(self, batch):
...         return 0.005 + 1e-4 * batch.prefill_tokens + 2e-4 * batch.decode_seqs
>>> m = as_performance_model(Measured())
>>> round(m.decode_run_time(4, 400, 3), 6), m.decode_iterations_within(4, 400, 0.0131)
(0.0174, 2)
>>> as_performance_model(object())
Traceback (most recent call last):
...
workbench.errors.ConfigError: perf must have an iteration_time(batch) method returning seconds; got object
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, cast, runtime_checkable

import numpy as np

from workbench.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Batch:
    """Shape of one iteration's batch.

    Attributes
    ----------
    prefill_tokens
        Prompt tokens computed in this iteration (all prefill chunks together).
    prefill_context
        Sum over prefill chunks of chunk_tokens x (tokens before the chunk + chunk_tokens / 2): the attention
        work of the chunks against their context.
    decode_seqs
        Sequences generating one token each in this iteration.
    decode_context
        Sum of the decode sequences' context lengths (tokens already in their KV cache).
    """

    prefill_tokens: int = 0
    prefill_context: float = 0.0
    decode_seqs: int = 0
    decode_context: int = 0


@runtime_checkable
class PerformanceModel(Protocol):
    """Anything that can time a batch iteration (seconds)."""

    def iteration_time(self, batch: Batch) -> float:
        """Seconds for one iteration of ``batch``."""
        ...

    def decode_run_time(self, decode_seqs: int, decode_context: int, iterations: int) -> float:
        """Seconds for ``iterations`` pure-decode iterations; the context sum grows by ``decode_seqs`` each."""
        ...

    def decode_iterations_within(self, decode_seqs: int, decode_context: int, duration: float) -> int:
        """Return the number of whole pure-decode iterations that finish within ``duration`` seconds."""
        ...


class DecodeRunMixin:
    """Generic event-skipping helpers built on ``iteration_time`` (O(k) calls for a run of k iterations)."""

    iteration_time: Callable[[Batch], float]

    def _decode_times(self, decode_seqs: int, decode_context: int, iterations: int) -> np.ndarray:
        it = self.iteration_time
        return np.fromiter(
            (
                it(Batch(decode_seqs=decode_seqs, decode_context=decode_context + k * decode_seqs))
                for k in range(iterations)
            ),
            dtype=np.float64,
            count=iterations,
        )

    def decode_run_time(self, decode_seqs: int, decode_context: int, iterations: int) -> float:
        if iterations <= 0:
            return 0.0
        return float(self._decode_times(decode_seqs, decode_context, iterations).sum())

    def decode_iterations_within(self, decode_seqs: int, decode_context: int, duration: float) -> int:
        if duration <= 0:
            return 0
        first = self.iteration_time(Batch(decode_seqs=decode_seqs, decode_context=decode_context))
        n = int(duration / first) + 1 if first > 0 else 1  # enough when times do not fall with the context
        while True:
            cum = np.cumsum(self._decode_times(decode_seqs, decode_context, n))
            if cum[-1] > duration:
                return int(np.searchsorted(cum, duration, side="right"))
            if cum[-1] <= 0.0:
                raise ConfigError(f"decode iterations of {decode_seqs} sequences take no time: {cum[-1]!r} s")
            n *= 2  # iteration times fell with the context: look further


class IterationTimeModel(DecodeRunMixin):
    """Adapter giving a model that only has ``iteration_time`` the event-skipping methods.

    Parameters
    ----------
    model
        Any object with ``iteration_time(batch) -> seconds``; its decode runs are summed iteration by
        iteration (exact, O(k) per run: slower than a closed form, still one event per run).
    """

    def __init__(self, model: object) -> None:
        self.model = model
        self.iteration_time = model.iteration_time  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"IterationTimeModel({self.model!r})"


def as_performance_model(model: object) -> PerformanceModel:
    """``model`` itself when it has all :class:`PerformanceModel` methods, else an :class:`IterationTimeModel`.

    Parameters
    ----------
    model
        Anything with an ``iteration_time(batch)`` method.


    Returns
    -------
    PerformanceModel
        ``model``, or ``model`` wrapped so that decode runs are summed iteration by iteration.

    Raises
    ------
    ConfigError
        When ``model`` has no callable ``iteration_time``.
    """
    if not callable(getattr(model, "iteration_time", None)):
        raise ConfigError(
            f"perf must have an iteration_time(batch) method returning seconds; got {type(model).__name__}"
        )
    if callable(getattr(model, "decode_run_time", None)) and callable(
        getattr(model, "decode_iterations_within", None)
    ):
        return cast(PerformanceModel, model)
    return IterationTimeModel(model)


class ClockedPerf(DecodeRunMixin):
    """Any performance model at a fraction ``clock`` of the maximum GPU clock, all times / ``clock``.

    The fallback of :func:`clocked` for models that cannot say which of their terms are compute-bound (a
    measured table, a user's model): performance proportional to the clock, which overstates the slowdown of
    memory-bound decode (the roofline's own :meth:`~workbench.hardware.RooflineModel.with_clock` does not).
    """

    def __init__(self, base: object, clock: float) -> None:
        if not (0.0 < clock <= 1.0):
            raise ConfigError(f"clock must be in (0, 1], got {clock!r}")
        self.base, self.clock = as_performance_model(base), float(clock)

    def iteration_time(self, batch: Batch) -> float:
        return self.base.iteration_time(batch) / self.clock

    def decode_run_time(self, decode_seqs: int, decode_context: int, iterations: int) -> float:
        return self.base.decode_run_time(decode_seqs, decode_context, iterations) / self.clock

    def decode_iterations_within(self, decode_seqs: int, decode_context: int, duration: float) -> int:
        return self.base.decode_iterations_within(decode_seqs, decode_context, duration * self.clock)


def clocked(perf: object, clock: float) -> PerformanceModel:
    """``perf`` at a fraction ``clock`` of the maximum SM clock.

    Models with a ``with_clock(clock)`` method (the roofline: compute terms scale with the clock, memory and
    interconnect terms do not) give their own clocked copy; any other model is wrapped in
    :class:`ClockedPerf` (every time / ``clock``). ``clock == 1`` returns ``perf`` unchanged.

    Parameters
    ----------
    perf
        A performance model (anything :func:`as_performance_model` accepts).
    clock
        Fraction of the maximum SM clock.

    Returns
    -------
    PerformanceModel
        The clocked model.
    """
    if clock == 1.0:
        return as_performance_model(perf)
    with_clock = getattr(perf, "with_clock", None)
    if callable(with_clock):
        return with_clock(clock)
    return ClockedPerf(perf, clock)
