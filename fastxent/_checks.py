"""Argument checks shared by the public functions.

The kernels never raise; everything a caller can get wrong is caught here
with an exception that names the argument (or, where fastxent stands in for
a SciPy function, with SciPy's own message).  Each check returns the
checked value in the form the layout layer (_layout) takes: arrays in a
native, aligned dtype the kernels support, axes as sorted tuples, dtypes
from precomputed tables.  Plain float64 and float32 ndarrays, the common
case, pass each check in a few attribute lookups.
"""
import math
import numbers
import operator
import reprlib

import numpy as np

from ._arrays import aligned

# dtypes the kernels compute in; anything else is converted or refused
KERNEL_DTYPES = frozenset(map(np.dtype, (np.float16, np.float32, np.float64)))
F32 = np.dtype(np.float32)
F64 = np.dtype(np.float64)
_I64 = np.dtype(np.int64)
_I64_MAX = np.iinfo(np.int64).max
_NDARRAY = np.ndarray

# native-order numeric dtypes that as_array passes through untouched (when
# aligned); float128, byte-swapped and non-numeric dtypes take the full check
READY_DTYPES = frozenset([np.dtype(np.bool_)] + [np.dtype(t) for t in np.typecodes["AllInteger"]]
                         + list(KERNEL_DTYPES))

# NumPy 2 promotes arrays by dtype alone (NEP 50); NumPy 1 looks at the
# values of 0-d arrays, so there every promotion asks np.result_type
_BY_DTYPE = np.lib.NumpyVersion(np.__version__) >= "2.0.0"
_PROMOTED: dict[tuple[np.dtype, ...], np.dtype] = {}


def promote(a, b):
    """np.result_type of arrays `a` and `b`, from a table filled on first
    use."""
    if not _BY_DTYPE:
        return np.result_type(a, b)
    da, db = a.dtype, b.dtype
    if da is db:   # one dtype object: no table look-up
        return da
    return promote_dtypes(da, db)


def promote_dtypes(*dtypes):
    """np.result_type of `dtypes`, from a table filled on first use."""
    dtype = _PROMOTED.get(dtypes)
    if dtype is None:
        dtype = _PROMOTED[dtypes] = np.result_type(*dtypes)
    return dtype


# np.exp's result dtype: int8 -> float16, int16 -> float32, wider integers
# -> float64, floats unchanged
_EXP_DTYPE = {d: np.result_type(d, np.float16) for d in READY_DTYPES}


def exp_result_dtype(dtype):
    """The dtype NumPy's exp gives for `dtype`: int8 -> float16,
    int16 -> float32, wider integers -> float64, floats unchanged."""
    return _EXP_DTYPE[dtype]


def plain_array(x, name):
    """``np.asarray(x)``, with a ValueError naming `name` for a ragged
    nesting (NumPy's own message names nothing)."""
    try:
        return np.asarray(x)
    except ValueError as exc:
        raise ValueError(f"{name} is not an array: {exc}") from None


def as_array(x, name):
    """`x` as an ndarray (no copy for an ndarray), refusing non-numeric and
    complex data with a TypeError that names the argument."""
    if type(x) is _NDARRAY:
        d = x.dtype
        # float64 and float32 by identity first: a dtype's hash costs more
        if (d is F64 or d is F32 or d in READY_DTYPES) and aligned(x):
            return x
    else:
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
    elif not aligned(x):
        # the kernels load through typed pointers: misaligned data (an odd
        # offset into a buffer, a field of a packed record) are copied here,
        # before any broadcasting, so that the copy has the caller's size
        x = np.array(x)
    if kind == "f" and x.dtype not in KERNEL_DTYPES:
        raise TypeError(f"{name} has dtype {x.dtype}; fastxent supports float16, float32 "
                        "and float64 (convert explicitly to choose the precision)")
    return x


def float_input(x, name):
    """`x` as a float16, float32 or float64 array (as_array, then integers
    and bools refused, as PyTorch refuses them)."""
    if type(x) is _NDARRAY:
        d = x.dtype
        if (d is F64 or d is F32 or d in KERNEL_DTYPES) and aligned(x):
            return x   # as_array's first test, on the kernel dtypes
    x = as_array(x, name)
    if x.dtype not in KERNEL_DTYPES:
        raise TypeError(f"{name} must be a float16, float32 or float64 array, got dtype {x.dtype} "
                        "(PyTorch refuses integer input too)")
    return x


INT64_MIN, INT64_MAX = -2**63, 2**63 - 1


def check_ignore_index(ignore_index):
    """`ignore_index` of the PyTorch losses as a Python int, as PyTorch takes
    it (an int64): TypeError for a bool or a number that is not an integer
    (1.5, -100.0), ValueError for one outside the int64 range."""
    # an integer of any type, a 0-d integer array too (PyTorch takes one)
    try:
        if isinstance(ignore_index, (bool, np.bool_)):
            raise TypeError
        value = operator.index(ignore_index)
    except TypeError:
        raise TypeError(f"ignore_index must be an integer, got {ignore_index!r}") from None
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"ignore_index must be in the int64 range [-2**63, 2**63 - 1], "
                         f"got {value}")
    return value


def check_reduction(reduction, allowed=("none", "mean", "sum")):
    """Refuse a `reduction` that is not one of `allowed`."""
    if not isinstance(reduction, str) or reduction not in allowed:
        raise ValueError(f"reduction must be one of {allowed}, got {reduction!r}")


def _axis_index(ax, ndim, name="axis", msg_prefix=None):
    """The axis `ax` (an integer) of `ndim` dims as 0..ndim-1: TypeError for
    a non-integer or a bool (an int to Python, not to NumPy and scipy.special,
    which refuse it; scipy.stats.entropy takes True as 1), AxisError (a
    ValueError and IndexError, `msg_prefix` starting its message) out of
    range."""
    if type(ax) is int and -ndim <= ax < ndim:
        return ax % ndim
    if isinstance(ax, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, got {ax!r}")
    try:
        ax = int(ax.__index__())
    except (AttributeError, TypeError):
        raise TypeError(f"'{type(ax).__name__}' object cannot be interpreted as an "
                        "integer") from None
    if not -ndim <= ax < ndim:
        raise np.exceptions.AxisError(ax, ndim, msg_prefix)
    return ax % ndim


def normalize_axes(axis, ndim, name="axis"):
    """Sorted tuple of the distinct axes named by `axis` (None: all).

    Raises AxisError (a ValueError and IndexError) for an axis out of range,
    ValueError for a repeated axis and TypeError for a non-integer, with
    NumPy's messages (which SciPy's reductions pass on).
    """
    if type(axis) is int and -ndim <= axis < ndim:
        return (axis % ndim,)
    if axis is None:
        return tuple(range(ndim))
    items = axis if isinstance(axis, tuple) else (axis,)
    out = [_axis_index(ax, ndim, name) for ax in items]
    if len(set(out)) != len(out):
        exc = ValueError(f"duplicate value in '{name}'")
        exc.add_note(f"{name}={axis!r}")
        raise exc
    return tuple(sorted(out))


def single_axis(axis, ndim, msg_prefix=None):
    """The one axis (an int) that `axis` names of `ndim`; `msg_prefix`
    starts the message of an AxisError (SciPy's entropy says 'source')."""
    if type(axis) is int and -ndim <= axis < ndim:
        return axis % ndim
    if isinstance(axis, tuple) or axis is None:
        raise TypeError(f"axis must be an integer, got {axis!r}")
    return _axis_index(axis, ndim, "axis", msg_prefix)


def entropy_axes(axis, ndim):
    """scipy.stats.entropy's `axis` of `ndim` dims: None, an int (checked
    later, by single_axis) or, for a tuple, the axes to reduce together: None
    for () and for every axis (SciPy reduces all of them for both), the int
    for one, else their sorted tuple.  SciPy's errors: AxisError for an axis
    out of range, ValueError for a repeated one.  A list is taken as a
    tuple, as SciPy takes it."""
    if type(axis) is list:
        axis = tuple(axis)
    if not isinstance(axis, tuple):
        return axis
    out = [_axis_index(ax, ndim, "axis", "source") for ax in axis]
    if len(set(out)) != len(out):
        raise ValueError("repeated axis in `source` argument")
    if len(out) in (0, ndim):
        return None
    return out[0] if len(out) == 1 else tuple(sorted(out))


# scipy.special.logsumexp's and scipy.stats.entropy's message
SCIPY_BROADCAST = "Array shapes are incompatible for broadcasting."


def broadcast_shape(arrays, names, message=SCIPY_BROADCAST):
    """The shape `arrays` (named `names`) broadcast to.  Otherwise raises
    ValueError with `message`, in which {0}, {1}, ... stand for the shapes;
    SciPy's message gets a note that names the arguments and their shapes."""
    shape = arrays[0].shape
    for a in arrays[1:]:
        if a.shape != shape:
            break
    else:
        return shape
    try:
        return np.broadcast_shapes(*(a.shape for a in arrays))
    except ValueError:
        exc = ValueError(message.format(*(a.shape for a in arrays)))
        if message == SCIPY_BROADCAST:
            exc.add_note(" and ".join(f"{n} of shape {a.shape}" for a, n in zip(arrays, names))
                         + " do not broadcast")
        raise exc from None


def broadcast_to_shape(a, shape, name):
    """`a` as a read-only view of `shape` (stride 0 where broadcast), or a
    ValueError naming it when it does not broadcast to `shape`."""
    if a.shape == shape:
        return a
    try:
        ok = np.broadcast_shapes(a.shape, shape) == tuple(shape)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{name} of shape {a.shape} does not broadcast to the input's shape "
                         f"{tuple(shape)}")
    return np.broadcast_to(a, shape)


def check_base(base):
    """Refuse a logarithm base that is not a positive real number (SciPy's
    ValueError message; SciPy takes NaN and True, fastxent refuses them).
    Returns it as a float; a 0-d real array is taken as its value, as
    SciPy takes it."""
    if (type(base) is np.ndarray and base.ndim == 0 and base.dtype.kind in "iuf"):
        base = base.item()
    if isinstance(base, (bool, np.bool_)) or not isinstance(base, numbers.Real):
        raise TypeError(f"base must be a positive real number or None, got {base!r}")
    if not base > 0:
        raise ValueError("`base` must be a positive number or `None`.")
    try:
        return float(base)
    except OverflowError:   # an int beyond float64: its logarithm is finite
        return base


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

    A broadcast view is judged by the values it holds, not by its shape.
    """
    dtype = np.dtype(dtype)
    if a.ndim and 0 in a.strides:
        a = a[tuple(slice(0, 1) if s == 0 else slice(None) for s in a.strides)]
    if dtype == np.float32 and a.dtype == np.float64:
        f = np.abs(a)
        finfo = np.finfo(np.float32)
        outside = (f > float(finfo.max)) & (f < np.inf) | (f < float(finfo.tiny)) & (f > 0)
        return np.dtype(np.float64) if outside.any() else dtype
    if dtype != np.float16 or a.dtype == np.float16:
        return dtype
    with np.errstate(over="ignore", invalid="ignore"):
        fits = np.array_equal(a.astype(np.float16), a, equal_nan=True)
    return dtype if fits else F32


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


def grad_array(grad_out, x):
    """The array a gradient of `x` goes to: the checked `grad_out`, or a new
    array like `x`."""
    if grad_out is None:
        return np.empty_like(x)
    return check_out(grad_out, x.shape, x.dtype, "grad_out")


def check_temperature(temperature):
    """`temperature` as a positive finite float: TypeError for what is not
    a real number (a bool, a string), ValueError for 0, a negative number,
    NaN, inf and an int beyond float64."""
    if type(temperature) is float and 0.0 < temperature < math.inf:
        return temperature
    if (isinstance(temperature, (bool, np.bool_))
            or not isinstance(temperature, (numbers.Real, np.floating, np.integer))):
        raise TypeError(f"temperature: expected a positive finite number, got {temperature!r}")
    try:
        t = float(temperature)
    except OverflowError:   # an int beyond float64
        t = math.inf
    if not 0.0 < t < math.inf:
        raise ValueError(f"temperature: must be a positive finite number, got {temperature!r}")
    return t


def check_label_smoothing(label_smoothing):
    """`label_smoothing` as a float in [0, 1]: TypeError for what is not a
    real number (strings, arrays, None), as PyTorch raises (a bool is its 0
    or 1, as there); ValueError outside [0, 1] (PyTorch takes a negative one
    as 0, and raises OverflowError for an int beyond float64)."""
    if isinstance(label_smoothing, np.bool_):
        label_smoothing = bool(label_smoothing)
    if not isinstance(label_smoothing, numbers.Real):
        raise TypeError(f"label_smoothing must be a real number, got {label_smoothing!r}")
    if not 0.0 <= label_smoothing <= 1.0:   # NaN too; exact for any int
        raise ValueError(f"label_smoothing must be between 0.0 and 1.0, got {label_smoothing!r}")
    return float(label_smoothing)


def check_flag(value, name):
    """A bool argument given as something other than True or False: a NumPy
    bool is taken, anything else is a TypeError that names the argument, as
    PyTorch's bool arguments are (a truthy string or number would otherwise
    switch the option on, an array raise NumPy's truth-value error).  The
    callers test ``value is True or value is False`` first, which costs a
    small call nothing."""
    if isinstance(value, np.bool_):
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {type(value).__name__} "
                    f"{reprlib.repr(value)}")


def unwanted_grad_out():
    """Refuse a `grad_out` given without ``return_grad=True`` (no gradient
    is computed then: it would be left as it was, silently)."""
    raise ValueError("grad_out is given but return_grad is False: pass return_grad=True "
                     "to compute the gradient into it")


def class_weight(weight, C, dtype):
    """The checked class weights (a 1-d array of length C), converted to
    `dtype` (unless None); None without weights."""
    if weight is None:
        return None
    w = as_array(weight, "weight")
    if w.ndim != 1 or w.shape[0] != C:
        raise ValueError(f"weight must be a 1-d array of length C={C}, got shape {w.shape}")
    return w if dtype is None else w.astype(dtype, copy=False)


def class_axis(shape):
    """(C, rows shape) of an input of `shape` with PyTorch's class axis:
    ``(C,)`` or ``(N, C, d1, ...)``, whose rows shape is ``()`` or
    ``(N, d1, ...)``.  `shape` has at least one dim."""
    n = len(shape)
    if n == 2:   # (N, C): the usual case, one slice
        return shape[1], shape[:1]
    if n == 1:
        return shape[0], ()
    return shape[1], shape[:1] + shape[2:]


def class_labels(target, C, batch_shape, x_shape):
    """Class-index targets as int64 (no copy for int64) of the shape
    `batch_shape` of the rows of the input (of `x_shape`, with `C` classes:
    see class_axis).  Their range (each in [0, C) or ignore_index) is the
    kernel's to check, which reads them anyway (src/losses.pxi); the caller
    checks it where there is no kernel call (C == 0)."""
    if target.shape != batch_shape:
        raise ValueError(f"target has shape {target.shape}; class-index targets for input of "
                         f"shape {x_shape} must have shape {batch_shape}")
    dtype = target.dtype
    if dtype is _I64 or dtype == _I64:   # the usual labels: no conversion
        return target
    # any byte order: a byte-swapped uint64 beyond int64 must not wrap to a
    # negative label (2**64 - 1 would become -1, an ignore_index)
    if dtype.kind == "u" and dtype.itemsize == 8 and target.size and target.max() > _I64_MAX:
        big = target[target > _I64_MAX].flat[0]
        raise IndexError(f"Target {int(big)} is out of bounds: class indices must be in "
                         f"[0, {C})")
    return target.astype(_I64)
