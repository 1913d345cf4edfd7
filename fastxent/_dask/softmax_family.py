"""logsumexp, softmax and log_softmax of Dask arrays.

Reduced axes that are one chunk each: the NumPy function maps over the
blocks.  Reduced axes split into chunks: the merged row state
(:mod:`.row_state`) gives the log-sum-exp; softmax and log_softmax then map
each block with the row's maximum ``m`` and ``S = k + r``:
``exp(x - m) / S`` and ``(x - m) - (log k + log1p(r / k))``, the formulas
of the NumPy kernels, written into one block-sized array.
"""
import functools

import numpy as np

import dask.array as da

from .. import _softmax_family as _np
from .._checks import normalize_axes
from . import row_state
from .blocks import (array_of, drop_axes, known_shape, map_reduction, no_out, operand, probe,
                     probe_array, reduced_axes_whole, threads, tree_state)

__all__ = ["logsumexp", "softmax", "log_softmax"]


def _number(v):
    """A Python number: weak in the NumPy path's dtype promotion."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False, *,
              out=None, n_threads=None):
    """:func:`fastxent.logsumexp` of a Dask array: a lazy Dask array (two
    with `return_sign`), 0-d where the NumPy function returns a scalar."""
    no_out("logsumexp", out=out)
    nt = threads(n_threads)
    a = operand(a)
    if b is not None and not _number(b):
        b = operand(b)
        known_shape(a=a, b=b)
    elif b is not None:
        known_shape(a=a)   # a number b is broadcast to a's shape
    small = probe(_np.logsumexp, [a], axis=axis, keepdims=keepdims, return_sign=True,
                  b=probe_array(b) if b is not None and not _number(b) else b)
    dtype = np.asarray(small[0]).dtype
    if a.ndim == 0:   # the NumPy path works on atleast_1d(a)
        a = a.reshape(1)
    if b is not None:
        b = da.full((), b, dtype=dtype) if _number(b) else b
        if b.ndim == 0:
            b = b.reshape(1)
        shape = np.broadcast_shapes(a.shape, b.shape)
        a = da.broadcast_to(a.astype(dtype), shape)
        b = da.broadcast_to(b.astype(dtype), shape)
        a, b = da.core.unify_chunks(a, range(a.ndim), b, range(b.ndim))[1]
    else:
        a = a.astype(dtype)
    # the axes of the broadcast shape, as the NumPy path (`b` may add dims)
    axes = normalize_axes(axis, a.ndim)

    if a.size == 0:
        shape = tuple(1 if d in axes else n for d, n in enumerate(a.shape))
        res = da.full(shape, -np.inf, dtype=dtype)
        sgn = da.full(shape, -1.0, dtype=dtype)   # SciPy: sign(-inf)
    elif reduced_axes_whole(a, axes):
        arrays = [a] if b is None else [a, b]
        if not return_sign:
            return map_reduction(functools.partial(_lse_block, axes=axes, nt=nt), arrays, axes,
                                 dtype, keepdims=keepdims)
        pair = np.dtype([("res", dtype), ("sgn", dtype)])
        both = map_reduction(functools.partial(_lse_sign_block, axes=axes, nt=nt, pair=pair),
                             arrays, axes, pair, keepdims=keepdims)
        meta = np.empty((0,) * both.ndim, dtype)
        return (both.map_blocks(_field, "res", dtype=dtype, meta=meta),
                both.map_blocks(_field, "sgn", dtype=dtype, meta=meta))
    else:
        state = tree_state(row_state.LSE, axes, a, b=b, n_threads=nt)
        meta = np.empty((0,) * a.ndim, dtype)
        res = state.map_blocks(_lse, dtype, return_sign, dtype=dtype, meta=meta)
        sgn = state.map_blocks(_sign, dtype, dtype=dtype, meta=meta)
    res = drop_axes(res, axes, keepdims)
    if return_sign:
        return res, drop_axes(sgn, axes, keepdims)
    return res


def _lse_block(ab, bb=None, *, axes, nt):
    return _np.logsumexp(ab, axis=axes, b=bb, n_threads=nt)


def _lse_sign_block(ab, bb=None, *, axes, nt, pair):
    """The block's log-sum-exp and sign as one record array of `pair`."""
    res, sgn = _np.logsumexp(ab, axis=axes, b=bb, return_sign=True, n_threads=nt)
    both = np.empty(np.shape(res), pair)
    both["res"], both["sgn"] = res, sgn
    return both


def _field(both, name):
    return both[name]


def _lse(state, dtype, signed):
    res, sgn = row_state.lse_and_sign(state)
    if not signed:
        res = np.where(sgn < 0, np.nan, res)
    return res.astype(dtype)


def _sign(state, dtype):
    return row_state.lse_and_sign(state)[1].astype(dtype)


def _softmax_block(x, state, logarithm):
    """The (log-)softmax of block `x` from its rows' merged state, in the
    work dtype (float32 for float32 data: ``x - m`` is exact there)."""
    work = row_state.work_dtype(x.dtype)
    m, k, r = state["m"], state["k"], state["r"]
    res = np.subtract(x, m.astype(work), dtype=work)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        if logarithm:
            res -= row_state.log_sum(k, r).astype(work)
        else:
            np.exp(res, out=res)
            # a row with no finite maximum, or a NaN, has no softmax
            res /= np.where(np.isfinite(m), k + r, np.nan).astype(work)
    return res.astype(x.dtype, copy=False)


def _softmax_common(x, axis, out, n_threads, logarithm, name):
    no_out(name, out=out)
    nt = threads(n_threads)
    fn = _np.log_softmax if logarithm else _np.softmax
    x = operand(x)
    dtype = np.asarray(probe(fn, [x], axis=axis)).dtype
    meta = np.empty((0,) * x.ndim, dtype)
    x = x.astype(dtype)
    if x.ndim == 0:
        fn0 = functools.partial(fn, axis=axis, n_threads=nt)
        return x.map_blocks(functools.partial(array_of, fn=fn0), dtype=dtype, meta=meta)
    axes = normalize_axes(axis, x.ndim)
    for d in axes:
        if x.shape[d] == 0:
            raise ValueError("zero-size array to reduction operation maximum which has no "
                             "identity")
    if reduced_axes_whole(x, axes):
        return x.map_blocks(fn, axis=axes, n_threads=nt, dtype=dtype, meta=meta)
    state = tree_state(row_state.LSE, axes, x, n_threads=nt)
    return da.map_blocks(_softmax_block, x, state, logarithm=logarithm, dtype=dtype, meta=meta)


def softmax(x, axis=None, *, out=None, n_threads=None):
    """:func:`fastxent.softmax` of a Dask array: a lazy Dask array."""
    return _softmax_common(x, axis, out, n_threads, False, "softmax")


def log_softmax(x, axis=None, *, out=None, n_threads=None):
    """:func:`fastxent.log_softmax` of a Dask array: a lazy Dask array."""
    return _softmax_common(x, axis, out, n_threads, True, "log_softmax")
