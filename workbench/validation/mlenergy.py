"""End-to-end validation against the ML.ENERGY v3 runs: simulate each run as a new user would, compare ITLs.

The ML.ENERGY Benchmark v3 (``mlenergy_leaderboard_v3_llm_runs.csv``) measured vLLM serving on H100 and B200:
per run a model, a task, a GPU count (``--tensor-parallel-size``; expert parallelism for most MoE models),
a batch cap ``max_num_seqs`` and the median / P90 inter-token latency (ITL). :func:`simulate_mlenergy_run`
repeats such a run as a user of the workbench would, with nothing learned from the file:

- the task's request count (:data:`TASK_REQUESTS`, from the benchmark's ``configs/vllm/<task>/benchmark.yaml``)
  times the repeats the benchmark uses to keep larger batches full (:func:`mlenergy_requests`), all sent at
  t = 0 (``request_rate = inf``);
- output lengths gamma-distributed (shape :data:`OUTPUT_SHAPE`) with the run's mean ``avg_output_len``, capped
  at the task's ``max_output_tokens``; prompts of the package's nominal task lengths
  (:data:`workbench.power.classes.TASK_PROMPT_TOKENS`, APPROX: ML.ENERGY publishes no prompt lengths);
- one instance with ``tp = num_gpus``, ``max_num_seqs`` and ``max_num_batched_tokens = 8192`` (the benchmark's
  vLLM settings), chunked prefill, no prefix cache, the default roofline.

ITL samples are the iteration times of the simulated steps, one per decoding sequence (a token that shares its
step with a prefill chunk waits for the chunk, as in vLLM). With every request present at t = 0 the
scheduler's decisions depend on token counts only, not on times, so the sequence of batch shapes does not
depend on the performance model: :func:`record_steps` simulates a run once and keeps its shapes, and
:func:`step_itl` times them under any other model in one vectorised pass (the test suite checks that this
equals a fresh simulation). That is what makes learning corrections affordable.

Corrections learned from the file (:data:`CORRECTION_PARAMS`: roofline parameters per GPU, e.g. a
per-sequence cost per decode step and a step-time floor) are fitted and scored **out of fold, grouped by
model**: :func:`held_out_errors` splits the models at random into folds, fits on the others, predicts the
held-out models' runs, and repeats the split; errors are reported as mean and spread over the repeats.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
from scipy.optimize import least_squares

from workbench.config import as_float
from workbench.errors import ConfigError
from workbench.hardware import RooflineModel, gpu, model
from workbench.hardware.perf import Batch
from workbench.power.classes import TASK_PROMPT_TOKENS
from workbench.power.fitting import load_runs
from workbench.seeds import Streams

if TYPE_CHECKING:
    from workbench.sim.config import InstanceConfig

#: Requests per run of each task (ML.ENERGY ``configs/vllm/<task>/benchmark.yaml``, ``num_requests``).
TASK_REQUESTS = {
    "gpqa": 198,
    "lm-arena-chat": 1024,
    "sourcegraph-fim": 1024,
    "image-chat": 1024,
    "video-chat": 512,
}
#: Output cap of each task (the same files, ``max_output_tokens``).
TASK_MAX_OUTPUT = {
    "gpqa": 32768,
    "lm-arena-chat": 4096,
    "sourcegraph-fim": 2048,
    "image-chat": 4096,
    "video-chat": 4096,
}
#: Gamma shape of the simulated output lengths (coefficient of variation ~0.71; APPROX, not fitted).
OUTPUT_SHAPE = 2.0
#: vLLM settings of every ML.ENERGY run (``monolithic.config.yaml``).
MAX_BATCHED_TOKENS = 8192
#: Text-only tasks (the issue's "text" runs); image and video chat prompts are not known in tokens.
TEXT_TASKS = ("gpqa", "lm-arena-chat", "sourcegraph-fim")
#: Corrections that can be learned, per GPU, with (lower, upper, start, scale). Roofline parameters apply to
#: every run of the GPU; ``moe_layer_s`` to its MoE runs; ``ep_layer_s`` adds to it for runs with expert
#: parallelism over several GPUs (dispatch/combine); ``fp8_weight_bytes`` is the effective bytes per FP8 weight
#: (1 = FP8 halves the weight traffic; 2 = it saves nothing); ``step_floor_s`` is learned per task.
CORRECTION_PARAMS: dict[str, tuple[float, float, float, float]] = {
    "seq_overhead_s": (0.0, 5e-4, 2e-5, 1e-5),
    "overhead_s": (0.0, 0.02, 1e-3, 1e-3),
    "mbu": (0.2, 1.0, 0.75, 0.1),
    "moe_layer_s": (0.0, 2e-3, 2e-5, 2e-5),
    "ep_layer_s": (0.0, 2e-3, 2e-5, 2e-5),
    "fp8_weight_bytes": (1.0, 2.5, 1.2, 0.1),
    "step_floor_s": (0.0, 0.08, 1e-3, 1e-3),
}
#: Rows of each run's recorded shapes used while fitting (drawn with probability proportional to the ITL samples
#: they stand for; the median of the draw estimates the run's median ITL). Predictions use every row.
FIT_SAMPLES = 64
#: Points per decode run when its shapes are kept (a run of k identical-batch iterations whose context grows).
RUN_POINTS = 4


def mlenergy_requests(task: str, max_num_seqs: int) -> int:
    """Return the request count of a run: the task's count times the repeats that keep ``max_num_seqs`` busy.

    The benchmark repeats its request list for large batch caps (``num_request_repeats`` in each model's
    ``sweeps.yaml``); the repeats vary by model. The rule here, ``ceil(1.5 max_num_seqs / requests)``, matches
    the GPQA defaults (1 up to 128, 2 at 192-256, 3 at 384) and gives at least 1.5 batches of requests.

    Parameters
    ----------
    task
        ML.ENERGY task (a key of :data:`TASK_REQUESTS`).
    max_num_seqs
        The run's batch cap.

    Returns
    -------
    int
        Requests the benchmark sends.
    """
    if task not in TASK_REQUESTS:
        raise ConfigError(f"unknown ML.ENERGY task {task!r}; choose one of: {', '.join(TASK_REQUESTS)}")
    n = TASK_REQUESTS[task]
    return n * max(1, math.ceil(1.5 * max_num_seqs / n))


def mlenergy_trace(run: Mapping, seed: int = 0) -> pl.DataFrame:
    """Return the simulated workload of one run (canonical request columns, every arrival at t = 0)."""
    task = run["task"]
    n = mlenergy_requests(task, int(run["max_num_seqs"]))
    rng = Streams(seed).rng("mlenergy/output_tokens")
    mean = float(run["avg_output_len"])
    out = np.clip(np.round(rng.gamma(OUTPUT_SHAPE, mean / OUTPUT_SHAPE, n)), 1, TASK_MAX_OUTPUT[task])
    return pl.DataFrame(
        {
            "request_id": np.arange(n, dtype=np.uint64),
            "arrival_s": np.zeros(n),
            "prompt_tokens": np.full(n, int(TASK_PROMPT_TOKENS[task]), dtype=np.int32),
            "output_tokens": out.astype(np.int32),
        }
    )


def _instance(run: Mapping, perf) -> InstanceConfig:
    from workbench.sim.config import InstanceConfig, SchedulerConfig

    cap = int(run["max_num_seqs"])
    sched = SchedulerConfig(
        max_num_seqs=cap, max_num_batched_tokens=max(MAX_BATCHED_TOKENS, cap), prefix_caching=False
    )
    return InstanceConfig(
        gpu=run["gpu_model"], model=run["model_id"], tp=int(run["num_gpus"]), scheduler=sched, perf=perf
    )


class _Recorder:
    """A performance model that passes through and keeps every batch shape the simulator times."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.rows: list[tuple[int, float, int, int, int]] = []

    def iteration_time(self, batch: Batch) -> float:
        b = batch
        self.rows.append((b.prefill_tokens, b.prefill_context, b.decode_seqs, b.decode_context, 1))
        return self.inner.iteration_time(batch)

    def decode_run_time(self, decode_seqs: int, decode_context: int, iterations: int) -> float:
        if iterations > 0 and decode_seqs > 0:
            self.rows.append((0, 0.0, decode_seqs, decode_context, iterations))
        return self.inner.decode_run_time(decode_seqs, decode_context, iterations)

    def decode_iterations_within(self, decode_seqs: int, decode_context: int, duration: float) -> int:
        raise ConfigError("a decode run was cut: the recorded shapes assume every request arrives at t = 0")


def record_steps(run: Mapping, seed: int = 0, params: Mapping[str, float] | None = None) -> pl.DataFrame:
    """Batch shapes of a run's simulation (they do not depend on the performance model; module docstring).

    Returns
    -------
    polars.DataFrame
        ``prefill_tokens, prefill_context, decode_seqs, decode_context, weight``: one row per prefill step and
        :data:`RUN_POINTS` rows per decode run (contexts spread over the run, ``weight`` = iterations each
        row stands for). ``params`` (roofline parameters of the simulated model) change the times, not these.
    """
    from workbench.sim.simulation import simulate

    rec = _Recorder(_perf(run, params or {}))
    simulate(mlenergy_trace(run, seed), _instance(run, rec), progress=False, record_segments=False)
    return _steps_from(rec.rows)


def _weighted_quantiles(values: np.ndarray, weights: np.ndarray, qs: Sequence[float]) -> list[float]:
    order = np.argsort(values)
    cw = np.cumsum(weights[order])
    return [float(values[order][min(np.searchsorted(cw, q * cw[-1]), values.size - 1)]) for q in qs]


def step_itl(steps: pl.DataFrame, perf: RooflineModel) -> dict[str, float]:
    """Median and P90 ITL (ms) and output throughput (tokens/s) of recorded ``steps`` under ``perf``."""
    cols = [steps[c].to_numpy() for c in ("prefill_tokens", "prefill_context", "decode_seqs", "decode_context")]
    t = perf.iteration_times(*cols)
    w = cols[2] * steps["weight"].to_numpy()
    keep = w > 0
    med, p90 = _weighted_quantiles(t[keep], w[keep], (0.5, 0.9))
    busy = float(np.sum(t * steps["weight"].to_numpy()))
    return {"median_itl_ms": med * 1e3, "p90_itl_ms": p90 * 1e3, "tokens_per_s": float(w.sum()) / busy}


def simulate_mlenergy_run(run: Mapping, params: Mapping[str, float] | None = None, *, seed: int = 0) -> dict:
    """Simulate one ML.ENERGY run (a row of the runs table) as a new user would; measured next to predicted.

    Parameters
    ----------
    run
        A row of :func:`workbench.power.load_runs` (``task``, ``model_id``, ``gpu_model``, ``num_gpus``,
        ``max_num_seqs``, ``avg_output_len``, ``median_itl_ms``, ``p90_itl_ms``).
    params
        :class:`~workbench.hardware.RooflineModel` parameters (default: its documented defaults).
    seed
        Seed of the output-length draw.

    Returns
    -------
    dict
        ``measured_median_itl_ms``, ``median_itl_ms``, ``measured_p90_itl_ms``, ``p90_itl_ms``,
        ``median_itl_error`` (predicted / measured - 1), ``requests``, ``makespan_s`` and ``tokens_per_s``.
    """
    from workbench.sim.simulation import simulate

    perf = RooflineModel(run["gpu_model"], run["model_id"], int(run["num_gpus"]), **dict(params or {}))
    rec = _Recorder(perf)
    trace = mlenergy_trace(run, seed)
    res = simulate(trace, _instance(run, rec), progress=False, record_segments=False)
    steps = _steps_from(rec.rows)
    itl = step_itl(steps, perf)
    makespan = as_float(res.requests["finish_s"].max())
    return {
        "measured_median_itl_ms": float(run["median_itl_ms"]),
        "median_itl_ms": itl["median_itl_ms"],
        "measured_p90_itl_ms": float(run["p90_itl_ms"]),
        "p90_itl_ms": itl["p90_itl_ms"],
        "median_itl_error": itl["median_itl_ms"] / float(run["median_itl_ms"]) - 1.0,
        "requests": trace.height,
        "makespan_s": makespan,
        "tokens_per_s": float(res.requests["output_tokens"].sum()) / makespan,
    }


def _steps_from(rows: list[tuple]) -> pl.DataFrame:
    raw = np.array(rows, dtype=float).reshape(-1, 5)
    p, pc, d, c, k = raw.T
    m = np.minimum(k, RUN_POINTS)
    reps = m.astype(int)
    idx = np.repeat(np.arange(raw.shape[0]), reps)
    j = np.arange(idx.size) - np.repeat(np.cumsum(reps) - reps, reps)
    offset = np.floor(k[idx] * (j + 0.5) / m[idx])
    return pl.DataFrame(
        {
            "prefill_tokens": p[idx],
            "prefill_context": pc[idx],
            "decode_seqs": d[idx],
            "decode_context": c[idx] + offset * d[idx],
            "weight": k[idx] / m[idx],
        }
    )


# ---------------------------------------------------------------------------------------------- many runs
@dataclass(frozen=True)
class RunSteps:
    """The ML.ENERGY runs and the recorded batch shapes of each (:func:`record_all`).

    ``runs`` is :func:`workbench.power.load_runs` with a ``run`` index column; ``steps[run]`` is the
    :func:`record_steps` table of that run as a ``(rows, 5)`` array.
    """

    runs: pl.DataFrame
    steps: dict[int, np.ndarray]


def record_all(runs: pl.DataFrame | None = None, *, seed: int = 0, n_jobs: int = 1) -> RunSteps:
    """:func:`record_steps` of every run (``n_jobs`` processes; the whole file takes ~3 CPU-minutes)."""
    from joblib import Parallel, delayed

    runs = load_runs() if runs is None else runs
    if "run" not in runs.columns:
        runs = runs.with_row_index("run")
    rows = list(runs.iter_rows(named=True))
    arrays = Parallel(n_jobs=n_jobs)(delayed(_record_array)(r, seed) for r in rows)
    return RunSteps(runs, {int(r["run"]): a for r, a in zip(rows, arrays, strict=True)})


def _record_array(run: Mapping, seed: int) -> np.ndarray:
    return record_steps(run, seed).to_numpy()


_ROOFLINE_KEYS = ("seq_overhead_s", "overhead_s", "mbu", "mfu", "step_floor_s")


def _perf(run: Mapping, params: Mapping[str, float]) -> RooflineModel:
    """Return the roofline of ``run`` with corrections ``params``.

    The keys are those of :data:`CORRECTION_PARAMS`; a task-specific value ``"step_floor_s@<task>"`` wins over
    ``"step_floor_s"``.
    """
    kw = {k: float(v) for k, v in params.items() if k in _ROOFLINE_KEYS}
    floor = params.get(f"step_floor_s@{run['task']}")
    if floor is not None:
        kw["step_floor_s"] = float(floor)
    spec = model(run["model_id"])
    if spec.is_moe:
        ep = int(run.get("expert_parallel", 1) or 1) > 1 and int(run["num_gpus"]) > 1
        extra = float(params.get("ep_layer_s", 0.0)) if ep else 0.0
        kw["moe_layer_s"] = float(params.get("moe_layer_s", 0.0)) + extra
    if "fp8_weight_bytes" in params and spec.linear_weight_bytes == 1.0:
        b = float(params["fp8_weight_bytes"])
        expert = b if spec.expert_dtype_bytes else 0.0
        spec = dataclasses.replace(spec, weight_dtype_bytes=b, expert_dtype_bytes=expert)
    return RooflineModel(run["gpu_model"], spec, int(run["num_gpus"]), **kw)


def _median_itl_ms(steps: np.ndarray, perf: RooflineModel) -> float:
    t = perf.iteration_times(steps[:, 0], steps[:, 1], steps[:, 2], steps[:, 3])
    w = steps[:, 2] * steps[:, 4]
    keep = w > 0
    return _weighted_quantiles(t[keep], w[keep], (0.5,))[0] * 1e3


def predict_runs(data: RunSteps, params: Mapping[str, Mapping[str, float]] | None = None) -> np.ndarray:
    """Predicted median ITL (ms) of every run of ``data`` with roofline ``params`` per GPU table name."""
    params = params or {}
    out = np.empty(data.runs.height)
    for i, r in enumerate(data.runs.iter_rows(named=True)):
        out[i] = _median_itl_ms(data.steps[int(r["run"])], _perf(r, params.get(gpu(r["gpu_model"]).name, {})))
    return out


def _sampled(data: RunSteps, n: int = FIT_SAMPLES, seed: int = 0) -> RunSteps:
    """Resample ``data``: each run's rows drawn ``n`` times, with probability proportional to ITL samples."""
    rng = Streams(seed).rng("validation/fit_samples")
    out = {}
    for run, a in data.steps.items():
        w = a[:, 2] * a[:, 4]
        if w.sum() <= 0:
            out[run] = a
            continue
        rows = a[rng.choice(a.shape[0], size=n, p=w / w.sum())].copy()
        rows[:, 4] = 1.0 / np.maximum(rows[:, 2], 1.0)  # every draw one ITL sample
        out[run] = rows
    return RunSteps(data.runs, out)


def _names_for(names: Sequence[str], runs: pl.DataFrame) -> list[str]:
    """Expand ``step_floor_s`` into one floor per task of ``runs``; drop MoE/FP8 terms no run can learn."""
    out = []
    specs = {m: model(m) for m in runs["model_id"].unique().to_list()}
    moe = [m for m, s in specs.items() if s.is_moe]
    for n in names:
        if n == "step_floor_s":
            out += [f"step_floor_s@{t}" for t in sorted(runs["task"].unique().to_list())]
        elif n == "moe_layer_s" and not moe:
            continue
        elif n == "ep_layer_s" and not runs.filter(pl.col("model_id").is_in(moe), pl.col("num_gpus") > 1,
                                                    pl.col("expert_parallel") > 1).height:  # fmt: skip
            continue
        elif n == "fp8_weight_bytes" and not any(s.linear_weight_bytes == 1.0 for s in specs.values()):
            continue
        else:
            out.append(n)
    return out


def fit_corrections(
    data: RunSteps, names: Sequence[str] = tuple(CORRECTION_PARAMS), *, seed: int = 0
) -> dict[str, dict[str, float]]:
    """Corrections ``names`` per GPU that minimise the robust log error of the median ITL of ``data``.

    Each GPU is fitted on its own runs (soft-L1 loss on ``log(predicted / measured)``, scale 0.1), from the
    starting values of :data:`CORRECTION_PARAMS` within its bounds, on :data:`FIT_SAMPLES` rows per run.
    """
    unknown = set(names) - set(CORRECTION_PARAMS)
    if unknown:
        raise ConfigError(
            f"unknown correction parameter(s) {sorted(unknown)}; choose from {list(CORRECTION_PARAMS)}"
        )
    sampled = _sampled(data, seed=seed)
    out: dict[str, dict[str, float]] = {}
    names_of = {g: gpu(g).name for g in data.runs["gpu_model"].unique().to_list()}
    runs = data.runs.with_columns(_gpu=pl.col("gpu_model").replace_strict(names_of, return_dtype=pl.Utf8))
    for (name,), group in runs.group_by("_gpu", maintain_order=True):
        rows = list(group.iter_rows(named=True))
        keys = _names_for(names, group)
        base = [CORRECTION_PARAMS[k.split("@")[0]] for k in keys]
        measured = np.log(np.array([r["median_itl_ms"] for r in rows]))
        start = [b[2] for b in base]
        for i, k in enumerate(keys):  # a floor starts active: 0.8 x the task's median ITL at its smallest batch
            if k.startswith("step_floor_s@"):
                task = group.filter(pl.col("task") == k.split("@")[1])
                small = task.filter(pl.col("max_num_seqs") == task["max_num_seqs"].min())["median_itl_ms"]
                start[i] = float(np.clip(0.8e-3 * as_float(small.median()), base[i][0], base[i][1]))

        def resid(x: np.ndarray, rows=rows, measured=measured, keys=keys) -> np.ndarray:
            p = dict(zip(keys, x.tolist(), strict=True))
            pred = [_median_itl_ms(sampled.steps[int(r["run"])], _perf(r, p)) for r in rows]
            return np.log(pred) - measured

        sol = least_squares(
            resid,
            start,
            bounds=([b[0] for b in base], [b[1] for b in base]),
            x_scale=[b[3] for b in base],
            loss="soft_l1",
            f_scale=0.1,
            diff_step=1e-3,
            max_nfev=40,
        )
        out[str(name)] = dict(zip(keys, sol.x.tolist(), strict=True))
    return out


def _groups(runs: pl.DataFrame) -> pl.DataFrame:
    arch = pl.col("architecture").replace({"Dense Transformer": "dense", "Mamba-Transformer Hybrid": "hybrid"})
    return runs.with_columns(
        gpu=pl.col("gpu_model"),
        arch=arch.str.to_lowercase(),
        inputs=pl.when(pl.col("task").is_in(TEXT_TASKS)).then(pl.lit("text")).otherwise(pl.lit("multimodal")),
    )


def mlenergy_errors(table: pl.DataFrame, column: str = "predicted_median_itl_ms") -> pl.DataFrame:
    """Return the median |error| and bias of ``column`` against the measured ``median_itl_ms``.

    Per GPU x architecture x inputs (text / multimodal), with the run count.
    """
    e = pl.col(column) / pl.col("median_itl_ms") - 1.0
    return (
        _groups(table)
        .group_by("gpu", "arch", "inputs")
        .agg(runs=pl.len(), median_abs_error=e.abs().median(), bias=e.median())
        .sort("inputs", "gpu", "arch", descending=[True, False, False])
    )


def held_out_errors(
    data: RunSteps,
    *,
    repeats: int = 5,
    folds: int = 5,
    names: Sequence[str] = tuple(CORRECTION_PARAMS),
    seed: int = 0,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Corrections learned and scored out of fold, grouped by model, over ``repeats`` random splits.

    Each repeat assigns the models at random to ``folds`` folds (a model's runs on every GPU and task stay
    together), fits :func:`fit_corrections` on the other folds and predicts each held-out run.

    Returns
    -------
    per_run, summary
        ``per_run``: the runs with ``predicted_median_itl_ms`` (default roofline) and ``oof_<r>`` (repeat
        ``r``'s held-out prediction); ``summary``: per GPU x architecture x inputs, ``runs``,
        ``default_abs_error`` (default roofline), ``held_out_abs_error_mean`` and ``held_out_abs_error_sd``
        (mean and standard deviation over the repeats of the group's median |error|), ``held_out_bias_mean``.
    """
    runs = data.runs
    models = sorted(runs["model_id"].unique().to_list())
    rng = Streams(seed).rng("validation/model_folds")
    table = runs.with_columns(predicted_median_itl_ms=pl.Series(predict_runs(data)))
    for rep in range(repeats):
        fold_of = dict(zip(rng.permutation(models).tolist(), np.arange(len(models)) % folds, strict=True))
        fold = runs["model_id"].replace_strict(fold_of, return_dtype=pl.Int64)
        pred = np.full(runs.height, np.nan)
        for f in range(folds):
            test = (fold == f).to_numpy()
            if not test.any():
                continue
            train = RunSteps(runs.filter(~pl.Series(test)), data.steps)
            params = fit_corrections(train, names)
            pred[test] = predict_runs(RunSteps(runs.filter(pl.Series(test)), data.steps), params)
        table = table.with_columns(pl.Series(f"oof_{rep}", pred))
    summary = validation_summary(table)
    return table, summary


# ---------------------------------------------------------------------------------------------- shipped table
#: The cached validation table (``data/mlenergy_validation.csv``) and its columns.
TABLE_FILE = "mlenergy_validation.csv"
TABLE_KEYS = ["task", "model_id", "gpu_model", "num_gpus", "max_num_seqs"]
#: Corrections the shipped table learns (out of fold and, for ``fitted``, on every run).
SHIPPED_CORRECTIONS = ("seq_overhead_s", "mbu", "moe_layer_s", "ep_layer_s", "fp8_weight_bytes", "step_floor_s")


def build_validation_table(
    *, repeats: int = 2, folds: int = 3, seed: int = 0, n_jobs: int = 1
) -> tuple[pl.DataFrame, dict[str, dict[str, float]]]:
    """Return the content of ``data/mlenergy_validation.csv`` and the corrections fitted on every run.

    Every run simulated once (:func:`record_all`), predicted by the default roofline, out of fold
    (:func:`held_out_errors` with :data:`SHIPPED_CORRECTIONS`, ``repeats`` x ``folds``) and in sample. Takes
    ~4 CPU-minutes for the simulations and ~10-20 CPU-minutes for the fits.
    """
    data = record_all(seed=seed, n_jobs=n_jobs)
    table, _ = held_out_errors(data, repeats=repeats, folds=folds, names=SHIPPED_CORRECTIONS, seed=seed)
    fitted = fit_corrections(data, SHIPPED_CORRECTIONS, seed=seed)
    table = table.with_columns(fitted_median_itl_ms=pl.Series(predict_runs(data, fitted)))
    oof = [c for c in table.columns if c.startswith("oof_")]
    cols = [
        *TABLE_KEYS,
        "architecture",
        "median_itl_ms",
        "predicted_median_itl_ms",
        "fitted_median_itl_ms",
        *oof,
    ]
    return table.select(cols).with_columns(pl.col(cols[6:]).round(4)), fitted


def load_validation_table() -> pl.DataFrame:
    """Return the shipped ML.ENERGY validation table (one row per run; see :func:`build_validation_table`)."""
    from workbench._paths import data_path

    return pl.read_csv(data_path(TABLE_FILE))


def validation_summary(table: pl.DataFrame | None = None) -> pl.DataFrame:
    """Per GPU x architecture x inputs.

    Runs, the default roofline's median |error| and bias, the held-out corrected model's median |error| (mean
    and standard deviation over the split repeats) and bias.
    """
    table = load_validation_table() if table is None else table
    oof = [c for c in table.columns if c.startswith("oof_")]
    per_rep = pl.concat(
        [mlenergy_errors(table, c).select("gpu", "arch", "inputs", "median_abs_error", "bias") for c in oof]
    )
    return (
        mlenergy_errors(table)
        .rename({"median_abs_error": "default_abs_error", "bias": "default_bias"})
        .join(
            per_rep.group_by("gpu", "arch", "inputs").agg(
                held_out_abs_error_mean=pl.col("median_abs_error").mean(),
                held_out_abs_error_sd=pl.col("median_abs_error").std(),
                held_out_bias_mean=pl.col("bias").mean(),
            ),
            on=["gpu", "arch", "inputs"],
        )
        .sort("inputs", "gpu", "arch", descending=[True, False, False])
    )
