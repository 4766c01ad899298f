"""Command line of the workbench.

Commands: ``workbench run`` (simulate a fleet file), ``plan`` (size a fleet), ``sweep`` (a grid), ``data
list|fetch|verify``, ``demo`` (``make demo``; :mod:`workbench.demo`), ``figures`` (``make figures``;
:mod:`workbench.figures`), ``describe`` and ``app`` (``make app``; :mod:`workbench.app`).

Every command exits 0 on success and 1 with one ``error: ...`` line on bad input (a :class:`WorkbenchError`);
the configs it reads are in ``examples/``.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import polars as pl
import typer

from workbench import datasets, traces
from workbench.demo import format_table, run_demo
from workbench.errors import DatasetError, WorkbenchError

EXAMPLES = """\b
Examples (configs in examples/):
  workbench run examples/fleet.toml --trace azure_code --rate-scale 2 --out out/run
  workbench plan examples/plan.toml
  workbench sweep examples/sweep.toml --jobs 2 --cache-dir .sweep-cache
  workbench data list
  workbench data verify
  workbench app                (the web app on http://127.0.0.1:8866)
"""

app = typer.Typer(
    help="LLM fleet workbench: workloads, fleet simulation, sizing, power, carbon and TCO.",
    epilog=EXAMPLES,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
data_app = typer.Typer(help="Registered public datasets: list, fetch (with a progress bar), verify checksums.",
                       no_args_is_help=True)  # fmt: skip
app.add_typer(data_app, name="data")


def _guard(fn: Callable[[], None]) -> None:
    """Run ``fn``; a :class:`WorkbenchError` becomes one line on stderr and exit code 1."""
    try:
        fn()
    except WorkbenchError as exc:
        message = " ".join(str(exc).split())  # one line, whatever the message holds
        typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None


def _write_tables(out: Path, tables: dict[str, pl.DataFrame], fmt: str) -> None:
    """Write each table as ``out/<name>.<fmt>`` (csv or parquet) and say so."""
    from workbench.config import require_choice

    fmt = require_choice("--format", fmt, ("csv", "parquet"))
    out.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        path = out / f"{name}.{fmt}"
        table.write_csv(path) if fmt == "csv" else table.write_parquet(path)
        typer.echo(f"wrote {path}")


@app.command(epilog="Example: workbench run examples/fleet.toml --trace azure_code --rate-scale 2")
def run(
    fleet: Annotated[Path, typer.Argument(help="Fleet TOML ([[pools]] tables; see examples/fleet.toml).")],
    trace: Annotated[str, typer.Option("--trace", help="Trace file (csv, jsonl, parquet) or dataset name.")],
    rate_scale: Annotated[float, typer.Option(help="Speed the trace up this many times.")] = 1.0,
    requests: Annotated[int | None, typer.Option(help="Simulate only the first N requests.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of every random stream.")] = 0,
    ttft_slo: Annotated[float | None, typer.Option(help="P99 TTFT target (s) for SLO attainment.")] = None,
    tpot_slo: Annotated[float | None, typer.Option(help="P99 TPOT target (s) for SLO attainment.")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Also write summary, requests and per-pool tables here.")
    ] = None,
    format: Annotated[str, typer.Option("--format", help="Table format with --out: csv or parquet.")] = "csv",
) -> None:
    """Simulate a trace through the fleet of FLEET.toml and print its summary table."""
    from workbench.jobs import SUMMARY_COLUMNS, load_trace, run_fleet
    from workbench.sim import summary
    from workbench.sim.topology import Fleet

    def body() -> None:
        from workbench.config import require_int, require_positive

        require_positive("--rate-scale", rate_scale)
        require_int("--seed", seed, low=0)
        if requests is not None:
            require_int("--requests", requests)
        spec = Fleet.from_toml(fleet)
        tr = load_trace(trace, requests, rate_scale)
        typer.echo(f"{fleet}: {sum(p.instances for p in spec.pools)} instances in {len(spec.pools)} pool(s); "
                   f"{tr.name}: {len(tr)} requests x{rate_scale:g}")  # fmt: skip
        result, table = run_fleet(spec, tr, seed=seed, ttft_slo=ttft_slo, tpot_slo=tpot_slo, progress=None)
        typer.echo(format_table(table.select([c for c in SUMMARY_COLUMNS if c in table.columns])))
        if out is not None:
            pools = summary(result, ttft_slo, tpot_slo, by="pool")
            _write_tables(out, {"summary": table, "requests": result.requests, "pools": pools}, format)

    _guard(body)


@app.command(epilog="Example: workbench plan examples/plan.toml --out out/plan")
def plan(
    spec: Annotated[Path, typer.Argument(help="Plan TOML ([workload], [slo], [candidates], [plan]).")],
    out: Annotated[Path | None, typer.Option(help="Also write the ranked and trade-off tables here.")] = None,
    format: Annotated[str, typer.Option("--format", help="Table format with --out: csv or parquet.")] = "csv",
) -> None:
    """Size the minimum-cost fleet for the question in PLAN.toml and print the explanation."""
    from workbench.planning.workflow import PlanSpec, ranked_headline

    def body() -> None:
        question = PlanSpec.from_toml(spec)
        result = question.run(progress=None)
        typer.echo(textwrap.fill(result.result.explanation, 110))
        typer.echo(format_table(ranked_headline(result.ranked.head(8))))
        if out is not None:
            tables = {"ranked": result.ranked}
            if result.tradeoffs is not None:
                tables["tradeoffs"] = result.tradeoffs
            _write_tables(out, tables, format)

    _guard(body)


@app.command(epilog="Example: workbench sweep examples/sweep.toml --jobs 2 --cache-dir .sweep-cache")
def sweep(
    spec: Annotated[Path, typer.Argument(help="Sweep TOML ([sweep] base fleet and trace, [grid] values).")],
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Parallel worker processes (-1: all cores).")] = 1,
    cache_dir: Annotated[
        Path | None, typer.Option("--cache-dir", help="Resumable cache: finished points are not rerun.")
    ] = None,
    dask: Annotated[
        str | None, typer.Option("--dask", help="Run on this Dask scheduler (tcp://host:8786).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Also write the result table here (sweep.csv/.parquet).")
    ] = None,
    format: Annotated[str, typer.Option("--format", help="Table format with --out: csv or parquet.")] = "csv",
) -> None:
    """Run every point of the grid in SWEEP.toml (same table sequential, parallel, cached or on Dask)."""
    from workbench.jobs import SweepSpec

    def body() -> None:
        s = SweepSpec.from_toml(spec)
        typer.echo(f"{spec}: {len(s.configs())} points over {', '.join(s.grid)}")
        table = s.run(jobs=jobs, cache_dir=cache_dir, dask=dask, progress=None)
        typer.echo(format_table(table.drop("point_seed")))
        if out is not None:
            _write_tables(out, {"sweep": table}, format)

    _guard(body)


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Folder for charts (PNG, SVG) and tables (CSV).")] = Path(
        "out"
    ),
    seed: Annotated[int, typer.Option(help="Seed of every random step.")] = 0,
) -> None:
    """Run the main job on the shipped default trace.

    Workload summary, minimum-cost fleet, own-or-rent TCO; charts and tables in OUT.
    """

    def body() -> None:
        ctx = run_demo(out, seed, echo=typer.echo)
        typer.echo(f"wrote {len(ctx.files)} files to {out}/")

    _guard(body)


@app.command()
def figures(
    out: Annotated[Path, typer.Option("--out", help="Folder for the figures (PNG, SVG, PDF, CSV).")] = Path(
        "out/figures"
    ),
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Build only this figure (repeatable); see --list.")
    ] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the figures and exit.")] = False,
    width: Annotated[
        str, typer.Option(help="Paper column width: single (252 pt) or double (516 pt).")
    ] = "double",
) -> None:
    """Regenerate every figure of the workbench's studies as PNG, SVG and PDF in OUT.

    The figures cover workloads, instance, routing, energy, sizing and what-if; each is written with its data as
    CSV.
    """
    from workbench.figures import FIGURES, write_figures

    def body() -> None:
        if list_:
            for fig in FIGURES.values():
                typer.echo(f"{fig.name:24s} {fig.notebook:16s} {fig.title}")
            return
        table = write_figures(out, only, width=width, echo=typer.echo)
        typer.echo(format_table(table))
        typer.echo(f"wrote {4 * table.height} files to {out}/")

    _guard(body)


@app.command()
def describe(
    source: Annotated[
        str, typer.Argument(help="Trace file (csv, jsonl, parquet) or dataset name (azure_code).")
    ],
    format: Annotated[str | None, typer.Option("--format", help="Adapter name; inferred when omitted.")] = None,
    sort: Annotated[
        bool, typer.Option(help="Sort unsorted arrivals (with a warning) instead of failing.")
    ] = False,
    charts: Annotated[Path | None, typer.Option(help="Also write the workload charts (PNG) here.")] = None,
) -> None:
    """Print the summary statistics of one trace."""

    def body() -> None:
        trace = traces.load(source, format, sort=sort)
        typer.echo(f"{trace.name}: {len(trace)} requests, format {trace.meta.get('format', '?')}")
        typer.echo(format_table(traces.summary_table(traces.describe(trace))))
        if charts is not None:
            from workbench.viz import save
            from workbench.viz.traces import CHARTS

            for name, builder in CHARTS.items():
                if trace.has_arrivals or name == "lengths":
                    typer.echo(f"wrote {save(builder(trace), charts / f'{trace.name}_{name}.png')}")

    _guard(body)


@app.command("app")
def app_cmd(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8866,
    expose: Annotated[
        bool, typer.Option("--expose", help="Listen on every interface, not only 127.0.0.1 (with care).")
    ] = False,
    open_browser: Annotated[bool, typer.Option("--open", help="Open the page in a browser.")] = False,
) -> None:
    """Serve the web app (the notebooks' explorers, trace upload, downloads) with Voila on localhost."""
    from workbench.app import serve

    def body() -> None:
        raise typer.Exit(serve(port, expose=expose, open_browser=open_browser))

    _guard(body)


@app.command("datasets", hidden=True)
def datasets_cmd() -> None:
    """List the registered public datasets and whether a local copy was found (= ``data list``)."""
    data_list()


@data_app.command("list")
def data_list() -> None:
    """List the registered datasets: name, kind, license, whether a local copy was found, file."""
    typer.echo(format_table(datasets.list().select("name", "kind", "license", "local", "file")))


@data_app.command("fetch")
def data_fetch(
    names: Annotated[list[str], typer.Argument(help="Dataset names (see `workbench data list`).")],
) -> None:
    """Download datasets that are not local (checksum-verified, with a progress bar); print their paths."""

    def body() -> None:
        for name in names:
            typer.echo(f"{name}: {datasets.fetch(name, progress=True)}")

    _guard(body)


@data_app.command("verify")
def data_verify(
    names: Annotated[list[str] | None, typer.Argument(help="Datasets to check (default: all).")] = None,
) -> None:
    """Check the SHA-256 of each local copy; exit 1 when one does not match (missing files are listed)."""

    def body() -> None:
        rows, bad = [], 0
        for name in names or list(datasets.REGISTRY):
            datasets.get(name)
            try:
                path, status = str(datasets.fetch(name, allow_download=False)), "ok"
            except DatasetError as exc:
                mismatch = "checksum mismatch" in str(exc)
                path, status = datasets.get(name).file, "MISMATCH" if mismatch else "missing"
                bad += mismatch
            rows.append({"name": name, "status": status, "file": path})
        typer.echo(format_table(pl.DataFrame(rows)))
        if bad:
            raise DatasetError(f"{bad} dataset(s) do not match their checksum")

    _guard(body)


if __name__ == "__main__":
    app()
