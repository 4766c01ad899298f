"""Download links for the app: the tables and charts an explorer shows, as data URLs (nothing touches disk)."""

from __future__ import annotations

import base64
import html
import io
import re
from typing import Any

import polars as pl

#: Table formats offered for download.
TABLE_FORMATS = ("csv", "parquet")
#: Chart formats offered for download.
CHART_FORMATS = ("svg", "png")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "result"


def table_bytes(table: pl.DataFrame, fmt: str) -> bytes:
    """``table`` as CSV or Parquet bytes (nested columns, e.g. prefix hashes, are left out of CSV)."""
    buf = io.BytesIO()
    if fmt == "csv":
        flat = table.select([c for c, t in table.schema.items() if not t.is_nested()])
        flat.write_csv(buf)
    elif fmt == "parquet":
        table.write_parquet(buf)
    else:
        raise ValueError(f"unknown table format {fmt!r}")
    return buf.getvalue()


def chart_bytes(chart: Any, fmt: str) -> bytes:
    """``chart`` as SVG or PNG bytes (vl-convert, with the workbench theme)."""
    import vl_convert as vlc

    spec = chart.to_json()
    if fmt == "svg":
        return vlc.vegalite_to_svg(spec).encode()
    if fmt == "png":
        return vlc.vegalite_to_png(spec, scale=2.0)
    raise ValueError(f"unknown chart format {fmt!r}")


_MIME = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet", "svg": "image/svg+xml",
         "png": "image/png"}  # fmt: skip


def link(filename: str, payload: bytes, fmt: str) -> str:
    """Return an ``<a download>`` link carrying ``payload`` as a base64 data URL."""
    data = base64.b64encode(payload).decode()
    name = html.escape(filename)
    return (f'<a class="wb-download" download="{name}" href="data:{_MIME[fmt]};base64,{data}" '
            f'style="margin-right:1em">{name}</a>')  # fmt: skip


def links_html(tables: dict[str, pl.DataFrame], charts: dict[str, Any]) -> str:
    """Links for every table (CSV, Parquet) and chart (SVG, PNG); a line saying so when there is nothing."""
    items = [
        link(f"{_safe(name)}.{fmt}", table_bytes(table, fmt), fmt)
        for name, table in tables.items()
        for fmt in TABLE_FORMATS
    ]
    items += [
        link(f"{_safe(name)}.{fmt}", chart_bytes(chart, fmt), fmt)
        for name, chart in charts.items()
        for fmt in CHART_FORMATS
    ]
    return " ".join(items) if items else "<i>nothing to download yet</i>"
