"""Tables of iteration time against batch shape for any performance models (inputs of the roofline charts)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl

from workbench.errors import ConfigError
from workbench.hardware.perf import Batch, PerformanceModel


def _check(perfs: Mapping[str, PerformanceModel], values: Sequence[int], name: str) -> None:
    if not perfs:
        raise ConfigError("perfs must name at least one performance model")
    if not values or any(v < 1 for v in values):
        raise ConfigError(f"{name} must be a non-empty list of integers >= 1")


def decode_curve(
    perfs: Mapping[str, PerformanceModel],
    batch_sizes: Sequence[int] = (1, 2, 4, 8, 16, 32, 64, 128, 256),
    context: int = 1024,
) -> pl.DataFrame:
    """Pure-decode iteration time and token throughput against batch size.

    Parameters
    ----------
    perfs
        Label -> performance model (e.g. ``{"H100 8B": RooflineModel("H100", "Llama-3.1-8B")}``).
    batch_sizes
        Decode sequences per iteration.
    context
        Tokens of KV cache per sequence.

    Returns
    -------
    polars.DataFrame
        ``config, batch, iteration_ms, tokens_per_s`` (output tokens per second of the whole batch).
    """
    _check(perfs, batch_sizes, "batch_sizes")
    rows = []
    for label, perf in perfs.items():
        for b in batch_sizes:
            t = perf.iteration_time(Batch(decode_seqs=b, decode_context=b * context))
            rows.append((label, b, t * 1e3, b / t))
    return pl.DataFrame(rows, schema=["config", "batch", "iteration_ms", "tokens_per_s"], orient="row")


def prefill_curve(
    perfs: Mapping[str, PerformanceModel], tokens: Sequence[int] = (128, 256, 512, 1024, 2048, 4096, 8192)
) -> pl.DataFrame:
    """Prefill time (one prompt alone) and prompt tokens per second against prompt length.

    Returns
    -------
    polars.DataFrame
        ``config, tokens, prefill_ms, tokens_per_s``.
    """
    _check(perfs, tokens, "tokens")
    rows = []
    for label, perf in perfs.items():
        for n in tokens:
            t = perf.iteration_time(Batch(prefill_tokens=n, prefill_context=n * n / 2))
            rows.append((label, n, t * 1e3, n / t))
    return pl.DataFrame(rows, schema=["config", "tokens", "prefill_ms", "tokens_per_s"], orient="row")
