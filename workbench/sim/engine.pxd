# Cython declarations for engine.py (the compiled core; the .py file stays the pure-Python implementation)
cimport cython

cdef long KEY_BITS
cdef long ARRIVAL_KEY
cdef bint COMPILED

cdef class Handler:
    cpdef on_event(self, long arg, double now)

cdef class ArrivalFeed:
    cdef public object times
    cdef public object callback
    cdef public Handler handler
    cdef public long pos

@cython.final
cdef class Event:
    cdef public double time
    cdef public long key
    cdef public object callback
    cdef public object arg
    cdef public Handler handler
    cdef public long iarg

@cython.locals(i=Py_ssize_t, j=Py_ssize_t, parent=Event)
cpdef heap_push(list heap, Event entry)
@cython.locals(top=Event, last=Event, child=Event, right=Event, n=Py_ssize_t, i=Py_ssize_t, c=Py_ssize_t)
cpdef Event heap_pop(list heap)

@cython.final
cdef class Engine:
    cdef public double now
    cdef public long events
    cdef public list _heap
    cdef public object _counter
    cdef public long _seq
    cpdef schedule(self, double time, long priority, object callback, object arg=*)
    @cython.locals(ev=Event)
    cpdef push(self, double time, long priority, object callback, object arg=*)
    cpdef schedule_handler(self, double time, long priority, Handler handler, long arg)
    @cython.locals(ev=Event)
    cpdef push_handler(self, double time, long priority, Handler handler, long arg)
    @cython.locals(heap=list, n_arr=long, pos=long, events=long, t_arr=double, top=Event, handler=Handler,
                   typed=Handler, take=bint)
    cpdef _run_typed(self, object feed, double until)
    @cython.locals(heap=list, n_arr=long, pos=long, events=long, t_arr=double, top=tuple, t=double, take=bint)
    cpdef _run(self, object feed, double until)
