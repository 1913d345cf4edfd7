"""Every bad argument gets a clear exception of the right type, never a crash;
inputs are never modified and repeated calls leak no references."""

import gc
import re
import sys

import numpy as np
import pytest

from arrays import zoo

AxisError = np.exceptions.AxisError if hasattr(np, "exceptions") else np.AxisError

FUNCS = ("logsumexp", "softmax", "log_softmax")
# the name each function gives its data argument
DATA_ARG = {"logsumexp": "a", "softmax": "x", "log_softmax": "x"}


def names_argument(message, name):
    """True if `message` names the argument `name` as a word of its own."""
    return re.search(rf"(^|[\s'`\"(]){re.escape(name)}([\s'`\":=),.]|$)", message) is not None


@pytest.fixture(params=FUNCS)
def name(request):
    return request.param


X = np.array([[0.5, 1.0, -2.0], [3.0, 0.0, 1.0]])


# ---------------------------------------------------------------------------
# data of the wrong kind

COMPLEX_INPUTS = [
    np.array([1 + 2j, 3 + 0j]),
    np.array([1, 2], dtype=np.complex64),
    [1j, 2.0],
    1 + 2j,
    np.complex128(1),
]


@pytest.mark.parametrize("value", COMPLEX_INPUTS, ids=range(len(COMPLEX_INPUTS)))
def test_complex_raises_type_error_mentioning_complex(fx, name, value):
    with pytest.raises(TypeError, match="complex"):
        getattr(fx, name)(value)


@pytest.mark.parametrize("value", COMPLEX_INPUTS, ids=range(len(COMPLEX_INPUTS)))
def test_complex_weights_raise(fx, value):
    with pytest.raises(TypeError, match="complex"):
        fx.logsumexp(np.array([1.0, 2.0]), b=np.broadcast_to(np.asarray(value), (2,)))


NON_NUMERIC = [
    ("string array", np.array(["a", "b"])),
    ("list of strings", ["1.0", "2.0"]),
    ("bytes array", np.array([b"a", b"b"])),
    ("str", "abc"),
    ("object array of floats", np.array([1.0, 2.0], dtype=object)),
    ("object array of None", np.array([None, None])),
    ("None", None),
    ("dict", {"a": 1}),
    ("void", np.zeros(2, dtype="V8")),
    ("structured", np.zeros(2, dtype=[("f", np.float64)])),
    ("datetime", np.array(["2020-01-01"], dtype="datetime64[D]")),
    ("timedelta", np.array([1, 2], dtype="timedelta64[s]")),
]


@pytest.mark.parametrize("value", [v for _, v in NON_NUMERIC], ids=[d for d, _ in NON_NUMERIC])
def test_non_numeric_data_raises_type_error_naming_it(fx, name, value):
    with pytest.raises(TypeError) as info:
        getattr(fx, name)(value)
    assert names_argument(str(info.value), DATA_ARG[name]), str(info.value)


@pytest.mark.parametrize("value", [v for _, v in NON_NUMERIC if v is not None],
                         ids=[d for d, v in NON_NUMERIC if v is not None])
def test_non_numeric_weights_raise_type_error_naming_b(fx, value):
    with pytest.raises(TypeError) as info:
        fx.logsumexp(np.array([1.0, 2.0]), b=value)
    assert names_argument(str(info.value), "b"), str(info.value)


def test_ragged_list_raises(fx, name):
    # NumPy itself raises ValueError for ragged nesting; either is clear
    with pytest.raises((TypeError, ValueError)):
        getattr(fx, name)([[1.0, 2.0], [3.0]])
    if name == "logsumexp":
        with pytest.raises((TypeError, ValueError)):
            fx.logsumexp([1.0, 2.0], b=[[1.0, 2.0], [3.0]])


def test_bool_softmax_raises_type_error(fx):
    for f in (fx.softmax, fx.log_softmax):
        with pytest.raises(TypeError):
            f(np.array([True, False]))
        with pytest.raises(TypeError):
            f(True)


# ---------------------------------------------------------------------------
# axis

@pytest.mark.parametrize("axis", [2, -3, 100, (0, 2), (-3,), (0, 1, 2)])
def test_axis_out_of_range_raises_axis_error(fx, name, axis):
    with pytest.raises(AxisError):
        getattr(fx, name)(X, axis=axis)


@pytest.mark.parametrize("axis", [(0, 0), (1, -1), (0, 1, 0), (-2, 0)])
def test_repeated_axis_raises_value_error(fx, name, axis):
    with pytest.raises(ValueError, match="(?i)repeat|duplicate"):
        getattr(fx, name)(X, axis=axis)


@pytest.mark.parametrize("axis", [1.0, "0", [0.5], (0, 1.0), (0, None)])
def test_non_integer_axis_raises_type_error(fx, name, axis):
    with pytest.raises(TypeError):
        getattr(fx, name)(X, axis=axis)


def test_axis_out_of_range_on_empty_input(fx, name):
    with pytest.raises(AxisError):
        getattr(fx, name)(np.zeros((2, 0)), axis=2)
    with pytest.raises(AxisError):
        getattr(fx, name)(np.zeros((2, 0)), axis=(0, 5))


def test_axis_on_zero_dim_input(fx, name):
    with pytest.raises(AxisError):
        getattr(fx, name)(np.array(1.0), axis=1)
    with pytest.raises(AxisError):
        getattr(fx, name)(np.array(1.0), axis=-2)


# ---------------------------------------------------------------------------
# b

@pytest.mark.parametrize("b_shape", [(4,), (3, 3), (2, 2), (3, 2, 2), (0,)])
def test_b_not_broadcasting_raises_value_error(fx, b_shape):
    with pytest.raises(ValueError):
        fx.logsumexp(X, b=np.ones(b_shape))


def test_b_not_broadcasting_scipy_agrees(scipy_special):
    with pytest.raises(ValueError):
        scipy_special.logsumexp(X, b=np.ones(4))


# ---------------------------------------------------------------------------
# out=

def _call(fx, name, out, x=X, **kwargs):
    return getattr(fx, name)(x, axis=1, out=out, **kwargs)


def _good_out(name):
    return np.empty(2) if name == "logsumexp" else np.empty((2, 3))


def test_good_out_accepted(fx, name):
    out = _good_out(name)
    assert _call(fx, name, out) is out


@pytest.mark.parametrize("which", ["too small", "too big", "missing axis", "extra axis",
                                   "transposed", "zero-dim"])
def test_out_wrong_shape_raises_value_error(fx, name, which):
    shape = _good_out(name).shape
    bad = {
        "too small": tuple(n - 1 for n in shape),
        "too big": tuple(n + 1 for n in shape),
        "missing axis": shape[1:],
        "extra axis": shape + (1,),
        "transposed": shape[::-1] if len(shape) > 1 else (1, shape[0]),
        "zero-dim": (),
    }[which]
    with pytest.raises(ValueError):
        _call(fx, name, np.empty(bad))


def test_out_keepdims_shape_must_match(fx):
    with pytest.raises(ValueError):
        fx.logsumexp(X, axis=1, keepdims=True, out=np.empty(2))
    with pytest.raises(ValueError):
        fx.logsumexp(X, axis=1, keepdims=False, out=np.empty((2, 1)))


def test_out_scalar_result_needs_zero_dim_out(fx):
    with pytest.raises(ValueError):
        fx.logsumexp(X, out=np.empty(1))


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int64, np.complex128, object])
def test_out_wrong_dtype_raises_value_error(fx, name, dtype):
    out = np.zeros(_good_out(name).shape, dtype=dtype)
    with pytest.raises(ValueError):
        _call(fx, name, out)


def test_out_dtype_must_be_the_result_dtype_for_ints(fx):
    # int16 -> softmax result float32; logsumexp result float64
    x = np.array([[1, 2, 3]], dtype=np.int16)
    with pytest.raises(ValueError):
        fx.softmax(x, axis=1, out=np.empty((1, 3), np.float64))
    with pytest.raises(ValueError):
        fx.logsumexp(x, axis=1, out=np.empty(1, np.float32))


@pytest.mark.parametrize("bad", [[0.0, 0.0], (0.0, 0.0), 0.0, "out"], ids=["list", "tuple", "float", "str"])
def test_out_not_an_ndarray_raises(fx, name, bad):
    # NumPy's ufuncs raise TypeError here; the brief only says the out check
    # fails, so either type of the two is accepted
    with pytest.raises((TypeError, ValueError)):
        _call(fx, name, bad)


def test_out_read_only_raises_value_error(fx, name):
    out = _good_out(name)
    out.flags.writeable = False
    with pytest.raises(ValueError):
        _call(fx, name, out)


def test_out_and_n_threads_are_keyword_only(fx):
    # out and n_threads are keyword-only
    with pytest.raises(TypeError):
        fx.logsumexp(X, 1, None, False, False, np.empty(2))
    with pytest.raises(TypeError):
        fx.softmax(X, 1, np.empty((2, 3)))
    with pytest.raises(TypeError):
        fx.log_softmax(X, 1, np.empty((2, 3)))


def test_failed_out_check_leaves_out_untouched(fx, name):
    out = np.full(_good_out(name).shape, 7.0, np.float32)
    with pytest.raises(ValueError):
        _call(fx, name, out)
    assert np.all(out == 7.0)


# ---------------------------------------------------------------------------
# n_threads

@pytest.mark.parametrize("n", [0, -1, -100])
def test_n_threads_below_one_raises_value_error(fx, name, n):
    with pytest.raises(ValueError):
        getattr(fx, name)(X, axis=1, n_threads=n)


@pytest.mark.parametrize("n", [2.5, 2.0, "2", [2], 1j])
def test_n_threads_not_an_integer_raises_type_error(fx, name, n):
    with pytest.raises(TypeError):
        getattr(fx, name)(X, axis=1, n_threads=n)


@pytest.mark.parametrize("n", [None, 1, 2, 3, 64, np.int64(2), np.int32(1)])
def test_n_threads_valid(fx, ref, name, n):
    got = getattr(fx, name)(X, axis=1, n_threads=n)
    np.testing.assert_allclose(got, getattr(ref, name)(X, axis=1), rtol=1e-14)


def test_n_threads_checked_on_every_path(fx, name):
    # the same check on the short path (2-d C-contiguous float32/64, last
    # axis), the general path and the empty-input path
    for x, axis in ((X, 1), (X, 0), (X.astype(np.float32), -1), (X.astype(np.float16), 1),
                    (np.zeros((2, 0)), 0), (np.asfortranarray(X), 1)):
        with pytest.raises(ValueError):
            getattr(fx, name)(x, axis=axis, n_threads=0)
        with pytest.raises(TypeError):
            getattr(fx, name)(x, axis=axis, n_threads=1.5)


# ---------------------------------------------------------------------------
# inputs are never modified; no reference leaks

def test_inputs_not_modified(fx, name):
    for desc, arr in zoo(dtypes=[np.float64, np.float32, np.float16, np.int16]):
        before = arr.copy()
        for axis in (None, -1):
            try:
                getattr(fx, name)(arr, axis=axis)
            except ValueError:  # zero-length axis in softmax
                pass
        np.testing.assert_array_equal(arr, before, err_msg=desc)
        assert arr.dtype == before.dtype, desc


def test_weights_not_modified(fx):
    a = np.array([[np.nan, 1.0, 2.0], [np.inf, 0.0, -1.0]])
    b = np.array([[0.0, 1.0, -1.0], [0.0, 2.0, 0.5]])
    a0, b0 = a.copy(), b.copy()
    fx.logsumexp(a, axis=1, b=b, return_sign=True)
    fx.logsumexp(a, b=b)
    np.testing.assert_array_equal(a, a0)
    np.testing.assert_array_equal(b, b0)


def test_list_input_not_modified(fx, name):
    x = [[1.0, 2.0], [3.0, float("inf")]]
    copy = [row[:] for row in x]
    getattr(fx, name)(x, axis=1)
    assert x == copy


def _refcounts(*objs):
    return [sys.getrefcount(o) for o in objs]


@pytest.mark.parametrize("case", ["small 2-d", "general", "float16", "int", "empty", "out",
                                  "weights", "zero-dim", "error"])
def test_no_reference_leaks(fx, name, case):
    x = {
        "small 2-d": np.array([[1.0, 2.0, 3.0]]),
        "general": np.arange(24.0).reshape(2, 3, 4)[:, ::-1],
        "float16": np.ones((3, 4), np.float16),
        "int": np.arange(6, dtype=np.int16).reshape(2, 3),
        "empty": np.zeros((2, 0)),
        "out": np.ones((2, 3)),
        "weights": np.ones((2, 3)),
        "zero-dim": np.array(1.0),
        "error": np.ones((2, 3)),
    }[case]
    f = getattr(fx, name)
    out = None
    kwargs = {}
    if case == "out":
        out = np.empty(2) if name == "logsumexp" else np.empty((2, 3))
        kwargs = {"axis": 1, "out": out}
    if case == "weights":
        if name != "logsumexp":
            pytest.skip("b is logsumexp's")
        kwargs = {"axis": 1, "b": np.full((2, 3), 0.5), "return_sign": True}
    if case == "empty":
        kwargs = {"axis": 0}
    if case == "error":
        kwargs = {"axis": 5}

    def call():
        try:
            f(x, **kwargs)
        except AxisError:
            assert case == "error"

    for _ in range(5):  # warm caches
        call()
    gc.collect()
    tracked = [x] + [v for v in kwargs.values() if isinstance(v, np.ndarray)]
    before = _refcounts(*tracked)
    for _ in range(100):
        call()
    gc.collect()
    assert _refcounts(*tracked) == before


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_ndarray_subclasses_and_ragged_lists(fx):
    m = np.matrix([[1.0, 2.0], [3.0, 0.5]])
    np.testing.assert_allclose(fx.logsumexp(m, axis=1), np.log(np.exp(np.asarray(m)).sum(1)))
    np.testing.assert_allclose(fx.softmax(m, axis=1).sum(axis=1), 1)
    # NumPy's own message, which SciPy passes on
    with pytest.raises(ValueError, match="inhomogeneous shape"):
        fx.logsumexp([[1.0, 2.0], [3.0]])


# ---------------------------------------------------------------------------
# arguments found wrongly handled by a fuzzing pass: each a clear exception
# naming the argument, or the peer's result

LOSS_X = np.zeros((4, 5))
LOSS_Y = np.array([0, 1, 2, 3])


@pytest.mark.parametrize("value, error", [
    ("a", TypeError), (None, TypeError), ([0.1], TypeError), (1j, TypeError),
    ("0.1", TypeError), (b"0.1", TypeError), (np.array(0.1), TypeError),
    (10**400, ValueError), (-0.1, ValueError), (float("nan"), ValueError),
])
def test_label_smoothing_types_and_range(fx, value, error):
    # PyTorch and the reference: TypeError naming it for what is not a real
    # number (a string was parsed, a 0-d array taken); ValueError out of [0, 1]
    # (an int beyond float64: PyTorch's OverflowError)
    from fastxent import reference

    for f in (fx.cross_entropy, reference.cross_entropy):
        with pytest.raises(error, match="label_smoothing"):
            f(LOSS_X, LOSS_Y, label_smoothing=value)
    try:
        import dask.array as da
    except ImportError:
        return
    with pytest.raises(error, match="label_smoothing"):
        fx.cross_entropy(da.from_array(LOSS_X), LOSS_Y, label_smoothing=value)


@pytest.mark.parametrize("value, eps", [(True, 1.0), (False, 0.0), (np.True_, 1.0),
                                        (np.float32(0.5), 0.5), (np.int64(1), 1.0), (1, 1.0)])
def test_label_smoothing_numbers_as_pytorch(fx, value, eps):
    # bools and NumPy numbers are the numbers they hold, as PyTorch takes them
    want = fx.cross_entropy(LOSS_X, LOSS_Y, label_smoothing=eps)
    assert fx.cross_entropy(LOSS_X, LOSS_Y, label_smoothing=value) == want
    from fastxent import reference

    assert reference.cross_entropy(LOSS_X, LOSS_Y, label_smoothing=value) == pytest.approx(want)


def test_numbers_beyond_float64(fx):
    # an int beyond float64 is out of range for a temperature and a
    # smoothing (not an OverflowError from inside); a finite logarithm base
    big = 10**400
    for call in (lambda: fx.score(LOSS_X, LOSS_Y, temperature=big),
                 lambda: fx.score_rows(LOSS_X, LOSS_Y, temperature=big),
                 lambda: fx.Scorer(temperature=big)):
        with pytest.raises(ValueError, match="temperature"):
            call()
    p = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(fx.entropy(p, base=big), fx.entropy(p) / (400 * np.log(10)),
                               rtol=1e-14)


@pytest.mark.parametrize("value", ["x", None, True, [1.0]])
def test_temperature_of_the_wrong_type_is_a_type_error_everywhere(fx, value):
    for call in (lambda: fx.score(LOSS_X, LOSS_Y, temperature=value),
                 lambda: fx.score_rows(LOSS_X, LOSS_Y, temperature=value),
                 lambda: fx.Scorer(temperature=value)):
        with pytest.raises(TypeError, match="temperature"):
            call()


def test_bce_weight_shape_checked_before_its_values(fx):
    # a zero-byte broadcast view of the wrong shape: a ValueError at once,
    # not a temporary of its declared size (2**40 elements: 8 TiB)
    x = np.zeros((4, 5), np.float32)
    for name in ("weight", "pos_weight"):
        for dtype in (np.float64, np.float16):
            bad = np.broadcast_to(np.ones((), dtype), (2**40,))
            with pytest.raises(ValueError, match=name):
                fx.binary_cross_entropy_with_logits(x.astype(dtype), x.astype(dtype),
                                                    **{name: bad})
    # a broadcast view of the right shape is judged by the values it holds
    w = np.broadcast_to(np.float64(0.1), (4, 5))
    assert fx.binary_cross_entropy_with_logits(x, x, weight=w) == pytest.approx(
        0.1 * np.log(2), rel=1e-6)


@pytest.mark.parametrize("value", [np.array([2]), np.array(2.0), np.True_, "2"])
def test_n_threads_of_the_wrong_kind_names_it(fx, value):
    for call in (lambda: fx.logsumexp(X, n_threads=value),
                 lambda: fx.cross_entropy(LOSS_X, LOSS_Y, n_threads=value),
                 lambda: fx.score(LOSS_X, LOSS_Y, n_threads=value)):
        with pytest.raises(TypeError, match="n_threads"):
            call()


def test_ragged_lists_name_the_argument(fx):
    ragged = [[0.0, 1.0], [2.0]]
    for call, arg in ((lambda: fx.cross_entropy(LOSS_X, [[0, 1], [2]]), "target"),
                      (lambda: fx.nll_loss(LOSS_X, [[0, 1], [2]]), "target"),
                      (lambda: fx.score(LOSS_X, [[0, 1], [2]]), "target"),
                      (lambda: fx.score_rows(LOSS_X, [[0, 1], [2]]), "target"),
                      (lambda: fx.score(ragged, LOSS_Y), "input"),
                      (lambda: fx.score_rows(ragged, LOSS_Y), "input"),
                      (lambda: fx.Scorer().update(ragged, LOSS_Y), "input")):
        with pytest.raises(ValueError, match=f"^{arg} is not an array"):
            call()


@pytest.mark.parametrize("axis, error", [
    (0.0, TypeError), (False, TypeError), (np.array([0]), TypeError), ((0,), AxisError),
    (1, AxisError), (np.int64(0), None), (-1, None), ((), None), (None, None),
])
def test_axis_of_a_scalar_as_scipy(fx, scipy_special, axis, error):
    # a 0-d x is SciPy's atleast_1d: the axis is checked all the same
    for name in ("softmax", "log_softmax"):
        if error is None:
            assert getattr(fx, name)(1.0, axis=axis) == getattr(scipy_special, name)(1.0,
                                                                                     axis=axis)
            continue
        with pytest.raises(error):
            getattr(fx, name)(1.0, axis=axis)
        with pytest.raises(error):
            getattr(scipy_special, name)(1.0, axis=axis)


def test_entropy_axis_list_as_scipy(fx):
    p = np.random.default_rng(2).random((3, 4, 2))
    np.testing.assert_array_equal(fx.entropy(p, axis=[0, 2]), fx.entropy(p, axis=(0, 2)))
    stats = pytest.importorskip("scipy.stats")
    np.testing.assert_allclose(fx.entropy(p, axis=[0, 2]), stats.entropy(p, axis=[0, 2]),
                               rtol=1e-13)


# the flags of the losses: True, False or a NumPy bool, else a TypeError
# naming the flag (a truthy string would otherwise switch the option on)
LOSS_FLAGS = [("cross_entropy", "return_grad"), ("nll_loss", "return_grad"),
              ("kl_div", "return_grad"), ("kl_div", "log_target"),
              ("binary_cross_entropy_with_logits", "return_grad")]
NOT_FLAGS = ["yes", "", 1, 0, 1.0, None, np.array([True, False]), np.array(True), [True]]


def _loss_operands(fn):
    x = np.log(np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]]))
    if fn in ("cross_entropy", "nll_loss"):
        return x, np.array([2, 0])
    return x, np.exp(x[::-1])


@pytest.mark.parametrize("fn, flag", LOSS_FLAGS)
def test_loss_flags_take_bools_and_refuse_the_rest(fx, ref, fn, flag):
    x, t = _loss_operands(fn)
    for f in (getattr(fx, fn), getattr(ref, fn)):
        for value in NOT_FLAGS:
            with pytest.raises(TypeError) as info:
                f(x, t, **{flag: value})
            assert names_argument(str(info.value), flag), (fn, flag, value, str(info.value))
        for value in (True, False):
            want = f(x, t, **{flag: value})
            got = f(x, t, **{flag: np.bool_(value)})
            for g, w in zip(*(r if isinstance(r, tuple) else (r,) for r in (got, want))):
                np.testing.assert_array_equal(g, w)
    # the flag is checked before any other argument and on the Dask path too
    with pytest.raises(TypeError, match=flag):
        getattr(fx, fn)(x, t, reduction="bad", **{flag: "yes"})
    da = pytest.importorskip("dask.array")
    with pytest.raises(TypeError, match=flag):
        getattr(fx, fn)(da.from_array(x), t, **{flag: "yes"})


def test_temperature_beyond_float32_warns_nothing(fx):
    """A temperature beyond float32's range divides float32 logits to 0 (a
    uniform distribution) without NumPy's overflow warning of a cast; one at
    or below 2^-150 rounds to 0 there and is refused, naming it."""
    import warnings

    x = np.array([[1.0, 2.0, 4.0], [0.5, -1.0, 3.0]], np.float32)
    t = np.array([2, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = fx.score_rows(x, t, temperature=1e300)
        np.testing.assert_allclose(got.nll, np.log(3.0), rtol=1e-6)
        fx.score(x, t, temperature=1e300)
        fx.score_rows(x.astype(np.float64), t, temperature=1e-300)
    for T in (2.0 ** -150, 1e-50):
        with pytest.raises(ValueError, match="temperature .* rounds to 0 in float32"):
            fx.score_rows(x, t, temperature=T)
    fx.score_rows(x, t, temperature=np.nextafter(2.0 ** -150, 1.0))
