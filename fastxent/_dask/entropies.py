r"""entropy, softmax_entropy, softmax_cross_entropy and softmax_kl_div of
Dask arrays.

A class axis that is one chunk: the NumPy function maps over the blocks.
One split into chunks: the softmax entropies merge the row states of
:mod:`.row_state` and finish with the formulas of the NumPy kernels (with
:math:`L = \log k + \log1p(r / k)`, the log of the row's ``S``):

.. math:: H(p) = L_x + t / S_x, \quad H(p, q) = L_y + u / S_x, \quad
          \mathrm{KL}(p \| q) = (L_y - L_x) + v / S_x

``entropy`` (scipy.stats.entropy) normalises by the sums along the axis
first, a lazy reduction, then sums ``entr(pk / sum pk)`` or ``rel_entr(pk /
sum pk, qk / sum qk)`` block by block, as SciPy does.
"""
import functools
import math

import numpy as np

import dask.array as da

from .. import _entropies as _np
from .._checks import entropy_axes, single_axis
from . import row_state
from .blocks import (array_of, drop_axes, fan_in, known_shape, map_reduction, operand, probe,
                     reduced_axes_whole, threads, tree_state)

__all__ = ["entropy", "softmax_entropy", "softmax_cross_entropy", "softmax_kl_div"]


def _finish(state, kind, dtype):
    """The entropy of kind `kind` of merged row states: NaN for a row with
    a NaN, a +inf or only -inf logits (in either input)."""
    m, k, r = state["m"], state["k"], state["r"]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        s = k + r
        lx = row_state.log_sum(k, r)
        bad = ~np.isfinite(m)
        if kind == row_state.ENTROPY:
            res = lx + state["t"] / s
        else:
            ly = row_state.log_sum(state["ky"], state["ry"])
            bad |= ~np.isfinite(state["my"])
            if kind == row_state.XENT:
                res = ly + state["u"] / s
            else:
                res = (ly - lx) + state["v"] / s
    res = np.where(bad, np.nan, res)
    return res.astype(dtype)


def _softmax_rows(kind, fn, arrays, names, axis, n_threads):
    """`fn` (the NumPy function) of the Dask `arrays` along `axis`, by
    blocks or by merged states of kind `kind`."""
    nt = threads(n_threads)
    arrays = [operand(a) for a in arrays]
    known_shape(**dict(zip(names, arrays)))
    small = probe(fn, arrays, axis=axis)
    dtype = np.asarray(small).dtype
    shape = np.broadcast_shapes(*[a.shape for a in arrays])
    axis = single_axis(axis, len(shape))
    if shape[axis] == 0:
        raise ValueError(f"{names[0]}: the class axis {axis} has length zero "
                         f"(shape {shape}); a softmax needs at least one class")
    arrays = [da.broadcast_to(a.astype(dtype), shape) for a in arrays]
    if len(arrays) == 2:
        arrays = list(da.core.unify_chunks(arrays[0], range(len(shape)), arrays[1],
                                           range(len(shape)))[1])
    axes = (axis,)
    if reduced_axes_whole(arrays[0], axes):
        return map_reduction(functools.partial(fn, axis=axis, n_threads=nt), arrays, axes, dtype,
                             keepdims=False)
    state = tree_state(kind, axes, *arrays, n_threads=nt)
    res = state.map_blocks(_finish, kind, dtype, dtype=dtype,
                           meta=np.empty((0,) * len(shape), dtype))
    return drop_axes(res, axes, False)


def softmax_entropy(logits, axis=-1, *, n_threads=None):
    """:func:`fastxent.softmax_entropy` of a Dask array: a lazy Dask array."""
    return _softmax_rows(row_state.ENTROPY, _np.softmax_entropy, [logits], ("logits",), axis,
                         n_threads)


def softmax_cross_entropy(p_logits, q_logits, axis=-1, *, n_threads=None):
    """:func:`fastxent.softmax_cross_entropy` of Dask arrays: a lazy Dask
    array."""
    return _softmax_rows(row_state.XENT, _np.softmax_cross_entropy, [p_logits, q_logits],
                         ("p_logits", "q_logits"), axis, n_threads)


def softmax_kl_div(p_logits, q_logits, axis=-1, *, n_threads=None):
    """:func:`fastxent.softmax_kl_div` of Dask arrays: a lazy Dask array."""
    return _softmax_rows(row_state.KL, _np.softmax_kl_div, [p_logits, q_logits],
                         ("p_logits", "q_logits"), axis, n_threads)


def _entr_sum(pk, sp, qk=None, sq=None, *, axis):
    """The block's sum along `axis` of ``entr(pk / sp)`` (as ``-x log x``)
    or, with `qk`, of ``rel_entr(pk / sp, qk / sq)``, in float64; keepdims."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        x = np.divide(pk, sp, dtype=np.float64)
        if qk is None:
            terms = np.where(x > 0, -x * np.log(x), np.where(x == 0, 0.0, -np.inf))
        else:
            y = np.divide(qk, sq, dtype=np.float64)
            terms = np.where((x > 0) & (y > 0), x * np.log(x / y),
                             np.where((x == 0) & (y >= 0), 0.0, np.inf))
            terms[np.isnan(y)] = np.nan
        terms[np.isnan(x)] = np.nan
    return np.sum(terms, axis=axis, keepdims=True)


def entropy(pk, qk=None, base=None, axis=0, *, n_threads=None):
    """:func:`fastxent.entropy` of Dask arrays: a lazy Dask array."""
    nt = threads(n_threads)
    arrays = [operand(pk)] + ([] if qk is None else [operand(qk)])
    known_shape(**dict(zip(("pk", "qk"), arrays)))
    small = probe(lambda p, q=None: _np.entropy(p, q, base=base, axis=axis), arrays)
    dtype = np.asarray(small).dtype
    # broadcast before flattening, as the NumPy path
    shape = np.broadcast_shapes(*[a.shape for a in arrays])
    if math.prod(shape) == 0:
        # nothing to read: the NumPy function's result on empty arrays of
        # these shapes (Dask reshapes no empty array along a merged axis)
        empty = [np.zeros(a.shape, a.dtype) for a in arrays]
        return da.asarray(np.asarray(_np.entropy(*empty, base=base, axis=axis)))
    arrays = [da.broadcast_to(a, shape) for a in arrays]
    axis = entropy_axes(axis, len(shape))
    if isinstance(axis, tuple):
        # the axes moved last and merged, as the NumPy path does
        k = len(axis)
        arrays = [da.moveaxis(a, axis, range(a.ndim - k, a.ndim)) for a in arrays]
        arrays = [a.reshape(a.shape[:a.ndim - k] + (math.prod(a.shape[a.ndim - k:]),))
                  for a in arrays]
        axis = -1
    if axis is None:
        arrays = [a.ravel() for a in arrays]
        axis = 0
    if arrays[0].ndim == 0:   # the NumPy function's own rules for a 0-d pk
        fn = functools.partial(_np.entropy, base=base, axis=axis, n_threads=nt)
        return da.map_blocks(functools.partial(array_of, fn=fn), *arrays, dtype=dtype,
                             meta=np.empty((), dtype))
    shape = arrays[0].shape
    axis = single_axis(axis, len(shape), "source")
    if len(arrays) == 2:
        arrays = list(da.core.unify_chunks(arrays[0], range(len(shape)), arrays[1],
                                           range(len(shape)))[1])
    axes = (axis,)
    if reduced_axes_whole(arrays[0], axes):
        return map_reduction(functools.partial(_np.entropy, base=base, axis=axis, n_threads=nt),
                             arrays, axes, dtype, keepdims=False)
    sums = [a.sum(axis=axis, keepdims=True, dtype=np.float64, split_every=fan_in())
            for a in arrays]
    nd = len(shape)
    ind = tuple(range(nd))
    args = [arrays[0], ind, sums[0], ind]
    if len(arrays) == 2:
        args += [arrays[1], ind, sums[1], ind]
    parts = da.blockwise(functools.partial(_entr_sum, axis=axis), ind, *args, dtype=np.float64,
                         adjust_chunks={axis: 1},
                         meta=np.empty((0,) * nd, np.float64))
    total = parts.sum(axis=axis, split_every=fan_in())
    if base is not None:
        total = total / math.log(base)   # an int beyond float64 too
    return total.astype(dtype)
