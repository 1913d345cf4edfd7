"""Any memory layout gives the result of a contiguous copy; out= may be a
non-contiguous view."""

import numpy as np
import pytest

from arrays import (Failures, assert_agree, assert_result, axes_for, layouts, misaligned,
                    random_array, tolerance)

FUNCS = ("logsumexp", "softmax", "log_softmax")
DTYPES = (np.float64, np.float32, np.float16, np.int16)


@pytest.mark.parametrize("dtype", DTYPES, ids=[np.dtype(d).name for d in DTYPES])
@pytest.mark.parametrize("name", FUNCS)
def test_layouts_match_contiguous_copy(fx, tmp_path, name, dtype):
    rng = np.random.default_rng(11)
    f = getattr(fx, name)
    failures = Failures()
    for base in (random_array((37, 23), dtype, rng), random_array((6, 7, 9), dtype, rng)):
        for label, arr in layouts(base, tmp_path):
            copy = np.array(arr, order="C")
            before = copy.copy()
            for axis in axes_for(arr.ndim):
                case = f"{name} {base.shape} {label}, axis={axis}"
                with failures.case(case):
                    want = f(copy, axis=axis)
                    rtol, atol = tolerance(name, np.asarray(want).dtype, copy)
                    assert_result(f(arr, axis=axis), want, rtol=rtol, atol=atol, err_msg=case)
            with failures.case(f"{label}: input modified"):
                np.testing.assert_array_equal(arr, before)
    failures.check()


def test_weights_in_any_layout(fx, ref):
    rng = np.random.default_rng(5)
    a = rng.standard_normal((12, 17))
    b = rng.uniform(0, 2, (12, 17))
    b[rng.random(b.shape) < 0.2] = 0
    for label, bb in [("F", np.asfortranarray(b)), ("reversed", b[::-1, ::-1].copy()[::-1, ::-1]),
                      ("strided", np.repeat(b, 2, axis=1)[:, ::2]), ("misaligned", misaligned(b))]:
        np.testing.assert_array_equal(bb, b)
        for axis in (None, 0, 1):
            want = ref.logsumexp(a, axis=axis, b=b, return_sign=True)
            got = fx.logsumexp(np.asfortranarray(a), axis=axis, b=bb, return_sign=True)
            assert_result(got, want, rtol=1e-13, atol=1e-14, err_msg=f"{label} axis={axis}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16, np.int32],
                         ids=["float64", "float32", "float16", "int32"])
@pytest.mark.parametrize("name", FUNCS)
def test_byte_swapped_input(fx, name, dtype):
    # non-native byte order (data read from a big-endian file): SciPy accepts
    # it and returns the native dtype
    x = random_array((5, 8), dtype, np.random.default_rng(6))
    swapped = x.astype(x.dtype.newbyteorder())
    f = getattr(fx, name)
    for axis in (None, 0, 1):
        assert_result(f(swapped, axis=axis), f(x, axis=axis), rtol=0, atol=0, err_msg=str(axis))
    if name == "logsumexp":
        b = np.linspace(0, 2, x.size).reshape(x.shape)
        assert_result(f(x, axis=1, b=b.astype(b.dtype.newbyteorder())), f(x, axis=1, b=b),
                      rtol=0, atol=0)


# ---------------------------------------------------------------------------
# out= into non-contiguous arrays

def _out_views(shape, dtype):
    """Writable non-contiguous arrays of `shape`, each inside a sentinel-filled
    parent, as (label, parent, view)."""
    big = tuple(2 * n + 1 for n in shape)
    parent = np.full(big, 7.0, dtype)
    yield "strided", parent, parent[tuple(slice(0, 2 * n, 2) for n in shape)]
    parent = np.full(big, 7.0, dtype)
    yield "negative strides", parent, parent[tuple(slice(2 * n - 1, None, -2) for n in shape)]
    parent = np.full(shape[::-1], 7.0, dtype)
    yield "F order", parent, parent.T
    parent = np.full((shape[0] + 3,) + shape[1:], 7.0, dtype)
    yield "offset", parent, parent[3:]


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16],
                         ids=["float64", "float32", "float16"])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_out_non_contiguous_softmax(fx, name, dtype):
    x = random_array((5, 6, 7), dtype, np.random.default_rng(2))
    f = getattr(fx, name)
    for axis in (None, 0, 1, -1, (0, 2)):
        want = f(x, axis=axis)
        for label, parent, out in _out_views(x.shape, dtype):
            sentinel = parent.copy()
            got = f(x, axis=axis, out=out)
            assert got is out, label
            # another out layout may take another kernel (rows, columns, short
            # rows), which rounds differently: equal to a few ulp, not bitwise
            assert_agree(out, want, x, name, f"{label} axis={axis}")
            # nothing outside the view was written
            written = np.zeros(parent.shape, bool)
            np.copyto(_same_view(written, parent, out), True)
            np.testing.assert_array_equal(parent[~written], sentinel[~written], err_msg=label)


def _same_view(arr, parent, view):
    """The view of `arr` that `view` is of `parent` (same offset and strides)."""
    offset = view.__array_interface__["data"][0] - parent.__array_interface__["data"][0]
    return np.lib.stride_tricks.as_strided(
        arr.ravel()[offset // parent.itemsize:], shape=view.shape,
        strides=tuple(s // parent.itemsize * arr.itemsize for s in view.strides))


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16],
                         ids=["float64", "float32", "float16"])
@pytest.mark.parametrize("return_sign", [False, True])
def test_out_non_contiguous_logsumexp(fx, dtype, return_sign):
    x = random_array((5, 6, 7), dtype, np.random.default_rng(3))
    for axis, keepdims in ((1, False), (2, True), ((0, 2), False), (0, True)):
        want = fx.logsumexp(x, axis=axis, keepdims=keepdims, return_sign=return_sign)
        shape = np.shape(want[0] if return_sign else want)
        for label, parent, out in _out_views(shape, dtype):
            sentinel = parent.copy()
            got = fx.logsumexp(x, axis=axis, keepdims=keepdims, return_sign=return_sign, out=out)
            if return_sign:
                assert got[0] is out, label
                np.testing.assert_array_equal(got[1], want[1], err_msg=label)
                assert_agree(out, want[0], x, "logsumexp", f"{label} axis={axis}")
            else:
                assert got is out, label
                assert_agree(out, want, x, "logsumexp", f"{label} axis={axis}")
            written = np.zeros(parent.shape, bool)
            np.copyto(_same_view(written, parent, out), True)
            np.testing.assert_array_equal(parent[~written], sentinel[~written], err_msg=label)


def test_out_misaligned_and_byte_swapped(fx):
    x = random_array((4, 9), np.float64, np.random.default_rng(4))
    want = fx.softmax(x, axis=1)
    out = misaligned(np.zeros((4, 9)))
    assert fx.softmax(x, axis=1, out=out) is out
    np.testing.assert_array_equal(out, want)
    # a byte-swapped out has another dtype than the result: refused
    swapped = np.zeros((4, 9), np.dtype(np.float64).newbyteorder())
    with pytest.raises(ValueError):
        fx.softmax(x, axis=1, out=swapped)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape", [(40, 3), (5, 3000), (3000, 2)], ids=["short rows", "rows", "split"])
def test_out_is_the_input_itself(fx, name, shape):
    # every kernel path, with special rows, writing over its own input
    rng = np.random.default_rng(9)
    x = rng.standard_normal(shape)
    x[0, 0] = np.inf
    x[1] = -np.inf
    x[2, 1] = np.nan
    want = getattr(fx, name)(x, axis=1 if shape[1] > 2 else 0)
    y = x.copy()
    got = getattr(fx, name)(y, axis=1 if shape[1] > 2 else 0, out=y)
    assert got is y
    np.testing.assert_array_equal(got, want)


def _explicit_native(a):
    """`a` with its native byte order spelled out ('<' on a little-endian
    machine), as zarr's arrays have it: buffer format '<f', not 'f'."""
    a = np.asarray(a)
    order = "<" if np.little_endian else ">"
    return a.astype(a.dtype.newbyteorder(order))


def test_explicit_native_byte_order_is_native(fx):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((6, 5)).astype(np.float32)
    y = rng.standard_normal((6, 5)).astype(np.float32)
    p = rng.dirichlet(np.ones(5), 6).astype(np.float32)
    labels, w = np.array([0, 4, 1, 2, 3, 1]), np.linspace(0.5, 2, 5).astype(np.float32)
    bits = (rng.random((6, 5)) < 0.5).astype(np.float32)
    e = _explicit_native
    assert memoryview(e(x)).format[0] in "<>"
    calls = [
        ("logsumexp", (x,), dict(axis=1, b=p)),
        ("softmax", (x,), dict(axis=1)),
        ("log_softmax", (x,), dict(axis=0)),
        ("cross_entropy", (x, labels), dict(weight=w, reduction="none")),
        ("cross_entropy", (x, p), dict(return_grad=True)),
        ("nll_loss", (x, labels), dict(weight=w, return_grad=True)),
        ("kl_div", (x, p), dict(reduction="none")),
        ("binary_cross_entropy_with_logits", (x, bits), dict(pos_weight=w, return_grad=True)),
        ("entropy", (p,), dict(qk=p[::-1], axis=1)),
        ("softmax_entropy", (x,), {}),
        ("softmax_cross_entropy", (x, y), {}),
        ("softmax_kl_div", (x, y), {}),
        ("score_rows", (x, labels), {}),
    ]
    for name, args, kw in calls:
        f = getattr(fx, name)
        want = f(*args, **kw)
        got = f(*[e(a) for a in args],
                **{k: e(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()})
        for g, w_ in zip(got if isinstance(got, tuple) else (got,),
                         want if isinstance(want, tuple) else (want,)):
            assert_result(g, w_, rtol=0, atol=0, err_msg=name)
