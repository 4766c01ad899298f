# Cython declarations for kvcache.py (the compiled core; the .py file stays the pure-Python implementation)
cimport cython

cdef class KVBlocks:
    cdef public long block_tokens
    cdef public long capacity
    cdef public long free
    cdef public long peak
    cpdef long blocks_for(self, long tokens)

cdef class PrefixCache:
    cdef public long blocks_per_entry
    cdef public long entry_tokens
    cdef public object index
    cdef public object lru
    cdef public long owner
    cdef public dict refs
    cpdef long cacheable(self, object hashes, long prompt_tokens)
    @cython.locals(n=long)
    cpdef long match(self, object hashes, long limit)
    @cython.locals(n=long, unreferenced=long)
    cpdef tuple match_unreferenced(self, object hashes, long limit)
    @cython.locals(c=long)
    cpdef reference(self, object hashes)
    @cython.locals(c=long, i=Py_ssize_t)
    cpdef release(self, object hashes)
    @cython.locals(duplicates=long)
    cpdef long insert(self, object hashes)
    cpdef long evict_lru(self)
    cpdef clear(self)
