"""Fleet simulation: pools, a front router, in-pool routers, disaggregation and autoscaling on one clock.

:func:`simulate` builds a :class:`~workbench.sim.simulation.Simulation` with one instance per (possible)
pool member and plugs a :class:`FleetController` into its hooks:

* routing: the front router picks an entry pool (requests too long for every pool, or with no pool for their
  class, are rejected and listed), the pool's router picks an instance;
* disaggregation: a request finishing prefill on a ``role = "prefill"`` instance moves its KV cache to a
  decode pool in ``kv_bytes / link_bandwidth + latency`` seconds; a decode instance admits it when it has
  the KV blocks (``kv_ready`` requests wait in its queue otherwise);
* autoscaling: every ``interval_s`` each autoscaled pool's policy sets the desired instance count; instances
  start (cold start ``setup_delay_s``) or drain.

The result is the core :class:`~workbench.sim.result.SimResult` (``pool`` and ``instance`` columns, rejected
rows with their reason) plus a ``prefill_instance`` column for disaggregated fleets and autoscaling counters.
Helpers turn results into comparison tables: :func:`compare`, :func:`latency_cdf`, :func:`instance_stats`,
:func:`instance_count`, :func:`gpu_hours`; :mod:`workbench.sim.studies` runs the seed papers' comparisons.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from operator import attrgetter

import numpy as np
import polars as pl

from workbench.sim.autoscale import PoolObservation, clamp, drain_order, get_scaler
from workbench.sim.config import InstanceConfig
from workbench.sim.engine import PRIO_CONTROL
from workbench.sim.instance import DRAINING, OFF, ON, STARTING, Instance
from workbench.sim.result import REQUEST_SCHEMA, SimResult
from workbench.sim.routing import REJECT, get_router
from workbench.sim.routing.prefix_index import PrefixIndex
from workbench.sim.simulation import DEFER, Simulation, trace_rows
from workbench.sim.topology import Fleet, Pool, instance_gpu, monolithic


def _ints(values) -> np.ndarray:
    return np.fromiter(values, dtype=np.int64)


class InstanceView:
    """:class:`~workbench.sim.routing.Candidates` over a list of live instances (arrays built on access).

    Load arrays are ``np.fromiter`` over the instances' O(1) counters and queue objects (a few microseconds
    for 64 instances; ``outstanding_tokens`` = ``queued_prefill_tokens`` + ``outstanding_decode_tokens``).
    The KV arrays are the instances' properties recomputed with numpy from plain attributes (``free``, the
    LRU list lengths, the fixed capacity and blocks per prefix entry) rather than three nested properties per
    instance; ``outstanding`` comes from a counter the controller keeps per instance. Prefix matches: see
    :meth:`prefix_match_tokens`.
    """

    __slots__ = ("_capacity", "_cols", "_fitting", "_full", "_hb", "_index", "_lrus", "_min_fit",
                 "_prefix_block", "_rows", "_running", "_waiting", "fit_tokens", "ids", "insts",
                 "kv_block_tokens", "owner", "speed")  # fmt: skip

    def __init__(self, insts: list[Instance], owner: FleetController, speed: np.ndarray, block: int) -> None:
        self.insts = insts
        self.owner = owner
        self.ids = _ints(i.index for i in insts)
        # the controller's per-instance arrays are read through a slice (a view, no copy) when the ids are
        # consecutive, as in every pool that has not been scaled
        lo = int(self.ids[0]) if len(insts) else 0
        consecutive = bool(len(insts)) and bool((self.ids == np.arange(lo, lo + len(insts))).all())
        self._rows = slice(lo, lo + len(insts)) if consecutive else self.ids
        self.speed = speed
        self.kv_block_tokens = block
        # the instances keep these containers for life (cleared, never replaced)
        self._waiting = [i.waiting for i in insts]
        self._running = [i.running for i in insts]
        self._lrus = [i.lru for i in insts]
        self._capacity = _ints(i.capacity for i in insts)  # KV blocks
        self._hb = _ints(i.hb for i in insts)  # KV blocks per prefix-cache entry
        # the pool's prefix index and this view's columns in it (looked up at the first prefix match)
        self._index: PrefixIndex | None = None
        self._cols = np.zeros(0, dtype=np.int64)
        self._full = -1  # the index's column count while this view is all its columns in order, else -1
        #: longest prompt + output each instance can ever hold (whole KV blocks)
        self.fit_tokens = _ints(i.fit_tokens for i in insts)
        self._min_fit = int(self.fit_tokens.min()) if len(insts) else 0
        # tokens per prefix-cache entry: one pool's instances share its scheduler and the trace's block size
        self._prefix_block = insts[0].H if insts else 0
        self._fitting: dict[int, InstanceView] = {}

    def __len__(self) -> int:
        return len(self.insts)

    def fitting(self, tokens: int) -> InstanceView:
        """The sub-view of the instances that can hold a request of ``tokens`` (prompt + output) tokens.

        ``self`` when every instance can; cached per size class (views are rebuilt on lifecycle changes).
        """
        if tokens <= self._min_fit or not self.insts:
            return self
        cap = int(self.fit_tokens[self.fit_tokens >= tokens].min(initial=np.iinfo(np.int64).max))
        sub = self._fitting.get(cap)
        if sub is None:
            keep = np.flatnonzero(self.fit_tokens >= tokens)
            insts = [self.insts[k] for k in keep]
            sub = InstanceView(insts, self.owner, self.speed[keep], self.kv_block_tokens)
            self._fitting[cap] = sub
        return sub

    @property
    def outstanding(self) -> np.ndarray:
        return self.owner.out[self._rows]

    @property
    def waiting(self) -> np.ndarray:
        return np.fromiter(map(len, self._waiting), np.int64, len(self.insts))

    @property
    def running(self) -> np.ndarray:
        return np.fromiter(map(len, self._running), np.int64, len(self.insts))

    @property
    def queued_prefill_tokens(self) -> np.ndarray:
        return np.fromiter(map(_QUEUED, self.insts), np.int64, len(self.insts))

    @property
    def outstanding_tokens(self) -> np.ndarray:
        n = len(self.insts)
        return self.queued_prefill_tokens + np.fromiter(map(_DECODE_LEFT, self.insts), np.int64, n)

    @property
    def kv_blocks_used(self) -> np.ndarray:
        return self._capacity - self.free_kv_blocks

    @property
    def free_kv_blocks(self) -> np.ndarray:
        n = len(self.insts)  # as Instance.free_kv_blocks: free + evictable entries x blocks per entry
        free = np.fromiter(map(_FREE, self.insts), np.int64, n)
        return free + np.fromiter(map(len, self._lrus), np.int64, n) * self._hb

    @property
    def kv_utilization(self) -> np.ndarray:
        return self.kv_blocks_used / self._capacity

    def prefix_match_tokens(self, request) -> np.ndarray:
        """Cached prefix tokens per instance (as :meth:`Instance.prefix_match_tokens`).

        Read from the pool's :class:`~workbench.sim.routing.prefix_index.PrefixIndex` (built at the first
        call, then kept by the instances' hooks): a few numpy calls on an array of (matched blocks + 1) x N
        booleans, whatever the number of instances, instead of a walk of each instance's cache.
        """
        n = len(self.insts)
        hashes = request.prefix_hashes
        block = self._prefix_block
        if not hashes or not block:
            return np.zeros(n, dtype=np.int64)
        limit = min(len(hashes), (request.prompt_tokens - 1) // block)
        if limit <= 0:
            return np.zeros(n, dtype=np.int64)
        index = self._index
        if index is None:
            index = self._attach()
        due = index.due  # decode runs evict lazily: make those due by now first
        if due and due[0][0] <= self.owner.sim.engine.now:
            index.settle(self.owner.sim.engine.now)
        out = index.match(hashes, limit, None if index.ncols == self._full else self._cols)
        out *= block
        return out

    def _attach(self) -> PrefixIndex:
        owner = self.owner
        index = owner.prefix_index(int(owner.pool_of[self.insts[0].index]))
        self._cols = index.columns(self.ids.tolist())
        self._full = index.ncols if np.array_equal(self._cols, np.arange(index.ncols)) else -1
        self._index = index
        return index


_QUEUED = attrgetter("queued_prefill_tokens")
_DECODE_LEFT = attrgetter("outstanding_decode_tokens")
_FREE = attrgetter("free")


class PoolView:
    """:class:`~workbench.sim.routing.PoolCandidates` over the entry pools (load per live instance)."""

    def __init__(self, owner: FleetController, pools: list[int]) -> None:
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


class FleetController:
    """Routes, hands off and scales a fleet inside one :class:`Simulation` (see module docstring)."""

    name = "fleet"

    def __init__(self, sim: Simulation, fleet: Fleet) -> None:
        from workbench.hardware import model

        self.sim = sim
        self.fleet = fleet
        self.reject_reason = ""
        pools = fleet.pools
        self.pool_index = {p.name: k for k, p in enumerate(pools)}
        self.entry = [k for k, p in enumerate(pools) if p.role != "decode"]
        self.decode = [k for k, p in enumerate(pools) if p.role == "decode"]
        self.members: list[list[int]] = [[] for _ in pools]
        self.deferred: list[deque] = [deque() for _ in pools]
        self.prefill_of: dict[int, int] = {}
        #: KV block size of each pool's scheduler
        self.block = [p.scheduler.block_size for p in pools]
        #: longest prompt + output a pool serves: its largest instance's KV (whole blocks), at most the context
        self.capacity: list[int] = []
        #: length-routing threshold of each pool (``max_tokens``, else its capacity)
        self.threshold: list[int] = []
        #: per pool, per distinct instance type: (performance model, power W) for estimates
        self.kinds: list[list[tuple]] = []
        kind_of: list[int] = []  # per instance: its type's position in its pool's kinds
        for k, pool in enumerate(pools):
            kinds: dict[int, int] = {}
            self.kinds.append([])
            for j, (cfg, gpu_name) in enumerate(_pool_configs(pool)):
                inst = sim.add_instance(cfg, state=ON if j < pool.instances else OFF)
                self.members[k].append(inst.index)
                kind = kinds.get(id(cfg))  # members of one GPU type share their configuration object
                if kind is None:
                    kind = kinds[id(cfg)] = len(self.kinds[k])
                    self.kinds[k].append((inst.perf, instance_gpu(gpu_name, pool.mig).tdp_w * pool.tp))
                kind_of.append(kind)
            fit = max((sim.instances[i].fit_tokens for i in self.members[k]), default=0)
            cap = min(fit, model(pool.model).max_context)
            self.capacity.append(cap)
            self.threshold.append(min(cap, pool.max_tokens) if pool.max_tokens else cap)
        self.kind_of = np.asarray(kind_of, dtype=np.int64)
        n = len(sim.instances)
        self.pool_of = np.empty(n, dtype=np.int64)
        for k, idx in enumerate(self.members):
            self.pool_of[idx] = k
        self.out = np.zeros(n, dtype=np.int64)  # requests routed to each instance and not finished there
        # relative speed (for weighted round robin): inverse prefill time of a 2,048-token prompt
        t = np.array([sim.instances[i].perf.iteration_time(_prefill_batch(2048)) for i in range(n)])
        self.speed = t.min() / t
        self.kv_bytes_token = [model_kv_bytes(p.model) for p in pools]
        # routers (randomised ones draw from their own stream, named for their place in the fleet)
        self.front = get_router(fleet.router, rng=sim.rng("router/front"), **fleet.router_params)
        self.inner = [
            get_router(p.router, rng=sim.rng(f"router/pool/{p.name}"), **p.router_params) for p in pools
        ]
        self.decode_router = get_router(fleet.decode_router, rng=sim.rng("router/decode"))
        #: per pool, the index of its instances' prefix caches (made when a router first asks for a match)
        self.prefix_indexes: list[PrefixIndex | None] = [None] * len(pools)
        self.views: list[InstanceView] = []
        self._refresh()
        self.pool_view = PoolView(self, self.entry)
        # autoscaling state
        self.scalers = {k: get_scaler(p.autoscale) for k, p in enumerate(pools) if p.autoscale is not None}
        self.idle_since = np.full(n, math.inf)
        self.timeline: list[tuple[float, str, int]] = []
        sim.router = self
        sim.on_state_change = self._state_changed
        sim.on_finish = self._on_finish
        sim.on_end = self._reject_deferred
        if self.scalers:  # hold requests while the whole fleet is scaled to zero
            sim.hold_unroutable = True

    # ------------------------------------------------------------------ bookkeeping
    def _refresh(self) -> None:
        """Rebuild the per-pool live instance lists and positions (on every lifecycle change)."""
        sim = self.sim
        self.position = {inst.index: k for k, inst in enumerate(sim.routable)}
        live: list[list[Instance]] = [[] for _ in self.fleet.pools]
        for inst in sim.routable:
            live[self.pool_of[inst.index]].append(inst)
        self.views = [
            InstanceView(lst, self, self.speed[_ints(i.index for i in lst)] if lst else np.ones(0), block)
            for lst, block in zip(live, self.block, strict=True)
        ]

    def prefix_index(self, p: int) -> PrefixIndex:
        """The prefix index of pool ``p`` (made on first use: it tracks every member, on or off)."""
        index = self.prefix_indexes[p]
        if index is None:
            index = self.prefix_indexes[p] = PrefixIndex()
            for i in self.members[p]:
                index.track(self.sim.instances[i])
        return index

    def _state_changed(self, inst: Instance, old: str, new: str, now: float) -> None:
        self._refresh()
        self.out[inst.index] = inst.outstanding  # a failed instance's requests were taken away
        p = int(self.pool_of[inst.index])
        if new == ON:
            self.idle_since[inst.index] = now if inst.outstanding == 0 else math.inf
            queue = self.deferred[p]
            for _ in range(len(queue)):  # each once: one that no live instance holds yet is deferred again
                if not self.views[p].insts:
                    break
                self.sim.route(queue.popleft(), now)

    # ------------------------------------------------------------------ routing (Simulation.router)
    def choose(self, request, instances: Sequence[Instance], now: float) -> int:
        if request.kv_ready:
            p = self._pick_decode_pool(request)
            router = self.decode_router
        else:
            p = self._pick_entry_pool(request, now)
            if p < 0:
                return REJECT
            router = self.inner[p]
        view = self.views[p]
        if not view.insts:
            self.deferred[p].append(request)
            return DEFER
        size = request.prompt_tokens + request.output_tokens
        view = view.fitting(size)  # heterogeneous pool: only the instances that can hold the request
        if not view.insts:
            if size > self.capacity[p]:  # a decode pool no member of which can ever hold it
                self.reject_reason = (
                    f"{size} tokens: no instance of pool {self.fleet.pools[p].name!r} holds them "
                    f"(largest holds {self.capacity[p]})"
                )
                return REJECT
            # a larger member is off, starting or failed: wait for it (an autoscaler starts one, see _tick)
            self.deferred[p].append(request)
            return DEFER
        k = router.choose(request, view, now) if len(view) > 1 else 0
        inst = view.insts[k]
        if request.prompt_tokens > inst.max_prompt:  # the view holds only instances that fit the tokens
            self.reject_reason = inst.reject_reason(request)
            return REJECT
        i = inst.index
        self.out[i] += 1
        return self.position[i]

    def _pick_entry_pool(self, request, now: float) -> int:
        """The entry pool of ``request`` (or :data:`REJECT` with ``reject_reason`` set).

        The front router decides by its own rule (``length_pools`` by prompt, plus output with
        ``include_output``, against the pools' thresholds); the hard limit is what a pool can physically serve:
        prompt + output within its largest instance's KV capacity and the model's context. A request the chosen
        pool cannot hold goes to the smallest pool that can (``class_pools``: it is rejected).
        """
        entry = self.entry
        size = request.prompt_tokens + request.output_tokens
        if len(entry) == 1:
            p = entry[0]
            if size > self.capacity[p]:
                self.reject_reason = f"too long for every pool ({size} tokens > {self.capacity[p]})"
                return REJECT
            return p
        k = self.front.choose(request, self.pool_view, now)
        if k < 0:
            cls = "" if request.request_class is None else f", class {request.request_class!r}"
            self.reject_reason = (
                f"{self.front.reject_reason} ({request.prompt_tokens}+{request.output_tokens} tokens{cls})"
            )
            return REJECT
        p = entry[k]
        if size > self.capacity[p]:
            fits = [q for q in entry if self.capacity[q] >= size]
            if not fits:
                self.reject_reason = (
                    f"too long for every pool ({size} tokens > {max(self.capacity[q] for q in entry)})"
                )
                return REJECT
            if self.fleet.router == "class_pools":
                self.reject_reason = (
                    f"too long for pool {self.fleet.pools[p].name!r} of its class ({size} tokens > "
                    f"{self.capacity[p]})"
                )
                return REJECT
            p = min(fits, key=lambda q: (self.threshold[q], q))
        return p

    def _pick_decode_pool(self, request) -> int:
        """The least loaded decode pool (outstanding per live instance) that can hold the request."""
        if len(self.decode) == 1:
            return self.decode[0]
        size = request.prompt_tokens + request.output_tokens
        fits = [q for q in self.decode if self.capacity[q] >= size] or self.decode
        return min(
            fits,
            key=lambda q: (
                (len(self.deferred[q]) + sum(i.outstanding for i in self.views[q].insts))
                / max(len(self.views[q]), 1)
            ),
        )

    # ------------------------------------------------------------------ disaggregation (Simulation.on_finish)
    def _on_finish(self, request, inst: Instance, now: float) -> bool:
        i = inst.index
        self.out[i] -= 1
        if inst.role != "prefill" or request.generated >= request.output_tokens:
            return False
        p = int(self.pool_of[inst.index])
        bw, latency = self.fleet.link
        lanes = self.fleet.pools[p].tp  # each tensor-parallel shard moves its part in parallel
        tokens = request.prompt_tokens + request.generated
        transfer = tokens * self.kv_bytes_token[p] / (bw * lanes) + latency
        self.prefill_of[request.index] = inst.index
        request.kv_ready = True
        self.sim.submit(request, at=now + transfer)
        return True

    # ------------------------------------------------------------------ expectations (multi_objective)
    def estimate(self, p: int, request) -> tuple[float, float]:
        """Expected latency (s) and energy (J) of ``request`` on pool ``p`` at its current load.

        The pool's mean queued prefill and running batch per live instance; in a heterogeneous pool, the mean
        over its instance types weighted by their share of the pool's live instances (of all its members when
        none is live).
        """
        view = self.views[p]
        n = len(view)
        queued = float(view.queued_prefill_tokens.sum()) / n if n else 0.0
        batch = float(view.running.sum()) / n + 1 if n else 1.0
        kinds = self.kinds[p]
        ids = view.ids if n else self.members[p]
        share = np.bincount(self.kind_of[ids], minlength=len(kinds)) / len(ids)
        latency = energy = 0.0
        for (perf, power_w), w in zip(kinds, share.tolist(), strict=True):
            if not w:
                continue
            prefill = perf.iteration_time(_prefill_batch(int(queued) + request.prompt_tokens))
            step = perf.decode_time(max(int(batch), 1), request.prompt_tokens + request.output_tokens // 2)
            latency += w * (prefill + request.output_tokens * step)
            energy += w * power_w * (prefill + request.output_tokens * step / batch)
        return latency, energy

    # ------------------------------------------------------------------ autoscaling
    def start_autoscaling(self, until: float) -> None:
        """Schedule the autoscalers' periodic decisions (they stop once the trace is over and work is done)."""
        self.until = until
        for p in self.scalers:
            self._record(p, 0.0)
            self.sim.engine.schedule(0.0, PRIO_CONTROL, self._tick, p)

    def _record(self, p: int, now: float) -> None:
        insts = [self.sim.instances[i] for i in self.members[p]]
        self.timeline.append((now, self.fleet.pools[p].name, sum(i.state != OFF for i in insts)))

    def _adopt_pending(self) -> None:
        """Move requests the simulation held (no instance on anywhere) to their pool's queue."""
        pending = self.sim.pending
        while pending:
            req = pending.popleft()
            q = self._pick_decode_pool(req) if req.kv_ready else self._pick_entry_pool(req, self.sim.engine.now)
            if q < 0:
                self.sim.reject(req, self.reject_reason)
            else:
                self.deferred[q].append(req)

    def _tick(self, p: int, now: float) -> None:
        cfg = self.fleet.pools[p].autoscale
        self._adopt_pending()
        insts = [self.sim.instances[i] for i in self.members[p]]
        on = [i for i in insts if i.state == ON]
        starting = [i for i in insts if i.state == STARTING]
        for i in on:
            if i.outstanding:
                self.idle_since[i.index] = math.inf
            elif self.idle_since[i.index] == math.inf:
                self.idle_since[i.index] = now
        deferred = len(self.deferred[p])
        out = _ints(i.outstanding for i in on).astype(float)
        wait = _ints(i.n_waiting for i in on).astype(float)
        if deferred:  # requests held for the pool count as waiting work
            out = np.append(out, deferred) if not on else out + deferred / len(on)
            wait = np.append(wait, deferred) if not on else wait + deferred / len(on)
        obs = PoolObservation(
            now=now,
            n_on=len(on),
            n_starting=len(starting),
            outstanding=out if on else np.zeros(0) + out,
            waiting=wait if on else np.zeros(0) + wait,
            kv_utilization=np.fromiter((i.kv_utilization for i in on), dtype=float),
            idle_since=self.idle_since[[i.index for i in on]] if on else np.zeros(0),
        )
        if not on:  # keep arrays aligned for policies that look per instance
            obs = PoolObservation(
                now, 0, len(starting), out, wait, np.zeros(out.size), np.full(out.size, math.inf)
            )
        want = clamp(cfg, self.scalers[p].desired(obs))
        current = len(on) + len(starting)
        need, keep = 0, None
        if deferred:  # the largest held request needs a member that holds it, on or starting
            need = max(r.prompt_tokens + r.output_tokens for r in self.deferred[p])
            holders = [i for i in on + starting if i.fit_tokens >= need]
            if holders:
                need = 0
                keep = holders[0] if len(holders) == 1 else None  # never drain the only one
            else:  # only an off (or draining) member holds it: start one, whatever the policy says
                want = max(want, current + 1)
        if want > current:
            self._scale_up(insts, want - current, cfg.setup_delay_s, need)
        elif want < current:
            self._scale_down(on, starting, current - want, keep)
        self._record(p, now)
        busy = any(i.outstanding for i in insts) or deferred or self.sim.pending
        if now < self.until or busy:
            self.sim.engine.schedule(now + cfg.interval_s, PRIO_CONTROL, self._tick, p)

    def _scale_up(self, insts: list[Instance], k: int, setup_s: float, need: int = 0) -> None:
        """Start ``k`` members: draining ones first (no cold start), then off ones in member order; with
        ``need``, the first member that holds ``need`` tokens goes first."""
        order = [i for i in insts if i.state == DRAINING] + [i for i in insts if i.state == OFF]
        if need:
            big = next(i for i in order if i.fit_tokens >= need)  # exists: the pool's capacity holds it
            order.remove(big)
            order.insert(0, big)
        for inst in order[:k]:
            self.sim.start_instance(inst, setup_s)  # a draining one comes back at once

    def _reject_deferred(self, now: float) -> None:
        """Reject the requests still held when the events run out (their pool had no instance for them)."""
        for p, queue in enumerate(self.deferred):
            for req in queue:
                self.sim.reject(
                    req,
                    f"no instance of pool {self.fleet.pools[p].name!r} that holds its "
                    f"{req.prompt_tokens + req.output_tokens} tokens was on before the end of the simulation",
                )
            queue.clear()

    def _scale_down(self, on: list[Instance], starting: list[Instance], k: int, keep: Instance | None) -> None:
        """Drain ``k`` members: starting ones first (youngest first), then on ones in drain order; never
        ``keep`` (the only member that holds a held request) nor, while requests are held, the last on."""
        for inst in [i for i in starting[::-1] if i is not keep][:k]:
            self.sim.drain_instance(inst)
            k -= 1
        if k <= 0 or not on:
            return
        order = drain_order(_ints(i.outstanding for i in on), self.idle_since[[i.index for i in on]])
        order = [int(j) for j in order if on[int(j)] is not keep]
        for j in order[: min(k, len(on) - 1 if any(len(d) for d in self.deferred) else k)]:
            self.sim.drain_instance(on[j])


def _prefill_batch(tokens: int):
    from workbench.hardware.perf import Batch

    return Batch(prefill_tokens=tokens, prefill_context=tokens * tokens / 2)


def model_kv_bytes(model_name: str) -> int:
    """KV-cache bytes per token of the whole model (all layers, all KV heads)."""
    from workbench.hardware import model

    return model(model_name).kv_bytes_per_token(1)


def _pool_configs(pool: Pool) -> list[tuple[InstanceConfig, str]]:
    """(instance configuration, GPU type) of a pool's possible members, initial ones first; members of one
    GPU type share one configuration object."""
    from workbench.hardware import RooflineModel, kv_capacity_tokens

    gpus = pool.gpu_list() or pool.gpu_types()
    n = pool.max_instances
    cycle = [gpus[j % len(gpus)] for j in range(n)]
    role = pool.role
    out, cache = [], {}
    for g in cycle:
        if g not in cache:
            kw: dict = {}
            if pool.mig is not None:
                sl = instance_gpu(g, pool.mig)
                kw = {
                    "perf": RooflineModel(sl, pool.model, 1),
                    "kv_capacity_tokens": kv_capacity_tokens(sl, pool.model),
                }
                name = sl.name
            else:
                name = g
            cache[g] = InstanceConfig(
                gpu=name,
                model=pool.model,
                tp=pool.tp,
                scheduler=pool.scheduler,
                role=role,
                pool=pool.name,
                n_gpus=pool.gpus_per_instance,
                **kw,
            )
        out.append((cache[g], g))
    return out


def simulate(
    trace,
    fleet: Fleet | int,
    *,
    seed: int = 0,
    record_segments: bool = True,
    router: str | None = None,
    setup=None,
    progress: bool | None = None,
) -> SimResult:
    """Simulate ``trace`` through ``fleet``.

    Parameters
    ----------
    trace
        A :class:`~workbench.traces.schema.Trace` (or a polars DataFrame in the canonical schema).
    fleet
        The fleet, or an instance count for a monolithic H100 / Llama-3.1-8B pool behind ``router``.
    seed
        Seed of all random streams (randomised routers).
    record_segments
        Keep per-instance time series (needed for GPU-hours, instance counts and energy).
    router
        With an integer ``fleet``: the pool's router (default ``jsq``).
    setup
        Optional ``setup(sim, controller)`` called before the run, e.g. to schedule failures
        (``sim.fail_instance``) or swap an instance's performance model.
    progress
        Progress bar of the run (see :meth:`Simulation.run <workbench.sim.simulation.Simulation.run>`):
        ``None`` shows one only for long traces in an interactive session.

    Returns
    -------
    SimResult
        Core result tables; ``requests`` has ``pool``/``instance`` (and ``prefill_instance`` for
        disaggregated fleets); rejected requests are rows with ``rejected = True`` and a ``reject_reason``.
        ``counters`` adds ``cold_starts``, ``gpu_hours`` and, with autoscaling, ``timeline`` (time, pool,
        powered instances).

    Examples
    --------
    >>> import polars as pl
    >>> reqs = pl.DataFrame({"request_id": [0, 1, 2], "arrival_s": [0.0, 0.1, 0.2],
    ...                      "prompt_tokens": [100, 50, 10**7], "output_tokens": [10, 5, 5]})
    >>> res = simulate(reqs, 2, router="jsq")
    >>> res.requests["rejected"].to_list()
    [False, False, True]
    """
    if isinstance(fleet, int):
        fleet = monolithic(fleet, router=router or "jsq")
    requests, block = trace_rows(trace)
    sim = Simulation(seed=seed, prefix_block_tokens=block, record_segments=record_segments)
    ctl = FleetController(sim, fleet)
    last = float(requests["arrival_s"].max()) if requests.height else 0.0
    ctl.start_autoscaling(last)
    if setup is not None:
        setup(sim, ctl)
    result = sim._run_checked(requests, block, progress)  # rows checked above: not twice
    return _finish_result(result, ctl)


def _finish_result(result: SimResult, ctl: FleetController) -> SimResult:
    reqs = result.requests
    if ctl.decode:
        pre = ctl.prefill_of
        col = pl.Series("prefill_instance", [pre.get(i, -1) for i in range(reqs.height)], dtype=pl.Int32)
        reqs = reqs.with_columns(pl.when(col >= 0).then(col).otherwise(None).alias("prefill_instance"))
    counters = dict(result.counters)
    counters["gpu_hours"] = gpu_hours(result) if result.segments.height else math.nan
    if ctl.timeline:
        schema = {"time_s": pl.Float64, "pool": pl.Utf8, "instances": pl.Int64}
        counters["timeline"] = pl.DataFrame(ctl.timeline, schema=schema, orient="row")
    return SimResult(requests=reqs, segments=result.segments, instances=result.instances, counters=counters)


# ---------------------------------------------------------------------------------------------- analysis
def gpu_hours(result: SimResult) -> float:
    """GPU-hours of powered instances (segments not ``off``), MIG slices counted by their share."""
    seg = result.segments.filter(pl.col("state") != "off").join(
        result.instances.select("instance", "n_gpus"), on="instance"
    )
    return float(((seg["end_s"] - seg["start_s"]) * seg["n_gpus"]).sum()) / 3600.0


def instance_count(result: SimResult) -> pl.DataFrame:
    """Powered instances (starting, on, draining) over time: ``time_s``, ``instances`` (a step series)."""
    seg = result.segments.filter(pl.col("state") != "off")
    events = pl.concat([
        seg.select(pl.col("start_s").alias("time_s"), pl.lit(1).alias("d")),
        seg.select(pl.col("end_s").alias("time_s"), pl.lit(-1).alias("d")),
    ])  # fmt: skip
    return (
        events.group_by("time_s").agg(pl.col("d").sum()).sort("time_s")
        .with_columns(pl.col("d").cum_sum().alias("instances"))
        .filter(pl.col("d") != 0).select("time_s", "instances")
    )  # fmt: skip


def _summary(requests: pl.DataFrame, counters: Mapping) -> pl.DataFrame:
    """:func:`summarize`'s one-row table (latencies and hit rate over the served requests)."""
    ok = ~pl.col("rejected")

    def served(col: str) -> pl.Expr:
        return pl.col(col).filter(ok)

    return requests.select(
        served("ttft_s").quantile(0.5).alias("ttft_p50_s"),
        served("ttft_s").quantile(0.99).alias("ttft_p99_s"),
        served("tpot_s").quantile(0.5).alias("tpot_p50_s"),
        served("tpot_s").quantile(0.99).alias("tpot_p99_s"),
        served("e2e_s").quantile(0.99).alias("e2e_p99_s"),
        (served("cached_tokens").cast(pl.Int64).sum() / served("prompt_tokens").cast(pl.Int64).sum()).alias(
            "hit_rate"
        ),
        pl.len().cast(pl.Int64).alias("requests"),
        pl.col("rejected").sum().cast(pl.Int64).alias("rejected"),
        pl.lit(int(counters.get("preemptions", 0)), dtype=pl.Int64).alias("preemptions"),
        pl.lit(int(counters.get("cold_starts", 0)), dtype=pl.Int64).alias("cold_starts"),
        pl.lit(float(counters.get("gpu_hours", math.nan)), dtype=pl.Float64).alias("gpu_hours"),
    )


#: Columns of :func:`summarize` (one row of :func:`compare`), in order, with their types (read off the
#: summary of an empty result).
SUMMARY_SCHEMA: dict[str, pl.DataType] = dict(_summary(pl.DataFrame(schema=REQUEST_SCHEMA), {}).schema)


def summarize(result: SimResult) -> dict:
    """Latency percentiles, hit rate, rejections and cost of one result (one row of :func:`compare`).

    Keys and types: :data:`SUMMARY_SCHEMA`.
    """
    return _summary(result.requests, result.counters).row(0, named=True)


def compare(results: Mapping[str, SimResult], **extra_columns) -> pl.DataFrame:
    """One row per named result with :func:`summarize`'s columns (plus constant ``extra_columns``)."""
    rows = [{"policy": name, **extra_columns, **summarize(res)} for name, res in results.items()]
    return pl.DataFrame(rows)


def latency_cdf(
    results: Mapping[str, SimResult], metrics: Sequence[str] = ("ttft_s", "tpot_s"), points: int = 200
) -> pl.DataFrame:
    """Empirical CDFs (``points`` quantiles) of ``metrics`` per named result, long format for charts."""
    qs = np.linspace(0.0, 1.0, points)
    frames = []
    for name, res in results.items():
        ok = res.requests.filter(~pl.col("rejected"))
        for m in metrics:
            col = ok[m].drop_nulls().drop_nans().to_numpy()
            if col.size == 0:
                continue
            frames.append(
                pl.DataFrame({"policy": name, "metric": m, "value": np.quantile(col, qs), "quantile": qs})
            )
    return pl.concat(frames)


def instance_stats(results: Mapping[str, SimResult]) -> pl.DataFrame:
    """Per instance and result: requests served, prefix-cache hit rate, busy fraction."""
    frames = []
    for name, res in results.items():
        r = res.requests.filter(~pl.col("rejected"))
        per = r.group_by("instance", "pool").agg(
            pl.len().alias("requests"),
            (pl.col("cached_tokens").cast(pl.Int64).sum() / pl.col("prompt_tokens").cast(pl.Int64).sum()).alias(
                "hit_rate"
            ),
        )
        span = float(res.counters.get("makespan_s", 1.0)) or 1.0
        busy = (
            res.segments.filter(pl.col("state") == "busy")
            .group_by("instance")
            .agg(((pl.col("end_s") - pl.col("start_s")).sum() / span).alias("busy_fraction"))
        )
        frames.append(
            res.instances.select("instance", "pool").join(per.drop("pool"), on="instance", how="left")
            .join(busy, on="instance", how="left").fill_null(0).with_columns(pl.lit(name).alias("policy"))
        )  # fmt: skip
    return pl.concat(frames).select("policy", "instance", "pool", "requests", "hit_rate", "busy_fraction")


__all__ = [
    "DEFER",
    "SUMMARY_SCHEMA",
    "FleetController",
    "compare",
    "gpu_hours",
    "instance_count",
    "instance_stats",
    "latency_cdf",
    "simulate",
    "summarize",
]
