# Parallel drivers of logsumexp, softmax and log_softmax.
#
# Every input is read as a 3-d strided view (outer, C, inner) of the caller's
# array -- C is the reduced axis (see _view) -- so one driver serves every
# axis, layout and stride without a copy.  The per-row arithmetic lives in fx_softmax_family.h;
# this file only chooses how rows are walked and shared among threads:
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
from cython.parallel cimport prange, threadid
from libc.stdlib cimport malloc, calloc, free
from libc.string cimport memset
from libc.math cimport INFINITY, NAN, isfinite
from cpython.long cimport PyLong_CheckExact

from fx_kernels cimport *


# ---- logsumexp ----

def logsumexp(x, out, sgn=None, b=None, bint want_sign=False, int n_threads=1, int lo=1,
              int hi=1):
    """out[o, i] = log(sum_c b[o, c, i] exp(x[o, c, i])), SciPy's semantics.

    x, b: non-empty operands reduced over their axes lo..hi, read as
    (outer, C, inner) (see _view; IN); out, sgn: one value per row (OUT;
    sgn may be None).  b may be None or broadcast (zero strides).
    """
    cdef fx_view xv, ov, gv, bv
    _input_view(x, &xv, lo, hi)
    _like(out, &ov, &xv, lo, hi, True, True)
    _like(sgn, &gv, &xv, lo, hi, True, True)
    _like(b, &bv, &xv, lo, hi, False, False)
    if xv.itemsize == 8:
        _logsumexp_views(<double *>NULL, &xv, &ov, &gv, &bv, want_sign, n_threads)
    elif xv.itemsize == 4:
        _logsumexp_views(<float *>NULL, &xv, &ov, &gv, &bv, want_sign, n_threads)
    else:
        _logsumexp_views(<uint16_t *>NULL, &xv, &ov, &gv, &bv, want_sign, n_threads)


def logsumexp_small(x, axis):
    """logsumexp(x, axis) as the public function returns it (no b, sign,
    keepdims or out), for the small calls softmax_small takes: x as there,
    over its last axis or all of it.  A NumPy scalar where the result is
    0-d (axis None, or 1-d x), as SciPy returns it; None for any other call.

    The driver call the layout layer makes for such an x, into a new
    C-ordered array of the kept dims (empty_reduced's)."""
    cdef cnp.ndarray a
    cdef int nd, t = _small_operand(x, MIN_WORK_PER_THREAD)
    cdef Py_ssize_t size, C
    if t < 0:
        return None
    a = <cnp.ndarray>x
    nd = cnp.PyArray_NDIM(a)
    size = cnp.PyArray_SIZE(a)
    if nd == 0:
        return None
    if axis is None:
        C = size
        out = cnp.PyArray_EMPTY(0, NULL, t, 0)
    elif PyLong_CheckExact(axis) and (axis == -1 or axis == nd - 1):
        C = cnp.PyArray_DIMS(a)[nd - 1]
        out = cnp.PyArray_EMPTY(nd - 1, cnp.PyArray_DIMS(a), t, 0)
    else:
        return None
    if t == cnp.NPY_FLOAT64:
        _logsumexp(<const double *>cnp.PyArray_DATA(a), size // C, C, 1, C, 1, 1,
                   <double *>cnp.PyArray_DATA(<cnp.ndarray>out), 1, 1, NULL, 1, 1,
                   NULL, 0, 0, 0, False, 1)
    elif t == cnp.NPY_FLOAT32:
        _logsumexp(<const float *>cnp.PyArray_DATA(a), size // C, C, 1, C, 1, 1,
                   <float *>cnp.PyArray_DATA(<cnp.ndarray>out), 1, 1, NULL, 1, 1,
                   NULL, 0, 0, 0, False, 1)
    else:
        _logsumexp(<const uint16_t *>cnp.PyArray_DATA(a), size // C, C, 1, C, 1, 1,
                   <uint16_t *>cnp.PyArray_DATA(<cnp.ndarray>out), 1, 1, NULL, 1, 1,
                   NULL, 0, 0, 0, False, 1)
    # a 0-d result as a NumPy scalar (PyArray_Return would steal the reference)
    return out[()] if axis is None or nd == 1 else out


def lse_states(x, states, int n_threads=1):
    """The log-sum-exp state of each row of a 2-d x, as the row kernels keep
    it: states[3 r : 3 r + 3] = (m, k, s) of row x[r, :] -- its max (NaN
    ignored), the count of elements equal to it and the sum of exp(x - m)
    over the others, in float64.  The partial state of a row split over
    blocks (the Dask reductions): a state whose m or s is not finite (a NaN,
    an infinity, only -inf) is to be formed otherwise.

    x: float64, float32 or float16, any strides, C > 0 (IN); states: a
    float64 array of 3 R elements (OUT).
    """
    cdef fx_view xv, sv
    _input_view(x, &xv, 1, 1)
    if xv.n[2] != 1 or xv.n[1] == 0:
        raise ValueError("lse_states: a 2-d input with at least one column is expected")
    _doubles(states, &sv, 3 * xv.n[0])
    if xv.itemsize == 8:
        _lse_states(<const double *>xv.p, &xv, <double *>sv.p, sv.s[1], n_threads)
    elif xv.itemsize == 4:
        _lse_states(<const float *>xv.p, &xv, <double *>sv.p, sv.s[1], n_threads)
    else:
        _lse_states(<const uint16_t *>xv.p, &xv, <double *>sv.p, sv.s[1], n_threads)


cdef int _lse_states(const real *xp, const fx_view *x, double *sp, Py_ssize_t ss,
                     int n_threads) except -1:
    cdef Py_ssize_t R = x.n[0], C = x.n[1], so = x.s[0], sc = x.s[1], r, nb, b0 = 0, b1
    cdef fx_lse_state st
    cdef int nt = _threads(n_threads, R * C)
    nb = _batch(C, nt, 1)
    while b0 < R:
        b1 = _next_batch(b0, R, nb)
        with nogil:
            for r in prange(b0, b1, num_threads=nt, schedule='guided'):
                st = _row_state(xp + r * so, C, sc)
                sp[3 * r * ss] = st.m
                sp[(3 * r + 1) * ss] = st.k
                sp[(3 * r + 2) * ss] = st.s
        b0 = b1
    return 0


cdef int _logsumexp_views(real *kind, const fx_view *x, const fx_view *o, const fx_view *g,
                          const fx_view *b, bint want_sign, int n_threads) except -1:
    """_logsumexp on the views, for the storage type of `kind` (a NULL of it)."""
    return _logsumexp(<const real *>x.p, x.n[0], x.n[1], x.n[2], x.s[0], x.s[1], x.s[2],
                      <real *>o.p, o.s[0], o.s[2], <real *>g.p, g.s[0], g.s[2],
                      <const real *>b.p, b.s[0], b.s[1], b.s[2], want_sign, n_threads)


cdef int _logsumexp(const real *xp, Py_ssize_t O, Py_ssize_t C, Py_ssize_t I,
                    Py_ssize_t so, Py_ssize_t sc, Py_ssize_t si,
                    real *op, Py_ssize_t oso, Py_ssize_t osi,
                    real *gp, Py_ssize_t gso, Py_ssize_t gsi,
                    const real *bp, Py_ssize_t bso, Py_ssize_t bsc, Py_ssize_t bsi,
                    bint want_sign, int n_threads) except -1:
    cdef Py_ssize_t R = O * I, r, o, i, it, nch, c, w, i0, nblk, nb, b0 = 0, b1, per
    cdef double v, sg
    cdef double *scratch
    cdef fx_lse_state *states
    cdef fx_lse_state st
    cdef double small_scratch[FX_SMALL_SCRATCH + FX_ALIGN_SLACK]
    cdef double *one
    cdef int nt = _threads(n_threads, R * C)

    if bp == NULL and sc != 1 and si == 1 and I > 1:
        # cols: blocks of COL_W rows that are neighbours along inner
        nblk = (I + COL_W - 1) // COL_W
        scratch = <double *>malloc(nt * 6 * COL_W * sizeof(double))
        if scratch == NULL:
            raise no_memory(<double>(nt * 6 * COL_W * sizeof(double)))
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
            # one call per batch of rows; no thread team, scratch on the
            # stack, cleared where small_lse uses it (all of it, 34 KB, was
            # a quarter of a 16-row call's time)
            memset(small_scratch, 0, (FX_SMALL_SCRATCH_OF(C) + FX_ALIGN_SLACK) * sizeof(double))
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
            # per thread: the part of FX_SMALL_SCRATCH a block of C
            # classes uses (a multiple of 8 doubles)
            per = FX_SMALL_SCRATCH_OF(C)
            scratch = <double *>calloc(nt * per + FX_ALIGN_SLACK, sizeof(double))
            if scratch == NULL:
                raise no_memory(<double>((nt * per + FX_ALIGN_SLACK) * sizeof(double)))
            nb = _batch(C * FX_BLOCK_W, nt, 1)
            try:
                while b0 < nblk:
                    b1 = _next_batch(b0, nblk, nb)
                    with nogil:
                        for it in prange(b0, b1, num_threads=nt, schedule='guided'):
                            i0 = it * FX_BLOCK_W
                            _small_lse(xp + i0 * so, R - i0 if R - i0 < FX_BLOCK_W else FX_BLOCK_W,
                                       C, so,
                                       fx_align64(scratch) + threadid() * per,
                                       want_sign, op + i0 * oso, oso,
                                       gp + i0 * gso if gp != NULL else NULL, gso)
                    b0 = b1
            finally:
                free(scratch)
    elif bp == NULL and _use_split(R, C, nt):
        nch = (C + FX_CHUNK - 1) // FX_CHUNK
        states = <fx_lse_state *>malloc(R * nch * sizeof(fx_lse_state))
        if states == NULL:
            raise no_memory(<double>(R * nch * sizeof(fx_lse_state)))
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
                        v = fx_lse_naive(_naive(xp + o * so + i * si, C, sc, NULL, 0), want_sign, &sg)
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


cdef inline const real *_row_after(const real *xp, Py_ssize_t r, Py_ssize_t end, Py_ssize_t I,
                                   Py_ssize_t so, Py_ssize_t si) noexcept nogil:
    # row r + 1 of the (O, C, I) layout, the row a thread of a guided prange
    # usually takes after r (a prefetch address only), or NULL past end
    if r + 1 >= end:
        return NULL
    cdef Py_ssize_t o = (r + 1) // I
    return xp + o * so + (r + 1 - o * I) * si


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
    # scratch: COL_W working-type maxima, 3 * COL_W doubles, the results
    cdef double *res = scratch + 4 * COL_W
    cdef double *sgs = scratch + 5 * COL_W
    cdef Py_ssize_t i
    _col_lse(x, C, sc, w, scratch, scratch + COL_W, want_sign, res, sgs)
    for i in range(w):
        _put(&op[i * osi], res[i])
        if gp != NULL:
            _put(&gp[i * gsi], sgs[i])


# ---- softmax and log_softmax ----

def softmax(x, out, bint logarithm=False, int n_threads=1, int lo=1, int hi=1):
    """out = softmax(x) (log_softmax(x) when logarithm) over the axes lo..hi.

    x: non-empty operand, read as (outer, C, inner) (see _view; IN); out:
    same lengths (OUT).
    """
    cdef fx_view xv, ov
    _input_view(x, &xv, lo, hi)
    _like(out, &ov, &xv, lo, hi, False, True)
    if xv.itemsize == 8:
        _softmax_views(<double *>NULL, &xv, &ov, logarithm, n_threads)
    elif xv.itemsize == 4:
        _softmax_views(<float *>NULL, &xv, &ov, logarithm, n_threads)
    else:
        _softmax_views(<uint16_t *>NULL, &xv, &ov, logarithm, n_threads)


def softmax_small(x, axis, bint logarithm):
    """softmax(x, axis) (log_softmax when logarithm) as the public function
    returns it, for the common small call: x an ndarray (not a subclass) of
    float64, float32 or float16, C-ordered, aligned, in native byte order,
    of at most MIN_WORK_PER_THREAD elements (one thread, whatever the
    default) and at least one, over its last axis (axis -1 or ndim - 1; or
    None, the whole array as one row).  None for any other call, which goes
    through the layout layer instead.

    The same driver call, with the same lengths and strides, as the layout
    layer makes for such an x (its dims merge into (rows, C), rows outer),
    into a new C-ordered array as empty_like_layout makes it: the same bits,
    without the checks and the planning that a 1 x 10 call spends most of
    its time in (about 0.6 of 1.1 us).
    """
    cdef cnp.ndarray a
    cdef int nd, t = _small_operand(x, MIN_WORK_PER_THREAD)
    cdef Py_ssize_t size, C
    if t < 0:
        return None
    a = <cnp.ndarray>x
    nd = cnp.PyArray_NDIM(a)
    size = cnp.PyArray_SIZE(a)
    if nd == 0:
        return None
    if axis is None:
        C = size
    elif PyLong_CheckExact(axis) and (axis == -1 or axis == nd - 1):
        C = cnp.PyArray_DIMS(a)[nd - 1]
    else:
        return None
    out = cnp.PyArray_EMPTY(nd, cnp.PyArray_DIMS(a), t, 0)
    if t == cnp.NPY_FLOAT64:
        _softmax(<const double *>cnp.PyArray_DATA(a), size // C, C, 1, C, 1, 1,
                 <double *>cnp.PyArray_DATA(<cnp.ndarray>out), C, 1, 1, logarithm, 1)
    elif t == cnp.NPY_FLOAT32:
        _softmax(<const float *>cnp.PyArray_DATA(a), size // C, C, 1, C, 1, 1,
                 <float *>cnp.PyArray_DATA(<cnp.ndarray>out), C, 1, 1, logarithm, 1)
    else:
        _softmax(<const uint16_t *>cnp.PyArray_DATA(a), size // C, C, 1, C, 1, 1,
                 <uint16_t *>cnp.PyArray_DATA(<cnp.ndarray>out), C, 1, 1, logarithm, 1)
    return out


cdef int _softmax_views(real *kind, const fx_view *x, const fx_view *o, bint logarithm,
                        int n_threads) except -1:
    """_softmax on the views, for the storage type of `kind` (a NULL of it)."""
    return _softmax(<const real *>x.p, x.n[0], x.n[1], x.n[2], x.s[0], x.s[1], x.s[2],
                    <real *>o.p, o.s[0], o.s[1], o.s[2], logarithm, n_threads)


cdef int _softmax(const real *xp, Py_ssize_t O, Py_ssize_t C, Py_ssize_t I,
                  Py_ssize_t so, Py_ssize_t sc, Py_ssize_t si,
                  real *op, Py_ssize_t oso, Py_ssize_t osc, Py_ssize_t osi,
                  bint logarithm, int n_threads) except -1:
    cdef Py_ssize_t R = O * I, r, o, i, it, nch, c, ln, w, i0, nblk, nb, b0 = 0, b1, per
    cdef double m, k, tot, m_eff
    cdef double *scratch
    cdef fx_lse_state *states
    cdef fx_lse_state st
    cdef double *cmax
    cdef double *rmax
    cdef double *rm
    cdef double *rd
    cdef double small_scratch[FX_SMALL_SCRATCH + FX_ALIGN_SLACK]
    cdef double *one
    cdef double *mine
    cdef float *rowbuf
    cdef Py_ssize_t nbuf
    cdef int nt = _threads(n_threads, R * C)

    if sc != 1 and si == 1 and I > 1:
        nblk = (I + COL_W - 1) // COL_W
        scratch = <double *>malloc(nt * 4 * COL_W * sizeof(double))
        if scratch == NULL:
            raise no_memory(<double>(nt * 4 * COL_W * sizeof(double)))
        nb = _batch(C * COL_W, nt, 1)
        try:
            while b0 < O * nblk:
                b1 = _next_batch(b0, O * nblk, nb)
                with nogil:
                    for it in prange(b0, b1, num_threads=nt, schedule='guided'):
                        o = it // nblk
                        i0 = (it - o * nblk) * COL_W
                        w = I - i0 if I - i0 < COL_W else COL_W
                        # scratch: COL_W working-type maxima, then 3 * COL_W doubles
                        mine = scratch + threadid() * 4 * COL_W
                        _col_softmax(xp + o * so + i0, C, sc, w, mine, mine + COL_W,
                                     logarithm, op + o * oso + i0 * osi, osc, osi)
                b0 = b1
        finally:
            free(scratch)
    elif _use_small(R, C, sc, I):
        if nt == 1:
            # cleared where small_softmax uses it, as for logsumexp
            memset(small_scratch, 0, (FX_SMALL_SCRATCH_OF(C) + FX_ALIGN_SLACK) * sizeof(double))
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
            # per thread: the part of FX_SMALL_SCRATCH a block of C
            # classes uses (a multiple of 8 doubles)
            per = FX_SMALL_SCRATCH_OF(C)
            scratch = <double *>calloc(nt * per + FX_ALIGN_SLACK, sizeof(double))
            if scratch == NULL:
                raise no_memory(<double>((nt * per + FX_ALIGN_SLACK) * sizeof(double)))
            nb = _batch(C * FX_BLOCK_W, nt, 1)
            try:
                while b0 < nblk:
                    b1 = _next_batch(b0, nblk, nb)
                    with nogil:
                        for it in prange(b0, b1, num_threads=nt, schedule='guided'):
                            i0 = it * FX_BLOCK_W
                            _small_softmax(xp + i0 * so, R - i0 if R - i0 < FX_BLOCK_W else FX_BLOCK_W,
                                           C, so, fx_align64(scratch) + threadid() * per,
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
            raise no_memory(<double>(
                R * nch * sizeof(fx_lse_state) + (R * nch + 3 * R) * sizeof(double)))
        cmax = scratch                 # per chunk: max
        rmax = scratch + R * nch       # per row: max, shift, divisor or offset
        rm = rmax + R
        rd = rm + R
        # float16 through float32 (row_scratch): the sums of the rows
        # path (row_softmax_f32), each chunk through a float buffer
        rowbuf = NULL
        if not logarithm and _row_scratch(xp):
            rowbuf = <float *>malloc(nt * FX_CHUNK * sizeof(float))
            if rowbuf == NULL:
                free(states)
                free(scratch)
                raise no_memory(<double>(nt * FX_CHUNK * sizeof(float)))
        nb = _batch(FX_CHUNK, nt, 1)
        try:
            if logarithm or (not _stores_exp(xp) and rowbuf == NULL):
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
                            if isfinite(rmax[r]) and rowbuf != NULL:
                                states[it].s = _chunk_sumexp(
                                    xp + o * so + i * si + c * sc,
                                    C - c if C - c < FX_CHUNK else FX_CHUNK, sc, rmax[r],
                                    &states[it].k, rowbuf + threadid() * FX_CHUNK)
                            elif isfinite(rmax[r]):
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
            free(rowbuf)
    else:
        # a softmax whose dtype takes a float row of scratch per thread
        # (float16 through float32, see row_softmax_buf): a row, up to 2^20
        # floats (4 MiB a thread; longer rows compute exp twice)
        rowbuf = NULL
        nbuf = C if C < FX_ROW_SCRATCH_MAX else FX_ROW_SCRATCH_MAX
        if not logarithm and _row_scratch(xp):
            rowbuf = <float *>malloc(nt * nbuf * sizeof(float))
            if rowbuf == NULL:
                raise no_memory(<double>(nt * nbuf * sizeof(float)))
        nb = _batch(C, nt, 1)
        try:
            while b0 < R:
                b1 = _next_batch(b0, R, nb)
                with nogil:
                    if nt == 1:
                        for r in range(b0, b1):
                            o = r // I
                            i = r - o * I
                            if logarithm:
                                _row_log_softmax(xp + o * so + i * si, C, sc,
                                                 op + o * oso + i * osi, osc)
                            else:
                                _row_softmax_buf(xp + o * so + i * si, C, sc,
                                                 op + o * oso + i * osi, osc, rowbuf, nbuf,
                                                 _row_after(xp, r, b1, I, so, si))
                    else:
                        for r in prange(b0, b1, num_threads=nt, schedule='guided'):
                            o = r // I
                            i = r - o * I
                            if logarithm:
                                _row_log_softmax(xp + o * so + i * si, C, sc,
                                                 op + o * oso + i * osi, osc)
                            else:
                                _row_softmax_buf(xp + o * so + i * si, C, sc,
                                                 op + o * oso + i * osi, osc,
                                                 NULL if rowbuf == NULL
                                                 else rowbuf + threadid() * nbuf, nbuf,
                                                 _row_after(xp, r, b1, I, so, si))
                b0 = b1
        finally:
            free(rowbuf)
    return 0
