# Parallel drivers of the losses (class axis = axis 1 of the (outer, C, inner)
# view, see _view: PyTorch's (N, C) and (N, C, d1, ...) layouts without a
# copy).
#
# Reductions never depend on the thread count: per-row losses are summed in
# fixed blocks of ROWS_PER_PARTIAL rows, in row order, into `partial`, which
# the caller adds up in order.  Python validates weights and shapes; the
# labels' range is checked here, in one pass before anything is written
# (_check_labels), and a bad label is returned, not raised, for Python to name;
# nothing here raises but MemoryError and KeyboardInterrupt between batches
# (_next_batch).

cimport cython
from cython.parallel cimport prange, threadid
from libc.stdlib cimport malloc, calloc, free
from libc.stdint cimport int64_t
from libc.math cimport INFINITY, fabs

from fx_kernels cimport *

# rows per partial sum of a reduced loss: O(rows / 16) doubles, in a fixed
# order (so the sum does not depend on the thread count), and small enough
# that a few dozen rows still spread over the threads
DEF ROWS_PER_PARTIAL = 16

def rows_per_partial():
    return ROWS_PER_PARTIAL


cdef inline void _xent_rows(Py_ssize_t it, Py_ssize_t R, Py_ssize_t C, Py_ssize_t I,
                            const real *xp, Py_ssize_t so, Py_ssize_t sc, Py_ssize_t si,
                            const int64_t *tp, Py_ssize_t tso, Py_ssize_t tsi,
                            int64_t ignore_index, const real *qp, Py_ssize_t qso,
                            Py_ssize_t qsc, Py_ssize_t qsi, const real *wp, Py_ssize_t ws,
                            double eps, real *gp, Py_ssize_t gso, Py_ssize_t gsc, Py_ssize_t gsi,
                            double gscale, real *lp, Py_ssize_t lso, Py_ssize_t lsi,
                            double *pp, double *bscratch, float *rowbuf) noexcept nogil:
    """The rows of block `it` (ROWS_PER_PARTIAL rows of the outer * inner):
    their losses to lp, or their sum to pp[it].  rowbuf: C floats of the
    thread's scratch for row_xent, or NULL."""
    cdef Py_ssize_t r, o, i
    cdef Py_ssize_t r1 = (it + 1) * ROWS_PER_PARTIAL
    cdef double acc = 0.0, v
    cdef int64_t y
    if r1 > R:
        r1 = R
    for r in range(it * ROWS_PER_PARTIAL, r1):
        o = r // I
        i = r - o * I
        y = tp[o * tso + i * tsi] if tp != NULL else -1
        v = _row_xent(xp + o * so + i * si, C, sc, -1 if y == ignore_index else y,
                      qp + o * qso + i * qsi if qp != NULL else NULL, qsc,
                      wp, ws, eps,
                      gp + o * gso + i * gsi if gp != NULL else NULL, gsc,
                      gscale, bscratch, rowbuf)
        if lp != NULL:
            _put(&lp[o * lso + i * lsi], v)
        else:
            acc = acc + v
    if pp != NULL:
        pp[it] = acc

def cross_entropy(x, labels, int64_t ignore_index, probs, weight, double eps, grad,
                  double gscale, loss_rows, partial, int n_threads=1, int lo=1, int hi=1,
                  bint mean=False):
    """Cross-entropy of every (outer, inner) row of x: returns (the sum of
    the only partial sum or 0.0, the target-weight denominator, the flat
    index of the first bad label or -1).

    x: logits whose class axes are lo..hi, read as (outer, C, inner) (see
    _view; IN).  The target is either labels, int64 class indices, one per
    row (IN), or probs, like x (IN; the other one None).  Labels are
    checked here, before anything is written: each must be in [0, C) or
    equal ignore_index (an ignored row); the first that is neither is
    returned as its flat index (C order of the rows) and nothing else is
    done.  With labels the denominator of 'mean' is returned too: with
    `mean`, the summed weight of the counted rows (their number without
    weights), added in row order, else their number; and with `mean` the
    gradient's factor is 1 / that denominator
    (inf for 0, as PyTorch's 1 / 0) instead of gscale.  weight: (C,) or None
    (IN).  grad: like x or None (OUT: the gradient times gscale).
    loss_rows: per-row losses (OUT), or None and then partial: the sums of
    blocks of rows_per_partial() rows (OUT), or None for rows of one block,
    whose sum is returned (see _partials).
    """
    cdef fx_view xv, lv, qv, wv, gv, rv, pv
    cdef double one = 0.0, denom = 0.0
    cdef Py_ssize_t bad
    _input_view(x, &xv, lo, hi)
    _like(probs, &qv, &xv, lo, hi, False, False)
    _like(grad, &gv, &xv, lo, hi, False, True)
    _like(loss_rows, &rv, &xv, lo, hi, True, True)
    if (labels is None) == (probs is None):
        raise ValueError("cross_entropy: either labels or probs")
    _none_view(&lv)
    if labels is not None:
        _view(labels, &lv, xv.nd, lo, hi, True, False)
        if ((lv.code != b'l' and lv.code != b'q') or lv.itemsize != 8
                or lv.n[0] != xv.n[0] or lv.n[2] != xv.n[2]):
            raise ValueError("cross_entropy: int64 labels, one per row, are expected")
    _none_view(&wv)
    if weight is not None:
        _view(weight, &wv, 1, 0, 0, False, False)
        if wv.itemsize != xv.itemsize or wv.code not in b"dfeH" or wv.n[1] != xv.n[1]:
            raise ValueError("cross_entropy: one weight per class, of the logits' type")
    _none_view(&pv)
    if loss_rows is None:
        _partials(partial, &pv, (xv.n[0] * xv.n[2] + ROWS_PER_PARTIAL - 1) // ROWS_PER_PARTIAL,
                  &one)
    if xv.itemsize == 8:
        bad = _cross_entropy(<double *>NULL, &xv, &lv, ignore_index, &qv, &wv, eps, &gv, gscale,
                             mean, &rv, &pv, n_threads, &denom)
    elif xv.itemsize == 4:
        bad = _cross_entropy(<float *>NULL, &xv, &lv, ignore_index, &qv, &wv, eps, &gv, gscale,
                             mean, &rv, &pv, n_threads, &denom)
    else:
        bad = _cross_entropy(<uint16_t *>NULL, &xv, &lv, ignore_index, &qv, &wv, eps, &gv,
                             gscale, mean, &rv, &pv, n_threads, &denom)
    return one, denom, bad


def cross_entropy_small(x, labels, int64_t ignore_index, int mode, bint return_grad=False,
                        grad_out=None):
    """cross_entropy(x, labels, ignore_index=ignore_index) without weights
    or smoothing, for the common small call: x an (N, C) array that
    _small_operand takes (one thread), labels an ndarray (not a subclass)
    of N native int64, C-ordered and aligned; mode 0 'sum', 1 'mean', 2
    'none'.  Returns the per-row losses (a new array, 'none'), or the
    loss's sum and 'mean' denominator (the counted rows) of its one block of
    rows (a reduced loss of at most ROWS_PER_PARTIAL rows); with
    `return_grad`, that and the gradient: written to `grad_out` (an ndarray,
    not a subclass, of x's dtype and shape, C-ordered, aligned, writable,
    sharing no byte with x or labels) or to a new C-ordered array.  None
    for any other call (also where a new array would not keep x's dtype
    metadata, as the usual path's do), and where a label is out of range
    (the layout layer's path raises the error; nothing was written).

    The driver call the layout layer makes for such operands (class_views
    of C-ordered (N, C) logits: lo = hi = 1), without its checks and
    planning."""
    cdef fx_view xv, lv, none, rv, pv, gv
    cdef cnp.ndarray a, lab
    cdef double one = 0.0, denom = 0.0
    cdef Py_ssize_t bad, N, C
    cdef int t = _small_operand(x, MIN_WORK_PER_THREAD)
    if t < 0 or cnp.PyArray_NDIM(<cnp.ndarray>x) != 2 or not cnp.PyArray_CheckExact(labels):
        return None
    a = <cnp.ndarray>x
    lab = <cnp.ndarray>labels
    N = cnp.PyArray_DIMS(a)[0]
    C = cnp.PyArray_DIMS(a)[1]
    if (cnp.PyArray_TYPE(lab) != cnp.NPY_INT64 or cnp.PyArray_NDIM(lab) != 1
            or cnp.PyArray_DIMS(lab)[0] != N or not cnp.PyArray_ISCARRAY_RO(lab)
            or (mode != 2 and N > ROWS_PER_PARTIAL)):
        return None
    if ((mode == 2 or return_grad and grad_out is None)
            and (<cnp.dtype>cnp.PyArray_DESCR(a)).metadata is not None):
        return None   # the usual path's new arrays keep x's dtype with its metadata
    grad = None
    if return_grad:
        if grad_out is None:
            grad = cnp.PyArray_EMPTY(2, cnp.PyArray_DIMS(a), t, 0)
        elif (not cnp.PyArray_CheckExact(grad_out) or cnp.PyArray_TYPE(<cnp.ndarray>grad_out) != t
              or not cnp.PyArray_SAMESHAPE(a, <cnp.ndarray>grad_out)
              or not cnp.PyArray_ISCARRAY(<cnp.ndarray>grad_out)
              or _overlap(<cnp.ndarray>grad_out, a) or _overlap(<cnp.ndarray>grad_out, lab)):
            return None   # the usual path's checks, errors and buffers
        else:
            grad = grad_out
    _rows_view(x, &xv, C)           # (N, C, 1)
    _rows_view(labels, &lv, 1)      # one per row: (N, 1, 1)
    _none_view(&none)
    if grad is None:
        _none_view(&gv)
    else:
        _rows_view(grad, &gv, C)
    rows = None
    if mode == 2:
        # zeros as the layout layer makes them
        rows = cnp.PyArray_ZEROS(1, cnp.PyArray_DIMS(a), t, 0)
        _rows_view(rows, &rv, 1)
        _none_view(&pv)
    else:
        _none_view(&rv)
        _partials(None, &pv, 1, &one)
    if t == cnp.NPY_FLOAT64:
        bad = _cross_entropy(<double *>NULL, &xv, &lv, ignore_index, &none, &none, 0.0, &gv,
                             1.0, mode == 1, &rv, &pv, 1, &denom)
    elif t == cnp.NPY_FLOAT32:
        bad = _cross_entropy(<float *>NULL, &xv, &lv, ignore_index, &none, &none, 0.0, &gv,
                             1.0, mode == 1, &rv, &pv, 1, &denom)
    else:
        bad = _cross_entropy(<uint16_t *>NULL, &xv, &lv, ignore_index, &none, &none, 0.0, &gv,
                             1.0, mode == 1, &rv, &pv, 1, &denom)
    if bad >= 0:
        return None
    r = rows if mode == 2 else (one, denom)
    return (r, grad) if return_grad else r


cdef inline bint _overlap(cnp.ndarray a, cnp.ndarray b) noexcept:
    """Whether the bytes of C-ordered arrays a and b (one run each) meet."""
    cdef char *pa = <char *>cnp.PyArray_DATA(a)
    cdef char *pb = <char *>cnp.PyArray_DATA(b)
    return pa < pb + cnp.PyArray_NBYTES(b) and pb < pa + cnp.PyArray_NBYTES(a)


cdef inline double _as_double(const real *p) noexcept nogil:
    """*p as a double (float16 from its bits)."""
    if real is uint16_t:
        return fx_half_to_float(p[0])
    else:
        return p[0]


cdef Py_ssize_t _check_labels(const int64_t *tp, Py_ssize_t O, Py_ssize_t I, Py_ssize_t tso,
                              Py_ssize_t tsi, Py_ssize_t C, int64_t ignore_index,
                              const real *wp, Py_ssize_t ws, bint wsum,
                              double *denom) noexcept nogil:
    """The flat index (o * I + i) of the first label neither in [0, C) nor
    ignore_index, or -1; denom: with weights and `wsum` (the 'mean'
    reduction), the summed weight of the other labels' classes, else their
    number.  O(rows) passes over the labels, before the logits are read: a
    bad label stops the call before anything is written.  The weights are
    summed in row order with Neumaier's compensation (an error of about one
    rounding whatever the number of rows, where a plain sum of two million
    rows loses 1e-11) and scaled by 2^-8, so that no partial sum overflows
    where the total does not; the same on any thread count."""
    cdef Py_ssize_t o, i, n = 0, k
    cdef int64_t y
    cdef double s = 0.0, comp = 0.0, v, t
    cdef bint ok = True, summing = wp != NULL and wsum
    if not summing:
        # the range alone, in a loop that vectorizes: the usual case ends
        # here, and the exact loop below only finds the first bad label.
        # Only 'mean' needs the weights' sum, a serial chain of additions
        # (a quarter of a weighted call's time at 1000000 x 10)
        if I == 1:
            ok = fx_labels_in_range(tp, O, tso, C, ignore_index, &n)
        else:
            for o in range(O):
                ok = ok and fx_labels_in_range(tp + o * tso, I, tsi, C, ignore_index, &k)
                n += k
        if ok:
            denom[0] = <double>n
            return -1
        n = 0
    for o in range(O):
        for i in range(I):
            y = tp[o * tso + i * tsi]
            if y == ignore_index:
                continue
            if y < 0 or y >= C:
                return o * I + i
            if summing:
                v = _as_double(wp + y * ws) * (1.0 / 256.0)
                t = s + v
                if fabs(s) >= fabs(v):
                    comp = comp + ((s - t) + v)
                else:
                    comp = comp + ((v - t) + s)
                s = t
            else:
                n += 1
    if not summing:
        denom[0] = <double>n
    else:
        # a sum that is not finite (an infinite or NaN weight) left NaN in
        # the compensation: the sum alone
        denom[0] = ((s + comp) if s - s == 0.0 else s) * 256.0
    return -1


cdef Py_ssize_t _cross_entropy(real *tag, const fx_view *x, const fx_view *lab,
                               int64_t ignore_index, const fx_view *probs,
                               const fx_view *weight, double eps, const fx_view *grad,
                               double gscale, bint mean, const fx_view *rows,
                               const fx_view *partial, int n_threads, double *denom) except -2:
    """cross_entropy on the views, for the storage type of `tag` (a NULL of
    it): the first bad label's flat index, or -1 (see cross_entropy)."""
    cdef Py_ssize_t O = x.n[0], C = x.n[1], I = x.n[2]
    cdef Py_ssize_t so = x.s[0], sc = x.s[1], si = x.s[2]
    cdef Py_ssize_t tso = lab.s[0], tsi = lab.s[2]
    cdef Py_ssize_t qso = probs.s[0], qsc = probs.s[1], qsi = probs.s[2]
    cdef Py_ssize_t gso = grad.s[0], gsc = grad.s[1], gsi = grad.s[2]
    cdef Py_ssize_t lso = rows.s[0], lsi = rows.s[2], ws = weight.s[1]
    cdef const real *xp = <const real *>x.p
    cdef const int64_t *tp = <const int64_t *>lab.p
    cdef const real *qp = <const real *>probs.p
    cdef const real *wp = <const real *>weight.p
    cdef real *gp = <real *>grad.p
    cdef real *lp = <real *>rows.p
    cdef double *pp = <double *>partial.p if rows.p == NULL else NULL
    # row_xent's scratch of a row (its blocks' sums, its chunks' states)
    cdef Py_ssize_t R = O * I, nb = FX_XENT_SCRATCH(C)
    cdef Py_ssize_t nblk = (R + ROWS_PER_PARTIAL - 1) // ROWS_PER_PARTIAL, it
    cdef Py_ssize_t nbat, b0 = 0, b1
    cdef double *bscratch
    cdef int nt = _threads(n_threads, R * C)
    cdef Py_ssize_t bad
    if tp != NULL:
        if R <= KEEP_GIL_WORK:
            bad = _check_labels(tp, O, I, tso, tsi, C, ignore_index, wp, ws, mean, denom)
        else:
            with nogil:
                bad = _check_labels(tp, O, I, tso, tsi, C, ignore_index, wp, ws, mean, denom)
        if bad >= 0:
            return bad
        if mean:
            gscale = 1.0 / denom[0] if denom[0] != 0.0 else INFINITY
    # the logits alone choose the path: a loss must not depend on the
    # gradient's layout
    if _use_split(R, C, nt):
        # fewer rows than threads, and long ones: their chunks shared
        _split_xent(xp, O, C, I, so, sc, si, tp, tso, tsi, ignore_index, qp, qso, qsc, qsi,
                    wp, ws, eps, gp, gso, gsc, gsi, gscale, lp, lso, lsi, pp, nt)
        return -1
    if tp != NULL and sc == 1 and I == 1 and _use_small(R, C, sc, I):
        _cross_entropy_short_rows(xp, R, C, so, tp, tso, ignore_index, wp, ws, eps,
                                  gp, gso, gsc, gscale, lp, lso, pp, nt)
        return -1
    if tp != NULL and sc != 1 and si == 1 and I > 1:
        _cross_entropy_columns(xp, O, C, I, so, sc, tp, tso, tsi, ignore_index, wp, ws, eps,
                               gp, gso, gsc, gsi, gscale, lp, lso, lsi, pp, nt)
        return -1
    # nb doubles per thread; a small call's on the stack (an allocation
    # costs about a tenth of a one-row call)
    cdef double local[12]
    # a row of floats per thread where row_xent keeps a float16 gradient's
    # exps (labels without smoothing, contiguous rows of up to 2^20 classes;
    # see xent_grad_kept): one exp per element
    cdef float *rowbuf = NULL
    cdef Py_ssize_t nrow = 0
    if (gp != NULL and _row_scratch(xp) and tp != NULL and eps == 0
            and sc == 1 and C <= FX_ROW_SCRATCH_MAX):
        nrow = C
        rowbuf = <float *>malloc(nt * nrow * sizeof(float))
        if rowbuf == NULL:
            raise no_memory(<double>(nt * nrow * sizeof(float)))
    bscratch = &local[0] if nt * nb <= 12 else <double *>malloc(nt * nb * sizeof(double))
    if bscratch == NULL:
        free(rowbuf)
        raise no_memory(<double>(nt * nb * sizeof(double)))
    nbat = _batch(ROWS_PER_PARTIAL * C, nt, 1)
    try:
        if nt == 1 and R * C <= KEEP_GIL_WORK:
            for it in range(nblk):
                _xent_rows(it, R, C, I, xp, so, sc, si, tp, tso, tsi, ignore_index,
                           qp, qso, qsc, qsi, wp, ws, eps, gp, gso, gsc, gsi, gscale,
                           lp, lso, lsi, pp, bscratch, rowbuf)
            b0 = nblk
        while b0 < nblk:
            b1 = _next_batch(b0, nblk, nbat)
            with nogil:
                if nt == 1:
                    # a thread team costs about a microsecond even for one thread
                    for it in range(b0, b1):
                        _xent_rows(it, R, C, I, xp, so, sc, si, tp, tso, tsi, ignore_index,
                                   qp, qso, qsc, qsi, wp, ws, eps, gp, gso, gsc, gsi, gscale,
                                   lp, lso, lsi, pp, bscratch, rowbuf)
                else:
                    for it in prange(b0, b1, num_threads=nt, schedule='guided'):
                        _xent_rows(it, R, C, I, xp, so, sc, si, tp, tso, tsi, ignore_index,
                                   qp, qso, qsc, qsi, wp, ws, eps, gp, gso, gsc, gsi, gscale,
                                   lp, lso, lsi, pp, bscratch + threadid() * nb,
                                   NULL if rowbuf == NULL else rowbuf + threadid() * nrow)
            b0 = b1
    finally:
        if bscratch != &local[0]:
            free(bscratch)
        free(rowbuf)
    return -1


cdef int _split_xent(const real *xp, Py_ssize_t O, Py_ssize_t C, Py_ssize_t I, Py_ssize_t so,
                     Py_ssize_t sc, Py_ssize_t si, const int64_t *tp, Py_ssize_t tso,
                     Py_ssize_t tsi, int64_t ignore_index, const real *qp, Py_ssize_t qso,
                     Py_ssize_t qsc, Py_ssize_t qsi, const real *wp, Py_ssize_t ws, double eps,
                     real *gp, Py_ssize_t gso, Py_ssize_t gsc, Py_ssize_t gsi, double gscale,
                     real *lp, Py_ssize_t lso, Py_ssize_t lsi, double *pp, int nt) except -1:
    """Rows cut into FX_CHUNK-element chunks shared among nt threads: the
    chunks' sums in parallel, each row's loss from them in order, the
    chunks' gradients in parallel -- row_xent's steps (fx_cross_entropy.h),
    so the bits are those of a row on one thread.  Losses go to lp, or their
    sums in the 16-row groups of the rows path to pp."""
    cdef Py_ssize_t R = O * I, nch = FX_XENT_NCH(C), per = FX_XENT_SCRATCH(C)
    cdef Py_ssize_t nbk = FX_XENT_NB(C), it, r, c, o, i, nb, b0, b1, grp
    cdef double acc
    cdef double *scratch = <double *>malloc(R * (per + 2) * sizeof(double))
    cdef fx_xent_row *info = <fx_xent_row *>malloc(R * sizeof(fx_xent_row))
    cdef Py_ssize_t *ys = <Py_ssize_t *>malloc(R * sizeof(Py_ssize_t))
    cdef double *xy
    cdef double *loss
    if scratch == NULL or info == NULL or ys == NULL:
        free(scratch)
        free(info)
        free(ys)
        raise no_memory(<double>(
            R * (per + 2) * sizeof(double) + R * sizeof(fx_xent_row) + R * sizeof(Py_ssize_t)))
    xy = scratch + R * per
    loss = xy + R
    try:
        # each row's label and logit there, before anything is written (the
        # gradient may be the logits)
        for r in range(R):
            o = r // I
            i = r - o * I
            ys[r] = -1
            xy[r] = 0.0
            if tp != NULL:
                ys[r] = -1 if tp[o * tso + i * tsi] == ignore_index else tp[o * tso + i * tsi]
                if ys[r] >= 0:
                    xy[r] = _as_double(xp + o * so + i * si + ys[r] * sc)
        nb = _batch(FX_CHUNK, nt, 1)
        b0 = 0
        while b0 < R * nch:
            b1 = _next_batch(b0, R * nch, nb)
            with nogil:
                for it in prange(b0, b1, num_threads=nt, schedule='guided'):
                    r = it // nch
                    c = it - r * nch
                    o = r // I
                    i = r - o * I
                    if tp == NULL or ys[r] >= 0:
                        _xent_chunks(xp + o * so + i * si, C, sc,
                                     qp + o * qso + i * qsi if qp != NULL else NULL, qsc,
                                     wp, ws, eps, gp + o * gso + i * gsi if gp != NULL else NULL,
                                     gsc, c, c + 1, scratch + r * per,
                                     scratch + r * per + 3 * nbk, NULL)
            b0 = b1
        for r in range(R):
            o = r // I
            i = r - o * I
            loss[r] = 0.0
            if tp == NULL or ys[r] >= 0:
                loss[r] = _xent_finish(xp + o * so + i * si, C, sc, ys[r], xy[r],
                                       qp + o * qso + i * qsi if qp != NULL else NULL, qsc,
                                       wp, ws, eps, gp + o * gso + i * gsi if gp != NULL else NULL,
                                       scratch + r * per, scratch + r * per + 3 * nbk, &info[r])
        if gp != NULL:
            b0 = 0
            while b0 < R * nch:
                b1 = _next_batch(b0, R * nch, nb)
                with nogil:
                    for it in prange(b0, b1, num_threads=nt, schedule='guided'):
                        r = it // nch
                        c = it - r * nch
                        o = r // I
                        i = r - o * I
                        if tp != NULL and ys[r] < 0:
                            # an ignored row: gradient 0 (row_xent's)
                            _fill(gp + o * gso + i * gsi + c * FX_CHUNK * gsc,
                                  min(FX_CHUNK, C - c * FX_CHUNK), gsc, 0.0)
                        else:
                            _xent_grad_chunks(xp + o * so + i * si, C, sc, ys[r],
                                              qp + o * qso + i * qsi if qp != NULL else NULL,
                                              qsc, wp, ws, eps, gp + o * gso + i * gsi, gsc,
                                              gscale, scratch + r * per, &info[r], c, c + 1,
                                              NULL)
                b0 = b1
        for r in range(R):
            o = r // I
            if lp != NULL:
                _put(&lp[o * lso + (r - o * I) * lsi], loss[r])
        if lp == NULL:
            for grp in range((R + ROWS_PER_PARTIAL - 1) // ROWS_PER_PARTIAL):
                acc = 0.0
                for r in range(grp * ROWS_PER_PARTIAL, min((grp + 1) * ROWS_PER_PARTIAL, R)):
                    acc = acc + loss[r]
                pp[grp] = acc
    finally:
        free(scratch)
        free(info)
        free(ys)
    return 0


# blocks of FX_BLOCK_W rows handed to one small_xent call: its set-up
# (per-class and per-row arrays) costs about as much as a block's rows
DEF SHORT_GROUP = 16


cdef void _cross_entropy_short_rows(const real *xp, Py_ssize_t R, Py_ssize_t C, Py_ssize_t so,
                                    const int64_t *tp, Py_ssize_t tso, int64_t ignore_index,
                                    const real *wp, Py_ssize_t ws, double eps,
                                    real *gp, Py_ssize_t gso, Py_ssize_t gsc, double gscale,
                                    real *lp, Py_ssize_t lso, double *pp, int nt):
    """Rows of at most FX_SMALL_C classes, FX_BLOCK_W at a time (see
    small_xent), SHORT_GROUP blocks per call; per-row losses are summed in
    the same 16-row groups as the rows path, so reductions keep their fixed
    order."""
    cdef Py_ssize_t rows = SHORT_GROUP * FX_BLOCK_W
    cdef Py_ssize_t nblk = (R + rows - 1) // rows, it, r0, n, j, grp
    cdef Py_ssize_t nb = _batch(HEAVY * rows * C, nt, 1), b0 = 0, b1
    # per thread, from a cache line: small_xent's per-row arrays and the
    # block's transposed logits (the part of FX_SMALL_SCRATCH it uses: a
    # small call clears no more), 3 (of 8) doubles for row_xent, the losses
    cdef Py_ssize_t nsc = FX_SMALL_SCRATCH_OF(C)
    cdef Py_ssize_t per = nsc + 8 + rows
    cdef double *scratch = <double *>calloc(nt * per + FX_ALIGN_SLACK, sizeof(double))
    cdef double *mine
    cdef double acc
    if scratch == NULL:
        raise no_memory(<double>((nt * per + FX_ALIGN_SLACK) * sizeof(double)))
    try:
        while b0 < nblk:
            b1 = _next_batch(b0, nblk, nb)
            with nogil:
                for it in prange(b0, b1, num_threads=nt, schedule='guided'):
                    r0 = it * rows
                    n = R - r0 if R - r0 < rows else rows
                    mine = fx_align64(scratch) + threadid() * per
                    _small_xent(xp + r0 * so, n, C, so, tp + r0 * tso, tso, ignore_index, wp, ws,
                                eps, gp + r0 * gso if gp != NULL else NULL, gso, gsc, gscale,
                                mine, mine + nsc, mine + nsc + 8)
                    if lp != NULL:
                        for j in range(n):
                            _put(&lp[(r0 + j) * lso], mine[nsc + 8 + j])
                    else:
                        for grp in range(0, n, ROWS_PER_PARTIAL):
                            acc = 0.0
                            for j in range(grp, min(grp + ROWS_PER_PARTIAL, n)):
                                acc = acc + mine[nsc + 8 + j]
                            pp[(r0 + grp) // ROWS_PER_PARTIAL] = acc
            b0 = b1
    finally:
        free(scratch)


cdef void _cross_entropy_columns(const real *xp, Py_ssize_t O, Py_ssize_t C, Py_ssize_t I,
                                 Py_ssize_t so, Py_ssize_t sc, const int64_t *tp,
                                 Py_ssize_t tso, Py_ssize_t tsi, int64_t ignore_index,
                                 const real *wp, Py_ssize_t ws, double eps,
                                 real *gp, Py_ssize_t gso, Py_ssize_t gsc, Py_ssize_t gsi,
                                 double gscale, real *lp, Py_ssize_t lso, Py_ssize_t lsi,
                                 double *pp, int nt):
    """PyTorch's (N, C, d1, ...) layout: COL_W neighbouring positions at a
    time (see col_xent).  A reduced loss keeps each position's loss in an
    O(rows) buffer and sums it in the 16-row groups of the rows path."""
    cdef Py_ssize_t R = O * I, nblk = (I + COL_W - 1) // COL_W, nb = FX_XENT_SCRATCH(C)
    cdef Py_ssize_t it, o, i0, w, j, grp, r
    cdef Py_ssize_t nbat = _batch(COL_W * C, nt, 1), b0 = 0, b1
    # per thread: COL_W maxima, 5 * COL_W doubles, row_xent's nb, COL_W losses, COL_W kinds
    cdef Py_ssize_t per = 7 * COL_W + nb + COL_W // 8
    cdef double *scratch = <double *>calloc(nt * per, sizeof(double))
    cdef double *rows = NULL
    cdef double *mine
    cdef double acc
    if scratch == NULL:
        raise no_memory(<double>(nt * per * sizeof(double)))
    if lp == NULL:
        rows = <double *>malloc(R * sizeof(double))
        if rows == NULL:
            free(scratch)
            raise no_memory(<double>(R * sizeof(double)))
    try:
        while b0 < O * nblk:
            b1 = _next_batch(b0, O * nblk, nbat)
            with nogil:
                for it in prange(b0, b1, num_threads=nt, schedule='guided'):
                    o = it // nblk
                    i0 = (it - o * nblk) * COL_W
                    w = I - i0 if I - i0 < COL_W else COL_W
                    mine = scratch + threadid() * per
                    _col_xent(xp + o * so + i0, C, sc, w, tp + o * tso + i0 * tsi, tsi,
                              ignore_index, wp, ws, eps,
                              gp + o * gso + i0 * gsi if gp != NULL else NULL, gsc, gsi,
                              gscale, mine, mine + COL_W,
                              <unsigned char *>(mine + 7 * COL_W + nb),
                              mine + 6 * COL_W, mine + 6 * COL_W + nb)
                    for j in range(w):
                        if lp != NULL:
                            _put(&lp[o * lso + (i0 + j) * lsi], mine[6 * COL_W + nb + j])
                        else:
                            rows[o * I + i0 + j] = mine[6 * COL_W + nb + j]
            b0 = b1
        if lp == NULL:
            # a plain sum of R doubles: one batch
            with nogil:
                for grp in prange(0, (R + ROWS_PER_PARTIAL - 1) // ROWS_PER_PARTIAL,
                                  num_threads=nt, schedule='static'):
                    acc = 0.0
                    for r in range(grp * ROWS_PER_PARTIAL, min((grp + 1) * ROWS_PER_PARTIAL, R)):
                        acc = acc + rows[r]
                    pp[grp] = acc
    finally:
        free(rows)
        free(scratch)
