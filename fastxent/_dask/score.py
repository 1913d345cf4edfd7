r"""score_rows, score and Scorer.update of Dask arrays.

Rows whose class axis (axis 1, or the only axis) is one chunk map the NumPy
functions over the blocks: ``score_rows`` gives each block's per-row scores
and ``score`` each block's sums (``_score_state``), exactly the in-memory
results of those rows.

A class axis split into chunks is read twice.  A first pass takes the
label's ``z_y = x_y / T`` from the one block that holds it (the others add
an exact 0).  A second pass gives each block's partial state (from the
compiled row scan for 2-d blocks, else by NumPy), with ``m`` its
largest z, ``k`` the count of elements equal to it and, over the others,

.. math:: s = \sum e_c, \quad d = \sum e_c (z_c - m), \quad q = \sum e_c^2,
          \quad e_c = e^{z_c - m}

with the count of ``z_c > z_y``, the first largest z and the first NaN.
States merge as in :mod:`.row_state`: a block of a smaller maximum ``m``
joins the common one ``M`` with ``r = e^{m - M}`` as ``s += r (k + s)``,
``d += r (d + (m - M)(k + s))`` and ``q += r^2 (k + q)`` -- terms of one
sign, so nothing cancels -- and the row's scores are formed from the merged
state by the formulas of the compiled kernel (``src/fx_score.h``).  They are
computed in float64 from z (float32 z for non-float64 logits, as the kernel
forms them) and rounded once to the result dtype: float64 results agree with
the in-memory ones to a few ulp, float32 ones to the rounding of the
kernel's float32 sums within its blocks (a few units of float32); the
integer scores (rank, prediction) and so the counts exactly.
"""
import functools
import uuid

import dask
import dask.array as da
import numpy as np

from .. import _dispatch
from .. import _score_rows as _np_score
from ..reference.score import ROW_FIELDS, RowScores
from . import row_state
from .blocks import (block_classes, block_label_index, chunked_like, classes_of, fan_in, held,
                     known_shape, no_out, operand, probe_labels, target_operand, threads,
                     without_empty_chunks)

__all__ = ["score_rows", "scorer_update"]

_F = np.dtype(np.float64)
_I = np.dtype(np.int64)
_F16 = np.dtype(np.float16)
# the per-row scores of a block, one record per row
ROWS = np.dtype([("nll", _F), ("rank", _I), ("prediction", _I), ("confidence", _F),
                 ("entropy", _F), ("brier", _F)])
# a block's partial state along the class axis (see the module docstring)
STATE = np.dtype([("m", _F), ("k", _F), ("s", _F), ("d", _F), ("q", _F), ("gt", _I),
                  ("pred", _I), ("first_nan", _I), ("bad", _I), ("n", _I)])


def _operands(input, target, ignore_index, temperature):
    """The Dask logits and labels (labels chunked as the logits' rows), the
    class axis, and the result dtype; the arguments checked by the NumPy
    path on an array of one row."""
    x = operand(input)
    t = target_operand(target)
    known_shape(input=x, target=t)
    if x.ndim == 0:
        raise ValueError("input must have at least one dimension (the classes)")
    ca = 1 if x.ndim > 1 else 0
    x = without_empty_chunks(x, ca)
    batch = x.shape[:ca] + x.shape[ca + 1:]
    small_x = np.zeros(tuple(x.shape[ca] if d == ca else 1 for d in range(x.ndim)), x.dtype)
    small_t = probe_labels((1,) * len(batch), t.dtype, x.shape[ca], ignore_index)
    probe = _np_score.score_rows(small_x, small_t, ignore_index=ignore_index,
                                 temperature=temperature)
    if t.shape != batch:
        raise ValueError(f"target has shape {t.shape}; class-index targets for input of "
                         f"shape {x.shape} must have shape {batch}")
    ind = tuple(range(x.ndim))
    t_ind = tuple(d for d in ind if d != ca)
    t = chunked_like(t, x, t_ind)
    x, t = da.core.unify_chunks(x, ind, t, t_ind)[1]
    return x, t, ca, np.asarray(probe.nll).dtype


def _z(xb, ca, temperature, result):
    """z = x / T of a block, classes last, in float64 (computed in float32
    for non-float64 logits, as the kernel)."""
    x = np.moveaxis(xb, ca, -1) if xb.ndim > 1 else xb
    if result == _F:
        return x / float(temperature) if temperature != 1 else x.astype(_F)
    with np.errstate(over="ignore", under="ignore"):
        z = np.asarray(x, np.float32)
        if temperature != 1:
            z = z / np.float32(temperature)
    return z.astype(_F)


def _record(rows):
    out = np.empty(np.shape(rows.nll), ROWS)
    for name in ROW_FIELDS:
        out[name] = getattr(rows, name)
    return out


def _labels_ok(y, C, ignore_index):
    bad = (y != ignore_index) & ((y < 0) | (y >= C))
    if bad.any():
        raise IndexError(f"target {int(y[bad].flat[0])} is out of bounds: class indices must be "
                         f"in [0, {C}) or equal ignore_index={ignore_index}")


def _zy_block(xb, tb, cls, *, ca, C, ignore_index, temperature, result):
    """The label's z where the block holds it, an exact 0 elsewhere (NaN for
    an ignored row); the labels are checked by the first block."""
    cls = classes_of(cls)
    if cls[0] == 0:
        _labels_ok(tb, C, ignore_index)
    x = np.moveaxis(xb, ca, -1) if xb.ndim > 1 else xb
    inside = (tb >= cls[0]) & (tb <= cls[-1]) & (tb != ignore_index)
    idx = block_label_index(tb, inside, cls[0])
    # z of the gathered logits only (one per row), as _z forms every z
    zy = (_z(np.take_along_axis(x, idx[..., None], axis=-1), -1, temperature, result)[..., 0]
          if x.shape[-1] else 0.0)
    zy = np.where(inside, zy, 0.0)
    zy = np.where((tb == ignore_index) & (cls[0] == 0), np.nan, zy)
    return np.expand_dims(zy, ca)


# rows of a block whose state is formed at once: the float64 temporaries of
# the state stay a few MiB per 1000 classes, whatever the block's size
_SUB_ROWS = 256


def _kernel_state(xb, zy, c0, temperature, nt):
    """The partial state of the rows of a 2-d block of classes from the
    compiled row scan (score_row_state in src/fx_score.h: one read of the
    block, no temporary) on `nt` threads, or None for a block that is not a
    kernel operand."""
    if xb.ndim != 2 or xb.shape[1] == 0 or not xb.flags.aligned:
        return None
    try:
        x, bf16 = _np_score._logits(xb)
    except TypeError:
        return None
    if not x.dtype.isnative:
        return None
    tmode, t = _np_score._temperature(temperature, x.dtype)
    R = x.shape[0]
    f = np.empty(5 * R)
    i = np.empty(4 * R, _I)
    # the kernel reads 2-byte storage (float16, bfloat16) as its bits
    kern = _dispatch.kernel("score_states", _F16 if x.itemsize == 2 else x.dtype)
    # the labels' z as the kernel reads them: contiguous, aligned float64
    # (a block unpickled on a distributed worker may be neither)
    kern(x, np.require(zy, _F, ["C", "A"]), f, i, bf16, tmode, t, _dispatch.resolve_threads(nt))
    f, i = f.reshape(R, 5), i.reshape(R, 4)
    st = np.empty(R, STATE)
    st["m"], st["k"], st["s"], st["d"], st["q"] = f.T
    st["gt"] = i[:, 0]
    st["pred"] = i[:, 1] + c0
    st["first_nan"] = np.where(i[:, 2] >= 0, i[:, 2] + c0, -1)
    st["bad"] = i[:, 3]
    st["n"] = x.shape[1]
    return st


def _state_block(xb, zy, cls, *, ca, temperature, result, nt=1):
    """The partial state of a block of classes (keepdims on the class
    axis); `zy` the rows' label z; `nt` the kernel's threads."""
    cls = classes_of(cls)
    c0 = int(cls[0]) if cls.size else 0
    if ca == 1:
        st = _kernel_state(xb, zy, c0, temperature, nt)
        if st is not None:
            return np.expand_dims(st, ca)
    if xb.ndim == 1:
        st = _state_rows(_z(xb, ca, temperature, result), zy, c0)
    else:
        st = np.empty(xb.shape[:ca] + xb.shape[ca + 1:], STATE)
        for r0 in range(0, xb.shape[0], _SUB_ROWS):
            r1 = min(r0 + _SUB_ROWS, xb.shape[0])
            st[r0:r1] = _state_rows(_z(xb[r0:r1], ca, temperature, result), zy[r0:r1], c0)
    return np.expand_dims(st, ca)


def _state_rows(z, zy, c0):
    """The state of rows of z (classes last, the first of them class c0)."""
    st = np.empty(z.shape[:-1], STATE)
    with np.errstate(invalid="ignore", over="ignore"):
        isnan = np.isnan(z)
        anynan = isnan.any(axis=-1)
        st["first_nan"] = np.where(anynan, np.argmax(isnan, axis=-1) + c0, -1)
        zn = np.where(isnan, -np.inf, z)
        m = np.max(zn, axis=-1, initial=-np.inf)
        st["m"] = m
        st["bad"] = anynan | (m == np.inf)
        st["pred"] = (np.argmax(zn == m[..., None], axis=-1) if z.shape[-1] else 0) + c0
        st["gt"] = np.sum(z > zy[..., None], axis=-1)
        st["n"] = z.shape[-1]
        finite = np.isfinite(m)[..., None]
        at_max = zn == m[..., None]
        below = finite & ~at_max & (zn > -np.inf)
        shifted = np.where(below, zn - m[..., None], 0.0)
        e = np.where(below, np.exp(shifted), 0.0)
        # a block of -inf only: every element counts as a maximum
        st["k"] = np.sum(at_max, axis=-1)
        st["s"] = np.sum(e, axis=-1)
        st["d"] = np.sum(e * shifted, axis=-1)
        st["q"] = np.sum(e * e, axis=-1)
    return st


def _merge(states, axis, keepdims=True):
    """Merge states along `axis` (see the module docstring), by the kernels'
    merge_states."""
    return row_state.merge_in_slices(_merge_fields, states, axis, keepdims, {STATE: 1})


def _merge_fields(states):
    """The NumPy form of _merge's core, the formulas the kernel follows (see
    row_state.merge_in_slices), against which tests check it."""
    ax = 0
    m = states["m"]
    M = np.max(m, axis=ax, keepdims=True)
    with np.errstate(invalid="ignore", over="ignore"):
        top = m == M
        r = np.where(top, 1.0, np.exp(m - M))
        ks = states["k"] + states["s"]
        gap = np.where(top | (r == 0), 0.0, (m - M) * ks)
        s = np.where(top, states["s"], r * ks)
        d = np.where(top, states["d"], r * (states["d"] + gap))
        q = np.where(top, states["q"], r * r * (states["k"] + states["q"]))
        out = np.empty(M.shape, STATE)
        out["m"] = M
        out["k"] = np.sum(np.where(top, states["k"], 0.0), axis=ax, keepdims=True)
        out["s"] = np.sum(s, axis=ax, keepdims=True)
        out["d"] = np.sum(d, axis=ax, keepdims=True)
        out["q"] = np.sum(q, axis=ax, keepdims=True)
    out["gt"] = np.sum(states["gt"], axis=ax, keepdims=True)
    out["n"] = np.sum(states["n"], axis=ax, keepdims=True)
    out["bad"] = np.max(states["bad"], axis=ax, keepdims=True)
    # the first NaN, else the first of the largest: blocks are in class order
    fn = states["first_nan"]
    big = np.iinfo(_I).max
    first = np.min(np.where(fn >= 0, fn, big), axis=ax, keepdims=True)
    out["first_nan"] = np.where(first == big, -1, first)
    out["pred"] = np.min(np.where(top, states["pred"], big), axis=ax, keepdims=True)
    return out


def _identity(x, axis, keepdims):
    return x


def _finish(st, zy, tb, *, ignore_index, result):
    """The per-row scores (ROWS, in the result dtype's precision) of merged
    states, as the kernel forms them."""
    M, K, S_, D, Q = st["m"], st["k"], st["s"], st["d"], st["q"]
    undefined = (st["bad"] > 0) | (M == -np.inf)
    ignored = tb == ignore_index
    with np.errstate(all="ignore"):
        S = K + S_
        log_s = np.where(K == 1, 0.0, np.log(K)) + np.log1p(S_ / K)
        inv = 1.0 / S
        conf = inv
        ent = log_s - D * inv
        nll = (M - zy) + log_s
        ey = np.exp(zy - M)
        at_max = zy == M
        omp = np.where(at_max, (K - 1) + S_, S - ey) * inv
        oq = np.where(at_max, (K - 1) + Q, (K + Q) - ey * ey)
        brier = omp * omp + oq * (inv * inv)
    nan = np.nan
    out = np.empty(M.shape, ROWS)
    out["nll"] = np.where(ignored, 0.0, np.where(undefined, nan, nll)).astype(result)
    out["rank"] = np.where(ignored, -1, np.where(undefined, st["n"], st["gt"]))
    out["prediction"] = np.where(st["first_nan"] >= 0, st["first_nan"], st["pred"])
    out["confidence"] = np.where(undefined, nan, conf).astype(result)
    out["entropy"] = np.where(undefined, nan, ent).astype(result)
    out["brier"] = np.where(ignored, 0.0, np.where(undefined, nan, brier)).astype(result)
    return out


def _label_z(x, t, ca, result, ignore_index, temperature):
    """The label's z of every row (NaN where ignored), lazy, of the batch
    shape: the first read of a split class axis."""
    ind = tuple(range(x.ndim))
    t_ind = tuple(d for d in ind if d != ca)
    C = x.shape[ca]
    cls = block_classes(x.chunks[ca])
    parts = da.blockwise(_zy_block, ind, x, ind, t, t_ind, cls, (ca,), dtype=_F,
                         adjust_chunks={ca: 1}, align_arrays=False,
                         meta=np.empty((0,) * x.ndim, _F), C=C, ignore_index=ignore_index,
                         ca=ca, temperature=temperature, result=result)
    # one block holds z_y, the others add an exact 0
    return parts.sum(axis=ca, split_every=fan_in())


def _rows(x, t, ca, result, ignore_index, temperature, nt, zy=None):
    """The per-row scores of every row, a lazy ROWS array of the batch shape
    chunked as the rows of `x`; `zy` the label's z where computed already
    (else a first phase of the same graph, which then holds the blocks of a
    split class axis between its two reads)."""
    ind = tuple(range(x.ndim))
    t_ind = tuple(d for d in ind if d != ca)
    meta = np.empty((0,) * len(t_ind), ROWS)
    if len(x.chunks[ca]) == 1 or x.size == 0:
        block = functools.partial(_rows_block, ignore_index=ignore_index,
                                  temperature=temperature, nt=nt)
        return da.blockwise(block, t_ind, x, ind, t, t_ind, dtype=ROWS, concatenate=True,
                            meta=meta)
    C = x.shape[ca]
    cls = block_classes(x.chunks[ca])
    opts = dict(ca=ca, temperature=temperature, result=result)
    if zy is None:
        zy = _label_z(x, t, ca, result, ignore_index, temperature)
    else:
        zy = da.from_array(zy, chunks=t.chunks) if zy.ndim else da.from_array(zy)
    # every block of a row gets its z_y (no class axis: broadcast over them)
    states = da.blockwise(_state_block, ind, x, ind, zy, t_ind, cls, (ca,), dtype=STATE,
                          adjust_chunks={ca: 1}, align_arrays=False,
                          meta=np.empty((0,) * x.ndim, STATE), nt=nt, **opts)
    state = da.reduction(states, _identity, _merge, axis=(ca,), keepdims=False, dtype=STATE,
                         combine=_merge, concatenate=False, split_every=fan_in(),
                         meta=np.empty((0,) * len(t_ind), STATE))
    return da.blockwise(_finish, t_ind, state, t_ind, zy, t_ind, t, t_ind, dtype=ROWS,
                        meta=meta, ignore_index=ignore_index, result=result)


def score_rows(input, target, *, ignore_index=-100, temperature=1.0, out=None, n_threads=None):
    """:func:`fastxent.score_rows` of Dask arrays: a RowScores of lazy Dask
    arrays, chunked as the rows of `input`."""
    no_out("score_rows", out=out)
    x, t, ca, result = _operands(input, target, ignore_index, temperature)
    rows = _rows(x, t, ca, result, ignore_index, temperature, threads(n_threads))
    fields = []
    for name in ROW_FIELDS:
        dtype = ROWS[name] if name in ("rank", "prediction") else result
        fields.append(rows.map_blocks(functools.partial(_field, field=name, result=dtype),
                                      dtype=dtype, meta=np.empty((0,) * rows.ndim, dtype)))
    return RowScores(*fields)


def _rows_block(xb, tb, *, ignore_index, temperature, nt):
    return _record(_np_score.score_rows(xb, tb, ignore_index=ignore_index,
                                        temperature=temperature, n_threads=nt))


def _field(rows, *, field, result):
    return rows[field].astype(result)


def _state_of_rows(rec, tb, *, max_rank, n_bins, ignore_index):
    """The sums of ``_score_state`` from per-row scores: the same counts and
    bins, float64 sums of the rounded per-row values."""
    counted = rec["rank"] != -1
    r = rec[counted]
    conf = r["confidence"].astype(_F)
    defined = ~np.isnan(conf)
    nb = n_bins + 1
    ranks = r["rank"][r["rank"] < max_rank]
    c, n = conf[defined], float(n_bins)
    b = np.minimum((c * n).astype(_I), n_bins - 1)
    b = np.maximum(b, 0)
    for _ in range(2):   # the correctly rounded boundaries b / n, as the kernel
        b = np.where((b > 0) & (c < b / n), b - 1, b)
        b = np.where((b < n_bins - 1) & (c >= (b + 1) / n), b + 1, b)
    b = np.where(c >= 1.0, n_bins, b)
    correct = (r["prediction"] == np.asarray(tb)[counted])[defined]
    return {
        "count": int(counted.sum()),
        "undefined": int((~defined).sum()),
        "nll_sum": float(np.sum(r["nll"], dtype=_F)),
        "entropy_sum": float(np.sum(r["entropy"], dtype=_F)),
        "brier_sum": float(np.sum(r["brier"], dtype=_F)),
        "rank_counts": np.bincount(ranks, minlength=max_rank)[:max_rank].astype(_I),
        "bin_count": np.bincount(b, minlength=nb).astype(_I),
        "bin_correct": np.bincount(b, weights=correct, minlength=nb).astype(_I),
        "bin_confidence_sum": np.bincount(b, weights=c, minlength=nb),
    }


def scorer_update(scorer, input, target):
    """:meth:`fastxent.Scorer.update` with Dask arrays: computes every
    block's sums (on the current Dask scheduler) before adding any, so that
    a bad label leaves the scorer as it was; returns the scorer."""
    x, t, ca, result = _operands(input, target, scorer.ignore_index, scorer.temperature)
    nt = threads(scorer.n_threads)
    opts = dict(ignore_index=scorer.ignore_index, temperature=scorer.temperature,
                max_rank=scorer._max_rank, n_bins=scorer.n_bins)
    if x.ndim == 1:
        xs, ts = [x], [t]
    elif len(x.chunks[ca]) == 1 or x.size == 0:
        xb = np.take(x.to_delayed(), 0, axis=ca)
        xs, ts = list(xb.ravel()), list(t.to_delayed().ravel())
    else:
        zy = None
        if not held(x):
            # the label's z computed first: each phase then reads a block and
            # lets it go, rather than one graph holding every block between
            # them; blocks already in memory (persisted) are read by both
            # phases in one graph, which saves a compute's fixed cost
            zy = np.asarray(_label_z(x, t, ca, result, scorer.ignore_index,
                                     scorer.temperature).compute())
        rows = _rows(x, t, ca, result, scorer.ignore_index, scorer.temperature, nt, zy=zy)
        # a blockwise step, so that the graph's optimization fuses it with
        # the rows' finish: one task per chunk of rows, not two in a row
        # (each a scheduler round trip on a distributed cluster); named
        # afresh, as a call's results are its own (a cluster still holding
        # the same keys from the last call would hand those back)
        t_ind = tuple(d for d in range(x.ndim) if d != ca)
        sums = da.blockwise(functools.partial(_state_of_rows, max_rank=opts["max_rank"],
                                              n_bins=opts["n_bins"],
                                              ignore_index=opts["ignore_index"]),
                            t_ind, rows, t_ind, t, t_ind, dtype=object,
                            name=f"state_of_rows-{uuid.uuid4().hex}",
                            meta=np.empty((0,) * len(t_ind), object))
        return _add(scorer, dask.compute(*sums.to_delayed().ravel()))
    parts = [dask.delayed(_np_score._score_state)(xb, tb, n_threads=nt, **opts)
             for xb, tb in zip(xs, ts)]
    return _add(scorer, dask.compute(*parts))


def _add(scorer, states):
    for s in states:
        scorer._add_state(s)
    return scorer
