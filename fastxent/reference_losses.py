"""Plain-NumPy reference implementations of the fastxent loss family.

These are the slow, obviously correct twins of the loss kernels to come:

* :func:`cross_entropy`, :func:`nll_loss`, :func:`kl_div` and
  :func:`binary_cross_entropy_with_logits` with the semantics of
  ``torch.nn.functional`` (PyTorch 2.13), plus ``return_grad=True``, which
  also returns the gradient of the returned loss with respect to `input`
  (for ``reduction='none'``, of its sum), equal to PyTorch autograd's;
* :func:`entropy` with the semantics of ``scipy.stats.entropy`` (SciPy 1.17);
* :func:`softmax_entropy`, :func:`softmax_cross_entropy` and
  :func:`softmax_kl_div`: entropy, cross-entropy and Kullback-Leibler
  divergence of softmax distributions, straight from logits.

Conventions shared by every function here:

* **Precision.**  float16 data are computed in float32 and the result is
  rounded once to float16; float32 and float64 data are computed in float64
  and rounded once to their own dtype.  The result dtype of a loss is
  PyTorch's: the promotion of `input` and a floating `target`; `weight` and
  `pos_weight` never change it.  Gradients have the dtype and shape of
  `input` and are always ndarrays.  :func:`entropy` follows SciPy (integers
  give float64) but keeps float16; the functions of logits follow
  :func:`fastxent.softmax` (the dtype ``np.exp`` gives).
* **0-d results** (every ``'mean'``/``'sum'`` reduction, ``'none'`` on an
  unbatched input, a single row) are returned as a NumPy scalar of the result
  dtype, where PyTorch returns a 0-d tensor.
* **Zero times an infinite logarithm is zero.**  A term whose coefficient is
  exactly zero (a target probability, a smoothed target mass, a class
  weight, ``weight`` or ``pos_weight``) contributes exactly zero, even where
  the logarithm it multiplies is infinite (a logit or log-probability of
  -inf, a logit of +inf).  That is the limit of the loss as the logit tends to
  its infinite value, and the convention 0 * log 0 = 0 of information
  theory.  PyTorch computes ``0 * inf = NaN`` there; a NaN in the data still
  gives NaN.
* **Ignored targets** (class index equal to `ignore_index`) contribute
  nothing: loss 0 under ``'none'``, no weight in the ``'mean'`` denominator
  and a gradient of exactly 0 in their row, whatever the logits of that row
  hold (PyTorch's autograd gives NaN in an ignored row with a NaN, a +inf or
  only -inf logits, since ``0 * NaN`` enters its softmax backward).

They allocate temporaries of the input's size and are meant for tests, not
for speed.  The package does not import this module.
"""

import numbers

import numpy as np

try:  # NumPy >= 2.0
    from numpy.lib.array_utils import normalize_axis_index
except ImportError:  # pragma: no cover - NumPy 1.x
    from numpy.core.multiarray import normalize_axis_index

__all__ = [
    "cross_entropy",
    "nll_loss",
    "kl_div",
    "binary_cross_entropy_with_logits",
    "entropy",
    "softmax_entropy",
    "softmax_cross_entropy",
    "softmax_kl_div",
]

_REDUCTIONS = ("none", "mean", "sum")


# ---------------------------------------------------------------------------
# argument checks

def _float_array(value, name):
    """`value` as a floating-point array; TypeError for anything else."""
    arr = np.asarray(value)
    if arr.dtype.kind != "f":
        raise TypeError(f"{name}: expected a floating-point array, got dtype {arr.dtype}")
    return arr


def _real_array(value, name, *, allow_bool=True):
    """`value` as an array of real numbers (bool, int or float)."""
    arr = np.asarray(value)
    kinds = "biuf" if allow_bool else "iuf"
    if arr.dtype.kind == "c":
        raise TypeError(f"{name}: complex input is not supported (dtype {arr.dtype})")
    if arr.dtype.kind not in kinds:
        raise TypeError(f"{name}: expected a real numeric array, got dtype {arr.dtype}")
    return arr


def _check_reduction(reduction, allowed=_REDUCTIONS):
    if not isinstance(reduction, str) or reduction not in allowed:
        raise ValueError(f"reduction: {reduction!r} is not one of {', '.join(map(repr, allowed))}")


def _check_ignore_index(ignore_index):
    if isinstance(ignore_index, (bool, np.bool_)) or not isinstance(ignore_index, numbers.Integral):
        raise TypeError(f"ignore_index: expected an integer, got {ignore_index!r}")
    return int(ignore_index)


def _check_label_smoothing(label_smoothing):
    is_bool = isinstance(label_smoothing, (bool, np.bool_))
    if is_bool or not isinstance(label_smoothing, numbers.Real):
        raise TypeError(f"label_smoothing: expected a real number, got {label_smoothing!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing: must be in [0, 1], got {label_smoothing!r}")
    return float(label_smoothing)


def _working_dtype(dtype):
    """float16 is computed in float32, float32 and float64 in float64."""
    return np.dtype(np.float32) if np.dtype(dtype) == np.float16 else np.dtype(np.float64)


def _finish(value, dtype):
    """Round once to `dtype`; a 0-d result becomes a NumPy scalar."""
    with np.errstate(over="ignore"):  # float16 may overflow to inf
        out = np.asarray(value).astype(dtype)
    return out[()] if out.ndim == 0 else out


def _terms_of(terms, dtype):
    """Element terms of `dtype` data as the guarantee of the element-wise
    losses states it: float32 terms are each rounded to float32 (a term
    beyond its range is +-inf, also under a reduction whose mean would be in
    range), then reduced in float64."""
    if np.dtype(dtype) != np.float32:
        return terms
    with np.errstate(over="ignore"):
        return terms.astype(np.float32).astype(np.float64)


def _sum_terms(terms):
    """The sum of element terms, independent of their order where it can
    be: NaN with a NaN or both infinities, else the infinity, else the
    finite terms summed at 2**-8 (a partial sum of fewer than 256 terms
    cannot overflow), so that the sum is infinite only where it overflows."""
    terms = np.asarray(terms)
    finite = np.isfinite(terms)
    if not finite.all():
        rest = terms[~finite]
        if np.isnan(rest).any() or ((rest > 0).any() and (rest < 0).any()):
            return terms.dtype.type(np.nan)
        return rest[0]
    with np.errstate(over="ignore"):
        return np.sum(terms * 2.0**-8) * 2.0**8


def _times_log(coef, log_term):
    """``coef * log_term`` with 0 where `coef` is 0 and `log_term` infinite."""
    with np.errstate(invalid="ignore"):
        return np.where((coef == 0) & np.isinf(log_term), 0, coef * log_term)


def _mean(total, count):
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count


# ---------------------------------------------------------------------------
# softmax helpers

def _log_softmax_rows(x, axis, scale=1.0):
    """``log(softmax(x))`` along `axis`, with PyTorch's special rows: a row
    holding a NaN or a +inf, or of only -inf, is NaN throughout.

    Returns the log-probabilities (times `scale`, a power of two, applied
    before the subtraction so that ``scale = 0.5`` cannot overflow) and a
    mask of those rows (the axis kept)."""
    with np.errstate(all="ignore"):
        m = np.max(x, axis=axis, keepdims=True, initial=-np.inf)  # -inf: no classes
        undefined = ~np.isfinite(m)
        m = np.where(undefined, 0, m)
        shifted = x - m
        # log(sum(exp(shifted))) = log k + log1p(s / k), with k the number of
        # maxima and s the sum over the others: keeps the digits of a
        # log-probability near zero (as fastxent.reference.log_softmax)
        is_max = shifted == 0
        k = np.sum(is_max, axis=axis, keepdims=True)
        s = np.sum(np.where(is_max, 0, np.exp(shifted)), axis=axis, keepdims=True)
        lse = np.log(k) + np.log1p(s / k)
        if scale != 1:
            shifted = x * scale - m * scale
        logp = np.where(undefined, np.nan, shifted - lse * scale)
    return logp, undefined


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


def _reduce_rows(per_row, reduction, denominator):
    if reduction == "none":
        return per_row
    total = np.sum(per_row)
    return total if reduction == "sum" else _mean(total, denominator)


# ---------------------------------------------------------------------------
# PyTorch losses

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
    gives NaN.  float16 is computed in float32, float32 in float64.

    Examples
    --------
    >>> import numpy as np
    >>> from fastxent.reference_losses import cross_entropy
    >>> x = np.array([[0.0, 0.0], [0.0, np.log(3.0)]])
    >>> float(cross_entropy(x, [0, 1]))  # (log 2 + log(4/3)) / 2
    0.4904146265058631
    >>> loss, grad = cross_entropy(x, [0, -100], reduction="sum", return_grad=True)
    >>> grad.tolist()
    [[-0.5, 0.5], [0.0, 0.0]]
    """
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
        work = _working_dtype(dtype)
        w = _class_weight(weight, n_classes, work)
        y = _class_layout(t, "target").astype(work)
        with np.errstate(all="ignore"):
            coef = ((1 - eps) * y + uniform) * w
            denominator = xm.size // n_classes if n_classes else 0
            valid = None
    else:  # class indices
        dtype = x.dtype
        work = _working_dtype(dtype)
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

    logp, _ = _log_softmax_rows(xm.astype(work), -1)
    with np.errstate(all="ignore"):
        per_row = -np.sum(_times_log(coef, logp), axis=-1)
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
        if dtype == np.float32:
            # an infinite sum(a) meets p as PyTorch (and fastxent) form it
            # for float32 data (and target), in float32: 0 where it
            # underflows there, and 0 * inf = NaN
            p = np.where(np.isinf(a_sum), p.astype(np.float32), p)
        grad = p * a_sum - a
        if valid is not None:
            grad = np.where(valid[..., None], grad, 0)
    grad = grad if x.ndim == 1 else np.moveaxis(grad, -1, 1)
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
    >>> from fastxent.reference_losses import nll_loss
    >>> logp = np.log([[0.5, 0.5], [0.25, 0.75]])
    >>> loss = nll_loss(logp, [1, 0], weight=[1.0, 3.0])  # (3 log 2 + log 4) / 4
    >>> bool(np.isclose(loss, 1.25 * np.log(2)))
    True
    """
    x = _float_array(input, "input")
    _check_reduction(reduction)
    ignore_index = _check_ignore_index(ignore_index)
    xm = _class_layout(x, "input")
    work = _working_dtype(x.dtype)
    w = _class_weight(weight, xm.shape[-1], work)
    idx, valid = _class_indices(target, x, ignore_index)
    with np.errstate(all="ignore"):
        w_target = _target_weight(w, idx, valid)
        if xm.shape[-1]:
            picked = np.take_along_axis(xm.astype(work), idx[..., None], axis=-1)[..., 0]
        else:  # no classes: every target is ignored
            picked = np.zeros(idx.shape, work)
        per_row = np.where(valid, -_times_log(w_target, picked), 0)
        denominator = np.sum(w_target)
        loss = _finish(_reduce_rows(per_row, reduction, denominator), x.dtype)
    if not return_grad:
        return loss
    with np.errstate(all="ignore"):
        g = -(w_target / denominator if reduction == "mean" else w_target)
        onehot = np.arange(xm.shape[-1]) == idx[..., None]
        grad = np.where(onehot & valid[..., None], g[..., None], 0)
    grad = grad if x.ndim == 1 else np.moveaxis(grad, -1, 1)
    return loss, np.asarray(grad).astype(x.dtype)


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
    NaN where ``exp(t)`` underflows), and a finite ``t == input`` gives 0
    (PyTorch: NaN where ``exp(t)`` overflows).  float32 terms are rounded to
    float32 each (as fastxent forms them), then reduced in float64.  A negative ``p`` gives NaN.  The
    gradient of each term is ``-p`` (``-exp(t)``), divided as the reduction
    divides and summed over the dimensions where `input` was broadcast.
    ``'mean'`` or ``'batchmean'`` of nothing is NaN.

    Examples
    --------
    >>> import numpy as np
    >>> from fastxent.reference_losses import kl_div
    >>> p, q = np.array([[0.5, 0.5, 0.0]]), np.array([[0.25, 0.25, 0.5]])
    >>> float(kl_div(np.log(q), p, reduction="batchmean"))  # log 2
    0.6931471805599453
    """
    x = _float_array(input, "input")
    _check_reduction(reduction, ("none", "mean", "batchmean", "sum"))
    t, t_float = _target_like(target, "target")
    dtype = np.result_type(x, t) if t_float else x.dtype
    work = _working_dtype(dtype)
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
        grad = _sum_to_shape(_mean(-p, scale), x.shape)
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
    in all three (and where a weight of 0 meets an infinite logit).  float32
    terms are rounded to float32 each (as fastxent forms them), then reduced
    in float64.  The gradient is ``weight * ((1 - y) * sigmoid(x) - pos_weight * y *
    sigmoid(-x))``, PyTorch's ``weight * ((1 - y + pos_weight * y) *
    sigmoid(x) - pos_weight * y)`` without its cancellation, divided by the
    number of elements for ``'mean'``, finite at infinite logits (as
    PyTorch's).

    Examples
    --------
    >>> import numpy as np
    >>> from fastxent.reference_losses import binary_cross_entropy_with_logits
    >>> float(binary_cross_entropy_with_logits(np.array([0.0, np.inf]), [1, 1]))  # log(2) / 2
    0.34657359027997264
    """
    x = _float_array(input, "input")
    _check_reduction(reduction)
    t, t_float = _target_like(target, "target")
    if t.shape != x.shape:
        raise ValueError(f"target: shape {t.shape} differs from the input's shape {x.shape}")
    dtype = np.result_type(x, t) if t_float else x.dtype
    work = _working_dtype(dtype)
    xw, tw = x.astype(work), t.astype(work)
    w = 1 if weight is None else _broadcastable_to(
        _real_array(weight, "weight").astype(work), x.shape, "weight")
    pw = 1 if pos_weight is None else _broadcastable_to(
        _real_array(pos_weight, "pos_weight").astype(work), x.shape, "pos_weight")
    with np.errstate(all="ignore"):
        neg_coef = w * (1 - tw)
        # pw y first (PyTorch's order): w pw may overflow where y = 0
        pos_coef = w * (pw * tw)
        per_elem = _times_log(neg_coef, _softplus(xw)) + _times_log(pos_coef, _softplus(-xw))
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
    return loss, np.broadcast_to(grad, x.shape).astype(x.dtype)


# ---------------------------------------------------------------------------
# SciPy

def _entropy_dtype(*arrays):
    """SciPy's: integers and bools become float64, floats promote; float16
    stays float16 here (SciPy returns float32)."""
    return np.result_type(*[a.dtype if a.dtype.kind == "f" else np.float64 for a in arrays])


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
        `axis`.  Integers and bools give float64; float16 gives float16
        (computed in float32; SciPy returns float32).

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
    >>> from fastxent.reference_losses import entropy
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
    work = _working_dtype(dtype)
    try:
        arrays = np.broadcast_arrays(*[a.astype(work) for a in arrays])
    except ValueError as exc:
        raise ValueError(
            f"qk of shape {arrays[1].shape} does not broadcast with pk of shape {arrays[0].shape}"
        ) from exc
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
            s = s / np.log(float(base))
    return _finish(s, dtype)


# ---------------------------------------------------------------------------
# from logits

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
    work = _working_dtype(dtype)
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
    >>> from fastxent.reference_losses import softmax_entropy
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
    >>> from fastxent.reference_losses import softmax_cross_entropy
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
    >>> from fastxent.reference_losses import softmax_kl_div
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
