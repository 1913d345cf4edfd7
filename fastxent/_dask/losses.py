r"""cross_entropy, nll_loss, kl_div and binary_cross_entropy_with_logits of
Dask arrays.

cross_entropy's class axis (axis 1, or the only axis) split into chunks:
the loss of a row is written with per-class coefficients ``a_c`` (``w_c
((1 - e) [c = y] + e / C)`` for a class index y, ``w_c ((1 - e) q_c + e /
C)`` for probabilities q) as

.. math:: \ell = \sum_c a_c (\mathrm{lse} - x_c) = B + A \log S, \quad
          A = \sum_c a_c, \quad B = \sum_c a_c (M - x_c)

with M the row maximum and S the sum of ``e^{x - M}`` (:mod:`.row_state`).
Each block gives its row state and its ``A`` and ``B`` about its own
maximum; merging moves ``B`` to the common one (``B + (M - m) A``), so
``lse - x_y`` is formed as ``(M - x_y) + log S``, as the NumPy kernel does.
nll_loss gathers the target's log-probability: one block of the class axis
holds it, the others add an exact 0.  The element-wise losses map the NumPy
function over the blocks and sum the blocks' sums in float64.
"""
import functools
import math

import numpy as np

import dask.array as da

from .. import _dispatch
from .. import _losses as _np_losses
from .. import _pointwise_losses as _np_pointwise
from .._checks import check_label_smoothing, check_reduction
from .._layout import finish
from . import row_state
from .blocks import (array_of, block_classes, block_label_index, block_values, chunked_like,
                     classes_of, fan_in, known_shape, operand, probe_labels, scalar_of,
                     target_operand, threads, without_empty_chunks)

__all__ = ["cross_entropy", "nll_loss", "kl_div", "binary_cross_entropy_with_logits"]

_F = np.float64
CE = np.dtype([("m", _F), ("k", _F), ("r", _F), ("A", _F), ("B", _F), ("ignored", _F)])


def _no_grad(name, return_grad, grad_out):
    if return_grad or grad_out is not None:
        raise TypeError(f"{name}: return_grad and grad_out are not supported for Dask arrays")


def _labels_ok(y, C, ignore_index):
    """Raise the NumPy path's IndexError for a class index out of range."""
    bad = (y != ignore_index) & ((y < 0) | (y >= C))
    if bad.any():
        raise IndexError(f"Target {int(y[bad].flat[0])} is out of bounds: class indices must be "
                         f"in [0, {C}) or equal ignore_index={ignore_index}")


def _coefficients(t, cls, w, ca, C, eps, ignore_index, probs):
    """The coefficients ``a_c`` of a block (classes `cls`, weights `w`,
    float64) and the rows' ignored flags (keepdims)."""
    shape = [1] * (t.ndim if probs else t.ndim + 1)
    shape[ca] = cls.shape[0]
    if probs:
        a = np.multiply(t, 1.0 - eps, dtype=_F)
        ignored = np.zeros(np.delete(t.shape, ca) if t.ndim > 1 else (), bool)
        ignored = np.expand_dims(ignored, ca)
    else:
        y = np.expand_dims(t, ca)
        a = np.where(y == cls.reshape(shape), 1.0 - eps, 0.0)
        ignored = y == ignore_index
    if eps:
        a += eps / C
    if w is not None:
        a *= np.asarray(w, _F).reshape(shape)
    if not probs:
        a = np.where(ignored, 0.0, a)
    return a, ignored


def _gaps(a, m, x, ca):
    """``sum(a * (m - x))`` along `ca` (keepdims): a class of coefficient 0
    adds 0, even at a -inf logit; one of a nonzero coefficient at a -inf
    logit adds an infinity of the coefficient's sign (a negative class
    weight: -inf, as the NumPy path), also in a block of only -inf."""
    with np.errstate(invalid="ignore", over="ignore"):
        terms = a * (m - x)
    at = np.broadcast_to(x == -np.inf, terms.shape)
    terms[at] = np.where(np.broadcast_to(a, terms.shape) < 0, -np.inf, np.inf)[at]
    terms[np.broadcast_to(a == 0, terms.shape)] = 0.0
    return np.sum(terms, axis=ca, keepdims=True)


def _ce_block(x, t, cls, w=None, *, ca, C, eps, ignore_index, probs, nt=1):
    """The partial state (CE) of a block of logits along the class axis: its
    rows' (m, k, r) from the row kernels in one read (see
    row_state._kernel_state; NumPy reductions where the block is not a
    kernel operand); class indices are gathered (one element per row), the
    smoothing share and probability targets take one more pass, over
    slices of rows of a large block, so that its temporaries stay a
    slice's size."""
    cls = classes_of(cls)
    x = np.asarray(x)
    st = row_state._kernel_state(row_state.LSE, (ca,), x, None,
                                 _dispatch.resolve_threads(nt)) if x.size else None

    def part(xs, ts, ss):
        return _ce_block_part(xs, ts, ss, cls, w, ca=ca, C=C, eps=eps,
                              ignore_index=ignore_index, probs=probs)
    # with the kernel's states, class indices without smoothing make no
    # temporary of the block's size: the block at once
    if x.ndim < 2 or (st is not None and not probs and not eps):
        return part(x, t, st)
    return row_state.sub_blocks(part, [x, np.asarray(t), st], (ca,), along=0)


def _ce_block_part(x, t, st, cls, w, *, ca, C, eps, ignore_index, probs):
    if not probs and cls[0] == 0:
        _labels_ok(t, C, ignore_index)
    if st is None:
        m, k, r, _ = row_state._max_count_rest(x, (ca,))
    else:
        m, k, r = st["m"], st["k"], st["r"]
    out = np.empty(m.shape, CE)
    out["m"], out["k"], out["r"] = m, k, r
    if probs:
        a, ignored = _coefficients(t, cls, w, ca, C, eps, ignore_index, True)
        out["A"] = np.sum(a, axis=ca, keepdims=True)
        out["B"] = _gaps(a, m, x, ca)
        out["ignored"] = 0.0
        return out
    y = np.expand_dims(t, ca)
    ignored = y == ignore_index
    inside = (y >= cls[0]) & (y <= cls[-1]) & ~ignored
    idx = block_label_index(y, inside, cls[0])
    xy = np.take_along_axis(x, idx, axis=ca).astype(_F)
    wy = 1.0 if w is None else np.asarray(w, _F)[idx]
    coef = np.where(inside, (1.0 - eps) * wy, 0.0)
    A, B = coef, _gaps(coef, m, xy, ca)
    if eps:
        shape = [1] * x.ndim
        shape[ca] = cls.shape[0]
        wc = np.ones(shape) if w is None else np.asarray(w, _F).reshape(shape)
        share = np.where(ignored, 0.0, eps / C)
        A = A + share * np.sum(wc)
        B = B + share * _gaps(wc, m, x, ca)
    out["A"], out["B"], out["ignored"] = A, B, ignored
    return out


def _ce_merge(states, axis, keepdims=True):
    """Merge states along `axis`, by the kernels' merge_states."""
    return row_state.merge_in_slices(_ce_merge_fields, states, axis, keepdims, {CE: 5})


def _ce_merge_fields(states):
    """The NumPy form of _ce_merge's core, the formulas the kernel follows
    (see row_state.merge_in_slices), against which tests check it."""
    axes = (0,)
    M, K, R, _ = row_state._merge_row(states["m"], states["k"], states["r"], axes)
    A, m = states["A"], states["m"]
    with np.errstate(invalid="ignore", over="ignore"):
        # no shift where the maxima are equal, also both -inf (a partial
        # merge of blocks of only -inf)
        B = np.where((A == 0) | (m == M), states["B"], states["B"] + (M - m) * A)
    out = np.empty(M.shape, CE)
    out["m"], out["k"], out["r"] = M, K, R
    with np.errstate(invalid="ignore", over="ignore"):   # inf - inf: NaN, quietly
        out["A"] = np.sum(A, axis=axes, keepdims=True)
        out["B"] = np.sum(B, axis=axes, keepdims=True)
    out["ignored"] = np.max(states["ignored"], axis=axes, keepdims=True)
    return out


def _ce_rows(state, ca):
    """The rows' losses (float64) from merged states: 0 for an ignored row,
    NaN for one with a NaN, a +inf or only -inf logits."""
    m = state["m"]
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        loss = state["B"] + state["A"] * row_state.log_sum(state["k"], state["r"])
    loss = np.where(np.isfinite(m), loss, np.nan)
    loss = np.where(state["ignored"] > 0, 0.0, loss)
    with np.errstate(over="ignore"):
        return scalar_of(np.squeeze(loss, ca))


def _reduce_rows(rows, reduction, denom, dtype):
    """'none': the rows; else their float64 sum, finished as the NumPy path
    does (divided by `denom`, a lazy 0-d array or a number, for 'mean')."""
    if reduction == "none":
        return rows.astype(dtype)
    total = rows.sum(dtype=_F, split_every=fan_in())
    if reduction == "sum":
        denom = 1.0
    return da.map_blocks(functools.partial(_finished, reduction=reduction, dtype=dtype),
                         total, da.asarray(denom), dtype=dtype, meta=np.empty((), dtype))


def _finished(total, denom=1.0, *, reduction, dtype):
    """A reduced loss from its float64 total, as the NumPy path finishes it."""
    return scalar_of(finish(float(total), reduction, float(denom), dtype))


def _weight_sum(t, w, ignore_index, C):
    """The 'mean' denominator of class-index targets: the summed weight of
    those that count (a class no target names adds nothing)."""
    block = functools.partial(_weight_block, w=w, ignore_index=ignore_index, C=C)
    parts = t.map_blocks(block, dtype=_F, chunks=tuple((1,) * len(c) for c in t.chunks),
                         meta=np.empty((0,) * t.ndim, _F))
    return parts.sum(split_every=fan_in())


def _weight_block(y, *, w, ignore_index, C):
    nd = y.ndim
    y = y[(y != ignore_index) & (y >= 0) & (y < C)]
    return np.asarray(float(y.size if w is None else np.sum(w[y], dtype=_F)),
                      _F).reshape((1,) * nd)


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0, *, return_grad=False, grad_out=None, n_threads=None):
    """:func:`fastxent.cross_entropy` of Dask arrays: a lazy Dask array."""
    _no_grad("cross_entropy", return_grad, grad_out)
    check_reduction(reduction)
    nt = threads(n_threads)
    x = operand(input)
    t = target_operand(target)
    known_shape(input=x, target=t)
    eps = label_smoothing = check_label_smoothing(label_smoothing)
    w = None if weight is None else np.asarray(weight)
    if x.ndim == 0:
        raise ValueError("input must have at least one dimension (the classes)")
    ca = 1 if x.ndim > 1 else 0
    x = without_empty_chunks(x, ca)
    C = x.shape[ca]
    probs = t.dtype.kind == "f"
    # the NumPy path checks the arguments and gives the dtypes, on one row
    small_x = np.zeros(tuple(C if d == ca else 1 for d in range(x.ndim)), x.dtype)
    small_t = (np.zeros(small_x.shape, t.dtype) if probs else
               probe_labels(np.delete(small_x.shape, ca).astype(int), t.dtype, C, ignore_index))
    dtype = np.asarray(_np_losses.cross_entropy(small_x, small_t, w, ignore_index, "none",
                                                label_smoothing)).dtype
    batch = x.shape[:ca] + x.shape[ca + 1:]
    if probs and t.shape != x.shape:
        raise ValueError(f"probability target has shape {t.shape}, expected the input's "
                         f"shape {x.shape}")
    if not probs and t.shape != batch:
        raise ValueError(f"target has shape {t.shape}; class-index targets for input of "
                         f"shape {x.shape} must have shape {batch}")
    nd = x.ndim
    ind = tuple(range(nd))
    t_ind = ind if probs else tuple(d for d in ind if d != ca)
    t = chunked_like(t, x, t_ind)
    if probs:
        x, t = da.core.unify_chunks(x, ind, t, ind)[1]
    else:
        x, t = da.core.unify_chunks(x, ind, t, t_ind)[1]
    out_ind = tuple(d for d in ind if d != ca)
    if len(x.chunks[ca]) == 1 or x.size == 0:
        fn = functools.partial(_np_losses.cross_entropy, weight=w, ignore_index=ignore_index,
                               reduction="none", label_smoothing=label_smoothing,
                               n_threads=nt)
        rows = da.blockwise(functools.partial(array_of, fn=fn), out_ind, x, ind, t, t_ind,
                            dtype=dtype, concatenate=True,
                            meta=np.empty((0,) * len(out_ind), dtype))
    else:
        cls = block_classes(x.chunks[ca])
        args = [x, ind, t, t_ind, cls, (ca,)]
        if w is not None:
            args += [block_values(x.chunks[ca], w), (ca,)]
        states = da.blockwise(_ce_block, ind, *args, dtype=CE, adjust_chunks={ca: 1},
                              align_arrays=False, meta=np.empty((0,) * nd, CE), ca=ca, C=C,
                              eps=eps, ignore_index=ignore_index, probs=probs, nt=nt)
        state = da.reduction(states, _identity, _ce_merge, axis=(ca,), keepdims=True, dtype=CE,
                             combine=_ce_merge, concatenate=False, split_every=fan_in(),
                             meta=np.empty((0,) * nd, CE))
        rows = state.map_blocks(_ce_rows, ca, dtype=_F, drop_axis=ca,
                                meta=np.empty((0,) * len(out_ind), _F))
    if reduction != "mean":
        denom = 1.0
    elif probs:
        denom = float(math.prod(batch)) if C else 0.0
    else:
        w64 = None if w is None else w.astype(_F)
        denom = _weight_sum(t, w64, ignore_index, C)
        if eps > 0 and C:
            # a zero weight sum divides the label's and the smoothing terms
            # apart, as the NumPy path (_smoothed_over_zero): the label's sum
            # is 0 there unless weights of both signs cancel, when it is
            # computed (eps = 0) as that path does
            if w is not None and bool(np.any(w < 0)):
                hard = cross_entropy(x, t, w, ignore_index, "sum", n_threads=n_threads)
            else:
                hard = 0.0
            total = rows.sum(dtype=_F, split_every=fan_in())
            return da.map_blocks(_smoothed_mean_finish, total, da.asarray(denom),
                                 da.asarray(hard), eps, dtype, dtype=dtype,
                                 meta=np.empty((), dtype))
    return _reduce_rows(rows, reduction, denom, dtype)


def _identity(x, axis, keepdims):
    return x


def _nll_block(x, t, cls, w=None, *, ca, C, ignore_index):
    """The block's part of ``-w[y] x[y]`` per row: the target's term where
    it falls in the block's classes, an exact 0 elsewhere.  Gathered, one
    element per row: the task holds nothing of the block's size (a
    coefficient per class and row, in float64, was twice a float32 block)."""
    cls = classes_of(cls)
    if cls.size == 0 or cls[0] == 0:   # the first block, or the only one (no class)
        _labels_ok(t, C, ignore_index)
    y = np.expand_dims(np.asarray(t), ca)
    if cls.size == 0:
        return np.full(y.shape, -0.0)
    inside = (y >= cls[0]) & (y <= cls[-1]) & (y != ignore_index)
    idx = block_label_index(y, inside, cls[0])
    xy = np.take_along_axis(np.asarray(x), idx, axis=ca).astype(_F)
    a = np.where(inside, 1.0 if w is None else np.asarray(w, _F)[idx], 0.0)
    with np.errstate(invalid="ignore"):
        terms = a * xy
    terms[a == 0] = 0.0   # a -inf log-probability of weight 0 adds 0
    # the sum over the block's classes that this term stands for added
    # zeros to it: -0.0 becomes 0.0 there too
    return -(terms + 0.0)


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean", *,
             return_grad=False, grad_out=None, n_threads=None):
    """:func:`fastxent.nll_loss` of Dask arrays: a lazy Dask array."""
    _no_grad("nll_loss", return_grad, grad_out)
    check_reduction(reduction)
    threads(n_threads)   # checked at the call; the blocks' gathers are NumPy operations
    x = operand(input)
    t = target_operand(target)
    known_shape(input=x, target=t)
    w = None if weight is None else np.asarray(weight)
    if x.ndim == 0:
        raise ValueError("input must have at least one dimension (the classes)")
    ca = 1 if x.ndim > 1 else 0
    x = without_empty_chunks(x, ca)
    C = x.shape[ca]
    small_x = np.zeros(tuple(C if d == ca else 1 for d in range(x.ndim)), x.dtype)
    small_t = probe_labels(np.delete(small_x.shape, ca).astype(int), t.dtype, C, ignore_index)
    dtype = np.asarray(_np_losses.nll_loss(small_x, small_t, w, ignore_index, "none")).dtype
    batch = x.shape[:ca] + x.shape[ca + 1:]
    if t.shape != batch:
        raise ValueError(f"target has shape {t.shape}; class-index targets for input of "
                         f"shape {x.shape} must have shape {batch}")
    nd = x.ndim
    ind = tuple(range(nd))
    t_ind = tuple(d for d in ind if d != ca)
    t = chunked_like(t, x, t_ind)
    x, t = da.core.unify_chunks(x, ind, t, t_ind)[1]
    w64 = None if w is None else w.astype(_F)
    cls = block_classes(x.chunks[ca])
    args = [x, ind, t, t_ind, cls, (ca,)]
    if w is not None:
        args += [block_values(x.chunks[ca], w64), (ca,)]
    parts = da.blockwise(_nll_block, ind, *args, dtype=_F, adjust_chunks={ca: 1},
                         align_arrays=False, meta=np.empty((0,) * nd, _F), ca=ca, C=C,
                         ignore_index=ignore_index)
    rows = parts.sum(axis=ca, split_every=fan_in())
    if reduction == "none":
        return rows.astype(dtype)
    total = rows.sum(split_every=fan_in())
    denom = _weight_sum(t, w64, ignore_index, C) if reduction == "mean" else 1.0
    return da.map_blocks(_nll_finish, total, da.asarray(denom), reduction, dtype, dtype=dtype,
                         meta=np.empty((), dtype))


def _smoothed_mean_finish(total, denom, hard, eps, dtype):
    """A smoothed 'mean' of class-index targets as the NumPy path forms it,
    `hard` the label terms' sum (needed only over a zero `denom`)."""
    total, denom, hard = float(total), float(denom), float(hard)
    if denom == 0:
        return scalar_of(finish(
            _np_losses._smoothed_over_zero(hard, total - (1.0 - eps) * hard, eps), "sum", 1.0,
            dtype))
    return scalar_of(finish(total, "mean", denom, dtype))


def _nll_finish(total, denom, reduction, dtype):
    """The reduced loss as the NumPy path forms it: total / 0 is NaN or
    +-inf, as in PyTorch; overflow to inf is quiet."""
    total, denom = float(total), float(denom)
    if reduction == "mean":
        value = total / denom if denom else (
            math.nan if total == 0 or total != total else total * math.inf)
    else:
        value = total
    with np.errstate(over="ignore"):
        return scalar_of(dtype.type(value))


# elements of a float16 block widened to float32 at a time for its sum
_WIDEN = 1 << 16


def _widened(b, name):
    """A block of a float16 loss's operand `name` as float32, holding the
    values the NumPy path computes with: float16 data exactly, integer
    targets as float16 first; weights as they are, which that path keeps
    (in float16 where they fit it exactly, else in float32)."""
    b = np.asarray(b)
    if b.dtype.kind != "f" and name not in ("weight", "pos_weight"):
        b = b.astype(np.float16)
    return b.astype(np.float32)


def _block_total(call, blocks, names, dtype):
    """The float64 'sum' of a block of `call`.  A float16 loss's sum is
    formed over float32 copies of slices of the block (float16 losses are
    computed in float32 terms), each slice's float64 total rounded to
    float32 (a relative 2^-24 of it, far below float16's precision unless
    the slices' sums cancel), where a block's sum rounded to float16 would
    overflow at 65504."""
    if dtype.itemsize > 2:
        return float(call(*blocks, reduction="sum"))
    shape = np.broadcast_shapes(*[np.shape(b) for b in blocks])
    full = [np.broadcast_to(b, shape) for b in blocks]
    if not shape or math.prod(shape) <= _WIDEN:
        return float(call(*[_widened(b, n) for b, n in zip(full, names)], reduction="sum"))
    step = max(1, _WIDEN // max(1, math.prod(shape[1:])))
    return math.fsum(float(call(*[_widened(b[i:i + step], n) for b, n in zip(full, names)],
                                reduction="sum"))
                     for i in range(0, shape[0], step))


def _elementwise(fn, arrays, reduction, kwargs, n_threads, names, batch=None):
    """`fn` (a NumPy element-wise loss) of the Dask `arrays` (None, or
    broadcastable to the first; `names` theirs): 'none' block by block;
    else the blocks' float64 sums, summed and finished as the NumPy path
    does."""
    nt = threads(n_threads)
    present = [i for i, a in enumerate(arrays) if a is not None]
    lazy = [operand(arrays[i]) for i in present]
    used = [names[i] for i in present]
    known_shape(**dict(zip(used, lazy)))
    small = [None] * len(arrays)
    for i, a in zip(present, lazy):
        small[i] = np.ones((1,) * a.ndim, a.dtype)
    dtype = np.asarray(fn(*small, reduction="none", **kwargs)).dtype
    shape = np.broadcast_shapes(*[a.shape for a in lazy])
    lazy = [da.broadcast_to(a, shape) for a in lazy]
    nd = len(shape)
    ind = tuple(range(nd))
    pairs = []
    for a in lazy:
        pairs += [a, ind]

    call = functools.partial(_call, fn=fn, present=tuple(present), n=len(arrays), nt=nt,
                             kwargs=kwargs)
    if reduction == "none":
        return da.blockwise(functools.partial(array_of, fn=functools.partial(
                                call, reduction="none")), ind, *pairs,
                            dtype=dtype, meta=np.empty((0,) * nd, dtype))
    sums = da.blockwise(functools.partial(_block_sum, call=call, names=tuple(used), dtype=dtype,
                                          nd=nd), ind, *pairs, dtype=_F,
                        adjust_chunks={d: 1 for d in ind},
                        meta=np.empty((0,) * nd, _F))
    n = math.prod(shape)
    if reduction == "sum":
        denom = 1
    elif reduction == "batchmean":
        denom = batch
    else:
        denom = n
    reduction_of_total = "sum" if reduction == "sum" else "mean"
    return da.map_blocks(functools.partial(_finished, denom=denom, reduction=reduction_of_total,
                                           dtype=dtype),
                         sums.sum(split_every=fan_in()), dtype=dtype, meta=np.empty((), dtype))


def _call(*blocks, fn, present, n, nt, kwargs, reduction):
    """`fn` of the operands' blocks (None for an absent operand: `present`
    lists the positions of the `n` operands given)."""
    full = [None] * n
    for i, blk in zip(present, blocks):
        full[i] = blk
    return fn(*full, reduction=reduction, n_threads=nt, **kwargs)


def _block_sum(*blocks, call, names, dtype, nd):
    return np.asarray(_block_total(call, blocks, names, dtype), _F).reshape((1,) * nd)


def kl_div(input, target, reduction="mean", log_target=False, *, return_grad=False,
           grad_out=None, n_threads=None):
    """:func:`fastxent.kl_div` of Dask arrays: a lazy Dask array."""
    _no_grad("kl_div", return_grad, grad_out)
    check_reduction(reduction, ("none", "mean", "batchmean", "sum"))
    # 'batchmean' divides by the input's first axis
    batch = np.shape(input)[0] if np.ndim(input) else 1
    return _elementwise(_np_pointwise.kl_div, [input, target], reduction,
                        {"log_target": log_target}, n_threads, ("input", "target"), batch=batch)


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean",
                                     pos_weight=None, *, return_grad=False, grad_out=None,
                                     n_threads=None):
    """:func:`fastxent.binary_cross_entropy_with_logits` of Dask arrays: a
    lazy Dask array."""
    _no_grad("binary_cross_entropy_with_logits", return_grad, grad_out)
    check_reduction(reduction)
    x, t = operand(input), operand(target)
    known_shape(input=x, target=t)
    if t.shape != x.shape:
        raise ValueError(f"target has shape {t.shape}; it must have the input's shape {x.shape}")
    return _elementwise(_bce, [input, target, weight, pos_weight], reduction, {}, n_threads,
                        ("input", "target", "weight", "pos_weight"))


def _bce(x, t, w, pw, **kwargs):
    return _np_pointwise.binary_cross_entropy_with_logits(x, t, w, pos_weight=pw, **kwargs)
