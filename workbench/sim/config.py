"""Frozen configurations of the instance simulator: scheduler, instance, simulation.

All are validated on creation and loadable from TOML (:func:`workbench.config.load_toml`).

Examples
--------
>>> SchedulerConfig(max_num_seqs=64).max_num_seqs
64
>>> SchedulerConfig(priority="fastest")
Traceback (most recent call last):
...
workbench.errors.ConfigError: unknown priority 'fastest'; choose one of: decode_first, prefill_first
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workbench.config import require_choice, require_positive, require_range
from workbench.errors import ConfigError
from workbench.hardware.perf import PerformanceModel, as_performance_model

PRIORITIES = ("decode_first", "prefill_first")
#: How whole prompts (no chunked prefill) count against ``max_num_batched_tokens``: their sum, or Vidur's vLLM
#: rule, prompts x the longest prompt (a batch padded to its longest prompt).
PREFILL_BUDGETS = ("tokens", "padded")
ROLES = ("both", "prefill", "decode")


def _require_int(name: str, value: Any, low: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    """vLLM-like continuous-batching scheduler parameters of one instance.

    Parameters
    ----------
    max_num_seqs
        Most sequences in the running batch (vLLM ``max_num_seqs``).
    max_num_batched_tokens
        Token budget of one iteration: decode sequences take one token each, prefill chunks the rest.
    chunked_prefill
        Split prompts into chunks that share iterations with decodes; without it a prompt is prefilled whole
        (and a prompt longer than ``max_num_batched_tokens`` is rejected).
    prefill_chunk_tokens
        Largest chunk of one prompt per iteration (``None``: only the token budget limits it).
    priority
        ``"decode_first"``: every iteration runs all decodes and fills the rest of the budget with prefill;
        ``"prefill_first"``: an iteration with admissible prefill work runs prefill only (decodes stall).
    block_size
        Tokens per KV-cache block.
    prefix_caching
        Reuse cached prompt blocks named by the trace's ``prefix_hashes`` (LRU eviction of unreferenced blocks).
    watermark
        Fraction of KV blocks kept free when admitting new requests (ignored when the batch is empty, so a
        request that fits alone always runs).
    event_skipping
        Jump over runs of identical decode iterations in one event (``False``: one event per iteration, the
        slow baseline used to check the fast path).
    prefill_budget
        ``"tokens"``: whole prompts fit when their tokens sum to at most ``max_num_batched_tokens``;
        ``"padded"``: when their count times the longest of them does (Vidur's vLLM scheduler, which pads a
        prefill batch to its longest prompt). ``"padded"`` needs ``chunked_prefill=False``.
    """

    max_num_seqs: int = 256
    max_num_batched_tokens: int = 8192
    chunked_prefill: bool = True
    prefill_chunk_tokens: int | None = None
    priority: str = "decode_first"
    block_size: int = 16
    prefix_caching: bool = True
    watermark: float = 0.01
    event_skipping: bool = True
    prefill_budget: str = "tokens"

    def __post_init__(self) -> None:
        _require_int("max_num_seqs", self.max_num_seqs)
        _require_int("max_num_batched_tokens", self.max_num_batched_tokens)
        if self.max_num_batched_tokens < self.max_num_seqs:
            raise ConfigError(
                f"max_num_batched_tokens ({self.max_num_batched_tokens}) must be >= max_num_seqs "
                f"({self.max_num_seqs}): every running sequence needs one token per iteration"
            )
        if self.prefill_chunk_tokens is not None:
            _require_int("prefill_chunk_tokens", self.prefill_chunk_tokens)
        object.__setattr__(self, "priority", require_choice("priority", self.priority, PRIORITIES))
        _require_int("block_size", self.block_size)
        require_range("watermark", self.watermark, 0.0, 0.5)
        require_choice("prefill_budget", self.prefill_budget, PREFILL_BUDGETS)
        if self.prefill_budget == "padded" and self.chunked_prefill:
            raise ConfigError("prefill_budget='padded' counts whole prompts: set chunked_prefill=False")


@dataclass(frozen=True, slots=True)
class InstanceConfig:
    """One model replica: hardware, scheduler and role.

    Parameters
    ----------
    gpu, model, tp
        GPU type, model name and tensor-parallel degree (names from :mod:`workbench.hardware`).
    scheduler
        Scheduler parameters.
    memory_utilization
        Fraction of GPU memory the server may use (vLLM ``gpu_memory_utilization``).
    kv_capacity_tokens
        Override of the KV-cache size in tokens (default: :func:`workbench.hardware.kv_capacity_tokens`).
    role
        ``"both"`` (prefill and decode), ``"prefill"`` (hands a request on after its first token; needs an
        ``on_finish`` hook) or ``"decode"`` (receives requests whose KV cache was transferred).
    pool
        Pool name written to the result tables.
    n_gpus
        GPUs the instance occupies (default ``tp``; a fraction for MIG slices).
    perf
        The performance model: a name (``"roofline"``, the default, or ``"calibrated:<name>"`` for a saved
        calibration of this gpu/model/tp; resolved by :func:`workbench.hardware.performance_model`, loadable
        from TOML), or any object with an ``iteration_time(batch)`` method
        (:class:`~workbench.hardware.perf.Batch` -> seconds). Models without the closed-form
        ``decode_run_time``/``decode_iterations_within`` of
        :class:`~workbench.hardware.perf.PerformanceModel` get generic ones summing ``iteration_time``
        (:func:`~workbench.hardware.perf.as_performance_model`).

    Examples
    --------
    >>> class Measured:
    ...     def iteration_time(self, batch):
    ...         return 0.004 + 5e-5 * batch.prefill_tokens + 1e-4 * batch.decode_seqs
    >>> conf = InstanceConfig(perf=Measured(), kv_capacity_tokens=10_000)
    >>> round(conf.performance_model().decode_run_time(2, 100, 10), 6)
    0.042
    >>> InstanceConfig(perf=42)
    Traceback (most recent call last):
    ...
    workbench.errors.ConfigError: perf must have an iteration_time(batch) method returning seconds; got int
    """

    gpu: str = "H100"
    model: str = "Llama-3.1-8B"
    tp: int = 1
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    memory_utilization: float = 0.9
    kv_capacity_tokens: int | None = None
    role: str = "both"
    pool: str = "default"
    n_gpus: float | None = None
    perf: Any = field(default=None, compare=False)

    def __post_init__(self) -> None:
        _require_int("tp", self.tp)
        require_positive("memory_utilization", self.memory_utilization)
        require_range("memory_utilization", self.memory_utilization, 0.0, 1.0)
        if self.kv_capacity_tokens is not None:
            _require_int("kv_capacity_tokens", self.kv_capacity_tokens)
        object.__setattr__(self, "role", require_choice("role", self.role, ROLES))
        if self.n_gpus is not None:
            require_positive("n_gpus", self.n_gpus)
        if not isinstance(self.scheduler, SchedulerConfig):
            raise ConfigError(
                f"scheduler must be a SchedulerConfig, got {type(self.scheduler).__name__} (a table of fields "
                "is converted by workbench.config.from_dict / load_toml)"
            )
        if isinstance(self.perf, str):
            self.performance_model()  # fails early: an unknown name, or a calibration of another configuration
        elif self.perf is not None:
            as_performance_model(self.perf)  # fails early, naming the field, when perf cannot time a batch

    def performance_model(self) -> PerformanceModel:
        """Return this instance's performance model.

        ``perf`` (a name resolved by :func:`workbench.hardware.performance_model`, or a model adapted if
        needed), else the roofline.
        """
        if self.perf is None or isinstance(self.perf, str):
            from workbench.hardware import performance_model

            return performance_model(self.perf, self.gpu, self.model, self.tp)
        return as_performance_model(self.perf)

    def kv_capacity(self) -> int:
        """KV-cache capacity in tokens (``kv_capacity_tokens`` or the hardware memory model)."""
        if self.kv_capacity_tokens is not None:
            return self.kv_capacity_tokens
        from workbench.hardware import kv_capacity_tokens

        return kv_capacity_tokens(
            self.gpu,
            self.model,
            self.tp,
            memory_utilization=self.memory_utilization,
            max_num_seqs=self.scheduler.max_num_seqs,
        )


@dataclass(frozen=True, slots=True)
class SimConfig:
    """A homogeneous set of instances behind one router (the fleet layer builds richer topologies).

    Parameters
    ----------
    instance
        Configuration shared by all instances.
    n_instances
        Number of instances (all on from time 0).
    """

    instance: InstanceConfig = field(default_factory=InstanceConfig)
    n_instances: int = 1

    def __post_init__(self) -> None:
        _require_int("n_instances", self.n_instances)
        if not isinstance(self.instance, InstanceConfig):
            raise ConfigError(
                f"instance must be an InstanceConfig, got {type(self.instance).__name__} (a table of fields is "
                "converted by workbench.config.from_dict / load_toml)"
            )
