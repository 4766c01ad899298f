"""Calibrate a named performance model from a user's vLLM benchmark result (``vllm bench serve`` JSON).

What a benchmark file gives: per request the prompt and output lengths, the time to first token and the
inter-token latencies (``--save-result --save-detailed``: keys ``input_lens``, ``output_lens``, ``ttfts``,
``itls``, ``errors``), and how requests were sent (``request_rate``, ``burstiness``, ``max_concurrency``).
It does not give the arrival times of the requests nor the batches the server ran.

How the calibration works (:func:`calibrate_vllm`):

1. :func:`read_vllm_benchmark` reads and checks the file (one :class:`~workbench.errors.DatasetError` naming
   the key and the request for anything malformed; failed requests are counted and left out).
2. :func:`benchmark_trace` rebuilds the workload: the measured lengths in the measured order, arrivals drawn as
   vLLM draws them (all at t = 0 for ``request_rate = inf``, else gamma inter-arrival gaps with shape
   ``burstiness`` and mean ``1 / request_rate``) from a named seed stream. With ``max_concurrency`` the client
   holds requests back: the instance admits at most that many at once and TTFT is counted from admission
   (:func:`simulate_benchmark`).
3. The roofline's efficiency parameters (default ``mfu``, ``mbu``, ``overhead_s``) are fitted so the
   simulated TTFT and TPOT percentiles (p50 and p90 of each; TPOT as vLLM defines it, per request:
   ``(e2e - ttft) / (output - 1)``) match the measured ones (Nelder-Mead on log parameters; the objective is
   the sum of squared log ratios).
4. The result is a :class:`~workbench.hardware.calibrated.CalibratedModel` named by the user, with the fit
   (measured / default / calibrated metrics), the source (file name, SHA-256, model id) and the domain the
   replayed benchmark exercised (largest decode batch, most tokens in one iteration, longest sequence):
   outside it the model raises instead of extrapolating. Save it with ``.save()`` and load it by name with
   :func:`workbench.hardware.calibrated.calibrated_model`.

What is and is not checked: from a benchmark written by the simulator itself (300 requests at 8/s on
Llama-3.1-8B / H100 with a "true" roofline of ``mfu=0.35, mbu=0.55, overhead_s=4 ms``), the fit reproduces
the six percentiles within 2.4 % (the default roofline is 41-58 % low) and the true iteration times within
3.6 % over the domain the benchmark exercised (decode batches up to 43, prompts up to 3,763 tokens); on
other draws of 300 requests at the same rate (3 draws) it predicts TPOT percentiles within 6 %, the median
TTFT within 5 % and the TTFT p10 / p90 within 11 % (queueing tails amplify small step errors). The
parameters themselves are not identifiable from latencies (``mbu=0.47, overhead_s=2.2 ms`` fits as well as
the truth): the same workload at 12/s, whose batches leave the domain, is off by 3-11 % with the unchecked
roofline -- which is why :class:`CalibratedModel` raises there. No real vLLM benchmark file is shipped with the
workbench, so the error against a real server is what :attr:`CalibratedModel.fit` reports for the user's own
file, on the user's own workload (in sample). A Prometheus ``/metrics`` dump is not read: one scrape holds
histograms with coarse buckets and no per-request pairing of lengths and latencies, too little to replay a
workload.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import polars as pl

from workbench.config import as_int
from workbench.errors import ConfigError, DatasetError
from workbench.hardware.calibrated import CalibratedModel, Domain
from workbench.hardware.catalog import GPU, ModelSpec
from workbench.hardware.perf import Batch
from workbench.hardware.roofline import RooflineModel
from workbench.seeds import Streams

#: Roofline parameters fitted by default, with their bounds.
CALIBRATION_BOUNDS: dict[str, tuple[float, float]] = {
    "mfu": (0.02, 1.0),
    "mbu": (0.05, 1.0),
    "overhead_s": (1e-5, 0.1),
    "seq_overhead_s": (1e-7, 1e-3),
    "attn_mfu": (0.02, 1.0),
    "step_floor_s": (1e-5, 0.2),
}
#: Metrics matched: (column of the per-request table, quantile).
METRICS: tuple[tuple[str, float], ...] = tuple((c, q) for c in ("ttft_s", "tpot_s") for q in (0.1, 0.5, 0.9))
#: Fewest successful requests a calibration accepts.
MIN_REQUESTS = 20
_DETAIL = ("input_lens", "output_lens", "ttfts", "itls")


@dataclass(frozen=True)
class VllmBenchmark:
    """One ``vllm bench serve`` result.

    Attributes
    ----------
    requests
        Successful requests in the file's order: ``prompt_tokens, output_tokens, ttft_s, tpot_s`` (``tpot_s``
        null for single-token outputs).
    request_rate
        Requests per second the client aimed at (``inf``: all at once).
    burstiness
        Shape of vLLM's gamma inter-arrival gaps (1: Poisson).
    max_concurrency
        Most requests in flight the client allowed (``None``: no limit).
    failed
        Requests the file reports as failed (left out).
    source
        ``file``, ``sha256``, ``model_id`` (when present) of the file.
    """

    requests: pl.DataFrame
    request_rate: float
    burstiness: float
    max_concurrency: int | None
    failed: int
    source: dict[str, Any]

    def metrics(self) -> dict[str, float]:
        """Return the measured percentiles matched by the calibration (:data:`METRICS`)."""
        return benchmark_metrics(self.requests)


def _number(raw: Mapping[str, Any], key: str, default: float, where: str) -> float:
    value = raw.get(key, default)
    if value is None:
        return default
    if isinstance(value, str) and value.strip().lower() in ("inf", "infinity"):
        return math.inf
    try:
        out = float(value)
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"{where}: {key} must be a number, got {value!r}") from exc
    if not out > 0:
        raise DatasetError(f"{where}: {key} must be > 0, got {value!r}")
    return out


def read_vllm_benchmark(path: str | Path) -> VllmBenchmark:
    """Read a ``vllm bench serve --save-result --save-detailed`` JSON file (see the module docstring).

    Parameters
    ----------
    path
        The JSON file.

    Returns
    -------
    VllmBenchmark
        The successful requests and the client's settings (rate, burstiness, concurrency).

    Raises
    ------
    DatasetError
        Unreadable file, not JSON, or no per-request detail.
    """
    path = Path(path)
    where = str(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise DatasetError(f"cannot read vLLM benchmark file {where}: {exc}") from exc
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{where}: not JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise DatasetError(f"{where}: a vLLM benchmark result is a JSON object, got {type(raw).__name__}")
    missing = [k for k in _DETAIL if k not in raw]
    if missing:
        raise DatasetError(
            f"{where}: no per-request detail ({', '.join(missing)} missing): run `vllm bench serve` with "
            "--save-result --save-detailed (a summary alone cannot be replayed)"
        )
    n = len(raw["input_lens"])
    for key in (*_DETAIL, "errors"):
        if key in raw and (not isinstance(raw[key], list) or len(raw[key]) != n):
            raise DatasetError(f"{where}: {key} must be a list of {n} entries (one per request, as input_lens)")
    errors = raw.get("errors") or [""] * n
    rows = []
    failed = 0
    for i in range(n):
        prompt, output, ttft, itl = (raw[k][i] for k in _DETAIL)
        if errors[i] or not ttft or not output:
            failed += 1
            continue
        bad = None
        if not isinstance(prompt, int) or prompt < 1:
            bad = f"input_lens {prompt!r}"
        elif not isinstance(output, int) or output < 1:
            bad = f"output_lens {output!r}"
        elif not isinstance(ttft, (int, float)) or not 0 < ttft < math.inf:
            bad = f"ttfts {ttft!r}"
        elif not isinstance(itl, list) or not all(
            isinstance(x, (int, float)) and 0 <= x < math.inf for x in itl
        ):
            bad = "itls (a list of seconds >= 0)"
        if bad:
            raise DatasetError(f"{where}: request {i}: {bad}")
        tpot = float(sum(itl)) / (output - 1) if output > 1 and itl else None
        rows.append((int(prompt), int(output), float(ttft), tpot))
    if len(rows) < MIN_REQUESTS:
        raise DatasetError(
            f"{where}: {len(rows)} successful requests ({failed} failed); a calibration needs {MIN_REQUESTS}"
        )
    requests = pl.DataFrame(
        rows,
        orient="row",
        schema={
            "prompt_tokens": pl.Int64,
            "output_tokens": pl.Int64,
            "ttft_s": pl.Float64,
            "tpot_s": pl.Float64,
        },
    )
    concurrency = raw.get("max_concurrency")
    if concurrency is not None and (not isinstance(concurrency, int) or concurrency < 1):
        raise DatasetError(f"{where}: max_concurrency must be a positive integer or null, got {concurrency!r}")
    source = {"file": path.name, "sha256": hashlib.sha256(text.encode()).hexdigest()}
    for key in ("model_id", "backend", "date"):
        if isinstance(raw.get(key), str):
            source[key] = raw[key]
    return VllmBenchmark(
        requests=requests,
        request_rate=_number(raw, "request_rate", math.inf, where),
        burstiness=_number(raw, "burstiness", 1.0, where),
        max_concurrency=concurrency,
        failed=failed,
        source=source,
    )


def benchmark_metrics(requests: pl.DataFrame) -> dict[str, float]:
    """Percentiles of :data:`METRICS` of a per-request table (``ttft_s``, ``tpot_s``), as ``"ttft_s@0.5"``."""
    out = {}
    for col, q in METRICS:
        values = requests[col].drop_nulls()
        if values.len():
            out[f"{col}@{q}"] = float(values.quantile(q, "linear"))  # type: ignore[arg-type]
    return out


def benchmark_trace(bench: VllmBenchmark, seed: int = 0) -> pl.DataFrame:
    """Return the benchmark's workload as a trace.

    Measured lengths; arrivals drawn as ``vllm bench serve`` does.
    """
    n = bench.requests.height
    if math.isinf(bench.request_rate):
        arrivals = np.zeros(n)
    else:
        shape = bench.burstiness
        gaps = Streams(seed).rng("vllm_bench/arrivals").gamma(shape, 1.0 / (bench.request_rate * shape), n)
        arrivals = np.cumsum(gaps) - gaps[0]
    return pl.DataFrame(
        {
            "request_id": np.arange(n, dtype=np.uint64),
            "arrival_s": arrivals,
            "prompt_tokens": bench.requests["prompt_tokens"].cast(pl.Int32),
            "output_tokens": bench.requests["output_tokens"].cast(pl.Int32),
        }
    )


class _Extent:
    """Pass-through performance model keeping the largest batch shapes the simulator times."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seqs = 0
        self.tokens = 0

    def iteration_time(self, batch: Batch) -> float:
        self.seqs = max(self.seqs, batch.decode_seqs)
        self.tokens = max(self.tokens, batch.prefill_tokens + batch.decode_seqs)
        return self.inner.iteration_time(batch)

    def decode_run_time(self, decode_seqs: int, decode_context: int, iterations: int) -> float:
        if iterations > 0:
            self.seqs = max(self.seqs, decode_seqs)
            self.tokens = max(self.tokens, decode_seqs)
        return self.inner.decode_run_time(decode_seqs, decode_context, iterations)

    def decode_iterations_within(self, decode_seqs: int, decode_context: int, duration: float) -> int:
        self.seqs = max(self.seqs, decode_seqs)
        self.tokens = max(self.tokens, decode_seqs)
        return self.inner.decode_iterations_within(decode_seqs, decode_context, duration)


def _instance(bench: VllmBenchmark, gpu: str, model: str, tp: int, perf: Any, scheduler: Any, kv: int | None):
    from workbench.sim.config import InstanceConfig, SchedulerConfig

    sched = scheduler if scheduler is not None else SchedulerConfig(prefix_caching=False)
    if bench.max_concurrency is not None and bench.max_concurrency < sched.max_num_seqs:
        from dataclasses import replace

        cap = bench.max_concurrency
        sched = replace(sched, max_num_seqs=cap, max_num_batched_tokens=max(sched.max_num_batched_tokens, cap))
    return InstanceConfig(gpu=gpu, model=model, tp=tp, scheduler=sched, kv_capacity_tokens=kv, perf=perf)


def simulate_benchmark(
    bench: VllmBenchmark,
    gpu: str,
    model: str,
    tp: int = 1,
    *,
    perf: Any = None,
    scheduler: Any = None,
    kv_capacity_tokens: int | None = None,
    seed: int = 0,
) -> pl.DataFrame:
    """Return the benchmark replayed on one simulated instance.

    Per request ``prompt_tokens, output_tokens, ttft_s, tpot_s`` as the vLLM client would measure them (TTFT
    from admission when ``max_concurrency`` is set).

    ``perf`` defaults to the roofline of ``gpu``/``model``/``tp``; ``scheduler`` to
    :class:`~workbench.sim.SchedulerConfig` with prefix caching off (the benchmark's prompts are random).
    """
    from workbench.sim import simulate

    perf = RooflineModel(gpu, model, tp) if perf is None else perf
    cfg = _instance(bench, gpu, model, tp, perf, scheduler, kv_capacity_tokens)
    out = simulate(benchmark_trace(bench, seed), cfg, record_segments=False, progress=False).requests
    rejected = int(out["rejected"].sum())
    if rejected:
        reasons = out.filter(pl.col("rejected"))["reject_reason"].unique().to_list()
        raise ConfigError(
            f"{rejected} of the benchmark's requests were rejected by the simulated instance ({reasons}): "
            "check max_num_batched_tokens / the KV capacity against the benchmark's prompt lengths"
        )
    start = pl.col("admitted_s") if bench.max_concurrency is not None else pl.col("arrival_s")
    return out.sort("request_id").select(
        "prompt_tokens",
        "output_tokens",
        (pl.col("first_token_s") - start).alias("ttft_s"),
        pl.when(pl.col("output_tokens") > 1)
        .then((pl.col("finish_s") - pl.col("first_token_s")) / (pl.col("output_tokens") - 1))
        .alias("tpot_s"),
    )


def _log_error(measured: Mapping[str, float], simulated: Mapping[str, float]) -> np.ndarray:
    return np.array([math.log(simulated[k] / measured[k]) for k in measured if measured[k] > 0])


def calibrate_vllm(
    bench: VllmBenchmark | str | Path,
    gpu: str,
    model: str,
    tp: int = 1,
    *,
    name: str,
    params: Sequence[str] = ("mfu", "mbu", "overhead_s"),
    scheduler: Any = None,
    kv_capacity_tokens: int | None = None,
    seed: int = 0,
    max_evaluations: int = 120,
) -> CalibratedModel:
    """Fit the roofline of ``gpu``/``model``/``tp`` to a vLLM benchmark (module docstring).

    Parameters
    ----------
    bench
        A :class:`VllmBenchmark` or the path of its JSON file.
    gpu, model, tp
        The benchmarked configuration (hardware catalog names); ``scheduler`` and ``kv_capacity_tokens`` as the
        server ran (default :class:`~workbench.sim.SchedulerConfig` without prefix caching, the KV capacity the
        memory model derives).
    name
        Name of the calibrated model.
    params
        Roofline parameters to fit (keys of :data:`CALIBRATION_BOUNDS`).
    seed
        Seed of the arrival draw (``request_rate < inf``).
    max_evaluations
        Simulations the optimiser may run.

    Returns
    -------
    CalibratedModel
        With ``fit`` = ``{metric: {"measured", "default", "calibrated", "error_pct"}}``.
    """
    from scipy.optimize import minimize

    if not isinstance(bench, VllmBenchmark):
        bench = read_vllm_benchmark(bench)
    unknown = [p for p in params if p not in CALIBRATION_BOUNDS]
    if unknown or not params:
        raise ConfigError(f"params must be among {sorted(CALIBRATION_BOUNDS)}; got {list(params)}")
    measured = bench.metrics()
    default = RooflineModel(gpu, model, tp)
    lo = np.log([CALIBRATION_BOUNDS[p][0] for p in params])
    hi = np.log([CALIBRATION_BOUNDS[p][1] for p in params])

    def values(x: np.ndarray) -> dict[str, float]:
        return {p: float(v) for p, v in zip(params, np.exp(np.clip(x, lo, hi)), strict=True)}

    def run(perf: Any) -> dict[str, float]:
        sim = simulate_benchmark(
            bench,
            gpu,
            model,
            tp,
            perf=perf,
            scheduler=scheduler,
            kv_capacity_tokens=kv_capacity_tokens,
            seed=seed,
        )
        return benchmark_metrics(sim)

    def objective(x: np.ndarray) -> float:
        err = _log_error(measured, run(RooflineModel(gpu, model, tp, **values(x))))
        return float(err @ err) + float(np.sum(np.clip(x - hi, 0, None) ** 2 + np.clip(lo - x, 0, None) ** 2))

    start = np.log(
        [max(CALIBRATION_BOUNDS[p][0], min(CALIBRATION_BOUNDS[p][1], _initial(default, p))) for p in params]
    )
    res = minimize(
        objective,
        start,
        method="Nelder-Mead",
        options={
            "maxfev": int(max_evaluations),
            "xatol": 1e-3,
            "fatol": 1e-6,
            "initial_simplex": _simplex(start),
        },
    )
    fitted = values(res.x)
    extent = _Extent(RooflineModel(gpu, model, tp, **fitted))
    calibrated = run(extent)
    before = run(default)
    longest = as_int((bench.requests["prompt_tokens"] + bench.requests["output_tokens"]).max())
    fit = {
        k: {
            "measured": measured[k],
            "default": before[k],
            "calibrated": calibrated[k],
            "error_pct": (calibrated[k] / measured[k] - 1) * 100,
        }
        for k in measured
    }
    return CalibratedModel(
        name=name,
        gpu=cast(GPU, default.gpu).name,  # RooflineModel resolves names to specs
        model=cast(ModelSpec, default.model).name,
        tp=int(tp),
        params=fitted,
        domain=Domain(max(extent.seqs, 1), max(extent.tokens, 1), longest),
        source={**bench.source, "requests": bench.requests.height, "failed": bench.failed, "seed": seed},
        fit=fit,
    )


def _initial(model: RooflineModel, param: str) -> float:
    value = getattr(model, param, None)
    if value is None or value <= 0:
        return math.sqrt(CALIBRATION_BOUNDS[param][0] * CALIBRATION_BOUNDS[param][1])
    return float(value)


def _simplex(start: np.ndarray) -> np.ndarray:
    """Return the initial simplex: the start and one vertex per parameter at x 1.5 (log step 0.4)."""
    return np.vstack([start, *[start + 0.4 * np.eye(len(start))[i] for i in range(len(start))]])


def write_vllm_benchmark(
    requests: pl.DataFrame,
    path: str | Path,
    *,
    request_rate: float = math.inf,
    burstiness: float = 1.0,
    max_concurrency: int | None = None,
    model_id: str = "",
) -> Path:
    """Write a per-request table in the layout of ``vllm bench serve --save-result --save-detailed``.

    The table holds ``prompt_tokens, output_tokens, ttft_s, tpot_s``; each request's inter-token gaps all equal
    its TPOT. For tests and examples, and for a user's own measurements collected elsewhere.
    """
    outs = requests["output_tokens"].to_list()
    tpots = requests["tpot_s"].fill_null(0.0).to_list()
    data = {
        "backend": "vllm",
        "model_id": model_id,
        "num_prompts": requests.height,
        "request_rate": "inf" if math.isinf(request_rate) else request_rate,
        "burstiness": burstiness,
        "max_concurrency": max_concurrency,
        "completed": requests.height,
        "input_lens": requests["prompt_tokens"].to_list(),
        "output_lens": outs,
        "ttfts": requests["ttft_s"].to_list(),
        "itls": [[t] * (o - 1) for o, t in zip(outs, tpots, strict=True)],
        "errors": [""] * requests.height,
    }
    path = Path(path)
    path.write_text(json.dumps(data))
    return path


__all__ = [
    "CALIBRATION_BOUNDS",
    "METRICS",
    "VllmBenchmark",
    "benchmark_metrics",
    "benchmark_trace",
    "calibrate_vllm",
    "read_vllm_benchmark",
    "simulate_benchmark",
    "write_vllm_benchmark",
]
