# cython: wraparound=False
"""One continuous-batching LLM instance: vLLM-like scheduler, paged KV cache, prefix cache, event skipping.

An :class:`Instance` is the scheduler of one model replica. It owns its parts: the KV block allocator and the
prefix cache (:mod:`workbench.sim.kvcache`), the decode set (:class:`DecodeSet`) and the recorder of its time
series (:class:`SegmentRecorder`). It talks to its host (a :class:`~workbench.sim.simulation.Simulation`)
only through the narrow :class:`InstanceHost` interface, and the host drives it only through public methods
(:meth:`Instance.enqueue`, :meth:`Instance.resume`, :meth:`Instance.evacuate`,
:meth:`Instance.set_segment_state`, :meth:`Instance.close_segments`).

How an instance advances
------------------------
An instance is either idle or running one *step*: a single iteration with prefill work (prompt chunks,
possibly next to the running decodes), or a *decode run* of ``k`` identical pure-decode iterations jumped
over in one event (``perf.decode_run_time``). ``k`` is the number of iterations until the first sequence
finishes or until decode growth would exhaust the free and evictable KV blocks, whichever is first. A request
routed to the instance during a decode run cuts the run at the end of the iteration in progress
(``perf.decode_iterations_within``), so it is admitted exactly when a per-iteration loop would admit it.

A run that grows past the free blocks evicts cached prefix blocks *lazily*: it reserves its blocks at its start
and the blocks it borrows from evictable entries show as a negative ``kv.free``; the evictions themselves are
made in iteration order by :meth:`Instance.settle` when something reads the cache mid-run (a prefix match at
enqueue or by a router, through the instance or its prefix index, which :meth:`Instance.settle` is
scheduled on), when the run is cut, and at its end. The LRU order cannot change during a pure decode run,
so a reader sees exactly the cache a per-iteration loop holds at that time, while the run stays one event.

Bookkeeping that keeps a run O(1)
---------------------------------
``DecodeSet.iteration`` counts the iterations in which the decodes advanced; a decoding sequence stores the
iteration at which it finishes (a min-heap gives the next finish) and its generated tokens are ``iteration -
decode_offset``. KV blocks are allocated one slot ahead: between iterations a sequence holds ``ceil(private
tokens / block)`` blocks where its tokens count the next token to be written, so a decode iteration starting
at ``g`` needs a new block for exactly the sequences whose private token count is a multiple of the block
size. Those fall in one residue class of ``g`` modulo the block size, so ``DecodeSet.residues[r]`` (sequences
per residue) gives the blocks a run of ``k`` iterations needs in O(block size).

Prefix cache
------------
Prompt blocks named by ``prefix_hashes`` (``prefix_block_tokens`` each, a multiple of the KV block size)
are shared (:class:`~workbench.sim.kvcache.PrefixCache`). A request references its longest cached leading
run of hashes at admission (those tokens skip prefill) and inserts its remaining full blocks when its prefill
completes. A finished or preempted request releases its entries tail first, so eviction shortens a chain
from its end. An instance with a prefix index (set when a cache-aware router first asks for prefix matches)
tells it of every entry created, evicted or dropped by a failure.

Compiled core: ``setup.py`` builds this module with Cython, typed by ``instance.pxd`` beside it (a new
attribute or method of its classes is declared there too); the ``.py`` file stays the pure-Python
implementation (:mod:`workbench._pure` chooses, ``tests/test_compiled_core.py`` checks both agree).
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Callable, Iterable
from heapq import heappop, heappush
from typing import Protocol

from workbench._pure import is_compiled
from workbench.hardware import model as model_spec
from workbench.hardware.closed_forms import RooflineTerms
from workbench.hardware.perf import Batch
from workbench.hardware.roofline import RooflineModel
from workbench.sim.config import InstanceConfig
from workbench.sim.engine import (
    PRIO_ITERATION,
    Engine,
    Event,
    Handler,
    SimulationError,
    heap_pop,
    heap_push,
)
from workbench.sim.kvcache import KVBlocks, PrefixCache
from workbench.sim.request import Request

#: Instance lifecycle states.
OFF, STARTING, ON, DRAINING = "off", "starting", "on", "draining"
#: Segment state codes (result table ``state``).
SEG_STATES = ("busy", "idle", "starting", "off")
BUSY, IDLE, SEG_STARTING, SEG_OFF = 0, 1, 2, 3
#: No time yet (a C double in the compiled build: no lookup of ``math.inf``).
INF = math.inf


#: Kinds of rejection of an over-long request (the text of a reject reason before its colon).
TOO_LONG_FOR_CONTEXT = "longer than the model's context"
TOO_LONG_FOR_KV = "longer than the KV cache"


class InstanceHost(Protocol):
    """What an instance needs of the simulation that hosts it (and nothing else).

    Attributes
    ----------
    engine
        The clock and event queue (steps are pushed with :meth:`Engine.push_handler`).
    audit
        Recount every instance's bookkeeping before each step (slow; tests).
    segment_sink
        Receives each finished segment as 8 numbers (instance, start, end, state, batch, prefill tokens, KV
        blocks, iterations); ``None``: segments are not recorded.
    """

    engine: Engine
    audit: bool
    segment_sink: Callable[[Iterable[float]], object] | None

    def request_finished(self, request: Request, instance: Instance, now: float) -> None:
        """``request`` finished on ``instance`` (for a prefill instance: its prefill)."""
        ...

    def instance_drained(self, instance: Instance, now: float) -> None:
        """Handle a draining ``instance`` that has no work left."""
        ...


class TypedHost(Handler):
    """Base of an :class:`InstanceHost` that the compiled instances call by typed C calls (the simulation).

    Any other host is called through Python. Its events are typed too (a :class:`Handler`).
    """

    __slots__ = ()

    def request_finished(self, req: Request, inst: Instance, now: float) -> None:
        """``req`` finished on ``inst`` (for a prefill instance: its prefill)."""
        raise NotImplementedError


def _probe() -> None:
    """Do nothing: a function of this module, whose type says whether the module runs compiled."""


#: This module is the compiled build (typed decode-finish heap) rather than the pure-Python source (heapq).
COMPILED = is_compiled(_probe)


class DecodeSet:
    """The sequences in the decode phase, advanced in O(1) per decode iteration (see module docstring).

    Attributes
    ----------
    size
        Decoding sequences.
    context
        Sum of their context lengths (tokens attended to by the next iteration).
    iteration
        Decode iterations run so far on the instance.
    residues
        Sequences per residue class of their private token count less ``iteration`` modulo the block size.
    finishes
        Heap of ``(iteration at which it finishes, sequence number, request)``: in the compiled core the
        engine's typed :class:`~workbench.sim.engine.Event` objects (``time`` the iteration, ``key`` the
        sequence number, ``iarg`` the iteration, ``arg`` the request), tuples in pure Python; the same order.
        Entries whose sequence number is not the request's ``decode_seq`` any more are stale (the request
        left) and skipped.
    """

    __slots__ = ("block_tokens", "context", "finishes", "iteration", "residues", "sequence", "size")

    def __init__(self, block_tokens: int) -> None:
        self.block_tokens = block_tokens
        self.size = 0
        self.context = 0
        self.iteration = 0
        self.residues = [0] * block_tokens
        self.finishes: list = []
        self.sequence = 0  # the next sequence number (never reset: stale finish entries stay distinct)

    def join(self, req: Request, private_tokens: int) -> None:
        """``req`` (with ``private_tokens`` tokens in its private blocks) starts decoding."""
        g = self.iteration
        gen = req.generated
        key = (private_tokens - g) % self.block_tokens
        req.decode_residue = key
        self.residues[key] += 1
        self.size += 1
        self.context += req.prompt_tokens + gen - 1
        req.decode_offset = g - gen
        seq = self.sequence
        self.sequence = seq + 1
        req.decode_seq = seq
        self._push_finish(g + req.output_tokens - gen, seq, req)

    def _push_finish(self, at: int, seq: int, req: Request) -> None:
        """Add ``req``'s finish at iteration ``at`` to the heap."""
        if COMPILED:
            f = Event.__new__(Event)  # (a direct allocation in the compiled build)
            f.time = at  # the heap's order: (iteration, sequence number); exact as a double
            f.key = seq
            f.iarg = at
            f.arg = req
            heap_push(self.finishes, f)
        else:
            heappush(self.finishes, (at, seq, req))

    def pop_finished(self, g: int) -> Request | None:
        """Take the next decoding request that finishes by iteration ``g`` off the heap (stale entries dropped).

        ``None`` when there is none.
        """
        heap = self.finishes
        if COMPILED:
            while heap:
                top = heap[0]
                if top.iarg > g:
                    return None
                heap_pop(heap)
                req = top.arg
                if req.decode_seq == top.key:
                    return req
            return None
        while heap and heap[0][0] <= g:
            _, seq, req = heappop(heap)
            if req.decode_seq == seq:
                return req
        return None

    def leave(self, req: Request) -> int:
        """``req`` stops decoding; returns (and stores) its generated tokens."""
        gen = self.iteration - req.decode_offset
        req.generated = gen
        self.residues[req.decode_residue] -= 1
        self.size -= 1
        self.context -= req.prompt_tokens + gen - 1
        req.decode_seq = -1
        return gen

    def next_finish(self) -> int:
        """Return the iteration at which the first decoding sequence finishes (stale heap entries dropped)."""
        heap = self.finishes
        if COMPILED:
            while True:
                top = heap[0]
                req = top.arg
                if req.decode_seq == top.key:
                    return top.iarg
                heap_pop(heap)
        while heap[0][2].decode_seq != heap[0][1]:
            heappop(heap)
        return heap[0][0]

    def blocks_needed(self, g: int, k: int) -> int:
        """KV blocks the decode set needs for ``k`` iterations starting at iteration ``g``."""
        if k <= 0:
            return 0
        bs = self.block_tokens
        full = k // bs
        rem = k - full * bs
        total = full * self.size
        if rem:
            # residues -g, -g-1, ..., -g-rem+1 (mod bs): a cyclic interval ending at s
            residues = self.residues
            s = -g % bs
            for j in range(s - rem + 1, s + 1):  # a typed loop compiled (no slices, no sum(), no boxing)
                x = residues[j] if j >= 0 else residues[j + bs]
                total += x
        return total

    def affordable(self, g: int, avail: int, limit: int) -> int:
        """Most decode iterations (<= ``limit``) from iteration ``g`` whose block growth fits in ``avail``."""
        size = self.size
        bs = self.block_tokens
        cycles = avail // size
        if cycles * bs >= limit:
            return limit
        rem = avail - cycles * size
        residues = self.residues
        k = cycles * bs
        for j in range(bs):
            x = residues[-(g + j) % bs]
            if x > rem:
                break
            rem -= x
            k += 1
        return min(k, limit)

    def clear(self) -> None:
        """Forget every sequence (the instance dropped its work)."""
        self.size = self.context = 0
        self.residues = [0] * self.block_tokens
        self.finishes.clear()


class SegmentRecorder:
    """The instance's time series: an open (idle/starting/off) segment and a pending busy one.

    The busy segment grows while consecutive steps keep the batch size; finished segments go to the host's
    sink.
    """

    __slots__ = ("instance", "pending", "since", "sink", "state")

    def __init__(self, instance: int, sink: Callable[[Iterable[float]], object] | None, state: int, now: float):
        self.instance = instance
        self.sink = sink
        #: state of the open segment and its start
        self.state = state
        self.since = now
        #: the busy segment not yet written: [start, end, batch, prefill tokens, KV blocks, iterations]
        self.pending: list | None = None

    def busy(self, start: float, end: float, batch: int, prefill: int, kv: int, iterations: int) -> None:
        """Record a busy stretch, extending the pending busy segment when contiguous with the same batch."""
        pending = self.pending
        if pending is not None:
            if pending[1] == start and pending[2] == batch:
                pending[1] = end
                pending[3] += prefill
                pending[5] += iterations
                return
            if self.sink is not None:
                self.sink((self.instance, pending[0], pending[1], BUSY, pending[2], pending[3], pending[4],
                           pending[5]))  # fmt: skip
        self.pending = [start, end, batch, prefill, kv, iterations]

    def flush_busy(self) -> None:
        """Write the pending busy segment."""
        pending = self.pending
        if pending is not None:
            if self.sink is not None:
                self.sink((self.instance, pending[0], pending[1], BUSY, pending[2], pending[3], pending[4],
                           pending[5]))  # fmt: skip
            self.pending = None

    def close_open(self, now: float, kv_used: int) -> None:
        """Close the open idle/starting/off segment at ``now`` (a new one of the same state starts)."""
        self.flush_busy()
        if now > self.since and self.sink is not None:
            self.sink((self.instance, self.since, now, self.state, 0, 0, kv_used, 0))
        self.since = now


class Instance(Handler):
    """A simulated model replica (created by :meth:`Simulation.add_instance`).

    Router-facing views (cheap attributes/properties, exact at the last event): :attr:`outstanding`,
    :attr:`n_waiting`, :attr:`n_running`, :attr:`queued_prefill_tokens`, :attr:`outstanding_decode_tokens`,
    :attr:`kv_utilization`, :attr:`kv_blocks_used`, :attr:`free_kv_blocks`, :meth:`prefix_match_tokens`,
    :attr:`state`.

    Parameters
    ----------
    host
        The simulation (see :class:`InstanceHost`).
    index
        The instance's id (its position in the simulation's instance list).
    config
        Hardware, model and scheduler.
    prefix_block_tokens
        Tokens per prefix-hash block of the trace (``None``: prefix caching off).
    state
        ``"on"`` or ``"off"`` at creation.

    Attributes
    ----------
    kv, prefix, decode, segments
        The parts the instance owns: KV block allocator, prefix cache, decode set, time-series recorder.
    waiting, running, prefilling
        Queued requests (FCFS), admitted requests in admission order (youngest last), and the admitted
        requests still prefilling.
    queued_prefill_tokens
        Prompt tokens still to compute for the waiting and the partly prefilled requests, prefix-cache hits
        excluded. A waiting request counts its prompt (plus tokens to recompute) minus its cache hits at the
        time it was queued; the count is corrected to the hits it really gets when it is admitted (the
        cache may gain or lose its prefix meanwhile), so for waiting requests it is an estimate, for
        admitted ones exact.
    owed_tokens
        Output tokens owed: the sum over requests here of (output - generated at arrival), plus the tokens
        generated here for requests that have left; less ``tokens_out`` it is what is still to generate.
    """

    def __init__(
        self,
        host: InstanceHost,
        index: int,
        config: InstanceConfig,
        *,
        prefix_block_tokens: int | None,
        state: str = ON,
        now: float = 0.0,
    ) -> None:
        s = config.scheduler
        self.host = host
        self.engine = host.engine
        self.index = index
        self.config = config
        self.pool = config.pool
        self.role = config.role
        self.perf = config.performance_model()
        #: the roofline terms of ``perf`` when it is a :class:`RooflineModel` (called directly, without a
        #: ``Batch``), else ``None``; looked up again whenever ``perf`` is replaced (``perf_seen``)
        self.terms: RooflineTerms | None = None
        self.perf_seen: object = None
        # parts
        self.kv = KVBlocks(config.kv_capacity(), s.block_size)
        self.prefix = PrefixCache(prefix_block_tokens if (s.prefix_caching and prefix_block_tokens) else 0,
                                  s.block_size, index)  # fmt: skip
        self.decode = DecodeSet(s.block_size)
        self.segments = SegmentRecorder(index, host.segment_sink, IDLE if state == ON else SEG_OFF, now)
        # scheduler limits
        self.max_seqs = s.max_num_seqs
        self.max_batched_tokens = s.max_num_batched_tokens
        self.chunked = s.chunked_prefill
        self.chunk_tokens = s.prefill_chunk_tokens or self.max_batched_tokens
        #: the model's context window (tokens): no request may be longer (:meth:`reject_reason`)
        self.context = model_spec(config.model).max_context
        #: longest prompt + output that can ever run: the KV cache (whole blocks) and the model's context
        self.fit_tokens = min(self.kv.capacity * self.kv.block_tokens, self.context)
        #: longest prompt admitted (whole prompts must fit one iteration without chunked prefill)
        self.max_prompt = self.max_batched_tokens if not self.chunked else 2**62
        self.prefill_first = s.priority == "prefill_first"
        #: Vidur's prefill budget: whole prompts x the longest of them (SchedulerConfig.prefill_budget)
        self.padded_budget = s.prefill_budget == "padded"
        self.event_skipping = s.event_skipping
        self.watermark_blocks = int(s.watermark * self.kv.capacity)
        self.state = state
        self.audit_steps = host.audit
        # queues
        self.waiting: deque[Request] = deque()
        self.running: dict[Request, None] = {}
        #: ``len(running)``, kept with it (a typed field the fleet's compiled ``lmetric`` loop reads)
        self.running_len = 0
        self.prefilling: list[Request] = []
        self.queued_prefill_tokens = 0
        self.owed_tokens = 0
        # the current step
        self.busy = False
        #: version of the scheduled step end (a cut or a failure makes the old one stale)
        self.version = 0
        self.step_start = 0.0
        #: iterations of the step (k of a decode run), decoding sequences in it, and the blocks allocated for
        #: its iterations 2..k
        self.run_iterations = 0
        self.run_batch = 0
        self.run_reserved = 0
        #: when ``kv.free < 0`` (a decode run borrows evictable blocks): no eviction is due before this time
        #: (a lower bound of the start of the run's next evicting iteration); inf when the run owes nothing
        self.evict_at = INF
        #: the step's prefill work: (request, tokens) chunks, their sum, and the KV blocks in use at its start
        self.step_items: list[tuple[Request, int]] = []
        self.step_prefill_tokens = 0
        self.step_kv_blocks = 0
        # counters
        self.n_preemptions = 0
        self.n_iterations = 0
        self.tokens_out = 0
        self.prefix_hit_tokens = 0
        self.prefix_query_tokens = 0

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
        return self.owed_tokens - self.tokens_out

    @property
    def free_kv_blocks(self) -> int:
        """KV blocks free for admission (free plus evictable cached blocks)."""
        return self.kv.free + self.prefix.evictable_blocks

    @property
    def kv_blocks_used(self) -> int:
        """KV blocks held by requests (private plus referenced cached blocks)."""
        return self.kv.capacity - self.free_kv_blocks

    @property
    def kv_utilization(self) -> float:
        """Fraction of KV blocks held by requests."""
        return self.kv_blocks_used / self.kv.capacity

    def prefix_match_tokens(self, request: Request) -> int:
        """Leading prompt tokens of ``request`` in this instance's prefix cache (exact at ``engine.now``)."""
        hashes = request.prefix_hashes
        prefix = self.prefix
        if not prefix.entry_tokens or not hashes:
            return 0
        if self.kv.free < 0:  # a decode run's evictions may be due
            self.settle(self.engine.now)
        return prefix.match(hashes, prefix.cacheable(hashes, request.prompt_tokens)) * prefix.entry_tokens

    def generated(self, request: Request) -> int:
        """Output tokens ``request`` has generated so far on this instance (exact at the last event)."""
        return self.decode.iteration - request.decode_offset if request.decode_seq >= 0 else request.generated

    def reject_reason(self, request: Request) -> str | None:
        """Why ``request`` can never run on this instance (``None`` if it can).

        The one rule for over-long requests, which :func:`workbench.sim.simulate` and the fleet simulator both
        apply: prompt + output tokens must fit the model's context window and the instance's KV cache
        (:attr:`fit_tokens`), and without chunked prefill the prompt must fit one iteration
        (``max_num_batched_tokens``). The reason's text before its colon is its kind (what the summary
        tables count).
        """
        size = request.prompt_tokens + request.output_tokens
        tokens = f"{request.prompt_tokens}+{request.output_tokens} tokens"
        if size > self.context:
            return f"{TOO_LONG_FOR_CONTEXT}: {tokens} > {self.context} ({self.config.model})"
        need = self.kv.blocks_for(size)
        if need > self.kv.capacity:
            held = f"instance {self.index} holds {self.kv.capacity}"
            return f"{TOO_LONG_FOR_KV}: {tokens} need {need} KV blocks, {held}"
        if not self.chunked and request.prompt_tokens > self.max_batched_tokens:
            return (
                f"prompt longer than one iteration: {request.prompt_tokens} tokens > max_num_batched_tokens="
                f"{self.max_batched_tokens} with chunked prefill off"
            )
        return None

    # ------------------------------------------------------------------ driven by the host
    def enqueue(self, req: Request, now: float) -> None:
        """Queue ``req`` (already checked with :meth:`reject_reason`) and start or cut the current step."""
        req.instance = self.index
        waiting = self.waiting
        waiting.append(req)
        self.owed_tokens += req.output_tokens - req.generated
        if not req.kv_ready:
            if self.prefix.entry_tokens and req.prefix_hashes:
                self._queue_prefill(req)
            else:  # no cache to consult (the common case, kept free of a call)
                self.queued_prefill_tokens += req.prompt_tokens + req.generated
        if not self.busy:
            if self.state == ON or self.state == DRAINING:
                self.segments.close_open(now, self.kv.capacity - self.kv.free)
                self._step(now)
        elif self.run_iterations > 1 and len(waiting) == 1 and len(self.running) < self.max_seqs:
            # a decode run is in flight and this request may be admissible: stop after the current iteration
            # (a superset of the admission test: prefix-cache hits counted, watermark and LRU hits not)
            if req.kv_ready:
                need = self.kv.blocks_for(req.prompt_tokens + req.generated)
            else:
                need = self.kv.blocks_for(req.prompt_tokens + req.generated + 1 - req.queued_hit_tokens)
            if need <= self.kv.free + self.run_reserved + self.prefix.evictable_blocks:
                self._cut_run(now)

    def resume(self, now: float) -> None:
        """Start stepping if idle with queued work (an instance that has just turned on)."""
        if not self.busy and self.waiting:
            self._step(now)

    def set_segment_state(self, state: int, now: float) -> None:
        """Close the open segment at ``now``; the next one has ``state`` (a lifecycle change)."""
        self.segments.close_open(now, self.kv.capacity - self.kv.free)
        self.segments.state = state

    def close_segments(self, now: float) -> None:
        """Write the open segments at the end of a run (the open idle/off one ends at ``now``)."""
        if not self.busy:
            self.segments.close_open(now, self.kv.capacity - self.kv.free)
        self.segments.flush_busy()

    def evacuate(self, now: float) -> list[Request]:
        """Drop all work (a failure): return the requests, reset the KV blocks and the prefix cache."""
        decode = self.decode
        if self.busy:
            self.version += 1
            self.busy = False
            if now > self.step_start:
                self.segments.busy(self.step_start, now, self.run_batch + len(self.step_items), 0,
                                   self.step_kv_blocks, 0)  # fmt: skip
            self.segments.since = now  # the open segment starts now, not when the busy stretch began
            if self.run_batch:
                done = min(
                    self._decode_iterations_within(self.run_batch, decode.context, now - self.step_start),
                    self.run_iterations - 1,
                )
                decode.iteration += done
                decode.context += self.run_batch * done
                self.tokens_out += self.run_batch * done
        out = []
        for req in self.running:
            if req.decode_seq >= 0:
                decode.leave(req)
            req.kv_blocks = req.prefix_refs = req.prefill_done = 0
            out.append(req)
        out.extend(self.waiting)
        self.running.clear()
        self.running_len = 0
        self.prefilling.clear()
        self.waiting.clear()
        decode.clear()
        self.prefix.clear()
        self.kv.free = self.kv.capacity
        self.evict_at = INF
        self.queued_prefill_tokens = 0
        self.owed_tokens = self.tokens_out  # nothing left to generate here
        self.step_items = []
        self.run_iterations = self.run_batch = self.run_reserved = 0
        for req in out:
            req.retries += 1
            req.instance = -1
            req.queued_hit_tokens = 0
        return out

    # ------------------------------------------------------------------ scheduling
    def _queue_prefill(self, req: Request) -> None:
        """Count a (re)queued request's prefill work, less the cache hits it would get now."""
        hit = self.prefix_match_tokens(req)  # 0 without a cache or hashes
        req.queued_hit_tokens = hit
        self.queued_prefill_tokens += req.prompt_tokens + req.generated - hit

    def _cut_run(self, now: float) -> None:
        decode = self.decode
        batch = self.run_batch
        k = self._decode_iterations_within(batch, decode.context, now - self.step_start) + 1
        if k >= self.run_iterations:
            return
        reserved = decode.blocks_needed(decode.iteration + 1, k - 1)
        if self.kv.free < 0:  # make the evictions of iterations 2..k (all started by now)
            self._make_free(reserved - self.run_reserved)
            self.evict_at = INF
        self.kv.free += self.run_reserved - reserved
        self.run_reserved = reserved
        self.run_iterations = k
        self.version += 1
        end = self.step_start + self._decode_run_time(batch, decode.context, k)
        self.engine.schedule_handler(end if end > now else now, PRIO_ITERATION, self, self.version)

    # ------------------------------------------------------------------ iteration times
    def _roofline_terms(self) -> RooflineTerms | None:
        """Return the roofline terms of ``perf`` (``None`` for another model), looked up once per model."""
        perf = self.perf
        if perf is not self.perf_seen:
            self.perf_seen = perf
            self.terms = perf.terms if perf.__class__ is RooflineModel else None
        return self.terms

    def _iteration_time(self, prefill: int, prefill_context: float, batch: int, context: int) -> float:
        """Return ``perf.iteration_time`` of a batch of ``prefill`` tokens and ``batch`` decodes.

        The decodes' contexts sum to ``context``.
        """
        terms = self._roofline_terms()
        if terms is not None:
            return terms.iteration_time(prefill, prefill_context, batch, context)
        return self.perf.iteration_time(Batch(prefill, prefill_context, batch, context))

    def _decode_run_time(self, batch: int, context: int, k: int) -> float:
        """``perf.decode_run_time`` (seconds of ``k`` decode iterations)."""
        terms = self._roofline_terms()
        if terms is not None:
            return terms.decode_run_time(batch, context, k)
        return self.perf.decode_run_time(batch, context, k)

    def _decode_iterations_within(self, batch: int, context: int, duration: float) -> int:
        """``perf.decode_iterations_within`` (decode iterations done within ``duration``)."""
        terms = self._roofline_terms()
        if terms is not None:
            return terms.decode_iterations_within(batch, context, duration)
        return self.perf.decode_iterations_within(batch, context, duration)

    def _alloc(self, n: int) -> None:
        """Take ``n`` blocks, evicting least recently used cached prefix blocks when needed."""
        if n > self.kv.free:
            self._make_free(n)
        self.kv.free -= n

    def _make_free(self, n: int) -> None:
        """Evict least recently used cached prefix blocks until ``kv.free >= n``."""
        kv = self.kv
        prefix = self.prefix
        while n > kv.free:
            freed = prefix.evict_lru()
            if not freed:
                raise SimulationError(f"instance {self.index}: KV allocation of {n} blocks exceeds capacity")
            kv.free += freed

    def settle(self, now: float) -> None:
        """Make the evictions the decode run in progress has made by ``now`` in a per-iteration loop.

        A no-op unless the run borrows evictable blocks (``kv.free < 0``) and its next evicting iteration may
        have started. Iteration ``j + 1`` is in progress at ``now`` (``j`` finished, as :meth:`_cut_run`
        counts them), so the blocks of iterations 2..j+1 are allocated, evicting in LRU order.
        """
        if now < self.evict_at:
            return
        decode = self.decode
        j = min(
            self._decode_iterations_within(self.run_batch, decode.context, now - self.step_start),
            self.run_iterations - 1,
        )
        self._make_free(decode.blocks_needed(decode.iteration + 1, j) - self.run_reserved)
        if self.kv.free < 0:
            self._next_eviction(now)
        else:
            self.evict_at = INF

    def _next_eviction(self, now: float) -> None:
        """Set :attr:`evict_at` (after ``now``) for a decode run that still borrows ``-kv.free`` blocks.

        The prefix index is told too.
        """
        decode = self.decode
        # kv.free + run_reserved blocks are backed: they hold the growth of the next m iterations (2..m+1);
        # the run's iteration m + 2 must evict, and it starts once m + 1 iterations are done
        m = decode.affordable(decode.iteration + 1, self.kv.free + self.run_reserved, self.run_iterations - 1)
        t = self.step_start + self._decode_run_time(self.run_batch, decode.context, m + 1)
        # a margin for rounding (settle() then counts the iterations exactly), but always later than now: a
        # settle at a time within the margin makes no eviction and must not be asked again at that time
        self.evict_at = max(t - 1e-9 * t, math.nextafter(now, INF))
        if self.prefix.index is not None:
            self.prefix.index.defer(self, self.evict_at)

    def audit(self) -> None:
        """Check the scheduler's bookkeeping against a recount (O(batch); tests run it between steps).

        Raises :class:`SimulationError` when the decode set, context sum, KV block count, prefix-cache
        reference counts or the router counters disagree with the queued and running requests.
        """
        decode, kv, prefix = self.decode, self.kv, self.prefix
        iteration = decode.iteration
        decoding = [r for r in self.running if r.decode_seq >= 0]
        entry, bs = prefix.entry_tokens, kv.block_tokens
        problems = []
        if decode.size != len(decoding) or sum(decode.residues) != decode.size:
            problems.append(
                f"decode set {decode.size} vs {len(decoding)} running decodes, "
                f"residue sum {sum(decode.residues)}"
            )
        context = sum(r.prompt_tokens + iteration - r.decode_offset - 1 for r in decoding)
        if context != decode.context:
            problems.append(f"context sum {decode.context} vs recount {context}")
        if self.running_len != len(self.running):
            problems.append(f"running_len {self.running_len} vs {len(self.running)} running requests")
        held = 0
        refs: dict[int, int] = {}
        for r in self.running:
            gen = iteration - r.decode_offset if r.decode_seq >= 0 else r.generated
            held += (
                -(-(r.prompt_tokens + gen - r.prefix_refs * entry) // bs) if r.decode_seq >= 0 else r.kv_blocks
            )
            for h in (r.prefix_hashes or [])[: r.prefix_refs]:
                refs[h] = refs.get(h, 0) + 1
        cached = len(prefix.entries)
        if kv.free < 0 or held + cached * prefix.blocks_per_entry + kv.free != kv.capacity:
            problems.append(
                f"blocks: {held} private + {cached} cached entries x {prefix.blocks_per_entry} + "
                f"{kv.free} free "
                f"!= capacity {kv.capacity}"
            )
        if any(prefix.count(h) != refs.get(h, 0) for h in prefix.entries) or set(refs) - set(prefix.entries):
            problems.append("prefix-cache reference counts disagree with the running requests")
        lru = prefix.lru_order()
        if len(lru) != prefix.unreferenced or set(lru) != {h for h in prefix.entries if prefix.count(h) == 0}:
            problems.append("LRU list is not the set of unreferenced cache entries")
        if prefix.index is not None and prefix.index.holds(self.index) != set(prefix.entries):
            problems.append("the prefix index disagrees with the prefix cache")
        queued = sum(
            r.prompt_tokens + r.generated - r.queued_hit_tokens for r in self.waiting if not r.kv_ready
        )
        queued += sum(r.prefill_target - r.prefill_done for r in self.prefilling)
        if queued != self.queued_prefill_tokens:
            problems.append(f"queued prefill tokens {self.queued_prefill_tokens} vs recount {queued}")
        left = sum(r.output_tokens - self.generated(r) for r in itertools.chain(self.waiting, self.running))
        if left != self.outstanding_decode_tokens:
            problems.append(f"outstanding decode tokens {self.outstanding_decode_tokens} vs recount {left}")
        if problems:
            raise SimulationError(f"instance {self.index} at iteration {iteration}: " + "; ".join(problems))

    def _step(self, now: float) -> None:
        """Plan and launch the next step (or go idle)."""
        if self.audit_steps:
            self.audit()
        waiting = self.waiting
        running = self.running
        kv = self.kv
        decode = self.decode
        # transferred requests (kv_ready) join the decode set directly
        while waiting and waiting[0].kv_ready and len(running) < self.max_seqs:
            if not self._admit_decode(waiting[0], now):
                break
            waiting.popleft()
        items: list = []
        prefill = 0
        prefill_context = 0.0
        decoding = decode.size > 0
        if self.prefill_first and (self.prefilling or waiting):
            items, prefill, prefill_context = self._plan_prefill(self.max_batched_tokens, now)
            if items:
                decoding = False
        if decoding:
            need = decode.residues[-decode.iteration % kv.block_tokens]
            if need:
                prefix = self.prefix
                while need > kv.free + prefix.unreferenced * prefix.blocks_per_entry:
                    self._preempt_youngest()
                    need = decode.residues[-decode.iteration % kv.block_tokens]
                decoding = decode.size > 0
                if need:
                    self._alloc(need)
            if not self.prefill_first and (waiting or self.prefilling):
                items, prefill, prefill_context = self._plan_prefill(self.max_batched_tokens - decode.size, now)
        elif not self.prefill_first and (waiting or self.prefilling):
            items, prefill, prefill_context = self._plan_prefill(self.max_batched_tokens, now)
        self.step_start = now
        self.step_items = items
        self.step_prefill_tokens = prefill
        used = kv.capacity - kv.free
        self.step_kv_blocks = used
        if used > kv.peak:
            kv.peak = used
        if items:
            batch = decode.size if decoding else 0
            dt = self._iteration_time(prefill, prefill_context, batch, decode.context if decoding else 0)
            self.run_iterations = 1
            self.run_batch = batch
            self.run_reserved = 0
        elif decoding:
            batch = decode.size
            k = decode.next_finish() - decode.iteration
            self.run_batch = batch
            if k > 1 and self.event_skipping:
                prefix = self.prefix
                avail = kv.free + prefix.unreferenced * prefix.blocks_per_entry
                k = 1 + decode.affordable(decode.iteration + 1, avail, k - 1)
                reserved = decode.blocks_needed(decode.iteration + 1, k - 1)
                self.run_reserved = reserved
                self.run_iterations = k
                if reserved:
                    # reserve now; blocks beyond the free ones are borrowed from evictable entries and
                    # evicted in iteration order by settle() (readers mid-run, a cut, the run's end)
                    kv.free -= reserved
                    if kv.free < 0:
                        self._next_eviction(now)
            else:
                k = 1
                self.run_reserved = 0
                self.run_iterations = 1
            dt = self._decode_run_time(batch, decode.context, k)
        else:
            if waiting or running:
                raise SimulationError(
                    f"instance {self.index} cannot schedule its {len(waiting)} waiting request(s) with "
                    f"{kv.free} of {kv.capacity} KV blocks free and an empty batch"
                )
            self.busy = False
            self.run_iterations = 0
            self.segments.state = IDLE
            self.segments.since = now
            if self.state == DRAINING:
                self.host.instance_drained(self, now)
            return
        if not dt >= 0.0:  # also catches nan: time must never go back
            raise SimulationError(f"performance model returned an iteration time of {dt!r} s")
        self.busy = True
        self.engine.push_handler(now + dt, PRIO_ITERATION, self, self.version)

    def _plan_prefill(self, budget: int, now: float) -> tuple[list, int, float]:
        """Prefill chunks for this iteration: partial prefills first, then FCFS admission."""
        items = []
        prefill = 0
        prefill_context = 0.0
        chunk_cap = self.chunk_tokens
        if self.chunked:
            for req in self.prefilling:
                if budget <= 0:
                    break
                todo = req.prefill_target - req.prefill_done
                c = min(todo, budget, chunk_cap)
                items.append((req, c))
                prefill += c
                prefill_context += c * (req.prefill_done + c * 0.5)
                budget -= c
        waiting = self.waiting
        running = self.running
        max_seqs = self.max_seqs
        start = budget
        longest = 0
        while waiting and budget > 0 and len(running) < max_seqs:
            req = waiting[0]
            if req.kv_ready:
                break
            if not self.chunked:
                # a whole prompt must fit the budget; one longer than any budget (a recompute) runs alone
                todo = req.prompt_tokens + req.generated - self.prefix_match_tokens(req)
                if self.padded_budget:
                    if todo > longest:
                        longest = todo
                    if items and (len(items) + 1) * longest > start:
                        break
                elif todo > budget and (items or todo <= self.max_batched_tokens):
                    break
            if not self._admit(req, now):
                break
            waiting.popleft()
            todo = req.prefill_target - req.prefill_done
            c = min(todo, budget, chunk_cap) if self.chunked else todo
            items.append((req, c))
            prefill += c
            prefill_context += c * (req.prefill_done + c * 0.5)
            budget -= c
        return items, prefill, prefill_context

    def _admit(self, req: Request, now: float) -> bool:
        """Reserve KV blocks for ``req``'s prefill (cache hits referenced); ``False`` if it does not fit."""
        ptok = req.prompt_tokens + req.generated
        prefix = self.prefix
        nmatch = ncache = 0
        unreferenced = 0
        hashes = req.prefix_hashes
        if prefix.entry_tokens and hashes:
            ncache = prefix.cacheable(hashes, req.prompt_tokens)
            nmatch, unreferenced = prefix.match_unreferenced(hashes, ncache)
        hashed = nmatch * prefix.entry_tokens
        kv = self.kv
        need = -(-(ptok + 1 - hashed) // kv.block_tokens)
        avail = kv.free + (prefix.unreferenced - unreferenced) * prefix.blocks_per_entry
        if self.running:
            avail -= self.watermark_blocks
        if need > avail:
            return False
        if nmatch:
            prefix.reference(hashes, nmatch)
        self._alloc(need)
        req.prefill_target = ptok
        req.prefill_done = hashed
        req.prefix_refs = nmatch
        req.prefix_cacheable = ncache
        req.kv_blocks = need
        req.cached_tokens = hashed
        self.prefix_hit_tokens += hashed
        self.prefix_query_tokens += ptok
        self.queued_prefill_tokens += req.queued_hit_tokens - hashed  # the hits it gets, not those estimated
        if req.admitted_s != req.admitted_s:  # nan: first admission
            req.admitted_s = now
        self.running[req] = None
        self.running_len = len(self.running)
        self.prefilling.append(req)
        return True

    def _admit_decode(self, req: Request, now: float) -> bool:
        """Admit a request whose KV cache was transferred straight into the decode set."""
        kv = self.kv
        need = kv.blocks_for(req.prompt_tokens + req.generated)
        avail = kv.free + self.prefix.evictable_blocks - (self.watermark_blocks if self.running else 0)
        if need > avail:
            return False
        self._alloc(need)
        req.kv_blocks = need
        req.prefix_refs = req.prefix_cacheable = 0
        if req.admitted_s != req.admitted_s:
            req.admitted_s = now
        self.running[req] = None
        self.running_len = len(self.running)
        self.decode.join(req, req.prompt_tokens + req.generated)
        return True

    def _leave_decode(self, req: Request) -> None:
        gen = self.decode.leave(req)
        req.kv_blocks = self.kv.blocks_for(req.prompt_tokens + gen - req.prefix_refs * self.prefix.entry_tokens)

    def _release(self, req: Request) -> None:
        """Free ``req``'s private blocks and dereference its cached prefix blocks (tail first)."""
        self.kv.free += req.kv_blocks
        req.kv_blocks = 0
        if req.prefix_refs:
            self.prefix.release(req.prefix_hashes, req.prefix_refs)
            req.prefix_refs = 0

    def _preempt_youngest(self) -> None:
        """Preempt (recompute) the most recently admitted running request.

        Its KV blocks are freed and it waits at the head of the queue to recompute its prompt and generated
        tokens here. That holds for a transferred (``kv_ready``) request on a decode instance too: as with
        vLLM's recompute preemption behind a KV connector, the copy it was sent is gone (the prefill instance
        freed its blocks after the transfer), so it loses ``kv_ready`` and is prefilled again locally.
        """
        req = next(reversed(self.running))
        req.kv_ready = False
        if req.decode_seq >= 0:
            self._leave_decode(req)
        else:
            self.prefilling.remove(req)
            self.queued_prefill_tokens -= req.prefill_target - req.prefill_done
        del self.running[req]
        self.running_len = len(self.running)
        self._release(req)
        req.prefill_done = 0
        req.preemptions += 1
        self.n_preemptions += 1
        self.waiting.appendleft(req)
        self._queue_prefill(req)

    def on_event(self, arg: int, now: float) -> None:
        """End a step: account for it, finish prefills and sequences, plan the next step.

        The engine's typed event; ``arg`` is the step's version, stale when the step was cut short.
        """
        if arg != self.version:
            return
        if self.kv.free < 0:  # the decode run's remaining evictions, before anything releases cache entries
            self._make_free(0)
            self.evict_at = INF
        k = self.run_iterations
        batch_decode = self.run_batch
        items = self.step_items
        batch = batch_decode + len(items)
        seg = self.segments
        if seg.sink is not None:  # time series recorded (without a sink nothing reads the pending segment)
            start = self.step_start
            pending = seg.pending
            # extend the pending busy segment when contiguous with the same batch
            if pending is not None and pending[1] == start and pending[2] == batch:
                pending[1] = now
                pending[3] += self.step_prefill_tokens
                pending[5] += k
            else:
                if pending is not None:
                    seg.sink((self.index, pending[0], pending[1], BUSY, pending[2], pending[3], pending[4],
                              pending[5]))  # fmt: skip
                seg.pending = [start, now, batch, self.step_prefill_tokens, self.step_kv_blocks, k]
        self.n_iterations += k
        decode = self.decode
        if batch_decode:
            decode.iteration += k
            decode.context += batch_decode * k
            self.tokens_out += batch_decode * k
        for req, c in items:
            req.prefill_done += c
            self.queued_prefill_tokens -= c
            if req.prefill_done >= req.prefill_target:
                self._prefill_done(req, now)
        iteration = decode.iteration
        req = decode.pop_finished(iteration)
        while req is not None:
            self._leave_decode(req)
            self._finish(req, now)
            req = decode.pop_finished(iteration)
        self.busy = False
        self._step(now)

    def _prefill_done(self, req: Request, now: float) -> None:
        prefilling = self.prefilling
        if prefilling[0] is req:  # the usual case: the oldest prefill (list.remove, a method call, otherwise)
            del prefilling[0]
        else:
            prefilling.remove(req)
        if req.first_token_s != req.first_token_s:
            req.first_token_s = now
        req.generated += 1
        self.tokens_out += 1
        if req.prefix_cacheable > req.prefix_refs:
            self._insert_prefix(req)
        if req.generated >= req.output_tokens or self.role == "prefill":
            self._finish(req, now)
        else:
            self.decode.join(
                req, req.prompt_tokens + req.generated - req.prefix_refs * self.prefix.entry_tokens
            )

    def _insert_prefix(self, req: Request) -> None:
        """Turn ``req``'s computed full prompt blocks into shared prefix-cache entries."""
        prefix = self.prefix
        new = req.prefix_cacheable - req.prefix_refs
        duplicates = prefix.insert(req.prefix_hashes, req.prefix_refs, req.prefix_cacheable)
        self.kv.free += duplicates * prefix.blocks_per_entry  # private copies of entries computed concurrently
        req.kv_blocks -= new * prefix.blocks_per_entry
        req.prefix_refs = req.prefix_cacheable

    def _finish(self, req: Request, now: float) -> None:
        del self.running[req]
        self.running_len = len(self.running)
        self.owed_tokens -= req.output_tokens - req.generated  # 0 unless a prefill instance hands the rest on
        self.kv.free += req.kv_blocks
        req.kv_blocks = 0
        if req.prefix_refs:
            self._release(req)
        host = self.host
        if isinstance(host, TypedHost):
            typed = host  # (a C call in the compiled build)
            typed.request_finished(req, self, now)
        else:
            host.request_finished(req, self, now)
