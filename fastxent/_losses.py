"""Losses with torch.nn.functional semantics: cross_entropy and nll_loss.

The class axis is axis 1 of (N, C) and (N, C, d1, ...) inputs, or the only
axis of an unbatched (C,) input, as in PyTorch.  Python checks arguments,
targets and weights and allocates; the kernels (src/losses.pxi,
src/fx_xent_impl.h) read each row once and write the loss and, on request,
the gradient in the same pass.
"""
import numpy as np

from . import _dispatch
from ._checks import KERNEL_DTYPES, as_array, check_out, kernel_out, kernel_view, weight_dtype

__all__ = ["cross_entropy", "nll_loss"]

_REDUCTIONS = ("none", "mean", "sum")


def _float_input(x, name):
    x = as_array(x, name)
    if x.dtype not in KERNEL_DTYPES:
        raise TypeError(f"{name} must be a float16, float32 or float64 array, got dtype {x.dtype} "
                        "(PyTorch refuses integer input too)")
    return x


def _check_reduction(reduction, allowed=_REDUCTIONS):
    if not isinstance(reduction, str) or reduction not in allowed:
        raise ValueError(f"reduction must be one of {allowed}, got {reduction!r}")


def _class_view(a):
    """(N, C, d...) -> (N, C, prod d) view; (C,) -> (1, C, 1).  Always a
    view: the trailing dims merge or are walked by a Python loop."""
    if a.ndim == 1:
        return a.reshape(1, a.shape[0], 1)
    n, c = a.shape[:2]
    inner = 1
    for d in a.shape[2:]:
        inner *= d
    if a.ndim <= 3:
        return a.reshape(n, c, inner) if a.ndim == 3 else a.reshape(n, c, 1)
    try:  # merge d1, d2, ... without a copy
        v = a.view()
        v.shape = (n, c, inner)
        return v
    except AttributeError:
        return None


def _labels(target, x, ignore_index):
    """Class-index targets as int64 (no copy for int64), checked: each in
    [0, C) or equal to ignore_index.  Returns (labels, number ignored)."""
    batch_shape = x.shape[:1] + x.shape[2:] if x.ndim > 1 else ()
    if target.shape != batch_shape:
        raise ValueError(f"target has shape {target.shape}; class-index targets for input of "
                         f"shape {x.shape} must have shape {batch_shape}")
    C = x.shape[1] if x.ndim > 1 else x.shape[0]
    if target.dtype == np.uint64 and target.size and target.max() > np.iinfo(np.int64).max:
        big = target[target > np.iinfo(np.int64).max].flat[0]
        raise IndexError(f"Target {int(big)} is out of bounds: class indices must be in [0, {C})")
    t = target.astype(np.int64, copy=False)
    if t.size == 0:
        return t, 0
    # two reductions decide the usual case without a temporary
    lo, hi = int(t.min()), int(t.max())
    if 0 <= lo and hi < C and not lo <= ignore_index <= hi:
        return t, 0
    ignored = t == ignore_index
    bad = ~ignored & ((t < 0) | (t >= C))
    if bad.any():
        first = t[bad].flat[0]
        raise IndexError(f"Target {int(first)} is out of bounds: class indices must be in "
                         f"[0, {C}) or equal ignore_index={ignore_index}")
    return t, int(np.count_nonzero(ignored))


def _target_weight_sum(labels, n_ignored, ignore_index, w):
    """The 'mean' denominator: the summed weight of the targets that count."""
    if w is None:
        return float(labels.size - n_ignored)
    if n_ignored == 0:  # per-class counts: O(C) memory, a fixed summation order
        counts = np.bincount(labels.ravel(), minlength=w.shape[0])
        # a class no target names adds nothing, even an infinite weight
        used = counts != 0
        return float(counts[used] @ w.astype(np.float64)[used])
    keep = labels != ignore_index
    return float(np.sum(w.astype(np.float64)[labels[keep]]))


def _weight(weight, C, dtype):
    """The checked class weights, converted to `dtype` (unless None)."""
    if weight is None:
        return None
    w = as_array(weight, "weight")
    if w.ndim != 1 or w.shape[0] != C:
        raise ValueError(f"weight must be a 1-d array of length C={C}, got shape {w.shape}")
    return w if dtype is None else w.astype(dtype, copy=False)


def _grad_array(grad_out, x):
    if grad_out is None:
        return np.empty_like(x)
    return check_out(grad_out, x.shape, x.dtype, "grad_out")


def _finish(total, reduction, denom, dtype):
    """A reduced loss as a NumPy scalar of `dtype`: the sum, or for a mean
    the sum divided by `denom` (NaN when it is 0, as PyTorch's 0 / 0)."""
    value = total if reduction == "sum" else (total / denom if denom else np.nan)
    if dtype.itemsize > 2:
        return dtype.type(value)
    with np.errstate(over="ignore"):  # float16 overflows to inf quietly
        return dtype.type(value)


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0, *, return_grad=False, grad_out=None, n_threads=None):
    r"""Cross-entropy between logits and a target, ``torch.nn.functional.cross_entropy``.

    Parameters
    ----------
    input : array_like of float
        Logits, ``(N, C)``, ``(N, C, d1, ...)`` (class axis 1) or ``(C,)``
        (unbatched). float16 is computed in float32, with weights that
        float16 cannot hold exactly kept as given (from a float32 copy of
        the input).
    target : array_like
        Class indices of any integer dtype, of the input's shape without the
        class axis; or class probabilities of the input's shape (a float
        array). As in PyTorch, probabilities of a wider float dtype than the
        input promote the computation and the loss to that dtype (the input
        is converted: one copy); the gradient keeps the input dtype.
    weight : array_like, optional
        Weight of each class, length C.
    ignore_index : int, optional
        Class-index targets equal to it contribute neither loss nor gradient
        nor weight to the 'mean' denominator. Default -100.
    reduction : {'mean', 'sum', 'none'}, optional
        'mean' divides the summed loss by the summed weight ``w[target]`` of
        the non-ignored targets (class indices) or by the number of rows
        (probabilities). Default 'mean'.
    label_smoothing : float in [0, 1], optional
        Mixes the target with the uniform distribution: ``(1 - e) target + e / C``.
    return_grad : bool, optional
        Also return the gradient of the returned loss (for 'none', of its
        sum) with respect to `input`, computed in the same pass (keyword only).
    grad_out : ndarray, optional
        Array of the input's shape and dtype that receives the gradient
        (keyword only). It may be `input` itself: written in place, without
        a copy. One that overlaps `input` otherwise, or `target` or `weight`
        in any way, or is misaligned, gets the same values through a new
        array that is copied to it.
    n_threads : int, optional
        Number of threads (keyword only); results do not depend on it.

    Returns
    -------
    loss : NumPy scalar or ndarray
        A scalar of the input dtype (with probabilities, of the promotion of
        the input and target dtypes) for 'mean' and 'sum'; the per-row losses,
        of the target's shape (class indices) or the input's shape without
        the class axis, for 'none'.
    grad : ndarray
        Only with ``return_grad``.

    Raises
    ------
    IndexError
        For a class index outside ``[0, C)`` that is not `ignore_index`; the
        message names it.
    ValueError
        For a bad `reduction`, `label_smoothing` outside [0, 1], a weight of
        the wrong length, mismatched shapes, or a bad `grad_out`.
    TypeError
        For non-float input or a target that is neither integer nor float.

    See Also
    --------
    torch.nn.functional.cross_entropy, nll_loss, log_softmax

    Notes
    -----
    With ``lse = logsumexp(x)`` over the class axis, class weights ``w``,
    smoothing ``e`` and C classes, the loss of a row is

    .. math:: (1 - e)\, w_y (\mathrm{lse} - x_y) + \frac{e}{C} \sum_c w_c (\mathrm{lse} - x_c)

    for a class index y, and :math:`\sum_c w_c ((1 - e) q_c + e/C)(\mathrm{lse} - x_c)`
    for probabilities q. Its gradient is ``W softmax(x) - a`` with ``a`` the
    per-class coefficients above and ``W`` their sum. Each row is read once,
    in blocks kept in cache; the sum over classes is kept in non-negative
    terms, so it does not cancel for large logits, and ``lse - x_y`` is
    formed as ``(max - x_y) + (lse - max)`` so that a loss near zero keeps
    its digits. As in PyTorch: an all-ignored or empty batch under 'mean'
    gives NaN (also when the summed target weight is 0); a -inf logit at the
    target gives +inf; a row with +inf, NaN or only -inf gives NaN (its
    gradient too). Where PyTorch computes ``0 * inf = NaN`` for a quantity
    whose limit is defined, fastxent returns the limit: a zero weight,
    probability or smoothing share against a -inf logit contributes 0, and
    an ignored row has gradient 0 whatever its logits.

    Examples
    --------
    >>> import numpy as np
    >>> import fastxent
    >>> logits = np.array([[2.0, 0.5, -1.0], [0.0, 0.0, 0.0]])
    >>> float(fastxent.cross_entropy(logits, np.array([0, 2])))
    0.6699617926626334
    """
    _check_reduction(reduction)
    eps = float(label_smoothing)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"label_smoothing must be between 0.0 and 1.0, got {label_smoothing!r}")
    nt = _dispatch.resolve_threads(n_threads)
    x = _float_input(input, "input")
    if x.ndim == 0:
        raise ValueError("input must have at least one dimension (the classes)")
    t = np.asarray(target)
    if t.dtype.kind == "c" or t.dtype.kind not in "biuf":
        raise TypeError(f"target must hold class indices (integers) or probabilities "
                        f"(floats), got dtype {t.dtype}")
    C = x.shape[1] if x.ndim > 1 else x.shape[0]
    probs = t.dtype.kind == "f"
    # PyTorch computes in the promotion of the input and a probability
    # target and returns the loss in it; the gradient keeps the input dtype
    work = np.result_type(x.dtype, t.dtype) if probs else x.dtype
    if work not in KERNEL_DTYPES:
        raise TypeError(f"target must be a float16, float32 or float64 array, got dtype "
                        f"{t.dtype}")
    w = _weight(weight, C, None)
    # the loss's dtype; float16 data with weights that float16 cannot hold
    # compute from a float32 copy, float32 data with weights outside
    # float32's range from a float64 copy (one copy, as for mixed dtypes)
    res_dtype = work
    if w is not None:
        work = weight_dtype(w, work)
        w = w.astype(work, copy=False)
    x_in, x = x, x.astype(work, copy=False)   # a copy only for mixed dtypes
    if probs:
        if t.shape != x.shape:
            raise ValueError(f"probability target has shape {t.shape}, expected the input's "
                             f"shape {x.shape}")
        t = t.astype(work, copy=False)
        rows_shape = x.shape[:1] + x.shape[2:] if x.ndim > 1 else ()
        # PyTorch divides by numel / C: NaN without classes
        denom = float(np.prod(rows_shape)) if C else 0.0
    else:
        if t.dtype.kind == "b":
            raise TypeError("target must hold class indices (integers) or probabilities "
                            "(floats), got dtype bool")
        labels, n_ignored = _labels(t, x, ignore_index)
        rows_shape = labels.shape
        if reduction == "mean":
            denom = _target_weight_sum(labels, n_ignored, ignore_index, w)

    grad = _grad_array(grad_out, x_in) if return_grad else None
    # zeros: rows with no classes (C == 0) have no kernel call and lose 0
    rows = np.zeros(rows_shape, work) if reduction == "none" else None
    n_rows = int(np.prod(rows_shape))
    total = 0.0
    if x.size:
        gscale = 1.0 / denom if (reduction == "mean" and denom != 0) else \
            (np.inf if reduction == "mean" else 1.0)
        kern = _dispatch.active
        partial = None
        if rows is None:
            partial = np.zeros(-(-n_rows // kern.rows_per_partial()))
        xv = _class_view(kernel_view(x))
        # the array the kernel writes: the caller's grad_out, or a buffer
        # when that overlaps an operand other than being the input itself
        gwork = grad if grad is None or grad_out is None else kernel_out(
            grad, [x, t if probs else labels, w], in_place=x)
        gv = _class_view(kernel_view(gwork)) if grad is not None and grad.dtype == work else None
        if xv is None:
            xv = _class_view(kernel_view(np.ascontiguousarray(x)))
        qv = _class_view(kernel_view(t)) if probs else None
        if probs and qv is None:
            qv = _class_view(kernel_view(np.ascontiguousarray(t)))
        lv = None
        if rows is not None:
            lv = kernel_view(rows).reshape(xv.shape[0], xv.shape[2])
        lab = None if probs else kernel_view(labels).reshape(xv.shape[0], xv.shape[2])
        gbuf = gwork
        if grad is not None and gv is None:
            # the logits' view, not the gradient's, decides the kernel path
            gbuf = np.empty(x.shape, work)
            gv = _class_view(kernel_view(gbuf))
        kern.cross_entropy(xv, lab, ignore_index, qv, kernel_view(w) if w is not None else None,
                           eps, gv, gscale, lv, partial, nt)
        if gbuf is not grad:
            with np.errstate(over="ignore"):   # float16 overflows to inf quietly
                np.copyto(grad, gbuf, casting="same_kind")
        if partial is not None:
            total = float(np.sum(partial))
    if reduction == "none":
        with np.errstate(over="ignore"):   # float16 overflows to inf quietly
            rows = rows.astype(res_dtype, copy=False)
        loss = rows if rows.ndim else rows[()]
    else:
        loss = _finish(total, reduction, denom if reduction == "mean" else None, res_dtype)
    return (loss, grad) if return_grad else loss


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean", *,
             return_grad=False, grad_out=None):
    r"""Negative log-likelihood of log-probabilities, ``torch.nn.functional.nll_loss``.

    Parameters
    ----------
    input : array_like of float
        Log-probabilities, ``(N, C)``, ``(N, C, d1, ...)`` or ``(C,)``.
    target : array_like of int
        Class indices, of the input's shape without the class axis.
    weight : array_like, optional
        Weight of each class, length C.
    ignore_index : int, optional
        Targets equal to it contribute nothing. Default -100.
    reduction : {'mean', 'sum', 'none'}, optional
        'mean' divides by the summed weight of the non-ignored targets.
    return_grad : bool, optional
        Also return the gradient with respect to `input` (keyword only).
    grad_out : ndarray, optional
        Array of the input's shape and dtype for the gradient (keyword only);
        it may be `input` itself, or overlap any operand, as in
        :func:`cross_entropy`.

    Returns
    -------
    loss : NumPy scalar or ndarray
        ``-w[y] * input[n, y]`` per row, reduced.
    grad : ndarray
        Only with ``return_grad``: ``-w[y] / denominator`` at the targets,
        0 elsewhere.

    Raises
    ------
    IndexError
        For a target outside ``[0, C)`` that is not `ignore_index`.
    ValueError
        For a bad `reduction`, weight or shapes.
    TypeError
        For non-float input or non-integer targets.

    See Also
    --------
    torch.nn.functional.nll_loss, cross_entropy

    Notes
    -----
    Reads only the target element of each row (a gather), so it costs
    O(rows) whatever C is. An all-ignored or empty batch under 'mean' gives
    NaN, as in PyTorch. A log-probability of -inf at a target of weight 0
    contributes 0 (PyTorch: ``0 * inf = NaN``).
    """
    _check_reduction(reduction)
    x = _float_input(input, "input")
    if x.ndim == 0:
        raise ValueError("input must have at least one dimension (the classes)")
    t = np.asarray(target)
    if t.dtype.kind not in "iu":
        raise TypeError(f"target must hold class indices (integers), got dtype {t.dtype}")
    C = x.shape[1] if x.ndim > 1 else x.shape[0]
    # float16 computes in float32, with the weights as given (not rounded
    # to float16 first)
    w = _weight(weight, C, np.float32 if x.dtype == np.float16 else np.float64)
    labels, _ = _labels(t, x, ignore_index)
    if C == 0:
        # every target is ignored (_labels refused the rest): nothing to
        # gather; PyTorch's 0 per row, 0 summed, NaN mean, gradient of no
        # element
        if reduction == "none":
            out = np.zeros(labels.shape, x.dtype)
            loss = out if out.ndim else out[()]
        else:
            loss = _finish(0.0, reduction, 0.0, x.dtype)
        if not return_grad:
            return loss
        return loss, _grad_array(grad_out, x)
    ignored = labels == ignore_index
    safe = np.where(ignored, 0, labels)
    xb = x if x.ndim > 1 else x[None]
    idx = (safe if x.ndim > 1 else safe[None])[:, None]
    # float16 in float32, float32 in float64 (as the reference): O(rows)
    # values, and -w[y] x[y] of float32 values may overflow where the mean
    # is finite
    work = np.float32 if x.dtype == np.float16 else np.float64
    picked = np.take_along_axis(xb, idx, axis=1)[:, 0].astype(work)
    wy = np.ones(picked.shape, work) if w is None else w.astype(work)[idx[:, 0]]
    wy = np.where(ignored if x.ndim > 1 else ignored[None], 0, wy).astype(work)
    # a weight of 0 at a log-probability of -inf: the limit 0, as in
    # cross_entropy (PyTorch: 0 * inf = NaN)
    with np.errstate(invalid="ignore"):
        terms = np.where((wy == 0) & np.isinf(picked), 0, -wy * picked)
    rows = np.where(ignored if x.ndim > 1 else ignored[None], 0, terms)
    denom = float(np.sum(wy, dtype=np.float64))
    if reduction == "none":
        with np.errstate(over="ignore"):   # float16 overflows to inf quietly
            out = rows.astype(x.dtype).reshape(labels.shape)
        loss = out if out.ndim else out[()]
        gscale = 1.0
    elif reduction == "sum":
        loss = _finish(float(np.sum(rows, dtype=np.float64)), "sum", None, x.dtype)
        gscale = 1.0
    else:
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            loss = x.dtype.type(np.sum(rows, dtype=np.float64) / denom)
            gscale = 1.0 / denom if denom else np.inf
    if not return_grad:
        return loss
    grad = _grad_array(grad_out, x)
    work = grad if grad_out is None else kernel_out(grad, [x, labels, w], in_place=x)
    work[...] = 0
    gb = work if x.ndim > 1 else work[None]
    with np.errstate(invalid="ignore", over="ignore"):
        # ignored rows get 0 even when every row is ignored (gscale = inf);
        # a counted target of weight 0 under a zero 'mean' denominator gets
        # 0 * inf = NaN, as in PyTorch (and cross_entropy)
        vals = np.where(ignored if x.ndim > 1 else ignored[None], 0,
                        -wy * gscale).astype(x.dtype)
    np.put_along_axis(gb, idx, vals.reshape(idx.shape), axis=1)
    if work is not grad:
        np.copyto(grad, work)
    return loss, grad
