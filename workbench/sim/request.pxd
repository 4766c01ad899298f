# Cython declarations for request.py (the compiled core; the .py file stays the pure-Python implementation)
cimport cython

cdef class Request:
    cdef public long index
    cdef public object request_id
    cdef public double arrival_s
    cdef public long prompt_tokens
    cdef public long output_tokens
    cdef public object prefix_hashes
    cdef public object session_id
    cdef public object request_class
    cdef public double admitted_s
    cdef public double first_token_s
    cdef public double finish_s
    cdef public long generated
    cdef public long cached_tokens
    cdef public long preemptions
    cdef public long retries
    cdef public bint kv_ready
    cdef public long instance
    cdef public long prefill_target
    cdef public long prefill_done
    cdef public long prefix_refs
    cdef public long prefix_cacheable
    cdef public long kv_blocks
    cdef public long queued_hit_tokens
    cdef public long decode_seq
    cdef public long decode_offset
    cdef public long decode_residue
    cdef _setup(self, long index, object request_id, double arrival_s, long prompt_tokens, long output_tokens,
                object prefix_hashes, object session_id, object request_class)

@cython.locals(req=Request)
cpdef Request new_request(long index, object request_id, double arrival_s, long prompt_tokens,
                          long output_tokens)
