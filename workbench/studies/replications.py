"""Replications with common random numbers: the one way every study turns runs into means and intervals.

A study is a pure ``run(arm, seed) -> dict`` over *arms* (the compared configurations: policies, fleets,
settings). :func:`replicate` runs every arm on ``replications`` independent seeds through
:func:`workbench.experiments.sweep` (parallel with ``n_jobs``, resumable with ``cache_dir``). The seed of
replication ``r`` is the same for every arm (:func:`replication_seed`), so all arms of a replication see the
same arrivals, lengths and prefixes (common random numbers) and their differences are paired.

The result, :class:`Replicated`, holds one row per (arm, replication) and gives the mean and 95 % confidence
interval of each metric per arm (:meth:`Replicated.summary`), paired differences against a baseline arm
(:meth:`Replicated.versus`) and single estimates (:meth:`Replicated.estimate`,
:meth:`Replicated.difference`, :meth:`Replicated.ratio`). Every interval comes from :mod:`workbench.stats`.

Examples
--------
>>> import numpy as np
>>> def run(arm, seed):
...     x = np.random.default_rng(seed).exponential(1.0, 2000)
...     return {"mean": float(x.mean() * arm["scale"])}
>>> rep = replicate(run, [{"arm": "a", "scale": 1.0}, {"arm": "b", "scale": 1.1}], replications=5)
>>> rep.runs.columns
['arm', 'scale', 'replication', 'mean']
>>> rep.difference("b", "a", "mean").significant  # paired on the same draws: 10 % apart is clear
True
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from workbench import stats
from workbench.errors import ConfigError
from workbench.experiments import config_record, point_seed, sweep
from workbench.sim.invariants import RejectionWarning

#: Replications a study runs unless told otherwise (issue 13: at least five seeds).
REPLICATIONS = 5
#: Column naming the arm in every replications table.
ARM = "arm"
#: Column naming the replication (the pairing key of common random numbers).
REPLICATION = "replication"


def replication_seed(seed: int, replication: int) -> int:
    """Seed of replication ``replication`` under root ``seed``; the same for every arm (common random numbers).

    A child of ``SeedSequence(seed)`` keyed by the replication index (:func:`workbench.experiments.point_seed`),
    so replications are independent streams and adding arms or replications changes no existing seed.

    Parameters
    ----------
    seed
        Root seed.
    replication
        Replication index (>= 0).

    Returns
    -------
    int
        The seed passed to ``run(arm, seed)`` of every arm.
    """
    return point_seed({REPLICATION: int(replication)}, seed)


@dataclass(frozen=True)
class Replication:
    """One point of a replicated sweep: an arm and the index of its replication."""

    arm: Any
    replication: int


@dataclass(frozen=True)
class CommonRandomNumbers:
    """``sweep``'s run: calls ``run(arm, replication_seed(seed, replication))``, ignoring the point seed.

    The point seed of :func:`~workbench.experiments.sweep` depends on the whole configuration, arm included;
    replacing it by the replication's seed is what makes the arms share their random numbers.
    """

    run: Callable[[Any, int], Mapping[str, Any]]
    seed: int

    def __call__(self, point: Replication, _point_seed: int) -> Mapping[str, Any]:
        """Return the run's row; its simulations' rejected requests are counted in ``rejected``, not warned."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RejectionWarning)
            row = self.run(point.arm, replication_seed(self.seed, point.replication))
        for w in caught:
            if not issubclass(w.category, RejectionWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        if "rejected" in row:
            return row
        counts = [getattr(w.message, "count", 0) for w in caught if issubclass(w.category, RejectionWarning)]
        return {**row, "rejected": sum(counts)}


def arm_name(arm: Any) -> str:
    """Return the label of an arm: its ``arm`` field or key, else ``field=value`` pairs of its fields."""
    record = config_record(arm)
    if ARM in record:
        return str(record[ARM])
    return ", ".join(f"{k}={v}" for k, v in record.items())


@dataclass(frozen=True)
class Replicated:
    """Results of :func:`replicate`: one row per arm and replication.

    Attributes
    ----------
    runs
        Columns ``arm`` (label), the arm's fields, ``replication``, the run's results and ``rejected`` (requests
        its simulations rejected, counted here instead of one warning per run).
    metrics
        The numeric result columns (``rejected`` is a count, not a metric).
    seed
        Root seed of the replications.
    """

    runs: pl.DataFrame
    metrics: tuple[str, ...]
    seed: int

    @property
    def arms(self) -> list[str]:
        """Arm labels in the order they were given."""
        return self.runs[ARM].unique(maintain_order=True).to_list()

    @property
    def replications(self) -> int:
        """Replications per arm."""
        return int(self.runs[REPLICATION].n_unique())

    def values(self, arm: str, metric: str) -> pl.Series:
        """Return the replications of ``metric`` for ``arm``, ordered by replication."""
        self._check(arm, metric)
        return self.runs.filter(pl.col(ARM) == arm).sort(REPLICATION)[metric]

    def summary(self, metrics: Sequence[str] | None = None, level: float = stats.LEVEL) -> pl.DataFrame:
        """Mean and confidence interval of each metric per arm (:func:`workbench.stats.summarize`)."""
        return stats.summarize(self.runs, ARM, list(metrics or self.metrics), level)

    def versus(
        self, baseline: str, metrics: Sequence[str] | None = None, level: float = stats.LEVEL
    ) -> pl.DataFrame:
        """Paired differences of every other arm against ``baseline`` (:func:`workbench.stats.compare`)."""
        self._check(baseline, None)
        return stats.compare(self.runs, ARM, baseline, list(metrics or self.metrics), pair_on=REPLICATION,
                             level=level)  # fmt: skip

    def estimate(self, arm: str, metric: str, level: float = stats.LEVEL) -> stats.Estimate:
        """Mean of ``metric`` over ``arm``'s replications with its confidence interval."""
        return stats.t_interval(self.values(arm, metric).to_numpy(), level)

    def difference(self, arm: str, baseline: str, metric: str, level: float = stats.LEVEL) -> stats.Difference:
        """Paired difference ``arm - baseline`` of ``metric`` over common replications."""
        return stats.paired_difference(
            self.values(arm, metric).to_numpy(), self.values(baseline, metric).to_numpy(), level
        )

    def ratio(self, arm: str, baseline: str, metric: str, level: float = stats.LEVEL) -> stats.Estimate:
        """Mean over replications of ``arm / baseline - 1`` for ``metric`` (paired relative change)."""
        return stats.relative_change(
            self.values(arm, metric).to_numpy(), self.values(baseline, metric).to_numpy(), level
        )

    def ratio_of_columns(
        self, arm: str, metric: str, baseline: str, level: float = stats.LEVEL
    ) -> stats.Estimate:
        """Mean over ``arm``'s replications of ``metric / baseline - 1`` (two metrics of the same runs)."""
        return stats.relative_change(
            self.values(arm, metric).to_numpy(), self.values(arm, baseline).to_numpy(), level
        )

    def _check(self, arm: str, metric: str | None) -> None:
        if arm not in self.arms:
            raise ConfigError(f"arm {arm!r} is not in the study; it has: {', '.join(self.arms)}")
        if metric is not None and metric not in self.runs.columns:
            raise ConfigError(f"metric {metric!r} is not in the study; it has: {', '.join(self.metrics)}")


def replicate(
    run: Callable[[Any, int], Mapping[str, Any]],
    arms: Sequence[Any],
    *,
    replications: int = REPLICATIONS,
    seed: int = 0,
    n_jobs: int = 1,
    cache_dir: str | None = None,
    progress: bool | None = False,
) -> Replicated:
    """Run every arm on ``replications`` common seeds through :func:`workbench.experiments.sweep`.

    Parameters
    ----------
    run
        Pure ``run(arm, seed) -> dict`` of numbers (module level, so that process backends can pickle it).
    arms
        The compared configurations: dicts or frozen dataclasses, labelled by their ``arm`` field (else by
        their fields); labels must be distinct.
    replications
        Independent seeds per arm (at least 2 for an interval; default :data:`REPLICATIONS`).
    seed
        Root seed.
    n_jobs, cache_dir, progress
        Passed to :func:`~workbench.experiments.sweep`.

    Returns
    -------
    Replicated
        The replications table and the interval helpers.
    """
    if isinstance(replications, bool) or not isinstance(replications, int) or replications < 2:
        raise ConfigError(f"replications must be an integer >= 2 (an interval needs two), got {replications!r}")
    arms = list(arms)
    if not arms:
        raise ConfigError("arms is empty: give at least one configuration to replicate")
    labels = [arm_name(a) for a in arms]
    if len(set(labels)) != len(labels):
        dup = sorted({x for x in labels if labels.count(x) > 1})
        raise ConfigError(f"arms must have distinct labels; repeated: {dup}")
    points = [Replication(arm, r) for arm in arms for r in range(replications)]
    table = sweep(points, CommonRandomNumbers(run, int(seed)), n_jobs=n_jobs, cache_dir=cache_dir,
                  progress=progress).drop("point_seed")  # fmt: skip
    arm_cols = [c for c in table.columns if c.startswith("arm.")]
    renamed = {c: c.removeprefix("arm.") for c in arm_cols}
    table = table.rename(renamed)
    result_cols = [c for c in table.columns if c not in renamed.values() and c != REPLICATION]
    table = table.with_columns(pl.Series(ARM, [lab for lab in labels for _ in range(replications)]))
    fields = [c for c in renamed.values() if c != ARM]
    table = table.select(ARM, *fields, REPLICATION, *result_cols)
    numeric = [c for c in result_cols if table.schema[c].is_numeric() and table.schema[c] != pl.Boolean]
    metrics = tuple(c for c in numeric if c != "rejected")  # the runs' rejections: a count, not a metric
    return Replicated(table, metrics, int(seed))


def fields_of(arm: Any) -> dict[str, Any]:
    """Return an arm's fields as a dict (dataclass or mapping)."""
    if dataclasses.is_dataclass(arm) and not isinstance(arm, type):
        return {f.name: getattr(arm, f.name) for f in dataclasses.fields(arm)}
    return dict(arm)


__all__ = [
    "ARM",
    "REPLICATION",
    "REPLICATIONS",
    "CommonRandomNumbers",
    "Replicated",
    "Replication",
    "arm_name",
    "fields_of",
    "replicate",
    "replication_seed",
]
