"""The figure registry behind ``make figures``: names, CLI, a few cheap figures written as PNG and SVG."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from workbench import cli, figures
from workbench.errors import ConfigError

runner = CliRunner()


def test_every_notebook_contributes_figures():
    notebooks = {f.notebook for f in figures.FIGURES.values()}
    assert notebooks == {"01_workloads", "02_instance", "03_routing", "04_energy_tco", "05_fleet_sizing",
                         "06_what_if"}  # fmt: skip
    assert len(figures.FIGURES) >= 18 and all(f.title for f in figures.FIGURES.values())


def test_write_figures_png_svg_pdf_and_csv(tmp_path):
    import polars as pl

    from workbench.provenance import lock_hash

    names = ["workload_interarrival", "tco_breakdown", "spares"]
    table = figures.write_figures(tmp_path, names, echo=lambda s: None)
    assert table["figure"].to_list() == names and (table["seconds"] > 0).all()
    for name in names:
        assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
        assert (tmp_path / f"{name}.svg").read_text().lstrip().startswith("<svg")
        assert (tmp_path / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"
        lines = (tmp_path / f"{name}.csv").read_text().splitlines()
        assert lines[0].startswith(f"# {name}: ") and f"lock sha256 {lock_hash()}" in lines[1]
        data = pl.read_csv(tmp_path / f"{name}.csv", comment_prefix="#")
        assert data.height > 0 and "part" in data.columns
    tco = pl.read_csv(tmp_path / "tco_breakdown.csv", comment_prefix="#")
    assert {"GPUs", "electricity (x PUE)"} <= set(tco["item"].to_list()) if "item" in tco.columns else True


def test_figures_are_deterministic_and_sized_to_a_column(tmp_path):
    import re

    import vl_convert as vlc

    from workbench.viz import COLUMN_WIDTH_PT

    a, b = tmp_path / "a", tmp_path / "b"
    figures.write_figures(a, ["tornado"], echo=lambda s: None)
    figures.write_figures(b, ["tornado"], width="single", echo=lambda s: None)
    figures.write_figures(b / "again", ["tornado"], echo=lambda s: None)
    for suffix in (".svg", ".png", ".csv", ".pdf"):
        assert (a / f"tornado{suffix}").read_bytes() == (b / "again" / f"tornado{suffix}").read_bytes(), suffix
    width = float(re.search(r'<svg[^>]*\swidth="([0-9.]+)"', (a / "tornado.svg").read_text()).group(1))
    for folder, column in ((a, "double"), (b, "single")):
        png = (folder / "tornado.png").read_bytes()
        px = int.from_bytes(png[16:20], "big")
        assert abs(px - COLUMN_WIDTH_PT[column] / 72 * figures.PNG_DPI) <= 0.01 * px + 2, (column, px)
        pdf = (folder / "tornado.pdf").read_bytes()
        box = [float(x) for x in re.search(rb"/MediaBox \[([^\]]+)\]", pdf).group(1).split()]
        assert abs(box[2] - box[0] - COLUMN_WIDTH_PT[column]) < 1.5, (column, box)
    assert width > 0 and vlc


def test_save_as_writes_one_file_per_suffix(tmp_path):
    import altair as alt

    from workbench.viz import save_as

    chart = alt.Chart(alt.Data(values=[{"x": 1}])).mark_point().encode(x="x:Q")
    paths = save_as(chart, tmp_path / "sub" / "v1.2", suffixes=(".svg", ".json"))
    assert paths == [tmp_path / "sub" / "v1.2.svg", tmp_path / "sub" / "v1.2.json"]
    assert paths[0].read_text().lstrip().startswith("<svg") and paths[1].read_text() == chart.to_json()


def test_each_builder_returns_a_chart_spec():
    for name in ("workload_lengths", "instance_timeline", "power_vs_batch", "sobol", "grid_flex"):
        spec = figures.FIGURES[name].build().to_dict()
        assert "$schema" in spec and ("data" in spec or "datasets" in spec), name


def test_unknown_figure_is_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown figure\(s\) \['nope'\]; choose from: workload_rate"):
        figures.write_figures(tmp_path, ["nope"])
    result = runner.invoke(cli.app, ["figures", "--out", str(tmp_path), "--only", "nope"])
    assert result.exit_code == 1 and "unknown figure" in result.output and "Traceback" not in result.output


def test_cli_lists_and_builds(tmp_path):
    listed = runner.invoke(cli.app, ["figures", "--list"])
    assert listed.exit_code == 0 and all(name in listed.output for name in figures.FIGURES)
    built = runner.invoke(cli.app, ["figures", "--out", str(tmp_path), "--only", "tornado"])
    assert built.exit_code == 0, built.output
    assert "wrote 4 files" in built.output and (tmp_path / "tornado.pdf").exists()


def test_two_pdf_renders_of_one_chart_are_byte_identical():
    """svg2pdf numbers a font's objects and orders resource entries differently per call; the canonical form
    does not (two fonts, regular and bold, and several transparent marks: the parts that vary). It keeps a
    valid layout: every cross-reference offset points at its object, every reference at an object."""
    import re

    import altair as alt
    import polars as pl
    import vl_convert as vlc

    from workbench.errors import WorkbenchError
    from workbench.viz import canonical_pdf, pdf_bytes

    data = pl.DataFrame({"x": [1.0, 2.0, 3.0], "y": [2.0, 1.0, 3.0], "k": ["a", "b", "c"]})
    chart = (
        alt.Chart(data).mark_point(opacity=0.7).encode(x="x:Q", y="y:Q", color="k:N").properties(title="Bold")
    )
    svg = vlc.vegalite_to_svg(chart.to_json())
    raw = {vlc.svg_to_pdf(svg) for _ in range(12)}
    renders = {pdf_bytes(svg, 0.8) for _ in range(12)}
    assert len(renders) == 1, f"{len(renders)} different PDFs (svg2pdf itself gave {len(raw)})"
    pdf = renders.pop()
    assert canonical_pdf(pdf) == pdf  # a fixed point
    xref = pdf.rindex(b"\nxref\n") + 1
    table = pdf[xref:]
    offsets = [int(x) for x in re.findall(rb"^(\d{10}) 00000 n", table, re.M)]
    for k, off in enumerate(offsets, start=1):
        assert pdf[off:].startswith(b"%d 0 obj\n" % k)
    assert {int(n) for n in re.findall(rb"\b(\d+) 0 R\b", pdf[:xref])} <= set(range(1, len(offsets) + 1))
    assert int(pdf.rsplit(b"startxref\n", 1)[1].split()[0]) == xref
    with pytest.raises(WorkbenchError, match="not a PDF as svg2pdf writes it"):
        canonical_pdf(b"%PDF-1.7\nnothing here")
