"""Altair chart builders (one module per area: ``viz.traces``, ``viz.sim`` ...) and export.

Charts are data: tests assert on ``chart.to_dict()``; :func:`save` exports PNG/SVG/HTML through vl-convert
(:func:`save_as`: to several formats at once).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import altair as alt

#: Default chart size used by the builders.
WIDTH, HEIGHT = 420, 260


def save(chart: alt.TopLevelMixin, path: str | Path, *, scale: float = 2.0) -> Path:
    """Write ``chart`` to ``path``; the suffix picks the format (``.png``, ``.svg``, ``.html``, ``.json``).

    Parameters
    ----------
    chart
        Any altair top-level chart.
    path
        Destination; parent folders are created.
    scale
        Pixel scale for PNG.
    """
    import vl_convert as vlc

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    spec = chart.to_json()
    suffix = path.suffix.lower()
    if suffix == ".png":
        path.write_bytes(vlc.vegalite_to_png(spec, scale=scale))
    elif suffix == ".svg":
        path.write_text(vlc.vegalite_to_svg(spec))
    elif suffix == ".html":
        path.write_text(vlc.vegalite_to_html(spec))
    elif suffix == ".json":
        path.write_text(spec)
    else:
        raise ValueError(f"unsupported chart format {suffix!r}; use .png, .svg, .html or .json")
    return path


def save_as(
    chart: alt.TopLevelMixin, stem: str | Path, suffixes: Sequence[str] = (".png", ".svg")
) -> list[Path]:
    """Write ``chart`` once per suffix, to ``<stem><suffix>`` (see :func:`save`).

    Parameters
    ----------
    chart
        Any altair top-level chart.
    stem
        Destination without the suffix (``out/fig`` writes ``out/fig.png`` and ``out/fig.svg``); parent
        folders are created.
    suffixes
        Formats, in order of writing.

    Returns
    -------
    list of Path
        The files written, in the order of ``suffixes``.
    """
    stem = Path(stem)
    return [save(chart, stem.with_name(stem.name + suffix)) for suffix in suffixes]
