"""One validation function for every request table: :func:`validate`.

Rules (each violation raises one :class:`~workbench.errors.WorkloadError` naming file, field and the first bad
row; rows are numbered from 1 = first data record, row 0 is the header):

* every required column (``request_id``, ``arrival_s``, ``prompt_tokens``, ``output_tokens``) is present
  (``arrival_s`` may be null only in length-only tables, ``has_arrivals=False``);
* token counts are whole numbers > 0 (missing, non-numeric, NaN, zero and negative values are errors);
* ``arrival_s`` is finite, >= 0 and non-decreasing. Equal timestamps are legal (Mooncake has several requests at
  0 ms). Unsorted input is an error unless ``sort=True``, which sorts (stable) with a warning;
* ``request_id`` is unique: a repeated id (a duplicated request) is an error. Rows are never dropped here.

Validation is one aggregate pass over the collected table; the first bad row is located only on failure.
"""

from __future__ import annotations

import warnings

import polars as pl

from workbench.errors import WorkloadError
from workbench.traces.schema import COLUMNS, SCHEMA

#: Internal column with the 1-based source row of each request (dropped after validation).
ROW = "__row"
TOKEN_FIELDS = ("prompt_tokens", "output_tokens")


def first_row(df: pl.DataFrame, mask: pl.Expr) -> int:
    """1-based source row of the first record where ``mask`` is true."""
    rows = df.lazy().with_row_index("__pos", offset=1).filter(mask)
    out = rows.select(pl.col(ROW) if ROW in df.columns else pl.col("__pos")).head(1).collect()
    return int(out.item()) if out.height else -1


def conform(df: pl.DataFrame) -> pl.DataFrame:
    """Add missing optional columns as nulls, cast to :data:`SCHEMA` and order columns (keeps ``__row``)."""
    exprs = []
    for name, dtype in SCHEMA.items():
        if name in df.columns:
            exprs.append(pl.col(name).cast(dtype, strict=False) if df.schema[name] != dtype else pl.col(name))
        else:
            exprs.append(pl.lit(None, dtype=dtype).alias(name))
    if ROW in df.columns:
        exprs.append(pl.col(ROW))
    return df.select(exprs)


def validate(
    df: pl.DataFrame,
    *,
    file: str | None = None,
    sort: bool = False,
    has_arrivals: bool = True,
    names: dict[str, str] | None = None,
) -> pl.DataFrame:
    """Check a request table against the canonical schema and return it conformed.

    Parameters
    ----------
    df
        Requests with canonical column names (optional columns may be missing). Token and time columns may
        still hold their source dtype; values that cannot be cast are reported as non-numeric.
    file
        File name for messages.
    sort
        Sort unsorted arrivals (stable, with a warning) instead of raising.
    has_arrivals
        ``False`` for length-only tables: ``arrival_s`` must then be null.
    names
        Canonical name -> source column name, so messages name the column the user sees.

    Returns
    -------
    polars.DataFrame
        The table with exactly the columns of :data:`SCHEMA`.

    Raises
    ------
    WorkloadError
        On the first violated rule (see module docstring).
    """
    names = names or {}
    label = {c: names.get(c, c) for c in COLUMNS}
    required = ["prompt_tokens", "output_tokens"] + (["arrival_s"] if has_arrivals else [])
    for col in required:
        if col not in df.columns:
            raise WorkloadError(f"missing column for {col}", file=file, field=label[col], row=0)
    if df.height == 0:
        raise WorkloadError("no requests in file (empty table)", file=file, row=1)
    raw = df
    own_ids = "request_id" in df.columns
    if not own_ids:
        df = df.with_columns(pl.int_range(pl.len(), dtype=pl.UInt64).alias("request_id"))
    df = conform(df)

    # Tokens: cast failures (non-numeric), nulls, NaN/fractions in float sources, values <= 0.
    for col in TOKEN_FIELDS:
        src = raw[col]
        bad_value = pl.col(col).is_null() | (pl.col(col) <= 0)
        if src.dtype.is_float():
            bad_value = bad_value | pl.lit(src).is_nan() | (pl.lit(src) != pl.lit(src).round(0))
        _check(df, raw, col, bad_value, file, label, "must be a whole number > 0")
    if "prefix_hashes" in raw.columns:
        hashes = pl.lit(raw["prefix_hashes"])
        dtype = raw.schema["prefix_hashes"]
        if isinstance(dtype, pl.List) and dtype != SCHEMA["prefix_hashes"]:  # casting must not lose ids
            lost = pl.col("prefix_hashes").list.len().fill_null(0) != hashes.list.len().fill_null(0)
            lost = lost | (
                pl.col("prefix_hashes").list.drop_nulls().list.len() != hashes.list.drop_nulls().list.len()
            )
            _check(df, raw, "prefix_hashes", lost, file, label, "must be lists of integer ids >= 0")
    if has_arrivals:
        arr = pl.col("arrival_s")
        _check(
            df,
            raw,
            "arrival_s",
            arr.is_null() | arr.is_nan() | arr.is_infinite() | (arr < 0),
            file,
            label,
            "must be a finite number of seconds >= 0",
        )
        if not df["arrival_s"].is_sorted():
            row = first_row(df, arr < arr.shift(1))
            if not sort:
                raise WorkloadError(
                    "arrival times are not sorted (this request arrives before the previous one); "
                    "pass sort=True to sort them",
                    file=file,
                    field=label["arrival_s"],
                    row=row,
                )
            warnings.warn(
                f"{file or 'trace'}: arrival times not sorted (first at row {row}); sorted them", stacklevel=3
            )
            df = df.sort("arrival_s", maintain_order=True)
            if not own_ids:  # generated ids follow arrival order
                df = df.with_columns(pl.int_range(pl.len(), dtype=pl.UInt64).alias("request_id"))
    elif df["arrival_s"].null_count() != df.height:
        raise WorkloadError("length-only table must not have arrival times", file=file, field="arrival_s")
    ids = df["request_id"]
    if own_ids and (ids.null_count() or ids.n_unique() != df.height):
        row = first_row(df, pl.col("request_id").is_null() | ~pl.col("request_id").is_first_distinct())
        raise WorkloadError(
            "duplicate or missing request id (a request appears twice)",
            file=file,
            field=label["request_id"],
            row=row,
        )
    return df.drop(ROW, strict=False)


def _check(df: pl.DataFrame, raw: pl.DataFrame, col: str, bad: pl.Expr, file, label, rule: str) -> None:
    """Raise for the first row where ``bad`` holds, quoting the raw source value."""
    if not df.select(bad.any()).item():
        return
    row = first_row(df, bad)
    pos = df.lazy().with_row_index("__pos").filter(bad).select("__pos").head(1).collect().item()
    value = raw[col][pos]
    value = value.to_list() if isinstance(value, pl.Series) else value
    got = "a missing or unparseable value" if value is None else repr(value)
    raise WorkloadError(f"{col} {rule}, got {got}", file=file, field=label[col], row=row)
