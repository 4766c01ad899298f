"""Class- and objective-aware routers: they choose among pools (a :class:`PoolCandidates` view)."""

from __future__ import annotations

import numpy as np

from workbench.config import require_range
from workbench.sim.routing.base import REJECT, PoolCandidates, RouteRequest, argmin_first
from workbench.sim.routing.load import RouterBase


class LengthPools(RouterBase):
    """Two (or more) pools split by length (inference-fleet-sim two-pool design, arXiv 2603.16054).

    The request's size is its prompt tokens (plus its output tokens with ``include_output``, the trace's
    output length standing for the expected one). It goes to the pool with the smallest threshold
    (``max_tokens``) that is >= its size; when it is too long for every pool it is rejected.
    """

    name = "length_pools"

    def __init__(self, *, include_output: bool = True, rng: np.random.Generator | None = None) -> None:
        super().__init__(rng=rng)
        self.include_output = bool(include_output)
        self.reject_reason = "too long for every pool"

    def choose(self, request: RouteRequest, view: PoolCandidates, now: float) -> int:
        size = request.prompt_tokens + (request.output_tokens if self.include_output else 0)
        fits = view.max_tokens >= size
        if not fits.any():
            return REJECT
        return argmin_first(np.where(fits, view.max_tokens, np.iinfo(np.int64).max))


class ClassPools(RouterBase):
    """Route by ``request_class`` (workload-router-pool, arXiv 2603.21354).

    Pools list the classes they serve; among the pools serving the class the one with fewest outstanding
    requests per instance wins. A request whose class no pool lists goes to the ``fallback`` pool (by
    name), or is rejected when there is none.
    """

    name = "class_pools"

    def __init__(self, *, fallback: str | None = None, rng: np.random.Generator | None = None) -> None:
        super().__init__(rng=rng)
        self.fallback = fallback
        self.reject_reason = "no pool for its class"

    def choose(self, request: RouteRequest, view: PoolCandidates, now: float) -> int:
        cls = request.request_class
        serving = np.flatnonzero([cls is not None and cls in c for c in view.classes])
        if serving.size:
            return int(serving[argmin_first(view.outstanding[serving])])
        if self.fallback is not None and self.fallback in view.names:
            return view.names.index(self.fallback)
        return REJECT


class MultiObjective(RouterBase):
    """Two-stage multi-objective choice (arXiv 2603.15400).

    Keep the pools (model variants on devices) whose accuracy >= ``a_min``; among them pick the lowest
    ``w`` x normalised expected latency + (1 - ``w``) x normalised expected energy, each normalised by its
    largest value among the kept pools. Rejected when no pool is accurate enough.
    """

    name = "multi_objective"

    def __init__(self, *, a_min: float = 0.0, w: float = 0.5, rng: np.random.Generator | None = None) -> None:
        super().__init__(rng=rng)
        require_range("a_min", a_min, 0.0, 1.0)
        require_range("w", w, 0.0, 1.0)
        self.a_min, self.w = a_min, w
        self.reject_reason = "no pool meets the accuracy floor"

    def choose(self, request: RouteRequest, view: PoolCandidates, now: float) -> int:
        keep = np.flatnonzero(view.accuracy >= self.a_min)
        if keep.size == 0:
            return REJECT
        lat = view.expected_latency_s(request)[keep]
        energy = view.expected_energy_j(request)[keep]
        score = self.w * lat / max(lat.max(), 1e-300) + (1.0 - self.w) * energy / max(energy.max(), 1e-300)
        return int(keep[argmin_first(score)])
