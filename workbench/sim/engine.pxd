# Cython declarations for engine.py (the compiled core; the .py file stays the pure-Python implementation)
cimport cython

cdef class ArrivalFeed:
    cdef public object times
    cdef public object callback
    cdef public long pos

cdef class Engine:
    cdef public double now
    cdef public long events
    cdef public list _heap
    cdef public object _counter
    cpdef push(self, double time, long priority, object callback, object arg=*)
    @cython.locals(heap=list, n_arr=long, pos=long, events=long, t_arr=double, top=tuple, t=double)
    cpdef _run(self, object feed, double until)
