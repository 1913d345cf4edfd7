"""Building blocks of the lazy reductions: checking arguments against the
NumPy function, mapping it over blocks, and the tree of partial states.

The functions a graph's tasks call are module-level functions (with their
options bound by ``functools.partial``), never closures, so that a lazy
result pickles as Dask's own arrays do.

Every function of the package checks its arguments by calling the NumPy
function on a tiny array of the same dtypes and number of dimensions
(:func:`probe`): the errors, the result dtype and the axis rules are then
exactly those of the NumPy path, without computing anything of the data.
"""
import functools
import operator
import sys

import numpy as np

import dask
import dask.array as da
from dask.layers import ArraySliceDep, ArrayValuesDep

from .._dispatch import checked_threads
from . import row_state

__all__ = ["array_of", "scalar_of", "probe", "probe_array", "probe_labels", "threads", "operand",
           "known_shape", "reduced_axes_whole", "map_reduction", "tree_state", "drop_axes", "no_out",
           "block_label_index", "held", "target_operand", "chunked_like", "without_empty_chunks",
           "fan_in", "block_classes", "classes_of", "block_values"]

# Blocks merged by one task of a tree reduction, unless Dask's
# ``split_every`` setting says otherwise.  What the trees here merge is a
# few numbers per row of a block (a partial state, a partial sum), far less
# than the block, while each level of a tree adds a scheduler round trip and
# a transfer between workers (several ms on a distributed cluster): Dask's
# default of 4 per level makes 16 chunks two levels, and each extra level
# was measured at 10-20 ms of a compute on a local cluster.
FAN_IN = 16


def fan_in():
    """The ``split_every`` of the package's tree reductions: Dask's
    ``split_every`` setting where one is set, else :data:`FAN_IN`."""
    setting = dask.config.get("split_every", None)
    return FAN_IN if setting is None else setting


def threads(n_threads):
    """The threads of each block's kernel call: `n_threads` if given, else
    1, as Dask already runs one task per core (the threaded scheduler, or a
    worker's threads): more threads per task would oversubscribe them.
    Checked at the call, with the NumPy path's errors and its cap; each
    block's call still runs on one thread in a forked worker."""
    return 1 if n_threads is None else checked_threads(n_threads)


def operand(a):
    """`a` as a Dask array of plain NumPy blocks: the data of a masked
    array, as the NumPy path reads one (``np.asarray`` drops the mask), so
    that no result depends on how the array is chunked."""
    a = da.asarray(a)
    if isinstance(getattr(a, "_meta", None), np.ma.MaskedArray):
        a = da.ma.getdata(a)
    return a


def known_shape(**arrays):
    """Refuse Dask arrays of unknown chunk sizes (NaN in the shape, as
    after boolean indexing) where shapes are compared or broadcast: one
    clear ValueError rather than an error from inside Dask."""
    for name, a in arrays.items():
        shape = getattr(a, "shape", ())
        if any(n != n for n in shape):
            raise ValueError(f"{name} has unknown chunk sizes (shape {shape}): call its "
                             "compute_chunk_sizes() method first")


def no_out(name, **outputs):
    """Refuse output arrays: a Dask result is a new lazy array."""
    for key, value in outputs.items():
        if value is not None:
            raise TypeError(f"{name}: `{key}` is not supported for Dask arrays (the result is a "
                            "new lazy Dask array; store it with dask.array.store or to_zarr)")


def probe_array(a):
    """A NumPy array of ones of the dtype and number of dimensions of `a`,
    each of length 1."""
    return np.ones((1,) * np.ndim(a), _dtype(a))


def probe(fn, arrays, **kwargs):
    """Call `fn` on :func:`probe_array` of each of `arrays`: checks the
    arguments as the NumPy path does and returns its result (whose dtype
    the lazy result takes)."""
    return fn(*[probe_array(a) for a in arrays], **kwargs)


def probe_labels(shape, dtype, C, ignore_index):
    """Class labels of `shape` and `dtype` for a probe of `C` classes: 0,
    or `ignore_index` where there is no class (C = 0) and the dtype holds
    it, so that the probe checks the arguments as an input whose rows are
    all ignored does; the data's labels are checked by the blocks."""
    t = np.zeros(shape, dtype)
    if C == 0 and t.dtype.kind in "iu":
        try:
            v = operator.index(ignore_index)
        except TypeError:
            return t
        info = np.iinfo(t.dtype)
        if info.min <= v <= info.max:
            t[...] = v
    return t


def _dtype(a):
    dtype = getattr(a, "dtype", None)
    return np.asarray(a).dtype if dtype is None else dtype


def reduced_axes_whole(x, axes):
    """True when each of `axes` is one chunk of `x`."""
    return all(len(x.chunks[d]) == 1 for d in axes)


def array_of(*blocks, fn):
    """`fn` of the blocks as an ndarray (a NumPy function may return a
    NumPy scalar), but a 0-d result as a NumPy scalar, as the NumPy function
    returns it (see scalar_of)."""
    return scalar_of(fn(*blocks))


def scalar_of(v):
    """`v` as an ndarray, or a NumPy scalar where it is 0-d: the result of a
    full reduction computes to the NumPy function's scalar type, not to a
    0-d array, whatever the chunks."""
    v = np.asarray(v)
    return v[()] if v.ndim == 0 else v


def _kept(*blocks, fn, axes, **kwargs):
    """`fn` of the blocks, with `axes` kept as length-1 axes."""
    return np.expand_dims(np.asarray(fn(*blocks, **kwargs)), axes)


def _dropped(*blocks, fn):
    """array_of the blocks, each given by blockwise as a nested list of one
    block per contracted axis (every such axis is one chunk)."""
    blocks = list(blocks)
    for i, b in enumerate(blocks):
        while isinstance(b, list):
            (b,) = b
        blocks[i] = b
    return array_of(*blocks, fn=fn)


def map_reduction(fn, arrays, axes, dtype, keepdims=True, **kwargs):
    """`fn` over the blocks of `arrays` (one shape, `axes` whole in each
    block): a lazy array of the reduced shape, with `axes` as length-1 axes
    (`fn`'s results expanded) or, without `keepdims`, without them (`fn`'s
    results as they are).  The axes are dropped by the blocks' own tasks:
    a slice of the result afterwards (drop_axes) would be a task per block
    of its own, each a scheduler round trip on a ``distributed`` cluster."""
    nd = arrays[0].ndim
    ind = tuple(range(nd))
    pairs = []
    for a in arrays:
        pairs += [a, ind]
    if not keepdims:
        out_ind = tuple(d for d in ind if d not in axes)
        # a contracted index reaches the function as a list of its blocks
        # (one here), never concatenated: concatenating copies even one block
        return da.blockwise(functools.partial(_dropped, fn=fn), out_ind, *pairs, dtype=dtype,
                            concatenate=False, meta=np.empty((0,) * len(out_ind), dtype),
                            **kwargs)
    return da.blockwise(functools.partial(_kept, fn=fn, axes=axes), ind, *pairs, dtype=dtype,
                        adjust_chunks={d: 1 for d in axes},
                        meta=np.empty((0,) * nd, dtype), **kwargs)


def tree_state(kind, axes, x, y=None, b=None, n_threads=1):
    """The merged partial state (`kind`, a row_state dtype) of `x` (and
    `y` or the weights `b`, of x's shape and chunks) along `axes`: one state
    per block, merged along `axes` by a tree reduction; keepdims, one chunk
    along `axes`.  `n_threads`: the threads of each block's kernel call."""
    nd = x.ndim
    ind = tuple(range(nd))
    args = [x, ind]
    names = ["x"]
    for name, v in (("y", y), ("b", b)):
        if v is not None:
            args += [v, ind]
            names.append(name)

    block = functools.partial(_block_state, kind=kind, axes=axes, names=tuple(names),
                              n_threads=n_threads)
    states = da.blockwise(block, ind, *args, dtype=kind, adjust_chunks={d: 1 for d in axes},
                          meta=np.empty((0,) * nd, kind))
    return da.reduction(states, _identity, row_state.merge, axis=axes, keepdims=True,
                        dtype=kind, combine=row_state.merge, concatenate=False,
                        split_every=fan_in(), meta=np.empty((0,) * nd, kind))


def _block_state(*blocks, kind, axes, names, n_threads):
    return row_state.block_state(kind, axes, n_threads=n_threads, **dict(zip(names, blocks)))


def _identity(x, axis, keepdims):
    return x


def drop_axes(res, axes, keepdims):
    """`res` (keepdims) without the length-1 `axes` unless `keepdims`."""
    if keepdims or not axes:
        return res
    return res[tuple(0 if d in axes else slice(None) for d in range(res.ndim))]


def block_label_index(y, inside, c0):
    """The index of labels `y` within a block of classes that starts at
    class `c0`, where `inside` (0 elsewhere): int64 whatever the labels'
    integer type (NumPy forms uint64 - int64 in float64, which no gather
    takes)."""
    c0 = int(c0)
    return np.where(inside, y, c0).astype(np.int64) - c0


def block_classes(chunks):
    """The classes of each block of a class axis chunked as `chunks`, a
    blockwise argument (with the class axis as its index) that the graph
    writes into each block's task: no task of its own.  A ``da.arange``
    there would be a task per block, and a root task of a graph waits on
    the ``distributed`` scheduler for a free thread, a round trip each
    (about 3 ms apiece on a local cluster); see :func:`classes_of`.  Dask's
    alignment of chunks does not take it: the arrays beside it share their
    chunks already, and blockwise is called with ``align_arrays=False``."""
    return ArraySliceDep((tuple(chunks),))


def classes_of(loc):
    """A block's class indices (int64) from its :func:`block_classes`
    argument."""
    (where,) = loc
    return np.arange(where.start, where.stop)


def block_values(chunks, v):
    """The pieces of `v` (one value per class: the class weights) for each
    block of a class axis chunked as `chunks`, a blockwise argument like
    :func:`block_classes`: each block's task holds its piece, and no task
    of its own makes it (``da.from_array`` would add a root task per
    piece)."""
    starts = np.cumsum((0,) + tuple(chunks))
    return ArrayValuesDep((tuple(chunks),), {(i,): v[starts[i]:starts[i + 1]]
                                            for i in range(len(chunks))})


def held(x):
    """Whether every block of the Dask array `x` is already in memory: NumPy
    arrays in its graph, or the futures of an array persisted on a
    ``distributed`` cluster.  A graph that keeps such blocks between two
    reads of them holds nothing they do not already take."""
    graph = x.__dask_graph__()
    # such an array is one layer of data; any other is told apart here
    # without materializing its tasks
    if len(getattr(graph, "layers", ())) > 1:
        return False
    future = getattr(sys.modules.get("distributed"), "Future", None)
    kinds = (np.ndarray,) if future is None else (np.ndarray, future)
    return all(isinstance(graph.get(k), kinds) for k in dask.core.flatten(x.__dask_keys__()))


def target_operand(target):
    """Labels or targets as the Dask functions take them before chunking: a
    Dask array as it is, anything else as a NumPy array, which chunked_like
    cuts into chunks (``da.asarray`` first would hash its data once more:
    0.5 s per 256 MiB)."""
    return operand(target) if dask.is_dask_collection(target) else np.asarray(target)


def chunked_like(t, x, t_ind):
    """The labels or targets `t` (from target_operand) as a Dask array
    chunked as the axes `t_ind` of `x`: a NumPy `t` is cut so at once, each
    piece going with the tasks that read it, rather than left in one chunk
    that rechunk tasks split on a worker and send to the others (``score``
    of 16 row chunks held on a 2-worker cluster: 0.36 s with the labels as
    NumPy, 0.27 s as a persisted Dask array).  A Dask `t` stays as it is,
    for unify_chunks to match."""
    if isinstance(t, np.ndarray):
        return da.from_array(t, chunks=tuple(x.chunks[d] for d in t_ind))
    return t


def without_empty_chunks(x, axis):
    """`x` with no chunk of width 0 along `axis` (unless the axis is empty):
    the blocks of a split class axis find the labels in their classes by
    the first one, and the first of them checks the labels."""
    widths = x.chunks[axis]
    if 0 not in widths or len(widths) == 1:
        return x
    kept = tuple(c for c in widths if c) or (0,)
    return x.rechunk({axis: kept})
