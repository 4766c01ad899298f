"""Widget for one instance: model, GPU, TP, QPS, max batch and chunked prefill -> latency and timeline.

The logic lives in :func:`explore` (a plain function the widget calls and tests call directly); the widget
only wires controls to it and shows the summary table and charts.
"""

from __future__ import annotations

import altair as alt
import numpy as np
import polars as pl

from workbench.seeds import Streams
from workbench.sim import InstanceConfig, SchedulerConfig, simulate, summary
from workbench.sim.curves import load_curve
from workbench.viz.sim import latency_percentiles, latency_vs_load, timeline

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
    """The explorer's instance: vLLM-like defaults with ``max_num_seqs = max_batch``."""
    sched = SchedulerConfig(
        max_num_seqs=max_batch, max_num_batched_tokens=max(8192, max_batch), chunked_prefill=chunked
    )
    return InstanceConfig(gpu=gpu, model=model, tp=tp, scheduler=sched)


def poisson_requests(lengths: pl.DataFrame, qps: float, n: int, seed: int = 0) -> pl.DataFrame:
    """``n`` requests with Poisson arrivals at ``qps`` and (prompt, output) pairs resampled from ``lengths``."""
    streams = Streams(seed)
    idx = streams.rng("poisson/lengths").integers(0, lengths.height, n)
    return pl.DataFrame(
        {
            "request_id": pl.Series(np.arange(n), dtype=pl.UInt64),
            "arrival_s": np.cumsum(streams.rng("poisson/arrivals").exponential(1.0 / qps, n)),
            "prompt_tokens": lengths["prompt_tokens"].to_numpy()[idx].astype(np.int32),
            "output_tokens": lengths["output_tokens"].to_numpy()[idx].astype(np.int32),
        }
    )


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
    mid = float(res.requests["arrival_s"].median())
    chart = timeline(res, 0, start_s=mid, end_s=mid + window_s)
    return table.select(SUMMARY_COLUMNS), latency_percentiles(table), chart


def instance_explorer(lengths: pl.DataFrame, *, requests: int = 2_000):
    """An ipywidgets box: model, GPU, TP, QPS, max batch, chunked prefill; Run and Load-curve buttons."""
    import ipywidgets as w
    from IPython.display import display

    from workbench.hardware import list_gpus, list_models

    style = {"description_width": "110px"}
    model = w.Dropdown(
        options=list_models()["model"].to_list(), value="Llama-3.1-8B", description="model", style=style
    )
    gpu = w.Dropdown(options=list_gpus()["gpu"].to_list(), value="H100-SXM", description="GPU", style=style)
    tp = w.Dropdown(options=[1, 2, 4, 8], value=1, description="tensor parallel", style=style)
    qps = w.FloatLogSlider(value=5.0, base=10, min=-1, max=2, step=0.05, description="QPS", style=style)
    batch = w.IntSlider(value=256, min=8, max=512, step=8, description="max batch", style=style)
    chunked = w.Checkbox(value=True, description="chunked prefill")
    run = w.Button(description="Run", button_style="primary")
    curve = w.Button(description="Latency vs load")
    out = w.Output()

    def on_run(_=None) -> None:
        out.clear_output()
        with out:
            try:
                table, pct, tl = explore(
                    lengths,
                    model=model.value,
                    gpu=gpu.value,
                    tp=tp.value,
                    qps=qps.value,
                    max_batch=batch.value,
                    chunked=chunked.value,
                    requests=requests,
                )
            except Exception as exc:
                print(f"error: {exc}")
                return
            display(table, pct, tl)

    def on_curve(_=None) -> None:
        out.clear_output()
        with out:
            try:
                cfg = instance_config(model.value, gpu.value, tp.value, batch.value, chunked.value)
                display(latency_vs_load(load_curve(cfg, lengths, requests=requests)))
            except Exception as exc:
                print(f"error: {exc}")

    run.on_click(on_run)
    curve.on_click(on_curve)
    controls = w.VBox([w.HBox([model, gpu, tp]), w.HBox([qps, batch, chunked]), w.HBox([run, curve])])
    return w.VBox([controls, out])
