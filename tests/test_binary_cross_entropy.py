"""fastxent.binary_cross_entropy_with_logits against
torch.nn.functional.binary_cross_entropy_with_logits and its autograd.

Every reduction x weight (per element, per class ``(C,)``, per row
``(N, 1)``, scalar) x pos_weight (per class on the last axis, scalar) x
dtype x shape, loss and gradient; infinite logits, where fastxent returns
the limit of the loss and PyTorch NaN (checked against the NumPy reference
``fastxent.reference``); accuracy at large ``|x|`` against the exact
value; empty input; ``grad_out`` (also the input itself); thread-count
independence; memory layouts and read-only memory maps; errors.
"""
import itertools

import numpy as np
import pytest

import fastxent as fx
from arrays import (Failures, as_result, assert_agree_scaled, assert_bitwise_equal,
                    assert_close, bad_grad_outs, layouts, memmap_copy, torch_result_dtype)
from fastxent import reference as rl

INF, NAN = np.inf, np.nan
REDUCTIONS = ("none", "mean", "sum")
DTYPES = (np.float64, np.float32, np.float16)
DTYPE_IDS = [np.dtype(d).name for d in DTYPES]
# against PyTorch (float16 data given to it as float32, its result rounded)
RTOL = {np.float64: 1e-13, np.float32: 2e-6, np.float16: 2e-3}
SHAPES = [(7,), (4, 5), (2, 3, 5), (), (1,)]
SHAPE_IDS = ["x".join(map(str, s)) or "0d" for s in SHAPES]

pytestmark = pytest.mark.usefixtures("torch_on_one_thread")


def _weights(shape, rng):
    """name -> weight of that kind for input `shape` (None where it does not apply)."""
    c = shape[-1:] if shape else ()
    kinds = {
        "none": None,
        "scalar": np.array(0.7),
        "per class": rng.random(c) * 2 if shape else None,
        "per row": rng.random(shape[:-1] + (1,)) * 2 if len(shape) >= 2 else None,
        "full": rng.random(shape) * 2,
    }
    if kinds["per class"] is not None and shape[-1] > 1:
        kinds["per class"][1] = 0.0  # a zero weight
    return kinds


# ---------------------------------------------------------------------------
# helpers

def torch_bce(torch, x, y, weight=None, pos_weight=None, **kwargs):
    """PyTorch's loss and gradient of ``loss.sum()`` as NumPy.  float16 data
    are given to PyTorch as float32 (weights in the input's dtype, which is
    what PyTorch requires) and its results rounded to float16."""
    x = np.asarray(x)

    def tensor(a, dtype=None):
        if a is None:
            return None
        a = np.asarray(a)
        if dtype is not None:
            a = a.astype(dtype)
        return torch.tensor(a.astype(np.float32) if a.dtype == np.float16 else a)

    xt = tensor(x).requires_grad_(True)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(
        xt, tensor(y), weight=tensor(weight, x.dtype), pos_weight=tensor(pos_weight, x.dtype),
        **kwargs)
    loss.sum().backward()
    return (as_result(loss.detach().numpy(), torch_result_dtype(x, y)),
            xt.grad.numpy().astype(x.dtype))


def bce_scale(x, weight, pos_weight, reduction):
    """Magnitude of the parts of the loss (elementwise for 'none'): PyTorch
    forms ``(1 - y) x - (1 + (pw - 1) y) log_sigmoid(x)``, which cancels up
    to about ``(1 + |pw|) (|x| + 1)``, times the weight."""
    x64 = np.asarray(x, dtype=np.float64)
    w = 1.0 if weight is None else np.abs(np.asarray(weight, dtype=np.float64))
    pw = 1.0 if pos_weight is None else np.abs(np.asarray(pos_weight, dtype=np.float64))
    s = w * (1 + pw) * (np.abs(np.where(np.isfinite(x64), x64, 0.0)) + 1)
    s = np.broadcast_to(s, x64.shape)
    if reduction == "none":
        return s
    total = float(np.sum(s))
    return total / s.size if reduction == "mean" and s.size else total


def grad_scale(x, weight, pos_weight, reduction):
    x64 = np.asarray(x, dtype=np.float64)
    w = 1.0 if weight is None else np.abs(np.asarray(weight, dtype=np.float64))
    pw = 1.0 if pos_weight is None else np.abs(np.asarray(pos_weight, dtype=np.float64))
    s = np.broadcast_to(w * (1 + pw), x64.shape)
    return s / s.size if reduction == "mean" and s.size else s


def random_case(rng, shape, dtype):
    """Logits of spread 4; targets in [0, 1] with exact zeros and ones."""
    x = 4 * rng.standard_normal(shape)
    y = rng.random(shape)
    y[rng.random(shape) < 0.3] = 1.0
    y[rng.random(shape) < 0.2] = 0.0
    return np.asarray(x).astype(dtype), np.asarray(y).astype(dtype)


def cast(a, dtype):
    return None if a is None else np.asarray(a).astype(dtype)


# ---------------------------------------------------------------------------
# against PyTorch

@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_matches_torch(torch, dtype, shape):
    rng = np.random.default_rng(len(shape) + 10 * np.dtype(dtype).itemsize)
    x, y = random_case(rng, shape, dtype)
    weights = _weights(shape, rng)
    failures = Failures()
    for wkind, pwkind, reduction in itertools.product(weights, ("none", "per class", "scalar"),
                                                      REDUCTIONS):
        w, pw = cast(weights[wkind], dtype), cast(weights[pwkind], dtype)
        if (w is None and wkind != "none") or (pw is None and pwkind != "none"):
            continue  # that kind does not exist for this shape
        if pw is not None:
            pw = pw + 1.0  # pos_weight of about 1 to 3
        kw = dict(weight=w, pos_weight=pw, reduction=reduction)
        label = f"{shape} {np.dtype(dtype).name} weight {wkind} pos_weight {pwkind} {reduction}"
        with failures.case(label):
            want, want_grad = torch_bce(torch, x, y, **kw)
            got, grad = fx.binary_cross_entropy_with_logits(x, y, return_grad=True, **kw)
            rtol = RTOL[dtype]
            assert_close(got, want, rtol=rtol, atol=rtol * bce_scale(x, w, pw, reduction),
                         err_msg=f"{label} loss")
            assert_close(grad, want_grad, rtol=rtol, atol=rtol * grad_scale(x, w, pw, reduction),
                         err_msg=f"{label} grad")
            assert type(got) is type(rl.binary_cross_entropy_with_logits(x, y, **kw)), label
            if reduction != "none":
                assert isinstance(got, np.generic) and got.dtype == dtype, label
            assert_bitwise_equal(fx.binary_cross_entropy_with_logits(x, y, **kw), got,
                                 f"{label}: return_grad changed the loss")
    failures.check()


def test_default_arguments_and_positional_order(torch):
    """binary_cross_entropy_with_logits(input, target, weight, reduction, pos_weight)."""
    rng = np.random.default_rng(1)
    x, y = random_case(rng, (4, 5), np.float64)
    w, pw = rng.random(5), rng.random(5) + 1
    for reduction in REDUCTIONS:
        assert_bitwise_equal(
            fx.binary_cross_entropy_with_logits(x, y, w, reduction, pw),
            fx.binary_cross_entropy_with_logits(x, y, weight=w, reduction=reduction,
                                                pos_weight=pw))
    assert_bitwise_equal(fx.binary_cross_entropy_with_logits(x, y),
                         fx.binary_cross_entropy_with_logits(x, y, None, "mean", None))
    want, _ = torch_bce(torch, x, y)
    assert_close(fx.binary_cross_entropy_with_logits(x, y), want, rtol=1e-13,
                 atol=1e-13 * bce_scale(x, None, None, "mean"))


BROADCAST = [  # (input shape, weight shape, pos_weight shape)
    ((6, 4), (4,), (4,)),
    ((6, 4), (6, 1), (4,)),
    ((6, 4), (1, 4), (1, 4)),
    ((6, 4), (), ()),
    ((3, 2, 4), (2, 1), (4,)),
    ((3, 2, 4), (3, 1, 1), (1, 1, 4)),
    ((3, 2, 4), (1,), (2, 4)),
    ((5,), (5,), (1,)),
]


@pytest.mark.parametrize("shapes", BROADCAST, ids=[str(s).replace(" ", "") for s in BROADCAST])
def test_weight_and_pos_weight_broadcast_as_torch(torch, shapes):
    x_shape, w_shape, pw_shape = shapes
    rng = np.random.default_rng(2)
    for dtype in (np.float64, np.float32):
        x, y = random_case(rng, x_shape, dtype)
        w = (rng.random(w_shape) * 2).astype(dtype)
        pw = (rng.random(pw_shape) * 3).astype(dtype)
        for reduction in REDUCTIONS:
            kw = dict(weight=w, pos_weight=pw, reduction=reduction)
            label = f"{shapes} {np.dtype(dtype).name} {reduction}"
            want, want_grad = torch_bce(torch, x, y, **kw)
            got, grad = fx.binary_cross_entropy_with_logits(x, y, return_grad=True, **kw)
            rtol = RTOL[dtype]
            assert_close(got, want, rtol=rtol, atol=rtol * bce_scale(x, w, pw, reduction),
                         err_msg=label)
            assert_close(grad, want_grad, rtol=rtol, atol=rtol * grad_scale(x, w, pw, reduction),
                         err_msg=label + " grad")


def test_weights_of_another_dtype_keep_the_input_dtype(torch):
    """weight and pos_weight never change the result dtype; a float64 target
    promotes a float32 input, as PyTorch."""
    rng = np.random.default_rng(3)
    x, y = random_case(rng, (4, 3), np.float32)
    w64, pw64 = rng.random(3), rng.random(3) + 1
    for reduction in REDUCTIONS:
        got, grad = fx.binary_cross_entropy_with_logits(x, y, w64, reduction, pw64,
                                                        return_grad=True)
        assert np.asarray(got).dtype == np.float32 and grad.dtype == np.float32
        want, want_grad = torch_bce(torch, x, y, weight=w64, pos_weight=pw64, reduction=reduction)
        assert_close(got, want, rtol=2e-6, atol=2e-6 * bce_scale(x, w64, pw64, reduction))
        assert_close(grad, want_grad, rtol=2e-6, atol=2e-6 * grad_scale(x, w64, pw64, reduction))
        got, grad = fx.binary_cross_entropy_with_logits(x, y.astype(np.float64),
                                                        reduction=reduction, return_grad=True)
        want, want_grad = torch_bce(torch, x, y.astype(np.float64), reduction=reduction)
        assert np.asarray(got).dtype == np.float64 and grad.dtype == np.float32
        assert_close(got, want, rtol=2e-6, atol=2e-6 * bce_scale(x, None, None, reduction))
        assert_close(grad, want_grad, rtol=2e-6, atol=2e-6 * grad_scale(x, None, None, reduction))
        # float16 input, float32 target: a float32 loss
        x16 = x.astype(np.float16)
        got, grad = fx.binary_cross_entropy_with_logits(x16, y, reduction=reduction,
                                                        return_grad=True)
        assert np.asarray(got).dtype == np.float32 and grad.dtype == np.float16
        want, want_grad = rl.binary_cross_entropy_with_logits(x16, y, reduction=reduction,
                                                              return_grad=True)
        assert_close(got, want, rtol=2e-7, atol=2e-7 * bce_scale(x16, None, None, reduction))
        assert_close(grad, want_grad, rtol=2e-3, atol=2e-3 * grad_scale(x16, None, None,
                                                                       reduction))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_integer_and_bool_targets_are_converted(dtype):
    """PyTorch refuses integer targets; fastxent converts them (the loss in
    the input's dtype), the same as float targets of the same values."""
    rng = np.random.default_rng(4)
    x, _ = random_case(rng, (5, 4), dtype)
    labels = rng.integers(0, 2, (5, 4))
    for t in (labels, labels.astype(bool), labels.astype(np.uint8), labels.astype(np.int32)):
        for reduction in REDUCTIONS:
            label = f"{np.dtype(dtype).name} target {t.dtype} {reduction}"
            got, grad = fx.binary_cross_entropy_with_logits(x, t, reduction=reduction,
                                                            return_grad=True)
            want, want_grad = fx.binary_cross_entropy_with_logits(
                x, labels.astype(dtype), reduction=reduction, return_grad=True)
            eps = float(np.finfo(dtype).eps)
            assert_close(got, want, rtol=2 * eps, err_msg=label)
            assert_close(grad, want_grad, rtol=2 * eps, err_msg=label + " grad")
            want, want_grad = rl.binary_cross_entropy_with_logits(x, t, reduction=reduction,
                                                                  return_grad=True)
            assert_close(got, want, rtol=2 * eps, err_msg=label + " (reference)")
            assert_close(grad, want_grad, rtol=2 * eps, atol=eps * grad_scale(x, None, None,
                                                                             reduction),
                         err_msg=label + " grad (reference)")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_return_grad_does_not_change_the_loss(dtype):
    """The loss is the same, bit for bit, with and without the gradient, on
    arrays long enough for the vectorized code."""
    rng = np.random.default_rng(11)
    for shape in [(1000,), (64, 33), (3, 50, 7)]:
        x, y = random_case(rng, shape, dtype)
        weights = _weights(shape, rng)
        for wkind, pwkind, reduction in itertools.product(("none", "per class", "full"),
                                                          ("none", "per class"), REDUCTIONS):
            w, pw = cast(weights[wkind], dtype), cast(weights[pwkind], dtype)
            kw = dict(weight=w, pos_weight=pw, reduction=reduction)
            label = f"{shape} {np.dtype(dtype).name} weight {wkind} pos_weight {pwkind} {reduction}"
            loss, _ = fx.binary_cross_entropy_with_logits(x, y, return_grad=True, **kw)
            assert_bitwise_equal(fx.binary_cross_entropy_with_logits(x, y, **kw), loss, label)


# ---------------------------------------------------------------------------
# infinite logits: the limits where PyTorch computes NaN

# (logit, target, weight, pos_weight, loss)
LIMITS = [
    (INF, 1.0, 1.0, 1.0, 0.0),      # PyTorch: NaN
    (-INF, 0.0, 1.0, 1.0, 0.0),     # PyTorch: NaN
    (-INF, 1.0, 1.0, 1.0, INF),     # PyTorch: NaN
    (INF, 1.0, 1.0, 3.0, 0.0),      # PyTorch: NaN
    (-INF, 0.0, 1.0, 3.0, 0.0),     # PyTorch: NaN
    (-INF, 1.0, 1.0, 3.0, INF),     # PyTorch: NaN
    (-INF, 0.5, 1.0, 1.0, INF),     # PyTorch: NaN
    (-INF, 1.0, 0.0, 1.0, 0.0),     # zero weight: 0 (PyTorch: NaN)
    (-INF, 1.0, 1.0, 0.0, 0.0),     # zero pos_weight: 0 (PyTorch: NaN)
    (INF, 0.0, 0.0, 1.0, 0.0),      # zero weight: 0 (PyTorch: NaN)
    (INF, 0.0, 1.0, 1.0, INF),
    (INF, 0.5, 1.0, 1.0, INF),
    (INF, 0.5, 1.0, 0.0, INF),
    (NAN, 1.0, 1.0, 1.0, NAN),
    (NAN, 0.0, 0.0, 1.0, NAN),
    (0.0, NAN, 1.0, 1.0, NAN),
    (0.0, 0.5, NAN, 1.0, NAN),
    (0.0, 0.5, 1.0, 3.0, 2.0 * np.log(2.0)),
    (0.0, 1.0, 1.0, 1.0, np.log(2.0)),
    (1e300, 1.0, 1.0, 1.0, 0.0),
    (-1e300, 0.0, 1.0, 1.0, 0.0),
    (-1e300, 1.0, 1.0, 1.0, 1e300),
]
TORCH_NAN = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]


def limits():
    x, y, w, pw, want = (np.array(v) for v in zip(*LIMITS))
    return x, y, w, pw, want


def test_infinite_logits_give_the_limit(torch):
    x, y, w, pw, want = limits()
    loss, grad = fx.binary_cross_entropy_with_logits(x, y, weight=w, pos_weight=pw,
                                                     reduction="none", return_grad=True)
    for i, row in enumerate(LIMITS):
        assert_close(loss[i], np.float64(want[i]), rtol=1e-15,
                     err_msg=f"(logit, target, weight, pos_weight) = {row[:4]}")
    # the gradient is finite at infinite logits: w ((1 - y + pw y) sigmoid(x) - pw y)
    with np.errstate(all="ignore"):
        sig = np.where(x > 0, 1.0, 0.0)
        want_grad = w * ((1 - y + pw * y) * np.where(np.isinf(x), sig, 0.5) - pw * y)
    inf_x = np.isinf(x)
    np.testing.assert_array_equal(grad[inf_x], want_grad[inf_x])
    # the reference, every reduction
    for reduction in REDUCTIONS:
        kw = dict(weight=w, pos_weight=pw, reduction=reduction)
        got, g = fx.binary_cross_entropy_with_logits(x, y, return_grad=True, **kw)
        want_loss, want_g = rl.binary_cross_entropy_with_logits(x, y, return_grad=True, **kw)
        assert_close(got, want_loss, rtol=1e-14, err_msg=reduction)
        assert_close(g, want_g, rtol=1e-14, err_msg=reduction + " grad")
    # PyTorch: NaN at the limits, the same values and gradients elsewhere
    torch_loss, torch_grad = torch_bce(torch, x, y, weight=w, pos_weight=pw, reduction="none")
    assert np.isnan(torch_loss[TORCH_NAN]).all(), torch_loss
    others = np.setdiff1d(np.arange(x.size), TORCH_NAN)
    assert_close(loss[others], torch_loss[others], rtol=1e-14)
    np.testing.assert_allclose(grad, torch_grad, rtol=1e-15, atol=0, equal_nan=True)


# (logit, target, pos_weight, loss): an infinite target under a finite logit
# gives the limit of softplus(x) + y (pw softplus(-x) - softplus(x))
INFINITE_TARGETS = [(2.0, INF, 1.0, -INF), (-2.0, INF, 1.0, INF), (2.0, -INF, 1.0, INF),
                    (0.0, INF, 1.0, NAN), (0.0, INF, 3.0, INF), (2.0, INF, 3.0, -INF),
                    (-INF, 0.5, 1.0, INF), (-INF, -0.5, 1.0, -INF), (INF, INF, 1.0, NAN)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_infinite_targets_give_the_limit(torch, dtype):
    """Where the two terms are infinite of opposite signs (a target outside
    [0, 1] made infinite), the loss is their limit, as PyTorch's formula
    gives it for pos_weight 1 (PyTorch is NaN where pos_weight enters, and
    at an infinite logit under a target in (0, 1))."""
    x, y, pw, want = (np.array(v, dtype) for v in zip(*INFINITE_TARGETS))
    got = fx.binary_cross_entropy_with_logits(x, y, pos_weight=pw, reduction="none")
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(
        rl.binary_cross_entropy_with_logits(x, y, pos_weight=pw, reduction="none"), want)
    assert np.isnan(fx.binary_cross_entropy_with_logits(x, y, pos_weight=pw))
    one = pw == 1
    if dtype == np.float64:
        t, _ = torch_bce(torch, x[one][:3], y[one][:3], reduction="none")
        np.testing.assert_array_equal(t, want[one][:3])
    for i in range(len(x)):   # the sums too, and the row alone
        np.testing.assert_array_equal(
            fx.binary_cross_entropy_with_logits(x[i:i + 1], y[i:i + 1], pos_weight=pw[i:i + 1],
                                                reduction="sum"), want[i])


@pytest.mark.parametrize("dtype", [np.float32, np.float16], ids=["float32", "float16"])
def test_infinite_logits_narrow_dtypes(dtype):
    x, y, w, pw, _ = limits()
    with np.errstate(over="ignore"):
        x, y = x.astype(dtype), y.astype(dtype)
    for reduction in REDUCTIONS:
        kw = dict(weight=w.astype(dtype), pos_weight=pw.astype(dtype), reduction=reduction)
        got, g = fx.binary_cross_entropy_with_logits(x, y, return_grad=True, **kw)
        want, want_g = rl.binary_cross_entropy_with_logits(x, y, return_grad=True, **kw)
        eps = float(np.finfo(dtype).eps)
        assert_close(got, want, rtol=2 * eps, err_msg=f"{np.dtype(dtype).name} {reduction}")
        assert_close(g, want_g, rtol=2 * eps, err_msg=f"{np.dtype(dtype).name} {reduction} grad")


def test_limits_broadcast_weights():
    """Zero entries of a per-class weight and pos_weight against infinite
    logits in every row."""
    x = np.array([[INF, -INF, 0.5, -INF], [-INF, INF, -2.0, INF], [3.0, -1.0, -INF, -INF]])
    y = np.array([[1.0, 0.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0], [0.0, 1.0, 1.0, 0.25]])
    w = np.array([1.0, 0.5, 0.0, 2.0])
    pw = np.array([0.0, 2.0, 1.0, 0.5])
    for kw in (dict(weight=w), dict(pos_weight=pw), dict(weight=w, pos_weight=pw),
               dict(weight=np.array([[0.0], [1.0], [2.0]]), pos_weight=pw)):
        for reduction in REDUCTIONS:
            got, g = fx.binary_cross_entropy_with_logits(x, y, reduction=reduction,
                                                         return_grad=True, **kw)
            want, want_g = rl.binary_cross_entropy_with_logits(x, y, reduction=reduction,
                                                               return_grad=True, **kw)
            assert_close(got, want, rtol=1e-14, err_msg=f"{sorted(kw)} {reduction}")
            assert_close(g, want_g, rtol=1e-14, err_msg=f"{sorted(kw)} {reduction} grad")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_short_rows_with_broadcast_operands(dtype):
    """Rows of a few classes against per-class weights, a per-class target
    and strided outputs (the rows are gathered a block at a time), with
    infinite logits and zero weights among them: every output against the
    reference."""
    rng = np.random.default_rng(11)
    for R, L in [(203, 10), (77, 3), (9, 100), (40, 129)]:
        x, y = random_case(rng, (R, L), dtype)
        x[rng.random((R, L)) < 0.03] = INF
        x[rng.random((R, L)) < 0.03] = -INF
        w = cast(_weights((R, L), rng)["per class"], dtype)
        pw = cast(rng.random(L) * 3, dtype)
        ycls = np.broadcast_to(y[0], y.shape)   # one target row, stride 0
        for kw, yy in [(dict(pos_weight=pw), y), (dict(weight=w, pos_weight=pw), y),
                       (dict(weight=w), ycls)]:
            for reduction in REDUCTIONS:
                label = f"{R}x{L} {sorted(kw)} {reduction} {np.dtype(dtype).name}"
                want, want_g = rl.binary_cross_entropy_with_logits(
                    x, yy, reduction=reduction, return_grad=True, **kw)
                scale = bce_scale(x, kw.get("weight"), kw.get("pos_weight"), reduction)
                gscale = grad_scale(x, kw.get("weight"), kw.get("pos_weight"), reduction)
                got = fx.binary_cross_entropy_with_logits(x, yy, reduction=reduction, **kw)
                assert_agree_scaled(got, want, scale, dtype, label)
                got, g = fx.binary_cross_entropy_with_logits(x, yy, reduction=reduction,
                                                             return_grad=True, **kw)
                assert_agree_scaled(got, want, scale, dtype, label)
                assert_agree_scaled(g, want_g, gscale, dtype, label + " grad")
                # a gradient into a column-major grad_out
                gout = np.empty((L, R), dtype).T
                got, g = fx.binary_cross_entropy_with_logits(x, yy, reduction=reduction,
                                                             return_grad=True, grad_out=gout,
                                                             **kw)
                assert g is gout
                assert_agree_scaled(g, want_g, gscale, dtype, label + " strided grad")
                xx = x.copy()   # the gradient over the input
                got, g = fx.binary_cross_entropy_with_logits(xx, yy, reduction=reduction,
                                                             return_grad=True, grad_out=xx,
                                                             **kw)
                assert g is xx
                assert_agree_scaled(got, want, scale, dtype, label + " grad over x")
                assert_agree_scaled(g, want_g, gscale, dtype, label + " grad over x")


# ---------------------------------------------------------------------------
# accuracy at large |x|: log1p(exp(-|x|)) keeps its digits

def exact_loss(x, y, pos_weight=1.0):
    """``(1 - y) softplus(x) + pw y softplus(-x)`` in 50 digits."""
    mpmath = pytest.importorskip("mpmath")
    with mpmath.workdps(50):
        x, y, pw = mpmath.mpf(float(x)), mpmath.mpf(float(y)), mpmath.mpf(float(pos_weight))
        return float((1 - y) * mpmath.log1p(mpmath.exp(x)) + pw * y * mpmath.log1p(mpmath.exp(-x)))


ACCURACY = [  # (x, y, pos_weight) in float64
    (-40.0, 0.0, 1.0), (40.0, 1.0, 1.0), (-700.0, 0.0, 1.0), (700.0, 1.0, 1.0),
    (-36.7, 0.0, 1.0), (-20.0, 1.0, 1.0), (30.0, 0.0, 1.0), (-30.0, 0.25, 1.0),
    (-1e-10, 0.0, 1.0), (1e-20, 1.0, 1.0), (0.0, 0.5, 1.0), (-40.0, 1e-3, 2.0),
    (-800.0, 0.0, 1.0), (800.0, 1.0, 1.0), (-15.5, 0.0, 3.0), (-0.75, 0.9, 1.0),
    (5.0, 0.0, 1.0), (-5.0, 1.0, 0.5),
]


def test_large_logits_accuracy_float64():
    x, y, pw = (np.array(v) for v in zip(*ACCURACY))
    got = fx.binary_cross_entropy_with_logits(x, y, pos_weight=pw, reduction="none")
    want = np.array([exact_loss(*row) for row in ACCURACY])
    assert got.dtype == np.float64
    err_ulp = np.abs(got - want) / np.spacing(np.maximum(np.abs(want), np.finfo(np.float64).tiny))
    bad = err_ulp > 4
    assert not bad.any(), (
        f"beyond 4 ulp at (x, y, pos_weight) = {[ACCURACY[i] for i in np.flatnonzero(bad)]}: "
        f"got {got[bad].tolist()}, exact {want[bad].tolist()}, {err_ulp[bad].tolist()} ulp")
    assert got[ACCURACY.index((-40.0, 0.0, 1.0))] == pytest.approx(np.log1p(np.exp(-40.0)),
                                                                   rel=1e-15)


@pytest.mark.parametrize("dtype, cases", [
    (np.float32, [(-20.0, 0.0), (20.0, 1.0), (-80.0, 0.0), (80.0, 1.0), (-17.0, 1.0),
                  (15.0, 0.0), (-0.5, 0.25), (1e-8, 1.0)]),
    (np.float16, [(-8.0, 0.0), (8.0, 1.0), (-5.0, 1.0), (6.0, 0.0), (-0.5, 0.25),
                  (1e-3, 1.0)]),
], ids=["float32", "float16"])
def test_large_logits_accuracy_narrow(dtype, cases):
    """Computed in a wider dtype and rounded once: within one ulp."""
    x = np.array([c[0] for c in cases], dtype=dtype)
    y = np.array([c[1] for c in cases], dtype=dtype)
    got = fx.binary_cross_entropy_with_logits(x, y, reduction="none")
    want = np.array([exact_loss(a, b) for a, b in zip(x, y)])
    assert got.dtype == dtype
    err_ulp = np.abs(got.astype(np.float64) - want) / np.spacing(want.astype(dtype)).astype(
        np.float64)
    assert (err_ulp <= 1).all(), f"x {x.tolist()} y {y.tolist()}: {err_ulp.tolist()} ulp"


def _softplus_grid(dtype):
    """Logits across [-40, 40], dense around |x| = log 2 (where exp(-|x|)
    crosses 1/2 and log1p changes its reduction) and around 0."""
    ln2 = np.log(2.0)
    near = np.empty(0, dtype)
    for c in (ln2, -ln2, 0.0):
        v = dtype(c)
        for _ in range(40):
            near = np.append(near, v)
            v = np.nextafter(v, dtype(np.inf))
        v = dtype(c)
        for _ in range(40):
            v = np.nextafter(v, dtype(-np.inf))
            near = np.append(near, v)
    grid = np.concatenate([np.linspace(-40, 40, 2001).astype(dtype), near,
                           np.geomspace(1e-8, 0.7, 200).astype(dtype)])
    return np.concatenate([grid, -grid[-200:]])


@pytest.mark.parametrize("dtype, max_ulp", [(np.float64, 3), (np.float32, 2)],
                         ids=["float64", "float32"])
def test_softplus_accuracy_dense(dtype, max_ulp):
    """softplus(x) (y = 0) and softplus(-x) (y = 1) over a dense grid of
    logits against 50-digit values, also with infinite logits among them
    (whose blocks are formed in double in float32)."""
    x = _softplus_grid(dtype)
    want0 = np.array([exact_loss(v, 0.0) for v in x])
    want1 = np.array([exact_loss(v, 1.0) for v in x])
    for with_inf in (False, True):
        xx = x.copy()
        if with_inf:
            xx[::97] = np.inf
            xx[50::97] = -np.inf
        finite = np.isfinite(xx)
        for y, want in ((0.0, want0), (1.0, want1)):
            got = fx.binary_cross_entropy_with_logits(xx, np.full_like(xx, y), reduction="none")
            assert got.dtype == dtype
            g = got[finite].astype(np.float64)
            w = want[finite]
            err_ulp = np.abs(g - w) / np.spacing(w.astype(dtype)).astype(np.float64)
            worst = int(np.argmax(err_ulp))
            assert err_ulp.max() <= max_ulp, (
                f"y={y} inf={with_inf}: {err_ulp.max():.2f} ulp at x = {xx[finite][worst]!r}")
            # the limits: softplus(-inf) = 0, softplus(inf) = inf
            lim = np.where(xx[~finite] > 0, INF, 0.0) if y == 0 else np.where(
                xx[~finite] > 0, 0.0, INF)
            assert_bitwise_equal(got[~finite], lim.astype(dtype))


def test_gradient_at_large_logits_matches_torch(torch):
    x = np.array([-40.0, 40.0, -700.0, 700.0, -1e300, 1e300, 0.0, 1e-20, -36.0, 20.0])
    y = np.array([0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.5, 1.0, 0.25, 0.75])
    got, grad = fx.binary_cross_entropy_with_logits(x, y, reduction="sum", return_grad=True)
    want, want_grad = torch_bce(torch, x, y, reduction="sum")
    assert_close(got, want, rtol=1e-15)
    # the gradient sigmoid(x) - y is O(1): PyTorch's rounding error is absolute
    # (at x = 40, y = 1 it gives 0 for -exp(-40))
    assert_close(grad, want_grad, rtol=1e-15, atol=1e-16)
    with np.errstate(all="ignore"):
        exact = np.where(x >= 0, 1 / (1 + np.exp(-x)), np.exp(x) / (1 + np.exp(x))) - y
    exact[x == 40.0] = -np.exp(-40.0)  # 1 - sigmoid(40), which the line above rounds away
    assert_close(grad, exact, rtol=1e-15, atol=1e-16)


# ---------------------------------------------------------------------------
# empty input

@pytest.mark.parametrize("shape", [(0,), (0, 3), (3, 0), (2, 0, 4)],
                         ids=["0", "0x3", "3x0", "2x0x4"])
def test_empty_input(torch, shape):
    """'mean' of nothing is NaN, 'sum' 0, 'none' empty, as PyTorch."""
    for reduction, dtype in itertools.product(REDUCTIONS, DTYPES):
        x = np.zeros(shape, dtype)
        pw = np.ones(shape[-1:], dtype)
        label = f"{shape} {np.dtype(dtype).name} {reduction}"
        got, grad = fx.binary_cross_entropy_with_logits(x, x, pos_weight=pw, reduction=reduction,
                                                        return_grad=True)
        want, want_grad = torch_bce(torch, x, x, pos_weight=pw, reduction=reduction)
        assert_close(got, want, rtol=0, err_msg=label)
        assert_close(grad, want_grad, rtol=0, err_msg=label + " grad")
        if reduction == "mean":
            assert np.isnan(got), label
        elif reduction == "sum":
            assert got == 0, label


# ---------------------------------------------------------------------------
# grad_out

GRAD_OUT_CASES = [((7,), None, None), ((4, 5), "per class", "per class"),
                  ((4, 5), "per row", "scalar"), ((2, 3, 5), "full", "per class"),
                  ((), "scalar", "scalar")]


@pytest.mark.parametrize("case", GRAD_OUT_CASES, ids=[str(c[0]) for c in GRAD_OUT_CASES])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_grad_out_and_grad_out_is_the_input(dtype, case):
    shape, wkind, pwkind = case
    rng = np.random.default_rng(5)
    x, y = random_case(rng, shape, dtype)
    if x.ndim:
        x.flat[0] = -INF  # a limit too
        y.flat[0] = 0.0
    weights = _weights(shape, rng)
    w = cast(weights[wkind], dtype) if wkind else None
    pw = cast(weights[pwkind], dtype) if pwkind else None
    for reduction in REDUCTIONS:
        kw = dict(weight=w, pos_weight=pw, reduction=reduction)
        label = f"{shape} {np.dtype(dtype).name} {reduction}"
        want, want_grad = fx.binary_cross_entropy_with_logits(x, y, return_grad=True, **kw)
        out = np.full(x.shape, np.nan, dtype)
        got, grad = fx.binary_cross_entropy_with_logits(x, y, return_grad=True, grad_out=out,
                                                        **kw)
        assert grad is out, label
        assert_bitwise_equal(got, want, label)
        assert_bitwise_equal(out, want_grad, label + " grad")
        z = x.copy()
        got, grad = fx.binary_cross_entropy_with_logits(z, y, return_grad=True, grad_out=z, **kw)
        assert grad is z, label
        assert_bitwise_equal(got, want, label + " (grad_out=input)")
        assert_bitwise_equal(z, want_grad, label + " grad (grad_out=input)")


def test_grad_out_views():
    rng = np.random.default_rng(6)
    x, y = random_case(rng, (6, 7), np.float32)
    w = rng.random(7).astype(np.float32)
    for reduction in REDUCTIONS:
        want, want_grad = fx.binary_cross_entropy_with_logits(x, y, w, reduction,
                                                              return_grad=True)
        big = np.full((12, 14), np.nan, np.float32)
        other = np.full((12, 14), np.nan, np.float32)
        for label, out in [("F order", np.asfortranarray(np.empty_like(x))),
                           ("strided", big[::2, ::2]), ("negative strides", other[::-2, ::-2]),
                           ("transposed", np.empty((7, 6), np.float32).T)]:
            got, grad = fx.binary_cross_entropy_with_logits(x, y, w, reduction,
                                                            return_grad=True, grad_out=out)
            assert grad is out, label
            assert_bitwise_equal(got, want, label)
            np.testing.assert_array_equal(out, want_grad, err_msg=label)
        assert np.isnan(big[1::2, 1::2]).all() and np.isnan(big[::2, 1::2]).all()


def test_bad_grad_out():
    x = np.zeros((3, 4))
    for label, out in bad_grad_outs():
        with pytest.raises(ValueError, match="grad_out"):
            fx.binary_cross_entropy_with_logits(x, x, return_grad=True, grad_out=out)
    with pytest.raises(ValueError, match="grad_out"):
        fx.binary_cross_entropy_with_logits(np.zeros(()), np.zeros(()), return_grad=True,
                                            grad_out=np.empty(1))


# ---------------------------------------------------------------------------
# threads

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_results_do_not_depend_on_threads(dtype):
    rng = np.random.default_rng(7)
    for shape in [(2000, 40), (5003, 7), (80000,), (40, 50, 40)]:
        x, y = random_case(rng, shape, dtype)
        m = rng.random(shape) < 0.01
        x[m] = -INF
        y[m] = 0.0  # the limit 0
        weights = _weights(shape, rng)
        for wkind, pwkind in [("none", "none"), ("per class", "per class"),
                              ("per row", "scalar"), ("full", "per class")]:
            w, pw = cast(weights[wkind], dtype), cast(weights[pwkind], dtype)
            if (w is None and wkind != "none") or (pw is None and pwkind != "none"):
                continue
            for reduction in REDUCTIONS:
                kw = dict(weight=w, pos_weight=pw, reduction=reduction)
                label = f"{shape} {np.dtype(dtype).name} {wkind} {pwkind} {reduction}"
                one = fx.binary_cross_entropy_with_logits(x, y, return_grad=True, n_threads=1,
                                                          **kw)
                for n in (2, 3, None):
                    other = fx.binary_cross_entropy_with_logits(x, y, return_grad=True,
                                                                n_threads=n, **kw)
                    assert_bitwise_equal(other[0], one[0], f"{label} n_threads={n}")
                    assert_bitwise_equal(other[1], one[1], f"{label} n_threads={n} grad")
                loss_only = fx.binary_cross_entropy_with_logits(x, y, n_threads=1, **kw)
                for n in (2, 3, None):
                    assert_bitwise_equal(
                        fx.binary_cross_entropy_with_logits(x, y, n_threads=n, **kw), loss_only,
                        f"{label} n_threads={n}, without the gradient")


# ---------------------------------------------------------------------------
# memory layouts

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_layouts_match_contiguous_copies(dtype, tmp_path):
    rng = np.random.default_rng(8)
    bx, by = random_case(rng, (37, 23), dtype)
    failures = Failures()
    for (lx, x), (_, y) in zip(layouts(bx, tmp_path), layouts(by, tmp_path)):
        xc, yc = np.array(x, order="C"), np.array(y, order="C")
        c = x.shape[-1]
        wbase = (rng.random(2 * c) * 2).astype(dtype)
        weight_kinds = [("no weights", None, None),
                        ("strided per-class weights", wbase[::2], wbase[::-2] + 1)]
        for (wl, w, pw), reduction in itertools.product(weight_kinds, REDUCTIONS):
            wc = None if w is None else w.copy()
            pwc = None if pw is None else pw.copy()
            for label, a, b in [(f"input {lx}", x, yc), (f"target {lx}", xc, y),
                                (f"both {lx}", x, y)]:
                case = f"{label} {wl} {np.dtype(dtype).name} {reduction}"
                with failures.case(case):
                    want, want_grad = fx.binary_cross_entropy_with_logits(
                        xc, yc, wc, reduction, pwc, return_grad=True)
                    got, grad = fx.binary_cross_entropy_with_logits(a, b, w, reduction, pw,
                                                                    return_grad=True)
                    assert_agree_scaled(got, want, bce_scale(xc, wc, pwc, reduction), dtype,
                                        case)
                    assert_agree_scaled(grad, want_grad, grad_scale(xc, wc, pwc, reduction),
                                        dtype, case + " grad")
                    np.testing.assert_array_equal(a, xc, err_msg="input modified")
                    np.testing.assert_array_equal(b, yc, err_msg="target modified")
    failures.check()


def test_read_only_memory_maps(tmp_path):
    rng = np.random.default_rng(9)
    x, y = random_case(rng, (50, 31), np.float64)
    w = rng.random(31)
    xm, ym, wm = (memmap_copy(a, tmp_path / f"{name}.dat")
                  for name, a in (("x", x), ("y", y), ("w", w)))
    assert not xm.flags.writeable
    for reduction in REDUCTIONS:
        for label, args, copies in [
                ("memmap", (xm, ym, wm), (x, y, w)),
                ("memmap strided", (xm[::3, ::2], ym[::3, ::2], wm[::2]),
                 (x[::3, ::2].copy(), y[::3, ::2].copy(), w[::2].copy()))]:
            want, want_grad = fx.binary_cross_entropy_with_logits(
                *copies[:2], weight=copies[2], pos_weight=copies[2] + 1, reduction=reduction,
                return_grad=True)
            got, grad = fx.binary_cross_entropy_with_logits(
                *args[:2], weight=args[2], pos_weight=args[2] + 1, reduction=reduction,
                return_grad=True)
            assert type(got) is type(want) and type(grad) is np.ndarray, label
            scale = bce_scale(copies[0], copies[2], copies[2] + 1, reduction)
            assert_agree_scaled(got, want, scale, np.float64, f"{label} {reduction}")
            assert_agree_scaled(grad, want_grad,
                                grad_scale(copies[0], copies[2], copies[2] + 1, reduction),
                                np.float64, label + " grad")
    np.testing.assert_array_equal(xm, x)


# ---------------------------------------------------------------------------
# errors

def test_errors(torch):
    x = np.zeros((3, 4))
    for reduction in ("batchmean", "avg", "MEAN", "", None):
        with pytest.raises(ValueError, match="reduction"):
            fx.binary_cross_entropy_with_logits(x, x, reduction=reduction)
    # the target must have the input's shape, even where it would broadcast
    for y in (np.zeros(4), np.zeros((3, 1)), np.zeros((1, 3, 4)), np.zeros((3, 5)), np.zeros(())):
        with pytest.raises(ValueError, match="target"):
            fx.binary_cross_entropy_with_logits(x, y)
        with pytest.raises(ValueError, match="target"):
            fx.binary_cross_entropy_with_logits(x, y, return_grad=True)
    with pytest.raises(ValueError):
        torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor(x),
                                                             torch.tensor(np.zeros(4)))
    # weights that do not broadcast to the input's shape, or would enlarge the output
    for bad in (np.ones(3), np.ones((2, 4)), np.ones((2, 3, 4)), np.ones((3, 4, 1))):
        with pytest.raises(ValueError, match="weight"):
            fx.binary_cross_entropy_with_logits(x, x, weight=bad)
        with pytest.raises(ValueError, match="pos_weight"):
            fx.binary_cross_entropy_with_logits(x, x, pos_weight=bad)
    for x_bad in (x.astype(np.int64), x.astype(np.int8), x > 0):
        with pytest.raises(TypeError, match="input"):
            fx.binary_cross_entropy_with_logits(x_bad, x)
    with pytest.raises(TypeError):
        fx.binary_cross_entropy_with_logits(x, np.full(x.shape, "a"))
    with pytest.raises(TypeError):
        fx.binary_cross_entropy_with_logits(x.astype(np.complex128), x)
    with pytest.raises(TypeError):
        fx.binary_cross_entropy_with_logits(x, x, weight=np.ones(4, np.complex128))


@pytest.mark.parametrize("name", ["weight", "pos_weight"])
@pytest.mark.parametrize("value", [1e5, 1e-20, 3.0001, 2.0])
def test_float16_keeps_wider_weights(torch, name, value):
    # float16 computes in float32; a float32/64 weight is not rounded to
    # float16 first (1e5 would overflow, 1e-20 vanish): PyTorch's float32
    # result, rounded once
    x = np.array([1.0, -2.0, 0.5], np.float16)
    y = np.array([0.0, 1.0, 0.25], np.float16)
    w = np.array([value, 1.0, value])
    want = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32),
        reduction="none", **{name: torch.tensor(w, dtype=torch.float32)}).numpy()
    for reduction in ("none", "sum"):
        got, grad = fx.binary_cross_entropy_with_logits(x, y, reduction=reduction,
                                                        return_grad=True, **{name: w})
        assert got.dtype == np.float16 and grad.dtype == np.float16
        with np.errstate(over="ignore"):
            expect = want.astype(np.float16) if reduction == "none" else np.float16(want.sum())
        np.testing.assert_allclose(got.astype(np.float64), expect.astype(np.float64),
                                   rtol=2e-3, atol=1e-7)
        want_ref = rl.binary_cross_entropy_with_logits(x, y, reduction=reduction, **{name: w})
        np.testing.assert_array_equal(got, want_ref)


@pytest.mark.parametrize("n", [10, 1000])
def test_float32_sums_near_the_top_of_the_range(torch, n):
    # each term (about 3e38) is finite in float32; their sum is not, their mean is
    x = np.full(n, -3e38, np.float32)
    y = np.ones(n, np.float32)
    got = fx.binary_cross_entropy_with_logits(x, y)
    want = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor(x, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)).item()
    assert np.isfinite(got)
    np.testing.assert_allclose(got, want, rtol=2e-6)
    np.testing.assert_allclose(got, rl.binary_cross_entropy_with_logits(x, y), rtol=2e-6)


def test_float32_term_whose_weights_product_overflows(torch):
    # w pw y = 4.7e38 overflows float32, w pw y softplus(-x) = 3.2e38 does
    # not: PyTorch (and the float64 reference) give the finite term
    x = np.array([0.001049, 0.5], np.float32)
    y = np.array([0.94864947, 0.25], np.float32)
    w = np.array([2.0762013e19, 1.0])
    pw = np.array([2.36810507e19, 1.0])
    xt = torch.tensor(x, requires_grad=True)
    want = torch.nn.functional.binary_cross_entropy_with_logits(
        xt, torch.tensor(y), weight=torch.tensor(w), pos_weight=torch.tensor(pw),
        reduction="none")
    want.sum().backward()
    got, grad = fx.binary_cross_entropy_with_logits(x, y, weight=w, pos_weight=pw,
                                                    reduction="none", return_grad=True)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want.detach().numpy(), rtol=2e-6)
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=2e-6)
    np.testing.assert_allclose(fx.binary_cross_entropy_with_logits(x, y, weight=w, pos_weight=pw),
                               want.detach().numpy().astype(np.float64).mean(), rtol=2e-6)



def test_float16_term_whose_weights_product_overflows_float32(torch):
    # float16 data with float64 weights compute in float32: w pw y = 4e39
    # overflows there, softplus(-x) = exp(-125.75) = 2e-55 underflows, and
    # their product is 9.8e-16, 0 in float16 (PyTorch in float64, rounded),
    # not inf * 0 = NaN
    x = np.array([[[125.75]], [[0.5]]], np.float16)
    y = np.array([[[1.0]], [[0.0]]], np.float16)
    w = np.array([6.3696168732145435e19])
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    want = torch.nn.functional.binary_cross_entropy_with_logits(
        xt, torch.tensor(y, dtype=torch.float64), weight=torch.tensor(w),
        pos_weight=torch.tensor(w), reduction="none")
    want.sum().backward()
    with np.errstate(over="ignore"):
        want16 = want.detach().numpy().astype(np.float16)
        want_grad16 = xt.grad.numpy().astype(np.float16)
    assert want16[0, 0, 0] == 0 and np.isinf(want16[1, 0, 0])
    for f in (fx.binary_cross_entropy_with_logits, rl.binary_cross_entropy_with_logits):
        loss, grad = f(x, y, weight=w, pos_weight=w, reduction="none", return_grad=True)
        assert loss.dtype == np.float16
        np.testing.assert_array_equal(loss, want16)
        np.testing.assert_array_equal(grad, want_grad16)
        assert f(x[:1], y[:1], weight=w, pos_weight=w) == 0.0

@pytest.mark.parametrize("name", ["weight", "pos_weight"])
def test_float32_keeps_float64_weights_beyond_its_range(torch, name):
    # pos_weight = 1e300 is inf in float32 and inf * 0 NaN; PyTorch forms the
    # weighted products of a float64 weight in float64: finite where y = 0
    # (pos_weight) and inf elsewhere
    x = np.array([0.5, -2.0, 3.0], np.float32)
    y = np.array([0.0, 0.5, 1.0], np.float32)
    for value in (1e300, 1e-300):
        w = np.array([value])
        xt = torch.tensor(x, requires_grad=True)
        want = torch.nn.functional.binary_cross_entropy_with_logits(
            xt, torch.tensor(y), reduction="none", **{name: torch.tensor(w)})
        want.sum().backward()
        got, grad = fx.binary_cross_entropy_with_logits(x, y, reduction="none",
                                                        return_grad=True, **{name: w})
        assert got.dtype == np.float32 and grad.dtype == np.float32
        np.testing.assert_allclose(got, want.detach().numpy(), rtol=2e-6)
        np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=2e-6)
        np.testing.assert_array_equal(
            got, rl.binary_cross_entropy_with_logits(x, y, reduction="none", **{name: w}))



def test_float32_coefficient_underflowing_at_an_infinite_logit(torch):
    # pos_weight * y = 6.4e-21 * 6.4e-31 underflows float32 but is not 0: at
    # x = -inf its term is +inf (the float64 limit, as the reference), not
    # the 0 of a zero coefficient; PyTorch's (1 - y) x - (1 + (pw - 1) y)
    # log_sigmoid(x) is -inf + inf = NaN there.  Likewise weight * (1 - y)
    # at x = +inf
    x = np.array([-np.inf, 0.0, -1.0, np.inf], np.float32)
    y = np.array([6.369616914365685e-31, 0.5, 1e-30, 0.5], np.float32)
    pw = np.array(6.3696168732145426e-21)
    w = np.array([0.6369616873214543, 1.0, 1.0, 1e-40])
    want = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor(x[:3]), torch.tensor(y[:3]), pos_weight=torch.tensor(pw),
        reduction="none").numpy()
    assert np.isnan(want[0])
    for reduction in ("none", "mean", "sum"):
        got = fx.binary_cross_entropy_with_logits(x[:3], y[:3], weight=w[:1], pos_weight=pw,
                                                  reduction=reduction)
        ref = rl.binary_cross_entropy_with_logits(x[:3], y[:3], weight=w[:1], pos_weight=pw,
                                                  reduction=reduction)
        assert np.isinf(got).any() and np.isinf(ref).any()
        np.testing.assert_allclose(got, ref, rtol=2e-6)
    got = fx.binary_cross_entropy_with_logits(x, y, weight=w, reduction="none")
    np.testing.assert_array_equal(np.isinf(got), [True, False, False, True])
    np.testing.assert_array_equal(
        got, rl.binary_cross_entropy_with_logits(x, y, weight=w, reduction="none"))

def test_float32_redo_with_gradient_over_input(torch):
    # an infinite term sends its block through double precision, which reads
    # x after the gradient: not over it
    x = np.array([0.5, np.inf, -2.0, 1.0], np.float32)
    y = np.array([0.25, 0.5, 1.0, 0.0], np.float32)
    xt = torch.tensor(x, requires_grad=True)
    want = torch.nn.functional.binary_cross_entropy_with_logits(xt, torch.tensor(y),
                                                                reduction="sum")
    want.backward()
    loss, grad = fx.binary_cross_entropy_with_logits(x, y, reduction="sum", return_grad=True,
                                                     grad_out=x)
    assert grad is x
    assert loss == want.item() == np.inf
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=2e-6)


def test_float64_sum_of_terms_overflowing_on_the_way():
    # two terms of 1.7e308 and one of -1.7e308 (a negative weight): the sum
    # 1.7e308 is finite, as the reference's order-free sum
    x = np.array([-1.7e308, -1.7e308, -1.7e308])
    y = np.ones(3)
    w = np.array([1.0, 1.0, -1.0])
    want = 1.7e308
    got = fx.binary_cross_entropy_with_logits(x, y, weight=w, reduction="sum")
    np.testing.assert_allclose(got, want, rtol=1e-15)
    np.testing.assert_allclose(rl.binary_cross_entropy_with_logits(x, y, weight=w, reduction="sum"),
                               want, rtol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float16], ids=["float32", "float16"])
def test_terms_float32_cannot_hold_are_formed_in_double(dtype):
    # softplus(-125.75) = 2e-55 is 0 in float32: an infinite pos_weight times
    # it is +inf (the loss's limit), formed in double for float16 data as for
    # float32 -- PyTorch's float32 log_sigmoid gives 0 * inf = NaN there
    x, y = np.array([125.75], dtype), np.array([5.0], dtype)
    pw = np.array([INF], dtype)
    for reduction in REDUCTIONS:
        got = fx.binary_cross_entropy_with_logits(x, y, pos_weight=pw, reduction=reduction)
        want = rl.binary_cross_entropy_with_logits(x, y, pos_weight=pw, reduction=reduction)
        assert np.all(got == INF) and np.all(want == INF), (reduction, got, want)
    # an infinite target: the gradient is -inf where sigmoid(-x) is positive
    # in double (|x| < 745), as PyTorch's sigmoid(x) - y, also where float32's
    # sigmoid(-x) underflows (x = 264.5)
    x = np.array([264.5, -377.5, 0.0, 40.0], dtype)
    y = np.full(4, INF, dtype)
    want_grad = np.full(4, -INF)
    torch = pytest.importorskip("torch")
    xt = torch.tensor(x.astype(np.float32), requires_grad=True)
    torch.nn.functional.binary_cross_entropy_with_logits(
        xt, torch.tensor(y.astype(np.float32)), reduction="sum").backward()
    np.testing.assert_array_equal(xt.grad.numpy(), want_grad)
    for f in (fx.binary_cross_entropy_with_logits, rl.binary_cross_entropy_with_logits):
        _, grad = f(x, y, reduction="sum", return_grad=True)
        np.testing.assert_array_equal(grad, want_grad.astype(dtype), err_msg=f.__module__)
