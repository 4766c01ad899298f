"""Closed-form iteration times on the simulator's hot path.

Sums of affine decode runs and the roofline's scalar terms.

:class:`RooflineTerms` holds the precomputed coefficients of a :class:`~workbench.hardware.RooflineModel`
(seconds per token, per logit, per context token, ...) and evaluates one iteration, a run of ``k`` decode
iterations and its inverse from plain numbers; the model builds one and delegates its hot-path methods to it.
:func:`affine_run_count` inverts a sum of affine iteration times (shared with the measured-table model).

Compiled core: ``setup.py`` builds this module with Cython, typed by ``closed_forms.pxd`` beside it, so that
the simulator's instances (compiled too) call it without Python calls or ``Batch`` objects; the ``.py`` file
stays the pure-Python implementation (:mod:`workbench._pure` chooses, ``tests/test_compiled_core.py`` checks
both agree).
"""

from __future__ import annotations

import itertools
import math

#: Longest decode run (iterations) that :meth:`RooflineTerms.decode_iterations_within` searches over and that
#: :meth:`RooflineTerms.decode_run_time` sums in exact integers (a guard: triangular numbers fit 64 bits).
HORIZON_LIMIT = 1 << 30


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


class RooflineTerms:
    """The roofline's coefficients and its scalar evaluation.

    See :mod:`workbench.hardware.roofline` for the formula; every time is in seconds.

    Parameters
    ----------
    c_tok, c_logit
        Compute seconds per token and per logit.
    w_dense, w_expert, n_exp, q_exp
        Weight-read seconds of the dense part and of all experts of the MoE layers, the number of experts (0:
        dense model) and the probability that a token does not route to a given expert.
    c_pattn, c_dattn, c_wattn, window, c_state
        Prefill attention per query-key pair, decode attention per context token (full and windowed layers),
        the attention window (0: none) and the recurrent-state seconds per decoding sequence.
    fixed, c_comm, seq_overhead, step_floor
        Fixed seconds per iteration, communication per token, extra seconds per logit, shortest iteration.
    """

    __slots__ = ("c_comm", "c_dattn", "c_logit", "c_pattn", "c_state", "c_tok", "c_wattn", "fixed", "n_exp",
                 "q_exp", "seq_overhead", "step_floor", "w_dense", "w_expert", "window")  # fmt: skip

    def __init__(
        self,
        c_tok: float,
        c_logit: float,
        w_dense: float,
        w_expert: float,
        n_exp: int,
        q_exp: float,
        c_pattn: float,
        c_dattn: float,
        c_wattn: float,
        window: int,
        c_state: float,
        fixed: float,
        c_comm: float,
        seq_overhead: float,
        step_floor: float,
    ) -> None:
        self.c_tok = c_tok
        self.c_logit = c_logit
        self.w_dense = w_dense
        self.w_expert = w_expert
        self.n_exp = n_exp
        self.q_exp = q_exp
        self.c_pattn = c_pattn
        self.c_dattn = c_dattn
        self.c_wattn = c_wattn
        self.window = window
        self.c_state = c_state
        self.fixed = fixed
        self.c_comm = c_comm
        self.seq_overhead = seq_overhead
        self.step_floor = step_floor

    def __reduce__(self):
        return (
            RooflineTerms,
            (self.c_tok, self.c_logit, self.w_dense, self.w_expert, self.n_exp, self.q_exp, self.c_pattn,
             self.c_dattn, self.c_wattn, self.window, self.c_state, self.fixed, self.c_comm, self.seq_overhead,
             self.step_floor),
        )  # fmt: skip

    def base(self, tokens: float, logits: float) -> float:
        """Seconds of the context-independent part of an iteration of ``tokens`` tokens."""
        comp = tokens * self.c_tok + logits * self.c_logit
        if self.n_exp:
            mem = self.w_dense + self.w_expert * self.n_exp * (1.0 - self.q_exp**tokens)
        else:
            mem = self.w_dense
        lin = comp if comp > mem else mem
        return lin + self.fixed + tokens * self.c_comm + logits * self.seq_overhead

    def decode_attn(self, decode_seqs: float, decode_context: float) -> float:
        """Seconds of decode attention (and recurrent state) for ``decode_seqs`` sequences of context sum C."""
        t = decode_context * self.c_dattn + decode_seqs * self.c_state
        if self.window:
            cap = decode_seqs * self.window
            t += (decode_context if decode_context < cap else cap) * self.c_wattn
        return t

    def iteration_time(
        self, prefill_tokens: float, prefill_context: float, decode_seqs: float, decode_context: float
    ) -> float:
        """Seconds for one iteration (the fields of a :class:`~workbench.hardware.perf.Batch`; 0 if empty)."""
        p = prefill_tokens
        d = decode_seqs
        if p + d <= 0:
            return 0.0
        t = (
            self.base(p + d, d + (1 if p > 0 else 0))
            + prefill_context * self.c_pattn
            + self.decode_attn(d, decode_context)
        )
        return t if t > self.step_floor else self.step_floor

    def piecewise(self) -> bool:
        """Whether decode runs are not affine in the iteration count (windows or a step floor)."""
        return self.window != 0 or self.step_floor > 0.0

    def decode_run_time(self, decode_seqs: int, decode_context: float, iterations: int) -> float:
        """Seconds for ``iterations`` pure-decode iterations (context grows by ``decode_seqs`` each), O(1)."""
        if iterations <= 0 or decode_seqs <= 0:
            return 0.0
        n = iterations
        d = decode_seqs
        if self.piecewise():
            total = 0.0
            for t, _, k in self.decode_pieces(d, decode_context, n):
                total += t * k
            return total
        # iterations' context growth: d x (0 + 1 + ... + n-1) tokens (exact below the horizon limit; beyond,
        # where no real run goes, in floating point so that the compiled core cannot overflow)
        tri = n * (n - 1) // 2 if n <= HORIZON_LIMIT else 0.5 * n * (n - 1)
        return n * (self.base(d, d) + self.decode_attn(d, decode_context)) + self.c_dattn * d * tri

    def decode_pieces(self, d: int, c0: float, n: int) -> list[tuple[float, float, int]]:
        """Split a decode run into affine pieces ``(mean time, step, iterations)``.

        Windows and the step floor split it; each piece is summed in closed form. The mean of a piece is ``first
        + step (k - 1) / 2``.
        """
        base = self.base(d, d) + d * self.c_state
        window = self.window
        cuts = {0, n}
        if window:  # context sum reaches d x window after this many iterations
            cuts.add(min(n, max(0, int(-(-(d * window - c0) // d)))))
        pieces: list[tuple[float, float, int]] = []
        bounds = sorted(cuts)
        floor = self.step_floor
        for a, e in itertools.pairwise(bounds):
            c = c0 + a * d
            windowed = window != 0 and c < d * window
            first = base + c * self.c_dattn + (c * self.c_wattn if windowed else (d * window * self.c_wattn))
            step = d * (self.c_dattn + (self.c_wattn if windowed else 0.0))
            if floor > 0.0 and first + step * (e - a - 1) > floor > first:  # crosses the floor inside
                k = min(e - a, int((floor - first) / step) + 1)
                pieces.append((floor, 0.0, k))
                pieces.append((first + step * k, step, e - a - k))
            elif floor > 0.0 and first <= floor and first + step * (e - a - 1) <= floor:
                pieces.append((floor, 0.0, e - a))
            else:
                pieces.append((first, step, e - a))
        return [(first + step * (k - 1) / 2.0, step, k) for first, step, k in pieces if k > 0]

    def decode_iterations_within(self, decode_seqs: int, decode_context: float, duration: float) -> int:
        """Whole pure-decode iterations that finish within ``duration`` seconds (closed form, O(1))."""
        if duration <= 0 or decode_seqs <= 0:
            return 0
        d = decode_seqs
        if not self.piecewise():
            first = self.base(d, d) + self.decode_attn(d, decode_context)
            return affine_run_count(first, self.c_dattn * d, duration)
        done = 0
        horizon = 1
        while True:  # pieces over a horizon long enough to exceed the duration
            horizon *= 2
            if self.decode_run_time(d, decode_context, horizon) > duration or horizon >= HORIZON_LIMIT:
                break
        for mean, step, k in self.decode_pieces(d, decode_context, horizon):
            first = mean - step * (k - 1) / 2.0
            if mean * k <= duration:
                duration -= mean * k
                done += k
                continue
            return done + min(k, affine_run_count(first, step, duration))
        return done


__all__ = ["HORIZON_LIMIT", "RooflineTerms", "affine_run_count"]
