"""Widgets for fleet sizing: workload, QPS, SLOs and candidates in; ranked table, answer, check and Pareto out.

The logic lives in :func:`workload_trace` and :func:`plan`, plain functions that the widget calls (and tests and
notebooks call directly); :func:`fleet_sizing_explorer` only wires controls to them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import altair as alt
import polars as pl

from workbench.config import require_choice
from workbench.planning import SLO, SizingResult, candidate_grid, size_fleet, tradeoff_table, workload
from workbench.planning.compare import pool_split_study
from workbench.traces.schema import Trace

#: Workloads offered by the widget: name -> short description.
WORKLOADS: dict[str, str] = {
    "azure_code": "Azure LLM inference trace 2023, code (bursty arrivals)",
    "servegen": "ServeGen-style client mix (m-large, 20 busiest clients)",
    "poisson": "synthetic Poisson arrivals, log-normal lengths",
}


def workload_trace(name: str, *, n: int = 4000, seed: int = 0) -> Trace:
    """One of :data:`WORKLOADS` as a trace (at its own rate; :func:`plan` rescales it)."""
    require_choice("workload", name, tuple(WORKLOADS))
    if name == "azure_code":
        from workbench import traces

        return traces.load("azure_code", allow_download=False)
    if name == "servegen":
        from workbench.traces.synthetic import ServeGenMix

        mix = ServeGenMix.from_datasets(top_clients=20)
        trace = mix.generate(duration_s=60.0, seed=seed)
        return trace.with_requests(trace.requests.head(n))
    from workbench.traces.synthetic import LogNormal, Poisson, Synthetic

    gen = Synthetic(Poisson(10.0), LogNormal(math.log(800), 1.0, math.log(150), 0.8), name="poisson-lognormal")
    return gen.generate(n=n, seed=seed)


@dataclass(frozen=True)
class Plan:
    """Everything the notebook shows for one sizing question."""

    result: SizingResult
    ranked: pl.DataFrame
    tradeoffs: pl.DataFrame
    split: pl.DataFrame | None


def plan(
    trace: Trace,
    qps: float,
    ttft_s: float,
    tpot_s: float,
    *,
    gpus: Sequence[str] = ("H100", "A100", "L40S"),
    topologies: Sequence[str] = ("monolithic", "length_pools", "disaggregated"),
    thresholds: Sequence[int] = (2048, 4096),
    model: str = "Llama-3.1-8B",
    check: int = 2,
    sim_requests: int = 1500,
    split_study: bool = False,
) -> Plan:
    """Size the fleet, build the trade-off table (clocks, batch caps) and optionally the split study."""
    slo = SLO(ttft_s=ttft_s, tpot_s=tpot_s)
    wl = workload(trace, qps)
    cands = candidate_grid(list(gpus), topologies=list(topologies), thresholds=list(thresholds))
    result = size_fleet(wl, slo, cands, model=model, check=check, sim_requests=sim_requests, stop_early=False)
    ranked = result.ranked()
    topo = [t for t in topologies if t != "disaggregated"] or ["monolithic"]
    trade = tradeoff_table(wl, slo, gpus=list(gpus), model=model, topologies=topo, thresholds=list(thresholds))
    split = (
        pool_split_study(wl, slo, gpus=list(gpus), thresholds=list(thresholds), model=model)
        if split_study
        else None
    )
    return Plan(result, ranked, trade, split)


def charts(p: Plan) -> alt.VConcatChart:
    """Sizing bars, analytic-vs-simulated counts (when checked) and the Pareto front, stacked."""
    from workbench.viz.planning import check_chart, pareto_chart, sizing_chart

    parts: list = [sizing_chart(p.result.table, top=10)]
    if "sim_instances" in p.result.table.columns and p.result.table["sim_instances"].is_not_null().any():
        parts.append(check_chart(p.result.table))
    parts.append(pareto_chart(p.tradeoffs))
    return alt.vconcat(*parts).resolve_scale(color="independent")


def fleet_sizing_explorer(model: str = "Llama-3.1-8B"):
    """An ipywidgets box: workload, QPS, SLOs, GPUs and topologies; a button runs the sizing."""
    import ipywidgets as w
    from IPython.display import Markdown, display

    from workbench.hardware import list_gpus

    priced = list_gpus().filter(pl.col("cloud_usd_per_gpu_hr").is_not_null())["gpu"].to_list()
    style = {"description_width": "120px"}
    c = {
        "workload": w.Dropdown(options=list(WORKLOADS), value="poisson", description="workload", style=style),
        "qps": w.FloatLogSlider(10.0, base=10, min=0, max=2.5, step=0.05, description="QPS", style=style),
        "ttft_s": w.FloatSlider(1.0, min=0.1, max=10.0, step=0.1, description="P99 TTFT (s)", style=style),
        "tpot_s": w.FloatSlider(0.05, min=0.01, max=0.5, step=0.01, description="P99 TPOT (s)", style=style),
        "gpus": w.SelectMultiple(
            options=priced,
            value=[g for g in ("H100-SXM", "A100-80GB-SXM", "L40S") if g in priced],
            description="GPUs",
            style=style,
        ),
        "topologies": w.SelectMultiple(
            options=["monolithic", "length_pools", "disaggregated"],
            value=["monolithic", "length_pools"],
            description="topologies",
            style=style,
        ),
        "check": w.IntSlider(2, min=0, max=6, description="simulate top", style=style),
    }
    button = w.Button(description="Size the fleet", button_style="primary")
    out = w.Output()

    def run(_=None) -> None:
        with out:
            out.clear_output(wait=True)
            trace = workload_trace(c["workload"].value)
            p = plan(
                trace,
                c["qps"].value,
                c["ttft_s"].value,
                c["tpot_s"].value,
                gpus=list(c["gpus"].value),
                topologies=list(c["topologies"].value),
                model=model,
                check=c["check"].value,
            )
            display(Markdown(p.result.explanation))
            display(p.ranked.head(12))
            display(charts(p))

    button.on_click(run)
    return w.VBox([w.HBox([w.VBox(list(c.values())[:4]), w.VBox([*list(c.values())[4:], button])]), out])
