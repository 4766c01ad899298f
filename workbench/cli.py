"""Command line: ``workbench demo`` (``make demo``; the steps live in :mod:`workbench.demo`), ``figures``
(``make figures``; :mod:`workbench.figures`), ``describe`` and ``datasets``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from workbench import datasets, traces
from workbench.demo import format_table, run_demo
from workbench.errors import WorkbenchError

app = typer.Typer(
    help="LLM fleet workbench: workloads, fleet simulation, sizing, power, carbon and TCO.",
    no_args_is_help=True,
    add_completion=False,
)


def _guard(fn: Callable[[], None]) -> None:
    """Run ``fn``; a :class:`WorkbenchError` becomes one line on stderr and exit code 1."""
    try:
        fn()
    except WorkbenchError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Folder for charts (PNG, SVG) and tables (CSV).")] = Path(
        "out"
    ),
    seed: Annotated[int, typer.Option(help="Seed of every random step.")] = 0,
) -> None:
    """The main job on the shipped default trace: workload summary, minimum-cost fleet, own-or-rent TCO; charts
    and tables in OUT."""

    def body() -> None:
        ctx = run_demo(out, seed, echo=typer.echo)
        typer.echo(f"wrote {len(ctx.files)} files to {out}/")

    _guard(body)


@app.command()
def figures(
    out: Annotated[Path, typer.Option("--out", help="Folder for the figures (PNG and SVG).")] = Path(
        "out/figures"
    ),
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Build only this figure (repeatable); see --list.")
    ] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the figures and exit.")] = False,
) -> None:
    """Regenerate every figure of the workbench's studies (workloads, instance, routing, energy, sizing,
    what-if) as PNG and SVG in OUT."""
    from workbench.figures import FIGURES, write_figures

    def body() -> None:
        if list_:
            for fig in FIGURES.values():
                typer.echo(f"{fig.name:24s} {fig.notebook:16s} {fig.title}")
            return
        table = write_figures(out, only, echo=typer.echo)
        typer.echo(format_table(table))
        typer.echo(f"wrote {2 * table.height} files to {out}/")

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


@app.command("datasets")
def datasets_cmd() -> None:
    """List the registered public datasets and whether a local copy was found."""
    typer.echo(format_table(datasets.list().select("name", "kind", "license", "local", "file")))


if __name__ == "__main__":
    app()
