"""The one view routers see: numpy arrays over a list of instances (or of pools) at one decision.

:class:`InstanceView` is the :class:`~workbench.sim.routing.Candidates` of a list of live instances; the
simulation routes through one over its routable instances and the fleet controller through one per pool.
:class:`PoolView` is the :class:`~workbench.sim.routing.PoolCandidates` of a fleet's entry pools.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any, Protocol

import numpy as np

from workbench.sim.engine import Engine
from workbench.sim.instance import Instance
from workbench.sim.request import Request
from workbench.sim.routing.prefix_index import PrefixIndex


def ints(values) -> np.ndarray:
    """Return an int64 array of an iterable of integers."""
    return np.fromiter(values, dtype=np.int64)


class InstanceView:
    """:class:`~workbench.sim.routing.Candidates` over a list of live instances (arrays built on access).

    Load arrays are ``np.fromiter`` over the instances' O(1) counters and queue objects (a few microseconds
    for 64 instances; ``outstanding_tokens`` = ``queued_prefill_tokens`` + ``outstanding_decode_tokens``).
    The KV arrays are the instances' properties recomputed with numpy from plain attributes (free blocks, the
    LRU list lengths, the fixed capacity and blocks per prefix entry) rather than three nested properties per
    instance. Prefix matches: see :meth:`prefix_match_tokens`.

    Parameters
    ----------
    instances
        The candidates, in position order.
    clock
        The engine (prefix matches are exact at its ``now``).
    speed
        Relative speed per candidate (default ones).
    outstanding
        A counter array indexed by instance id that the owner keeps equal to each instance's outstanding
        requests (read through a slice, no per-instance work); ``None``: counted from the queues.
    prefix_index
        Called once, at the first prefix match, for the index over these instances (a
        :class:`~workbench.sim.routing.prefix_index.PrefixIndex` tracking all of them); ``None``: each
        instance walks its own cache.
    """

    __slots__ = ("_capacity", "_clock", "_cols", "_counts", "_entry_blocks", "_fitting", "_full", "_index",
                 "_index_of", "_prefix_block", "_prefixes", "_rows", "_running", "_waiting", "first_id",
                 "fit_tokens", "ids", "instances", "kv_block_tokens", "min_fit", "speed")  # fmt: skip

    def __init__(
        self,
        instances: Sequence[Instance],
        clock: Engine,
        *,
        speed: np.ndarray | None = None,
        outstanding: np.ndarray | None = None,
        prefix_index: Callable[[], PrefixIndex] | None = None,
    ) -> None:
        insts = list(instances)
        self.instances = insts
        self._clock = clock
        self.ids = ints(i.index for i in insts)
        # the owner's per-instance arrays are read through a slice (a view, no copy) when the ids are
        # consecutive, as in every pool that has not been scaled
        lo = int(self.ids[0]) if len(insts) else 0
        consecutive = bool(len(insts)) and bool((self.ids == np.arange(lo, lo + len(insts))).all())
        self._rows = slice(lo, lo + len(insts)) if consecutive else self.ids
        #: the id of the first instance when the ids are consecutive (then position k is id first_id + k),
        #: else -1
        self.first_id = lo if consecutive else -1
        self._counts = outstanding
        self.speed = np.ones(len(insts)) if speed is None else speed
        # one pool's instances share its scheduler: one KV block size (the first instance's)
        self.kv_block_tokens = insts[0].kv.block_tokens if insts else 16
        # the instances keep these containers for life (cleared, never replaced)
        self._waiting = [i.waiting for i in insts]
        self._running = [i.running for i in insts]
        self._prefixes = [i.prefix for i in insts]
        self._capacity = ints(i.kv.capacity for i in insts)  # KV blocks
        self._entry_blocks = ints(i.prefix.blocks_per_entry for i in insts)  # KV blocks per prefix entry
        # the prefix index and this view's columns in it (looked up at the first prefix match)
        self._index_of = prefix_index
        self._index: PrefixIndex | None = None
        self._cols = np.zeros(0, dtype=np.int64)
        self._full = -1  # the index's column count while this view is all its columns in order, else -1
        #: longest prompt + output each instance can ever hold (whole KV blocks)
        self.fit_tokens = ints(i.fit_tokens for i in insts)
        #: the longest request (prompt + output) every candidate can hold (:meth:`fitting` is ``self`` up to it)
        self.min_fit = int(self.fit_tokens.min()) if len(insts) else 0
        # tokens per prefix-cache entry: one pool's instances share its scheduler and the trace's block size
        self._prefix_block = insts[0].prefix.entry_tokens if insts else 0
        self._fitting: dict[int, InstanceView] = {}

    def __len__(self) -> int:
        return len(self.instances)

    def fitting(self, tokens: int) -> InstanceView:
        """Return the sub-view of the instances that can hold a request of ``tokens`` (prompt + output) tokens.

        ``self`` when every instance can; cached per size class (views are rebuilt on lifecycle changes).
        """
        if tokens <= self.min_fit or not self.instances:
            return self
        cap = int(self.fit_tokens[self.fit_tokens >= tokens].min(initial=np.iinfo(np.int64).max))
        sub = self._fitting.get(cap)
        if sub is None:
            keep = np.flatnonzero(self.fit_tokens >= tokens)
            sub = InstanceView([self.instances[k] for k in keep], self._clock, speed=self.speed[keep],
                               outstanding=self._counts, prefix_index=self._index_of)  # fmt: skip
            self._fitting[cap] = sub
        return sub

    @property
    def outstanding(self) -> np.ndarray:
        if self._counts is not None:
            return self._counts[self._rows]
        return self.waiting + self.running

    @property
    def waiting(self) -> np.ndarray:
        return np.fromiter(map(len, self._waiting), np.int64, len(self.instances))

    @property
    def running(self) -> np.ndarray:
        return np.fromiter(map(len, self._running), np.int64, len(self.instances))

    @property
    def queued_prefill_tokens(self) -> np.ndarray:
        return np.fromiter(map(_QUEUED, self.instances), np.int64, len(self.instances))

    @property
    def outstanding_tokens(self) -> np.ndarray:
        n = len(self.instances)
        return self.queued_prefill_tokens + np.fromiter(map(_DECODE_LEFT, self.instances), np.int64, n)

    @property
    def kv_blocks_used(self) -> np.ndarray:
        return self._capacity - self.free_kv_blocks

    @property
    def free_kv_blocks(self) -> np.ndarray:
        n = len(self.instances)  # as Instance.free_kv_blocks: free + evictable entries x blocks per entry
        free = np.fromiter(map(_FREE, self.instances), np.int64, n)
        return free + np.fromiter(map(_UNREFERENCED, self._prefixes), np.int64, n) * self._entry_blocks

    @property
    def kv_utilization(self) -> np.ndarray:
        return self.kv_blocks_used / self._capacity

    def prefix_match_tokens(self, request: Request) -> np.ndarray:
        """Return the cached prefix tokens per instance (as :meth:`Instance.prefix_match_tokens`).

        With a prefix index (built at the first call, then kept by the instances' hooks): a few numpy calls on
        an array of (matched blocks + 1) x N booleans, whatever the number of instances, instead of a walk of
        each instance's cache.
        """
        n = len(self.instances)
        hashes = request.prefix_hashes
        block = self._prefix_block
        if not hashes or not block:
            return np.zeros(n, dtype=np.int64)
        if self._index_of is None:
            return ints(inst.prefix_match_tokens(request) for inst in self.instances)
        limit = min(len(hashes), (request.prompt_tokens - 1) // block)
        if limit <= 0:
            return np.zeros(n, dtype=np.int64)
        index = self._index
        if index is None:
            index = self._attach()
        due = index.due  # decode runs evict lazily: make those due by now first
        if due and due[0][0] <= self._clock.now:
            index.settle(self._clock.now)
        out = index.match(hashes, limit, None if index.ncols == self._full else self._cols)
        out *= block
        return out

    # ------------------------------------------------------------------ KV hierarchy (workbench.sim.hierarchy)
    @property
    def prefix_block_tokens(self) -> int:
        """Tokens per prefix-cache entry (0: no prefix caching)."""
        return self._prefix_block

    def kv_load(self, request: Request) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return the prefix tokens each instance holds and what loading the rest would cost.

        Per instance: prompt tokens cached on its GPU, tokens found below it (its KV tiers, the shared store)
        and the expected seconds to load those at the links' current contention. Without a KV hierarchy: the
        prefix matches, zeros and zeros.
        """
        insts = self.instances
        runtime = getattr(insts[0].prefix, "runtime", None) if insts else None
        if runtime is None:
            n = len(insts)
            return self.prefix_match_tokens(request), np.zeros(n, dtype=np.int64), np.zeros(n)
        return runtime.view_loads(insts, request)

    def _attach(self) -> PrefixIndex:
        assert self._index_of is not None
        index = self._index_of()
        self._cols = index.columns(self.ids.tolist())
        self._full = index.ncols if np.array_equal(self._cols, np.arange(index.ncols)) else -1
        self._index = index
        return index


_QUEUED = attrgetter("queued_prefill_tokens")
_DECODE_LEFT = attrgetter("outstanding_decode_tokens")
_FREE = attrgetter("kv.free")
_UNREFERENCED = attrgetter("unreferenced")


class PoolSource(Protocol):
    """What a :class:`PoolView` reads of the fleet controller (per pool, by pool number)."""

    views: list[InstanceView]
    deferred: list
    threshold: list[int]
    speed: np.ndarray
    members: list[list[int]]
    block: list[int]
    fleet: Any

    def estimate(self, p: int, request: Request) -> tuple[float, float]:
        """Return the expected (latency s, energy J) of serving ``request`` on pool ``p``."""
        ...


class PoolView:
    """:class:`~workbench.sim.routing.PoolCandidates` over the entry pools (load per live instance)."""

    def __init__(self, owner: PoolSource, pools: list[int]) -> None:
        self.owner = owner
        self.pools = pools
        specs = [owner.fleet.pools[p] for p in pools]
        self.ids = np.asarray(pools, dtype=np.int64)
        self.names = tuple(p.name for p in specs)
        self.max_tokens = np.array([owner.threshold[p] for p in pools], dtype=np.int64)
        self.classes = tuple(frozenset(p.classes) for p in specs)
        self.accuracy = np.array([p.accuracy for p in specs])
        self.speed = np.array([float(owner.speed[owner.members[p]].sum()) if owner.members[p] else 1.0
                               for p in pools])  # fmt: skip
        self.kv_block_tokens = np.array([owner.block[p] for p in pools], dtype=np.int64)  # per pool

    def __len__(self) -> int:
        return len(self.pools)

    def _per_instance(self, attr: str) -> np.ndarray:
        out = np.empty(len(self.pools))
        for k, p in enumerate(self.pools):
            view = self.owner.views[p]
            n = len(view)
            extra = len(self.owner.deferred[p]) if attr in ("outstanding", "waiting") else 0
            out[k] = (float(getattr(view, attr).sum()) + extra) / max(n, 1) if n else extra + 1e9
        return out

    outstanding = property(lambda self: self._per_instance("outstanding"))
    waiting = property(lambda self: self._per_instance("waiting"))
    running = property(lambda self: self._per_instance("running"))
    queued_prefill_tokens = property(lambda self: self._per_instance("queued_prefill_tokens"))
    outstanding_tokens = property(lambda self: self._per_instance("outstanding_tokens"))
    kv_blocks_used = property(lambda self: self._per_instance("kv_blocks_used"))
    free_kv_blocks = property(lambda self: self._per_instance("free_kv_blocks"))
    kv_utilization = property(lambda self: self._per_instance("kv_utilization"))

    def prefix_match_tokens(self, request) -> np.ndarray:
        return np.array([float(v.prefix_match_tokens(request).max()) if len(v) else 0.0
                         for v in (self.owner.views[p] for p in self.pools)])  # fmt: skip

    def expected_latency_s(self, request) -> np.ndarray:
        return np.array([self.owner.estimate(p, request)[0] for p in self.pools])

    def expected_energy_j(self, request) -> np.ndarray:
        return np.array([self.owner.estimate(p, request)[1] for p in self.pools])


__all__ = ["InstanceView", "PoolSource", "PoolView", "ints"]
