"""Roofline performance model of one LLM replica: seconds per batch iteration from GPU and model facts.

For a batch with ``P`` prefill tokens, ``D`` decode sequences (``T = P + D`` tokens), causal prefill attention
work ``A`` (query-key pairs, ``Batch.prefill_context``) and decode context sum ``C``, on ``tp`` GPUs::

    linear  = max(T x 2 N_active / tp / (peak x mfu) + L x 2 V h / tp / (peak x mfu),   # compute
                  weight bytes touched / tp / (bandwidth x mbu))                          # memory
    attn    = A x 4 layers heads head_dim / tp / (peak x mfu)                # prefill: compute-bound
            + C x max(4 layers heads head_dim / tp / (peak x mfu), KV bytes/token/GPU / (bandwidth x mbu))
    comm    = R x (latency + 2 (tp-1)/tp x T h dtype / (link bandwidth x comm_efficiency))   (tp > 1)
    time    = max(linear + attn + comm + overhead + L x seq_overhead, step_floor)

``L`` = tokens that need logits (decode sequences plus one per prefill batch), ``R`` = all-reduces per iteration
(one per attention, MLP and Mamba block: ``2 layers`` for a plain transformer). For MoE models the compute uses
the active parameters and the memory term the experts the batch touches: ``E (1 - (1 - k/E)^T)`` per layer under
uniform routing. The activation traffic and the KV write of new tokens are ignored (small next to weights).

Architectures beyond the plain transformer (:class:`~workbench.hardware.ModelSpec`): weights are read at their
own precision (FP8, MXFP4 experts); multi-head latent attention reads its compressed, TP-replicated latent
cache and does ``2 heads (2 kv_lora_rank + rope)`` FLOPs per query-key pair in decode (weights absorbed);
windowed layers (sliding or chunked attention) read ``min(C, D x window)`` context tokens per decode iteration
(exact when every sequence is on the same side of the window; prefill counts them as full attention, an
overestimate for prompts longer than the window); Mamba-2 layers read and write each decoding sequence's
recurrent state every iteration (``2 x state bytes / (bandwidth x mbu)`` per sequence).

**Clock (DVFS).** At a fraction ``clock`` of the maximum SM clock the compute terms (FLOP/s) scale with the
clock, while the memory terms (HBM bandwidth), the interconnect and the fixed host overhead do not: a
memory-bound decode iteration barely slows down at a lower clock, a compute-bound prefill slows down as
``1 / clock``.

Defaults: ``mfu = 0.5`` (large-GEMM prefill efficiency reported for vLLM/TensorRT-LLM is 40-60 %),
``mbu = 0.75`` (decode memory-bandwidth utilisation 60-80 %), ``overhead_s = 1 ms`` (scheduler, sampling and
launch time per iteration), ``allreduce_latency_s = 12 us`` and ``comm_efficiency = 0.7`` (NCCL ring
all-reduce on NVLink). Fit them to measurements with :mod:`workbench.hardware.calibrate`.

A pure-decode iteration's time is affine in the context sum ``C``, which grows by ``D`` each iteration, so
:meth:`RooflineModel.decode_run_time` sums ``k`` iterations and :meth:`decode_iterations_within` inverts the sum
in closed form (O(1), for the simulator's event skipping).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import cast

import numpy as np

from workbench.config import require_positive, require_range
from workbench.hardware.catalog import GPU, ModelSpec, gpu, model
from workbench.hardware.closed_forms import RooflineTerms
from workbench.hardware.memory import check_tp
from workbench.hardware.perf import Batch


@dataclass(frozen=True, slots=True)
class RooflineModel:
    """Roofline iteration-time model (implements :class:`~workbench.hardware.perf.PerformanceModel`).

    Parameters
    ----------
    gpu, model
        :class:`GPU` / :class:`ModelSpec` or their names.
    tp
        Tensor-parallel degree.
    mfu, mbu
        Achieved fractions of peak FLOP/s and of memory bandwidth, in (0, 1].
    overhead_s
        Fixed seconds per (non-empty) iteration.
    allreduce_latency_s, comm_efficiency
        Per-all-reduce latency and the fraction of the link bandwidth a ring all-reduce reaches.
    attn_mfu
        FLOP efficiency of attention kernels (default: ``mfu``).
    seq_overhead_s
        Extra seconds per sequence that produces a token in the iteration (sampling, detokenisation, per-request
        scheduling); default 0.
    step_floor_s
        Shortest iteration (a floor below which no batch runs, e.g. a launch- or host-bound step); default 0.
    moe_layer_s
        Fixed seconds per MoE layer and iteration (routing, token permutation, grouped-GEMM launches and, with
        expert parallelism, the dispatch/combine latency); default 0.
    clock
        SM clock as a fraction of its maximum, in (0, 1]: compute terms scale with it, memory, interconnect and
        host overhead do not (see the module docstring).

    Examples
    --------
    >>> m = RooflineModel("H100", "Llama-3.1-8B")
    >>> round(m.decode_time(1, 1000) * 1e3, 2)  # ms per token at batch 1
    7.03
    """

    gpu: GPU | str
    model: ModelSpec | str
    tp: int = 1
    mfu: float = 0.5
    mbu: float = 0.75
    overhead_s: float = 1e-3
    allreduce_latency_s: float = 12e-6
    comm_efficiency: float = 0.7
    attn_mfu: float | None = None
    seq_overhead_s: float = 0.0
    step_floor_s: float = 0.0
    moe_layer_s: float = 0.0
    clock: float = 1.0
    # precomputed coefficients (seconds per unit)
    _c_tok: float = field(init=False, repr=False, compare=False)
    _c_logit: float = field(init=False, repr=False, compare=False)
    _w_dense: float = field(init=False, repr=False, compare=False)
    _w_expert: float = field(init=False, repr=False, compare=False)
    _n_exp: int = field(init=False, repr=False, compare=False)
    _q_exp: float = field(init=False, repr=False, compare=False)
    _c_pattn: float = field(init=False, repr=False, compare=False)
    _c_dattn: float = field(init=False, repr=False, compare=False)
    _c_wattn: float = field(init=False, repr=False, compare=False)
    _window: int = field(init=False, repr=False, compare=False)
    _c_state: float = field(init=False, repr=False, compare=False)
    _fixed: float = field(init=False, repr=False, compare=False)
    _c_comm: float = field(init=False, repr=False, compare=False)
    _bw_tp: float = field(init=False, repr=False, compare=False)
    _terms: RooflineTerms = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        s = object.__setattr__
        g, m = gpu(self.gpu), model(self.model)
        s(self, "gpu", g)
        s(self, "model", m)
        check_tp(g, m, self.tp)
        for name in ("mfu", "mbu", "comm_efficiency") + (("attn_mfu",) if self.attn_mfu is not None else ()):
            value = getattr(self, name)
            require_positive(name, value)
            require_range(name, value, 0.0, 1.0)
        require_positive("overhead_s", self.overhead_s, allow_zero=True)
        require_positive("allreduce_latency_s", self.allreduce_latency_s, allow_zero=True)
        require_positive("seq_overhead_s", self.seq_overhead_s, allow_zero=True)
        require_positive("step_floor_s", self.step_floor_s, allow_zero=True)
        require_positive("moe_layer_s", self.moe_layer_s, allow_zero=True)
        require_positive("clock", self.clock)
        require_range("clock", self.clock, 0.0, 1.0)
        tp = self.tp
        flops = g.peak_flops * self.mfu * self.clock
        attn_flops = g.peak_flops * (self.attn_mfu or self.mfu) * self.clock
        bw = g.mem_bw * self.mbu
        s(self, "_bw_tp", bw * tp)
        b = m.dtype_bytes
        s(self, "_c_tok", 2.0 * m.active_linear_params / tp / flops)
        s(self, "_c_logit", 2.0 * m.vocab_size * m.hidden_size / tp / flops)
        head = m.vocab_size * m.hidden_size  # the output head is read every iteration; embeddings are gathered
        s(self, "_w_dense", (m.always_params * m.linear_weight_bytes + head * b) / tp / bw)
        if m.is_moe:
            s(self, "_w_expert", m.n_moe_layers * m.expert_params * m.expert_bytes / tp / bw)
            s(self, "_n_exp", m.experts)
            s(self, "_q_exp", 1.0 - m.active_experts / m.experts)
        else:
            s(self, "_w_expert", 0.0)
            s(self, "_n_exp", 0)
            s(self, "_q_exp", 1.0)
        if m.is_mla:
            prefill_pair = 2.0 * m.attention_heads * (m.head_dim + m.v_head_dim)
            decode_pair = 2.0 * m.attention_heads * (2 * m.kv_lora_rank + m.qk_rope_head_dim)
        else:
            prefill_pair = decode_pair = 4.0 * m.attention_heads * m.head_dim
        s(self, "_c_pattn", m.n_attention_layers * prefill_pair / tp / attn_flops)
        s(
            self,
            "_c_dattn",
            max(m.n_full_attention_layers * decode_pair / tp / attn_flops, m.kv_bytes_per_token(tp) / bw),
        )
        s(
            self,
            "_c_wattn",
            max(m.window_layers * decode_pair / tp / attn_flops, m.window_kv_bytes_per_token(tp) / bw),
        )
        s(self, "_window", m.attention_window if m.window_layers else 0)
        s(self, "_c_state", 2.0 * m.state_bytes_per_seq(tp) / bw)
        moe_fixed = m.n_moe_layers * self.moe_layer_s
        if tp > 1:
            reduces = m.n_attention_layers + m.n_mlp_layers + m.mamba_layers
            s(self, "_fixed", self.overhead_s + moe_fixed + reduces * self.allreduce_latency_s)
            ring = 2.0 * (tp - 1) / tp * m.hidden_size * b / (g.link_bw * self.comm_efficiency)
            s(self, "_c_comm", reduces * ring)
        else:
            s(self, "_fixed", self.overhead_s + moe_fixed)
            s(self, "_c_comm", 0.0)
        s(self, "_terms", RooflineTerms(self._c_tok, self._c_logit, self._w_dense, self._w_expert, self._n_exp,
                                        self._q_exp, self._c_pattn, self._c_dattn, self._c_wattn, self._window,
                                        self._c_state, self._fixed, self._c_comm, self.seq_overhead_s,
                                        self.step_floor_s))  # fmt: skip

    # ------------------------------------------------------------------ hot path (closed_forms.RooflineTerms)
    def iteration_time(self, batch: Batch) -> float:
        """Seconds for one iteration of ``batch`` (0 for an empty batch)."""
        return self._terms.iteration_time(
            batch.prefill_tokens, batch.prefill_context, batch.decode_seqs, batch.decode_context
        )

    def iteration_times(
        self,
        prefill_tokens: np.ndarray,
        prefill_context: np.ndarray,
        decode_seqs: np.ndarray,
        decode_context: np.ndarray,
    ) -> np.ndarray:
        """:meth:`iteration_time` of many batches at once (numpy arrays of the :class:`Batch` fields)."""
        p = np.asarray(prefill_tokens, dtype=float)
        d = np.asarray(decode_seqs, dtype=float)
        c = np.asarray(decode_context, dtype=float)
        tokens, logits = p + d, d + (p > 0)
        comp = tokens * self._c_tok + logits * self._c_logit
        mem = self._w_dense + (
            self._w_expert * self._n_exp * (1.0 - self._q_exp**tokens) if self._n_exp else 0.0
        )
        t = (
            np.maximum(comp, mem)
            + self._fixed
            + tokens * self._c_comm
            + logits * self.seq_overhead_s
            + np.asarray(prefill_context, dtype=float) * self._c_pattn
            + c * self._c_dattn
            + d * self._c_state
        )
        if self._window:
            t = t + np.minimum(c, d * self._window) * self._c_wattn
        return np.where(tokens > 0, np.maximum(t, self.step_floor_s), 0.0)

    def decode_run_time(self, decode_seqs: int, decode_context: int, iterations: int) -> float:
        """Seconds for ``iterations`` pure-decode iterations (context grows by ``decode_seqs`` each), O(1)."""
        return self._terms.decode_run_time(decode_seqs, decode_context, iterations)

    def decode_iterations_within(self, decode_seqs: int, decode_context: int, duration: float) -> int:
        """Whole pure-decode iterations that finish within ``duration`` seconds (closed form, O(1))."""
        return self._terms.decode_iterations_within(decode_seqs, decode_context, duration)

    @property
    def terms(self) -> RooflineTerms:
        """The precomputed coefficients and their scalar evaluation (what the simulator calls directly)."""
        return self._terms

    # ------------------------------------------------------------------ conveniences
    def with_clock(self, clock: float) -> RooflineModel:
        """Return this model at a fraction ``clock`` of the maximum SM clock.

        Compute terms scale, memory terms do not.
        """
        return dataclasses.replace(self, gpu=self.gpu, model=self.model, clock=clock)

    def layer_linear_time(self, tokens: int) -> float:
        """Seconds of one layer's projections and MLP for ``tokens`` tokens (max of compute, weight reads)."""
        m = cast(ModelSpec, self.model)  # __post_init__ resolved the name
        comp = tokens * self._c_tok / m.layers
        if self._n_exp:
            touched = self._n_exp * (1.0 - self._q_exp**tokens)
            mem = self._w_expert * touched / m.layers + m.attention_params * m.dtype_bytes / self._bw_tp
        else:
            mem = (m.attention_params + m.expert_params) * m.dtype_bytes / self._bw_tp
        return max(comp, mem)

    def layer_attention_time(self, prefill_pairs: float = 0.0, decode_context: int = 0) -> float:
        """Seconds of one layer's attention for ``prefill_pairs`` query-key pairs and ``decode_context``."""
        layers = cast(ModelSpec, self.model).layers  # __post_init__ resolved the name
        return (prefill_pairs * self._c_pattn + decode_context * self._c_dattn) / layers

    def prefill_time(self, tokens: int, context: int = 0) -> float:
        """Seconds to prefill one prompt chunk of ``tokens`` tokens after ``context`` cached tokens, alone."""
        return self.iteration_time(
            Batch(prefill_tokens=tokens, prefill_context=tokens * (context + tokens / 2))
        )

    def decode_time(self, seqs: int, context: int) -> float:
        """Seconds of one decode iteration of ``seqs`` sequences that each hold ``context`` tokens of KV."""
        return self.iteration_time(Batch(decode_seqs=seqs, decode_context=seqs * context))

    def waiting_time(self, iterations: float, tokens: float, logits: float) -> tuple[float, float]:
        """GPU-waiting seconds inside the modelled time of ``iterations`` iterations: (host, synchronisation).

        ``host`` is the per-iteration overhead (``overhead_s``, scheduling, sampling and launch on the CPU,
        during which the GPU has no kernel) plus ``seq_overhead_s`` per logit; ``synchronisation`` is the
        tensor-parallel all-reduce time (latency per all-reduce and the ring transfer of ``tokens`` tokens),
        0 at ``tp = 1``. These are the execution-idle parts of the iteration time: summed over a simulation's
        busy segments they give the execution-idle time the model implies.
        """
        host = iterations * self.overhead_s + logits * self.seq_overhead_s
        sync = (self._fixed - self.overhead_s) * iterations + tokens * self._c_comm
        return host, sync
