"""Calibration of performance models against profiled iteration times.

A *profile* is a polars table with one row per measured iteration: the :class:`~workbench.hardware.perf.Batch`
columns (``prefill_tokens, prefill_context, decode_seqs, decode_context``), ``time_s``, and ``tp``; optional
``config`` (rows of one measured configuration share it, for grouped hold-out splits) and ``kind``.

- :func:`splitwise_profile` turns SplitwiseSim's ``perf_model.csv`` into profiles (a prefill and a decode row
  per measurement).
- :func:`fit_roofline` fits the roofline's efficiency parameters (MFU, MBU, overheads, all-reduce) by robust
  least squares on log time; :func:`calibrated_roofline` returns the fit shipped in
  ``data/perf_fits/splitwise_roofline.csv`` as a ready :class:`~workbench.hardware.RooflineModel`.
- :func:`holdout_split` and :func:`evaluate` report the error on held-out configurations.

Accuracy of the shipped fit
---------------------------
:func:`fit_splitwise` fits one roofline per (model, hardware, tp) of SplitwiseSim's table (12 groups,
suspect configurations left out) on 80 % of the measured configurations and scores the other 20 % (whole
configurations held out, ``seed=0`` for the shipped file). Held-out MAPE at seed 0: **5.7 % pooled, 2.2 %
decode, 9.2 % prefill** (a per-group interpolation table on the same split: 7.0 / 2.1 / 11.9 %). Over split
seeds 0-5 the roofline's held-out MAPE ranges 5.6-7.0 % pooled, 2.1-3.0 % decode and 9.1-11.4 % prefill, so
the <= 10 % target holds pooled and for decode on every split, for prefill on four of six.

The parameters are fitted jointly and are not separately identifiable from this table, so read them as a
good interpolator of these configurations, not as measured efficiencies: several sit at their bounds in
the shipped fit -- MFU at its upper bound 1.0 (Llama-2-70B on A100 at TP 2 and 4: prefill then leans on the
all-reduce term, whose ``comm_efficiency`` drops to 0.057 at TP 2), a fixed overhead of ~0 s for 5 of 12
groups (the per-sequence overhead absorbs it), and ``comm_efficiency`` or MBU at 1.0 for a few
power-capped/BLOOM groups. Extrapolation to other models, TP degrees or batch shapes is not validated.

Examples
--------
>>> perf = calibrated_roofline("llama2-70b", "h100-80gb", tp=4)
>>> 0.02 < perf.decode_time(8, 1024) < 0.05
True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import polars as pl

from workbench._paths import data_path
from workbench.errors import ConfigError, HardwareError
from workbench.hardware.catalog import GPU, ModelSpec, gpu, model
from workbench.hardware.perf import Batch, PerformanceModel
from workbench.hardware.roofline import RooflineModel
from workbench.hardware.table import BATCH_COLUMNS, mape
from workbench.seeds import Streams

#: SplitwiseSim hardware names -> GPU table names (``-pcap`` is a power-capped H100: same chip, own fit).
SPLITWISE_HARDWARE = {"a100-80gb": "A100-80GB-SXM", "h100-80gb": "H100-SXM", "h100-80gb-pcap": "H100-SXM"}

#: Parameters fitted by default, with (lower, upper) bounds and the scale used by the optimiser.
FIT_PARAMS: dict[str, tuple[float, float, float]] = {
    "mfu": (0.02, 1.0, 1.0),
    "mbu": (0.02, 1.0, 1.0),
    "overhead_s": (0.0, 0.2, 1e-3),
    "seq_overhead_s": (0.0, 0.01, 1e-4),
    "allreduce_latency_s": (0.0, 1e-3, 1e-5),
    "comm_efficiency": (0.02, 1.0, 1.0),
}
FITS_FILE = "perf_fits/splitwise_roofline.csv"


def splitwise_profile(path: str | Path | None = None) -> pl.DataFrame:
    """SplitwiseSim's measured table as a profile (times in seconds).

    Each source row (``prompt_size`` tokens x ``batch_size`` prompts, then ``token_size`` generated tokens)
    gives a prefill row (``prompt_time``) and a decode row (``token_time``, the mean decode iteration, whose
    context is ``prompt_size + token_size / 2`` per sequence, exact for a time affine in the context).

    Parameters
    ----------
    path
        The CSV; default: the registered dataset ``splitwise_perf`` (``WORKBENCH_DATA_DIR``, no download).

    Returns
    -------
    polars.DataFrame
        Columns ``model, hardware, gpu, tp, config, kind, prefill_tokens, prefill_context, decode_seqs,
        decode_context, time_s, suspect`` (``suspect``: the configuration's prefill time is not monotone in
        tokens, see the code comment; :func:`fit_splitwise` leaves such rows out).
    """
    if path is None:
        from workbench import datasets

        path = datasets.fetch("splitwise_perf", allow_download=False)
    raw = pl.read_csv(path, glob=False)
    need = {
        "model",
        "hardware",
        "prompt_size",
        "batch_size",
        "token_size",
        "prompt_time",
        "token_time",
        "tensor_parallel",
    }
    if need - set(raw.columns):
        raise ConfigError(f"{path}: missing SplitwiseSim column(s) {sorted(need - set(raw.columns))}")
    b, p, t = pl.col("batch_size"), pl.col("prompt_size"), pl.col("token_size")
    base = raw.with_columns(
        pl.col("hardware").replace_strict(SPLITWISE_HARDWARE, default=None).alias("gpu"),
        pl.col("tensor_parallel").alias("tp"),
        pl.concat_str(
            "model", "hardware", "tensor_parallel", "prompt_size", "batch_size", "token_size", separator="/"
        ).alias("config"),
    )
    cols = ["model", "hardware", "gpu", "tp", "config", "kind", *BATCH_COLUMNS, "time_s"]
    prefill = base.with_columns(
        pl.lit("prefill").alias("kind"),
        (b * p).alias("prefill_tokens"),
        (b * p * p / 2).cast(pl.Float64).alias("prefill_context"),
        pl.lit(0).alias("decode_seqs"),
        pl.lit(0).alias("decode_context"),
        (pl.col("prompt_time") / 1e3).alias("time_s"),
    ).select(cols)
    decode = base.with_columns(
        pl.lit("decode").alias("kind"),
        pl.lit(0).alias("prefill_tokens"),
        pl.lit(0.0).alias("prefill_context"),
        b.alias("decode_seqs"),
        (b * (p + t // 2)).alias("decode_context"),
        (pl.col("token_time") / 1e3).alias("time_s"),
    ).select(cols)
    ints = [pl.col(c).cast(pl.Int64) for c in ("tp", "prefill_tokens", "decode_seqs", "decode_context")]
    # A configuration is suspect when its prefill is < half as long as one with fewer tokens on the same setup
    # (Llama-2-70B, TP 2, 64 x 512 tokens on all three GPUs: 0.36-0.80 s after 2.4-6.6 s for 32 x 512; likely
    # a failed run). Whole configurations are flagged, prefill and decode rows alike.
    group = ["model", "hardware", "tp"]
    means = (
        prefill.group_by(*group, "prefill_tokens", "config")
        .agg(pl.col("time_s").mean())
        .sort(*group, "prefill_tokens")
        .with_columns(pl.col("time_s").cum_max().over(group).alias("_before"))
    )
    bad = means.filter(pl.col("time_s") < 0.5 * pl.col("_before"))["config"]
    out = pl.concat([prefill.with_columns(ints), decode.with_columns(ints)])
    return out.with_columns(pl.col("config").is_in(bad.implode()).alias("suspect"))


def holdout_split(profile: pl.DataFrame, frac: float = 0.2, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split a profile into (train, test) by whole configurations (``config`` column), reproducibly.

    Parameters
    ----------
    profile
        Measured iterations with a ``config`` column.
    frac
        Share of configurations held out (at least one).
    seed
        Seed of the choice.

    Returns
    -------
    tuple of (polars.DataFrame, polars.DataFrame)
        The training and test rows.
    """
    if "config" not in profile.columns:
        raise ConfigError("profile needs a 'config' column for a grouped split")
    configs = profile["config"].unique().sort().to_numpy()
    rng = Streams(seed).rng("calibrate/holdout")
    test = set(rng.choice(configs, size=max(1, round(frac * len(configs))), replace=False).tolist())
    mask = profile["config"].is_in(list(test))
    return profile.filter(~mask), profile.filter(mask)


def predict(models: PerformanceModel | dict[int, PerformanceModel], profile: pl.DataFrame) -> np.ndarray:
    """Predicted seconds for every profile row (``models`` per ``tp`` when a dict)."""
    out = np.empty(profile.height)
    tps = profile["tp"].to_list() if "tp" in profile.columns else [1] * profile.height
    rows = profile.select(BATCH_COLUMNS).iter_rows()
    for i, (tp, row) in enumerate(zip(tps, rows, strict=True)):
        m = models[tp] if isinstance(models, dict) else models
        out[i] = m.iteration_time(Batch(*row))
    return out


@dataclass(frozen=True, slots=True)
class RooflineFit:
    """Fitted roofline parameters for one (GPU, model) and the training error.

    Call :meth:`perf` for a :class:`RooflineModel` at a tensor-parallel degree.
    """

    gpu: GPU
    model: ModelSpec
    params: dict[str, float]
    rows: int
    train_mape: float

    def perf(self, tp: int = 1) -> RooflineModel:
        """Return the calibrated :class:`RooflineModel` at tensor parallelism ``tp``."""
        return RooflineModel(self.gpu, self.model, tp, **self.params)


def fit_roofline(
    profile: pl.DataFrame,
    gpu_name: str | GPU,
    model_name: str | ModelSpec,
    *,
    params: Sequence[str] = tuple(FIT_PARAMS),
    fixed: dict[str, float] | None = None,
) -> RooflineFit:
    """Fit roofline efficiency parameters to a profile by robust least squares on log(predicted / measured).

    Parameters
    ----------
    profile
        Measured iterations (see module docstring); ``tp`` may vary across rows.
    gpu_name, model_name
        The hardware and model measured.
    params
        Names of :class:`RooflineModel` parameters to fit (default: all of ``FIT_PARAMS``).
    fixed
        Values for other parameters.

    Returns
    -------
    RooflineFit
    """
    from scipy.optimize import least_squares

    unknown = set(params) - set(FIT_PARAMS)
    if unknown:
        raise ConfigError(f"cannot fit {sorted(unknown)}; fittable: {', '.join(FIT_PARAMS)}")
    if profile.height == 0:
        raise ConfigError("profile is empty")
    g, m = gpu(gpu_name), model(model_name)
    fixed = dict(fixed or {})
    defaults = {f.name: f.default for f in dataclasses.fields(RooflineModel) if f.name in FIT_PARAMS}
    lo = np.array([FIT_PARAMS[p][0] for p in params])
    hi = np.array([FIT_PARAMS[p][1] for p in params])
    scale = np.array([FIT_PARAMS[p][2] for p in params])
    x0 = np.clip(np.array([fixed.pop(p, defaults[p]) for p in params]), lo, hi)
    observed = profile["time_s"].to_numpy()
    tps = sorted(set(profile["tp"].to_list()))

    def build(theta: np.ndarray) -> dict[int, PerformanceModel]:
        kw = {**fixed, **dict(zip(params, (theta * scale).tolist(), strict=True))}
        return {tp: RooflineModel(g, m, tp, **kw) for tp in tps}

    def residuals(theta: np.ndarray) -> np.ndarray:
        return np.log(predict(build(theta), profile) / observed)

    res = least_squares(residuals, x0 / scale, bounds=(lo / scale, hi / scale), loss="soft_l1", f_scale=0.1)
    fitted = {**fixed, **dict(zip(params, (res.x * scale).tolist(), strict=True))}
    train = mape(predict(build(res.x), profile), observed)
    return RooflineFit(g, m, fitted, profile.height, train)


def evaluate(models: PerformanceModel | dict[int, PerformanceModel], profile: pl.DataFrame) -> pl.DataFrame:
    """MAPE (%) and row count per ``kind`` (prefill/decode) and overall.

    Parameters
    ----------
    models
        A performance model, or one per tensor-parallel degree.
    profile
        Measured iterations (``time_s``, and ``kind`` when present).

    Returns
    -------
    polars.DataFrame
        ``kind, mape_pct, rows``, one row per kind and one for ``"all"``.
    """
    pred = predict(models, profile)
    frame = profile.select(
        pl.col("kind") if "kind" in profile.columns else pl.lit("all").alias("kind"), "time_s"
    ).with_columns(pl.Series("pred", pred))
    ape = (pl.col("pred") / pl.col("time_s") - 1).abs() * 100
    per_kind = frame.group_by("kind").agg(ape.mean().alias("mape_pct"), pl.len().alias("rows")).sort("kind")
    overall = frame.select(pl.lit("all").alias("kind"), ape.mean().alias("mape_pct"), pl.len().alias("rows"))
    return pl.concat([per_kind, overall.cast(per_kind.schema)])


@cache
def _fits() -> pl.DataFrame:
    return pl.read_csv(data_path(FITS_FILE))


def calibrated_roofline(model_name: str, hardware: str, tp: int) -> RooflineModel:
    """Return the shipped SplitwiseSim fit for (``model_name``, ``hardware``, ``tp``) as a roofline.

    The result is a :class:`RooflineModel`.

    ``hardware`` is a SplitwiseSim name (``a100-80gb``, ``h100-80gb``, ``h100-80gb-pcap``) or a GPU name;
    ``model_name`` any alias of ``llama2-70b`` or ``bloom-176b``.

    Parameters
    ----------
    model_name
        Model name or alias.
    hardware
        SplitwiseSim hardware name or GPU name.
    tp
        Tensor-parallel degree.

    Returns
    -------
    RooflineModel
        The roofline with the fitted parameters.
    """
    fits = _fits()
    m = model(model_name).name
    hw = hardware if hardware in SPLITWISE_HARDWARE else None
    if hw is None:
        g = gpu(hardware).name
        hw = next((k for k, v in SPLITWISE_HARDWARE.items() if v == g), hardware)
    row = fits.filter((pl.col("model") == m) & (pl.col("hardware") == hw) & (pl.col("tp") == tp))
    if row.height == 0:
        known = ", ".join(f"{a}@{b}/tp{c}" for a, b, c in fits.select("model", "hardware", "tp").iter_rows())
        raise HardwareError(f"no calibrated fit for {m} on {hardware!r} at tp={tp}; known: {known}")
    r = row.row(0, named=True)
    return RooflineModel(r["gpu"], m, tp, **{p: float(r[p]) for p in FIT_PARAMS if r[p] is not None})


#: Parameters fitted per (model, hardware, tp) for SplitwiseSim (the all-reduce latency is not identifiable
#: from the fixed overhead at a single ``tp``, so it keeps its default).
SPLITWISE_PARAMS = ("mfu", "mbu", "overhead_s", "seq_overhead_s", "comm_efficiency")


def fit_splitwise(
    profile: pl.DataFrame | None = None, *, frac: float = 0.2, seed: int = 0
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Fit one roofline per (model, hardware, tp) of SplitwiseSim's table on a training split; score the rest.

    The same split also scores a :class:`~workbench.hardware.table.TablePerformanceModel` built from the same
    training rows, as a model-free baseline.

    Returns
    -------
    (fits, errors)
        ``fits``: one row per (model, hardware, tp) with the fitted parameters and train/held-out MAPE (the
        content of ``data/perf_fits/splitwise_roofline.csv``). ``errors``: held-out absolute percentage error
        summary per (method, kind) over all groups, pooled by row.
    """
    from workbench.hardware.table import TablePerformanceModel

    profile = splitwise_profile() if profile is None else profile
    if "suspect" in profile.columns:
        profile = profile.filter(~pl.col("suspect"))
    train, test = holdout_split(profile, frac, seed)
    fit_rows, scored = [], []
    keys = ["model", "hardware", "tp"]
    for (mname, hw, tp), part in train.sort(keys).group_by(keys, maintain_order=True):
        held = test.filter((pl.col("model") == mname) & (pl.col("hardware") == hw) & (pl.col("tp") == tp))
        fit = fit_roofline(part, SPLITWISE_HARDWARE[hw], mname, params=SPLITWISE_PARAMS)
        roof, table = fit.perf(tp), TablePerformanceModel.from_table(part)
        observed = held["time_s"].to_numpy()
        for method, perf in (("roofline", roof), ("table", table)):
            ape = np.abs(predict(perf, held) / observed - 1) * 100
            scored.append(pl.DataFrame({"method": method, "kind": held["kind"], "ape_pct": ape}))
        ev = evaluate(roof, held).select("kind", "mape_pct").rows()
        fit_rows.append(
            {
                "model": fit.model.name,
                "hardware": hw,
                "gpu": fit.gpu.name,
                "tp": tp,
                **{p: fit.params.get(p, np.nan) for p in FIT_PARAMS},
                "train_rows": fit.rows,
                "train_mape_pct": fit.train_mape,
                "test_rows": held.height,
                **{f"test_mape_{k}_pct": v for k, v in ev},
                "split_seed": seed,
                "test_fraction": frac,
            }
        )
    errors = (
        pl.concat(scored)
        .group_by("method", "kind")
        .agg(
            pl.col("ape_pct").mean().alias("mape_pct"),
            pl.col("ape_pct").quantile(0.9).alias("p90_ape_pct"),
            pl.len().alias("rows"),
        )
        .sort("method", "kind")
    )
    overall = (
        pl.concat(scored)
        .group_by("method")
        .agg(
            pl.lit("all").alias("kind"),
            pl.col("ape_pct").mean().alias("mape_pct"),
            pl.col("ape_pct").quantile(0.9).alias("p90_ape_pct"),
            pl.len().alias("rows"),
        )
    )
    return pl.DataFrame(fit_rows), pl.concat([errors, overall.select(errors.columns).cast(errors.schema)])
