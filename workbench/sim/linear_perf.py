"""A small affine iteration-time model (closed-form event skipping), for tests and measured linear fits.

``t = overhead_s + prefill_s_per_token * P + prefill_attn_s * prefill_context + decode_s_per_seq * D
+ decode_attn_s * decode_context`` for a non-empty batch (0 for an empty one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from workbench.config import require_positive
from workbench.hardware.perf import Batch


@dataclass(frozen=True, slots=True)
class LinearPerfModel:
    """Affine :class:`~workbench.hardware.perf.PerformanceModel` with O(1) decode runs.

    Examples
    --------
    >>> from workbench.hardware.perf import Batch
    >>> m = LinearPerfModel()
    >>> steps = [m.iteration_time(Batch(decode_seqs=4, decode_context=400 + 4 * k)) for k in range(3)]
    >>> abs(m.decode_run_time(4, 400, 3) - sum(steps)) < 1e-15
    True
    """

    overhead_s: float = 5e-3
    prefill_s_per_token: float = 5e-5
    prefill_attn_s: float = 0.0
    decode_s_per_seq: float = 1e-4
    decode_attn_s: float = 1e-8

    def __post_init__(self) -> None:
        for name in (
            "overhead_s",
            "prefill_s_per_token",
            "prefill_attn_s",
            "decode_s_per_seq",
            "decode_attn_s",
        ):
            require_positive(name, getattr(self, name), allow_zero=True)

    def iteration_time(self, batch: Batch) -> float:
        """Seconds for one iteration of ``batch``."""
        if batch.prefill_tokens + batch.decode_seqs <= 0:
            return 0.0
        return (
            self.overhead_s
            + self.prefill_s_per_token * batch.prefill_tokens
            + self.prefill_attn_s * batch.prefill_context
            + self.decode_s_per_seq * batch.decode_seqs
            + self.decode_attn_s * batch.decode_context
        )

    def decode_run_time(self, decode_seqs: int, decode_context: int, iterations: int) -> float:
        """Seconds for ``iterations`` decode iterations (context sum grows by ``decode_seqs`` each)."""
        if iterations <= 0 or decode_seqs <= 0:
            return 0.0
        first = self.overhead_s + self.decode_s_per_seq * decode_seqs + self.decode_attn_s * decode_context
        return iterations * first + self.decode_attn_s * decode_seqs * (iterations * (iterations - 1) // 2)

    def decode_iterations_within(self, decode_seqs: int, decode_context: int, duration: float) -> int:
        """Whole decode iterations finishing within ``duration`` seconds."""
        if duration <= 0 or decode_seqs <= 0:
            return 0
        first = self.overhead_s + self.decode_s_per_seq * decode_seqs + self.decode_attn_s * decode_context
        a2 = 0.5 * self.decode_attn_s * decode_seqs
        a1 = first - a2
        if first <= 0:
            raise ValueError("a decode iteration must take positive time")
        n = int(duration / first) if a2 == 0 else int((math.sqrt(a1 * a1 + 4 * a2 * duration) - a1) / (2 * a2))
        while n > 0 and self.decode_run_time(decode_seqs, decode_context, n) > duration:
            n -= 1
        while self.decode_run_time(decode_seqs, decode_context, n + 1) <= duration:
            n += 1
        return n
