"""fastxent.entropy against scipy.stats.entropy.

Axes (0, 1, -1, None, tuples), bases, ``qk`` broadcast against ``pk``,
integer and bool ``pk`` (float64, or float32 beside a float32 ``qk``),
float32 and float16 (kept as float16, where SciPy returns float32), mixed
dtypes promoted as SciPy promotes them, the special values of ``scipy.special.entr`` and
``rel_entr``, empty and all-zero slices, errors of SciPy's types, long rows
in float32 against float64, accuracy against mpmath, thread-count
independence and memory layouts.
"""
import itertools

import numpy as np
import pytest

import fastxent as fx
from arrays import Failures, assert_bitwise_equal, assert_close, layouts, memmap_copy
from fastxent import reference as rl

INF, NAN = np.inf, np.nan
# against SciPy: it computes float32 in float32, fastxent in float64 rounded once
RTOL = {np.float64: 1e-13, np.float32: 2e-6, np.float16: 2e-3}
# (pk shape, qk shape or None): equal shapes and broadcasting either way
SHAPES = [
    ((7,), None), ((4, 5), None), ((3, 4, 5), None), ((1,), None), ((5, 1), None),
    ((7,), (7,)), ((4, 5), (4, 5)), ((3, 4, 5), (3, 4, 5)),
    ((4, 5), (5,)), ((4, 5), (1, 5)), ((4, 5), (4, 1)), ((5,), (4, 5)), ((3, 1, 5), (4, 1)),
]
SHAPE_IDS = [f"{p}-{q}".replace(" ", "") for p, q in SHAPES]
BASES = (None, 2, 10.0, 0.5, np.e)


@pytest.fixture(scope="module")
def stats():
    return pytest.importorskip("scipy.stats")


def entropy_scale(pk, qk, axis, base):
    """Sum over the axis of the magnitudes of the terms (``|p log p|``, and
    ``|p log q|`` with `qk`), divided by ``|log base|``: the absolute
    rounding error of the result is a few eps times this."""
    arrays = [np.asarray(pk, dtype=np.float64)]
    if qk is not None:
        arrays.append(np.asarray(qk, dtype=np.float64))
    arrays = np.broadcast_arrays(*arrays)
    if axis is None:
        arrays, axis = [a.ravel() for a in arrays], 0
    arrays = [np.atleast_1d(a) for a in arrays]
    with np.errstate(all="ignore"):
        norm = [a / np.sum(a, axis=axis, keepdims=True) for a in arrays]
        p = np.abs(norm[0])
        s = np.abs(p * np.log(p))
        if qk is not None:
            s = s + np.abs(p * np.log(np.abs(norm[1])))
        s = np.sum(np.where(np.isfinite(s), s, 0.0), axis=axis)
        if base is not None:
            s = s / abs(np.log(base))
    return np.where(np.isfinite(s), s, 0.0)


def axes_for(ndim):
    return [None] + list(range(ndim)) + list(range(-ndim, 0)) if ndim else [None, 0]


def random_pk(rng, shape, dtype):
    """Non-negative values with exact zeros; integers 0..5 for integer dtypes."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        a = rng.random(shape) < 0.6
        a.reshape(-1)[::3] = True  # no all-False slices
        return a
    if dtype.kind in "iu":
        a = rng.integers(0, 6, size=shape)
        a.reshape(-1)[::3] = np.maximum(a.reshape(-1)[::3], 1)
        return a.astype(dtype)
    a = rng.random(shape) ** 2
    a[rng.random(shape) < 0.15] = 0.0
    return (a + 0.01 * (a.sum() == 0)).astype(dtype)


def scipy_entropy(stats, pk, qk=None, base=None, axis=0):
    """scipy.stats.entropy; with ``axis=None`` on arrays of different
    shapes, of the broadcast arrays (SciPy flattens each before it
    broadcasts, and refuses them; fastxent broadcasts first)."""
    if axis is None and qk is not None and np.shape(pk) != np.shape(qk):
        pk, qk = np.broadcast_arrays(np.asarray(pk), np.asarray(qk))
    with np.errstate(all="ignore"):
        return stats.entropy(pk, qk, base=base, axis=axis)


# ---------------------------------------------------------------------------
# against SciPy

@pytest.mark.parametrize("shapes", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_matches_scipy(stats, dtype, shapes):
    rng = np.random.default_rng(sum(map(len, filter(None, shapes))))
    p_shape, q_shape = shapes
    pk = random_pk(rng, p_shape, dtype)
    qk = None if q_shape is None else (random_pk(rng, q_shape, dtype) + 0.05).astype(dtype)
    ndim = np.broadcast_shapes(p_shape, q_shape or ()).__len__()
    failures = Failures()
    for axis, base in itertools.product(axes_for(ndim), BASES):
        label = f"pk {p_shape} qk {q_shape} {np.dtype(dtype).name} axis={axis} base={base}"
        with failures.case(label):
            want = scipy_entropy(stats, pk, qk, base=base, axis=axis)
            got = fx.entropy(pk, qk, base=base, axis=axis)
            rtol = RTOL[dtype]
            assert_close(got, want, rtol=rtol, atol=rtol * entropy_scale(pk, qk, axis, base),
                         err_msg=label)
    failures.check()


def test_default_arguments(stats):
    rng = np.random.default_rng(1)
    pk, qk = random_pk(rng, (4, 6), np.float64), random_pk(rng, (4, 6), np.float64) + 0.1
    assert_bitwise_equal(fx.entropy(pk), fx.entropy(pk, None, None, 0))
    assert_bitwise_equal(fx.entropy(pk, qk, 2), fx.entropy(pk, qk=qk, base=2, axis=0))
    assert_bitwise_equal(fx.entropy(pk, qk, None, 1), fx.entropy(pk, qk, axis=1))
    assert_close(fx.entropy(pk), stats.entropy(pk), rtol=1e-13)
    # numpy integers as axis and base, lists as data
    assert_bitwise_equal(fx.entropy(pk, axis=np.int64(-1)), fx.entropy(pk, axis=-1))
    assert_bitwise_equal(fx.entropy(pk, base=np.int32(2)), fx.entropy(pk, base=2))
    assert_bitwise_equal(fx.entropy(pk.tolist(), qk.tolist(), axis=1), fx.entropy(pk, qk, axis=1))


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.int8, np.uint8, np.uint16, bool],
                         ids=["int64", "int32", "int8", "uint8", "uint16", "bool"])
def test_integer_and_bool_pk_promote_as_scipy(stats, dtype):
    rng = np.random.default_rng(2)
    pk = random_pk(rng, (5, 6), dtype)
    for qk, axis, base in itertools.product((None, "int", "float32"), (0, 1, None), (None, 2)):
        if qk == "int":
            q = random_pk(rng, (5, 6), dtype) + (0 if dtype is bool else 1)
        elif qk == "float32":
            q = random_pk(rng, (5, 6), np.float32) + np.float32(0.1)
        else:
            q = None
        label = f"{np.dtype(dtype).name} qk {qk} axis={axis} base={base}"
        got = fx.entropy(pk, q, base=base, axis=axis)
        # as SciPy, the dtypes promote first: narrow integers with float32
        # give float32, wider ones float64
        want_dtype = np.float32 if qk == "float32" and np.dtype(dtype).itemsize < 4 \
            else np.float64
        assert np.asarray(got).dtype == want_dtype, label
        assert np.asarray(scipy_entropy(stats, pk, q, base=base, axis=axis)).dtype == want_dtype
        q64 = None if q is None else q.astype(np.float64)
        want = scipy_entropy(stats, pk.astype(np.float64), q64, base=base, axis=axis)
        rtol = 1e-13 if want_dtype == np.float64 else 2e-6
        assert_close(got.astype(np.float64), want, rtol=rtol,
                     atol=rtol * entropy_scale(pk, q, axis, base),
                     err_msg=label)
        if qk != "float32":
            assert_close(got, scipy_entropy(stats, pk, q, base=base, axis=axis), rtol=1e-13,
                         atol=1e-13 * entropy_scale(pk, q, axis, base), err_msg=label)


def test_axis_none_broadcasts_before_flattening(stats):
    """`qk` broadcast against `pk`, then both flattened (SciPy raises a
    ValueError here: it flattens each array before broadcasting)."""
    pk = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    qk = np.array([1.0, 1.0, 2.0])
    got = fx.entropy(pk, qk, axis=None)
    assert_close(got, stats.entropy(pk.ravel(), np.tile(qk, 2), axis=None), rtol=1e-14)
    assert_close(got, rl.entropy(pk, qk, axis=None), rtol=1e-15)
    with pytest.raises(ValueError):
        stats.entropy(pk, qk, axis=None)


def test_mixed_float_dtypes_promote():
    pk = np.array([1.0, 2.0, 3.0], np.float32)
    qk = np.array([3.0, 2.0, 1.0])
    assert type(fx.entropy(pk, qk)) is np.float64
    assert type(fx.entropy(pk.astype(np.float16), qk.astype(np.float32))) is np.float32
    assert type(fx.entropy(pk.astype(np.float16), [3, 2, 1])) is np.float64  # ints: float64
    assert type(fx.entropy(pk.astype(np.float16))) is np.float16
    assert type(fx.entropy(pk)) is np.float32
    assert_close(fx.entropy(pk, qk), rl.entropy(pk, qk), rtol=1e-15)


@pytest.mark.parametrize("shapes", [((7,), None), ((4, 5), None), ((3, 4, 5), None),
                                    ((4, 5), (4, 5)), ((4, 5), (5,))],
                         ids=["7", "4x5", "3x4x5", "4x5-4x5", "4x5-5"])
def test_float16_stays_float16(stats, shapes):
    """float16 is computed in float32 and rounded once to float16; SciPy
    computes it in float16 and returns float32: compared loosely."""
    rng = np.random.default_rng(3)
    p_shape, q_shape = shapes
    pk = random_pk(rng, p_shape, np.float16)
    qk = None if q_shape is None else (random_pk(rng, q_shape, np.float16) + 0.05).astype(
        np.float16)
    ndim = len(np.broadcast_shapes(p_shape, q_shape or ()))
    for axis, base in itertools.product(axes_for(ndim), (None, 2)):
        label = f"{shapes} axis={axis} base={base}"
        got = fx.entropy(pk, qk, base=base, axis=axis)
        assert np.asarray(got).dtype == np.float16, label
        scale = entropy_scale(pk, qk, axis, base)
        # SciPy on the float16 data (float16 arithmetic, a float32 result)
        want = scipy_entropy(stats, pk, qk, base=base, axis=axis)
        assert np.asarray(want).dtype == np.float32
        assert_close(got, want, rtol=4e-3, atol=4e-3 * scale, err_msg=label, check_type=False)
        # SciPy on the same values in float32, rounded once: one float16 rounding
        q32 = None if qk is None else qk.astype(np.float32)
        want32 = np.asarray(scipy_entropy(stats, pk.astype(np.float32), q32, base=base,
                                          axis=axis)).astype(np.float16)
        want32 = want32[()] if want32.ndim == 0 else want32
        assert_close(got, want32, rtol=2e-3, atol=1e-5 * scale, err_msg=label + " (float32)")


# ---------------------------------------------------------------------------
# special values

SPECIAL = [  # (pk, qk), each compared with SciPy, in float64
    ([1.0, 0.0, 3.0], None),
    ([0.0, 0.0, 0.0], None),                 # all zero: NaN
    ([1.0, -1.0, 3.0], None),                # a negative entry: -inf
    ([-1.0, -2.0], None),                    # normalizes to positive values
    ([1.0, NAN, 3.0], None),
    ([1.0, INF, 3.0], None),                 # inf / inf: NaN
    ([INF], None),
    ([1.0, 2.0, 3.0], [1.0, 0.0, 2.0]),      # p > 0 with q = 0: +inf
    ([1.0, 0.0, 3.0], [1.0, 0.0, 2.0]),      # p = 0 with q = 0: 0
    ([0.0, 0.0, 0.0], [1.0, 1.0, 1.0]),
    ([1.0, 2.0, 3.0], [0.0, 0.0, 0.0]),
    ([1.0, 2.0], [1e-320, 1.0]),             # a subnormal q
    ([1e-320, 1e-320], None),
    ([1e-320, 1.0], None),
    ([1.0, -1.0, 3.0], [1.0, 1.0, 1.0]),     # rel_entr of a negative p: +inf
    ([1.0, 2.0, 3.0], [1.0, -1.0, 3.0]),
    ([1.0, 2.0, 3.0], [1.0, NAN, 3.0]),
    ([1.0, 2.0, 3.0], [1.0, INF, 3.0]),
    ([], None),                              # an empty slice: 0
    ([], []),
    (5.0, None),                             # 0-d: one element
    (0.0, None),
    (5.0, 2.0),
    ([True, False], None),
    ([1, 2, 3], [3, 2, 1]),
    ([1e300, 1e-300, 1.0], None),
    ([1.0] * 7, None),
]


@pytest.mark.parametrize("pk, qk", SPECIAL, ids=[f"{p}-{q}" for p, q in SPECIAL])
def test_special_values_match_scipy(stats, pk, qk):
    for base in (None, 2):
        got = fx.entropy(pk, qk, base=base)
        want = scipy_entropy(stats, pk, qk, base=base)
        assert_close(got, want, rtol=1e-14, err_msg=f"{pk} {qk} base={base}")
        assert_close(got, rl.entropy(pk, qk, base=base), rtol=1e-14, err_msg="reference")


def test_special_slices_along_each_axis(stats):
    """Special values inside one slice of a 2-d array leave the other
    slices alone; along either axis, also transposed."""
    pk = np.array([[1.0, 0.0, 3.0, 2.0], [0.0, 0.0, 0.0, 0.0], [1.0, -1.0, 3.0, 1.0],
                   [1.0, NAN, 3.0, 1.0], [1.0, INF, 3.0, 1.0], [2.0, 2.0, 2.0, 2.0],
                   [1e-320, 1e-320, 0.0, 1.0]])
    qk = np.array([[1.0, 2.0, 0.0, 2.0], [1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0],
                   [1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0], [0.0, 1.0, 1.0, 1.0],
                   [1.0, 0.0, 1.0, 1.0]])
    for p, q, axis in [(pk, None, 1), (pk, qk, 1), (pk.T, None, 0), (pk.T, qk.T, 0),
                       (np.ascontiguousarray(pk.T), np.ascontiguousarray(qk.T), 0),
                       (pk, qk, -1), (pk, qk[5], 1), (pk.T, qk[5][:, None], 0)]:
        for base in (None, 2.0):
            label = f"{p.shape} qk={None if q is None else q.shape} axis={axis} base={base}"
            got = fx.entropy(p, q, base=base, axis=axis)
            want = scipy_entropy(stats, p, q, base=base, axis=axis)
            assert_close(got, want, rtol=1e-14, err_msg=label)
    rows = fx.entropy(pk, axis=1)
    assert np.isnan(rows[[1, 3, 4]]).all() and rows[2] == -INF
    assert rows[5] == pytest.approx(np.log(4), rel=1e-15)
    kl = fx.entropy(pk, qk, axis=1)
    assert kl[0] == INF and kl[5] == INF and kl[6] == INF
    assert fx.entropy(pk[5], pk[5]) == 0.0


@pytest.mark.parametrize("shape, axis", [((0,), 0), ((0, 3), 0), ((3, 0), 1), ((3, 0), 0),
                                         ((0, 3), 1), ((2, 0, 4), 1), ((0,), None),
                                         ((2, 0), None)])
def test_empty(stats, shape, axis):
    """An empty slice has entropy 0; no slices give an empty result."""
    for qk in (None, np.zeros(shape)):
        got = fx.entropy(np.zeros(shape), qk, axis=axis)
        want = scipy_entropy(stats, np.zeros(shape), qk, axis=axis)
        assert_close(got, want, rtol=0, err_msg=f"{shape} axis={axis}")
        np.testing.assert_array_equal(got, 0.0)


@pytest.mark.parametrize("axis", [(0, 1), (1, 2), (0, 2), (-1, 0), (2,), (0, 1, 2), ()])
def test_tuple_axes(stats, axis):
    """A tuple reduces its axes together, as SciPy does (``()``: every axis);
    with `qk` broadcast, in any layout, as the axes moved last and merged."""
    rng = np.random.default_rng(11)
    pk = rng.random((3, 4, 5))
    for qk in (None, rng.random((3, 4, 5)), rng.random((4, 1))):
        for p in (pk, np.asfortranarray(pk), pk[:, ::-1]):
            got = fx.entropy(p, qk, axis=axis)
            want = scipy_entropy(stats, p, qk, axis=axis)
            assert np.shape(got) == np.shape(want)
            assert_close(got, want, rtol=1e-13, err_msg=f"axis={axis}")
    if len(axis) == 1:
        assert_bitwise_equal(fx.entropy(pk, axis=axis), fx.entropy(pk, axis=axis[0]))


@pytest.mark.parametrize("shape, axis", [((0, 3, 2), (1, 2)), ((3, 0, 2), (0, 2)),
                                         ((2, 3, 0), (0, 1)), ((), (0,)), ((), ())])
def test_tuple_axes_of_empty_and_0d_input(stats, shape, axis):
    pk = np.ones(shape)
    got, want = fx.entropy(pk, axis=axis), scipy_entropy(stats, pk, axis=axis)
    assert np.shape(got) == np.shape(want)
    assert_close(got, want, rtol=0)


@pytest.mark.parametrize("axis, exc", [((1, 1), ValueError), ((0, 3), np.exceptions.AxisError),
                                       ((0, 1.0), TypeError)])
def test_tuple_axes_errors(stats, axis, exc):
    with pytest.raises(exc):
        scipy_entropy(stats, np.ones((2, 3, 4)), axis=axis)
    with pytest.raises(exc):
        fx.entropy(np.ones((2, 3, 4)), axis=axis)


@pytest.mark.parametrize("pdt, qdt", [("bool", "float32"), ("int8", "float32"),
                                      ("uint8", "float32"), ("int16", "float32"),
                                      ("float32", "int8"), ("int16", "float16"),
                                      ("int32", "float32"), ("uint8", "float64")])
def test_mixed_dtypes_promote_as_scipy(stats, pdt, qdt):
    """pk and qk promote first, then integers become float64: int8 with
    float32 is float32 (not float64), as in SciPy."""
    pk = np.array([1, 1, 0, 1], pdt)
    qk = np.array([1, 2, 3, 1], qdt)
    got, want = fx.entropy(pk, qk), scipy_entropy(stats, pk, qk)
    assert got.dtype == want.dtype
    assert_close(got, want, rtol=RTOL.get(want.dtype.type, 1e-13))


def test_base_as_a_0d_array(stats):
    for base in (np.array(2.0), np.array(10), np.float32(2.0)):
        assert_close(fx.entropy([1, 2, 3], base=base),
                     scipy_entropy(stats, [1, 2, 3], base=base), rtol=1e-15)


@pytest.mark.parametrize("kwargs, exc", [({"base": True}, TypeError),
                                         ({"axis": True}, TypeError),
                                         ({"axis": (np.True_,)}, TypeError),
                                         ({"base": np.nan}, ValueError),
                                         ({"base": np.array([2.0])}, TypeError)])
def test_bool_and_nan_arguments_refused(kwargs, exc):
    """Documented difference: SciPy takes True as 1 and returns NaN for a
    NaN base; fastxent refuses them, naming the argument."""
    with pytest.raises(exc, match="base|axis"):
        fx.entropy(np.ones((2, 3)), **kwargs)


def test_base_one_divides_by_zero(stats):
    for pk in ([1.0, 1.0], [1.0, 0.0], [0.0, 0.0]):
        assert_close(fx.entropy(pk, base=1), scipy_entropy(stats, pk, base=1), rtol=0)


def test_huge_sums_are_scaled():
    """Documented difference: a slice of finite values whose sum overflows
    is normalized after scaling (SciPy divides by inf and returns 0)."""
    assert fx.entropy([1e308, 1e308]) == pytest.approx(np.log(2), rel=1e-15)
    assert fx.entropy([1e308, 1e308], [1e308, 1e307]) == pytest.approx(
        rl.entropy([1e308, 1e308], [1e308, 1e307]), rel=1e-14)
    got = fx.entropy(np.array([[1e308, 1e308, 1e308], [1.0, 1.0, 1.0]]), axis=1)
    np.testing.assert_allclose(got, np.log(3), rtol=1e-15)
    assert fx.entropy(np.array([6e4, 6e4], np.float16)) == np.float16(np.log(2))
    assert fx.entropy(np.array([3e38, 3e38], np.float32)) == np.float32(np.log(2))


# ---------------------------------------------------------------------------
# errors

def test_errors(stats):
    for base in (0, -1.0, -0.5, 0.0):
        with pytest.raises(ValueError, match="base"):
            fx.entropy([1.0, 2.0], base=base)
        with pytest.raises(ValueError, match="base"):
            fx.entropy([1.0, 2.0], [2.0, 1.0], base=base)
        with pytest.raises(ValueError):
            stats.entropy([1.0, 2.0], base=base)
    for args in (([1 + 1j, 2],), ([1.0, 2.0], [1j, 2]),
                 (np.ones(3, np.complex64),), (np.ones(3), np.ones(3, np.complex128))):
        with pytest.raises(TypeError):
            fx.entropy(*args)
    with pytest.raises(TypeError):
        fx.entropy(["a", "b"])
    with pytest.raises(TypeError):
        fx.entropy([1.0, 2.0], ["a", "b"])
    for shape, axis in [((3, 4), 2), ((3, 4), -3), ((5,), 1), ((2, 3, 4), 3), ((), 1)]:
        with pytest.raises(np.exceptions.AxisError):
            fx.entropy(np.ones(shape), axis=axis)
        with pytest.raises(np.exceptions.AxisError):
            stats.entropy(np.ones(shape), axis=axis)
    for p_shape, q_shape in [((3, 4), (3,)), ((2,), (3,)), ((3, 4), (2, 4)), ((2, 3), (3, 2))]:
        with pytest.raises(ValueError):
            fx.entropy(np.ones(p_shape), np.ones(q_shape))
        with pytest.raises(ValueError):
            stats.entropy(np.ones(p_shape), np.ones(q_shape))


# ---------------------------------------------------------------------------
# long rows and accuracy

@pytest.mark.parametrize("shape, axis", [((300000,), 0), ((2, 300000), 1), ((300000, 2), 0),
                                         ((300, 1000), None)],
                         ids=["1d", "rows", "columns", "flattened"])
def test_long_rows_float32(stats, shape, axis):
    """float32 within 1e-6 relative of the float64 answer on the same values."""
    rng = np.random.default_rng(4)
    pk = (rng.random(shape) ** 3).astype(np.float32)
    pk[rng.random(shape) < 0.1] = 0
    qk = (rng.random(shape) + 0.01).astype(np.float32)
    for q in (None, qk):
        got = fx.entropy(pk, q, axis=axis)
        want = stats.entropy(pk.astype(np.float64), None if q is None else q.astype(np.float64),
                             axis=axis)
        assert np.asarray(got).dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-6, err_msg=f"qk={q is not None}")
    got = fx.entropy(pk.astype(np.float64), qk.astype(np.float64), axis=axis)
    np.testing.assert_allclose(got, stats.entropy(pk.astype(np.float64), qk.astype(np.float64),
                                                  axis=axis), rtol=1e-13)


MPMATH_CASES = [  # (pk, qk, base): well-conditioned sums
    ([1.0, 2.0, 3.0, 4.0], None, None),
    ([0.1, 0.2, 0.7], None, None),
    ([1.0] * 5, None, None),
    ([3.0, 1.0], None, 2),
    ([1.0, 1.0], None, 2),
    ([5.0, 0.0, 7.0], None, None),
    (list(range(1, 11)), None, 10),
    ([1e-300, 1.0, 2.0], None, None),
    ([0.3, 1e-5, 0.2], None, None),
    ([1.0, 2.0, 3.0], [3.0, 2.0, 1.0], None),
    ([0.25, 0.75], [0.5, 0.5], 2),
    ([1.0, 0.0, 1.0], [1.0, 1.0, 1.0], None),
    ([0.9, 0.1], [0.1, 0.9], None),
    ([1.0, 2.0, 3.0, 4.0], [4.0, 1.0, 1.0, 1.0], np.e),
    ([7.0, 1e-3, 2.0], [1.0, 1.0, 1e-6], None),
]


def exact_entropy(pk, qk, base):
    mpmath = pytest.importorskip("mpmath")
    with mpmath.workdps(60):
        p = [mpmath.mpf(float(v)) for v in pk]
        sp = sum(p)
        p = [v / sp for v in p]
        if qk is None:
            s = -sum(v * mpmath.log(v) for v in p if v > 0)
        else:
            q = [mpmath.mpf(float(v)) for v in qk]
            sq = sum(q)
            q = [v / sq for v in q]
            s = sum(a * mpmath.log(a / b) for a, b in zip(p, q) if a > 0)
        if base is not None:
            s = s / mpmath.log(mpmath.mpf(float(base)))
        return float(s)


@pytest.mark.parametrize("pk, qk, base", MPMATH_CASES,
                         ids=[f"{p}-{q}-{b}" for p, q, b in MPMATH_CASES])
def test_accuracy_against_mpmath(pk, qk, base):
    """float64 within about 4 ulp of the exact value."""
    want = exact_entropy(pk, qk, base)
    got = fx.entropy(pk, qk, base=base)
    assert type(got) is np.float64
    assert float(got) == pytest.approx(want, rel=1e-15, abs=1e-300), (
        f"entropy({pk}, {qk}, base={base}) = {float(got)!r}, exact {want!r}, "
        f"{abs(float(got) - want) / np.spacing(abs(want)):.1f} ulp")


# ---------------------------------------------------------------------------
# threads and layouts

@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16, np.int64],
                         ids=["float64", "float32", "float16", "int64"])
def test_results_do_not_depend_on_threads(dtype):
    rng = np.random.default_rng(5)
    pk = random_pk(rng, (300, 700), dtype)
    qk = (random_pk(rng, (300, 700), np.float64) + 0.01).astype(
        dtype if np.dtype(dtype).kind == "f" else np.float64)
    for q, axis, base in itertools.product((None, qk, qk[0]), (0, 1, -1, None), (None, 2)):
        if q is not None and q.ndim == 1 and axis == 0:
            continue
        one = fx.entropy(pk, q, base=base, axis=axis, n_threads=1)
        for n in (2, 3, None):
            assert_bitwise_equal(fx.entropy(pk, q, base=base, axis=axis, n_threads=n), one,
                                 f"qk={None if q is None else q.shape} axis={axis} n_threads={n}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16, np.int32],
                         ids=["float64", "float32", "float16", "int32"])
def test_layouts_match_contiguous_copies(dtype, tmp_path):
    rng = np.random.default_rng(6)
    bp = random_pk(rng, (37, 23), dtype)
    bq = random_pk(rng, (37, 23), dtype) + (1 if np.dtype(dtype).kind in "iu" else 0.05)
    bq = bq.astype(dtype)
    eps = float(np.finfo(bp.dtype if bp.dtype.kind == "f" else np.float64).eps)
    failures = Failures()
    for (label, p), (_, q) in zip(layouts(bp, tmp_path), layouts(bq, tmp_path)):
        pc, qc = np.array(p, order="C"), np.array(q, order="C")
        for (qq, qqc), axis, base in itertools.product(((None, None), (q, qc)),
                                                       axes_for(p.ndim), (None, 2)):
            case = f"{label} {np.dtype(dtype).name} qk={qq is not None} axis={axis} base={base}"
            with failures.case(case):
                want = fx.entropy(pc, qqc, base=base, axis=axis)
                for a, b in ((p, qqc), (pc, qq), (p, qq)):
                    got = fx.entropy(a, b, base=base, axis=axis)
                    assert_close(got, want, rtol=4 * eps,
                                 atol=4 * eps * entropy_scale(pc, qqc, axis, base), err_msg=case)
                np.testing.assert_array_equal(p, pc, err_msg="pk modified")
    failures.check()


def test_read_only_memory_map(tmp_path, stats):
    rng = np.random.default_rng(7)
    pk = random_pk(rng, (40, 30), np.float64)
    pm = memmap_copy(pk, tmp_path / "pk.dat")
    for a, copy in ((pm, pk), (pm[::3, ::-2], pk[::3, ::-2].copy())):
        for axis in (0, 1, None):
            got = fx.entropy(a, a[::-1], axis=axis)
            want = fx.entropy(copy, copy[::-1].copy(), axis=axis)
            assert type(got) is type(want)
            eps4 = 4 * float(np.finfo(np.float64).eps)
            assert_close(got, want, rtol=eps4,
                         atol=eps4 * entropy_scale(copy, copy[::-1], axis, None))
            assert_close(fx.entropy(a, axis=axis), stats.entropy(copy, axis=axis), rtol=1e-13)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_all_mass_in_one_element_is_exactly_zero(dtype):
    """A distribution with a single nonzero element has entropy exactly 0
    (its normalized value is exactly 1), as SciPy's division gives."""
    rng = np.random.default_rng(3)
    for n in (1, 2, 9, 40, 20000):
        pk = np.zeros((5, n), dtype)
        pk[np.arange(5), rng.integers(0, n, 5)] = rng.random(5).astype(dtype) * 7 + 0.1
        assert np.all(fx.entropy(pk, axis=1) == 0), n
        assert np.all(fx.entropy(pk.T, axis=0) == 0), n
    assert fx.entropy(np.array([0.3], dtype)) == 0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_subnormal_normalized_entries(dtype):
    """Entries whose normalized value p / S is subnormal, among normal ones
    in the same block of 256 (the kernels take the logarithm of normal
    values without its special cases and redo a block that holds a
    subnormal one): each term -r log r is normal, and the entropy, made of
    them alone next to one element of r = 1, is within a few ulp of the
    exact value (float32: r = 1e-39 holds about 20 bits); also as the first and last element of a row, and in the
    second block of a row."""
    tiny = {np.float64: 1e-310, np.float32: 1e-39}[dtype]
    n = 600
    rows = []
    for where in ([3], [0, 299], [257, 511, 599], list(range(5, 260, 7))):
        pk = np.zeros(n, dtype)
        pk[1 if 1 not in where else 2] = 1.0
        pk[where] = np.arange(1, len(where) + 1, dtype=dtype) * dtype(tiny)
        rows.append(pk)
    pk = np.stack(rows)
    got = fx.entropy(pk, axis=1)
    for row, g in zip(pk, got):
        mpmath = pytest.importorskip("mpmath")
        mpmath.mp.dps = 50
        vals = [mpmath.mpf(float(v)) for v in row]
        # the sum as the working precision holds it, as SciPy divides by it:
        # exactly 1, the tiny entries vanish in it
        total = mpmath.mpf(float(row.sum(dtype=np.float64).astype(dtype)))
        assert total == 1
        want = float(-sum((v / total) * mpmath.log(v / total) for v in vals if v > 0))
        assert want > 0
        ulps = abs(float(g) - want) / np.spacing(dtype(want))
        assert ulps <= 4, (row.nonzero(), float(g), want)

def test_relative_entropy_where_normalized_entries_underflow(stats):
    """Positive float32 entries whose p / S underflows to 0 (1e-39 against a
    sum of 1.3e29), in rows long and short and in columns: the row is
    computed in double, as SciPy computes it."""
    for n in (600, 12):
        pk = np.zeros(n, np.float32)
        pk[[3, n // 2, n - 1]] = 1e-39
        pk[[1, 5]] = [1e29, 3e28]
        qk = np.linspace(1.0, 2.0, n, dtype=np.float32)
        want = stats.entropy(pk.astype(np.float64), qk.astype(np.float64))
        got = fx.entropy(pk, qk)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=4e-7)
        rows = np.tile(pk, (3, 1))
        np.testing.assert_allclose(fx.entropy(rows, np.tile(qk, (3, 1)), axis=1), want,
                                   rtol=4e-7)
        np.testing.assert_allclose(fx.entropy(rows.T, np.tile(qk, (3, 1)).T, axis=0), want,
                                   rtol=4e-7)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("layout", ["short rows", "columns"])
def test_subnormal_normalized_entries_of_short_rows_and_columns(dtype, layout):
    """As above for the kernels of many short rows and of a strided axis
    (rows of 10 side by side as SIMD lanes): a row whose p / S is subnormal
    somewhere leaves the fast logarithm, and its entropy stays within a few
    ulp of the exact value, its neighbours unchanged."""
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 50
    tiny = {np.float64: 1e-310, np.float32: 1e-39}[dtype]
    rng = np.random.default_rng(12)
    pk = rng.random((200, 10)).astype(dtype)
    for r, where in ((3, [4]), (64, [0, 9]), (130, [1, 2, 3]), (199, [9])):
        pk[r] = 0
        pk[r, 5 if 5 not in where else 6] = 1.0
        pk[r, where] = np.arange(1, len(where) + 1, dtype=dtype) * dtype(tiny)
    got = fx.entropy(pk, axis=1) if layout == "short rows" else fx.entropy(np.ascontiguousarray(pk.T), axis=0)
    for r in range(200):
        vals = [mpmath.mpf(float(v)) for v in pk[r]]
        total = mpmath.mpf(float(pk[r].sum(dtype=np.float64).astype(dtype)))
        want = float(-sum((v / total) * mpmath.log(v / total) for v in vals if v > 0))
        ulps = abs(float(got[r]) - want) / np.spacing(dtype(want))
        assert ulps <= 4, (layout, r, float(got[r]), want)


@pytest.mark.parametrize("strides", [(8, 8, 16), (8, 16, 8)])
def test_empty_reduced_axis_in_a_non_c_layout(strides):
    # the kept result's buffer is laid out as the input's first slice along
    # the reduced axis, which is empty here: SciPy's zeros, not a ValueError
    stats = pytest.importorskip("scipy.stats")
    pk = np.ndarray((0, 2, 2), dtype=np.float64, buffer=np.zeros(4), strides=strides)
    want = stats.entropy(pk, axis=0)
    np.testing.assert_array_equal(fx.entropy(pk, axis=0), want)
    np.testing.assert_array_equal(fx.entropy(pk, pk, axis=-3), stats.entropy(pk, pk, axis=-3))


def _column_zoo(rng, C, W, dtype):
    """pk, qk of C classes and W columns (entropy along axis 0), random but
    for columns that each take one of the row body's special routes: zeros
    in the first chunks then mass (the running sums rescaled from zero),
    all zeros, a negative entry, a NaN, an inf, all the mass in one
    element, sums beyond 1e30 and below 1e-30, and for qk: zeros where pk
    has mass, zeros in the first chunks only."""
    pk = rng.random((C, W)) ** 2
    qk = rng.random((C, W)) + 0.01
    pk[: C // 2, 1] = 0.0
    pk[:, 2] = 0.0
    pk[C - 3, 3] = -1.0
    pk[C // 3, 4] = np.nan
    pk[C - 1, 5] = np.inf
    pk[:, 6] = 0.0
    pk[C // 2, 6] = 2.5
    info = np.finfo(dtype)
    pk[:, 7] *= float(info.max) / 4       # a sum that overflows
    pk[:, 8] *= float(info.tiny) * 1e-3   # subnormal (float16: just small)
    qk[C - 2, 9] = 0.0
    qk[: C // 2, 10] = 0.0
    pk[: C // 2, 11] = 0.0
    qk[: C // 2, 11] = 0.0
    return pk.astype(dtype), qk.astype(dtype)


@pytest.mark.parametrize("C, W", [(1, 70), (5, 3), (300, 12), (700, 150), (257, 64)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16], ids=["f64", "f32", "f16"])
def test_neighbouring_columns(stats, C, W, dtype):
    """entropy along axis 0 of a C-ordered array (columns side by side, in
    chunks of classes): SciPy's values, column by column, also where one
    column of a block takes a special route and for several chunks of
    classes and blocks of columns; and the values of the same data as
    rows, within rounding."""
    W = max(W, 12) if C >= 3 else W
    rng = np.random.default_rng(C * 1000 + W)
    if C >= 3:
        pk, qk = _column_zoo(rng, C, W, dtype)
    else:
        pk, qk = rng.random((C, W)).astype(dtype), rng.random((C, W)).astype(dtype)
    rtol = {np.float64: 1e-13, np.float32: 2e-5, np.float16: 2e-2}[dtype]
    with np.errstate(all="ignore"):
        for q in (None, qk):
            for base in (None, 2.0):
                label = f"{C}x{W} {np.dtype(dtype)} qk={q is not None} base={base}"
                got = fx.entropy(pk, q, base=base, axis=0)
                want = scipy_entropy(stats, pk.astype(np.float64),
                                     None if q is None else q.astype(np.float64), base=base,
                                     axis=0)
                assert got.dtype == dtype, label
                # column 7's sum overflows: SciPy divides by inf (entropy 0),
                # fastxent scales the column first (test_huge_sums_are_scaled)
                keep = np.arange(W) != 7 if C >= 3 else np.ones(W, bool)
                with np.errstate(over="ignore"):
                    assert_close(got[keep], want.astype(dtype)[keep], rtol=rtol, err_msg=label)
                rows = fx.entropy(np.ascontiguousarray(pk.T), None if q is None else
                                  np.ascontiguousarray(q.T), base=base, axis=1)
                assert_close(got, rows, rtol=rtol, err_msg=label + " rows")


@pytest.mark.parametrize("C", [3, 4, 10, 16])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16], ids=["f64", "f32", "f16"])
def test_many_short_rows(stats, C, dtype):
    """Rows of up to 16 classes, 64 at a time side by side (small_entropy):
    SciPy's values, row by row, with every special route of the row body in
    some rows; the bits of the same data as neighbouring columns (the same
    arithmetic lane by lane) on one and two threads; and within rounding of
    each row computed alone (the row body)."""
    rng = np.random.default_rng(C + 77)
    pk, qk = _column_zoo(rng, C, 150, dtype)
    rows_p, rows_q = np.ascontiguousarray(pk.T), np.ascontiguousarray(qk.T)
    rtol = {np.float64: 1e-13, np.float32: 2e-5, np.float16: 2e-2}[dtype]
    keep = np.arange(150) != 7   # the sum that overflows (see test_neighbouring_columns)
    with np.errstate(all="ignore"):
        for q, qT in ((None, None), (rows_q, qk)):
            for base in (None, 2.0):
                label = f"C={C} {np.dtype(dtype)} qk={q is not None} base={base}"
                got = fx.entropy(rows_p, q, base=base, axis=1, n_threads=1)
                assert got.dtype == dtype, label
                want = scipy_entropy(stats, rows_p.astype(np.float64),
                                     None if q is None else q.astype(np.float64), base=base,
                                     axis=1)
                # r = p (1 / S) is within an ulp of SciPy's p / S: a near-zero
                # relative entropy (terms of both signs) differs by ulps of 1
                assert_close(got[keep], want.astype(dtype)[keep], rtol=rtol, atol=rtol / 100,
                             err_msg=label)
                np.testing.assert_array_equal(
                    got, fx.entropy(pk, qT, base=base, axis=0), err_msg=label + " columns")
                np.testing.assert_array_equal(
                    got, fx.entropy(rows_p, q, base=base, axis=1, n_threads=2),
                    err_msg=label + " two threads")
                alone = np.array([fx.entropy(rows_p[i], None if q is None else q[i], base=base)
                                  for i in range(150)])
                assert_close(got, alone, rtol=rtol, err_msg=label + " row by row")


# a few long rows: their chunks of 16384 elements shared among the threads
# (src/entropies.pxi, _split_entropy), with the bits of one thread
_SPLIT_C = 3 * 16384 + 777


def _long_case(case, p, q):
    """Rows that take each of the row body's routes."""
    if case == "zeros first":          # the running sums start at zero
        p[:, :20000] = 0
    elif case == "all in the last":    # all the mass in the last, short chunk
        p[0] = 0
        p[0, -1] = 3
    elif case == "q zero under p":     # p > 0 where q = 0: +inf
        q[0, 100] = 0
    elif case == "nan":                # SciPy's special cases: the slow path
        p[0, 40000] = np.nan
    elif case == "negative":
        p[0, 5] = -1
    elif case == "all zero":
        p[0] = 0
    elif case == "tiny sum":           # a scale 1 / S beyond float32: the slow path
        p[0] *= 1e-35


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
@pytest.mark.parametrize("case", ["plain", "zeros first", "all in the last", "q zero under p",
                                  "nan", "negative", "all zero", "tiny sum"])
@pytest.mark.parametrize("rows", [1, 3])
def test_long_rows_share_their_chunks_among_threads(stats, dtype, case, rows):
    rng = np.random.default_rng(rows)
    p = rng.random((rows, _SPLIT_C)).astype(dtype)
    q = rng.random((rows, _SPLIT_C)).astype(dtype)
    if case == "tiny sum" and dtype == np.float16:
        pytest.skip("float16 holds no such sum")
    _long_case(case, p, q)
    for qk, base in [(None, None), (q, None), (None, 2.0), (q, 10.0)]:
        one = fx.entropy(p, qk, base=base, axis=1, n_threads=1)
        for nt in (2, 3):
            assert_bitwise_equal(fx.entropy(p, qk, base=base, axis=1, n_threads=nt), one,
                                 f"{case} n_threads={nt} q={qk is not None} base={base}")
        with np.errstate(all="ignore"):
            want = stats.entropy(p.astype(np.float64), None if qk is None else
                                 qk.astype(np.float64), base=base, axis=1)
        # the result in the input's dtype: float16 rounds to its 11 bits
        rtol = {np.float64: 1e-12, np.float32: 1e-5, np.float16: 1e-3}[dtype]
        np.testing.assert_allclose(one.astype(np.float64), want, rtol=rtol, atol=1e-12,
                                   err_msg=case)
