"""The canonical workload schema and the :class:`Trace` object.

Every request source (real trace, length table with attached arrivals, synthetic generator) is turned into
one polars table with these columns:

==================  ==================  ======================================================================
column              dtype               meaning
==================  ==================  ======================================================================
``request_id``      UInt64              unique id, 0..n-1 in arrival order unless the source has ids
``arrival_s``       Float64             seconds from trace start, non-decreasing (null in length-only tables)
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
from typing import Any

import numpy as np
import polars as pl

from workbench.config import as_float
from workbench.errors import WorkloadError

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
    """A workload in the canonical schema, valid by construction.

    Creating a ``Trace`` checks its table once (:func:`check_requests`): whatever holds a ``Trace`` (the
    simulator, a transform, a study) can rely on the rules below without checking them again. Missing optional
    columns are added as nulls, columns are cast to :data:`SCHEMA` and put in its order, and missing request
    ids become 0, 1, ...; then:

    * ``prompt_tokens`` and ``output_tokens`` are present, >= 1 and not null (Int32, so <= 2,147,483,647);
    * ``request_id`` is unique and not null;
    * with ``has_arrivals``: ``arrival_s`` is finite, >= 0 and non-decreasing; without: all null;
    * ``turn`` is >= 0 where set; with ``prefix_block_tokens``, no request has more prefix hashes than its
      prompt has blocks.

    A violation raises one :class:`~workbench.errors.WorkloadError` naming the column and the first bad row
    (rows count from 1). The check is one pass of aggregates over the table (about 15 ms per million rows of an
    Azure-like trace); files are validated with their own row numbers and source column names first
    (:func:`workbench.traces.load`).

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

    def __post_init__(self) -> None:
        if self.prefix_block_tokens is not None and (
            isinstance(self.prefix_block_tokens, bool)
            or not isinstance(self.prefix_block_tokens, int)
            or self.prefix_block_tokens < 1
        ):
            raise WorkloadError(
                f"prefix_block_tokens must be an integer >= 1 or None, got {self.prefix_block_tokens!r}",
                field="prefix_block_tokens",
            )
        requests = check_requests(
            self.requests, has_arrivals=self.has_arrivals, block_tokens=self.prefix_block_tokens, name=self.name
        )
        object.__setattr__(self, "requests", requests)

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
        return as_float(col.max()) - as_float(col.min())

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
        kwargs: dict[str, Any] = {
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


def check_requests(
    requests: pl.DataFrame,
    *,
    has_arrivals: bool = True,
    block_tokens: int | None = None,
    name: str | None = None,
) -> pl.DataFrame:
    """Return the table of a :class:`Trace`: conformed to :data:`SCHEMA` and checked (see the class docstring).

    Parameters
    ----------
    requests
        Requests with canonical column names (optional columns may be missing).
    has_arrivals
        Whether ``arrival_s`` holds times (else it must be null).
    block_tokens
        Prefix block size, when known.
    name
        Trace name, for messages.

    Returns
    -------
    polars.DataFrame
        Exactly the columns of :data:`SCHEMA`, in order.

    Raises
    ------
    WorkloadError
        Naming the column and the first bad row.
    """
    where = f"trace {name!r}: " if name else ""
    if not isinstance(requests, pl.DataFrame):
        raise WorkloadError(f"{where}requests must be a polars DataFrame, got {type(requests).__name__}")
    needed = ["prompt_tokens", "output_tokens"] + (["arrival_s"] if has_arrivals else [])
    missing = [c for c in needed if c not in requests.columns]
    if missing:
        raise WorkloadError(f"{where}missing column(s) {missing}", field=missing[0])
    df = requests
    if "request_id" not in df.columns:
        df = df.with_columns(pl.int_range(pl.len(), dtype=pl.UInt64).alias("request_id"))
    if df.schema != pl.Schema(SCHEMA):  # a table from elsewhere: cast only what casts without loss
        for name_, dtype in df.schema.items():
            if name_ in SCHEMA and name_ not in ("client", "request_class", "prefix_hashes"):
                if not (dtype.is_numeric() or dtype == pl.Null):
                    raise WorkloadError(f"{where}{name_} must be numeric, got {dtype}", field=name_)
        for c in ("prompt_tokens", "output_tokens", "request_id", "session_id", "turn"):
            if c in df.columns and df.schema[c].is_float():
                x = pl.col(c)
                lossy = x.is_not_null() & (~x.is_finite() | (x != x.round(0)))
                _raise_first(df, lossy, c, "must be a whole number", where)
        for c in ("prompt_tokens", "output_tokens", "turn"):
            if c in df.columns and df.schema[c].is_numeric():
                _raise_first(df, pl.col(c) > MAX_TOKENS, c, f"must be at most {MAX_TOKENS:,} (Int32)", where)
        for c in ("request_id", "session_id"):
            if c in df.columns and df.schema[c].is_numeric():
                _raise_first(df, pl.col(c) < 0, c, "must be >= 0", where)
        df = df.select(conform_exprs(df.schema))
    col = pl.col
    checks = {
        "prompt_tokens": col("prompt_tokens").is_null() | (col("prompt_tokens") < 1),
        "output_tokens": col("output_tokens").is_null() | (col("output_tokens") < 1),
        "request_id": col("request_id").is_null() | ~col("request_id").is_first_distinct(),
        "turn": col("turn") < 0,
    }
    rules = {
        "prompt_tokens": "must be a whole number >= 1",
        "output_tokens": "must be a whole number >= 1",
        "request_id": "must be unique and not null (a request appears twice)",
        "turn": "must be >= 0",
        "arrival_s": "must be present, finite and >= 0",
        "prefix_hashes": f"has more ids than the prompt has {block_tokens}-token blocks",
    }
    arr = col("arrival_s")
    if has_arrivals:
        checks["arrival_s"] = arr.is_null() | ~arr.is_finite() | (arr < 0)
        checks["arrival order"] = (arr < arr.shift(1)).fill_null(False)
    else:
        checks["arrival_s"] = arr.is_not_null()
        rules["arrival_s"] = "must be null in a length-only table (has_arrivals=False)"
    if block_tokens is not None:
        blocks = (col("prompt_tokens").cast(pl.Int64) + block_tokens - 1) // block_tokens
        checks["prefix_hashes"] = col("prefix_hashes").list.len().fill_null(0) > blocks
    # detection is one pass of cheap aggregates; ``is_first_distinct`` (slow) only locates a repeated id
    detect = {k: v.any() for k, v in checks.items() if k != "request_id"}
    bad = {"request_id": not ids_unique(df["request_id"]), **df.select(**detect).row(0, named=True)}
    for key, failed in bad.items():
        if failed and key == "arrival order":
            pos = df.select(checks[key].arg_true().first()).item()
            now, before = df["arrival_s"][pos], df["arrival_s"][pos - 1]
            raise WorkloadError(
                f"{where}arrival times must be non-decreasing: {now!r} s after {before!r} s (sort the trace by "
                "arrival_s)",
                field="arrival_s",
                row=pos + 1,
            )
        if failed:
            _raise_first(df, checks[key], key, rules[key], where)
    return df


def ids_unique(ids: pl.Series) -> bool:
    """Whether ``ids`` has no null and no repeat; cheap for the usual increasing ids (no hashing)."""
    if ids.null_count():
        return False
    n = ids.len()
    if n < 2 or (ids.slice(1) > ids.slice(0, n - 1)).all():  # strictly increasing
        return True
    return ids.n_unique() == ids.len()


def _raise_first(df: pl.DataFrame, mask: pl.Expr, column: str, rule: str, where: str) -> None:
    """Raise a :class:`WorkloadError` for the first row where ``mask`` holds (nothing when it never does)."""
    pos = df.select(mask.fill_null(False).arg_true().first()).item()
    if pos is None:
        return
    value = df[column][pos]
    value = value.to_list() if isinstance(value, pl.Series) else value
    raise WorkloadError(f"{where}{column} {rule}, got {value!r}", field=column, row=pos + 1)
