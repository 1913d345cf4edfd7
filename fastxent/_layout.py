"""Views of an N-d reduction as the kernels' (outer, C, inner) problem.

A reduction over some axes of an array is a reduction along the middle axis
of a 3-d strided view -- as long as the reduced axes can be merged into one
strided dimension and the kept axes into at most two.  Axes are ordered by
stride (as in memory) before merging, so C-order, F-order, transposed, sliced
and negative-stride arrays all map to a view of the caller's memory: no copy.

Several arrays (input, weights, outputs) are planned together; a merge is
taken only where it is valid for all of them, so element (o, c, i) of each
view is the same logical element.
"""
import numpy as np

__all__ = ["normalize_axes", "empty_like_layout", "plan_views", "elementwise_views"]


def normalize_axes(axis, ndim, name="axis"):
    """Sorted tuple of the distinct axes named by `axis` (None: all).

    Raises AxisError (a ValueError and IndexError) for an axis out of range,
    ValueError for a repeated axis and TypeError for a non-integer, as NumPy
    reductions do.
    """
    if axis is None:
        return tuple(range(ndim))
    items = axis if isinstance(axis, tuple) else (axis,)
    out = []
    for ax in items:
        try:
            ax = int(ax.__index__())
        except (AttributeError, TypeError):
            raise TypeError(f"{name} must be None, an integer or a tuple of integers, "
                            f"got {axis!r}") from None
        if not -ndim <= ax < ndim:
            raise np.exceptions.AxisError(ax, ndim)
        out.append(ax % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"duplicate value in '{name}': {axis!r}")
    return tuple(sorted(out))


def empty_like_layout(x, shape, dtype, kept):
    """A new array of `shape` whose axes lie in memory in the order of the
    corresponding axes `kept` of `x` (largest stride first), so that it merges
    with `x` wherever `x` merges with itself."""
    if x.flags.c_contiguous:
        return np.empty(shape, dtype=dtype)
    order = sorted(range(len(shape)), key=lambda d: -abs(x.strides[kept[d]]) if kept[d] is not None else 0)
    out = np.empty(tuple(shape[d] for d in order), dtype=dtype)
    return out.transpose(np.argsort(order))


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
    merged (see split_largest).  The views are made by transpose and
    reshape, which NumPy does without a copy exactly when the merged axes
    are one strided dim -- the condition checked here.
    """
    ndim = len(shape)
    if axes and axes == tuple(range(axes[0], axes[-1] + 1)) and all(
            a.flags.c_contiguous for a in arrays + kept_arrays):
        # C-ordered and the axes adjacent: a plain reshape (the common case)
        O = I = 1
        for d in range(axes[0]):
            O *= shape[d]
        for d in range(axes[-1] + 1, ndim):
            I *= shape[d]
        C = 1
        for d in axes:
            C *= shape[d]
        if I == 1 or C > 1:
            return ([a.reshape(O, C, I) for a in arrays],
                    [k.reshape(O, I) for k in kept_arrays])
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


def split_largest(shape, axes, arrays):
    """The kept axis with the largest stride in the first array, to loop over
    in Python when the kept axes do not merge into two (rare: arrays sliced in
    three or more kept axes).  None when the reduced axes are the problem."""
    kept = [d for d in range(len(shape)) if d not in axes and shape[d] > 1]
    if len(kept) <= 2:
        return None
    return max(kept, key=lambda d: abs(arrays[0].strides[d]))


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
