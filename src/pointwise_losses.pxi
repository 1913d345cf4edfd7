# Parallel drivers of the element-wise losses: kl_div and
# binary_cross_entropy_with_logits (the terms are in fx_pointwise_losses.h).
#
# Every operand arrives as a 2-d strided view (rows, L) of the broadcast
# shape -- an operand broadcast along an axis has stride 0 there -- so one
# driver serves every layout without a copy.  The work is cut into units of
# about FX_CHUNK elements: a piece of one long row, or a run of whole short
# rows.  Each unit's sum goes to partial[unit], which the caller adds up in
# order, so a reduced loss does not depend on the thread count.
# Python validates and allocates; nothing here raises but KeyboardInterrupt
# between batches of units (_next_batch).

cimport cython
from cython.parallel cimport prange

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
    for r in range(u * G, min(u * G + G, R)):
        acc = acc + _bce_seg(x + r * xr, xs, y + r * yr, ys,
                             wp + r * wr if wp != NULL else NULL, ws,
                             pp + r * pr if pp != NULL else NULL, ps, L,
                             op + r * orr if op != NULL else NULL, os,
                             gp + r * gr if gp != NULL else NULL, gs, gscale)
    return acc


def pointwise_units(Py_ssize_t R, Py_ssize_t L):
    """The number of work units (and partial sums) of a (R, L) problem."""
    if L >= FX_CHUNK:
        return R * ((L + FX_CHUNK - 1) // FX_CHUNK)
    cdef Py_ssize_t G = FX_CHUNK // L if L > 0 else 1
    return (R + G - 1) // G



@cython.boundscheck(False)
@cython.wraparound(False)
def kl_div(const real[:, :] x, const real[:, :] t, bint log_target, real[:, :] out,
           real[:, :] grad, double gscale, double[:] partial, int n_threads=1):
    """Terms p (log p - x) (p = exp(t) if log_target) of (R, L) views (IN x,
    t); out: the terms or None (OUT); grad: -p * gscale or None (OUT);
    partial: pointwise_units(R, L) unit sums (OUT)."""
    cdef Py_ssize_t R = x.shape[0], L = x.shape[1], sz = sizeof(real)
    cdef Py_ssize_t xr = x.strides[0] // sz, xs = x.strides[1] // sz
    cdef Py_ssize_t tr = t.strides[0] // sz, ts = t.strides[1] // sz
    cdef Py_ssize_t orr = 0, os = 0, gr = 0, gs = 0
    cdef real *op = NULL
    cdef real *gp = NULL
    cdef Py_ssize_t nseg = (L + FX_CHUNK - 1) // FX_CHUNK if L >= FX_CHUNK else 1
    cdef Py_ssize_t G = 1 if L >= FX_CHUNK else FX_CHUNK // L
    cdef Py_ssize_t units = partial.shape[0], u, b0 = 0, b1
    cdef int nt = _threads(n_threads, R * L)
    if out is not None:
        op = &out[0, 0]
        orr = out.strides[0] // sz
        os = out.strides[1] // sz
    if grad is not None:
        gp = &grad[0, 0]
        gr = grad.strides[0] // sz
        gs = grad.strides[1] // sz
    cdef Py_ssize_t nb = _batch(HEAVY * FX_CHUNK, nt, 1)
    while b0 < units:
        b1 = _next_batch(b0, units, nb)
        with nogil:
            if nt == 1:
                # a thread team costs about a microsecond even for one thread
                for u in range(b0, b1):
                    partial[u] = _kl_div_unit(u, nseg, G, R, L, &x[0, 0], xr, xs, &t[0, 0], tr,
                                              ts, log_target, op, orr, os, gp, gr, gs, gscale)
            else:
                for u in prange(b0, b1, num_threads=nt, schedule='guided'):
                    partial[u] = _kl_div_unit(u, nseg, G, R, L, &x[0, 0], xr, xs, &t[0, 0], tr,
                                              ts, log_target, op, orr, os, gp, gr, gs, gscale)
        b0 = b1


@cython.boundscheck(False)
@cython.wraparound(False)
def bce_with_logits(const real[:, :] x, const real[:, :] y, const real[:, :] weight,
                    const real[:, :] pos_weight, real[:, :] out, real[:, :] grad,
                    double gscale, double[:] partial, int n_threads=1):
    """binary_cross_entropy_with_logits terms of (R, L) views (IN x, y,
    weight and pos_weight or None); out, grad, partial as kl_div."""
    cdef Py_ssize_t R = x.shape[0], L = x.shape[1], sz = sizeof(real)
    cdef Py_ssize_t xr = x.strides[0] // sz, xs = x.strides[1] // sz
    cdef Py_ssize_t yr = y.strides[0] // sz, ys = y.strides[1] // sz
    cdef Py_ssize_t wr = 0, ws = 0, pr = 0, ps = 0, orr = 0, os = 0, gr = 0, gs = 0
    cdef const real *wp = NULL
    cdef const real *pp = NULL
    cdef real *op = NULL
    cdef real *gp = NULL
    cdef Py_ssize_t nseg = (L + FX_CHUNK - 1) // FX_CHUNK if L >= FX_CHUNK else 1
    cdef Py_ssize_t G = 1 if L >= FX_CHUNK else FX_CHUNK // L
    cdef Py_ssize_t units = partial.shape[0], u, b0 = 0, b1
    cdef int nt = _threads(n_threads, R * L)
    if weight is not None:
        wp = &weight[0, 0]
        wr = weight.strides[0] // sz
        ws = weight.strides[1] // sz
    if pos_weight is not None:
        pp = &pos_weight[0, 0]
        pr = pos_weight.strides[0] // sz
        ps = pos_weight.strides[1] // sz
    if out is not None:
        op = &out[0, 0]
        orr = out.strides[0] // sz
        os = out.strides[1] // sz
    if grad is not None:
        gp = &grad[0, 0]
        gr = grad.strides[0] // sz
        gs = grad.strides[1] // sz
    cdef Py_ssize_t nb = _batch(HEAVY * FX_CHUNK, nt, 1)
    while b0 < units:
        b1 = _next_batch(b0, units, nb)
        with nogil:
            if nt == 1:
                for u in range(b0, b1):
                    partial[u] = _bce_unit(u, nseg, G, R, L, &x[0, 0], xr, xs, &y[0, 0], yr, ys,
                                           wp, wr, ws, pp, pr, ps, op, orr, os, gp, gr, gs,
                                           gscale)
            else:
                for u in prange(b0, b1, num_threads=nt, schedule='guided'):
                    partial[u] = _bce_unit(u, nseg, G, R, L, &x[0, 0], xr, xs, &y[0, 0], yr, ys,
                                           wp, wr, ws, pp, pr, ps, op, orr, os, gp, gr, gs,
                                           gscale)
        b0 = b1
