# Cython declarations for simulation.py (the compiled core; the .py file stays the pure-Python implementation)
cimport cython

from workbench.sim.engine cimport Engine
from workbench.sim.instance cimport Instance, TypedHost
from workbench.sim.request cimport Request, new_request


cdef class TypedRouter:
    cpdef long choose(self, Request request, object routable, double now)


cdef class Simulation(TypedHost):
    cdef public Engine engine
    cdef public object streams
    cdef public object router
    cdef public object prefix_block_tokens
    cdef public bint record_segments
    cdef public list instances
    cdef public list routable
    cdef public object pending
    cdef public object on_finish
    cdef public object on_state_change
    cdef public object on_end
    cdef public object on_done
    cdef public object closed_loop
    cdef public object _arrive_row
    cdef public object _make_row
    cdef public bint hold_unroutable
    cdef public bint audit
    cdef public bint check
    cdef public dict counters
    cdef public object _seg
    cdef public object segment_sink
    cdef public _Records _records
    cdef public object _view
    cdef public object _requests
    cdef public list _ids
    cdef public list _prompt
    cdef public list _output
    cdef public list _hashes
    cdef public list _sessions
    cdef public list _classes
    @cython.locals(req=Request)
    cpdef on_event(self, long arg, double now)
    @cython.locals(routable=list, inst=Instance, pos=long, typed=TypedRouter)
    cpdef route(self, Request req, double now)
    cpdef reject(self, Request req, str reason)
    cpdef request_finished(self, Request req, Instance inst, double now)


cdef class _Records:
    cdef public double[:] admitted_s
    cdef public double[:] first_token_s
    cdef public double[:] finish_s
    cdef public int[:] cached_tokens
    cdef public int[:] preemptions
    cdef public int[:] instance
    cdef public int[:] retries
    cdef public dict reasons
    cdef public long count
    @cython.locals(i=long)
    cpdef store(self, Request req)
