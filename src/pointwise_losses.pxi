# Parallel drivers of the element-wise losses: kl_div and
# binary_cross_entropy_with_logits (the terms are in fx_pointwise_losses.h).
#
# Every operand is read as a 2-d strided view (rows, L) of the broadcast
# shape (see _pointwise_views) -- an operand broadcast along an axis has
# stride 0 there -- so one driver serves every layout without a copy.  The work is cut into units of
# about FX_CHUNK elements: a piece of one long row, or a run of whole short
# rows.  Each unit's sum goes to partial[unit], which the caller adds up in
# order, so a reduced loss does not depend on the thread count.
# Python validates and allocates; nothing here raises but KeyboardInterrupt
# between batches of units (_next_batch).

cimport cython
from cython.parallel cimport prange
from libc.math cimport isfinite, isinf
from cpython.ref cimport PyObject

from fx_kernels cimport *


cdef inline double _kl_div_unit(Py_ssize_t u, Py_ssize_t nseg, Py_ssize_t G, Py_ssize_t R,
                                Py_ssize_t L, const real *x, Py_ssize_t xr, Py_ssize_t xs,
                                const real *t, Py_ssize_t tr, Py_ssize_t ts, int log_target,
                                real *op, Py_ssize_t orr, Py_ssize_t os,
                                real *gp, Py_ssize_t gr, Py_ssize_t gs,
                                double gscale) noexcept nogil:
    """The sum of work unit u: a piece of one long row (nseg pieces a row),
    or G whole rows (see pointwise_units)."""
    cdef Py_ssize_t r, j0, n
    cdef double acc = 0.0
    if nseg > 1:
        r = u // nseg
        j0 = (u - r * nseg) * FX_CHUNK
        n = L - j0 if L - j0 < FX_CHUNK else FX_CHUNK
        return _kl_div_seg(x + r * xr + j0 * xs, xs, t + r * tr + j0 * ts, ts, n, log_target,
                           op + r * orr + j0 * os if op != NULL else NULL, os,
                           gp + r * gr + j0 * gs if gp != NULL else NULL, gs, gscale)
    r = u * G
    if 2 * L <= FX_FOLD:
        # short rows gathered a fold at a time (see kl_div_rows)
        return _kl_div_rows(x + r * xr, xr, xs, t + r * tr, tr, ts, min(G, R - r), L,
                            log_target, op + r * orr if op != NULL else NULL, orr, os,
                            gp + r * gr if gp != NULL else NULL, gr, gs, gscale)
    for r in range(u * G, min(u * G + G, R)):
        acc = acc + _kl_div_seg(x + r * xr, xs, t + r * tr, ts, L, log_target,
                                op + r * orr if op != NULL else NULL, os,
                                gp + r * gr if gp != NULL else NULL, gs, gscale)
    return acc


cdef inline double _bce_unit(Py_ssize_t u, Py_ssize_t nseg, Py_ssize_t G, Py_ssize_t R,
                             Py_ssize_t L, const real *x, Py_ssize_t xr, Py_ssize_t xs,
                             const real *y, Py_ssize_t yr, Py_ssize_t ys,
                             const real *wp, Py_ssize_t wr, Py_ssize_t ws,
                             const real *pp, Py_ssize_t pr, Py_ssize_t ps,
                             real *op, Py_ssize_t orr, Py_ssize_t os,
                             real *gp, Py_ssize_t gr, Py_ssize_t gs, double gscale) noexcept nogil:
    """The sum of work unit u, as _kl_div_unit."""
    cdef Py_ssize_t r, j0, n
    cdef double acc = 0.0
    if nseg > 1:
        r = u // nseg
        j0 = (u - r * nseg) * FX_CHUNK
        n = L - j0 if L - j0 < FX_CHUNK else FX_CHUNK
        return _bce_seg(x + r * xr + j0 * xs, xs, y + r * yr + j0 * ys, ys,
                        wp + r * wr + j0 * ws if wp != NULL else NULL, ws,
                        pp + r * pr + j0 * ps if pp != NULL else NULL, ps, n,
                        op + r * orr + j0 * os if op != NULL else NULL, os,
                        gp + r * gr + j0 * gs if gp != NULL else NULL, gs, gscale)
    r = u * G
    if 2 * L <= FX_FOLD:
        return _bce_rows(x + r * xr, xr, xs, y + r * yr, yr, ys,
                         wp + r * wr if wp != NULL else NULL, wr, ws,
                         pp + r * pr if pp != NULL else NULL, pr, ps, min(G, R - r), L,
                         op + r * orr if op != NULL else NULL, orr, os,
                         gp + r * gr if gp != NULL else NULL, gr, gs, gscale)
    for r in range(u * G, min(u * G + G, R)):
        acc = acc + _bce_seg(x + r * xr, xs, y + r * yr, ys,
                             wp + r * wr if wp != NULL else NULL, ws,
                             pp + r * pr if pp != NULL else NULL, ps, L,
                             op + r * orr if op != NULL else NULL, os,
                             gp + r * gr if gp != NULL else NULL, gs, gscale)
    return acc


cdef inline Py_ssize_t _units(Py_ssize_t R, Py_ssize_t L) noexcept nogil:
    """The number of work units (and partial sums) of a (R, L) problem."""
    cdef Py_ssize_t G
    if L >= FX_CHUNK:
        return R * ((L + FX_CHUNK - 1) // FX_CHUNK)
    G = FX_CHUNK // L if L > 0 else 1
    return (R + G - 1) // G


def pointwise_units(Py_ssize_t R, Py_ssize_t L):
    """The number of work units (and partial sums) of a (R, L) problem."""
    return _units(R, L)



cdef inline int _pointwise_views(x, fx_view *xv, others, fx_view *views, int n_in,
                                  partial, fx_view *pv, double *one, int lo, int hi) except -1:
    """The operands of an element-wise loss: x and `others` (inputs first,
    n_in of them, then outputs; None entries absent) read as (rows, L) --
    the dims before lo are the rows, lo..hi the row (see _view) -- and the
    partial sums, one per work unit (None for one unit: `one`, see
    _partials)."""
    cdef Py_ssize_t k
    _input_view(x, xv, lo, hi)
    if xv.n[2] != 1:
        raise ValueError("element-wise operands have no dims after hi")
    for k in range(len(others)):
        _like(others[k], &views[k], xv, lo, hi, False, k >= n_in)
    _partials(partial, pv, _units(xv.n[0], xv.n[1]), one)
    return 0


def kl_div(x, t, bint log_target, out, grad, double gscale, partial, int n_threads=1,
           int lo=1, int hi=1):
    """Terms p (log p - x) (p = exp(t) if log_target) of x and t read as
    (R, L) (see _pointwise_views; IN); out: the terms or None (OUT); grad:
    -p * gscale or None (OUT); partial: pointwise_units(R, L) unit sums
    (OUT), or None for one unit, whose sum is returned."""
    cdef fx_view xv, pv
    cdef fx_view v[3]
    cdef double one = 0.0
    _pointwise_views(x, &xv, (t, out, grad), v, 1, partial, &pv, &one, lo, hi)
    if t is None:
        raise ValueError("kl_div: the target is not optional")
    if xv.itemsize == 8:
        _kl_div(<double *>NULL, &xv, &v[0], log_target, &v[1], &v[2], gscale, &pv, n_threads)
    elif xv.itemsize == 4:
        _kl_div(<float *>NULL, &xv, &v[0], log_target, &v[1], &v[2], gscale, &pv, n_threads)
    else:
        _kl_div(<uint16_t *>NULL, &xv, &v[0], log_target, &v[1], &v[2], gscale, &pv,
                n_threads)
    return one


cdef extern from "numpy/arrayobject.h":
    # NumPy's scalar of `descr` holding *data (base: for structured types only)
    object _numpy_scalar "PyArray_Scalar" (void *data, cnp.dtype descr, PyObject *base)


def kl_div_small(x, t, bint log_target, int mode):
    """kl_div(x, t, reduction, log_target) as the public function returns
    it (a NumPy scalar) for mode 0 'sum', 1 'mean' or 2 'batchmean', no
    gradient, for the common small call: x and t ndarrays (not subclasses)
    of one dtype, float64 or float32, and one shape, C-ordered, aligned, in
    native byte order, of fewer than FX_CHUNK elements (one work unit, on
    one thread) and at least one.  None for any other call, and for a
    float64 sum that is not finite (which _exact_total sums again in the
    layout layer's path).

    The same driver call as the layout layer makes for such operands (one
    flat row: elementwise() with c_aligned operands), then finish()'s
    division by a denominator that is not 0 here, without their checks and
    planning.
    """
    cdef fx_view xv, tv, none, pv
    cdef double one = 0.0
    cdef int ty = _small_pair(x, t)
    if ty < 0:
        return None
    _flat_view(x, &xv)
    _flat_view(t, &tv)
    _none_view(&none)
    _partials(None, &pv, 1, &one)
    if ty == cnp.NPY_FLOAT64:
        _kl_div(<double *>NULL, &xv, &tv, log_target, &none, &none, 1.0, &pv, 1)
    else:
        _kl_div(<float *>NULL, &xv, &tv, log_target, &none, &none, 1.0, &pv, 1)
    return _small_loss(one, <cnp.ndarray>x, ty, mode)


def bce_with_logits_small(x, y, int mode):
    """binary_cross_entropy_with_logits(x, y, reduction=...) as the public
    function returns it (a NumPy scalar) for mode 0 'sum' or 1 'mean', no
    weights and no gradient, for the small calls kl_div_small takes (the
    same conditions on x and y); None for any other.  The same driver call
    as the layout layer's path, then finish()'s division."""
    cdef fx_view xv, pv
    cdef fx_view v[5]
    cdef double one = 0.0
    cdef int ty = _small_pair(x, y), i
    if ty < 0:
        return None
    _flat_view(x, &xv)
    _flat_view(y, &v[0])
    for i in range(1, 5):
        _none_view(&v[i])
    _partials(None, &pv, 1, &one)
    if ty == cnp.NPY_FLOAT64:
        _bce(<double *>NULL, &xv, v, 1.0, &pv, 1)
    else:
        _bce(<float *>NULL, &xv, v, 1.0, &pv, 1)
    return _small_loss(one, <cnp.ndarray>x, ty, mode)


cdef int _small_pair(x, t) noexcept:
    """The dtype number of a small call's two operands (see kl_div_small),
    -1 for a call the small entries do not take.  float16 is declined: its
    loss keeps NumPy's rounding (finish()) in the usual path."""
    cdef int ty = _small_operand(x, FX_CHUNK - 1)
    if (ty < 0 or ty == cnp.NPY_FLOAT16 or _small_operand(t, FX_CHUNK - 1) != ty
            or not cnp.PyArray_SAMESHAPE(<cnp.ndarray>x, <cnp.ndarray>t)):
        return -1
    return ty


cdef object _small_loss(double one, cnp.ndarray a, int ty, int mode):
    """finish() of a small call's one partial sum `one` for operand `a` of
    dtype number `ty`: mode 0 the sum, 1 over a's size, 2 over its first
    dim; a NumPy scalar of a's dtype, or None where the usual path's
    finish() differs: a float64 sum that is not finite (_exact_total sums
    the terms again) and a float32 cast that overflows (NumPy warns)."""
    cdef double value
    cdef float value32
    if ty == cnp.NPY_FLOAT64 and not isfinite(one):
        return None
    value = 0.0 + one   # as the layout layer's 0 + partial sums: never -0.0
    if mode == 1:
        value = value / <double>cnp.PyArray_SIZE(a)
    elif mode == 2:
        value = value / <double>(cnp.PyArray_DIMS(a)[0] if cnp.PyArray_NDIM(a) else 1)
    if ty == cnp.NPY_FLOAT64:
        return _numpy_scalar(&value, <cnp.dtype>cnp.PyArray_DESCR(a), NULL)
    value32 = <float>value   # rounded once, as NumPy's float32(value)
    if isinf(value32) and not isinf(value):
        return None
    return _numpy_scalar(&value32, <cnp.dtype>cnp.PyArray_DESCR(a), NULL)


cdef int _kl_div(real *tag, const fx_view *xv, const fx_view *tv, bint log_target,
                 const fx_view *ov, const fx_view *gv, double gscale, const fx_view *pv,
                 int n_threads) except -1:
    """kl_div on the views, for the storage type of `tag` (a NULL of it)."""
    cdef Py_ssize_t R = xv.n[0], L = xv.n[1]
    cdef const real *xp = <const real *>xv.p
    cdef const real *tp = <const real *>tv.p
    cdef real *op = <real *>ov.p
    cdef real *gp = <real *>gv.p
    cdef double *partial = <double *>pv.p
    cdef Py_ssize_t xr = xv.s[0], xs = xv.s[1], tr = tv.s[0], ts = tv.s[1]
    cdef Py_ssize_t orr = ov.s[0], os = ov.s[1], gr = gv.s[0], gs = gv.s[1]
    cdef Py_ssize_t nseg = (L + FX_CHUNK - 1) // FX_CHUNK if L >= FX_CHUNK else 1
    cdef Py_ssize_t G = 1 if L >= FX_CHUNK else FX_CHUNK // L
    cdef Py_ssize_t units = pv.n[1], u, b0 = 0, b1
    cdef int nt = _threads(n_threads, R * L)
    cdef Py_ssize_t nb = _batch(HEAVY * FX_CHUNK, nt, 1)
    if nt == 1 and R * L <= KEEP_GIL_WORK:
        for u in range(units):
            partial[u] = _kl_div_unit(u, nseg, G, R, L, xp, xr, xs, tp, tr, ts, log_target,
                                      op, orr, os, gp, gr, gs, gscale)
        b0 = units
    while b0 < units:
        b1 = _next_batch(b0, units, nb)
        with nogil:
            if nt == 1:
                # a thread team costs about a microsecond even for one thread
                for u in range(b0, b1):
                    partial[u] = _kl_div_unit(u, nseg, G, R, L, xp, xr, xs, tp, tr,
                                              ts, log_target, op, orr, os, gp, gr, gs, gscale)
            else:
                for u in prange(b0, b1, num_threads=nt, schedule='guided'):
                    partial[u] = _kl_div_unit(u, nseg, G, R, L, xp, xr, xs, tp, tr,
                                              ts, log_target, op, orr, os, gp, gr, gs, gscale)
        b0 = b1
    return 0


def bce_with_logits(x, y, weight, pos_weight, out, grad, double gscale, partial,
                    int n_threads=1, int lo=1, int hi=1):
    """binary_cross_entropy_with_logits terms of x, y, weight and pos_weight
    (or None) read as (R, L) (IN); out, grad, partial as kl_div."""
    cdef fx_view xv, pv
    cdef fx_view v[5]
    cdef double one = 0.0
    _pointwise_views(x, &xv, (y, weight, pos_weight, out, grad), v, 3, partial, &pv, &one, lo,
                     hi)
    if y is None:
        raise ValueError("bce_with_logits: the target is not optional")
    if xv.itemsize == 8:
        _bce(<double *>NULL, &xv, v, gscale, &pv, n_threads)
    elif xv.itemsize == 4:
        _bce(<float *>NULL, &xv, v, gscale, &pv, n_threads)
    else:
        _bce(<uint16_t *>NULL, &xv, v, gscale, &pv, n_threads)
    return one


cdef int _bce(real *tag, const fx_view *xv, const fx_view *v, double gscale,
              const fx_view *pv, int n_threads) except -1:
    """bce_with_logits on the views (y, weight, pos_weight, out, grad), for
    the storage type of `tag` (a NULL of it)."""
    cdef Py_ssize_t R = xv.n[0], L = xv.n[1]
    cdef const real *xp = <const real *>xv.p
    cdef const real *yp = <const real *>v[0].p
    cdef const real *wp = <const real *>v[1].p
    cdef const real *pp = <const real *>v[2].p
    cdef real *op = <real *>v[3].p
    cdef real *gp = <real *>v[4].p
    cdef double *partial = <double *>pv.p
    cdef Py_ssize_t xr = xv.s[0], xs = xv.s[1], yr = v[0].s[0], ys = v[0].s[1]
    cdef Py_ssize_t wr = v[1].s[0], ws = v[1].s[1], pr = v[2].s[0], ps = v[2].s[1]
    cdef Py_ssize_t orr = v[3].s[0], os = v[3].s[1], gr = v[4].s[0], gs = v[4].s[1]
    cdef Py_ssize_t nseg = (L + FX_CHUNK - 1) // FX_CHUNK if L >= FX_CHUNK else 1
    cdef Py_ssize_t G = 1 if L >= FX_CHUNK else FX_CHUNK // L
    cdef Py_ssize_t units = pv.n[1], u, b0 = 0, b1
    cdef int nt = _threads(n_threads, R * L)
    cdef Py_ssize_t nb = _batch(HEAVY * FX_CHUNK, nt, 1)
    if nt == 1 and R * L <= KEEP_GIL_WORK:
        for u in range(units):
            partial[u] = _bce_unit(u, nseg, G, R, L, xp, xr, xs, yp, yr, ys, wp, wr, ws,
                                   pp, pr, ps, op, orr, os, gp, gr, gs, gscale)
        b0 = units
    while b0 < units:
        b1 = _next_batch(b0, units, nb)
        with nogil:
            if nt == 1:
                for u in range(b0, b1):
                    partial[u] = _bce_unit(u, nseg, G, R, L, xp, xr, xs, yp, yr, ys,
                                           wp, wr, ws, pp, pr, ps, op, orr, os, gp, gr, gs,
                                           gscale)
            else:
                for u in prange(b0, b1, num_threads=nt, schedule='guided'):
                    partial[u] = _bce_unit(u, nseg, G, R, L, xp, xr, xs, yp, yr, ys,
                                           wp, wr, ws, pp, pr, ps, op, orr, os, gp, gr, gs,
                                           gscale)
        b0 = b1
    return 0
