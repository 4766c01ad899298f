"""Command line: ``python -m workbench.cli demo --out out`` (``make demo``), ``describe``, ``datasets``.

The demo is a list of steps (:data:`DEMO_STEPS`), each a function of a shared :class:`DemoContext`. Other
parts of the workbench add their steps (simulation, energy, ...) with :func:`add_demo_step`; a step reads what
earlier steps left in the context (``ctx.traces["real"]``, ``ctx.traces["twin"]``) and records its outputs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import polars as pl
import typer

from workbench import datasets, traces
from workbench.errors import WorkbenchError

app = typer.Typer(
    help="LLM fleet workbench: characterise workloads (and, as the package grows, simulate and plan fleets).",
    no_args_is_help=True,
    add_completion=False,
)


@dataclass
class DemoContext:
    """State shared by the demo steps.

    Attributes
    ----------
    out
        Output folder (charts, tables).
    seed
        Seed for every random step.
    traces
        Workloads by role: ``"real"`` (the default shipped trace) and ``"twin"`` (its fitted synthetic twin).
    tables
        Result tables by name; each is also written to ``out/<name>.csv``.
    files
        Files written so far.
    """

    out: Path
    seed: int = 0
    traces: dict[str, traces.Trace] = field(default_factory=dict)
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    echo: Callable[[str], None] = print

    def save_table(self, name: str, table: pl.DataFrame) -> None:
        """Keep ``table`` and write it to ``out/<name>.csv``."""
        self.tables[name] = table
        path = self.out / f"{name}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        table.write_csv(path)
        self.files.append(path)

    def save_chart(self, name: str, chart) -> None:
        """Write ``chart`` to ``out/<name>.png`` and ``out/<name>.svg``."""
        from workbench.viz import save

        for suffix in (".png", ".svg"):
            self.files.append(save(chart, self.out / f"{name}{suffix}"))


DemoStep = Callable[[DemoContext], None]


def load_default_trace(ctx: DemoContext) -> None:
    """The Azure 2023 code trace shipped in ``data/`` (no download needed)."""
    ctx.traces["real"] = traces.load("azure_code")


def fit_twin(ctx: DemoContext) -> None:
    """A synthetic twin: same rate profile, inter-arrival CV and lengths, fresh random draws."""
    real = ctx.traces["real"]
    ctx.traces["twin"] = traces.fit(real).generate(duration_s=real.duration_s, seed=ctx.seed)


def summarize_workloads(ctx: DemoContext) -> None:
    """Print and save the :func:`workbench.traces.describe` table of the real trace and its twin."""
    table = traces.describe(list(ctx.traces.values()))
    ctx.save_table("workload_summary", table)
    ctx.echo(format_table(traces.summary_table(table)))


def chart_workloads(ctx: DemoContext) -> None:
    """Rate over time, length CDFs, inter-arrival CDF (PNG and SVG)."""
    from workbench.viz.traces import iat_cdf_chart, length_cdf_chart, rate_chart

    items = list(ctx.traces.values())
    for name, builder in (
        ("workload_rate", rate_chart),
        ("workload_lengths", length_cdf_chart),
        ("workload_interarrival", iat_cdf_chart),
    ):
        ctx.save_chart(name, builder(items))


#: The demo, in order: (title, step). Append or insert with :func:`add_demo_step`.
DEMO_STEPS: list[tuple[str, DemoStep]] = [
    ("load default trace", load_default_trace),
    ("fit synthetic twin", fit_twin),
    ("summarize workloads", summarize_workloads),
    ("chart workloads", chart_workloads),
]


def add_demo_step(title: str, step: DemoStep, *, after: str | None = None) -> None:
    """Register a demo step at the end, or right after the step titled ``after``."""
    titles = [t for t, _ in DEMO_STEPS]
    if after is not None and after not in titles:
        raise ValueError(f"no demo step {after!r}; steps: {', '.join(titles)}")
    pos = titles.index(after) + 1 if after is not None else len(DEMO_STEPS)
    DEMO_STEPS.insert(pos, (title, step))


def run_demo(out: Path, seed: int = 0, echo: Callable[[str], None] = print) -> DemoContext:
    """Run every step of :data:`DEMO_STEPS` and return the context (tables, traces, files)."""
    ctx = DemoContext(out=Path(out), seed=seed, echo=echo)
    for title, step in DEMO_STEPS:
        start = time.perf_counter()
        step(ctx)
        echo(f"[{title}] done in {time.perf_counter() - start:.1f} s (wall)")
    return ctx


def format_table(table: pl.DataFrame) -> str:
    """A polars table as plain text, all rows and columns shown."""
    with pl.Config(
        tbl_rows=-1,
        tbl_cols=-1,
        tbl_width_chars=200,
        fmt_str_lengths=40,
        tbl_hide_dataframe_shape=True,
        tbl_hide_column_data_types=True,
        float_precision=3,
    ):
        return str(table)


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
    """Characterise the default trace and a fitted synthetic twin: summary table and charts in OUT."""

    def body() -> None:
        ctx = run_demo(out, seed, echo=typer.echo)
        typer.echo(f"wrote {len(ctx.files)} files to {out}/")

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
