# cython: language_level=3, autotestdict=False
"""Facts about ndarrays that the layout and check layers ask on every call.

Each answer comes from the array's own fields through NumPy's C API.  In
Python each question costs an object: ``a.flags`` builds a flags object,
``a.shape`` a tuple -- about 50 ns apiece, a sizeable part of a 1 x 10 call,
which asks several of them.  Nothing here reads or writes array data.
"""
cimport numpy as cnp

cnp.import_array()

# both flags at once: the layout layer's fast path needs both
cdef int _C_ALIGNED = cnp.NPY_ARRAY_C_CONTIGUOUS | cnp.NPY_ARRAY_ALIGNED


def c_aligned(arrays):
    """True if every entry of the tuple `arrays` is None or an ndarray whose
    data are C-contiguous and aligned (NumPy's flags C_CONTIGUOUS and
    ALIGNED): the arrays the kernels can take as they are."""
    cdef object a
    for a in <tuple?>arrays:
        if a is None:
            continue
        if not cnp.PyArray_Check(a):
            return False
        if cnp.PyArray_FLAGS(<cnp.ndarray>a) & _C_ALIGNED != _C_ALIGNED:
            return False
    return True


def c_contiguous(a):
    """``a.flags.c_contiguous`` of ndarray `a`."""
    return cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray?>a)


def aligned(a):
    """``a.flags.aligned`` of ndarray `a`."""
    return cnp.PyArray_ISALIGNED(<cnp.ndarray?>a)
