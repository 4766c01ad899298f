"""Workload power classes (Minos-like, arXiv 2604.03591) learned from the ML.ENERGY v3 runs.

A configuration (model size, active parameters, precision, architecture, batch, TP/EP, GPU count, GPU, task,
output length) maps to

* a **power class**: k-means clusters (default 3: low / medium / high) of per-GPU power as a fraction of TDP;
* a **predicted per-GPU power** and **energy per output token** (extra-trees regressors; energy is learned in
  log space).

:func:`evaluate_held_out` scores the regressors on configurations of models never seen in training
(``GroupKFold`` by model id), which is how a new model would be planned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from sklearn.cluster import KMeans
from sklearn.ensemble import ExtraTreesRegressor
from sklearn.model_selection import GroupKFold

from workbench.config import require_positive
from workbench.errors import ConfigError
from workbench.power._facts import gpu_facts, resolve
from workbench.power.curves import load_runs

TASKS = ("gpqa", "image-chat", "lm-arena-chat", "sourcegraph-fim", "video-chat")
#: Columns a configuration table needs (ML.ENERGY names; ``gpu`` may be any GPU-table name or alias).
CONFIG_COLUMNS = (
    "total_params_billions",
    "activated_params_billions",
    "weight_precision",
    "architecture",
    "avg_batch_size",
    "num_gpus",
    "tensor_parallel",
    "expert_parallel",
    "gpu",
    "task",
    "avg_output_len",
)
CLASS_NAMES = ("low", "medium", "high", "very high", "extreme")


def features(configs: pl.DataFrame) -> np.ndarray:
    """Feature matrix of configurations (see :data:`CONFIG_COLUMNS`)."""
    missing = set(CONFIG_COLUMNS) - set(configs.columns)
    if missing:
        raise ConfigError(f"configurations lack column(s) {sorted(missing)}")
    bad_task = set(configs["task"].unique()) - set(TASKS)
    if bad_task:
        raise ConfigError(f"unknown task(s) {sorted(bad_task)}; choose one of: {', '.join(TASKS)}")
    c = configs
    tdp = np.array([gpu_facts(g).tdp_w for g in c["gpu"]])
    nbytes = np.where(c["weight_precision"].str.contains("fp8|int8").to_numpy(), 1.0, 2.0)
    n, b = c["num_gpus"].to_numpy().astype(float), c["avg_batch_size"].to_numpy().astype(float)
    act, tot = c["activated_params_billions"].to_numpy(), c["total_params_billions"].to_numpy()
    return np.column_stack(
        [
            np.log2(tot),
            np.log2(act),
            np.log2(b),
            np.log2(n),
            c["tensor_parallel"],
            c["expert_parallel"],
            tdp,
            np.log2(c["avg_output_len"]),
            nbytes,
            (c["architecture"] == "MoE").cast(int),
            *[(c["task"] == t).cast(int) for t in TASKS],
            np.log2(act * nbytes / n),
            np.log2(tot * nbytes / n),
            np.log2(b / n),
            np.log2(act * nbytes / b),
        ]
    )


def _targets(runs: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    return (runs["power_per_gpu_w"] / runs["tdp_w"]).to_numpy(), np.log(
        runs["energy_per_token_joules"].to_numpy()
    )


def _regressor(seed: int, n_trees: int) -> ExtraTreesRegressor:
    return ExtraTreesRegressor(n_trees, max_features=0.7, random_state=seed, n_jobs=1)


@dataclass(frozen=True)
class PowerClasses:
    """Fitted power classes and regressors; :meth:`predict` labels and predicts new configurations."""

    centroids: np.ndarray
    power_model: ExtraTreesRegressor
    energy_model: ExtraTreesRegressor

    def classify(self, power_frac: np.ndarray) -> np.ndarray:
        """Class index (0 = lowest power) of per-GPU power fractions of TDP (nearest centroid)."""
        return _label(power_frac, self.centroids)

    def predict(self, configs: pl.DataFrame) -> pl.DataFrame:
        """``configs`` plus predicted ``power_per_gpu_w``, ``energy_per_token_j`` and ``power_class``."""
        configs = configs.with_columns(gpu=pl.col("gpu").map_elements(resolve, return_dtype=pl.Utf8))
        x = features(configs)
        tdp = np.array([gpu_facts(g).tdp_w for g in configs["gpu"]])
        frac = self.power_model.predict(x)
        cls = self.classify(frac)
        return configs.with_columns(
            power_per_gpu_w=pl.Series(frac * tdp),
            energy_per_token_j=pl.Series(np.exp(self.energy_model.predict(x))),
            power_class=pl.Series([CLASS_NAMES[i] for i in cls]),
        )


def fit_power_classes(
    runs: pl.DataFrame | None = None, *, n_classes: int = 3, seed: int = 0, n_trees: int = 200
) -> PowerClasses:
    """Cluster per-GPU power fractions into ``n_classes`` and fit the two regressors on ``runs``."""
    require_positive("n_classes", n_classes)
    if n_classes > len(CLASS_NAMES):
        raise ConfigError(f"n_classes must be <= {len(CLASS_NAMES)}, got {n_classes}")
    runs = load_runs() if runs is None else runs
    yp, ye = _targets(runs)
    km = KMeans(n_classes, n_init=10, random_state=seed).fit(yp[:, None])
    x = features(runs)
    return PowerClasses(
        np.sort(km.cluster_centers_.ravel()),
        _regressor(seed, n_trees).fit(x, yp),
        _regressor(seed, n_trees).fit(x, ye),
    )


def _label(values: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    return np.abs(np.asarray(values)[:, None] - centroids[None, :]).argmin(axis=1)


def evaluate_held_out(
    runs: pl.DataFrame | None = None,
    *,
    n_splits: int = 5,
    seed: int = 0,
    n_trees: int = 200,
    reference_run: bool = False,
) -> pl.DataFrame:
    """Median / p90 absolute % error of power and energy per token on models held out (GroupKFold by model),
    and power-class accuracy, per GPU and overall.

    With ``reference_run`` (the Minos setting: one profile of the new workload is measured), each held-out
    (model, GPU, task, parallelism) group is calibrated by the ratio observed at its smallest batch, which is
    then left out of the scores.
    """
    runs = load_runs() if runs is None else runs
    yp, ye = _targets(runs)
    x = features(runs)
    pp, pe, cls_ok = np.empty_like(yp), np.empty_like(ye), np.empty(yp.size, bool)
    for tr, te in GroupKFold(n_splits).split(x, groups=runs["model_id"].to_numpy()):
        cent = np.sort(KMeans(3, n_init=10, random_state=seed).fit(yp[tr, None]).cluster_centers_.ravel())
        pp[te] = _regressor(seed, n_trees).fit(x[tr], yp[tr]).predict(x[te])
        pe[te] = _regressor(seed, n_trees).fit(x[tr], ye[tr]).predict(x[te])
        cls_ok[te] = _label(pp[te], cent) == _label(yp[te], cent)
    keep = np.ones(yp.size, bool)
    if reference_run:
        keys = ["model_id", "gpu", "task", "num_gpus", "tensor_parallel", "expert_parallel"]
        idx = runs.with_row_index("_i").group_by(keys).agg(pl.col("_i").sort_by("avg_batch_size"))["_i"]
        for group in idx.to_list():
            ref = group[0]
            pp[group] *= yp[ref] / pp[ref]
            pe[group] += ye[ref] - pe[ref]
            keep[ref] = len(group) == 1
    out = (
        runs.select("gpu")
        .with_columns(
            power_ape=pl.Series(np.abs(pp / yp - 1)),
            energy_ape=pl.Series(np.abs(np.exp(pe - ye) - 1)),
            class_ok=pl.Series(cls_ok),
        )
        .filter(pl.Series(keep))
    )
    aggs = [
        pl.len().alias("n"),
        pl.col("power_ape").median().alias("power_median_ape"),
        pl.col("power_ape").quantile(0.9).alias("power_p90_ape"),
        pl.col("energy_ape").median().alias("energy_median_ape"),
        pl.col("energy_ape").quantile(0.9).alias("energy_p90_ape"),
        pl.col("class_ok").mean().alias("class_accuracy"),
    ]
    per_gpu = out.group_by("gpu").agg(aggs).sort("gpu")
    return pl.concat([per_gpu, out.select(aggs).with_columns(gpu=pl.lit("all")).select(per_gpu.columns)])
