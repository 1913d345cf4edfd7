"""References of the softmax family: the twins of fastxent/_softmax_family.py.

They follow the algorithms of ``scipy.special`` (SciPy 1.17) step by step,
including its special values, with the deliberate differences of fastxent:

* float16 data are computed in float32 and the result is rounded to float16
  (SciPy computes in float16, where a sum of 65520 ones already overflows);
* ``log_softmax`` keeps the terms equal to the row maximum apart, which makes
  results near zero accurate (SciPy rounds them to 0);
* complex, string, object and other non-numeric inputs raise ``TypeError``;
* softmax and log_softmax of integers convert to the floating dtype first
  (SciPy subtracts the maximum in the integer dtype, which can wrap around);
* logsumexp of an empty array over several axes returns ``-inf`` (SciPy 1.17
  raises ``IndexError`` there).
"""

import numpy as np

from ._common import _work_in_own_dtype

try:  # NumPy >= 2.0
    from numpy.lib.array_utils import normalize_axis_tuple
except ImportError:  # pragma: no cover - NumPy 1.x
    from numpy.core.numeric import normalize_axis_tuple

__all__ = ["logsumexp", "softmax", "log_softmax"]


def _numeric_input(value, name):
    """Return `value` as an array if it is array-like, else the scalar itself.

    Python scalars stay scalars so that NumPy's promotion treats them as weak
    (``logsumexp(float32_array, b=2.0)`` stays float32), as SciPy does.
    """
    if np.iterable(value) or isinstance(value, np.ndarray):
        value = np.asarray(value)
        dtype = value.dtype
    else:
        dtype = np.asarray(value).dtype
    if dtype.kind == "c":
        raise TypeError(f"{name}: complex input is not supported (dtype {dtype})")
    if dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a real numeric array, got dtype {dtype}")
    return value


def _scalar_if_0d(arr):
    return arr[()] if arr.ndim == 0 else arr


def _shifted_logsumexp(a, b, axis, return_sign):
    # SciPy's _logsumexp: the max terms are kept apart from the sum, so that
    # log1p sees the small remainder, and weights may be negative.
    dtype = a.dtype
    if b is not None:
        a = np.where(b == 0, -np.inf, a)  # zero weight masks inf and NaN
    a_max = np.max(a, axis=axis, keepdims=True)
    is_max = a == a_max
    a = np.where(is_max, -np.inf, a)
    m_terms = is_max.astype(dtype) if b is None else b * is_max.astype(dtype)
    m = np.sum(m_terms, axis=axis, keepdims=True, dtype=dtype)
    e = np.exp(a - a_max)
    if b is not None:
        e = b * e
    s = np.sum(e, axis=axis, keepdims=True, dtype=dtype)
    s = np.where(s == 0, s, s / m)
    sgn = np.sign(s + 1) * np.sign(m)
    s = np.where(s < -1, -s - 2, s)
    out = np.log1p(s) + np.log(np.abs(m)) + a_max
    if not return_sign:
        out[sgn < 0] = np.nan
    return out, sgn


def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False):
    """Compute ``log(sum(b * exp(a)))`` in a numerically stable way.

    Parameters
    ----------
    a : array_like
        Input values, real numbers.
    axis : None or int or tuple of ints, optional
        Axes to reduce; None (default) reduces all of them.
    b : array_like, optional
        Weights, broadcastable with `a` (the result broadcasts both); may be
        negative.  Entries of `a` whose weight is 0 are ignored even if they
        are inf or NaN.
    keepdims : bool, optional
        Keep the reduced axes as dimensions of length one.
    return_sign : bool, optional
        Also return the sign of the sum; otherwise a negative sum gives NaN.

    Returns
    -------
    res : ndarray or NumPy scalar
        The log of the (absolute value of the) sum.  Integers and bools are
        promoted to float64; float16 is returned as float16.
    sgn : ndarray or NumPy scalar
        Only with ``return_sign=True``: +1, 0 or -1 (NaN where undefined).

    Raises
    ------
    TypeError
        For complex or non-numeric input.
    ValueError
        If `b` does not broadcast with `a`, or an axis is repeated.
    numpy.exceptions.AxisError
        If an axis is out of range.

    See Also
    --------
    scipy.special.logsumexp, torch.logsumexp

    Notes
    -----
    With ``m = max(a)``, ``k`` the summed weight of the maximal terms and
    ``s`` the weighted sum of ``exp(a - m)`` over the others, the result is
    ``m + log(k) + log1p(s / k)``.  Where that is not finite (a row with
    +inf, all -inf, cancelling weights), the plain ``log(sum(b * exp(a)))``
    is returned instead, as SciPy does.  An empty reduction gives -inf.

    Examples
    --------
    >>> from fastxent.reference import logsumexp
    >>> float(logsumexp([0.0, 0.0]))  # log(2)
    0.6931471805599453
    >>> logsumexp([1.0, 2.0], b=[1.0, -1.0], return_sign=True)
    (np.float64(1.5413248546129181), np.float64(-1.0))
    """
    a = _numeric_input(a, "a")
    if b is not None:
        b = _numeric_input(b, "b")
    args = [a] if b is None else [a, b]
    dtype = np.result_type(*args, 1.0)
    work = _work_in_own_dtype(dtype)
    arrays = [np.asarray(x, dtype=work) for x in args]
    try:
        shape = np.broadcast_shapes(*(x.shape for x in arrays))
    except ValueError as exc:
        raise ValueError(
            f"b of shape {arrays[1].shape} does not broadcast with a of shape {arrays[0].shape}"
        ) from exc
    if shape == ():  # SciPy reduces 0-d input as a 1-d array of length 1
        shape = (1,)
    a, b = [np.broadcast_to(x, shape) for x in arrays] + [None] * (2 - len(arrays))
    axis = tuple(range(a.ndim)) if axis is None else normalize_axis_tuple(axis, a.ndim)

    if a.size == 0:
        out_shape = tuple(1 if i in axis else n for i, n in enumerate(shape))
        out = np.full(out_shape, -np.inf, dtype=work)
        sgn = np.sign(out)  # SciPy gives -1 here, not 0
    else:
        with np.errstate(all="ignore"):
            total = np.sum(np.exp(a) if b is None else b * np.exp(a), axis=axis, keepdims=True)
            out_naive = np.log(np.abs(total) if return_sign else total)
            out, sgn = _shifted_logsumexp(a, b, axis, return_sign)
        finite = np.isfinite(out)
        out = np.where(finite, out, out_naive)
        sgn = np.where(finite, sgn, np.sign(total))
    if not keepdims:
        out = np.squeeze(out, axis=axis)
        sgn = np.squeeze(sgn, axis=axis)
    with np.errstate(over="ignore"):  # float16 may overflow to inf
        out = _scalar_if_0d(out.astype(dtype, copy=False))
    if not return_sign:
        return out
    return out, _scalar_if_0d(sgn.astype(dtype, copy=False))


def _softmax_input(x):
    x = np.asarray(_numeric_input(x, "x"))
    if x.dtype.kind == "b":
        raise TypeError("x: boolean input is not supported (SciPy cannot subtract booleans)")
    # the dtype np.exp gives: int8 -> float16, int16 -> float32, int64 -> float64
    dtype = np.exp(np.zeros(0, dtype=x.dtype)).dtype
    return x.astype(_work_in_own_dtype(dtype), copy=False), dtype


def softmax(x, axis=None):
    """Compute ``exp(x) / sum(exp(x))`` along the given axes.

    Parameters
    ----------
    x : array_like
        Input values, real numbers (not bool).
    axis : None or int or tuple of ints, optional
        Axes along which the result sums to one; None (default) means all.

    Returns
    -------
    s : ndarray or NumPy scalar
        Same shape as `x`, in the dtype ``np.exp(x)`` has (int8 -> float16,
        int16 -> float32, wider ints -> float64).

    Raises
    ------
    TypeError
        For complex, bool or non-numeric input.
    ValueError
        If a reduced axis has length zero, or an axis is repeated.
    numpy.exceptions.AxisError
        If an axis is out of range.

    See Also
    --------
    scipy.special.softmax, torch.softmax

    Notes
    -----
    ``exp(x - m) / sum(exp(x - m))`` with ``m = max(x)``.  A NaN, a +inf or a
    row of only -inf makes the whole row NaN, as in SciPy.  float16 is
    computed in float32.

    Examples
    --------
    >>> from fastxent.reference import softmax
    >>> softmax([0.0, 0.0]).tolist()
    [0.5, 0.5]
    """
    x, dtype = _softmax_input(x)
    with np.errstate(all="ignore"):
        x_max = np.max(x, axis=axis, keepdims=True)
        e = np.exp(x - x_max)
        out = e / np.sum(e, axis=axis, keepdims=True)
        out = out.astype(dtype, copy=False)  # float16 may overflow to inf
    return _scalar_if_0d(out)


def log_softmax(x, axis=None):
    """Compute ``log(softmax(x))`` accurately along the given axes.

    Parameters
    ----------
    x : array_like
        Input values, real numbers (not bool).
    axis : None or int or tuple of ints, optional
        Axes along which ``exp`` of the result sums to one; None (default)
        means all.

    Returns
    -------
    s : ndarray or NumPy scalar
        Same shape and dtype rule as :func:`softmax`.

    Raises
    ------
    TypeError
        For complex, bool or non-numeric input.
    ValueError
        If a reduced axis has length zero, or an axis is repeated.
    numpy.exceptions.AxisError
        If an axis is out of range.

    See Also
    --------
    scipy.special.log_softmax, torch.log_softmax

    Notes
    -----
    ``(x - m) - (log(k) + log1p(s / k))`` with ``m = max(x)``, ``k`` the number
    of elements equal to ``m`` and ``s`` the sum of ``exp(x - m)`` over the
    others.  SciPy computes ``(x - m) - log(k + s)``, which rounds results
    near zero to 0 (``log_softmax([0, -40])[0]`` is ``-4.2e-18``, not 0).
    Special values are SciPy's: a row with +inf gives NaN there and -inf
    elsewhere, a row of -inf or with a NaN is all NaN.

    Examples
    --------
    >>> from fastxent.reference import log_softmax
    >>> log_softmax([0.0, -40.0]).tolist()
    [-4.248354255291589e-18, -40.0]
    """
    x, dtype = _softmax_input(x)
    with np.errstate(all="ignore"):
        m = np.max(x, axis=axis, keepdims=True)
        is_max = x == m
        k = np.sum(is_max, axis=axis, keepdims=True, dtype=x.dtype)
        shifted = x - m
        s = np.sum(np.where(is_max, 0, np.exp(shifted)), axis=axis, keepdims=True, dtype=x.dtype)
        out = shifted - (np.log(k) + np.log1p(s / k))
        out = out.astype(dtype, copy=False)  # float16 may overflow to -inf
    return _scalar_if_0d(out)
