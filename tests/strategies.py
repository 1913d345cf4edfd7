"""Hypothesis strategies for the differential fuzz test, one per kind of operand.

* shapes: 0-d to 4-d with empty dimensions, many short rows (the transposed
  short-row kernels), one long axis (the blocked kernels), and the
  ``(C,)``, ``(N, C)``, ``(N, C, d1, ...)`` layouts of the class losses;
* values: logits, probabilities, class labels and weights, each with its
  special values (inf, -inf, NaN, ties, magnitudes at the edges of the dtype,
  rows of only -inf);
* layouts of an input operand: C, Fortran, sliced strides, negative strides,
  offset, broadcast (stride 0), misaligned (a view one byte into a buffer),
  a packed record field (strides that are not a multiple of the itemsize),
  byte-swapped and read-only;
* output arrays (``out=``, ``grad_out=``) in the layouts a caller may pass,
  valid (including misaligned and packed record fields, filled through an
  aligned array) or not (read-only, byte-swapped).

Values come from NumPy's generator seeded by hypothesis, with the profile
(spread, special values and where they go) drawn by hypothesis: large arrays
cost little to draw, and a failure replays from the printed seed.

Every strided, offset, misaligned and record layout is a view into a byte
buffer (an "arena") filled with 0xFF bytes (NaN for floats, -1 or the
largest value for integers) around the operand, so that a kernel that reads
past an operand sees garbage and one that writes past it is caught:
:class:`Operand` remembers the arena and checks that nothing in it changed
(inputs) or that nothing outside the operand changed (outputs).
"""

import numpy as np
from hypothesis import strategies as st

FLOAT_DTYPES = (np.float64, np.float32, np.float16)
INT_DTYPES = (np.int64, np.int32, np.int16, np.int8, np.uint8, np.uint16, np.uint32, np.uint64)
INF, NAN = np.inf, np.nan

# magnitudes at the edges of each float dtype, and values whose exp
# overflows or underflows unless shifted
EDGES = {
    np.float64: [1e300, -1e300, 1.7e308, -1.7e308, 1e-300, 5e-324, -5e-324, 800.0, -800.0,
                 709.0, -745.0, 1e10, -1e10, 40.0, -40.0],
    np.float32: [3e38, -3e38, 3.4e38, 1e-38, 1e-45, -1e-45, 100.0, -120.0, 88.0, -104.0,
                 1e10, -1e10, 20.0, -20.0],
    np.float16: [6e4, -6e4, 65504.0, -65504.0, 6e-5, 6e-8, -6e-8, 12.0, -18.0, 11.0,
                 1e4, -1e4, 9.0, -9.0],
}
SPECIALS = np.array([INF, -INF, NAN])
GARBAGE = 0xFF  # the byte the arenas are filled with


# ---------------------------------------------------------------------------
# shapes

@st.composite
def shapes(draw, min_dims=0, max_dims=4):
    """Small shapes with empty dimensions; many short rows ``(N >= 64, C <=
    16)``; or one long axis (up to 3000) with small others."""
    kind = draw(st.sampled_from(["small", "small", "small", "short rows", "long"]))
    if kind == "short rows" and max_dims >= 2:
        shape = (draw(st.integers(64, 200)), draw(st.integers(1, 16)))
        if max_dims >= 3 and draw(st.booleans()):
            shape = shape + (draw(st.integers(1, 3)),)
        return shape[:max(min_dims, len(shape))]
    shape = draw(st.lists(st.integers(0, 6) | st.integers(1, 3), min_size=min_dims,
                          max_size=max_dims).map(tuple))
    if kind == "long" and shape:
        i = draw(st.integers(0, len(shape) - 1))
        others = int(np.prod([n for j, n in enumerate(shape) if j != i]))
        long_side = draw(st.sampled_from([17, 65, 300, 2049, 3000]))
        shape = shape[:i] + (max(1, min(long_side, 6000 // max(others, 1))),) + shape[i + 1:]
    return shape


@st.composite
def class_shapes(draw):
    """Shapes of class-loss inputs: ``(C,)``, ``(N, C)`` or ``(N, C, d1,
    ...)``, the classes on axis 1 (axis 0 unbatched); C may be 0 or long."""
    kind = draw(st.sampled_from(["unbatched", "rows", "rows", "short rows", "spatial", "long"]))
    c = draw(st.integers(0, 7))
    if kind == "unbatched":
        return (c,)
    if kind == "short rows":
        return (draw(st.integers(64, 200)), draw(st.integers(1, 16)))
    if kind == "long":
        return (draw(st.integers(1, 3)), draw(st.sampled_from([17, 300, 2049, 2500])))
    n = draw(st.integers(0, 6))
    if kind == "rows":
        return (n, c)
    return (n, c) + tuple(draw(st.lists(st.integers(0, 4), min_size=1, max_size=2)))


def broadcastable_to(shape):
    """Shapes that broadcast to `shape`: leading dims dropped, others set to 1."""
    @st.composite
    def strategy(draw):
        drop = draw(st.integers(0, len(shape)))
        kept = shape[drop:]
        return tuple(1 if draw(st.integers(0, 3)) == 0 else n for n in kept)
    return strategy()


@st.composite
def mutually_broadcastable(draw, shape):
    """Two shapes that broadcast together to `shape`."""
    first = draw(st.sampled_from(["same", "same", "first", "second"]))
    other = draw(broadcastable_to(shape))
    if first == "same":
        return shape, shape
    return (shape, other) if first == "first" else (other, shape)


# ---------------------------------------------------------------------------
# values

def _rng(draw):
    return np.random.default_rng(draw(st.integers(0, 2**32 - 1)))


def _inject(draw, rng, a, values, name):
    """Put `values` (cycled) at a drawn fraction of the positions of `a`."""
    frac = draw(st.sampled_from([0.0, 0.05, 0.3]).map(float), label=name)
    a = np.array(a)  # a NumPy scalar (0-d arithmetic) as an array
    if a.size and frac:
        where = rng.random(a.shape) < frac
        a[where] = rng.choice(values, size=int(where.sum()))
    return a


@st.composite
def logits(draw, shape, dtypes=FLOAT_DTYPES, specials=True, row_axis=None):
    """Logits of `shape` in a drawn dtype: normal of a drawn spread, small
    integers (ties), one dominating element per row (results near zero),
    the dtype's edge magnitudes; then inf, -inf and NaN, and slices of only
    -inf along `row_axis` (or a drawn axis)."""
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    rng = _rng(draw)
    if dtype.kind == "b":
        return np.array(rng.random(shape) < 0.5)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        low, high = (0, 11) if dtype.kind == "u" else (-5, 6)
        if draw(st.booleans()):  # the dtype's extremes too
            low, high = max(info.min, -2**62), min(info.max, 2**62)
        return np.array(rng.integers(low, high, size=shape, endpoint=True), dtype=dtype)
    profile = draw(st.sampled_from(["normal", "ties", "dominating", "edges"]))
    if profile == "normal":
        spread = draw(st.sampled_from([0.01, 3.0, 30.0, 1e3]))
        a = spread * rng.standard_normal(shape)
    elif profile == "ties":
        a = rng.integers(-2, 3, size=shape).astype(np.float64)
    elif profile == "dominating":
        a = rng.standard_normal(shape) - 60.0 * (rng.random(shape) < 0.9)
    else:
        a = rng.choice(EDGES[dtype.type] + [0.0, 1.0, -1.0], size=shape)
    with np.errstate(over="ignore"):
        a = np.asarray(a).astype(dtype)
    if specials:
        a = _inject(draw, rng, a, SPECIALS, "special fraction")
        if a.ndim and a.size and draw(st.integers(0, 3)) == 0:
            # rows of only -inf along the class axis (or a drawn one)
            axis = row_axis if row_axis is not None else draw(st.integers(0, a.ndim - 1))
            rows = np.moveaxis(a, axis, -1)
            rows[rng.random(rows.shape[:-1]) < 0.5] = -INF
    return a


@st.composite
def probabilities(draw, shape, dtypes=FLOAT_DTYPES, specials=True, normalized_axis=None):
    """Non-negative values with exact zeros and ones, normalized along an
    axis if asked; integers and bools if `dtypes` has them; sometimes NaN,
    inf and negative values."""
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    rng = _rng(draw)
    if dtype.kind == "b":
        return np.array(rng.random(shape) < 0.6)
    if dtype.kind in "iu":
        return np.array(rng.integers(0, 6, size=shape), dtype=dtype)
    a = np.array(rng.random(shape) ** draw(st.sampled_from([1, 4])))
    a[rng.random(shape) < 0.2] = 0.0
    a[rng.random(shape) < 0.1] = 1.0
    if normalized_axis is not None and a.ndim and draw(st.booleans()):
        with np.errstate(all="ignore"):
            s = a.sum(axis=normalized_axis, keepdims=True)
            a = np.where(s > 0, a / np.where(s > 0, s, 1), a)
    scale = draw(st.sampled_from([1.0, 1.0, 1e-30, 1e30]))
    with np.errstate(over="ignore"):
        a = (a * scale).astype(dtype)
    if specials:
        a = _inject(draw, rng, a, np.array([NAN, INF, -0.5, 0.0]), "special fraction")
    return a


@st.composite
def labels(draw, shape, n_classes, ignore_index):
    """Class indices in [0, C) of a drawn integer dtype, some equal to
    `ignore_index` where the dtype holds it, rarely one out of range."""
    dtype = np.dtype(draw(st.sampled_from(INT_DTYPES)))
    rng = _rng(draw)
    t = np.array(rng.integers(0, max(n_classes, 1), size=shape))
    info = np.iinfo(dtype)
    if t.size and info.min <= ignore_index <= info.max:
        t[rng.random(shape) < draw(st.sampled_from([0.0, 0.3, 1.0]))] = ignore_index
    if n_classes == 0:  # only ignored labels are valid
        t = np.full(shape, ignore_index if info.min <= ignore_index <= info.max else 0)
    t = t.astype(dtype)
    if t.size and draw(st.integers(0, 9)) == 0:
        bad = draw(st.sampled_from([n_classes, -1, int(info.max)]))
        if info.min <= bad <= info.max and bad != ignore_index:
            t.reshape(-1)[draw(st.integers(0, t.size - 1))] = bad
    return t


@st.composite
def weights(draw, shape, dtypes=FLOAT_DTYPES + (np.int64, np.int32), specials=True):
    """Non-negative weights with exact zeros, of a drawn float or integer
    dtype; sometimes huge or tiny, rarely NaN or inf."""
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    rng = _rng(draw)
    if dtype.kind in "iu":
        return np.array(rng.integers(0, 4, size=shape), dtype=dtype)
    a = np.array(rng.random(shape) * draw(st.sampled_from([1.0, 3.0, 1e-20, 1e20])))
    a[rng.random(shape) < 0.2] = 0.0
    with np.errstate(over="ignore"):
        a = a.astype(dtype)
    if specials and draw(st.integers(0, 5)) == 0:
        a = _inject(draw, rng, a, np.array([NAN, INF]), "special fraction")
    return a


# ---------------------------------------------------------------------------
# layouts

class Operand:
    """An array in a drawn memory layout, with what the checks need: the
    `label` of the layout and the `arena` it is a view into (or None)."""

    def __init__(self, array, label, arena=None, mask=None):
        self.array = array
        self.label = label
        self.arena = arena
        self.mask = mask  # True at the arena's bytes that belong to the array
        self.before = None if arena is None else arena.copy()
        self.values = np.array(array, dtype=array.dtype.newbyteorder("="), order="C")

    def __repr__(self):
        return f"<{self.label} {self.array.dtype.str}{self.array.shape}>"

    def assert_unchanged(self, name):
        """An input: same values, and nothing in its arena changed."""
        now = np.array(self.array, dtype=self.array.dtype.newbyteorder("="))
        assert np.array_equal(now, self.values, equal_nan=now.dtype.kind == "f"), (
            f"{name} ({self.label}) was modified")
        if self.arena is not None:
            assert np.array_equal(self.arena, self.before), (
                f"{name} ({self.label}): bytes around it were modified")

    def assert_outside_unchanged(self, name):
        """An output: nothing in its arena outside the array changed."""
        if self.arena is not None:
            changed = (self.arena != self.before) & ~self.mask
            assert not changed.any(), (
                f"{name} ({self.label}): {int(changed.sum())} bytes outside it were written")


def _arena_view(shape, dtype, *, order="C", steps=None, flip=(), offset=0, elem=None):
    """A view of `shape` and `dtype` into a garbage-filled byte arena: the
    given order, per-axis steps (sliced strides), flipped axes (negative
    strides), byte offset (misaligned if not a multiple of the itemsize) and
    element pitch (a packed record field if larger than the itemsize)."""
    dtype = np.dtype(dtype)
    ndim = len(shape)
    steps = steps or (1,) * ndim
    elem = elem or dtype.itemsize
    padded = [max(n, 1) * k for n, k in zip(shape, steps)]
    strides = [0] * ndim
    acc = elem
    for i in (range(ndim - 1, -1, -1) if order == "C" else range(ndim)):
        strides[i] = acc * steps[i]
        acc *= padded[i]
    start = offset
    for i in flip:
        start += (max(shape[i], 1) - 1) * strides[i]
        strides[i] = -strides[i]
    nbytes = offset + acc + 64
    arena = np.full(nbytes, GARBAGE, np.uint8)
    view = np.ndarray(shape, dtype, buffer=arena, offset=start, strides=tuple(strides))
    marker = np.zeros(nbytes, np.uint8)
    np.ndarray(shape, np.dtype((np.uint8, (dtype.itemsize,))), buffer=marker, offset=start,
               strides=tuple(strides))[...] = 1
    return view, arena, marker.astype(bool)


INPUT_LAYOUTS = ("C", "C", "F", "strided", "negative", "offset", "broadcast", "misaligned",
                 "record field", "byte-swapped", "read-only", "F strided negative")


@st.composite
def laid_out(draw, values, layouts=INPUT_LAYOUTS):
    """`values` as an input :class:`Operand` in a drawn layout.  The
    broadcast layout repeats the first entry along some axes (so changes the
    values); the reference is given ``operand.values``."""
    values = np.asarray(values)
    shape, ndim = values.shape, values.ndim
    label = draw(st.sampled_from(layouts))
    if label == "broadcast":
        axes = [i for i, n in enumerate(shape) if n > 1]
        if not axes:
            label = "C"
        else:
            chosen = draw(st.lists(st.sampled_from(axes), min_size=1, unique=True))
            small = values[tuple(slice(0, 1) if i in chosen else slice(None)
                                 for i in range(ndim))]
            return Operand(np.broadcast_to(small, shape), label)
    if label == "byte-swapped":
        return Operand(values.astype(values.dtype.newbyteorder()), label)
    if label == "read-only":
        a = values.copy()
        a.flags.writeable = False
        return Operand(a, label)
    kw = {}
    flips = st.lists(st.integers(0, ndim - 1), unique=True, min_size=1) if ndim else st.just([])
    steps = st.lists(st.integers(1, 3), min_size=ndim, max_size=ndim).map(tuple)
    if label == "F":
        kw = dict(order="F")
    elif label == "strided":
        kw = dict(steps=draw(steps))
    elif label == "negative":
        kw = dict(flip=draw(flips))
    elif label == "offset":
        kw = dict(offset=values.dtype.itemsize * draw(st.integers(1, 3)))
    elif label == "misaligned":
        kw = dict(offset=1)
    elif label == "record field":
        kw = dict(offset=1, elem=values.dtype.itemsize + 1)
    elif label == "F strided negative":
        kw = dict(order="F", steps=draw(steps), flip=draw(flips))
    view, arena, mask = _arena_view(shape, values.dtype, **kw)
    view[...] = values
    return Operand(view, label, arena, mask)


# outputs: the valid layouts, then those a function must refuse (ValueError)
# (a misaligned output or a packed record field is filled through an aligned
# array, see README "Outputs"; its values are checked like any other's)
OUT_LAYOUTS = ("C", "F", "strided", "negative", "misaligned", "record field",
               "F strided negative")
BAD_OUT_LAYOUTS = ("read-only", "byte-swapped")


@st.composite
def outputs(draw, shape, dtype, *, bad=True):
    """An output array of `shape` and `dtype` as an :class:`Operand` (its
    entries garbage), or None for no output argument."""
    choices = ("none", "none") + OUT_LAYOUTS + (BAD_OUT_LAYOUTS if bad else ())
    label = draw(st.sampled_from(choices))
    if label == "none":
        return None
    dtype = np.dtype(dtype)
    garbage = np.full(shape, NAN if dtype.kind == "f" else -1, dtype)
    if label == "read-only":
        a = garbage.copy()
        a.flags.writeable = False
        return Operand(a, label)
    if label == "byte-swapped":
        return Operand(garbage.astype(dtype.newbyteorder()), label)
    op = draw(laid_out(garbage, layouts=(label,)))
    return op


def is_bad_output(op):
    """True for an output a function must refuse."""
    return op is not None and op.label in BAD_OUT_LAYOUTS


def n_threads():
    return st.sampled_from([None, None, 1, 2])
