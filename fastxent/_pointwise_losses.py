"""Element-wise losses with torch.nn.functional semantics: kl_div and
binary_cross_entropy_with_logits.

Python checks the arguments, broadcasts the operands (stride-0 views, no
copy) and allocates the outputs; the kernels (src/pointwise_losses.pxi,
src/fx_pointwise_impl.h) read every element once and write the terms, the
gradient and the partial sums in the same pass.
"""
import math

import numpy as np

from . import _dispatch
from ._checks import as_array, kernel_out, kernel_view, weight_dtype
from ._layout import elementwise_views
from ._losses import _check_reduction, _finish, _float_input, _grad_array

__all__ = ["kl_div", "binary_cross_entropy_with_logits"]


def _broadcastable(a, shape, name):
    """`a` as a read-only view of `shape` (stride 0 where broadcast)."""
    try:
        ok = np.broadcast_shapes(a.shape, shape) == tuple(shape)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{name} of shape {a.shape} does not broadcast to the input's shape "
                         f"{tuple(shape)}")
    return np.broadcast_to(a, shape)


def _run(kernel_call, shape, ins, outs, units_of):
    """Call the kernel on 2-d views of the operands; returns the list of unit
    sums in a fixed order (so a reduction does not depend on the thread
    count).  The (rows, L) split, and so the order of the sums, comes from
    the inputs alone: an output whose layout does not fit it is written
    through a C-ordered buffer and copied, so that a loss never depends on
    where its outputs live.  Inputs whose dims do not merge into two are
    walked by a Python loop over the first axis."""
    if all(a.flags.c_contiguous and a.shape == shape for a in ins):
        vi = [a.reshape(1, -1) for a in ins]   # the common case: one flat stream
    else:
        vi = elementwise_views(shape, ins)
    if vi is None:
        sums = []
        for j in range(shape[0]):
            sums += _run(kernel_call, shape[1:], [a[j] for a in ins],
                         [None if o is None else o[j] for o in outs], units_of)
        return sums
    R, L = vi[0].shape
    vouts, copies = [], []
    for o in outs:
        v = None
        if o is not None:
            v = o.reshape(R, L) if o.flags.c_contiguous else None
            if v is None:
                both = elementwise_views(shape, ins + [o])
                v = both[-1] if both is not None and both[0].shape == (R, L) else None
            if v is None:
                buf = np.empty(shape, o.dtype)
                copies.append((o, buf))
                v = buf.reshape(R, L)
        vouts.append(v)
    partial = np.zeros(units_of(R, L))
    kernel_call(vi, vouts, partial)
    for o, buf in copies:
        np.copyto(o, buf)
    return [partial]


def _total(sums):
    return float(sum(float(p.sum()) for p in sums))


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


def _sum_to_shape(arr, shape):
    """Sum the broadcast dimensions of `arr` away to reach `shape`."""
    lead = arr.ndim - len(shape)
    arr = np.sum(arr, axis=tuple(range(lead))) if lead else arr
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and arr.shape[i] != 1)
    return np.sum(arr, axis=axes, keepdims=True) if axes else arr


def _pointwise(kernel, shape, dtype, ins, reduction, denom, gscale, grad, grad_given, nt,
               res_dtype=None):
    """Shared driver: allocate, run, reduce; returns the loss.  `ins` are
    kernel-dtype arrays of `shape` (broadcast views allowed), the input
    first; `denom` divides the sum for 'mean' and 'batchmean' (NaN when it
    is 0).  The gradient goes straight into `grad` when it has the broadcast
    shape and the compute dtype (`grad_given`: the caller's array, which may
    be the input itself; through a buffer if it overlaps another operand),
    else through a buffer that is reduced and cast.  The loss is returned in
    `res_dtype` (default `dtype`)."""
    res_dtype = dtype if res_dtype is None else res_dtype
    n = math.prod(shape)
    out = np.empty(shape, dtype) if reduction == "none" else None
    gbuf = None
    if grad is not None:
        direct = grad.shape == tuple(shape) and grad.dtype == dtype
        if not direct:
            gbuf = np.empty(shape, dtype)
        elif grad_given:
            gbuf = kernel_out(grad, ins, in_place=ins[0])
        else:
            gbuf = grad
    sums = []
    if n:
        kern = _dispatch.active
        outs = [None if out is None else kernel_view(out),
                None if gbuf is None else kernel_view(gbuf)]

        def call(vi, vo, partial):
            kernel(vi, vo, gscale, partial, nt)

        sums = _run(call, tuple(shape), [kernel_view(a) for a in ins], outs,
                    kern.pointwise_units)
    elif gbuf is not None:
        gbuf[...] = 0
    if grad is not None and gbuf is not grad:
        with np.errstate(over="ignore"):
            np.copyto(grad, _sum_to_shape(gbuf, grad.shape).reshape(grad.shape), casting="unsafe")
    if reduction == "none":
        with np.errstate(over="ignore"):   # float16 overflows to inf quietly
            out = out.astype(res_dtype, copy=False)
        return out if out.ndim else out[()]
    total = _total(sums)
    overwritten = gbuf is not None and any(np.may_share_memory(gbuf, a) for a in ins)
    if not math.isfinite(total) and dtype == np.float64 and not overwritten:
        # an infinite or NaN sum may come of partial sums that overflowed
        # in the order of the blocks and threads (1e308 + 1e308 - 1e308;
        # float64 terms only): the terms again, summed where the order does
        # not matter -- unless the gradient went over the input
        terms = np.empty(shape, dtype)
        _run(call, tuple(shape), [kernel_view(a) for a in ins], [kernel_view(terms), None],
             _dispatch.active.pointwise_units)
        total = _sum_of_terms(terms)
    return _finish(total, reduction, denom, res_dtype)


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
        (keyword only). It may be `input` itself: written in place, without
        a copy. One that overlaps `input` otherwise, or `target` in any way,
        or is misaligned, gets the same values through a new array that is
        copied to it.
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
        Non-float `input`; a non-numeric or complex `target`.

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
    _check_reduction(reduction, ("none", "mean", "batchmean", "sum"))
    x = _float_input(input, "input")
    t = as_array(target, "target")
    dtype = np.result_type(x, t) if t.dtype.kind == "f" else x.dtype
    try:
        shape = x.shape if x.shape == t.shape else np.broadcast_shapes(x.shape, t.shape)
    except ValueError:
        raise ValueError(f"target of shape {t.shape} does not broadcast with input of shape "
                         f"{x.shape}") from None
    nt = _dispatch.resolve_threads(n_threads)
    n = math.prod(shape)
    if reduction == "mean":
        denom = n
    elif reduction == "batchmean":
        denom = x.shape[0] if x.ndim else 1
    else:
        denom = 1
    gscale = (1.0 / denom) if denom else np.nan
    grad = _grad_array(grad_out, x) if return_grad else None
    ins = [a if a.shape == shape else np.broadcast_to(a, shape)
           for a in (x.astype(dtype, copy=False), t.astype(dtype, copy=False))]
    lt = bool(log_target)

    def kernel(vi, vo, gs, partial, nthreads):
        _dispatch.active.kl_div(vi[0], vi[1], lt, vo[0], vo[1], gs, partial, nthreads)

    loss = _pointwise(kernel, shape, dtype, ins, reduction, denom, gscale, grad,
                      grad_out is not None, nt)
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
        (keyword only). It may be `input` itself: written in place, without
        a copy. One that overlaps `input` otherwise, or `target`, `weight`
        or `pos_weight` in any way, or is misaligned, gets the same values
        through a new array that is copied to it.
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
        `pos_weight`.

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
    _check_reduction(reduction, ("none", "mean", "sum"))
    x = _float_input(input, "input")
    t = as_array(target, "target")
    if t.shape != x.shape:
        raise ValueError(f"target has shape {t.shape}; it must have the input's shape {x.shape}")
    dtype = np.result_type(x, t) if t.dtype.kind == "f" else x.dtype
    nt = _dispatch.resolve_threads(n_threads)
    shape = x.shape
    weights = [None if arr is None else as_array(arr, name)
               for arr, name in ((weight, "weight"), (pos_weight, "pos_weight"))]
    # float16 data with weights that float16 cannot hold compute from
    # float32 copies (float16 computes in float32 anyway), float32 data with
    # weights outside float32's range from float64 copies (see weight_dtype);
    # the loss keeps the data's dtype
    res_dtype = dtype
    for a in weights:
        if a is not None:
            dtype = np.promote_types(dtype, weight_dtype(a, res_dtype))
    ins = [x.astype(dtype, copy=False), t.astype(dtype, copy=False)]
    extra = []
    for a, name in zip(weights, ("weight", "pos_weight")):
        if a is None:
            extra.append(False)
            continue
        a = a.astype(dtype, copy=False)
        ins.append(a if a.shape == shape else _broadcastable(a, shape, name))
        extra.append(True)
    n = math.prod(shape)
    gscale = 1.0 if reduction != "mean" else ((1.0 / n) if n else np.nan)
    grad = _grad_array(grad_out, x) if return_grad else None
    has_w, has_pw = extra

    def kernel(vi, vo, gs, partial, nthreads):
        w = vi[2] if has_w else None
        pw = vi[2 + has_w] if has_pw else None
        _dispatch.active.bce_with_logits(vi[0], vi[1], w, pw, vo[0], vo[1], gs, partial,
                                         nthreads)

    loss = _pointwise(kernel, shape, dtype, ins, reduction, n, gscale, grad,
                      grad_out is not None, nt, res_dtype)
    return (loss, grad) if return_grad else loss
