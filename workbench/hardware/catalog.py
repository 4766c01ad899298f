"""GPU table and model zoo: cited fact tables (``data/gpus.csv``, ``data/models.csv``) as frozen dataclasses.

Look-ups are case-insensitive and forgive punctuation (``"h100"`` -> ``H100-SXM``, ``"llama2-70b"`` ->
``Llama-2-70B``, ``"meta-llama/Llama-2-7b-hf"`` -> ``Llama-2-7B``); an unknown name raises
:class:`~workbench.errors.HardwareError` listing the known names.

Examples
--------
>>> from workbench.hardware import gpu, model
>>> gpu("h100").memory_gb, model("llama-3.1-8b").kv_bytes_per_token()
(80.0, 131072)
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from dataclasses import dataclass, fields
from functools import cache

import polars as pl

from workbench._paths import data_path
from workbench.config import require_positive
from workbench.errors import HardwareError

GIB = 2**30

#: Extra short names (normalised: lower case, only letters and digits) -> canonical name.
_GPU_ALIASES = {
    "h100": "H100-SXM",
    "h10080gb": "H100-SXM",
    "h100sxm5": "H100-SXM",
    "h200": "H200-SXM",
    "a100": "A100-80GB-SXM",
    "a10080gb": "A100-80GB-SXM",
    "a100sxm": "A100-80GB-SXM",
    "a10040gb": "A100-40GB-SXM",
    "a10": "A10G",
    "mi300": "MI300X",
    "gh200": "GH200",
}
_MODEL_ALIASES = {
    "llama38b": "Llama-3-8B",
    "llama318binstruct": "Llama-3.1-8B",
    "llama3170binstruct": "Llama-3.1-70B",
    "mixtral8x7binstructv01": "Mixtral-8x7B",
    "mixtral8x7bv01": "Mixtral-8x7B",
    "qwen25732binstruct": "Qwen2.5-32B",
    "bloom": "BLOOM-176B",
    "qwen3235b": "Qwen3-235B-A22B",
    "qwen330b": "Qwen3-30B-A3B",
    "qwen3coder30ba3b": "Qwen3-30B-A3B",  # Qwen3-Coder-30B-A3B-Instruct: the Qwen3-30B-A3B architecture
    "deepseekv31": "DeepSeek-V3",
    "deepseekr1": "DeepSeek-V3",
    "deepseekr10528": "DeepSeek-V3",
    "nvidianemotronnano12bv2vl": "Nemotron-Nano-12B-v2",  # the VL model's language model
}
#: Name endings that do not change the architecture (instruction tuning, release tags, precision markers);
#: dropped one by one when a name is not found. ``fp8`` also switches the weights to one byte.
_MODEL_SUFFIXES = ("fp8", "bf16", "2507", "0528", "instruct", "thinking", "it", "hf", "chat")


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


@dataclass(frozen=True, slots=True)
class GPU:
    """One accelerator (row of ``data/gpus.csv``); peak numbers are vendor dense BF16 specs.

    Attributes
    ----------
    name
        Canonical name (``"H100-SXM"``).
    memory_gb
        HBM/GDDR capacity in GiB as marketed (an "80 GB" H100 has 80 GiB).
    mem_bw_tbps
        Peak memory bandwidth, TB/s (1e12 bytes/s).
    bf16_tflops
        Dense BF16 tensor throughput, TFLOP/s.
    tdp_w, idle_power_w
        Board power limit and measured idle power (W; idle may be NaN when no citable number exists).
    gpus_per_node
        GPUs sharing the fast interconnect in one server (largest sensible tensor-parallel degree).
    interconnect_bw_gbs
        Vendor GPU-to-GPU bandwidth, GB/s, both directions together (NVLink 900 GB/s on H100).
    purchase_price_usd, cloud_usd_per_gpu_hr
        Approximate prices (NaN when unknown); see ``data/README.md`` for dates and caveats.
    source
        Citation of the spec numbers.
    """

    name: str
    memory_gb: float
    mem_bw_tbps: float
    bf16_tflops: float
    tdp_w: float
    gpus_per_node: int = 8
    interconnect_bw_gbs: float = 900.0
    idle_power_w: float = math.nan
    purchase_price_usd: float = math.nan
    cloud_usd_per_gpu_hr: float = math.nan
    source: str = ""

    def __post_init__(self) -> None:
        for f in ("memory_gb", "mem_bw_tbps", "bf16_tflops", "tdp_w", "gpus_per_node", "interconnect_bw_gbs"):
            require_positive(f"GPU.{f}", getattr(self, f))

    @property
    def memory_bytes(self) -> float:
        """Device memory in bytes (``memory_gb`` GiB)."""
        return self.memory_gb * GIB

    @property
    def peak_flops(self) -> float:
        """Dense BF16 FLOP/s."""
        return self.bf16_tflops * 1e12

    @property
    def mem_bw(self) -> float:
        """Memory bandwidth in bytes/s."""
        return self.mem_bw_tbps * 1e12

    @property
    def link_bw(self) -> float:
        """One-direction GPU-to-GPU bandwidth in bytes/s (half the vendor bidirectional figure)."""
        return self.interconnect_bw_gbs * 1e9 / 2


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """Architecture facts of one LLM (row of ``data/models.csv``, from its Hugging Face ``config.json``).

    A plain transformer needs only the first block of fields: every one of its ``layers`` has attention and
    an MLP. MoE models give the per-expert MLP width in ``intermediate_size`` and the routed experts per
    token in ``active_experts``; dense models have ``experts = active_experts = 0``.

    The other fields (0 = the plain-transformer default) describe the architectures of the ML.ENERGY v3 zoo:

    * ``attention_layers`` / ``mlp_layers`` / ``mamba_layers``: how many of ``layers`` carry attention, an MLP
      (or MoE) block and a Mamba-2 mixer (Nemotron-H hybrids: 62 layers = 6 attention + 28 MLP + 28 Mamba);
    * ``window_layers``, ``attention_window``: attention layers whose KV is a sliding or chunked window of
      that many tokens (gpt-oss 128, Gemma-3 1024, Llama-4 8192 chunks taken as a window);
    * ``moe_layers``, ``dense_intermediate_size``, ``shared_experts``: MoE models with some dense MLP layers
      (DeepSeek-V3's first 3, every other Llama-4-Maverick layer) and always-active shared experts (width
      ``intermediate_size``);
    * ``q_lora_rank``, ``kv_lora_rank``, ``qk_rope_head_dim``, ``v_head_dim``: multi-head latent attention
      (DeepSeek); ``head_dim`` is then the query/key head width (nope + rope) and the KV cache holds
      ``kv_lora_rank + qk_rope_head_dim`` values per token and layer, not split by tensor parallelism;
    * ``mamba_heads``, ``mamba_head_dim``, ``mamba_state``, ``mamba_groups``, ``mamba_conv``,
      ``state_bytes``: the Mamba-2 mixer and the bytes per value of its recurrent state (float32 in vLLM's
      ``mamba_ssm_cache_dtype`` of the ML.ENERGY runs);
    * ``weight_dtype_bytes``, ``expert_dtype_bytes``: bytes per weight of the linear layers and of the routed
      experts when they differ from ``dtype_bytes`` (FP8 checkpoints 1; gpt-oss MXFP4 experts 4.25 bits);
      embeddings, KV cache and activations stay at ``dtype_bytes``.
    """

    name: str
    layers: int
    hidden_size: int
    attention_heads: int
    kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    experts: int = 0
    active_experts: int = 0
    gated_mlp: bool = True
    tied_embeddings: bool = False
    dtype_bytes: int = 2
    max_context: int = 131072
    total_params_b: float = math.nan
    active_params_b: float = math.nan
    hf_repo: str = ""
    license: str = ""
    source: str = ""
    attention_layers: int = 0
    window_layers: int = 0
    attention_window: int = 0
    mlp_layers: int = 0
    moe_layers: int = 0
    dense_intermediate_size: int = 0
    shared_experts: int = 0
    mamba_layers: int = 0
    mamba_heads: int = 0
    mamba_head_dim: int = 0
    mamba_state: int = 0
    mamba_groups: int = 0
    mamba_conv: int = 4
    state_bytes: int = 4
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0
    weight_dtype_bytes: float = 0.0
    expert_dtype_bytes: float = 0.0

    def __post_init__(self) -> None:
        for f in (
            "layers",
            "hidden_size",
            "attention_heads",
            "kv_heads",
            "head_dim",
            "intermediate_size",
            "vocab_size",
            "dtype_bytes",
            "max_context",
        ):
            require_positive(f"ModelSpec.{f}", getattr(self, f))
        for f in (
            "experts",
            "active_experts",
            "attention_layers",
            "window_layers",
            "attention_window",
            "mlp_layers",
            "moe_layers",
            "dense_intermediate_size",
            "shared_experts",
            "mamba_layers",
            "mamba_heads",
            "mamba_head_dim",
            "mamba_state",
            "mamba_groups",
            "mamba_conv",
            "state_bytes",
            "q_lora_rank",
            "kv_lora_rank",
            "qk_rope_head_dim",
            "v_head_dim",
            "weight_dtype_bytes",
            "expert_dtype_bytes",
        ):
            require_positive(f"ModelSpec.{f}", getattr(self, f), allow_zero=True)
        if self.active_experts > self.experts:
            raise HardwareError(
                f"ModelSpec.active_experts ({self.active_experts}) exceeds experts ({self.experts})"
            )
        for f in ("attention_layers", "mlp_layers", "mamba_layers"):
            if getattr(self, f) > self.layers:
                raise HardwareError(f"ModelSpec.{f} ({getattr(self, f)}) exceeds layers ({self.layers})")
        if self.window_layers > self.n_attention_layers:
            raise HardwareError(
                f"ModelSpec.window_layers ({self.window_layers}) exceeds the attention layers "
                f"({self.n_attention_layers})"
            )
        if self.window_layers and not self.attention_window:
            raise HardwareError("ModelSpec.attention_window must be > 0 when window_layers > 0")
        if self.moe_layers > self.n_mlp_layers:
            raise HardwareError(f"ModelSpec.moe_layers ({self.moe_layers}) exceeds the MLP layers")
        if self.mamba_layers and not (self.mamba_heads and self.mamba_head_dim and self.mamba_state):
            raise HardwareError("ModelSpec: Mamba layers need mamba_heads, mamba_head_dim and mamba_state")

    # --- layer counts
    @property
    def n_attention_layers(self) -> int:
        """Layers with attention (``attention_layers``, default all)."""
        return self.attention_layers or self.layers

    @property
    def n_full_attention_layers(self) -> int:
        """Attention layers whose KV cache holds the whole context (not windowed)."""
        return self.n_attention_layers - self.window_layers

    @property
    def n_mlp_layers(self) -> int:
        """Layers with an MLP or MoE block (``mlp_layers``, default all)."""
        return self.mlp_layers or self.layers

    @property
    def n_moe_layers(self) -> int:
        """MLP layers that are MoE (``moe_layers``, default all MLP layers of an MoE model)."""
        return (self.moe_layers or self.n_mlp_layers) if self.experts else 0

    @property
    def n_dense_mlp_layers(self) -> int:
        """MLP layers that are dense."""
        return self.n_mlp_layers - self.n_moe_layers

    # --- parameter counts (computed from the architecture; they match the cited totals within 0.1-3 %)
    @property
    def is_moe(self) -> bool:
        """True for mixture-of-experts models."""
        return self.experts > 0

    @property
    def is_mla(self) -> bool:
        """True for multi-head latent attention (a compressed, TP-replicated KV cache)."""
        return self.kv_lora_rank > 0

    @property
    def attention_params(self) -> int:
        """Q, K, V and O projection weights of one attention layer (MLA: its low-rank projections)."""
        h, heads = self.hidden_size, self.attention_heads
        if self.is_mla:
            q = (
                h * self.q_lora_rank + self.q_lora_rank * heads * self.head_dim
                if self.q_lora_rank
                else (h * heads * self.head_dim)
            )
            nope = self.head_dim - self.qk_rope_head_dim
            kv = h * (self.kv_lora_rank + self.qk_rope_head_dim) + self.kv_lora_rank * heads * (
                nope + self.v_head_dim
            )
            return q + kv + heads * self.v_head_dim * h
        q = heads * self.head_dim
        return 2 * h * q + 2 * h * self.kv_heads * self.head_dim

    @property
    def expert_params(self) -> int:
        """Weights of one MLP (one expert for MoE) of one layer."""
        return (3 if self.gated_mlp else 2) * self.hidden_size * self.intermediate_size

    @property
    def dense_mlp_params(self) -> int:
        """Weights of one dense layer's MLP (width ``dense_intermediate_size``, else ``intermediate_size``)."""
        width = self.dense_intermediate_size or self.intermediate_size
        return (3 if self.gated_mlp else 2) * self.hidden_size * width

    @property
    def mamba_inner(self) -> int:
        """Inner width of a Mamba-2 mixer (heads x head dim)."""
        return self.mamba_heads * self.mamba_head_dim

    @property
    def mamba_params(self) -> int:
        """Weights of one Mamba-2 mixer: input projection (x, z, B, C, dt), convolution, output projection."""
        if not self.mamba_layers:
            return 0
        d, bc = self.mamba_inner, 2 * self.mamba_groups * self.mamba_state
        return (
            self.hidden_size * (2 * d + bc + self.mamba_heads)
            + (d + bc) * self.mamba_conv
            + d * self.hidden_size
        )

    @property
    def embedding_params(self) -> int:
        """Input embedding plus output head (counted once when tied)."""
        return self.vocab_size * self.hidden_size * (1 if self.tied_embeddings else 2)

    @property
    def always_params(self) -> int:
        """Non-embedding weights every token uses: attention, dense MLPs, shared experts, Mamba mixers."""
        return (
            self.n_attention_layers * self.attention_params
            + self.n_dense_mlp_layers * self.dense_mlp_params
            + self.n_moe_layers * self.shared_experts * self.expert_params
            + self.mamba_layers * self.mamba_params
        )

    @property
    def routed_expert_params(self) -> int:
        """Weights of all routed experts."""
        return self.n_moe_layers * self.experts * self.expert_params

    @property
    def params(self) -> int:
        """Total parameters counted from the architecture."""
        return self.always_params + self.routed_expert_params + self.embedding_params

    @property
    def active_params(self) -> int:
        """Parameters used per token (routed experts only for MoE)."""
        return self.active_linear_params + self.embedding_params

    @property
    def active_linear_params(self) -> int:
        """Non-embedding parameters a token multiplies (2 FLOPs each)."""
        return self.always_params + self.n_moe_layers * self.active_experts * self.expert_params

    @property
    def linear_weight_bytes(self) -> float:
        """Bytes per weight of the linear layers (``weight_dtype_bytes``, default ``dtype_bytes``)."""
        return self.weight_dtype_bytes or float(self.dtype_bytes)

    @property
    def expert_bytes(self) -> float:
        """Bytes per weight of the routed experts (``expert_dtype_bytes``, default the linear layers')."""
        return self.expert_dtype_bytes or self.linear_weight_bytes

    @property
    def weight_bytes(self) -> float:
        """Bytes of all weights: linear layers, routed experts and embeddings at their own precisions."""
        return (
            self.always_params * self.linear_weight_bytes
            + self.routed_expert_params * self.expert_bytes
            + self.embedding_params * self.dtype_bytes
        )

    def kv_heads_per_gpu(self, tp: int = 1) -> int:
        """KV heads stored per GPU at tensor parallelism ``tp`` (replicated when ``tp > kv_heads``)."""
        return -(-self.kv_heads // tp)

    def kv_values_per_layer(self, tp: int = 1) -> int:
        """KV-cache values per token and attention layer on one GPU (MLA: the latent, on every GPU)."""
        if self.is_mla:
            return self.kv_lora_rank + self.qk_rope_head_dim
        return 2 * self.kv_heads_per_gpu(tp) * self.head_dim

    def kv_bytes_per_token(self, tp: int = 1, kv_dtype_bytes: int | None = None) -> int:
        """KV-cache bytes per token on one GPU at tensor parallelism ``tp`` (full-attention layers)."""
        b = self.dtype_bytes if kv_dtype_bytes is None else kv_dtype_bytes
        return self.n_full_attention_layers * self.kv_values_per_layer(tp) * b

    def window_kv_bytes_per_token(self, tp: int = 1, kv_dtype_bytes: int | None = None) -> int:
        """KV bytes per token of the windowed layers on one GPU (kept for ``attention_window`` tokens)."""
        b = self.dtype_bytes if kv_dtype_bytes is None else kv_dtype_bytes
        return self.window_layers * self.kv_values_per_layer(tp) * b

    def state_bytes_per_seq(self, tp: int = 1) -> int:
        """Bytes of recurrent state one sequence holds on one GPU (Mamba-2 SSM and convolution states)."""
        if not self.mamba_layers:
            return 0
        heads = -(-self.mamba_heads // tp)
        ssm = heads * self.mamba_head_dim * self.mamba_state * self.state_bytes
        groups = -(-self.mamba_groups // tp)
        conv_width = heads * self.mamba_head_dim + 2 * groups * self.mamba_state
        return self.mamba_layers * (ssm + conv_width * (self.mamba_conv - 1) * self.dtype_bytes)

    def per_seq_bytes(self, tp: int = 1, kv_dtype_bytes: int | None = None) -> int:
        """Memory one running sequence holds beyond its full-attention KV: windowed KV and recurrent state."""
        window = self.window_kv_bytes_per_token(tp, kv_dtype_bytes) * self.attention_window
        return window + self.state_bytes_per_seq(tp)


def _csv_row_kwargs(cls: type, row: dict, mapping: dict[str, str]) -> dict:
    names = {f.name for f in fields(cls)}
    out = {}
    for key, value in row.items():
        key = mapping.get(key, key)
        if key in names and value is not None:
            out[key] = value
    return out


@cache
def _gpu_table() -> pl.DataFrame:
    return pl.read_csv(data_path("gpus.csv"))


@cache
def _model_table() -> pl.DataFrame:
    return pl.read_csv(data_path("models.csv"))


@cache
def _gpus() -> dict[str, GPU]:
    mapping = {
        "gpu": "name",
        "bf16_dense_tflops": "bf16_tflops",
        "spec_source": "source",
        "purchase_price_usd_approx": "purchase_price_usd",
    }
    out = {}
    for row in _gpu_table().iter_rows(named=True):
        kw = _csv_row_kwargs(GPU, row, mapping)
        for k in (
            "memory_gb",
            "mem_bw_tbps",
            "bf16_tflops",
            "tdp_w",
            "interconnect_bw_gbs",
            "idle_power_w",
            "purchase_price_usd",
            "cloud_usd_per_gpu_hr",
        ):
            if k in kw:
                kw[k] = float(kw[k])
        out[kw["name"]] = GPU(**kw)
    return out


@cache
def _models() -> dict[str, ModelSpec]:
    out = {}
    for row in _model_table().iter_rows(named=True):
        kw = _csv_row_kwargs(ModelSpec, row, {"model": "name"})
        for k in ("weight_dtype_bytes", "expert_dtype_bytes", "total_params_b", "active_params_b"):
            if k in kw:
                kw[k] = float(kw[k])
        out[kw["name"]] = ModelSpec(**kw)
    return out


@cache
def _index(kind: str) -> dict[str, str]:
    items: dict[str, GPU] | dict[str, ModelSpec]
    extra: dict[str, str] = {}
    if kind == "gpu":
        items, aliases = _gpus(), _GPU_ALIASES
    else:
        models = _models()
        items, aliases = models, _MODEL_ALIASES
        for name, spec in models.items():
            base = spec.hf_repo.rsplit("/", 1)[-1]
            extra[_norm(spec.hf_repo)] = name
            extra[_norm(base)] = name
            extra[_norm(re.sub(r"-hf$", "", base, flags=re.I))] = name
    index = {**extra, **aliases}
    index.update({_norm(n): n for n in items})
    return index


def _lookup(kind: str, name: str, items: dict):
    key = _index(kind).get(_norm(name))
    if key is None:
        raise HardwareError(f"unknown {kind} {name!r}; known: {', '.join(items)}")
    return items[key]


@functools.lru_cache(maxsize=1024)
def _model_named(name: str) -> ModelSpec:
    """Return the model of a name, dropping :data:`_MODEL_SUFFIXES` when needed.

    ``FP8`` names get 1-byte weights.
    """
    index, items = _index("model"), _models()
    key, fp8 = _norm(name), False
    if key not in index:
        key = _norm(name.rsplit("/", 1)[-1])  # the repository part of an org/name id
    while key not in index:
        tail = next((t for t in _MODEL_SUFFIXES if key.endswith(t) and len(key) > len(t)), None)
        if tail is None:
            raise HardwareError(f"unknown model {name!r}; known: {', '.join(items)}")
        key, fp8 = key[: -len(tail)], fp8 or tail == "fp8"
    spec = items[index[key]]
    if fp8 and spec.linear_weight_bytes > 1.0:
        spec = dataclasses.replace(
            spec,
            name=f"{spec.name}-FP8",
            weight_dtype_bytes=1.0,
            expert_dtype_bytes=min(spec.expert_bytes, 1.0) if spec.expert_dtype_bytes else 0.0,
            source=f"{spec.source}; FP8 checkpoint: linear weights 1 byte (embeddings, KV cache BF16)",
        )
    return spec


def gpu(name: str | GPU) -> GPU:
    """Return the :class:`GPU` called ``name`` (case-insensitive, aliases like ``"h100"``); GPUs pass through.

    Parameters
    ----------
    name
        GPU name or alias, or a :class:`GPU`.


    Returns
    -------
    GPU
        The catalog entry.

    Raises
    ------
    HardwareError
        Unknown name (the message lists the known GPUs).
    """
    return name if isinstance(name, GPU) else _lookup("gpu", name, _gpus())


def model(name: str | ModelSpec) -> ModelSpec:
    """Return the :class:`ModelSpec` called ``name`` (case-insensitive; HF repo ids work too).

    Endings that do not change the architecture (``-Instruct``, ``-it``, ``-2507``, ...) are dropped when the
    full name is unknown; a name ending in ``-FP8`` gives the model with 1-byte linear weights.

    Parameters
    ----------
    name
        Model name or Hugging Face repo id, or a :class:`ModelSpec`.


    Returns
    -------
    ModelSpec
        The zoo entry.

    Raises
    ------
    HardwareError
        Unknown name (the message lists the known models).
    """
    return name if isinstance(name, ModelSpec) else _model_named(str(name))


def list_gpus() -> pl.DataFrame:
    """Return the GPU table (all columns of ``data/gpus.csv``, with sources).

    Returns
    -------
    polars.DataFrame
        One row per GPU.
    """
    return _gpu_table()


def list_models() -> pl.DataFrame:
    """Return the model zoo (all columns of ``data/models.csv``) plus KV bytes per token at TP 1.

    Returns
    -------
    polars.DataFrame
        One row per model, with ``kv_bytes_per_token``.
    """
    return _model_table().with_columns(
        pl.Series("kv_bytes_per_token", [m.kv_bytes_per_token() for m in _models().values()], pl.Int64)
    )
