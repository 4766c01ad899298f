"""Check the roofline against Vidur's profiled operator times (``../shared/data/profiles/vidur``).

Vidur (Agrawal et al., MLSys 2024; microsoft/vidur, MIT) profiles per-layer operators in milliseconds. Two
comparisons are made, each with the roofline's default parameters and after fitting its efficiency parameters
to that table together with a per-layer floor ``floor_s`` (microseconds of kernel-launch latency, which the
roofline otherwise books per iteration in ``overhead_s``); the fitted values say what the kernels achieve:

- ``linear``: the sum of a layer's non-attention operators (norms, QKV/O projections, RoPE, MLP, residual add)
  against :meth:`RooflineModel.layer_linear_time` (fit: ``mfu`` and ``mbu``), per token count and TP degree,
  for Llama-2-7B (A100, H100), Llama-3-8B (A100) and Llama-2-70B (A100);
- ``attention_prefill`` / ``attention_decode``: FlashAttention kernels of Llama-2-70B at TP 2 on A100 against
  :meth:`RooflineModel.layer_attention_time` (fit: ``attn_mfu`` / ``mbu``). Vidur's decode profile reads about
  1.5 TB/s of KV (75 % of the A100's 2.0 TB/s).

The all-reduce table is not compared: it was measured on pairwise-NVLink machines (GPU pairs joined by NVLink,
4 GPUs over PCIe), not on NVSwitch nodes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import polars as pl

from workbench.errors import DatasetError
from workbench.hardware.roofline import RooflineModel

#: (file, GPU, model) of the per-layer non-attention tables.
LINEAR_TABLES = (
    ("h100_Llama-2-7b-hf_mlp.csv", "H100-SXM", "Llama-2-7B"),
    ("a100_Llama-2-7b-hf_mlp.csv", "A100-80GB-SXM", "Llama-2-7B"),
    ("a100_Meta-Llama-3-8B_mlp.csv", "A100-80GB-SXM", "Llama-3-8B"),
    ("a100_Llama-2-70b-hf_mlp.csv", "A100-80GB-SXM", "Llama-2-70B"),
)
ATTENTION_TABLE = ("a100_Llama-2-70b-hf_tp2_attention.csv", "A100-80GB-SXM", "Llama-2-70B", 2)
_LINEAR_OPS = (
    "input_layernorm",
    "attn_pre_proj",
    "attn_rope",
    "attn_post_proj",
    "post_attention_layernorm",
    "mlp_up_proj",
    "mlp_act",
    "mlp_down_proj",
    "add",
)


def vidur_dir(root: str | Path | None = None) -> Path:
    """Folder of the Vidur CSVs: ``root``, ``$WORKBENCH_PROFILES_DIR/vidur`` or the shared profiles folder."""
    if root is None:
        env = os.environ.get("WORKBENCH_PROFILES_DIR")
        if env:
            root = Path(env) / "vidur"
        else:
            traces = os.environ.get("WORKBENCH_DATA_DIR")
            base = Path(traces).parent if traces else Path(__file__).resolve().parents[3] / "shared" / "data"
            root = base / "profiles" / "vidur"
    root = Path(root)
    if not (root / LINEAR_TABLES[0][0]).exists():
        raise DatasetError(
            f"Vidur profiles not found in {root}; set WORKBENCH_PROFILES_DIR to the folder holding vidur/",
            file=LINEAR_TABLES[0][0],
        )
    return root


def vidur_linear(file: str, root: str | Path | None = None) -> pl.DataFrame:
    """One Vidur MLP table as ``tp, tokens, measured_s`` (median per-layer seconds of the linear operators)."""
    df = pl.read_csv(vidur_dir(root) / file, glob=False)
    return df.select(
        pl.col("num_tensor_parallel_workers").alias("tp"),
        pl.col("num_tokens").alias("tokens"),
        (pl.sum_horizontal([pl.col(f"time_stats.{op}.median") for op in _LINEAR_OPS]) / 1e3).alias(
            "measured_s"
        ),
    )


def vidur_attention(root: str | Path | None = None) -> pl.DataFrame:
    """Vidur's attention table as ``kind, prefill_pairs, decode_context, measured_s`` (per layer)."""
    df = pl.read_csv(vidur_dir(root) / ATTENTION_TABLE[0], glob=False, infer_schema_length=None)
    chunk, kv = pl.col("prefill_chunk_size"), pl.col("kv_cache_size")
    prefill = df.filter(pl.col("is_prefill")).select(
        pl.lit("attention_prefill").alias("kind"),
        (pl.col("batch_size") * chunk * (kv + chunk / 2)).cast(pl.Float64).alias("prefill_pairs"),
        pl.lit(0).cast(pl.Int64).alias("decode_context"),
        (pl.col("time_stats.attn_prefill.median").cast(pl.Float64) / 1e3).alias("measured_s"),
    )
    decode = df.filter(~pl.col("is_prefill")).select(
        pl.lit("attention_decode").alias("kind"),
        pl.lit(0.0).alias("prefill_pairs"),
        (pl.col("batch_size") * kv).cast(pl.Int64).alias("decode_context"),
        (pl.col("time_stats.attn_decode.median").cast(pl.Float64) / 1e3).alias("measured_s"),
    )
    return pl.concat([prefill, decode]).filter(pl.col("measured_s") > 0)


def _predict(kind: str, gpu: str, model: str, rows: pl.DataFrame, params: dict[str, float]) -> np.ndarray:
    params = dict(params)
    floor = params.pop("floor_s", 0.0) * 1e-6
    return floor + _roofline(kind, gpu, model, rows, params)


def _roofline(kind: str, gpu: str, model: str, rows: pl.DataFrame, params: dict[str, float]) -> np.ndarray:
    if kind == "linear":
        perfs = {tp: RooflineModel(gpu, model, tp, **params) for tp in rows["tp"].unique().to_list()}
        return np.array([perfs[tp].layer_linear_time(n) for tp, n in rows.select("tp", "tokens").iter_rows()])
    perf = RooflineModel(gpu, model, ATTENTION_TABLE[3], **params)
    return np.array(
        [perf.layer_attention_time(p, c) for p, c in rows.select("prefill_pairs", "decode_context").iter_rows()]
    )


def _fit(kind: str, gpu: str, model: str, rows: pl.DataFrame, names: tuple[str, ...]) -> dict[str, float]:
    from scipy.optimize import least_squares

    observed = rows["measured_s"].to_numpy()

    def residuals(x: np.ndarray) -> np.ndarray:
        return np.log(_predict(kind, gpu, model, rows, dict(zip(names, x.tolist(), strict=True))) / observed)

    lo = [0.0 if n == "floor_s" else 0.01 for n in names]
    hi = [100.0 if n == "floor_s" else 1.0 for n in names]
    res = least_squares(residuals, np.full(len(names), 0.5), bounds=(lo, hi))
    return dict(zip(names, res.x.tolist(), strict=True))


def compare_vidur(root: str | Path | None = None, **params: float) -> pl.DataFrame:
    """Mean absolute percentage error of the roofline against every Vidur table.

    Parameters
    ----------
    root
        Folder of the Vidur CSVs (see :func:`vidur_dir`).
    **params
        :class:`RooflineModel` parameters for the "default" column (e.g. ``mfu=0.6``).

    Returns
    -------
    polars.DataFrame
        One row per table: ``kind, gpu, model, rows, mape_default_pct, fitted`` (the fitted parameters as
        text), ``mape_fitted_pct``.
    """
    jobs = [("linear", g, m, vidur_linear(f, root), ("mfu", "mbu", "floor_s")) for f, g, m in LINEAR_TABLES]
    attention = vidur_attention(root)
    _, g, m, _ = ATTENTION_TABLE
    jobs.append(
        (
            "attention_prefill",
            g,
            m,
            attention.filter(pl.col("kind") == "attention_prefill"),
            ("attn_mfu", "floor_s"),
        )
    )
    jobs.append(
        ("attention_decode", g, m, attention.filter(pl.col("kind") == "attention_decode"), ("mbu", "floor_s"))
    )
    out = []
    for kind, g, m, rows, names in jobs:
        observed = rows["measured_s"].to_numpy()
        default = np.mean(np.abs(_predict(kind, g, m, rows, params) / observed - 1)) * 100
        fitted = _fit(kind, g, m, rows, names)
        best = np.mean(np.abs(_predict(kind, g, m, rows, {**params, **fitted}) / observed - 1)) * 100
        text = ", ".join(f"{k}={v:.3g}" for k, v in fitted.items())
        out.append((kind, g, m, rows.height, float(default), text, float(best)))
    return pl.DataFrame(
        out,
        orient="row",
        schema=["kind", "gpu", "model", "rows", "mape_default_pct", "fitted", "mape_fitted_pct"],
    )
