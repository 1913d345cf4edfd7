"""logsumexp, softmax and log_softmax with scipy.special's semantics.

Each function checks its arguments (_checks), allocates its outputs and
hands them with its inputs to the layout layer (_layout.reduce), whose views
go to one call of the compiled kernel (src/softmax_family.pxi,
src/fx_softmax_family.h) chosen by _dispatch.
"""
import numpy as np
from numpy import ndarray as _ndarray  # a global: the Dask check costs less

from . import _dask, _dispatch
from ._dispatch import resolve_threads
from ._checks import (F64, READY_DTYPES, as_array, broadcast_shape, check_out, exp_result_dtype,
                      normalize_axes)
from ._layout import (empty_like_layout, empty_reduced, kept_shape, kernel_out, reduce,
                      reduced_shape)

__all__ = ["logsumexp", "softmax", "log_softmax"]

# the dtype logsumexp computes in: floats as they are, integers and bools
# in float64 (as SciPy)
_LSE_DTYPE = {d: d if d.kind == "f" else F64 for d in READY_DTYPES}
# the dtype softmax computes in: NumPy's exp's; booleans are refused
_SOFTMAX_DTYPE = {d: exp_result_dtype(d) for d in READY_DTYPES if d.kind != "b"}


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
    if type(a) is _ndarray:
        if (b is None and keepdims is False and return_sign is False and out is None
                and n_threads is None):
            # a small C-ordered call straight to its driver (None: any other)
            r = _dispatch.active.logsumexp_small(a, axis)
            if r is not None:
                return r
        if b is not None and _dask.is_dask_array(b):
            return _dask.logsumexp(a, axis, b, keepdims, return_sign, out=out, n_threads=n_threads)
    elif _dask.any_dask(a, b):
        return _dask.logsumexp(a, axis, b, keepdims, return_sign, out=out, n_threads=n_threads)
    nt = resolve_threads(n_threads)
    a_in, b_in = a, b
    a = as_array(a, "a")
    if b is not None:
        b = as_array(b, "b")
        # promote as SciPy does: Python numbers are weak (float32 a with b=2.5
        # stays float32), integers and bools become float64
        dtype = np.result_type(*(v if isinstance(v, (int, float)) and not isinstance(v, bool)
                                 else arr for v, arr in ((a_in, a), (b_in, b))))
        if dtype.kind != "f":
            dtype = F64
        shape = broadcast_shape([a, b], ["a", "b"])
        a = np.broadcast_to(a.astype(dtype, copy=False), shape)
        b = np.broadcast_to(b.astype(dtype, copy=False), shape)
    else:
        a_dtype = a.dtype
        dtype = _LSE_DTYPE[a_dtype]
        if a_dtype is not dtype and a_dtype != dtype:
            a = a.astype(dtype)
    shape = a.shape
    if not shape:  # SciPy works on atleast_1d(a)
        a = a.reshape(1)
        b = b.reshape(1) if b is not None else None
        shape = (1,)
    axes = normalize_axes(axis, len(shape))
    if out is not None:
        check_out(out, (kept_shape if keepdims else reduced_shape)(shape, axes), dtype)
        res = kernel_out(out, [a, b])
    else:
        res = empty_reduced(a, axes, keepdims, dtype)
    sgn = np.empty(res.shape, dtype) if return_sign else None

    if a.size == 0:
        res[...] = -np.inf
        if sgn is not None:
            sgn[...] = -1.0  # SciPy: sign(-inf)
    else:
        kern = _dispatch.active.logsumexp   # one entry for every dtype
        for (av, bv, rv, sv), lo, hi in reduce(shape, axes, (a, b, res, sgn), 2, 0):
            kern(av, rv, sv, bv, return_sign, nt, lo, hi)

    if out is not None and res is not out:
        np.copyto(out, res)
        res = out
    if res.ndim == 0:
        # the sign is never the caller's output: a scalar, as SciPy returns
        sgn = sgn[()] if sgn is not None else None
        if out is None:
            res = res[()]
    return (res, sgn) if return_sign else res


def _softmax_common(x, axis, out, n_threads, logarithm, name):
    nt = resolve_threads(n_threads)
    x = as_array(x, "x")
    x_dtype = x.dtype
    dtype = _SOFTMAX_DTYPE.get(x_dtype)
    if dtype is None:
        raise TypeError(f"{name} of a boolean array is not defined (x - max(x) has no boolean "
                        "meaning; SciPy raises TypeError too); convert x to a float dtype")
    if x_dtype is not dtype and x_dtype != dtype:
        x = x.astype(dtype)
    scalar = x.ndim == 0
    if scalar:
        # as SciPy: the one axis of atleast_1d(x) for an integer 0 or -1
        # (TypeError for a float, a bool or an array), none for ()
        if type(axis) is tuple:
            axes = normalize_axes(axis, 0)   # () only: (0,) is an AxisError
        else:
            axes = (0,)
            if axis is not None:
                normalize_axes(axis, 1)
        x = x.reshape(1)
    else:
        axes = normalize_axes(axis, x.ndim)
    shape = x.shape
    for d in axes:
        if shape[d] == 0:
            raise ValueError("zero-size array to reduction operation maximum which has no "
                             "identity")

    if out is not None:
        check_out(out, () if scalar else x.shape, dtype)
        target = out.reshape(x.shape) if scalar else out
        res = kernel_out(target, [x], in_place=x)
    else:
        res = target = empty_like_layout(x, shape, dtype)
    if x.size:
        kern = _dispatch.active.softmax   # one entry for every dtype
        for (xv, rv), lo, hi in reduce(shape, axes, (x, res), 1, 1):
            kern(xv, rv, logarithm, nt, lo, hi)
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
    if type(x) is _ndarray:
        if out is None and n_threads is None:
            # a small C-ordered call straight to its driver (None: any other)
            s = _dispatch.active.softmax_small(x, axis, False)
            if s is not None:
                return s
    elif _dask.is_dask_array(x):
        return _dask.softmax(x, axis, out=out, n_threads=n_threads)
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
    if type(x) is _ndarray:
        if out is None and n_threads is None:
            # a small C-ordered call straight to its driver (None: any other)
            s = _dispatch.active.softmax_small(x, axis, True)
            if s is not None:
                return s
    elif _dask.is_dask_array(x):
        return _dask.log_softmax(x, axis, out=out, n_threads=n_threads)
    return _softmax_common(x, axis, out, n_threads, True, "log_softmax")
