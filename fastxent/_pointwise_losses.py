"""Element-wise losses with torch.nn.functional semantics: kl_div and
binary_cross_entropy_with_logits.

Each function checks its arguments (_checks), broadcasts the operands
(stride-0 views, no copy) and allocates the outputs; the layout layer
(_layout.elementwise) views them as (rows, L) for one call of the kernel
(src/pointwise_losses.pxi, src/fx_pointwise_losses.h) chosen by _dispatch,
which reads every element once and writes the terms, the gradient and the
partial sums in the same pass.
"""
import math

import numpy as np
from numpy import ndarray as _ndarray  # a global: the Dask check costs less

from . import _dask, _dispatch
from ._dispatch import resolve_threads
from ._checks import (as_array, broadcast_shape, broadcast_to_shape, check_flag,
                      check_reduction, float_input, grad_array, promote, unwanted_grad_out,
                      weight_dtype)
from ._layout import array_sum, elementwise, finish, kernel_out

__all__ = ["kl_div", "binary_cross_entropy_with_logits"]

# the number of work units (and partial sums) of an (R, L) problem: the same
# C function in every kernel module, looked up once
_UNITS = _dispatch.kernels().pointwise_units
# kl_div's reductions to one value, as its small calls take them
_REDUCED = {"sum": 0, "mean": 1, "batchmean": 2}
# and binary_cross_entropy_with_logits's
_BCE_REDUCED = {"sum": 0, "mean": 1}


def _sum_of_terms(terms):
    """The sum of `terms` as far as its order does not matter: NaN with a
    NaN or with both infinities, else the infinity, else the finite terms
    summed at 2**-8 (no partial sum of fewer than 256 terms overflows), so
    that the result is infinite only where the sum is."""
    terms = np.asarray(terms, np.float64).ravel()
    finite = np.isfinite(terms)
    if not finite.all():
        rest = terms[~finite]
        if np.isnan(rest).any() or (rest > 0).any() and (rest < 0).any():
            return math.nan
        return float(rest[0])
    with np.errstate(over="ignore"):
        return float(np.sum(terms * 2.0**-8)) * 2.0**8


def _terms(run, shape, dtype):
    """The kernel's terms, written by ``run(out)`` to a new array."""
    terms = np.empty(shape, dtype)
    run(terms)
    return terms


def _kl_div_calls(kern, shape, ins, outs, lt, gscale, nt):
    """The calls of kl_div's kernel `kern` over `ins` (input, target),
    writing `outs` (the terms and the gradient, or None): the sum of their
    partial sums."""
    total = 0   # as Python's sum(): 0 + -0.0 is 0.0
    for (xv, tv, ov, gv), lo, hi, partial in elementwise(shape, ins + outs, 2, _UNITS):
        one = kern(xv, tv, lt, ov, gv, gscale, partial, nt, lo, hi)
        total += one if partial is None else array_sum(partial)
    return total


def _bce_calls(kern, shape, ins, outs, gscale, nt):
    """The calls of binary_cross_entropy_with_logits's kernel `kern` over
    `ins` (input, target, weight, pos_weight), writing `outs` (as
    _kl_div_calls): the sum of their partial sums."""
    total = 0   # as Python's sum(): 0 + -0.0 is 0.0
    for (xv, yv, wv, pv, ov, gv), lo, hi, partial in elementwise(shape, ins + outs, 4, _UNITS):
        one = kern(xv, yv, wv, pv, ov, gv, gscale, partial, nt, lo, hi)
        total += one if partial is None else array_sum(partial)
    return total


def _exact_total(total, dtype, ins, gbuf, terms_of):
    """`total`, or where it is not finite for float64 operands, the sum of
    the terms again (``terms_of()`` writes them to a new array) in an order
    that does not matter: the partial sums of the blocks and threads may
    overflow in their order (1e308 + 1e308 - 1e308) where the sum does not.
    Not when the gradient went over an input, which no longer holds it."""
    if math.isfinite(total) or dtype != np.float64 or (
            gbuf is not None and any(a is not None and np.may_share_memory(gbuf, a) for a in ins)):
        return total
    return _sum_of_terms(terms_of())


def _sum_to_shape(arr, shape):
    """Sum the broadcast dimensions of `arr` away to reach `shape`, in
    float64: a float32 running sum of 2400 gradient terms is off by 6e-6
    relative, and may overflow where the float64 sum rounds into range."""
    lead = arr.ndim - len(shape)
    arr = np.sum(arr, axis=tuple(range(lead)), dtype=np.float64) if lead else arr
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and arr.shape[i] != 1)
    return np.sum(arr, axis=axes, keepdims=True, dtype=np.float64) if axes else arr


def _outputs(shape, dtype, ins, reduction, grad, grad_given):
    """The arrays the kernel writes: the terms (for 'none') and the
    gradient, of the broadcast `shape` and the compute `dtype` (None where
    not asked for).  The gradient goes straight into `grad` when it has that
    shape and dtype (`grad_given`: the caller's array, which may be the
    input itself; through a buffer if it overlaps another operand), else
    through a buffer that `_result` reduces and casts."""
    if grad is None:
        return (np.empty(shape, dtype) if reduction == "none" else None), None
    out = np.empty(shape, dtype) if reduction == "none" else None
    if grad.shape != shape or grad.dtype != dtype:
        return out, np.empty(shape, dtype)
    return out, (kernel_out(grad, ins, in_place=ins[0]) if grad_given else grad)


def _result(out, gbuf, grad, total, reduction, denom, res_dtype):
    """The loss from the kernel's terms `out` (for 'none') or the sum
    `total` of its partial sums, divided by `denom` for 'mean' and
    'batchmean' (NaN when it is 0), in `res_dtype`; the gradient buffer
    `gbuf`, if it is not the caller's `grad`, reduced and cast to it."""
    if gbuf is not grad:   # a buffer: reduce over the broadcast axes, cast
        with np.errstate(over="ignore"):
            np.copyto(grad, _sum_to_shape(gbuf, grad.shape).reshape(grad.shape), casting="unsafe")
    if reduction == "none":
        if out.dtype != res_dtype:
            with np.errstate(over="ignore"):   # float16 overflows to inf quietly
                out = out.astype(res_dtype)
        return out if out.ndim else out[()]
    return finish(float(total), reduction, denom, res_dtype)


def kl_div(input, target, reduction="mean", log_target=False, *, return_grad=False,
           grad_out=None, n_threads=None):
    r"""Kullback-Leibler divergence terms, ``torch.nn.functional.kl_div``.

    Parameters
    ----------
    input : array_like of float
        Log-probabilities ``log q`` (float16, float32 or float64).
    target : array_like
        Probabilities ``p``, or log-probabilities ``log p`` if `log_target`;
        broadcastable with `input`.  Integer and bool targets are converted to
        the input's dtype (PyTorch refuses them).
    reduction : {'mean', 'batchmean', 'sum', 'none'}, optional
        'none': the terms, of the broadcast shape; 'sum': their sum; 'mean'
        (default, as PyTorch): their mean over all elements; 'batchmean': the
        sum divided by ``input.shape[0]`` -- the KL divergence per row, which
        is usually what is meant.
    log_target : bool, optional
        `target` holds ``log p``.
    return_grad : bool, optional
        Also return the gradient of the returned loss (for 'none', of its
        sum) with respect to `input`, from the same pass (keyword only).
    grad_out : ndarray, optional
        Array of the input's shape and dtype that receives the gradient
        (keyword only; with ``return_grad=True`` only, a ValueError without
        it, which would leave the array as it was). It may be `input`
        itself: written in place, without a copy. One that overlaps `input`
        otherwise, or `target` in any way, or is misaligned, gets the same
        values through a new array that is copied to it.
    n_threads : int, optional
        Number of threads (keyword only); results do not depend on it.

    Returns
    -------
    loss : NumPy scalar or ndarray
        In the promotion of the dtypes of `input` and a floating `target`.
    grad : ndarray
        Only with `return_grad`: ``-p`` divided as the reduction divides,
        summed over the axes where `input` was broadcast.

    Raises
    ------
    ValueError
        A bad `reduction`, shapes that do not broadcast, a bad `grad_out`.
    TypeError
        Non-float `input`; a non-numeric or complex `target`; a `log_target`
        or `return_grad` that is not True, False or a NumPy bool.

    See Also
    --------
    torch.nn.functional.kl_div, softmax_kl_div, entropy

    Notes
    -----
    Each term is

    .. math:: p\,(\log p - x) \quad\text{or, with log\_target,}\quad e^{t}\,(t - x)

    (PyTorch's ``xlogy(p, p) - p * x``, one rounding fewer).  Special values:
    where the target probability is exactly 0 (``p == 0`` or ``t == -inf``)
    the term is 0 whatever `input` is, NaN aside -- the convention
    ``0 log 0 = 0`` and the limit of the loss; PyTorch gives NaN there when
    `input` (or ``t - input``) is infinite.  With `log_target`, an `input`
    of -inf under ``t > -inf`` gives +inf (PyTorch: NaN where ``exp(t)``
    underflows), and a finite ``t == input`` gives 0 (PyTorch: NaN where
    ``exp(t)`` overflows the dtype, e.g. ``t > 88`` in float32); an `input`
    of +inf under a finite ``t`` is ``-inf``, or NaN where ``exp(t)``
    underflows (PyTorch's ``0 * inf``).  A negative ``p`` gives NaN, as in
    PyTorch.  'mean' and 'batchmean' of nothing are NaN.  A target of +inf
    gives PyTorch's ``inf - inf x``: +inf where ``x < 0``, NaN elsewhere.
    float16 is computed in float32.  A float32 term whose ``exp(t)`` is
    below float32's smallest normal number is formed in float64, so that it
    keeps its digits (PyTorch: 0 where ``exp(t)`` underflows).

    Examples
    --------
    >>> import numpy as np
    >>> import fastxent
    >>> p, q = np.array([[0.5, 0.5, 0.0]]), np.array([[0.25, 0.25, 0.5]])
    >>> float(fastxent.kl_div(np.log(q), p, reduction="batchmean"))  # log 2
    0.6931471805599453
    """
    if return_grad is not False and return_grad is not True:
        return_grad = check_flag(return_grad, "return_grad")
    if log_target is not False and log_target is not True:
        log_target = check_flag(log_target, "log_target")
    if ((type(input) is not _ndarray or type(target) is not _ndarray)
            and _dask.any_dask(input, target)):
        return _dask.kl_div(input, target, reduction, log_target, return_grad=return_grad,
                            grad_out=grad_out, n_threads=n_threads)
    if (type(input) is _ndarray and type(target) is _ndarray and return_grad is False
            and grad_out is None and n_threads is None and type(reduction) is str):
        mode = _REDUCED.get(reduction)
        if mode is not None:
            # a small C-ordered call straight to its driver (None: any other)
            loss = _dispatch.active.kl_div_small(input, target, log_target, mode)
            if loss is not None:
                return loss
    check_reduction(reduction, ("none", "mean", "batchmean", "sum"))
    x = float_input(input, "input")
    t = as_array(target, "target")
    dtype = promote(x, t) if t.dtype.kind == "f" else x.dtype
    shape = x_shape = x.shape
    t_shape = t.shape
    if t_shape != shape:
        shape = broadcast_shape([x, t], ["input", "target"],
                                "target of shape {1} does not broadcast with input of shape {0}")
    nt = resolve_threads(n_threads)
    if reduction == "mean":
        denom = math.prod(shape)
    elif reduction == "batchmean":
        denom = x_shape[0] if x_shape else 1
    else:
        denom = 1
    gscale = (1.0 / denom) if denom else np.nan
    grad = (grad_array(grad_out, x) if return_grad
            else None if grad_out is None else unwanted_grad_out())
    xw = x if x.dtype is dtype or x.dtype == dtype else x.astype(dtype)
    tw = t if t.dtype is dtype or t.dtype == dtype else t.astype(dtype)
    ins = (xw if x_shape == shape else np.broadcast_to(xw, shape),
           tw if t_shape == shape else np.broadcast_to(tw, shape))
    lt = bool(log_target)
    if grad is None and reduction != "none":
        out = gbuf = None
    else:
        out, gbuf = _outputs(shape, dtype, ins, reduction, grad, grad_out is not None)
    total = 0
    if ins[0].size:
        kern = _dispatch.active.kl_div   # one entry for every dtype
        total = _kl_div_calls(kern, shape, ins, (out, gbuf), lt, gscale, nt)
        if out is None and not math.isfinite(total):
            total = _exact_total(total, dtype, ins, gbuf, lambda: _terms(
                lambda terms: _kl_div_calls(kern, shape, ins, (terms, None), lt, gscale, nt),
                shape, dtype))
    elif gbuf is not None:
        gbuf[...] = 0
    if out is None and gbuf is grad:   # a reduced loss, no buffer to copy
        loss = finish(float(total), reduction, denom, dtype)
    else:
        loss = _result(out, gbuf, grad, total, reduction, denom, dtype)
    return (loss, grad) if return_grad else loss


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean",
                                     pos_weight=None, *, return_grad=False, grad_out=None,
                                     n_threads=None):
    r"""Binary cross-entropy of logits, ``torch.nn.functional.binary_cross_entropy_with_logits``.

    Parameters
    ----------
    input : array_like of float
        Logits x (float16, float32 or float64).
    target : array_like
        Probabilities y of the positive class, of the input's shape.
        Integer and bool targets are converted (PyTorch refuses them).
    weight : array_like, optional
        Weights of the elements, broadcastable to the input's shape.
    reduction : {'mean', 'sum', 'none'}, optional
        'none': the loss of each element; 'sum'; 'mean' (default): the mean
        over all elements (NaN if there are none).
    pos_weight : array_like, optional
        Weight of the positive term, broadcastable to the input's shape
        (typically one per class, on the last axis).
    return_grad : bool, optional
        Also return the gradient of the returned loss (for 'none', of its
        sum) with respect to `input` (keyword only).
    grad_out : ndarray, optional
        Array of the input's shape and dtype that receives the gradient
        (keyword only; with ``return_grad=True`` only, a ValueError without
        it, which would leave the array as it was). It may be `input`
        itself: written in place, without a copy. One that overlaps `input`
        otherwise, or `target`, `weight` or `pos_weight` in any way, or is
        misaligned, gets the same values through a new array that is copied
        to it.
    n_threads : int, optional
        Number of threads (keyword only); results do not depend on it.

    Returns
    -------
    loss : NumPy scalar or ndarray
        In the promotion of the dtypes of `input` and a floating `target`
        (`weight` and `pos_weight` do not change it).
    grad : ndarray
        Only with `return_grad`.

    Raises
    ------
    ValueError
        A `target` of another shape, a `weight` or `pos_weight` that does not
        broadcast to the input's shape, a bad `reduction` or `grad_out`.
    TypeError
        Non-float `input`; a non-numeric or complex `target`, `weight` or
        `pos_weight`; a `return_grad` that is not True, False or a NumPy
        bool.

    See Also
    --------
    torch.nn.functional.binary_cross_entropy_with_logits, cross_entropy

    Notes
    -----
    With :math:`\mathrm{softplus}(z) = \log(1 + e^z) = \max(z, 0) + \log(1 + e^{-|z|})`,

    .. math:: \ell = w\,\big((1 - y)\,\mathrm{softplus}(x) + p_w\, y\, \mathrm{softplus}(-x)\big)

    which is PyTorch's ``(1 - y) x - (1 + (p_w - 1) y) log_sigmoid(x)``
    rearranged without cancellation: one exp and one log1p per element,
    accurate for large ``|x|``.  The gradient is
    :math:`w((1 - y)\,\sigma(x) - p_w y\,\sigma(-x))` (PyTorch's
    :math:`w((1 - y + p_w y)\,\sigma(x) - p_w y)` without its cancellation
    where :math:`\sigma(x)` is near 1), divided by the number of elements
    for 'mean'.  Where PyTorch returns NaN for a finite limit, the
    limit is returned: a term whose coefficient is 0 contributes 0 at an
    infinite logit, so ``x = +inf, y = 1`` and ``x = -inf, y = 0`` lose 0
    and ``x = -inf, y = 1`` loses +inf (PyTorch: NaN for all three, and
    where a weight of 0 meets an infinite logit).  NaN still gives NaN.
    float16 is computed in float32; weights that float16 cannot hold
    exactly keep their value (computed from float32 copies; PyTorch rounds
    them to float16: ``weight=1e5`` overflows there).  float32 data with
    float64 weights beyond float32's range (``pos_weight=1e300``) compute
    from float64 copies, as PyTorch forms such products in float64: a zero
    target then loses a finite amount, not ``inf * 0 = NaN``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastxent
    >>> float(fastxent.binary_cross_entropy_with_logits(np.array([0.0, np.inf]), [1, 1]))
    0.34657359027997264
    """
    if return_grad is not False and return_grad is not True:
        return_grad = check_flag(return_grad, "return_grad")
    if (type(input) is not _ndarray or type(target) is not _ndarray or weight is not None
            or pos_weight is not None) and _dask.any_dask(input, target, weight, pos_weight):
        return _dask.binary_cross_entropy_with_logits(
            input, target, weight, reduction, pos_weight, return_grad=return_grad,
            grad_out=grad_out, n_threads=n_threads)
    if (type(input) is _ndarray and type(target) is _ndarray and weight is None
            and pos_weight is None and return_grad is False and grad_out is None
            and n_threads is None and type(reduction) is str):
        mode = _BCE_REDUCED.get(reduction)
        if mode is not None:
            # a small C-ordered call straight to its driver (None: any other)
            loss = _dispatch.active.bce_with_logits_small(input, target, mode)
            if loss is not None:
                return loss
    check_reduction(reduction, ("none", "mean", "sum"))
    x = float_input(input, "input")
    t = as_array(target, "target")
    if t.shape != x.shape:
        raise ValueError(f"target has shape {t.shape}; it must have the input's shape {x.shape}")
    dtype = promote(x, t) if t.dtype.kind == "f" else x.dtype
    nt = resolve_threads(n_threads)
    shape = x.shape
    res_dtype = dtype
    if weight is None and pos_weight is None:
        ins = (x if x.dtype is dtype or x.dtype == dtype else x.astype(dtype),
               t if t.dtype is dtype or t.dtype == dtype else t.astype(dtype), None, None)
    else:
        weights = [None if arr is None else as_array(arr, name)
                   for arr, name in ((weight, "weight"), (pos_weight, "pos_weight"))]
        for a, name in zip(weights, ("weight", "pos_weight")):
            if a is not None:   # the shapes before weight_dtype reads the values
                broadcast_to_shape(a, shape, name)
        # float16 data with weights that float16 cannot hold compute from
        # float32 copies (float16 computes in float32 anyway), float32 data
        # with weights outside float32's range from float64 copies (see
        # weight_dtype); the loss keeps the data's dtype
        for a in weights:
            if a is not None:
                dtype = np.promote_types(dtype, weight_dtype(a, res_dtype))
        ins = [x if x.dtype is dtype or x.dtype == dtype else x.astype(dtype),
               t if t.dtype is dtype or t.dtype == dtype else t.astype(dtype)]
        for a, name in zip(weights, ("weight", "pos_weight")):
            ins.append(None if a is None else
                       broadcast_to_shape(a.astype(dtype, copy=False), shape, name))
        ins = tuple(ins)
    n = x.size
    gscale = 1.0 if reduction != "mean" else ((1.0 / n) if n else np.nan)
    grad = (grad_array(grad_out, x) if return_grad
            else None if grad_out is None else unwanted_grad_out())
    if grad is None and reduction != "none":
        out = gbuf = None
    else:
        out, gbuf = _outputs(shape, dtype, ins, reduction, grad, grad_out is not None)
    total = 0
    if n:
        kern = _dispatch.active.bce_with_logits   # one entry for every dtype
        total = _bce_calls(kern, shape, ins, (out, gbuf), gscale, nt)
        if out is None and not math.isfinite(total):
            total = _exact_total(total, dtype, ins, gbuf, lambda: _terms(
                lambda terms: _bce_calls(kern, shape, ins, (terms, None), gscale, nt),
                shape, dtype))
    elif gbuf is not None:
        gbuf[...] = 0
    if out is None and gbuf is grad:   # a reduced loss, no buffer to copy
        loss = finish(float(total), reduction, n, res_dtype)
    else:
        loss = _result(out, gbuf, grad, total, reduction, n, res_dtype)
    return (loss, grad) if return_grad else loss
