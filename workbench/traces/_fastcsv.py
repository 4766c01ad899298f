"""Parallel reader for big CSV traces whose arrival column holds ISO timestamps (the Azure format).

The streaming scan of :meth:`~workbench.traces.formats.TableFormat.scan` runs the numpy timestamp parser
(:mod:`workbench.traces._timeparse`) as a Python function on polars' worker threads, in small morsels that hold
the GIL, so reading and parsing hardly overlap. For big files it is faster to cut the file at line ends into
ranges of about :data:`RANGE_BYTES` and let a few Python threads each read one range with ``polars.read_csv``
and parse its timestamps with numpy; both release the GIL, so the work spreads over the cores. Only the
adapter's columns are kept and at most one range per thread is in flight, so memory stays close to the output.

The result is the table the streaming scan would give. This path only has to be right for well-formed files:
anything unusual (a quote character, a parse error, a missing value, a malformed timestamp) makes :func:`read`
return ``None``, and the caller then uses the streaming scan, whose validation names the bad row.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path

import polars as pl

from workbench.traces._timeparse import iso_to_ns

#: Files smaller than this are read by the streaming scan (the fast path pays off only for big files).
MIN_BYTES = 48 * 2**20
#: Target size of one range of the file read by one thread.
RANGE_BYTES = 8 * 2**20


class _Fallback(Exception):
    """A range is not plain, well-formed CSV: use the streaming scan instead."""


def _cuts(path: Path, range_bytes: int) -> tuple[bytes, list[tuple[int, int]]]:
    """The header line and (start, end) byte ranges of the data, each ending after a line end."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        header = fh.readline()
        cuts = [fh.tell()]
        for pos in range(cuts[0] + range_bytes, size, range_bytes):
            fh.seek(pos)
            fh.readline()  # move to the start of the next line
            if fh.tell() > cuts[-1]:
                cuts.append(fh.tell())
        if cuts[-1] < size:
            cuts.append(size)
    return header, [(a, b) for a, b in pairwise(cuts) if b > a]


def read(
    path: Path,
    columns: dict[str, str],
    dtypes: dict[str, pl.DataType],
    *,
    separator: str = ",",
    min_bytes: int | None = None,
    range_bytes: int | None = None,
    workers: int | None = None,
) -> pl.DataFrame | None:
    """Read a CSV trace in parallel ranges, or ``None`` when the streaming scan must be used.

    Parameters
    ----------
    path
        The CSV file.
    columns
        Canonical name -> source column; ``arrival_s`` holds ``YYYY-MM-DD HH:MM:SS[.f]`` timestamps.
    dtypes
        Source column -> polars dtype, for every source column in ``columns`` (the arrival column: Utf8).
    separator
        Field separator.
    min_bytes, range_bytes, workers
        Smallest file read this way (default :data:`MIN_BYTES`), target range size (default
        :data:`RANGE_BYTES`) and number of threads (default: polars' pool size, at least 2).

    Returns
    -------
    polars.DataFrame or None
        The canonical columns of ``columns`` (arrival in seconds from the first request, Float64), in file
        order; ``None`` when the file is small or anything in it is unusual.
    """
    small = path.stat().st_size < (MIN_BYTES if min_bytes is None else min_bytes)
    if small or set(columns.values()) - set(dtypes):
        return None
    header, ranges = _cuts(path, RANGE_BYTES if range_bytes is None else range_bytes)
    if b'"' in header:
        return None
    names = header.decode("utf-8", errors="replace").rstrip("\r\n").split(separator)
    if len(set(names)) != len(names) or set(columns.values()) - set(names):
        return None
    schema = {n: dtypes.get(n, pl.Utf8) for n in names}
    index = [names.index(src) for src in columns.values()]
    rename = {src: canon for canon, src in columns.items()}
    time_col = columns["arrival_s"]

    def part(rng: tuple[int, int]) -> pl.DataFrame:
        with path.open("rb") as fh:
            fh.seek(rng[0])
            buf = fh.read(rng[1] - rng[0])
        if b'"' in buf:  # a quoted field may hold a line end: ranges could cut through it
            raise _Fallback
        try:
            df = pl.read_csv(buf, has_header=False, separator=separator, schema=schema, columns=index)
        except (pl.exceptions.PolarsError, ValueError):
            raise _Fallback from None
        ns = iso_to_ns(df[time_col])
        if ns.null_count() or any(df[c].null_count() for c in df.columns):
            raise _Fallback
        return df.with_columns(ns).rename(rename)

    threads = workers or max(2, pl.thread_pool_size())
    try:
        with ThreadPoolExecutor(threads) as pool:
            parts = list(pool.map(part, ranges))
    except _Fallback:
        return None
    if not parts:
        return None
    df = pl.concat(parts, rechunk=False)
    arr = pl.col("arrival_s")
    return df.with_columns((arr - arr.min()) / 1e9)
