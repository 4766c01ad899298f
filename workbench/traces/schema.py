"""The canonical workload schema and the :class:`Trace` object.

Every request source (real trace, length table with attached arrivals, synthetic generator) is turned into
one polars table with these columns:

==================  ==================  ======================================================================
column              dtype               meaning
==================  ==================  ======================================================================
``request_id``      UInt64              unique id, 0..n-1 in arrival order unless the source has ids
``arrival_s``       Float64             seconds from trace start, non-decreasing
``prompt_tokens``   Int32 (> 0)         input tokens
``output_tokens``   Int32 (> 0)         generated tokens
``session_id``      UInt64, nullable    conversation / session id
``turn``            Int32, nullable     turn index within the session (0-based)
``client``          Utf8, nullable      client / tenant
``request_class``   Utf8, nullable      model or task class, for class-aware routing
``prefix_hashes``   List(UInt64), null  hashes of consecutive prompt blocks; equal hash = reusable KV block
==================  ==================  ======================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import polars as pl

SCHEMA: dict[str, pl.DataType] = {
    "request_id": pl.UInt64(),
    "arrival_s": pl.Float64(),
    "prompt_tokens": pl.Int32(),
    "output_tokens": pl.Int32(),
    "session_id": pl.UInt64(),
    "turn": pl.Int32(),
    "client": pl.Utf8(),
    "request_class": pl.Utf8(),
    "prefix_hashes": pl.List(pl.UInt64()),
}
COLUMNS: tuple[str, ...] = tuple(SCHEMA)
REQUIRED: tuple[str, ...] = ("request_id", "arrival_s", "prompt_tokens", "output_tokens")
#: Largest token count of one request (the token columns are Int32).
MAX_TOKENS = 2**31 - 1


def conform_exprs(schema: Mapping[str, pl.DataType]) -> list[pl.Expr]:
    """Expressions that give a table of this ``schema`` exactly the columns of :data:`SCHEMA`, in order.

    Missing optional columns become nulls, others are cast (non-strict: values that cannot be cast become
    null, which validation reports).
    """
    exprs = []
    for name, dtype in SCHEMA.items():
        if name in schema:
            exprs.append(pl.col(name).cast(dtype, strict=False) if schema[name] != dtype else pl.col(name))
        else:
            exprs.append(pl.lit(None, dtype=dtype).alias(name))
    return exprs


@dataclass(frozen=True, slots=True)
class Trace:
    """A workload in the canonical schema.

    Attributes
    ----------
    requests
        The requests, one row each, with exactly the columns of :data:`SCHEMA` in that order.
    name
        Short name (dataset name or file stem).
    prefix_block_tokens
        Tokens per prefix-hash block (512 for Mooncake), or ``None`` when there are no hashes.
    source
        Citation and license text of the data.
    has_arrivals
        ``False`` for length-only tables (Vidur/Sarathi): attach arrivals before simulating.
    """

    requests: pl.DataFrame
    name: str = "trace"
    prefix_block_tokens: int | None = None
    source: str = ""
    has_arrivals: bool = True
    meta: dict = field(default_factory=dict, compare=False)

    def lazy(self) -> pl.LazyFrame:
        """Lazy view of the in-memory requests (no copy), to compose polars queries.

        A ``Trace`` always holds its table in memory (:func:`~workbench.traces.load` reads the file once, with
        a streaming scan, and validates it). For files too big for that, :func:`~workbench.traces.io.scan`
        returns a lazy scan of the file itself in the canonical columns, so filters run while reading.
        """
        return self.requests.lazy()

    def __len__(self) -> int:
        return self.requests.height

    @property
    def duration_s(self) -> float:
        """Time from the first to the last arrival, in seconds."""
        if self.requests.height == 0:
            return 0.0
        col = self.requests["arrival_s"]
        return float(col.max() - col.min())

    @property
    def has_prefix_hashes(self) -> bool:
        """Whether any request carries prefix hashes.

        Returns
        -------
        bool
            ``True`` when the ``prefix_hashes`` column has at least one non-null value (``False`` for an empty
            trace).
        """
        return self.requests["prefix_hashes"].null_count() < self.requests.height

    def with_requests(self, requests: pl.DataFrame, **changes) -> Trace:
        """Return a copy with other requests (and optionally other attributes)."""
        kwargs = {
            "name": self.name,
            "prefix_block_tokens": self.prefix_block_tokens,
            "source": self.source,
            "has_arrivals": self.has_arrivals,
            "meta": self.meta,
        }
        kwargs.update(changes)
        return Trace(requests=requests, **kwargs)


def to_trace(columns: dict, *, name: str, block_tokens: int | None = None, source: str = "", **meta) -> Trace:
    """Build a canonical :class:`Trace` from column arrays (missing columns become null).

    Parameters
    ----------
    columns
        Canonical column name -> values (``request_id`` is 0, 1, ... when missing).
    name, block_tokens, source
        The trace's name, prefix block size and source text (default ``"synthetic"``).
    **meta
        Stored in ``Trace.meta``.

    Returns
    -------
    Trace
    """
    n = len(columns["prompt_tokens"])
    cols = {"request_id": np.arange(n, dtype=np.uint64)} | columns
    data = pl.DataFrame({k: pl.Series(k, v, dtype=SCHEMA[k]) for k, v in cols.items()})
    df = data.select(conform_exprs(data.schema))
    return Trace(df, name=name, prefix_block_tokens=block_tokens, source=source or "synthetic", meta=meta)
