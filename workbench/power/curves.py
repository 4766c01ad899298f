"""Power of a busy GPU versus batch size: the logistic model and the lookup of its shipped parameters.

The model (inference-fleet-sim, arXiv 2603.16054) for the per-GPU power of an instance running batch ``b``::

    P(b) = p_low + (p_high - p_low) / (1 + exp(-k (log2 b - x0))),   idle_w <= p_low <= p_high

``p_high`` is the saturated power and ``p_low`` the lower asymptote (batch -> 0), never below the GPU's
loaded-idle power, so power never falls with batch and never drops under idle. This module holds the formula
(:func:`logistic_power`, the only place it is written) and :func:`power_curve`, which looks parameters up in the
shipped table ``data/power_fits.csv``; :mod:`workbench.power.fitting` builds that table offline from the
ML.ENERGY v3 runs.

Lookup rule
-----------
:func:`power_curve` answers from the first step of this ladder that has data and says which step in
:attr:`LogisticPower.rule` (and in words, with the rule's measured error, in :attr:`LogisticPower.source`):

1. ``"fit"``: the run group of this GPU, model and GPU count (``n_gpus``, default ``tp``), for the task given
   (else chat first, :data:`TASK_ORDER`). Error: interior runs predicted from their group's other runs.
2. ``"scaled_default"``: the same, for a group with only one or two runs (too few for a curve): the GPU's
   pooled default curve scaled to pass through the runs' mean.
3. ``"other_task"``: no run of that task at this GPU count, but another task of the same model is: that fit.
4. ``"gpu_default"``: the GPU's pooled curve (every model, task and GPU count; anchors or a TDP-scaled H100
   curve for GPUs without runs).

A fit for *another GPU count* of the same model is never used: on the ML.ENERGY runs it predicts per-GPU power
worse (median |error| 16.5 % with the batch per GPU matched, 20.5 % at equal batch) than the GPU default on the
same runs (13.1 %). :data:`RULE_ERRORS` holds each step's median |error| on the ML.ENERGY runs, measured by
:func:`workbench.power.fitting.lookup_rule_errors` (a test recomputes them).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from workbench._paths import data_path
from workbench.config import require_positive
from workbench.errors import ConfigError, HardwareError
from workbench.power._facts import resolve

FITS_FILE = "power_fits.csv"
#: Preferred ML.ENERGY task when a (GPU, model, GPU count) has several (chat first).
TASK_ORDER = ("lm-arena-chat", "gpqa", "sourcegraph-fim", "image-chat", "video-chat")
#: Lookup steps of :func:`power_curve`, in order.
RULES = ("fit", "scaled_default", "other_task", "gpu_default")
#: Median |error| of per-GPU power of each lookup step on the ML.ENERGY v3 runs (fraction), from
#: :func:`workbench.power.fitting.lookup_rule_errors`: ``fit`` predicts interior runs from a fit to the other
#: runs of their group; ``scaled_default`` fits the two smallest-batch runs of groups with >= 4 and predicts
#: the rest; ``other_task`` predicts every run from the fit of another task of its model at its GPU count;
#: ``gpu_default`` predicts every run from its GPU's pooled curve.
RULE_ERRORS: dict[str, float] = {
    "fit": 0.019,
    "scaled_default": 0.082,
    "other_task": 0.131,
    "gpu_default": 0.139,
}


def logistic_power(
    batch: float | np.ndarray, p_low: float | np.ndarray, p_high: float | np.ndarray, k, x0
) -> float | np.ndarray:
    """Per-GPU busy power (W) of the logistic model at ``batch`` sequences (below 1 counts as 1).

    The one implementation of the formula in the module docstring; parameters broadcast (numpy).

    Parameters
    ----------
    batch
        Running sequences per instance.
    p_low, p_high, k, x0
        The curve's low and high power levels (W), steepness and midpoint (in ``log2(batch)``).

    Returns
    -------
    float or numpy.ndarray
        Power in W; a float for scalar inputs.
    """
    out = logistic_log2(np.log2(np.maximum(np.asarray(batch, dtype=float), 1.0)), p_low, p_high, k, x0)
    return float(out) if np.ndim(out) == 0 else out


def logistic_log2(x: np.ndarray, p_low, p_high, k, x0) -> np.ndarray:
    """Return the logistic of :func:`logistic_power` in ``x = log2(batch)`` (no clamping; for fitting)."""
    return p_low + (p_high - p_low) / (1.0 + np.exp(-k * (x - x0)))


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
        Where the parameters come from (fit key or default basis, and the lookup rule with its error).
    rule
        Lookup step that produced the curve (one of :data:`RULES`), ``"user"`` for a curve built by hand.
    """

    p_low_w: float
    p_high_w: float
    k: float
    x0: float
    source: str = "user"
    rule: str = "user"

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
        return logistic_power(batch, self.p_low_w, self.p_high_w, self.k, self.x0)

    def scaled(self, factor: float) -> LogisticPower:
        """Return the curve with both levels multiplied by ``factor`` (e.g. a clock's power scale)."""
        require_positive("factor", factor)
        return LogisticPower(
            self.p_low_w * factor, self.p_high_w * factor, self.k, self.x0, self.source, self.rule
        )

    @property
    def rule_error(self) -> float:
        """Median |error| of this curve's lookup step on the ML.ENERGY runs (NaN for ``"user"`` curves)."""
        return RULE_ERRORS.get(self.rule, math.nan)


@functools.cache
def load_fits() -> pl.DataFrame:
    """Return the shipped fit table ``data/power_fits.csv`` (see :func:`workbench.power.fitting.build_fits`)."""
    return pl.read_csv(data_path(FITS_FILE), infer_schema_length=None)


def _norm(name: str) -> str:
    return str(name).lower().rsplit("/", 1)[-1]


def matches_model(model_id: str, query: str) -> bool:
    """Whether Hugging Face id ``model_id`` names the model ``query``.

    The query matches the full id or its last part, case-insensitive, ``-Instruct`` optional.
    """
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
    """Return the per-GPU power curve of ``model`` on ``n_gpus`` (default ``tp``, else 1) x ``gpu``.

    Follows the lookup rule of the module docstring; the returned curve's ``rule`` and ``source`` say which
    step answered and with what measured error. Unknown GPUs raise :class:`HardwareError`.

    Parameters
    ----------
    gpu
        GPU name (catalog names and aliases).
    model
        Model served (``None``: the GPU's default curve).
    tp
        Tensor-parallel degree of the instance, preferred among the fits.
    n_gpus
        GPUs of the measured run to match (default ``tp``, else 1).
    task
        ML.ENERGY task whose fits to prefer (default: the first of :data:`TASK_ORDER` with a fit).

    Returns
    -------
    LogisticPower
        Busy power per GPU versus batch size, with the lookup step in ``rule`` and ``source``.
    """
    name = resolve(gpu)
    fits = load_fits().filter(pl.col("gpu") == name)
    want_n = int(n_gpus if n_gpus is not None else (tp if tp is not None else 1))
    runs = fits.filter(pl.col("scope") == "run_group")
    why = "no model given"
    if model is not None:
        runs = runs.filter(
            pl.col("model_id").map_elements(lambda m: matches_model(m, model), return_dtype=pl.Boolean)
        )
        same_n = runs.filter(pl.col("num_gpus") == want_n)
        order = {t: i for i, t in enumerate(TASK_ORDER)}

        def best(rows: pl.DataFrame) -> dict:
            return (
                rows.with_columns(
                    _tp=(pl.col("tp") != (tp if tp is not None else pl.col("tp"))).cast(pl.Int32),
                    _task=pl.col("task").replace_strict(order, default=len(order), return_dtype=pl.Int32),
                )
                .sort(["_task", "_tp", "n_points"], descending=[False, False, True])
                .row(0, named=True)
            )

        exact = same_n if task is None else same_n.filter(pl.col("task") == task)
        if exact.height:
            row = best(exact)
            return _curve(row, "scaled_default" if row["fit_kind"] == "scaled_default" else "fit")
        if same_n.height:
            row = best(same_n)
            return _curve(row, "other_task", f"no run of task {task!r}")
        why = f"no ML.ENERGY run of {model!r} on {want_n} x {name}" + (
            f" (runs at {sorted(set(runs['num_gpus']))} GPUs are not used)" if runs.height else ""
        )
    default = fits.filter(pl.col("scope") == "gpu_default")
    if default.height == 0:
        raise HardwareError(f"no power curve for GPU {name!r} in {FITS_FILE}")
    return _curve(default.row(0, named=True), "gpu_default", why)


def _curve(row: dict, rule: str, why: str = "") -> LogisticPower:
    if row["scope"] == "gpu_default":
        src = f"gpu_default {row['gpu']}: {row['source']}"
    else:
        src = f"fit {row['gpu']} {row['model_id']} {row['task']} n={row['num_gpus']} tp={row['tp']}"
    src += f"; rule {rule}" + (f" ({why})" if why else "") + f", median |error| {RULE_ERRORS[rule]:.1%}"
    return LogisticPower(row["p_low_w"], row["p_high_w"], row["k"], row["x0"], source=src, rule=rule)
