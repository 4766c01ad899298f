"""A performance model read off a user's measured table (interpolation), behind the same protocol.

The table holds one row per measured iteration in the :class:`~workbench.hardware.perf.Batch` vocabulary
(``prefill_tokens, prefill_context, decode_seqs, decode_context``) plus ``time_s``. Pure-prefill rows give
the prefill time as a function of the batch's prompt tokens ``P``; pure-decode rows give the decode time as
``a(D) + beta x C`` (``D`` sequences, context sum ``C``), where ``beta`` (seconds per context token) is the
pooled slope within equal-``D`` groups (or given) and ``a(D)`` the mean intercept per ``D``. Both curves are
interpolated linearly between measured points and extrapolated proportionally beyond the largest one (flat
below the smallest). A mixed iteration costs ``prefill(P + D) + beta x C`` (the decode tokens ride along in
the prefill's GEMMs, as in chunked prefill).

Decode time is affine in ``C`` for a fixed ``D``, so decode runs have the same O(1) closed forms as the
roofline.
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from workbench.errors import ConfigError
from workbench.hardware.closed_forms import affine_run_count
from workbench.hardware.perf import Batch

BATCH_COLUMNS = ("prefill_tokens", "prefill_context", "decode_seqs", "decode_context")


def _interp(xs: tuple[float, ...], ys: tuple[float, ...], x: float) -> float:
    """Piecewise-linear interpolation; flat below ``xs[0]``, proportional to ``x`` above ``xs[-1]``."""
    if x <= xs[0]:
        return ys[0]
    if x >= xs[-1]:
        return ys[-1] * x / xs[-1]
    i = bisect.bisect_right(xs, x)
    x0, x1 = xs[i - 1], xs[i]
    return ys[i - 1] + (ys[i] - ys[i - 1]) * (x - x0) / (x1 - x0)


def _require_columns(table: pl.DataFrame, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ConfigError(f"measured table lacks column(s) {missing}; needs {list(columns)}")


@dataclass(frozen=True, slots=True)
class TablePerformanceModel:
    """Iteration times interpolated from measurements (implements ``PerformanceModel``).

    Build it with :meth:`from_table`; the attributes are the interpolation knots.

    Attributes
    ----------
    prefill_knots, prefill_times
        Prompt tokens per iteration and seconds (strictly increasing knots).
    decode_knots, decode_base
        Decode batch sizes and the context-free part ``a(D)`` in seconds.
    kv_s_per_token
        ``beta``: seconds per token of decode context.
    """

    prefill_knots: tuple[float, ...]
    prefill_times: tuple[float, ...]
    decode_knots: tuple[float, ...]
    decode_base: tuple[float, ...]
    kv_s_per_token: float = 0.0

    def __post_init__(self) -> None:
        for name, xs, ys in (
            ("prefill", self.prefill_knots, self.prefill_times),
            ("decode", self.decode_knots, self.decode_base),
        ):
            if len(xs) == 0 or len(xs) != len(ys):
                raise ConfigError(f"measured table has no usable {name} rows")
            if any(b <= a for a, b in itertools.pairwise(xs)) or xs[0] <= 0:
                raise ConfigError(f"{name} knots must be positive and strictly increasing")
            if any(not (y > 0 and math.isfinite(y)) for y in ys):
                raise ConfigError(f"{name} times must be finite and > 0")
        if not (self.kv_s_per_token >= 0 and math.isfinite(self.kv_s_per_token)):
            raise ConfigError(f"kv_s_per_token must be >= 0, got {self.kv_s_per_token!r}")

    @classmethod
    def from_table(cls, table: pl.DataFrame, *, kv_s_per_token: float | None = None) -> TablePerformanceModel:
        """Build from a measured table (columns ``prefill_tokens, decode_seqs, decode_context, time_s``).

        Parameters
        ----------
        table
            One row per measured iteration; repeated shapes are averaged. Rows must be pure prefill
            (``decode_seqs == 0``) or pure decode (``prefill_tokens == 0``); mixed rows are ignored.
        kv_s_per_token
            Seconds per decode-context token; estimated from the table when ``None`` (0 when the table has no
            two contexts at the same batch size).

        Raises
        ------
        ConfigError
            Missing columns, no prefill or decode rows, non-positive times.
        """
        _require_columns(table, ("prefill_tokens", "decode_seqs", "decode_context", "time_s"))
        if (table["time_s"] <= 0).any() or table["time_s"].is_null().any():
            raise ConfigError("measured table column 'time_s' must be > 0 in every row")
        pre = (
            table.filter((pl.col("decode_seqs") == 0) & (pl.col("prefill_tokens") > 0))
            .group_by("prefill_tokens")
            .agg(pl.col("time_s").mean())
            .sort("prefill_tokens")
        )
        dec = table.filter((pl.col("prefill_tokens") == 0) & (pl.col("decode_seqs") > 0))
        if kv_s_per_token is None:
            demeaned = dec.with_columns(
                (pl.col(c) - pl.col(c).mean().over("decode_seqs")).alias(c)
                for c in ("decode_context", "time_s")
            )
            sxx = float((demeaned["decode_context"].cast(pl.Float64) ** 2).sum())
            sxy = float((demeaned["decode_context"] * demeaned["time_s"]).sum())
            kv_s_per_token = max(sxy / sxx, 0.0) if sxx > 0 else 0.0
        base = (
            dec.group_by("decode_seqs")
            .agg((pl.col("time_s") - kv_s_per_token * pl.col("decode_context")).mean().alias("a"))
            .sort("decode_seqs")
        )
        return cls(
            tuple(float(x) for x in pre["prefill_tokens"]),
            tuple(float(x) for x in pre["time_s"]),
            tuple(float(x) for x in base["decode_seqs"]),
            tuple(max(float(x), 1e-9) for x in base["a"]),
            float(kv_s_per_token),
        )

    # ------------------------------------------------------------------ protocol
    def iteration_time(self, batch: Batch) -> float:
        """Seconds for one iteration of ``batch`` (0 for an empty batch)."""
        p = batch.prefill_tokens
        d = batch.decode_seqs
        if p > 0:
            return (
                _interp(self.prefill_knots, self.prefill_times, p + d)
                + self.kv_s_per_token * batch.decode_context
            )
        if d > 0:
            return _interp(self.decode_knots, self.decode_base, d) + self.kv_s_per_token * batch.decode_context
        return 0.0

    def decode_run_time(self, decode_seqs: int, decode_context: int, iterations: int) -> float:
        """Seconds for ``iterations`` pure-decode iterations (closed form)."""
        if iterations <= 0 or decode_seqs <= 0:
            return 0.0
        n = iterations
        first = _interp(self.decode_knots, self.decode_base, decode_seqs) + self.kv_s_per_token * decode_context
        return n * first + self.kv_s_per_token * decode_seqs * (n * (n - 1) // 2)

    def decode_iterations_within(self, decode_seqs: int, decode_context: int, duration: float) -> int:
        """Whole pure-decode iterations that finish within ``duration`` seconds (closed form)."""
        if duration <= 0 or decode_seqs <= 0:
            return 0
        first = _interp(self.decode_knots, self.decode_base, decode_seqs) + self.kv_s_per_token * decode_context
        return affine_run_count(first, self.kv_s_per_token * decode_seqs, duration)

    def prefill_time(self, tokens: int, context: int = 0) -> float:
        """Seconds to prefill ``tokens`` prompt tokens alone (``context`` is ignored by the table)."""
        return self.iteration_time(
            Batch(prefill_tokens=tokens, prefill_context=tokens * (context + tokens / 2))
        )

    def decode_time(self, seqs: int, context: int) -> float:
        """Seconds of one decode iteration of ``seqs`` sequences with ``context`` tokens each."""
        return self.iteration_time(Batch(decode_seqs=seqs, decode_context=seqs * context))


def mape(predicted: np.ndarray, observed: np.ndarray) -> float:
    """Mean absolute percentage error, in percent."""
    predicted, observed = np.asarray(predicted, float), np.asarray(observed, float)
    return float(np.mean(np.abs(predicted / observed - 1.0)) * 100.0)
