"""Argument checks shared by the public functions.

The kernels never raise; everything a caller can get wrong is caught here
with an exception that names the argument.
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
    if kind == "f" and x.dtype not in KERNEL_DTYPES:
        raise TypeError(f"{name} has dtype {x.dtype}; fastxent supports float16, float32 "
                        "and float64 (convert explicitly to choose the precision)")
    return x


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
    if any(s % out.itemsize for s in out.strides):
        raise ValueError(f"{name} has strides {out.strides} that are not a multiple of its itemsize")
    return out


def kernel_view(a):
    """The array the kernels read: float16 as its bits (a view), others as is.
    Strides that are not a multiple of the itemsize (views into records)
    cannot be walked by element and are copied."""
    if any(s % a.itemsize for s in a.strides):
        a = np.array(a)
    return a.view(np.uint16) if a.dtype == np.float16 else a
