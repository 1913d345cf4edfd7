"""fastxent.softmax_entropy, softmax_cross_entropy and softmax_kl_div:
entropy, cross-entropy and Kullback-Leibler divergence of softmax
distributions, straight from logits.

Against the NumPy reference (``fastxent.reference``) over the shared
array zoo and against PyTorch (``Categorical.entropy``, ``log_softmax`` and
``kl_div``); axes, broadcasting of the two inputs, -inf logits (a class of
probability 0), rows without a softmax (NaN), dtypes, long float32 rows
against float64, thread-count independence, memory layouts, errors, and
hypothesis properties: ``H(p, q) = H(p) + KL(p || q)``, ``KL >= 0``,
``KL(p || p) = 0``, and agreement with :func:`fastxent.cross_entropy`.
"""
import itertools

import numpy as np
import pytest

import fastxent as fx
from arrays import (FLOAT_DTYPES, INT_DTYPES, Failures, assert_bitwise_equal, assert_close,
                    assert_labels_equal_one_hot, assert_same_outcome, eps_scale, layouts,
                    logit_pairs, magnitude, memmap_copy, outcome, zoo)
from fastxent import reference as rl

INF, NAN = np.inf, np.nan
NAMES = ("softmax_entropy", "softmax_cross_entropy", "softmax_kl_div")
PAIRS = NAMES[1:]
# relative to the result, and times the largest |logit| for the absolute
# rounding error of a shifted computation
RTOL = {np.float64: 1e-13, np.float32: 2e-6, np.float16: 2e-3}
EPS4 = 4 * float(np.finfo(np.float64).eps)  # two evaluations that round differently

pytestmark = pytest.mark.usefixtures("torch_on_one_thread")


# ---------------------------------------------------------------------------
# helpers

def result_dtype(*arrays):
    """The dtype np.exp gives, promoted over the inputs."""
    return np.result_type(*[np.exp(np.zeros(0, np.asarray(a).dtype)).dtype for a in arrays])


def tol(dtype, *arrays):
    """(rtol, atol) for a result of `dtype` from logits `arrays`."""
    rtol = RTOL[np.dtype(dtype).type]
    return rtol, rtol * magnitude(np.concatenate([np.ravel(a) for a in arrays]))


def call(name, *args, **kwargs):
    return getattr(fx, name)(*args, **kwargs)


def call_ref(name, *args, **kwargs):
    return getattr(rl, name)(*args, **kwargs)


def random_logits(rng, shape, dtype, spread=3.0):
    return (spread * rng.standard_normal(shape)).astype(dtype)


# ---------------------------------------------------------------------------
# against the reference

def zoo_cases():
    """(label, p logits, q logits, axis) over the shared zoo (floats with
    special values and edge magnitudes, integers), along the last and the
    first axis, with q the p logits rolled along the class axis."""
    for label, x in itertools.chain(zoo(FLOAT_DTYPES), zoo(INT_DTYPES, special=False)):
        for axis in ((-1, 0) if x.ndim > 1 else (-1,)):
            y = np.roll(x, 1, axis=axis) if x.ndim else x
            yield f"{label} axis={axis}", x, y, axis


def test_match_reference_over_the_zoo():
    failures = Failures()
    for label, x, y, axis in zoo_cases():
        dtype = result_dtype(x)
        rtol, atol = tol(dtype, x, y)
        with failures.case(f"softmax_entropy {label}"):
            assert_same_outcome(outcome(fx.softmax_entropy, x, axis=axis),
                                outcome(rl.softmax_entropy, x, axis=axis),
                                rtol=rtol, atol=atol, err_msg=label)
        for name in PAIRS:
            for p, q, which in ((x, y, "p, roll(p)"), (y, x, "roll(p), p"), (x, x, "p, p")):
                case = f"{name}({which}) {label}"
                with failures.case(case):
                    assert_same_outcome(outcome(call, name, p, q, axis=axis),
                                        outcome(call_ref, name, p, q, axis=axis),
                                        rtol=rtol, atol=atol, err_msg=case)
    failures.check()


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16],
                         ids=["float64", "float32", "float16"])
def test_match_reference_random(dtype):
    rng = np.random.default_rng(1)
    failures = Failures()
    for shape, axis in [((7,), -1), ((5, 9), -1), ((5, 9), 0), ((3, 4, 6), 1), ((2, 3, 40), -1),
                        ((1, 1), -1), ((6, 1), 0), ((4, 300), -1)]:
        for spread in (0.1, 3.0, 30.0):
            x, y = random_logits(rng, shape, dtype, spread), random_logits(rng, shape, dtype,
                                                                           spread)
            rtol, atol = tol(dtype, x, y)
            label = f"{shape} axis={axis} spread={spread} {np.dtype(dtype).name}"
            with failures.case(label):
                assert_close(fx.softmax_entropy(x, axis=axis), rl.softmax_entropy(x, axis=axis),
                             rtol=rtol, atol=atol, err_msg="entropy " + label)
                for name in PAIRS:
                    assert_close(call(name, x, y, axis=axis), call_ref(name, x, y, axis=axis),
                                 rtol=rtol, atol=atol, err_msg=f"{name} {label}")
    failures.check()


def test_examples():
    ln2, ln3 = np.log(2.0), np.log(3.0)
    assert_close(fx.softmax_entropy(np.array([[0.0, 0.0, -INF], [1.0, -INF, -INF]])),
                 np.array([ln2, 0.0]), rtol=1e-15)
    assert_close(fx.softmax_entropy(np.zeros(7)), np.float64(np.log(7.0)), rtol=1e-15)
    assert_close(fx.softmax_cross_entropy([0.0, 0.0], [0.0, ln3]),
                 np.float64(-(np.log(0.25) + np.log(0.75)) / 2), rtol=1e-15)
    assert fx.softmax_kl_div([0.0, 0.0], [0.0, 0.0]) == 0.0
    assert_close(fx.softmax_kl_div([0.0, -INF], [0.0, 0.0]), np.float64(ln2), rtol=1e-15)
    assert_close(fx.softmax_kl_div([ln3, 0.0], [0.0, 0.0]),
                 np.float64(0.75 * np.log(1.5) + 0.25 * np.log(0.5)), rtol=1e-14)


# ---------------------------------------------------------------------------
# against PyTorch

def torch_divergences(torch, x, y):
    """H(p), H(p, q), KL(p || q) along the last axis with PyTorch."""
    F = torch.nn.functional
    xt, yt = torch.tensor(x), torch.tensor(y)
    h = torch.distributions.Categorical(logits=xt, validate_args=False).entropy()
    logp, logq = F.log_softmax(xt, -1), F.log_softmax(yt, -1)
    ce = -(logp.exp() * logq).sum(-1)
    kl = F.kl_div(logq, logp, reduction="none", log_target=True).sum(-1)
    return [t.numpy() for t in (h, ce, kl)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16],
                         ids=["float64", "float32", "float16"])
@pytest.mark.parametrize("shape, axis", [((7,), -1), ((4, 6), -1), ((4, 6), 0), ((3, 4, 5), 1),
                                         ((2, 3, 40), -1), ((5, 1000), -1)])
def test_match_torch(torch, shape, axis, dtype):
    """PyTorch on the last axis; float16 data given to it as float32, its
    results rounded to float16."""
    rng = np.random.default_rng(2)
    x, y = random_logits(rng, shape, dtype), random_logits(rng, shape, dtype)
    work = np.float32 if dtype == np.float16 else dtype
    want = torch_divergences(torch, np.moveaxis(x, axis, -1).astype(work),
                             np.moveaxis(y, axis, -1).astype(work))
    got = [fx.softmax_entropy(x, axis=axis), fx.softmax_cross_entropy(x, y, axis=axis),
           fx.softmax_kl_div(x, y, axis=axis)]
    rtol, atol = tol(dtype, x, y)
    for name, g, w in zip(NAMES, got, want):
        w = w.astype(dtype)
        w = w[()] if w.ndim == 0 else w
        assert_close(g, w, rtol=rtol, atol=atol, err_msg=f"{name} {shape} axis={axis}")


def test_torch_gives_nan_where_the_limit_is_defined(torch):
    """-inf p-logits are classes of probability 0: they contribute 0 (PyTorch's
    kl_div computes 0 * (-inf - log q) = NaN there); -inf q-logits under a
    finite p-logit make the divergence +inf."""
    x = np.array([[0.0, -INF, 1.0], [0.5, 2.0, -INF], [0.0, 1.0, 2.0], [0.0, -INF, 1.0]])
    y = np.array([[1.0, -INF, 0.0], [0.0, 0.0, -INF], [0.0, -INF, 1.0], [1.0, 0.5, 0.0]])
    _, _, kl_torch = torch_divergences(torch, x, y)
    assert np.isnan(kl_torch[[0, 1, 3]]).all()
    kl = fx.softmax_kl_div(x, y)
    want = fx.softmax_kl_div(np.array([[0.0, 1.0], [0.5, 2.0]]), np.array([[1.0, 0.0],
                                                                            [0.0, 0.0]]))
    assert_close(kl[:2], want, rtol=1e-15, atol=1e-16)
    assert kl[2] == INF and fx.softmax_cross_entropy(x, y)[2] == INF
    assert_close(kl[3], rl.softmax_kl_div(x[3], y[3]), rtol=1e-14)
    assert np.isfinite(kl[3])
    # Categorical clamps -inf logits: its entropy agrees with fastxent's
    h_torch, _, _ = torch_divergences(torch, x, y)
    assert_close(fx.softmax_entropy(x), h_torch, rtol=1e-15, atol=1e-16)


# ---------------------------------------------------------------------------
# axes and broadcasting

def test_every_axis_equals_the_last_axis_of_moved_data():
    rng = np.random.default_rng(3)
    x, y = random_logits(rng, (3, 4, 5, 6), np.float64), random_logits(rng, (3, 4, 5, 6),
                                                                        np.float64)
    for axis in (0, 1, 2, 3, -1, -2, -3, -4, np.int64(2), np.intp(-3)):
        xm, ym = np.moveaxis(x, axis, -1).copy(), np.moveaxis(y, axis, -1).copy()
        assert_close(fx.softmax_entropy(x, axis=axis), fx.softmax_entropy(xm),
                     rtol=EPS4, atol=EPS4 * magnitude(x), err_msg=f"axis={axis}")
        for name in PAIRS:
            assert_close(call(name, x, y, axis=axis), call(name, xm, ym),
                         rtol=EPS4, atol=EPS4 * magnitude(x), err_msg=f"{name} axis={axis}")
    # the default is the last axis
    assert_bitwise_equal(fx.softmax_entropy(x), fx.softmax_entropy(x, axis=-1))
    for name in PAIRS:
        assert_bitwise_equal(call(name, x, y), call(name, x, y, axis=3))
        assert_bitwise_equal(call(name, x, y, -1), call(name, x, y, axis=-1))


BROADCAST = [  # (p shape, q shape, axis)
    ((6,), (5, 6), -1), ((5, 6), (6,), -1), ((4, 1, 6), (3, 6), -1), ((1, 6), (5, 1), -1),
    ((6, 1), (6, 5), 0), ((2, 6, 1), (1, 6, 3), 1), ((5, 6), (1, 6), -1), ((5, 1), (5, 6), 1),
]


@pytest.mark.parametrize("p_shape, q_shape, axis", BROADCAST,
                         ids=[f"{p}-{q}-{a}".replace(" ", "") for p, q, a in BROADCAST])
def test_broadcasting(p_shape, q_shape, axis):
    """The inputs broadcast against each other: the results of the
    broadcast copies, of the broadcast shape without the axis.  A class axis
    of length 1 in one input is broadcast too (its one logit repeated)."""
    rng = np.random.default_rng(4)
    x, y = random_logits(rng, p_shape, np.float64), random_logits(rng, q_shape, np.float64)
    x[..., 0] = -INF if x.shape[-1] > 1 else x[..., 0]  # -inf logits too
    xb, yb = (np.array(a) for a in np.broadcast_arrays(x, y))
    shape = list(xb.shape)
    del shape[axis]
    for name in PAIRS:
        got = call(name, x, y, axis=axis)
        want = call(name, xb, yb, axis=axis)
        assert np.shape(got) == tuple(shape), name
        assert_close(got, want, rtol=EPS4, atol=EPS4 * magnitude(xb), err_msg=name)
        assert_close(got, call_ref(name, x, y, axis=axis), rtol=1e-13,
                     atol=1e-13 * magnitude(xb), err_msg=name + " (reference)")


# ---------------------------------------------------------------------------
# special values

ROWS = [  # (p logits, q logits, H(p), H(p, q), KL(p || q)) exact values
    ([0.0, -INF, 1.0, 2.0], [0.5, -INF, -1.0, 0.0], None, None, None),  # drops out: checked below
    ([0.0, 1.0], [0.0, -INF], np.log(1 + np.e) - np.e / (1 + np.e), INF, INF),
    ([0.0, -1000.0], [0.0, -INF], 0.0, INF, INF),   # p underflows, still > 0 = q
    ([0.0, -INF], [0.0, -INF], 0.0, 0.0, 0.0),      # p = 0 where q = 0
    ([0.0, -INF], [-INF, 0.0], 0.0, INF, INF),
    ([3.0, -INF, -INF], [1.0, 1.0, 1.0], 0.0, np.log(3.0), np.log(3.0)),
    ([-INF, -INF, -INF], [0.0, 1.0, 2.0], NAN, NAN, NAN),  # no softmax
    ([NAN, 0.0, 1.0], [0.0, 1.0, 2.0], NAN, NAN, NAN),
    ([NAN, 0.0, 1.0], [-INF, 0.0, 1.0], NAN, NAN, NAN),  # NaN where q = 0
    ([INF, 0.0, 1.0], [0.0, 1.0, 2.0], NAN, NAN, NAN),
    ([0.0, 1.0, 2.0], [-INF, -INF, -INF], None, NAN, NAN),
    ([0.0, 1.0, 2.0], [NAN, 1.0, 2.0], None, NAN, NAN),
    ([0.0, 1.0, 2.0], [0.0, INF, 2.0], None, NAN, NAN),
    ([INF, INF, 0.0], [0.0, 0.0, 0.0], NAN, NAN, NAN),
    ([-INF, 5.0, -INF], [-INF, 5.0, -INF], 0.0, 0.0, 0.0),
    ([1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0], np.log(4.0), np.log(4.0), 0.0),
]


@pytest.mark.parametrize("row", range(len(ROWS)))
def test_special_rows(row):
    x, y, h, ce, kl = ROWS[row]
    x, y = np.array(x), np.array(y)
    got = [fx.softmax_entropy(x), fx.softmax_cross_entropy(x, y), fx.softmax_kl_div(x, y)]
    for name, g, w in zip(NAMES, got, (h, ce, kl)):
        if w is not None:
            assert_close(g, np.float64(w), rtol=1e-15, atol=1e-16, err_msg=f"{name} {x} {y}")
    want = [rl.softmax_entropy(x), rl.softmax_cross_entropy(x, y), rl.softmax_kl_div(x, y)]
    for name, g, w in zip(NAMES, got, want):
        assert_close(g, w, rtol=1e-14, atol=1e-15, err_msg=f"{name} {x} {y} (reference)")


@pytest.mark.parametrize("C", [3, 40, 5000])
def test_nan_p_logit_where_q_is_zero(C):
    # the NaN must reach H(p, q) even though its term is skipped for y = -inf
    x = np.random.default_rng(17).standard_normal((6, C))
    y = x[::-1].copy()
    x[2, C // 2] = NAN
    y[2, C // 2] = -INF
    for f in (fx.softmax_cross_entropy, fx.softmax_kl_div):
        got = f(x, y)
        np.testing.assert_array_equal(np.isnan(got), np.arange(6) == 2)
        assert_close(got, getattr(rl, f.__name__)(x, y), rtol=1e-13, atol=1e-15)


HUGE = [  # (p logits, q logits): finite logits whose range overflows the dtype
    (np.array([3e38, -3e38], np.float32), np.array([0.0, 0.0], np.float32)),
    (np.array([1e38, -3e38], np.float32), np.array([0.0, 1.0], np.float32)),
    (np.array([[3e38, -3e38, 1e30, 0.0, 3.4e38]], np.float32),
     np.array([[0.0, 1.0, 2.0, 3.0, 4.0]], np.float32)),
    (np.array([0.0, 0.0, 0.0, 0.0, 0.0]), np.array([1e300, -1e300, 1e300, 0.0, 1.7e308])),
]


@pytest.mark.parametrize("case", range(len(HUGE)))
def test_huge_logit_ranges(case):
    """Finite logits whose differences overflow the input dtype: float32 is
    computed in float64 (a class far below the maximum has probability 0 and
    contributes 0); a cross-entropy that is finite although its terms are
    near the overflow threshold stays finite.  As the reference."""
    x, y = HUGE[case]
    failures = Failures()
    for name, args in [("softmax_entropy", (x,)), ("softmax_entropy", (y,)),
                       ("softmax_cross_entropy", (x, y)), ("softmax_cross_entropy", (y, x)),
                       ("softmax_kl_div", (x, y)), ("softmax_kl_div", (y, x)),
                       ("softmax_kl_div", (x, x))]:
        label = f"{name}{tuple(a.tolist() for a in args)}"
        with failures.case(label):
            want = call_ref(name, *args)
            assert not np.isnan(want).any()
            rtol, atol = tol(np.asarray(want).dtype, *args)
            assert_close(call(name, *args), want, rtol=rtol, atol=atol, err_msg=label)
    failures.check()


def test_minus_inf_classes_drop_out():
    """A class with -inf in the p logits contributes 0, whatever its q logit
    is (finite or -inf); dropping it gives the same results."""
    rng = np.random.default_rng(5)
    x, y = random_logits(rng, (6, 8), np.float64), random_logits(rng, (6, 8), np.float64)
    x[:, [1, 5]] = -INF
    y[::2, 5] = -INF
    keep = [0, 2, 3, 4, 6, 7]
    xr, yr = x[:, keep].copy(), y[:, keep].copy()
    # the q mass of the dropped classes shifts log q by a constant: compare
    # cross-entropy and KL with q renormalized over the kept classes
    lq = y - np.max(y, axis=1, keepdims=True)
    with np.errstate(divide="ignore"):
        mass = np.log(np.sum(np.exp(lq[:, keep]), axis=1) / np.sum(np.exp(lq), axis=1))
    assert_close(fx.softmax_entropy(x), fx.softmax_entropy(xr), rtol=1e-14, atol=1e-15)
    assert_close(fx.softmax_cross_entropy(x, y), fx.softmax_cross_entropy(xr, yr) - mass,
                 rtol=1e-14, atol=1e-14)
    assert_close(fx.softmax_kl_div(x, y), fx.softmax_kl_div(xr, yr) - mass,
                 rtol=1e-14, atol=1e-14)


def test_rows_without_softmax_are_nan_and_leave_the_others_alone():
    rng = np.random.default_rng(6)
    good = random_logits(rng, (6, 5), np.float64)
    bad = good.copy()
    bad[1] = -INF
    bad[2, 3] = NAN
    bad[3, 0] = INF
    bad[4, :2] = INF
    nan_rows = [False, True, True, True, True, False]
    for dtype in (np.float64, np.float32, np.float16):
        b, g = bad.astype(dtype), good.astype(dtype)
        for name, result in [("entropy", fx.softmax_entropy(b)),
                             ("ce(bad, good)", fx.softmax_cross_entropy(b, g)),
                             ("ce(good, bad)", fx.softmax_cross_entropy(g, b)),
                             ("kl(bad, good)", fx.softmax_kl_div(b, g)),
                             ("kl(good, bad)", fx.softmax_kl_div(g, b)),
                             ("kl(bad, bad)", fx.softmax_kl_div(b, b))]:
            np.testing.assert_array_equal(np.isnan(result), nan_rows, err_msg=name)
        ok = np.array([0, 5])
        eps = float(np.finfo(dtype).eps)
        assert_close(fx.softmax_entropy(b)[ok], fx.softmax_entropy(g)[ok], rtol=4 * eps,
                     atol=4 * eps * magnitude(g))
        assert_close(fx.softmax_kl_div(g, b)[ok], fx.softmax_kl_div(g, g)[ok], rtol=0,
                     atol=4 * eps * magnitude(g))
        # the same along axis 0
        np.testing.assert_array_equal(np.isnan(fx.softmax_kl_div(g.T, b.T, axis=0)), nan_rows)


def test_kl_of_identical_rows_is_exactly_zero():
    rng = np.random.default_rng(7)
    for dtype in (np.float64, np.float32, np.float16, np.int16):
        x = random_logits(rng, (50, 33), dtype, spread=20.0)
        if np.dtype(dtype).kind == "f":
            x[::3, 4] = -INF
        np.testing.assert_array_equal(fx.softmax_kl_div(x, x), 0.0, err_msg=str(dtype))
        np.testing.assert_array_equal(fx.softmax_kl_div(x.T, x.T, axis=0), 0.0)
        np.testing.assert_array_equal(fx.softmax_kl_div(x[:, ::2], x[:, ::2]), 0.0)


# ---------------------------------------------------------------------------
# dtypes

def test_result_dtypes_and_types():
    for dtype, want in [(np.float64, np.float64), (np.float32, np.float32),
                        (np.float16, np.float16), (np.int8, np.float16), (np.uint8, np.float16),
                        (np.int16, np.float32), (np.uint16, np.float32), (np.int32, np.float64),
                        (np.int64, np.float64), (np.uint64, np.float64)]:
        x = np.arange(6, dtype=dtype).reshape(2, 3)
        assert type(fx.softmax_entropy(x[0])) is want, dtype
        assert fx.softmax_entropy(x).dtype == want, dtype
        for name in PAIRS:
            assert type(call(name, x[0], x[1])) is want, (name, dtype)
            assert call(name, x, x[::-1]).dtype == want, (name, dtype)
    # the two inputs promote
    x = np.zeros((2, 3), np.float32)
    for other, want in [(np.float64, np.float64), (np.float16, np.float32), (np.int8, np.float32),
                        (np.int64, np.float64)]:
        for name in PAIRS:
            assert call(name, x, np.zeros(3, other)).dtype == want, (name, other)
            assert call(name, np.zeros(3, other), x).dtype == want, (name, other)
    # nested lists and Python scalars in a list
    assert type(fx.softmax_entropy([0.0, 1.0])) is np.float64
    assert type(fx.softmax_kl_div([0, 1], [1, 0])) is np.float64


def test_float16_is_float32_rounded_once():
    rng = np.random.default_rng(8)
    x16, y16 = random_logits(rng, (20, 30), np.float16), random_logits(rng, (20, 30), np.float16)
    x32, y32 = x16.astype(np.float32), y16.astype(np.float32)
    pairs = [(fx.softmax_entropy(x16), fx.softmax_entropy(x32)),
             (fx.softmax_cross_entropy(x16, y16), fx.softmax_cross_entropy(x32, y32)),
             (fx.softmax_kl_div(x16, y16), fx.softmax_kl_div(x32, y32))]
    for name, (got, want) in zip(NAMES, pairs):
        assert got.dtype == np.float16
        assert_close(got, want.astype(np.float16), rtol=2e-3, atol=1e-5 * magnitude(x32),
                     err_msg=name)


@pytest.mark.parametrize("name", NAMES)
def test_long_rows_float32(name):
    """256k classes in float32 within 1e-6 relative of the float64 result."""
    rng = np.random.default_rng(9)
    x = random_logits(rng, (2, 262144), np.float32, spread=4.0)
    y = random_logits(rng, (2, 262144), np.float32, spread=4.0)
    args32 = (x,) if name == "softmax_entropy" else (x, y)
    args64 = tuple(a.astype(np.float64) for a in args32)
    got = call(name, *args32)
    want = call(name, *args64)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_allclose(want, call_ref(name, *args64), rtol=1e-12)
    # and along axis 0
    np.testing.assert_allclose(call(name, *(a.T for a in args32), axis=0), want, rtol=1e-6)


# ---------------------------------------------------------------------------
# errors

def test_errors():
    for name in NAMES:
        args = (lambda *a: a[:1]) if name == "softmax_entropy" else (lambda *a: a)
        with pytest.raises(TypeError):
            call(name, *args(np.array([True, False]), np.zeros(2)))
        with pytest.raises(TypeError):
            call(name, *args(np.array([1 + 1j, 0]), np.zeros(2)))
        with pytest.raises(TypeError):
            call(name, *args(np.array(["a", "b"]), np.zeros(2)))
        with pytest.raises(ValueError):  # a class axis of length zero
            call(name, *args(np.zeros((3, 0)), np.zeros((3, 0))))
        with pytest.raises(ValueError):
            call(name, *args(np.zeros((0, 3, 0)), np.zeros((0, 3, 0))), axis=-1)
        for shape, axis in [((3, 4), 2), ((3, 4), -3), ((4,), 1), ((), -1), ((), 0)]:
            with pytest.raises(np.exceptions.AxisError):
                call(name, *args(np.zeros(shape), np.zeros(shape)), axis=axis)
        # rows without classes are fine: an empty result
        assert call(name, *args(np.zeros((0, 4)), np.zeros((0, 4)))).shape == (0,)
        assert call(name, *args(np.zeros((2, 0, 4)), np.zeros((2, 0, 4)))).shape == (2, 0)
    for name in PAIRS:
        with pytest.raises(TypeError):
            call(name, np.zeros(2), np.array([True, False]))
        with pytest.raises(TypeError):
            call(name, np.zeros(2), np.array([1j, 0]))
        for p_shape, q_shape in [((3, 4), (3, 5)), ((3, 4), (3,)), ((2, 4), (3, 4))]:
            with pytest.raises(ValueError):
                call(name, np.zeros(p_shape), np.zeros(q_shape))
        with pytest.raises(ValueError):  # the class axis of length zero after broadcasting
            call(name, np.zeros((3, 1)), np.zeros((3, 0)))


# ---------------------------------------------------------------------------
# threads and layouts

@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16],
                         ids=["float64", "float32", "float16"])
def test_results_do_not_depend_on_threads(dtype):
    rng = np.random.default_rng(10)
    for shape, axis in [((3000, 40), -1), ((3000, 40), 0), ((7, 50000), -1), ((40, 50, 30), 1)]:
        x, y = random_logits(rng, shape, dtype), random_logits(rng, shape, dtype)
        x.reshape(-1)[::101] = -INF
        for name, args in [("softmax_entropy", (x,)), ("softmax_cross_entropy", (x, y)),
                           ("softmax_kl_div", (x, y)), ("softmax_kl_div", (x, y[:1]))]:
            one = call(name, *args, axis=axis, n_threads=1)
            for n in (2, 3, None):
                assert_bitwise_equal(call(name, *args, axis=axis, n_threads=n), one,
                                     f"{name} {shape} axis={axis} n_threads={n}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16, np.int16],
                         ids=["float64", "float32", "float16", "int16"])
def test_layouts_match_contiguous_copies(dtype, tmp_path):
    rng = np.random.default_rng(11)
    bx, by = random_logits(rng, (37, 23), dtype), random_logits(rng, (37, 23), dtype)
    eps = float(np.finfo(result_dtype(bx)).eps)
    failures = Failures()
    for (label, x), (_, y) in zip(layouts(bx, tmp_path), layouts(by, tmp_path)):
        xc, yc = np.array(x, order="C"), np.array(y, order="C")
        atol = 4 * eps * magnitude(np.concatenate([xc.ravel(), yc.ravel()]))
        for axis in ((-1, 0) if x.ndim > 1 else (-1,)):
            case = f"{label} {np.dtype(dtype).name} axis={axis}"
            with failures.case(case):
                want = fx.softmax_entropy(xc, axis=axis)
                assert_close(fx.softmax_entropy(x, axis=axis), want, rtol=4 * eps, atol=atol,
                             err_msg="entropy " + case)
                for name in PAIRS:
                    want = call(name, xc, yc, axis=axis)
                    for a, b in ((x, yc), (xc, y), (x, y)):
                        assert_close(call(name, a, b, axis=axis), want, rtol=4 * eps, atol=atol,
                                     err_msg=f"{name} {case}")
                np.testing.assert_array_equal(x, xc, err_msg="input modified")
    failures.check()


def test_read_only_memory_map(tmp_path):
    rng = np.random.default_rng(12)
    x = random_logits(rng, (40, 30), np.float32)
    xm = memmap_copy(x, tmp_path / "logits.dat")
    for a, copy in ((xm, x), (xm[::3, ::-2], x[::3, ::-2].copy())):
        for axis in (0, -1):
            atol = 4 * float(np.finfo(np.float32).eps) * magnitude(copy)
            want = fx.softmax_entropy(copy, axis=axis)
            got = fx.softmax_entropy(a, axis=axis)
            assert type(got) is np.ndarray
            assert_close(got, want, rtol=5e-7, atol=atol)
            want = fx.softmax_kl_div(copy, copy[::-1].copy(), axis=axis)
            assert_close(fx.softmax_kl_div(a, a[::-1], axis=axis), want, rtol=5e-7, atol=atol)


# ---------------------------------------------------------------------------
# hypothesis properties

try:
    from hypothesis import given, settings, strategies as st
except ImportError:  # optional: the properties below are then not collected
    st = None

if st is not None:
    FEW = settings(max_examples=50, deadline=None)

    @FEW
    @given(logit_pairs(minus_inf_in_q=True))
    def test_cross_entropy_is_entropy_plus_kl(xy):
        x, y = xy
        h, ce, kl = fx.softmax_entropy(x), fx.softmax_cross_entropy(x, y), fx.softmax_kl_div(x, y)
        np.testing.assert_allclose(ce, h + kl, rtol=1e-12, atol=eps_scale(x, y))
        np.testing.assert_array_equal(np.isinf(ce), np.isinf(kl))

    @FEW
    @given(logit_pairs(minus_inf_in_q=True))
    def test_kl_is_nonnegative_and_zero_on_itself(xy):
        x, y = xy
        kl = fx.softmax_kl_div(x, y)
        assert np.all(kl >= -eps_scale(x, y)), kl
        np.testing.assert_array_equal(fx.softmax_kl_div(x, x), 0.0)
        np.testing.assert_array_equal(fx.softmax_kl_div(y, y), 0.0)
        # the entropy is the cross-entropy of a distribution with itself
        np.testing.assert_allclose(fx.softmax_cross_entropy(x, x), fx.softmax_entropy(x),
                                   rtol=1e-13, atol=eps_scale(x))
        assert np.all(fx.softmax_entropy(x) >= -eps_scale(x))
        assert np.all(fx.softmax_entropy(x) <= np.log(x.shape[1]) * (1 + 1e-15) + eps_scale(x))

    @FEW
    @given(logit_pairs(minus_inf_in_q=True))
    def test_softmax_cross_entropy_is_cross_entropy_with_probability_targets(xy):
        """H(softmax(p), softmax(q)) = cross_entropy(q logits, softmax(p) as
        probabilities); a zero probability against a -inf q-logit is 0 in
        both, a positive one +inf."""
        x, y = xy
        p = fx.softmax(x, axis=-1)
        want = fx.cross_entropy(y, p, reduction="none")
        got = fx.softmax_cross_entropy(x, y)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=eps_scale(x, y))
        # the unbatched layout: one row
        np.testing.assert_allclose(fx.softmax_cross_entropy(x[0], y[0]),
                                   fx.cross_entropy(y[0], p[0], reduction="none"),
                                   rtol=1e-12, atol=eps_scale(x, y))

    @FEW
    @given(logit_pairs(), st.sampled_from([0.0, 0.1, 1.0]),
           st.sampled_from(["none", "mean", "sum"]), st.booleans(), st.data())
    def test_labels_equal_one_hot_probabilities(xy, ls, reduction, weighted, data):
        """cross_entropy from labels = from one-hot probability targets, -inf
        logits included (the one-hot zeros meet them: 0 * -inf = 0).  With
        weights, 'mean' normalizes differently (the summed target weights vs
        the number of rows)."""
        x, _ = xy
        n, c = x.shape
        t = np.asarray(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
        assert_labels_equal_one_hot(fx.cross_entropy, x, t, label_smoothing=ls,
                                    reduction=reduction, weighted=weighted)

    @FEW
    @given(logit_pairs())
    def test_kl_is_torch_style_kl_of_log_softmax(xy):
        """KL(p || q) = sum of kl_div(log q, log p, log_target=True) terms."""
        x, y = xy
        logp, logq = fx.log_softmax(x, axis=-1), fx.log_softmax(y, axis=-1)
        terms = fx.kl_div(logq, logp, reduction="none", log_target=True)
        np.testing.assert_allclose(np.sum(terms, axis=-1), fx.softmax_kl_div(x, y),
                                   rtol=1e-10, atol=eps_scale(x, y))


# ---------------------------------------------------------------------------
# many short rows (at most 64 classes; more than 16 with the sums in runs of
# 16): the kernel that takes a block of rows side by side must agree with the
# one-row kernel and keep the special rows

@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("C", [1, 2, 3, 7, 10, 16, 17, 33, 64, 65])
def test_short_row_blocks_match_single_rows(dtype, C):
    rng = np.random.default_rng(C)
    x = (rng.standard_normal((150, C)) * 4).astype(dtype)
    y = (rng.standard_normal((150, C)) * 4).astype(dtype)
    x[3, 0] = -INF          # a class of probability 0
    y[5, :] = -INF          # no softmax in q
    y[9, 0] = -INF          # q = 0 under p > 0 (unless C == 1 makes it all -inf)
    x[7, C // 2] = NAN
    x[11, :] = -INF
    y[13, 0] = INF
    x[20] = y[20]           # identical rows: KL exactly 0
    y[21] = x[21] + 3       # a constant shift: the same distribution
    x[64:70] = -1e30 if dtype != np.float16 else -6e4   # far below the max of other rows
    for name in NAMES:
        args = (x,) if name == "softmax_entropy" else (x, y)
        block = getattr(fx, name)(*args)
        single = np.array([getattr(fx, name)(*(a[i:i + 1] for a in args))[0] for i in range(150)])
        want = getattr(rl, name)(*args)
        rtol = RTOL[dtype] * (100 if name == "softmax_kl_div" else 1)
        assert_close(block, want, rtol=rtol, atol=RTOL[dtype], err_msg=f"{name} C={C}")
        np.testing.assert_allclose(block.astype(float), single.astype(float), rtol=rtol,
                                   atol=RTOL[dtype], equal_nan=True, err_msg=name)
        if name == "softmax_kl_div":
            assert block[20] == 0
            assert abs(float(block[21])) <= 8 * np.finfo(dtype).eps


@pytest.mark.parametrize("C", [1, 3, 8, 10, 13, 16, 17, 40, 64])
def test_short_rows_float32_route_matches_float16_route_bitwise(C):
    """float16 storage computes in float32 through the portable loops; AVX2
    builds take float32 storage through register code (fx_ent_sums8) meant
    to give the same bits.  A float16 call and the float32 call on the same
    values, rounded to float16, agree bit for bit (in any build): this
    catches a wrong lane, a special row or a partial group of 8 rows taken
    wrongly, though not a difference in the last bits of a float32 sum,
    which the rounding to float16 hides."""
    rng = np.random.default_rng(100 + C)
    for n in (8, 61, 64, 200):
        x = (rng.standard_normal((n, C)) * 4).astype(np.float16)
        y = (rng.standard_normal((n, C)) * 4).astype(np.float16)
        if n > 8:
            x[3, 0] = -INF                 # e = 0 in the sums
            x[5] = -30000.0                # exp(x - max) off the normal range
            x[5, 0] = 0.0
            x[7, :2] = x[7].max()          # a tie at the max
            y[9, 0] = -INF
        for name in NAMES:
            args = (x,) if name == "softmax_entropy" else (x, y)
            with np.errstate(all="ignore"):
                half = getattr(fx, name)(*args)
                single = getattr(fx, name)(*(a.astype(np.float32) for a in args))
            assert_bitwise_equal(half, single.astype(np.float16), f"{name} {n} x {C}")


def test_short_row_entropy_near_zero_keeps_its_digits():
    # one dominant logit: H = log S + (C - 1) u a / S with u = e^-a and S =
    # 1 + (C - 1) u, all of it small; float32 rows of up to 64 classes (more
    # than 16: their sums in runs of 16, added in double)
    a = np.linspace(8, 80, 640)
    for C in (2, 10, 16, 17, 40, 64):
        x = np.zeros((a.size, C), np.float32)
        x[:, 1:] = -a[:, None].astype(np.float32)
        u = np.exp(x[:, 1].astype(np.float64))
        S = 1 + (C - 1) * u
        want = np.log1p((C - 1) * u) - (C - 1) * u * x[:, 1].astype(np.float64) / S
        np.testing.assert_allclose(fx.softmax_entropy(x), want,
                                   rtol=8 * np.finfo(np.float32).eps, atol=0, err_msg=f"C={C}")


def test_short_row_kl_is_accurate_for_close_rows():
    """KL of nearly equal float64 rows, by the block kernel and the row
    kernel, against mpmath: within the rounding of the shifted logits
    (eps * sum p (|x - mx| + |y - my|)), the conditioning of a KL computed
    from logits."""
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 50
    rng = np.random.default_rng(11)
    for C in (2, 5, 10, 40):
        x = rng.standard_normal((64, C)) * 3
        y = x + rng.standard_normal((64, C)) * 0.2
        got_block = fx.softmax_kl_div(x, y)
        for i in range(0, 64, 9):
            xs = [mp.mpf(float(v)) for v in x[i]]
            ys = [mp.mpf(float(v)) for v in y[i]]
            lx = mp.log(mp.fsum(mp.e ** v for v in xs))
            ly = mp.log(mp.fsum(mp.e ** v for v in ys))
            exact = float(mp.fsum(mp.e ** (a - lx) * ((a - lx) - (b - ly)) for a, b in zip(xs, ys)))
            # the rounding of the shifted logits: eps * sum p (|x - mx| + |y - my|)
            p = np.exp(x[i] - x[i].max())
            p /= p.sum()
            shifted = np.abs(x[i] - x[i].max()) + np.abs(y[i] - y[i].max())
            tol = 4 * np.spacing(exact) + 2 * np.finfo(float).eps * float(p @ shifted)
            for got in (got_block[i], fx.softmax_kl_div(x[i], y[i])):
                assert abs(float(got) - exact) <= tol, (C, i, got, exact)


@pytest.mark.parametrize("C, W", [(1, 5), (3, 70), (40, 150), (700, 64)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16], ids=["f64", "f32", "f16"])
def test_softmax_entropy_of_neighbouring_columns(C, W, dtype):
    """softmax_entropy along axis 0 of a C-ordered array (64 columns side by
    side): the values of the same data as rows, within rounding, in blocks
    of columns where some column holds a NaN, +inf, only -inf, -inf
    entries, a dominant logit, a tie at the maximum or a spread beyond the
    exp's range, and against the reference."""
    rng = np.random.default_rng(C * 1000 + W)
    x = 4 * rng.standard_normal((C, W))
    if C >= 3:
        x[C // 2, 1] = np.nan
        x[C - 1, 2] = np.inf
        x[:, 3] = -np.inf
        x[: C // 2 + 1, 4] = -np.inf
        x[0, 5] = 60.0
        x[:, 6] *= 300.0
        x[:, 7] = 0.0
        x[:2, 8] = 20.0   # a tie at the maximum: k = 2
    x = x.astype(dtype)
    got = fx.softmax_entropy(x, axis=0)
    rows = fx.softmax_entropy(np.ascontiguousarray(x.T), axis=1)
    rtol = {np.float64: 1e-13, np.float32: 1e-5, np.float16: 2e-3}[dtype]
    assert got.dtype == rows.dtype
    assert_close(got, rows, rtol=rtol, atol=rtol, err_msg=f"{C}x{W}")
    ref = rl.softmax_entropy(x.astype(np.float64), axis=0)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    ok = ~np.isnan(ref)
    np.testing.assert_allclose(got[ok].astype(np.float64), ref[ok], rtol=rtol, atol=rtol)


@pytest.mark.parametrize("C, W", [(1, 5), (3, 70), (40, 150), (700, 64)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16], ids=["f64", "f32", "f16"])
@pytest.mark.parametrize("name", ["softmax_cross_entropy", "softmax_kl_div"])
def test_softmax_pairs_of_neighbouring_columns(name, C, W, dtype):
    """softmax_cross_entropy and softmax_kl_div along axis 0 of C-ordered
    arrays (64 columns side by side): the values of the same data as rows,
    within rounding, in blocks where some column holds a NaN, +inf, only
    -inf, a -inf in y under a finite x (+inf), ties at the maxima, far
    apart or identical logits; and against the reference."""
    rng = np.random.default_rng(C * 1000 + W + 7)
    x = 4 * rng.standard_normal((C, W))
    y = 4 * rng.standard_normal((C, W))
    if C >= 3:
        x[C // 2, 1] = np.nan
        y[C - 1, 2] = np.inf
        x[:, 3] = -np.inf
        y[C // 2, 4] = -np.inf
        x[:2, 5] = 20.0
        y[:2, 5] = 20.0
        x[:, 6] *= 300.0
        y[:, 6] = -y[:, 6] * 300.0
        y[:, 7] = x[:, 7]
        x[: C // 2 + 1, 8] = -np.inf
        y[: C // 2 + 1, 8] = -np.inf
    x, y = x.astype(dtype), y.astype(dtype)
    f = getattr(fx, name)
    got = f(x, y, axis=0)
    rows = f(np.ascontiguousarray(x.T), np.ascontiguousarray(y.T), axis=1)
    rtol = {np.float64: 1e-12, np.float32: 1e-5, np.float16: 2e-3}[dtype]
    assert got.dtype == rows.dtype
    assert_close(got, rows, rtol=rtol, atol=rtol, err_msg=f"{name} {C}x{W}")
    ref = getattr(rl, name)(x.astype(np.float64), y.astype(np.float64), axis=0)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    ok = ~np.isnan(ref)
    np.testing.assert_allclose(got[ok].astype(np.float64), ref[ok], rtol=rtol, atol=rtol)
    if C >= 3 and name == "softmax_kl_div":
        assert got[7] == 0.0   # identical columns


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_softmax_entropy_of_long_rows_split_over_threads(dtype):
    # fewer rows than threads: the rows are cut into chunks of 16384
    # classes, shared among the threads, their states merged in order -- the
    # same bits on any thread count, and the reference's values, whatever
    # chunk holds the maximum, a run of -inf, a NaN or a +inf
    rng = np.random.default_rng(21)
    # long enough that one row gets two threads (32768 elements each)
    C = 6 * 16384 + 1000
    x = rng.standard_normal((8, C)) * 3
    x[1, 40000] = 25.0                   # the maximum rises in the third chunk
    x[2, 16384:32768] = -np.inf          # a whole chunk of -inf
    x[3, 100] = x[3, 20000] = 30.0       # tied maxima in two chunks
    x[4, :16384] = -np.inf               # the first chunk only -inf
    x[5, 33000] = np.nan                 # NaN
    x[6, 99000] = np.inf                 # +inf in the last chunk
    x[7, :] = -np.inf                    # only -inf
    x[7, 16390] = -5.0
    x = x.astype(dtype)
    with np.errstate(all="ignore"):
        want = rl.softmax_entropy(x, axis=-1)
    for rows in (slice(0, 1), slice(1, 2), slice(2, 4), slice(0, 8)):
        one = fx.softmax_entropy(x[rows], n_threads=1)
        for nt in (2, 3):
            assert_bitwise_equal(fx.softmax_entropy(x[rows], n_threads=nt), one)
    got = np.array([fx.softmax_entropy(x[i:i + 1], n_threads=2)[0] for i in range(8)])
    rtol = 1e-12 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(got.astype(np.float64), np.asarray(want, np.float64),
                               rtol=rtol, atol=rtol, equal_nan=True)
    assert np.isnan(got[[5, 6]]).all() and not np.isnan(got[[0, 1, 2, 3, 4, 7]]).any()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ["softmax_cross_entropy", "softmax_kl_div"])
def test_softmax_pairs_of_long_rows_split_over_threads(dtype, name):
    # as for softmax_entropy: the pair states of chunks of 16384 classes,
    # merged in order, whatever chunk raises either maximum, holds -inf on
    # either side (q = 0 under p > 0 makes the row +inf), a NaN or +inf
    rng = np.random.default_rng(22)
    C = 6 * 16384 + 1000
    x = rng.standard_normal((10, C)) * 3
    y = rng.standard_normal((10, C)) * 3
    x[1, 40000] = 25.0                   # p's maximum rises in a later chunk
    y[1, 70000] = 28.0                   # q's in another one
    x[2, 16384:32768] = -np.inf          # p = 0 over a chunk
    y[2, 16384:32768] = -np.inf          # and q = 0 there too: adds nothing
    y[3, 50000] = -np.inf                # q = 0 under p > 0: +inf
    y[4, :16384] = -np.inf               # q's first chunk only -inf ...
    x[4, :16384] = -np.inf               # ... and p's
    x[5, 33000] = np.nan                 # NaN
    y[6, 99000] = np.inf                 # +inf in the last chunk
    y[7] = x[7]                          # identical rows: KL 0, H(p, q) = H(p)
    x[8, 100] = x[8, 20000] = 30.0       # tied maxima in two chunks
    y[9] = x[9] + 1e-9 * rng.standard_normal(C)   # nearly identical rows
    x, y = x.astype(dtype), y.astype(dtype)
    fn, ref = getattr(fx, name), getattr(rl, name)
    with np.errstate(all="ignore"):
        want = np.asarray(ref(x, y, axis=-1), np.float64)
    for rows in (slice(0, 1), slice(1, 2), slice(2, 4), slice(0, 10)):
        one = fn(x[rows], y[rows], n_threads=1)
        for nt in (2, 3):
            assert_bitwise_equal(fn(x[rows], y[rows], n_threads=nt), one)
    got = np.array([fn(x[i:i + 1], y[i:i + 1], n_threads=2)[0] for i in range(10)], np.float64)
    rtol = 1e-10 if dtype == np.float64 else 2e-5
    # KL of nearly identical rows: accurate in absolute terms
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol, equal_nan=True)
    assert np.isnan(got[[5, 6]]).all() and got[3] == np.inf
