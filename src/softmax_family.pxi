# Parallel drivers of logsumexp, softmax and log_softmax.
#
# Every input arrives as a 3-d strided view (outer, C, inner) of the caller's
# array -- C is the reduced axis -- so one driver serves every axis, layout and
# stride without a copy.  The per-row arithmetic lives in fx_rows.h; this file
# only chooses how rows are walked and shared among threads:
#
# * rows   -- one row per work item (prange over outer*inner rows); a row is
#             read twice (max, then sum) while it is still in cache.
# * split  -- fewer rows than threads and long rows: the rows are cut into
#             FX_CHUNK-element chunks and the chunks are shared.  Sums are
#             added chunk by chunk in order, exactly as the rows path does, so
#             results do not depend on the thread count.
# * cols   -- the reduced axis is strided and the inner axis is contiguous
#             (axis=0 of a C-ordered matrix, PyTorch's (N, C, d1...) layout):
#             COL_W neighbouring rows are processed side by side, vectorized
#             across inner.
#
# Every loop runs in batches of work items, a few milliseconds each, and
# between batches checks for a pending signal with the GIL held (see
# _next_batch), so Ctrl-C stops a long call.  Batches end on work-item
# boundaries: the results are those of one loop.  Within a batch, threads
# take contiguous runs of items as they come free (guided schedule): a
# thread that starts late (a busy machine wakes it after milliseconds) or is
# preempted does not hold the others at the end of every batch, as a static
# split would.  Which thread computes an item never changes its bits.
#
# Python validates and allocates; nothing here raises (but KeyboardInterrupt
# between batches).

cimport cython
from cython.parallel cimport prange, parallel, threadid
from libc.stdlib cimport malloc, calloc, free
from libc.string cimport memset
from libc.stdint cimport uint16_t
from libc.math cimport INFINITY, NAN, isfinite
from cpython.exc cimport PyErr_CheckSignals

from fx_kernels cimport *

ctypedef fused real:
    uint16_t      # float16, read as its bits and computed in float32
    float
    double

# below this many elements per thread, starting a thread costs more than it saves
DEF MIN_WORK_PER_THREAD = 32768
# rows processed side by side by the column kernels
DEF COL_W = 64
# elements per thread between two checks for a signal: about 12 ms of
# float32 logsumexp on an idle machine.  Every batch starts the thread team
# anew, which costs milliseconds when other processes keep the cores busy, so
# batches are not made shorter than this.
DEF CHECK_ELEMENTS = 1 << 25
# the weight of an element of the kernels that cost several times more per
# element than an exp-bound row reduction (element-wise losses, short-row
# cross-entropy), so that their batches take about as long
DEF HEAVY = 4

def openmp_enabled():
    """True when this module was compiled with OpenMP."""
    return bool(FX_OPENMP)

def max_threads():
    """The OpenMP default thread count (1 without OpenMP)."""
    return fx_max_threads()

def cpu_has_avx2_fma():
    """True when the CPU and the OS support AVX2 and FMA."""
    return bool(fx_cpu_has_avx2_fma())


cdef inline int _threads(int requested, Py_ssize_t work) noexcept nogil:
    cdef Py_ssize_t cap = work // MIN_WORK_PER_THREAD
    if cap <= 1:
        return 1
    return requested if requested < cap else <int>cap


cdef inline Py_ssize_t _batch(Py_ssize_t per_item, int nt, Py_ssize_t multiple) noexcept nogil:
    """Work items (of per_item elements each) per batch: a positive multiple
    of `multiple`, about CHECK_ELEMENTS elements per thread."""
    cdef Py_ssize_t n = CHECK_ELEMENTS * nt // (per_item if per_item > 1 else 1)
    n = n - n % multiple
    return n if n > 0 else multiple


cdef inline Py_ssize_t _next_batch(Py_ssize_t b0, Py_ssize_t n, Py_ssize_t nb) except -1:
    """The end of the batch of items that starts at b0 (nb of the n items).
    Before every batch but the first, a pending signal runs its handler:
    Ctrl-C raises KeyboardInterrupt here.  The caller holds the GIL, and
    frees its scratch on the way out."""
    if b0 > 0:
        PyErr_CheckSignals()
    return b0 + nb if n - b0 > nb else n


cdef inline void _put(real *p, double v) noexcept nogil:
    if real is uint16_t:
        p[0] = fx_float_to_half(<float>v)
    else:
        p[0] = <real>v


# ---- fused -> C dispatch (compile-time branches) ----

cdef inline double _max(const real *x, Py_ssize_t n, Py_ssize_t s) noexcept nogil:
    if real is float:
        return fx_f32_max(x, n, s)
    elif real is double:
        return fx_f64_max(x, n, s)
    else:
        return fx_f16_max(x, n, s)

cdef inline fx_lse_state _chunk_state(const real *x, Py_ssize_t n, Py_ssize_t s) noexcept nogil:
    if real is float:
        return fx_f32_chunk_state(x, n, s)
    elif real is double:
        return fx_f64_chunk_state(x, n, s)
    else:
        return fx_f16_chunk_state(x, n, s)

cdef inline double _naive(const real *x, Py_ssize_t n, Py_ssize_t s) noexcept nogil:
    if real is float:
        return fx_f32_naive(x, n, s, NULL, 0)
    elif real is double:
        return fx_f64_naive(x, n, s, NULL, 0)
    else:
        return fx_f16_naive(x, n, s, NULL, 0)

cdef inline double _row_lse(const real *x, Py_ssize_t n, Py_ssize_t s, const real *b,
                            Py_ssize_t bs, int want_sign, double *sgn) noexcept nogil:
    if real is float:
        return fx_f32_row_lse(x, n, s, b, bs, want_sign, sgn)
    elif real is double:
        return fx_f64_row_lse(x, n, s, b, bs, want_sign, sgn)
    else:
        return fx_f16_row_lse(x, n, s, b, bs, want_sign, sgn)

cdef inline void _row_softmax(const real *x, Py_ssize_t n, Py_ssize_t s, real *out,
                              Py_ssize_t os, bint logarithm) noexcept nogil:
    if real is float:
        if logarithm:
            fx_f32_row_log_softmax(x, n, s, out, os)
        else:
            fx_f32_row_softmax(x, n, s, out, os)
    elif real is double:
        if logarithm:
            fx_f64_row_log_softmax(x, n, s, out, os)
        else:
            fx_f64_row_softmax(x, n, s, out, os)
    else:
        if logarithm:
            fx_f16_row_log_softmax(x, n, s, out, os)
        else:
            fx_f16_row_softmax(x, n, s, out, os)

cdef inline bint _stores_exp(const real *x) noexcept nogil:
    # float16 output is not a good place to keep unnormalized exponentials
    if real is uint16_t:
        return False
    else:
        return True

cdef inline double _store_exp(const real *x, Py_ssize_t n, Py_ssize_t s, double m,
                              real *out, Py_ssize_t os, double *k) noexcept nogil:
    if real is float:
        return fx_f32_store_exp(x, n, s, <float>m, out, os, k)
    elif real is double:
        return fx_f64_store_exp(x, n, s, m, out, os, k)
    else:
        return 0.0

cdef inline void _divide(real *out, Py_ssize_t n, Py_ssize_t os, double d) noexcept nogil:
    if real is float:
        fx_f32_divide(out, n, os, <float>d)
    elif real is double:
        fx_f64_divide(out, n, os, d)

cdef inline void _fill(real *out, Py_ssize_t n, Py_ssize_t os, double v) noexcept nogil:
    if real is float:
        fx_f32_fill(out, n, os, <float>v)
    elif real is double:
        fx_f64_fill(out, n, os, v)
    else:
        fx_f16_fill(out, n, os, <float>v)

cdef inline void _shift(const real *x, Py_ssize_t n, Py_ssize_t s, double m, double c,
                        real *out, Py_ssize_t os) noexcept nogil:
    if real is float:
        fx_f32_shift(x, n, s, <float>m, <float>c, out, os)
    elif real is double:
        fx_f64_shift(x, n, s, m, c, out, os)
    else:
        fx_f16_shift(x, n, s, <float>m, <float>c, out, os)

cdef inline void _exp_div(const real *x, Py_ssize_t n, Py_ssize_t s, double m, double d,
                          real *out, Py_ssize_t os) noexcept nogil:
    if real is float:
        fx_f32_exp_div(x, n, s, <float>m, <float>d, out, os)
    elif real is double:
        fx_f64_exp_div(x, n, s, m, d, out, os)
    else:
        fx_f16_exp_div(x, n, s, <float>m, <float>d, out, os)

cdef inline void _col_lse(const real *x, Py_ssize_t C, Py_ssize_t sc, Py_ssize_t W,
                          double *scratch, int want_sign, double *out, double *sgn) noexcept nogil:
    # scratch: COL_W working-type maxima, then 3*COL_W doubles
    if real is float:
        fx_f32_col_lse(x, C, sc, W, <float *>scratch, scratch + COL_W, want_sign, out, sgn)
    elif real is double:
        fx_f64_col_lse(x, C, sc, W, scratch, scratch + COL_W, want_sign, out, sgn)
    else:
        fx_f16_col_lse(x, C, sc, W, <float *>scratch, scratch + COL_W, want_sign, out, sgn)

cdef inline void _col_softmax(const real *x, Py_ssize_t C, Py_ssize_t sc, Py_ssize_t W,
                              double *scratch, bint logarithm, real *out,
                              Py_ssize_t osc, Py_ssize_t osi) noexcept nogil:
    if real is float:
        fx_f32_col_softmax(x, C, sc, W, <float *>scratch, scratch + COL_W, logarithm, out, osc, osi)
    elif real is double:
        fx_f64_col_softmax(x, C, sc, W, scratch, scratch + COL_W, logarithm, out, osc, osi)
    else:
        fx_f16_col_softmax(x, C, sc, W, <float *>scratch, scratch + COL_W, logarithm, out, osc, osi)


cdef inline void _small_lse(const real *x, Py_ssize_t nrows, Py_ssize_t C, Py_ssize_t rs,
                            double *T, int want_sign, real *out, Py_ssize_t os,
                            real *sgn, Py_ssize_t gs) noexcept nogil:
    if real is float:
        fx_f32_small_lse(x, nrows, C, rs, <float *>T, want_sign, out, os, sgn, gs)
    elif real is double:
        fx_f64_small_lse(x, nrows, C, rs, T, want_sign, out, os, sgn, gs)
    else:
        fx_f16_small_lse(x, nrows, C, rs, <float *>T, want_sign, out, os, sgn, gs)

cdef inline void _small_softmax(const real *x, Py_ssize_t nrows, Py_ssize_t C, Py_ssize_t rs,
                                double *T, bint logarithm, real *out, Py_ssize_t ors,
                                Py_ssize_t osc) noexcept nogil:
    if real is float:
        fx_f32_small_softmax(x, nrows, C, rs, <float *>T, logarithm, out, ors, osc)
    elif real is double:
        fx_f64_small_softmax(x, nrows, C, rs, T, logarithm, out, ors, osc)
    else:
        fx_f16_small_softmax(x, nrows, C, rs, <float *>T, logarithm, out, ors, osc)


cdef inline bint _use_small(Py_ssize_t R, Py_ssize_t C, Py_ssize_t sc, Py_ssize_t I) noexcept nogil:
    # many short contiguous rows: the transposed-block kernels (a handful of
    # rows is cheaper row by row than as a block of FX_BLOCK_W lanes)
    return sc == 1 and I == 1 and C <= FX_SMALL_C and R >= 16


# scratch of the short-row kernels, per thread, in doubles (a multiple of
# 8, so that every thread's part starts on a cache line)
DEF SMALL_SCRATCH = (16 + 3) * 64
# doubles an allocation takes beyond its use, for fx_align64
DEF ALIGN_SLACK = 8


cdef inline bint _use_split(Py_ssize_t rows, Py_ssize_t C, int nt) noexcept nogil:
    return nt > 1 and rows < 2 * nt and C >= 2 * FX_CHUNK


# ---- logsumexp ----

@cython.boundscheck(False)
@cython.wraparound(False)
def logsumexp(const real[:, :, :] x, real[:, :] out, real[:, :] sgn=None,
              const real[:, :, :] b=None, bint want_sign=False, int n_threads=1):
    """out[o, i] = log(sum_c b[o, c, i] exp(x[o, c, i])), SciPy's semantics.

    x, b: (outer, C, inner) views, non-empty (IN); out, sgn: (outer, inner)
    (OUT; sgn may be None).  b may be None or broadcast (zero strides).
    """
    cdef Py_ssize_t sz = sizeof(real)
    cdef Py_ssize_t gso = 0, gsi = 0, bso = 0, bsc = 0, bsi = 0
    cdef real *gp = NULL
    cdef const real *bp = NULL
    if sgn is not None:
        gp = &sgn[0, 0]
        gso = sgn.strides[0] // sz
        gsi = sgn.strides[1] // sz
    if b is not None:
        bp = &b[0, 0, 0]
        bso = b.strides[0] // sz
        bsc = b.strides[1] // sz
        bsi = b.strides[2] // sz
    _logsumexp(&x[0, 0, 0], x.shape[0], x.shape[1], x.shape[2],
               x.strides[0] // sz, x.strides[1] // sz, x.strides[2] // sz,
               &out[0, 0], out.strides[0] // sz, out.strides[1] // sz,
               gp, gso, gsi, bp, bso, bsc, bsi, want_sign, n_threads)


cdef int _logsumexp(const real *xp, Py_ssize_t O, Py_ssize_t C, Py_ssize_t I,
                    Py_ssize_t so, Py_ssize_t sc, Py_ssize_t si,
                    real *op, Py_ssize_t oso, Py_ssize_t osi,
                    real *gp, Py_ssize_t gso, Py_ssize_t gsi,
                    const real *bp, Py_ssize_t bso, Py_ssize_t bsc, Py_ssize_t bsi,
                    bint want_sign, int n_threads) except -1:
    cdef Py_ssize_t R = O * I, r, o, i, it, nch, c, w, i0, nblk, nb, b0 = 0, b1
    cdef double v, sg
    cdef double *scratch
    cdef fx_lse_state *states
    cdef fx_lse_state st
    cdef double small_scratch[SMALL_SCRATCH + ALIGN_SLACK]
    cdef double *one
    cdef int nt = _threads(n_threads, R * C)

    if bp == NULL and sc != 1 and si == 1 and I > 1:
        # cols: blocks of COL_W rows that are neighbours along inner
        nblk = (I + COL_W - 1) // COL_W
        scratch = <double *>malloc(nt * 6 * COL_W * sizeof(double))
        if scratch == NULL:
            raise MemoryError()
        nb = _batch(C * COL_W, nt, 1)
        try:
            while b0 < O * nblk:
                b1 = _next_batch(b0, O * nblk, nb)
                with nogil:
                    for it in prange(b0, b1, num_threads=nt, schedule='guided'):
                        o = it // nblk
                        i0 = (it - o * nblk) * COL_W
                        w = I - i0 if I - i0 < COL_W else COL_W
                        _cols_lse_block(xp + o * so + i0, C, sc, w,
                                        scratch + threadid() * 6 * COL_W, want_sign,
                                        op + o * oso + i0 * osi, osi,
                                        gp + o * gso + i0 * gsi if gp != NULL else NULL, gsi)
                b0 = b1
        finally:
            free(scratch)
    elif bp == NULL and _use_small(R, C, sc, I):
        if nt == 1:
            # one call per batch of rows; no thread team, scratch on the stack
            memset(small_scratch, 0, sizeof(small_scratch))
            one = fx_align64(small_scratch)
            nb = _batch(C, 1, FX_BLOCK_W)
            while b0 < R:
                b1 = _next_batch(b0, R, nb)
                with nogil:
                    _small_lse(xp + b0 * so, b1 - b0, C, so, one, want_sign, op + b0 * oso, oso,
                               gp + b0 * gso if gp != NULL else NULL, gso)
                b0 = b1
        else:
            nblk = (R + FX_BLOCK_W - 1) // FX_BLOCK_W
            scratch = <double *>calloc(nt * SMALL_SCRATCH + ALIGN_SLACK, sizeof(double))
            if scratch == NULL:
                raise MemoryError()
            nb = _batch(C * FX_BLOCK_W, nt, 1)
            try:
                while b0 < nblk:
                    b1 = _next_batch(b0, nblk, nb)
                    with nogil:
                        for it in prange(b0, b1, num_threads=nt, schedule='guided'):
                            i0 = it * FX_BLOCK_W
                            _small_lse(xp + i0 * so, R - i0 if R - i0 < FX_BLOCK_W else FX_BLOCK_W,
                                       C, so, fx_align64(scratch) + threadid() * SMALL_SCRATCH,
                                       want_sign, op + i0 * oso, oso,
                                       gp + i0 * gso if gp != NULL else NULL, gso)
                    b0 = b1
            finally:
                free(scratch)
    elif bp == NULL and _use_split(R, C, nt):
        nch = (C + FX_CHUNK - 1) // FX_CHUNK
        states = <fx_lse_state *>malloc(R * nch * sizeof(fx_lse_state))
        if states == NULL:
            raise MemoryError()
        nb = _batch(FX_CHUNK, nt, 1)
        try:
            while b0 < R * nch:
                b1 = _next_batch(b0, R * nch, nb)
                with nogil:
                    for it in prange(b0, b1, num_threads=nt, schedule='guided'):
                        r = it // nch
                        c = (it - r * nch) * FX_CHUNK
                        o = r // I
                        states[it] = _chunk_state(xp + o * so + (r - o * I) * si + c * sc,
                                                  C - c if C - c < FX_CHUNK else FX_CHUNK, sc)
                b0 = b1
            with nogil:
                for r in range(R):
                    # chunk states merged in order, as a single-thread row does
                    st = states[r * nch]
                    for c in range(1, nch):
                        fx_state_merge(&st, states[r * nch + c].m, states[r * nch + c].k,
                                       states[r * nch + c].s)
                    o = r // I
                    i = r - o * I
                    v = fx_lse_finish(st.m, st.k, st.s, want_sign, &sg)
                    if not isfinite(v):
                        v = fx_lse_naive(_naive(xp + o * so + i * si, C, sc), want_sign, &sg)
                    _put(&op[o * oso + i * osi], v)
                    if gp != NULL:
                        _put(&gp[o * gso + i * gsi], sg)
        finally:
            free(states)
    else:
        nb = _batch(C, nt, 1)
        while b0 < R:
            b1 = _next_batch(b0, R, nb)
            with nogil:
                if nt == 1:
                    for r in range(b0, b1):
                        _lse_row(xp, bp, r, I, so, sc, si, bso, bsc, bsi, C, want_sign,
                                 op, oso, osi, gp, gso, gsi)
                else:
                    for r in prange(b0, b1, num_threads=nt, schedule='guided'):
                        _lse_row(xp, bp, r, I, so, sc, si, bso, bsc, bsi, C, want_sign,
                                 op, oso, osi, gp, gso, gsi)
            b0 = b1
    return 0


cdef inline void _lse_row(const real *xp, const real *bp, Py_ssize_t r, Py_ssize_t I,
                          Py_ssize_t so, Py_ssize_t sc, Py_ssize_t si,
                          Py_ssize_t bso, Py_ssize_t bsc, Py_ssize_t bsi, Py_ssize_t C,
                          bint want_sign, real *op, Py_ssize_t oso, Py_ssize_t osi,
                          real *gp, Py_ssize_t gso, Py_ssize_t gsi) noexcept nogil:
    cdef Py_ssize_t o = r // I
    cdef Py_ssize_t i = r - o * I
    cdef double sg
    cdef double v = _row_lse(xp + o * so + i * si, C, sc,
                             bp + o * bso + i * bsi if bp != NULL else NULL, bsc,
                             want_sign, &sg)
    _put(&op[o * oso + i * osi], v)
    if gp != NULL:
        _put(&gp[o * gso + i * gsi], sg)


cdef inline void _cols_lse_block(const real *x, Py_ssize_t C, Py_ssize_t sc, Py_ssize_t w,
                                 double *scratch, bint want_sign, real *op, Py_ssize_t osi,
                                 real *gp, Py_ssize_t gsi) noexcept nogil:
    cdef double *res = scratch + 4 * COL_W
    cdef double *sgs = scratch + 5 * COL_W
    cdef Py_ssize_t i
    _col_lse(x, C, sc, w, scratch, want_sign, res, sgs)
    for i in range(w):
        _put(&op[i * osi], res[i])
        if gp != NULL:
            _put(&gp[i * gsi], sgs[i])


# ---- softmax and log_softmax ----

@cython.boundscheck(False)
@cython.wraparound(False)
def softmax(const real[:, :, :] x, real[:, :, :] out, bint logarithm=False, int n_threads=1):
    """out = softmax(x) (log_softmax(x) when logarithm) along axis 1.

    x: (outer, C, inner) view, non-empty (IN); out: same shape (OUT).
    """
    cdef Py_ssize_t sz = sizeof(real)
    _softmax(&x[0, 0, 0], x.shape[0], x.shape[1], x.shape[2],
             x.strides[0] // sz, x.strides[1] // sz, x.strides[2] // sz,
             &out[0, 0, 0], out.strides[0] // sz, out.strides[1] // sz, out.strides[2] // sz,
             logarithm, n_threads)


cdef int _softmax(const real *xp, Py_ssize_t O, Py_ssize_t C, Py_ssize_t I,
                  Py_ssize_t so, Py_ssize_t sc, Py_ssize_t si,
                  real *op, Py_ssize_t oso, Py_ssize_t osc, Py_ssize_t osi,
                  bint logarithm, int n_threads) except -1:
    cdef Py_ssize_t R = O * I, r, o, i, it, nch, c, ln, w, i0, nblk, nb, b0 = 0, b1
    cdef double m, k, tot, m_eff
    cdef double *scratch
    cdef fx_lse_state *states
    cdef fx_lse_state st
    cdef double *cmax
    cdef double *rmax
    cdef double *rm
    cdef double *rd
    cdef double small_scratch[SMALL_SCRATCH + ALIGN_SLACK]
    cdef double *one
    cdef int nt = _threads(n_threads, R * C)

    if sc != 1 and si == 1 and I > 1:
        nblk = (I + COL_W - 1) // COL_W
        scratch = <double *>malloc(nt * 4 * COL_W * sizeof(double))
        if scratch == NULL:
            raise MemoryError()
        nb = _batch(C * COL_W, nt, 1)
        try:
            while b0 < O * nblk:
                b1 = _next_batch(b0, O * nblk, nb)
                with nogil:
                    for it in prange(b0, b1, num_threads=nt, schedule='guided'):
                        o = it // nblk
                        i0 = (it - o * nblk) * COL_W
                        w = I - i0 if I - i0 < COL_W else COL_W
                        _col_softmax(xp + o * so + i0, C, sc, w, scratch + threadid() * 4 * COL_W,
                                     logarithm, op + o * oso + i0 * osi, osc, osi)
                b0 = b1
        finally:
            free(scratch)
    elif _use_small(R, C, sc, I):
        if nt == 1:
            memset(small_scratch, 0, sizeof(small_scratch))
            one = fx_align64(small_scratch)
            nb = _batch(C, 1, FX_BLOCK_W)
            while b0 < R:
                b1 = _next_batch(b0, R, nb)
                with nogil:
                    _small_softmax(xp + b0 * so, b1 - b0, C, so, one, logarithm,
                                   op + b0 * oso, oso, osc)
                b0 = b1
        else:
            nblk = (R + FX_BLOCK_W - 1) // FX_BLOCK_W
            scratch = <double *>calloc(nt * SMALL_SCRATCH + ALIGN_SLACK, sizeof(double))
            if scratch == NULL:
                raise MemoryError()
            nb = _batch(C * FX_BLOCK_W, nt, 1)
            try:
                while b0 < nblk:
                    b1 = _next_batch(b0, nblk, nb)
                    with nogil:
                        for it in prange(b0, b1, num_threads=nt, schedule='guided'):
                            i0 = it * FX_BLOCK_W
                            _small_softmax(xp + i0 * so, R - i0 if R - i0 < FX_BLOCK_W else FX_BLOCK_W,
                                           C, so, fx_align64(scratch) + threadid() * SMALL_SCRATCH,
                                           logarithm, op + i0 * oso, oso, osc)
                    b0 = b1
            finally:
                free(scratch)
    elif _use_split(R, C, nt):
        nch = (C + FX_CHUNK - 1) // FX_CHUNK
        states = <fx_lse_state *>malloc(R * nch * sizeof(fx_lse_state))
        scratch = <double *>malloc((R * nch + 3 * R) * sizeof(double))
        if states == NULL or scratch == NULL:
            free(states)
            free(scratch)
            raise MemoryError()
        cmax = scratch                 # per chunk: max
        rmax = scratch + R * nch       # per row: max, shift, divisor or offset
        rm = rmax + R
        rd = rm + R
        nb = _batch(FX_CHUNK, nt, 1)
        try:
            if logarithm or not _stores_exp(xp):
                while b0 < R * nch:
                    b1 = _next_batch(b0, R * nch, nb)
                    with nogil:
                        for it in prange(b0, b1, num_threads=nt, schedule='guided'):
                            r = it // nch
                            c = (it - r * nch) * FX_CHUNK
                            o = r // I
                            states[it] = _chunk_state(xp + o * so + (r - o * I) * si + c * sc,
                                                      C - c if C - c < FX_CHUNK else FX_CHUNK, sc)
                    b0 = b1
                with nogil:
                    for r in range(R):
                        st = states[r * nch]
                        for c in range(1, nch):
                            fx_state_merge(&st, states[r * nch + c].m, states[r * nch + c].k,
                                           states[r * nch + c].s)
                        if logarithm:
                            rd[r] = fx_log_softmax_offset(st.m, st.k, st.s, &m_eff)
                            rm[r] = m_eff
                        elif isfinite(st.m):
                            rd[r] = st.s + st.k
                            rm[r] = st.m
                        else:
                            rd[r] = NAN
                            rm[r] = 0.0
            else:
                # as the rows path: max, keep exp(x - max) in out, divide
                while b0 < R * nch:
                    b1 = _next_batch(b0, R * nch, nb)
                    with nogil:
                        for it in prange(b0, b1, num_threads=nt, schedule='guided'):
                            r = it // nch
                            c = (it - r * nch) * FX_CHUNK
                            o = r // I
                            cmax[it] = _max(xp + o * so + (r - o * I) * si + c * sc,
                                            C - c if C - c < FX_CHUNK else FX_CHUNK, sc)
                    b0 = b1
                with nogil:
                    for r in range(R):
                        m = -INFINITY
                        for c in range(nch):
                            if cmax[r * nch + c] > m:
                                m = cmax[r * nch + c]
                        rmax[r] = m
                b0 = 0
                while b0 < R * nch:
                    b1 = _next_batch(b0, R * nch, nb)
                    with nogil:
                        for it in prange(b0, b1, num_threads=nt, schedule='guided'):
                            r = it // nch
                            c = (it - r * nch) * FX_CHUNK
                            o = r // I
                            i = r - o * I
                            states[it].k = 0.0
                            states[it].s = 0.0
                            if isfinite(rmax[r]):
                                states[it].s = _store_exp(xp + o * so + i * si + c * sc,
                                                          C - c if C - c < FX_CHUNK else FX_CHUNK, sc,
                                                          rmax[r], op + o * oso + i * osi + c * osc, osc,
                                                          &states[it].k)
                    b0 = b1
                with nogil:
                    for r in range(R):
                        tot = 0.0
                        k = 0.0
                        for c in range(nch):
                            tot = tot + states[r * nch + c].s
                            k = k + states[r * nch + c].k
                        rd[r] = tot + k if isfinite(rmax[r]) else NAN
                        rm[r] = rmax[r]
            b0 = 0
            while b0 < R * nch:
                b1 = _next_batch(b0, R * nch, nb)
                with nogil:
                    for it in prange(b0, b1, num_threads=nt, schedule='guided'):
                        r = it // nch
                        c = (it - r * nch) * FX_CHUNK
                        ln = C - c if C - c < FX_CHUNK else FX_CHUNK
                        o = r // I
                        i = r - o * I
                        if logarithm:
                            _shift(xp + o * so + i * si + c * sc, ln, sc, rm[r], rd[r],
                                   op + o * oso + i * osi + c * osc, osc)
                        elif not _stores_exp(xp):
                            _exp_div(xp + o * so + i * si + c * sc, ln, sc, rm[r], rd[r],
                                     op + o * oso + i * osi + c * osc, osc)
                        elif isfinite(rmax[r]):
                            _divide(op + o * oso + i * osi + c * osc, ln, osc, rd[r])
                        else:
                            _fill(op + o * oso + i * osi + c * osc, ln, osc, NAN)
                b0 = b1
        finally:
            free(states)
            free(scratch)
    else:
        nb = _batch(C, nt, 1)
        while b0 < R:
            b1 = _next_batch(b0, R, nb)
            with nogil:
                if nt == 1:
                    for r in range(b0, b1):
                        o = r // I
                        i = r - o * I
                        _row_softmax(xp + o * so + i * si, C, sc, op + o * oso + i * osi, osc,
                                     logarithm)
                else:
                    for r in prange(b0, b1, num_threads=nt, schedule='guided'):
                        o = r // I
                        i = r - o * I
                        _row_softmax(xp + o * so + i * si, C, sc, op + o * oso + i * osi, osc,
                                     logarithm)
            b0 = b1
    return 0
