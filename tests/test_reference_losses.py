"""The NumPy references of the loss family (``fastxent.reference``)
against their peers: PyTorch CPU (``torch.nn.functional`` and autograd) for
every option and combination, ``scipy.stats.entropy``, central finite
differences, the documented special values and errors, and hypothesis
properties.

Where a reference deliberately differs from PyTorch (documented in its
docstring), the tests assert both sides: PyTorch's behaviour as observed and
the reference's documented one."""

import contextlib
import itertools

import numpy as np
import pytest

from arrays import (Failures, assert_labels_equal_one_hot, assert_result, eps_scale,
                    logit_pairs, magnitude, zoo)
from fastxent import reference as rl

INF, NAN = np.inf, np.nan
REDUCTIONS = ("none", "mean", "sum")
INDEX_DTYPES = (np.int64, np.int32, np.int16, np.int8,
                np.uint8, np.uint16, np.uint32, np.uint64)
N_CLASSES = 5
# input shapes by layout: unbatched, (N, C), (N, C, d1), (N, C, d1, d2)
LAYOUTS = {
    "(C,)": (N_CLASSES,),
    "(N, C)": (6, N_CLASSES),
    "(N, C, d1)": (4, N_CLASSES, 3),
    "(N, C, d1, d2)": (3, N_CLASSES, 2, 3),
}
# comparisons with PyTorch: relative to the largest magnitude of the logits
# (the absolute rounding error of a shifted log-softmax is eps * max|x|) and
# of the result, PyTorch's float64 and float32 results are within one ulp of
# the reference's; 16 ulp leave room for other sizes.  float16: one rounding.
RTOL = {np.float64: 16 * np.finfo(np.float64).eps, np.float32: 16 * np.finfo(np.float32).eps,
        np.float16: 2.0 ** -10}
# PyTorch warns that kl_div's 'mean' is not the KL divergence ('batchmean' is)
KL_MEAN_WARNING = "ignore:reduction. 'mean' divides the total loss:UserWarning"
CLASS_WEIGHT = np.array([0.5, 2.0, 0.0, 1.5, 1.0])  # one zero weight on purpose

pytestmark = pytest.mark.usefixtures("torch_on_one_thread")


# ---------------------------------------------------------------------------
# helpers

def as_numpy(tensor):
    """A torch result as NumPy: a 0-d tensor becomes a NumPy scalar."""
    arr = tensor.detach().numpy()
    return arr[()] if arr.ndim == 0 else arr


def to_torch(torch, values):
    """NumPy arrays and scalars as tensors; anything else as it is."""
    return [torch.tensor(np.asarray(v)) if isinstance(v, (np.ndarray, np.generic)) else v
            for v in values]


def torch_call(torch, name, x, *args, grad=True, **kwargs):
    """``torch.nn.functional.<name>(x, *args, **kwargs)`` on NumPy data;
    returns (loss, grad of loss.sum() w.r.t. x) as NumPy."""
    func = getattr(torch.nn.functional, name)
    xt = torch.tensor(x, requires_grad=grad)
    loss = func(xt, *to_torch(torch, args), **dict(zip(kwargs, to_torch(torch, kwargs.values()))))
    if not grad:
        return as_numpy(loss), None
    loss.sum().backward()
    return as_numpy(loss), xt.grad.numpy()


def tolerances(dtype, x, want):
    """(rtol, atol) for a result `want` in `dtype` computed from logits `x`:
    ``atol`` is rtol times max|x| times max|want| (1 at least), the absolute
    rounding error of a shifted log-softmax summed with weights.  float16 is
    a float32 computation (that error) rounded once (rtol)."""
    rtol = RTOL[np.dtype(dtype).type]
    values = np.abs(np.asarray(want, dtype=np.float64))
    values = values[np.isfinite(values)]
    top = max(1.0, float(values.max())) if values.size else 1.0
    work_rtol = RTOL[np.float32] if np.dtype(dtype) == np.float16 else rtol
    return rtol, work_rtol * magnitude(x) * top


def assert_loss_and_grad(got, want, x, dtype, label):
    (loss, grad), (want_loss, want_grad) = got, want
    rtol, atol = tolerances(dtype, x, want_loss)
    assert_result(loss, want_loss, rtol=rtol, atol=atol, err_msg=f"{label} loss")
    if want_grad is not None:
        rtol, atol = tolerances(dtype, x, want_grad)
        assert_result(grad, want_grad, rtol=rtol, atol=atol, err_msg=f"{label} grad")


def central_difference(f, x, h=1e-6):
    """Gradient of the scalar ``sum(f(x))`` by central differences."""
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        step = h * max(1.0, abs(flat[i]))
        orig = flat[i]
        flat[i] = orig + step
        up = float(np.sum(f(x)))
        flat[i] = orig - step
        down = float(np.sum(f(x)))
        flat[i] = orig
        gflat[i] = (up - down) / (2 * step)
    return grad


def random_labels(rng, shape, n_classes=N_CLASSES):
    return np.asarray(rng.integers(0, n_classes, size=shape))


def random_probabilities(rng, shape, axis, dtype):
    p = rng.random(shape) ** 3  # some near zero
    p[rng.random(shape) < 0.2] = 0.0  # and some exactly zero
    p += (np.sum(p, axis=axis, keepdims=True) == 0)
    return (p / np.sum(p, axis=axis, keepdims=True)).astype(dtype)


def index_shape(input_shape):
    return () if len(input_shape) == 1 else (input_shape[0],) + input_shape[2:]


# ---------------------------------------------------------------------------
# cross_entropy and nll_loss against PyTorch, every combination

IGNORE_CASES = ("none ignored", "some -100", "ignore_index=1", "all ignored")


def labels_for(case, shape, rng):
    t = random_labels(rng, shape)
    if case == "none ignored":
        return t, -100
    if case == "some -100":
        mask = rng.random(shape) < 0.3
        if t.ndim:
            mask.flat[0] = True  # at least one
        return np.where(mask, -100, t), -100
    if case == "ignore_index=1":
        if t.ndim:
            t.flat[0] = 1
        return t, 1
    return np.full(shape, -100), -100


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_cross_entropy_matches_torch(torch, layout, dtype):
    rng = np.random.default_rng(1)
    shape = LAYOUTS[layout]
    x = (3 * rng.standard_normal(shape)).astype(dtype)
    failures = Failures()
    for weight, case, ls, reduction in itertools.product(
            (None, CLASS_WEIGHT), IGNORE_CASES, (0.0, 0.2, 1.0), REDUCTIONS):
        t, ignore_index = labels_for(case, index_shape(shape), rng)
        w = None if weight is None else weight.astype(dtype)
        kwargs = dict(weight=w, ignore_index=ignore_index, reduction=reduction,
                      label_smoothing=ls)
        label = f"{layout} {np.dtype(dtype)} weight={weight is not None} {case} ls={ls} {reduction}"
        with failures.case(label):
            got = rl.cross_entropy(x, t, return_grad=True, **kwargs)
            want = torch_call(torch, "cross_entropy", x, t, **kwargs)
            assert_loss_and_grad(got, want, x, dtype, label)
            assert_result(rl.cross_entropy(x, t, **kwargs), got[0], rtol=0, atol=0,
                          err_msg=f"{label}: return_grad changed the loss")
    for weight, ls, reduction in itertools.product((None, CLASS_WEIGHT), (0.0, 0.2, 1.0),
                                                   REDUCTIONS):
        p = random_probabilities(rng, shape, 0 if len(shape) == 1 else 1, dtype)
        w = None if weight is None else weight.astype(dtype)
        kwargs = dict(weight=w, reduction=reduction, label_smoothing=ls)
        label = (f"{layout} {np.dtype(dtype)} probabilities weight={weight is not None} "
                 f"ls={ls} {reduction}")
        with failures.case(label):
            got = rl.cross_entropy(x, p, return_grad=True, **kwargs)
            want = torch_call(torch, "cross_entropy", x, p, **kwargs)
            assert_loss_and_grad(got, want, x, dtype, label)
    failures.check()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_nll_loss_matches_torch(torch, layout, dtype):
    rng = np.random.default_rng(2)
    shape = LAYOUTS[layout]
    axis = 0 if len(shape) == 1 else 1
    logp = np.log(random_probabilities(rng, shape, axis, np.float64) + 0.01).astype(dtype)
    failures = Failures()
    for weight, case, reduction in itertools.product((None, CLASS_WEIGHT), IGNORE_CASES,
                                                     REDUCTIONS):
        t, ignore_index = labels_for(case, index_shape(shape), rng)
        w = None if weight is None else weight.astype(dtype)
        kwargs = dict(weight=w, ignore_index=ignore_index, reduction=reduction)
        label = f"{layout} {np.dtype(dtype)} weight={weight is not None} {case} {reduction}"
        with failures.case(label):
            got = rl.nll_loss(logp, t, return_grad=True, **kwargs)
            want = torch_call(torch, "nll_loss", logp, t, **kwargs)
            assert_loss_and_grad(got, want, logp, dtype, label)
    failures.check()


@pytest.mark.parametrize("func", ["cross_entropy", "nll_loss"])
def test_every_integer_label_dtype_gives_the_same_result(func):
    """Labels of any integer dtype, signed or not; uint8 against PyTorch's
    own uint8 path elsewhere, all against int64 bit for bit here."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, N_CLASSES, 3))
    t = random_labels(rng, (4, 3))
    t[0, 0] = 2
    for reduction, return_grad in itertools.product(REDUCTIONS, (False, True)):
        kwargs = dict(weight=CLASS_WEIGHT, ignore_index=2, reduction=reduction,
                      return_grad=return_grad)
        want = getattr(rl, func)(x, t.astype(np.int64), **kwargs)
        for dtype in INDEX_DTYPES:
            got = getattr(rl, func)(x, t.astype(dtype), **kwargs)
            for g, w in zip(got if return_grad else [got], want if return_grad else [want]):
                assert type(g) is type(w) and np.asarray(g).tobytes() == np.asarray(w).tobytes(), (
                    f"{func} {reduction} labels {np.dtype(dtype)}")


def test_uint8_labels_match_torch_uint8(torch):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, N_CLASSES))
    t = random_labels(rng, 6).astype(np.uint8)
    for reduction in REDUCTIONS:
        got = rl.cross_entropy(x, t, reduction=reduction, ignore_index=3, return_grad=True)
        want = torch_call(torch, "cross_entropy", x, t, reduction=reduction, ignore_index=3)
        assert_loss_and_grad(got, want, x, np.float64, f"uint8 {reduction}")


@pytest.mark.parametrize("func", ["cross_entropy", "nll_loss"])
def test_empty_batch(torch, func):
    """An empty batch: 'mean' is NaN, 'sum' 0, 'none' empty, as PyTorch."""
    for shape in [(0, N_CLASSES), (0, N_CLASSES, 3), (2, N_CLASSES, 0)]:
        x = np.zeros(shape)
        t = np.zeros(index_shape(shape), dtype=np.int64)
        for reduction, ls in itertools.product(REDUCTIONS, (0.0, 0.3)):
            kw = dict(reduction=reduction)
            if func == "cross_entropy":
                kw["label_smoothing"] = ls
            got = getattr(rl, func)(x, t, return_grad=True, **kw)
            want = torch_call(torch, func, x, t, **kw)
            assert_loss_and_grad(got, want, x, np.float64, f"{func} {shape} {kw}")
    if func == "cross_entropy":
        x = np.zeros((0, N_CLASSES))
        for reduction in REDUCTIONS:
            got = rl.cross_entropy(x, x, reduction=reduction, return_grad=True)
            want = torch_call(torch, func, x, x, reduction=reduction)
            assert_loss_and_grad(got, want, x, np.float64, f"probabilities {reduction}")


@pytest.mark.parametrize("func", ["cross_entropy", "nll_loss"])
def test_zero_classes(torch, func):
    """No classes: every target must be ignored; 'mean' is NaN, 'sum' 0."""
    x = np.zeros((2, 0))
    t = np.array([-100, -100])
    for reduction in REDUCTIONS:
        got = getattr(rl, func)(x, t, reduction=reduction, return_grad=True)
        want = torch_call(torch, func, x, t, reduction=reduction)
        assert_loss_and_grad(got, want, x, np.float64, f"{func} {reduction}")
    with pytest.raises(IndexError, match="label 0"):
        getattr(rl, func)(x, np.array([-100, 0]))
    if func == "cross_entropy":  # documented: PyTorch's 0 * eps / 0 is NaN
        assert rl.cross_entropy(x, t, reduction="sum", label_smoothing=0.2) == 0.0
        assert np.isnan(torch_call(torch, func, x, t, reduction="sum", label_smoothing=0.2,
                                   grad=False)[0])


@pytest.mark.parametrize("func", ["cross_entropy", "nll_loss"])
def test_zero_total_weight_under_mean_is_nan(torch, func):
    x = np.random.default_rng(5).standard_normal((3, N_CLASSES))
    t = np.array([2, 2, -100])  # class 2 has weight 0
    for ls in (0.0, 0.5) if func == "cross_entropy" else (None,):
        kw = dict(weight=CLASS_WEIGHT, reduction="mean")
        if ls is not None:
            kw["label_smoothing"] = ls
        loss, grad = getattr(rl, func)(x, t, return_grad=True, **kw)
        want_loss, want_grad = torch_call(torch, func, x, t, **kw)
        assert np.isnan(loss) and np.isnan(want_loss)
        np.testing.assert_array_equal(np.isnan(grad), np.isnan(want_grad))
        np.testing.assert_array_equal(grad[2], 0.0)  # the ignored row


# ---------------------------------------------------------------------------
# float16: computed in float32, rounded once

@pytest.mark.filterwarnings(KL_MEAN_WARNING)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_float16_is_float32_rounded_once(torch, reduction):
    rng = np.random.default_rng(6)
    x16 = (3 * rng.standard_normal((6, N_CLASSES, 2))).astype(np.float16)
    x32 = x16.astype(np.float32)
    t = random_labels(rng, (6, 2))
    p16 = random_probabilities(rng, x16.shape, 1, np.float16)
    y16 = rng.random(x16.shape).astype(np.float16)
    cases = [
        ("cross_entropy", (t,), dict(weight=CLASS_WEIGHT, label_smoothing=0.1)),
        ("cross_entropy", (p16,), dict(label_smoothing=0.1)),
        ("nll_loss", (t,), dict(weight=CLASS_WEIGHT)),
        ("kl_div", (p16,), {}),
        ("binary_cross_entropy_with_logits", (y16,), dict(pos_weight=np.full(2, 3.0))),
    ]
    for name, args, kwargs in cases:
        kwargs = dict(kwargs, reduction=reduction)
        loss, grad = getattr(rl, name)(x16, *args, return_grad=True, **kwargs)
        args32 = [a.astype(np.float32) if a.dtype == np.float16 else a for a in args]
        kw32 = {k: np.asarray(v, np.float32) if isinstance(v, np.ndarray) else v
                for k, v in kwargs.items()}
        want_loss, want_grad = torch_call(torch, name, x32, *args32, **kw32)
        assert np.asarray(loss).dtype == np.float16 and grad.dtype == np.float16, name
        assert type(loss) is (np.ndarray if reduction == "none" else np.float16), name
        want_loss = np.asarray(want_loss).astype(np.float16)
        want_loss = want_loss[()] if want_loss.ndim == 0 else want_loss
        assert_loss_and_grad((loss, grad), (want_loss, want_grad.astype(np.float16)), x16,
                             np.float16, f"float16 {name} {reduction}")


# ---------------------------------------------------------------------------
# gradients against central finite differences (float64)

def test_gradients_match_finite_differences():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, N_CLASSES, 2))
    t = random_labels(rng, (3, 2))
    t[0, 0] = -100
    p = random_probabilities(rng, x.shape, 1, np.float64)
    logq = x - np.log(np.sum(np.exp(x), axis=1, keepdims=True))
    y = rng.random(x.shape)
    cases = [
        ("cross_entropy", (t,), dict(weight=CLASS_WEIGHT, label_smoothing=0.3)),
        ("cross_entropy", (p,), dict(weight=CLASS_WEIGHT, label_smoothing=0.3)),
        ("nll_loss", (t,), dict(weight=CLASS_WEIGHT)),
        ("kl_div", (p,), {}),
        ("kl_div", (np.log(p + 0.1),), dict(log_target=True)),
        ("binary_cross_entropy_with_logits", (y,),
         dict(weight=rng.random((N_CLASSES, 1)), pos_weight=rng.random(2) + 1)),
    ]
    failures = Failures()
    for name, args, kwargs in cases:
        func = getattr(rl, name)
        x0 = logq if name in ("nll_loss", "kl_div") else x
        for reduction in REDUCTIONS + (("batchmean",) if name == "kl_div" else ()):
            with failures.case(f"{name} {reduction} {sorted(kwargs)}"):
                _, grad = func(x0, *args, reduction=reduction, return_grad=True, **kwargs)
                fd = central_difference(
                    lambda z: func(z, *args, reduction=reduction, **kwargs), x0.copy())
                np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-7)
    failures.check()


# ---------------------------------------------------------------------------
# cross_entropy: special values

def special_logits(dtype):
    return np.array([
        [0.0, -INF, 1.0, 2.0, 0.5],    # -inf at the target (class 1)
        [0.0, -INF, 1.0, 2.0, 0.5],    # -inf elsewhere (target 3)
        [-INF, -INF, -INF, -INF, -INF],  # no softmax
        [NAN, 1.0, 2.0, 0.0, -1.0],
        [INF, 1.0, 2.0, 0.0, -1.0],
        [-INF, -INF, 3.0, -INF, -INF],  # one finite logit: p one-hot
        [1.0, 1.0, 1.0, 1.0, 1.0],
    ], dtype=dtype)


SPECIAL_TARGETS = np.array([1, 3, 0, 0, 2, 2, 4])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cross_entropy_special_values_match_torch(torch, dtype):
    """-inf logits at the target (loss +inf, finite gradient) and elsewhere,
    rows of -inf, NaN and +inf (NaN loss and gradient), as PyTorch; no
    weights, so no zero coefficient meets a -inf."""
    x = special_logits(dtype)
    for ls, reduction in itertools.product((0.0, 0.1), REDUCTIONS):
        kwargs = dict(reduction=reduction, label_smoothing=ls)
        got = rl.cross_entropy(x, SPECIAL_TARGETS, return_grad=True, **kwargs)
        want = torch_call(torch, "cross_entropy", x, SPECIAL_TARGETS, **kwargs)
        assert_loss_and_grad(got, want, x, dtype, f"special {kwargs}")
    loss = rl.cross_entropy(x, SPECIAL_TARGETS, reduction="none")
    assert loss[0] == INF and np.isfinite(loss[1]) and loss[5] == 0.0
    assert np.isnan(loss[2:5]).all()
    loss, grad = rl.cross_entropy(x, SPECIAL_TARGETS, reduction="none", label_smoothing=0.1,
                                  return_grad=True)
    assert loss[1] == INF and loss[5] == INF  # smoothing puts mass on the -inf classes
    assert np.isfinite(grad[[0, 1, 5, 6]]).all() and np.isnan(grad[2:5]).all()


def test_cross_entropy_ignored_rows_have_zero_gradient(torch):
    """Documented difference: PyTorch's autograd gives NaN in an ignored row
    whose logits have no softmax; the reference gives 0 (the loss does not
    depend on the row)."""
    x = special_logits(np.float64)[2:5]  # -inf row, NaN row, +inf row
    x = np.concatenate([x, [[0.0, 1.0, 2.0, 3.0, 4.0]]])
    t = np.array([-100, -100, -100, 2])
    for ls, reduction in itertools.product((0.0, 0.2), REDUCTIONS):
        kwargs = dict(reduction=reduction, label_smoothing=ls)
        loss, grad = rl.cross_entropy(x, t, return_grad=True, **kwargs)
        want_loss, want_grad = torch_call(torch, "cross_entropy", x, t, **kwargs)
        assert np.isnan(want_grad[:3]).all()  # PyTorch
        np.testing.assert_array_equal(grad[:3], 0.0)
        assert_loss_and_grad((loss, grad[3]), (want_loss, want_grad[3]), x[3], np.float64,
                             str(kwargs))


def test_zero_coefficient_times_minus_inf_is_zero(torch):
    """Documented difference: where a zero coefficient (a zero probability, a
    zero class weight) meets a log-probability of -inf, the term is 0 -- the
    limit of the loss as the logit goes to -inf, which PyTorch gives on
    logits of -1e300; on -inf it computes 0 * -inf = NaN.  The gradient is
    PyTorch's."""
    x = np.array([[0.0, -INF, 1.0, 2.0, -INF], [1.0, 0.0, -INF, 2.0, -INF]])
    p = np.array([[0.2, 0.0, 0.3, 0.5, 0.0], [0.5, 0.5, 0.0, 0.0, 0.0]])
    with np.errstate(divide="ignore"):
        logp = np.log(p)
    w = np.array([1.0, 0.0, 0.0, 1.0, 0.0])  # zero where the logits are -inf
    cases = [
        ("cross_entropy", x, p, {}),
        ("cross_entropy", x, p, dict(weight=w, label_smoothing=0.3)),
        ("cross_entropy", x, np.array([1, 2]), dict(weight=w)),
        ("cross_entropy", x, np.array([0, 1]), dict(weight=w, label_smoothing=0.3)),
        ("nll_loss", logp, np.array([1, 2]), dict(weight=w)),
    ]
    for name, xx, target, kwargs in cases:
        for reduction in ("none", "sum"):
            kw = dict(kwargs, reduction=reduction)
            label = f"{name} target {target.tolist()} {kw}"
            loss, grad = getattr(rl, name)(xx, target, return_grad=True, **kw)
            torch_loss, torch_grad = torch_call(torch, name, xx, target, **kw)
            assert np.isnan(torch_loss).any(), label  # PyTorch: 0 * -inf
            limit = np.where(np.isinf(xx), -1e300, xx)
            want = torch_call(torch, name, limit, target, grad=False, **kw)[0]
            assert np.isfinite(want).all(), label
            assert_result(loss, want, rtol=1e-14, atol=1e-15, err_msg=label)
            np.testing.assert_allclose(grad, torch_grad, rtol=1e-14, atol=1e-15, err_msg=label)


def test_label_smoothing_one_with_target_at_minus_inf_is_inf(torch):
    """eps = 1 leaves only the uniform target; PyTorch still multiplies the
    infinite hard-target loss by 1 - eps = 0 and returns NaN."""
    x = np.array([[0.0, -INF, 1.0]])
    loss = rl.cross_entropy(x, np.array([1]), label_smoothing=1.0)
    assert np.isnan(torch_call(torch, "cross_entropy", x, np.array([1]),
                               label_smoothing=1.0)[0])
    assert loss == INF
    # without the -inf, eps = 1 is the cross-entropy with the uniform target
    y = np.array([[0.0, 0.5, 1.0]])
    uniform = np.full((1, 3), 1 / 3)
    np.testing.assert_allclose(rl.cross_entropy(y, np.array([1]), label_smoothing=1.0),
                               rl.cross_entropy(y, uniform), rtol=1e-15)


# ---------------------------------------------------------------------------
# kl_div

KL_SHAPES = [((4, 5), (4, 5)), ((4, 5), (5,)), ((5,), (4, 5)), ((), ()),
             ((3, 4, 5), (3, 4, 5)), ((3, 1, 5), (3, 4, 1))]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kl_div_matches_torch(torch, dtype):
    rng = np.random.default_rng(8)
    failures = Failures()
    for (xs, ts), log_target, reduction in itertools.product(
            KL_SHAPES, (False, True), REDUCTIONS + ("batchmean",)):
        x = np.log(rng.random(xs) + 0.05).astype(dtype)
        p = rng.random(ts)
        p[p < 0.2] = 0.0
        t = (np.log(p + 0.05) if log_target else p).astype(dtype)
        kwargs = dict(reduction=reduction, log_target=log_target)
        label = f"{xs} {ts} {np.dtype(dtype)} {kwargs}"
        with failures.case(label):
            got = rl.kl_div(x, t, return_grad=True, **kwargs)
            with pytest.warns(UserWarning) if reduction == "mean" else contextlib.nullcontext():
                want = torch_call(torch, "kl_div", x, t, **kwargs)
            assert_loss_and_grad(got, want, x, dtype, label)
    failures.check()


def test_mixed_dtypes_promote_as_torch(torch):
    """float32 input with a float64 target: a float64 loss, a float32 gradient."""
    x = np.log(np.array([[0.2, 0.8], [0.5, 0.5]], dtype=np.float32))
    t = np.array([[0.1, 0.9], [0.3, 0.7]])
    for name, kwargs in [("kl_div", dict(reduction="none")),
                         ("kl_div", dict(reduction="batchmean")),
                         ("cross_entropy", dict(reduction="none")),
                         ("cross_entropy", dict(weight=np.array([1.0, 2.0], np.float32))),
                         ("binary_cross_entropy_with_logits", dict(reduction="sum"))]:
        got = getattr(rl, name)(x, t, return_grad=True, **kwargs)
        want = torch_call(torch, name, x, t, **kwargs)
        assert np.asarray(got[0]).dtype == np.float64 and got[1].dtype == np.float32, name
        assert_loss_and_grad(got, want, x, np.float32, f"{name} {kwargs}")


def test_kl_div_special_values(torch):
    """0 * log 0 = 0 with any input; PyTorch agrees for finite input and gives
    NaN where the input is infinite (documented difference)."""
    x = np.array([-INF, 0.0, INF, -INF, 1.0, NAN, -1.0, -INF])
    t = np.array([0.0, 0.0, 0.0, 0.5, -0.1, 0.0, 0.25, NAN])
    loss, grad = rl.kl_div(x, t, reduction="none", return_grad=True)
    torch_loss, torch_grad = torch_call(torch, "kl_div", x, t, reduction="none")
    want = np.array([0.0, 0.0, 0.0, INF, NAN, NAN, 0.25 * (np.log(0.25) + 1), NAN])
    assert_result(loss, want, rtol=1e-15, atol=0)
    agree = [1, 3, 4, 5, 6, 7]
    assert_result(loss[agree], torch_loss[agree], rtol=1e-15, atol=0)
    assert np.isnan(torch_loss[[0, 2]]).all()  # PyTorch: 0 * inf
    np.testing.assert_array_equal(grad, torch_grad)  # -t

    lt = np.array([-INF, -INF, -INF, 0.0, 0.0, np.log(0.5), -800.0, NAN])
    xl = np.array([-INF, 0.0, INF, -INF, 0.0, np.log(0.25), -INF, 0.0])
    loss, grad = rl.kl_div(xl, lt, reduction="none", log_target=True, return_grad=True)
    torch_loss, torch_grad = torch_call(torch, "kl_div", xl, lt, reduction="none",
                                        log_target=True)
    want = np.array([0.0, 0.0, 0.0, INF, 0.0, 0.5 * np.log(2), INF, NAN])
    assert_result(loss, want, rtol=1e-15, atol=0)
    assert_result(loss[3:6], torch_loss[3:6], rtol=1e-15, atol=0)
    # PyTorch: exp(-inf) * (-inf - x), and exp(-800) = 0 times +inf
    assert np.isnan(torch_loss[[0, 1, 2, 6]]).all()
    np.testing.assert_array_equal(grad, torch_grad)  # -exp(t)


def test_kl_div_batchmean_and_empty(torch):
    x0, t0 = np.float64(np.log(0.3)), np.float64(0.2)
    # a 0-d input is one row: batchmean is the sum
    assert rl.kl_div(x0, t0, reduction="batchmean") == rl.kl_div(x0, t0, reduction="sum")
    assert type(rl.kl_div(x0, t0, reduction="none")) is np.float64
    for reduction in REDUCTIONS + ("batchmean",):
        x = np.zeros((0, 3))
        got = rl.kl_div(x, x, reduction=reduction, return_grad=True)
        with pytest.warns(UserWarning) if reduction == "mean" else contextlib.nullcontext():
            want = torch_call(torch, "kl_div", x, x, reduction=reduction)
        assert_loss_and_grad(got, want, x, np.float64, f"empty {reduction}")


# ---------------------------------------------------------------------------
# binary_cross_entropy_with_logits

BCE_WEIGHTS = {
    "none": lambda shape, rng: None,
    "per class": lambda shape, rng: np.asarray(rng.random(shape[-1:]) * 2),
    "column": lambda shape, rng: rng.random(shape[:-1] + (1,)) if len(shape) > 1 else None,
    "full": lambda shape, rng: np.asarray(rng.random(shape) * 2),
    "scalar": lambda shape, rng: np.array(0.7),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(7,), (4, 5), (2, 3, 5), ()])
def test_binary_cross_entropy_with_logits_matches_torch(torch, shape, dtype):
    rng = np.random.default_rng(9)
    x = (4 * rng.standard_normal(shape)).astype(dtype)
    y = rng.random(shape)
    y[rng.random(shape) < 0.3] = 1.0
    y[rng.random(shape) < 0.2] = 0.0
    y = y.astype(dtype)
    failures = Failures()
    for wkind, pwkind, reduction in itertools.product(BCE_WEIGHTS, ("none", "per class", "scalar"),
                                                      REDUCTIONS):
        w = BCE_WEIGHTS[wkind](shape, rng)
        pw = BCE_WEIGHTS[pwkind](shape, rng)
        kwargs = dict(weight=None if w is None else w.astype(dtype),
                      pos_weight=None if pw is None else pw.astype(dtype), reduction=reduction)
        label = f"{shape} {np.dtype(dtype)} weight {wkind} pos_weight {pwkind} {reduction}"
        with failures.case(label):
            got = rl.binary_cross_entropy_with_logits(x, y, return_grad=True, **kwargs)
            want = torch_call(torch, "binary_cross_entropy_with_logits", x, y, **kwargs)
            assert_loss_and_grad(got, want, x, dtype, label)
    failures.check()


def test_binary_cross_entropy_with_logits_infinite_logits(torch):
    """The limits where PyTorch returns NaN: 0 for (+inf, 1) and (-inf, 0), +inf
    for (-inf, 1); a zero weight gives 0.  Gradients are PyTorch's (finite)."""
    x = np.array([INF, INF, -INF, -INF, INF, -INF, NAN, 0.0])
    y = np.array([1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 1.0, 0.5])
    for pos_weight in (None, np.array(3.0)):
        pw = 1.0 if pos_weight is None else 3.0
        loss, grad = rl.binary_cross_entropy_with_logits(
            x, y, pos_weight=pos_weight, reduction="none", return_grad=True)
        torch_loss, torch_grad = torch_call(
            torch, "binary_cross_entropy_with_logits", x, y, pos_weight=pos_weight,
            reduction="none")
        want = np.array([0.0, INF, 0.0, INF, INF, INF, NAN, 0.5 * (1 + pw) * np.log(2)])
        assert_result(loss, want, rtol=1e-15, atol=0)
        assert np.isnan(torch_loss[[0, 2, 3, 5]]).all()  # PyTorch
        assert_result(loss[[1, 4, 6, 7]], torch_loss[[1, 4, 6, 7]], rtol=1e-15, atol=0)
        np.testing.assert_allclose(grad, torch_grad, rtol=1e-15, atol=0)
    # a finite but huge logit gives PyTorch's value, which the limit continues
    big = np.array([1e300, -1e300])
    np.testing.assert_array_equal(
        rl.binary_cross_entropy_with_logits(big, np.array([1.0, 0.0]), reduction="none"),
        torch_call(torch, "binary_cross_entropy_with_logits", big, np.array([1.0, 0.0]),
                   reduction="none", grad=False)[0])
    w = np.array([0.0, 1.0])
    loss = rl.binary_cross_entropy_with_logits(np.array([-INF, -INF]), np.array([1.0, 1.0]),
                                               weight=w, reduction="none")
    np.testing.assert_array_equal(loss, [0.0, INF])


def test_binary_cross_entropy_with_logits_integer_targets_and_dtypes(torch):
    x = np.array([[0.5, -1.0], [2.0, 0.0]], dtype=np.float32)
    labels = np.array([[1, 0], [0, 1]])
    got = rl.binary_cross_entropy_with_logits(x, labels)
    assert type(got) is np.float32
    assert got == rl.binary_cross_entropy_with_logits(x, labels.astype(np.float32))
    assert rl.binary_cross_entropy_with_logits(x, labels.astype(bool)) == got
    # float32 input with a float64 target promotes, as PyTorch; a float64
    # weight does not change the dtype (PyTorch multiplies in place)
    y64 = labels.astype(np.float64)
    want = torch_call(torch, "binary_cross_entropy_with_logits", x, y64, grad=False)[0]
    assert type(rl.binary_cross_entropy_with_logits(x, y64)) is type(want) is np.float64
    assert type(rl.binary_cross_entropy_with_logits(x, labels, weight=np.ones(2))) is np.float32


def test_binary_cross_entropy_with_logits_empty(torch):
    x = np.zeros((0, 3))
    for reduction in REDUCTIONS:
        got = rl.binary_cross_entropy_with_logits(x, x, reduction=reduction, return_grad=True)
        want = torch_call(torch, "binary_cross_entropy_with_logits", x, x, reduction=reduction)
        assert_loss_and_grad(got, want, x, np.float64, f"empty {reduction}")


# ---------------------------------------------------------------------------
# entropy against scipy.stats.entropy

def entropy_cases():
    """(label, pk, qk) from the shared zoo: signed values (negative entries
    are SciPy's -inf / +inf cases) for float64 and integers, magnitudes for
    the narrow floats, whose SciPy computation is too coarse for cancelling
    sums."""
    for label, a in zoo(special=True, empty=True):
        if a.dtype.kind == "f" and a.dtype != np.float64:
            a = np.abs(a)
        yield label, a, None
        if a.ndim:
            yield label + " vs reversed", a, np.abs(np.flip(a, axis=-1))


def overflows(a, axis):
    with np.errstate(over="ignore", invalid="ignore"):
        return a.dtype.kind == "f" and bool(np.any(
            np.isinf(np.sum(a, axis=axis)) & np.all(np.isfinite(a), axis=axis)))


def test_entropy_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    failures = Failures()
    for (label, pk, qk), base in itertools.product(entropy_cases(), (None, 2)):
        for axis in (0, -1, None) if pk.ndim else (0,):
            args = (pk,) if qk is None else (pk, qk)
            case = f"{label} {pk.dtype} axis={axis} base={base}"
            with failures.case(case):
                got = rl.entropy(*args, base=base, axis=axis)
                dtype = np.result_type(*[a.dtype if a.dtype.kind == "f" else np.float64
                                         for a in args])
                peer_args = args
                if dtype == np.float16:  # documented: computed in float32 (SciPy: float16)
                    peer_args = tuple(a.astype(np.float32) for a in args)
                if any(overflows(a, axis) for a in peer_args):  # documented: scaled first
                    peer_args = tuple(a / np.max(np.abs(a[np.isfinite(a)])) for a in peer_args)
                with np.errstate(all="ignore"):
                    want = stats.entropy(*peer_args, base=base, axis=axis)
                if dtype == np.float16:
                    want = np.asarray(want).astype(np.float16)
                    want = want[()] if want.ndim == 0 else want
                rtol = RTOL[dtype.type]
                assert_result(got, want, rtol=rtol, atol=rtol, err_msg=case)
    failures.check()


def test_entropy_special_values_and_errors():
    stats = pytest.importorskip("scipy.stats")
    cases = [
        ([1.0, 0.0, 3.0], None), ([0.0, 0.0, 0.0], None), ([1.0, -1.0, 3.0], None),
        ([1.0, NAN, 3.0], None), ([1.0, INF, 3.0], None), ([1.0, 2.0, 3.0], [1.0, 0.0, 2.0]),
        ([1.0, 0.0, 3.0], [1.0, 0.0, 2.0]), ([0.0, 0.0, 0.0], [1.0, 1.0, 1.0]),
        ([1.0, 2.0], [1e-320, 1.0]), ([1e-320, 1e-320], None), ([], None), (5.0, None),
        ([True, False], None), ([1, 2, 3], [3, 2, 1]), ([1.0, 2.0, 3.0], [1.0, INF, 3.0]),
    ]
    for pk, qk in cases:
        got = rl.entropy(pk, qk)
        with np.errstate(all="ignore"):
            want = stats.entropy(pk, qk)
        assert_result(got, want, rtol=1e-14, atol=0, err_msg=f"{pk} {qk}")
    with np.errstate(divide="ignore"):
        assert_result(rl.entropy([1.0, 1.0], base=1), stats.entropy([1.0, 1.0], base=1),
                      rtol=0, atol=0)
    # documented difference: float16 stays float16 (SciPy returns float32)
    assert type(rl.entropy(np.array([1.0, 2.0], np.float16))) is np.float16
    assert type(stats.entropy(np.array([1.0, 2.0], np.float16))) is np.float32
    # documented difference: a sum that overflows is taken after scaling
    assert rl.entropy([1e308, 1e308]) == pytest.approx(np.log(2), rel=1e-15)
    with np.errstate(over="ignore"):
        assert stats.entropy([1e308, 1e308]) == 0.0
    # errors, of the types SciPy raises
    for base in (0, -1.0):
        with pytest.raises(ValueError, match="base"):
            rl.entropy([1.0, 2.0], base=base)
        with pytest.raises(ValueError):
            stats.entropy([1.0, 2.0], base=base)
    with pytest.raises(ValueError, match="qk"):
        rl.entropy(np.ones((3, 4)), np.ones(3))
    with pytest.raises(np.exceptions.AxisError):
        rl.entropy(np.ones((3, 4)), axis=2)
    with pytest.raises(TypeError, match="pk"):
        rl.entropy([1 + 1j, 2])
    with pytest.raises(TypeError, match="qk"):
        rl.entropy([1.0, 2.0], ["a", "b"])


# ---------------------------------------------------------------------------
# entropy, cross-entropy and KL from logits

def torch_from_logits(torch, x, y):
    """H(p), H(p, q), KL(p || q) along the last axis with PyTorch."""
    F = torch.nn.functional
    xt, yt = torch.tensor(x), torch.tensor(y)
    logp, logq = F.log_softmax(xt, -1), F.log_softmax(yt, -1)
    h = -(logp.exp() * logp).sum(-1)
    ce = -(logp.exp() * logq).sum(-1)
    kl = F.kl_div(logq, logp, reduction="none", log_target=True).sum(-1)
    return [as_numpy(v) for v in (h, ce, kl)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape,axis", [((7,), -1), ((4, 6), -1), ((4, 6), 0),
                                        ((3, 4, 5), 1), ((2, 3, 40), -1)])
def test_from_logits_match_torch(torch, shape, axis, dtype):
    rng = np.random.default_rng(10)
    x = (3 * rng.standard_normal(shape)).astype(dtype)
    y = (3 * rng.standard_normal(shape)).astype(dtype)
    got = [rl.softmax_entropy(x, axis=axis), rl.softmax_cross_entropy(x, y, axis=axis),
           rl.softmax_kl_div(x, y, axis=axis)]
    want = torch_from_logits(torch, np.moveaxis(x, axis, -1), np.moveaxis(y, axis, -1))
    for name, g, w in zip(("entropy", "cross-entropy", "kl"), got, want):
        rtol, atol = tolerances(dtype, np.concatenate([x.ravel(), y.ravel()]), w)
        assert_result(g, w, rtol=rtol, atol=atol, err_msg=f"{name} {shape} axis={axis}")


def test_from_logits_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    special = pytest.importorskip("scipy.special")
    rng = np.random.default_rng(11)
    x, y = 3 * rng.standard_normal((2, 5, 8))
    for axis in (0, 1, -1):
        p, q = special.softmax(x, axis=axis), special.softmax(y, axis=axis)
        np.testing.assert_allclose(rl.softmax_entropy(x, axis=axis),
                                   stats.entropy(p, axis=axis), rtol=1e-13)
        np.testing.assert_allclose(rl.softmax_kl_div(x, y, axis=axis),
                                   stats.entropy(p, q, axis=axis), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(rl.softmax_cross_entropy(x, y, axis=axis),
                                   stats.entropy(p, axis=axis) + stats.entropy(p, q, axis=axis),
                                   rtol=1e-13)


def test_from_logits_special_values():
    # a class with -inf in both p and q drops out
    x = np.array([0.0, -INF, 1.0, 2.0])
    y = np.array([0.5, -INF, -1.0, 0.0])
    xr, yr = np.delete(x, 1), np.delete(y, 1)
    for f in (rl.softmax_cross_entropy, rl.softmax_kl_div):
        assert f(x, y) == pytest.approx(f(xr, yr), rel=1e-15)
    assert rl.softmax_entropy(x) == pytest.approx(rl.softmax_entropy(xr), rel=1e-15)
    # p > 0 where q = 0 gives +inf, even where p underflows; p = 0 where q = 0 gives 0
    assert rl.softmax_cross_entropy([0.0, 1.0], [0.0, -INF]) == INF
    assert rl.softmax_kl_div([0.0, -1000.0], [0.0, -INF]) == INF
    assert rl.softmax_kl_div([0.0, -INF], [0.0, -INF]) == 0.0
    assert rl.softmax_entropy([3.0, -INF, -INF]) == 0.0
    # rows with no softmax: NaN
    rows = np.array([[-INF, -INF, -INF], [NAN, 0.0, 1.0], [INF, 0.0, 1.0], [0.0, 1.0, 2.0]])
    good = np.array([[0.0, 1.0, 2.0]] * 4)
    want_nan = [True, True, True, False]
    for result in (rl.softmax_entropy(rows), rl.softmax_cross_entropy(rows, good),
                   rl.softmax_cross_entropy(good, rows), rl.softmax_kl_div(rows, good),
                   rl.softmax_kl_div(good, rows)):
        np.testing.assert_array_equal(np.isnan(result), want_nan)
    # dtypes and broadcasting
    assert type(rl.softmax_entropy(np.zeros(3, np.float32))) is np.float32
    assert type(rl.softmax_entropy(np.zeros(3, np.float16))) is np.float16
    assert type(rl.softmax_entropy(np.zeros(3, np.int64))) is np.float64
    out = rl.softmax_kl_div(np.zeros((4, 3), np.float32), np.zeros(3))
    assert out.dtype == np.float64 and out.shape == (4,)
    np.testing.assert_array_equal(out, 0.0)


def test_from_logits_errors():
    with pytest.raises(TypeError, match="logits"):
        rl.softmax_entropy(np.array([True, False]))
    with pytest.raises(TypeError, match="q_logits"):
        rl.softmax_kl_div([0.0, 1.0], [1 + 1j, 0])
    with pytest.raises(ValueError, match="length zero"):
        rl.softmax_entropy(np.zeros((3, 0)))
    with pytest.raises(ValueError, match="p_logits.*q_logits"):
        rl.softmax_cross_entropy(np.zeros((3, 4)), np.zeros((3, 5)))
    with pytest.raises(np.exceptions.AxisError):
        rl.softmax_entropy(np.zeros((3, 4)), axis=2)
    with pytest.raises(np.exceptions.AxisError):
        rl.softmax_entropy(np.float64(1.0))
    assert rl.softmax_entropy(np.zeros((0, 4))).shape == (0,)


# ---------------------------------------------------------------------------
# errors of the PyTorch losses: types, and messages naming the argument

def raises_in_torch(torch, name, *args, **kwargs):
    func = getattr(torch.nn.functional, name)
    kw = dict(zip(kwargs, to_torch(torch, kwargs.values())))
    with pytest.raises(Exception):  # noqa: B017 - PyTorch's types vary
        func(*to_torch(torch, args), **kw)


def test_cross_entropy_errors(torch):
    x = np.zeros((3, N_CLASSES))
    t = np.array([0, 1, 2])
    bad = [  # (error, pattern, args, kwargs, PyTorch raises too)
        (ValueError, "reduction", (x, t), dict(reduction="avg"), True),
        (ValueError, "label_smoothing", (x, t), dict(label_smoothing=1.5), True),
        (ValueError, "label_smoothing", (x, t), dict(label_smoothing=-0.1), False),
        (ValueError, "label_smoothing", (x, t), dict(label_smoothing=NAN), False),
        (ValueError, "weight", (x, t), dict(weight=np.ones(4)), True),
        (ValueError, "weight", (x, t), dict(weight=np.ones((1, N_CLASSES))), True),
        (ValueError, "target", (x, np.array([0, 1])), {}, True),
        (ValueError, "target", (np.zeros((2, N_CLASSES, 3)), np.zeros((2, 4), np.int64)), {}, True),
        (ValueError, "input", (np.float64(1.0), np.int64(0)), {}, True),
        (ValueError, "ignore_index", (x, np.full(x.shape, 0.2)), dict(ignore_index=0), True),
        (TypeError, "target", (x, t.astype(np.float64)), {}, True),
        (TypeError, "target", (x, np.zeros(x.shape, np.int64)), {}, True),
        (TypeError, "input", (x.astype(np.int64), t), {}, True),
        (TypeError, "ignore_index", (x, t), dict(ignore_index=1.5), True),
    ]
    for error, pattern, args, kwargs, torch_raises in bad:
        with pytest.raises(error, match=pattern):
            rl.cross_entropy(*args, **kwargs)
        if torch_raises:
            raises_in_torch(torch, "cross_entropy", *args, **kwargs)
    # PyTorch ignores a negative label_smoothing silently (documented difference)
    x1 = np.random.default_rng(0).standard_normal((3, N_CLASSES))
    assert as_numpy(torch.nn.functional.cross_entropy(
        torch.tensor(x1), torch.tensor(t), label_smoothing=-0.1)) == pytest.approx(
        rl.cross_entropy(x1, t), rel=1e-14)


@pytest.mark.parametrize("func", ["cross_entropy", "nll_loss"])
def test_out_of_range_label_raises_index_error_naming_it(torch, func):
    x = np.zeros((3, N_CLASSES, 2))
    for dtype, label in [(np.int64, 7), (np.int64, -3), (np.int8, 5), (np.int16, -100),
                         (np.uint8, 200), (np.uint16, 300), (np.uint64, 2**63 + 5)]:
        t = np.zeros((3, 2), dtype=dtype)
        t[1, 1] = label
        ignore_index = 1 if label == -100 else -100
        for reduction in REDUCTIONS:
            with pytest.raises(IndexError, match=f"label {label}\\b"):
                getattr(rl, func)(x, t, reduction=reduction, ignore_index=ignore_index)
        if label < 2**63:
            with pytest.raises(IndexError, match=str(label)):
                getattr(torch.nn.functional, func)(
                    torch.tensor(x), torch.tensor(t.astype(np.int64)), ignore_index=ignore_index)
    # a label equal to ignore_index is never checked; ignore_index=5 is out of range too
    t = np.array([[5, 0], [1, 5], [2, 3]])
    assert np.isfinite(getattr(rl, func)(x, t, ignore_index=5))
    # the unbatched layout
    with pytest.raises(IndexError, match="label 5"):
        getattr(rl, func)(np.zeros(N_CLASSES), 5)


@pytest.mark.filterwarnings(KL_MEAN_WARNING)
def test_nll_kl_bce_errors(torch):
    x = np.zeros((3, 4))
    with pytest.raises(ValueError, match="reduction"):
        rl.nll_loss(x, np.zeros(3, np.int64), reduction="batchmean")
    with pytest.raises(ValueError, match="target"):
        rl.nll_loss(x, np.zeros((3, 4), np.int64))
    with pytest.raises(ValueError, match="weight"):
        rl.nll_loss(x, np.zeros(3, np.int64), weight=np.ones(3))
    with pytest.raises(TypeError, match="target"):
        rl.nll_loss(x, np.zeros(3))
    with pytest.raises(TypeError, match="input"):
        rl.nll_loss(x.astype(int), np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="reduction"):
        rl.kl_div(x, x, reduction="avg")
    raises_in_torch(torch, "kl_div", x, x, reduction="avg")
    with pytest.raises(ValueError, match="target"):
        rl.kl_div(x, np.zeros((3, 5)))
    raises_in_torch(torch, "kl_div", x, np.zeros((3, 5)))
    with pytest.raises(TypeError, match="input"):
        rl.kl_div(x.astype(np.int64), x)
    raises_in_torch(torch, "kl_div", x.astype(np.int64), x)
    with pytest.raises(ValueError, match="target"):
        rl.binary_cross_entropy_with_logits(x, np.zeros(4))
    raises_in_torch(torch, "binary_cross_entropy_with_logits", x, np.zeros(4))
    with pytest.raises(ValueError, match="weight"):
        rl.binary_cross_entropy_with_logits(x, x, weight=np.ones(3))
    raises_in_torch(torch, "binary_cross_entropy_with_logits", x, x, weight=np.ones(3))
    with pytest.raises(ValueError, match="weight"):  # would enlarge the output
        rl.binary_cross_entropy_with_logits(x, x, weight=np.ones((2, 3, 4)))
    raises_in_torch(torch, "binary_cross_entropy_with_logits", x, x, weight=np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match="pos_weight"):
        rl.binary_cross_entropy_with_logits(x, x, pos_weight=np.ones(3))
    with pytest.raises(ValueError, match="reduction"):
        rl.binary_cross_entropy_with_logits(x, x, reduction="batchmean")
    with pytest.raises(TypeError, match="input"):
        rl.binary_cross_entropy_with_logits(x.astype(np.int64), x)
    with pytest.raises(TypeError, match="target"):
        rl.binary_cross_entropy_with_logits(x, np.full(x.shape, "a"))


# ---------------------------------------------------------------------------
# result types, list input, inputs left unmodified

def test_result_types_and_inputs_unmodified():
    rng = np.random.default_rng(12)
    x = rng.standard_normal((3, N_CLASSES)).astype(np.float32)
    t = np.array([0, 4, -100])
    x_copy, t_copy = x.copy(), t.copy()
    for reduction in REDUCTIONS:
        loss, grad = rl.cross_entropy(x, t, reduction=reduction, return_grad=True)
        assert type(loss) is (np.ndarray if reduction == "none" else np.float32)
        assert grad.dtype == np.float32 and grad.shape == x.shape and type(grad) is np.ndarray
    np.testing.assert_array_equal(x, x_copy)
    np.testing.assert_array_equal(t, t_copy)
    # unbatched 'none' is a scalar (PyTorch: a 0-d tensor)
    assert type(rl.cross_entropy(x[0], 2, reduction="none")) is np.float32
    assert type(rl.nll_loss(x[0], np.uint8(2), reduction="none")) is np.float32
    # nested lists work as arrays
    assert rl.cross_entropy(x.tolist(), t.tolist()) == rl.cross_entropy(x.astype(np.float64), t)
    # a read-only, strided input
    view = np.asarray(rng.standard_normal((6, N_CLASSES * 2)))[::2, ::2]
    view.flags.writeable = False
    np.testing.assert_array_equal(rl.cross_entropy(view, t, reduction="none"),
                                  rl.cross_entropy(view.copy(), t, reduction="none"))


# ---------------------------------------------------------------------------
# hypothesis properties

try:
    from hypothesis import given, settings, strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError:  # optional: the properties below are then not collected
    st = None

if st is not None:
    SMALL = settings(max_examples=25, deadline=None)

    @SMALL
    @given(logit_pairs())
    def test_cross_entropy_is_entropy_plus_kl(xy):
        x, y = xy
        h, ce, kl = rl.softmax_entropy(x), rl.softmax_cross_entropy(x, y), rl.softmax_kl_div(x, y)
        np.testing.assert_allclose(ce, h + kl, rtol=1e-12, atol=eps_scale(x, y))

    @SMALL
    @given(logit_pairs())
    def test_kl_is_nonnegative_and_zero_on_itself(xy):
        x, y = xy
        assert np.all(rl.softmax_kl_div(x, y) >= -eps_scale(x, y))
        np.testing.assert_array_equal(rl.softmax_kl_div(x, x), 0.0)
        np.testing.assert_array_equal(rl.softmax_kl_div(y, y), 0.0)
        # and the PyTorch-style KL of log-probabilities agrees with it
        def log_softmax(z):
            m = z.max(axis=1, keepdims=True)
            return z - m - np.log(np.sum(np.exp(z - m), axis=1, keepdims=True))

        np.testing.assert_allclose(
            np.sum(rl.kl_div(log_softmax(y), log_softmax(x), reduction="none", log_target=True),
                   axis=1),
            rl.softmax_kl_div(x, y), rtol=1e-10, atol=eps_scale(x, y))

    @SMALL
    @given(logit_pairs(), st.sampled_from([0.0, 0.1, 1.0]),
           st.sampled_from(REDUCTIONS), st.booleans(), st.data())
    def test_labels_equal_one_hot_probabilities(xy, ls, reduction, weighted, data):
        """CE from labels = CE from one-hot probabilities, -inf logits included
        (the one-hot zeros meet them: 0 * -inf = 0).  With weights, 'mean'
        normalizes differently (sum of target weights vs number of rows)."""
        x, _ = xy
        n, c = x.shape
        t = np.asarray(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
        assert_labels_equal_one_hot(rl.cross_entropy, x, t, label_smoothing=ls,
                                    reduction=reduction, weighted=weighted)

    @SMALL
    @given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=2, max_side=5),
                      elements=st.floats(-30, 30)))
    def test_softmax_entropy_is_scipy_entropy_of_softmax(x):
        stats = pytest.importorskip("scipy.stats")
        special = pytest.importorskip("scipy.special")
        np.testing.assert_allclose(rl.softmax_entropy(x, axis=-1),
                                   stats.entropy(special.softmax(x, axis=-1), axis=-1),
                                   rtol=1e-12, atol=eps_scale(x))


def test_bce_float16_weight_product_beyond_float32(torch):
    # float16 computes in float32, where w pw = 4e39 overflows: pw y first,
    # as PyTorch, so that y = 0 gives w softplus(x) (inf in float16), not NaN
    x = np.array([0.001257, -0.001321], np.float16)
    y = np.zeros(2, np.float16)
    w = pw = np.array([6.36961687e19])
    want = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor(x), torch.tensor(y), weight=torch.tensor(w), pos_weight=torch.tensor(pw),
        reduction="none").numpy()
    with np.errstate(over="ignore"):
        got = rl.binary_cross_entropy_with_logits(x, y, weight=w, pos_weight=pw,
                                                  reduction="none")
    np.testing.assert_array_equal(got, want)
    assert np.isinf(got).all()
