"""References of the losses of class targets: the twins of fastxent/_losses.py.

:func:`~fastxent.reference.cross_entropy` and
:func:`~fastxent.reference.nll_loss` have the semantics of
``torch.nn.functional`` (PyTorch 2.13), with the conventions of
:mod:`fastxent.reference` (precision, 0-d results, zero times an infinite
logarithm, ignored targets).
"""

import numbers
import operator

import numpy as np

from ._common import (_check_flag, _check_reduction, _finish, _float_array, _log_softmax_rows,
                      _mean, _real_array, _reduce_rows, _sum_terms, _times_log,
                      _work_in_float64)

__all__ = ["cross_entropy", "nll_loss"]


def _check_ignore_index(ignore_index):
    # PyTorch takes an int64: any integer, a 0-d integer array too
    try:
        if isinstance(ignore_index, (bool, np.bool_)):
            raise TypeError
        value = operator.index(ignore_index)
    except TypeError:
        raise TypeError(f"ignore_index: expected an integer, got {ignore_index!r}") from None
    if not -2**63 <= value < 2**63:
        raise ValueError(f"ignore_index: expected an integer in the int64 range, got {value}")
    return value


def _check_label_smoothing(label_smoothing):
    # a bool is 0 or 1, as PyTorch takes it
    if isinstance(label_smoothing, np.bool_):
        label_smoothing = bool(label_smoothing)
    if not isinstance(label_smoothing, numbers.Real):
        raise TypeError(f"label_smoothing: expected a real number, got {label_smoothing!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing: must be in [0, 1], got {label_smoothing!r}")
    return float(label_smoothing)


def _class_layout(x, name):
    """Move the class axis (1, or 0 for an unbatched input) last."""
    if x.ndim == 0:
        raise ValueError(f"{name}: expected 1 or more dimensions, got a 0-d array")
    return x if x.ndim == 1 else np.moveaxis(x, 1, -1)


def _class_weight(weight, n_classes, work):
    if weight is None:
        return np.ones(n_classes, dtype=work)
    w = _real_array(weight, "weight")
    if w.ndim != 1 or w.shape[0] != n_classes:
        raise ValueError(
            f"weight: expected one weight per class, shape ({n_classes},), got shape {w.shape}"
        )
    return w.astype(work)


def _class_indices(target, x, ignore_index, name="target"):
    """Validate class indices against input `x` (classes on axis 1, or 0 if
    unbatched); returns (indices as intp with ignored ones set to 0, mask of
    the targets that count)."""
    t = np.asarray(target)
    n_classes = x.shape[0 if x.ndim == 1 else 1]
    expected = () if x.ndim == 1 else (x.shape[0],) + x.shape[2:]
    if t.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected integer class indices, got dtype {t.dtype}")
    if t.shape != expected:
        raise ValueError(
            f"{name}: expected class indices of shape {expected} for input of shape "
            f"{x.shape}, got shape {t.shape}"
        )
    if t.dtype.kind not in "iu":
        raise TypeError(f"{name}: class indices must be integers, got dtype {t.dtype}")
    valid = t != ignore_index
    out_of_range = valid & ((t < 0) | (t >= n_classes))
    if out_of_range.any():
        label = t[out_of_range].flat[0]
        raise IndexError(
            f"{name}: label {int(label)} is out of range for {n_classes} classes "
            f"(valid labels are 0 to {n_classes - 1}, or ignore_index={ignore_index})"
        )
    return np.where(valid, t, 0).astype(np.intp), valid


def _target_weight(w, idx, valid):
    """``w[t]`` for the targets that count, 0 for the ignored ones."""
    if w.size == 0:  # no classes: every target is ignored (any other is out of range)
        return np.zeros(idx.shape, w.dtype)
    return np.where(valid, w[idx], 0)


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0, *, return_grad=False):
    """Cross-entropy between ``softmax(input)`` and `target`, as PyTorch.

    Parameters
    ----------
    input : array_like of floats
        Logits, shape ``(C,)`` (unbatched), ``(N, C)`` or ``(N, C, d1, ...)``:
        the classes are on axis 1 (axis 0 if unbatched).
    target : array_like
        Either class indices of any integer dtype, shape ``()``, ``(N,)`` or
        ``(N, d1, ...)``, each in ``[0, C)`` or equal to `ignore_index`; or
        class probabilities, floating, of the shape of `input`.
    weight : array_like, optional
        A weight per class, shape ``(C,)``.
    ignore_index : int, optional
        Class indices equal to it count for nothing (default -100).  Must be
        negative with probability targets.
    reduction : {'mean', 'sum', 'none'}, optional
        ``'none'`` returns the loss of each target, ``'sum'`` their sum and
        ``'mean'`` (default) their weighted mean (see Notes).
    label_smoothing : float, optional
        In ``[0, 1]``: mix the target with the uniform distribution over the
        ``C`` classes.
    return_grad : bool, optional
        Also return the gradient of the returned loss (of its sum for
        ``'none'``) with respect to `input`.

    Returns
    -------
    loss : ndarray or NumPy scalar
        Shape ``(N, d1, ...)`` for ``'none'`` (a scalar if unbatched), else a
        scalar; dtype of `input`, promoted with a floating `target`.
    grad : ndarray
        Only with ``return_grad=True``: shape and dtype of `input`.

    Raises
    ------
    TypeError
        Non-floating `input`, non-integer class indices, integer
        probabilities, a non-integer `ignore_index`.
    ValueError
        A 0-d `input`; a `target` shape that is neither; a `weight` not of
        shape ``(C,)``; a bad `reduction`; `label_smoothing` outside
        ``[0, 1]`` (PyTorch silently ignores a negative one); a non-negative
        `ignore_index` with probability targets.
    IndexError
        A class index outside ``[0, C)`` that is not `ignore_index`; the
        message names the label.

    See Also
    --------
    torch.nn.functional.cross_entropy

    Notes
    -----
    With ``logp = log_softmax(input)`` along the class axis, ``eps`` the label
    smoothing and ``w`` the class weights (1 if not given), the loss of one
    target of class ``t`` (PyTorch's ``cross_entropy_loss_label_smoothing``) is

        ``l = (1 - eps) * w[t] * -logp[t] + (eps / C) * sum_c w[c] * -logp[c]``

    and ``'mean'`` divides the sum of the ``l`` by the sum of ``w[t]`` over
    the targets that are not ignored, for the smoothing term too (NaN if that
    is 0, in particular for an empty or all-ignored batch; ``'sum'`` gives 0
    there).  For probability targets ``y`` (PyTorch's
    ``cross_entropy_loss_prob_target``), with ``y' = (1 - eps) * y + eps / C``,

        ``l = sum_c w[c] * y'[c] * -logp[c]``

    and ``'mean'`` divides by the number of rows ``N * d1 * ...``, not by
    the weights (NaN when it is 0).

    The gradient of ``sum_c a[c] * -logp[c]`` is ``softmax * sum(a) - a``;
    ``'mean'`` scales it by the same denominator.  Ignored rows have a
    gradient of 0.

    Special values: a row with a NaN or a +inf logit, or of only -inf
    logits, has a NaN loss and gradient (as in PyTorch) unless ignored.
    With zero classes (every target then ignored) ``'sum'`` is 0 also with
    label smoothing (PyTorch: NaN, from ``0 * eps / 0``).  A
    -inf logit with a nonzero coefficient gives a loss of +inf and a finite
    gradient; with a zero coefficient (a zero probability, or a class weight
    of 0, or ``eps = 1`` for the hard target) it contributes 0, where PyTorch
    gives NaN.  An infinite coefficient gives +-inf, except at a single
    maximum of its row whose log-probability ``-log(1 + s)`` (``s`` the sum
    of the other ``exp(x_c - max)``) is 0 in PyTorch's precision (float32
    for float16 and float32 data, float64 for float64): NaN there, as
    PyTorch's ``0 * inf``.  float16 is computed in float32, float32 in
    float64.

    Examples
    --------
    >>> import numpy as np
    >>> from fastxent.reference import cross_entropy
    >>> x = np.array([[0.0, 0.0], [0.0, np.log(3.0)]])
    >>> float(cross_entropy(x, [0, 1]))  # (log 2 + log(4/3)) / 2
    0.4904146265058631
    >>> loss, grad = cross_entropy(x, [0, -100], reduction="sum", return_grad=True)
    >>> grad.tolist()
    [[-0.5, 0.5], [0.0, 0.0]]
    """
    return_grad = _check_flag(return_grad, "return_grad")
    x = _float_array(input, "input")
    _check_reduction(reduction)
    ignore_index = _check_ignore_index(ignore_index)
    eps = _check_label_smoothing(label_smoothing)
    xm = _class_layout(x, "input")
    n_classes = xm.shape[-1]
    uniform = eps / n_classes if n_classes else 0.0  # smoothing mass per class
    t = np.asarray(target)

    if t.shape == x.shape:  # probabilities
        if t.dtype.kind != "f":
            raise TypeError(
                f"target: probabilities (target of the input's shape {x.shape}) must be "
                f"floating-point, got dtype {t.dtype}"
            )
        if ignore_index >= 0:
            raise ValueError(
                f"ignore_index: not supported with probability targets, got {ignore_index}"
            )
        dtype = np.result_type(x, t)
        work = _work_in_float64(dtype)
        w = _class_weight(weight, n_classes, work)
        y = _class_layout(t, "target").astype(work)
        with np.errstate(all="ignore"):
            coef = ((1 - eps) * y + uniform) * w
            denominator = xm.size // n_classes if n_classes else 0
            valid = None
    else:  # class indices
        dtype = x.dtype
        work = _work_in_float64(dtype)
        w = _class_weight(weight, n_classes, work)
        idx, valid = _class_indices(t, x, ignore_index)
        with np.errstate(all="ignore"):
            w_target = _target_weight(w, idx, valid)
            onehot = np.arange(n_classes) == idx[..., None]
            # where, not products with onehot and a zero smoothing mass: an
            # infinite weight there is not 0 * inf = NaN
            coef = np.where(onehot, (1 - eps) * w_target[..., None], 0)
            if uniform:
                coef = coef + uniform * w
            coef = np.where(valid[..., None], coef, 0)
            denominator = np.sum(w_target)

    xw = xm.astype(work)
    logp, _ = _log_softmax_rows(xw, -1)
    with np.errstate(all="ignore"):
        terms = _times_log(coef, logp)
        # PyTorch's log-probability at a single maximum, -log(1 + s) with s
        # the sum of the other exps, is 0 where 1 + s rounds to 1 in its
        # precision (float32 for float16 and float32, float64 for float64):
        # an infinite coefficient there gives 0 * inf = NaN, not the -inf
        # of a log-probability of -1e-251 (x = [264.5, -313.9], q = [inf, 0])
        m = np.max(xw, axis=-1, keepdims=True, initial=-np.inf)
        at_max = xw == m
        rest = np.sum(np.where(at_max, 0, np.exp(xw - m)), axis=-1, keepdims=True)
        precision = np.float64 if dtype == np.float64 else np.float32
        rounds_away = (np.sum(at_max, axis=-1, keepdims=True) == 1) & (
            (1.0 + rest).astype(precision) == 1)
        terms = np.where(at_max & rounds_away & np.isinf(coef), np.nan, terms)
        per_row = -np.sum(terms, axis=-1)
        if valid is not None:
            per_row = np.where(valid, per_row, 0)
        loss = _reduce_rows(per_row, reduction, denominator)
        if reduction == "mean" and denominator == 0:
            # PyTorch divides the hard and the smoothing term separately by
            # the total weight: the hard one is 0/0 even where the other is not
            loss = np.nan
        loss = _finish(loss, dtype)
    if not return_grad:
        return loss
    with np.errstate(all="ignore"):
        a = coef / denominator if reduction == "mean" else coef
        p = np.exp(logp)
        a_sum = np.sum(a, axis=-1, keepdims=True)
        if dtype in (np.float16, np.float32):
            # an infinite sum(a) meets p as PyTorch (and fastxent) form it
            # for float16 and float32 data (and target), in float32 (or
            # less): 0 where it underflows there, and 0 * inf = NaN
            p = np.where(np.isinf(a_sum), p.astype(np.float32), p)
        grad = p * a_sum - a
        if valid is not None:
            grad = np.where(valid[..., None], grad, 0)
    grad = grad if x.ndim == 1 else np.moveaxis(grad, -1, 1)
    with np.errstate(over="ignore"):   # float16 may overflow to inf
        return loss, np.asarray(grad).astype(x.dtype)


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean", *,
             return_grad=False):
    """Negative log-likelihood of class indices under log-probabilities, as PyTorch.

    Parameters
    ----------
    input : array_like of floats
        Log-probabilities (any values are accepted), shape ``(C,)``,
        ``(N, C)`` or ``(N, C, d1, ...)``, the classes on axis 1 (axis 0 if
        unbatched).
    target : array_like of ints
        Class indices of any integer dtype, shape ``()``, ``(N,)`` or
        ``(N, d1, ...)``, each in ``[0, C)`` or equal to `ignore_index`.
    weight : array_like, optional
        A weight per class, shape ``(C,)``.
    ignore_index : int, optional
        Targets equal to it count for nothing (default -100).
    reduction : {'mean', 'sum', 'none'}, optional
        See Notes.
    return_grad : bool, optional
        Also return the gradient of the returned loss (of its sum for
        ``'none'``) with respect to `input`.

    Returns
    -------
    loss : ndarray or NumPy scalar
        Shape ``(N, d1, ...)`` for ``'none'`` (a scalar if unbatched), else a
        scalar; dtype of `input`.
    grad : ndarray
        Only with ``return_grad=True``: shape and dtype of `input`.

    Raises
    ------
    TypeError
        Non-floating `input`, non-integer `target` or `ignore_index`.
    ValueError
        A 0-d `input`, a `target` of the wrong shape, a `weight` not of shape
        ``(C,)``, a bad `reduction`.
    IndexError
        A class index outside ``[0, C)`` that is not `ignore_index`; the
        message names the label.

    See Also
    --------
    torch.nn.functional.nll_loss

    Notes
    -----
    The loss of a target of class ``t`` is ``-w[t] * input[t]`` (0 if
    ignored); ``'mean'`` divides the sum by the sum of ``w[t]`` over the
    targets that are not ignored (NaN if that is 0: an empty or all-ignored
    batch, or zero weights).  The gradient is ``-w[t]`` (divided by that sum
    for ``'mean'``) at each counted target and 0 elsewhere.  Only the target
    entries are read: a NaN elsewhere in a row does not matter.  A
    log-probability of -inf at a target of weight 0 contributes 0 (PyTorch:
    NaN).

    Examples
    --------
    >>> import numpy as np
    >>> from fastxent.reference import nll_loss
    >>> logp = np.log([[0.5, 0.5], [0.25, 0.75]])
    >>> loss = nll_loss(logp, [1, 0], weight=[1.0, 3.0])  # (3 log 2 + log 4) / 4
    >>> bool(np.isclose(loss, 1.25 * np.log(2)))
    True
    """
    return_grad = _check_flag(return_grad, "return_grad")
    x = _float_array(input, "input")
    _check_reduction(reduction)
    ignore_index = _check_ignore_index(ignore_index)
    xm = _class_layout(x, "input")
    work = _work_in_float64(x.dtype)
    w = _class_weight(weight, xm.shape[-1], work)
    idx, valid = _class_indices(target, x, ignore_index)
    with np.errstate(all="ignore"):
        w_target = _target_weight(w, idx, valid)
        if xm.shape[-1]:
            picked = np.take_along_axis(xm.astype(work), idx[..., None], axis=-1)[..., 0]
        else:  # no classes: every target is ignored
            picked = np.zeros(idx.shape, work)
        per_row = np.where(valid, -_times_log(w_target, picked), 0)
        # sums of terms near the largest float overflow or not depending on
        # their order: summed so that they are infinite only where the true
        # sum is, as fastxent.nll_loss (whose rows go to threads in blocks)
        denominator = _sum_terms(w_target)
        if reduction == "none":
            loss = per_row
        else:
            total = _sum_terms(per_row)
            loss = total if reduction == "sum" else _mean(total, denominator)
        loss = _finish(loss, x.dtype)
    if not return_grad:
        return loss
    with np.errstate(all="ignore"):
        g = -(w_target / denominator if reduction == "mean" else w_target)
        onehot = np.arange(xm.shape[-1]) == idx[..., None]
        grad = np.where(onehot & valid[..., None], g[..., None], 0)
    grad = grad if x.ndim == 1 else np.moveaxis(grad, -1, 1)
    return loss, np.asarray(grad).astype(x.dtype)
