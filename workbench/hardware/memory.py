"""GPU memory budget of one model replica: weights, activation reserve and KV-cache capacity.

capacity (tokens) = (GPU memory x utilisation - weights / tp - activation reserve - max_num_seqs x per-sequence
state) / KV bytes per token per GPU, the rule vLLM applies with ``gpu_memory_utilization`` (default 0.9) after
profiling the activation peak.

Windowed attention layers (sliding or chunked) count as KV per token when their window is at least
:data:`LONG_WINDOW` tokens (chat and code contexts mostly fit inside such a window, so a sequence holds a token
per context token there too) and as ``window`` tokens per running sequence below it (gpt-oss: 128); Mamba-2
state is per running sequence. Both per-sequence parts are reserved for ``max_num_seqs`` sequences (APPROX:
vLLM's hybrid allocator hands them out as sequences start).
"""

from __future__ import annotations

from workbench.config import require_positive, require_range
from workbench.errors import ConfigError, HardwareError
from workbench.hardware.catalog import GIB, GPU, ModelSpec, gpu, model

#: Default activation/workspace reserve per GPU, GiB (vLLM's profiled peak for 8B-70B models at
#: ``max_num_batched_tokens`` 8192 is typically 1-3 GiB, plus CUDA graphs and NCCL buffers).
ACTIVATION_RESERVE_GB = 2.0
#: Windows at least this long (tokens) count per token in the KV budget; shorter ones per sequence.
LONG_WINDOW = 1024


def kv_budget_bytes(m: ModelSpec, tp: int, kv_dtype_bytes: int | None = None) -> tuple[float, float]:
    """``(bytes per token, bytes per running sequence)`` of KV cache and state on one GPU (module docstring)."""
    window = m.window_kv_bytes_per_token(tp, kv_dtype_bytes)
    long = m.attention_window >= LONG_WINDOW
    per_token = m.kv_bytes_per_token(tp, kv_dtype_bytes) + (window if long else 0)
    per_seq = (0 if long else window * m.attention_window) + m.state_bytes_per_seq(tp)
    return float(per_token), float(per_seq)


def check_tp(g: GPU, m: ModelSpec, tp: int) -> None:
    """Raise :class:`ConfigError` unless ``tp`` is a positive integer within one node that divides the heads."""
    if isinstance(tp, bool) or not isinstance(tp, int) or tp < 1:
        raise ConfigError(f"tp must be a positive integer, got {tp!r}")
    if tp > g.gpus_per_node:
        raise ConfigError(f"tp={tp} exceeds {g.name}'s gpus_per_node={g.gpus_per_node}")
    if m.attention_heads % tp:
        raise ConfigError(f"tp={tp} must divide {m.name}'s attention_heads={m.attention_heads}")


def weights_per_gpu_gb(gpu_name: str | GPU, model_name: str | ModelSpec, tp: int = 1) -> float:
    """Weight memory per GPU in GiB at tensor parallelism ``tp``.

    Parameters
    ----------
    gpu_name, model_name
        GPU and model (names or catalog entries).
    tp
        Tensor-parallel degree (checked against the GPU's node and the model's heads).

    Returns
    -------
    float
        GiB of weights on each GPU.
    """
    g, m = gpu(gpu_name), model(model_name)
    check_tp(g, m, tp)
    return m.weight_bytes / tp / GIB


def kv_capacity_tokens(
    gpu_name: str | GPU,
    model_name: str | ModelSpec,
    tp: int = 1,
    memory_utilization: float = 0.9,
    activation_reserve_gb: float = ACTIVATION_RESERVE_GB,
    kv_dtype_bytes: int | None = None,
    max_num_seqs: int = 0,
) -> int:
    """Tokens of KV cache one replica of ``model`` holds on ``tp`` GPUs of type ``gpu``.

    Parameters
    ----------
    gpu_name, model_name
        Names (or objects) from :func:`~workbench.hardware.gpu` / :func:`~workbench.hardware.model`.
    tp
        Tensor-parallel degree (weights and KV heads are split over ``tp`` GPUs).
    memory_utilization
        Fraction of each GPU's memory the server may use (vLLM ``gpu_memory_utilization``), in (0, 1].
    activation_reserve_gb
        Per-GPU GiB kept for activations, CUDA graphs and communication buffers.
    kv_dtype_bytes
        Bytes per KV element (default: the model's dtype; 1 for an FP8 KV cache).
    max_num_seqs
        Running sequences whose per-sequence memory (short-window KV, Mamba state) is reserved first.

    Returns
    -------
    int
        Whole tokens of KV cache (per replica: each token's KV is spread over the ``tp`` GPUs).

    Raises
    ------
    ConfigError
        Non-positive or out-of-range parameters.
    HardwareError
        The weights plus the reserve do not fit (the message gives the numbers).
    """
    g, m = gpu(gpu_name), model(model_name)
    check_tp(g, m, tp)
    require_positive("memory_utilization", memory_utilization)
    require_range("memory_utilization", memory_utilization, 0.0, 1.0)
    require_positive("activation_reserve_gb", activation_reserve_gb, allow_zero=True)
    if kv_dtype_bytes is not None:
        require_positive("kv_dtype_bytes", kv_dtype_bytes)
    budget = g.memory_bytes * memory_utilization
    weights = m.weight_bytes / tp
    per_token, per_seq = kv_budget_bytes(m, tp, kv_dtype_bytes)
    free = budget - weights - activation_reserve_gb * GIB - max_num_seqs * per_seq
    if free < per_token:
        state = f" - state of {max_num_seqs} sequences {max_num_seqs * per_seq / GIB:.1f} GiB" * bool(per_seq)
        raise HardwareError(
            f"{m.name} does not fit on {tp}x {g.name}: usable {budget / GIB:.1f} GiB per GPU "
            f"({memory_utilization:.0%} of {g.memory_gb:g} GiB) - weights {weights / GIB:.1f} GiB - activation "
            f"reserve {activation_reserve_gb:g} GiB"
            + state
            + f" = {free / GIB:.1f} GiB left for KV cache; "
            f"try a larger tp or a GPU with more memory"
        )
    return int(free // per_token)


def min_tensor_parallel(gpu_name: str | GPU, model_name: str | ModelSpec, min_kv_tokens: int = 1, **kw) -> int:
    """Smallest power-of-two ``tp`` (within one node) at which the model fits with ``min_kv_tokens`` of KV.

    Extra keyword arguments go to :func:`kv_capacity_tokens`. Raises :class:`HardwareError` when no ``tp``
    fits.

    Parameters
    ----------
    gpu_name, model_name
        GPU and model (names or catalog entries).
    min_kv_tokens
        KV-cache tokens that must fit besides the weights.
    **kw
        Passed to :func:`kv_capacity_tokens`.

    Returns
    -------
    int
        The smallest fitting ``tp``.
    """
    g, m = gpu(gpu_name), model(model_name)
    tp = 1
    while tp <= g.gpus_per_node:
        if m.attention_heads % tp == 0:
            try:
                if kv_capacity_tokens(g, m, tp, **kw) >= min_kv_tokens:
                    return tp
            except HardwareError:
                pass
        tp *= 2
    raise HardwareError(
        f"{m.name} ({m.weight_bytes / GIB:.0f} GiB of weights) does not fit with {min_kv_tokens} KV tokens "
        f"on up to {g.gpus_per_node}x {g.name} ({g.memory_gb:g} GiB each)"
    )
