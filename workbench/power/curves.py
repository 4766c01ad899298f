"""Power of a busy GPU versus batch size: the logistic model, its fits to ML.ENERGY runs, and the lookup.

The model (inference-fleet-sim, arXiv 2603.16054) for the per-GPU power of an instance running batch ``b``::

    P(b) = p_low + (p_high - p_low) / (1 + exp(-k (log2 b - x0))),   idle_w <= p_low <= p_high

``p_high`` is the saturated power and ``p_low`` the lower asymptote (batch -> 0), never below the GPU's
loaded-idle power ``idle_w`` (:func:`workbench.power.idle_power_w`), so power never falls with batch and never
drops under idle. Fits per (GPU, model, TP/EP, GPU count, task) to the ML.ENERGY v3 runs ship in
``data/power_fits.csv`` (rebuild with :func:`build_fits` / :func:`write_fits`); GPU-level defaults
(``scope == "gpu_default"``) cover GPUs and models without runs.

Every ML.ENERGY group starts at batch ~8 (``batch_min``), so the data alone leave flat directions in the four
parameters (e.g. ``p_low`` against ``x0`` when only the upper half of the curve is measured).
:func:`fit_logistic` therefore fits ``p_low = idle_w + s (p_high - idle_w)`` with ``s`` in [0, 1], caps ``k``
at :data:`K_MAX`, and adds weak priors (:data:`PRIOR_W`) that decide those flat directions; predictions inside
the measured range move by a median 0.02 % (max 1 %) against a fit without them, and by ~1e-6 under 1e-9
input noise. The loss is soft-L1 (:data:`ROBUST_W`), so a
single off-trend run does not tilt a curve.
Below ``batch_min`` the curve is the logistic's extrapolation (bounded by ``idle_w`` and ``P(batch_min)``);
above ``batch_max`` it approaches ``p_high``, which the prior keeps close to ``P(batch_max)``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from scipy.optimize import least_squares

from workbench._paths import DATA_DIR, data_path
from workbench.config import require_positive
from workbench.errors import ConfigError, HardwareError
from workbench.power._facts import gpu_facts, resolve

FITS_FILE = "power_fits.csv"
RUNS_FILE = "mlenergy_leaderboard_v3_llm_runs.csv"
#: Preferred ML.ENERGY task when a (GPU, model, TP) has several (chat first).
TASK_ORDER = ("lm-arena-chat", "gpqa", "sourcegraph-fim", "image-chat", "video-chat")
#: k used when a group has only 3-4 points (too few for four free parameters).
DEFAULT_K = 1.0
#: Largest steepness: k = 3 moves 90 % of the rise within ~1.5 octaves of batch. The runs are one octave
#: apart (max_num_seqs 8, 16, 32, ...), so a steeper step is not resolved by the data.
K_MAX = 3.0
#: Weight (W per unit deviation) of the soft priors: log k -> 0, x0 -> centre of the measured log2-batch
#: range (unit: half the range), and the rise left above the largest measured batch, p_high - P(batch_max),
#: -> 0 (unit: 10 % of the largest measurement). Small against the measurement scatter (fit RMSE 1-50 W):
#: they only pick a point where the data are indifferent.
PRIOR_W = 3.0
#: Scale (W) of the soft-L1 loss: residuals beyond ~20 W count linearly, so one off-trend run (often the
#: batch-8 run of a B200 group, drawing more than the larger batches) does not tilt the whole curve.
ROBUST_W = 20.0


@dataclass(frozen=True, slots=True)
class LogisticPower:
    """Per-GPU busy power versus batch size (W).

    Attributes
    ----------
    p_low_w, p_high_w
        Lower asymptote (batch -> 0) and saturated power; ``p_low_w <= p_high_w`` (power rises with batch).
    k, x0
        Steepness and midpoint in log2(batch).
    source
        Where the parameters come from (fit key or default basis).
    """

    p_low_w: float
    p_high_w: float
    k: float
    x0: float
    source: str = "user"

    def __post_init__(self) -> None:
        require_positive("p_low_w", self.p_low_w)
        require_positive("p_high_w", self.p_high_w)
        require_positive("k", self.k)
        if not math.isfinite(self.x0):
            raise ConfigError(f"x0 must be finite, got {self.x0!r}")
        if self.p_low_w > self.p_high_w:
            raise ConfigError(
                "p_low_w must be <= p_high_w (power does not fall with batch), "
                f"got {self.p_low_w} > {self.p_high_w}"
            )

    def __call__(self, batch: float | np.ndarray) -> float | np.ndarray:
        """Power (W per GPU) at ``batch`` sequences; batches below 1 count as 1."""
        b = np.maximum(np.asarray(batch, dtype=float), 1.0)
        out = _logistic(np.log2(b), self.p_low_w, self.p_high_w, self.k, self.x0)
        return float(out) if out.ndim == 0 else out


def _logistic(x: np.ndarray, p_low: float, p_high: float, k: float, x0: float) -> np.ndarray:
    return p_low + (p_high - p_low) / (1.0 + np.exp(-k * (x - x0)))


def fit_logistic(
    batch: np.ndarray, power_w: np.ndarray, *, tdp_w: float, idle_w: float
) -> tuple[np.ndarray, str]:
    """Fit ``(p_low, p_high, k, x0)`` to measured points with ``idle_w <= p_low <= p_high``.

    Robust (soft-L1, scale :data:`ROBUST_W`) least squares in watts on ``p_high``,
    ``s = (p_low - idle_w) / (p_high - idle_w)`` in [0, 1], ``k`` in [0.1, :data:`K_MAX`] and ``x0``, plus the
    soft priors of :data:`PRIOR_W`; ``p_high`` lies between ``idle_w``
    and the TDP (or just above the largest observation when a run exceeds TDP). With fewer than 5 points ``k``
    is fixed at :data:`DEFAULT_K`. Three starts (``x0`` at the quartiles of log2 batch), tight tolerances; the
    result is deterministic.

    Returns
    -------
    params, kind
        ``[p_low, p_high, k, x0]`` and ``"4p"`` (k free) or ``"3p_k1"``.
    """
    x, y = np.log2(np.asarray(batch, float)), np.asarray(power_w, float)
    if x.size < 3:
        raise ConfigError(f"need at least 3 points to fit a power curve, got {x.size}")
    require_positive("idle_w", idle_w)
    if not idle_w < tdp_w:
        raise ConfigError(f"idle_w must be below tdp_w, got idle_w={idle_w}, tdp_w={tdp_w}")
    lo, hi = idle_w, max(tdp_w, 1.02 * float(y.max()))
    free_k = x.size >= 5
    centre, half = float(x.mean()), max(float(np.ptp(x)) / 2.0, 0.5)
    y_top, x_top = float(y.max()), float(x.max())

    def unpack(p: np.ndarray) -> tuple[float, float, float, float]:
        k, mid = (p[2], p[3]) if free_k else (DEFAULT_K, p[2])
        return lo + p[1] * (p[0] - lo), p[0], k, mid

    def resid(p: np.ndarray) -> np.ndarray:
        p_low, p_high, k, mid = unpack(p)
        rise_left = (p_high - p_low) / (1.0 + math.exp(k * (x_top - mid)))  # p_high - P(x_top)
        prior = [(mid - centre) / half, rise_left / (0.1 * y_top)] + ([math.log(k)] if free_k else [])
        return np.concatenate([_logistic(x, p_low, p_high, k, mid) - y, PRIOR_W * np.array(prior)])

    lb = [lo, 0.0, 0.1, -4.0] if free_k else [lo, 0.0, -4.0]
    ub = [hi, 1.0, K_MAX, 16.0] if free_k else [hi, 1.0, 16.0]
    scale = [100.0, 0.1, 0.2, 1.0] if free_k else [100.0, 0.1, 1.0]
    p_high0 = float(np.clip(y_top, lo, hi))
    s0 = float(np.clip((y.min() - lo) / max(p_high0 - lo, 1e-9), 0.01, 0.99))
    best = None
    for x0 in np.quantile(x, [0.25, 0.5, 0.75]):
        start = [p_high0, s0, 1.0, x0] if free_k else [p_high0, s0, x0]
        sol = least_squares(
            resid,
            np.clip(start, lb, ub),
            bounds=(lb, ub),
            x_scale=scale,
            xtol=1e-12,
            ftol=1e-12,
            gtol=1e-12,
            max_nfev=5000,
            loss="soft_l1",
            f_scale=ROBUST_W,
        )
        if best is None or sol.cost < best.cost:
            best = sol
    return np.array(unpack(best.x)), "4p" if free_k else "3p_k1"


def _runs_path() -> Path:
    """The ML.ENERGY runs through the dataset registry (checksummed), else the sibling shared folder."""
    from workbench.datasets import fetch
    from workbench.errors import DatasetError

    try:
        return fetch("mlenergy_v3", allow_download=False)
    except DatasetError:
        shared = DATA_DIR.parent.parent / "shared" / "data" / "traces" / RUNS_FILE
        if shared.is_file():
            return shared
        raise


def load_runs(path: str | Path | None = None) -> pl.DataFrame:
    """ML.ENERGY v3 runs with ``gpu`` (table name), ``power_per_gpu_w`` and ``tdp_w`` added."""
    runs = pl.read_csv(path or _runs_path(), glob=False)
    tdp = {g: gpu_facts(g).tdp_w for g in runs["gpu_model"].unique()}
    return runs.with_columns(
        gpu=pl.col("gpu_model").replace_strict({g: resolve(g) for g in tdp}),
        power_per_gpu_w=pl.col("avg_power_watts") / pl.col("num_gpus"),
        tdp_w=pl.col("gpu_model").replace_strict(tdp, return_dtype=pl.Float64),
    )


GROUP_KEYS = ["gpu", "model_id", "task", "num_gpus", "tensor_parallel", "expert_parallel"]


def _errors(pred: np.ndarray, obs: np.ndarray) -> dict[str, float]:
    ape = np.abs(pred - obs) / obs
    return {
        "rmse_w": float(np.sqrt(np.mean((pred - obs) ** 2))),
        "median_ape": float(np.median(ape)),
        "max_ape": float(ape.max()),
    }


#: Documented GPU-level curves (p_low W, p_high W, k, x0, basis) for GPUs without ML.ENERGY runs
#: (inference-fleet-sim catalogue, arXiv 2603.16054); other GPUs without runs scale the H100 pooled fit by TDP.
_ANCHORS = {
    "A100-80GB-SXM": (
        175.0,
        385.0,
        1.0,
        2.5,
        "inference-fleet-sim A100 (175/385 W, x0 2.5; anchor 373 W @ b32)",
    ),
    "A100-40GB-SXM": (175.0, 385.0, 1.0, 2.5, "inference-fleet-sim A100 (175/385 W, x0 2.5)"),
    "A10G": (75.0, 120.0, 1.0, 4.2, "inference-fleet-sim A10G projection (75/120 W, x0 4.2)"),
}


def build_fits(runs: pl.DataFrame | None = None) -> pl.DataFrame:
    """Fit every ML.ENERGY group with >= 3 points and add GPU-level defaults; the ``power_fits.csv`` table.

    Columns: scope (``"run_group"`` | ``"gpu_default"``), gpu, model_id, task, num_gpus, tp, ep, n_points,
    batch_min, batch_max (measured range), p_low_w, p_high_w, k, x0, fit_kind, rmse_w, median_ape, max_ape
    (in-sample errors), source, idle_w (the loaded-idle floor of ``p_low_w``) and idle_source.
    """
    runs = load_runs() if runs is None else runs
    rows = []
    for key, grp in runs.group_by(GROUP_KEYS, maintain_order=True):
        grp = grp.sort("avg_batch_size")
        if grp.height < 3:
            continue
        b, p, tdp = grp["avg_batch_size"].to_numpy(), grp["power_per_gpu_w"].to_numpy(), grp["tdp_w"][0]
        idle_w, idle_src = loaded_idle(key[0])
        params, kind = fit_logistic(b, p, tdp_w=tdp, idle_w=idle_w)
        rows.append(
            dict(zip(["gpu", "model_id", "task", "num_gpus", "tp", "ep"], key, strict=True))
            | {"scope": "run_group", "n_points": grp.height, "batch_min": b.min(), "batch_max": b.max()}
            | dict(zip(["p_low_w", "p_high_w", "k", "x0"], params.tolist(), strict=True))
            | {"fit_kind": kind, **_errors(_logistic(np.log2(b), *params), p)}
            | {"source": "ML.ENERGY v3 (ml-energy/leaderboard @0cd52da), per-GPU = avg_power_watts / num_gpus"}
            | {"idle_w": idle_w, "idle_source": idle_src}
        )
    fits = pl.DataFrame(rows)
    return pl.concat([fits, _gpu_defaults(runs)], how="diagonal_relaxed").select(FIT_COLUMNS)


FIT_COLUMNS = [
    "scope",
    "gpu",
    "model_id",
    "task",
    "num_gpus",
    "tp",
    "ep",
    "n_points",
    "batch_min",
    "batch_max",
    "p_low_w",
    "p_high_w",
    "k",
    "x0",
    "fit_kind",
    "rmse_w",
    "median_ape",
    "max_ape",
    "source",
    "idle_w",
    "idle_source",
]

#: Loaded-idle power (instance on, weights in memory, no work) per GPU, W, with its basis. GPUs not listed use
#: IDLE_TDP_RATIO x TDP (the H100 measurement 143 W / 700 W).
_IDLE = {
    "H100-SXM": (143.0, "measured loaded idle, 72.8 GB allocated, 0 % util (gpu-burn issue 114, 2024-10)"),
    "MI300X": (180.0, "measured 0 % util, not power-gated, 170-193 W (ROCm issue 5231, 2026-02)"),
    "A10G": (65.0, "A10 at P0 with CUDA context 64.8 W (detect-gpu issue 3, 2025-04); A10 as proxy"),
    "A100-80GB-SXM": (
        88.0,
        "P0 no process 50 W (mig-parted issue 31) + CUDA-context tax 38 W (arXiv 2605.23918)",
    ),
    "A100-40GB-SXM": (88.0, "as A100-80GB-SXM: 50 W P0 + 38 W context tax (APPROX)"),
}
IDLE_TDP_RATIO = 143.0 / 700.0


def loaded_idle(gpu: str) -> tuple[float, str]:
    """Loaded-idle power (W) of table GPU ``gpu`` and its basis: a measurement, else IDLE_TDP_RATIO x TDP."""
    tdp = gpu_facts(gpu).tdp_w
    return _IDLE.get(
        gpu, (round(IDLE_TDP_RATIO * tdp, 1), f"APPROX {IDLE_TDP_RATIO:.3f} x TDP (H100 loaded-idle ratio)")
    )


def _gpu_defaults(runs: pl.DataFrame) -> pl.DataFrame:
    """Pooled fits (W) for GPUs with runs; anchors or the H100 pooled fit scaled by TDP for the rest.

    Every default keeps ``idle_w <= p_low_w <= p_high_w``: a scaled ``p_low`` below the GPU's loaded idle is
    raised to it.
    """
    rows, pooled = [], {}
    for gpu, grp in runs.group_by("gpu", maintain_order=True):
        b, p, tdp = grp["avg_batch_size"].to_numpy(), grp["power_per_gpu_w"].to_numpy(), grp["tdp_w"][0]
        idle_w, idle_src = loaded_idle(gpu[0])
        params, kind = fit_logistic(b, p, tdp_w=tdp, idle_w=idle_w)
        pooled[gpu[0]] = params
        rows.append(
            {
                "gpu": gpu[0],
                "n_points": grp.height,
                "batch_min": b.min(),
                "batch_max": b.max(),
                "fit_kind": kind,
            }
            | dict(zip(["p_low_w", "p_high_w", "k", "x0"], params.tolist(), strict=True))
            | _errors(_logistic(np.log2(b), *params), p)
            | {"source": "pooled fit over all ML.ENERGY v3 runs of this GPU (all models, tasks, TP)"}
            | {"idle_w": idle_w, "idle_source": idle_src}
        )
    h100 = pooled.get("H100-SXM")
    from workbench.power._facts import gpu_names

    for name in gpu_names():
        if name in pooled:
            continue
        tdp = gpu_facts(name).tdp_w
        if name in _ANCHORS:
            lo, hi, k, x0, src = _ANCHORS[name]
        elif h100 is not None:
            lo, hi = h100[0] / 700.0 * tdp, h100[1] / 700.0 * tdp
            k, x0, src = h100[2], h100[3], "H100-SXM pooled ML.ENERGY fit scaled by TDP ratio (no runs: APPROX)"
        else:
            continue
        idle_w, idle_src = loaded_idle(name)
        lo, hi = max(lo, idle_w), max(hi, idle_w)
        rows.append(
            {"gpu": name, "p_low_w": lo, "p_high_w": hi, "k": k, "x0": x0, "fit_kind": "default", "source": src}
            | {"idle_w": idle_w, "idle_source": idle_src}
        )
    return pl.DataFrame(rows).with_columns(scope=pl.lit("gpu_default"), model_id=pl.lit("*"))


def write_fits(path: str | Path | None = None) -> Path:
    """Rebuild the fit table from the runs and write it (4 decimals) to ``path`` (default: ``data/``)."""
    fits = build_fits()
    num = ["batch_min", "batch_max", "p_low_w", "p_high_w", "k", "x0", "rmse_w", "median_ape", "max_ape"]
    path = Path(path or DATA_DIR / FITS_FILE)
    fits.with_columns(pl.col(num).round(4)).write_csv(path)
    return path


@functools.cache
def load_fits() -> pl.DataFrame:
    """The shipped fit table ``data/power_fits.csv`` (see :func:`build_fits`)."""
    return pl.read_csv(data_path(FITS_FILE), infer_schema_length=None)


def _norm(name: str) -> str:
    return str(name).lower().rsplit("/", 1)[-1]


def _matches(model_id: str, query: str) -> bool:
    mid, q = _norm(model_id), _norm(query)
    return mid == q or mid.removesuffix("-instruct") == q or mid.startswith(q + "-instruct")


def power_curve(
    gpu: str,
    model: str | None = None,
    tp: int | None = None,
    *,
    n_gpus: int | None = None,
    task: str | None = None,
) -> LogisticPower:
    """The per-GPU power curve for a (GPU, model, TP); falls back to the GPU-level default.

    Matching: the model by Hugging Face id or its last part (case-insensitive, ``-Instruct`` optional); then
    the exact TP (and GPU count when given), else the fit of that model with the nearest GPU count; among
    tasks the one given, else chat first (:data:`TASK_ORDER`). Unknown GPUs raise :class:`HardwareError`.
    """
    name = resolve(gpu)
    fits = load_fits().filter(pl.col("gpu") == name)
    runs = fits.filter(pl.col("scope") == "run_group")
    if model is not None:
        runs = runs.filter(
            pl.col("model_id").map_elements(lambda m: _matches(m, model), return_dtype=pl.Boolean)
        )
        if task is not None:
            runs = runs.filter(pl.col("task") == task)
        if runs.height:
            want_n = n_gpus if n_gpus is not None else (tp if tp is not None else 1)
            order = {t: i for i, t in enumerate(TASK_ORDER)}
            runs = runs.with_columns(
                _tp=(pl.col("tp") != (tp if tp is not None else pl.col("tp"))).cast(pl.Int32),
                _n=(pl.col("num_gpus") - want_n).abs(),
                _task=pl.col("task").replace_strict(order, default=len(order), return_dtype=pl.Int32),
            ).sort(["_tp", "_n", "_task", "n_points"], descending=[False, False, False, True])
            return _curve(runs.row(0, named=True))
    default = fits.filter(pl.col("scope") == "gpu_default")
    if default.height == 0:
        raise HardwareError(f"no power curve for GPU {name!r} in {FITS_FILE}")
    return _curve(default.row(0, named=True))


def _curve(row: dict) -> LogisticPower:
    if row["scope"] == "gpu_default":
        src = f"gpu_default {row['gpu']}: {row['source']}"
    else:
        src = f"fit {row['gpu']} {row['model_id']} {row['task']} n={row['num_gpus']} tp={row['tp']}"
    return LogisticPower(row["p_low_w"], row["p_high_w"], row["k"], row["x0"], source=src)


def fit_report(fits: pl.DataFrame | None = None, runs: pl.DataFrame | None = None) -> pl.DataFrame:
    """Per-GPU error of the shipped fits against the runs: median / p90 absolute % error over all points."""
    fits = load_fits() if fits is None else fits
    runs = load_runs() if runs is None else runs
    f = fits.filter(pl.col("scope") == "run_group").rename({"tp": "tensor_parallel", "ep": "expert_parallel"})
    joined = runs.join(f, on=GROUP_KEYS, how="inner")
    x = np.log2(joined["avg_batch_size"].to_numpy())
    pred = _logistic(
        x,
        joined["p_low_w"].to_numpy(),
        joined["p_high_w"].to_numpy(),
        joined["k"].to_numpy(),
        joined["x0"].to_numpy(),
    )
    joined = joined.with_columns(ape=pl.Series(np.abs(pred / joined["power_per_gpu_w"].to_numpy() - 1.0)))
    return (
        joined.group_by("gpu")
        .agg(
            n_points=pl.len(),
            n_groups=pl.struct(GROUP_KEYS).n_unique(),
            median_ape=pl.col("ape").median(),
            p90_ape=pl.col("ape").quantile(0.9),
            max_ape=pl.col("ape").max(),
        )
        .sort("gpu")
    )


def leave_one_out(runs: pl.DataFrame | None = None, *, gpus: tuple[str, ...] | None = None) -> pl.DataFrame:
    """Leave-one-out error of the fit per GPU: each interior point of a group with >= 4 points is predicted by
    the fit to the group's other points (interpolation inside the measured range; refits every time).

    Returns per GPU ``n_points`` (predicted points), ``median_ape``, ``p90_ape`` and ``max_ape``.
    """
    runs = load_runs() if runs is None else runs
    if gpus is not None:
        runs = runs.filter(pl.col("gpu").is_in([resolve(g) for g in gpus]))
    out: list[tuple[str, float]] = []
    for key, grp in runs.group_by(GROUP_KEYS, maintain_order=True):
        if grp.height < 4:
            continue
        grp = grp.sort("avg_batch_size")
        b, p, tdp = grp["avg_batch_size"].to_numpy(), grp["power_per_gpu_w"].to_numpy(), grp["tdp_w"][0]
        idle_w = loaded_idle(key[0])[0]
        for i in range(1, b.size - 1):
            keep = np.arange(b.size) != i
            params, _ = fit_logistic(b[keep], p[keep], tdp_w=tdp, idle_w=idle_w)
            out.append((key[0], abs(float(_logistic(np.log2(b[i]), *params)) / p[i] - 1.0)))
    ape = pl.DataFrame(out, schema={"gpu": pl.Utf8, "ape": pl.Float64}, orient="row")
    return (
        ape.group_by("gpu")
        .agg(
            n_points=pl.len(),
            median_ape=pl.col("ape").median(),
            p90_ape=pl.col("ape").quantile(0.9),
            max_ape=pl.col("ape").max(),
        )
        .sort("gpu")
    )
