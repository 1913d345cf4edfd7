"""References of the entropies: the twins of fastxent/_entropies.py.

:func:`~fastxent.reference.entropy` has the semantics of
``scipy.stats.entropy`` (SciPy 1.17); :func:`~fastxent.reference.softmax_entropy`,
:func:`~fastxent.reference.softmax_cross_entropy` and
:func:`~fastxent.reference.softmax_kl_div` are the entropy, cross-entropy and
Kullback-Leibler divergence of softmax distributions, straight from logits.
"""

import math

import numpy as np

from ._common import _finish, _log_softmax_rows, _real_array, _work_in_float64

try:  # NumPy >= 2.0
    from numpy.lib.array_utils import normalize_axis_index, normalize_axis_tuple
except ImportError:  # pragma: no cover - NumPy 1.x
    from numpy.core.multiarray import normalize_axis_index
    from numpy.core.numeric import normalize_axis_tuple

__all__ = ["entropy", "softmax_entropy", "softmax_cross_entropy", "softmax_kl_div"]


def _entropy_dtype(*arrays):
    """SciPy's: the dtypes promote (int8 with float32 is float32), then
    integers and bools become float64; float16 stays float16 here (SciPy
    returns float32)."""
    dtype = np.result_type(*[a.dtype for a in arrays])
    return dtype if dtype.kind == "f" else np.dtype(np.float64)


def _normalize(a, axis):
    """``a / sum(a)`` along `axis`; a sum that overflows although every value
    is finite is taken after scaling by the largest magnitude."""
    with np.errstate(all="ignore"):
        s = np.sum(a, axis=axis, keepdims=True)
        overflow = np.isinf(s) & np.all(np.isfinite(a), axis=axis, keepdims=True)
        if overflow.any():
            m = np.max(np.abs(a), axis=axis, keepdims=True)
            m = np.where(overflow, m, 1)
            return np.where(overflow, (a / m) / np.sum(a / m, axis=axis, keepdims=True), a / s)
        return a / s


def _entr(p):
    """SciPy's entr: ``-p log p``, 0 at 0, -inf below 0, NaN at NaN."""
    with np.errstate(all="ignore"):
        out = np.where(p > 0, -p * np.log(p), np.where(p == 0, 0, -np.inf))
    return np.where(np.isnan(p), np.nan, out)


def _rel_entr(p, q):
    """SciPy's rel_entr: ``p log(p / q)`` for p, q > 0 (``p (log p - log q)``
    where the ratio overflows or underflows), 0 for p = 0 <= q, NaN at NaN,
    +inf otherwise."""
    with np.errstate(all="ignore"):
        ratio = p / q
        tiny = np.finfo(p.dtype).tiny
        direct = np.isfinite(ratio) & (ratio >= tiny)
        log_ratio = np.where(direct, np.log(ratio), np.log(p) - np.log(q))
        out = np.where((p > 0) & (q > 0), p * log_ratio,
                       np.where((p == 0) & (q >= 0), 0, np.inf))
    return np.where(np.isnan(p) | np.isnan(q), np.nan, out)


def entropy(pk, qk=None, base=None, axis=0):
    """Shannon entropy of `pk`, or relative entropy of `pk` to `qk`, as SciPy.

    Parameters
    ----------
    pk : array_like
        (Possibly unnormalized) probabilities along `axis`; bool, integer or
        floating.
    qk : array_like, optional
        Probabilities to compare with, broadcastable with `pk`.
    base : float, optional
        Base of the logarithm; the natural logarithm by default.
    axis : int or None, optional
        Axis of the distributions (default 0); None flattens the arrays.

    Returns
    -------
    S : ndarray or NumPy scalar
        ``H = -sum(pk * log(pk))`` or ``D = sum(pk * log(pk / qk))`` after
        normalizing `pk` and `qk` to sum to 1 along `axis`; the shape without
        `axis`.  The dtypes promote, then integers and bools give float64;
        float16 gives float16 (computed in float32; SciPy returns float32).

    Raises
    ------
    TypeError
        Complex or non-numeric input.
    ValueError
        `base` not positive; shapes that do not broadcast.
    numpy.exceptions.AxisError
        `axis` out of range.

    See Also
    --------
    scipy.stats.entropy, scipy.special.entr, scipy.special.rel_entr

    Notes
    -----
    Terms follow ``scipy.special.entr`` and ``rel_entr``: a zero ``pk`` gives
    0 (also against a zero ``qk``), a positive ``pk`` against a zero ``qk``
    gives +inf, a negative ``pk`` -inf (``entr``) or +inf (``rel_entr``), NaN
    propagates; an inf in the data gives NaN through the normalization; an
    all-zero slice gives NaN; an empty slice gives 0; a 0-d `pk` is a
    distribution of one element (entropy 0).  ``base=1`` divides by
    ``log(1) = 0``.  One difference from SciPy: a slice of finite values whose
    sum overflows is normalized after scaling (SciPy divides by the infinite
    sum and returns 0).  ``nan_policy`` and ``keepdims`` are not supported.

    Examples
    --------
    >>> from fastxent.reference import entropy
    >>> float(entropy([1, 1], base=2))
    1.0
    >>> float(entropy([1, 1], [9, 1]))  # KL(fair coin || 0.9/0.1 coin) = log(5/3)
    0.5108256237659907
    """
    if base is not None and base <= 0:
        raise ValueError(f"base: must be a positive number or None, got {base!r}")
    arrays = [_real_array(pk, "pk")]
    if qk is not None:
        arrays.append(_real_array(qk, "qk"))
    dtype = _entropy_dtype(*arrays)
    work = _work_in_float64(dtype)
    try:
        arrays = np.broadcast_arrays(*[a.astype(work) for a in arrays])
    except ValueError as exc:
        raise ValueError(
            f"qk of shape {arrays[1].shape} does not broadcast with pk of shape {arrays[0].shape}"
        ) from exc
    if isinstance(axis, (tuple, list)):
        # the axes reduced together, as SciPy: moved last and merged (every
        # axis, or none named, is all of them)
        axes = normalize_axis_tuple(axis, arrays[0].ndim)
        if len(axes) in (0, arrays[0].ndim):
            axis = None
        else:
            last = range(arrays[0].ndim - len(axes), arrays[0].ndim)
            arrays = [np.moveaxis(a, axes, last) for a in arrays]
            arrays = [a.reshape(a.shape[:a.ndim - len(axes)] + (-1,)) for a in arrays]
            axis = -1
    if axis is None:
        arrays = [a.ravel() for a in arrays]
        axis = 0
    arrays = [np.atleast_1d(a) for a in arrays]
    axis = normalize_axis_index(axis, arrays[0].ndim)
    p = _normalize(arrays[0], axis)
    terms = _entr(p) if qk is None else _rel_entr(p, _normalize(arrays[1], axis))
    with np.errstate(all="ignore"):
        s = np.sum(terms, axis=axis)
        if base is not None:
            s = s / math.log(base)   # an int beyond float64 too
    return _finish(s, dtype)


def _logits(value, name):
    """Logits as an array, and their result dtype: that of ``np.exp`` (int8 ->
    float16, int16 -> float32, wider ints -> float64), as fastxent.softmax."""
    x = _real_array(value, name, allow_bool=False)
    dtype = np.exp(np.zeros(0, dtype=x.dtype)).dtype
    return x, dtype


def _logit_rows(pairs, names, axis):
    """Broadcast ``(array, result dtype)`` pairs of logits together, in the
    working dtype of the promoted result dtype, and normalize `axis`."""
    arrays = [a for a, _ in pairs]
    shape_msg = " and ".join(f"{n} of shape {a.shape}" for a, n in zip(arrays, names))
    try:
        shape = np.broadcast_shapes(*(a.shape for a in arrays))
    except ValueError as exc:
        raise ValueError(f"{shape_msg} do not broadcast") from exc
    axis = normalize_axis_index(axis, len(shape))
    if shape[axis] == 0:
        raise ValueError(f"{names[0]}: the class axis {axis} has length zero ({shape_msg})")
    dtype = np.result_type(*(d for _, d in pairs))
    work = _work_in_float64(dtype)
    return [np.broadcast_to(a.astype(work), shape) for a in arrays], axis, dtype


def _softmax_terms(x, axis):
    logp, undefined = _log_softmax_rows(x, axis)
    with np.errstate(all="ignore"):
        p = np.exp(logp)
    return logp, p, undefined


def softmax_entropy(logits, axis=-1):
    """Entropy ``H(p) = -sum p log p`` of ``p = softmax(logits)`` along `axis`.

    Parameters
    ----------
    logits : array_like
        Real logits (not bool).
    axis : int, optional
        The class axis (default -1).

    Returns
    -------
    h : ndarray or NumPy scalar
        The shape of `logits` without `axis`, in the dtype ``np.exp`` gives.

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
    scipy.stats.entropy, torch.distributions.Categorical.entropy

    Notes
    -----
    ``H = -sum_i p_i * logp_i = logsumexp(x) - sum_i p_i * x_i`` with
    ``logp = log_softmax(x)``.  A -inf logit is a class of probability 0 and
    contributes 0; so does a finite logit so far below the maximum that
    ``x - max`` overflows to -inf (``p log p`` tends to 0 there).  A row with
    a NaN or a +inf logit, or of only -inf logits,
    has no softmax and gives NaN.  float16 is computed in float32, float32 in
    float64.

    Examples
    --------
    >>> import numpy as np
    >>> from fastxent.reference import softmax_entropy
    >>> softmax_entropy(np.array([[0.0, 0.0, -np.inf], [1.0, -np.inf, -np.inf]])).tolist()
    [0.6931471805599453, 0.0]
    """
    (x,), axis, dtype = _logit_rows([_logits(logits, "logits")], ["logits"], axis)
    logp, p, undefined = _softmax_terms(x, axis)
    with np.errstate(all="ignore"):
        # logp is -inf where x is, and where x - max overflows: p log p -> 0
        terms = np.where(logp == -np.inf, 0, p * logp)
        h = np.where(np.squeeze(undefined, axis), np.nan, 0.0 - np.sum(terms, axis=axis))
    return _finish(h, dtype)


def _pair_terms(p_logits, q_logits, axis):
    """The logits, ``log(p) / 2``, ``p``, ``log(q) / 2`` and the undefined
    rows.  Halves: ``log q`` of a logit far below the maximum may overflow
    (``-1.7e308 - 1.7e308``) where the divergence itself is finite."""
    pairs = [_logits(p_logits, "p_logits"), _logits(q_logits, "q_logits")]
    (x, y), axis, dtype = _logit_rows(pairs, ["p_logits", "q_logits"], axis)
    half_logp, undef_p = _log_softmax_rows(x, axis, scale=0.5)
    half_logq, undef_q = _log_softmax_rows(y, axis, scale=0.5)
    with np.errstate(all="ignore"):
        p = np.exp(2 * half_logp)
    undefined = np.squeeze(undef_p | undef_q, axis)
    return x, y, half_logp, p, half_logq, undefined, axis, dtype


def softmax_cross_entropy(p_logits, q_logits, axis=-1):
    """Cross-entropy ``H(p, q) = -sum p log q`` of ``p = softmax(p_logits)``
    and ``q = softmax(q_logits)`` along `axis`.

    Parameters
    ----------
    p_logits, q_logits : array_like
        Real logits (not bool), broadcastable with each other.
    axis : int, optional
        The class axis (default -1).

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
    torch.nn.functional.cross_entropy : With ``softmax(p_logits)`` as
        probability target.

    Notes
    -----
    ``H(p, q) = -sum_i p_i * logq_i = H(p) + KL(p || q)``.  A class with
    ``p_i = 0`` (p-logit -inf) contributes 0, even where ``q_i = 0``; a class
    with ``p_i > 0`` and ``q_i = 0`` (q-logit -inf, p-logit finite) makes the
    row +inf, even where ``p_i`` underflows.  Otherwise a class whose
    p-logit is so far below the maximum that ``x - max`` overflows to -inf
    contributes 0, the limit of ``p log q`` (``q`` is positive).  A row with
    a NaN or a +inf logit, or of only -inf logits, in either input gives NaN.

    Examples
    --------
    >>> import numpy as np
    >>> from fastxent.reference import softmax_cross_entropy
    >>> h = softmax_cross_entropy([0.0, 0.0], [0.0, np.log(3.0)])
    >>> bool(np.isclose(h, -(np.log(1 / 4) + np.log(3 / 4)) / 2))
    True
    """
    x, y, half_logp, p, half_logq, undefined, axis, dtype = _pair_terms(p_logits, q_logits,
                                                                         axis)
    with np.errstate(all="ignore"):
        terms = np.where(x == -np.inf, 0, np.where(y == -np.inf, np.inf, -p * half_logq))
        h = np.where(undefined, np.nan, 2 * np.sum(terms, axis=axis))
    return _finish(h, dtype)


def softmax_kl_div(p_logits, q_logits, axis=-1):
    """Kullback-Leibler divergence ``KL(p || q) = sum p (log p - log q)`` of
    ``p = softmax(p_logits)`` from ``q = softmax(q_logits)`` along `axis`.

    Parameters
    ----------
    p_logits, q_logits : array_like
        Real logits (not bool), broadcastable with each other.
    axis : int, optional
        The class axis (default -1).

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
    scipy.stats.entropy : With `qk`, the same quantity from probabilities.

    Notes
    -----
    ``KL(p || q) = sum_i p_i * (logp_i - logq_i) = H(p, q) - H(p) >= 0``,
    exactly 0 for identical rows.  Special values as
    :func:`softmax_cross_entropy`: ``p_i = 0`` contributes 0 (also where
    ``x - max`` overflows to -inf), ``p_i > 0 = q_i`` gives +inf, a row with
    a NaN or a +inf logit, or of only -inf logits, in either input gives
    NaN.

    Examples
    --------
    >>> import numpy as np
    >>> from fastxent.reference import softmax_kl_div
    >>> float(softmax_kl_div([0.0, 0.0], [0.0, 0.0]))
    0.0
    >>> float(softmax_kl_div([0.0, -np.inf], [0.0, 0.0]))  # log 2
    0.6931471805599453
    """
    x, y, half_logp, p, half_logq, undefined, axis, dtype = _pair_terms(p_logits, q_logits,
                                                                         axis)
    with np.errstate(all="ignore"):
        terms = np.where(x == -np.inf, 0, np.where(y == -np.inf, np.inf,
                                                   p * (half_logp - half_logq)))
        kl = np.where(undefined, np.nan, 2 * np.sum(terms, axis=axis))
    return _finish(kl, dtype)
