# Parallel driver of nll_loss; the per-row work is in fx_nll_loss.h.
#
# The operands arrive as NumPy arrays of any layout and are read through their
# buffers' byte strides: no view is built and nothing is copied, whatever the
# label dtype (any integer), weight dtype (float16/32/64) or strides.  The
# rows -- the target's elements, in C order -- are cut into at most
# NLL_MAX_BLOCKS fixed blocks that depend on the row count only; each block's
# losses and target weights are summed in row order (scaled by 2^-8, so
# that the order cannot make them overflow) into a stack slot, and the slots
# are added in block order: the result does not depend on the thread count, and the scratch is a fixed 24 KiB whatever the size.
#
# Labels are checked in the kernel (each in [0, C) or the ignore index); a
# bad one is reported, as the flat index of the first, to the caller, which
# raises.  With a gradient whose scale needs the 'mean' denominator, or that
# goes to the caller's memory, a first pass computes the loss and checks
# every label, and a second writes the gradient: a bad label then leaves the
# caller's array untouched, and in-place gradients (grad_out=input) read each
# target before anything is written.  A new gradient arrives zeroed (calloc'd
# by NumPy): only its targets are written.

from cython.parallel cimport prange
from fx_kernels cimport *
from cpython.buffer cimport PyBuffer_Release
from libc.math cimport INFINITY

# blocks of rows, at most: the fixed scratch of a call (3 doubles each)
DEF NLL_MAX_BLOCKS = 1024
# rows per block, at least: a few dozen rows still spread over the threads
DEF NLL_MIN_BLOCK = 16
# the cost of a row without its gradient, in the elements of an exp-bound
# row reduction: a label, a gathered cache line of input and an output
DEF NLL_ROW_WORK = 16



cdef int _nll_label_kind(const Py_buffer *b) except 0:
    """The kernel's code for the labels' integer type: its size, negative
    when unsigned (the Python layer passes native integers only)."""
    cdef const char *f = b.format
    while f[0] in b"@=<>!":
        f += 1
    if f[0] in b"bhilqn":
        return <int>b.itemsize
    if f[0] in b"BHILQN":
        return -<int>b.itemsize
    raise TypeError("labels must be integers")


cdef Py_ssize_t _nll_pass(_nll_block_fn fn, const fx_nll_args *a, Py_ssize_t R, Py_ssize_t B,
                          int mode, int nt, Py_ssize_t row_work, double *sums,
                          Py_ssize_t *bads) except -2:
    """Every block of B rows through fn; returns the first bad row or -1."""
    cdef Py_ssize_t nblk = (R + B - 1) // B, it, r1, bad = -1
    cdef Py_ssize_t nbat = _batch(B * row_work, nt, 1), b0 = 0, b1
    memset(sums, 0, 2 * nblk * sizeof(double))
    if nt == 1 and nblk <= nbat:
        # one batch on one thread: no OpenMP region (it costs more than a
        # small call's work)
        for it in range(nblk):
            r1 = (it + 1) * B
            bads[it] = fn(a, it * B, r1 if r1 < R else R, mode, sums + 2 * it)
        b0 = nblk
    while b0 < nblk:
        b1 = _next_batch(b0, nblk, nbat)
        with nogil:
            for it in prange(b0, b1, num_threads=nt, schedule='guided'):
                r1 = (it + 1) * B
                bads[it] = fn(a, it * B, r1 if r1 < R else R, mode, sums + 2 * it)
        b0 = b1
    for it in range(nblk):
        if bads[it] >= 0:
            return bads[it]
    return bad


def nll_loss(x, labels, int64_t ignore_index, weight, out, grad, bint grad_zeroed, bint mean,
             bint check_first, int n_threads=1):
    """nll_loss of every target: returns (summed loss, summed target weight,
    first bad label's flat index or -1).

    x: (C,) or (N, C, d...) float16/32/64, native and aligned (IN).  labels:
    the target's shape, any native integer dtype and strides (IN).
    ignore_index: an int64 (the caller checked it).  weight: (C,)
    float16/32/64 or None (IN).  out: the target's shape, x's dtype, or None
    (OUT: the per-row losses).  grad: like x or None (OUT: the gradient,
    divided by the summed target weight when `mean`); grad_zeroed: it holds
    zeros already, only the targets are written.  check_first: check
    every label before grad is written (grad is the caller's memory).
    """
    cdef fx_nll_args a
    cdef Py_buffer xb, lb, wb, ob, gb
    cdef bint have_w = False, have_o = False, have_g = False
    cdef _nll_block_fn fn
    cdef Py_ssize_t R = 1, B, k, bad = -1, nblk
    cdef double sums[2 * NLL_MAX_BLOCKS]
    cdef Py_ssize_t bads[NLL_MAX_BLOCKS]
    cdef double total = 0.0, denom = 0.0
    cdef int nt
    a.ignore_index = ignore_index
    fx_get_buffer(x, &xb, False)
    try:
        fx_get_buffer(labels, &lb, False)
        try:
            a.lkind = _nll_label_kind(&lb)
            a.wkind = 0
            a.ws = 0
            a.w = NULL
            if weight is not None:
                fx_get_buffer(weight, &wb, False)
                have_w = True
                a.w = <const char *>wb.buf
                a.ws = wb.strides[0]
                a.wkind = <int>wb.itemsize
            a.out = NULL
            if out is not None:
                fx_get_buffer(out, &ob, True)
                have_o = True
                a.out = <char *>ob.buf
            a.g = NULL
            a.g_zeroed = grad_zeroed
            if grad is not None:
                fx_get_buffer(grad, &gb, True)
                have_g = True
                a.g = <char *>gb.buf
            a.x = <const char *>xb.buf
            a.lab = <const char *>lb.buf
            a.gscale = 1.0
            _nll_dims(&a, &xb, &lb, &ob if have_o else NULL, &gb if have_g else NULL)
            for k in range(a.nd):
                R *= a.shape[k]
            if R == 0:
                return 0.0, 0.0, -1
            fn = _nll_block_for(xb.itemsize)
            B = (R + NLL_MAX_BLOCKS - 1) // NLL_MAX_BLOCKS
            if B < NLL_MIN_BLOCK:
                B = NLL_MIN_BLOCK
            nblk = (R + B - 1) // B
            if have_g and (mean or check_first):
                nt = _threads(n_threads, R * NLL_ROW_WORK)
                bad = _nll_pass(fn, &a, R, B, FX_NLL_LOSS, nt, NLL_ROW_WORK, sums, bads)
            else:
                nt = _threads(n_threads, R * (NLL_ROW_WORK + (a.C if have_g else 0)))
                bad = _nll_pass(fn, &a, R, B, FX_NLL_LOSS | (FX_NLL_GRAD if have_g else 0),
                                nt, NLL_ROW_WORK + (a.C if have_g else 0), sums, bads)
            for k in range(nblk):
                total += sums[2 * k]
                denom += sums[2 * k + 1]
            # the blocks sum their terms scaled (fx_nll_loss.h): scaled back
            # once, the sums overflow only where their true values do
            total = total * (1.0 / FX_NLL_SUM_SCALE)
            denom = denom * (1.0 / FX_NLL_SUM_SCALE)
            if bad < 0 and have_g and (mean or check_first):
                # PyTorch's 1 / 0 = inf under an all-ignored or zero-weight
                # mean: counted targets get 0 * inf = NaN, ignored ones 0
                a.gscale = (1.0 / denom if denom != 0.0 else INFINITY) if mean else 1.0
                nt = _threads(n_threads, R * (NLL_ROW_WORK + a.C))
                _nll_pass(fn, &a, R, B, FX_NLL_GRAD, nt, NLL_ROW_WORK + a.C, sums, bads)
            return total, denom, bad
        finally:
            if have_g:
                PyBuffer_Release(&gb)
            if have_o:
                PyBuffer_Release(&ob)
            if have_w:
                PyBuffer_Release(&wb)
            PyBuffer_Release(&lb)
    finally:
        PyBuffer_Release(&xb)
