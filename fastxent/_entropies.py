"""Entropies of rows: scipy.stats.entropy, and the entropy, cross-entropy and
KL divergence of softmax distributions straight from logits.

Each function checks its arguments (_checks), broadcasts them (stride-0
views, no copy) and hands them to the layout layer (_layout.reduce), whose
views of any axis and layout go to one call of the kernel
(src/entropies.pxi, src/fx_entropies.h) chosen by _dispatch.
"""
import math

import numpy as np
from numpy import ndarray as _ndarray  # a global: the Dask check costs less

from . import _dask, _dispatch
from ._dispatch import resolve_threads
from ._checks import (F32, F64, READY_DTYPES, as_array, broadcast_shape, check_base,
                      entropy_axes, exp_result_dtype, promote_dtypes, single_axis)
from ._layout import reduce, reduced_shape

__all__ = ["entropy", "softmax_entropy", "softmax_cross_entropy", "softmax_kl_div"]

_SOFTMAX_ENTROPY, _SOFTMAX_XENT, _SOFTMAX_KL, _ENTROPY = 0, 1, 2, 3


def _rows(kind, x, y, axis, dtype, div, nt):
    """Run kernel `kind` over `x` and `y` (None, or of x's shape; kernel
    dtype) along `axis`; returns the result as a NumPy scalar (0-d) or
    array."""
    shape = x.shape
    axes = (axis,)
    out = np.empty(shape[:axis] if axis == len(shape) - 1 else reduced_shape(shape, axes), dtype)
    if out.size:
        kern = _dispatch.active.row_entropies   # one entry for every dtype
        for (xv, yv, ov), lo, hi in reduce(shape, axes, (x, y, out), 2, 0):
            kern(kind, xv, yv, ov, div, nt, lo, hi)
    return out if len(shape) > 1 else out[()]


# the dtype of the softmax of logits of each dtype (NumPy's exp's); bool
# logits are refused
_LOGIT_DTYPE = {d: exp_result_dtype(d) for d in READY_DTYPES if d.kind != "b"}


def _logits(value, name):
    """`value` as an array of logits, and the dtype of its softmax."""
    x = as_array(value, name)
    dtype = x.dtype
    if dtype is F64 or dtype is F32:   # their own softmax dtype, without a hash
        return x, dtype
    dtype = _LOGIT_DTYPE.get(dtype)
    if dtype is None:
        raise TypeError(f"{name} must hold real logits, got dtype bool")
    return x, dtype


def _logit_rows(x, y, names, axis):
    """The logits `x` and `y` (None, or a pair of _logits) in their common
    dtype, broadcast to one shape, the checked class axis and the dtype.
    (The dtypes come from tables: the same objects when equal, so `is`
    decides the usual case before ``!=``.)"""
    x, dtype = x
    shape = x_shape = x.shape
    if y is not None:
        y, y_dtype = y
        y_shape = y.shape
        if y_shape != shape:
            shape = broadcast_shape([x, y], names, "p_logits of shape {0} and q_logits of "
                                    "shape {1} do not broadcast")
        if y_dtype is not dtype and y_dtype != dtype:
            dtype = promote_dtypes(dtype, y_dtype)
    if len(shape) == 0:
        raise np.exceptions.AxisError(axis, 0)
    axis = single_axis(axis, len(shape))
    if shape[axis] == 0:
        raise ValueError(f"{names[0]}: the class axis {axis} has length zero "
                         f"(shape {shape}); a softmax needs at least one class")
    x_dtype = x.dtype
    if x_dtype is not dtype and x_dtype != dtype:
        x = x.astype(dtype)
    if x_shape != shape:
        x = np.broadcast_to(x, shape)
    if y is not None:
        y_dtype = y.dtype
        if y_dtype is not dtype and y_dtype != dtype:
            y = y.astype(dtype)
        if y_shape != shape:
            y = np.broadcast_to(y, shape)
    return x, y, axis, dtype


def softmax_entropy(logits, axis=-1, *, n_threads=None):
    r"""Entropy of ``softmax(logits)`` along `axis`, without forming it.

    Parameters
    ----------
    logits : array_like
        Real logits (integers are converted as ``np.exp`` converts them).
    axis : int, optional
        The class axis (default -1).
    n_threads : int, optional
        Number of threads (keyword only); results do not depend on it.

    Returns
    -------
    h : ndarray or NumPy scalar
        The shape of `logits` without `axis`; dtype of ``np.exp(logits)``.

    Raises
    ------
    TypeError
        Bool, complex or non-numeric input.
    ValueError
        A class axis of length zero.
    numpy.exceptions.AxisError
        `axis` out of range (a 0-d input has no axis).

    See Also
    --------
    softmax_cross_entropy, softmax_kl_div, entropy,
    torch.distributions.Categorical.entropy

    Notes
    -----
    With :math:`p = \mathrm{softmax}(x)`, :math:`m = \max_c x_c` and
    :math:`S = \sum_c e^{x_c - m}`,

    .. math:: H(p) = -\sum_c p_c \log p_c = \log S + \frac{1}{S}\sum_c e^{x_c - m}(m - x_c)

    a sum of non-negative terms: nothing cancels, and the terms equal to the
    maximum are counted apart so that a nearly one-hot row keeps the digits
    of its small entropy.  One read of each row, one exp per element.  A -inf
    logit is a class of probability 0 and contributes 0; a row with a NaN or
    a +inf logit, or of only -inf logits, has no softmax and gives NaN.
    float16 is computed in float32; float32 terms are summed in double.

    Examples
    --------
    >>> import numpy as np
    >>> import fastxent
    >>> fastxent.softmax_entropy(np.array([[0.0, 0.0, -np.inf], [1.0, -np.inf, -np.inf]])).tolist()
    [0.6931471805599453, 0.0]
    """
    if type(logits) is _ndarray and n_threads is None:
        # a small C-ordered call straight to its driver (None: any other)
        r = _dispatch.active.row_entropies_small(_SOFTMAX_ENTROPY, logits, None, axis)
        if r is not None:
            return r
    elif type(logits) is not _ndarray and _dask.is_dask_array(logits):
        return _dask.softmax_entropy(logits, axis, n_threads=n_threads)
    x, _, axis, dtype = _logit_rows(_logits(logits, "logits"), None, ("logits",), axis)
    return _rows(_SOFTMAX_ENTROPY, x, None, axis, dtype, 1.0,
                 resolve_threads(n_threads))


def _pair(p_logits, q_logits, axis):
    return _logit_rows(_logits(p_logits, "p_logits"), _logits(q_logits, "q_logits"),
                       ("p_logits", "q_logits"), axis)


def softmax_cross_entropy(p_logits, q_logits, axis=-1, *, n_threads=None):
    r"""Cross-entropy ``H(p, q) = -sum p log q`` of ``p = softmax(p_logits)``
    and ``q = softmax(q_logits)`` along `axis`, without forming them.

    Parameters
    ----------
    p_logits, q_logits : array_like
        Real logits, broadcastable with each other.
    axis : int, optional
        The class axis (default -1).
    n_threads : int, optional
        Number of threads (keyword only); results do not depend on it.

    Returns
    -------
    h : ndarray or NumPy scalar
        The broadcast shape without `axis`, in the promotion of the dtypes
        ``np.exp`` gives for the two inputs.

    Raises
    ------
    TypeError
        Bool, complex or non-numeric input.
    ValueError
        Shapes that do not broadcast, a class axis of length zero.
    numpy.exceptions.AxisError
        `axis` out of range.

    See Also
    --------
    softmax_entropy, softmax_kl_div
    cross_entropy : The same quantity with ``softmax(p_logits)`` as a
        probability target.

    Notes
    -----
    .. math:: H(p, q) = H(p) + \mathrm{KL}(p \,\|\, q)
              = \log S_y + \frac{1}{S_x}\sum_c e^{x_c - m_x}(m_y - y_c)

    with :math:`S_x = \sum_c e^{x_c - m_x}`, :math:`S_y = \sum_c e^{y_c - m_y}`
    and :math:`m` the row maxima: non-negative terms, one read of each row,
    two exps per element.  A class with ``p_c = 0`` (p-logit -inf)
    contributes 0, even where ``q_c = 0``; a class with ``p_c > 0`` and
    ``q_c = 0`` (q-logit -inf under a finite p-logit) makes the row +inf,
    even where ``p_c`` underflows.  A row with a NaN or a +inf logit, or of
    only -inf logits, in either input gives NaN.

    Examples
    --------
    >>> import numpy as np
    >>> import fastxent
    >>> float(fastxent.softmax_cross_entropy([0.0, 0.0], [0.0, np.log(3.0)]))  # -(log 1/4 + log 3/4) / 2
    0.8369882167858358
    """
    if type(p_logits) is _ndarray and type(q_logits) is _ndarray:
        if n_threads is None:
            # a small C-ordered call straight to its driver (None: any other)
            r = _dispatch.active.row_entropies_small(_SOFTMAX_XENT, p_logits, q_logits, axis)
            if r is not None:
                return r
    elif _dask.any_dask(p_logits, q_logits):
        return _dask.softmax_cross_entropy(p_logits, q_logits, axis, n_threads=n_threads)
    x, y, axis, dtype = _pair(p_logits, q_logits, axis)
    return _rows(_SOFTMAX_XENT, x, y, axis, dtype, 1.0, resolve_threads(n_threads))


def softmax_kl_div(p_logits, q_logits, axis=-1, *, n_threads=None):
    r"""Kullback-Leibler divergence ``KL(p || q) = sum p (log p - log q)`` of
    ``p = softmax(p_logits)`` from ``q = softmax(q_logits)`` along `axis`.

    Parameters
    ----------
    p_logits, q_logits : array_like
        Real logits, broadcastable with each other.
    axis : int, optional
        The class axis (default -1).
    n_threads : int, optional
        Number of threads (keyword only); results do not depend on it.

    Returns
    -------
    kl : ndarray or NumPy scalar
        The broadcast shape without `axis`; dtype as
        :func:`softmax_cross_entropy`.

    Raises
    ------
    TypeError
        Bool, complex or non-numeric input.
    ValueError
        Shapes that do not broadcast, a class axis of length zero.
    numpy.exceptions.AxisError
        `axis` out of range.

    See Also
    --------
    softmax_cross_entropy, kl_div
    entropy : With `qk`, the same quantity from probabilities.

    Notes
    -----
    .. math:: \mathrm{KL}(p \,\|\, q) = H(p, q) - H(p)
              = \log\frac{S_y}{S_x} + \frac{1}{S_x}\sum_c e^{x_c - m_x}
                \big((x_c - m_x) - (y_c - m_y)\big)

    (notation of :func:`softmax_cross_entropy`), which is exactly 0 for
    identical rows and for rows that differ by a constant.  For nearly equal
    distributions the result is accurate to a few ulp of ``|x| / S`` in
    absolute terms -- the conditioning of a KL divergence from logits -- not
    to a few ulp of itself.  Special values as
    :func:`softmax_cross_entropy`.  Same as ``torch.nn.functional.kl_div(
    log_softmax(q_logits), log_softmax(p_logits), log_target=True,
    reduction='none').sum(axis)``, in one pass and without temporaries.

    Examples
    --------
    >>> import numpy as np
    >>> import fastxent
    >>> float(fastxent.softmax_kl_div([0.0, 0.0], [0.0, 0.0]))
    0.0
    >>> float(fastxent.softmax_kl_div([0.0, -np.inf], [0.0, 0.0]))  # log 2
    0.6931471805599453
    """
    if type(p_logits) is _ndarray and type(q_logits) is _ndarray:
        if n_threads is None:
            # a small C-ordered call straight to its driver (None: any other)
            r = _dispatch.active.row_entropies_small(_SOFTMAX_KL, p_logits, q_logits, axis)
            if r is not None:
                return r
    elif _dask.any_dask(p_logits, q_logits):
        return _dask.softmax_kl_div(p_logits, q_logits, axis, n_threads=n_threads)
    x, y, axis, dtype = _pair(p_logits, q_logits, axis)
    return _rows(_SOFTMAX_KL, x, y, axis, dtype, 1.0, resolve_threads(n_threads))


def _merge_axes(a, axes):
    """`a` with `axes` (a sorted tuple, not all of them) moved last and merged
    into one, in C order (a view where the layout allows it, else a copy)."""
    k = len(axes)
    moved = np.moveaxis(a, axes, range(a.ndim - k, a.ndim))
    # the merged length itself, not -1, which an empty array cannot resolve
    return moved.reshape(moved.shape[:a.ndim - k] + (math.prod(moved.shape[a.ndim - k:]),))


# SciPy's dtypes: integers and bools become float64, floats promote;
# float16 stays float16 (computed in float32; SciPy returns float32)
_ENTROPY_DTYPE = {d: d if d.kind == "f" else F64 for d in READY_DTYPES}


def entropy(pk, qk=None, base=None, axis=0, *, n_threads=None):
    r"""Shannon entropy of `pk`, or relative entropy of `pk` to `qk`: ``scipy.stats.entropy``.

    Parameters
    ----------
    pk : array_like
        (Possibly unnormalized) probabilities along `axis`: bool, integer or
        float.
    qk : array_like, optional
        Probabilities to compare with, broadcastable with `pk`.
    base : float, optional
        Base of the logarithm (a real number or a 0-d real array); the
        natural logarithm by default.
    axis : int, tuple of ints or None, optional
        Axis of the distributions (default 0, as SciPy); None flattens; a
        tuple reduces those axes together, and, as in SciPy, ``()`` reduces
        every axis.
    n_threads : int, optional
        Number of threads (keyword only); results do not depend on it.

    Returns
    -------
    S : ndarray or NumPy scalar
        :math:`H = -\sum_i p_i \log p_i` or :math:`D = \sum_i p_i \log(p_i / q_i)`
        after normalizing `pk` and `qk` to sum to 1 along `axis`; the shape
        without `axis`.  `pk` and `qk` promote as NumPy promotes them
        (``int8`` with ``float32`` is float32), then integers and bools give
        float64 and float16 gives float16 (SciPy: float32).

    Raises
    ------
    ValueError
        `base` not positive or NaN; shapes that do not broadcast; an axis
        repeated in `axis`.
    TypeError
        Complex or non-numeric input; a bool `base` or `axis` (SciPy takes
        them as numbers).
    numpy.exceptions.AxisError
        `axis` out of range.

    See Also
    --------
    scipy.stats.entropy, scipy.special.entr, scipy.special.rel_entr
    softmax_entropy : The entropy from logits.

    Notes
    -----
    Each row is read once without forming ``pk / sum(pk)``: in chunks of
    16384 elements, each read twice while in cache (its sums, then its
    terms ``-r log r`` or ``r log(r / u)`` against the running sums); when a
    later chunk raises the sums by factors ``1/a``, ``1/b``, the terms so far
    are rescaled exactly (``H -> a (H - log a)``, ``D -> a (D + log(a / b))``).
    A row of up to 16384 elements is computed as SciPy computes it, but
    with ``pk * (1 / sum)`` for ``pk / sum`` (an element holding all the mass
    gives exactly 1); float32 terms are summed in double.

    Special values follow ``scipy.special.entr`` and ``rel_entr``: a zero
    ``pk`` gives 0 (also against a zero ``qk``), a positive ``pk`` against a
    zero ``qk`` +inf, a negative ``pk`` -inf (entropy) or +inf (relative);
    NaN propagates; an inf in the data gives NaN through the normalization;
    an all-zero slice gives NaN; an empty slice gives 0; a 0-d `pk` is a
    distribution of one element.  One difference from SciPy: a slice of
    finite values whose sum overflows is normalized after scaling (SciPy
    divides by the infinite sum and returns 0).  ``nan_policy`` and
    ``keepdims`` are not supported.

    Examples
    --------
    >>> import fastxent
    >>> float(fastxent.entropy([1, 1], base=2))
    1.0
    >>> float(fastxent.entropy([1, 1], [9, 1]))  # log(5/3)
    0.5108256237659907
    """
    if type(pk) is _ndarray and (qk is None or type(qk) is _ndarray):
        if base is None and n_threads is None:
            # a small C-ordered call straight to its driver (None: any other)
            r = _dispatch.active.row_entropies_small(_ENTROPY, pk, qk, axis)
            if r is not None:
                return r
    elif _dask.any_dask(pk, qk):
        return _dask.entropy(pk, qk, base, axis, n_threads=n_threads)
    if base is not None:
        base = check_base(base)
    p = as_array(pk, "pk")
    if qk is None:
        dtype = _ENTROPY_DTYPE[p.dtype]
        arrays = [p if p.dtype == dtype else p.astype(dtype)]
    else:
        q = as_array(qk, "qk")
        # promoted first, as SciPy does: int8 with float32 is float32
        dtype = _ENTROPY_DTYPE[promote_dtypes(p.dtype, q.dtype)]
        shape = broadcast_shape([p, q], ["pk", "qk"])
        arrays = [a if a.shape == shape else np.broadcast_to(a, shape)
                  for a in (p if p.dtype == dtype else p.astype(dtype),
                            q if q.dtype == dtype else q.astype(dtype))]
    if arrays[0].ndim == 0:   # a distribution of one element, its axis 0
        arrays = [a.reshape(1) for a in arrays]
    axis = entropy_axes(axis, arrays[0].ndim)
    if isinstance(axis, tuple):
        arrays = [_merge_axes(a, axis) for a in arrays]
        axis = -1
    if axis is None:
        arrays = [a.reshape(-1) for a in arrays]
        axis = 0
    axis = single_axis(axis, arrays[0].ndim, "source")
    div = 1.0 if base is None else math.log(base)
    return _rows(_ENTROPY, arrays[0], arrays[1] if len(arrays) == 2 else None, axis, dtype, div,
                 resolve_threads(n_threads))
