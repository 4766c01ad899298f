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

import math
import os
from pathlib import Path

import numpy as np
import polars as pl

from workbench.errors import DatasetError, HardwareError
from workbench.hardware.perf import Batch, DecodeRunMixin
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
    jobs: list[tuple[str, str, str, pl.DataFrame, tuple[str, ...]]] = [
        ("linear", g, m, vidur_linear(f, root), ("mfu", "mbu", "floor_s")) for f, g, m in LINEAR_TABLES
    ]
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


# ------------------------------------------------------------------------------------ Vidur's tables as a model
#: (GPU, model, TP) -> (MLP table, attention table, all-reduce table or None at TP 1): the configurations whose
#: three tables are in ``../shared/data/profiles/vidur``. Llama-2-7B (A100, H100) and Llama-3-8B (A100) have
#: MLP tables but no attention table; the newer per-model attention tables are stored with Git LFS upstream.
PROFILE_CONFIGS: dict[tuple[str, str, int], tuple[str, str, str | None]] = {
    ("A100-80GB-SXM", "Llama-2-70B", 2): (
        "a100_Llama-2-70b-hf_mlp.csv",
        "a100_Llama-2-70b-hf_tp2_attention.csv",
        "a100_pairwise_nvlink_all_reduce.csv",
    ),
}


def _isotonic(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``y`` (sorted by ``x``) made non-decreasing by least squares (pool adjacent violators).

    An operator never gets faster with more work, and the all-reduce table's small messages scatter by 5x
    between neighbours.
    """
    means: list[float] = []
    counts: list[int] = []
    for v in np.asarray(y, dtype=float)[np.argsort(x, kind="stable")]:
        means.append(v)
        counts.append(1)
        while len(means) > 1 and means[-2] > means[-1]:
            n = counts[-2] + counts[-1]
            means[-2] = (means[-2] * counts[-2] + means[-1] * counts[-1]) / n
            counts[-2] = n
            means.pop()
            counts.pop()
    return np.repeat(means, counts)


class VidurProfile(DecodeRunMixin):
    """Vidur's measured operator tables as a performance model (interpolated, no fitted parameters).

    An iteration of ``T = prefill_tokens + decode_seqs`` tokens takes, like Vidur's execution-time predictor
    (``vidur/execution_time_predictor``, MIT, commit 7d47513)::

        layers x (linear(T) + prefill_attention + decode_attention + 2 (all_reduce(T) + launch))

    - ``linear(T)``: the sum of the MLP table's per-layer operators (norms, QKV/O projections, RoPE, MLP,
      residual add) at ``T`` rounded up to a multiple of 8 tokens, at this ``tp``;
    - prefill attention: the attention table's FlashAttention prefill at (context, chunk). Whole prompts (no
      context: ``2 x prefill_context <= prefill_tokens^2``) are looked up as Vidur does, at context 0 and the
      chunk ``round(sqrt(sum chunk^2))`` (``sum chunk^2 = 2 x prefill_context``), x (1 +
      ``prefill_batching_overhead``) for more than one prompt (a grouped-query model). A batch with context is
      read as one chunk of ``prefill_tokens`` tokens at context ``prefill_context / prefill_tokens -
      prefill_tokens / 2`` rounded up to 64 (exact for one chunk; for several chunks with context the
      token-weighted mean context, where Vidur sums the contexts: the ``Batch`` does not carry them);
    - decode attention: the table's decode kernel at the decode batch and the mean context rounded up to 64
      tokens, x (1 + ``decode_batching_overhead``) for more than one sequence (grouped-query);
    - all-reduce: the NVLink all-reduce table at ``T x hidden x 2`` bytes, twice per layer (after attention and
      after the MLP), plus Vidur's NCCL launch overhead ``allreduce_launch_s``.

    Times are the tables' medians (a cell profiled twice: their mean) interpolated linearly, where Vidur fits
    random forests to the same rows; both reproduce the rows, scatter included (the all-reduce of 16-24
    tokens takes 0.023 ms, of 8 or 32 tokens 0.05 ms: NCCL changes protocol). ``monotone=True`` makes every
    table non-decreasing in work instead; it changes little per iteration, but a 4 % slower decode step at
    batch 16 doubles the median TTFT of a replica near saturation (Vidur's arXiv run at 0.5 requests/s).
    Vidur's embedding, sampling and CPU overheads are not modelled (its default skips them too).

    Domain (what the tables cover; anything outside raises :class:`HardwareError` instead of extrapolating):
    at most :attr:`max_tokens` (4,096) tokens per iteration, :attr:`max_batch` (128) decoding sequences, and a
    context plus chunk of at most :attr:`max_context` (4,096) tokens per sequence. Below the smallest profiled
    prefill chunk (64 tokens) the 64-token time is used (a kernel-launch floor), as Vidur's forests do.

    Parameters
    ----------
    gpu, model, tp
        A configuration of :data:`PROFILE_CONFIGS`; anything else raises :class:`HardwareError` naming what the
        tables cover.
    root
        Folder of the Vidur CSVs (see :func:`vidur_dir`).
    decode_batching_overhead, prefill_batching_overhead, allreduce_launch_s
        Vidur's defaults (0.1, 0.1, 0.02 ms).
    token_granularity, context_granularity
        Vidur's rounding of the batch's tokens (8) and of the attention context (64).
    monotone
        Make every table non-decreasing in work (pool-adjacent-violators along tokens and message size,
        running maxima along batch and context); ``False`` (default, as Vidur) reads the medians as they are.

    Examples
    --------
    >>> perf = VidurProfile()  # doctest: +SKIP
    >>> round(perf.decode_time(64, 1024) * 1e3, 1)  # doctest: +SKIP
    40.3
    """

    def __init__(
        self,
        gpu: str = "A100-80GB-SXM",
        model: str = "Llama-2-70B",
        tp: int = 2,
        *,
        root: str | Path | None = None,
        decode_batching_overhead: float = 0.1,
        prefill_batching_overhead: float = 0.1,
        allreduce_launch_s: float = 2e-5,
        token_granularity: int = 8,
        context_granularity: int = 64,
        monotone: bool = False,
    ) -> None:
        from workbench.hardware.catalog import gpu as gpu_spec
        from workbench.hardware.catalog import model as model_spec

        g, m = gpu_spec(gpu), model_spec(model)
        key = (g.name, m.name, int(tp))
        if key not in PROFILE_CONFIGS:
            have = "; ".join(f"{b} on {a} at TP {c}" for a, b, c in PROFILE_CONFIGS)
            raise HardwareError(
                f"no Vidur profile for {m.name} on {g.name} at TP {tp}: the shipped tables cover {have} "
                "(MLP, attention and all-reduce); the Llama-2-7B and Llama-3-8B MLP tables have no attention "
                "table. Use RooflineModel, or a TablePerformanceModel of your own measurements"
            )
        self.gpu, self.model, self.tp = g, m, int(tp)
        self.decode_batching_overhead = float(decode_batching_overhead)
        self.prefill_batching_overhead = float(prefill_batching_overhead)
        self.allreduce_launch_s = float(allreduce_launch_s)
        self.token_granularity = int(token_granularity)
        self.context_granularity = int(context_granularity)
        self.monotone = bool(monotone)
        grouped = m.attention_heads > m.kv_heads
        self._decode_extra = self.decode_batching_overhead if grouped else 0.0
        self._prefill_extra = self.prefill_batching_overhead if grouped else 0.0
        mlp_file, attention_file, allreduce_file = PROFILE_CONFIGS[key]
        folder = vidur_dir(root)
        self._tokens, self._linear = self._load_linear(folder / mlp_file)
        self._load_attention(folder / attention_file)
        self._bytes: np.ndarray
        self._allreduce: np.ndarray
        if self.tp > 1 and allreduce_file is not None:
            self._bytes, self._allreduce = self._load_allreduce(folder / allreduce_file)
        elif self.tp > 1:
            raise HardwareError(f"no all-reduce table for {key} (tensor parallelism {self.tp})")
        else:
            self._bytes, self._allreduce = np.ones(1), np.zeros(1)
        self._layers = m.layers
        #: most tokens in one iteration (the MLP table's largest ``num_tokens``)
        self.max_tokens = int(self._tokens[-1])
        #: most decoding sequences in one iteration (the attention table's largest decode batch)
        self.max_batch = int(self._decode.shape[0])

    def __repr__(self) -> str:
        return f"VidurProfile({self.gpu.name!r}, {self.model.name!r}, tp={self.tp})"

    def _outside(self, what: str) -> HardwareError:
        return HardwareError(
            f"{self!r}: {what}, outside Vidur's profiled domain (at most {self.max_tokens} tokens per "
            f"iteration, {self.max_batch} decoding sequences, {self.max_context} tokens of context and chunk "
            "per sequence); use RooflineModel, or lower max_num_seqs / max_num_batched_tokens / the request "
            "lengths"
        )

    # ---------------------------------------------------------------------------------------- tables
    def _load_linear(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        m = self.model
        df = pl.read_csv(path, glob=False).filter(
            (pl.col("num_tensor_parallel_workers") == self.tp)
            & (pl.col("n_head") == m.attention_heads)
            & (pl.col("n_kv_head") == m.kv_heads)
            & (pl.col("n_embd") == m.hidden_size)
        )
        if df.height == 0:
            raise DatasetError(f"{path.name}: no rows for {m.name} at TP {self.tp}", file=str(path))
        ops = [pl.col(f"time_stats.{op}.median").fill_null(0.0) for op in _LINEAR_OPS]
        table = df.group_by("num_tokens").agg(pl.sum_horizontal(ops).mean().alias("ms")).sort("num_tokens")
        x = table["num_tokens"].to_numpy().astype(float)
        return x, self._smooth(x, table["ms"].to_numpy()) * 1e-3

    def _load_attention(self, path: Path) -> None:
        from scipy.interpolate import LinearNDInterpolator

        m = self.model
        df = pl.read_csv(path, glob=False, infer_schema_length=None).filter(
            (pl.col("num_tensor_parallel_workers") == self.tp)
            & (pl.col("n_q_head") == m.attention_heads)
            & (pl.col("n_kv_head") == m.kv_heads)
            & (pl.col("n_embd") == m.hidden_size)
            & (pl.col("block_size") == 16)
        )
        if df.height == 0:
            raise DatasetError(f"{path.name}: no rows for {m.name} at TP {self.tp}", file=str(path))
        #: longest sequence profiled (context plus chunk)
        self.max_context = int(df["max_model_len"].max())  # type: ignore[arg-type]
        prefill = (
            df.filter(pl.col("is_prefill"))
            .group_by("prefill_chunk_size", "kv_cache_size")
            .agg(pl.col("time_stats.attn_prefill.median").cast(pl.Float64).mean().alias("ms"))
            .sort("prefill_chunk_size", "kv_cache_size")
        )
        if self.monotone:  # along the context, per chunk size
            prefill = prefill.with_columns(pl.col("ms").cum_max().over("prefill_chunk_size"))
        empty = prefill.filter(pl.col("kv_cache_size") == 0)
        self._chunks = empty["prefill_chunk_size"].to_numpy().astype(float)
        self._prefill = self._smooth(self._chunks, empty["ms"].to_numpy()) * 1e-3
        points = prefill.select("prefill_chunk_size", "kv_cache_size").to_numpy().astype(float)
        self._prefill_2d = LinearNDInterpolator(points, prefill["ms"].to_numpy() * 1e-3)
        decode = (
            df.filter(~pl.col("is_prefill"))
            .group_by("batch_size", "kv_cache_size")
            .agg(pl.col("time_stats.attn_decode.median").cast(pl.Float64).mean().alias("ms"))
        )
        batches = np.sort(decode["batch_size"].unique().to_numpy())
        contexts = np.sort(decode["kv_cache_size"].unique().to_numpy()).astype(float)
        if not np.array_equal(batches, np.arange(1, batches[-1] + 1)) or decode.height != len(batches) * len(
            contexts
        ):
            raise DatasetError(
                f"{path.name}: the decode rows do not form a batch x context grid", file=str(path)
            )
        grid = (
            decode.sort("batch_size", "kv_cache_size")["ms"].to_numpy().reshape(len(batches), len(contexts))
            * 1e-3
        )
        if self.monotone:  # more work never takes less time
            grid = np.maximum.accumulate(np.maximum.accumulate(grid, axis=0), axis=1)
        self._contexts, self._decode = contexts, grid

    def _load_allreduce(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        df = pl.read_csv(path, glob=False).filter(
            (pl.col("num_workers") == self.tp)
            & (pl.col("devices_per_node") == self.tp)
            & (pl.col("collective") == "all_reduce")
        )
        if df.height == 0:
            raise DatasetError(f"{path.name}: no all-reduce rows for {self.tp} GPUs", file=str(path))
        table = df.group_by("size").agg(pl.col("time_stats.all_reduce.median").mean()).sort("size")
        x = table["size"].to_numpy().astype(float)
        return x, self._smooth(x, table["time_stats.all_reduce.median"].to_numpy()) * 1e-3

    def _smooth(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return _isotonic(x, y) if self.monotone else np.asarray(y, dtype=float)

    # ---------------------------------------------------------------------------------------- terms
    def linear_time(self, tokens: float) -> float:
        """Seconds per layer of the non-attention operators at ``tokens`` tokens."""
        if tokens > self._tokens[-1]:
            raise self._outside(f"{tokens:g} tokens in one iteration")
        return float(np.interp(tokens, self._tokens, self._linear))

    def allreduce_time(self, tokens: float) -> float:
        """Seconds of one all-reduce of ``tokens`` hidden vectors, launch overhead included (0 at TP 1)."""
        if self.tp == 1:
            return 0.0
        size = tokens * self.model.hidden_size * 2
        if size > self._bytes[-1]:
            raise self._outside(f"an all-reduce of {tokens:g} tokens")
        return float(np.interp(size, self._bytes, self._allreduce)) + self.allreduce_launch_s

    def prefill_attention_time(self, prefill_tokens: int, prefill_context: float) -> float:
        """Seconds per layer of the prefill attention of a batch (see the class docstring)."""
        if prefill_tokens <= 0:
            return 0.0
        pairs2 = 2.0 * prefill_context
        if pairs2 <= prefill_tokens * prefill_tokens * (1 + 1e-9):  # whole prompts: sum of chunk^2
            chunk = round(math.sqrt(pairs2))
            if chunk > self._chunks[-1]:
                raise self._outside(f"a prefill batch equivalent to one {chunk}-token prompt")
            t = float(np.interp(chunk, self._chunks, self._prefill))
            if prefill_tokens * prefill_tokens > pairs2 * (1 + 1e-9):  # more than one prompt
                t *= 1.0 + self._prefill_extra
            return t
        context = prefill_context / prefill_tokens - prefill_tokens / 2.0
        if context + prefill_tokens > self.max_context * (1 + 1e-9):
            raise self._outside(f"a {prefill_tokens}-token prefill chunk after {context:.0f} tokens of context")
        g = self.context_granularity
        chunk = max(float(prefill_tokens), self._chunks[0])
        kv = min(math.ceil(context / g) * g, self.max_context - chunk)
        t = float(self._prefill_2d(chunk, kv))
        if not t >= 0.0:
            raise self._outside(f"a {prefill_tokens}-token prefill chunk after {context:.0f} tokens of context")
        return t

    def decode_attention_time(self, decode_seqs: int, decode_context: float) -> float:
        """Return the seconds per layer of the decode attention of ``decode_seqs`` sequences.

        The sequences hold ``decode_context`` tokens of context in all.
        """
        if decode_seqs <= 0:
            return 0.0
        return float(self._decode_attention(np.array([decode_seqs]), np.array([decode_context], float))[0])

    def _decode_attention(self, seqs: np.ndarray, context: np.ndarray) -> np.ndarray:
        grid, contexts = self._decode, self._contexts
        g = self.context_granularity
        mean = np.floor(context / seqs)
        if g > 1:
            mean = np.ceil(mean / g) * g
        if seqs.max() > grid.shape[0]:
            raise self._outside(f"a decode batch of {int(seqs.max())} sequences")
        if mean.max() > self.max_context:
            raise self._outside(f"a decode batch with a mean context of {int(mean.max())} tokens")
        c = np.clip(mean, contexts[0], contexts[-1])
        j = np.clip(np.searchsorted(contexts, c, side="right") - 1, 0, len(contexts) - 2)
        w = (c - contexts[j]) / (contexts[j + 1] - contexts[j])
        row = (seqs - 1).astype(int)
        t = grid[row, j] * (1 - w) + grid[row, j + 1] * w
        return t * np.where(seqs > 1, 1.0 + self._decode_extra, 1.0)

    # ---------------------------------------------------------------------------------------- model
    def _round_tokens(self, tokens: int) -> int:
        g = self.token_granularity
        return -(-tokens // g) * g

    def iteration_time(self, batch: Batch) -> float:
        """Seconds for one iteration of ``batch``."""
        tokens = batch.prefill_tokens + batch.decode_seqs
        if tokens <= 0:
            return 0.0
        if tokens > self.max_tokens:
            raise self._outside(f"{tokens} tokens in one iteration")
        tokens = self._round_tokens(tokens)
        layer = (
            self.linear_time(tokens)
            + self.prefill_attention_time(batch.prefill_tokens, batch.prefill_context)
            + self.decode_attention_time(batch.decode_seqs, batch.decode_context)
            + 2.0 * self.allreduce_time(tokens)
        )
        return self._layers * layer

    def _decode_times(self, decode_seqs: int, decode_context: int, iterations: int) -> np.ndarray:
        if decode_seqs <= 0:
            return np.zeros(iterations)
        tokens = self._round_tokens(decode_seqs)
        fixed = self.linear_time(tokens) + 2.0 * self.allreduce_time(tokens)
        context = decode_context + decode_seqs * np.arange(iterations, dtype=float)
        seqs = np.full(iterations, decode_seqs)
        return self._layers * (fixed + self._decode_attention(seqs, context))

    def prefill_time(self, tokens: int) -> float:
        """Seconds to prefill one prompt of ``tokens`` tokens alone."""
        return self.iteration_time(Batch(prefill_tokens=tokens, prefill_context=tokens * tokens / 2))

    def decode_time(self, batch: int, context: int) -> float:
        """Seconds of one decode iteration of ``batch`` sequences of ``context`` tokens each."""
        return self.iteration_time(Batch(decode_seqs=batch, decode_context=batch * context))
