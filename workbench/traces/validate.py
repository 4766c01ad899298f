"""One validation function for every request table: :func:`validate`.

Rules (each violation raises one :class:`~workbench.errors.WorkloadError` naming file, field and the first bad
row; rows are numbered from 1 = first data record, row 0 is the header):

* every required column (``request_id``, ``arrival_s``, ``prompt_tokens``, ``output_tokens``) is present
  (``arrival_s`` may be null only in length-only tables, ``has_arrivals=False``);
* token counts are whole numbers from 1 to 2,147,483,647 (the Int32 limit of the token columns); missing,
  non-numeric, boolean (JSON ``true``), NaN, zero, negative and larger values are errors;
* ``arrival_s`` is finite, >= 0 and non-decreasing. Equal timestamps are legal (Mooncake has several requests at
  0 ms). Unsorted input is an error unless ``sort=True``, which sorts (stable) with a warning;
* ``prefix_hashes`` are lists of integer ids >= 0 (a JSON string or number in their place is an error); with a
  known block size (``block_tokens``) a request has at most ``ceil(prompt_tokens / block_tokens)`` of them
  (one id per prompt block: more blocks than the prompt holds is an error);
* ``request_id`` is unique: a repeated id (a duplicated request) is an error;
* duplicate rows: in a table without its own ids, a row equal to an earlier one in every column (same arrival
  time, same lengths, same hashes and tags) repeats a line exactly. Traces that log coarse times have them
  legitimately (BurstGPT logs whole seconds, so two requests of the same size in one second are two equal
  lines); a file written twice by mistake has them too, and the two cannot be told apart. So
  ``duplicates="keep"`` (the default) keeps them as distinct requests, ``"drop"`` removes the repeats, both with
  a warning and the count in ``report["duplicate_rows"]`` (and so in ``Trace.meta``); ``"error"`` (the strict
  mode) raises naming the first repeat. Equal timestamps alone are legal and not counted.

Rows are dropped only on request (``duplicates="drop"``), never silently. Validation is one aggregate pass
over the collected table; the first bad row is located only on failure. Ties in ``arrival_s`` are the only
rows compared in full, so the duplicate check costs nothing on traces without ties.
"""

from __future__ import annotations

import warnings

import polars as pl

from workbench.errors import WorkloadError
from workbench.traces.schema import COLUMNS, MAX_TOKENS, SCHEMA, conform_exprs

#: Internal column with the 1-based source row of each request (dropped after validation).
ROW = "__row"
TOKEN_FIELDS = ("prompt_tokens", "output_tokens")


def renumber(df: pl.DataFrame) -> pl.DataFrame:
    """``df`` with ``request_id`` set to 0, 1, ... in row order (added as the last column when missing)."""
    return df.with_columns(pl.int_range(pl.len(), dtype=pl.UInt64).alias("request_id"))


def first_row(df: pl.DataFrame, mask: pl.Expr) -> int:
    """1-based source row of the first record where ``mask`` is true."""
    rows = df.lazy().with_row_index("__pos", offset=1).filter(mask)
    out = rows.select(pl.col(ROW) if ROW in df.columns else pl.col("__pos")).head(1).collect()
    return int(out.item()) if out.height else -1


def conform(df: pl.DataFrame) -> pl.DataFrame:
    """Add missing optional columns as nulls, cast to :data:`SCHEMA` and order columns (keeps ``__row``)."""
    return df.select(conform_exprs(df.schema) + ([pl.col(ROW)] if ROW in df.columns else []))


DUPLICATES = ("error", "keep", "drop")


def validate(
    df: pl.DataFrame,
    *,
    file: str | None = None,
    sort: bool = False,
    has_arrivals: bool = True,
    names: dict[str, str] | None = None,
    duplicates: str = "keep",
    report: dict | None = None,
    block_tokens: int | None = None,
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
    duplicates
        What to do with rows that repeat an earlier row exactly (tables without ids only): ``"keep"``
        (default, counted and warned about), ``"drop"`` or ``"error"`` (see module docstring).
    report
        Optional dict that receives ``duplicate_rows`` (count) when repeats were kept or dropped.
    block_tokens
        Tokens per prefix-hash block, when known: a request may carry at most one hash per prompt block.

    Returns
    -------
    polars.DataFrame
        The table with exactly the columns of :data:`SCHEMA`.

    Raises
    ------
    WorkloadError
        On the first violated rule (see module docstring).
    """
    if duplicates not in DUPLICATES:
        raise WorkloadError(f"duplicates must be one of {DUPLICATES}, got {duplicates!r}", field="duplicates")
    names = names or {}
    label = {c: names.get(c, c) for c in COLUMNS}
    required = ["prompt_tokens", "output_tokens"] + (["arrival_s"] if has_arrivals else [])
    for col in required:
        if col not in df.columns:
            raise WorkloadError(f"missing column for {col}", file=file, field=label[col], row=0)
    if df.height == 0:
        raise WorkloadError("no requests in file (empty table)", file=file, row=1)
    raw = df
    if "prefix_hashes" in df.columns and not isinstance(df.schema["prefix_hashes"], pl.List | pl.Null):
        _not_lists(df, file, label["prefix_hashes"])
    own_ids = "request_id" in df.columns
    if not own_ids:
        df = renumber(df)
    df = conform(df)

    # Tokens: booleans, values beyond Int32, cast failures (non-numeric), nulls, NaN/fractions, values <= 0.
    for col in TOKEN_FIELDS:
        src = raw[col]
        if src.dtype == pl.Boolean:  # JSON true/false would cast to 1/0 tokens
            _check(
                df,
                raw,
                col,
                pl.lit(src).is_not_null(),
                file,
                label,
                "must be a number, not a boolean",
            )
        if src.dtype.is_numeric():
            big = pl.lit(src) > MAX_TOKENS
            _check(
                df,
                raw,
                col,
                big,
                file,
                label,
                f"must be at most {MAX_TOKENS:,} (the Int32 limit of token counts)",
            )
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
    if block_tokens is not None and "prefix_hashes" in raw.columns:
        blocks = (pl.col("prompt_tokens").cast(pl.Int64) + block_tokens - 1) // block_tokens
        extra = pl.col("prefix_hashes").list.len().fill_null(0) > blocks
        _check(
            df,
            raw,
            "prefix_hashes",
            extra,
            file,
            label,
            f"has more ids than the prompt has {block_tokens}-token blocks (one id per block)",
        )
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
                df = renumber(df)
        if not own_ids:
            df = _duplicates(df, file, label, duplicates, report)
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


def _not_lists(df: pl.DataFrame, file, field: str) -> None:
    """Raise for the first row whose ``prefix_hashes`` is not a list (the column did not load as lists).

    A JSON Lines reader that meets a string among lists reads the whole column as strings (lists as their
    JSON text), so the first value that does not look like a list of integers is the bad one.
    """
    col = pl.col("prefix_hashes")
    bad = col.is_not_null()
    if isinstance(df.schema["prefix_hashes"], pl.String):
        bad = bad & ~col.str.contains(r"^\s*\[\s*(\d+\s*(,\s*\d+\s*)*)?\]\s*$")
    row = first_row(df, bad)
    pos = df.lazy().with_row_index("__pos").filter(bad).select("__pos").head(1).collect()
    got = repr(df["prefix_hashes"][pos.item()]) if pos.height else "no list"
    raise WorkloadError(
        f"prefix_hashes must be lists of integer ids >= 0, got {got}",
        file=file,
        field=field,
        row=row if row > 0 else 1,
    )


def _duplicates(df: pl.DataFrame, file, label: dict, mode: str, report: dict | None) -> pl.DataFrame:
    """Apply the duplicate-row rule to a sorted table whose ids were generated (see module docstring)."""
    arr = pl.col("arrival_s")
    tied = (arr == arr.shift(1)).fill_null(False) | (arr == arr.shift(-1)).fill_null(False)
    # repeats share their arrival time, so only tied rows are compared in full
    cols = [c for c in COLUMNS if c != "request_id"]
    sub = df.lazy().with_row_index("__pos").filter(tied)
    pos = sub.filter(~pl.struct(cols).is_first_distinct()).select("__pos").collect()["__pos"]
    count = pos.len()
    if count == 0:
        return df
    # the row index's integer type (polars' stubs want a type class for dtype=)
    mask = pl.int_range(pl.len(), dtype=pos.dtype).is_in(pos.implode())  # type: ignore[call-overload]
    row = first_row(df, mask)
    where = f"{file or 'trace'}: {count} row(s) repeat an earlier row exactly (first at row {row})"
    if mode == "error":
        raise WorkloadError(
            f"row repeats an earlier row exactly ({count} such rows: same {label['arrival_s']}, lengths and "
            "tags); pass duplicates='keep' if they are distinct requests or duplicates='drop' to remove them",
            file=file,
            field=label["arrival_s"],
            row=row,
        )
    if report is not None:
        report["duplicate_rows"] = count
    if mode == "keep":
        warnings.warn(f"{where}; kept them as distinct requests", stacklevel=4)
        return df
    warnings.warn(f"{where}; dropped them", stacklevel=4)
    return renumber(df.filter(~mask))
