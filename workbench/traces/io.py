"""Reading and writing traces: :func:`load`, :func:`scan` (lazy, unvalidated) and :func:`write`."""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import polars as pl

from workbench import datasets
from workbench.config import as_float
from workbench.errors import WorkloadError
from workbench.traces.formats import (
    FORMATS,
    GENERIC,
    ISO_FRACTION,
    TableFormat,
    file_kind,
    header,
    infer_format,
    literal_glob,
    separator,
)
from workbench.traces.schema import COLUMNS, Trace, conform_exprs
from workbench.traces.validate import validate

_META_KEYS = ("name", "prefix_block_tokens", "source", "has_arrivals")


def load(
    source: str | Path | Trace,
    format: str | None = None,
    *,
    sort: bool = False,
    mapping: Mapping[str, str] | None = None,
    time_unit: str | None = None,
    name: str | None = None,
    duplicates: str = "keep",
    allow_download: bool = True,
) -> Trace:
    """Load a workload into the canonical schema.

    Parameters
    ----------
    source
        A file path (``.csv``, ``.jsonl``, ``.parquet``), a registered dataset name (see
        :func:`workbench.datasets.list`, e.g. ``"azure_code"``), or a :class:`Trace` (returned as is).
    format
        Adapter name from :data:`~workbench.traces.formats.FORMATS` (``azure``, ``mooncake``, ``burstgpt``,
        ``lengths``, ``canonical``, ``generic``); inferred from the extension and the columns when ``None``.
    sort
        Sort unsorted arrival times (with a warning) instead of raising.
    mapping
        For the generic format: {canonical column: source column}, e.g.
        ``{"arrival_s": "t", "prompt_tokens": "in", "output_tokens": "out"}``.
    time_unit
        Unit of the mapped arrival column: ``"s"`` (default), ``"ms"``, ``"us"`` or ``"datetime"``.
    name
        Trace name (default: file stem).
    duplicates
        Rows that repeat an earlier row exactly (same arrival time, lengths and tags, in a file without
        request ids): ``"keep"`` (default: distinct requests), ``"drop"`` or ``"error"`` (strict); kept or
        dropped repeats are counted in ``Trace.meta["duplicate_rows"]`` with a warning (see
        :mod:`workbench.traces.validate`).
    allow_download
        For a dataset name: fetch a missing file (``False``: never touch the network, see
        :func:`workbench.datasets.fetch`).

    Returns
    -------
    Trace
        Validated requests. The file is scanned lazily with polars and collected once.

    Raises
    ------
    WorkloadError
        Naming the file, the field and the first bad row (see :mod:`workbench.traces.validate`).

    Examples
    --------
    >>> from workbench import traces
    >>> trace = traces.load("azure_code")
    >>> len(trace), round(trace.duration_s)
    (8819, 3436)
    """
    if isinstance(source, Trace):
        return source
    path, kind, dataset = _resolve(source, format is not None or mapping is not None, allow_download)
    if dataset is not None:
        name = name or dataset.name
    columns = header(path, kind)
    fmt = _pick_format(path, kind, columns, format, mapping, time_unit)
    df = _collect(fmt, path, kind)
    meta: dict = {"file": str(path), "format": fmt.name}
    if "__drop" in df.columns:
        dropped = int(df["__drop"].fill_null(False).sum())
        df = df.filter(~pl.col("__drop").fill_null(False)).drop("__drop")
        meta["dropped_rows"] = dropped
        if dropped:
            reason = fmt.drop_rows[1] if fmt.drop_rows else "rows"
            warnings.warn(f"{path.name}: dropped {dropped} {reason}", stacklevel=2)
            meta["dropped_reason"] = reason
    attrs = _file_attrs(path, kind) if fmt.name == "canonical" else {}
    has_arrivals = attrs.get("has_arrivals", fmt.has_arrivals)
    if fmt.name == "canonical" and df.height and df["arrival_s"].null_count() == df.height:
        has_arrivals = False
    block_tokens = attrs.get("prefix_block_tokens", fmt.block_tokens)
    try:
        requests = validate(
            df,
            file=str(path),
            sort=sort,
            has_arrivals=has_arrivals,
            names=dict(fmt.columns),
            duplicates=duplicates,
            report=meta,
            block_tokens=block_tokens,
        )
    except WorkloadError as exc:
        raise _quote_source_value(exc, fmt, path, kind) from None
    if has_arrivals and fmt.time != "datetime":  # datetimes are already seconds from the first request
        requests = _shift_to_zero(requests, path, meta)
    return Trace(
        requests=requests,
        name=name or attrs.get("name") or path.stem,
        prefix_block_tokens=block_tokens,
        source=attrs.get("source")
        or fmt.source
        or (f"{dataset.citation} License: {dataset.license}." if dataset is not None else ""),
        has_arrivals=has_arrivals,
        meta=meta,
    )


def _shift_to_zero(requests: pl.DataFrame, path: Path, meta: dict) -> pl.DataFrame:
    """Shift numeric arrival times so the first request arrives at 0; the offset goes to ``meta``.

    The schema's times are seconds from the first request. A file whose times start later (Unix epoch seconds,
    seconds since a server started) would otherwise be simulated with that much idle time before the first
    request (54 years for epoch times). The shift is recorded in ``meta["time_offset_s"]`` and, when not 0,
    announced with a warning.
    """
    offset = as_float(requests["arrival_s"].min())
    meta["time_offset_s"] = offset
    if offset > 0:
        warnings.warn(
            f"{path.name}: arrival times start at {offset:.6g} s; shifted to start at 0 "
            "(the offset is in Trace.meta['time_offset_s'])",
            stacklevel=3,
        )
        requests = requests.with_columns(pl.col("arrival_s") - offset)
    return requests


def scan(
    source: str | Path,
    format: str | None = None,
    *,
    mapping: Mapping[str, str] | None = None,
    time_unit: str | None = None,
) -> pl.LazyFrame:
    """Lazy scan of a trace file in the canonical columns, for files too big to load whole.

    :func:`load` collects a file once into memory and validates it; ``Trace.lazy()`` is a lazy view of that
    in-memory table. ``scan`` instead returns the adapter's polars scan itself, so a filter or a window can be
    pushed into the read (``scan(p).filter(pl.col("arrival_s") < 600).collect()``) and the rest of the file
    never held.

    Parameters
    ----------
    source
        A file path or a registered dataset name (as for :func:`load`).
    format, mapping, time_unit
        As for :func:`load`.

    Returns
    -------
    polars.LazyFrame
        The columns of :data:`~workbench.traces.schema.SCHEMA`. ``request_id`` is the row number when the file
        has no ids; Azure times are seconds from the file's first request; failed BurstGPT rows are filtered
        out (not counted).

    Notes
    -----
    The rows are **not validated**: values that do not parse become null. Numeric arrival times are as in the
    file (:func:`load` shifts them to start at 0), so a filter on them is pushed into the read. Validate what
    you collect with :func:`~workbench.traces.validate.validate` (it names the bad row of the collected table)
    or use :func:`load` for the whole file.
    """
    path, kind, _ = _resolve(source, format is not None or mapping is not None, True)
    fmt = _pick_format(path, kind, header(path, kind), format, mapping, time_unit)
    lf = fmt.scan(path, kind)
    names = lf.collect_schema().names()
    if "__drop" in names:
        lf = lf.filter(~pl.col("__drop").fill_null(False))
    if "request_id" not in names:
        lf = lf.with_row_index("request_id")
    return lf.select(conform_exprs(lf.collect_schema()))


def _resolve(source, told_format: bool, allow_download: bool) -> tuple[Path, str, datasets.Dataset | None]:
    """Resolve ``source`` (a path, read literally, or a dataset name) to its file, kind and dataset entry.

    Raises
    ------
    WorkloadError
        For a missing path, a folder, or an unknown extension when no format was given.
    """
    path = Path(source)
    dataset = None
    if _dataset_name(source, path):
        dataset = datasets.get(source)
        path = datasets.trace_file(source, allow_download=allow_download)  # other kinds: a clear error
    if not path.exists():
        raise WorkloadError("file not found", file=str(path))
    if path.is_dir():
        raise WorkloadError("this is a folder, not a file; give the path of one trace file", file=str(path))
    return path, file_kind(path, sniff=told_format), dataset


def _quote_source_value(exc: WorkloadError, fmt: TableFormat, path: Path, kind: str) -> WorkloadError:
    """``exc`` with the file's own text of an arrival time that did not parse (the parsed column only has null).

    Only errors about unparseable arrival values are rewritten; others are returned unchanged.
    """
    src = fmt.columns.get("arrival_s")
    if src is None or exc.field != src or exc.row is None or exc.row < 1 or "unparseable" not in str(exc):
        return exc
    if kind == "csv":
        lf = pl.scan_csv(path, glob=False, separator=separator(path), infer_schema=False)
    elif kind == "jsonl":
        lf = pl.scan_ndjson(literal_glob(path), infer_schema_length=None)
    else:
        lf = pl.scan_parquet(path, glob=False)
    try:
        value = lf.select(pl.col(src).cast(pl.Utf8)).slice(exc.row - 1, 1).collect().item()
    except (pl.exceptions.PolarsError, ValueError):
        return exc
    if value is None:
        return exc
    if fmt.time == "datetime":
        expected = (
            "an ISO 8601 date and time (YYYY-MM-DD HH:MM:SS[.fffffffff], 'T' or a space between date and time, "
            "optionally ending in Z or a +HH:MM offset)"
            if fmt.datetime_format == ISO_FRACTION
            else f"a date and time in the format {fmt.datetime_format!r}"
        )
    else:
        unit = {"s": "seconds", "ms": "milliseconds", "us": "microseconds"}.get(fmt.time or "", fmt.time)
        expected = f"a finite number of {unit} >= 0"
    return WorkloadError(
        f"unparseable arrival time {value!r}: expected {expected}", file=str(path), field=src, row=exc.row
    )


def _dataset_name(source, path: Path) -> bool:
    """Whether ``source`` names a registered dataset: a bare name (no folder, no suffix) that is no file."""
    return isinstance(source, str) and path.suffix == "" and len(path.parts) == 1 and not path.exists()


def _pick_format(path, kind, columns, format, mapping, time_unit) -> TableFormat:
    if mapping is not None:
        if not isinstance(mapping, Mapping) or not all(isinstance(v, str) for v in mapping.values()):
            raise WorkloadError(
                f"mapping must be a dict {{canonical column: source column name}}, got {mapping!r}",
                file=str(path),
                field="mapping",
            )
        fmt = GENERIC.with_mapping(mapping, time_unit)  # unknown canonical names first
        missing = [c for c in ("prompt_tokens", "output_tokens") if c not in mapping]
        if missing:
            raise WorkloadError(
                f"mapping must name the source columns of prompt_tokens and output_tokens (and arrival_s for "
                f"a trace with arrival times); missing {missing}",
                file=str(path),
                field="mapping",
            )
        if "arrival_s" not in mapping:  # a length-only table
            fmt = replace(fmt, time=None)
    elif format is not None:
        key = format.strip().casefold() if isinstance(format, str) else None  # the rule for names: no case
        format = next((name for name in FORMATS if name.casefold() == key), format)
        if not isinstance(format, str) or format not in FORMATS:
            raise WorkloadError(
                f"unknown format {format!r}; choose one of: {', '.join(FORMATS)}",
                file=str(path),
                field="format",
            )
        if format == "generic":
            raise WorkloadError(
                "the generic format needs mapping={canonical: source column}", file=str(path), field="mapping"
            )
        fmt = FORMATS[format]
    else:
        fmt = infer_format(path, columns, kind)
    if fmt.name == "canonical":
        present = {c: c for c in columns if c in COLUMNS}
        missing = [c for c in ("prompt_tokens", "output_tokens") if c not in present]
        if missing:
            raise WorkloadError("missing column for canonical format", file=str(path), field=missing[0], row=0)
        fmt = fmt.with_mapping(present, time_unit)
        if "arrival_s" not in present:  # a length-only table in the canonical names
            fmt = replace(fmt, time=None)
    elif time_unit is not None and mapping is None:
        fmt = fmt.with_mapping(fmt.columns, time_unit)
    missing = [c for c in fmt.columns.values() if c not in columns]
    if missing:
        raise WorkloadError(f"missing column for {fmt.name} format", file=str(path), field=missing[0], row=0)
    return fmt


def _collect(fmt: TableFormat, path: Path, kind: str) -> pl.DataFrame:
    """Read the file once (:meth:`TableFormat.collect`: source strings are never held whole).

    On a parse error, re-read as text to find the first bad value.
    """
    try:
        return fmt.collect(path, kind)
    except pl.exceptions.PolarsError as exc:
        if kind == "jsonl":
            _raise_bad_json(path, fmt)
        if kind == "csv":
            if "more fields" in str(exc):  # polars: "found more fields than defined in 'Schema'"
                _raise_ragged_csv(path)
            try:
                return fmt.scan(path, kind, as_strings=True).collect()
            except pl.exceptions.PolarsError:
                pass
        raise WorkloadError(f"cannot parse file: {str(exc).splitlines()[0]}", file=str(path)) from None


def _raise_ragged_csv(path: Path) -> None:
    """Raise for the first CSV record with more fields than the header (polars only says that one exists)."""
    import csv

    with path.open(newline="", errors="replace") as fh:
        reader = csv.reader(fh, delimiter=separator(path))
        width = len(next(reader, []))
        for row, fields in enumerate(reader, start=1):
            if len(fields) > width:
                raise WorkloadError(
                    f"record has {len(fields)} fields, the header has {width}", file=str(path), row=row
                )


class _Constant(str):
    """Marks ``NaN`` / ``Infinity`` while parsing a JSON line (Python accepts them, JSON and polars do not)."""


def _raise_bad_json(path: Path, fmt: TableFormat) -> None:
    """Find the first line that is not a valid JSON object and raise a :class:`WorkloadError` for it.

    Rows count the non-blank lines (records) from 1. The mapped token columns (and a numeric arrival column)
    must hold JSON numbers: a boolean (``true`` would read as 1 token), string, list or object is an error.
    """
    numbers = [c for c in ("prompt_tokens", "output_tokens") if c in fmt.columns]
    if fmt.time not in (None, "datetime") and "arrival_s" in fmt.columns:
        numbers.append("arrival_s")
    with path.open(errors="replace") as fh:
        row = 0
        for line in fh:
            if not line.strip():
                continue
            row += 1
            try:
                record = json.loads(line, parse_constant=_Constant)
            except json.JSONDecodeError:
                present = [c for c in fmt.columns.values() if f'"{c}"' in line]
                missing = [c for c in fmt.columns.values() if c not in present]
                field = missing[0] if missing else (present[-1] if present else None)
                raise WorkloadError(
                    "invalid or truncated JSON line", file=str(path), field=field, row=row
                ) from None
            if not isinstance(record, dict):
                raise WorkloadError(
                    f"expected one JSON object per line (JSON Lines), got a {type(record).__name__}",
                    file=str(path),
                    row=row,
                )
            bad = next((k for k, v in record.items() if isinstance(v, _Constant)), None)
            if bad is not None:
                raise WorkloadError(
                    f"{record[bad]} is not a valid JSON value (JSON has no NaN or Infinity)",
                    file=str(path),
                    field=bad,
                    row=row,
                )
            for canon in numbers:
                value = record.get(fmt.columns[canon])
                if isinstance(value, bool) or isinstance(value, str | list | dict):
                    kind = "a boolean" if isinstance(value, bool) else f"a JSON {type(value).__name__}"
                    raise WorkloadError(
                        f"{canon} must be a number, not {kind}, got {json.dumps(value)}",
                        file=str(path),
                        field=fmt.columns[canon],
                        row=row,
                    )


def _file_attrs(path: Path, kind: str) -> dict:
    """Trace attributes stored by :func:`write` in Parquet key-value metadata."""
    if kind != "parquet":
        return {}
    raw = pl.read_parquet_metadata(path).get("workbench")
    return json.loads(raw) if raw else {}


def write(trace: Trace, path: str | Path) -> Path:
    """Write a trace; the suffix picks the format (``.parquet`` keeps everything, ``.csv``, ``.jsonl``).

    ``load(write(trace, p))`` returns an equal trace (requests, and for Parquet also name, block size, source),
    its arrival times shifted to start at 0 (generators put the first arrival at their first gap; the shift is
    in ``meta["time_offset_s"]``).
    CSV cannot hold ``prefix_hashes``: writing a trace that has them to CSV raises a :class:`WorkloadError`.

    Parameters
    ----------
    trace
        The trace to write.
    path
        Destination; its suffix (``.parquet``, ``.csv``, ``.jsonl``) picks the format; missing folders are made.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    kind = file_kind(path)
    df = trace.requests
    if kind == "parquet":
        attrs = {k: getattr(trace, k) for k in _META_KEYS}
        df.write_parquet(path, metadata={"workbench": json.dumps(attrs)})
    elif kind == "csv":
        if trace.has_prefix_hashes:
            raise WorkloadError(
                "CSV cannot store prefix_hashes; write .parquet or .jsonl",
                file=str(path),
                field="prefix_hashes",
            )
        df.drop("prefix_hashes").write_csv(path)
    else:
        df.write_ndjson(path)
    return path
