"""Widget for one instance: model, GPU, TP, QPS, max batch and chunked prefill -> latency and timeline.

The logic lives in :func:`analytic` (the M/G/c answer, milliseconds) and :func:`explore` (a simulation), plain
functions the widget calls and tests call directly; the widget only wires controls to them, answering at once
with the analytic numbers and replacing them with the simulation when it finishes.
"""

from __future__ import annotations

import altair as alt
import polars as pl

from workbench.config import as_float
from workbench.sim import InstanceConfig, SchedulerConfig, simulate, summary
from workbench.traces import poisson_requests
from workbench.viz.sim import latency_percentiles, timeline

SUMMARY_COLUMNS = (
    "requests",
    "rejected",
    "ttft_p50_s",
    "ttft_p99_s",
    "tpot_p50_s",
    "tpot_p99_s",
    "e2e_p99_s",
    "throughput_tok_s",
    "utilization",
    "preemptions",
)


def instance_config(
    model: str = "Llama-3.1-8B", gpu: str = "H100", tp: int = 1, max_batch: int = 256, chunked: bool = True
) -> InstanceConfig:
    """Return the explorer's instance: vLLM-like defaults with ``max_num_seqs = max_batch``."""
    sched = SchedulerConfig(
        max_num_seqs=max_batch, max_num_batched_tokens=max(8192, max_batch), chunked_prefill=chunked
    )
    return InstanceConfig(gpu=gpu, model=model, tp=tp, scheduler=sched)


def explore(
    lengths: pl.DataFrame,
    *,
    model: str = "Llama-3.1-8B",
    gpu: str = "H100",
    tp: int = 1,
    qps: float = 5.0,
    max_batch: int = 256,
    chunked: bool = True,
    requests: int = 2_000,
    window_s: float = 30.0,
    seed: int = 0,
) -> tuple[pl.DataFrame, alt.HConcatChart, alt.VConcatChart]:
    """Simulate one instance and return its summary table, the percentile chart and a timeline window.

    ``lengths`` holds ``prompt_tokens`` and ``output_tokens`` pairs to resample (e.g. a trace's requests).
    The timeline shows ``window_s`` seconds from the middle of the run.
    """
    config = instance_config(model, gpu, tp, max_batch, chunked)
    res = simulate(poisson_requests(lengths, qps, requests, seed), config, seed=seed)
    table = summary(res)
    mid = as_float(res.requests["arrival_s"].median())
    chart = timeline(res, 0, start_s=mid, end_s=mid + window_s)
    return table.select(SUMMARY_COLUMNS), latency_percentiles(table), chart


def analytic(
    lengths: pl.DataFrame,
    *,
    model: str = "Llama-3.1-8B",
    gpu: str = "H100",
    tp: int = 1,
    qps: float = 5.0,
    max_batch: int = 256,
    chunked: bool = True,
) -> pl.DataFrame:
    """Return the analytic answer for one instance at ``qps`` (M/G/c over the batch slots).

    The table gives capacity, utilisation, mean and P99 TTFT, TPOT and mean end-to-end latency.
    ``rho >= 1`` means the queue grows.
    """
    from workbench.analytic import instance_latency, instance_service_model

    config = instance_config(model, gpu, tp, max_batch, chunked)
    p = lengths["prompt_tokens"].cast(pl.Float64)
    o = lengths["output_tokens"].cast(pl.Float64)
    svc = instance_service_model(
        config.performance_model(), as_float(p.mean()), as_float(o.mean()), batch_size=max_batch,
        prompt_var=as_float(p.var()), output_var=as_float(o.var()), kv_capacity_tokens=config.kv_capacity(),
    )  # fmt: skip
    lat = instance_latency(svc, qps, q=0.99)
    return pl.DataFrame(
        {
            "source": ["analytic"],
            "capacity_req_s": [float(svc.capacity_rps[0])],
            "utilization": [float(lat["rho"][0])],
            "ttft_mean_s": [float(lat["ttft_mean_s"][0])],
            "ttft_p99_s": [float(lat["ttft_q_s"][0])],
            "tpot_s": [float(lat["tpot_s"][0])],
            "e2e_mean_s": [float(lat["e2e_mean_s"][0])],
        }
    )


def instance_explorer(lengths: pl.DataFrame, *, requests: int = 2_000, results=None):
    """Build the instance explorer: model, GPU, TP, QPS, max batch and chunked prefill controls.

    Every change answers at once: the analytic answer (:func:`analytic`) shows immediately; the simulation of
    ``requests`` requests (:func:`explore`) runs in the background and replaces it (summary, percentile
    chart, timeline); a newer input drops the stale run.

    Parameters
    ----------
    lengths
        ``prompt_tokens`` and ``output_tokens`` pairs to resample (e.g. a trace's requests).
    requests
        Requests simulated per answer.
    results
        A :class:`~workbench.widgets.live.Results` that receives the tables and charts shown.

    Returns
    -------
    ipywidgets.VBox
        The controls, the progress bar and status line, and the output; ``box.live`` (its
        :class:`~workbench.widgets.live.Live`) and ``box.controls`` (the controls by name) serve tests and
        benchmarks.
    """
    import ipywidgets as w

    from workbench.hardware import list_gpus, list_models
    from workbench.widgets.live import Live, controls_box, explorer_box, live_parts

    style = {"description_width": "110px"}
    c = {
        "model": w.Dropdown(
            options=list_models()["model"].to_list(), value="Llama-3.1-8B", description="model", style=style
        ),
        "gpu": w.Dropdown(
            options=list_gpus()["gpu"].to_list(), value="H100-SXM", description="GPU", style=style
        ),
        "tp": w.Dropdown(options=[1, 2, 4, 8], value=1, description="tensor parallel", style=style),
        "qps": w.FloatLogSlider(value=5.0, base=10, min=-1, max=2, step=0.05, description="QPS", style=style),
        "max_batch": w.IntSlider(value=256, min=8, max=512, step=8, description="max batch", style=style),
        "chunked": w.Checkbox(value=True, description="chunked prefill"),
    }
    out, status, bar = live_parts()
    live = Live(out, status, bar)

    def update(_=None) -> None:
        values = {k: ctl.value for k, ctl in c.items()}

        def quick():
            table = analytic(lengths, **values)
            if results is not None:
                results.publish({"instance_analytic": table}, {})
            return [table]

        def slow(progress):
            table, pct, tl = explore(lengths, requests=requests, **values)
            if results is not None:
                results.publish({"instance_summary": table}, {"latency_percentiles": pct, "timeline": tl})
            progress(1, 1)
            return [table, pct, tl]

        live.update(quick, slow, label=f"simulating {requests:,} requests")

    return explorer_box(c, update, live, controls_box(c.values(), 2))
