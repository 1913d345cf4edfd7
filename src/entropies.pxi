# Parallel drivers of the entropies of rows: softmax_entropy,
# softmax_cross_entropy / softmax_kl_div (from logits) and
# scipy.stats.entropy (from probabilities); the per-row arithmetic is in
# fx_entropies.h.
#
# Inputs are read as 3-d strided views (outer, C, inner), C the reduced axis
# (see _view), and the result as an (outer, inner) view; a row is x[o, :, i] at stride
# x.strides[1].  prange shares the outer*inner rows in contiguous runs
# (guided schedule), so neighbouring rows of a strided (column) layout
# mostly stay on one thread and share cache lines.  Python validates and allocates; nothing here
# raises but KeyboardInterrupt between batches of rows (_next_batch).

cimport cython
from cython.parallel cimport prange, threadid
from cpython.long cimport PyLong_CheckExact
from libc.stdlib cimport calloc, malloc, free

from fx_kernels cimport *

cdef inline void _entropies_row(int kind, Py_ssize_t r, Py_ssize_t I, Py_ssize_t C,
                                const real *xp, Py_ssize_t so, Py_ssize_t sc, Py_ssize_t si,
                                const real *yp, Py_ssize_t yo, Py_ssize_t yc, Py_ssize_t yi,
                                double div, real *op, Py_ssize_t oo, Py_ssize_t oi) noexcept nogil:
    """Row r (of outer * inner) of row_entropies, written to its place in op."""
    cdef Py_ssize_t o = r // I, i = r - (r // I) * I
    cdef double v
    if kind == 0:
        v = _softmax_entropy_row(xp + o * so + i * si, C, sc)
    elif kind == 3:
        v = _entropy_row(xp + o * so + i * si if xp != NULL else NULL, sc,
                         yp + o * yo + i * yi if yp != NULL else NULL, yc, C, div)
    else:
        v = _softmax_pair_row(xp + o * so + i * si, sc, yp + o * yo + i * yi, yc, C, kind == 2)
    _put(&op[o * oo + i * oi], v)



cdef inline void _entropy_cols(int kind, Py_ssize_t it, Py_ssize_t nblk, Py_ssize_t I,
                               Py_ssize_t C, const real *xp, Py_ssize_t so, Py_ssize_t sc,
                               const real *yp, Py_ssize_t yo, Py_ssize_t yc, double div,
                               real *op, Py_ssize_t oo, Py_ssize_t oi) noexcept nogil:
    """Block `it` (of O * nblk) of COL_W neighbouring rows of any kind (see
    row_entropies), rows along inner at unit stride, written to their
    places in op."""
    cdef Py_ssize_t o = it // nblk
    cdef Py_ssize_t i0 = (it - o * nblk) * COL_W
    cdef Py_ssize_t w = I - i0 if I - i0 < COL_W else COL_W, j
    cdef double res[COL_W]
    if kind == 0:
        _col_softmax_entropy(xp + o * so + i0, sc, C, w, res)
    elif kind < 3:
        _col_softmax_pair(xp + o * so + i0, sc, yp + o * yo + i0, yc, C, w, kind == 2, res)
    else:
        _col_entropy(xp + o * so + i0, sc, yp + o * yo + i0 if yp != NULL else NULL, yc, C, w,
                     div, res)
    for j in range(w):
        _put(&op[o * oo + (i0 + j) * oi], res[j])


cdef inline void _entropy_small_block(Py_ssize_t it, Py_ssize_t O, Py_ssize_t C, const real *xp,
                                      Py_ssize_t so, const real *yp, Py_ssize_t yo, double div,
                                      real *op, Py_ssize_t oo, double *res) noexcept nogil:
    """Block `it` of FX_BLOCK_W short rows of scipy.stats.entropy (see
    small_entropy), through res (FX_BLOCK_W doubles) to their places in op."""
    cdef Py_ssize_t r0 = it * FX_BLOCK_W, j
    cdef Py_ssize_t w = O - r0 if O - r0 < FX_BLOCK_W else FX_BLOCK_W
    _small_entropy(xp + r0 * so, yp + r0 * yo if yp != NULL else NULL, w, C, so, yo, div, res)
    for j in range(w):
        _put(&op[(r0 + j) * oo], res[j])


def entropy_states(int kind, x, y, states, int n_threads=1):
    """The state of each row of a 2-d x (and y) as the row kernels keep it,
    for a row split over blocks (the Dask reductions): kind 0,
    softmax_entropy: states[4 r : 4 r + 4] = (m, k, sum, T); kinds 1 and 2,
    the pair of rows: states[9 r : 9 r + 9] = softmax_pair_state's.  See
    fx_entropies.h.

    x, y: (R, C), C > 0, one float dtype, any strides (IN; y None for kind
    0); states: float64, 4 R or 9 R elements (OUT).
    """
    cdef fx_view xv, yv, sv
    cdef Py_ssize_t width = 4 if kind == 0 else 9
    _input_view(x, &xv, 1, 1)
    _like(y, &yv, &xv, 1, 1, False, False)
    if xv.n[2] != 1 or xv.n[1] == 0 or (y is None) != (kind == 0):
        raise ValueError("entropy_states: 2-d inputs with at least one column are expected, "
                         "y for kinds 1 and 2 only")
    _doubles(states, &sv, width * xv.n[0])
    if sv.s[1] != 1 and xv.n[0] > 1:
        raise ValueError("entropy_states: states must be contiguous")
    if xv.itemsize == 8:
        _entropy_states(<const double *>xv.p, <const double *>yv.p, &xv, &yv, kind,
                        <double *>sv.p, n_threads)
    elif xv.itemsize == 4:
        _entropy_states(<const float *>xv.p, <const float *>yv.p, &xv, &yv, kind,
                        <double *>sv.p, n_threads)
    else:
        _entropy_states(<const uint16_t *>xv.p, <const uint16_t *>yv.p, &xv, &yv, kind,
                        <double *>sv.p, n_threads)


cdef int _entropy_states(const real *xp, const real *yp, const fx_view *x, const fx_view *y,
                         int kind, double *sp, int n_threads) except -1:
    """entropy_states on the views; each row's state written in place (sp
    contiguous)."""
    cdef Py_ssize_t R = x.n[0], C = x.n[1], so = x.s[0], sc = x.s[1]
    cdef Py_ssize_t yo = y.s[0], yc = y.s[1], r, nb, b0 = 0, b1
    cdef int nt = _threads(n_threads, R * C)
    nb = _batch(C, nt, 1)
    while b0 < R:
        b1 = _next_batch(b0, R, nb)
        with nogil:
            for r in prange(b0, b1, num_threads=nt, schedule='guided'):
                if kind == 0:
                    _softmax_entropy_state(xp + r * so, C, sc, sp + 4 * r)
                else:
                    _softmax_pair_state(xp + r * so, sc, yp + r * yo, yc, C, sp + 9 * r)
        b0 = b1
    return 0


def row_entropies(int kind, x, y, out, double div=1.0, int n_threads=1, int lo=1, int hi=1):
    """One value per (outer, inner) row of x (and y), written to out (OUT).

    x, y: operands reduced over their axes lo..hi, read as (outer, C, inner)
    (see _view; IN; y may be None); out: one value per row.
    kind 0: softmax_entropy(x); 1: softmax_cross_entropy(x, y);
    2: softmax_kl_div(x, y); 3: scipy entropy of x (y None) or relative
    entropy of x to y, divided by div.  C must be > 0 for kinds 0-2.
    """
    cdef fx_view xv, yv, ov
    _input_view(x, &xv, lo, hi)
    _like(y, &yv, &xv, lo, hi, False, False)
    _like(out, &ov, &xv, lo, hi, True, True)
    if kind < 3 and (xv.n[1] == 0 or y is None and kind != 0 or y is not None and kind == 0):
        raise ValueError("row_entropies: kinds 0-2 take non-empty rows, and y for kinds 1 and 2")
    if xv.itemsize == 8:
        _row_entropies(<double *>NULL, kind, &xv, &yv, &ov, div, n_threads)
    elif xv.itemsize == 4:
        _row_entropies(<float *>NULL, kind, &xv, &yv, &ov, div, n_threads)
    else:
        _row_entropies(<uint16_t *>NULL, kind, &xv, &yv, &ov, div, n_threads)


def row_entropies_small(int kind, x, y, axis):
    """row_entropies(kind, x, y) (div 1) as the public functions return it:
    softmax_entropy(x, axis) (kind 0, y None), softmax_cross_entropy and
    softmax_kl_div (1, 2) and scipy's entropy(x, y, axis=axis) (3, y None or
    not, no base), for the common small call: x (and y) ndarrays (not
    subclasses) of one float dtype and one shape, of at least one dim and
    element, C-ordered, aligned, in native byte order, small enough for one
    thread (as logsumexp_small), reduced over the last axis given as a
    Python int (-1 or ndim - 1).  A NumPy scalar for 1-d x, else a new
    C-ordered array of the leading dims; None for any other call.

    The driver call the layout layer makes for such operands ((rows, C, 1)
    views), into the array _rows would make, without its checks and
    planning."""
    cdef cnp.ndarray a
    cdef fx_view xv, yv, ov
    cdef int nd, t = _small_operand(x, MIN_WORK_PER_THREAD)
    cdef Py_ssize_t C
    if t < 0 or (y is not None if kind == 0 else y is None and kind != 3):
        return None
    a = <cnp.ndarray>x
    nd = cnp.PyArray_NDIM(a)
    if nd == 0 or not PyLong_CheckExact(axis) or not (axis == -1 or axis == nd - 1):
        return None
    if y is not None and (_small_operand(y, MIN_WORK_PER_THREAD) != t
                          or not cnp.PyArray_SAMESHAPE(a, <cnp.ndarray>y)):
        return None
    C = cnp.PyArray_DIMS(a)[nd - 1]
    out = cnp.PyArray_EMPTY(nd - 1, cnp.PyArray_DIMS(a), t, 0)
    _rows_view(x, &xv, C)
    if y is None:
        _none_view(&yv)
    else:
        _rows_view(y, &yv, C)
    _rows_view(out, &ov, 1)
    if t == cnp.NPY_FLOAT64:
        _row_entropies(<double *>NULL, kind, &xv, &yv, &ov, 1.0, 1)
    elif t == cnp.NPY_FLOAT32:
        _row_entropies(<float *>NULL, kind, &xv, &yv, &ov, 1.0, 1)
    else:
        _row_entropies(<uint16_t *>NULL, kind, &xv, &yv, &ov, 1.0, 1)
    # a 0-d result as a NumPy scalar, as _rows returns it
    return out if nd > 1 else out[()]


cdef int _row_entropies(real *tag, int kind, const fx_view *x, const fx_view *y,
                        const fx_view *out, double div, int n_threads) except -1:
    """row_entropies on the views, for the storage type of `tag` (a NULL of it)."""
    cdef Py_ssize_t O = x.n[0], C = x.n[1], I = x.n[2]
    cdef Py_ssize_t so = x.s[0], sc = x.s[1], si = x.s[2]
    cdef Py_ssize_t yo = y.s[0], yc = y.s[1], yi = y.s[2]
    cdef Py_ssize_t oo = out.s[0], oi = out.s[2]
    cdef const real *xp = <const real *>x.p if C > 0 else NULL
    cdef const real *yp = <const real *>y.p if C > 0 else NULL
    cdef real *op = <real *>out.p
    cdef Py_ssize_t r
    cdef int nt = _threads(n_threads, O * I * (C if C > 0 else 1))
    if yp == NULL:
        yo = yc = yi = 0
    cdef Py_ssize_t nblk, it, r0, w, nb, b0 = 0, b1
    # small_entropies' scratch per thread, a multiple of 8 doubles (cache
    # lines)
    cdef Py_ssize_t per = FX_SMALL_ENT_SCRATCH_OF(C)
    cdef double *scratch
    if sc != 1 and si == 1 and I > 1 and C > 0 and (yp == NULL or yi == 1):
        # columns: COL_W neighbouring rows (along inner) side by side
        nblk = (I + COL_W - 1) // COL_W
        nb = _batch(C * COL_W, nt, 1)
        while b0 < O * nblk:
            b1 = _next_batch(b0, O * nblk, nb)
            with nogil:
                if nt == 1:
                    for it in range(b0, b1):
                        _entropy_cols(kind, it, nblk, I, C, xp, so, sc, yp, yo, yc, div, op,
                                      oo, oi)
                else:
                    for it in prange(b0, b1, num_threads=nt, schedule='guided'):
                        _entropy_cols(kind, it, nblk, I, C, xp, so, sc, yp, yo, yc, div, op,
                                      oo, oi)
            b0 = b1
        return 0
    if kind < 3 and _use_small(O * I, C, sc, I) and (kind == 0 or yc == 1):
        # many short rows: FX_BLOCK_W rows side by side (see small_entropies)
        nblk = (O + FX_BLOCK_W - 1) // FX_BLOCK_W
        scratch = <double *>calloc(nt * per + FX_ALIGN_SLACK, sizeof(double))
        if scratch == NULL:
            raise no_memory(<double>((nt * per + FX_ALIGN_SLACK) * sizeof(double)))
        nb = _batch(FX_BLOCK_W * C, nt, 1)
        try:
            while b0 < nblk:
                b1 = _next_batch(b0, nblk, nb)
                with nogil:
                    for it in prange(b0, b1, num_threads=nt, schedule='guided'):
                        r0 = it * FX_BLOCK_W
                        w = O - r0 if O - r0 < FX_BLOCK_W else FX_BLOCK_W
                        _small_entropies(xp + r0 * so, yp + r0 * yo if yp != NULL else NULL, w,
                                         C, so, yo, kind,
                                         fx_align64(scratch) + threadid() * per,
                                         op + r0 * oo, oo)
                b0 = b1
        finally:
            free(scratch)
        return 0
    if kind == 3 and C > 0 and _use_small_ent(O * I, C, sc, I) and (yp == NULL or yc == 1):
        # scipy.stats.entropy of many short rows: FX_BLOCK_W rows side by
        # side (see small_entropy)
        nblk = (O + FX_BLOCK_W - 1) // FX_BLOCK_W
        scratch = <double *>malloc((nt * FX_BLOCK_W + FX_ALIGN_SLACK) * sizeof(double))
        if scratch == NULL:
            raise no_memory(<double>((nt * FX_BLOCK_W + FX_ALIGN_SLACK) * sizeof(double)))
        nb = _batch(FX_BLOCK_W * C, nt, 1)
        try:
            while b0 < nblk:
                b1 = _next_batch(b0, nblk, nb)
                with nogil:
                    for it in prange(b0, b1, num_threads=nt, schedule='guided'):
                        _entropy_small_block(it, O, C, xp, so, yp, yo, div, op, oo,
                                             fx_align64(scratch) + threadid() * FX_BLOCK_W)
                b0 = b1
        finally:
            free(scratch)
        return 0
    if kind == 3 and C > 0 and _use_split(O * I, C, nt):
        # scipy.stats.entropy of a few long rows: their chunks shared
        return _split_entropy(xp, yp, O, C, I, so, sc, si, yo, yc, yi, div, op, oo, oi, nt)
    if kind < 3 and _use_split(O * I, C, nt):
        # fewer rows than threads, and long ones: FX_CHUNK-element chunks
        # shared, their states merged in order as a single-thread row does
        return _split_softmax_entropies(kind, xp, yp, O, C, I, so, sc, si, yo, yc, yi, op,
                                        oo, oi, nt)
    nb = _batch(C, nt, 1)
    if nt == 1 and O * I * C <= KEEP_GIL_WORK:
        for r in range(O * I):
            _entropies_row(kind, r, I, C, xp, so, sc, si, yp, yo, yc, yi, div, op, oo, oi)
        return 0
    while b0 < O * I:
        b1 = _next_batch(b0, O * I, nb)
        with nogil:
            if nt == 1:
                # a thread team costs about a microsecond even for one thread
                for r in range(b0, b1):
                    _entropies_row(kind, r, I, C, xp, so, sc, si, yp, yo, yc, yi, div, op, oo, oi)
            else:
                for r in prange(b0, b1, num_threads=nt, schedule='guided'):
                    _entropies_row(kind, r, I, C, xp, so, sc, si, yp, yo, yc, yi, div, op, oo, oi)
        b0 = b1
    return 0


cdef int _split_entropy(const real *xp, const real *yp, Py_ssize_t O, Py_ssize_t C,
                        Py_ssize_t I, Py_ssize_t so, Py_ssize_t sc, Py_ssize_t si, Py_ssize_t yo,
                        Py_ssize_t yc, Py_ssize_t yi, double div, real *op, Py_ssize_t oo,
                        Py_ssize_t oi, int nt) except -1:
    """scipy.stats.entropy (yp NULL) or the relative entropy of rows cut into
    FX_CHUNK-element chunks shared among nt threads: the chunks' sums in
    parallel, the running sums of each row in order, the chunks' terms in
    parallel, each row's result folded in order -- entropy_row's
    arithmetic, so the bits of a row on one thread (fx_entropies.h).  A
    row that needs SciPy's special cases is redone by entropy_row_slow, as
    on one thread."""
    cdef Py_ssize_t R = O * I, nch = (C + FX_CHUNK - 1) // FX_CHUNK, it, r, c, o, i, nb, b0, b1
    cdef int has_q = yp != NULL
    cdef double v = 0.0
    # per row: the chunk sums (2 nch), the running sums (2 nch), the terms
    # (nch), the chunks' smallest positive and largest p (2 nch); per chunk
    # a flag: 0 sends the row to the slow path
    cdef double *work = <double *>malloc(R * 7 * nch * sizeof(double))
    cdef unsigned char *ok = <unsigned char *>malloc(2 * R * nch)
    cdef unsigned char *slow = <unsigned char *>calloc(R, 1)
    cdef unsigned char *take
    if work == NULL or ok == NULL or slow == NULL:
        free(work)
        free(ok)
        free(slow)
        raise no_memory(<double>(R * 7 * nch * sizeof(double) + 2 * R * nch + R))
    take = ok + R * nch
    nb = _batch(FX_CHUNK, nt, 1)
    try:
        b0 = 0
        while b0 < R * nch:
            b1 = _next_batch(b0, R * nch, nb)
            with nogil:
                for it in prange(b0, b1, num_threads=nt, schedule='guided'):
                    r = it // nch
                    c = it - r * nch
                    o = r // I
                    i = r - o * I
                    ok[it] = _entropy_split_sums(xp + o * so + i * si, sc,
                                                 yp + o * yo + i * yi if has_q else NULL, yc,
                                                 C, c, work + 7 * nch * r,
                                                 work + 7 * nch * r + 5 * nch) != 0
            b0 = b1
        for r in range(R):
            for c in range(nch):
                if not ok[r * nch + c]:
                    slow[r] = 1
            if not slow[r] and not fx_entropy_fold(work + 7 * nch * r, nch, has_q,
                                                   work + 7 * nch * r + 2 * nch,
                                                   take + r * nch, NULL, &v):
                slow[r] = 1
        b0 = 0
        while b0 < R * nch:
            b1 = _next_batch(b0, R * nch, nb)
            with nogil:
                for it in prange(b0, b1, num_threads=nt, schedule='guided'):
                    r = it // nch
                    c = it - r * nch
                    o = r // I
                    i = r - o * I
                    ok[it] = 1
                    if not slow[r] and take[it]:
                        ok[it] = _entropy_split_terms(xp + o * so + i * si, sc,
                                                      yp + o * yo + i * yi if has_q else NULL,
                                                      yc, C, c, work + 7 * nch * r + 2 * nch,
                                                      work + 7 * nch * r + 5 * nch,
                                                      work + 7 * nch * r + 4 * nch) != 0
            b0 = b1
        for r in range(R):
            o = r // I
            i = r - o * I
            for c in range(nch):
                if not ok[r * nch + c]:
                    slow[r] = 1
            if slow[r] or not fx_entropy_fold(work + 7 * nch * r, nch, has_q,
                                              work + 7 * nch * r + 2 * nch, NULL,
                                              work + 7 * nch * r + 4 * nch, &v):
                # the row as entropy_row gives it, slow path and all
                v = _entropy_row(xp + o * so + i * si, sc,
                                 yp + o * yo + i * yi if has_q else NULL, yc, C, div)
            elif div != 1.0:
                v = v / div
            _put(&op[o * oo + i * oi], v)
    finally:
        free(work)
        free(ok)
        free(slow)
    return 0


cdef int _split_softmax_entropies(int kind, const real *xp, const real *yp, Py_ssize_t O,
                                  Py_ssize_t C, Py_ssize_t I, Py_ssize_t so, Py_ssize_t sc,
                                  Py_ssize_t si, Py_ssize_t yo, Py_ssize_t yc, Py_ssize_t yi,
                                  real *op, Py_ssize_t oo, Py_ssize_t oi, int nt) except -1:
    """softmax_entropy (kind 0), softmax_cross_entropy (1) or softmax_kl_div
    (2) of rows cut into FX_CHUNK-element chunks, the chunks shared among
    nt threads (see softmax_entropy_row, softmax_pair_row)."""
    cdef Py_ssize_t R = O * I, nch = (C + FX_CHUNK - 1) // FX_CHUNK, it, r, c, o, i, nb, ln
    cdef Py_ssize_t w = 4 if kind == 0 else 9, b0 = 0, b1
    cdef double v
    cdef double *states = <double *>malloc(R * nch * w * sizeof(double))
    if states == NULL:
        raise no_memory(<double>(R * nch * w * sizeof(double)))
    nb = _batch(FX_CHUNK, nt, 1)
    try:
        while b0 < R * nch:
            b1 = _next_batch(b0, R * nch, nb)
            with nogil:
                for it in prange(b0, b1, num_threads=nt, schedule='guided'):
                    r = it // nch
                    c = (it - r * nch) * FX_CHUNK
                    o = r // I
                    i = r - o * I
                    ln = C - c if C - c < FX_CHUNK else FX_CHUNK
                    if kind == 0:
                        _softmax_entropy_state(xp + o * so + i * si + c * sc, ln, sc,
                                               states + w * it)
                    else:
                        _softmax_pair_state(xp + o * so + i * si + c * sc, sc,
                                            yp + o * yo + i * yi + c * yc, yc, ln,
                                            states + w * it)
            b0 = b1
        for r in range(R):
            for c in range(1, nch):
                if kind == 0:
                    fx_softmax_entropy_merge(states + w * r * nch, states + w * (r * nch + c))
                else:
                    fx_softmax_pair_merge(states + w * r * nch, states + w * (r * nch + c))
            if kind == 0:
                v = fx_softmax_entropy_finish(states + w * r * nch)
            else:
                v = fx_softmax_pair_finish(states + w * r * nch, kind == 2)
            o = r // I
            _put(&op[o * oo + (r - o * I) * oi], v)
    finally:
        free(states)
    return 0
