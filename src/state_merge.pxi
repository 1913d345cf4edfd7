# Driver of the merge of partial row states over blocks of classes (the
# aggregate step of the Dask reductions over a chunked class axis); the
# arithmetic is in fx_state_merge.h.  One thread: a Dask task is one
# thread's work already.

from fx_kernels cimport *
from libc.stdlib cimport malloc, free
cimport numpy as cnp


def merge_states(int kind, list leaves, out):
    """Merge the partial states of R rows over blocks into `out`: each of
    `leaves` holds the records of one or more blocks, (blocks, R) in C
    order; `out` gets one record per row.  The kinds of record, as
    fx_state_merge.h describes them: 0, log-sum-exp (6 float64 fields);
    1, scorer (5 float64 fields, then 5 int64); 2, softmax_entropy (4
    float64); 3 and 4, softmax_cross_entropy and softmax_kl_div (7 float64);
    5, cross_entropy (6 float64).

    leaves: C-contiguous, aligned ndarrays of records of the kind's size,
    each (n, R) with n >= 1 (IN); out: a C-contiguous, aligned, writable
    ndarray of R such records (OUT).
    """
    cdef Py_ssize_t words, size, R, B = 0, b = 0, i, n
    cdef const char **blk
    cdef char *op
    cdef object a
    if kind == FX_MERGE_LSE or kind == FX_MERGE_CE:
        words = FX_MERGE_LSE_WORDS
    elif kind == FX_MERGE_SCORE:
        words = FX_MERGE_SCORE_WORDS
    elif kind == FX_MERGE_ENTROPY:
        words = FX_MERGE_ENTROPY_WORDS
    elif kind == FX_MERGE_XENT or kind == FX_MERGE_KL:
        words = FX_MERGE_PAIR_WORDS
    else:
        raise ValueError(f"merge_states: a kind from 0 to 5 is expected, got {kind}")
    size = 8 * words
    _merge_operand(out, size, True)
    R = cnp.PyArray_SIZE(<cnp.ndarray>out)
    if not leaves:
        raise ValueError("merge_states: no states to merge")
    for a in leaves:
        _merge_operand(a, size, False)
        if (cnp.PyArray_NDIM(<cnp.ndarray>a) != 2 or cnp.PyArray_DIM(<cnp.ndarray>a, 1) != R
                or cnp.PyArray_DIM(<cnp.ndarray>a, 0) < 1):
            raise ValueError(f"merge_states: every state must be (blocks, {R}) records")
        B += cnp.PyArray_DIM(<cnp.ndarray>a, 0)
    blk = <const char **>malloc(B * sizeof(char *))
    if blk == NULL:
        raise no_memory(B * sizeof(char *))
    try:
        for a in leaves:
            n = cnp.PyArray_DIM(<cnp.ndarray>a, 0)
            for i in range(n):
                blk[b] = <const char *>cnp.PyArray_DATA(<cnp.ndarray>a) + i * R * size
                b += 1
        op = <char *>cnp.PyArray_DATA(<cnp.ndarray>out)
        with nogil:
            if kind == FX_MERGE_LSE or kind == FX_MERGE_CE:
                fx_merge_lse_states(blk, B, R, kind, op)
            elif kind == FX_MERGE_SCORE:
                fx_merge_score_states(blk, B, R, op)
            else:
                fx_merge_softmax_states(blk, B, R, kind, op)
    finally:
        free(blk)


cdef int _merge_operand(object a, Py_ssize_t size, bint writable) except -1:
    """`a`: an ndarray of records of `size` bytes, C-contiguous and aligned
    (and writable)."""
    if not cnp.PyArray_Check(a):
        raise TypeError("merge_states: the states must be ndarrays")
    cdef cnp.ndarray v = <cnp.ndarray>a
    cdef int need = cnp.NPY_ARRAY_C_CONTIGUOUS | cnp.NPY_ARRAY_ALIGNED
    if writable:
        need |= cnp.NPY_ARRAY_WRITEABLE
    # a record dtype's own alignment may be 1: its 8-byte fields are read
    # as such, so the address is checked here
    if (cnp.PyArray_ITEMSIZE(v) != size or cnp.PyArray_FLAGS(v) & need != need
            or <size_t>cnp.PyArray_DATA(v) % 8):
        raise ValueError(f"merge_states: C-contiguous, aligned{', writable' if writable else ''}"
                         f" records of {size} bytes are expected")
    return 0
