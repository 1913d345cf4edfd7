"""Losses with torch.nn.functional semantics: cross_entropy and nll_loss.

The class axis is axis 1 of (N, C) and (N, C, d1, ...) inputs, or the only
axis of an unbatched (C,) input, as in PyTorch.  Each function checks its
arguments, targets and weights (_checks), allocates its outputs and takes
the class-axis views of the layout layer (_layout.class_views); the kernels
(src/losses.pxi, src/fx_cross_entropy.h), chosen by _dispatch, read each row
once and write the loss and, on request, the gradient in the same pass.
"""
import math

import numpy as np
from numpy import ndarray as _ndarray  # a global: the Dask check costs less

from . import _dask, _dispatch
from ._dispatch import resolve_threads
from ._checks import (KERNEL_DTYPES, check_flag, check_ignore_index, check_label_smoothing,
                      check_reduction, class_axis, class_labels, class_weight, float_input,
                      grad_array, plain_array, promote_dtypes, unwanted_grad_out, weight_dtype)
from ._layout import array_sum, class_views, finish, kernel_out, kernel_view, mean_value

__all__ = ["cross_entropy", "nll_loss"]


def _bad_label(value, C, ignore_index):
    """The IndexError of a class index outside [0, C) that is not ignore_index."""
    return IndexError(f"Target {value} is out of bounds: class indices must be in "
                      f"[0, {C}) or equal ignore_index={ignore_index}")


# rows per partial sum of the kernel's reductions, of each kernel module
_ROWS_PER_PARTIAL = _dispatch.kernels().rows_per_partial()
# the reductions of cross_entropy's small calls (cross_entropy_small)
_SMALL_MODES = {"sum": 0, "mean": 1, "none": 2}


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
        nor weight to the 'mean' denominator. Default -100. With
        probabilities it must be negative (PyTorch refuses it too).
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
        (keyword only; with ``return_grad=True`` only, a ValueError without
        it, which would leave the array as it was). It may be `input`
        itself: written in place, without a copy. One that overlaps `input`
        otherwise, or `target` or `weight` in any way, or is misaligned,
        gets the same values through a new array that is copied to it.
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
        the wrong length, mismatched shapes, a bad `grad_out`, an
        `ignore_index` outside the int64 range (as PyTorch), or one that is
        not negative with probabilities (PyTorch: RuntimeError).
    TypeError
        For non-float input, a target that is neither integer nor float, an
        `ignore_index` that is not an integer (``-100.0``, ``True``: as
        PyTorch), or a `return_grad` that is not True, False or a NumPy
        bool.

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
    gives NaN, and so does a zero summed target weight over a zero total
    (over a nonzero one, +-inf: weights of both signs); a -inf logit at the
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
    if return_grad is not False and return_grad is not True:
        return_grad = check_flag(return_grad, "return_grad")
    if ((type(input) is not _ndarray or type(target) is not _ndarray)
            and _dask.any_dask(input, target)):
        return _dask.cross_entropy(input, target, weight, ignore_index, reduction, label_smoothing,
                                   return_grad=return_grad, grad_out=grad_out, n_threads=n_threads)
    if (type(input) is _ndarray and type(target) is _ndarray and weight is None
            and (return_grad is True or grad_out is None) and n_threads is None
            and type(ignore_index) is int and type(label_smoothing) is float
            and label_smoothing == 0.0 and type(reduction) is str and reduction in _SMALL_MODES
            and -0x8000000000000000 <= ignore_index <= 0x7FFFFFFFFFFFFFFF):
        # a small C-ordered call straight to its driver (None: any other)
        r = _dispatch.active.cross_entropy_small(input, target, ignore_index,
                                                 _SMALL_MODES[reduction], return_grad, grad_out)
        if r is not None:
            if return_grad:
                r, g = r
                return (r if type(r) is _ndarray
                        else finish(r[0], reduction, r[1], input.dtype)), g
            if type(r) is _ndarray:
                return r
            return finish(r[0], reduction, r[1], input.dtype)
    check_reduction(reduction)
    # literals, not _checks' names: a global lookup each costs a small call's 3%
    if (type(ignore_index) is not int
            or not -0x8000000000000000 <= ignore_index <= 0x7FFFFFFFFFFFFFFF):
        ignore_index = check_ignore_index(ignore_index)
    if type(label_smoothing) is float and 0.0 <= label_smoothing <= 1.0:
        eps = label_smoothing
    else:
        eps = check_label_smoothing(label_smoothing)
    nt = resolve_threads(n_threads)
    x = float_input(input, "input")
    x_shape = x.shape
    if not x_shape:
        raise ValueError("input must have at least one dimension (the classes)")
    t = target if type(target) is _ndarray else plain_array(target, "target")
    kind = t.dtype.kind
    if kind == "c" or kind not in "biuf":
        raise TypeError(f"target must hold class indices (integers) or probabilities "
                        f"(floats), got dtype {t.dtype}")
    C, rows_shape = class_axis(x_shape)
    probs = kind == "f"
    if probs and ignore_index >= 0:
        # PyTorch refuses it rather than let a probability row be ignored
        raise ValueError(f"ignore_index is not supported for probability targets, got "
                         f"ignore_index={ignore_index}")
    # PyTorch computes in the promotion of the input and a probability
    # target and returns the loss in it; the gradient keeps the input dtype
    work = x.dtype   # a kernel dtype (float_input)
    if probs:
        work = promote_dtypes(work, t.dtype)
        if work not in KERNEL_DTYPES:
            raise TypeError(f"target must be a float16, float32 or float64 array, got dtype "
                            f"{t.dtype}")
    w = None if weight is None else class_weight(weight, C, None)
    # the loss's dtype; float16 data with weights that float16 cannot hold
    # compute from a float32 copy, float32 data with weights outside
    # float32's range from a float64 copy (one copy, as for mixed dtypes)
    res_dtype = work
    if w is not None:
        work = weight_dtype(w, work)
        w = w.astype(work, copy=False)
    x_in = x
    if x.dtype is not work and x.dtype != work:
        x = x.astype(work)   # a copy only for mixed dtypes
    if probs:
        if t.shape != x_shape:
            raise ValueError(f"probability target has shape {t.shape}, expected the input's "
                             f"shape {x_shape}")
        t = t.astype(work, copy=False)
        n_rows = math.prod(rows_shape)
        # PyTorch divides by numel / C: NaN without classes
        denom = float(n_rows) if C else 0.0
    else:
        if kind == "b":
            raise TypeError("target must hold class indices (integers) or probabilities "
                            "(floats), got dtype bool")
        # int64, of the rows' shape; the kernel checks the range (see below)
        labels = class_labels(t, C, rows_shape, x_shape)
        n_rows = labels.size
        # the kernel's denominator of 'mean': the summed weight of the
        # counted targets; without a kernel call, 0 (NaN, as in PyTorch)
        denom = 0.0
        if n_rows and not C:   # no class: every target must be ignored
            bad = np.flatnonzero(labels.ravel() != ignore_index)
            if bad.size:
                raise _bad_label(int(labels.flat[bad[0]]), C, ignore_index)

    grad = (grad_array(grad_out, x_in) if return_grad
            else None if grad_out is None else unwanted_grad_out())
    # zeros: rows with no classes (C == 0) have no kernel call and lose 0
    rows = np.zeros(rows_shape, work) if reduction == "none" else None
    total = hard = 0.0
    if n_rows and C:
        # the partial sums of blocks of rows; one block's sum the kernel
        # returns
        partial = None
        if rows is None and n_rows > _ROWS_PER_PARTIAL:
            partial = np.zeros(-(-n_rows // _ROWS_PER_PARTIAL))
        # with labels the kernel forms the 'mean' factor from its denominator
        gscale = 1.0
        if probs and reduction == "mean":
            gscale = 1.0 / denom if denom != 0 else np.inf
        # the array the kernel writes: the caller's grad_out, or a buffer
        # when that overlaps an operand other than being the input itself,
        # or (the logits' view, not the gradient's, decides the kernel path)
        # when it is of another dtype than the computation
        gwork = grad
        if grad is not None:
            if grad.dtype != work:
                gwork = np.empty(x.shape, work)
            elif grad_out is not None:
                gwork = kernel_out(grad, [x, t if probs else labels, w], in_place=x)
        if (reduction == "mean" and not probs and eps > 0 and w is not None
                and bool(np.any(w < 0))):
            # weights of both signs may sum to 0 under a nonzero label term,
            # which a smoothed 'mean' then divides apart (_smoothed_over_zero):
            # that term's sum, now, before a gradient written over the input
            hard = float(cross_entropy(input, target, weight, ignore_index, "sum",
                                       n_threads=n_threads))
        kern = _dispatch.active.cross_entropy   # one entry for every dtype
        wv = None if w is None else kernel_view(w)
        operands = ((x, t, gwork, None, rows) if probs else (x, None, gwork, labels, rows))
        for (xv, qv, gv, lab, lv), lo, hi in class_views(operands, 2, 1):
            # labels are checked (each in [0, C) or ignore_index) before
            # anything is written; the first bad one stops the call
            total, kdenom, bad = kern(xv, lab, ignore_index, qv, wv, eps, gv, gscale, lv,
                                      partial, nt, lo, hi, reduction == "mean")
            if bad >= 0:
                raise _bad_label(int(labels.flat[bad]), C, ignore_index)
            if not probs:
                denom = kdenom
        if gwork is not grad:
            with np.errstate(over="ignore"):   # float16 overflows to inf quietly
                np.copyto(grad, gwork, casting="same_kind")
        if partial is not None:
            total = array_sum(partial)
    if reduction == "mean" and not probs and eps > 0 and denom == 0 and n_rows and C:
        # a zero weight sum: PyTorch divides the label's term and the
        # smoothing term by 0 apart, and adds them; the label's term is 0
        # unless weights of both signs cancelled (hard, formed above)
        total = _smoothed_over_zero(hard, total - (1.0 - eps) * hard, eps)
        denom = 1.0
    if reduction == "none":
        if rows.dtype != res_dtype:
            with np.errstate(over="ignore"):   # float16 overflows to inf quietly
                rows = rows.astype(res_dtype)
        loss = rows if rows.ndim else rows[()]
    elif res_dtype.itemsize > 2:   # finish() without its call: a small call's tenth
        loss = res_dtype.type(total if reduction == "sum" else
                              mean_value(total, denom))
    else:
        loss = finish(total, reduction, denom, res_dtype)
    return (loss, grad) if return_grad else loss


def _smoothed_over_zero(hard, smooth, eps):
    """PyTorch's smoothed 'mean' over a zero weight sum: ``(1 - eps) *
    (hard / 0) + smooth / 0`` (`smooth` already times eps / C), each
    quotient NaN for 0 and +-inf otherwise, so NaN unless both are infinite
    of one sign (a zero label term: NaN, as every zero-weight batch)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float((1.0 - eps) * (np.float64(hard) / 0.0) + np.float64(smooth) / 0.0)


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean", *,
             return_grad=False, grad_out=None, n_threads=None):
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
        Array of the input's shape and dtype for the gradient (keyword only,
        with ``return_grad=True`` only); it may be `input` itself, or
        overlap any operand, as in :func:`cross_entropy`.
    n_threads : int, optional
        Number of threads (keyword only); results do not depend on it.

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
        For a bad `reduction`, weight or shapes, or an `ignore_index`
        outside the int64 range (as PyTorch).
    TypeError
        For non-float input, non-integer targets, an `ignore_index` that
        is not an integer (``-100.0``, ``True``: as PyTorch), or a
        `return_grad` that is not True, False or a NumPy bool.

    See Also
    --------
    torch.nn.functional.nll_loss, cross_entropy

    Notes
    -----
    Reads only the target element of each row (a gather), so it costs
    O(rows) whatever C is, and allocates nothing but its results: the
    targets are read in their own integer dtype and the weights in their
    own float dtype (integer weights are converted, O(C)), both through
    their strides. float16 computes in float32 (weights rounded to float32),
    float32 and float64 in float64; sums are float64, in an order that does
    not depend on the thread count. An all-ignored or empty batch under
    'mean' gives NaN, as in PyTorch, and a zero summed target weight +-inf
    under a nonzero total. A log-probability of -inf at a target of
    weight 0 contributes 0 (PyTorch: ``0 * inf = NaN``).

    Examples
    --------
    >>> import numpy as np
    >>> import fastxent
    >>> logp = np.log(np.array([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]))
    >>> float(fastxent.nll_loss(logp, np.array([0, 2]), reduction="sum"))
    0.916290731874155
    """
    if return_grad is not False and return_grad is not True:
        return_grad = check_flag(return_grad, "return_grad")
    if ((type(input) is not _ndarray or type(target) is not _ndarray)
            and _dask.any_dask(input, target)):
        return _dask.nll_loss(input, target, weight, ignore_index, reduction,
                              return_grad=return_grad, grad_out=grad_out, n_threads=n_threads)
    check_reduction(reduction)
    # literals, not _checks' names: a global lookup each costs a small call's 3%
    if (type(ignore_index) is not int
            or not -0x8000000000000000 <= ignore_index <= 0x7FFFFFFFFFFFFFFF):
        ignore_index = check_ignore_index(ignore_index)
    nt = resolve_threads(n_threads)
    x = float_input(input, "input")
    if x.ndim == 0:
        raise ValueError("input must have at least one dimension (the classes)")
    t = target if type(target) is _ndarray else plain_array(target, "target")
    if t.dtype.kind not in "iu":
        raise TypeError(f"target must hold class indices (integers), got dtype {t.dtype}")
    C, batch_shape = class_axis(x.shape)
    if t.shape != batch_shape:
        raise ValueError(f"target has shape {t.shape}; class-index targets for input of "
                         f"shape {x.shape} must have shape {batch_shape}")
    if not t.dtype.isnative:   # the kernel reads native integers: O(rows), rare
        t = t.astype(t.dtype.newbyteorder("="))
    w = None if weight is None else class_weight(weight, C, None)
    if w is not None and w.dtype.kind != "f":   # float weights are read as they are
        w = w.astype(np.float64)
    # a new gradient of the input's memory order is a zeroed (calloc'd)
    # array: the kernel writes only the targets, and pages of no target are
    # never touched here
    zeroed = return_grad and grad_out is None and (x.flags.c_contiguous
                                                   or x.flags.f_contiguous)
    if zeroed:
        grad = np.zeros(x.shape, x.dtype, order="C" if x.flags.c_contiguous else "F")
    else:
        grad = (grad_array(grad_out, x) if return_grad
                else None if grad_out is None else unwanted_grad_out())
    # the caller's array, or a buffer when it overlaps an operand other than
    # being the input itself (the kernel checks every label and reads every
    # target before it writes the caller's gradient)
    gwork = grad if grad is None or grad_out is None else kernel_out(grad, [x, t, w],
                                                                      in_place=x)
    rows = np.empty(t.shape, x.dtype) if reduction == "none" else None
    total, denom, bad = _dispatch.active.nll_loss(x, t, ignore_index, w, rows, gwork, zeroed,
                                                  reduction == "mean", grad_out is not None, nt)
    if bad >= 0:
        value = int(t[np.unravel_index(bad, t.shape)])
        if value > np.iinfo(np.int64).max:
            raise IndexError(f"Target {value} is out of bounds: class indices must be in "
                             f"[0, {C})")
        raise _bad_label(value, C, ignore_index)
    if gwork is not grad:
        np.copyto(grad, gwork)
    if reduction == "none":
        loss = rows if rows.ndim else rows[()]
    else:
        if reduction == "mean":
            value = mean_value(total, denom)
        else:
            value = total
        # the largest float16 or float32
        big = 65504.0 if x.dtype.itemsize == 2 else 3.4028234663852886e38
        if x.dtype.itemsize == 8 or -big <= value <= big:
            loss = x.dtype.type(value)
        else:
            with np.errstate(over="ignore"):   # overflows to inf quietly
                loss = x.dtype.type(value)
    return (loss, grad) if return_grad else loss
