"""Latency-vs-load curves of one instance: simulation next to the analytic M/G/c service model."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from workbench.config import as_float, require_positive
from workbench.errors import ConfigError
from workbench.seeds import Streams
from workbench.sim.config import InstanceConfig
from workbench.sim.simulation import simulate


def _lengths_sample(lengths: pl.DataFrame, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    idx = rng.integers(0, lengths.height, n)
    return lengths["prompt_tokens"].to_numpy()[idx], lengths["output_tokens"].to_numpy()[idx]


def load_curve(
    config: InstanceConfig,
    lengths: pl.DataFrame,
    loads: Sequence[float] = (0.2, 0.4, 0.6, 0.8, 0.9),
    *,
    requests: int = 2_000,
    seed: int = 0,
) -> pl.DataFrame:
    """Simulate one instance at several loads (Poisson arrivals) next to the analytic latency.

    Parameters
    ----------
    config
        The instance.
    lengths
        A table with ``prompt_tokens`` and ``output_tokens`` (e.g. a trace's requests) resampled per request.
    loads
        Arrival rates as fractions of the analytic capacity (:attr:`ServiceModel.capacity_rps`).
    requests
        Requests simulated per load (the first 10 % are dropped as warm-up).
    seed
        Root seed: one independent stream per load.

    Returns
    -------
    polars.DataFrame
        Long table ``load, arrival_rate, source ("simulation" | "analytic"), metric ("ttft_mean_s",
        "ttft_p99_s", "e2e_mean_s", "tpot_mean_s"), value``; the analytic model gives no TTFT P99 beyond its
        wait quantile plus prefill, reported as ``ttft_p99_s``.
    """
    from workbench.analytic import instance_latency, instance_service_model

    if not loads or any(not (0 < f < 1.5) for f in loads):
        raise ConfigError(f"loads must be fractions of capacity in (0, 1.5), got {list(loads)!r}")
    require_positive("requests", requests)
    p = lengths["prompt_tokens"].cast(pl.Float64)
    o = lengths["output_tokens"].cast(pl.Float64)
    perf = config.performance_model()
    svc = instance_service_model(
        perf,
        as_float(p.mean()),
        as_float(o.mean()),
        batch_size=config.scheduler.max_num_seqs,
        prompt_var=as_float(p.var()),
        output_var=as_float(o.var()),
        kv_capacity_tokens=config.kv_capacity(),
    )
    capacity = float(svc.capacity_rps[0])
    rows = []
    streams = Streams(seed)
    for k, f in enumerate(loads):  # the k-th load's stream
        rate = f * capacity
        rng = streams.rng(k)
        prompt, output = _lengths_sample(lengths, rng, requests)
        reqs = pl.DataFrame(
            {
                "request_id": pl.Series(np.arange(requests), dtype=pl.UInt64),
                "arrival_s": np.cumsum(rng.exponential(1.0 / rate, requests)),
                "prompt_tokens": pl.Series(prompt, dtype=pl.Int32),
                "output_tokens": pl.Series(output, dtype=pl.Int32),
            }
        )
        r = simulate(reqs, config, record_segments=False).requests.slice(requests // 10)
        r = r.filter(~pl.col("rejected"))
        sim = {
            "ttft_mean_s": r["ttft_s"].mean(),
            "ttft_p99_s": r["ttft_s"].quantile(0.99),
            "e2e_mean_s": r["e2e_s"].mean(),
            "tpot_mean_s": r["tpot_s"].mean(),
        }
        lat = instance_latency(svc, rate, q=0.99).row(0, named=True)
        ana = {
            "ttft_mean_s": lat["ttft_mean_s"],
            "ttft_p99_s": lat["ttft_q_s"],
            "e2e_mean_s": lat["e2e_mean_s"],
            "tpot_mean_s": lat["tpot_s"],
        }
        for source, values in (("simulation", sim), ("analytic", ana)):
            rows += [(float(f), rate, source, metric, as_float(v)) for metric, v in values.items()]
    return pl.DataFrame(
        rows,
        schema={
            "load": pl.Float64,
            "arrival_rate": pl.Float64,
            "source": pl.Utf8,
            "metric": pl.Utf8,
            "value": pl.Float64,
        },
        orient="row",
    )
