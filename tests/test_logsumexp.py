"""fastxent.logsumexp against the reference, SciPy, PyTorch and known values."""

import warnings

import numpy as np
import pytest

from arrays import (
    ALL_DTYPES,
    FLOAT_DTYPES,
    Failures,
    assert_result,
    assert_same_outcome,
    axes_for,
    is_finite_input,
    outcome,
    result_dtype,
    tolerance,
    zoo,
)

def _ids(dtypes):
    return [np.dtype(d).name for d in dtypes]


def _scipy_outcome(sc, *args, **kwargs):
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return outcome(sc.logsumexp, *args, **kwargs)


def _n_reduced(arr, axis):
    if axis is None:
        return max(arr.ndim, 1)
    return len(axis) if isinstance(axis, tuple) else 1


def scipy_has_empty_bug(arr, axis):
    """SciPy 1.17 raises IndexError for an empty input reduced over two or
    more axes (``shape[axis] = 1`` with a tuple); fastxent returns -inf."""
    return arr.size == 0 and _n_reduced(arr, axis) >= 2


# ---------------------------------------------------------------------------
# the zoo, every axis, keepdims and return_sign

@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=_ids(ALL_DTYPES))
def test_zoo_matches_reference(fx, ref, dtype):
    failures = Failures()
    for desc, arr in zoo(dtypes=[dtype]):
        before = arr.copy()
        for axis in axes_for(arr.ndim):
            for keepdims in (False, True):
                for return_sign in (False, True):
                    kwargs = dict(axis=axis, keepdims=keepdims, return_sign=return_sign)
                    label = f"{desc}, {kwargs}"
                    with failures.case(label):
                        rtol, atol = tolerance("logsumexp", result_dtype("logsumexp", dtype), arr)
                        assert_same_outcome(
                            outcome(fx.logsumexp, arr, **kwargs),
                            outcome(ref.logsumexp, arr, **kwargs),
                            rtol=rtol, atol=atol, err_msg=label,
                        )
        with failures.case(f"{desc}: input modified"):
            np.testing.assert_array_equal(arr, before)
    failures.check()


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=_ids(ALL_DTYPES))
def test_zoo_matches_scipy(fx, scipy_special, dtype):
    failures = Failures()
    for desc, arr in zoo(dtypes=[dtype]):
        for axis in axes_for(arr.ndim):
            if scipy_has_empty_bug(arr, axis):
                continue
            for keepdims in (False, True):
                for return_sign in (False, True):
                    kwargs = dict(axis=axis, keepdims=keepdims, return_sign=return_sign)
                    label = f"{desc}, {kwargs}"
                    with failures.case(label):
                        rtol, atol = tolerance(
                            "logsumexp", result_dtype("logsumexp", dtype), arr, peer="scipy"
                        )
                        assert_same_outcome(
                            outcome(fx.logsumexp, arr, **kwargs),
                            _scipy_outcome(scipy_special, arr, **kwargs),
                            rtol=rtol, atol=atol, err_msg=label,
                        )
    failures.check()


def _weights(arr, rng):
    """(label, b) pairs of weights for `arr` (non-empty, ndim >= 1)."""
    dtype = arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float64)
    b = rng.uniform(0.0, 3.0, arr.shape)
    b[rng.random(arr.shape) < 0.25] = 0.0
    yield "b same shape with zeros", b.astype(dtype)
    yield "b float64", b
    yield "b along the last axis", rng.uniform(0.5, 2.0, arr.shape[-1]).astype(dtype)
    yield "b python scalar", 2.5
    yield "b zero-dim array", np.asarray(0.5, dtype=dtype)
    yield "b adds a leading axis", rng.uniform(0.5, 2.0, (2,) + arr.shape).astype(dtype)
    if arr.dtype.kind == "f":
        special = ~np.isfinite(arr)
        if special.any():
            yield "b = 0 masks inf and NaN", (~special).astype(dtype)
            yield "b = 0 masks inf and NaN, b = 2 elsewhere", np.where(special, 0, 2).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16, np.int32],
                         ids=_ids([np.float64, np.float32, np.float16, np.int32]))
def test_weights_match_reference_and_scipy(fx, ref, dtype):
    sc = pytest.importorskip("scipy.special")
    rng = np.random.default_rng(7)
    failures = Failures()
    for desc, arr in zoo(dtypes=[dtype], empty=False):
        if arr.ndim == 0:
            continue
        for bdesc, b in _weights(arr, rng):
            b_before = np.array(b, copy=True)
            ndim = max(arr.ndim, np.ndim(b))
            for axis in [None, 0, -1, (0, -1)][: 4 if ndim >= 2 else 3]:
                for return_sign in (False, True):
                    kwargs = dict(axis=axis, b=b, return_sign=return_sign)
                    label = f"{desc}, {bdesc}, axis={axis}, return_sign={return_sign}"
                    out_dtype = np.result_type(np.asarray(arr), b, 1.0)
                    rtol, atol = tolerance("logsumexp", out_dtype, arr)
                    got = outcome(fx.logsumexp, arr, **kwargs)
                    with failures.case(label + " vs reference"):
                        assert_same_outcome(got, outcome(ref.logsumexp, arr, **kwargs),
                                            rtol=rtol, atol=atol, err_msg=label)
                    with failures.case(label + " vs SciPy"):
                        rtol, atol = tolerance("logsumexp", out_dtype, arr, peer="scipy")
                        assert_same_outcome(got, _scipy_outcome(sc, arr, **kwargs),
                                            rtol=rtol, atol=atol, err_msg=label)
            with failures.case(f"{desc}, {bdesc}: b modified"):
                np.testing.assert_array_equal(b, b_before)
    failures.check()


# ---------------------------------------------------------------------------
# values known in closed form, independent of any implementation

L2 = np.log(2.0)

KNOWN = [
    # (a, kwargs, expected)
    ([0.0, 0.0], {}, L2),
    ([1.0, 2.0], {}, 2.313261687518223),
    ([np.inf, 1.0], {}, np.inf),
    ([np.inf, np.inf], {}, np.inf),
    ([np.inf, -np.inf], {}, np.inf),
    ([-np.inf, -np.inf], {}, -np.inf),
    ([-np.inf], {}, -np.inf),
    ([-np.inf, 0.0], {}, 0.0),
    ([np.nan, 1.0], {}, np.nan),
    ([np.nan, np.inf], {}, np.nan),
    ([np.nan, -np.inf], {}, np.nan),
    ([], {}, -np.inf),
    ([0.0, -40.0], {}, np.log1p(np.exp(-40.0))),  # 4.25e-18, not 0
    ([0.0, -800.0], {}, 0.0),
    ([1000.0, 1000.0], {}, 1000.0 + L2),
    ([-1000.0, -1000.0], {}, -1000.0 + L2),
    ([1e308, 1e308], {}, 1e308),
    ([np.nan, 0.0], {"b": [0.0, 1.0]}, 0.0),  # zero weight masks NaN
    ([np.inf, 0.0], {"b": [0.0, 1.0]}, 0.0),  # ... and inf
    ([-np.inf, 0.0], {"b": [0.0, 1.0]}, 0.0),
    ([0.0, 0.0], {"b": [2.0, 2.0]}, 2 * L2),
    ([0.0, 0.0], {"b": [2.0, -1.0]}, 0.0),
    ([1.0, 2.0], {"b": [1.0, -1.0]}, np.nan),  # negative sum without return_sign
    ([1.0, 2.0], {"b": [0.0, 0.0]}, -np.inf),
    ([np.inf, 0.0], {"b": [-1.0, 1.0]}, np.nan),
]


@pytest.mark.parametrize("a, kwargs, expected", KNOWN, ids=[f"{a}-{k}" for a, k, _ in KNOWN])
def test_known_values(fx, a, kwargs, expected):
    got = fx.logsumexp(np.array(a, dtype=np.float64), **kwargs)
    assert type(got) is np.float64
    np.testing.assert_allclose(got, expected, rtol=1e-15, atol=0, equal_nan=True)


KNOWN_SIGNED = [
    # (a, b, expected log|sum|, expected sign)
    ([1.0, 2.0], [1.0, -1.0], np.log(np.e**2 - np.e), -1.0),
    ([3.0, 1.0, 0.0], [1.0, -1.0, -1.0], np.log(np.e**3 - np.e - 1), 1.0),
    ([0.0, 0.0], [2.0, -1.0], 0.0, 1.0),
    ([1.0, 1.0], [1.0, -1.0], -np.inf, 0.0),
    ([1.0, 2.0], [0.0, 0.0], -np.inf, 0.0),
    ([-np.inf], [1.0], -np.inf, 0.0),
    ([np.inf, 0.0], [-1.0, 1.0], np.inf, -1.0),
    ([np.inf, 0.0], [1.0, 1.0], np.inf, 1.0),
    ([5.0, 0.0], [-2.0, 1.0], np.log(2 * np.exp(5.0) - 1), -1.0),
    ([0.0, -40.0], [1.0, -1.0], np.log1p(-np.exp(-40.0)), 1.0),
]


@pytest.mark.parametrize("a, b, expected, sign", KNOWN_SIGNED,
                         ids=[f"{a}-{b}" for a, b, _, _ in KNOWN_SIGNED])
def test_known_values_with_sign(fx, a, b, expected, sign):
    got, sgn = fx.logsumexp(np.array(a), b=np.array(b), return_sign=True)
    assert type(got) is np.float64 and type(sgn) is np.float64
    np.testing.assert_allclose(got, expected, rtol=1e-15, atol=0)
    assert sgn == sign


# Corners where SciPy's fallback to the plain log(sum(b exp(a))) decides the
# answer; fastxent promises SciPy's values, whatever they are.
SCIPY_CORNERS = [
    ([1000.0, 1000.0], [1.0, -1.0]),  # cancelling weights at overflow scale: NaN
    ([np.nan, np.inf], [0.0, 1.0]),  # +inf result, then the NaN's zero weight is used
    ([np.inf, np.inf], [1.0, -1.0]),
    ([np.inf, -np.inf], [1.0, 1.0]),
    ([-np.inf, -np.inf], [1.0, -1.0]),
    ([np.inf, 1.0], [np.inf, 1.0]),
    ([1.0, 2.0], [np.nan, 1.0]),
    ([1.0, 2.0], [np.inf, -1.0]),
    ([0.0, 0.0], [1.0, -1.0]),
    ([2.0, 1.0, 1.0], [1.0, -1.0, -1.0]),
]


@pytest.mark.parametrize("return_sign", [False, True])
@pytest.mark.parametrize("a, b", SCIPY_CORNERS, ids=[f"{a}-{b}" for a, b in SCIPY_CORNERS])
def test_weight_corners_match_scipy(fx, ref, scipy_special, a, b, return_sign):
    a, b = np.array(a), np.array(b)
    want = _scipy_outcome(scipy_special, a, b=b, return_sign=return_sign)
    got = outcome(fx.logsumexp, a, b=b, return_sign=return_sign)
    assert_same_outcome(got, want, rtol=1e-15, atol=0, err_msg="vs SciPy")
    assert_same_outcome(outcome(ref.logsumexp, a, b=b, return_sign=return_sign), want,
                        rtol=1e-15, atol=0, err_msg="reference vs SciPy")


def test_empty_input_gives_minus_inf(fx):
    got = fx.logsumexp(np.zeros((2, 0)), axis=1)
    assert got.dtype == np.float64 and got.shape == (2,)
    assert np.all(got == -np.inf)
    assert fx.logsumexp(np.zeros((0, 3)), axis=0, keepdims=True).shape == (1, 3)
    assert fx.logsumexp(np.zeros((2, 0)), axis=0).shape == (0,)
    # SciPy 1.17 raises IndexError for these (an empty reduction over several axes)
    got = fx.logsumexp(np.zeros((2, 0)))
    assert type(got) is np.float64 and got == -np.inf
    got = fx.logsumexp(np.zeros((2, 0, 3), np.float32), axis=(0, 1), keepdims=True)
    assert got.shape == (1, 1, 3) and got.dtype == np.float32 and np.all(got == -np.inf)


def test_empty_input_sign_as_scipy(fx):
    # SciPy returns sign(-inf) = -1 for an empty reduction (0 for a sum of zeros)
    out, sgn = fx.logsumexp(np.zeros((2, 0)), axis=1, return_sign=True)
    np.testing.assert_array_equal(out, [-np.inf, -np.inf])
    np.testing.assert_array_equal(sgn, [-1.0, -1.0])


# ---------------------------------------------------------------------------
# deliberate difference 1: float16 accumulates in float32

def test_float16_accumulates_in_float32(fx):
    got = fx.logsumexp(np.zeros(100000, np.float16))
    assert type(got) is np.float16
    assert got == np.float16(np.log(100000))  # SciPy gives inf

    rows = np.zeros((3, 70000), np.float16)
    rows[1] = -3.0
    rows[2, ::2] = 1.0
    got = fx.logsumexp(rows, axis=1)
    want = np.log(np.sum(np.exp(rows.astype(np.float64)), axis=1)).astype(np.float16)
    assert got.dtype == np.float16
    np.testing.assert_array_equal(got, want)

    got = fx.logsumexp(np.zeros(100000, np.float16), b=np.float16(1.0))
    assert got == np.float16(np.log(100000))


def test_float16_result_is_float32_rounded_once(fx, rng):
    # the float16 result is the float32 computation rounded to float16 once,
    # so it is within one float16 ulp of the float64 answer
    x = (3 * rng.standard_normal((50, 64))).astype(np.float16)
    got = fx.logsumexp(x, axis=1)
    exact = np.log(np.sum(np.exp(x.astype(np.float64)), axis=1))
    assert got.dtype == np.float16
    assert np.all(np.abs(got.astype(np.float64) - exact) <= np.spacing(np.abs(exact).astype(np.float16)))


# ---------------------------------------------------------------------------
# dtypes, return types and shapes

PROMOTIONS = [
    # (a, b, result dtype): SciPy's rules (NumPy promotion with 1.0, Python
    # scalars weak)
    (np.array([1, 2], np.int8), None, np.float64),
    (np.array([1, 2], np.uint8), None, np.float64),
    (np.array([1, 2], np.int64), None, np.float64),
    (np.array([1, 2], np.uint64), None, np.float64),
    (np.array([True, False]), None, np.float64),
    (np.array([1, 2], np.float16), None, np.float16),
    (np.array([1, 2], np.float32), None, np.float32),
    ([1, 2], None, np.float64),
    (3, None, np.float64),
    (np.float32(3.0), None, np.float32),
    (np.array([1, 2], np.float16), np.array([1, 1], np.float32), np.float32),
    (np.array([1, 2], np.float16), np.array([1, 1], np.int64), np.float64),
    (np.array([1, 2], np.float16), 2, np.float16),
    (np.array([1, 2], np.float16), 2.0, np.float16),
    (np.array([1, 2], np.float32), 2.5, np.float32),
    (np.array([1, 2], np.float32), np.float64(2.0), np.float64),
    (np.array([1, 2], np.float32), [1, 1], np.float64),
    (np.array([1, 2], np.float32), np.array([1, 1], np.float16), np.float32),
    (np.array([1, 2], np.int32), np.array([1, 1], np.float32), np.float64),
    (np.array([1, 2], np.float64), np.array([True, False]), np.float64),
]


def _describe(v):
    if v is None:
        return "none"
    if isinstance(v, (np.ndarray, np.generic)):
        return f"{'array' if isinstance(v, np.ndarray) else 'scalar'} {v.dtype}"
    return f"python {type(v).__name__}"


PROMOTION_IDS = [f"{_describe(a)}, b {_describe(b)}" for a, b, _ in PROMOTIONS]


@pytest.mark.parametrize("a, b, dtype", PROMOTIONS, ids=PROMOTION_IDS)
def test_dtype_promotion(fx, ref, a, b, dtype):
    got = fx.logsumexp(a, b=b)
    assert type(got) is np.dtype(dtype).type
    assert ref.logsumexp(a, b=b).dtype == dtype
    got, sgn = fx.logsumexp(a, b=b, return_sign=True)
    assert got.dtype == dtype and sgn.dtype == dtype


@pytest.mark.parametrize("a, b, dtype", PROMOTIONS, ids=PROMOTION_IDS)
def test_dtype_promotion_as_scipy(scipy_special, a, b, dtype):
    # keeps the table above honest
    assert scipy_special.logsumexp(a, b=b).dtype == dtype


SHAPES = [
    # (input shape, kwargs, result shape or None for a NumPy scalar)
    ((5,), {}, None),
    ((5,), {"axis": 0}, None),
    ((5,), {"axis": -1, "keepdims": True}, (1,)),
    ((), {}, None),
    ((), {"keepdims": True}, (1,)),  # SciPy reduces 0-d input as 1-d
    ((), {"axis": 0}, None),
    ((), {"axis": -1, "keepdims": True}, (1,)),
    ((), {"axis": (0,)}, None),
    ((2, 3), {}, None),
    ((2, 3), {"keepdims": True}, (1, 1)),
    ((2, 3), {"axis": 1}, (2,)),
    ((2, 3), {"axis": 0, "keepdims": True}, (1, 3)),
    ((2, 3), {"axis": (0, 1)}, None),
    ((2, 3), {"axis": (1, 0), "keepdims": True}, (1, 1)),
    ((2, 3), {"axis": ()}, (2, 3)),
    ((2, 3, 4), {"axis": (0, 2)}, (3,)),
    ((2, 3, 4), {"axis": (-1, 0), "keepdims": True}, (1, 3, 1)),
    ((2, 3, 1, 4), {"axis": (1, 3)}, (2, 1)),
]


@pytest.mark.parametrize("return_sign", [False, True])
@pytest.mark.parametrize("shape, kwargs, expected", SHAPES,
                         ids=[f"{s}-{k}" for s, k, _ in SHAPES])
def test_result_type_and_shape(fx, ref, shape, kwargs, expected, return_sign):
    a = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape) / 7
    got = fx.logsumexp(a, return_sign=return_sign, **kwargs)
    want = ref.logsumexp(a, return_sign=return_sign, **kwargs)
    values = got if return_sign else (got,)
    for v in values:
        if expected is None:
            assert type(v) is np.float64
        else:
            assert type(v) is np.ndarray and v.shape == expected
    assert_result(got, want, rtol=1e-14, atol=0)


@pytest.mark.parametrize("shape, kwargs, expected", SHAPES,
                         ids=[f"{s}-{k}" for s, k, _ in SHAPES])
def test_result_shapes_as_scipy(scipy_special, shape, kwargs, expected):
    a = np.zeros(shape)
    got = scipy_special.logsumexp(a, **kwargs)
    assert (type(got) is np.float64) if expected is None else got.shape == expected


def test_axis_empty_tuple_is_elementwise(fx, scipy_special):
    a = np.array([[1.0, -np.inf, np.nan], [np.inf, 0.0, 3.0]])
    got = fx.logsumexp(a, axis=())
    assert_result(got, scipy_special.logsumexp(a, axis=()), rtol=1e-15, atol=0)
    np.testing.assert_array_equal(got, a)
    # documented difference: an empty input stays empty (SciPy: [[-inf]])
    for shape in ((0,), (0, 3), (2, 0, 3)):
        got = fx.logsumexp(np.zeros(shape), axis=())
        assert got.shape == shape and got.dtype == np.float64


def test_b_broadcasts_a_up(fx, ref):
    a = np.array([0.0, 1.0, 2.0])
    b = np.array([[1.0, 1.0, 1.0], [2.0, 0.0, 1.0]])
    for axis in (None, 0, 1, -1, (0, 1)):
        want = ref.logsumexp(a, axis=axis, b=b)
        assert_result(fx.logsumexp(a, axis=axis, b=b), want, rtol=1e-15, atol=0, err_msg=str(axis))
    np.testing.assert_allclose(fx.logsumexp(a, axis=1, b=b),
                               np.log([np.exp(0) + np.exp(1) + np.exp(2), 2 + np.exp(2)]),
                               rtol=1e-15)
    assert fx.logsumexp(2.0, b=np.ones(4)) == pytest.approx(2.0 + np.log(4), rel=1e-15)


def test_python_containers(fx, ref):
    assert_result(fx.logsumexp([1, 2, 3]), ref.logsumexp([1, 2, 3]), rtol=1e-15, atol=0)
    assert_result(fx.logsumexp([[1.0, 2.0], [3.0, 4.0]], axis=1),
                  ref.logsumexp([[1.0, 2.0], [3.0, 4.0]], axis=1), rtol=1e-15, atol=0)
    assert_result(fx.logsumexp((0.5, 1.5), b=(1, 2)), ref.logsumexp((0.5, 1.5), b=(1, 2)),
                  rtol=1e-15, atol=0)
    assert_result(fx.logsumexp(1.5), np.float64(1.5), rtol=0, atol=0)
    assert_result(fx.logsumexp(True), ref.logsumexp(True), rtol=1e-15, atol=0)


def test_numpy_integer_axis(fx):
    a = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(fx.logsumexp(a, axis=np.int64(1)), fx.logsumexp(a, axis=1))
    np.testing.assert_array_equal(fx.logsumexp(a, axis=(np.intp(0),)), fx.logsumexp(a, axis=0))


# ---------------------------------------------------------------------------
# out=

@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=_ids(FLOAT_DTYPES))
def test_out_is_filled_and_returned(fx, ref, dtype, rng):
    a = (3 * rng.standard_normal((4, 5, 6))).astype(dtype)
    rtol, atol = tolerance("logsumexp", dtype, a)
    for axis, keepdims, shape in [(1, False, (4, 6)), (1, True, (4, 1, 6)), ((0, 2), False, (5,)),
                                  (None, True, (1, 1, 1)), (-1, False, (4, 5))]:
        out = np.full(shape, 7.0, dtype)
        got = fx.logsumexp(a, axis=axis, keepdims=keepdims, out=out)
        assert got is out
        assert_result(out, ref.logsumexp(a, axis=axis, keepdims=keepdims), rtol=rtol, atol=atol)

        out = np.full(shape, 7.0, dtype)
        got = fx.logsumexp(a, axis=axis, keepdims=keepdims, return_sign=True, out=out)
        want_out, want_sgn = ref.logsumexp(a, axis=axis, keepdims=keepdims, return_sign=True)
        assert isinstance(got, tuple) and len(got) == 2 and got[0] is out
        assert_result(out, want_out, rtol=rtol, atol=atol)
        assert got[1].dtype == dtype and np.shape(got[1]) == shape
        np.testing.assert_array_equal(got[1], want_sgn)


def test_out_zero_dim(fx):
    out = np.empty((), np.float64)
    got = fx.logsumexp([0.0, 0.0], out=out)
    assert got is out
    assert out[()] == np.log(2.0)


def test_out_with_weights(fx, ref, rng):
    a = rng.standard_normal((3, 8))
    b = rng.uniform(-1, 2, (3, 8))
    out = np.empty(3)
    got, sgn = fx.logsumexp(a, axis=1, b=b, return_sign=True, out=out)
    want, want_sgn = ref.logsumexp(a, axis=1, b=b, return_sign=True)
    assert got is out
    np.testing.assert_allclose(out, want, rtol=1e-12)
    np.testing.assert_array_equal(sgn, want_sgn)


# ---------------------------------------------------------------------------
# PyTorch CPU, where its semantics coincide: finite float32/float64, one dim

@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_matches_torch(fx, torch, dtype):
    failures = Failures()
    for desc, arr in zoo(dtypes=[dtype], empty=False):
        if arr.ndim == 0 or not is_finite_input(arr):
            continue
        t = torch.from_numpy(np.array(arr, order="C"))
        for axis in range(-arr.ndim, arr.ndim):
            for keepdims in (False, True):
                label = f"{desc}, axis={axis}, keepdims={keepdims}"
                with failures.case(label):
                    want = torch.logsumexp(t, dim=axis, keepdim=keepdims).numpy()
                    got = np.asarray(fx.logsumexp(arr, axis=axis, keepdims=keepdims))
                    assert got.dtype == want.dtype and got.shape == want.shape
                    rtol, atol = tolerance("logsumexp", dtype, arr, peer="torch")
                    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=label)
    failures.check()


def test_sign_is_a_scalar_also_with_out(scipy_special):
    # out= holds the result only; the sign of a 0-d result is a NumPy scalar
    # as SciPy returns it
    import fastxent

    a = np.array([1.0, -2.0])
    out = np.empty(())
    res, sgn = fastxent.logsumexp(a, b=[1.0, -1.0], out=out, return_sign=True)
    want, want_sgn = scipy_special.logsumexp(a, b=[1.0, -1.0], return_sign=True)
    assert res is out
    assert type(sgn) is type(want_sgn) is np.float64
    assert sgn == want_sgn
    np.testing.assert_allclose(out, want, rtol=1e-15)
    res, sgn = fastxent.logsumexp(a.reshape(1, 2), axis=1, out=np.empty(1), return_sign=True)
    assert isinstance(sgn, np.ndarray) and sgn.shape == (1,)
