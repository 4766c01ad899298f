"""Simulation results: polars tables in memory (nothing written unless asked).

Column contract (shared by the instance simulator, the fleet simulator, power and planning):

``requests`` — one row per request that entered the system:
    request_id (UInt64), arrival_s, admitted_s, first_token_s, finish_s (Float64; null if rejected),
    ttft_s, tpot_s, e2e_s, queue_s (Float64), prompt_tokens, output_tokens (Int32),
    cached_tokens (Int32, prompt tokens served from the prefix cache), preemptions (Int32),
    instance (Int32), pool (Utf8), rejected (Boolean), reject_reason (Utf8, nullable).
    The simulator adds ``retries`` (Int32: times the request was moved off a failed instance).

``segments`` — exact piecewise-constant time series per instance; consecutive, non-overlapping:
    instance (Int32), start_s, end_s (Float64), state (Utf8: "busy" | "idle" | "starting" | "off"),
    batch_size (Int32: sequences in the running batch), prefill_tokens (Int64: prefill tokens processed in
    the segment), kv_blocks_used (Int32, at segment start), iterations (Int64).
    Energy is the sum over segments of power(state, batch_size) x (end_s - start_s).

``instances`` — one row per instance: instance (Int32), pool (Utf8), gpu (Utf8), model (Utf8), tp (Int32),
    n_gpus (Int32, GPUs used = tp, or a fraction for MIG), kv_capacity_blocks (Int32).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

REQUEST_SCHEMA: dict[str, pl.DataType] = {
    "request_id": pl.UInt64(),
    "arrival_s": pl.Float64(),
    "admitted_s": pl.Float64(),
    "first_token_s": pl.Float64(),
    "finish_s": pl.Float64(),
    "ttft_s": pl.Float64(),
    "tpot_s": pl.Float64(),
    "e2e_s": pl.Float64(),
    "queue_s": pl.Float64(),
    "prompt_tokens": pl.Int32(),
    "output_tokens": pl.Int32(),
    "cached_tokens": pl.Int32(),
    "preemptions": pl.Int32(),
    "instance": pl.Int32(),
    "pool": pl.Utf8(),
    "rejected": pl.Boolean(),
    "reject_reason": pl.Utf8(),
}
SEGMENT_SCHEMA: dict[str, pl.DataType] = {
    "instance": pl.Int32(),
    "start_s": pl.Float64(),
    "end_s": pl.Float64(),
    "state": pl.Utf8(),
    "batch_size": pl.Int32(),
    "prefill_tokens": pl.Int64(),
    "kv_blocks_used": pl.Int32(),
    "iterations": pl.Int64(),
}
INSTANCE_SCHEMA: dict[str, pl.DataType] = {
    "instance": pl.Int32(),
    "pool": pl.Utf8(),
    "gpu": pl.Utf8(),
    "model": pl.Utf8(),
    "tp": pl.Int32(),
    "n_gpus": pl.Float64(),
    "kv_capacity_blocks": pl.Int32(),
}


@dataclass(frozen=True)
class SimResult:
    """Result of a simulation: per-request table, per-instance segments, instance table, extra counters."""

    requests: pl.DataFrame
    segments: pl.DataFrame
    instances: pl.DataFrame
    counters: dict = field(default_factory=dict)
