"""Workload power classes (Minos-like, arXiv 2604.03591) learned from the ML.ENERGY v3 runs.

A configuration (model size, active parameters, precision, architecture, batch, TP/EP, GPU count, GPU, task,
output length) maps to

* a **power class**: k-means clusters (default 3: low / medium / high) of per-GPU power as a fraction of TDP;
* a **predicted per-GPU power** (extra-trees regressor on the power fraction of TDP);
* a **predicted output throughput** and **energy per output token**: energy/token = instance power / throughput
  (ML.ENERGY's own identity), with both learned in log space by extra-trees on the base features plus
  roofline features (GPU memory bandwidth, a roofline decode rate, and the weight bytes a decode step reads per
  GPU, counting the MoE experts a batch touches). Predicting the two factors with alike models lets their
  errors cancel in the ratio (a model that serves slower than its size suggests also draws less power).

Prompt length is not a feature: ML.ENERGY v3 publishes no prompt-length column, so the task one-hot (chat,
GPQA, code fill-in-the-middle, image and video chat, each with its own prompt mix) stands in for it.

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
from workbench.hardware import gpu as gpu_spec
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
#: Bytes per weight by precision: MXFP4 is 4-bit values plus one 8-bit scale per 32 (4.25 bits).
BYTES_PER_WEIGHT = {"mxfp4": 4.25 / 8, "fp8": 1.0, "int8": 1.0}


def _bytes_per_weight(precision: pl.Series) -> np.ndarray:
    p = precision.str.to_lowercase()
    out = np.full(p.len(), 2.0)
    for key, value in BYTES_PER_WEIGHT.items():
        out[p.str.contains(key).to_numpy()] = value
    return out


def features(configs: pl.DataFrame) -> np.ndarray:
    """Base feature matrix of configurations (see :data:`CONFIG_COLUMNS`)."""
    missing = set(CONFIG_COLUMNS) - set(configs.columns)
    if missing:
        raise ConfigError(f"configurations lack column(s) {sorted(missing)}")
    bad_task = set(configs["task"].unique()) - set(TASKS)
    if bad_task:
        raise ConfigError(f"unknown task(s) {sorted(bad_task)}; choose one of: {', '.join(TASKS)}")
    c = configs
    tdp = np.array([gpu_facts(g).tdp_w for g in c["gpu"]])
    nbytes = _bytes_per_weight(c["weight_precision"])
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
            c["architecture"].str.contains("(?i)mamba").cast(int),
        ]
    )


def roofline_features(configs: pl.DataFrame) -> np.ndarray:
    """Roofline columns added for throughput and energy: log2 GPU memory bandwidth, log of a roofline decode
    rate (tokens/s) and log2 of the weight bytes one decode step reads per GPU.

    A decode step of batch ``b`` reads the active weights plus the MoE experts the batch touches, taken as
    ``act + (tot - act)(1 - exp(-b act / tot))`` parameters (APPROX: independent routing), and does
    ``2 act b`` FLOPs; the step time is the larger of the memory and BF16 compute times across ``n`` GPUs.
    """
    c = configs
    specs = [gpu_spec(g) for g in c["gpu"]]
    bw = np.array([s.mem_bw_tbps for s in specs]) * 1e12
    flops = np.array([s.bf16_tflops for s in specs]) * 1e12
    nbytes = _bytes_per_weight(c["weight_precision"])
    n, b = c["num_gpus"].to_numpy().astype(float), c["avg_batch_size"].to_numpy().astype(float)
    act = c["activated_params_billions"].to_numpy() * 1e9
    tot = c["total_params_billions"].to_numpy() * 1e9
    touched_bytes = (act + (tot - act) * (1.0 - np.exp(-b * act / tot))) * nbytes / n
    step_s = np.maximum(touched_bytes / bw, 2.0 * act * b / (n * flops))
    return np.column_stack([np.log2(bw), np.log(b / step_s), np.log2(touched_bytes)])


def _energy_features(configs: pl.DataFrame) -> np.ndarray:
    return np.column_stack([features(configs), roofline_features(configs)])


def _targets(runs: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-GPU power fraction of TDP, log instance power (W) and log output throughput (tokens/s)."""
    return (
        (runs["power_per_gpu_w"] / runs["tdp_w"]).to_numpy(),
        np.log(runs["avg_power_watts"].to_numpy()),
        np.log(runs["output_throughput_tokens_per_sec"].to_numpy()),
    )


def _regressor(seed: int, n_trees: int, max_features: float = 0.7) -> ExtraTreesRegressor:
    return ExtraTreesRegressor(n_trees, max_features=max_features, random_state=seed, n_jobs=1)


@dataclass(frozen=True)
class PowerClasses:
    """Fitted power classes and regressors; :meth:`predict` labels and predicts new configurations.

    Attributes
    ----------
    centroids
        Class centres (per-GPU power fraction of TDP), ascending.
    power_model
        Per-GPU power fraction of TDP from :func:`features`.
    instance_power_model, throughput_model
        Log instance power (W) and log output throughput (tokens/s) from :func:`features` plus
        :func:`roofline_features`; energy per token is their ratio.
    """

    centroids: np.ndarray
    power_model: ExtraTreesRegressor
    instance_power_model: ExtraTreesRegressor
    throughput_model: ExtraTreesRegressor

    def classify(self, power_frac: np.ndarray) -> np.ndarray:
        """Class index (0 = lowest power) of per-GPU power fractions of TDP (nearest centroid)."""
        return _label(power_frac, self.centroids)

    def predict(self, configs: pl.DataFrame) -> pl.DataFrame:
        """``configs`` plus predicted ``power_per_gpu_w``, ``output_tokens_per_s``, ``energy_per_token_j`` and
        ``power_class``."""
        configs = configs.with_columns(gpu=pl.col("gpu").map_elements(resolve, return_dtype=pl.Utf8))
        x, xe = features(configs), _energy_features(configs)
        tdp = np.array([gpu_facts(g).tdp_w for g in configs["gpu"]])
        frac = self.power_model.predict(x)
        log_p, log_t = self.instance_power_model.predict(xe), self.throughput_model.predict(xe)
        return configs.with_columns(
            power_per_gpu_w=pl.Series(frac * tdp),
            output_tokens_per_s=pl.Series(np.exp(log_t)),
            energy_per_token_j=pl.Series(np.exp(log_p - log_t)),
            power_class=pl.Series([CLASS_NAMES[i] for i in self.classify(frac)]),
        )


def fit_power_classes(
    runs: pl.DataFrame | None = None, *, n_classes: int = 3, seed: int = 0, n_trees: int = 200
) -> PowerClasses:
    """Cluster per-GPU power fractions into ``n_classes`` and fit the three regressors on ``runs``."""
    require_positive("n_classes", n_classes)
    if n_classes > len(CLASS_NAMES):
        raise ConfigError(f"n_classes must be <= {len(CLASS_NAMES)}, got {n_classes}")
    runs = load_runs() if runs is None else runs
    yf, yp, yt = _targets(runs)
    km = KMeans(n_classes, n_init=10, random_state=seed).fit(yf[:, None])
    x, xe = features(runs), _energy_features(runs)
    return PowerClasses(
        np.sort(km.cluster_centers_.ravel()),
        _regressor(seed, n_trees).fit(x, yf),
        _regressor(seed, n_trees, 1.0).fit(xe, yp),
        _regressor(seed, n_trees, 1.0).fit(xe, yt),
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
    """Median / p90 absolute % error of power, throughput and energy per token on models held out
    (GroupKFold by model id: no configuration of a scored model is in its training fold), and power-class
    accuracy, per GPU and overall.

    With ``reference_run`` (the Minos setting: one profile of the new workload is measured), each held-out
    (model, GPU, task, parallelism) group is calibrated by the ratio observed at its smallest batch, which is
    then left out of the scores.
    """
    require_positive("n_splits", n_splits)
    runs = load_runs() if runs is None else runs
    yf, yp, yt = _targets(runs)
    x, xe = features(runs), _energy_features(runs)
    pf, pp, pt = np.empty_like(yf), np.empty_like(yp), np.empty_like(yt)
    cls_ok = np.empty(yf.size, bool)
    for tr, te in GroupKFold(n_splits).split(x, groups=runs["model_id"].to_numpy()):
        cent = np.sort(KMeans(3, n_init=10, random_state=seed).fit(yf[tr, None]).cluster_centers_.ravel())
        pf[te] = _regressor(seed, n_trees).fit(x[tr], yf[tr]).predict(x[te])
        pp[te] = _regressor(seed, n_trees, 1.0).fit(xe[tr], yp[tr]).predict(xe[te])
        pt[te] = _regressor(seed, n_trees, 1.0).fit(xe[tr], yt[tr]).predict(xe[te])
        cls_ok[te] = _label(pf[te], cent) == _label(yf[te], cent)
    pe, ye = pp - pt, yp - yt  # log energy per output token
    keep = np.ones(yf.size, bool)
    if reference_run:
        keys = ["model_id", "gpu", "task", "num_gpus", "tensor_parallel", "expert_parallel"]
        idx = runs.with_row_index("_i").group_by(keys).agg(pl.col("_i").sort_by("avg_batch_size"))["_i"]
        for group in idx.to_list():
            ref = group[0]
            pf[group] *= yf[ref] / pf[ref]
            pt[group] += yt[ref] - pt[ref]
            pe[group] += ye[ref] - pe[ref]
            keep[ref] = len(group) == 1
    out = (
        runs.select("gpu")
        .with_columns(
            power_ape=pl.Series(np.abs(pf / yf - 1)),
            throughput_ape=pl.Series(np.abs(np.exp(pt - yt) - 1)),
            energy_ape=pl.Series(np.abs(np.exp(pe - ye) - 1)),
            class_ok=pl.Series(cls_ok),
        )
        .filter(pl.Series(keep))
    )
    aggs = [
        pl.len().alias("n"),
        pl.col("power_ape").median().alias("power_median_ape"),
        pl.col("power_ape").quantile(0.9).alias("power_p90_ape"),
        pl.col("throughput_ape").median().alias("throughput_median_ape"),
        pl.col("energy_ape").median().alias("energy_median_ape"),
        pl.col("energy_ape").quantile(0.9).alias("energy_p90_ape"),
        pl.col("class_ok").mean().alias("class_accuracy"),
    ]
    per_gpu = out.group_by("gpu").agg(aggs).sort("gpu")
    return pl.concat([per_gpu, out.select(aggs).with_columns(gpu=pl.lit("all")).select(per_gpu.columns)])
