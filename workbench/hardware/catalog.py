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
}


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

    MoE models give the per-expert MLP width in ``intermediate_size`` and the routed experts per token in
    ``active_experts``; dense models have ``experts = active_experts = 0``.
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
        require_positive("ModelSpec.experts", self.experts, allow_zero=True)
        require_positive("ModelSpec.active_experts", self.active_experts, allow_zero=True)
        if self.active_experts > self.experts:
            raise HardwareError(
                f"ModelSpec.active_experts ({self.active_experts}) exceeds experts ({self.experts})"
            )

    # --- parameter counts (computed from the architecture; they match the cited totals within 0.1 %)
    @property
    def is_moe(self) -> bool:
        """True for mixture-of-experts models."""
        return self.experts > 0

    @property
    def attention_params(self) -> int:
        """Q, K, V and O projection weights of one layer."""
        q = self.attention_heads * self.head_dim
        return 2 * self.hidden_size * q + 2 * self.hidden_size * self.kv_heads * self.head_dim

    @property
    def expert_params(self) -> int:
        """Weights of one MLP (one expert for MoE) of one layer."""
        return (3 if self.gated_mlp else 2) * self.hidden_size * self.intermediate_size

    @property
    def embedding_params(self) -> int:
        """Input embedding plus output head (counted once when tied)."""
        return self.vocab_size * self.hidden_size * (1 if self.tied_embeddings else 2)

    @property
    def params(self) -> int:
        """Total parameters counted from the architecture."""
        return self.layers * (self.attention_params + max(self.experts, 1) * self.expert_params) + (
            self.embedding_params
        )

    @property
    def active_params(self) -> int:
        """Parameters used per token (routed experts only for MoE)."""
        return self.layers * (self.attention_params + max(self.active_experts, 1) * self.expert_params) + (
            self.embedding_params
        )

    @property
    def weight_bytes(self) -> int:
        """Bytes of all weights at ``dtype_bytes``."""
        return self.params * self.dtype_bytes

    def kv_heads_per_gpu(self, tp: int = 1) -> int:
        """KV heads stored per GPU at tensor parallelism ``tp`` (replicated when ``tp > kv_heads``)."""
        return -(-self.kv_heads // tp)

    def kv_bytes_per_token(self, tp: int = 1, kv_dtype_bytes: int | None = None) -> int:
        """KV-cache bytes per token on one GPU at tensor parallelism ``tp`` (K and V, all layers)."""
        b = self.dtype_bytes if kv_dtype_bytes is None else kv_dtype_bytes
        return 2 * self.layers * self.kv_heads_per_gpu(tp) * self.head_dim * b


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
        out[kw["name"]] = ModelSpec(**kw)
    return out


@cache
def _index(kind: str) -> dict[str, str]:
    if kind == "gpu":
        items, aliases = _gpus(), _GPU_ALIASES
        extra: dict[str, str] = {}
    else:
        items, aliases = _models(), _MODEL_ALIASES
        extra = {}
        for name, spec in items.items():
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


def gpu(name: str | GPU) -> GPU:
    """Return the :class:`GPU` called ``name`` (case-insensitive, aliases like ``"h100"``); GPUs pass through.

    Raises
    ------
    HardwareError
        Unknown name (the message lists the known GPUs).
    """
    return name if isinstance(name, GPU) else _lookup("gpu", name, _gpus())


def model(name: str | ModelSpec) -> ModelSpec:
    """Return the :class:`ModelSpec` called ``name`` (case-insensitive; HF repo ids work too).

    Raises
    ------
    HardwareError
        Unknown name (the message lists the known models).
    """
    return name if isinstance(name, ModelSpec) else _lookup("model", name, _models())


def list_gpus() -> pl.DataFrame:
    """The GPU table (all columns of ``data/gpus.csv``, with sources)."""
    return _gpu_table()


def list_models() -> pl.DataFrame:
    """The model zoo (all columns of ``data/models.csv``) plus KV bytes per token at TP 1."""
    return _model_table().with_columns(
        pl.Series("kv_bytes_per_token", [m.kv_bytes_per_token() for m in _models().values()], pl.Int64)
    )
