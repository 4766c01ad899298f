"""Minos (arXiv 2604.03591): classify workloads from a cheap profile and skip most of the profiling.

Minos groups workloads by their power and performance behaviour from low-cost profiles, so a new workload
needs one short profile instead of a full sweep; the paper reports 89 % less profiling time when predicting
frequency-capping behaviour of an unseen application, and mean errors of 4 % (power) and 3 % (performance).

Here a *workload* is one ML.ENERGY v3 configuration group (model, GPU, task, parallelism) and its *full
profile* the runs at every batch size (``max_num_seqs``) ML.ENERGY measured. A new workload is profiled at
its smallest batch only. Its power and throughput at the other batches are predicted as that profile times
the mean log-ratio curve (value at batch ``b`` over value at the smallest batch, against
``log2(b / smallest)``) of its *class*: k-means classes of the training workloads on what the single profile
shows (per-GPU power as a fraction of TDP, log throughput per GPU, log active parameters). The baseline uses
one curve for all workloads (no classes). Each replication holds out a random fifth of the models (all their
workloads) and trains on the rest; both arms see the same split (common random numbers).

Profiling time counts measured configurations (each a fixed measurement window): one instead of the group's
sweep. ML.ENERGY has no power-limit or clock sweeps, so Minos' frequency-capping prediction is not testable
on these data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from sklearn.cluster import KMeans

from workbench.power import load_runs
from workbench.seeds import rng
from workbench.studies.claims import NOT_REPRODUCED, NOT_TESTABLE, REPRODUCED, Claim, interval
from workbench.studies.replications import REPLICATIONS, Replicated, replicate

#: Columns that identify a workload (one configuration group of ML.ENERGY runs).
GROUP = ("model_id", "gpu", "task", "num_gpus", "tensor_parallel", "expert_parallel")
#: Reported by the paper: profiling-time saving and mean power / performance errors.
PAPER_SAVING, PAPER_POWER_ERROR, PAPER_PERF_ERROR = 0.89, 0.04, 0.03


def workloads() -> pl.DataFrame:
    """One row per workload: its runs as sorted lists (batch, per-GPU power and throughput) and its facts."""
    runs = load_runs().filter(pl.col("output_throughput_tokens_per_sec") > 0)
    return (
        runs.with_columns(tput_per_gpu=pl.col("output_throughput_tokens_per_sec") / pl.col("num_gpus"))
        .sort("max_num_seqs")
        .group_by(GROUP, maintain_order=True)
        .agg(
            pl.col("max_num_seqs").alias("batch"),
            pl.col("power_per_gpu_w").alias("power"),
            pl.col("tput_per_gpu").alias("tput"),
            pl.col("tdp_w").first().alias("tdp"),
            pl.col("activated_params_billions").first().alias("active_b"),
        )
        .filter(pl.col("batch").list.len() >= 2)
        .sort(GROUP)
    )


def _profile_features(table: pl.DataFrame) -> np.ndarray:
    """Return what one profile at the smallest batch shows: power fraction of TDP, log throughput, log size."""
    p1 = table["power"].list.first().to_numpy() / table["tdp"].to_numpy()
    t1 = np.log(table["tput"].list.first().to_numpy())
    size = np.log(table["active_b"].to_numpy())
    return np.column_stack([p1, t1, size])


def _curves(table: pl.DataFrame, column: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per workload: (log2 batch over smallest, log value over value at smallest)."""
    out = []
    for b, v in zip(table["batch"].to_list(), table[column].to_list(), strict=True):
        b, v = np.asarray(b, float), np.asarray(v, float)
        out.append((np.log2(b / b[0]), np.log(v / v[0])))
    return out


#: Grid (log2 batch over smallest) on which class curves are averaged.
GRID = np.arange(0.0, 8.5, 0.5)


def _mean_curve(curves: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Mean log-ratio curve on :data:`GRID` (each member only within its measured range)."""
    total, count = np.zeros(GRID.size), np.zeros(GRID.size)
    for x, y in curves:
        inside = GRID <= x[-1]
        total[inside] += np.interp(GRID[inside], x, y)
        count[inside] += 1
    filled = count > 0
    mean = np.zeros(GRID.size)
    mean[filled] = total[filled] / count[filled]
    last = np.flatnonzero(filled)[-1]
    mean[last + 1 :] = mean[last]  # beyond every member's range: hold the last mean
    return mean


@dataclass(frozen=True)
class MinosArm:
    """One prediction method.

    Attributes
    ----------
    arm
        Label.
    classes
        k-means classes of workloads (1: one curve for all, the no-class baseline).
    holdout
        Share of the models held out per replication.
    """

    arm: str
    classes: int = 1
    holdout: float = 0.2


def run(arm: MinosArm, seed: int) -> dict[str, float]:
    """Hold out a random share of the models, predict their sweeps from one profile each, score the errors."""
    table = workloads()
    models = table["model_id"].unique().sort().to_numpy()
    test_models = rng(seed, "minos/holdout").choice(models, size=max(1, round(arm.holdout * len(models))),
                                                    replace=False)  # fmt: skip
    is_test = table["model_id"].is_in(test_models.tolist()).to_numpy()
    train, test = table.filter(pl.Series(~is_test)), table.filter(pl.Series(is_test))
    f_train, f_test = _profile_features(train), _profile_features(test)
    mu, sd = f_train.mean(axis=0), f_train.std(axis=0) + 1e-12
    k = min(arm.classes, train.height)
    km = KMeans(k, n_init=10, random_state=0).fit((f_train - mu) / sd)
    label_test = km.predict((f_test - mu) / sd)
    errors: dict[str, list[float]] = {"power": [], "tput": []}
    for column in ("power", "tput"):
        train_curves = _curves(train, column)
        means = [
            _mean_curve([c for c, lab in zip(train_curves, km.labels_, strict=True) if lab == j])
            for j in range(k)
        ]
        for (x, y), lab in zip(_curves(test, column), label_test, strict=True):
            predicted = np.interp(x[1:], GRID, means[lab])
            errors[column].extend(np.abs(np.exp(predicted - y[1:]) - 1.0))
    sizes = test["batch"].list.len().to_numpy()
    return {
        "power_mape": float(np.mean(errors["power"])),
        "throughput_mape": float(np.mean(errors["tput"])),
        "power_median_ape": float(np.median(errors["power"])),
        "throughput_median_ape": float(np.median(errors["tput"])),
        "profiling_saving": float(1.0 - test.height / sizes.sum()),
        "workloads": float(test.height),
    }


#: No classes (one curve) against three Minos-like classes.
ARMS = (MinosArm("one curve (no classes)", 1), MinosArm("Minos-like classes (k=3)", 3))


def study(arms: tuple[MinosArm, ...] = ARMS, *, replications: int = REPLICATIONS, seed: int = 0,
          n_jobs: int = 1) -> Replicated:  # fmt: skip
    """Both methods on the same ``replications`` random model hold-outs."""
    return replicate(run, arms, replications=replications, seed=seed, n_jobs=n_jobs)


def claim(rep: Replicated) -> Claim:
    """Profiling saving and held-out errors of the class-based prediction (paired against one curve)."""
    minos, flat = "Minos-like classes (k=3)", "one curve (no classes)"
    saving = rep.estimate(minos, "profiling_saving")
    power = rep.estimate(minos, "power_mape")
    tput = rep.estimate(minos, "throughput_mape")
    gain = rep.difference(minos, flat, "throughput_mape").estimate
    close = power.low <= 2 * PAPER_POWER_ERROR and tput.low <= 2 * PAPER_PERF_ERROR
    if saving.low >= 0.8 and close:
        verdict, reason = REPRODUCED, "one profile per workload predicts the sweep within the paper's error"
    elif saving.low >= 0.8:
        verdict = NOT_REPRODUCED
        reason = (
            "one profile instead of a sweep saves as much profiling as published (by construction), but it "
            "does not predict the other batch sizes within 4 % / 3 %: batch scaling differs too much between "
            "workloads that look alike at one point; the classes "
            + ("help" if gain.high < 0 else "do not help significantly")
            + " against one curve for all (power.classes' regressors with one reference run, notebook 04, do "
            "better but still miss on throughput)"
        )
    else:
        verdict, reason = NOT_REPRODUCED, "the saving is small"
    return Claim(
        paper="Minos (arXiv 2604.03591)",
        published="89 % less profiling time for an unseen workload; mean error 4 % power, 3 % performance",
        setup=(
            "ML.ENERGY v3 configuration groups as workloads; one profile (smallest batch) + class curve "
            f"predicts the batch sweep; a random fifth of the models held out, {rep.replications} times"
        ),
        result=(
            f"profiling saved {interval(saving)}; mean abs. error power {interval(power)}, throughput "
            f"{interval(tput)} (vs one curve {100 * gain.value:+.1f} points)"
        ),
        verdict=verdict,
        reason=reason,
        estimate=saving,
    )


def frequency_claim() -> Claim:
    """Minos' frequency-capping prediction: no public LLM power-limit sweeps in the shipped data."""
    return Claim(
        paper="Minos (arXiv 2604.03591)",
        published="predicts an unseen application's behaviour under GPU frequency capping",
        setup="ML.ENERGY v3 runs (the only measured LLM power data shipped)",
        result="-",
        verdict=NOT_TESTABLE,
        reason="ML.ENERGY v3 has no power-limit or clock sweeps; power.dvfs is a model, not measurements",
    )


__all__ = ["ARMS", "GRID", "GROUP", "MinosArm", "claim", "frequency_claim", "run", "study", "workloads"]
