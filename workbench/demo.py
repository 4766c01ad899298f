"""The main job (``make demo``): for the shipped default workload, which fleet, at what cost, energy and carbon.

The demo is a list of steps (:data:`DEMO_STEPS`), each a function of a shared :class:`DemoContext`:

1. load the Azure 2023 code trace shipped in ``data/`` and fit a synthetic twin; print their summary and chart
   them (rate over time, length CDFs, inter-arrival CDF);
2. size the fleet: scale the trace to :data:`DEMO_QPS`, screen every candidate of :data:`DEMO_GPUS` x
   (monolithic, two length pools, prefill/decode disaggregation) analytically, verify the cheapest by
   simulation, and print the ranked table and the answer;
3. own or rent the answer: lifetime TCO of buying the answer's GPUs at a site versus renting them, its cost
   per million output tokens, carbon and water.

Every table is also written to ``out/<name>.csv`` and every chart to ``out/<name>.png`` and ``.svg``. Other
code adds steps with :func:`add_demo_step`; a step reads what earlier ones left in the context.
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from workbench import traces
from workbench.config import as_float

#: Mean arrival rate the default trace is scaled to for sizing (its own rate is ~2.6 req/s: one GPU).
DEMO_QPS = 20.0
#: Model served, candidate GPU types and topologies of the sizing.
DEMO_MODEL = "Llama-3.1-8B"
DEMO_GPUS = ("H100", "A100", "L40S")
DEMO_TOPOLOGIES = ("monolithic", "length_pools", "disaggregated")
DEMO_THRESHOLDS = (2048, 4096)
#: Site of the TCO, carbon and water figures (:func:`workbench.carbon.site_names`) and the lifetime.
DEMO_SITE = "us-avg"
DEMO_YEARS = 5.0


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
    results
        Other results by name (``"sizing"``: the :class:`~workbench.planning.SizingResult`).
    files
        Files written so far.
    """

    out: Path
    seed: int = 0
    traces: dict[str, traces.Trace] = field(default_factory=dict)
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
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
        from workbench.viz import save_as

        self.files.extend(save_as(chart, self.out / name))


DemoStep = Callable[[DemoContext], None]


def format_table(table: pl.DataFrame) -> str:
    """Return a polars table as plain text, all rows and columns shown."""
    with pl.Config(
        tbl_rows=-1,
        tbl_cols=-1,
        tbl_width_chars=200,
        fmt_str_lengths=48,
        tbl_hide_dataframe_shape=True,
        tbl_hide_column_data_types=True,
        float_precision=3,
    ):
        return str(table)


def load_default_trace(ctx: DemoContext) -> None:
    """Return the Azure 2023 code trace shipped in ``data/`` (no download needed)."""
    ctx.traces["real"] = traces.load("azure_code")


def fit_twin(ctx: DemoContext) -> None:
    """Return a synthetic twin: same rate profile, inter-arrival CV and lengths, fresh random draws."""
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


def size_default_fleet(ctx: DemoContext) -> None:
    """Size the minimum-cost fleet for the default trace at :data:`DEMO_QPS`.

    Analytic screen, then simulation check.
    """
    from workbench.planning import SLO, candidate_grid, size_fleet
    from workbench.planning.sizing import RANKED_COLUMNS
    from workbench.viz.planning import check_chart, sizing_chart

    slo = SLO(ttft_s=2.0, tpot_s=0.1)
    cands = candidate_grid(DEMO_GPUS, topologies=DEMO_TOPOLOGIES, thresholds=DEMO_THRESHOLDS)
    real, seed = ctx.traces["real"], ctx.seed
    result = size_fleet(real, slo, cands, model=DEMO_MODEL, qps=DEMO_QPS, check=3, seed=seed)
    ctx.results["sizing"] = result
    ctx.save_table("fleet_sizing", result.table)
    ctx.echo(f"{len(cands)} candidate fleets for {DEMO_MODEL} at {DEMO_QPS:g} req/s, {slo.label}:")
    shown = [c for c in RANKED_COLUMNS if not c.startswith("sim_t") and c != "gco2e_per_1k_output_tokens"]
    ctx.echo(format_table(result.ranked(shown).head(8)))
    ctx.echo(textwrap.fill(result.explanation, 110))
    ctx.save_chart("fleet_sizing", sizing_chart(result.table, top=12))
    if "sim_instances" in result.table.columns:
        ctx.save_chart("fleet_check", check_chart(result.table))


def answer_pools(best: dict) -> list[dict]:
    """Return the answer's pools: role, GPU, TP, instances (simulated when verified) and busy share.

    The screen's busy share belongs to its own instance count; at the verified count the same load is spread
    over fewer or more instances, so the share is rescaled by analytic / simulated instances.
    """
    roles = {"monolithic": ("main",), "length_pools": ("short", "long"), "disaggregated": ("prefill", "decode")}
    rows = []
    for k, role in enumerate(roles[best["topology"]], start=1):
        analytic, simulated = best[f"instances{k}"], best.get(f"sim_instances{k}")
        n = analytic if simulated is None else simulated
        if n:
            gpu, tp = (best["gpu"], best["tp"]) if k == 1 else (best["gpu2"], best["tp2"])
            busy = min(1.0, best[f"busy{k}"] * analytic / n)
            rows.append({"pool": role, "gpu": gpu, "tp": tp, "instances": n, "gpus": n * tp, "busy": busy})
    return rows


def own_or_rent(ctx: DemoContext) -> None:
    """Lifetime TCO of owning the answer's GPUs vs renting them, cost per million tokens, carbon and water."""
    from workbench.carbon import site
    from workbench.tco import fleet_tco, lifetime_footprint
    from workbench.viz.energy import tco_breakdown

    result = ctx.results["sizing"]
    if result.best is None:
        ctx.echo("no candidate meets the SLO: nothing to cost")
        return
    place = site(DEMO_SITE)
    rows, parts = [], []
    for p in answer_pools(result.best):
        util = max(p["busy"], 0.01)
        res = fleet_tco(
            p["gpu"], p["gpus"], utilisation=util, model=DEMO_MODEL, tp=p["tp"], site=place,
            lifetime_years=DEMO_YEARS, tokens_per_s_per_gpu=0.0,
        )  # fmt: skip
        foot = lifetime_footprint(res, place)
        rows.append(
            {
                **p,
                "busy": util,
                "capex_usd": res["capex_usd"],
                "opex_usd": res["opex_usd"],
                "tco_usd": res["tco_usd"],
                "cloud_usd": res["cloud_usd"],
                "t_co2e_per_year": foot["total_kgco2e"][0] / 1000.0 / DEMO_YEARS,
                "water_m3_per_year": foot["water_total_l"][0] / 1000.0 / DEMO_YEARS,
            }
        )
        parts.append(res.breakdown)
    table = pl.DataFrame(rows)
    ctx.save_table("own_or_rent", table)
    own, cloud = as_float(table["tco_usd"].sum()), as_float(table["cloud_usd"].sum())
    tok_s = as_float(ctx.traces["real"].requests["output_tokens"].mean()) * result.qps
    mtok = tok_s * 3600 * 8760 * DEMO_YEARS / 1e6  # output tokens over the lifetime, millions
    ctx.echo(f"owning vs renting the answer for {DEMO_YEARS:g} years at {place.name} (PUE {place.pue:g}):")
    ctx.echo(format_table(table.with_columns(pl.selectors.ends_with("_usd").round(0).cast(pl.Int64))))
    ctx.echo(
        f"own ${own:,.0f} (${own / mtok:.2f} per million output tokens) vs cloud ${cloud:,.0f} "
        f"(${cloud / mtok:.2f}): {'owning' if own < cloud else 'renting'} is cheaper by "
        f"{abs(1 - min(own, cloud) / max(own, cloud)):.0%}; owning emits "
        f"{table['t_co2e_per_year'].sum():,.1f} t CO2e and uses "
        f"{table['water_m3_per_year'].sum():,.0f} m3 of water a year"
    )
    breakdown = pl.concat(parts).group_by("component", "kind", maintain_order=True).agg(pl.col("usd").sum())
    breakdown = breakdown.with_columns(share=pl.col("usd") / pl.col("usd").sum())
    ctx.save_chart("own_tco", tco_breakdown(breakdown, title=f"TCO of owning the answer, {DEMO_YEARS:g} years"))


#: The demo, in order: (title, step). Append or insert with :func:`add_demo_step`.
DEMO_STEPS: list[tuple[str, DemoStep]] = [
    ("load default trace", load_default_trace),
    ("fit synthetic twin", fit_twin),
    ("summarize workloads", summarize_workloads),
    ("chart workloads", chart_workloads),
    ("size fleet", size_default_fleet),
    ("own or rent", own_or_rent),
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
