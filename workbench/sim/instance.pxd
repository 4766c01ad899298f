# Cython declarations for instance.py (the compiled core; the .py file stays the pure-Python implementation)
cimport cython

from workbench.hardware.closed_forms cimport RooflineTerms
from workbench.sim.engine cimport Engine, Event, Handler, heap_pop, heap_push
from workbench.sim.kvcache cimport KVBlocks, PrefixCache
from workbench.sim.request cimport Request

cdef double INF

cdef class Instance

cdef class TypedHost(Handler):
    cpdef request_finished(self, Request req, Instance inst, double now)
cdef bint COMPILED



cdef class DecodeSet:
    cdef public long block_tokens
    cdef public long context
    cdef public list finishes
    cdef public long iteration
    cdef public list residues
    cdef public long sequence
    cdef public long size
    @cython.locals(g=long, gen=long, key=long, seq=long)
    cpdef join(self, Request req, long private_tokens)
    @cython.locals(gen=long)
    cpdef long leave(self, Request req)
    @cython.locals(f=Event)
    cdef _push_finish(self, long at, long seq, Request req)
    @cython.locals(heap=list, top=Event, req=Request)
    cpdef Request pop_finished(self, long g)
    @cython.locals(heap=list, top=Event, req=Request)
    cpdef long next_finish(self)
    @cython.locals(bs=long, full=long, rem=long, total=long, s=long, j=long, x=long, residues=list)
    cpdef long blocks_needed(self, long g, long k)
    @cython.locals(size=long, bs=long, cycles=long, rem=long, k=long, j=long, x=long, residues=list)
    cpdef long affordable(self, long g, long avail, long limit)
    cpdef clear(self)


cdef class SegmentRecorder:
    cdef public long instance
    cdef public object pending
    cdef public double since
    cdef public object sink
    cdef public long state
    cpdef busy(self, double start, double end, long batch, long prefill, long kv, long iterations)
    cpdef flush_busy(self)
    cpdef close_open(self, double now, long kv_used)


cdef class Instance(Handler):
    cdef public object host
    cdef public Engine engine
    cdef public long index
    cdef public object config
    cdef public object pool
    cdef public object role
    cdef public object perf
    cdef public RooflineTerms terms
    cdef public object perf_seen
    cdef public KVBlocks kv
    cdef public PrefixCache prefix
    cdef public DecodeSet decode
    cdef public SegmentRecorder segments
    cdef public long max_seqs
    cdef public long max_batched_tokens
    cdef public bint chunked
    cdef public long chunk_tokens
    cdef public long context
    cdef public long fit_tokens
    cdef public long max_prompt
    cdef public bint prefill_first
    cdef public bint padded_budget
    cdef public bint event_skipping
    cdef public long watermark_blocks
    cdef public object state
    cdef public bint audit_steps
    cdef public object waiting
    cdef public dict running
    cdef public long running_len
    cdef public list prefilling
    cdef public long queued_prefill_tokens
    cdef public long owed_tokens
    cdef public bint busy
    cdef public long version
    cdef public double step_start
    cdef public long run_iterations
    cdef public long run_batch
    cdef public long run_reserved
    cdef public double evict_at
    cdef public list step_items
    cdef public long step_prefill_tokens
    cdef public long step_kv_blocks
    cdef public long n_preemptions
    cdef public long n_iterations
    cdef public long tokens_out
    cdef public long prefix_hit_tokens
    cdef public long prefix_query_tokens

    cpdef enqueue(self, Request req, double now)
    @cython.locals(prefix=PrefixCache)
    cpdef long prefix_match_tokens(self, object request)
    @cython.locals(hit=long)
    cpdef _queue_prefill(self, Request req)
    @cython.locals(k=long, reserved=long, batch=long, end=double)
    cpdef _cut_run(self, double now)
    cpdef RooflineTerms _roofline_terms(self)
    cpdef double _iteration_time(self, long prefill, double prefill_context, long batch, long context)
    cpdef double _decode_run_time(self, long batch, long context, long k)
    cpdef long _decode_iterations_within(self, long batch, long context, double duration)
    cpdef _alloc(self, long n)
    @cython.locals(freed=long)
    cpdef _make_free(self, long n)
    @cython.locals(j=long)
    cpdef settle(self, double now)
    @cython.locals(m=long, t=double)
    cpdef _next_eviction(self, double now)
    @cython.locals(prefill=long, prefill_context=double, decoding=bint, need=long, used=long, batch=long, k=long,
                   avail=long, reserved=long, dt=double)
    cpdef _step(self, double now)
    @cython.locals(prefill=long, prefill_context=double, chunk_cap=long, todo=long, c=long, max_seqs=long,
                   start=long, longest=long, req=Request)
    cpdef tuple _plan_prefill(self, long budget, double now)
    @cython.locals(ptok=long, nmatch=long, ncache=long, unreferenced=long, hashed=long, need=long, avail=long)
    cpdef bint _admit(self, Request req, double now)
    @cython.locals(need=long, avail=long)
    cpdef bint _admit_decode(self, Request req, double now)
    @cython.locals(gen=long)
    cpdef _leave_decode(self, Request req)
    cpdef _release(self, Request req)
    cpdef _preempt_youngest(self)
    @cython.locals(k=long, batch_decode=long, batch=long, start=double, iteration=long, c=long, seq=long, req=Request)
    cpdef on_event(self, long arg, double now)
    @cython.locals(prefilling=list)
    cpdef _prefill_done(self, Request req, double now)
    @cython.locals(new=long, duplicates=long)
    cpdef _insert_prefix(self, Request req)
    @cython.locals(typed=TypedHost)
    cpdef _finish(self, Request req, double now)
