"""Poisson arrivals over resampled lengths: the quick workload of the one-instance explorer and figures."""

from __future__ import annotations

import numpy as np
import polars as pl


def poisson_requests(lengths: pl.DataFrame, qps: float, n: int, seed: int = 0) -> pl.DataFrame:
    """``n`` requests with Poisson arrivals at ``qps`` and (prompt, output) pairs resampled from ``lengths``.

    Parameters
    ----------
    lengths
        Table with ``prompt_tokens`` and ``output_tokens`` (e.g. a trace's requests).
    qps
        Mean arrival rate (requests per second).
    n
        Requests to draw.
    seed
        Seed of the two named streams (``poisson/arrivals``, ``poisson/lengths``; :mod:`workbench.seeds`).

    Returns
    -------
    pl.DataFrame
        ``request_id``, ``arrival_s`` (first arrival after 0), ``prompt_tokens``, ``output_tokens`` in the
        canonical dtypes.
    """
    from workbench.config import require_int, require_positive

    require_positive("qps", qps)
    require_int("n", n)
    from workbench.seeds import Streams

    streams = Streams(seed)
    idx = streams.rng("poisson/lengths").integers(0, lengths.height, n)
    return pl.DataFrame(
        {
            "request_id": pl.Series(np.arange(n), dtype=pl.UInt64),
            "arrival_s": np.cumsum(streams.rng("poisson/arrivals").exponential(1.0 / qps, n)),
            "prompt_tokens": lengths["prompt_tokens"].to_numpy()[idx].astype(np.int32),
            "output_tokens": lengths["output_tokens"].to_numpy()[idx].astype(np.int32),
        }
    )
