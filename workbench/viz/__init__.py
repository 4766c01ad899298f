"""Altair chart builders (one module per area: ``viz.traces``, ``viz.sim`` ...), one theme, offline display
and export.

Charts are data: tests assert on ``chart.to_dict()``; :func:`save` exports PNG/SVG/PDF/HTML through vl-convert
(:func:`save_as`: to several formats at once).

Importing this package enables two altair registrations (unless the user already chose others):

- the ``workbench`` theme (:func:`theme`): one font family and size ladder, the Okabe-Ito colour-blind-safe
  palette, light grid; notebooks, the app and ``make figures`` draw with it;
- the ``workbench`` renderer (:func:`offline_mimebundle`): a chart displays as its Vega-Lite spec *and* a static
  SVG drawn by vl-convert, so it draws with no network (JupyterLab, Voila, nbviewer, a cluster node) and
  nbval compares both instead of skipping them. Altair's default renderer loads vega from a CDN.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import altair as alt

#: Default chart size used by the builders.
WIDTH, HEIGHT = 420, 260

#: Okabe & Ito (2008) colour-blind-safe categorical palette (black last).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
#: Font family of every chart (Liberation Sans is metric-compatible with Arial / Helvetica).
FONT = "Liberation Sans, Arial, Helvetica, sans-serif"
#: Figure widths of a two-column paper in points (1 pt = 1 px in the exported PDF/SVG): one column, full page.
COLUMN_WIDTH_PT = {"single": 252.0, "double": 516.0}


def theme() -> dict[str, Any]:
    """The ``workbench`` altair theme: fonts, sizes, the :data:`PALETTE` and a light grid.

    Returns
    -------
    dict
        An altair theme (``{"config": ...}``); registered as ``"workbench"`` and enabled on import.
    """
    labels = {"labelFont": FONT, "titleFont": FONT, "labelFontSize": 10, "titleFontSize": 11}
    return {
        "config": {
            "font": FONT,
            "title": {"font": FONT, "fontSize": 12, "subtitleFont": FONT, "anchor": "start"},
            "axis": {**labels, "gridColor": "#e6e6e6", "domainColor": "#666666", "tickColor": "#666666"},
            "legend": labels,
            "header": {**labels, "titleFontSize": 11},
            "range": {"category": list(PALETTE)},
            "view": {"stroke": "#cccccc"},
        }
    }


def _text(spec: dict) -> str:
    """The plain-text stand-in of a chart: ``<chart: its title>``."""
    title = spec.get("title")
    text = title.get("text", "") if isinstance(title, dict) else title or ""
    return f"<chart{': ' + str(text) if text else ''}>"


def round_floats(obj: Any, digits: int = 10) -> Any:
    """``obj`` (a chart spec) with every float rounded to ``digits`` significant digits.

    Stored notebook outputs are compared exactly by nbval; the last bits of a sum can differ between CPUs
    (SIMD paths), ten digits do not (and no chart can show more).
    """
    if isinstance(obj, float):
        return float(f"{obj:.{digits}g}")
    if isinstance(obj, dict):
        return {k: round_floats(v, digits) for k, v in obj.items()}
    if isinstance(obj, list):
        return [round_floats(v, digits) for v in obj]
    return obj


def offline_mimebundle(spec: dict, **_: Any) -> dict[str, Any]:
    """Altair renderer ``workbench``: the Vega-Lite spec plus a static SVG (vl-convert) and a text line.

    Front ends that know the Vega-Lite mimetype draw it interactively; the others (JupyterLab 4 and Voila
    only know Vega-Lite 5, altair writes 6) show the SVG. Nothing is fetched from the network. Floats are
    rounded to ten significant digits (:func:`round_floats`) so that stored outputs compare across machines.
    """
    import json

    import vl_convert as vlc

    spec = round_floats(spec)

    mimetype = f"application/vnd.vegalite.v{alt.SCHEMA_VERSION.lstrip('v').split('.')[0]}+json"
    return {mimetype: spec, "image/svg+xml": vlc.vegalite_to_svg(json.dumps(spec)), "text/plain": _text(spec)}


#: The Vega-Lite version that JupyterLab 4 and Voila bundle (their ``vega5-extension``); live charts are
#: compiled by it in the browser.
BROWSER_VEGALITE = "5.21"


def live_mimebundle(chart: alt.TopLevelMixin) -> dict[str, Any]:
    """A chart for live widgets: its Vega-Lite spec under the ``vegalite.v5`` mimetype, compiled and drawn in
    the browser by the Vega that JupyterLab and Voila bundle (no network, no server-side rendering), as SVG
    (``usermeta.embedOptions``) so that its text is in the page.

    Altair writes Vega-Lite 6; the specs the workbench's charts use compile unchanged with Vega-Lite
    :data:`BROWSER_VEGALITE` (``tests/test_app.py`` checks every explorer's charts with vl-convert). Stored
    notebook outputs use :func:`offline_mimebundle` instead.
    """
    spec = chart.to_dict()
    spec["$schema"] = "https://vega.github.io/schema/vega-lite/v5.json"
    spec["usermeta"] = {**spec.get("usermeta", {}), "embedOptions": {"renderer": "svg", "actions": False}}
    return {"application/vnd.vegalite.v5+json": spec, "text/plain": _text(spec)}


def _register() -> None:
    """Register (and, unless the user chose others, enable) the workbench theme and offline renderer."""
    if "workbench" not in alt.theme.names():
        alt.theme.register("workbench", enable=False)(theme)  # type: ignore[arg-type]
    if alt.theme.active == "default":
        alt.theme.enable("workbench")
    if "workbench" not in alt.renderers.names():
        alt.renderers.register("workbench", offline_mimebundle)
    if alt.renderers.active == "default":
        alt.renderers.enable("workbench")


_register()


def pdf_bytes(svg: str, scale: float = 1.0) -> bytes:
    """A PDF of the chart drawn as ``svg``, ``scale`` points per chart unit (vl-convert; text stays text)."""
    import re

    import vl_convert as vlc

    if scale != 1.0:

        def resize(match: re.Match) -> str:
            return f'{match.group(1)}="{float(match.group(2)) * scale:.3f}"'

        head, rest = svg.split(">", 1)
        svg = re.sub(r'\b(width|height)="([0-9.]+)"', resize, head) + ">" + rest
    return vlc.svg_to_pdf(svg)


def save(chart: alt.TopLevelMixin, path: str | Path, *, scale: float | None = None) -> Path:
    """Write ``chart`` to ``path``; the suffix picks the format (``.png``, ``.svg``, ``.pdf``, ``.html``,
    ``.json``).

    Parameters
    ----------
    chart
        Any altair top-level chart.
    path
        Destination; parent folders are created.
    scale
        Size factor: pixels per chart unit for PNG (default 2), points per unit for PDF (default 1: a chart
        drawn 516 wide prints 516 pt, two columns); SVG keeps the chart's units.
    """
    import vl_convert as vlc

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    spec = chart.to_json()
    suffix = path.suffix.lower()
    if suffix == ".png":
        path.write_bytes(vlc.vegalite_to_png(spec, scale=2.0 if scale is None else scale))
    elif suffix == ".svg":
        path.write_text(vlc.vegalite_to_svg(spec))
    elif suffix == ".pdf":
        path.write_bytes(pdf_bytes(vlc.vegalite_to_svg(spec), 1.0 if scale is None else scale))
    elif suffix == ".html":
        path.write_text(vlc.vegalite_to_html(spec))
    elif suffix == ".json":
        path.write_text(spec)
    else:
        raise ValueError(f"unsupported chart format {suffix!r}; use .png, .svg, .pdf, .html or .json")
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
