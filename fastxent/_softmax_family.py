"""logsumexp, softmax and log_softmax with scipy.special's semantics.

Python checks arguments, allocates outputs and plans views; the compiled
kernels (src/softmax_family.pxi, src/fx_softmax_family.h) compute.
"""
import numpy as np

from . import _dispatch
from ._checks import as_array, check_out, exp_result_dtype, kernel_out, kernel_view, overlaps
from ._layout import empty_like_layout, normalize_axes
from ._reduction import run

__all__ = ["logsumexp", "softmax", "log_softmax"]

_F64 = np.dtype(np.float64)
# dtypes whose 2-d C-contiguous last-axis calls take the short path; where
# a dtype's alignment is its size, an aligned array's strides are whole
# elements, so that the short path's one flag check covers both
_FAST_DTYPES = {d: key for d, key in ((np.dtype(np.float32), "float"), (_F64, "double"))
                if d.alignment == d.itemsize}


def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False, *,
              out=None, n_threads=None):
    r"""Log of the sum of exponentials, ``log(sum(b * exp(a), axis))``.

    Same arguments, results, special values and return types as
    :func:`scipy.special.logsumexp`, computed in one parallel pass without
    temporaries.

    Parameters
    ----------
    a : array_like
        Real input. Integer and bool input is promoted to float64, as SciPy
        does; float16, float32 and float64 are kept.
    axis : None or int or tuple of ints, optional
        Axes to sum over; None (default) sums over all.
    b : array_like, optional
        Weights of ``exp(a)``, broadcast against `a`; may be negative (see
        `return_sign`). Elements with ``b == 0`` are ignored, even where `a`
        is +inf.
    keepdims : bool, optional
        Keep the reduced axes as length-1 dimensions.
    return_sign : bool, optional
        Also return the sign of the sum; without it a negative sum gives NaN.
    out : ndarray, optional
        Array of exactly the result's shape and dtype to write the result to
        (keyword only). It is returned, also where SciPy returns a scalar.
        It may share memory with `a` or `b` in any way, or be misaligned:
        the result is then computed into a new array and copied to it.
    n_threads : int, optional
        Number of threads (keyword only); default: the OpenMP default
        (``OMP_NUM_THREADS``, threadpoolctl). Results do not depend on it.

    Returns
    -------
    res : ndarray or NumPy scalar
        The log of the (absolute value of the) sum; a NumPy scalar when the
        result is 0-d.
    sgn : ndarray or NumPy scalar
        Only with ``return_sign``: +1, 0 or -1 (NaN for NaN input).

    Raises
    ------
    TypeError
        For complex, non-numeric or float128 input.
    numpy.exceptions.AxisError
        For an axis out of range.
    ValueError
        For `b` that does not broadcast against `a`, a repeated axis, a bad
        `out` or `n_threads`.

    See Also
    --------
    scipy.special.logsumexp, torch.logsumexp, softmax, log_softmax

    Notes
    -----
    With :math:`m = \max_j a_j` over the elements with :math:`b_j \ne 0`,
    :math:`k = \sum_{a_j = m} b_j` and :math:`s = \sum_{a_j \ne m} b_j e^{a_j - m}`:

    .. math:: \operatorname{logsumexp}(a) = \log1p(s / k) + \log k + m

    Keeping the terms equal to the maximum apart keeps results near zero
    accurate (SciPy's formulation). Where this is not finite -- rows with
    +inf, rows of only -inf, cancelling weights -- the plain
    ``log(sum(b * exp(a)))`` is returned, as SciPy does: +inf for a row with
    +inf, -inf for a row of -inf (sign 0), NaN for a row with NaN. An empty
    `a` gives -inf (sign -1, as SciPy).

    float32 sums are accumulated in float32 SIMD lanes folded into float64
    every 2048 elements and the result is formed in float64; float16 input
    is read as is and computed in float32 (where SciPy computes in float16
    and overflows, e.g. a row of 100000 zeros gives ``log(100000)``, SciPy
    ``inf``).

    Examples
    --------
    >>> import numpy as np
    >>> import fastxent
    >>> float(fastxent.logsumexp(np.arange(10.0)))
    9.45862974442671
    >>> fastxent.logsumexp([[0.0, -np.inf], [1.0, 1.0]], axis=1)
    array([0.        , 1.69314718])
    >>> fastxent.logsumexp([1.0, 2.0], b=[1.0, -1.0], return_sign=True)
    (np.float64(1.5413248546129181), np.float64(-1.0))
    """
    # short path: the common call on a small matrix costs little more than
    # the kernel (no planning, no broadcasting).  Its rows are contiguous,
    # aligned and start on whole elements (not a record field; see
    # _FAST_DTYPES); other layouts take the planned path
    if (b is None and not return_sign and not keepdims
            and type(a) is np.ndarray and a.ndim == 2 and (axis == -1 or axis == 1)
            and type(axis) is int and a.size and a.strides[1] == a.itemsize
            and (flags := a.flags).aligned
            and (out is None or _fast_out(out, a.shape[:1], a, flags, False))):
        key = _FAST_DTYPES.get(a.dtype)
        if key is not None:
            res = np.empty(a.shape[0], a.dtype) if out is None else out
            _dispatch.active.logsumexp_rows[key](a, res, _dispatch.resolve_threads(n_threads))
            return res

    nt = _dispatch.resolve_threads(n_threads)
    a_in, b_in = a, b
    a = as_array(a, "a")
    if b is not None:
        b = as_array(b, "b")
        # promote as SciPy does: Python numbers are weak (float32 a with b=2.5
        # stays float32), integers and bools become float64
        dtype = np.result_type(*(v if isinstance(v, (int, float)) and not isinstance(v, bool)
                                 else arr for v, arr in ((a_in, a), (b_in, b))))
        if dtype.kind != "f":
            dtype = _F64
        try:
            shape = np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise ValueError(f"b with shape {b.shape} does not broadcast against a with "
                             f"shape {a.shape}") from None
        a = np.broadcast_to(a.astype(dtype, copy=False), shape)
        b = np.broadcast_to(b.astype(dtype, copy=False), shape)
    else:
        dtype = a.dtype if a.dtype.kind == "f" else _F64
        a = a.astype(dtype, copy=False)
    if a.ndim == 0:  # SciPy works on atleast_1d(a)
        a = a.reshape(1)
        b = b.reshape(1) if b is not None else None
    axes = normalize_axes(axis, a.ndim)
    kept_shape = tuple(1 if d in axes else n for d, n in enumerate(a.shape))
    res_shape = kept_shape if keepdims else tuple(n for d, n in enumerate(a.shape) if d not in axes)

    if out is not None:
        check_out(out, res_shape, dtype)
        res = kernel_out(out, [a, b])
    else:
        kept = [None if d in axes else d for d in range(a.ndim)]
        res = empty_like_layout(a, kept_shape, dtype, kept).reshape(res_shape) \
            if keepdims else empty_like_layout(a, res_shape, dtype, [d for d in kept if d is not None])
    sgn = np.empty(res_shape, dtype) if return_sign else None

    if a.size == 0:
        res[...] = -np.inf
        if sgn is not None:
            sgn[...] = -1.0  # SciPy: sign(-inf)
    else:
        kept_outs = [kernel_view(_with_kept_dims(res, axes, kept_shape, keepdims))]
        if sgn is not None:
            kept_outs.append(kernel_view(_with_kept_dims(sgn, axes, kept_shape, keepdims)))
        ins = [kernel_view(a)] + ([kernel_view(b)] if b is not None else [])
        kern = _dispatch.kernels().logsumexp

        def call(views, _full, kept_views):
            kern(views[0], kept_views[0], kept_views[1] if sgn is not None else None,
                 views[1] if b is not None else None, return_sign, nt)

        run(call, a.shape, axes, ins, [], kept_outs)

    if out is not None and res is not out:
        np.copyto(out, res)
        res = out
    if res.ndim == 0:
        # the sign is never the caller's output: a scalar, as SciPy returns
        sgn = sgn[()] if sgn is not None else None
        if out is None:
            res = res[()]
    return (res, sgn) if return_sign else res


def _fast_out(out, shape, x, x_flags, in_place):
    """An `out` of `shape` the short paths can write as it is while reading
    `x` (flags `x_flags`; `in_place`: out may be x itself).  Anything else
    goes through the full checks, which say what is wrong with it, or
    computes through a buffer."""
    if type(out) is not np.ndarray or out.shape != shape or out.dtype != x.dtype:
        return False
    f = out.flags
    if not (f.c_contiguous and f.writeable and f.aligned):
        return False
    if out is x:
        return in_place
    if f.owndata and x_flags.owndata:
        # two allocations: what overlaps() finds first, without its cost
        return True
    return not overlaps(out, x, in_place)


def _with_kept_dims(r, axes, kept_shape, keepdims):
    """The result with the reduced axes as length-1 dims: always a view."""
    if keepdims:
        return r
    if r.flags.c_contiguous:
        return r.reshape(kept_shape)
    return np.expand_dims(r, axes)


def _softmax_common(x, axis, out, n_threads, logarithm, name):
    if (type(x) is np.ndarray and x.ndim == 2 and (axis == -1 or axis == 1)
            and type(axis) is int and x.size and x.strides[1] == x.itemsize
            and (flags := x.flags).aligned
            and (out is None or _fast_out(out, x.shape, x, flags, True))):
        key = _FAST_DTYPES.get(x.dtype)
        if key is not None:  # short path, as in logsumexp
            res = np.empty_like(x) if out is None else out
            _dispatch.active.softmax_rows[key](x, res, logarithm,
                                               _dispatch.resolve_threads(n_threads))
            return res
    nt = _dispatch.resolve_threads(n_threads)
    x = as_array(x, "x")
    if x.dtype.kind == "b":
        raise TypeError(f"{name} of a boolean array is not defined (x - max(x) has no boolean "
                        "meaning; SciPy raises TypeError too); convert x to a float dtype")
    dtype = exp_result_dtype(x.dtype)
    x = x.astype(dtype, copy=False)
    scalar = x.ndim == 0
    if scalar:
        if axis not in (None, 0, -1, ()):
            normalize_axes(axis, 0)  # raises AxisError
        x = x.reshape(1)
        axes = (0,) if axis != () else ()
    else:
        axes = normalize_axes(axis, x.ndim)
    reduced = 1
    for d in axes:
        reduced *= x.shape[d]
    if reduced == 0:
        raise ValueError("zero-size array to reduction operation maximum which has no identity")

    if out is not None:
        check_out(out, () if scalar else x.shape, dtype)
        target = out.reshape(x.shape) if scalar else out
        res = kernel_out(target, [x], in_place=x)
    else:
        res = target = empty_like_layout(x, x.shape, dtype, list(range(x.ndim)))
    if x.size:
        kern = _dispatch.kernels().softmax

        def call(views, full_views, _kept):
            kern(views[0], full_views[0], logarithm, nt)

        run(call, x.shape, axes, [kernel_view(x)], [kernel_view(res)], [])
        if res is not target:
            np.copyto(target, res)
    if scalar:
        return out if out is not None else res[0]
    return target


def softmax(x, axis=None, *, out=None, n_threads=None):
    r"""Softmax, ``exp(x) / sum(exp(x), axis)``.

    Same arguments, results, special values and return types as
    :func:`scipy.special.softmax`, in one parallel pass that writes only the
    output.

    Parameters
    ----------
    x : array_like
        Real input. Integer input gives the dtype NumPy's exp gives (int8 ->
        float16, int16 -> float32, wider -> float64), as in SciPy.
    axis : None or int or tuple of ints, optional
        Axes the softmax is taken over; None (default): the whole array.
    out : ndarray, optional
        Array of x's shape and the result dtype to write to (keyword only).
        It may be `x` itself (a float array): computed in place, without a
        copy. An `out` that overlaps `x` otherwise (shifted, transposed,
        reversed) or is misaligned gets the same result through a new array
        that is copied to it.
    n_threads : int, optional
        Number of threads (keyword only); default: the OpenMP default.

    Returns
    -------
    s : ndarray or NumPy scalar
        Same shape as `x`; sums to 1 along `axis`. A NumPy scalar for 0-d x.

    Raises
    ------
    TypeError
        For complex, boolean, non-numeric or float128 input.
    ValueError
        For a zero-length axis (as SciPy), a bad `out` or `n_threads`.
    numpy.exceptions.AxisError
        For an axis out of range.

    See Also
    --------
    scipy.special.softmax, torch.softmax, log_softmax, logsumexp

    Notes
    -----
    :math:`\sigma(x)_j = e^{x_j - m} / \sum_k e^{x_k - m}` with
    :math:`m = \max_k x_k`. The exponentials are written to the output while
    the sum is taken, then divided in place: one exp per element. As in
    SciPy, a row whose maximum is not finite (a +inf entry, or only -inf)
    or that holds a NaN is all NaN; -inf entries of other rows give 0.

    Examples
    --------
    >>> import numpy as np
    >>> import fastxent
    >>> fastxent.softmax(np.array([[1.0, 1.0], [0.0, -np.inf]]), axis=1)
    array([[0.5, 0.5],
           [1. , 0. ]])
    """
    return _softmax_common(x, axis, out, n_threads, False, "softmax")


def log_softmax(x, axis=None, *, out=None, n_threads=None):
    r"""Logarithm of the softmax, ``x - logsumexp(x, axis)``.

    Same arguments, special values and return types as
    :func:`scipy.special.log_softmax`, and more accurate where the result is
    close to zero.

    Parameters
    ----------
    x : array_like
        Real input; integers as in :func:`softmax`.
    axis : None or int or tuple of ints, optional
        Axes the softmax is taken over; None (default): the whole array.
    out : ndarray, optional
        Array of x's shape and the result dtype to write to (keyword only);
        may be `x` itself, or overlap it otherwise, as in :func:`softmax`.
    n_threads : int, optional
        Number of threads (keyword only); default: the OpenMP default.

    Returns
    -------
    ndarray or NumPy scalar
        Same shape as `x`; its exponential sums to 1 along `axis`.

    Raises
    ------
    TypeError
        For complex, boolean, non-numeric or float128 input.
    ValueError
        For a zero-length axis (as SciPy), a bad `out` or `n_threads`.
    numpy.exceptions.AxisError
        For an axis out of range.

    See Also
    --------
    scipy.special.log_softmax, torch.log_softmax, softmax, logsumexp

    Notes
    -----
    With :math:`m = \max_k x_k`, :math:`k` the number of elements equal to
    :math:`m` and :math:`s = \sum_{x_j \ne m} e^{x_j - m}`:

    .. math:: \operatorname{log\_softmax}(x)_j = (x_j - m) - (\log k + \log1p(s / k))

    SciPy computes ``(x - m) - log(k + s)``, which loses the digits of a
    result near zero (a dominating element); this form keeps them, so the
    two agree to a few ulp except there, where this one is the accurate one.
    Special values follow SciPy: a row with +inf gives -inf for its finite
    and -inf entries and NaN for its +inf entries; a row of only -inf, or
    with a NaN, is all NaN.

    Examples
    --------
    >>> import numpy as np
    >>> import fastxent
    >>> fastxent.log_softmax(np.array([1000.0, 1.0]))
    array([   0., -999.])
    """
    return _softmax_common(x, axis, out, n_threads, True, "log_softmax")
