"""The performance-model protocol: how long one batch iteration of an LLM instance takes.

The simulator only needs :meth:`PerformanceModel.iteration_time`; the two ``decode_*`` methods let it jump
over a whole run of identical decode iterations in one step (event skipping). :class:`DecodeRunMixin` gives
generic (vectorised, O(k)) versions; models whose iteration time is piecewise affine in the context override
them with closed forms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


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
        """Number of whole pure-decode iterations that finish within ``duration`` seconds."""
        ...


class DecodeRunMixin:
    """Generic event-skipping helpers built on ``iteration_time`` (vectorised through numpy)."""

    def _decode_times(self, decode_seqs: int, decode_context: int, iterations: int) -> np.ndarray:
        batches = (Batch(decode_seqs=decode_seqs, decode_context=decode_context + k * decode_seqs) for k in
                   range(iterations))
        return np.array([self.iteration_time(b) for b in batches])

    def decode_run_time(self, decode_seqs: int, decode_context: int, iterations: int) -> float:
        if iterations <= 0:
            return 0.0
        return float(self._decode_times(decode_seqs, decode_context, iterations).sum())

    def decode_iterations_within(self, decode_seqs: int, decode_context: int, duration: float) -> int:
        if duration <= 0:
            return 0
        first = self.iteration_time(Batch(decode_seqs=decode_seqs, decode_context=decode_context))
        guess = max(1, int(duration / max(first, 1e-12)) + 1)
        cum = np.cumsum(self._decode_times(decode_seqs, decode_context, guess))
        return int(np.searchsorted(cum, duration, side="right"))
