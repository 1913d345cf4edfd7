"""The array zoo that every test module iterates over, and the comparison helpers.

``zoo()`` yields ``(description, array)`` pairs: every supported dtype, 0-d to
4-d, empty arrays and zero-length axes, rows with inf, -inf and NaN, rows of
only -inf, ties at the maximum, huge and tiny magnitudes, values whose exp
overflows or underflows unless shifted, and views that are Fortran-ordered,
strided, negatively strided, transposed, offset or read-only.  ``axes_for()``
gives every axis argument worth trying for a number of dimensions.
``layouts()`` gives an array in unusual memory layouts (memory maps,
misaligned data, zero strides) to compare with its contiguous copy.

Then the comparison helpers (``assert_close`` and its variants), the
promotion and scales the loss tests share, and hypothesis strategies.
"""

import contextlib
import itertools

import numpy as np

FLOAT_DTYPES = (np.float64, np.float32, np.float16)
INT_DTYPES = (np.int64, np.int32, np.int16, np.int8, np.uint8, np.uint16)
ALL_DTYPES = FLOAT_DTYPES + INT_DTYPES

SHAPES = [
    (),
    (1,), (2,), (3,), (7,), (8,), (9,), (33,), (100,),
    (1, 1), (1, 7), (7, 1), (3, 4), (4, 3), (5, 33), (33, 5),
    (2, 3, 4), (4, 1, 5),
    (2, 3, 1, 4), (3, 2, 2, 3),
]
EMPTY_SHAPES = [(0,), (0, 3), (3, 0), (0, 0), (2, 0, 3)]

INF, NAN = np.inf, np.nan
# each row one special case; used along axis 1 and, transposed, along axis 0
SPECIAL_ROWS = [
    [INF, 1.0, 2.0, 0.0, -1.0],
    [1.0, INF, INF, 0.0, -INF],
    [-INF, 1.0, -INF, 2.0, 0.5],
    [-INF, -INF, -INF, -INF, -INF],
    [NAN, 1.0, 2.0, 0.0, -1.0],
    [NAN, INF, -INF, 0.0, 1.0],
    [INF, -INF, -INF, -INF, -INF],
    [2.0, 2.0, 2.0, -1.0, 2.0],
    [0.0, -INF, -INF, -INF, -INF],
]

# (label, values) per float dtype: magnitudes at the edges of each dtype
EDGE_ROWS = {
    np.float64: [
        ("huge", [1e300, -1e300, 1e300, 0.0, 1.7e308]),
        ("tiny", [1e-300, 5e-324, 0.0, -1e-300, -5e-324]),
        ("exp overflows unshifted", [800.0, 799.0, 700.0, -5.0, 750.0]),
        ("exp underflows unshifted", [-800.0, -801.0, -1000.0, -745.0, -810.0]),
        ("subnormal softmax", [0.0, -720.0, -740.0, -700.0, -1.0]),
        ("near-zero result", [0.0, -40.0, -40.0, -60.0, -80.0]),
        ("mixed magnitudes", [1e10, 0.0, -1e10, 1e-10, 3.0]),
    ],
    np.float32: [
        ("huge", [3e38, -3e38, 1e30, 0.0, 3.4e38]),
        ("tiny", [1e-38, 1e-45, 0.0, -1e-38, -1e-45]),
        ("exp overflows unshifted", [100.0, 99.0, 95.0, -5.0, 90.0]),
        ("exp underflows unshifted", [-120.0, -121.0, -200.0, -104.0, -110.0]),
        ("subnormal softmax", [0.0, -90.0, -100.0, -87.0, -1.0]),
        ("near-zero result", [0.0, -20.0, -20.0, -30.0, -40.0]),
        ("mixed magnitudes", [1e10, 0.0, -1e10, 1e-10, 3.0]),
    ],
    np.float16: [
        ("huge", [6e4, -6e4, 65504.0, 0.0, 3e4]),
        ("tiny", [6e-5, 6e-8, 0.0, -6e-5, -6e-8]),
        ("exp overflows unshifted", [20.0, 12.0, 15.0, -5.0, 19.0]),
        ("exp underflows unshifted", [-20.0, -21.0, -30.0, -18.0, -25.0]),
        ("near-zero result", [0.0, -9.0, -9.0, -12.0, -15.0]),
        ("mixed magnitudes", [1e4, 0.0, -1e4, 1e-3, 3.0]),
    ],
}


def random_array(shape, dtype, rng):
    """Random values in `dtype`: normal with spread 3 for floats, small ints
    (with ties) for integers."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return (3 * rng.standard_normal(shape)).astype(dtype)
    low = 0 if dtype.kind == "u" else -5
    return rng.integers(low, low + 11, size=shape).astype(dtype)


def _layouts(base):
    """Views of `base` (2-d or 3-d) with unusual memory layouts."""
    readonly = base.copy()
    readonly.flags.writeable = False
    yield "C order", base
    yield "F order", np.asfortranarray(base)
    yield "read-only", readonly
    yield "transposed", base.T
    yield "negative stride axis 0", base[::-1]
    yield "negative stride last axis", base[..., ::-2]
    yield "strided", base[::2, ..., ::3]
    yield "offset", base[1:, ..., 2:]
    if base.ndim == 3:
        yield "swapped axes", np.swapaxes(base, 0, 2)
        yield "strided middle", base[:, ::2]
    flat = base.ravel()
    yield "1-d negative stride", flat[::-1]
    yield "1-d strided", flat[::3]


def misaligned(a):
    """A copy of `a` whose data starts one byte past an aligned address."""
    buf = np.empty(a.nbytes + 1, np.uint8)
    view = np.frombuffer(buf.data, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    view[...] = a
    return view


def memmap_copy(arr, path, mode="r"):
    """`arr` written to the file `path` and mapped back as an ``np.memmap``
    opened in `mode` ('r' read-only, 'c' copy-on-write)."""
    mm = np.memmap(path, dtype=arr.dtype, mode="w+", shape=arr.shape)
    mm[...] = arr
    mm.flush()
    del mm
    return np.memmap(path, dtype=arr.dtype, mode=mode, shape=arr.shape)


_MEMMAP_NUMBERS = itertools.count()


def layouts(base, tmp_path=None):
    """``(label, array)``: `base` (2-d or 3-d) as views and copies with the
    same values in unusual memory layouts, to compare with a contiguous copy.

    The labels depend only on `base`'s dtype and number of dimensions, so that
    the layouts of two bases of the same kind can be zipped.  With `tmp_path`
    (a folder) also read-only and copy-on-write memory maps of files in it.
    """
    readonly = base.copy()
    readonly.flags.writeable = False
    yield "F order", np.asfortranarray(base)
    yield "read-only", readonly
    if tmp_path is not None:
        path = tmp_path / f"memmap-{next(_MEMMAP_NUMBERS)}-{base.dtype.name}-{base.ndim}.dat"
        yield "memmap read-only", memmap_copy(base, path)
        yield "memmap copy-on-write", np.memmap(path, dtype=base.dtype, mode="c",
                                                shape=base.shape)
    yield "transposed", base.T
    yield "negative strides", base[::-1, ::-1]
    yield "strided", base[::2, ::3]
    yield "strided, negative", base[::-3, ::-2]
    yield "offset", base[1:, 2:]
    yield "broadcast (zero stride)", np.broadcast_to(base[:1], base.shape)
    if base.dtype.itemsize > 1:
        yield "misaligned", misaligned(base)
    yield "1-d strided", base.ravel()[::7]
    yield "1-d negative stride", base.ravel()[::-1]
    if base.ndim == 3:
        yield "swapped axes", np.swapaxes(base, 0, 2)
        yield "middle axis strided", base[:, ::2, :]


def zoo(dtypes=ALL_DTYPES, *, special=True, empty=True, seed=20240611):
    """Yield ``(description, array)`` for each array of the zoo.

    Parameters
    ----------
    dtypes : sequence of dtypes
        Which dtypes to generate.
    special : bool
        Include inf, -inf and NaN rows and magnitudes at the dtype's edges
        (floats only).
    empty : bool
        Include arrays with a zero-length dimension.
    seed : int
        Seed of the random values; the zoo is the same on every call.
    """
    rng = np.random.default_rng(seed)
    for dtype in dtypes:
        dtype = np.dtype(dtype)
        name = dtype.name
        for shape in SHAPES:
            yield f"{name} random {shape}", random_array(shape, dtype, rng)
        if empty:
            for shape in EMPTY_SHAPES:
                yield f"{name} empty {shape}", np.zeros(shape, dtype)
        ties = np.array([[1, 1, 1, 0], [0, 0, 0, 0], [5, 5, -1, 5]])
        if dtype.kind == "u":
            ties = ties + 1
        yield f"{name} ties at the max", ties.astype(dtype)
        yield f"{name} constant", np.full((3, 5), 2, dtype)
        for label, arr in _layouts(random_array((6, 10), dtype, rng)):
            yield f"{name} (6, 10) {label}", arr
        for label, arr in _layouts(random_array((4, 5, 6), dtype, rng)):
            yield f"{name} (4, 5, 6) {label}", arr
        if special and dtype.kind == "f":
            rows = np.array(SPECIAL_ROWS, dtype=dtype)
            yield f"{name} special rows", rows
            yield f"{name} special columns", np.ascontiguousarray(rows.T)
            yield f"{name} special rows, transposed view", rows.T
            for label, values in EDGE_ROWS[dtype.type]:
                row = np.array(values, dtype=dtype)
                yield f"{name} {label}", row
                yield f"{name} {label}, 2-d", np.stack([row, row[::-1], np.roll(row, 2)])


def float_zoo(**kwargs):
    """The zoo restricted to floating dtypes."""
    kwargs.setdefault("dtypes", FLOAT_DTYPES)
    return zoo(**kwargs)


def axes_for(ndim):
    """Every axis argument worth testing for `ndim` dimensions: None, each
    int, each negative int, and tuples (pairs, mixed signs, all axes)."""
    axes = [None]
    axes += list(range(ndim)) + list(range(-ndim, 0))
    if ndim >= 2:
        axes += [(0, 1), (-1, 0), tuple(range(ndim))]
    if ndim >= 3:
        axes += [(0, 2), (1, 2), (-1, -2)]
    if ndim >= 4:
        axes += [(1, 3), (0, 2, 3)]
    unique = []
    for axis in axes:
        if axis not in unique:
            unique.append(axis)
    return unique


def reduced_is_empty(arr, axis):
    """True if the reduction of `arr` over `axis` has zero-length input."""
    if axis is None:
        return arr.size == 0
    axes = axis if isinstance(axis, tuple) else (axis,)
    return any(arr.shape[a] == 0 for a in axes)


def is_finite_input(arr):
    return bool(np.all(np.isfinite(arr))) if arr.dtype.kind == "f" else True


# ---------------------------------------------------------------------------
# comparison helpers

def result_dtype(func, dtype):
    """The floating dtype of the result of `func` on input of `dtype`."""
    dtype = np.dtype(dtype)
    if func == "logsumexp":
        return np.result_type(dtype, 1.0)
    return np.exp(np.zeros(0, dtype)).dtype


def magnitude(arr):
    """max(1, largest finite |value|) of `arr`: the scale of the absolute
    rounding error of a shifted reduction."""
    values = np.asarray(arr, dtype=np.float64)
    finite = np.abs(values[np.isfinite(values)])
    return max(1.0, float(finite.max())) if finite.size else 1.0


def bad_grad_outs():
    """``(label, grad_out)`` that a loss must refuse for an input of shape
    (3, 4) in float64: wrong shape or dtype, read-only, not an array."""
    readonly = np.empty((3, 4))
    readonly.flags.writeable = False
    return [("wrong shape", np.empty((4, 3))), ("too big", np.empty((3, 4, 1))),
            ("wrong dtype", np.empty((3, 4), np.float32)),
            ("integer", np.empty((3, 4), np.int64)),
            ("read-only", readonly), ("a list", np.zeros((3, 4)).tolist())]


def eps_scale(*arrays):
    """64 float64 ulp of the largest magnitude of `arrays`: rounding of a few
    sums."""
    values = np.concatenate([np.ravel(a) for a in arrays])
    return 64 * np.finfo(np.float64).eps * magnitude(values)


def torch_result_dtype(x, t):
    """PyTorch's promotion for a loss of input `x` and target `t`: their
    common dtype with a floating target, else the input's dtype."""
    x, t = np.asarray(x), np.asarray(t)
    return np.result_type(x, t) if t.dtype.kind == "f" else x.dtype


def as_result(arr, dtype):
    """`arr` rounded to `dtype`; a 0-d array becomes a NumPy scalar."""
    with np.errstate(over="ignore"):
        arr = np.asarray(arr).astype(dtype)
    return arr[()] if arr.ndim == 0 else arr


# relative tolerance by result dtype: float64 about 450 ulp but far below any
# real error; float32 about 8 ulp; float16 one rounding of the float32 value
RTOL = {np.float64: 1e-13, np.float32: 1e-6, np.float16: 1e-3}
# SciPy computes float16 in float16 (fastxent in float32)
RTOL_SCIPY = {np.float64: 1e-13, np.float32: 1e-6, np.float16: 4e-3}


def tolerance(func, dtype, arr, *, peer="reference"):
    """``(rtol, atol)`` for comparing `func` (a name) in result `dtype` with
    `peer` on input `arr`.

    ``atol`` allows the absolute rounding error of a shifted computation
    (``eps * |max|``) where a result is near zero by cancellation; softmax
    values below the smallest normal number may be flushed to zero.
    """
    dtype = np.dtype(dtype)
    finfo = np.finfo(dtype)
    rtol = (RTOL_SCIPY if peer == "scipy" else RTOL)[dtype.type]
    if func == "softmax":
        return rtol, float(finfo.tiny)
    factor = 16 if dtype == np.float16 and peer == "scipy" else 8
    return rtol, factor * float(finfo.eps) * magnitude(arr)


def assert_close(got, want, *, rtol, atol=0.0, err_msg="", check_type=True):
    """`got` has the type (ndarray or NumPy scalar), dtype and shape of
    `want` (the type and dtype only if `check_type`), NaN and infinities at
    the same places (infinities of the same sign), and ``|got - want| <=
    rtol * |want| + atol`` elsewhere; `atol` may be an array (elementwise)."""
    g, w = np.asarray(got), np.asarray(want)
    if check_type:
        assert type(got) is type(want), (
            f"{err_msg}: returned {type(got).__name__}, expected {type(want).__name__}")
        assert g.dtype == w.dtype, f"{err_msg}: dtype {g.dtype}, expected {w.dtype}"
    assert g.shape == w.shape, f"{err_msg}: shape {g.shape}, expected {w.shape}"
    g64, w64 = g.astype(np.float64), w.astype(np.float64)
    nan_g, nan_w = np.isnan(g64), np.isnan(w64)
    assert np.array_equal(nan_g, nan_w), (
        f"{err_msg}: NaN at {np.argwhere(nan_g).tolist()}, expected at "
        f"{np.argwhere(nan_w).tolist()}\n got {g64}\nwant {w64}")
    inf_g, inf_w = np.isinf(g64), np.isinf(w64)
    assert np.array_equal(inf_g, inf_w) and np.array_equal(g64[inf_w], w64[inf_w]), (
        f"{err_msg}: infinities differ\n got {g64}\nwant {w64}")
    tols = f"rtol={rtol}" + (f", atol={atol}" if np.ndim(atol) == 0 else "")
    atol = np.broadcast_to(np.asarray(atol, dtype=np.float64), w64.shape)
    ok = np.isfinite(w64)
    err = np.abs(g64[ok] - w64[ok])
    bad = err > rtol * np.abs(w64[ok]) + atol[ok]
    if bad.any():
        raise AssertionError(
            f"{err_msg}: {bad.sum()} of {bad.size} values out of tolerance ({tols}), "
            f"e.g. got {g64[ok][bad][:4].tolist()} want {w64[ok][bad][:4].tolist()}, "
            f"|diff| {err[bad][:4].tolist()}")


def assert_result(actual, desired, *, rtol, atol, err_msg=""):
    """`actual` has the type (ndarray or NumPy scalar), dtype and shape of
    `desired`, the same NaN and inf positions and values within tolerance
    (:func:`assert_close`).  Pairs (logsumexp with ``return_sign``) are
    compared item by item, the signs exactly."""
    if isinstance(desired, tuple):
        assert isinstance(actual, tuple), f"{err_msg}: expected a pair, got {type(actual)}"
        assert len(actual) == len(desired), err_msg
        assert_result(actual[0], desired[0], rtol=rtol, atol=atol, err_msg=err_msg)
        assert_result(actual[1], desired[1], rtol=0, atol=0, err_msg=err_msg + " (sign)")
        return
    assert_close(actual, desired, rtol=rtol, atol=atol, err_msg=err_msg)


def assert_agree_scaled(got, want, scale, dtype, err_msg=""):
    """Two evaluations in `dtype` that may round differently: within a few
    ulp of the result (4 eps relative) and of the magnitudes it is computed
    from (4 eps times `scale`, a number or elementwise)."""
    eps = float(np.finfo(dtype).eps)
    assert_close(got, want, rtol=4 * eps, atol=4 * eps * scale, err_msg=err_msg)


def assert_bitwise_equal(actual, desired, err_msg=""):
    """Same type, dtype, shape and bytes (NaNs included)."""
    if isinstance(desired, tuple):
        assert isinstance(actual, tuple) and len(actual) == len(desired), err_msg
        for x, y in zip(actual, desired):
            assert_bitwise_equal(x, y, err_msg)
        return
    assert type(actual) is type(desired), err_msg
    a, d = np.asarray(actual), np.asarray(desired)
    assert a.dtype == d.dtype and a.shape == d.shape, err_msg
    if a.tobytes() != d.tobytes():
        diff = np.flatnonzero(a.ravel() != d.ravel())
        raise AssertionError(
            f"{err_msg}: {diff.size} of {a.size} elements differ in their bits, "
            f"first at flat index {diff[:5]}: {a.ravel()[diff[:5]]} vs {d.ravel()[diff[:5]]}"
        )


def outcome(func, *args, **kwargs):
    """``(result, None)`` or ``(None, exception)`` of ``func(*args, **kwargs)``."""
    try:
        return func(*args, **kwargs), None
    except Exception as exc:  # noqa: BLE001 - the caller compares the type
        return None, exc


def assert_same_outcome(actual, expected, *, rtol, atol, err_msg=""):
    """Compare two ``outcome()`` pairs: the same exception type, or results
    that pass :func:`assert_result`."""
    (result, exc), (want, want_exc) = actual, expected
    if want_exc is not None:
        assert exc is not None, (
            f"{err_msg}: expected {type(want_exc).__name__}({want_exc}), got a result {result!r}"
        )
        assert isinstance(exc, type(want_exc)), (
            f"{err_msg}: raised {type(exc).__name__}({exc}), "
            f"expected {type(want_exc).__name__}({want_exc})"
        )
        return
    assert exc is None, f"{err_msg}: raised {type(exc).__name__}: {exc}"
    assert_result(result, want, rtol=rtol, atol=atol, err_msg=err_msg)


class Failures:
    """Collect the failing cases of a loop over the zoo and report them all
    at the end (the first few in full), instead of stopping at the first."""

    def __init__(self, shown=12):
        self.items = []
        self.count = 0
        self.shown = shown

    @contextlib.contextmanager
    def case(self, label):
        self.count += 1
        try:
            yield
        except AssertionError as exc:
            self.items.append(f"[{label}] {exc}".strip())

    def check(self):
        if self.items:
            shown = "\n\n".join(self.items[: self.shown])
            raise AssertionError(
                f"{len(self.items)} of {self.count} cases failed; the first ones:\n\n{shown}"
            )


def assert_agree(got, want, x, name, err_msg=""):
    """Results of two code paths (CPU paths, memory layouts) that round
    differently: float64 within 4 ulp (8 for softmax, whose divisor is a sum
    rounded in path-dependent order on top of the exp), float32 within 1e-6
    relative, float16 within one ulp; plus the absolute rounding error of a shifted computation (eps *
    |max|) where a result is near zero by cancellation; below the smallest
    normal number softmax may flush to zero. NaN and inf positions equal."""
    if isinstance(want, tuple):
        assert_agree(got[0], want[0], x, name, err_msg)
        assert_bitwise_equal(got[1], want[1], err_msg + " (sign)")
        return
    assert type(got) is type(want), err_msg
    g, w = np.asarray(got), np.asarray(want)
    assert g.dtype == w.dtype and g.shape == w.shape, err_msg
    finfo = np.finfo(w.dtype)
    g64, w64 = g.astype(np.float64), w.astype(np.float64)
    np.testing.assert_array_equal(np.isnan(g64), np.isnan(w64), err_msg=err_msg + " (NaN)")
    inf = np.isinf(w64)
    np.testing.assert_array_equal(g64[inf], w64[inf], err_msg=err_msg + " (inf)")
    np.testing.assert_array_equal(np.isinf(g64), inf, err_msg=err_msg + " (inf)")
    ok = np.isfinite(w64)
    big = np.maximum(np.abs(g64[ok]), np.abs(w64[ok]))
    if w.dtype == np.float32:
        tol = 1e-6 * big
    else:
        k = (8 if name == "softmax" else 4) if w.dtype == np.float64 else 1
        with np.errstate(over="ignore"):  # spacing of float16 max is inf
            tol = k * np.spacing(big.astype(w.dtype)).astype(np.float64)
    floor = float(finfo.tiny) if name == "softmax" else 4 * float(finfo.eps) * magnitude(x)
    err = np.abs(g64[ok] - w64[ok])
    bad = err > tol + floor
    if bad.any():
        ulp = err[bad] / np.spacing(big[bad].astype(w.dtype)).astype(np.float64)
        raise AssertionError(
            f"{err_msg}: {bad.sum()} of {err.size} values differ beyond tolerance, by up to "
            f"{ulp.max():.1f} ulp, e.g. {g64[ok][bad][:3].tolist()} vs {w64[ok][bad][:3].tolist()}"
        )


def assert_labels_equal_one_hot(cross_entropy, x, t, *, label_smoothing, reduction, weighted):
    """`cross_entropy` (a function with PyTorch's arguments) of logits `x`
    (n, c) against class labels `t` equals that against the one-hot
    probability targets, loss and gradient.  With weights, 'mean' divides by
    the summed weights of the target classes rather than the number of rows."""
    n, c = x.shape
    weight = np.linspace(0.5, 2.0, c) if weighted else None
    onehot = np.eye(c)[t]
    got = cross_entropy(x, t, weight=weight, reduction=reduction,
                        label_smoothing=label_smoothing, return_grad=True)
    want = cross_entropy(x, onehot, weight=weight, reduction=reduction,
                         label_smoothing=label_smoothing, return_grad=True)
    if weighted and reduction == "mean":
        w_sum = np.sum(weight[t])
        want = (want[0] * n / w_sum, want[1] * n / w_sum)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12, atol=eps_scale(x))
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12, atol=eps_scale(x))


# ---------------------------------------------------------------------------
# hypothesis strategies (hypothesis is optional: without it they are None)

try:
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError:
    logit_pairs = None
else:
    @st.composite
    def logit_pairs(draw, minus_inf_in_q=False):
        """(p logits, q logits) of shape (n, c), n up to 4, c up to 7, in
        [-30, 30], with -inf entries (in the q logits only if asked); column
        0 finite in both, so that every row has a softmax."""
        n = draw(st.integers(1, 4))
        c = draw(st.integers(1, 7))
        elements = st.one_of(st.floats(-30, 30), st.just(-INF))
        x = draw(hnp.arrays(np.float64, (n, c), elements=elements))
        y = draw(hnp.arrays(np.float64, (n, c),
                            elements=elements if minus_inf_in_q else st.floats(-30, 30)))
        x[:, 0] = np.where(np.isinf(x[:, 0]), 0.0, x[:, 0])
        y[:, 0] = np.where(np.isinf(y[:, 0]), 0.0, y[:, 0])
        return x, y
