"""Closed-form sums of affine iteration times, shared by the performance models."""

from __future__ import annotations

import math


def affine_run_count(first: float, step: float, duration: float) -> int:
    """Largest ``n`` with ``sum_{k<n} (first + k step) <= duration`` (closed form with a rounding guard)."""
    a2 = 0.5 * step
    a1 = first - a2
    if a2 <= 0.0:
        n = int(duration / first)
    else:
        disc = math.sqrt(a1 * a1 + 4.0 * a2 * duration)
        n = int(2.0 * duration / (a1 + disc)) if a1 > 0 else int((disc - a1) / (2.0 * a2))
    while n > 0 and n * (a1 + a2 * n) > duration:
        n -= 1
    while (n + 1) * (a1 + a2 * (n + 1)) <= duration:
        n += 1
    return n
