# Parallel driver of the per-row scores (score_rows) and of the sums of an
# evaluation chunk (_score_state); the per-row work is in fx_score.h.
#
# As nll_loss, the operands are read through their buffers' byte strides
# (any layout, any native integer label dtype, no copy).  The rows -- the
# target's elements in C order -- are cut into at most SCORE_MAX_BLOCKS
# fixed blocks that depend on the row count only.  For the per-row outputs
# every label is checked in a first pass that reads nothing else, so a bad
# label leaves every output untouched; the sums check each label before its
# row is read and are dropped on a bad one (they are scratch until the end).
# For the sums, each block adds its rows in row order into its own slot of
# float sums (a fixed number of blocks: the scratch does not grow with the
# rows), the slots are added in block order, and the integer counts go to
# per-thread slots (their sum has no order): the result does not depend on
# the thread count.

from cython.parallel cimport prange, threadid
from fx_kernels cimport *
from cpython.buffer cimport PyBuffer_Release
from libc.stdlib cimport calloc, malloc, free
from libc.string cimport memset
from libc.stdint cimport int64_t

import numpy as np

# blocks of rows, at most
DEF SCORE_MAX_BLOCKS = 256
# rows per block, at least
DEF SCORE_MIN_BLOCK = 16
# the cost of a row besides its classes: a label, a few outputs
DEF SCORE_ROW_WORK = 16
# doubles (and int64) of the per-block sums kept on the stack (a few blocks
# and bins: small calls)
DEF SCORE_STACK_SUMS = 256


cdef void _score_dims(fx_score_args *a, const Py_buffer *xb, const Py_buffer *lb,
                      Py_buffer *obs, bint have_o) noexcept:
    """The row dims of every operand (the input's without the class axis),
    length-1 dims dropped and neighbours merged where every operand's strides
    allow (as _nll_dims)."""
    cdef Py_ssize_t k, o, xd, n = 0, sh
    cdef bint merge
    a.nd = 1
    a.shape[0] = 1
    a.xs[0] = a.ls[0] = 0
    for o in range(FX_SCORE_NOUT):
        a.os[o][0] = 0
    if xb.ndim == 1:   # unbatched: one row
        a.C = xb.shape[0]
        a.xc = xb.strides[0]
        return
    a.C = xb.shape[1]
    a.xc = xb.strides[1]
    for k in range(xb.ndim - 1):
        xd = 0 if k == 0 else k + 1
        sh = xb.shape[xd]
        if sh == 1:
            continue
        merge = n > 0 and a.xs[n - 1] == sh * xb.strides[xd] and a.ls[n - 1] == sh * lb.strides[k]
        if merge and have_o:
            for o in range(FX_SCORE_NOUT):
                if a.os[o][n - 1] != sh * obs[o].strides[k]:
                    merge = False
        if merge:
            a.shape[n - 1] *= sh
        else:
            a.shape[n] = sh
            n += 1
        a.xs[n - 1] = xb.strides[xd]
        a.ls[n - 1] = lb.strides[k]
        for o in range(FX_SCORE_NOUT):
            a.os[o][n - 1] = obs[o].strides[k] if have_o else 0
    if n > 0:
        a.nd = n


cdef Py_ssize_t _score_run(_score_block_fn fn, const fx_score_args *a, Py_ssize_t R,
                           Py_ssize_t B, int mode, int nt, double *fsums, Py_ssize_t nf,
                           int64_t *counts, Py_ssize_t nc, Py_ssize_t *bads) except -2:
    """Every block of B rows through fn (fsums: nf doubles per block; counts:
    nc int64 per thread); returns the first bad row or -1."""
    cdef Py_ssize_t nblk = (R + B - 1) // B, it, r1
    cdef Py_ssize_t per = B * (a.C + SCORE_ROW_WORK) if mode != FX_SCORE_CHECK else B
    cdef Py_ssize_t nbat = _batch(per, nt, 1), b0 = 0, b1
    if nt == 1 and nblk <= nbat:
        # one batch on one thread: no OpenMP region
        for it in range(nblk):
            r1 = (it + 1) * B
            bads[it] = fn(a, it * B, r1 if r1 < R else R, mode, fsums + nf * it, counts)
        b0 = nblk
    while b0 < nblk:
        b1 = _next_batch(b0, nblk, nbat)
        with nogil:
            for it in prange(b0, b1, num_threads=nt, schedule='dynamic'):
                r1 = (it + 1) * B
                bads[it] = fn(a, it * B, r1 if r1 < R else R, mode, fsums + nf * it,
                              counts + nc * threadid())
        b0 = b1
    for it in range(nblk):
        if bads[it] >= 0:
            return bads[it]
    return -1


cdef int _check_sums(f, c, Py_ssize_t n_f, Py_ssize_t n_c, str names) except -1:
    """An evaluation's running sums (`names` in the message): native,
    aligned, writeable, C-contiguous float64 and int64 arrays of n_f and n_c
    sums (the kernel adds into them)."""
    if (not cnp.PyArray_Check(f) or not cnp.PyArray_Check(c)
            or cnp.PyArray_TYPE(<cnp.ndarray>f) != cnp.NPY_FLOAT64
            or cnp.PyArray_TYPE(<cnp.ndarray>c) != cnp.NPY_INT64
            or not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>f)
            or not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>c)
            or cnp.PyArray_SIZE(<cnp.ndarray>f) != n_f
            or cnp.PyArray_SIZE(<cnp.ndarray>c) != n_c
            or not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>f)
            or not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>c)
            or not cnp.PyArray_ISALIGNED(<cnp.ndarray>f)
            or not cnp.PyArray_ISALIGNED(<cnp.ndarray>c)
            or not cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>f)
            or not cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>c)):
        raise ValueError(f"{names} must be writeable, aligned, C-contiguous "
                         f"native float64 and int64 arrays of {n_f} and {n_c} sums")
    return 0


# max(topk) and n_bins of at most this many: every size formed from them
# (per-block and per-thread slots of at most 2^16 threads) fits a
# Py_ssize_t, and the allocation of too many fails as MemoryError
DEF SCORE_MAX_SIZE = 1 << 40


cdef int _check_sizes(Py_ssize_t max_rank, Py_ssize_t n_bins, Py_ssize_t min_bins) except -1:
    """max(topk) and n_bins (at least min_bins: 0 for per-row scores)."""
    if max_rank < 0 or max_rank > SCORE_MAX_SIZE:
        raise ValueError(f"topk: at most {SCORE_MAX_SIZE} ranks can be counted, got {max_rank}")
    if n_bins < min_bins or n_bins > SCORE_MAX_SIZE:
        raise ValueError(f"n_bins: expected {min_bins} to {SCORE_MAX_SIZE} bins, got {n_bins}")
    return 0


cdef str _sums_memory_message(Py_ssize_t max_rank, Py_ssize_t n_bins, size_t nbytes):
    """The MemoryError's message when the sums of an evaluation (O(blocks +
    threads) copies of the bins and the rank counts) cannot be allocated."""
    return (f"n_bins, topk: out of memory for the sums of {n_bins} calibration bins and "
            f"{max_rank} rank counts ({nbytes / 2**30:.3g} GiB); lower n_bins or max(topk)")


# topk of at most this many ks, n_bins of at most this many bins: the
# metrics' scratch on the stack
DEF METRICS_STACK_K = 16
DEF METRICS_STACK_BINS = 63


cdef dict _metrics(const double *f, const int64_t *c, Py_ssize_t max_rank, Py_ssize_t n_bins,
                   tuple topk, tuple names, dict keys):
    """The metrics of the sums f, c (fx_score_metrics) as a dict: keys
    `names` (count, undefined, then the 7 + len(topk) metrics in order);
    topk: increasing ints in [1, max_rank]; `keys`: a dict of those keys
    in that order, copied (a dict made at its size, never resized)."""
    cdef Py_ssize_t nk = len(topk), i, k
    cdef Py_ssize_t kstack[METRICS_STACK_K]
    cdef double ostack[METRICS_STACK_K + 7]
    cdef double sstack[2 * (METRICS_STACK_BINS + 1)]
    cdef Py_ssize_t *ks = kstack
    cdef double *out = ostack
    cdef double *scratch = sstack
    cdef void *kheap = NULL
    cdef void *sheap = NULL
    cdef dict d
    if len(names) != 9 + nk or len(keys) != 9 + nk:
        raise ValueError(f"score: {9 + nk} metric names and keys expected, got {len(names)} "
                         f"and {len(keys)}")
    try:
        if nk > METRICS_STACK_K:
            kheap = malloc(nk * (sizeof(Py_ssize_t) + sizeof(double)) + 7 * sizeof(double))
            if kheap == NULL:
                raise MemoryError(f"topk: out of memory for the metrics of {nk} values of k")
            ks = <Py_ssize_t *>kheap
            out = <double *>(ks + nk)
        if n_bins > METRICS_STACK_BINS:
            sheap = malloc(2 * (n_bins + 1) * sizeof(double))
            if sheap == NULL:
                raise MemoryError(_sums_memory_message(max_rank, n_bins,
                                                       2 * (n_bins + 1) * sizeof(double)))
            scratch = <double *>sheap
        for i in range(nk):
            k = topk[i]
            if not 1 <= k <= max_rank:   # ranks beyond the sums' are not counted
                raise ValueError(f"score: topk must lie in [1, {max_rank}], got {k}")
            ks[i] = k
        fx_score_metrics(f, c, max_rank, n_bins, ks, nk, out, scratch)
        d = keys.copy()
        d[names[0]] = c[0]
        d[names[1]] = c[1]
        for i in range(7 + nk):
            d[names[2 + i]] = out[i]
        return d
    finally:
        free(kheap)
        free(sheap)


def score_metrics(f, c, Py_ssize_t max_rank, Py_ssize_t n_bins, tuple topk, tuple names,
                  dict keys):
    """The metrics (a dict, keys `names` in the order of the dict `keys`)
    of an evaluation's sums f, c (the totals of score's FX_SCORE_STATE, as a
    Scorer keeps them)."""
    cdef Py_buffer fb, cb
    _check_sizes(max_rank, n_bins, 1)
    _check_sums(f, c, 4 + n_bins, 2 * n_bins + 4 + max_rank, "score_metrics: the sums f and c")
    fx_get_buffer(f, &fb, False)
    try:
        fx_get_buffer(c, &cb, False)
        try:
            return _metrics(<const double *>fb.buf, <const int64_t *>cb.buf, max_rank, n_bins,
                            topk, names, keys)
        finally:
            PyBuffer_Release(&cb)
    finally:
        PyBuffer_Release(&fb)


cdef void _add_totals(const double *fsums, Py_ssize_t nblk, Py_ssize_t nf,
                      const int64_t *counts, Py_ssize_t nt, Py_ssize_t nc,
                      double *ftot, Py_ssize_t n_f, int64_t *ctot, Py_ssize_t n_c) noexcept:
    """The blocks' float sums and the threads' counts added into the totals."""
    cdef Py_ssize_t k, o
    # in block order: the same sums on any thread count
    for k in range(nblk):
        for o in range(n_f):
            ftot[o] += fsums[k * nf + o]
    for k in range(nt):
        for o in range(n_c):
            ctot[o] += counts[k * nc + o]


def score(x, labels, ignore_index, int tmode, double t, bint bf16, outs, Py_ssize_t max_rank,
          Py_ssize_t n_bins, int n_threads=1, add_f=None, add_c=None, metrics=None):
    """The per-row scores (outs: a sequence of 6 arrays of the target's
    shape; True: 6 new C-ordered arrays of the labels' shape, returned in
    place of the float sums; None: the sums) of logits x against labels.

    x: (C,) or (N, C, d...), float64, float32 or 2-byte storage (float16 as
    its bits, or bfloat16 with bf16), native and aligned (IN).  labels: the
    target's shape, any native integer dtype and strides (IN).
    ignore_index: an int, or None when no label can equal it.  tmode, t:
    z = x (0), x * t (1) or x / t (2).  outs: nll, rank, prediction,
    confidence, entropy, brier -- the float ones float64 for float64 x,
    float32 otherwise; rank and prediction int64 (OUT).

    Returns (first bad label's flat index or -1, float sums, int counts):
    the sums (None with outs) are those of fx_score.h's FX_SCORE_STATE.
    With add_f and add_c (float64 and int64 arrays of those sums' lengths,
    C-contiguous; IN/OUT) the sums are added into them instead (None, None
    returned): an evaluation's running state, updated without an array
    made per call.  Nothing is added when a label is bad.  With metrics,
    (topk, names, keys) as score_metrics takes them, the sums stay in C and
    their metrics are returned in place of the float sums (a dict).
    """
    # before any size is formed from them (a product could overflow)
    _check_sizes(max_rank, n_bins, 0 if outs is not None else 1)
    cdef fx_score_args a
    cdef Py_buffer xb, lb
    cdef Py_buffer obs[6]
    cdef int n_o = 0, o, nt
    cdef _score_block_fn fn
    cdef Py_ssize_t R = 1, B, k, bad = -1, nblk
    # per-block and per-thread slots in whole cache lines (8 doubles or
    # int64): no two threads write the same line
    cdef Py_ssize_t nf = (4 + n_bins + 7) // 8 * 8, nc = (2 * n_bins + 4 + max_rank + 7) // 8 * 8
    cdef double *fbase = NULL
    cdef int64_t *cbase = NULL
    cdef Py_ssize_t bads[SCORE_MAX_BLOCKS]
    cdef double *fsums = NULL
    cdef int64_t *counts = NULL
    cdef Py_ssize_t n_f = 4 + n_bins, n_c = 2 * n_bins + 4 + max_rank
    cdef Py_buffer fb, cb
    cdef double *ftot_c
    cdef Py_ssize_t nfs, ncs
    cdef double fstack[SCORE_STACK_SUMS]
    cdef int64_t cstack[SCORE_STACK_SUMS]
    cdef int64_t *ctot_c
    a.has_ignore = 0
    a.ignore_index = 0
    a.ignore_big = 0
    if ignore_index is not None:
        try:
            a.ignore_index = ignore_index
            a.has_ignore = 1
        except OverflowError:
            if 2**63 <= ignore_index < 2**64:
                # only a uint64 label equals it: its bits, matched against
                # such labels alone (an int64 label of the same bits differs)
                a.ignore_index = <int64_t>(ignore_index - 2**64)
                a.ignore_big = 1
                a.has_ignore = 1
            # beyond: no label of any integer dtype equals it
    a.tmode = tmode
    a.t = t
    a.bf16 = bf16
    a.max_rank = max_rank
    a.n_bins = n_bins
    a.edges = NULL
    if (add_f is None) != (add_c is None):
        raise ValueError("score: add_f and add_c go together")
    if add_f is not None:
        _check_sums(add_f, add_c, n_f, n_c, "score: add_f and add_c")
    cdef tuple m_topk = None, m_names = None
    cdef dict m_keys = None
    if metrics is not None:
        if outs is not None or add_f is not None:
            raise ValueError("score: metrics are the sums' alone (no outs, add_f or add_c)")
        m_topk, m_names, m_keys = metrics
    cdef list made = None
    cdef cnp.ndarray lab_arr
    cdef int ftype
    if outs is True:
        # made here: six NumPy allocations from C cost a small call half
        # of what they cost from Python
        lab_arr = <cnp.ndarray?>labels
        ftype = cnp.NPY_FLOAT64 if (<cnp.ndarray?>x).itemsize == 8 else cnp.NPY_FLOAT32
        made = [cnp.PyArray_EMPTY(lab_arr.ndim, lab_arr.shape,
                                  cnp.NPY_INT64 if o == FX_SCORE_RANK or o == FX_SCORE_PRED
                                  else ftype, 0)
                for o in range(FX_SCORE_NOUT)]
        outs = made
    fx_get_buffer(x, &xb, False)
    try:
        fx_get_buffer(labels, &lb, False)
        try:
            a.lkind = _nll_label_kind(&lb)
            if outs is not None:
                for o in range(FX_SCORE_NOUT):
                    fx_get_buffer(outs[o], &obs[o], True)
                    n_o += 1
                    a.out[o] = <char *>obs[o].buf
            else:
                for o in range(FX_SCORE_NOUT):
                    a.out[o] = NULL
            a.x = <const char *>xb.buf
            a.lab = <const char *>lb.buf
            _score_dims(&a, &xb, &lb, obs, outs is not None)
            for k in range(a.nd):
                R *= a.shape[k]
            fn = _score_block_for(xb.itemsize)
            B = (R + SCORE_MAX_BLOCKS - 1) // SCORE_MAX_BLOCKS
            if B < SCORE_MIN_BLOCK:
                B = SCORE_MIN_BLOCK
            nblk = (R + B - 1) // B
            # no row (R == 0) needs no case of its own: no block runs, the
            # outputs are empty and the sums zero
            if outs is not None:
                # the labels, before any output is written
                nt = _threads(n_threads, R)
                bad = _score_run(fn, &a, R, B, FX_SCORE_CHECK, nt, NULL, 0, NULL, 0, bads)
                if bad >= 0:
                    return bad, None, None
                nt = _threads(n_threads, R * (a.C + SCORE_ROW_WORK))
                _score_run(fn, &a, R, B, FX_SCORE_ROWS, nt, NULL, 0, NULL, 0, bads)
                return -1, made, None
            nt = _threads(n_threads, R * (a.C + SCORE_ROW_WORK))
            # the per-block sums, the bin edges b / n_bins, then the totals
            # (when they stay here: metrics)
            nfs = nblk * nf + n_bins + 1 + n_f + FX_ALIGN_SLACK
            ncs = nt * nc + n_c + FX_ALIGN_SLACK
            if nfs <= SCORE_STACK_SUMS and ncs <= SCORE_STACK_SUMS:
                # a small call's sums on the stack (two callocs are a tenth
                # of its time)
                memset(fstack, 0, nfs * sizeof(double))
                memset(cstack, 0, ncs * sizeof(int64_t))
                fsums = fx_align64(fstack)
                counts = <int64_t *>fx_align64(<double *>cstack)
            else:
                fbase = <double *>calloc(nfs, sizeof(double))
                cbase = <int64_t *>calloc(ncs, sizeof(int64_t))
                if fbase == NULL or cbase == NULL:
                    raise MemoryError(_sums_memory_message(max_rank, n_bins,
                                                           (nfs + ncs) * sizeof(double)))
                fsums = fx_align64(fbase)
                counts = <int64_t *>fx_align64(<double *>cbase)
            for k in range(n_bins + 1):
                fsums[nblk * nf + k] = <double>k / <double>n_bins
            a.edges = fsums + nblk * nf
            # each label is checked where its row is read: the sums stay in
            # this scratch until every block has run, so a bad label adds
            # nothing to the totals
            bad = _score_run(fn, &a, R, B, FX_SCORE_STATE, nt, fsums, nf, counts, nc, bads)
            if bad >= 0:
                return bad, None, None
            if metrics is not None:
                ftot_c = fsums + nblk * nf + n_bins + 1
                ctot_c = counts + nt * nc
                _add_totals(fsums, nblk, nf, counts, nt, nc, ftot_c, n_f, ctot_c, n_c)
                return -1, _metrics(ftot_c, ctot_c, max_rank, n_bins, m_topk, m_names,
                                    m_keys), None
            # the totals written through the arrays' buffers (no typed
            # memoryview: its set-up would be most of a small call's time)
            if add_f is not None:
                ftot, ctot = add_f, add_c
            else:
                ftot = np.zeros(n_f, np.float64)
                ctot = np.zeros(n_c, np.int64)
            fx_get_buffer(ftot, &fb, True)
            try:
                fx_get_buffer(ctot, &cb, True)
                try:
                    _add_totals(fsums, nblk, nf, counts, nt, nc, <double *>fb.buf, n_f,
                                <int64_t *>cb.buf, n_c)
                finally:
                    PyBuffer_Release(&cb)
            finally:
                PyBuffer_Release(&fb)
            if add_f is not None:
                return -1, None, None
            return -1, ftot, ctot
        finally:
            free(fbase)
            free(cbase)
            for o in range(n_o):
                PyBuffer_Release(&obs[o])
            PyBuffer_Release(&lb)
    finally:
        PyBuffer_Release(&xb)


def score_states(x, zy, fstates, istates, bint bf16, int tmode, double t, int n_threads=1):
    """The partial state of each row of a block of classes, for a class axis
    split over blocks (see score_row_state in fx_score.h): for row r of the
    2-d logits x (R, C) and its label's z zy[r] (NaN: ignored, or the label
    outside the block), fstates[5 r : 5 r + 5] = (largest z, k, s, d, q) and
    istates[4 r : 4 r + 4] = (count above zy, first argmax, first NaN or -1,
    bad), indices within the block.

    x: (R, C), C > 0, float64, float32 or 2-byte storage (float16 as its
    bits, or bfloat16 with bf16), any strides, aligned (IN); zy: R float64
    (IN); fstates: 5 R float64, istates: 4 R int64, C-contiguous (OUT).
    tmode, t: z = x (0), x * t (1) or x / t (2).
    """
    cdef Py_buffer xb, zb, fb, ib
    cdef Py_ssize_t R, C, rs, sc, r, nb, b0 = 0, b1
    cdef int nt
    cdef const double *zp
    cdef double *fp
    cdef int64_t *ip
    fx_get_buffer(x, &xb, False)
    try:
        if xb.ndim != 2 or xb.shape[1] == 0 or xb.itemsize not in (2, 4, 8):
            raise ValueError("score_states: 2-d logits with at least one class are expected")
        R, C = xb.shape[0], xb.shape[1]
        if (xb.strides[0] % xb.itemsize or xb.strides[1] % xb.itemsize
                or <size_t>xb.buf % <size_t>xb.itemsize):
            raise ValueError("score_states: the logits must be aligned, with strides of "
                             "whole elements")
        rs, sc = xb.strides[0] // xb.itemsize, xb.strides[1] // xb.itemsize
        fx_get_buffer(zy, &zb, False)
        fx_get_buffer(fstates, &fb, True)
        fx_get_buffer(istates, &ib, True)
        try:
            if (zb.len != 8 * R or zb.itemsize != 8 or zb.format[0] != b'd'
                    or fb.len != 40 * R or fb.itemsize != 8 or fb.format[0] != b'd'
                    or ib.len != 32 * R or ib.itemsize != 8 or ib.format[0] not in b'lq'
                    or not (_contiguous(&zb) and _contiguous(&fb) and _contiguous(&ib))
                    or <size_t>zb.buf % 8 or <size_t>fb.buf % 8 or <size_t>ib.buf % 8):
                raise ValueError("score_states: zy, fstates and istates must be contiguous, "
                                 "aligned float64 (R), float64 (5 R) and int64 (4 R) arrays")
            zp = <const double *>zb.buf
            fp = <double *>fb.buf
            ip = <int64_t *>ib.buf
            nt = _threads(n_threads, R * C)
            nb = _batch(C, nt, 1)
            while b0 < R:
                b1 = _next_batch(b0, R, nb)
                with nogil:
                    if xb.itemsize == 8:
                        for r in prange(b0, b1, num_threads=nt, schedule='guided'):
                            _score_row_state(<const double *>xb.buf + r * rs, C, sc, zp[r], bf16,
                                             tmode, t, fp + 5 * r, ip + 4 * r)
                    elif xb.itemsize == 4:
                        for r in prange(b0, b1, num_threads=nt, schedule='guided'):
                            _score_row_state(<const float *>xb.buf + r * rs, C, sc,
                                             <float>zp[r], bf16, tmode, <float>t, fp + 5 * r,
                                             ip + 4 * r)
                    else:
                        for r in prange(b0, b1, num_threads=nt, schedule='guided'):
                            _score_row_state(<const uint16_t *>xb.buf + r * rs, C, sc,
                                             <float>zp[r], bf16, tmode, <float>t, fp + 5 * r,
                                             ip + 4 * r)
                b0 = b1
        finally:
            PyBuffer_Release(&ib)
            PyBuffer_Release(&fb)
            PyBuffer_Release(&zb)
    finally:
        PyBuffer_Release(&xb)


cdef inline bint _contiguous(const Py_buffer *b) noexcept:
    """A 1-d (or 0-length) buffer without gaps, or any C-contiguous one."""
    cdef Py_ssize_t k, step = b.itemsize
    for k in range(b.ndim - 1, -1, -1):
        if b.shape[k] > 1 and b.strides[k] != step:
            return False
        step *= b.shape[k]
    return True
