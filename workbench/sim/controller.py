"""The fleet controller: routes, hands off and scales a fleet inside one :class:`Simulation`.

:class:`FleetController` builds one instance per (possible) pool member and plugs into the simulation's hooks:
it is the simulation's router (front router to an entry pool, the pool's router to an instance, over one
:class:`~workbench.sim.views.InstanceView` per pool), its ``on_finish`` hook (a prefill instance hands a
request's KV cache to a decode pool) and, with autoscaling, ticks each autoscaled pool's policy.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from workbench._pure import is_compiled
from workbench.hardware import RooflineModel, kv_capacity_tokens, model
from workbench.hardware.perf import Batch
from workbench.sim.autoscale import PoolObservation, clamp, drain_order, get_scaler
from workbench.sim.config import InstanceConfig
from workbench.sim.engine import PRIO_CONTROL
from workbench.sim.instance import DRAINING, OFF, ON, STARTING, Instance
from workbench.sim.kvcache import PrefixHolders
from workbench.sim.request import Request
from workbench.sim.routing import REJECT, get_router
from workbench.sim.routing.cache import LMetric
from workbench.sim.routing.load import JSQ
from workbench.sim.routing.prefix_index import PrefixIndex
from workbench.sim.simulation import DEFER, Simulation, TypedRouter
from workbench.sim.topology import Fleet, Pool, instance_gpu
from workbench.sim.views import InstanceView, PoolView, ints

_ints = ints


def _probe() -> None:
    """Do nothing: a function of this module, whose type says whether the module runs compiled."""


#: This module runs as its compiled build: the choices of ``jsq`` (over the outstanding counters) and of
#: ``lmetric`` (over the instances' counters and prefix caches) take a typed loop (the same choices as the
#: routers themselves, which the pure-Python build calls; ``tests/test_compiled_core.py`` compares them).
COMPILED = is_compiled(_probe)


class FleetController(TypedRouter):
    """Routes, hands off and scales a fleet inside one :class:`Simulation` (see module docstring)."""

    name = "fleet"

    def __init__(self, sim: Simulation, fleet: Fleet) -> None:
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
        #: per pool, its member that holds the longest request (whose reason a too-long request gets)
        self.largest: list[int | None] = []
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
            largest = max(self.members[k], key=lambda i: sim.instances[i].fit_tokens, default=None)
            self.largest.append(largest)
            cap = sim.instances[largest].fit_tokens if largest is not None else 0  # KV cache and context
            self.capacity.append(cap)
            self.threshold.append(min(cap, pool.max_tokens) if pool.max_tokens else cap)
        self.kind_of = np.asarray(kind_of, dtype=np.int64)
        n = len(sim.instances)
        self.pool_of = np.empty(n, dtype=np.int64)
        for k, idx in enumerate(self.members):
            self.pool_of[idx] = k
        self.out = np.zeros(n, dtype=np.int64)  # requests routed to each instance and not finished there
        #: the same counters through a memoryview (cheap to update; typed in the compiled build)
        self.counts = memoryview(self.out)
        #: the compiled lmetric path: per pool, which instances hold each cached prefix hash (made at the pool's
        #: first decision), and per decision each holder's match (valid where its stamp is the decision's)
        self.holders: list[PrefixHolders | None] = [None] * len(self.members)
        self.match_blocks = memoryview(np.zeros(n, dtype=np.int64))
        self.match_stamp = memoryview(np.zeros(n, dtype=np.int64))
        self.decisions = 0
        #: the simulation's instances (the list itself: instances added later are in it)
        self.all_instances = sim.instances
        # relative speed (for weighted round robin): inverse prefill time of a 2,048-token prompt
        t = np.array([sim.instances[i].perf.iteration_time(_prefill_batch(2048)) for i in range(n)])
        self.speed = t.min() / t
        #: the KV hierarchy runtime (:mod:`workbench.sim.hierarchy`; set when the fleet has one): P/D
        #: transfers become flows over the network
        self.kv = None
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
        engine = sim.engine
        self.views = [
            InstanceView(lst, engine, speed=self.speed[_ints(i.index for i in lst)] if lst else np.ones(0),
                         outstanding=self.out, prefix_index=lambda p=p: self.prefix_index(p))
            for p, lst in enumerate(live)
        ]  # fmt: skip
        #: per pool, what :meth:`choose` reads of its view on every decision: the live instances, the smallest
        #: request every one of them holds (larger ones take :meth:`InstanceView.fitting`) and the first id
        self.live = [v.instances for v in self.views]
        self.min_fit = [v.min_fit for v in self.views]
        self.first_id = [v.first_id for v in self.views]


    def prefix_index(self, p: int) -> PrefixIndex:
        """Return the prefix index of pool ``p`` (made on first use: it tracks every member, on or off)."""
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
                if not self.views[p].instances:
                    break
                self.sim.route(queue.popleft(), now)

    # ------------------------------------------------------------------ routing (Simulation.router)
    def choose(self, request: Request, routable: InstanceView, now: float) -> int:
        """Return the position in the simulation's ``routable`` of the instance that serves ``request``.

        :data:`REJECT` with ``reject_reason`` set, or :data:`DEFER` when a pool holds the request for later; the
        pool's router chooses over the pool's own view.
        """
        if request.kv_ready:
            p = self._pick_decode_pool(request)
            router = self.decode_router
        else:
            p = self._pick_entry_pool(request, now)
            if p < 0:
                return REJECT
            router = self.inner[p]
        view = self.views[p]
        insts = self.live[p]  # view.instances, kept with the views
        if not insts:
            self.deferred[p].append(request)
            return DEFER
        size = request.prompt_tokens + request.output_tokens
        if size > self.min_fit[p]:  # heterogeneous pool: only the instances that can hold the request
            view = view.fitting(size)
            insts = view.instances
            first = view.first_id
            if not insts:
                if size > self.capacity[p]:  # a decode pool no member of which can ever hold it
                    self.reject_reason = self._too_long(p, request, f"pool {self.fleet.pools[p].name!r}")
                    return REJECT
                # a larger member is off, starting or failed: wait for it (an autoscaler starts one, see _tick)
                self.deferred[p].append(request)
                return DEFER
        else:
            first = self.first_id[p]
        n = len(insts)
        if n == 1:
            k = 0
        elif COMPILED and type(router) is JSQ and first >= 0:
            k = _argmin_counts(self.counts, first, n)
        elif COMPILED and type(router) is LMetric and self.kv is None:
            holders = self.holders[p]
            if self.prefix_indexes[p] is not None:  # the pool's PrefixIndex hooks the caches: walk them all
                holders = None
            elif holders is None:
                holders = self.holders[p] = PrefixHolders()
                for i in self.members[p]:
                    holders.track(self.all_instances[i].prefix)
            self.decisions += 1
            k = _lmetric_choice(
                insts, request, router.batch == "running", self.counts, now, holders, self.all_instances,
                self.match_blocks, self.match_stamp, self.decisions,
            )  # fmt: skip
        else:
            k = router.choose(request, view, now)
        inst = insts[k]
        if request.prompt_tokens > inst.max_prompt:  # the view holds only instances that fit the tokens
            self.reject_reason = inst.reject_reason(request)
            return REJECT
        i = inst.index
        self.counts[i] += 1
        return self.position[i]

    def _pick_entry_pool(self, request, now: float) -> int:
        """Return the entry pool of ``request`` (or :data:`REJECT` with ``reject_reason`` set).

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
                self.reject_reason = self._too_long(p, request)
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
        return p if size <= self.capacity[p] else self._pool_that_holds(p, size, request)

    def _pool_that_holds(self, p: int, size: int, request: Request) -> int:
        """Return the smallest entry pool that holds ``size`` tokens, for a request pool ``p`` cannot hold.

        :data:`REJECT` with ``reject_reason`` set when no pool holds it, or always with ``class_pools`` (which
        rejects it).
        """
        entry = self.entry
        fits = [q for q in entry if self.capacity[q] >= size]
        if not fits:
            widest = max(entry, key=lambda q: self.capacity[q])
            self.reject_reason = self._too_long(widest, request, "every pool")
            return REJECT
        if self.fleet.router == "class_pools":
            name = self.fleet.pools[p].name
            self.reject_reason = self._too_long(p, request, f"pool {name!r} of its class")
            return REJECT
        return min(fits, key=lambda q: (self.threshold[q], q))

    def _too_long(self, p: int, request: Request, where: str | None = None) -> str:
        """Return the reason an instance gives for rejecting ``request`` as too long.

        The reason is :meth:`Instance.reject_reason` (the one rule) of pool ``p``'s member that holds the
        longest request; ``where`` names the pools it was too long for.
        """
        inst = self.sim.instances[self.largest[p]] if self.largest[p] is not None else None
        reason = inst.reject_reason(request) if inst is not None else None
        reason = reason or f"too long: {request.prompt_tokens}+{request.output_tokens} tokens"
        return f"{reason} [{where}]" if where else reason

    def _pick_decode_pool(self, request) -> int:
        """Return the least loaded decode pool (outstanding per live instance) that can hold the request."""
        if len(self.decode) == 1:
            return self.decode[0]
        size = request.prompt_tokens + request.output_tokens
        fits = [q for q in self.decode if self.capacity[q] >= size] or self.decode
        return min(
            fits,
            key=lambda q: (
                (len(self.deferred[q]) + sum(i.outstanding for i in self.views[q].instances))
                / max(len(self.views[q]), 1)
            ),
        )

    # ------------------------------------------------------------------ disaggregation (Simulation.on_finish)
    def _on_finish(self, request, inst: Instance, now: float) -> bool:
        i = inst.index
        self.counts[i] -= 1
        if inst.role != "prefill" or request.generated >= request.output_tokens:
            return False
        p = int(self.pool_of[inst.index])
        tokens = request.prompt_tokens + request.generated
        self.prefill_of[request.index] = inst.index
        request.kv_ready = True
        if self.kv is not None:
            self._transfer_over_network(request, inst, tokens * self.kv_bytes_token[p], now)
            return True
        bw, latency = self.fleet.link
        lanes = self.fleet.pools[p].tp  # each tensor-parallel shard moves its part in parallel
        transfer = tokens * self.kv_bytes_token[p] / (bw * lanes) + latency
        self.sim.submit(request, at=now + transfer)
        return True

    def _transfer_over_network(self, request: Request, src: Instance, size_bytes: float, now: float) -> None:
        """Choose the decode instance of ``request``, then move its KV there over the network.

        With a KV hierarchy: the KV moves as a flow that shares the NICs (NVLink inside a node) with every
        other transfer.
        """
        sim = self.sim
        pos = self.choose(request, sim.view, now) if sim.routable else DEFER
        if pos == DEFER:  # held for its pool and routed when an instance turns on (no transfer modelled then)
            return
        if pos < 0:
            sim.reject(request, self.reject_reason or "rejected by the router")
            return
        dst = sim.routable[pos]
        self.kv.transfer_kv(request, src, dst, size_bytes, lambda req, t: self._kv_arrived(req, dst, t))

    def _kv_arrived(self, request: Request, dst: Instance, now: float) -> None:
        if dst.state == ON or dst.state == DRAINING:
            dst.enqueue(request, now)
        else:  # it failed or turned off during the transfer: route the request again
            self.out[dst.index] = dst.outstanding
            self.sim.route(request, now)

    # ------------------------------------------------------------------ expectations (multi_objective)
    def estimate(self, p: int, request) -> tuple[float, float]:
        """Return the expected latency (s) and energy (J) of ``request`` on pool ``p`` at its current load.

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
        """Start ``k`` members: draining ones first (no cold start), then off ones in member order.

        With ``need``, the first member that holds ``need`` tokens goes first.
        """
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
        """Drain ``k`` members: starting ones first (youngest first), then on ones in drain order.

        Never ``keep`` (the only member that holds a held request) nor, while requests are held, the last on.
        """
        for inst in [i for i in starting[::-1] if i is not keep][:k]:
            self.sim.drain_instance(inst)
            k -= 1
        if k <= 0 or not on:
            return
        order = drain_order(_ints(i.outstanding for i in on), self.idle_since[[i.index for i in on]])
        order = [int(j) for j in order if on[int(j)] is not keep]
        for j in order[: min(k, len(on) - 1 if any(len(d) for d in self.deferred) else k)]:
            self.sim.drain_instance(on[j])


def _argmin_counts(counts, lo: int, n: int) -> int:
    """Return the position of the smallest of ``counts[lo:lo + n]``, the first among ties.

    JSQ's ``argmin_first`` over a view's outstanding counters, as a typed loop.
    """
    best = counts[lo]
    k = 0
    for j in range(1, n):
        c = counts[lo + j]
        if c < best:
            best = c
            k = j
    return k


def _lmetric_choice(instances: list, request: Request, running: bool, counts, now: float,
                    holders: PrefixHolders | None, all_instances: list, match_blocks, match_stamp,
                    decision: int) -> int:  # fmt: skip
    """:meth:`LMetric.choose <workbench.sim.routing.cache.LMetric.choose>` as a typed loop over the instances.

    The position of the smallest (queued prefill tokens + prompt tokens not in the instance's prefix cache) x
    (running batch, or outstanding requests from the controller's ``counts`` when ``running`` is false, + 1),
    the first among ties, with the first instance's tokens per prefix entry (as the view). Each instance's
    match is a walk of its own cache after its lazy evictions (what the view's prefix index reproduces). With
    ``holders`` (the pool's :class:`PrefixHolders`) only the caches that hold the request's first block are
    walked, before the loop (their matches go to ``match_blocks``, stamped with ``decision``); a holder that
    may owe lazy evictions (``kv.free < 0``) is settled and walked again in the loop, as every instance is
    without ``holders`` (an instance that does not hold the first block matches nothing, settled or not:
    settling only evicts, and its due evictions are made at its own next event or decision, as lazily as
    the view's prefix index makes those of instances it does not ask). ``tests/test_compiled_core.py``
    compares the fleet's results with the router's own.
    """
    hashes = request.prefix_hashes
    prompt = request.prompt_tokens
    inst = instances[0]
    block = inst.prefix.entry_tokens
    limit = min(len(hashes), (prompt - 1) // block) if hashes and block else 0
    first = hashes[0] if limit > 0 else None
    indexed = holders is not None
    if limit > 0 and indexed:
        owners = holders.of.get(first)
        if owners is not None:
            if type(owners) is int:  # one holder (as PrefixHolders keeps most hashes)
                owners = (owners,)
            for i in owners:
                owner = all_instances[i]
                refs = owner.prefix.entries
                m = 1
                while m < limit and hashes[m] in refs:
                    m += 1
                match_blocks[i] = m
                match_stamp[i] = decision
    best = 0
    k = 0
    for j in range(len(instances)):
        inst = instances[j]
        p = inst.queued_prefill_tokens + prompt
        if limit > 0:
            if indexed:
                if match_stamp[inst.index] == decision:  # it holds the first block (before its due evictions)
                    if inst.kv.free < 0:  # a decode run's evictions may be due: settle, walk again
                        inst.settle(now)
                        refs = inst.prefix.entries
                        if first in refs:
                            m = 1
                            while m < limit and hashes[m] in refs:
                                m += 1
                            p -= m * block
                    else:
                        p -= match_blocks[inst.index] * block
            else:
                if inst.kv.free < 0:  # a decode run's evictions may be due
                    inst.settle(now)
                refs = inst.prefix.entries  # PrefixCache.match inlined (the first block looked up once)
                if first in refs:
                    m = 1
                    while m < limit and hashes[m] in refs:
                        m += 1
                    p -= m * block
        b = inst.running_len if running else counts[inst.index]
        cost = p * (b + 1)
        if j == 0 or cost < best:
            best = cost
            k = j
    return k


def _prefill_batch(tokens: int) -> Batch:
    return Batch(prefill_tokens=tokens, prefill_context=tokens * tokens / 2)


def model_kv_bytes(model_name: str) -> int:
    """KV-cache bytes per token of the whole model (all layers, all KV heads)."""
    return model(model_name).kv_bytes_per_token(1)


def _pool_configs(pool: Pool) -> list[tuple[InstanceConfig, str]]:
    """Return (instance configuration, GPU type) of a pool's possible members, initial ones first.

    Members of one GPU type share one configuration object.
    """
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
                if not (isinstance(pool.perf, str) and pool.perf == "roofline"):
                    kw = {"perf": pool.perf}
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
