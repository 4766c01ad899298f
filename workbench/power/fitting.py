"""Offline fitting of the power-versus-batch curves to the ML.ENERGY v3 runs (builds ``data/power_fits.csv``).

:func:`build_fits` fits the logistic model of :mod:`workbench.power.curves` to every (GPU, model, task, GPU
count, TP, EP) group of runs and adds GPU-level defaults; :func:`write_fits` writes the shipped table that
:func:`workbench.power.power_curve` looks up. :func:`fit_report`, :func:`leave_one_out` and
:func:`lookup_rule_errors` measure how well the fits and the lookup rule predict the runs.

Every ML.ENERGY group starts at batch ~8 (``batch_min``), so the data alone leave flat directions in the four
parameters (e.g. ``p_low`` against ``x0`` when only the upper half of the curve is measured).
:func:`fit_logistic` therefore fits ``p_low = idle_w + s (p_high - idle_w)`` with ``s`` in [0, 1], caps ``k``
at :data:`K_MAX`, and adds weak priors (:data:`PRIOR_W`) that decide those flat directions; predictions inside
the measured range move by a median 0.02 % (max 1 %) against a fit without them, and by ~1e-6 under 1e-9
input noise. The loss is soft-L1 (:data:`ROBUST_W`), so a single off-trend run does not tilt a curve.
Below ``batch_min`` the curve is the logistic's extrapolation (bounded by ``idle_w`` and ``P(batch_min)``);
above ``batch_max`` it approaches ``p_high``, which the prior keeps close to ``P(batch_max)``. A group with
only one or two runs gets the GPU's pooled default curve scaled to their mean (``fit_kind``
``"scaled_default"``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
from scipy.optimize import least_squares

from workbench._paths import DATA_DIR
from workbench.config import require_positive
from workbench.errors import ConfigError
from workbench.power._facts import gpu_facts, gpu_names, resolve
from workbench.power.curves import FITS_FILE, RULES, load_fits
from workbench.power.curves import logistic_log2 as _logistic

RUNS_FILE = "mlenergy_leaderboard_v3_llm_runs.csv"
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
    assert best is not None  # at least one start was fitted
    return np.array(unpack(best.x)), "4p" if free_k else "3p_k1"


def _runs_path() -> Path:
    """Return the path of the ML.ENERGY runs: the registered dataset (checksummed), else the shared folder."""
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
    """ML.ENERGY v3 runs with ``gpu`` (table name), ``power_per_gpu_w`` and ``tdp_w`` added.

    Parameters
    ----------
    path
        The runs CSV (default: the registered ML.ENERGY runs).

    Returns
    -------
    polars.DataFrame
        One row per run.
    """
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
    """Fit every ML.ENERGY group and add GPU-level defaults; the ``power_fits.csv`` table.

    Groups with >= 3 runs get a logistic fit (:func:`fit_logistic`); groups with one or two get their GPU's
    pooled default scaled to the runs' mean power (``fit_kind`` ``"scaled_default"``, :func:`scale_default`).

    Columns: scope (``"run_group"`` | ``"gpu_default"``), gpu, model_id, task, num_gpus, tp, ep, n_points,
    batch_min, batch_max (measured range), p_low_w, p_high_w, k, x0, fit_kind, rmse_w, median_ape, max_ape
    (in-sample errors), source, idle_w (the loaded-idle floor of ``p_low_w``) and idle_source.

    Parameters
    ----------
    runs
        ML.ENERGY runs (default :func:`load_runs`).

    Returns
    -------
    polars.DataFrame
        The fit table, one row per run group and per GPU default.
    """
    runs = load_runs() if runs is None else runs
    defaults = _gpu_defaults(runs)
    rows = []
    for key, grp in runs.group_by(GROUP_KEYS, maintain_order=True):
        grp = grp.sort("avg_batch_size")
        b, p, tdp = grp["avg_batch_size"].to_numpy(), grp["power_per_gpu_w"].to_numpy(), grp["tdp_w"][0]
        idle_w, idle_src = loaded_idle(key[0])
        if grp.height >= 3:
            params, kind = fit_logistic(b, p, tdp_w=tdp, idle_w=idle_w)
        else:
            default = defaults.filter(pl.col("gpu") == key[0]).row(0, named=True)
            params, kind = scale_default(default, b, p), "scaled_default"
        rows.append(
            dict(zip(["gpu", "model_id", "task", "num_gpus", "tp", "ep"], key, strict=True))
            | {"scope": "run_group", "n_points": grp.height, "batch_min": b.min(), "batch_max": b.max()}
            | dict(zip(["p_low_w", "p_high_w", "k", "x0"], params.tolist(), strict=True))
            | {"fit_kind": kind, **_errors(_logistic(np.log2(b), *params), p)}
            | {"source": "ML.ENERGY v3 (ml-energy/leaderboard @0cd52da), per-GPU = avg_power_watts / num_gpus"}
            | {"idle_w": idle_w, "idle_source": idle_src}
        )
    fits = pl.DataFrame(rows)
    return pl.concat([fits, defaults], how="diagonal_relaxed").select(FIT_COLUMNS)


def scale_default(default: dict, batch: np.ndarray, power_w: np.ndarray) -> np.ndarray:
    """Scale a GPU default curve's levels to the measured mean power.

    Returns ``[p_low, p_high, k, x0]`` of a GPU default curve (a fit-table row) with both levels scaled so that
    its mean over the measured ``batch`` equals the mean measured ``power_w`` (the rule for 1-2 runs).
    """
    params = np.array([default["p_low_w"], default["p_high_w"], default["k"], default["x0"]], float)
    scale = float(np.mean(power_w) / np.mean(_logistic(np.log2(batch), *params)))
    return params * np.array([scale, scale, 1.0, 1.0])


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
    """Rebuild the fit table from the runs and write it (4 decimals) to ``path`` (default: ``data/``).

    Parameters
    ----------
    path
        Destination CSV (default ``data/power_fits.csv``).

    Returns
    -------
    pathlib.Path
        The path written.
    """
    fits = build_fits()
    num = ["batch_min", "batch_max", "p_low_w", "p_high_w", "k", "x0", "rmse_w", "median_ape", "max_ape"]
    path = Path(path or DATA_DIR / FITS_FILE)
    fits.with_columns(pl.col(num).round(4)).write_csv(path)
    return path


def fit_report(fits: pl.DataFrame | None = None, runs: pl.DataFrame | None = None) -> pl.DataFrame:
    """Per-GPU error of the shipped fits against the runs: median / p90 absolute % error over all points.

    Parameters
    ----------
    fits, runs
        Fit table and runs (default: the shipped ones).

    Returns
    -------
    polars.DataFrame
        Per GPU: ``n_points, n_groups, median_ape, p90_ape, max_ape`` (fractions).
    """
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


def _run_groups(runs: pl.DataFrame) -> Iterator[tuple[str, np.ndarray, np.ndarray, float, float]]:
    """Yield GPU, batch sizes, per-GPU power, TDP and loaded-idle power of each group of >= 4 runs, by batch."""
    for key, grp in runs.group_by(GROUP_KEYS, maintain_order=True):
        if grp.height < 4:
            continue
        grp = grp.sort("avg_batch_size")
        b, p, tdp = grp["avg_batch_size"].to_numpy(), grp["power_per_gpu_w"].to_numpy(), grp["tdp_w"][0]
        yield key[0], b, p, tdp, loaded_idle(key[0])[0]


def _held_out_errors(b: np.ndarray, p: np.ndarray, tdp: float, idle_w: float) -> list[float]:
    """Return the |relative error| of each interior run predicted by a fit to its group's other runs."""
    out = []
    for i in range(1, b.size - 1):
        keep = np.arange(b.size) != i
        params, _ = fit_logistic(b[keep], p[keep], tdp_w=tdp, idle_w=idle_w)
        out.append(abs(float(_logistic(np.log2(b[i]), *params)) / p[i] - 1.0))
    return out


def leave_one_out(runs: pl.DataFrame | None = None, *, gpus: tuple[str, ...] | None = None) -> pl.DataFrame:
    """Leave-one-out error of the fit per GPU.

    Each interior point of a group with >= 4 points is predicted by the fit to the group's other points
    (interpolation inside the measured range; refits every time).

    Returns per GPU ``n_points`` (predicted points), ``median_ape``, ``p90_ape`` and ``max_ape``.

    Parameters
    ----------
    runs
        ML.ENERGY runs (default :func:`load_runs`).
    gpus
        GPUs to evaluate (default: all).
    """
    runs = load_runs() if runs is None else runs
    if gpus is not None:
        runs = runs.filter(pl.col("gpu").is_in([resolve(g) for g in gpus]))
    out: list[tuple[str, float]] = []
    for gpu, b, p, tdp, idle_w in _run_groups(runs):
        out += [(gpu, e) for e in _held_out_errors(b, p, tdp, idle_w)]
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


def lookup_rule_errors(
    runs: pl.DataFrame | None = None, fits: pl.DataFrame | None = None, *, refit: bool = True
) -> pl.DataFrame:
    """Median and p90 |error| of per-GPU power of each step of :func:`workbench.power.power_curve`'s rule.

    ``fit``: interior runs of groups with >= 4 runs predicted by a fit to the group's other runs (as
    :func:`leave_one_out`); ``scaled_default``: the two smallest-batch runs of each group with >= 4 runs scale
    the GPU default (:func:`scale_default`), the other runs are predicted; ``other_task``: every run predicted
    by the shipped fit of another task of its model on its GPU and GPU count; ``gpu_default``: every run
    predicted by its GPU's pooled curve; ``other_gpu_count`` (not a step: the reason it is not one): every run
    predicted by the fit of its model and task at another GPU count, at the same batch per GPU.
    ``refit=False`` leaves out the ``fit`` step (its ~600 refits take minutes on the whole table).

    Returns
    -------
    polars.DataFrame
        ``rule, n_points, median_ape, p90_ape`` (fractions).
    """
    runs = load_runs() if runs is None else runs
    fits = load_fits() if fits is None else fits
    groups = fits.filter(pl.col("scope") == "run_group", pl.col("fit_kind") != "scaled_default")
    default = fits.filter(pl.col("scope") == "gpu_default")
    out: dict[str, list[float]] = {r: [] for r in (*RULES, "other_gpu_count")}
    for gpu, b, p, tdp, idle_w in _run_groups(runs):
        if refit:
            out["fit"] += _held_out_errors(b, p, tdp, idle_w)
        params = scale_default(default.filter(pl.col("gpu") == gpu).row(0, named=True), b[:2], p[:2])
        out["scaled_default"] += list(np.abs(_logistic(np.log2(b[2:]), *params) / p[2:] - 1.0))
    cols = ["p_low_w", "p_high_w", "k", "x0"]
    x = pl.col("avg_batch_size").log(2)
    for rule, pairs in (
        ("gpu_default", runs.join(default.select("gpu", *cols), on="gpu")),
        (
            "other_task",
            runs.join(groups.select("gpu", "model_id", "num_gpus", pl.col("task").alias("t2"), *cols),
                      on=["gpu", "model_id", "num_gpus"]).filter(pl.col("t2") != pl.col("task")),
        ),
        (
            "other_gpu_count",
            runs.join(groups.select("gpu", "model_id", "task", pl.col("num_gpus").alias("n2"), *cols),
                      on=["gpu", "model_id", "task"])
            .filter(pl.col("n2") != pl.col("num_gpus"))
            .with_columns(avg_batch_size=pl.col("avg_batch_size") * pl.col("n2") / pl.col("num_gpus")),
        ),
    ):  # fmt: skip
        xs = pairs.select(x).to_series().to_numpy()
        pred = _logistic(xs, *(pairs[c].to_numpy() for c in cols))
        out[rule] = list(np.abs(pred / pairs["power_per_gpu_w"].to_numpy() - 1.0))
    return pl.DataFrame(
        [(r, len(v), float(np.median(v)), float(np.quantile(v, 0.9))) for r, v in out.items() if v],
        schema=["rule", "n_points", "median_ape", "p90_ape"],
        orient="row",
    )
