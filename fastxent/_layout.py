"""The layout layer: the caller's arrays as the kernels' views, and back.

Every public function hands its checked arrays (see _checks) to one of the
planners here and gets the strided views its kernel takes, without a copy
wherever the memory allows:

- `reduce`: a reduction over some axes is a reduction along the middle
  axis of (outer, C, inner) views -- as long as the reduced axes merge into
  one strided dimension and the kept axes into at most two.  Axes are
  ordered by stride (as in memory) before merging, so C-order, F-order,
  transposed, sliced and negative-stride arrays all map to views of the
  caller's memory.  Several arrays (inputs, weights, outputs) are planned
  together; a merge is taken only where it is valid for all of them, so
  element (o, c, i) of each view is the same logical element.
- `class_views`: PyTorch's class axis 1, ``(N, C, d1, ...)`` as
  ``(N, C, d1 * ...)`` and ``(C,)`` as ``(1, C, 1)``, for the losses.
- `elementwise`: (rows, L) views of operands broadcast to one shape, for
  the element-wise losses.

C-ordered operands take one fast path (in `reduce`, for reductions and the
class axis; in `elementwise` for element-wise operands): the arrays
themselves, with the span lo..hi of the axes the kernel reduces, without a
reshape, a closure or a plan; the drivers read every operand as (outer, C,
inner) dims through its buffer (src/fx_kernels.pxd.tp, _view), where the
axes before lo, lo..hi and after hi each merge into one.  Every function
calls its kernel on the views and span it gets back.
Here too is what keeps the kernels' typed pointers valid: every array they
read or write is aligned and walks whole elements (`kernel_view`,
`kernel_out`), and no output they write overlaps memory they read, except
where a kernel is made to work in place (`kernel_out`, `overlaps`).
"""
import math

import numpy as np

from ._arrays import aligned, c_aligned, c_contiguous

__all__ = ["kernel_view", "kernel_out", "overlaps", "empty_like_layout", "empty_reduced",
           "reduced_shape", "kept_shape", "plan_views", "reduce", "class_views", "elementwise_views",
           "elementwise", "array_sum", "finish"]

_NDARRAY = np.ndarray
_UINT16 = np.dtype(np.uint16)
_F16 = np.dtype(np.float16)
_F16_NUM = _F16.num


# ---------------------------------------------------------------------------
# arrays the kernels can walk

def _typed(a):
    """True if the kernels can walk `a` through a typed pointer: aligned data
    and strides that are whole elements."""
    if not aligned(a):
        return False
    item = a.itemsize
    # aligned strides are whole elements where the alignment is the size
    return a.dtype.alignment == item or not any(s % item for s in a.strides)


def kernel_view(a):
    """The array the kernels read: float16 as its bits (a view), others as is.
    Misaligned data and strides that are not a multiple of the itemsize
    (views into records) cannot be read through a typed pointer and are
    copied.  For inputs only: an output goes through `kernel_out` first."""
    dtype = a.dtype
    if not (aligned(a) and dtype.alignment == a.itemsize) and not _typed(a):
        a = np.array(a)
    return a.view(_UINT16) if dtype == _F16 else a


# candidate solutions np.shares_memory may try before it gives up; ample for
# the views met in practice, and it bounds the time spent on contrived ones
# (which are then taken to overlap)
_MAX_WORK = 1 << 12


def _same_elements(a, b):
    """True if `a` and `b` are the same elements of the same memory."""
    return (a.dtype == b.dtype and a.shape == b.shape and a.strides == b.strides
            and a.__array_interface__["data"][0] == b.__array_interface__["data"][0])


def overlaps(out, a, in_place=False):
    """True if writing `out` may change memory that the kernel reads from
    `a` (None: nothing).  With `in_place`, `out` may be exactly `a`: the
    kernel reads each element before it writes the same element of `out` and
    never reads it again.

    Cheap in the usual cases: views of two different allocations; then the
    bounds (`np.may_share_memory`); the exact answer
    (`np.shares_memory`) only where the bounds meet.
    """
    if out is a:
        return not in_place
    if a is None:
        return False
    # views of two different allocations are disjoint: NumPy keeps a view's
    # base at the array that allocated its memory (unless that memory is
    # another object's: a buffer, a memory map)
    p, q = out.base, a.base
    p = out if p is None else p
    q = a if q is None else q
    if (p is not q and type(p) is _NDARRAY and type(q) is _NDARRAY
            and p.flags.owndata and q.flags.owndata):
        return False
    if not np.may_share_memory(out, a):
        return False
    if in_place and _same_elements(out, a):
        return False
    try:
        return bool(np.shares_memory(out, a, max_work=_MAX_WORK))
    except np.exceptions.TooHardError:
        return True


def kernel_out(out, reads, in_place=None):
    """The array a kernel writes for the caller's output `out` while it reads
    the arrays `reads` (None entries are skipped): `out` itself, or a new
    array when `out` is misaligned, does not walk whole elements, or
    overlaps any of `reads` -- other than being exactly `in_place` (the
    input, of out's shape, of a kernel that works in place; see `overlaps`).

    The new array has out's shape and dtype and the memory order of
    `in_place` (as the output the call allocates without `out`, so that the
    kernel walks both alike), else of `out`.  The caller copies it into
    `out` after the call, as NumPy's ufuncs buffer an output that overlaps
    their input: the kernels never meet overlap or misalignment.
    """
    if _typed(out) and not any(overlaps(out, a, a is in_place) for a in reads):
        return out
    return np.empty_like(out if in_place is None else in_place, dtype=out.dtype, subok=False)


# ---------------------------------------------------------------------------
# reductions over axes: (outer, C, inner)

def reduced_shape(shape, axes):
    """`shape` without the reduced `axes`."""
    if len(axes) == 1:
        d = axes[0]
        return shape[:d] if d == len(shape) - 1 else shape[:d] + shape[d + 1:]
    return tuple(n for d, n in enumerate(shape) if d not in axes)


def kept_shape(shape, axes):
    """`shape` with the reduced `axes` as length-1 dims."""
    return tuple(1 if d in axes else n for d, n in enumerate(shape))


def _with_kept_dims(r, axes, ndim):
    """The result `r` of a reduction over `axes` of `ndim` dims, with the
    reduced axes as length-1 dims: always a view."""
    if r.ndim == ndim:
        return r
    return np.expand_dims(r, axes)


def empty_like_layout(x, shape, dtype, kept=None):
    """A new array of `shape` whose axes lie in memory in the order of the
    corresponding axes `kept` of `x` (largest stride first; default: all
    axes of `x`), so that it merges with `x` wherever `x` merges with
    itself."""
    if c_contiguous(x):
        return np.empty(shape, dtype)
    if kept is None:
        kept = range(x.ndim)
    order = sorted(range(len(shape)), key=lambda d: -abs(x.strides[kept[d]]) if kept[d] is not None else 0)
    out = np.empty(tuple(shape[d] for d in order), dtype=dtype)
    return out.transpose(np.argsort(order))


def empty_reduced(x, axes, keepdims, dtype):
    """A new result of a reduction of `x` over `axes` (with the reduced axes
    as length-1 dims when `keepdims`), laid out in memory as the kept axes
    of `x` (see empty_like_layout)."""
    shape = x.shape
    if not keepdims and len(axes) == 1 and axes[0] == len(shape) - 1:
        shape = shape[:-1]   # the common case, without a call
    else:
        shape = kept_shape(shape, axes) if keepdims else reduced_shape(shape, axes)
    if c_contiguous(x):
        return np.empty(shape, dtype)
    if keepdims:
        return empty_like_layout(x, shape, dtype,
                                 [None if d in axes else d for d in range(x.ndim)])
    return empty_like_layout(x, shape, dtype, [d for d in range(x.ndim) if d not in axes])


def _merge(dims):
    """Merge runs of dims, outermost first, that are one strided dim in every
    array.  Each dim is (size, strides, [original axes]); size-1 dims vanish."""
    merged = []
    for size, st, ax in dims:
        if size == 1:
            continue
        if merged:
            psize, pst, pax = merged[-1]
            if all(p == s * size for p, s in zip(pst, st)):
                merged[-1] = (psize * size, st, pax + ax)
                continue
        merged.append((size, st, ax))
    return merged


def plan_views(shape, axes, arrays, kept_arrays):
    """Plan 3-d views for a reduction of `shape` over `axes`.

    arrays      -- arrays of the full `shape` (input, weights, full outputs)
    kept_arrays -- arrays of the reduced shape with keepdims (row outputs)

    Returns (views, kept_views): (outer, C, inner) views of `arrays` and
    (outer, inner) views of `kept_arrays`, or None when the axes cannot be
    merged (see _split_largest).  The views are made by transpose and
    reshape, which NumPy does without a copy exactly when the merged axes
    are one strided dim -- the condition checked here.
    """
    arrays = [kernel_view(a) for a in arrays]
    kept_arrays = [kernel_view(k) for k in kept_arrays]
    ndim = len(shape)
    red = [(shape[d], [a.strides[d] for a in arrays], [d]) for d in axes]
    bat = [(shape[d], [a.strides[d] for a in arrays] + [k.strides[d] for k in kept_arrays], [d])
           for d in range(ndim) if d not in axes]
    red = _merge(sorted(red, key=lambda t: -abs(t[1][0])))
    bat = _merge(sorted(bat, key=lambda t: -abs(t[1][0])))
    if len(red) > 1 or len(bat) > 2:
        return None
    item = arrays[0].itemsize
    C, sc, red_axes = red[0] if red else (1, None, [])
    outer = inner = (1, None, [])
    if len(bat) == 2:
        outer, inner = bat
    elif len(bat) == 1:
        # a contiguous kept axis beside a strided reduced axis is the column
        # kernels' case; otherwise walk it as the outer axis
        if bat[0][1][0] == item and sc is not None and sc[0] != item:
            inner = bat[0]
        else:
            outer = bat[0]
    order = outer[2] + red_axes + inner[2]
    rest = [d for d in range(ndim) if d not in order]   # the size-1 axes
    perm = rest + order
    O, I = outer[0], inner[0]
    views = [a.transpose(perm).reshape(O, C, I) for a in arrays]
    kept_views = [k.transpose(perm).reshape(O, I) for k in kept_arrays]
    return views, kept_views


def _split_largest(shape, axes, arrays):
    """The kept axis with the largest stride in the first array, to loop over
    in Python when the kept axes do not merge into two (rare: arrays sliced in
    three or more kept axes).  None when the reduced axes are the problem."""
    kept = [d for d in range(len(shape)) if d not in axes and shape[d] > 1]
    if len(kept) <= 2:
        return None
    return max(kept, key=lambda d: abs(arrays[0].strides[d]))


def reduce(shape, axes, arrays, n_in, n_full, planner=None):
    """The kernel calls of a reduction of `shape` over `axes`: an iterable
    with one ``(views, lo, hi)`` per kernel call -- the views of `arrays`,
    in their order, None entries kept as None, whose axes lo..hi are the
    reduced ones.  `arrays` is one tuple (as a small call makes it): the
    `n_in` inputs `ins`, the `n_full` outputs `full_outs`, then
    `row_outs`.  The drivers read each view as (outer, C, inner) dims: the
    axes before lo, lo..hi and after hi, each group merged into one strided
    dim (see _view in src/fx_kernels.pxd.tp, which checks that they merge).

    ins, full_outs: arrays of `shape`; row_outs: arrays of the reduced
    shape, with or without the reduced axes as length-1 dims.  Every array
    is in a kernel dtype; the views are its kernel views (see kernel_view;
    an output goes through kernel_out first).

    The fast path of every layout: when the reduced `axes` are adjacent
    and every array is C-contiguous and aligned (so that its strides are
    whole elements and every group merges), one call on the arrays
    themselves, with lo..hi the reduced axes: no view is made (this runs on
    every small call, so it is written out).  Otherwise `planner(shape,
    axes, ins, full_outs, row_outs)` gives the calls (default: by stride,
    see plan_views), on (outer, C, inner) views of 3 dims and (outer,
    inner) views of 2 (lo = hi = 1): usually one call on views of the
    caller's memory; for the rare layouts that do not merge, a generator of
    a few calls (kept axes looped over) or of one call on a contiguous copy
    (reduced axes that are neither adjacent nor compatible in memory, e.g.
    axis=(0, 2) of a C-ordered 3-d array).  A generator copies results to
    outputs that did not fit after its last call: run the kernel call in the
    loop that exhausts it::

        for (xv, ov), lo, hi in reduce(shape, axes, (x, out), 1, 1):
            kernel(xv, ov, lo, hi)
    """
    if planner is None:
        planner = _by_stride
    if len(axes) == 1:
        lo = hi = axes[0]
        # a length-1 reduced axis before kept ones: the planner drops it and
        # walks the kept axes as it would any other layout
        if hi + 1 != len(shape) and shape[lo] == 1:
            return _plan(planner, shape, axes, arrays, n_in, n_full)
    else:
        n = len(axes)
        if not n or axes[-1] - axes[0] + 1 != n:
            return _plan(planner, shape, axes, arrays, n_in, n_full)
        lo, hi = axes[0], axes[-1]
        if hi + 1 != len(shape) and math.prod(shape[lo:hi + 1]) == 1:
            return _plan(planner, shape, axes, arrays, n_in, n_full)
    if not c_aligned(arrays):
        return _plan(planner, shape, axes, arrays, n_in, n_full)
    return ((arrays, lo, hi),)


def _plan(planner, shape, axes, arrays, n_in, n_full):
    """planner's calls, given the inputs, full outputs and row outputs apart."""
    return planner(shape, axes, arrays[:n_in], arrays[n_in:n_in + n_full],
                   arrays[n_in + n_full:])


def _by_stride(shape, axes, ins, full_outs, row_outs):
    """reduce() planned by stride (see _planned), None entries kept."""
    arrays = [*ins, *full_outs, *row_outs]
    if all(a is not None for a in arrays):
        return _planned(shape, axes, ins, full_outs, row_outs)
    return _with_none(arrays, _planned(shape, axes, [a for a in ins if a is not None],
                                       [a for a in full_outs if a is not None],
                                       [a for a in row_outs if a is not None]))


def _with_none(arrays, calls):
    """The calls `calls` (of the arrays that are not None) with None where
    `arrays` has None."""
    present = [i for i, a in enumerate(arrays) if a is not None]
    for views, lo, hi in calls:
        full = [None] * len(arrays)
        for i, v in zip(present, views):
            full[i] = v
        yield full, lo, hi


def _planned(shape, axes, ins, full_outs, row_outs):
    """reduce() by stride, for arrays that are not all C-ordered (no None
    entries): yields the calls, (views, 1, 1) on views of 3 and 2 dims, or
    those of reduce() on parts or copies."""
    ndim = len(shape)
    ins = [kernel_view(a) for a in ins]
    full_outs = [kernel_view(a) for a in full_outs]
    kept_outs = [kernel_view(_with_kept_dims(r, axes, ndim)) for r in row_outs]
    n_in = len(ins)
    everything = ins + full_outs
    # the inputs alone choose the views (and so the kernel and the order of
    # its sums): a result must not depend on the layout of its outputs
    own = plan_views(shape, axes, ins, [])
    if own is not None:
        planned = plan_views(shape, axes, everything, kept_outs)
        if planned is not None and [v.shape for v in planned[0][:n_in]] == \
                [v.shape for v in own[0]]:
            views, kept_views = planned
            yield [*views, *kept_views], 1, 1
            return
        # outputs that do not fit the inputs' views: through buffers laid
        # out as the first input (which fit), then copied
        x = ins[0]
        full_b = [np.empty_like(x, dtype=o.dtype) for o in full_outs]
        first = x[tuple(slice(0, 1) if d in axes else slice(None) for d in range(x.ndim))]
        # shape=: `first` is empty where a reduced axis is
        kept_b = [np.empty_like(first, dtype=k.dtype, shape=k.shape) for k in kept_outs]
        planned = plan_views(shape, axes, ins + full_b, kept_b)
        if planned is not None:
            views, kept_views = planned
            yield [*views, *kept_views], 1, 1
            for dst, src in zip(full_outs + kept_outs, full_b + kept_b):
                np.copyto(dst, src)
            return
        # a broadcast input merges kept axes of stride 0 that no full-size
        # buffer can merge with: split or copy as below
    d = _split_largest(shape, axes, ins)
    if d is not None:
        # loop in Python over one kept axis; the rest merges
        sub = shape[:d] + shape[d + 1:]
        sub_axes = tuple(a - (a > d) for a in axes)
        for j in range(shape[d]):
            take = (slice(None),) * d + (j,)
            yield from reduce(sub, sub_axes, tuple(a[take] for a in ins + full_outs + kept_outs),
                              len(ins), len(full_outs))
        return
    # reduced axes that do not merge: reduce over a contiguous copy
    k = len(axes)
    moved = tuple(range(len(shape) - k, len(shape)))
    ins_c = [np.ascontiguousarray(np.moveaxis(a, axes, moved)) for a in ins]
    outs_c = [np.empty_like(a) for a in ins_c[:1] for _ in full_outs]
    kept_c = [np.moveaxis(kk, axes, moved) for kk in kept_outs]
    shape_c = ins_c[0].shape
    yield from reduce(shape_c, moved, (*ins_c, *outs_c, *kept_c), len(ins_c), len(outs_c))
    for dst, src in zip(full_outs, outs_c):
        np.copyto(dst, np.moveaxis(src, moved, axes))


# ---------------------------------------------------------------------------
# the losses' class axis 1

def _class_view(a):
    """(N, C, d...) -> (N, C, prod d) view; (C,) -> (1, C, 1); None when
    the dims d... do not merge into one without a copy."""
    if a.ndim == 1:
        return a.reshape(1, a.shape[0], 1)
    n, c = a.shape[:2]
    if a.ndim <= 3:
        return a.reshape(n, c, a.shape[2]) if a.ndim == 3 else a.reshape(n, c, 1)
    try:  # merge d1, d2, ... without a copy
        v = a.view()
        v.shape = (n, c, math.prod(a.shape[2:]))
        return v
    except AttributeError:
        return None


# the class axis of an input of each number of dims (PyTorch's axis 1, or
# the only axis of an unbatched input)
_CLASS_AXES = (None, (0,)) + ((1,),) * 63   # up to NumPy 2's 64 dims


def class_views(arrays, n_in, n_out):
    """The kernel calls for PyTorch's class axis 1: an iterable with one
    ``(views, lo, hi)`` per call (one call; see reduce), the views of
    `arrays` in their order, None entries kept as None.

    arrays -- one tuple: first `n_in` inputs, then `n_out` outputs, then
              the arrays of the rows (one tuple, as a small call makes it)
    inputs  -- of the shape (N, C, d1, ...) or (C,), the first not None;
               viewed as (N, C, d1 * ...), from a C-ordered copy where d1,
               ... do not merge
    outputs -- of that shape; an output whose dims do not merge as the
               first input's is written through a buffer, copied to it
               after the call (run the kernel in the loop that exhausts
               the iterable)
    rows    -- arrays of the shape without the class axis (labels, per-row
               losses), viewed as (N, d1 * ...)

    Every view is a kernel view (see kernel_view).  C-ordered arrays take
    the fast path of `reduce` (a reduction over the class axis: the arrays
    themselves, lo = hi = the class axis); other layouts (N, C, d1 * ...)
    views of 3 dims and (N, d1 * ...) views of 2 (lo = hi = 1).
    """
    x = arrays[0]
    nd = x.ndim
    if nd <= 2 and c_aligned(arrays):
        # (N, C) and (C,): the class axis is the last, so C-ordered arrays
        # take reduce's fast path; written out here, as reduce's checks of
        # the axes cost a small call as much as the rest of the layer
        return ((arrays, nd - 1, nd - 1),)
    return reduce(x.shape, _CLASS_AXES[nd], arrays, n_in, n_out, _class_planned)


def _class_planned(shape, axes, ins, outs, rows):
    """class_views() for arrays that are not all C-ordered."""
    views = []
    for a in ins:
        v = None
        if a is not None:
            a = kernel_view(a)
            v = _class_view(a)
            if v is None:
                v = _class_view(np.ascontiguousarray(a))
        views.append(v)
    copies = []
    for o in outs:
        v = None
        if o is not None:
            o = kernel_view(o)
            v = _class_view(o)
            if v is None:
                buf = np.empty(o.shape, o.dtype)
                copies.append((o, buf))
                v = _class_view(buf)
        views.append(v)
    n, inner = views[0].shape[0], views[0].shape[2]
    for r in rows:
        views.append(None if r is None else kernel_view(r).reshape(n, inner))
    yield views, 1, 1
    for dst, buf in copies:
        np.copyto(dst, buf)


# ---------------------------------------------------------------------------
# element-wise operands: (rows, L)

def elementwise_views(shape, arrays):
    """2-d (rows, L) views of `arrays` (each of `shape`, possibly broadcast
    with stride 0) in which element (r, j) is the same logical element of
    every array; None when the dims do not merge into two for all of them
    (then the caller loops over the first axis).  Dims are merged from the
    innermost outwards, as in memory for C-ordered data, without a copy."""
    dims = [(n, [a.strides[d] for a in arrays]) for d, n in enumerate(shape) if n != 1]
    merged = []
    for size, st in reversed(dims):
        if merged:
            isize, ist = merged[-1]
            if all(s == i * isize for s, i in zip(st, ist)):
                merged[-1] = (isize * size, ist)
                continue
        merged.append((size, st))
    if len(merged) > 2:
        return None
    while len(merged) < 2:
        merged.append((1, [0] * len(arrays)))
    (L, lst), (R, rst) = merged
    as_strided = np.lib.stride_tricks.as_strided
    return [as_strided(a, (R, L), (rs, ls), writeable=a.flags.writeable)
            for a, rs, ls in zip(arrays, rst, lst)]


def elementwise(shape, arrays, n_in, units_of):
    """The kernel calls of an element-wise loss: an iterable of ``(views,
    lo, hi, partial)`` per call, `views` the views of `arrays` (one tuple:
    the `n_in` inputs `ins`, then the outputs `outs`; None entries kept as
    None), read by the drivers as (rows, L): the axes
    before lo are the rows, lo..hi the row (see _view in
    src/fx_kernels.pxd.tp); `partial` the new array of `units_of(rows, L)`
    partial sums the kernel writes, or None where that is one sum, which
    the kernel returns instead.  The calls come in a fixed order, so a
    sum of their partial sums does not depend on the thread count.

    ins: arrays of `shape` in the compute dtype (broadcast views allowed);
    outs: new arrays of `shape` in that dtype, or None; the views are their
    kernel views (see kernel_view).  C-ordered operands, none broadcast,
    are passed as they are: one flat row (lo = 0, hi = the last axis).
    Otherwise the (rows, L) split, and so the order of the sums, comes from
    the inputs alone, on views of 2 dims (lo = hi = 1): an output whose
    layout does not fit it is written through a C-ordered buffer, copied
    after the last call (run the kernel in the loop that exhausts the
    iterable), so that a loss never depends on where its outputs live.
    Inputs whose dims do not merge into two are walked in calls over the
    first axis."""
    if c_aligned(arrays):
        # all C-ordered, so none broadcast (a zero stride on a dim longer
        # than 1 is not C-contiguous): one flat stream each
        return ((arrays, 0, len(shape) - 1, _partials(units_of(1, arrays[0].size))),)
    ins = [None if a is None else kernel_view(a) for a in arrays[:n_in]]
    outs = [None if o is None else kernel_view(o) for o in arrays[n_in:]]
    return _elementwise(shape, ins, outs, units_of)


def _elementwise(shape, ins, outs, units_of):
    """elementwise() on kernel views (None entries kept), planned by stride."""
    given = [a for a in ins if a is not None]
    vi = elementwise_views(shape, given)
    if vi is None:
        for j in range(shape[0]):
            yield from _elementwise(shape[1:], [None if a is None else a[j] for a in ins],
                                    [None if o is None else o[j] for o in outs], units_of)
        return
    R, L = vi[0].shape
    it = iter(vi)
    views = [None if a is None else next(it) for a in ins]
    copies = []
    for o in outs:
        v = None
        if o is not None:
            v = o.reshape(R, L) if c_contiguous(o) else None
            if v is None:
                both = elementwise_views(shape, given + [o])
                v = both[-1] if both is not None and both[0].shape == (R, L) else None
            if v is None:
                buf = np.empty(shape, o.dtype)
                copies.append((o, buf))
                v = buf.reshape(R, L)
        views.append(v)
    yield views, 1, 1, _partials(units_of(R, L))
    for o, buf in copies:
        np.copyto(o, buf)


# ---------------------------------------------------------------------------
# results

def _partials(n):
    """The array of a kernel call's `n` partial sums, zeros; None for one:
    the kernel returns that sum itself (src/fx_kernels.pxd.tp, _partials)."""
    return np.zeros(n) if n > 1 else None


def array_sum(p):
    """float(np.sum(p)) of a 1-d float64 array, without np.sum's cost for
    the one element of a small call."""
    return p.item() if p.shape[0] == 1 else float(np.sum(p))


def mean_value(total, denom):
    """`total` / `denom` as PyTorch divides them, also by a zero `denom` (no
    rows, all ignored, or weights that sum to 0): NaN for 0 / 0 (or a NaN
    total), +-inf for a nonzero total."""
    if denom:
        return total / denom
    return math.nan if total == 0 or total != total else total * math.inf


def finish(total, reduction, denom, dtype):
    """A reduced loss as a NumPy scalar of `dtype`: the sum, or for a mean
    the sum divided by `denom` as PyTorch divides (mean_value)."""
    value = total if reduction == "sum" else mean_value(total, denom)
    if dtype.itemsize > 2:
        return dtype.type(value)
    with np.errstate(over="ignore"):  # float16 overflows to inf quietly
        return dtype.type(value)
