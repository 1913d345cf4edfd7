"""Argument checks shared by the public functions.

The kernels never raise; everything a caller can get wrong is caught here
with an exception that names the argument.  Here too is what keeps the
kernels' typed pointers valid: every array they read or write is aligned
and walks whole elements (`as_array`, `kernel_view`, `kernel_out`), and no
output they write overlaps memory they read, except where a kernel is made
to work in place (`kernel_out`).
"""
import numpy as np

# dtypes the kernels compute in; anything else is converted or refused
KERNEL_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def as_array(x, name):
    """`x` as an ndarray (no copy for an ndarray), refusing non-numeric and
    complex data with a TypeError that names the argument."""
    if type(x) is not np.ndarray:
        # subclasses (np.matrix, memmap) as plain views; masks are dropped, as
        # SciPy does
        try:
            x = np.asarray(x)
        except ValueError as exc:  # ragged nesting: NumPy's and SciPy's error
            raise ValueError(f"{name} is not an array: {exc}") from None
        except TypeError as exc:
            raise TypeError(f"{name} must be an array of real numbers: {exc}") from None
    kind = x.dtype.kind
    if kind == "c":
        raise TypeError(f"{name} has complex dtype {x.dtype}; complex input is not supported "
                        "(fastxent computes on real floating-point data only)")
    if kind not in "biuf":
        raise TypeError(f"{name} must be an array of real numbers, got dtype {x.dtype}")
    if not x.dtype.isnative:
        # the kernels read native byte order; a byte-swapped array is converted
        x = x.astype(x.dtype.newbyteorder("="))
    elif not x.flags.aligned:
        # the kernels load through typed pointers: misaligned data (an odd
        # offset into a buffer, a field of a packed record) are copied here,
        # before any broadcasting, so that the copy has the caller's size
        x = np.array(x)
    if kind == "f" and x.dtype not in KERNEL_DTYPES:
        raise TypeError(f"{name} has dtype {x.dtype}; fastxent supports float16, float32 "
                        "and float64 (convert explicitly to choose the precision)")
    return x


def weight_dtype(a, dtype):
    """The dtype to compute with weights `a` for data of `dtype`: `dtype`, or

    * float32 for float16 data whose weights float16 would change (a weight
      that overflows or loses digits there); float16 data compute in float32
      anyway, so a wider weight keeps its value as the reference's;
    * float64 for float32 data whose float64 weights lie outside float32's
      normal range (1e300 would become inf, and inf * 0 NaN; 1e-300 would
      become 0); float32 losses are exact in float64 (the reference's
      precision) and PyTorch forms such a weight's products in float64.
      A weight that only loses digits in float32 is rounded (one rounding
      of the result's precision), which keeps the float32 kernels.
    """
    dtype = np.dtype(dtype)
    if dtype == np.float32 and a.dtype == np.float64:
        f = np.abs(a)
        finfo = np.finfo(np.float32)
        outside = (f > float(finfo.max)) & (f < np.inf) | (f < float(finfo.tiny)) & (f > 0)
        return np.dtype(np.float64) if outside.any() else dtype
    if dtype != np.float16 or a.dtype == np.float16:
        return dtype
    with np.errstate(over="ignore", invalid="ignore"):
        fits = np.array_equal(a.astype(np.float16), a, equal_nan=True)
    return dtype if fits else np.dtype(np.float32)


def exp_result_dtype(dtype):
    """The dtype NumPy's exp gives for `dtype`: int8 -> float16,
    int16 -> float32, wider integers -> float64, floats unchanged."""
    return np.result_type(dtype, np.float16)


def check_out(out, shape, dtype, name="out"):
    """Check a caller's output array: an ndarray of exactly `shape` and
    `dtype`, writeable."""
    if not isinstance(out, np.ndarray):
        raise ValueError(f"{name} must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != tuple(shape):
        raise ValueError(f"{name} has shape {out.shape}, expected {tuple(shape)}")
    if out.dtype != dtype:
        raise ValueError(f"{name} has dtype {out.dtype}, expected {np.dtype(dtype)}")
    if not out.flags.writeable:
        raise ValueError(f"{name} is read-only")
    return out


def _typed(a):
    """True if the kernels can walk `a` through a typed pointer: aligned data
    and strides that are whole elements."""
    if a.flags.aligned and a.dtype.alignment == a.itemsize:
        return True   # aligned strides are then whole elements too
    return a.flags.aligned and not any(s % a.itemsize for s in a.strides)


def kernel_view(a):
    """The array the kernels read: float16 as its bits (a view), others as is.
    Misaligned data and strides that are not a multiple of the itemsize
    (views into records) cannot be read through a typed pointer and are
    copied.  For inputs only: an output goes through `kernel_out` first."""
    if not _typed(a):
        a = np.array(a)
    return a.view(np.uint16) if a.dtype == np.float16 else a


_NDARRAY = np.ndarray

# candidate solutions np.shares_memory may try before it gives up; ample for
# the views met in practice, and it bounds the time spent on contrived ones
# (which are then taken to overlap)
_MAX_WORK = 1 << 12


def _same_elements(a, b):
    """True if `a` and `b` are the same elements of the same memory."""
    return (a.dtype == b.dtype and a.shape == b.shape and a.strides == b.strides
            and a.__array_interface__["data"][0] == b.__array_interface__["data"][0])


def overlaps(out, a, in_place=False):
    """True if writing `out` may change memory that the kernel reads from
    `a` (None: nothing).  With `in_place`, `out` may be exactly `a`: the
    kernel reads each element before it writes the same element of `out` and
    never reads it again.

    Cheap in the usual cases: views of two different allocations; then the
    bounds (`np.may_share_memory`); the exact answer
    (`np.shares_memory`) only where the bounds meet.
    """
    if out is a:
        return not in_place
    if a is None:
        return False
    # views of two different allocations are disjoint: NumPy keeps a view's
    # base at the array that allocated its memory (unless that memory is
    # another object's: a buffer, a memory map)
    p, q = out.base, a.base
    p = out if p is None else p
    q = a if q is None else q
    if (p is not q and type(p) is _NDARRAY and type(q) is _NDARRAY
            and p.flags.owndata and q.flags.owndata):
        return False
    if not np.may_share_memory(out, a):
        return False
    if in_place and _same_elements(out, a):
        return False
    try:
        return bool(np.shares_memory(out, a, max_work=_MAX_WORK))
    except np.exceptions.TooHardError:
        return True


def kernel_out(out, reads, in_place=None):
    """The array a kernel writes for the caller's output `out` while it reads
    the arrays `reads` (None entries are skipped): `out` itself, or a new
    array when `out` is misaligned, does not walk whole elements, or
    overlaps any of `reads` -- other than being exactly `in_place` (the
    input, of out's shape, of a kernel that works in place; see `overlaps`).

    The new array has out's shape and dtype and the memory order of
    `in_place` (as the output the call allocates without `out`, so that the
    kernel walks both alike), else of `out`.  The caller copies it into
    `out` after the call, as NumPy's ufuncs buffer an output that overlaps
    their input: the kernels never meet overlap or misalignment.
    """
    if _typed(out) and not any(overlaps(out, a, a is in_place) for a in reads):
        return out
    return np.empty_like(out if in_place is None else in_place, dtype=out.dtype, subok=False)
