"""fastxent.kl_div against torch.nn.functional.kl_div and its autograd.

Every reduction x log_target x dtype x shape (0-d to 3-d, the target and the
input broadcast against each other as PyTorch allows), loss and gradient;
mixed dtypes; the special values, where fastxent returns the limit that
PyTorch's ``0 * inf = NaN`` hides (checked against the NumPy reference
``fastxent.reference.kl_div``); empty input; ``grad_out`` (also the
input itself); thread-count independence; memory layouts and read-only
memory maps; errors.
"""
import itertools

import numpy as np
import pytest

import fastxent as fx
from arrays import (Failures, as_result, assert_agree_scaled, assert_bitwise_equal,
                    assert_close, bad_grad_outs, layouts, memmap_copy, torch_result_dtype)
from fastxent import reference as rl

INF, NAN = np.inf, np.nan
REDUCTIONS = ("none", "mean", "batchmean", "sum")
DTYPES = (np.float64, np.float32, np.float16)
DTYPE_IDS = [np.dtype(d).name for d in DTYPES]
# against PyTorch: float64 and float32 relative to the terms' magnitudes
# (PyTorch computes float32 in float32, fastxent in float64 rounded once);
# float16 is PyTorch's float32 result rounded, against a float32 computation
# rounded once: one float16 rounding apart
RTOL = {np.float64: 1e-13, np.float32: 2e-6, np.float16: 2e-3}
# (input shape, target shape): equal, and broadcast either way
SHAPES = [
    ((7,), (7,)),
    ((4, 5), (4, 5)),
    ((3, 4, 5), (3, 4, 5)),
    ((), ()),
    ((4, 5), (5,)),
    ((5,), (4, 5)),
    ((4, 1), (4, 5)),
    ((4, 5), (4, 1)),
    ((3, 1, 5), (3, 4, 1)),
    ((1, 5), (4, 1)),
    ((), (3,)),
    ((3,), ()),
]
SHAPE_IDS = [f"{xs}-{ts}".replace(" ", "") for xs, ts in SHAPES]

# PyTorch warns that 'mean' is not the KL divergence ('batchmean' is)
pytestmark = [
    pytest.mark.filterwarnings("ignore:reduction. 'mean' divides the total loss:UserWarning"),
    pytest.mark.usefixtures("torch_on_one_thread"),
]


# ---------------------------------------------------------------------------
# helpers

def torch_kl_div(torch, x, t, **kwargs):
    """PyTorch's loss and gradient of ``loss.sum()`` as NumPy, in the result
    dtype and the input's dtype.  float16 data are given to PyTorch as
    float32 and its results rounded to float16."""
    def tensor(a):
        a = np.asarray(a)
        return torch.tensor(a.astype(np.float32) if a.dtype == np.float16 else a)

    xt = tensor(x).requires_grad_(True)
    loss = torch.nn.functional.kl_div(xt, tensor(t), **kwargs)
    loss.sum().backward()
    return (as_result(loss.detach().numpy(), torch_result_dtype(x, t)),
            np.asarray(xt.grad.numpy()).astype(np.asarray(x).dtype))


def term_scale(x, t, log_target):
    """Magnitude of the parts of each term (elementwise, broadcast): its
    absolute rounding error is a few eps times this."""
    x64 = np.asarray(x, dtype=np.float64)
    t64 = np.asarray(t, dtype=np.float64)
    with np.errstate(all="ignore"):
        if log_target:
            s = np.exp(t64) * (np.abs(t64) + np.abs(x64))
        else:
            s = np.abs(t64 * np.log(np.abs(t64))) + np.abs(t64 * x64)
    s = np.where(np.isfinite(s), s, 0.0)
    return np.broadcast_to(s, np.broadcast_shapes(x64.shape, t64.shape))


def sum_to_shape(arr, shape):
    """Sum the broadcast dimensions of `arr` away to reach `shape`."""
    lead = arr.ndim - len(shape)
    if lead:
        arr = np.sum(arr, axis=tuple(range(lead)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and arr.shape[i] != 1)
    return np.sum(arr, axis=axes, keepdims=True) if axes else arr


def count_for(reduction, x_shape, full_shape):
    if reduction == "mean":
        return int(np.prod(full_shape))
    if reduction == "batchmean":
        return x_shape[0] if len(x_shape) else 1
    return 1


def loss_scale(x, t, log_target, reduction):
    """The magnitude the loss is computed from (elementwise for 'none')."""
    s = term_scale(x, t, log_target)
    if reduction == "none":
        return s
    n = count_for(reduction, np.shape(x), s.shape)
    return float(np.sum(s)) / n if n else 0.0


def grad_scale(x, t, log_target, reduction):
    """The magnitude of the gradient (summed over broadcast dimensions)."""
    t64 = np.asarray(t, dtype=np.float64)
    with np.errstate(all="ignore"):
        p = np.abs(np.exp(t64) if log_target else t64)
    p = np.where(np.isfinite(p), p, 0.0)
    full = np.broadcast_shapes(np.shape(x), np.shape(t))
    n = count_for(reduction, np.shape(x), full) or 1
    return sum_to_shape(np.broadcast_to(p, full), np.shape(x)) / n


def random_case(rng, x_shape, t_shape, dtype, log_target):
    """Input of log-probabilities and positive values; target probabilities
    with exact zeros (or their logarithms, finite)."""
    x = np.log(rng.random(x_shape) + 0.05) + 0.5 * rng.standard_normal(x_shape)
    p = rng.random(t_shape)
    p[p < 0.2] = 0.0
    t = np.log(p + 0.05) if log_target else p
    return np.asarray(x).astype(dtype), np.asarray(t).astype(dtype)


# ---------------------------------------------------------------------------
# against PyTorch

@pytest.mark.parametrize("shapes", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_matches_torch(torch, dtype, shapes):
    rng = np.random.default_rng(sum(map(len, shapes)) + 10 * np.dtype(dtype).itemsize)
    x_shape, t_shape = shapes
    failures = Failures()
    for log_target, reduction in itertools.product((False, True), REDUCTIONS):
        x, t = random_case(rng, x_shape, t_shape, dtype, log_target)
        kw = dict(reduction=reduction, log_target=log_target)
        label = f"x {x_shape} t {t_shape} {np.dtype(dtype).name} {kw}"
        with failures.case(label):
            want, want_grad = torch_kl_div(torch, x, t, **kw)
            want_ref = rl.kl_div(x, t, **kw)
            assert type(want) is type(want_ref), label  # the scalar/array convention
            got, grad = fx.kl_div(x, t, return_grad=True, **kw)
            rtol = RTOL[dtype]
            assert_close(got, want, rtol=rtol, atol=rtol * loss_scale(x, t, log_target, reduction),
                         err_msg=f"{label} loss")
            assert_close(grad, want_grad, rtol=rtol,
                         atol=rtol * grad_scale(x, t, log_target, reduction),
                         err_msg=f"{label} grad")
            assert grad.shape == x.shape and grad.dtype == x.dtype
            if reduction != "none":
                assert isinstance(got, np.generic) and got.dtype == dtype, label
            # return_grad does not change the loss
            assert_bitwise_equal(fx.kl_div(x, t, **kw), got, f"{label}: return_grad changed it")
    failures.check()


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_default_arguments(torch, reduction):
    """reduction='mean' and log_target=False by default, positionally too."""
    rng = np.random.default_rng(1)
    x, t = random_case(rng, (4, 6), (4, 6), np.float64, False)
    assert_bitwise_equal(fx.kl_div(x, t), fx.kl_div(x, t, "mean", False))
    assert_bitwise_equal(fx.kl_div(x, t, reduction), fx.kl_div(x, t, reduction=reduction))
    lt = np.log(t + 0.1)
    assert_bitwise_equal(fx.kl_div(x, lt, reduction, True),
                         fx.kl_div(x, lt, reduction=reduction, log_target=True))
    want, _ = torch_kl_div(torch, x, t)
    assert_close(fx.kl_div(x, t), want, rtol=1e-13,
                 atol=1e-13 * loss_scale(x, t, False, "mean"))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_return_grad_does_not_change_the_loss(dtype):
    """The loss is the same, bit for bit, with and without the gradient, on
    arrays long enough for the vectorized code."""
    rng = np.random.default_rng(12)
    for (x_shape, t_shape), log_target in itertools.product(
            [((1000,), (1000,)), ((64, 33), (64, 33)), ((33,), (64, 33)), ((64, 1), (64, 33))],
            (False, True)):
        x, t = random_case(rng, x_shape, t_shape, dtype, log_target)
        for reduction in REDUCTIONS:
            kw = dict(reduction=reduction, log_target=log_target)
            loss, _ = fx.kl_div(x, t, return_grad=True, **kw)
            assert_bitwise_equal(fx.kl_div(x, t, **kw), loss,
                                 f"{x_shape} {t_shape} {np.dtype(dtype).name} {kw}")


MIXED = [(np.float32, np.float64), (np.float64, np.float32), (np.float16, np.float32),
         (np.float32, np.float16), (np.float16, np.float64), (np.float64, np.float16)]


@pytest.mark.parametrize("x_dtype, t_dtype", MIXED,
                         ids=[f"{np.dtype(a).name}-{np.dtype(b).name}" for a, b in MIXED])
def test_mixed_dtypes_promote_as_torch(torch, x_dtype, t_dtype):
    """The loss has the promoted dtype, the gradient the input's."""
    rng = np.random.default_rng(2)
    for log_target, reduction in itertools.product((False, True), REDUCTIONS):
        x, t = random_case(rng, (3, 5), (3, 5), np.float64, log_target)
        x, t = x.astype(x_dtype), t.astype(t_dtype)
        kw = dict(reduction=reduction, log_target=log_target)
        label = f"{np.dtype(x_dtype).name} input {np.dtype(t_dtype).name} target {kw}"
        dtype = np.result_type(x_dtype, t_dtype)
        got, grad = fx.kl_div(x, t, return_grad=True, **kw)
        assert np.asarray(got).dtype == dtype, label
        assert grad.dtype == x_dtype and grad.shape == x.shape, label
        want, want_grad = torch_kl_div(torch, x, t, **kw)
        # PyTorch computes the target's part (xlogy(t, t), exp(t)) in the
        # target's dtype, float16 data here in float32: the narrower dtype
        # limits its accuracy
        rtol = max(RTOL[np.float32] if d == np.float16 else RTOL[d] for d in (x_dtype, t_dtype))
        grad_rtol = max(rtol, RTOL[np.dtype(x_dtype).type])
        assert_close(got, want, rtol=rtol, atol=rtol * loss_scale(x, t, log_target, reduction),
                     err_msg=label)
        assert_close(grad, want_grad, rtol=grad_rtol,
                     atol=grad_rtol * grad_scale(x, t, log_target, reduction),
                     err_msg=label + " grad")
        # the reference computes in float64 (float32 for float16 results)
        want, want_grad = rl.kl_div(x, t, return_grad=True, **kw)
        rtol, grad_rtol = RTOL[dtype.type], RTOL[np.dtype(x_dtype).type]
        assert_close(got, want, rtol=rtol, atol=rtol * loss_scale(x, t, log_target, reduction),
                     err_msg=label + " (reference)")
        assert_close(grad, want_grad, rtol=grad_rtol,
                     atol=grad_rtol * grad_scale(x, t, log_target, reduction),
                     err_msg=label + " grad (reference)")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_integer_and_bool_targets_are_converted(torch, dtype):
    """PyTorch refuses integer targets; fastxent converts them (result in
    the input's dtype), as the reference."""
    x = np.log(np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])).astype(dtype)
    onehot = np.array([[0, 0, 1], [1, 0, 0]])
    with pytest.raises(Exception):  # noqa: B017 - PyTorch raises a RuntimeError
        torch.nn.functional.kl_div(torch.tensor(x.astype(np.float32)), torch.tensor(onehot))
    for t in (onehot, onehot.astype(np.uint8), onehot.astype(bool), onehot.astype(np.int32)):
        for log_target, reduction in itertools.product((False, True), REDUCTIONS):
            kw = dict(reduction=reduction, log_target=log_target)
            label = f"{np.dtype(dtype).name} target {t.dtype} {kw}"
            got, grad = fx.kl_div(x, t, return_grad=True, **kw)
            want, want_grad = rl.kl_div(x, t, return_grad=True, **kw)
            rtol = 4 * float(np.finfo(dtype).eps)
            assert_close(got, want, rtol=rtol, atol=rtol * loss_scale(x, t, log_target, reduction),
                         err_msg=label)
            assert_close(grad, want_grad, rtol=rtol, err_msg=label + " grad")
            same, same_grad = fx.kl_div(x, t.astype(dtype), return_grad=True, **kw)
            assert_close(got, same, rtol=rtol,
                         atol=rtol * loss_scale(x, t, log_target, reduction), err_msg=label)
            assert_close(grad, same_grad, rtol=rtol, err_msg=label + " grad")


# ---------------------------------------------------------------------------
# special values: the limits where PyTorch computes 0 * inf = NaN

# (input, target, term): target probabilities
SPECIAL = [
    (-INF, 0.0, 0.0),          # 0 * log 0 = 0 whatever the input (PyTorch: NaN)
    (INF, 0.0, 0.0),           # (PyTorch: NaN)
    (0.0, 0.0, 0.0),
    (-INF, -0.0, 0.0),         # a negative zero is a zero (PyTorch: NaN)
    (1.0, -0.0, 0.0),
    (-INF, 0.5, INF),          # log q = -inf under p > 0
    (INF, 0.5, -INF),
    (1.0, -0.1, NAN),          # a negative probability
    (NAN, 0.0, NAN),           # NaN propagates, also under p = 0
    (NAN, 0.5, NAN),
    (-INF, NAN, NAN),
    (0.5, NAN, NAN),
    (-1.0, 0.25, 0.25 * (np.log(0.25) + 1.0)),
    (0.0, 1.0, 0.0),
    (0.0, 1e-300, 1e-300 * np.log(1e-300)),
]
TORCH_NAN = [0, 1, 3]  # where PyTorch gives NaN for a finite limit

# (input, log target, term)
SPECIAL_LOG = [
    (-INF, -INF, 0.0),         # exp(-inf) * (...) = 0 (PyTorch: NaN)
    (0.0, -INF, 0.0),          # (PyTorch: NaN)
    (INF, -INF, 0.0),          # (PyTorch: NaN)
    (-INF, 0.0, INF),
    (-INF, -800.0, INF),       # exp(t) underflows, t - input = +inf (PyTorch: NaN)
    (0.0, 0.0, 0.0),
    (np.log(0.25), np.log(0.5), 0.5 * np.log(2.0)),
    (INF, 1.0, -INF),
    (0.0, NAN, NAN),
    (NAN, -INF, NAN),          # NaN propagates, also under p = 0
    (NAN, 0.0, NAN),
    (0.0, INF, INF),           # exp(inf) * (inf - 0)
    (0.0, -800.0, 0.0),        # exp(-800) * 800 underflows to 0
]
TORCH_NAN_LOG = [0, 1, 2, 4]


def special_case(log_target):
    cases = SPECIAL_LOG if log_target else SPECIAL
    x, t, want = (np.array(v) for v in zip(*cases))
    return x, t, want, (TORCH_NAN_LOG if log_target else TORCH_NAN)


@pytest.mark.parametrize("log_target", [False, True], ids=["p", "log p"])
def test_special_values(torch, log_target):
    x, t, want, torch_nan = special_case(log_target)
    loss, grad = fx.kl_div(x, t, reduction="none", log_target=log_target, return_grad=True)
    for i, (xi, ti, wi) in enumerate(zip(x, t, want)):
        assert_close(loss[i], np.float64(wi), rtol=1e-14,
                     err_msg=f"input {xi} target {ti} (log_target={log_target})")
    with np.errstate(all="ignore"):
        p = np.exp(t) if log_target else t
    # -p, NaN where p is NaN (exp(t) within an ulp or two)
    np.testing.assert_allclose(grad, -p, rtol=1e-15, atol=0)
    # the reference, every reduction, loss and gradient
    for reduction in REDUCTIONS:
        kw = dict(reduction=reduction, log_target=log_target)
        got = fx.kl_div(x, t, return_grad=True, **kw)
        want_loss, want_grad = rl.kl_div(x, t, return_grad=True, **kw)
        assert_close(got[0], want_loss, rtol=1e-14, err_msg=str(kw))
        assert_close(got[1], want_grad, rtol=1e-14, err_msg=f"{kw} grad")
    # PyTorch: NaN where the limit is finite, the same values elsewhere
    torch_loss, torch_grad = torch_kl_div(torch, x, t, reduction="none", log_target=log_target)
    assert np.isnan(torch_loss[torch_nan]).all(), torch_loss
    others = np.setdiff1d(np.arange(x.size), torch_nan)
    assert_close(loss[others], torch_loss[others], rtol=1e-14)
    np.testing.assert_allclose(grad, torch_grad, rtol=1e-15, atol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float16], ids=["float32", "float16"])
@pytest.mark.parametrize("log_target", [False, True], ids=["p", "log p"])
def test_special_values_narrow_dtypes(log_target, dtype):
    """As the reference: computed in a wider dtype, rounded once."""
    x, t, _, _ = special_case(log_target)
    with np.errstate(over="ignore"):
        x, t = x.astype(dtype), t.astype(dtype)
    for reduction in REDUCTIONS:
        kw = dict(reduction=reduction, log_target=log_target)
        got, grad = fx.kl_div(x, t, return_grad=True, **kw)
        want, want_grad = rl.kl_div(x, t, return_grad=True, **kw)
        rtol = 2 * float(np.finfo(dtype).eps)
        assert_close(got, want, rtol=rtol, atol=rtol * loss_scale(x, t, log_target, reduction),
                     err_msg=f"{np.dtype(dtype).name} {kw}")
        assert_close(grad, want_grad, rtol=rtol, err_msg=f"{np.dtype(dtype).name} {kw} grad")


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16],
                         ids=["float64", "float32", "float16"])
@pytest.mark.parametrize("log_target", [False, True], ids=["p", "log p"])
def test_special_values_inside_long_rows(log_target, dtype):
    """The special values at scattered places of long rows, where the
    vectorized loops (not their tails) meet them, in every lane position:
    each output combination against the reference."""
    x0, t0, _, _ = special_case(log_target)
    if log_target:   # the float32 terms that the kernels redo in double, and a
        # vanishing exp(t) under a difference t - x that overflows float32
        x0 = np.concatenate([x0, [-3e38, -1e30, -1e30, -1e30, -1e30, 3e38]])
        t0 = np.concatenate([t0, [-104.0, -100.0, -90.0, -87.2, -86.9, -3e38]])
    rng = np.random.default_rng(5)
    n = 1031
    p = rng.dirichlet(np.ones(n))
    x = np.log(rng.dirichlet(np.ones(n)))
    t = np.log(p) if log_target else p
    x, t = np.tile(x, (3, 1)), np.tile(t, (3, 1))
    for r in range(3):   # each row puts the cases at other lane positions
        at = 5 + r + 53 * np.arange(x0.size)
        x[r, at], t[r, at] = x0, t0
    with np.errstate(over="ignore"):
        x, t = x.astype(dtype), t.astype(dtype)
    kw = dict(log_target=log_target)
    rtol = 4 * float(np.finfo(dtype).eps)
    for reduction in ("none", "sum"):
        atol = rtol * loss_scale(x, t, log_target, reduction)
        want, want_grad = rl.kl_div(x, t, reduction=reduction, return_grad=True, **kw)
        got, grad = fx.kl_div(x, t, reduction=reduction, return_grad=True, **kw)
        assert_close(got, want, rtol=rtol, atol=atol, err_msg=f"{reduction} with grad")
        assert_close(grad, want_grad, rtol=rtol, err_msg=f"{reduction} grad")
        assert_close(fx.kl_div(x, t, reduction=reduction, **kw), want, rtol=rtol, atol=atol,
                     err_msg=reduction)


def test_every_float16_target():
    """Each non-negative float16 (subnormals, zero and inf included) read
    exactly: the gradient -p is the target itself, the terms the reference's
    within a rounding."""
    p = np.arange(0, 0x7c01, dtype=np.uint16).view(np.float16)
    for x in (np.zeros_like(p), np.full_like(p, -1.5)):
        loss, grad = fx.kl_div(x, p, reduction="none", return_grad=True)
        np.testing.assert_array_equal(grad, -p)
        assert_close(loss, rl.kl_div(x, p, reduction="none"), rtol=2.0 ** -10, atol=2.0 ** -24)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16],
                         ids=["float64", "float32", "float16"])
@pytest.mark.parametrize("log_target", [False, True], ids=["p", "log p"])
def test_short_rows_against_a_broadcast_target(log_target, dtype):
    """Rows of a few classes against one target row (the rows are gathered
    a block at a time), with -inf inputs and zero targets among them, and a
    column-major gradient: every output against the reference."""
    rng = np.random.default_rng(12)
    for R, L in [(203, 10), (77, 3), (9, 100), (40, 129)]:
        x = np.log(rng.dirichlet(np.ones(L), size=R))
        x[rng.random((R, L)) < 0.03] = -INF
        p = rng.dirichlet(np.ones(L))
        p[0] = 0.0
        with np.errstate(divide="ignore"):
            t = np.log(p) if log_target else p
        x, t = x.astype(dtype), t.astype(dtype)
        kw = dict(log_target=log_target)
        rtol = 4 * float(np.finfo(dtype).eps)
        for reduction in REDUCTIONS:
            label = f"{R}x{L} {reduction} {np.dtype(dtype).name}"
            atol = rtol * loss_scale(x, t, log_target, reduction)
            want, want_g = rl.kl_div(x, t, reduction=reduction, return_grad=True, **kw)
            assert_close(fx.kl_div(x, t, reduction=reduction, **kw), want, rtol=rtol, atol=atol,
                         err_msg=label)
            gout = np.empty((L, R), dtype).T
            got, g = fx.kl_div(x, t, reduction=reduction, return_grad=True, grad_out=gout, **kw)
            assert g is gout
            assert_close(got, want, rtol=rtol, atol=atol, err_msg=label + " with grad")
            assert_close(g, want_g, rtol=rtol, err_msg=label + " grad")
            xx = x.copy()   # the gradient over the input
            got, g = fx.kl_div(xx, t, reduction=reduction, return_grad=True, grad_out=xx, **kw)
            assert g is xx
            assert_close(got, want, rtol=rtol, atol=atol, err_msg=label + " grad over x")
            assert_close(g, want_g, rtol=rtol, err_msg=label + " grad over x")


def test_special_values_in_rows_and_broadcasting():
    """Special values in a row that is broadcast against several inputs,
    and the reductions of rows holding them."""
    t = np.array([0.0, 0.5, 0.0, 0.5])
    x = np.array([[-INF, np.log(0.5), INF, np.log(0.5)],
                  [0.0, np.log(0.25), -INF, np.log(0.75)],
                  [-1.0, -INF, 0.0, 0.0]])
    for reduction, log_target in itertools.product(REDUCTIONS, (False, True)):
        with np.errstate(divide="ignore"):
            tt = np.log(t) if log_target else t
        kw = dict(reduction=reduction, log_target=log_target)
        for xx, ttt in ((x, tt), (x[:2], tt)):
            got, grad = fx.kl_div(xx, ttt, return_grad=True, **kw)
            want, want_grad = rl.kl_div(xx, ttt, return_grad=True, **kw)
            assert_close(got, want, rtol=1e-15, err_msg=str(kw))
            assert_close(grad, want_grad, rtol=1e-15, err_msg=f"{kw} grad")
    # the first two rows are finite KL divergences, the third is +inf
    rows = fx.kl_div(x, t, reduction="none").sum(axis=1)
    np.testing.assert_allclose(rows[:2], [0.0, 0.5 * np.log(2.0) + 0.5 * np.log(2 / 3)],
                               rtol=1e-15, atol=1e-16)
    assert rows[2] == INF
    assert fx.kl_div(x[:2], t, reduction="batchmean") == pytest.approx(
        (0.5 * np.log(2.0) + 0.5 * np.log(2 / 3)) / 2, rel=1e-15)


# ---------------------------------------------------------------------------
# empty input

@pytest.mark.parametrize("shape", [(0,), (0, 3), (3, 0), (2, 0, 4)],
                         ids=["0", "0x3", "3x0", "2x0x4"])
def test_empty_input(torch, shape):
    """'mean' of nothing is NaN, 'batchmean' NaN for no rows (0 for rows of
    nothing), 'sum' 0, 'none' empty; as PyTorch."""
    x = np.zeros(shape)
    for reduction, log_target, dtype in itertools.product(REDUCTIONS, (False, True), DTYPES):
        xx = x.astype(dtype)
        kw = dict(reduction=reduction, log_target=log_target)
        label = f"{shape} {np.dtype(dtype).name} {kw}"
        got, grad = fx.kl_div(xx, xx, return_grad=True, **kw)
        want, want_grad = torch_kl_div(torch, xx, xx, **kw)
        assert_close(got, want, rtol=0, err_msg=label)
        assert_close(grad, want_grad, rtol=0, err_msg=label + " grad")
        if reduction == "mean" or (reduction == "batchmean" and shape[0] == 0):
            assert np.isnan(got), label
        elif reduction != "none":
            assert got == 0, label
        assert_close(got, rl.kl_div(xx, xx, **kw), rtol=0, err_msg=label + " (reference)")
    # an empty target broadcast against an input
    got, grad = fx.kl_div(np.zeros(4), np.zeros((0, 4)), reduction="batchmean", return_grad=True)
    assert got == 0 and grad.shape == (4,)
    np.testing.assert_array_equal(grad, 0.0)


# ---------------------------------------------------------------------------
# grad_out

def grad_out_cases(seed, dtype, shapes):
    """``(x, t, kw, label, loss, grad)`` for each log_target and reduction: a
    random case of `shapes` in `dtype`, with the loss and gradient computed
    without grad_out."""
    rng = np.random.default_rng(seed)
    x_shape, t_shape = shapes
    for log_target, reduction in itertools.product((False, True), REDUCTIONS):
        x, t = random_case(rng, x_shape, t_shape, dtype, log_target)
        kw = dict(reduction=reduction, log_target=log_target)
        label = f"{x_shape} {t_shape} {np.dtype(dtype).name} {kw}"
        want, want_grad = fx.kl_div(x, t, return_grad=True, **kw)
        yield x, t, kw, label, want, want_grad


@pytest.mark.parametrize("shapes", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_grad_out(dtype, shapes):
    """A given grad_out receives the gradient and is returned; the loss and
    gradient are those computed without it, bit for bit."""
    for x, t, kw, label, want, want_grad in grad_out_cases(3, dtype, shapes):
        out = np.full(x.shape, np.nan, dtype)
        got, grad = fx.kl_div(x, t, return_grad=True, grad_out=out, **kw)
        assert grad is out, label
        assert_bitwise_equal(got, want, label)
        assert_bitwise_equal(out, want_grad, label + " grad")


@pytest.mark.parametrize("shapes", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_grad_out_is_the_input(dtype, shapes):
    """grad_out=input: the loss is that of the original input (also where
    the input is broadcast and every element is read several times), the
    input then holds the gradient."""
    for x, t, kw, label, want, want_grad in grad_out_cases(4, dtype, shapes):
        y = x.copy()
        got, grad = fx.kl_div(y, t, return_grad=True, grad_out=y, **kw)
        assert grad is y, label
        assert_bitwise_equal(got, want, label)
        assert_bitwise_equal(y, want_grad, label + " grad")


def test_grad_out_views():
    """grad_out in another layout than the input: Fortran order, strided,
    negatively strided."""
    rng = np.random.default_rng(5)
    x, t = random_case(rng, (6, 7), (6, 7), np.float64, False)
    x3, t3 = random_case(rng, (3, 4, 5), (4, 1), np.float32, True)
    for xx, tt, log_target in ((x, t, False), (x3, t3, True)):
        for reduction in REDUCTIONS:
            kw = dict(reduction=reduction, log_target=log_target)
            want, want_grad = fx.kl_div(xx, tt, return_grad=True, **kw)
            big = np.full(tuple(2 * n for n in xx.shape), np.nan, xx.dtype)
            other = np.full(tuple(2 * n for n in xx.shape), np.nan, xx.dtype)
            for label, out in [("F order", np.asfortranarray(np.empty_like(xx))),
                               ("strided", big[(slice(None, None, 2),) * xx.ndim]),
                               ("negative strides", other[(slice(None, None, -2),) * xx.ndim])]:
                got, grad = fx.kl_div(xx, tt, return_grad=True, grad_out=out, **kw)
                assert grad is out, label
                assert_bitwise_equal(got, want, f"{label} {kw}")
                np.testing.assert_array_equal(out, want_grad, err_msg=f"{label} {kw}")
            # the elements of `big` between the strided views are untouched
            assert np.isnan(big[(slice(1, None, 2),) * xx.ndim]).all()


def test_bad_grad_out():
    x = np.log(np.full((3, 4), 0.25))
    t = np.full((3, 4), 0.25)
    for label, out in bad_grad_outs():
        with pytest.raises(ValueError, match="grad_out"):
            fx.kl_div(x, t, return_grad=True, grad_out=out)
    # the broadcast shape is not the input's
    with pytest.raises(ValueError, match="grad_out"):
        fx.kl_div(x[0], t, return_grad=True, grad_out=np.empty((3, 4)))
    with pytest.raises(ValueError, match="grad_out"):
        fx.kl_div(np.float64(0.0), t, return_grad=True, grad_out=np.empty(1))


# ---------------------------------------------------------------------------
# threads

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_results_do_not_depend_on_threads(dtype):
    rng = np.random.default_rng(6)
    cases = [((2000, 40), (2000, 40)), ((40,), (2000, 40)), ((2000, 1), (2000, 40)),
             ((1, 2000, 3), (5, 1, 3)), ((80000,), (80000,))]
    for (x_shape, t_shape), log_target in itertools.product(cases, (False, True)):
        x, t = random_case(rng, x_shape, t_shape, dtype, log_target)
        if x.shape == t.shape:  # some limits too: p = 0 against log q = -inf
            m = rng.random(x.shape) < 0.01
            x[m], t[m] = -INF, (-INF if log_target else 0.0)
        for reduction in REDUCTIONS:
            kw = dict(reduction=reduction, log_target=log_target)
            label = f"{x_shape} {t_shape} {np.dtype(dtype).name} {kw}"
            one = fx.kl_div(x, t, return_grad=True, n_threads=1, **kw)
            for n in (2, 3, None):
                other = fx.kl_div(x, t, return_grad=True, n_threads=n, **kw)
                assert_bitwise_equal(other[0], one[0], f"{label} n_threads={n}")
                assert_bitwise_equal(other[1], one[1], f"{label} n_threads={n} grad")
            loss_only = fx.kl_div(x, t, n_threads=1, **kw)
            for n in (2, 3, None):
                assert_bitwise_equal(fx.kl_div(x, t, n_threads=n, **kw), loss_only,
                                     f"{label} n_threads={n}, without the gradient")


# ---------------------------------------------------------------------------
# memory layouts

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_layouts_match_contiguous_copies(dtype, tmp_path):
    rng = np.random.default_rng(7)
    bx, bt = random_case(rng, (37, 23), (37, 23), dtype, False)
    failures = Failures()
    for log_target, reduction in itertools.product((False, True), REDUCTIONS):
        base_t = np.log(bt + 0.05).astype(dtype) if log_target else bt
        kw = dict(reduction=reduction, log_target=log_target)
        for (lx, x), (lt, tt) in zip(layouts(bx, tmp_path), layouts(base_t, tmp_path)):
            xc, tc = np.array(x, order="C"), np.array(tt, order="C")
            before = xc.copy(), tc.copy()
            for label, a, b in [(f"input {lx}", x, tc), (f"target {lt}", xc, tt),
                                (f"both {lx}", x, tt)]:
                with failures.case(f"{label} {np.dtype(dtype).name} {kw}"):
                    want, want_grad = fx.kl_div(xc, tc, return_grad=True, **kw)
                    got, grad = fx.kl_div(a, b, return_grad=True, **kw)
                    assert_agree_scaled(got, want, loss_scale(xc, tc, log_target, reduction),
                                        dtype, label)
                    assert_agree_scaled(grad, want_grad,
                                        grad_scale(xc, tc, log_target, reduction), dtype,
                                        label + " grad")
                    np.testing.assert_array_equal(a, before[0], err_msg="input modified")
                    np.testing.assert_array_equal(b, before[1], err_msg="target modified")
    failures.check()


def test_read_only_memory_maps(tmp_path):
    """Input and target in files opened read-only (np.memmap mode 'r'), as
    such and as strided views."""
    rng = np.random.default_rng(8)
    x, t = random_case(rng, (50, 31), (50, 31), np.float32, False)
    xm, tm = memmap_copy(x, tmp_path / "x.dat"), memmap_copy(t, tmp_path / "t.dat")
    assert not xm.flags.writeable
    for log_target, reduction in itertools.product((False, True), REDUCTIONS):
        kw = dict(reduction=reduction, log_target=log_target)
        ta, tb = (np.log(t + 0.05), np.log(np.asarray(tm) + 0.05)) if log_target else (t, tm)
        for label, a, b, ca, cb in [("memmap", xm, tb, x, ta),
                                    ("memmap strided", xm[::3, ::2], tb[::3, ::2],
                                     x[::3, ::2].copy(), np.array(ta[::3, ::2]))]:
            want, want_grad = fx.kl_div(ca, cb, return_grad=True, **kw)
            got, grad = fx.kl_div(a, b, return_grad=True, **kw)
            assert type(got) is type(want) and type(grad) is np.ndarray, label
            assert_agree_scaled(got, want, loss_scale(ca, cb, log_target, reduction),
                                np.float32, f"{label} {kw}")
            assert_agree_scaled(grad, want_grad, grad_scale(ca, cb, log_target, reduction),
                                np.float32, f"{label} {kw} grad")
    np.testing.assert_array_equal(xm, x)


def test_nested_lists_and_scalars():
    x = [[np.log(0.25), np.log(0.75)], [np.log(0.5), np.log(0.5)]]
    t = [[0.5, 0.5], [1.0, 0.0]]
    got = fx.kl_div(x, t, reduction="none")
    assert_close(got, rl.kl_div(np.array(x), np.array(t), reduction="none"), rtol=1e-15)
    assert type(fx.kl_div(np.float64(-1.0), 0.5, reduction="none")) is np.float64
    assert type(fx.kl_div(np.float32(-1.0), np.float32(0.5), reduction="sum")) is np.float32


# ---------------------------------------------------------------------------
# errors

def test_errors(torch):
    x = np.log(np.full((3, 4), 0.25))
    t = np.full((3, 4), 0.25)
    for reduction in ("avg", "MEAN", "", None, "elementwise_mean"):
        with pytest.raises(ValueError, match="reduction"):
            fx.kl_div(x, t, reduction=reduction)
    with pytest.raises(Exception):  # noqa: B017 - PyTorch raises its own type
        torch.nn.functional.kl_div(torch.tensor(x), torch.tensor(t), reduction="avg")
    for t_bad in (np.full((3, 5), 0.25), np.full((2, 4), 0.25), np.full((2, 3, 4), 0.25)[:, :2]):
        with pytest.raises(ValueError):
            fx.kl_div(x, t_bad)
        with pytest.raises(ValueError):
            fx.kl_div(x, t_bad, return_grad=True)
    with pytest.raises(RuntimeError):
        torch.nn.functional.kl_div(torch.tensor(x), torch.tensor(np.full((3, 5), 0.25)))
    for x_bad in (x.astype(np.int64), x.astype(np.int32), x.astype(np.uint8), x > 0):
        with pytest.raises(TypeError, match="input"):
            fx.kl_div(x_bad, t)
    with pytest.raises(TypeError, match="input"):
        fx.kl_div(np.array([1, 2]), np.array([0.5, 0.5]), return_grad=True)
    with pytest.raises(TypeError):
        fx.kl_div(x, np.full((3, 4), "a"))
    with pytest.raises(TypeError):
        fx.kl_div(x.astype(np.complex128), t)
    with pytest.raises(TypeError):
        fx.kl_div(x, t.astype(np.complex128))


@pytest.mark.parametrize("n", [10, 1000])
def test_float32_sums_near_the_top_of_the_range(torch, n):
    # each term is finite in float32; their sum is not, their mean is
    x = np.full(n, -3e38, np.float32)
    t = np.full(n, 0.5, np.float32)
    for log_target, target in ((False, t), (True, np.log(t))):
        got = fx.kl_div(x, target, log_target=log_target)
        want = torch.nn.functional.kl_div(torch.tensor(x, dtype=torch.float64),
                                          torch.tensor(target, dtype=torch.float64),
                                          log_target=log_target).item()
        assert np.isfinite(got)
        np.testing.assert_allclose(got, want, rtol=2e-6)
        np.testing.assert_allclose(got, rl.kl_div(x, target, log_target=log_target), rtol=2e-6)


def test_log_target_equal_input_where_exp_overflows(torch):
    # exp(100) overflows float32; the term exp(t) (t - x) is 0 at t = x
    x = np.array([100.0, 50.0, 100.0], np.float32)
    t = np.array([100.0, 50.0, -3.0], np.float32)
    got = fx.kl_div(x, t, log_target=True, reduction="none")
    want = torch.nn.functional.kl_div(torch.tensor(x, dtype=torch.float64),
                                      torch.tensor(t, dtype=torch.float64),
                                      log_target=True, reduction="none").numpy()
    np.testing.assert_allclose(got, want, rtol=2e-6)
    np.testing.assert_array_equal(got, rl.kl_div(x, t, log_target=True, reduction="none"))
    assert fx.kl_div(x[:1], t[:1], log_target=True) == 0.0
    # also where the float64 exp overflows (PyTorch: inf * 0 = NaN)
    big = np.array([1000.0, -np.inf])
    np.testing.assert_array_equal(fx.kl_div(big, big, log_target=True, reduction="none"), 0.0)
    np.testing.assert_array_equal(rl.kl_div(big, big, log_target=True, reduction="none"), 0.0)
    assert np.isnan(fx.kl_div(np.array([np.inf]), np.array([np.inf]), log_target=True))


def test_log_target_vanishing_exp_under_overflowing_difference():
    # exp(-3e38) = 0 while t - x = -6e38 overflows float32: the term is 0
    x = np.array([3e38, 1.0], np.float32)
    t = np.array([-3e38, -3e38], np.float32)
    got = fx.kl_div(x, t, log_target=True, reduction="none")
    np.testing.assert_array_equal(got, 0.0)
    np.testing.assert_array_equal(got, rl.kl_div(x, t, log_target=True, reduction="none"))
    assert np.isnan(fx.kl_div(np.array([np.nan], np.float32), t[:1], log_target=True))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_log_target_infinite_input_where_exp_underflows(torch, dtype):
    # exp(t) = 0 times t - x = -inf: PyTorch's 0 * inf = NaN, in the terms
    # and in every reduction (a 0-d input too)
    x = np.array([np.inf, np.inf, 1.0], dtype)
    t = np.array([-1e10, -3e38, -1e10], dtype)
    want = torch.nn.functional.kl_div(torch.tensor(x), torch.tensor(t), log_target=True,
                                      reduction="none").numpy()
    got = fx.kl_div(x, t, log_target=True, reduction="none")
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(got[2:], 0.0)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(rl.kl_div(x, t, log_target=True,
                                                                     reduction="none")))
    for reduction in ("mean", "batchmean", "sum"):
        assert np.isnan(fx.kl_div(x[0], t[0], log_target=True, reduction=reduction))
        assert np.isnan(fx.kl_div(x, t, log_target=True, reduction=reduction))


def test_log_target_float32_term_where_exp_underflows(torch):
    # float32 exp(-104) underflows (exp(-100) keeps 3 digits), yet
    # exp(t) (t - x) is a normal float32 number: fastxent gives it to float32
    # precision (the float64 value rounded, as the reference); PyTorch's
    # float32 gives 0 and 3.78e-14 (see docs/differences.rst)
    x = np.array([-3e38, -1e30, -1e30, 2.0], np.float32)
    t = np.array([-104.0, -100.0, -90.0, -150.0], np.float32)
    want = torch.nn.functional.kl_div(torch.tensor(x, dtype=torch.float64),
                                      torch.tensor(t, dtype=torch.float64),
                                      log_target=True, reduction="none").numpy()
    got, grad = fx.kl_div(x, t, log_target=True, reduction="none", return_grad=True)
    np.testing.assert_allclose(got, want.astype(np.float32), rtol=2e-7)
    assert got[0] > 2e-7
    np.testing.assert_allclose(got, rl.kl_div(x, t, log_target=True, reduction="none"),
                               rtol=2e-7)
    np.testing.assert_allclose(fx.kl_div(x, t, log_target=True, reduction="sum"),
                               want.sum(), rtol=2e-6)
    f32 = torch.nn.functional.kl_div(torch.tensor(x), torch.tensor(t), log_target=True,
                                     reduction="none").numpy()
    assert f32[0] == 0.0
    np.testing.assert_array_less(np.abs(grad), np.finfo(np.float32).tiny)



def test_log_target_vanishing_exp_under_overflowing_float64_difference(torch):
    # float64 as float32 above: exp(-1.7e308) = 0 and t - x = -3.4e308
    # overflows; the term is 0, where PyTorch computes 0 * -inf = NaN (see
    # docs/differences.rst).  'mean' of a (64, 1) input broadcast against a
    # (1,) target was where the reference gave NaN and fastxent 0
    x = np.array([[1.7e308], [0.0], [-1.7e308]])
    t = np.array([-1.7e308])
    want = torch.nn.functional.kl_div(torch.tensor(x), torch.tensor(t), log_target=True,
                                      reduction="none").numpy()
    assert np.isnan(want[0, 0]) and (want[1:] == 0).all()
    for reduction in REDUCTIONS:
        loss, grad = fx.kl_div(x, t, log_target=True, reduction=reduction, return_grad=True)
        ref_loss, ref_grad = rl.kl_div(x, t, log_target=True, reduction=reduction,
                                       return_grad=True)
        np.testing.assert_array_equal(loss, 0.0)
        np.testing.assert_array_equal(ref_loss, 0.0)
        np.testing.assert_array_equal(grad, ref_grad)
        np.testing.assert_array_equal(grad, 0.0)
    # an infinite input keeps PyTorch's NaN
    assert np.isnan(fx.kl_div(np.array([np.inf]), t, log_target=True))
    assert np.isnan(rl.kl_div(np.array([np.inf]), t, log_target=True))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_log_target_float32_gradient_where_exp_overflows(torch, reduction):
    # exp(92) overflows float32 though exp(92) / 256 ('mean') would not: the
    # term is +inf and its gradient -inf, as PyTorch forms them in float32
    x = np.zeros((64, 2, 2), np.float32)
    t = np.full((64, 2, 2), -1.0, np.float32)
    t[54, 1, 1] = 92.0
    t[0, 0, 0] = 3.0
    tx = torch.tensor(x, requires_grad=True)
    want = torch.nn.functional.kl_div(tx, torch.tensor(t), log_target=True,
                                      reduction=reduction)
    want.sum().backward()
    want_grad = tx.grad.numpy()
    assert want_grad[54, 1, 1] == -np.inf
    for f in (fx.kl_div, rl.kl_div):
        loss, grad = f(x, t, log_target=True, reduction=reduction, return_grad=True)
        np.testing.assert_array_equal(np.isinf(loss), np.isinf(want.detach().numpy()))
        np.testing.assert_array_equal(np.isinf(grad), np.isinf(want_grad))
        np.testing.assert_allclose(grad, want_grad, rtol=2e-6)

def test_log_target_float32_redo_with_gradient_over_input():
    # the double-precision terms read x after the gradient: not over it
    x = np.array([-3e38, 1.0, -1e30], np.float32)
    t = np.array([-104.0, 0.5, -100.0], np.float32)
    want = fx.kl_div(x.copy(), t, log_target=True, reduction="sum")
    loss, grad = fx.kl_div(x, t, log_target=True, reduction="sum", return_grad=True, grad_out=x)
    assert grad is x
    assert loss == want
    np.testing.assert_array_equal(grad, -np.exp(t.astype(np.float64)).astype(np.float32))


def test_sum_of_terms_overflowing_on_the_way(torch):
    # 1.02e308 + 0.85e308 overflows, the sum with -1.19e308 does not: the
    # terms are summed where their order does not matter (PyTorch's float64
    # sum may overflow on the way)
    x = np.array([-1.7e308, -1.7e308, 1.7e308, 1.0])
    t = np.array([0.6, 0.5, 0.7, 0.2])
    terms = rl.kl_div(x, t, reduction="none")
    want = float(np.sum(terms / 4)) * 4
    assert np.isfinite(want)
    peer = torch.nn.functional.kl_div(torch.tensor(x), torch.tensor(t), reduction="sum").item()
    assert peer == np.inf   # the deliberate difference of docs/differences.rst
    for reduction, scale in (("sum", 1), ("mean", 4), ("batchmean", 4)):
        np.testing.assert_allclose(fx.kl_div(x, t, reduction=reduction), want / scale, rtol=1e-14)
        np.testing.assert_allclose(rl.kl_div(x, t, reduction=reduction), want / scale, rtol=1e-14)
    # an infinite term of each sign: NaN whatever the order
    x2 = np.array([-np.inf, np.inf, -1.7e308, -1.7e308])
    t2 = np.array([0.5, 0.5, 0.75, 0.75])
    assert np.isnan(fx.kl_div(x2, t2, reduction="sum"))
    assert np.isnan(rl.kl_div(x2, t2, reduction="sum"))


def test_float32_gradient_of_a_broadcast_input_sums_in_float64(torch):
    # a (1,) input broadcast against 2400 targets: the gradient sums 2400
    # float32 terms, in float64 (a float32 running sum was off by 6e-6)
    rng = np.random.default_rng(6)
    x = np.array([-0.5], np.float32)
    t = rng.integers(0, 6, size=(4, 300, 2)).astype(np.int32)
    tx = torch.tensor(x.astype(np.float64), requires_grad=True)
    torch.nn.functional.kl_div(tx, torch.tensor(t, dtype=torch.float64),
                               reduction="sum").backward()
    want = tx.grad.numpy() / t.size
    _, grad = fx.kl_div(x, t, return_grad=True)
    assert grad.dtype == np.float32
    np.testing.assert_allclose(grad, want, rtol=2e-7)
    np.testing.assert_allclose(grad, rl.kl_div(x, t, return_grad=True)[1], rtol=2e-7)
