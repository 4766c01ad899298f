"""Format adapters: how each public trace format maps onto the canonical schema.

An adapter is a small frozen object (:class:`TableFormat`) registered under a short name in :data:`FORMATS`;
adding a format means registering one more object (:func:`register_format`) without touching the others.
:func:`infer_format` picks an adapter from the file extension and its column names.

Built-in formats
----------------
``azure``      Azure LLM inference trace 2023 CSV (``TIMESTAMP, ContextTokens, GeneratedTokens``).
``mooncake``   Mooncake JSONL (``timestamp`` in ms, ``input_length``, ``output_length``, ``hash_ids``; 512-token
               blocks).
``burstgpt``   BurstGPT CSV (``Timestamp, Model, Request tokens, Response tokens, Total tokens, Log Type``);
               failed requests (0 response tokens) are dropped and counted (warning + ``Trace.meta``).
``lengths``    Vidur / Sarathi length tables (``num_prefill_tokens, num_decode_tokens``): no arrival times.
``canonical``  Any CSV / JSONL / Parquet file already in the canonical column names (what :func:`write` writes).
``generic``    Any CSV / JSONL / Parquet file with a ``mapping`` {canonical name: source column}.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import polars as pl

from workbench.errors import WorkloadError
from workbench.traces._timeparse import iso_to_ns
from workbench.traces.schema import COLUMNS

KINDS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}

AZURE_SOURCE = (
    '"Azure LLM inference trace 2023", Microsoft Azure, Azure Public Dataset '
    '(https://github.com/Azure/AzurePublicDataset), CC-BY-4.0. Cite: Patel et al., "Splitwise: Efficient '
    'generative LLM inference using phase splitting", ISCA 2024.'
)
MOONCAKE_SOURCE = (
    'Mooncake traces (kvcache-ai/Mooncake, FAST25-release), Apache-2.0. Cite: Qin et al., "Mooncake: Trading '
    'More Storage for Less Computation", USENIX FAST 2025.'
)
BURSTGPT_SOURCE = 'BurstGPT (HPMLL/BurstGPT), CC-BY-4.0. Cite: Wang et al., "BurstGPT", arXiv:2401.17644.'
LENGTHS_SOURCE = (
    "Request-length table (Vidur, microsoft/vidur, MIT; or Sarathi-Serve, microsoft/sarathi-serve, "
    "Apache-2.0); token counts tokenized with the Llama-2 tokenizer."
)


@dataclass(frozen=True, slots=True)
class TableFormat:
    """Declarative adapter from a source table to the canonical schema.

    Attributes
    ----------
    name
        Registry name.
    kinds
        File kinds it reads (``csv``, ``jsonl``, ``parquet``).
    columns
        Canonical name -> source column. All of them must be present for the format to match.
    time
        How the arrival column is stored: ``"datetime"`` (string, ``datetime_format``), ``"s"``, ``"ms"``,
        or ``None`` for length-only tables.
    datetime_format
        strftime format of datetime strings.
    block_tokens
        Tokens per prefix-hash block, when the format has hashes.
    source
        Citation / license text stored in ``Trace.source``.
    drop_rows
        Optional (expression, reason) pair: rows where the expression is true are dropped and counted.
    """

    name: str
    kinds: tuple[str, ...]
    columns: Mapping[str, str]
    time: str | None = "s"
    datetime_format: str = "%Y-%m-%d %H:%M:%S%.f"  # ISO_FRACTION: parsed by the fast path
    block_tokens: int | None = None
    source: str = ""
    drop_rows: tuple[Callable[[], pl.Expr], str] | None = None
    dtypes: Mapping[str, pl.DataType] = field(default_factory=dict)

    @property
    def has_arrivals(self) -> bool:
        """Whether the format has an arrival-time column."""
        return self.time is not None

    def matches(self, kind: str, columns: Sequence[str]) -> bool:
        """Whether this format reads ``kind`` files with these columns."""
        return kind in self.kinds and set(self.columns.values()) <= set(columns)

    def with_mapping(self, mapping: Mapping[str, str], time: str | None = None) -> TableFormat:
        """Return a copy whose columns are ``mapping`` (canonical -> source); used by the generic format."""
        unknown = set(mapping) - set(COLUMNS)
        if unknown:
            raise WorkloadError(
                f"mapping has unknown canonical column(s) {sorted(unknown)}; valid: {', '.join(COLUMNS)}",
                field=sorted(unknown)[0],
            )
        return replace(self, columns=dict(mapping), time=time or self.time, drop_rows=None)

    def scan(self, path: Path, kind: str, *, as_strings: bool = False) -> pl.LazyFrame:
        """Lazy scan of ``path`` renamed to canonical columns (plus ``__row``/``__drop`` when rows are dropped).

        ``as_strings`` reads every CSV column as text (the slow diagnostic path used after a parse error).
        """
        src = {v: k for k, v in self.columns.items()}
        if kind == "csv":
            lf = pl.scan_csv(
                path,
                glob=False,
                separator=separator(path),
                schema_overrides=None if as_strings else self.csv_dtypes(),
                infer_schema=not as_strings,
                infer_schema_length=1000,
            )
        elif kind == "jsonl":
            lf = pl.scan_ndjson(literal_glob(path), infer_schema_length=1000)
        else:
            lf = pl.scan_parquet(path, glob=False)
        extra: list[str] = []
        if self.drop_rows is not None:  # keep source row numbers for messages after dropping rows
            lf = lf.with_row_index("__row", offset=1).with_columns(self.drop_rows[0]().alias("__drop"))
            extra = ["__row", "__drop"]
        lf = lf.select(*[pl.col(s).alias(c) for s, c in src.items()], *extra)
        if self.time == "datetime":  # two stages: polars would otherwise parse the strings twice for min()
            arr = pl.col("arrival_s")
            return lf.with_columns(self._arrival_expr()).with_columns((arr - arr.min()) / 1e9)
        return lf.with_columns(self._arrival_expr()) if self.time is not None else lf

    def csv_dtypes(self) -> dict[str, pl.DataType]:
        """Source column -> dtype for CSV reads: text for datetime strings and class labels, plus ``dtypes``."""
        text = [self.columns[c] for c in ("client", "request_class") if c in self.columns]
        if self.time == "datetime":
            text.append(self.columns["arrival_s"])
        return {c: pl.Utf8() for c in text} | dict(self.dtypes)

    def collect(self, path: Path, kind: str) -> pl.DataFrame:
        """Read the whole file.

        :meth:`scan` collected with the streaming engine, or, for big Azure-style CSV files with ISO timestamps,
        the parallel range reader of :mod:`workbench.traces._fastcsv` (same table).
        """
        iso_csv = kind == "csv" and self.time == "datetime" and self.datetime_format == ISO_FRACTION
        if iso_csv and not self.drop_rows:
            from workbench.traces import _fastcsv  # imports pyarrow: only when a file may take this path

            df = _fastcsv.read(path, dict(self.columns), self.csv_dtypes(), separator=separator(path))
            if df is not None:
                return df
        return self.scan(path, kind).collect(engine="streaming")

    def _arrival_expr(self) -> pl.Expr:
        col = pl.col("arrival_s")
        if self.time == "datetime":
            if self.datetime_format == ISO_FRACTION:
                ns = col.map_batches(iso_to_ns, return_dtype=pl.Int64, is_elementwise=True)
            else:
                ns = col.str.strip_chars().str.to_datetime(self.datetime_format, time_unit="ns", strict=False)
                ns = ns.dt.epoch("ns")
            return ns.alias("arrival_s")  # nanoseconds; scan() rebases to seconds from the first request
        scale = {"s": 1.0, "ms": 1e-3, "us": 1e-6}.get(self.time or "")
        if scale is None:
            raise WorkloadError(
                f"unknown time unit {self.time!r}; use 'datetime', 's', 'ms' or 'us'", field="time_unit"
            )
        return (col.cast(pl.Float64, strict=False) * scale).alias("arrival_s")


#: Datetime format of the Azure traces; parsed by the fast numpy path (:mod:`workbench.traces._timeparse`).
ISO_FRACTION = "%Y-%m-%d %H:%M:%S%.f"


def _burstgpt_failed() -> pl.Expr:
    return pl.col("Response tokens").cast(pl.Float64, strict=False) == 0


#: Registry of format adapters, by name, in inference order (first match wins).
FORMATS: dict[str, TableFormat] = {}


def register_format(fmt: TableFormat) -> TableFormat:
    """Add (or replace) an adapter in :data:`FORMATS`; returns it so it can be used as a one-liner.

    Parameters
    ----------
    fmt
        The adapter, registered under ``fmt.name``.

    Returns
    -------
    TableFormat
        ``fmt``.
    """
    FORMATS[fmt.name] = fmt
    return fmt


register_format(
    TableFormat(
        "azure",
        ("csv",),
        {"arrival_s": "TIMESTAMP", "prompt_tokens": "ContextTokens", "output_tokens": "GeneratedTokens"},
        time="datetime",
        source=AZURE_SOURCE,
        dtypes={"ContextTokens": pl.Int32(), "GeneratedTokens": pl.Int32()},
    )
)
register_format(
    TableFormat(
        "mooncake",
        ("jsonl",),
        {
            "arrival_s": "timestamp",
            "prompt_tokens": "input_length",
            "output_tokens": "output_length",
            "prefix_hashes": "hash_ids",
        },
        time="ms",
        block_tokens=512,
        source=MOONCAKE_SOURCE,
    )
)
register_format(
    TableFormat(
        "burstgpt",
        ("csv",),
        {
            "arrival_s": "Timestamp",
            "request_class": "Model",
            "prompt_tokens": "Request tokens",
            "output_tokens": "Response tokens",
        },
        time="s",
        source=BURSTGPT_SOURCE,
        drop_rows=(_burstgpt_failed, "failed requests (0 response tokens)"),
    )
)
register_format(
    TableFormat(
        "lengths",
        ("csv", "parquet", "jsonl"),
        {"prompt_tokens": "num_prefill_tokens", "output_tokens": "num_decode_tokens"},
        time=None,
        source=LENGTHS_SOURCE,
    )
)
register_format(
    TableFormat(
        "canonical",
        ("csv", "parquet", "jsonl"),
        {"arrival_s": "arrival_s", "prompt_tokens": "prompt_tokens", "output_tokens": "output_tokens"},
        time="s",
    )
)
#: Generic adapter: its columns come from the ``mapping`` argument of :func:`workbench.traces.load`.
GENERIC = register_format(TableFormat("generic", ("csv", "parquet", "jsonl"), {}, time="s"))


def literal_glob(path: Path) -> str:
    """``path`` as a glob pattern that matches only that file (for polars readers without ``glob=False``).

    Paths are literal everywhere in the workbench: ``run[1].jsonl`` means that file, never ``run1.jsonl``.
    polars' ``scan_ndjson`` has no switch for that, so its pattern characters are escaped as one-character
    classes (``*`` -> ``[*]``, ``?`` -> ``[?]``, ``[`` -> ``[[]``); other readers get ``glob=False``.
    """
    text = str(path)
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def separator(path: Path) -> str:
    """CSV field separator: a tab for ``.tsv`` files, else a comma."""
    return "\t" if path.suffix.lower() == ".tsv" else ","


def file_kind(path: Path, *, sniff: bool = False) -> str:
    """``csv`` / ``jsonl`` / ``parquet`` from the extension, or from the content with ``sniff``.

    ``sniff`` (used when the caller named a format or a mapping) reads a file with an unknown extension by its
    first bytes: the Parquet magic ``PAR1``, a JSON object (``{``), else CSV. Without it an unknown extension
    is a :class:`WorkloadError`.
    """
    kind = KINDS.get(path.suffix.lower())
    if kind is not None:
        return kind
    if not sniff:
        raise WorkloadError(
            f"unknown file extension {path.suffix!r}; use one of {', '.join(sorted(KINDS))}, or pass format= "
            "(or mapping=) to read the file by its content",
            file=str(path),
        )
    with path.open("rb") as fh:
        head = fh.read(4096)
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.lstrip().startswith((b"{", b"[")):
        return "jsonl"
    return "csv"


def header(path: Path, kind: str) -> list[str]:
    """Column names of a file, read cheaply (CSV header, first JSON line, Parquet schema)."""
    if path.stat().st_size == 0:
        raise WorkloadError("file is empty (no header, no requests)", file=str(path), row=0)
    try:
        if kind == "csv":
            with path.open(newline="", errors="replace") as fh:
                names = next(csv.reader(fh, delimiter=separator(path)), [])
            _no_duplicate_names(names, path)
            lf = pl.scan_csv(path, glob=False, separator=separator(path), n_rows=0, infer_schema=False)
            return lf.collect_schema().names()
        if kind == "jsonl":
            with path.open() as fh:
                line = next((x for x in fh if x.strip()), "")
            _refuse_token_cdf(path)
            if line.lstrip().startswith("["):
                raise WorkloadError(
                    "expected JSON Lines (one JSON object per line), but the file holds a JSON array; "
                    "convert it, e.g. polars.read_json(path).write_ndjson(new_path)",
                    file=str(path),
                    row=1,
                )
            try:
                pairs = json.loads(line, object_pairs_hook=lambda items: items)
                record = dict(pairs) if isinstance(pairs, list) else pairs
                if isinstance(pairs, list):
                    _no_duplicate_names([k for k, _ in pairs], path)
            except json.JSONDecodeError:
                raise WorkloadError("invalid or truncated JSON line", file=str(path), row=1) from None
            if not isinstance(record, dict):
                raise WorkloadError(
                    f"expected JSON Lines (one JSON object per line), got a {type(record).__name__}",
                    file=str(path),
                    row=1,
                )
            return list(record)
        return pl.scan_parquet(path, glob=False).collect_schema().names()  # reads the footer only
    except UnicodeDecodeError as exc:
        raise WorkloadError(
            f"cannot read file: not UTF-8 text ({exc.reason} at byte {exc.start})", file=str(path)
        ) from None
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise WorkloadError(f"cannot read file: {exc}", file=str(path)) from None


def _refuse_token_cdf(path: Path) -> None:
    """Raise a pointer to :class:`~workbench.traces.lengths.TotalTokenCdf` for an inference-fleet-sim CDF file.

    Such a file (a JSON list of ``[total_tokens, fraction]`` pairs, or an object with a ``"cdf"`` list) is a
    length distribution, not a request table.
    """
    if path.stat().st_size > 2**20:
        return
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return
    pairs = raw.get("cdf") if isinstance(raw, dict) else raw
    if isinstance(pairs, list) and pairs and all(isinstance(p, list) and len(p) == 2 for p in pairs):
        raise WorkloadError(
            "this is a CDF of total tokens per request (inference-fleet-sim's workload format), not a request "
            "table; use workbench.traces.TotalTokenCdf.from_json(path) as the lengths of a generator, e.g. "
            "Synthetic(Poisson(rate), TotalTokenCdf.from_json(path)).generate(n, seed=0)",
            file=str(path),
        )


def _no_duplicate_names(names: Sequence[str], path: Path) -> None:
    """Raise for a header (or first JSON object) that names a column twice (readers would silently pick one)."""
    seen: dict[str, int] = {}
    for i, n in enumerate(names, start=1):
        if n in seen:
            raise WorkloadError(
                f"the header names column {n!r} twice (columns {seen[n]} and {i}); rename one of them",
                file=str(path),
                field=n,
                row=0,
            )
        seen[n] = i


def infer_format(path: Path, columns: Sequence[str], kind: str) -> TableFormat:
    """Return the first registered adapter that reads ``kind`` files with these ``columns``."""
    for fmt in FORMATS.values():
        if fmt.columns and fmt.matches(kind, columns):
            return fmt
    # Closest format (most of its columns present): name the first missing column.
    best = max(
        (f for f in FORMATS.values() if f.columns and kind in f.kinds),
        key=lambda f: len(set(f.columns.values()) & set(columns)),
        default=None,
    )
    if best is not None and len(set(best.columns.values()) & set(columns)) >= 2:
        missing = next(c for c in best.columns.values() if c not in columns)
        raise WorkloadError(f"missing column for {best.name} format", file=str(path), field=missing, row=0)
    if {"category", "model", "client_id", "rate", "cv"} <= set(columns) or "probability" in columns:
        raise WorkloadError(
            "ServeGen per-client data describes a client mixture, not a request table; use "
            "workbench.traces.ServeGenMix.from_files(...) and .generate(...)",
            file=str(path),
        )
    known = "; ".join(f"{n}: {', '.join(f.columns.values())}" for n, f in FORMATS.items() if f.columns)
    raise WorkloadError(
        f"cannot infer the trace format from columns {list(columns)[:8]} (known formats: {known}); "
        "pass format= or mapping={canonical: source column}",
        file=str(path),
        row=0,
    )
