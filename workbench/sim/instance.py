"""One continuous-batching LLM instance: vLLM-like scheduler, paged KV cache, prefix cache, event skipping.

How an instance advances
------------------------
An instance is either idle or running one *step*: a single iteration with prefill work (prompt chunks,
possibly next to the running decodes), or a *decode run* of ``k`` identical pure-decode iterations jumped
over in one event (``perf.decode_run_time``). ``k`` is the number of iterations until the first sequence
finishes or until decode growth would exhaust the free and evictable KV blocks, whichever is first. A request
routed to the instance during a decode run cuts the run at the end of the iteration in progress
(``perf.decode_iterations_within``), so it is admitted exactly when a per-iteration loop would admit it.

A run that grows past the free blocks evicts cached prefix blocks *lazily*: it reserves its blocks at its start
and the blocks it borrows from evictable entries show as a negative ``free``; the evictions themselves are
made in iteration order by :meth:`Instance.settle` when something reads the cache mid-run (a prefix match at
enqueue or by a router, through the instance or its prefix index, which :meth:`Instance.settle` is
scheduled on), when the run is cut, and at its end. The LRU order cannot change during a pure decode run,
so a reader sees exactly the cache a per-iteration loop holds at that time, while the run stays one event.

Bookkeeping that keeps a run O(1)
---------------------------------
``G`` counts the iterations in which the decodes advanced; a decoding sequence stores ``G`` at which it
finishes (a min-heap gives the next finish) and its generated tokens are ``G - _ctx_off``. KV blocks are
allocated one slot ahead: between iterations a sequence holds ``ceil(private tokens / block)`` blocks
where its tokens count the next token to be written, so a decode iteration starting at ``G`` needs a new
block for exactly the sequences whose private token count is a multiple of the block size. Those fall in
one residue class of ``G`` modulo the block size, so ``cnt[r]`` (sequences per residue) gives the blocks a
run of ``k`` iterations needs in O(block size).

Prefix cache
------------
Prompt blocks named by ``prefix_hashes`` (``prefix_block_tokens`` each, a multiple of the KV block size)
are shared: an entry holds ``prefix_block_tokens / block_size`` KV blocks and a reference count;
unreferenced entries sit in an LRU list and are evicted when blocks are needed. A request references its
longest cached leading run of hashes at admission (those tokens skip prefill) and inserts its remaining
full blocks when its prefill completes. A finished or preempted request releases its entries tail first
(vLLM frees a sequence's blocks in reverse order), so eviction shortens a chain from its end. An instance
with a ``prefix_index`` (a :class:`~workbench.sim.routing.prefix_index.PrefixIndex`, set when a cache-aware
router first asks for prefix matches) tells it of every entry created, evicted or dropped by a failure.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import OrderedDict, deque
from heapq import heappush
from typing import TYPE_CHECKING

from workbench.errors import ConfigError
from workbench.hardware.perf import Batch
from workbench.sim.config import InstanceConfig
from workbench.sim.engine import PRIO_ITERATION, SimulationError
from workbench.sim.request import Request

if TYPE_CHECKING:
    from workbench.sim.routing.prefix_index import PrefixIndex
    from workbench.sim.simulation import Simulation

#: Instance lifecycle states.
OFF, STARTING, ON, DRAINING = "off", "starting", "on", "draining"
#: Segment state codes (result table ``state``).
SEG_STATES = ("busy", "idle", "starting", "off")
BUSY, IDLE, SEG_STARTING, SEG_OFF = 0, 1, 2, 3


class Instance:
    """A simulated model replica (created by :meth:`Simulation.add_instance`).

    Router-facing views (cheap attributes/properties, exact at the last event): :attr:`outstanding`,
    :attr:`n_waiting`, :attr:`n_running`, :attr:`queued_prefill_tokens`, :attr:`outstanding_decode_tokens`,
    :attr:`kv_utilization`, :attr:`kv_blocks_used`, :attr:`free_kv_blocks`, :meth:`prefix_match_tokens`,
    :attr:`state`.

    Attributes
    ----------
    queued_prefill_tokens
        Prompt tokens still to compute for the waiting and the partly prefilled requests, prefix-cache hits
        excluded. A waiting request counts its prompt (plus tokens to recompute) minus its cache hits at the
        time it was queued; the count is corrected to the hits it really gets when it is admitted (the
        cache may gain or lose its prefix meanwhile), so for waiting requests it is an estimate, for
        admitted ones exact.
    """

    def __init__(self, sim: Simulation, index: int, config: InstanceConfig, *, prefix_block_tokens: int | None):
        s = config.scheduler
        self.sim = sim
        self.engine = sim.engine
        self.heap = sim.engine._heap  # launching a step pushes straight onto the engine's heap
        self._seg_extend = sim._seg.extend if sim.record_segments else None
        self.counter = sim.engine._counter
        self.index = index
        self.config = config
        self.pool = config.pool
        self.perf = config.performance_model()
        self.capacity_tokens = config.kv_capacity()
        self.bs = s.block_size
        self.capacity = self.capacity_tokens // self.bs
        if self.capacity < 1:
            raise ConfigError(f"KV capacity of {self.capacity_tokens} tokens is less than one block")
        self.max_seqs = s.max_num_seqs
        self.max_tokens = s.max_num_batched_tokens
        self.chunked = s.chunked_prefill
        self.chunk = s.prefill_chunk_tokens or self.max_tokens
        self.fit_tokens = self.capacity * self.bs  # longest prompt + output that can ever run
        self.max_prompt = self.max_tokens if not self.chunked else 2**62
        self.prefill_first = s.priority == "prefill_first"
        self.skipping = s.event_skipping
        self.watermark = int(s.watermark * self.capacity)
        self.role = config.role
        H = prefix_block_tokens if (s.prefix_caching and prefix_block_tokens) else 0
        if H and H % self.bs:
            raise ConfigError(
                f"prefix_block_tokens ({H}) must be a multiple of block_size ({self.bs}) for prefix caching; "
                "set scheduler.prefix_caching = false or change block_size"
            )
        self.H = H
        self.hb = H // self.bs if H else 0
        self.state = ON
        self.audit_steps = sim.audit
        # queues
        self.waiting: deque[Request] = deque()
        self.running: dict[Request, None] = {}  # admitted, in admission order (youngest last)
        self.prefilling: list[Request] = []
        self.queued_prefill_tokens = 0  # prompt tokens to prefill (waiting + partial), cache hits excluded
        # output tokens owed: sum over requests here of (output - generated at arrival), plus the tokens
        # generated here for requests that have left; minus tokens_out it is what is still to generate
        self._owed = 0
        # decode set
        self.B = 0
        self.ctx = 0
        self.G = 0
        self.cnt = [0] * self.bs
        self.fin: list[tuple[int, int, Request]] = []
        self._hseq = itertools.count()
        # KV blocks and prefix cache
        self.free = self.capacity
        self.cache: dict[int, int] = {}
        self.lru: OrderedDict[int, None] = OrderedDict()
        #: index told of every cache entry added and dropped (set by ``PrefixIndex.track``; None: none)
        self.prefix_index: PrefixIndex | None = None
        # current step
        self.busy = False
        self.version = 0
        self.t0 = 0.0
        self.run_k = 0
        self.run_B = 0
        self.run_extra = 0  # blocks allocated for iterations 2..k of a decode run
        #: when free < 0 (a decode run borrows evictable blocks): no eviction is due before this time (a
        #: lower bound of the start of the run's next evicting iteration); inf when the run owes nothing
        self.evict_at = math.inf
        self.items: list[tuple[Request, int]] = []
        self.step_prefill = 0
        self.step_kv = 0
        # open (non-busy) segment and pending busy segment (merged while batch size is unchanged)
        self.seg_state = IDLE
        self.seg_t = 0.0
        self.pb = None  # [start, end, batch, prefill, kv, iters]
        # counters
        self.n_preemptions = 0
        self.n_iterations = 0
        self.tokens_out = 0
        self.prefix_hit_tokens = 0
        self.prefix_query_tokens = 0
        self.kv_peak = 0

    # ------------------------------------------------------------------ router views
    @property
    def outstanding(self) -> int:
        """Requests assigned and not finished (waiting + running)."""
        return len(self.waiting) + len(self.running)

    @property
    def n_waiting(self) -> int:
        """Requests queued, not yet admitted."""
        return len(self.waiting)

    @property
    def n_running(self) -> int:
        """Sequences in the running batch (prefilling + decoding)."""
        return len(self.running)

    @property
    def outstanding_decode_tokens(self) -> int:
        """Output tokens still to generate by the requests on this instance (waiting and running).

        O(1) and exact at the last event (like :meth:`generated`): a running sum updated when a request
        arrives or leaves, less the instance's generated-token counter.
        """
        return self._owed - self.tokens_out

    @property
    def free_kv_blocks(self) -> int:
        """KV blocks free for admission (free plus evictable cached blocks)."""
        return self.free + len(self.lru) * self.hb

    @property
    def kv_blocks_used(self) -> int:
        """KV blocks held by requests (private plus referenced cached blocks)."""
        return self.capacity - self.free_kv_blocks

    @property
    def kv_utilization(self) -> float:
        """Fraction of KV blocks held by requests."""
        return self.kv_blocks_used / self.capacity

    def prefix_match_tokens(self, request: Request) -> int:
        """Leading prompt tokens of ``request`` in this instance's prefix cache (exact at ``engine.now``)."""
        hashes = request.prefix_hashes
        if not self.H or not hashes:
            return 0
        if self.free < 0:  # a decode run's evictions may be due
            self.settle(self.engine.now)
        cache = self.cache
        n = 0
        limit = min(len(hashes), (request.prompt_tokens - 1) // self.H)
        while n < limit and hashes[n] in cache:
            n += 1
        return n * self.H

    def generated(self, request: Request) -> int:
        """Output tokens ``request`` has generated so far on this instance (exact at the last event)."""
        return self.G - request._ctx_off if request._hseq >= 0 else request.generated

    def reject_reason(self, request: Request) -> str | None:
        """Why ``request`` can never run on this instance (``None`` if it can)."""
        need = -(-(request.prompt_tokens + request.output_tokens) // self.bs)
        if need > self.capacity:
            return (
                f"needs {need} KV blocks for {request.prompt_tokens}+{request.output_tokens} tokens; "
                f"instance {self.index} holds {self.capacity}"
            )
        if not self.chunked and request.prompt_tokens > self.max_tokens:
            return (
                f"prompt of {request.prompt_tokens} tokens exceeds max_num_batched_tokens={self.max_tokens} "
                "with chunked prefill off"
            )
        return None

    # ------------------------------------------------------------------ entry point
    def enqueue(self, req: Request, now: float) -> None:
        """Queue ``req`` (already checked with :meth:`reject_reason`) and start or cut the current step."""
        req.instance = self.index
        waiting = self.waiting
        waiting.append(req)
        self._owed += req.output_tokens - req.generated
        if not req.kv_ready:
            if self.H and req.prefix_hashes:
                self._queue_prefill(req)
            else:  # no cache to consult (the common case, kept free of a call; _qhit is 0 off an instance)
                self.queued_prefill_tokens += req.prompt_tokens + req.generated
        if not self.busy:
            if self.state == ON or self.state == DRAINING:
                self._close_open_segment(now)
                self._step(now)
        elif self.run_k > 1 and len(waiting) == 1 and len(self.running) < self.max_seqs:
            # a decode run is in flight and this request may be admissible: stop after the current iteration
            # (a superset of the admission test: prefix-cache hits counted, watermark and LRU hits not)
            if req.kv_ready:
                need = -(-(req.prompt_tokens + req.generated) // self.bs)
            else:
                need = -(-(req.prompt_tokens + req.generated + 1 - req._qhit) // self.bs)
            if need <= self.free + self.run_extra + len(self.lru) * self.hb:
                self._cut_run(now)

    # ------------------------------------------------------------------ scheduling
    def _queue_prefill(self, req: Request) -> None:
        """Count a (re)queued request's prefill work, less the cache hits it would get now."""
        hit = self.prefix_match_tokens(req)  # 0 without a cache or hashes
        req._qhit = hit
        self.queued_prefill_tokens += req.prompt_tokens + req.generated - hit

    def _cut_run(self, now: float) -> None:
        perf = self.perf
        B = self.run_B
        j = perf.decode_iterations_within(B, self.ctx, now - self.t0)
        k = j + 1
        if k >= self.run_k:
            return
        extra = self._crossings(self.G + 1, k - 1)
        if self.free < 0:  # make the evictions of iterations 2..k (all started by now)
            self._make_free(extra - self.run_extra)
            self.evict_at = math.inf
        self.free += self.run_extra - extra
        self.run_extra = extra
        self.run_k = k
        self.version += 1
        end = self.t0 + perf.decode_run_time(B, self.ctx, k)
        self.engine.schedule(end if end > now else now, PRIO_ITERATION, self._on_end, self.version)

    def _crossings(self, g: int, k: int) -> int:
        """KV blocks the decode set needs for ``k`` iterations starting at iteration ``g``."""
        if k <= 0:
            return 0
        bs = self.bs
        full, rem = divmod(k, bs)
        total = full * self.B
        if rem:
            # residues -g, -g-1, ..., -g-rem+1 (mod bs): a cyclic interval ending at s
            cnt = self.cnt
            s = -g % bs
            lo = s - rem + 1
            total += sum(cnt[lo : s + 1]) if lo >= 0 else sum(cnt[: s + 1]) + sum(cnt[bs + lo :])
        return total

    def _affordable(self, g: int, avail: int, limit: int) -> int:
        """Most decode iterations (<= ``limit``) from iteration ``g`` whose block growth fits in ``avail``."""
        B = self.B
        bs = self.bs
        cycles = avail // B
        if cycles * bs >= limit:
            return limit
        rem = avail - cycles * B
        cnt = self.cnt
        k = cycles * bs
        for j in range(bs):
            x = cnt[-(g + j) % bs]
            if x > rem:
                break
            rem -= x
            k += 1
        return min(k, limit)

    def _alloc(self, n: int) -> None:
        """Take ``n`` blocks, evicting least recently used cached prefix blocks when needed."""
        if n > self.free:
            self._make_free(n)
        self.free -= n

    def _make_free(self, n: int) -> None:
        """Evict least recently used cached prefix blocks until ``free >= n``."""
        lru, cache, hb = self.lru, self.cache, self.hb
        while n > self.free:
            if not lru:
                raise SimulationError(f"instance {self.index}: KV allocation of {n} blocks exceeds capacity")
            h, _ = lru.popitem(last=False)
            del cache[h]
            if self.prefix_index is not None:
                self.prefix_index.remove(h, self.index)
            self.free += hb

    def settle(self, now: float) -> None:
        """Make the evictions the decode run in progress has made by ``now`` in a per-iteration loop.

        A no-op unless the run borrows evictable blocks (``free < 0``) and its next evicting iteration may
        have started. Iteration ``j + 1`` is in progress at ``now`` (``j`` finished, as :meth:`_cut_run`
        counts them), so the blocks of iterations 2..j+1 are allocated, evicting in LRU order.
        """
        if now < self.evict_at:
            return
        j = min(self.perf.decode_iterations_within(self.run_B, self.ctx, now - self.t0), self.run_k - 1)
        self._make_free(self._crossings(self.G + 1, j) - self.run_extra)
        if self.free < 0:
            self._next_eviction(now)
        else:
            self.evict_at = math.inf

    def _next_eviction(self, now: float) -> None:
        """Set :attr:`evict_at` (after ``now``) for a decode run that still borrows ``-free`` blocks (tell
        the index)."""
        # free + run_extra blocks are backed: they hold the growth of the next m iterations (2..m+1); the
        # run's iteration m + 2 must evict, and it starts once m + 1 iterations are done
        m = self._affordable(self.G + 1, self.free + self.run_extra, self.run_k - 1)
        t = self.t0 + self.perf.decode_run_time(self.run_B, self.ctx, m + 1)
        # a margin for rounding (settle() then counts the iterations exactly), but always later than now: a
        # settle at a time within the margin makes no eviction and must not be asked again at that time
        self.evict_at = max(t - 1e-9 * t, math.nextafter(now, math.inf))
        if self.prefix_index is not None:
            self.prefix_index.defer(self, self.evict_at)

    def audit(self) -> None:
        """Check the scheduler's bookkeeping against a recount (O(batch); tests run it between steps).

        Raises :class:`SimulationError` when the decode set, context sum, KV block count, prefix-cache
        reference counts or the router counters disagree with the queued and running requests.
        """
        decoding = [r for r in self.running if r._hseq >= 0]
        H, bs = self.H, self.bs
        problems = []
        if self.B != len(decoding) or sum(self.cnt) != self.B:
            problems.append(f"decode set {self.B} vs {len(decoding)} running decodes, cnt sum {sum(self.cnt)}")
        ctx = sum(r.prompt_tokens + self.G - r._ctx_off - 1 for r in decoding)
        if ctx != self.ctx:
            problems.append(f"context sum {self.ctx} vs recount {ctx}")
        held = 0
        refs: dict[int, int] = {}
        for r in self.running:
            gen = self.G - r._ctx_off if r._hseq >= 0 else r.generated
            held += -(-(r.prompt_tokens + gen - r._nref * H) // bs) if r._hseq >= 0 else r._priv
            for h in (r.prefix_hashes or [])[: r._nref]:
                refs[h] = refs.get(h, 0) + 1
        if self.free < 0 or held + len(self.cache) * self.hb + self.free != self.capacity:
            problems.append(
                f"blocks: {held} private + {len(self.cache)} cached entries x {self.hb} + {self.free} free "
                f"!= capacity {self.capacity}"
            )
        if any(self.cache[h] != refs.get(h, 0) for h in self.cache) or set(refs) - set(self.cache):
            problems.append("prefix-cache reference counts disagree with the running requests")
        if set(self.lru) != {h for h, c in self.cache.items() if c == 0}:
            problems.append("LRU list is not the set of unreferenced cache entries")
        if self.prefix_index is not None and self.prefix_index.holds(self.index) != set(self.cache):
            problems.append("the prefix index disagrees with the prefix cache")
        queued = sum(r.prompt_tokens + r.generated - r._qhit for r in self.waiting if not r.kv_ready)
        queued += sum(r._ptok - r._done for r in self.prefilling)
        if queued != self.queued_prefill_tokens:
            problems.append(f"queued prefill tokens {self.queued_prefill_tokens} vs recount {queued}")
        left = sum(r.output_tokens - self.generated(r) for r in itertools.chain(self.waiting, self.running))
        if left != self.outstanding_decode_tokens:
            problems.append(f"outstanding decode tokens {self.outstanding_decode_tokens} vs recount {left}")
        if problems:
            raise SimulationError(f"instance {self.index} at G={self.G}: " + "; ".join(problems))

    def _step(self, now: float) -> None:
        """Plan and launch the next step (or go idle)."""
        if self.audit_steps:
            self.audit()
        waiting = self.waiting
        running = self.running
        # transferred requests (kv_ready) join the decode set directly
        while waiting and waiting[0].kv_ready and len(running) < self.max_seqs:
            if not self._admit_decode(waiting[0], now):
                break
            waiting.popleft()
        items: list = []
        P = 0
        pctx = 0.0
        decode = self.B > 0
        if self.prefill_first and (self.prefilling or waiting):
            items, P, pctx = self._plan_prefill(self.max_tokens, now)
            if items:
                decode = False
        if decode:
            bs = self.bs
            need = self.cnt[-self.G % bs]
            if need:
                while need > self.free + len(self.lru) * self.hb:
                    self._preempt_youngest()
                    need = self.cnt[-self.G % bs]
                decode = self.B > 0
                if need:
                    self._alloc(need)
            if not self.prefill_first and (waiting or self.prefilling):
                items, P, pctx = self._plan_prefill(self.max_tokens - self.B, now)
        elif not self.prefill_first and (waiting or self.prefilling):
            items, P, pctx = self._plan_prefill(self.max_tokens, now)
        self.t0 = now
        self.items = items
        self.step_prefill = P
        used = self.capacity - self.free
        self.step_kv = used
        if used > self.kv_peak:
            self.kv_peak = used
        if items:
            B = self.B if decode else 0
            dt = self.perf.iteration_time(Batch(P, pctx, B, self.ctx if decode else 0))
            self.run_k = 1
            self.run_B = B
            self.run_extra = 0
        elif decode:
            B = self.B
            fin = self.fin
            while fin[0][2]._hseq != fin[0][1]:
                heapq.heappop(fin)
            k = fin[0][0] - self.G
            self.run_B = B
            if k > 1 and self.skipping:
                k = 1 + self._affordable(self.G + 1, self.free + len(self.lru) * self.hb, k - 1)
                extra = self._crossings(self.G + 1, k - 1)
                self.run_extra = extra
                self.run_k = k
                if extra:
                    # reserve now; blocks beyond the free ones are borrowed from evictable entries and
                    # evicted in iteration order by settle() (readers mid-run, a cut, the run's end)
                    self.free -= extra
                    if self.free < 0:
                        self._next_eviction(now)
            else:
                k = 1
                self.run_extra = 0
                self.run_k = 1
            dt = self.perf.decode_run_time(B, self.ctx, k)
        else:
            if waiting or running:
                raise SimulationError(
                    f"instance {self.index} cannot schedule its {len(waiting)} waiting request(s) with "
                    f"{self.free} of {self.capacity} KV blocks free and an empty batch"
                )
            self.busy = False
            self.run_k = 0
            self.seg_state = IDLE
            self.seg_t = now
            if self.state == DRAINING:
                self.sim._drained(self, now)
            return
        if not dt >= 0.0:  # also catches nan: time must never go back
            raise SimulationError(f"performance model returned an iteration time of {dt!r} s")
        self.busy = True
        heappush(self.heap, (now + dt, PRIO_ITERATION, next(self.counter), self._on_end, self.version))

    def _plan_prefill(self, budget: int, now: float) -> tuple[list, int, float]:
        """Prefill chunks for this iteration: partial prefills first, then FCFS admission."""
        items = []
        P = 0
        pctx = 0.0
        chunk_cap = self.chunk
        if self.chunked:
            for req in self.prefilling:
                if budget <= 0:
                    break
                todo = req._ptok - req._done
                c = min(todo, budget, chunk_cap)
                items.append((req, c))
                P += c
                pctx += c * (req._done + c * 0.5)
                budget -= c
        waiting = self.waiting
        running = self.running
        max_seqs = self.max_seqs
        while waiting and budget > 0 and len(running) < max_seqs:
            req = waiting[0]
            if req.kv_ready:
                break
            if not self.chunked:
                # a whole prompt must fit the budget; one longer than any budget (a recompute) runs alone
                todo = req.prompt_tokens + req.generated - self.prefix_match_tokens(req)
                if todo > budget and (items or todo <= self.max_tokens):
                    break
            if not self._admit(req, now):
                break
            waiting.popleft()
            todo = req._ptok - req._done
            c = min(todo, budget, chunk_cap) if self.chunked else todo
            items.append((req, c))
            P += c
            pctx += c * (req._done + c * 0.5)
            budget -= c
        return items, P, pctx

    def _admit(self, req: Request, now: float) -> bool:
        """Reserve KV blocks for ``req``'s prefill (cache hits referenced); ``False`` if it does not fit."""
        ptok = req.prompt_tokens + req.generated
        H = self.H
        nmatch = ncache = 0
        lru_hits = 0
        hashes = req.prefix_hashes
        if H and hashes:
            cache = self.cache
            lru = self.lru
            ncache = min(len(hashes), (req.prompt_tokens - 1) // H)
            while nmatch < ncache:
                h = hashes[nmatch]
                if h not in cache:
                    break
                if h in lru:
                    lru_hits += 1
                nmatch += 1
        hashed = nmatch * H
        need = -(-(ptok + 1 - hashed) // self.bs)
        avail = self.free + (len(self.lru) - lru_hits) * self.hb
        if self.running:
            avail -= self.watermark
        if need > avail:
            return False
        if nmatch:
            cache = self.cache
            lru = self.lru
            for h in hashes[:nmatch]:
                c = cache[h]
                if c == 0:
                    del lru[h]
                cache[h] = c + 1
        self._alloc(need)
        req._ptok = ptok
        req._done = hashed
        req._nref = nmatch
        req._ncache = ncache
        req._priv = need
        req.cached_tokens = hashed
        self.prefix_hit_tokens += hashed
        self.prefix_query_tokens += ptok
        self.queued_prefill_tokens += req._qhit - hashed  # the hits it gets, not those estimated when queued
        if req.admitted_s != req.admitted_s:  # nan: first admission
            req.admitted_s = now
        self.running[req] = None
        self.prefilling.append(req)
        return True

    def _admit_decode(self, req: Request, now: float) -> bool:
        """Admit a request whose KV cache was transferred straight into the decode set."""
        need = -(-(req.prompt_tokens + req.generated) // self.bs)
        avail = self.free + len(self.lru) * self.hb - (self.watermark if self.running else 0)
        if need > avail:
            return False
        self._alloc(need)
        req._priv = need
        req._nref = req._ncache = 0
        if req.admitted_s != req.admitted_s:
            req.admitted_s = now
        self.running[req] = None
        self._join_decode(req)
        return True

    def _join_decode(self, req: Request) -> None:
        G = self.G
        gen = req.generated
        priv_tok = req.prompt_tokens + gen - req._nref * self.H
        key = (priv_tok - G) % self.bs
        req._key = key
        self.cnt[key] += 1
        self.B += 1
        self.ctx += req.prompt_tokens + gen - 1
        req._ctx_off = G - gen
        seq = next(self._hseq)
        req._hseq = seq
        heapq.heappush(self.fin, (G + req.output_tokens - gen, seq, req))

    def _leave_decode(self, req: Request) -> None:
        gen = self.G - req._ctx_off
        req.generated = gen
        req._priv = -(-(req.prompt_tokens + gen - req._nref * self.H) // self.bs)  # blocks grown so far
        self.cnt[req._key] -= 1
        self.B -= 1
        self.ctx -= req.prompt_tokens + gen - 1
        req._hseq = -1

    def _release(self, req: Request) -> None:
        """Free ``req``'s private blocks and dereference its cached prefix blocks.

        Blocks enter the LRU list tail first (as vLLM frees a sequence's blocks in reverse), so eviction
        shortens a cached chain from its end instead of cutting its head and stranding the rest.
        """
        self.free += req._priv
        req._priv = 0
        if req._nref:
            cache = self.cache
            lru = self.lru
            for h in reversed(req.prefix_hashes[: req._nref]):
                c = cache[h] - 1
                cache[h] = c
                if c == 0:
                    lru[h] = None
            req._nref = 0

    def _preempt_youngest(self) -> None:
        """Preempt (recompute) the most recently admitted running request.

        Its KV blocks are freed and it waits at the head of the queue to recompute its prompt and generated
        tokens here. That holds for a transferred (``kv_ready``) request on a decode instance too: as with
        vLLM's recompute preemption behind a KV connector, the copy it was sent is gone (the prefill instance
        freed its blocks after the transfer), so it loses ``kv_ready`` and is prefilled again locally.
        """
        req = next(reversed(self.running))
        req.kv_ready = False
        if req._hseq >= 0:
            self._leave_decode(req)
        else:
            self.prefilling.remove(req)
            self.queued_prefill_tokens -= req._ptok - req._done
        del self.running[req]
        self._release(req)
        req._done = 0
        req.preemptions += 1
        self.n_preemptions += 1
        self.waiting.appendleft(req)
        self._queue_prefill(req)

    def _on_end(self, version: int, now: float) -> None:
        """End of a step: account for it, finish prefills and sequences, plan the next step."""
        if version != self.version:
            return
        if self.free < 0:  # the decode run's remaining evictions, before anything releases cache entries
            self._make_free(0)
            self.evict_at = math.inf
        k = self.run_k
        B = self.run_B
        items = self.items
        batch = B + len(items)
        t0 = self.t0
        pb = self.pb
        if pb is not None and pb[1] == t0 and pb[2] == batch:  # extend the pending busy segment
            pb[1] = now
            pb[3] += self.step_prefill
            pb[5] += k
        else:
            if pb is not None and self._seg_extend is not None:
                self._seg_extend((self.index, pb[0], pb[1], BUSY, pb[2], pb[3], pb[4], pb[5]))
            self.pb = [t0, now, batch, self.step_prefill, self.step_kv, k]
        self.n_iterations += k
        if B:
            self.G += k
            self.ctx += B * k
            self.tokens_out += B * k
        for req, c in items:
            req._done += c
            self.queued_prefill_tokens -= c
            if req._done >= req._ptok:
                self._prefill_done(req, now)
        fin = self.fin
        G = self.G
        while fin and fin[0][0] <= G:
            _, seq, req = heapq.heappop(fin)
            if req._hseq == seq:
                self._leave_decode(req)
                self._finish(req, now)
        self.busy = False
        self._step(now)

    def _prefill_done(self, req: Request, now: float) -> None:
        self.prefilling.remove(req)
        if req.first_token_s != req.first_token_s:
            req.first_token_s = now
        req.generated += 1
        self.tokens_out += 1
        if req._ncache > req._nref:
            self._insert_prefix(req)
        if req.generated >= req.output_tokens or self.role == "prefill":
            self._finish(req, now)
        else:
            self._join_decode(req)

    def _insert_prefix(self, req: Request) -> None:
        """Turn ``req``'s computed full prompt blocks into shared prefix-cache entries."""
        cache = self.cache
        lru = self.lru
        hb = self.hb
        index = self.prefix_index
        for h in req.prefix_hashes[req._nref : req._ncache]:
            c = cache.get(h)
            if c is None:
                cache[h] = 1  # the request's private blocks become the shared entry
                if index is not None:
                    index.add(h, self.index)
            else:
                if c == 0:
                    del lru[h]
                cache[h] = c + 1
                self.free += hb  # duplicate computed concurrently: drop the private copy
            req._priv -= hb
        req._nref = req._ncache

    def _finish(self, req: Request, now: float) -> None:
        del self.running[req]
        self._owed -= req.output_tokens - req.generated  # 0 unless a prefill instance hands the rest on
        self.free += req._priv
        req._priv = 0
        if req._nref:
            self._release(req)
        self.sim._finished(req, self, now)

    # ------------------------------------------------------------------ segments
    def _record_busy(self, start: float, end: float, batch: int, prefill: int, kv: int, iters: int) -> None:
        pb = self.pb
        if pb is not None:
            if pb[1] == start and pb[2] == batch:
                pb[1] = end
                pb[3] += prefill
                pb[5] += iters
                return
            self.sim._segment(self.index, pb[0], pb[1], BUSY, pb[2], pb[3], pb[4], pb[5])
        self.pb = [start, end, batch, prefill, kv, iters]

    def _flush_busy(self) -> None:
        pb = self.pb
        if pb is not None:
            self.sim._segment(self.index, pb[0], pb[1], BUSY, pb[2], pb[3], pb[4], pb[5])
            self.pb = None

    def _close_open_segment(self, now: float) -> None:
        """Close the open idle/starting/off segment at ``now``."""
        self._flush_busy()
        if now > self.seg_t:
            self.sim._segment(self.index, self.seg_t, now, self.seg_state, 0, 0, self.capacity - self.free, 0)
        self.seg_t = now

    def _set_open_segment(self, state: int, now: float) -> None:
        self._close_open_segment(now)
        self.seg_state = state

    # ------------------------------------------------------------------ lifecycle (driven by Simulation)
    def _evacuate(self, now: float) -> list[Request]:
        """Drop all work (failure): return the requests, reset KV and prefix cache."""
        if self.busy:
            self.version += 1
            self.busy = False
            if now > self.t0:
                self._record_busy(self.t0, now, self.run_B + len(self.items), 0, self.step_kv, 0)
            if self.run_B:
                done = min(
                    self.perf.decode_iterations_within(self.run_B, self.ctx, now - self.t0), self.run_k - 1
                )
                self.G += done
                self.ctx += self.run_B * done
                self.tokens_out += self.run_B * done
        out = []
        for req in self.running:
            if req._hseq >= 0:
                self._leave_decode(req)
            req._priv = req._nref = req._done = 0
            out.append(req)
        out.extend(self.waiting)
        self.running.clear()
        self.prefilling.clear()
        self.waiting.clear()
        self.fin.clear()
        if self.prefix_index is not None:
            self.prefix_index.clear(self.index)
        self.cache.clear()
        self.lru.clear()
        self.free = self.capacity
        self.evict_at = math.inf
        self.queued_prefill_tokens = 0
        self._owed = self.tokens_out  # nothing left to generate here
        self.B = self.ctx = 0
        self.cnt = [0] * self.bs
        self.items = []
        self.run_k = self.run_B = self.run_extra = 0
        for req in out:
            req.retries += 1
            req.instance = -1
            req._qhit = 0
        return out
