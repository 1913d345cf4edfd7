r"""Exact partial states of softmax rows split over blocks, and their merge.

A row of logits split over blocks is summarised per block by float64 fields
(whatever the data's dtype), kept with the reduced axes as length-1 axes:

- ``m``: the block's maximum (NaN if it holds a NaN, -inf if empty);
- ``k``: the number of elements equal to ``m`` (with weights ``b``: their
  summed weight);
- ``r``: :math:`\sum_{x_j \ne m} b_j e^{x_j - m}`, the other terms.

Two blocks merge exactly, up to the rounding of one exp and one
multiplication per block: with :math:`M = \max(m_1, m_2)`, a block whose
maximum is ``M`` adds its ``k`` and ``r``, another adds
:math:`(k + r) e^{m - M}` to ``r``.  Keeping the terms equal to the maximum
apart is what lets the result keep the digits of a log-sum-exp near zero:
:math:`\log1p(r / k) + \log k + M`, the formulation of the NumPy path.

The entropies add a first moment about the maximum, merged by shifting it
to the common maximum: ``t`` (:math:`\sum e^{x - m}(m - x)`, the entropy),
``u`` (:math:`\sum e^{x - m_x}(m_y - y)`, the cross-entropy) and ``v``
(:math:`\sum e^{x - m_x}((x - m_x) - (y - m_y))`, the KL divergence).

Special values follow the NumPy kernels: a NaN makes ``m`` NaN and the row
NaN; a +inf maximum counts the +inf elements in ``k``; a block of only
-inf has ``m = -inf``, ``r = 0`` and weighs 0 in a merge with finite blocks.
The states of an unweighted log-sum-exp and of the entropies come from
the row kernels, one read of the block (see _kernel_state); those of a
weighted log-sum-exp are read by NumPy reductions into temporaries of a
slice of the block (the exponentials in float32 for
float32 data, summed in float64); no temporary is of the whole array.
"""
import numpy as np

import dask

from .. import _dispatch
from .._checks import normalize_axes

__all__ = ["LSE", "ENTROPY", "XENT", "KL", "work_dtype", "block_state", "sub_blocks", "merge",
           "merge_in_slices", "log_sum", "lse_and_sign"]

_F = np.float64
# flags of a log-sum-exp with weights -- z: the block has an element of
# weight 0 that is +inf or NaN, which makes a row whose maximum is not
# finite NaN (there the NumPy path, as SciPy, takes the plain sum of
# b * exp(a), where 0 * inf is NaN); pos, neg: it has a +inf of a positive,
# of a negative weight (+inf terms of both signs make the row NaN)
LSE = np.dtype([("m", _F), ("k", _F), ("r", _F), ("z", _F), ("pos", _F), ("neg", _F)])
ENTROPY = np.dtype([("m", _F), ("k", _F), ("r", _F), ("t", _F)])
# two rows: the p (x) fields, the q (y) fields and a moment
XENT = np.dtype([("m", _F), ("k", _F), ("r", _F), ("my", _F), ("ky", _F), ("ry", _F),
                 ("u", _F)])
KL = np.dtype([("m", _F), ("k", _F), ("r", _F), ("my", _F), ("ky", _F), ("ry", _F),
               ("v", _F)])


def work_dtype(dtype):
    """The dtype of a block's exponentials: float32 data in float32 (as the
    kernels, whose float32 sums are float64), other data in float64."""
    return np.dtype(np.float32) if dtype in (np.float32, np.float16) else np.dtype(_F)


def _max_count_rest(x, axes, b=None, moments=False):
    """``m``, ``k``, ``r`` of `x` along `axes` (keepdims) and, for
    `moments`, ``e^{x - m}`` (in the work dtype; zero where ``b == 0``)."""
    xe = x if b is None else np.where(b != 0, x, -np.inf)
    m = np.max(xe, axis=axes, keepdims=True, initial=-np.inf)
    eq = xe == m
    with np.errstate(invalid="ignore", over="ignore"):
        e = np.subtract(x, m, dtype=work_dtype(x.dtype))
        np.exp(e, out=e)
        if b is not None:
            e = e * b
            e[np.broadcast_to(b == 0, e.shape)] = 0.0
            k = np.sum(np.where(eq, b, 0), axis=axes, keepdims=True, dtype=_F)
        else:
            k = np.count_nonzero(eq, axis=axes, keepdims=True).astype(_F)
        e[eq] = 0.0   # the terms at the maximum are counted in k
        r = np.sum(e, axis=axes, keepdims=True, dtype=_F)
        if moments:
            e[eq] = 1.0
    return m.astype(_F), k, r, e if moments else None


def _moment(e, d, x_neg_inf, y_neg_inf, axes):
    """``sum(e * d)`` over `axes`, where a class of probability 0 (`x`
    -inf) adds 0 and one with `y` -inf under a finite `x` adds +inf."""
    with np.errstate(invalid="ignore", over="ignore"):
        terms = e * d
    terms[x_neg_inf] = 0.0
    if y_neg_inf is not None:
        terms[y_neg_inf & ~x_neg_inf] = np.inf
    return np.sum(terms, axis=axes, keepdims=True)


# elements of a block whose state is formed at once: the float64
# temporaries of a state stay a few MiB whatever the size of the block
SUB_ELEMENTS = 1 << 19


def block_state(kind, axes, x, y=None, b=None, n_threads=1):
    """The partial state (dtype `kind`) of the block `x` (and `y`, or the
    weights `b` of a log-sum-exp) along `axes`, keepdims.  Without weights
    the state comes from the row kernels (see _kernel_state); otherwise a
    large block is taken in slices along a kept axis (see
    sub_blocks)."""
    x = np.asarray(x)
    if b is None:
        # one thread in a forked worker, as every call (see resolve_threads)
        out = _kernel_state(kind, axes, x, y, _dispatch.resolve_threads(n_threads))
        if out is not None:
            return out
    ops = [x] + [None if v is None else np.broadcast_to(v, x.shape) for v in (y, b)]
    return sub_blocks(lambda x, y, b: _block_state(kind, axes, x, y, b), ops, axes)


_KERNEL_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def _rows(x, axes):
    """`x` as a 2-d view (rows, reduced elements), or None where `x` is not
    a kernel operand (another dtype, a layout whose rows need a copy)."""
    nd = x.ndim
    axes = tuple(sorted(a % nd for a in axes)) if nd else ()
    if (not axes or x.size == 0 or x.dtype not in _KERNEL_DTYPES or not x.dtype.isnative
            or not x.flags.aligned):
        return None
    C = 1
    for d in axes:
        C *= x.shape[d]
    rows = np.moveaxis(x, axes, range(nd - len(axes), nd)).reshape(-1, C)
    if not np.may_share_memory(rows, x):   # the reshape copied: not worth it
        return None
    return rows


def _kernel_state(kind, axes, x, y, n_threads):
    """The state of `x` (and `y`) along `axes` (keepdims) from the kernels'
    row states -- one read of the block, no temporary -- or None where the
    block is not a kernel operand.  Rows whose kernel state is not finite
    (a NaN, an infinity, only -inf: the special values, which the kernels
    leave to slower paths) are formed by NumPy, as every row was before."""
    axes = tuple(a % x.ndim for a in axes) if x.ndim else ()
    rows = _rows(x, axes)
    if rows is None:
        return None
    yrows = None
    if y is not None:
        y = np.asarray(y)
        yrows = _rows(y, axes) if y.dtype == x.dtype and y.shape == x.shape else None
        if yrows is None:
            return None
    R = rows.shape[0]
    out = np.zeros(R, kind)
    if kind == LSE:
        raw = np.empty((R, 3))
        _dispatch.kernel("lse_states", x.dtype)(rows, raw.reshape(-1), n_threads)
        out["m"], out["k"], out["r"] = raw.T
        special = ~np.isfinite(raw[:, [0, 2]]).all(axis=1)
    elif kind == ENTROPY:
        raw = np.empty((R, 4))
        _dispatch.kernel("entropy_states", x.dtype)(0, rows, None, raw.reshape(-1), n_threads)
        out["m"], out["k"], out["r"], out["t"] = raw.T
        special = ~np.isfinite(raw).all(axis=1)
    else:
        raw = np.empty((R, 9))
        _dispatch.kernel("entropy_states", x.dtype)(1 if kind == XENT else 2, rows, yrows,
                                                    raw.reshape(-1), n_threads)
        out["m"], out["k"], out["r"], out["my"], out["ky"], out["ry"] = raw[:, :6].T
        # the kernel keeps the moments divided by 2 Sx; a class of
        # probability 0 under q but not under p makes them +inf
        moment = raw[:, 6] if kind == XENT else raw[:, 7]
        with np.errstate(over="ignore"):
            moment = 2.0 * (raw[:, 1] + raw[:, 2]) * moment
        moment[raw[:, 8] != 0] = np.inf
        out["u" if kind == XENT else "v"] = moment
        special = ~np.isfinite(raw[:, :8]).all(axis=1)
    if special.any():
        # a few rows at a time, so that their copies and temporaries stay
        # about SUB_ELEMENTS whatever the number of such rows (a block of
        # only -inf, a masked part of a vocabulary, is all of them)
        idx = np.flatnonzero(special)
        step = max(1, SUB_ELEMENTS // max(1, rows.shape[1]))
        for i0 in range(0, idx.size, step):
            sel = idx[i0:i0 + step]
            out[sel] = _block_state(kind, (1,), rows[sel],
                                    None if yrows is None else yrows[sel])[:, 0]
    return out.reshape(tuple(1 if d in axes else n for d, n in enumerate(x.shape)))


def sub_blocks(fn, arrays, axes, along=None):
    """``fn(*arrays)`` (a reduction over `axes`, keepdims) in slices of at
    most SUB_ELEMENTS elements of the first array along its first kept axis
    (or axis `along`, which every array shares), concatenated: the same
    result, with temporaries of the slices' size.  None entries of `arrays`
    are passed as None."""
    x = arrays[0]
    axes = tuple(a % x.ndim for a in axes) if x.ndim else ()
    kept = [d for d in range(x.ndim) if d not in axes and x.shape[d] > 1]
    if along is not None:
        kept = [along] if along in kept else []
    if x.size <= SUB_ELEMENTS or not kept:
        return fn(*arrays)
    d = kept[0]
    step = max(1, x.shape[d] * SUB_ELEMENTS // x.size)
    parts = []
    for i in range(0, x.shape[d], step):
        sl = (slice(None),) * d + (slice(i, i + step),)
        parts.append(fn(*[None if a is None else a[sl] for a in arrays]))
    return np.concatenate(parts, axis=d)


def _block_state(kind, axes, x, y=None, b=None):
    m, k, r, e = _max_count_rest(x, axes, b, moments=kind != LSE)
    out = np.empty(m.shape, kind)
    out["m"], out["k"], out["r"] = m, k, r
    if kind == LSE:
        out["z"] = out["pos"] = out["neg"] = 0.0
        if b is not None:
            top = x == np.inf
            out["z"] = np.any((b == 0) & (top | np.isnan(x)), axis=axes, keepdims=True)
            out["pos"] = np.any(top & (b > 0), axis=axes, keepdims=True)
            out["neg"] = np.any(top & (b < 0), axis=axes, keepdims=True)
        return out
    xf = np.asarray(x, _F)
    x_neg_inf = xf == -np.inf
    if kind == ENTROPY:
        with np.errstate(invalid="ignore"):
            out["t"] = _moment(e, m - xf, x_neg_inf, None, axes)
        return out
    y = np.asarray(y)
    my, ky, ry, _ = _max_count_rest(y, axes)
    out["my"], out["ky"], out["ry"] = my, ky, ry
    yf = np.asarray(y, _F)
    y_neg_inf = yf == -np.inf
    with np.errstate(invalid="ignore"):
        if kind == XENT:
            out["u"] = _moment(e, my - yf, x_neg_inf, y_neg_inf, axes)
        else:
            out["v"] = _moment(e, (xf - m) - (yf - my), x_neg_inf, y_neg_inf, axes)
    return out


def _merge_row(m, k, r, axes):
    """Merge the fields ``m``, ``k``, ``r`` along `axes`: the common
    maximum, the weight of each block in it, and the merged ``k``, ``r``."""
    M = np.max(m, axis=axes, keepdims=True)
    with np.errstate(invalid="ignore", over="ignore"):
        top = m == M
        w = np.where(top, 1.0, np.exp(m - M))
        w[np.isnan(w)] = 0.0   # -inf blocks under a -inf or +inf maximum
        K = np.sum(np.where(top, k, 0.0), axis=axes, keepdims=True)
        R = np.sum(np.where(top, r, np.where(w > 0, (k + r) * w, 0.0)), axis=axes,
                   keepdims=True)
    return M, K, R, w


def _gap(M, m):
    """``M - m``, 0 where they are equal (also both -inf: a partial merge of
    blocks of only -inf)."""
    with np.errstate(invalid="ignore"):
        return np.where(m == M, 0.0, M - m)


def _shifted(w, m, moment, shift, size, axes):
    """Sum over blocks of ``w * (moment + shift * size)``: each block's
    moment moved to the common maxima; +inf moments stay +inf; blocks of
    only -inf (maximum `m`), which hold no probability, add 0."""
    with np.errstate(invalid="ignore", over="ignore"):
        terms = np.where(w > 0, w * (moment + shift * size), 0.0)
    terms[moment == np.inf] = np.inf
    terms[m == -np.inf] = 0.0
    return np.sum(terms, axis=axes, keepdims=True)


# rows of the states merged at once: a merge's few dozen temporaries of
# MERGE_ROWS x blocks values stay in the cache and come from the heap.  Merged
# whole (16384 rows), they were fresh pages from the operating system each
# time in a process whose allocator serves such sizes by mmap -- the usual
# state of a worker: a merge of 4 of the scorer's states of 16384 rows took
# 11 ms, 22 ms on an idle distributed worker, 3.5 ms in a process whose
# allocator happened to keep its memory
MERGE_ROWS = 2048


def merge_in_slices(core, states, axis, keepdims, kernels=None):
    """Merge the partial states `states` along `axis` (an int or a tuple):
    the combine and aggregate step of ``dask.array.reduction``, which passes
    an array (``concatenate=True``) or the (nested) list of blocks
    (``concatenate=False``, in block order).  `kernels` maps the record
    dtypes the kernels' ``merge_states`` knows to its kind numbers: states
    of such a dtype (exactly: native byte order, fields in order) are merged
    there, with the formulas of `core`, reading each block's records as
    they are: no temporary, one call.  `core`, the reference the kernel is
    tested against, merges any other: a dict of the fields as (blocks,
    rows) arrays, contiguous, into a record array of shape (1, rows), given
    MERGE_ROWS rows at a time.  The NumPy merge's few hundred calls and
    their temporaries took 15-40 ms of a 16-block merge of 16384 rows on a
    ``distributed`` worker, 2-3x their time in another process: Dask starts
    its workers with ``MALLOC_TRIM_THRESHOLD_=65536``, so that the
    allocator returns freed memory to the system at once and every
    temporary is fresh pages.

    With the blocks first and each field contiguous, a merge reduces over
    axis 0: n - 1 elementwise operations over the rows.  Along a short
    trailing axis of the concatenated records' fields (strided by the
    record's size) NumPy reduces with a loop per row and sweeps the whole
    array for each field: merging 4 states of 16384 rows took 5-6.5 ms for
    logsumexp's states and 10 ms for the scorer's that way.  The copies are
    of the states, O(rows)."""
    # the blocks in the order of their concatenation
    leaves = (list(dask.core.flatten(states, container=list)) if isinstance(states, list)
              else [states])
    first = leaves[0]
    nd = first.ndim
    axes = normalize_axes(axis, nd)
    kept = tuple(d for d in range(nd) if d not in axes)
    leads = []
    for a in leaves:
        n = 1
        for d in axes:
            n *= a.shape[d]
        leads.append(a.transpose(axes + kept).reshape(n, -1))
    rows = leads[0].shape[1]
    out = np.empty(rows, first.dtype)
    kind = (kernels or {}).get(first.dtype)
    if kind is not None:
        if rows:
            _dispatch.kernel("merge_states", np.dtype(_F))(
                kind, [_aligned_records(a) for a in leads], out)
    else:
        for r0 in range(0, rows, MERGE_ROWS):
            r1 = min(r0 + MERGE_ROWS, rows)
            fields = {name: np.concatenate([a[name][:, r0:r1] for a in leads])
                      for name in first.dtype.names}
            out[r0:r1] = core(fields)
    if keepdims:
        return out.reshape(tuple(1 if d in axes else first.shape[d] for d in range(nd)))
    return out.reshape(tuple(first.shape[d] for d in kept))


def _aligned_records(a):
    """`a` C-contiguous at an address of whole 8-byte words, copied if need
    be: a record dtype's own alignment is 1, and states that come from
    another worker may sit anywhere in the message that carried them."""
    a = np.ascontiguousarray(a)
    if a.__array_interface__["data"][0] % 8:
        a = a.copy()
    return a


def merge(states, axis, keepdims=True):
    """Merge the partial states `states` (an array, or a nested list of
    blocks) along `axis` (see merge_in_slices), by the kernels'
    merge_states."""
    return merge_in_slices(_merge_fields, states, axis, keepdims, KERNEL_KINDS)


# each kind's number in the kernels' merge_states
KERNEL_KINDS = {LSE: 0, ENTROPY: 2, XENT: 3, KL: 4}


_KINDS = {kind.names: kind for kind in (LSE, ENTROPY, XENT, KL)}


def _merge_fields(states):
    """The NumPy form of merge's core, the formulas the kernel follows (see
    merge_in_slices), against which tests check it: the fields of a kind's
    states as (blocks, rows) arrays into one state of each row, shape
    (1, rows)."""
    axes = (0,)
    kind = _KINDS[tuple(states)]
    M, K, R, w = _merge_row(states["m"], states["k"], states["r"], axes)
    out = np.empty(M.shape, kind)
    out["m"], out["k"], out["r"] = M, K, R
    if kind == LSE:
        for name in ("z", "pos", "neg"):
            out[name] = np.max(states[name], axis=axes, keepdims=True)
    elif kind == ENTROPY:
        s = states
        out["t"] = _shifted(w, s["m"], s["t"], _gap(M, s["m"]), s["k"] + s["r"], axes)
    else:
        s = states
        My, Ky, Ry, _ = _merge_row(s["my"], s["ky"], s["ry"], axes)
        out["my"], out["ky"], out["ry"] = My, Ky, Ry
        with np.errstate(invalid="ignore"):
            if kind == XENT:
                out["u"] = _shifted(w, s["m"], s["u"], _gap(My, s["my"]), s["k"] + s["r"], axes)
            else:
                shift = _gap(My, s["my"]) - _gap(M, s["m"])
                out["v"] = _shifted(w, s["m"], s["v"], shift, s["k"] + s["r"], axes)
    return out


def log_sum(k, r):
    """``log(k + r)`` as ``log k + log1p(r / k)`` (k > 0): accurate where
    ``r`` is small next to ``k``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(k) + np.log1p(r / k)


def lse_and_sign(state):
    """The log-sum-exp and its sign from a merged LSE state, with the
    special values of the NumPy path: NaN (sign NaN) for a NaN, for +inf
    terms that cancel, and for a maximum of +-inf next to a +inf or NaN
    of weight 0; -inf (sign 0) for a row of only -inf or of zero weights; +inf
    for +inf."""
    m, k, r = state["m"], state["k"], state["r"]
    total = k + r
    with np.errstate(divide="ignore", invalid="ignore"):
        sgn = np.sign(total)
        q = r / k
        mag = np.where(q > -1, np.log1p(q), np.log(np.abs(1 + q))) + np.log(np.abs(k))
        mag = np.where(k == 0, np.log(np.abs(r)), mag)
        res = mag + m
    res = np.where(m == -np.inf, -np.inf, res)
    sgn = np.where(m == -np.inf, 0.0, sgn)
    nan = (np.isnan(m) | np.isnan(res) | (np.isinf(m) & (state["z"] > 0))
           | ((state["pos"] > 0) & (state["neg"] > 0)))
    res[nan] = np.nan
    sgn[nan] = np.nan
    return res, sgn
