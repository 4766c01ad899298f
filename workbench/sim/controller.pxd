# Cython declarations for controller.py (the compiled core; the .py file stays the pure-Python implementation).
# Attributes not declared here live in the instance __dict__ (new ones need no declaration).
cimport cython

from workbench.sim.instance cimport Instance
from workbench.sim.kvcache cimport PrefixHolders
from workbench.sim.request cimport Request
from workbench.sim.simulation cimport TypedRouter

cdef bint COMPILED

@cython.locals(best=long, k=long, j=long, c=long)
cdef long _argmin_counts(long[:] counts, long lo, long n)

@cython.locals(hashes=object, first=object, prompt=long, block=long, limit=long, best=long, k=long, j=long,
               inst=Instance, p=long, b=long, cost=long, refs=dict, m=long, indexed=bint, i=long,
               owner=Instance)
cdef long _lmetric_choice(list instances, Request request, bint running, long[:] counts, double now,
                          PrefixHolders holders, list all_instances, long[:] match_blocks, long[:] match_stamp,
                          long decision)

cdef class FleetController(TypedRouter):
    cdef dict __dict__
    cdef public object sim
    cdef public object fleet
    cdef public object reject_reason
    cdef public list entry
    cdef public list decode
    cdef public list deferred
    cdef public list capacity
    cdef public list inner
    cdef public list views
    cdef public list live
    cdef public list min_fit
    cdef public list first_id
    cdef public dict position
    cdef public object front
    cdef public object decode_router
    cdef public object out
    cdef public long[:] counts
    cdef public list holders
    cdef public long[:] match_blocks
    cdef public long[:] match_stamp
    cdef public long decisions
    cdef public list all_instances
    cdef public object kv
    cdef public list prefix_indexes
    @cython.locals(p=long, size=long, n=long, k=long, i=long, first=long, insts=list, inst=Instance)
    cpdef long choose(self, Request request, object routable, double now)
    @cython.locals(p=long, k=long, size=long)
    cpdef long _pick_entry_pool(self, Request request, double now)
    @cython.locals(i=long, p=long, tokens=long)
    cpdef bint _on_finish(self, Request request, Instance inst, double now)
