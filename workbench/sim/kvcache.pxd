# Cython declarations for kvcache.py (the compiled core; the .py file stays the pure-Python implementation)
cimport cython

cdef class KVBlocks:
    cdef public long block_tokens
    cdef public long capacity
    cdef public long free
    cdef public long peak
    cpdef long blocks_for(self, long tokens)

@cython.final
cdef class CacheEntry:
    cdef public long count
    cdef public object hash
    cdef public CacheEntry newer
    cdef public CacheEntry older

@cython.locals(e=CacheEntry)
cpdef CacheEntry new_entry(object h, long count)

@cython.final
cdef class PrefixHolders:
    cdef public dict of
    cpdef add(self, object h, long owner)
    cpdef remove(self, object h, long owner)


cdef class PrefixCache:
    cdef public CacheEntry _ring
    cdef public long blocks_per_entry
    cdef public dict entries
    cdef public long entry_tokens
    cdef public object index
    cdef public long owner
    cdef public long unreferenced
    @cython.locals(e=CacheEntry)
    cpdef long count(self, object h)
    @cython.locals(ring=CacheEntry, e=CacheEntry, out=list)
    cpdef list lru_order(self)
    @cython.locals(e=CacheEntry)
    cpdef object oldest(self)
    @cython.locals(ring=CacheEntry, last=CacheEntry)
    cdef inline void _link(self, CacheEntry e)
    @cython.locals(older=CacheEntry, newer=CacheEntry)
    cdef inline void _unlink(self, CacheEntry e)
    @cython.locals(e=CacheEntry)
    cpdef touch(self, object h)
    cpdef long cacheable(self, object hashes, long prompt_tokens)
    @cython.locals(n=long, entries=dict)
    cpdef long match(self, object hashes, long limit)
    @cython.locals(n=long, unreferenced=long, entries=dict, e=CacheEntry)
    cpdef tuple match_unreferenced(self, object hashes, long limit)
    @cython.locals(i=Py_ssize_t, entries=dict, e=CacheEntry)
    cpdef reference(self, object hashes, long n)
    @cython.locals(i=Py_ssize_t, entries=dict, e=CacheEntry)
    cpdef release(self, object hashes, long n)
    @cython.locals(duplicates=long, i=Py_ssize_t, entries=dict, e=CacheEntry, holders=PrefixHolders)
    cpdef long insert(self, object hashes, long start, long stop)
    @cython.locals(e=CacheEntry, holders=PrefixHolders)
    cpdef long evict_lru(self)
    @cython.locals(e=CacheEntry, ring=CacheEntry)
    cpdef clear(self)
