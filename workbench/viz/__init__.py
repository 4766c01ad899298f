"""Altair chart builders, one theme, offline display and export.

The builders live in one module per area (``viz.traces``, ``viz.sim`` ...).

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
    """Return the ``workbench`` altair theme: fonts, sizes, the :data:`PALETTE` and a light grid.

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
    """Return the plain-text stand-in of a chart: ``<chart: its title>``."""
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


def stable_dataset_names(spec: dict) -> dict:
    """Return ``spec`` with its inline datasets named by a hash of their (rounded) values.

    Altair names a dataset ``data-<md5>`` of its values at full precision, so the last bits of a fitted curve,
    which differ between CPUs, change the name even where :func:`round_floats` made the values equal; naming
    each dataset after the values as stored keeps stored outputs comparable across machines.
    """
    import hashlib
    import json

    datasets = spec.get("datasets")
    if not datasets:
        return spec
    renames = {
        old: "data-" + hashlib.md5(json.dumps(values, sort_keys=True).encode()).hexdigest()
        for old, values in datasets.items()
    }
    text = json.dumps(spec)
    for old, new in renames.items():
        text = text.replace(f'"{old}"', f'"{new}"')
    return json.loads(text)


def offline_mimebundle(spec: dict, **_: Any) -> dict[str, Any]:
    """Altair renderer ``workbench``: the Vega-Lite spec plus a static SVG (vl-convert) and a text line.

    Front ends that know the Vega-Lite mimetype draw it interactively; the others (JupyterLab 4 and Voila
    only know Vega-Lite 5, altair writes 6) show the SVG. Nothing is fetched from the network. Floats are
    rounded to ten significant digits (:func:`round_floats`) so that stored outputs compare across machines.
    """
    import json

    import vl_convert as vlc

    spec = stable_dataset_names(round_floats(spec))

    mimetype = f"application/vnd.vegalite.v{alt.SCHEMA_VERSION.lstrip('v').split('.')[0]}+json"
    return {mimetype: spec, "image/svg+xml": vlc.vegalite_to_svg(json.dumps(spec)), "text/plain": _text(spec)}


#: The Vega-Lite version that JupyterLab 4 and Voila bundle (their ``vega5-extension``); live charts are
#: compiled by it in the browser.
BROWSER_VEGALITE = "5.21"


def live_mimebundle(chart: alt.TopLevelMixin) -> dict[str, Any]:
    """Return a chart's mimebundle for live widgets: its Vega-Lite spec under the ``vegalite.v5`` mimetype.

    The spec is compiled and drawn in the browser by the Vega that JupyterLab and Voila bundle (no network,
    no server-side rendering), as SVG (``usermeta.embedOptions``) so that its text is in the page.

    Altair writes Vega-Lite 6; the specs the workbench's charts use compile unchanged with Vega-Lite
    :data:`BROWSER_VEGALITE` (``tests/test_app.py`` checks every explorer's charts with vl-convert). The spec is
    not validated against the Vega-Lite schema here (a third of a redraw's time; the recipes' tests validate
    their specs with ``chart.to_dict()``). Stored notebook outputs use :func:`offline_mimebundle` instead.
    """
    spec = chart.to_dict(validate=False)  # the recipes' tests validate; a live redraw skips it
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


def canonical_pdf(data: bytes) -> bytes:
    """Rewrite a PDF in a canonical form: byte-identical for the same drawing.

    vl-convert's svg2pdf numbers the objects of a font (its CID font, descriptor, CMap and font file) in the
    order it happens to write them, and writes the entries of a page's resource dictionaries (``/fo0 1 0 R``,
    ``/gs2 12 0 R`` ...) in a hash map's order: both change from call to call, the drawing does not. This
    sorts each run of ``/Name N 0 R`` lines of a dictionary (the keys of one dictionary are distinct, so their
    order carries no meaning), renumbers the objects in the order they are reached from the trailer (depth
    first, references in the order they are written), writes them in that order and rebuilds the
    cross-reference table. Stream data is copied untouched (streams name resources, never object numbers).

    Raises
    ------
    WorkbenchError
        ``data`` is not laid out as svg2pdf writes it (uncompressed objects one after another, streams with a
        direct ``/Length``, a classic ``xref`` table), rather than a PDF that is silently not canonical.
    """
    import re

    from workbench.errors import WorkbenchError

    head = re.compile(rb"(\d+) 0 obj\n")
    ref = re.compile(rb"\b(\d+) 0 R\b")
    ref_line = re.compile(rb"^(\s*)/[^\s/<>\[\]()]+ \d+ 0 R$")
    first = head.search(data)
    xref = data.rfind(b"\nxref\n")
    trailer = data.find(b"\ntrailer\n", xref)
    startxref = data.find(b"startxref", trailer)
    if first is None or xref < 0 or trailer < 0 or startxref < 0:
        raise WorkbenchError("canonical_pdf: not a PDF as svg2pdf writes it (no objects or no xref table)")

    def sort_refs(text: bytes) -> bytes:
        out: list[bytes] = []
        run: list[bytes] = []
        indent = b""
        for line in [*text.split(b"\n"), None]:
            m = ref_line.match(line) if line is not None else None
            if m is not None and (not run or m.group(1) == indent):
                run.append(line)  # type: ignore[arg-type]
                indent = m.group(1)
                continue
            out.extend(sorted(run))
            run = [line] if m is not None and line is not None else []
            indent = m.group(1) if m is not None else b""
            if line is not None and m is None:
                out.append(line)
        return b"\n".join(out)

    # objects: number -> (dictionary text, stream bytes from "\nstream\n" to "endstream\n", or b"")
    objects: dict[int, tuple[bytes, bytes]] = {}
    pos = first.start()
    while pos < xref:
        m = head.match(data, pos)
        if m is None:
            if data[pos:xref].strip():
                raise WorkbenchError(f"canonical_pdf: unexpected bytes at offset {pos}")
            break
        num, body = int(m.group(1)), m.end()
        stream, end = data.find(b"\nstream\n", body), data.find(b"\nendobj\n", body)
        if stream >= 0 and (end < 0 or stream < end):
            length = re.search(rb"/Length (\d+)\n", data[body:stream])
            if length is None:
                raise WorkbenchError(f"canonical_pdf: object {num}'s stream has no direct /Length")
            stop = stream + len(b"\nstream\n") + int(length.group(1))
            if data[stop : stop + 18] != b"\nendstream\nendobj\n":
                raise WorkbenchError(f"canonical_pdf: object {num}'s stream does not end at its /Length")
            part = (sort_refs(data[body:stream]), data[stream : stop + 10])
            pos = stop + 18
        elif end >= 0:
            part, pos = (sort_refs(data[body:end]), b""), end + 8
        else:
            raise WorkbenchError(f"canonical_pdf: object {num} does not end")
        if num in objects:
            raise WorkbenchError(f"canonical_pdf: object {num} appears twice")
        objects[num] = part
        while pos < xref and data[pos : pos + 1] in b"\r\n ":
            pos += 1
    tail = data[trailer + 1 : startxref]

    order: list[int] = []  # depth first from the trailer's references, in the order they are written
    seen: set[int] = set()
    stack = [int(r) for r in reversed(ref.findall(tail))]
    while stack:
        num = stack.pop()
        if num in seen or num not in objects:
            continue
        seen.add(num)
        order.append(num)
        stack.extend(int(r) for r in reversed(ref.findall(objects[num][0])))
    order += sorted(set(objects) - seen)  # unreachable objects (svg2pdf writes none) keep their order
    new = {old: k + 1 for k, old in enumerate(order)}

    def renumber(text: bytes) -> bytes:
        def one(match: re.Match) -> bytes:
            old = int(match.group(1))
            if old not in new:
                raise WorkbenchError(f"canonical_pdf: reference to missing object {old}")
            return b"%d 0 R" % new[old]

        return ref.sub(one, text)

    out = bytearray(data[: first.start()])
    offsets = []
    for old in order:
        text, payload = objects[old]
        offsets.append(len(out))
        out += b"%d 0 obj\n" % new[old] + renumber(text) + payload + b"\nendobj\n\n"
    start = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(order) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += renumber(tail) + b"startxref\n%d\n%%%%EOF\n" % start
    return bytes(out)


def pdf_bytes(svg: str, scale: float = 1.0) -> bytes:
    """Return a PDF of the chart drawn as ``svg``, ``scale`` points per chart unit.

    vl-convert draws it (text stays text); the bytes are identical for the same ``svg`` and ``scale``
    (:func:`canonical_pdf`).
    """
    import re

    import vl_convert as vlc

    if scale != 1.0:

        def resize(match: re.Match) -> str:
            return f'{match.group(1)}="{float(match.group(2)) * scale:.3f}"'

        head, rest = svg.split(">", 1)
        svg = re.sub(r'\b(width|height)="([0-9.]+)"', resize, head) + ">" + rest
    return canonical_pdf(vlc.svg_to_pdf(svg))


def save(chart: alt.TopLevelMixin, path: str | Path, *, scale: float | None = None) -> Path:
    """Write ``chart`` to ``path`` in the format its suffix picks.

    The suffixes are ``.png``, ``.svg``, ``.pdf``, ``.html`` and ``.json``.

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
