"""Workloads the studies replicate: fitted twins of the shipped traces, drawn afresh for every replication.

A replication needs an independent sample of the workload, which one fixed trace cannot give; a twin fitted
to it (:func:`workbench.traces.fit`: its rate profile, inter-arrival CV, lengths and prefix reuse) can. The
fit is made once per process and kept.
"""

from __future__ import annotations

import functools

from workbench import traces


@functools.lru_cache(maxsize=4)
def twin(name: str) -> traces.Synthetic:
    """Return the synthetic twin of the registered dataset ``name`` (fitted once per process)."""
    return traces.fit(traces.load(name))


def twin_trace(name: str, requests: int, seed: int, speedup: float = 1.0) -> traces.Trace:
    """Draw ``requests`` requests of ``name``'s twin with ``seed``, replayed ``speedup`` times faster.

    Parameters
    ----------
    name
        Registered dataset whose fitted twin draws the requests.
    requests
        Number of requests.
    seed
        Seed of the draw.
    speedup
        Arrival speed-up (:func:`workbench.traces.rescale`; 1: the twin's own rate).

    Returns
    -------
    Trace
        The drawn requests.
    """
    trace = twin(name).generate(requests, seed=seed)
    return traces.rescale(trace, speedup) if speedup != 1.0 else trace
