"""fastxent.softmax and fastxent.log_softmax against the reference, SciPy,
PyTorch and known values."""

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

FUNCS = ("softmax", "log_softmax")


def _ids(dtypes):
    return [np.dtype(d).name for d in dtypes]


def _scipy_outcome(func, *args, **kwargs):
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return outcome(func, *args, **kwargs)


@pytest.fixture(params=FUNCS)
def name(request):
    return request.param


# ---------------------------------------------------------------------------
# the zoo, every axis

@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=_ids(ALL_DTYPES))
def test_zoo_matches_reference(fx, ref, name, dtype):
    failures = Failures()
    for desc, arr in zoo(dtypes=[dtype]):
        before = arr.copy()
        rtol, atol = tolerance(name, result_dtype(name, dtype), arr)
        for axis in axes_for(arr.ndim):
            label = f"{name} {desc}, axis={axis}"
            with failures.case(label):
                assert_same_outcome(
                    outcome(getattr(fx, name), arr, axis=axis),
                    outcome(getattr(ref, name), arr, axis=axis),
                    rtol=rtol, atol=atol, err_msg=label,
                )
        with failures.case(f"{desc}: input modified"):
            np.testing.assert_array_equal(arr, before)
    failures.check()


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=_ids(ALL_DTYPES))
def test_zoo_matches_scipy(fx, scipy_special, name, dtype):
    if np.dtype(dtype).kind == "u":
        pytest.skip("SciPy subtracts the max in the unsigned dtype, which wraps around")
    failures = Failures()
    for desc, arr in zoo(dtypes=[dtype]):
        rtol, atol = tolerance(name, result_dtype(name, dtype), arr, peer="scipy")
        for axis in axes_for(arr.ndim):
            label = f"{name} {desc}, axis={axis}"
            with failures.case(label):
                assert_same_outcome(
                    outcome(getattr(fx, name), arr, axis=axis),
                    _scipy_outcome(getattr(scipy_special, name), arr, axis=axis),
                    rtol=rtol, atol=atol, err_msg=label,
                )
    failures.check()


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_matches_torch(fx, torch, name, dtype):
    failures = Failures()
    torch_func = getattr(torch, name)
    for desc, arr in zoo(dtypes=[dtype], empty=False):
        if arr.ndim == 0 or not is_finite_input(arr):
            continue
        t = torch.from_numpy(np.array(arr, order="C"))
        rtol, atol = tolerance(name, dtype, arr, peer="torch")
        for axis in range(-arr.ndim, arr.ndim):
            label = f"{name} {desc}, axis={axis}"
            with failures.case(label):
                want = torch_func(t, dim=axis).numpy()
                got = getattr(fx, name)(arr, axis=axis)
                assert type(got) is np.ndarray
                assert got.dtype == want.dtype and got.shape == want.shape
                np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=label)
    failures.check()


# ---------------------------------------------------------------------------
# properties every result has

@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=_ids(FLOAT_DTYPES))
def test_zoo_rows_normalized(fx, dtype):
    failures = Failures()
    for desc, arr in zoo(dtypes=[dtype], special=False, empty=False):
        for axis in axes_for(arr.ndim):
            label = f"{desc}, axis={axis}"
            with failures.case(label):
                s = np.asarray(fx.softmax(arr, axis=axis), dtype=np.float64)
                ls = np.asarray(fx.log_softmax(arr, axis=axis), dtype=np.float64)
                assert np.all((s >= 0) & (s <= 1))
                assert np.all(ls <= 0)
                tol = 50 * np.finfo(dtype).eps
                total = np.sum(s, axis=axis)
                np.testing.assert_allclose(total, 1.0, rtol=0, atol=tol, err_msg=label)
                np.testing.assert_allclose(np.sum(np.exp(ls), axis=axis), 1.0, rtol=0, atol=tol,
                                           err_msg=label)
    failures.check()


# ---------------------------------------------------------------------------
# values known in closed form

INF, NAN = np.inf, np.nan
KNOWN = [
    # (x, softmax, log_softmax), along the only axis
    ([0.0, 0.0], [0.5, 0.5], [-np.log(2), -np.log(2)]),
    ([1000.0, 1.0], [1.0, np.exp(-999.0)], [0.0 - np.exp(-999.0), -999.0]),
    ([-1000.0, -1000.0], [0.5, 0.5], [-np.log(2), -np.log(2)]),
    ([0.0, -INF], [1.0, 0.0], [0.0, -INF]),
    ([-INF, 1.0, -INF], [0.0, 1.0, 0.0], [-INF, 0.0, -INF]),
    ([INF, 1.0, 2.0], [NAN, NAN, NAN], [NAN, -INF, -INF]),
    ([INF, INF, 0.0], [NAN, NAN, NAN], [NAN, NAN, -INF]),
    ([INF, 1.0, -INF], [NAN, NAN, NAN], [NAN, -INF, -INF]),
    ([-INF, -INF], [NAN, NAN], [NAN, NAN]),
    ([NAN, 1.0], [NAN, NAN], [NAN, NAN]),
    ([NAN, INF], [NAN, NAN], [NAN, NAN]),
    ([NAN, -INF], [NAN, NAN], [NAN, NAN]),
    ([1e308, -1e308], [1.0, 0.0], [0.0, -INF]),
    ([0.0, -720.0], [1.0, np.exp(-720.0)], [-np.exp(-720.0), -720.0]),
    ([0.0, -40.0], [1 / (1 + np.exp(-40.0)), np.exp(-40.0)],
     [-np.log1p(np.exp(-40.0)), -40.0 - np.log1p(np.exp(-40.0))]),
    ([3.0, 3.0, 3.0, 3.0], [0.25] * 4, [-np.log(4)] * 4),
]


@pytest.mark.parametrize("x, soft, logsoft", KNOWN, ids=[str(x) for x, _, _ in KNOWN])
def test_known_values(fx, x, soft, logsoft):
    # values below the smallest normal number may be flushed to zero
    tiny = np.finfo(np.float64).tiny
    x = np.array(x)
    got = fx.softmax(x)
    assert type(got) is np.ndarray and got.dtype == np.float64
    np.testing.assert_allclose(got, soft, rtol=1e-15, atol=tiny, equal_nan=True)
    got = fx.log_softmax(x)
    assert type(got) is np.ndarray and got.dtype == np.float64
    np.testing.assert_allclose(got, logsoft, rtol=1e-15, atol=tiny, equal_nan=True)


# ---------------------------------------------------------------------------
# deliberate difference 2: log_softmax is accurate near zero

def test_log_softmax_near_zero_beats_scipy(fx, scipy_special):
    x = np.array([0.0, -40.0])
    got = fx.log_softmax(x)
    exact = -np.log1p(np.exp(-40.0))  # -4.248354255291589e-18
    assert got[0] == pytest.approx(exact, rel=1e-15)
    assert scipy_special.log_softmax(x)[0] == 0.0  # SciPy rounds it away
    np.testing.assert_allclose(got, scipy_special.log_softmax(x), rtol=1e-15, atol=1e-16)


def test_log_softmax_near_zero_with_ties(fx):
    # k = 3 maximal elements: -(log 3 + log1p(s / 3))
    x = np.array([[5.0, 5.0, 5.0, -35.0], [-35.0, 5.0, 5.0, 5.0]])
    s = np.exp(-40.0)
    want = -(np.log(3.0) + np.log1p(s / 3))
    got = fx.log_softmax(x, axis=1)
    np.testing.assert_allclose(got[:, 1], [want, want], rtol=1e-15)
    np.testing.assert_allclose(got[0, 3], -40.0 + want, rtol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float16], ids=["float32", "float16"])
def test_log_softmax_near_zero_low_precision(fx, dtype):
    x = np.array([0.0, -12.0, -14.0], dtype=dtype)
    got = fx.log_softmax(x)
    exact = -np.log1p(np.exp(-12.0) + np.exp(-14.0))
    assert got.dtype == dtype
    assert got[0] != 0 and got[0] == pytest.approx(exact, rel=4 * float(np.finfo(dtype).eps))


# ---------------------------------------------------------------------------
# dtypes, return types and shapes

EXP_DTYPES = [
    (np.int8, np.float16), (np.uint8, np.float16),
    (np.int16, np.float32), (np.uint16, np.float32),
    (np.int32, np.float64), (np.uint32, np.float64),
    (np.int64, np.float64), (np.uint64, np.float64),
    (np.float16, np.float16), (np.float32, np.float32), (np.float64, np.float64),
]


@pytest.mark.parametrize("in_dtype, out_dtype", EXP_DTYPES, ids=_ids([d for d, _ in EXP_DTYPES]))
def test_result_dtype_is_that_of_exp(fx, ref, name, in_dtype, out_dtype):
    x = np.array([[1, 2, 3], [4, 4, 0]], dtype=in_dtype)
    assert np.exp(x).dtype == out_dtype
    got = getattr(fx, name)(x, axis=1)
    assert got.dtype == out_dtype
    rtol = {np.float16: 1e-3, np.float32: 1e-6, np.float64: 1e-15}[out_dtype]
    assert_result(got, getattr(ref, name)(x, axis=1), rtol=rtol, atol=0)


def test_int_input_does_not_wrap(fx, name):
    # SciPy computes x - max in the integer dtype: int8 -128 - 127 wraps to 1
    want = np.array([-255.0, 0.0]) if name == "log_softmax" else np.array([0.0, 1.0])
    for x in (np.array([-128, 127], dtype=np.int8), np.array([0, 255], dtype=np.uint8)):
        got = getattr(fx, name)(x)
        assert got.dtype == np.float16
        np.testing.assert_array_equal(got, want.astype(np.float16), err_msg=str(x))


def test_bool_raises_type_error(fx, name):
    with pytest.raises(TypeError):
        getattr(fx, name)(np.array([True, False]))


def test_bool_raises_in_scipy_too(scipy_special, name):
    with pytest.raises(TypeError):
        getattr(scipy_special, name)(np.array([True, False]))


def test_float16_computed_in_float32(fx, name):
    x = np.zeros(70000, np.float16)
    x[::7] = 1.0
    got = getattr(fx, name)(x)
    e = np.exp(x.astype(np.float64))
    want = e / e.sum() if name == "softmax" else np.log(e / e.sum())
    assert got.dtype == np.float16
    # the results are float16 subnormals: one float16 rounding is 2**-25 absolute
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=1e-3, atol=2.0**-25)


def _f16_rows(rng):
    """float16 rows for the row kernels, the split path (one row) and a row
    longer than a thread's float32 row buffer (2**20), with special values."""
    rows = []
    for shape in [(3, 100), (5, 2049), (4, 16385), (1, 40000), (2, 70001)]:
        x = (rng.standard_normal(shape) * 4).astype(np.float16)
        x[0, 7] = -np.inf
        if shape[0] > 2:
            x[1, :] = -np.inf
            x[2, 11] = np.nan
        rows.append(x)
    rows.append(rng.standard_normal((1, 1_100_000)).astype(np.float16))
    return rows


def test_float16_softmax_bits_independent_of_output_layout_and_threads(fx, rng):
    # float16 rows go through a float32 copy of the row where the build can
    # (one exp per element); every route of a row must give the same bits
    for x in _f16_rows(rng):
        want = fx.softmax(x, axis=-1, n_threads=1)
        for n_threads in (1, 2):
            got = [fx.softmax(x, axis=-1, n_threads=n_threads)]
            big = np.zeros((x.shape[0], 2 * x.shape[1]), np.float16)
            got.append(fx.softmax(x, axis=-1, n_threads=n_threads, out=big[:, ::2]))
            got.append(fx.softmax(x, axis=-1, n_threads=n_threads,
                                  out=np.zeros(x.shape, np.float16, order="F")))
            strided = np.zeros_like(big)
            strided[:, ::2] = x
            got.append(fx.softmax(strided[:, ::2], axis=-1, n_threads=n_threads))
            for g in got:
                assert np.array_equal(g.view(np.uint16), want.view(np.uint16)), x.shape
        # float32's softmax of the same values, rounded once (within an ulp
        # of it on the builds that compute exp twice)
        f32 = fx.softmax(x.astype(np.float32), axis=-1).astype(np.float16)
        np.testing.assert_array_equal(np.isnan(want), np.isnan(f32))
        np.testing.assert_allclose(want.astype(np.float64), f32.astype(np.float64),
                                   rtol=2.0**-10, atol=2.0**-24)
        if fx.get_config()["cpu_path"] in ("avx2", "avx512"):
            assert np.array_equal(want.view(np.uint16), f32.view(np.uint16)), x.shape


@pytest.mark.parametrize("x, kwargs", [
    (3.0, {}), (np.float32(3.0), {}), (np.float16(-2.0), {}), (np.array(3.0), {}), (7, {}),
    (np.array(3.0), {"axis": 0}), (np.array(3.0), {"axis": -1}), (np.array(3.0), {"axis": ()}),
])
def test_zero_dim_input_gives_numpy_scalar(fx, ref, name, x, kwargs):
    got = getattr(fx, name)(x, **kwargs)
    want = getattr(ref, name)(x, **kwargs)
    assert isinstance(want, np.generic)
    assert_result(got, want, rtol=0, atol=0)


def test_zero_dim_as_scipy(scipy_special, name):
    for x, kwargs in [(3.0, {}), (np.float32(3.0), {}), (np.array(3.0), {"axis": 0})]:
        got = getattr(scipy_special, name)(x, **kwargs)
        assert isinstance(got, np.generic) and got.dtype == np.asarray(x).dtype


def test_nonfinite_zero_dim(fx, name):
    for x in (np.inf, -np.inf, np.nan):
        got = getattr(fx, name)(x)
        assert type(got) is np.float64 and np.isnan(got)


@pytest.mark.parametrize("shape, axis", [
    ((0,), None), ((0,), 0), ((0, 3), None), ((0, 3), 0), ((3, 0), 1), ((3, 0), (0, 1)),
    ((2, 0, 3), 1), ((2, 0, 3), (0, 2, 1)),
])
def test_zero_length_reduced_axis_raises(fx, scipy_special, name, shape, axis):
    x = np.zeros(shape)
    with pytest.raises(ValueError):
        getattr(scipy_special, name)(x, axis=axis)
    with pytest.raises(ValueError):
        getattr(fx, name)(x, axis=axis)


@pytest.mark.parametrize("shape, axis", [((0, 3), 1), ((3, 0), 0), ((2, 0, 3), (0, 2)),
                                         ((2, 0, 3), -1)])
def test_empty_but_nonempty_reduction(fx, name, shape, axis):
    got = getattr(fx, name)(np.zeros(shape, np.float32), axis=axis)
    assert type(got) is np.ndarray and got.shape == shape and got.dtype == np.float32


def test_axis_empty_tuple(fx, scipy_special, name):
    x = np.array([[1.0, -np.inf, np.nan], [np.inf, 0.0, 3.0]])
    want = _scipy_outcome(getattr(scipy_special, name), x, axis=())
    assert_same_outcome(outcome(getattr(fx, name), x, axis=()), want, rtol=0, atol=0)


def test_python_containers(fx, ref, name):
    for x in ([1, 2, 3], [[1.0, 2.0], [3.0, 4.0]], (0.5, 1.5)):
        assert_result(getattr(fx, name)(x), getattr(ref, name)(x), rtol=1e-15, atol=0)
    assert_result(getattr(fx, name)([[1.0, 2.0], [3.0, 5.0]], axis=0),
                  getattr(ref, name)([[1.0, 2.0], [3.0, 5.0]], axis=0), rtol=1e-15, atol=0)


def test_numpy_integer_axis(fx, name):
    x = np.arange(6.0).reshape(2, 3)
    f = getattr(fx, name)
    np.testing.assert_array_equal(f(x, axis=np.int64(1)), f(x, axis=1))
    np.testing.assert_array_equal(f(x, axis=(np.intp(0),)), f(x, axis=0))


# ---------------------------------------------------------------------------
# out=

@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=_ids(FLOAT_DTYPES))
def test_out_is_filled_and_returned(fx, ref, name, dtype, rng):
    x = (3 * rng.standard_normal((4, 5, 6))).astype(dtype)
    rtol, atol = tolerance(name, dtype, x)
    for axis in (None, 0, 1, -1, (0, 2)):
        out = np.full(x.shape, 7.0, dtype)
        got = getattr(fx, name)(x, axis=axis, out=out)
        assert got is out
        assert_result(out, getattr(ref, name)(x, axis=axis), rtol=rtol, atol=atol,
                      err_msg=f"axis={axis}")


def test_out_for_int_input(fx, ref, name):
    x = np.array([[1, 2, 3], [4, 4, 0]], dtype=np.int16)
    out = np.empty((2, 3), np.float32)
    assert getattr(fx, name)(x, axis=1, out=out) is out
    assert_result(out, getattr(ref, name)(x, axis=1), rtol=1e-6, atol=0)


def test_out_zero_dim(fx, name):
    out = np.empty((), np.float64)
    assert getattr(fx, name)(np.array(2.0), out=out) is out
    assert out[()] == (1.0 if name == "softmax" else 0.0)


# ---------------------------------------------------------------------------
# broadcast (stride 0) input

@pytest.mark.parametrize("base_shape, axis", [
    ((1, 2, 1, 1), -2), ((2, 1, 1), -2), ((2, 1, 1), 0), ((1, 2, 1, 3), (0, 2)), ((2, 1, 1), None)])
@pytest.mark.parametrize("out_order", ["new", "C", "F"])
def test_broadcast_input(fx, torch, name, base_shape, axis, out_order, rng):
    # stride-0 kept axes merge in the input's own view but in no full-size
    # output, which used to fail with a TypeError
    base = rng.standard_normal(base_shape)
    x = np.broadcast_to(base, (2, 2, 2, 3)[-len(base_shape):])
    dense = np.ascontiguousarray(x)
    kwargs = {} if out_order == "new" else {"out": np.empty(x.shape, order=out_order)}
    got = getattr(fx, name)(x, axis=axis, **kwargs)
    np.testing.assert_allclose(got, getattr(fx, name)(dense, axis=axis), rtol=1e-15)
    if isinstance(axis, int):
        want = getattr(torch, name)(torch.from_numpy(base).expand(x.shape), axis).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-13)


@pytest.mark.parametrize("n", [183, 20000])
def test_float32_long_strided_axis_is_accurate(fx, ref, n):
    # along a strided axis the reference sums float32 terms one after the
    # other (off by up to n half-ulps: 3e-5 at n = 20000); fastxent stays
    # within a few ulp of the exact result
    x = np.random.default_rng(1).integers(-6, 7, size=(n, 3)).astype(np.float32)
    exact = np.exp(x.astype(np.float64) - x.max(axis=0))
    exact /= exact.sum(axis=0)
    got = fx.softmax(x, axis=0)
    np.testing.assert_allclose(got, exact, rtol=4 * np.finfo(np.float32).eps)
    np.testing.assert_allclose(fx.log_softmax(x, axis=0), np.log(exact), rtol=0,
                               atol=8 * np.finfo(np.float32).eps)
    np.testing.assert_allclose(ref.softmax(x, axis=0), exact, rtol=n * np.finfo(np.float32).eps / 2)
