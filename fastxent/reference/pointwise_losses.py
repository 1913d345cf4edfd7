"""References of the element-wise losses: the twins of fastxent/_pointwise_losses.py.

:func:`~fastxent.reference.kl_div` and
:func:`~fastxent.reference.binary_cross_entropy_with_logits` have the
semantics of ``torch.nn.functional`` (PyTorch 2.13), with the conventions of
:mod:`fastxent.reference`.
"""

import numpy as np

from ._common import (_check_flag, _check_reduction, _finish, _float_array, _mean, _real_array,
                      _sum_terms, _times_log, _work_in_float64)

__all__ = ["kl_div", "binary_cross_entropy_with_logits"]


def _terms_of(terms, dtype):
    """Element terms of `dtype` data as the guarantee of the element-wise
    losses states it: float32 terms (and the float32 terms of float16 data)
    are each rounded to float32 (a term beyond its range is +-inf, also under
    a reduction whose mean would be in range), then reduced in float64."""
    if np.dtype(dtype) not in (np.float16, np.float32):
        return terms
    with np.errstate(over="ignore"):
        return terms.astype(np.float32).astype(np.float64)


def _target_like(target, name):
    """A floating, integer or bool target; returns it and whether it is floating."""
    t = _real_array(target, name)
    return t, t.dtype.kind == "f"


def _sum_to_shape(arr, shape):
    """Sum the broadcast dimensions of `arr` away to reach `shape`."""
    lead = arr.ndim - len(shape)
    arr = np.sum(arr, axis=tuple(range(lead))) if lead else arr
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and arr.shape[i] != 1)
    return np.sum(arr, axis=axes, keepdims=True) if axes else arr


def kl_div(input, target, reduction="mean", log_target=False, *, return_grad=False):
    """Kullback-Leibler divergence terms ``target * (log(target) - input)``, as PyTorch.

    Parameters
    ----------
    input : array_like of floats
        Log-probabilities ``log q``.
    target : array_like
        Probabilities ``p`` (log-probabilities if `log_target`), broadcastable
        with `input`.  Integer and bool targets are converted (PyTorch refuses
        them).
    reduction : {'mean', 'batchmean', 'sum', 'none'}, optional
        ``'none'``: the terms, of the broadcast shape; ``'sum'``: their sum;
        ``'mean'`` (default): their mean over all elements; ``'batchmean'``:
        the sum divided by ``input.shape[0]`` (not divided for a 0-d input),
        which is the KL divergence per row.
    log_target : bool, optional
        `target` holds ``log p``.
    return_grad : bool, optional
        Also return the gradient of the returned loss (of its sum for
        ``'none'``) with respect to `input`.

    Returns
    -------
    loss : ndarray or NumPy scalar
        The terms or their reduction, in the promotion of the dtypes of
        `input` and a floating `target`.
    grad : ndarray
        Only with ``return_grad=True``: shape and dtype of `input`.

    Raises
    ------
    TypeError
        Non-floating `input`; a non-numeric `target`.
    ValueError
        Shapes that do not broadcast, a bad `reduction`.

    See Also
    --------
    torch.nn.functional.kl_div, scipy.special.rel_entr

    Notes
    -----
    Each term is ``xlogy(p, p) - p * input`` (PyTorch's formula), or
    ``exp(t) * (t - input)`` with ``t = log p`` if `log_target`.  Where the
    target probability is exactly zero (``p == 0``, or ``t == -inf``) the term
    is 0 whatever `input` is, NaN aside (0 * log 0 = 0; PyTorch gives NaN
    when `input` or, with `log_target`, ``t - input`` is infinite); with
    `log_target`, an `input` of -inf under ``t > -inf`` gives +inf (PyTorch:
    NaN where ``exp(t)`` underflows), a finite ``t == input`` gives 0
    (PyTorch: NaN where ``exp(t)`` overflows), and so does a finite `input`
    where ``exp(t)`` underflows to 0 (PyTorch: NaN where ``t - input``
    overflows, e.g. ``t = -1.7e308, input = 1.7e308``).  float32 terms are
    rounded to float32 each (as fastxent forms them), then reduced in
    float64.  A negative ``p`` gives NaN.  The gradient of each term is
    ``-p`` (``-exp(t)``, for float32 rounded to float32 first, as PyTorch:
    -inf where ``exp(t)`` overflows float32), divided as the reduction
    divides and summed over the dimensions where `input` was broadcast.
    ``'mean'`` or ``'batchmean'`` of nothing is NaN.

    Examples
    --------
    >>> import numpy as np
    >>> from fastxent.reference import kl_div
    >>> p, q = np.array([[0.5, 0.5, 0.0]]), np.array([[0.25, 0.25, 0.5]])
    >>> float(kl_div(np.log(q), p, reduction="batchmean"))  # log 2
    0.6931471805599453
    """
    return_grad = _check_flag(return_grad, "return_grad")
    log_target = _check_flag(log_target, "log_target")
    x = _float_array(input, "input")
    _check_reduction(reduction, ("none", "mean", "batchmean", "sum"))
    t, t_float = _target_like(target, "target")
    dtype = np.result_type(x, t) if t_float else x.dtype
    work = _work_in_float64(dtype)
    try:
        shape = np.broadcast_shapes(x.shape, t.shape)
    except ValueError as exc:
        raise ValueError(
            f"target of shape {t.shape} does not broadcast with input of shape {x.shape}"
        ) from exc
    xw = np.broadcast_to(x.astype(work), shape)
    tw = np.broadcast_to(t.astype(work), shape)
    with np.errstate(all="ignore"):
        if log_target:
            p = np.exp(tw)
            # t = x: exactly 0 also where exp(t) overflows (PyTorch: NaN)
            terms = np.where((tw == -np.inf) | ((tw == xw) & (tw < np.inf)), 0, p * (tw - xw))
            # exp(t) = 0 under a finite input: the term is 0 also where t - x
            # overflows (t = -1.7e308, x = 1.7e308; PyTorch: 0 * inf = NaN),
            # as the float32 kernel forms it (its t - x overflows sooner)
            terms = np.where((p == 0) & np.isfinite(xw) & ~np.isnan(tw), 0, terms)
            terms = np.where((xw == -np.inf) & (tw > -np.inf), np.inf, terms)
        else:
            p = tw
            xlogx = np.where(tw == 0, 0, tw * np.log(tw))
            terms = np.where(tw == 0, 0, xlogx - tw * xw)
        terms = _terms_of(np.where(np.isnan(xw) | np.isnan(tw), np.nan, terms), dtype)
        if reduction == "none":
            loss, scale = terms, 1
        elif reduction == "sum":
            loss, scale = _sum_terms(terms), 1
        else:
            if reduction == "mean":
                count = terms.size
            else:  # batchmean: per row of the input; a 0-d input is one row
                count = x.shape[0] if x.ndim else 1
            loss, scale = _mean(_sum_terms(terms), count), count
        loss = _finish(loss, dtype)
    if not return_grad:
        return loss
    with np.errstate(all="ignore"):
        # float32: exp(t) as PyTorch (and fastxent) form it, in float32, so
        # that an infinite term has an infinite gradient (t = 92, where
        # 'mean' would bring the float64 exp(t) back into range)
        grad = _sum_to_shape(_mean(-_terms_of(p, dtype), scale), x.shape)
    return loss, np.asarray(grad).astype(x.dtype).reshape(x.shape)


def _softplus(x):
    """``log(1 + exp(x))`` without overflow: ``max(x, 0) + log1p(exp(-|x|))``."""
    with np.errstate(invalid="ignore"):
        return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def _sigmoid(x):
    with np.errstate(all="ignore"):
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _broadcastable_to(arr, shape, name):
    try:
        ok = np.broadcast_shapes(arr.shape, shape) == shape
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(
            f"{name}: shape {arr.shape} does not broadcast to the input's shape {shape}"
        )
    return np.broadcast_to(arr, shape)


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean",
                                     pos_weight=None, *, return_grad=False):
    """Binary cross-entropy between ``sigmoid(input)`` and `target`, as PyTorch.

    Parameters
    ----------
    input : array_like of floats
        Logits.
    target : array_like
        Probabilities of the positive class, of the shape of `input`.
        Integer and bool targets are converted (PyTorch refuses them).
    weight : array_like, optional
        Weights of the elements, broadcastable to the shape of `input`.
    reduction : {'mean', 'sum', 'none'}, optional
        ``'none'``: the loss of each element; ``'sum'``; ``'mean'`` (default):
        the mean over all elements (NaN if there are none).
    pos_weight : array_like, optional
        Weight of the positive term, broadcastable to the shape of `input`
        (typically one per class, on the last axis).
    return_grad : bool, optional
        Also return the gradient of the returned loss (of its sum for
        ``'none'``) with respect to `input`.

    Returns
    -------
    loss : ndarray or NumPy scalar
        Shape of `input` for ``'none'``, else a scalar; in the promotion of
        the dtypes of `input` and a floating `target`.
    grad : ndarray
        Only with ``return_grad=True``: shape and dtype of `input`.

    Raises
    ------
    TypeError
        Non-floating `input`; a non-numeric `target`, `weight` or
        `pos_weight`.
    ValueError
        A `target` of another shape, a `weight` or `pos_weight` that does not
        broadcast to the input's shape, a bad `reduction`.

    See Also
    --------
    torch.nn.functional.binary_cross_entropy_with_logits

    Notes
    -----
    With ``softplus(z) = log(1 + exp(z))``, each element's loss is

        ``weight * ((1 - y) * softplus(x) + pos_weight * y * softplus(-x))``

    which is PyTorch's ``(1 - y) * x - (1 + (pos_weight - 1) * y) *
    log_sigmoid(x)`` rearranged without cancellation.  A term whose
    coefficient is 0 is 0 even where its softplus is infinite, so an
    infinite logit gives the limit of the loss: 0 for ``x = +inf, y = 1`` and
    ``x = -inf, y = 0``, +inf for ``x = -inf, y = 1`` -- PyTorch returns NaN
    in all three (and where a weight of 0 meets an infinite logit).  An
    infinite target under a finite logit gives the limit ``weight *
    (softplus(x) + y * (pos_weight * softplus(-x) - softplus(x)))``: -inf
    for ``x = 2, y = inf`` (as PyTorch), +inf for ``x = 0, y = inf,
    pos_weight = 3`` (PyTorch: NaN), NaN where the bracket is 0.  The
    terms of float16 and float32 data are the float64 terms rounded to
    float32 each (as fastxent forms them: in float32, again in float64 where
    a product overflowed on the way to a finite term, such as ``weight *
    pos_weight = 4e39`` times ``softplus(-x) = 2e-55``), then reduced in
    float64.  The gradient is ``weight * ((1 - y) * sigmoid(x) - pos_weight * y *
    sigmoid(-x))``, PyTorch's ``weight * ((1 - y + pos_weight * y) *
    sigmoid(x) - pos_weight * y)`` without its cancellation, divided by the
    number of elements for ``'mean'``, finite at infinite logits (as
    PyTorch's).

    Examples
    --------
    >>> import numpy as np
    >>> from fastxent.reference import binary_cross_entropy_with_logits
    >>> float(binary_cross_entropy_with_logits(np.array([0.0, np.inf]), [1, 1]))  # log(2) / 2
    0.34657359027997264
    """
    return_grad = _check_flag(return_grad, "return_grad")
    x = _float_array(input, "input")
    _check_reduction(reduction)
    t, t_float = _target_like(target, "target")
    if t.shape != x.shape:
        raise ValueError(f"target: shape {t.shape} differs from the input's shape {x.shape}")
    dtype = np.result_type(x, t) if t_float else x.dtype
    # float64 also for float16, whose float32 weights may give products
    # beyond float32 (the terms are rounded to float32 after)
    work = np.dtype(np.float64)
    xw, tw = x.astype(work), t.astype(work)
    # the shapes checked before the values are converted
    w = 1 if weight is None else _broadcastable_to(
        _real_array(weight, "weight"), x.shape, "weight").astype(work)
    pw = 1 if pos_weight is None else _broadcastable_to(
        _real_array(pos_weight, "pos_weight"), x.shape, "pos_weight").astype(work)
    with np.errstate(all="ignore"):
        neg_coef = w * (1 - tw)
        # pw y first (PyTorch's order): w pw may overflow where y = 0
        pos_coef = w * (pw * tw)
        sp, sn = _softplus(xw), _softplus(-xw)
        per_elem = _times_log(neg_coef, sp) + _times_log(pos_coef, sn)
        # an infinite target under a finite logit: the two terms are infinite
        # of opposite signs; their limit, w (sp(x) + y (pw sp(-x) - sp(x)))
        per_elem = np.where(np.isinf(tw) & np.isfinite(xw), w * (sp + tw * (pw * sn - sp)),
                            per_elem)
        per_elem = _terms_of(np.broadcast_to(per_elem, x.shape), dtype)
        if reduction == "none":
            loss = per_elem
        else:
            total = _sum_terms(per_elem)
            loss = total if reduction == "sum" else _mean(total, x.size)
        loss = _finish(loss, dtype)
    if not return_grad:
        return loss
    with np.errstate(all="ignore"):
        # PyTorch's (1 - y + pw y) sigmoid(x) - pw y rearranged: no cancellation
        # where sigmoid(x) is near 1, and -inf (as PyTorch's) for an infinite y
        grad = w * ((1 - tw) * _sigmoid(xw) - pw * tw * _sigmoid(-xw))
        if reduction == "mean":
            grad = grad / x.size
    with np.errstate(over="ignore"):   # float16 may overflow to inf
        return loss, np.broadcast_to(grad, x.shape).astype(x.dtype)
