"""Property-based tests (hypothesis): invariants of the three functions and
agreement across dtypes, axes, memory layouts and thread counts."""

import numpy as np
import pytest

pytest.importorskip("hypothesis")
from hypothesis import given, strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from arrays import (  # noqa: E402
    assert_bitwise_equal,
    assert_same_outcome,
    axes_for,
    outcome,
    result_dtype,
    tolerance,
)

FUNCS = ("logsumexp", "softmax", "log_softmax")
FLOATS = (np.float64, np.float32)


def shapes(min_dims=1, max_dims=3, max_side=7):
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=max_side)


def dyadic(dtype, shape):
    """Multiples of 1/8 in [-100, 100]: exactly representable, so x + c is exact."""
    return hnp.arrays(dtype, shape, elements=st.integers(-800, 800).map(lambda i: i / 8))


def finite(dtype, shape, bound=300.0):
    width = 32 if dtype == np.float32 else 64
    return hnp.arrays(dtype, shape, elements=st.floats(-bound, bound, width=width))


def with_specials(dtype, shape):
    width = 32 if dtype == np.float32 else 64
    elements = st.one_of(
        st.sampled_from([np.inf, -np.inf, np.nan, 0.0, -0.0]),
        st.floats(-1e3, 1e3, width=width),
    )
    return hnp.arrays(dtype, shape, elements=elements)


@st.composite
def array_and_axis(draw, strategy=finite, dtypes=FLOATS, min_dims=1, max_dims=3):
    dtype = draw(st.sampled_from(dtypes))
    x = draw(strategy(dtype, draw(shapes(min_dims, max_dims))))
    axis = draw(st.sampled_from(axes_for(x.ndim)))
    return x, axis


def n_reduced(x, axis):
    if axis is None:
        return x.size
    axes = axis if isinstance(axis, tuple) else (axis,)
    return int(np.prod([x.shape[a] for a in axes]))


def eps(dtype):
    return float(np.finfo(dtype).eps)


# ---------------------------------------------------------------------------
# agreement with the reference, special values included

@given(array_and_axis(strategy=with_specials), st.sampled_from(FUNCS))
def test_matches_reference(fx, ref, x_axis, name):
    x, axis = x_axis
    rtol, atol = tolerance(name, x.dtype, x)
    assert_same_outcome(outcome(getattr(fx, name), x, axis=axis),
                        outcome(getattr(ref, name), x, axis=axis),
                        rtol=rtol, atol=atol, err_msg=f"{name} axis={axis}")


@given(array_and_axis(dtypes=(np.float64,)), st.booleans())
def test_weighted_logsumexp_matches_reference(fx, ref, x_axis, return_sign):
    x, axis = x_axis
    b = np.abs(np.sin(x)) * (x > -100)  # some zero weights, data-dependent
    rtol, atol = tolerance("logsumexp", x.dtype, x)
    assert_same_outcome(outcome(fx.logsumexp, x, axis=axis, b=b, return_sign=return_sign),
                        outcome(ref.logsumexp, x, axis=axis, b=b, return_sign=return_sign),
                        rtol=rtol, atol=atol)


# ---------------------------------------------------------------------------
# invariants

@given(array_and_axis(strategy=dyadic), st.integers(-100, 100))
def test_shift_invariance(fx, x_axis, c):
    x, axis = x_axis
    y = x + x.dtype.type(c)  # exact: dyadic values
    e = eps(x.dtype)
    tiny = float(np.finfo(x.dtype).tiny)
    np.testing.assert_allclose(fx.softmax(y, axis=axis), fx.softmax(x, axis=axis),
                               rtol=4 * e, atol=tiny)
    np.testing.assert_allclose(fx.log_softmax(y, axis=axis), fx.log_softmax(x, axis=axis),
                               rtol=4 * e, atol=tiny)
    lse_y = np.asarray(fx.logsumexp(y, axis=axis), dtype=np.float64)
    lse_x = np.asarray(fx.logsumexp(x, axis=axis), dtype=np.float64)
    scale = np.abs(x).max() + abs(c) + np.log(x.size) + 1
    np.testing.assert_allclose(lse_y, lse_x + c, rtol=0, atol=8 * e * scale)


@given(array_and_axis())
def test_softmax_sums_to_one(fx, x_axis):
    x, axis = x_axis
    s = fx.softmax(x, axis=axis)
    assert s.dtype == x.dtype and s.shape == x.shape
    assert np.all((s >= 0) & (s <= 1))
    n = n_reduced(x, axis)
    total = np.sum(s.astype(np.float64), axis=axis)
    np.testing.assert_allclose(total, 1.0, rtol=0, atol=eps(x.dtype) * (n + 16))


@given(array_and_axis())
def test_logsumexp_between_max_and_max_plus_log_n(fx, x_axis):
    x, axis = x_axis
    lse = np.asarray(fx.logsumexp(x, axis=axis), dtype=np.float64)
    m = np.max(x, axis=axis).astype(np.float64)
    n = n_reduced(x, axis)
    assert np.all(lse >= m)
    slack = 4 * eps(x.dtype) * (np.abs(m) + np.log(n) + 1)
    assert np.all(lse <= m + np.log(n) + slack)


@given(array_and_axis())
def test_exp_log_softmax_is_softmax(fx, x_axis):
    x, axis = x_axis
    ls = fx.log_softmax(x, axis=axis)
    s = fx.softmax(x, axis=axis)
    assert ls.dtype == s.dtype == x.dtype
    assert np.all(ls <= 0)
    # exp turns an absolute error eps*|ls| of ls into a relative one
    ls64 = ls.astype(np.float64)
    bound = eps(x.dtype) * (np.abs(ls64) + 8) * np.exp(ls64) + float(np.finfo(x.dtype).tiny)
    assert np.all(np.abs(np.exp(ls64) - s) <= bound)


@given(array_and_axis())
def test_log_softmax_is_x_minus_logsumexp(fx, x_axis):
    x, axis = x_axis
    ls = fx.log_softmax(x, axis=axis).astype(np.float64)
    lse = np.asarray(fx.logsumexp(x, axis=axis, keepdims=True), dtype=np.float64)
    scale = np.abs(x).max() + np.log(x.size) + 1
    np.testing.assert_allclose(ls, x - lse, rtol=0, atol=8 * eps(x.dtype) * scale)


# ---------------------------------------------------------------------------
# agreement across dtypes, axes, layouts and thread counts

@given(array_and_axis(strategy=dyadic, dtypes=(np.float32,)), st.sampled_from(FUNCS))
def test_float32_agrees_with_float64(fx, x_axis, name):
    x, axis = x_axis
    got = np.asarray(getattr(fx, name)(x, axis=axis), dtype=np.float64)
    want = np.asarray(getattr(fx, name)(x.astype(np.float64), axis=axis))
    rtol, atol = tolerance(name, np.float32, x)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


@given(array_and_axis(strategy=dyadic, dtypes=(np.float32,)), st.sampled_from(FUNCS))
def test_float16_is_float32_rounded(fx, x_axis, name):
    x, axis = x_axis
    x16 = (x / 16).astype(np.float16)  # values in [-6.25, 6.25], exact in float16
    got = np.asarray(getattr(fx, name)(x16, axis=axis))
    want = np.asarray(getattr(fx, name)(x16.astype(np.float32), axis=axis))
    assert got.dtype == np.float16
    # one rounding of (nearly) the same float32 value: within one float16 ulp
    spacing = np.spacing(np.abs(want).astype(np.float16)).astype(np.float64)
    assert np.all(np.abs(got.astype(np.float64) - want) <= spacing)


@given(array_and_axis(strategy=dyadic, dtypes=(np.float64,)), st.sampled_from(FUNCS),
       st.sampled_from([np.int8, np.int16, np.int32, np.int64, np.uint8]))
def test_ints_agree_with_floats(fx, x_axis, name, int_dtype):
    x, axis = x_axis
    xi = np.clip(np.round(x), 0 if np.dtype(int_dtype).kind == "u" else -100, 100).astype(int_dtype)
    got = getattr(fx, name)(xi, axis=axis)
    as_float = xi.astype(result_dtype(name, int_dtype))
    want = getattr(fx, name)(as_float, axis=axis)
    assert np.asarray(got).dtype == np.asarray(want).dtype
    rtol, atol = tolerance(name, np.asarray(want).dtype, as_float)
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64),
                               rtol=rtol, atol=atol)


@given(array_and_axis(min_dims=2), st.sampled_from(FUNCS))
def test_axis_agrees_with_moved_axis(fx, x_axis, name):
    x, axis = x_axis
    if not isinstance(axis, int):
        return
    f = getattr(fx, name)
    got = np.asarray(f(x, axis=axis), dtype=np.float64)
    moved = np.ascontiguousarray(np.moveaxis(x, axis, -1))
    want = np.asarray(f(moved, axis=-1), dtype=np.float64)
    if name != "logsumexp":
        want = np.moveaxis(want, -1, axis)
    rtol, atol = tolerance(name, x.dtype, x)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


@given(array_and_axis(min_dims=2), st.sampled_from(FUNCS))
def test_axis_tuple_agrees_with_reshape(fx, x_axis, name):
    x, _ = x_axis
    f = getattr(fx, name)
    got = np.asarray(f(x, axis=(0, 1)), dtype=np.float64)
    flat = x.reshape((-1,) + x.shape[2:])
    want = np.asarray(f(flat, axis=0), dtype=np.float64)
    if name != "logsumexp":
        want = want.reshape(x.shape)
    rtol, atol = tolerance(name, x.dtype, x)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


@given(array_and_axis(strategy=with_specials), st.sampled_from(FUNCS),
       st.sampled_from(["F", "strided", "reversed"]))
def test_layouts_agree(fx, x_axis, name, layout):
    x, axis = x_axis
    if layout == "F":
        y = np.asfortranarray(x)
    elif layout == "strided":
        big = np.zeros(tuple(2 * n for n in x.shape), x.dtype)
        y = big[tuple(slice(None, None, 2) for _ in x.shape)]
        y[...] = x
    else:
        y = np.flip(np.flip(x).copy())  # same values, negative strides
    np.testing.assert_array_equal(y, x)
    f = getattr(fx, name)
    rtol, atol = tolerance(name, x.dtype, x)
    assert_same_outcome(outcome(f, y, axis=axis), outcome(f, x, axis=axis), rtol=rtol, atol=atol,
                        err_msg=layout)


@given(array_and_axis(max_dims=2), st.sampled_from(FUNCS))
def test_thread_counts_agree_bitwise(fx, x_axis, name):
    x, axis = x_axis
    f = getattr(fx, name)
    one = f(x, axis=axis, n_threads=1)
    for n in (2, 3):
        assert_bitwise_equal(f(x, axis=axis, n_threads=n), one, f"n_threads={n}")
