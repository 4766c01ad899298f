"""KV-load-aware routing: where a request's prefix blocks are, and what loading them costs.

With a KV hierarchy (:mod:`workbench.sim.hierarchy`) a request's prefix may sit on an instance's GPU, in its
host memory or SSD, or in the shared store; loading it is a transfer that takes time and competes for links.
:class:`KVLoadAware` treats loading as a stage of the request, as CALVO does, inside LMetric's cost: it
routes to ::

    argmin_i  (T_load_i + P_i / r) x (B_i + 1)

where ``T_load_i`` is the expected time to load onto ``i`` the blocks found below its GPU (at the links'
current contention), ``P_i`` the prefill tokens queued on ``i`` plus this request's tokens found nowhere on
``i``, ``r`` the prefill rate (tokens/s) and ``B_i`` its running batch. Without a hierarchy it
is LMetric divided by the prefill rate (the same choice on identical instances).

Two prefix indexes, as llm-d offers them:

* ``index = "precise"``: the instances' exact cache state, every tier included (llm-d's KV-events indexer);
* ``index = "approximate"``: the router's own record of which prefix blocks it sent where (llm-d's
  approximate prefix-cache scorer: an LRU of ``capacity_blocks`` block hashes per instance). It never hears
  of evictions or of the tiers, so it goes stale as caches turn over; it sees no load cost.

The candidate view provides ``kv_load(request) -> (gpu_tokens, tier_tokens, load_s)`` arrays
(:meth:`workbench.sim.views.InstanceView.kv_load`); views without it (test arrays) fall back to
``prefix_match_tokens`` and no load. ``r`` is one rate for the pool (``prefill_tokens_per_s``, default about
an H100 with an 8B model), so on identical instances only the ratio of load time to queued work matters.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from workbench.config import require_choice, require_int, require_positive
from workbench.sim.routing.base import Candidates, RouteRequest, argmin_first
from workbench.sim.routing.load import RouterBase

INDEXES = ("precise", "approximate")


class KVLoadAware(RouterBase):
    """Loading as a stage (CALVO) in LMetric's cost, over a precise or an approximate prefix index.

    Parameters
    ----------
    index
        ``"precise"`` or ``"approximate"`` (see module docstring).
    prefill_tokens_per_s
        Prefill rate of an instance (tokens/s) that turns queued tokens into seconds next to load times.
    capacity_blocks
        Approximate index: block hashes remembered per instance (llm-d's ``lruCapacityPerServer``, 31,250).
    """

    name = "kv_aware"

    def __init__(
        self,
        *,
        index: str = "precise",
        prefill_tokens_per_s: float = 20_000.0,
        capacity_blocks: int = 31_250,
        rng: np.random.Generator | None = None,
    ) -> None:
        super().__init__(rng=rng)
        require_choice("index", index, INDEXES)
        require_positive("prefill_tokens_per_s", prefill_tokens_per_s)
        require_int("capacity_blocks", capacity_blocks)
        self.index = index
        self.rate = prefill_tokens_per_s
        self.capacity = capacity_blocks
        self._seen: dict[int, OrderedDict] = {}

    def choose(self, request: RouteRequest, view: Candidates, now: float) -> int:
        prompt = request.prompt_tokens
        rate = self.rate
        if self.index == "approximate":
            hit = self._approximate(request, view)
            load = 0.0
        else:
            kv_load = getattr(view, "kv_load", None)
            if kv_load is None:
                hit = view.prefix_match_tokens(request)
                load = 0.0
            else:
                gpu, tiers, load = kv_load(request)
                hit = gpu + tiers
        p = view.queued_prefill_tokens + (prompt - hit)
        k = argmin_first((load + p / rate) * (view.running + 1))
        if self.index == "approximate":
            self._record(request, int(view.ids[k]), view)
        return k

    # ------------------------------------------------------------------ approximate index
    def _block(self, view) -> int:
        return int(getattr(view, "prefix_block_tokens", 0) or 0)

    def _approximate(self, request: RouteRequest, view) -> np.ndarray:
        out = np.zeros(len(view), dtype=np.int64)
        hashes = request.prefix_hashes
        block = self._block(view)
        if not hashes or not block:
            return out
        limit = min(len(hashes), (request.prompt_tokens - 1) // block)
        for j, inst in enumerate(view.ids.tolist()):
            seen = self._seen.get(inst)
            if not seen:
                continue
            n = 0
            while n < limit and hashes[n] in seen:
                n += 1
            out[j] = n * block
        return out

    def _record(self, request: RouteRequest, inst: int, view) -> None:
        hashes = request.prefix_hashes
        block = self._block(view)
        if not hashes or not block:
            return
        seen = self._seen.setdefault(inst, OrderedDict())
        limit = min(len(hashes), (request.prompt_tokens - 1) // block)
        for h in hashes[:limit]:
            if h in seen:
                seen.move_to_end(h)
            else:
                seen[h] = None
        while len(seen) > self.capacity:
            seen.popitem(last=False)
