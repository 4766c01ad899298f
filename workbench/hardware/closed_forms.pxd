# Cython declarations for closed_forms.py (the compiled core; the .py file stays the pure-Python implementation)
cimport cython

@cython.locals(a2=double, a1=double, disc=double, n=long)
cpdef long affine_run_count(double first, double step, double duration)

@cython.final
cdef class RooflineTerms:
    cdef public double c_tok
    cdef public double c_logit
    cdef public double w_dense
    cdef public double w_expert
    cdef public long n_exp
    cdef public double q_exp
    cdef public double c_pattn
    cdef public double c_dattn
    cdef public double c_wattn
    cdef public long window
    cdef public double c_state
    cdef public double fixed
    cdef public double c_comm
    cdef public double seq_overhead
    cdef public double step_floor
    @cython.locals(comp=double, mem=double, lin=double)
    cpdef double base(self, double tokens, double logits)
    @cython.locals(t=double, cap=double)
    cpdef double decode_attn(self, double decode_seqs, double decode_context)
    @cython.locals(p=double, d=double, t=double)
    cpdef double iteration_time(self, double prefill_tokens, double prefill_context, double decode_seqs,
                                double decode_context)
    cpdef bint piecewise(self)
    @cython.locals(n=long, d=long, total=double, t=double, k=long, tri=double)
    cpdef double decode_run_time(self, long decode_seqs, double decode_context, long iterations)
    @cython.locals(base=double, window=long, floor=double, c=double, windowed=bint, first=double, step=double,
                   k=long, a=long, e=long, pieces=list)
    cpdef list decode_pieces(self, long d, double c0, long n)
    @cython.locals(d=long, first=double, done=long, horizon=long, mean=double, step=double, k=long)
    cpdef long decode_iterations_within(self, long decode_seqs, double decode_context, double duration)
