"""fastxent.cross_entropy and nll_loss against torch.nn.functional itself.

Every option combination (weights x ignore_index x label smoothing x
reduction x target kind x K-dim layout x dtype), loss and gradient (the
gradient against torch autograd), special values, errors, threads, layouts.
"""
import itertools
import os
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

import fastxent as fx

from registry import MIN_WORK_PER_THREAD

try:
    import torch
except ImportError:  # only the comparisons with PyTorch need it
    torch = F = None
else:
    F = torch.nn.functional

needs_torch = pytest.mark.skipif(torch is None, reason="compares with PyTorch")

SHAPES = [(7, 5), (6, 4, 3), (5, 3, 2, 2), (4,)]
DTYPES = [np.float64, np.float32]


def _tol(dtype):
    return 1e-12 if dtype == np.float64 else 2e-5


def _torch_ce(x, target, weight=None, **kw):
    if torch is None:
        pytest.skip("compares with PyTorch")
    xt = torch.tensor(x, requires_grad=True)
    w = None if weight is None else torch.tensor(weight)
    loss = F.cross_entropy(xt, torch.tensor(target), weight=w, **kw)
    loss.sum().backward()
    return loss.detach().numpy(), xt.grad.numpy()


def _targets(rng, shape, dtype):
    C = shape[1] if len(shape) > 1 else shape[0]
    rows = shape[:1] + shape[2:] if len(shape) > 1 else ()
    labels = rng.integers(0, C, size=rows)
    if labels.ndim:
        labels.flat[0] = -100  # one ignored row
    axis = 1 if len(shape) > 1 else 0
    probs = rng.random(shape).astype(dtype)
    probs /= probs.sum(axis=axis, keepdims=True)
    return labels, probs


def _assert_close(got, want, dtype, what):
    tol = _tol(dtype)
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol, equal_nan=True, err_msg=what)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_matches_torch_every_option(shape, dtype):
    rng = np.random.default_rng(sum(shape))
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    labels, probs = _targets(rng, shape, dtype)
    C = shape[1] if len(shape) > 1 else shape[0]
    weight = (rng.random(C) + 0.1).astype(dtype)
    for target, w, red, eps in itertools.product(
            [labels, probs], [None, weight], ["mean", "sum", "none"], [0.0, 0.2, 1.0]):
        what = f"{'probs' if target is probs else 'labels'} weight={w is not None} {red} eps={eps}"
        want, want_grad = _torch_ce(x, target, w, reduction=red, label_smoothing=eps)
        got, grad = fx.cross_entropy(x, target, weight=w, reduction=red, label_smoothing=eps,
                                     return_grad=True)
        _assert_close(got, want, dtype, what)
        _assert_close(grad, want_grad, dtype, what + " (grad)")
        assert np.asarray(got).dtype == dtype and np.shape(got) == want.shape, what
        assert grad.dtype == dtype and grad.shape == x.shape
        assert np.array_equal(fx.cross_entropy(x, target, weight=w, reduction=red,
                                               label_smoothing=eps), got, equal_nan=True)


@pytest.mark.parametrize("ignore_index", [-100, 0, 2, 7])
def test_ignore_index_values(ignore_index):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((9, 4))
    t = rng.integers(0, 4, 9)
    t[::3] = ignore_index if ignore_index not in range(4) else t[::3]
    for red in ("mean", "sum", "none"):
        want, want_grad = _torch_ce(x, t, ignore_index=ignore_index, reduction=red,
                                    label_smoothing=0.1)
        got, grad = fx.cross_entropy(x, t, ignore_index=ignore_index, reduction=red,
                                     label_smoothing=0.1, return_grad=True)
        _assert_close(got, want, np.float64, red)
        _assert_close(grad, want_grad, np.float64, red)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16, np.int32,
                                   np.uint32, np.int64, np.uint64])
def test_any_integer_target_dtype(dtype):
    # PyTorch wants int64; fastxent takes any integer dtype (same results)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 5))
    t = rng.integers(0, 5, 6)
    want = fx.cross_entropy(x, t)
    assert fx.cross_entropy(x, t.astype(dtype)) == want
    assert fx.nll_loss(x, t.astype(dtype)) == fx.nll_loss(x, t)


SPECIAL = [
    ("-inf at the target", [[0.5, -np.inf, 1.0]], [1], {}),
    ("-inf elsewhere", [[0.5, -np.inf, 1.0]], [0], {}),
    ("-inf with smoothing", [[0.5, -np.inf, 1.0]], [0], {"label_smoothing": 0.1}),
    ("+inf at the target", [[np.inf, 1.0, 0.0]], [0], {}),
    ("+inf elsewhere", [[np.inf, 1.0, 0.0]], [1], {}),
    ("row of -inf", [[-np.inf, -np.inf, -np.inf]], [0], {}),
    ("NaN in the row", [[np.nan, 1.0, 2.0]], [1], {}),
    ("all ignored, mean", [[1.0, 2.0, 3.0], [0.5, 0.0, 1.0]], [-100, -100], {}),
    ("all ignored, sum", [[1.0, 2.0, 3.0], [0.5, 0.0, 1.0]], [-100, -100], {"reduction": "sum"}),
    ("huge logits", [[1e300, 1e300 - 1e285, -1e300]], [1], {"label_smoothing": 0.3}),
]

# Where PyTorch computes 0 * inf = NaN for a mathematically finite value,
# fastxent returns the limit, as the issue asks for binary cross-entropy:
# a zero weight or probability against a -inf logit contributes 0, and an
# ignored row has gradient 0 whatever its logits.
LIMITS = [
    ("ignored rows with inf and -inf", [[np.inf, 1.0, 0.0], [-np.inf] * 3], [-100, -100],
     {"reduction": "sum"}),
    ("zero weight against -inf", [[0.5, -np.inf, 1.0]], [0],
     {"weight": [1.0, 0.0, 1.0], "label_smoothing": 0.1}),
    ("zero probability against -inf", [[0.5, -np.inf, 1.0]], [[0.5, 0.0, 0.5]], {}),
    ("smoothing 1 with the target at -inf", [[0.5, -np.inf, 1.0]], [1], {"label_smoothing": 1.0}),
]


@pytest.mark.parametrize("name, x, target, kw", SPECIAL, ids=[s[0] for s in SPECIAL])
def test_special_values_as_torch(name, x, target, kw):
    x = np.array(x)
    target = np.array(target)
    kw_torch = dict(kw)
    if "weight" in kw:
        kw = dict(kw, weight=np.array(kw["weight"]))
        kw_torch["weight"] = kw["weight"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want, want_grad = _torch_ce(x, target, **kw_torch)
    got, grad = fx.cross_entropy(x, target, return_grad=True, **kw)
    np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-12, atol=1e-300, equal_nan=True)


@pytest.mark.parametrize("name, x, target, kw", LIMITS, ids=[s[0] for s in LIMITS])
def test_limits_where_torch_gives_nan(name, x, target, kw):
    from fastxent import reference

    x = np.array(x)
    target = np.array(target)
    if "weight" in kw:
        kw = dict(kw, weight=np.array(kw["weight"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch_loss, torch_grad = _torch_ce(x, target, **kw)
    assert np.isnan(torch_loss).any() or np.isnan(torch_grad).any()  # the difference
    got, grad = fx.cross_entropy(x, target, return_grad=True, **kw)
    want, want_grad = reference.cross_entropy(x, target, return_grad=True, **kw)
    assert not np.isnan(got) and not np.isnan(grad).any()  # a limit, maybe +inf
    np.testing.assert_allclose(got, want, rtol=1e-14)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-14, atol=1e-300)
    # where torch is finite, it agrees
    finite = np.isfinite(torch_grad)
    np.testing.assert_allclose(grad[finite], torch_grad[finite], rtol=1e-12)


def test_empty_batch():
    x = np.zeros((0, 3))
    t = np.zeros(0, np.int64)
    assert np.isnan(fx.cross_entropy(x, t))
    assert fx.cross_entropy(x, t, reduction="sum") == 0
    assert fx.cross_entropy(x, t, reduction="none").shape == (0,)
    loss, grad = fx.cross_entropy(x, t, return_grad=True)
    assert grad.shape == (0, 3)


def test_errors():
    x = np.zeros((2, 3))
    with pytest.raises(IndexError, match="Target 3"):
        fx.cross_entropy(x, np.array([0, 3]))
    with pytest.raises(IndexError, match="Target -1"):
        fx.cross_entropy(x, np.array([-1, 0]))
    with pytest.raises(ValueError, match="reduction"):
        fx.cross_entropy(x, np.array([0, 1]), reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing"):
        fx.cross_entropy(x, np.array([0, 1]), label_smoothing=1.5)
    with pytest.raises(ValueError, match="label_smoothing"):
        fx.cross_entropy(x, np.array([0, 1]), label_smoothing=-0.1)
    with pytest.raises(ValueError, match="weight"):
        fx.cross_entropy(x, np.array([0, 1]), weight=np.ones(2))
    with pytest.raises(ValueError, match="target"):
        fx.cross_entropy(x, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="target"):
        fx.cross_entropy(x, np.full((2, 4), 0.25))
    with pytest.raises(TypeError, match="input"):
        fx.cross_entropy(np.zeros((2, 3), np.int64), np.array([0, 1]))
    with pytest.raises(TypeError, match="target"):
        fx.cross_entropy(x, np.array(["a", "b"]))
    with pytest.raises(TypeError, match="target"):
        fx.cross_entropy(x, np.array([True, False]))
    with pytest.raises(ValueError, match="grad_out"):
        fx.cross_entropy(x, np.array([0, 1]), return_grad=True, grad_out=np.zeros((3, 2)))
    with pytest.raises(IndexError, match="Target 5"):
        fx.nll_loss(x, np.array([0, 5]))
    with pytest.raises(TypeError, match="target"):
        fx.nll_loss(x, np.array([0.0, 1.0]))


def test_results_do_not_depend_on_threads():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3000, 40)).astype(np.float32)
    t = rng.integers(0, 40, 3000)
    w = rng.random(40).astype(np.float32)
    assert x.size >= 3 * MIN_WORK_PER_THREAD  # large enough for three threads
    one = fx.cross_entropy(x, t, weight=w, label_smoothing=0.1, return_grad=True, n_threads=1)
    for n in (2, 3):
        other = fx.cross_entropy(x, t, weight=w, label_smoothing=0.1, return_grad=True, n_threads=n)
        assert one[0] == other[0]
        assert np.array_equal(one[1], other[1])


def test_grad_into_the_input_itself():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((50, 3000))
    t = rng.integers(0, 3000, 50)
    want_loss, want_grad = fx.cross_entropy(x, t, label_smoothing=0.05, return_grad=True)
    y = x.copy()
    loss, grad = fx.cross_entropy(y, t, label_smoothing=0.05, return_grad=True, grad_out=y)
    assert grad is y
    assert loss == want_loss
    np.testing.assert_array_equal(grad, want_grad)


def test_input_not_modified_and_layouts():
    rng = np.random.default_rng(5)
    base = rng.standard_normal((8, 6, 5))
    t = rng.integers(0, 6, (8, 5))
    want, want_grad = _torch_ce(base, t, label_smoothing=0.1)
    for label, x in [("F order", np.asfortranarray(base)),
                     ("strided", np.repeat(base, 2, axis=2)[:, :, ::2]),
                     ("negative strides", base[::-1][::-1]),
                     ("read-only", np.array(base))]:
        if label == "read-only":
            x.flags.writeable = False
        before = x.copy()
        got, grad = fx.cross_entropy(x, t, label_smoothing=0.1, return_grad=True)
        np.testing.assert_array_equal(x, before, err_msg=label)
        _assert_close(got, want, np.float64, label)
        _assert_close(grad, want_grad, np.float64, label)


def test_float16_computed_in_float32():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((20, 300)).astype(np.float16)
    t = rng.integers(0, 300, 20)
    got, grad = fx.cross_entropy(x, t, return_grad=True)
    want, want_grad = _torch_ce(x.astype(np.float32), t)
    assert got.dtype == np.float16 and grad.dtype == np.float16
    np.testing.assert_allclose(float(got), want, rtol=1e-3)
    np.testing.assert_allclose(grad.astype(np.float32), want_grad, atol=2e-4)


def test_long_rows_stay_accurate():
    # 256k classes in float32 against the float64 answer
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((4, 262144)) * 4).astype(np.float32)
    t = rng.integers(0, 262144, 4)
    got = fx.cross_entropy(x, t, reduction="none", label_smoothing=0.1)
    want = fx.cross_entropy(x.astype(np.float64), t, reduction="none", label_smoothing=0.1)
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_labels_equal_one_hot_probabilities():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((30, 7))
    t = rng.integers(0, 7, 30)
    onehot = np.eye(7)[t]
    for eps in (0.0, 0.3):
        a, ga = fx.cross_entropy(x, t, label_smoothing=eps, return_grad=True)
        b, gb = fx.cross_entropy(x, onehot, label_smoothing=eps, return_grad=True)
        np.testing.assert_allclose(a, b, rtol=1e-13)
        np.testing.assert_allclose(ga, gb, rtol=1e-12, atol=1e-17)


@needs_torch
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_nll_loss_matches_torch(shape, dtype):
    rng = np.random.default_rng(sum(shape) + 1)
    x = np.log(rng.random(shape)).astype(dtype)
    labels, _ = _targets(rng, shape, dtype)
    C = shape[1] if len(shape) > 1 else shape[0]
    weight = (rng.random(C) + 0.1).astype(dtype)
    unbatched = len(shape) == 1
    for w, red in itertools.product([None, weight], ["mean", "sum", "none"]):
        xt = torch.tensor(x[None] if unbatched else x, requires_grad=True)
        tt = torch.tensor(labels[None] if unbatched else labels)
        want = F.nll_loss(xt, tt, weight=None if w is None else torch.tensor(w), reduction=red)
        if unbatched and red == "none":
            want = want[0]
        want.sum().backward()
        want_grad = xt.grad.numpy()[0] if unbatched else xt.grad.numpy()
        got, grad = fx.nll_loss(x, labels, weight=w, reduction=red, return_grad=True)
        what = f"weight={w is not None} {red}"
        _assert_close(got, want.detach().numpy(), dtype, what)
        _assert_close(grad, want_grad, dtype, what)
        assert np.asarray(got).dtype == dtype and np.shape(got) == tuple(want.shape)


def test_nll_loss_all_ignored():
    x = np.log(np.full((2, 3), 1 / 3))
    t = np.array([-100, -100])
    loss, grad = fx.nll_loss(x, t, return_grad=True)
    assert np.isnan(loss)
    np.testing.assert_array_equal(grad, 0)  # as torch


@pytest.mark.parametrize("ignore_index", [0, 1, 7])
def test_probabilities_refuse_a_nonnegative_ignore_index(ignore_index):
    """PyTorch: 'ignore_index is not supported for floating point target'
    (RuntimeError); fastxent's ValueError names the argument.  A negative
    one (the default -100) is accepted and changes nothing."""
    x, q = np.array([[1.0, 2.0]]), np.array([[0.5, 0.5]])
    with pytest.raises(ValueError, match="ignore_index"):
        fx.cross_entropy(x, q, ignore_index=ignore_index)
    if torch is not None:
        with pytest.raises(RuntimeError, match="ignore_index"):
            F.cross_entropy(torch.tensor(x), torch.tensor(q), ignore_index=ignore_index)
    assert fx.cross_entropy(x, q, ignore_index=-1) == fx.cross_entropy(x, q)


@needs_torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
@pytest.mark.parametrize("ls", [0.0, 0.2])
def test_mean_over_a_zero_weight_sum(dtype, ls):
    """'mean' divides as PyTorch: by target weights of both signs that sum
    to 0, a nonzero total gives +-inf; a zero total (every weight 0) NaN."""
    x = np.array([[-1.0, 1.0], [2.0, -3.0]], dtype)
    t = np.array([0, 1])
    for w in (np.array([1.0, -1.0], dtype), np.array([-1.0, 1.0], dtype),
              np.array([0.0, 0.0], dtype)):
        want = F.cross_entropy(torch.tensor(x.astype(np.float64)), torch.tensor(t),
                               weight=torch.tensor(w.astype(np.float64)),
                               label_smoothing=ls).item()
        got = fx.cross_entropy(x, t, weight=w, label_smoothing=ls)
        np.testing.assert_array_equal(got, want, err_msg=f"w={w}")
        # the same with the gradient written over the input (the label
        # terms' sum is formed before the kernel overwrites the logits)
        xx = x.copy()
        got, _ = fx.cross_entropy(xx, t, weight=w, label_smoothing=ls, return_grad=True,
                                  grad_out=xx)
        np.testing.assert_array_equal(got, want, err_msg=f"w={w} grad_out=input")
        if ls == 0:
            xl = np.log(fx.softmax(x.astype(np.float64), axis=1)).astype(dtype)
            want = F.nll_loss(torch.tensor(xl.astype(np.float64)), torch.tensor(t),
                              weight=torch.tensor(w.astype(np.float64))).item()
            np.testing.assert_array_equal(fx.nll_loss(xl, t, weight=w), want)


ROWS = np.array([[0.5, -np.inf, 1.0], [np.inf, 1.0, 0.0], [-np.inf] * 3, [np.nan, 1.0, 2.0],
                 [1e300, 1e300 - 1e285, -1e300], [1.0, 2.0, 3.0], [3.0, 3.0, -2.0]])


@pytest.mark.parametrize("rows", [[0], [1], [2], [3], [4], [5], [6], list(range(7))])
def test_special_rows_match_reference(rows):
    from fastxent import reference

    x = ROWS[rows]
    n = len(rows)
    targets = [np.array(t) for t in itertools.product([-100, 0, 1, 2], repeat=n)] if n == 1 \
        else [np.arange(n) % 3, np.full(n, -100)]
    targets.append(np.full((n, 3), 1 / 3) * [1.5, 0.0, 1.5])  # probabilities with a zero
    for t, w, eps, red in itertools.product(targets, [None, np.array([1.0, 0.0, 2.0])],
                                            [0.0, 0.1, 1.0], ["mean", "sum", "none"]):
        what = f"t={t.tolist()} weight={w is not None} eps={eps} {red}"
        got, grad = fx.cross_entropy(x, t, weight=w, label_smoothing=eps, reduction=red,
                                     return_grad=True)
        want, want_grad = reference.cross_entropy(x, t, weight=w, label_smoothing=eps,
                                                         reduction=red, return_grad=True)
        np.testing.assert_allclose(got, want, rtol=1e-13, equal_nan=True, err_msg=what)
        scale = np.nanmax(np.abs(np.where(np.isfinite(want_grad), want_grad, 0)), initial=1.0)
        np.testing.assert_allclose(grad, want_grad, rtol=1e-13, atol=1e-15 * scale,
                                   equal_nan=True, err_msg=what)


def test_no_classes():
    # as torch: no loss per row, NaN for 'mean' of probabilities
    rows = fx.cross_entropy(np.zeros((3, 0)), np.full(3, -100), reduction="none")
    np.testing.assert_array_equal(rows, 0)
    np.testing.assert_array_equal(
        fx.cross_entropy(np.zeros((3, 0)), np.zeros((3, 0)), reduction="none"), 0)
    assert np.isnan(fx.cross_entropy(np.zeros((3, 0)), np.zeros((3, 0))))


def test_float16_gradient_rounded_once():
    # unnormalized exps below float16's normal range must not be stored
    from fastxent import reference

    x = np.array([[0, -14, -15, -16, -12]], np.float16)
    w = np.array([1000, 1, 1, 1, 1], np.float16)
    _, grad = fx.cross_entropy(x, np.array([0]), weight=w, reduction="sum", return_grad=True)
    _, want = reference.cross_entropy(x, np.array([0]), weight=w, reduction="sum",
                                             return_grad=True)
    assert grad.dtype == np.float16
    np.testing.assert_allclose(grad.astype(np.float32), want.astype(np.float32), rtol=2e-3)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_spatial_gradient_at_the_label_rounded_once(dtype):
    """(N, C, d) input (the column kernel): the label's -bw is subtracted
    from p before p is rounded, as the row kernels do.  Subtracted from the
    stored p, a float16 p = 1 - 4.5e-5 stored as 1 gave 0 at the label, and
    float32's 0.9 - 0.9 of a smoothed single class -2.4e-8, not 0."""
    x = np.zeros((1, 2, 2), dtype)
    x[0, :, 0] = [0, 10]
    t = np.array([[1, 0]])
    _, g = fx.cross_entropy(x, t, reduction="sum", return_grad=True)
    _, g2 = fx.cross_entropy(np.ascontiguousarray(np.moveaxis(x, 1, -1)).reshape(-1, 2),
                             t.reshape(-1), reduction="sum", return_grad=True)
    p = 1 / (1 + np.exp(-10.0))
    np.testing.assert_allclose(g[0, :, 0].astype(np.float64), [1 - p, p - 1], rtol=2e-3)
    np.testing.assert_allclose(g[0, :, 0], g2[0], rtol=2e-3)
    x = np.zeros((3, 1, 4), dtype)
    _, g = fx.cross_entropy(x, np.zeros((3, 4), np.int64), reduction="sum",
                            label_smoothing=0.1, return_grad=True)
    np.testing.assert_array_equal(g, 0)
    rng = np.random.default_rng(5)
    for ls in (0.0, 0.1):
        x = (rng.standard_normal((17, 7, 3)) * 4).astype(dtype)
        t = rng.integers(0, 7, (17, 3))
        t[0, 0] = -100
        w = (rng.random(7) + 0.5).astype(dtype)
        _, got = fx.cross_entropy(x, t, weight=w, label_smoothing=ls, return_grad=True)
        _, want = fx.reference.cross_entropy(x.astype(np.float64), t, weight=w.astype(np.float64),
                                             label_smoothing=ls, return_grad=True)
        # one rounding of the exact gradient to the dtype
        tol = {np.float16: 2 ** -11, np.float32: 2 ** -24, np.float64: 1e-15}[dtype]
        np.testing.assert_allclose(got.astype(np.float64), want,
                                   atol=tol * np.abs(want).max(), rtol=2 * tol)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("C", [100, 2049, 40000], ids=lambda c: f"C{c}")
def test_float16_gradient_of_long_rows(C, weighted):
    # labels without smoothing: the rows keep float32 exps for the
    # gradient, and the split path (fewer rows than threads) forms them again;
    # every thread count, gradient layout and aliasing gives the same bits,
    # within half a float16 ulp or so of the exact gradient, and in the AVX2
    # build float32's gradient of the same values rounded once
    rng = np.random.default_rng(21)
    for n in (1, 2, 9):
        x = (rng.standard_normal((n, C)) * 4).astype(np.float16)
        t = rng.integers(0, C, n)
        w = (rng.random(C) + 0.5).astype(np.float16) if weighted else None
        if n == 9:
            x[1, 3] = -np.inf
            x[2] = -np.inf
            x[3, 5] = np.nan
            x[4, 0] = np.inf
            t[5] = -100
        kw = {"reduction": "none", "weight": w}
        want_loss, want = fx.cross_entropy(x, t, return_grad=True, n_threads=1, **kw)
        assert want.dtype == np.float16
        np.testing.assert_array_equal(want_loss, fx.cross_entropy(x, t, n_threads=1, **kw))
        for nt in (1, 2):
            loss, grad = fx.cross_entropy(x, t, return_grad=True, n_threads=nt, **kw)
            np.testing.assert_array_equal(loss, want_loss)
            np.testing.assert_array_equal(grad, want, err_msg=f"{n} rows, {nt} threads")
            out = np.full((n, C + 3), 7, np.float16)
            fx.cross_entropy(x, t, return_grad=True, grad_out=out[:, 2:-1], n_threads=nt, **kw)
            np.testing.assert_array_equal(out[:, 2:-1], want, err_msg=f"strided {n}, {nt}")
            assert (out[:, :2] == 7).all() and (out[:, -1] == 7).all()
            y = x.copy()
            fx.cross_entropy(y, t, return_grad=True, grad_out=y, n_threads=nt, **kw)
            np.testing.assert_array_equal(y, want, err_msg=f"in place {n}, {nt}")
        if fx.get_config()["cpu_path"] in ("avx2", "avx512"):
            with np.errstate(all="ignore"):
                _, g32 = fx.cross_entropy(x.astype(np.float32), t, reduction="none",
                                          weight=None if w is None else w.astype(np.float32),
                                          return_grad=True)
            np.testing.assert_array_equal(want, g32.astype(np.float16))
        ok = [r for r in range(n) if np.isfinite(x[r].astype(np.float32)).all() and t[r] >= 0]
        xd = x[ok].astype(np.float64)
        p = np.exp(xd - xd.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        p[np.arange(len(ok)), t[ok]] -= 1
        if weighted:
            p *= w[t[ok]].astype(np.float64)[:, None]
        ulp = np.spacing(np.maximum(np.abs(p), 2.0 ** -14).astype(np.float16)).astype(float)
        assert np.max(np.abs(want[ok] - p) / ulp) <= 0.51


def test_huge_unsigned_label_is_named():
    x = np.zeros((2, 3))
    with pytest.raises(IndexError, match=str(2**63 + 5)):
        fx.cross_entropy(x, np.array([0, 2**63 + 5], np.uint64))


@pytest.mark.parametrize("shape", [(40, 7), (100, 16), (70, 1), (130, 3)],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_short_rows_match_torch(shape, dtype):
    # rows of at most 16 classes take the transposed-block kernel
    rng = np.random.default_rng(sum(shape) + 11)
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    labels = rng.integers(0, shape[1], shape[0])
    labels[::7] = -100
    weight = (rng.random(shape[1]) + 0.1).astype(dtype)
    for w, red, eps in itertools.product([None, weight], ["mean", "sum", "none"], [0.0, 0.2]):
        what = f"weight={w is not None} {red} eps={eps}"
        want, want_grad = _torch_ce(x, labels, w, reduction=red, label_smoothing=eps)
        got, grad = fx.cross_entropy(x, labels, weight=w, reduction=red, label_smoothing=eps,
                                     return_grad=True)
        _assert_close(got, want, dtype, what)
        _assert_close(grad, want_grad, dtype, what + " (grad)")


@pytest.mark.parametrize("ignore_index", [-100, 0, 6])
@pytest.mark.parametrize("C", [1, 3, 10])
def test_short_rows_label_gather(ignore_index, C):
    # rows of up to 16 classes gather their labels' logits four rows at a
    # time from contiguous labels (blocks of 64 rows, a last block of 2
    # rows here): an ignore_index that is a class, strided labels (the
    # row-by-row loop) and the float32 values against PyTorch's
    rng = np.random.default_rng(C + ignore_index % 7)
    R = 64 * 5 + 2
    x = (rng.standard_normal((R, C)) * 4).astype(np.float32)
    both = rng.integers(0, C, 2 * R)
    both[1:40:3] = ignore_index
    t = both[::2]
    w = (rng.random(C) + 0.1).astype(np.float32)
    for weight in (None, w):
        want, want_grad = _torch_ce(x, t, weight, ignore_index=ignore_index, reduction="none")
        got, grad = fx.cross_entropy(x, t, weight=weight, ignore_index=ignore_index,
                                     reduction="none", return_grad=True)
        _assert_close(got, want, np.float32, f"weight={weight is not None}")
        _assert_close(grad, want_grad, np.float32, f"weight={weight is not None} (grad)")
        assert (got[t == ignore_index] == 0).all()
        # the same bits from contiguous labels and on two threads
        tc = np.ascontiguousarray(t)
        for nt in (1, 2):
            again, again_grad = fx.cross_entropy(x, tc, weight=weight, ignore_index=ignore_index,
                                                 reduction="none", return_grad=True,
                                                 n_threads=nt)
            assert np.array_equal(again, got) and np.array_equal(again_grad, grad)


def _check_special_threads_aliasing(x, t, kw):
    """fastxent against the reference, bitwise the same for 1-3 threads and
    with the gradient written over the input."""
    from fastxent import reference

    # below this size every kernel runs on one thread whatever n_threads asks
    assert x.size >= 2 * MIN_WORK_PER_THREAD

    want, want_grad = reference.cross_entropy(x, t, return_grad=True, **kw)
    got, grad = fx.cross_entropy(x, t, return_grad=True, **kw)
    np.testing.assert_allclose(got, want, rtol=1e-13, equal_nan=True)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-12, atol=1e-16, equal_nan=True)
    for n in (1, 2, 3):
        other = fx.cross_entropy(x, t, return_grad=True, n_threads=n, **kw)
        assert np.array_equal(other[0], got, equal_nan=True)
        assert np.array_equal(other[1], grad, equal_nan=True)
    y = x.copy()
    again = fx.cross_entropy(y, t, return_grad=True, grad_out=y, **kw)
    assert np.array_equal(again[0], got, equal_nan=True)
    assert np.array_equal(y, grad, equal_nan=True)


def test_short_rows_special_values_threads_and_aliasing():
    rng = np.random.default_rng(12)
    x = rng.standard_normal((200, 5))
    x[3, 2] = np.inf
    x[5] = -np.inf
    x[7, 1] = np.nan
    x[9, 4] = -np.inf
    t = rng.integers(0, 5, 200)
    t[9] = 4                      # the target at -inf: +inf
    t[11] = -100
    w = np.array([1.0, 0.0, 2.0, 1.0, 0.5])
    # repeated to enough rows for several threads
    x, t = np.tile(x, (70, 1)), np.tile(t, 70)
    for kw in ({}, {"weight": w, "label_smoothing": 0.1}, {"reduction": "none"}):
        _check_special_threads_aliasing(x, t, kw)


def test_float16_short_rows():
    rng = np.random.default_rng(13)
    x = rng.standard_normal((64, 9)).astype(np.float16)
    t = rng.integers(0, 9, 64)
    got, grad = fx.cross_entropy(x, t, label_smoothing=0.1, return_grad=True)
    want, want_grad = _torch_ce(x.astype(np.float32), t, label_smoothing=0.1)
    assert got.dtype == np.float16 and grad.dtype == np.float16
    np.testing.assert_allclose(float(got), want, rtol=1e-3)
    np.testing.assert_allclose(grad.astype(np.float32), want_grad, atol=1e-4)


def test_class_axis_1_layout_special_values_threads_and_aliasing():
    # (N, C, d1, d2): positions side by side, classes strided
    rng = np.random.default_rng(14)
    x = rng.standard_normal((3, 5, 9, 10))
    x[0, 2, 1, 1] = np.inf
    x[1, :, 2, 2] = -np.inf
    x[2, 3, 4, 4] = np.nan
    x[0, 1, 5, 5] = -np.inf
    t = rng.integers(0, 5, (3, 9, 10))
    t[0, 5, 5] = 1                 # the target at -inf: +inf
    t[2, 0, :3] = -100
    w = np.array([1.0, 0.0, 2.0, 1.0, 0.5])
    # repeated to enough positions for several threads
    x, t = np.tile(x, (1, 1, 8, 7)), np.tile(t, (1, 8, 7))
    for kw in ({}, {"weight": w, "label_smoothing": 0.1}, {"reduction": "none"},
               {"reduction": "sum", "label_smoothing": 0.3}):
        _check_special_threads_aliasing(x, t, kw)


@pytest.mark.parametrize("C", [3, 300], ids=["short", "long"])
@pytest.mark.parametrize("big", [1e16, 1e300])
def test_gradient_at_large_logits(C, big):
    # lse - max is small next to a large max: the softmax must keep it
    rng = np.random.default_rng(15)
    x = np.concatenate([[big, big - 2.0 * (big < 1e17)], rng.standard_normal(C - 2)])[None]
    for target in (np.array([1]), np.full((1, C), 1.0 / C)):
        got, grad = fx.cross_entropy(x, target, return_grad=True)
        want, want_grad = _torch_ce(x, target)
        np.testing.assert_allclose(got, want, rtol=1e-12)
        np.testing.assert_allclose(grad, want_grad, rtol=1e-12, atol=1e-300)
    x16 = np.array([[60000.0, 59968.0, 0.0]], np.float16)
    got16, grad16 = fx.cross_entropy(x16, np.array([1]), return_grad=True)
    _, want16 = _torch_ce(x16.astype(np.float64), np.array([1]))
    np.testing.assert_allclose(grad16.astype(np.float64), want16, rtol=2e-3, atol=1e-7)


@pytest.mark.parametrize("C", [3, 300], ids=["short", "long"])
def test_infinite_coefficient_at_the_maximum(C):
    # an infinite target probability or class weight on the largest logit:
    # inf * (lse - max) with lse > max is +inf, as in PyTorch
    x = np.zeros((1, C))
    x[0, :3] = [0.5, -0.25, 1.0]
    q = np.zeros((1, C))
    q[0, 1:3] = [0.25, np.inf]
    w = np.ones(C)
    w[2] = np.inf
    # (an infinite weight at the target makes the 'mean' inf / inf = NaN)
    cases = [(q, {}), (np.array([2]), {"weight": w, "label_smoothing": 0.1, "reduction": "sum"}),
             (np.array([0]), {"weight": w, "label_smoothing": 0.1}),
             (np.full((1, C), 1.0 / C), {"weight": w})]
    for target, kw in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want, _ = _torch_ce(x, target, **kw)
        got = fx.cross_entropy(x, target, **kw)
        assert want == np.inf
        assert got == np.inf, (target, kw)


@needs_torch
def test_nll_loss_zero_weight_against_minus_inf():
    # the documented limit (README "Differences"), as cross_entropy; PyTorch
    # computes 0 * inf = NaN
    from fastxent import reference

    x, t, w = np.array([[-np.inf, 0.0], [-0.5, -1.0]]), np.array([0, 1]), np.array([0.0, 1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch_sum = F.nll_loss(torch.tensor(x), torch.tensor(t), weight=torch.tensor(w),
                               reduction="sum")
    assert np.isnan(torch_sum.item())
    for reduction in ("sum", "mean", "none"):
        got = fx.nll_loss(x, t, weight=w, reduction=reduction)
        want = reference.nll_loss(x, t, weight=w, reduction=reduction)
        assert not np.isnan(got).any()
        np.testing.assert_array_equal(got, want)
    assert fx.nll_loss(x, t, weight=w, reduction="sum") == 1.0
    assert fx.cross_entropy(x[:1], t[:1], weight=w, reduction="sum") == 0.0
    # NaN data still give NaN
    assert np.isnan(fx.nll_loss(np.array([[np.nan, 0.0]]), [0], weight=w, reduction="sum"))


def test_packed_record_field_labels():
    rec = np.zeros(5, [("pad", "u1"), ("v", "<i8")])
    rec["v"] = [0, 1, 2, 0, 1]
    x = np.random.default_rng(16).standard_normal((5, 3))
    labels = np.ascontiguousarray(rec["v"])
    for f in (fx.cross_entropy, fx.nll_loss):
        got, grad = f(x, rec["v"], return_grad=True, reduction="none")
        want, want_grad = f(x, labels, return_grad=True, reduction="none")
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(grad, want_grad)


@needs_torch
@pytest.mark.parametrize("value", [1e5, 1e-6, 3.0001])
def test_float16_keeps_wider_class_weights(value):
    # float16 computes in float32 with the weights as given (PyTorch refuses
    # a float32 weight for float16 input): the float32 result rounded once
    from fastxent import reference

    x = np.array([[1.0, 2.0, -1.0], [0.5, 0.25, 3.0]], np.float16)
    w = np.array([value, 1.0, 2.0])
    for t in (np.array([0, 2]), np.array([[0.5, 0.5, 0.0], [0.25, 0.0, 0.75]], np.float16)):
        for f, kw in ((fx.cross_entropy, {"label_smoothing": 0.1}), (fx.cross_entropy, {}),
                      (fx.nll_loss, {})):
            if f is fx.nll_loss and t.ndim == 2:
                continue
            for reduction in ("none", "sum", "mean"):
                got, grad = f(x, t, weight=w, reduction=reduction, return_grad=True, **kw)
                want32, want_grad = (_torch_ce(x.astype(np.float32), t.astype(
                    np.float32) if t.ndim == 2 else t, weight=w.astype(np.float32),
                    reduction=reduction, **kw) if f is fx.cross_entropy else
                    (F.nll_loss(torch.tensor(x.astype(np.float32)), torch.tensor(t),
                                weight=torch.tensor(w.astype(np.float32)),
                                reduction=reduction).numpy(), None))
                assert got.dtype == np.float16 and grad.dtype == np.float16
                with np.errstate(over="ignore"):   # a row of 1e5 overflows float16
                    want16 = np.asarray(want32).astype(np.float16).astype(np.float64)
                np.testing.assert_allclose(got.astype(np.float64), want16, rtol=2e-3, atol=1e-7)
                if want_grad is not None:
                    with np.errstate(over="ignore"):
                        want_grad = want_grad.astype(np.float16).astype(np.float64)
                    np.testing.assert_allclose(grad.astype(np.float64), want_grad, rtol=2e-3,
                                               atol=1e-6)
                want = getattr(reference, f.__name__)(x, t, weight=w,
                                                      reduction=reduction, **kw)
                np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64),
                                           rtol=1e-3)


@pytest.mark.parametrize("C", [2, 300], ids=["short", "long"])
def test_float32_logits_far_apart(C):
    # max - x = 6e38 overflows float32 where the loss (about 3e38) does not
    x = np.full((1, C), -3e38, np.float32)
    x[0, -1] = 3e38
    q = np.zeros((1, C), np.float32)
    q[0, 0] = q[0, -1] = 0.5
    want = _torch_ce(x.astype(np.float64), q.astype(np.float64))[0]
    got = fx.cross_entropy(x, q)
    assert got.dtype == np.float32 and np.isfinite(got)
    np.testing.assert_allclose(got, want, rtol=2e-6)
    labels = np.array([C - 1])
    got = fx.cross_entropy(x, labels, label_smoothing=1.0 / C)
    want = _torch_ce(x.astype(np.float64), labels, label_smoothing=1.0 / C)[0]
    np.testing.assert_allclose(got, want, rtol=2e-6)


@needs_torch
def test_nll_loss_float32_products_beyond_float32():
    # -w[y] x[y] overflows float32 where the mean is finite: computed in
    # float64 as the reference (and PyTorch's float64)
    from fastxent import reference

    x = np.array([[-3e38, 0.0], [0.0, -3e38], [-1.0, 0.0]], np.float32)
    t = np.array([0, 1, 0])
    w = np.array([4, 4])
    got = fx.nll_loss(x, t, weight=w)
    want = F.nll_loss(torch.tensor(x, dtype=torch.float64), torch.tensor(t),
                      weight=torch.tensor(w, dtype=torch.float64)).item()
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=2e-6)
    assert got == reference.nll_loss(x, t, weight=w)


@pytest.mark.parametrize("x, q", [
    ([[709.0, 1e10]], [[np.inf, 0.75]]),                      # lse = max: inf below it
    ([[800.0, 0.0]], [[0.0, np.inf]]),
    ([[-104.0, -120.0, 1.4e-45]], [[1.0, np.inf, 3e-4]]),     # float32 exps underflow
    ([[0.5]], [[np.inf]]),                                    # inf at the max: NaN
    ([[1.0, 1.0]], [[np.inf, 0.5]]),
    ([[3.0, 1.0]], [[np.inf, np.inf]]),
])
@pytest.mark.parametrize("dtype", DTYPES)
def test_probabilities_infinite_coefficient_where_lse_is_the_max(x, q, dtype):
    # sum_c q_c (lse - x_c) with lse = max: an infinite q_c below the max is
    # +inf; only one at the max (lse - x_c = 0) makes PyTorch's 0 * inf = NaN
    from fastxent import reference

    x, q = np.array(x, dtype), np.array(q, dtype)
    want_loss, want_grad = _torch_ce(x, q, reduction="none")
    for reduction in ("none", "sum", "mean"):
        got, grad = fx.cross_entropy(x, q, reduction=reduction, return_grad=True)
        want = {"none": want_loss, "sum": want_loss.sum(), "mean": want_loss.mean()}[reduction]
        np.testing.assert_array_equal(got, want)
        if reduction == "none":
            np.testing.assert_array_equal(np.isnan(grad), np.isnan(want_grad))
            np.testing.assert_array_equal(np.isinf(grad), np.isinf(want_grad))
        ref_loss, ref_grad = reference.cross_entropy(x, q, reduction=reduction,
                                                     return_grad=True)
        np.testing.assert_array_equal(got, ref_loss)
        np.testing.assert_array_equal(np.isnan(grad), np.isnan(ref_grad))


@needs_torch
def test_probabilities_float32_coefficient_beyond_float32_at_the_max():
    # w q = 6.4e49 overflows float32 at the only class, where lse - x = 0:
    # the float64 product (the reference's, and PyTorch's float64) gives 0,
    # not inf * 0; also with the gradient written over the input
    from fastxent import reference

    x = np.array([0.001257302239537239], np.float32)
    q = np.array([1e30], np.float32)
    w = np.array([6.3696168732145435e19])
    want = F.cross_entropy(torch.tensor(x, dtype=torch.float64), torch.tensor(q, dtype=torch.float64),
                           weight=torch.tensor(w)).item()
    assert want == 0.0
    assert fx.cross_entropy(x, q, weight=w) == 0.0
    assert reference.cross_entropy(x, q, weight=w) == 0.0
    x2 = np.array([[0.5]], np.float32)
    loss, grad = fx.cross_entropy(x2, np.array([[1e30]], np.float32), weight=w,
                                  reduction="sum", return_grad=True, grad_out=x2)
    assert loss == 0.0 and grad is x2


@pytest.mark.parametrize("dtype", DTYPES)
def test_probabilities_infinite_coefficient_at_the_max_with_gradient_over_input(dtype):
    # the exps written over x still tell the classes at the max apart
    x = np.array([[0.5, 0.5 - 1e3]], dtype)
    q = np.array([[np.inf, 0.5]], dtype)
    want = _torch_ce(x.copy(), q, reduction="sum")[0]
    loss, grad = fx.cross_entropy(x, q, reduction="sum", return_grad=True, grad_out=x)
    assert grad is x
    assert np.isnan(want) and np.isnan(loss)


@needs_torch
@pytest.mark.parametrize("x, q", [
    ([264.45562744140625, -313.9228210449219], [np.inf, 0.0]),   # s = 1e-251
    ([-17.0, 0.0], [0.5, np.inf]),                  # s = 4e-8: float32 only
    ([-40.0, 0.0], [0.5, np.inf]),                  # s = 4e-18: float64 too
    ([-10.0, 0.0], [0.5, np.inf]),                  # s = 4.5e-5: +inf
    ([0.0, 0.0, -800.0], [np.inf, 0.0, 0.0]),       # two maxima: log 2, +inf
])
@pytest.mark.parametrize("dtype", DTYPES)
def test_probabilities_infinite_coefficient_where_the_max_log_probability_rounds_to_zero(
        x, q, dtype):
    # the log-probability at a single max, -log(1 + s), is 0 where 1 + s
    # rounds to 1 in PyTorch's precision: an infinite target probability
    # there is PyTorch's 0 * inf = NaN, though the exact -s is not 0; where
    # it does not round away, the loss is +inf
    from fastxent import reference

    x, q = np.array([x], dtype), np.array([q], dtype)
    want, want_grad = _torch_ce(x, q, reduction="none")
    for f in (fx.cross_entropy, reference.cross_entropy):
        loss, grad = f(x, q, reduction="none", return_grad=True)
        np.testing.assert_array_equal(loss, want)
        np.testing.assert_array_equal(np.isnan(grad), np.isnan(want_grad))


@needs_torch
@pytest.mark.parametrize("dtype", DTYPES)
def test_infinite_class_weight_where_the_max_log_probability_rounds_to_zero(dtype):
    # as for probabilities: an infinite weight at the target class, a single
    # max whose log-probability rounds to 0, is NaN; +inf where it does not
    # (short rows, long rows and the (N, C, d) layout take different paths)
    from fastxent import reference

    w = np.array([np.inf, 1.0] + [1.0] * 298)
    for C in (2, 300):
        x = np.full((3, C), -200.0, dtype)
        x[:, 0] = 0.0
        x[1, 1] = -10.0
        x[2, 1] = -17.0
        t = np.zeros(3, np.int64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = _torch_ce(x, t, weight=w[:C].astype(dtype), reduction="none")[0]
        for smoothing in (0.0, 0.1):
            for xx, tt in ((x, t), (np.ascontiguousarray(x[..., None].repeat(2, -1)),
                                    t[:, None].repeat(2, -1))):
                kw = dict(weight=w[:C], reduction="none", label_smoothing=smoothing)
                got = fx.cross_entropy(xx, tt, **kw)
                ref = reference.cross_entropy(xx, tt, **kw)
                expect = want if tt.ndim == 1 else want[:, None].repeat(2, -1)
                np.testing.assert_array_equal(np.isnan(got), np.isnan(expect), err_msg=str(C))
                np.testing.assert_array_equal(np.isinf(got), np.isinf(expect), err_msg=str(C))
                np.testing.assert_array_equal(np.isnan(ref), np.isnan(expect))
                np.testing.assert_array_equal(np.isinf(ref), np.isinf(expect))


@needs_torch
def test_probabilities_float16_gradient_cancelling_beyond_its_range():
    # float16 logits with float32 probabilities compute in float32: p A - a
    # at the max (p = 1 - 1.5e-8, a = 9.3e29) is -1.4e22, -inf in float16
    # (PyTorch's float64 gradient, rounded); float32 arithmetic cancelled it
    # to 0
    from fastxent import reference

    x = np.array([[-18.0, 5.960464477539063e-08]], np.float16)
    q = np.array([[0.0, 9.320596684688074e+29]], np.float32)
    _, want_grad = _torch_ce(x.astype(np.float64), q.astype(np.float64), reduction="sum")
    with np.errstate(over="ignore"):
        want_grad = want_grad.astype(np.float16)
    assert (np.isinf(want_grad) == [True, True]).all()
    for f in (fx.cross_entropy, reference.cross_entropy):
        _, grad = f(x, q, reduction="sum", return_grad=True)
        np.testing.assert_array_equal(grad, want_grad)


@needs_torch
def test_probabilities_float32_coefficients_beyond_float32_below_the_max():
    # w q = 3e48 overflows float32 at the max class; the loss (100) and the
    # gradient (p A - a: 0 and -0.5) do not: formed in float64, as PyTorch's
    # float64 (float32 gave a NaN gradient)
    from fastxent import reference

    x = np.array([[0.0, -200.0], [-200.0, 0.0]], np.float32)
    q = np.array([[3e38, 0.5], [0.5, 3e38]], np.float32)
    w = np.array([1e10, 1.0])
    want, want_grad = _torch_ce(x.astype(np.float64), q.astype(np.float64), weight=w,
                                reduction="none")
    for f in (fx.cross_entropy, reference.cross_entropy):
        loss, grad = f(x, q, weight=w, reduction="none", return_grad=True)
        np.testing.assert_allclose(loss, want, rtol=2e-6)
        assert np.isfinite(grad).all()
        np.testing.assert_allclose(grad, want_grad, rtol=2e-6, atol=1e-30)


@needs_torch
def test_probabilities_float16_gradient_where_an_exp_underflows_float32():
    # an infinite sum of coefficients meets p = exp(-108.9), 0 in float32
    # (where float16 is computed): 0 * inf = NaN, as PyTorch's float16
    from fastxent import reference

    x = np.array([[39.125, -69.75, 0.0]], np.float16)
    q = np.array([[np.inf, 0.857, 0.5]], np.float16)
    want, want_grad = _torch_ce(x, q, reduction="sum")
    for f in (fx.cross_entropy, reference.cross_entropy):
        loss, grad = f(x, q, reduction="sum", return_grad=True)
        assert np.isnan(loss) and np.isnan(want)
        np.testing.assert_array_equal(grad, want_grad)


@needs_torch
@pytest.mark.parametrize("C", [4, 300], ids=["short", "long"])
def test_probabilities_float32_row_loss_beyond_float32_under_mean(C):
    # a row's loss of 1.1e39 is inf in float32, the mean over four rows is
    # not: the row is summed in float64 (float32's partial sums overflowed)
    from fastxent import reference

    x = np.zeros((4, C), np.float32)
    q = np.zeros((4, C), np.float32)
    x[0, :4] = [1e-38, -3e38, 3.4e38, 20.0]
    q[0, :4] = [0.667889416217804, 0.9584136605262756, 0.9257145524024963, 0.7482485175132751]
    want = _torch_ce(x.astype(np.float64), q.astype(np.float64), reduction="none")[0]
    assert np.isfinite(want.mean()) and want.mean() < np.finfo(np.float32).max
    for f in (fx.cross_entropy, reference.cross_entropy):
        got = f(x, q)
        assert got.dtype == np.float32 and np.isfinite(got)
        np.testing.assert_allclose(got, want.mean(), rtol=2e-6)
        with np.errstate(over="ignore"):   # the float32 sum rounds to inf
            assert f(x, q, reduction="sum") == np.inf


@pytest.mark.parametrize("shape", [(40, 5), (300, 700), (6, 5, 70), (5,)],
                         ids=["short rows", "long rows", "columns", "unbatched"])
@pytest.mark.parametrize("where", ["first", "middle", "last"])
@pytest.mark.parametrize("value", [-1, "C", 2**40])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_bad_label_is_found_before_anything_is_written(shape, where, value, n_threads):
    # the kernel checks every label in one pass before it reads the logits:
    # the error names the first bad label, and a caller's grad_out keeps its
    # contents, on each of the kernel's paths and on several threads
    rng = np.random.default_rng(len(shape))
    x = rng.standard_normal(shape)
    C = shape[1] if len(shape) > 1 else shape[0]
    rows = (shape[0],) + shape[2:] if len(shape) > 1 else ()
    t = rng.integers(0, C, rows)
    t.flat[rng.integers(0, t.size, max(1, t.size // 4))] = -100   # ignored rows pass
    bad = C if value == "C" else value
    k = {"first": 0, "middle": t.size // 2, "last": t.size - 1}[where]
    t.flat[k] = bad
    if k != t.size - 1:   # a later bad label is not the one named
        t.flat[-1] = C + 7
    for reduction in ("mean", "sum", "none"):
        g = np.full_like(x, 7.0)
        with pytest.raises(IndexError, match=rf"Target {bad} is out of bounds"):
            fx.cross_entropy(x, t, reduction=reduction, weight=rng.random(C), return_grad=True,
                             grad_out=g, n_threads=n_threads)
        assert (g == 7.0).all()
    # the same call without the bad labels
    from fastxent import reference

    t.flat[k] = t.flat[-1] = -100
    w = rng.random(C)
    np.testing.assert_allclose(fx.cross_entropy(x, t, weight=w, n_threads=n_threads),
                               reference.cross_entropy(x, t, weight=w), rtol=1e-12)


@pytest.mark.parametrize("shape", [(64, 5), (40, 300), (6, 5, 70)])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_weighted_mean_denominator_counts_only_named_classes(shape, n_threads):
    # the kernel sums w[y] over the counted rows in row order: ignored rows
    # and classes no target names add nothing, not even an infinite weight
    rng = np.random.default_rng(shape[0])
    C = shape[1]
    x = rng.standard_normal(shape)
    t = rng.integers(0, C - 1, (shape[0],) + shape[2:])
    t.flat[::5] = -100
    w = rng.random(C) + 0.5
    w[C - 1] = np.inf   # never a target
    loss, grad = fx.cross_entropy(x, t, weight=w, return_grad=True, n_threads=n_threads)
    kept = t != -100
    denom = w[t[kept]].sum()
    rows = fx.cross_entropy(x, t, weight=w, reduction="none")
    np.testing.assert_allclose(loss, rows.sum() / denom, rtol=1e-13)
    _, grad_sum = fx.cross_entropy(x, t, weight=w, reduction="sum", return_grad=True)
    np.testing.assert_allclose(grad, grad_sum / denom, rtol=1e-13, atol=1e-300)
    # the same bits on one thread
    one, grad_one = fx.cross_entropy(x, t, weight=w, return_grad=True, n_threads=1)
    assert one == loss and np.array_equal(grad_one, grad)
    # all ignored: NaN mean, gradient 0 of ignored rows
    loss, grad = fx.cross_entropy(x, np.full_like(t, -100), weight=w, return_grad=True)
    assert np.isnan(loss) and (grad == 0).all()


def test_weighted_mean_denominator_of_many_rows_keeps_its_digits():
    # the summed target weight of two million rows, in blocks: a row-order
    # sum loses about 1e-11 here; zero logits lose log 2 exactly per row, so
    # the mean is log 2 whatever the weights
    t = np.zeros(2_000_000, np.int64)
    t[1::2] = 1
    x = np.zeros((t.size, 2))
    w = np.array([0.1, 0.7])
    got = fx.cross_entropy(x, t, weight=w)
    assert got == pytest.approx(np.log(2.0), rel=1e-14, abs=0)
    # weights near the largest double: the sum of the counted targets' weights
    # overflows only where the true sum does
    t = np.array([0, 1, 0])
    w = np.array([1e308, -1e308])
    assert np.isfinite(fx.cross_entropy(np.zeros((3, 2)), t, weight=w))


def test_no_classes_every_target_ignored_or_an_error():
    x = np.zeros((3, 0))
    assert np.isnan(fx.cross_entropy(x, np.full(3, -100)))
    with pytest.raises(IndexError, match="Target 0 is out of bounds"):
        fx.cross_entropy(x, np.array([-100, 0, 1]))


@pytest.mark.parametrize("C", [0, 3])
@pytest.mark.parametrize("f", [fx.cross_entropy, fx.nll_loss], ids=["cross_entropy", "nll_loss"])
def test_byte_swapped_uint64_label_beyond_int64(f, C):
    # 2**64 - 1 is out of range in any byte order; it must not wrap to -1,
    # the ignore_index (which gave a NaN mean over no classes)
    from fastxent import reference

    for t in (np.array(2**64 - 1, ">u8"), np.array([2**64 - 1], ">u8")):
        x = np.zeros((C,) if t.ndim == 0 else (1, C))
        with pytest.raises(IndexError):
            f(x, t, ignore_index=-1)
        with pytest.raises(IndexError):
            getattr(reference, f.__name__)(x, t, ignore_index=-1)


@needs_torch
@pytest.mark.parametrize("x, q", [
    ([-745.0, -5e-324, 5e-324, -800.0, -745.0, -5e-324],
     [1.0, 0.9136907627073889, 0.0, np.inf, 0.3818147799662388, 0.3255]),
    ([-745.0, -5e-324, -1.0], [-0.5, 0.5861230648127328, np.inf]),
])
@pytest.mark.parametrize("dtype", DTYPES)
def test_probabilities_gradient_where_softmax_underflows_under_an_infinite_sum(x, q, dtype):
    # sum(q) = inf: softmax * inf is inf where softmax is positive and
    # 0 * inf = NaN where it underflows (exp(-745 - log 3) in float64, as
    # PyTorch forms it), although exp(x - max) = exp(-745) alone does not;
    # a subnormal exp(x - max) times exp(-(lse - max)) must not round twice
    from fastxent import reference

    x, q = np.array([x], dtype), np.array([q], dtype)
    want_loss, want_grad = _torch_ce(x, q, reduction="sum")
    for f in (fx.cross_entropy, reference.cross_entropy):
        loss, grad = f(x, q, reduction="sum", return_grad=True)
        np.testing.assert_array_equal(loss, want_loss)
        np.testing.assert_array_equal(grad, want_grad)


@needs_torch
@pytest.mark.parametrize("layout", ["rows", "short rows", "positions"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.25])
def test_labels_gradient_where_softmax_underflows_under_an_infinite_weight(
        layout, label_smoothing):
    # w_y = inf: the gradient is inf * softmax, NaN (0 * inf, as PyTorch)
    # where softmax underflows -- exp(-745 - log 2) -- although exp(x - max)
    # = exp(-745) alone does not; the short-row and position kernels (vector
    # across rows) hand such rows to the general one
    from fastxent import reference

    row = np.array([-1e10, -745.0, 1e-300, 5e-324, -1e10])
    w = np.full(5, np.inf)
    if layout == "rows":
        x, t = np.tile(row, (8, 1)), np.full(8, 3)
    elif layout == "short rows":
        x, t = np.stack([row, np.arange(5.0), row]), np.array([3, 1, 3])
        w = np.array([1.0, 2.0, 3.0, np.inf, 5.0])
    else:
        x, t = np.ascontiguousarray(np.stack([row, row, np.arange(5.0)]).T)[None], np.array([[3, 3, 1]])
        w = np.array([1.0, 2.0, 3.0, np.inf, 5.0])
    kw = dict(weight=w, reduction="sum", label_smoothing=label_smoothing)
    want_loss, want_grad = _torch_ce(x, t, **kw)
    for f in (fx.cross_entropy, reference.cross_entropy):
        loss, grad = f(x, t, return_grad=True, **kw)
        # NaN and inf at the same places, the finite row to a few ulp
        _assert_close(loss, want_loss, np.float64, f.__module__)
        _assert_close(grad, want_grad, np.float64, f.__module__)


# long rows: fewer rows than threads cut into chunks of 16384 classes, the
# chunks shared among the threads (src/losses.pxi, _split_xent)
_SPLIT_C = 2 * 16384 + 2345


def _long_rows(dtype, rows, rng):
    x = (rng.standard_normal((rows, _SPLIT_C)) * 2).astype(dtype)
    # the maximum rises in later chunks, a run of -inf spans a chunk edge
    x[0, 16384:32768] += 4
    x[0, 32768:] += 8
    x[0, 16000:17000] = -np.inf
    if rows > 1:
        x[1, 30000] = np.nan   # a row without a distribution: NaN loss and gradient
    if rows > 2:
        x[2, :] = -np.inf      # only -inf: NaN too
        x[2, 5] = np.inf if dtype == np.float64 else -np.inf
    return x


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
@pytest.mark.parametrize("rows", [1, 3])
@pytest.mark.parametrize("kw", [{}, {"weight": True}, {"label_smoothing": 0.1},
                                {"weight": True, "label_smoothing": 0.3}],
                         ids=["plain", "weights", "smoothing", "both"])
@pytest.mark.parametrize("target", ["labels", "probabilities"])
def test_long_rows_share_their_chunks_among_threads(dtype, rows, kw, target):
    # the bits of loss and gradient do not depend on the thread count (the
    # single-thread row runs the same chunks in the same order), in place or
    # not, and they match the reference
    from fastxent import reference

    rng = np.random.default_rng(rows)
    x = _long_rows(dtype, rows, rng)
    kw = dict(kw)
    if kw.pop("weight", False):
        kw["weight"] = (rng.random(_SPLIT_C) + 0.5).astype(dtype)
    if target == "labels":
        t = rng.integers(0, _SPLIT_C, rows)
        t[0] = 16500   # -inf at the first row's target: +inf
        if rows > 1:
            t[-1] = -100   # ignored: loss 0, gradient 0
    else:
        t = rng.dirichlet(np.ones(_SPLIT_C), rows).astype(dtype)
    got = {}
    for nt in (1, 2, 3):
        for reduction in ("none", "sum"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                loss, grad = fx.cross_entropy(x, t, reduction=reduction, return_grad=True,
                                              n_threads=nt, **kw)
            got[nt, reduction] = (np.asarray(loss), grad)
    for nt, reduction in itertools.product((2, 3), ("none", "sum")):
        for a, b in zip(got[1, reduction], got[nt, reduction]):
            assert np.array_equal(a, b, equal_nan=True), (nt, reduction)
    inplace = x.copy()
    loss, grad = fx.cross_entropy(inplace, t, reduction="none", return_grad=True,
                                  grad_out=inplace, n_threads=2, **kw)
    assert np.array_equal(loss, got[1, "none"][0], equal_nan=True)
    assert np.array_equal(grad, got[1, "none"][1], equal_nan=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want, want_grad = reference.cross_entropy(x, t, reduction="none", return_grad=True, **kw)
    loss, grad = got[1, "none"]
    tol = dict(rtol=1e-12, atol=1e-300) if dtype == np.float64 else dict(rtol=2e-5, atol=1e-7)
    np.testing.assert_allclose(loss.astype(np.float64), np.asarray(want, np.float64), **tol)
    gtol = dict(rtol=1e-9, atol=1e-15) if dtype == np.float64 else dict(rtol=1e-2, atol=2e-6)
    np.testing.assert_allclose(grad.astype(np.float64), np.asarray(want_grad, np.float64), **gtol)
    if target == "labels":
        assert loss[0] == np.inf
        if rows > 1:
            assert np.isnan(loss[1]) and np.isnan(grad[1]).all()
            assert loss[-1] == 0 and (grad[-1] == 0).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
@pytest.mark.parametrize("C", [10, 20, 100, 3000, 20000])
@pytest.mark.parametrize("kw", [{}, {"weight": True}, {"label_smoothing": 0.1}])
def test_gradient_written_over_the_input(dtype, C, kw):
    # grad_out=input computes in place; the label's term must come from
    # x_y before the row's gradient overwrites it (float16 rows without
    # weights or smoothing once read it after)
    rng = np.random.default_rng(C)
    x = (rng.standard_normal((6, C)) * 3).astype(dtype)
    t = rng.integers(0, C, 6)
    t[2] = -100
    kw = dict(kw)
    if kw.pop("weight", False):
        kw["weight"] = (rng.random(C) + 0.5).astype(dtype)
    for n_threads in (1, 2):
        loss, grad = fx.cross_entropy(x, t, return_grad=True, n_threads=n_threads, **kw)
        xi = x.copy()
        loss_i, grad_i = fx.cross_entropy(xi, t, return_grad=True, grad_out=xi,
                                          n_threads=n_threads, **kw)
        assert grad_i is xi
        assert loss_i == loss
        np.testing.assert_array_equal(grad_i, grad)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS as Linux has it")
@pytest.mark.skipif("ASAN_OPTIONS" in os.environ, reason="AddressSanitizer maps its own memory")
@pytest.mark.skipif(not fx.get_config()["openmp"], reason="a serial build does not split the row")
def test_working_memory_that_cannot_be_allocated_says_how_much(tmp_path):
    """A broadcast row of 2^40 classes splits across threads with partial
    sums per block of classes, about 13 GiB of them: in a process limited
    to 6 GiB of address space the allocation fails, and the MemoryError
    says what could not be allocated (it had no message)."""
    code = (
        "import resource\n"
        "resource.setrlimit(resource.RLIMIT_AS, (6 << 30, resource.RLIM_INFINITY))\n"
        "import numpy as np, fastxent\n"
        "row = np.broadcast_to(np.float32(0), (2**40,))\n"
        "try:\n"
        "    fastxent.cross_entropy(row, np.array(3), n_threads=2)\n"
        "except MemoryError as e:\n"
        "    print('MemoryError:', e)\n")
    # `-c` looks in the current folder first: not the source tree's fastxent/
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert re.fullmatch(r"MemoryError: out of memory: cannot allocate 1\d(\.\d)? GiB of working "
                        r"memory for this call\n", out.stdout), out.stdout
