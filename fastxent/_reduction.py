"""Running a kernel over any axes of any layout.

`run` turns the caller's arrays into the kernels' (outer, C, inner) views
(see _layout) and calls the kernel once -- or, for the rare layouts that do
not merge, a few times (kept axes) or on a contiguous copy (reduced axes that
are neither adjacent nor compatible in memory, e.g. axis=(0, 2) of a
C-ordered 3-d array).
"""
import numpy as np

from ._layout import plan_views, split_largest


def run(call, shape, axes, ins, full_outs, kept_outs):
    """call(in_views, full_out_views, kept_out_views) on matching views.

    ins, full_outs: arrays of `shape`; kept_outs: arrays of the keepdims
    shape.  Every array is already in a kernel dtype (float16 as uint16 bits).
    """
    n_in = len(ins)
    # the inputs alone choose the views (and so the kernel and the order of
    # its sums): a result must not depend on the layout of its outputs
    own = plan_views(shape, axes, list(ins), [])
    if own is not None:
        planned = plan_views(shape, axes, list(ins) + list(full_outs), list(kept_outs))
        if planned is not None and [v.shape for v in planned[0][:n_in]] == \
                [v.shape for v in own[0]]:
            views, kept_views = planned
            call(views[:n_in], views[n_in:], kept_views)
            return
        # outputs that do not fit the inputs' views: through buffers laid
        # out as the first input (which fit), then copied
        x = ins[0]
        full_b = [np.empty_like(x, dtype=o.dtype) for o in full_outs]
        first = x[tuple(slice(0, 1) if d in axes else slice(None) for d in range(x.ndim))]
        # shape=: `first` is empty where a reduced axis is
        kept_b = [np.empty_like(first, dtype=k.dtype, shape=k.shape) for k in kept_outs]
        planned = plan_views(shape, axes, list(ins) + full_b, kept_b)
        if planned is not None:
            views, kept_views = planned
            call(views[:n_in], views[n_in:], kept_views)
            for dst, src in zip(list(full_outs) + list(kept_outs), full_b + kept_b):
                np.copyto(dst, src)
            return
        # a broadcast input merges kept axes of stride 0 that no full-size
        # buffer can merge with: split or copy as below
    d = split_largest(shape, axes, list(ins))
    if d is not None:
        # loop in Python over one kept axis; the rest merges
        sub = shape[:d] + shape[d + 1:]
        sub_axes = tuple(a - (a > d) for a in axes)
        for j in range(shape[d]):
            take = (slice(None),) * d + (j,)
            run(call, sub, sub_axes, [a[take] for a in ins], [a[take] for a in full_outs],
                [k[take] for k in kept_outs])
        return
    # reduced axes that do not merge: reduce over a contiguous copy
    k = len(axes)
    moved = tuple(range(len(shape) - k, len(shape)))
    ins_c = [np.ascontiguousarray(np.moveaxis(a, axes, moved)) for a in ins]
    outs_c = [np.empty_like(a) for a in ins_c[:1] for _ in full_outs]
    kept_c = [np.moveaxis(kk, axes, moved) for kk in kept_outs]
    shape_c = ins_c[0].shape
    run(call, shape_c, moved, ins_c, outs_c, kept_c)
    for dst, src in zip(full_outs, outs_c):
        np.copyto(dst, np.moveaxis(src, moved, axes))
