"""Widget for fleet sizing: workload, QPS, SLOs and candidates in; ranked table, answer, check and Pareto out.

The workflow is :func:`workbench.planning.workflow.plan` and the workloads are :mod:`workbench.presets`; the
widget only wires controls to them. Every change shows the analytic sizing at once (``check=0``, without the
trade-off table: the answer, the ranked table and the sizing bars, about 0.1 s), then builds the trade-offs
(Pareto front) and runs the simulation check of the cheapest candidates in the background
(:class:`~workbench.widgets.live.Live`: a progress bar over the candidates, a newer input stops the stale run).
The analytic answer of the last inputs is kept, so a change that only the simulation depends on (how many
candidates to check) redraws without solving again.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import polars as pl

from workbench import presets
from workbench.planning.workflow import Plan, plan, ranked_headline
from workbench.traces.schema import Trace

#: Workloads offered by the explorer (names of :mod:`workbench.presets`).
WORKLOADS: tuple[str, ...] = ("poisson", "azure_code", "servegen")


def _preset_workload(name: str) -> object:
    """Return what preset ``name`` offers a sizing question (:meth:`workbench.presets.Preset.workload`)."""
    return presets.get(name).workload()


def _same(trace: Trace) -> Trace:
    """Return ``trace`` (a menu entry of a trace given by the caller)."""
    return trace


def answer_html(text: str):
    r"""Return the sizing explanation as an HTML paragraph that MathJax leaves alone.

    The page's typesetter would read "at $2.99/h, $0.41 per ..." as TeX between the two dollars (in Voila an
    escaped ``\$`` in Markdown was typeset all the same).
    """
    import html

    from IPython.display import HTML

    return HTML(f'<p class="wb-answer tex2jax_ignore mathjax_ignore">{html.escape(text)}</p>')


def fleet_sizing_explorer(
    model: str = "Llama-3.1-8B",
    *,
    perf: str = "roofline",
    results=None,
    extra: dict[str, Trace] | None = None,
):
    """Build the fleet-sizing explorer: workload, QPS, SLOs, GPUs, topologies and performance model controls.

    A control also sets how many candidates the measurement kernel checks.

    Parameters
    ----------
    model
        Model served.
    perf
        Initial performance model (``"roofline"`` or ``"calibrated:<name>"``,
        :func:`workbench.hardware.performance_model`); the menu offers it, the roofline and every saved
        calibration (:func:`workbench.hardware.performance_models`). A calibration answers only for the GPU
        it was measured on: choose that GPU alone, or the page shows the error.
    results
        A :class:`~workbench.widgets.live.Results` that receives the ranked table and the charts shown.
    extra
        More workloads by label (the app's uploaded trace).

    Returns
    -------
    ipywidgets.VBox
        The controls, the progress bar and status line, and the output; ``box.live`` (its
        :class:`~workbench.widgets.live.Live`) and ``box.controls`` (the controls by name) serve tests and
        benchmarks.
    """
    import ipywidgets as w

    from workbench.hardware import calibration_domain, list_gpus, performance_models
    from workbench.viz.planning import plan_overview, sizing_overview
    from workbench.widgets.live import Live, controls_box, explorer_box, live_parts

    priced = list_gpus().filter(pl.col("cloud_usd_per_gpu_hr").is_not_null())["gpu"].to_list()
    calibration_domain(perf)  # a bad name fails here, as a ConfigError / DatasetError naming it
    perfs = performance_models()
    if perf not in perfs:
        perfs.append(perf)
    style = {"description_width": "120px"}
    # a workload is a drawable Preset or a Trace (Preset.workload)
    choices: dict[str, Callable[[], object]] = {
        presets.get(n).description: functools.partial(_preset_workload, n)
        for n in WORKLOADS
        if n in presets.available()
    }
    for label, trace in (extra or {}).items():
        choices[label] = functools.partial(_same, trace)
    c = {
        "workload": w.Dropdown(options=list(choices), description="workload", style=style),
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
        "perf": w.Dropdown(options=perfs, value=perf, description="perf. model", style=style),
        "check": w.IntSlider(2, min=0, max=6, description="simulate top", style=style),
    }
    out, status, bar = live_parts()
    live = Live(out, status, bar)
    analytic: dict[tuple, Plan] = {}  # the last inputs' analytic plan (one entry)

    def shown(p: Plan) -> list:
        if p.tradeoffs is None:  # the analytic answer: sizing bars only
            chart = sizing_overview(p.result.table)
            tables = {"ranked": p.ranked}
        else:
            chart = plan_overview(p.result.table, p.tradeoffs)
            tables = {"ranked": p.ranked, "tradeoffs": p.tradeoffs}
        if results is not None:
            results.publish(tables, {"sizing": chart})
        return [answer_html(p.result.explanation), ranked_headline(p.ranked.head(12)), chart]

    def update(_=None) -> None:
        v = {k: ctl.value for k, ctl in c.items()}
        if not v["gpus"] or not v["topologies"]:
            live.show("choose at least one GPU and one topology")
            return
        trace = choices[v["workload"]]()

        def run(check: int, progress=False, tradeoffs: bool = True) -> Plan:
            return plan(trace, v["qps"], v["ttft_s"], v["tpot_s"], gpus=list(v["gpus"]),
                        topologies=list(v["topologies"]), model=model, check=check, perf=v["perf"],
                        progress=progress, tradeoffs=tradeoffs)  # fmt: skip

        def quick() -> list:
            key = tuple((k, x) for k, x in v.items() if k != "check")
            if key not in analytic:
                analytic.clear()
                analytic[key] = run(0, tradeoffs=False)
            return shown(analytic[key])

        label = (f"simulating the {v['check']} cheapest candidates" if v["check"]
                 else "building the trade-offs (clocks, batch caps)")  # fmt: skip
        live.update(quick, lambda progress: shown(run(v["check"], progress)), label=label)

    return explorer_box(c, update, live, controls_box(c.values(), 2))
