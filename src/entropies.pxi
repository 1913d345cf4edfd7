# Parallel drivers of the entropies of rows: softmax_entropy,
# softmax_cross_entropy / softmax_kl_div (from logits) and
# scipy.stats.entropy (from probabilities); the per-row arithmetic is in
# fx_entropies.h.
#
# Inputs arrive as 3-d strided views (outer, C, inner), C the reduced axis,
# and the result as an (outer, inner) view; a row is x[o, :, i] at stride
# x.strides[1].  prange shares the outer*inner rows in contiguous runs
# (guided schedule), so neighbouring rows of a strided (column) layout
# mostly stay on one thread and share cache lines.  Python validates and allocates; nothing here
# raises but KeyboardInterrupt between batches of rows (_next_batch).

cimport cython
from cython.parallel cimport prange, threadid
from libc.stdlib cimport calloc, free

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



@cython.boundscheck(False)
@cython.wraparound(False)
def row_entropies(int kind, const real[:, :, :] x, const real[:, :, :] y, real[:, :] out,
                  double div=1.0, int n_threads=1):
    """One value per (outer, inner) row of x (and y), written to out (OUT).

    kind 0: softmax_entropy(x); 1: softmax_cross_entropy(x, y);
    2: softmax_kl_div(x, y); 3: scipy entropy of x (y None) or relative
    entropy of x to y, divided by div.  C must be > 0 for kinds 0-2.
    """
    cdef Py_ssize_t O = x.shape[0], C = x.shape[1], I = x.shape[2], sz = sizeof(real)
    cdef Py_ssize_t so = x.strides[0] // sz, sc = x.strides[1] // sz, si = x.strides[2] // sz
    cdef Py_ssize_t yo = 0, yc = 0, yi = 0
    cdef Py_ssize_t oo = out.strides[0] // sz, oi = out.strides[1] // sz
    cdef const real *xp = &x[0, 0, 0] if C > 0 else NULL
    cdef const real *yp = NULL
    cdef real *op = &out[0, 0]
    cdef Py_ssize_t r
    cdef int nt = _threads(n_threads, O * I * (C if C > 0 else 1))
    if y is not None and C > 0:
        yp = &y[0, 0, 0]
        yo = y.strides[0] // sz
        yc = y.strides[1] // sz
        yi = y.strides[2] // sz
    cdef Py_ssize_t nblk, it, r0, w, nb, b0 = 0, b1
    cdef double *scratch
    if kind < 3 and _use_small(O * I, C, sc, I) and (kind == 0 or yc == 1):
        # many short rows: FX_BLOCK_W rows side by side (see small_entropies)
        nblk = (O + FX_BLOCK_W - 1) // FX_BLOCK_W
        scratch = <double *>calloc(nt * FX_SMALL_ENT_SCRATCH + FX_ALIGN_SLACK, sizeof(double))
        if scratch == NULL:
            raise MemoryError()
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
                                         fx_align64(scratch) + threadid() * FX_SMALL_ENT_SCRATCH,
                                         op + r0 * oo, oo)
                b0 = b1
        finally:
            free(scratch)
        return
    nb = _batch(C, nt, 1)
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
