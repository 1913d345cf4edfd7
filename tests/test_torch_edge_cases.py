"""Edge cases where the losses must agree with PyTorch itself (and with each
other): no classes, zero weights, mixed dtypes, infinite targets."""
import itertools

import numpy as np
import pytest

import fastxent
from fastxent import reference as refl

torch = pytest.importorskip("torch")
F = torch.nn.functional

pytestmark = pytest.mark.usefixtures("torch_on_one_thread")


def torch_loss_and_grad(fn, x, *args, **kwargs):
    tx = torch.from_numpy(x).requires_grad_(True)
    loss = fn(tx, *args, **kwargs)
    loss.sum().backward()
    return loss.detach().numpy(), tx.grad.numpy()


def assert_same_values(got, want, what=""):
    """Equal values, NaN where the other has NaN, same dtype."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype, (what, got.dtype, want.dtype)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=what)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=0, err_msg=what, equal_nan=True)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("fn", ["nll_loss", "cross_entropy"])
def test_no_classes_every_target_ignored(fn, reduction):
    """C = 0 leaves only ignored targets: 0 per row, 0 summed, NaN mean and an
    empty gradient, as PyTorch gives (nll_loss used to raise IndexError)."""
    x = np.zeros((3, 0))
    t = np.full(3, -100)
    loss, grad = getattr(fastxent, fn)(x, t, reduction=reduction, return_grad=True)
    want, want_g = torch_loss_and_grad(getattr(F, fn), x, torch.from_numpy(t),
                                       reduction=reduction)
    assert_same_values(loss, want, fn)
    assert_same_values(grad, want_g, fn)
    ref = getattr(refl, fn)(x, t, reduction=reduction)
    assert_same_values(loss, ref, fn)


def test_nll_loss_zero_weight_mean_gradient_is_nan():
    """'mean' over a zero summed weight is 0 / 0: the loss is NaN and so is the
    gradient at each counted target (0 * inf), as in PyTorch; ignored rows
    and other classes keep 0."""
    x = np.array([[0.1, 0.2], [0.3, -0.1], [0.5, 0.5]])
    t = np.array([0, 1, -100])
    w = np.zeros(2)
    loss, grad = fastxent.nll_loss(x, t, weight=w, return_grad=True)
    want, want_g = torch_loss_and_grad(F.nll_loss, x, torch.from_numpy(t),
                                       weight=torch.from_numpy(w))
    assert_same_values(loss, want)
    assert_same_values(grad, want_g)
    assert np.isnan(grad[[0, 1], [0, 1]]).all() and (grad[2] == 0).all()
    # cross_entropy spreads the NaN over the softmax, as PyTorch does
    ce, ce_g = fastxent.cross_entropy(x, t, weight=w, return_grad=True)
    want, want_g = torch_loss_and_grad(F.cross_entropy, x, torch.from_numpy(t),
                                       weight=torch.from_numpy(w))
    assert_same_values(ce, want)
    assert_same_values(ce_g, want_g)


FLOATS = (np.float16, np.float32, np.float64)


@pytest.mark.parametrize("xdt,tdt", list(itertools.product(FLOATS, FLOATS)))
def test_cross_entropy_probability_target_dtypes_as_torch(xdt, tdt):
    """The loss is computed and returned in the promotion of the input and
    probability-target dtypes, the gradient in the input dtype -- PyTorch's
    rule (a float16 input used to round a float32 target down)."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((5, 7)) * 3).astype(xdt)
    t = rng.uniform(0, 1, (5, 7))
    t = (t / t.sum(axis=1, keepdims=True)).astype(tdt)
    for reduction in ("none", "mean"):
        loss, grad = fastxent.cross_entropy(x, t, reduction=reduction, return_grad=True)
        tx = torch.from_numpy(x).requires_grad_(True)
        want = F.cross_entropy(tx, torch.from_numpy(t), reduction=reduction)
        want.sum().backward()
        assert np.asarray(loss).dtype == want.detach().numpy().dtype
        assert grad.dtype == tx.grad.numpy().dtype == xdt
        ref, ref_g = refl.cross_entropy(x, t, reduction=reduction, return_grad=True)
        assert np.asarray(ref).dtype == np.asarray(loss).dtype
        rtol = {np.float16: 2e-3, np.float32: 2e-6, np.float64: 1e-12}[np.result_type(xdt, tdt).type]
        np.testing.assert_allclose(np.asarray(loss, np.float64), np.asarray(ref, np.float64),
                                   rtol=rtol)
        # the gradient is rounded to the input dtype once
        np.testing.assert_allclose(grad.astype(np.float64), ref_g.astype(np.float64),
                                   rtol={np.float16: 2e-3, np.float32: 2e-6,
                                         np.float64: 1e-12}[xdt], atol=1e-7)
        # against PyTorch, in float64, where the target is not rounded
        x64 = torch.from_numpy(x.astype(np.float64))
        peer = F.cross_entropy(x64, torch.from_numpy(t.astype(np.float64)),
                               reduction=reduction).numpy()
        np.testing.assert_allclose(np.asarray(loss, np.float64), peer,
                                   rtol=max(rtol, {np.float16: 2e-3, np.float32: 2e-6,
                                                   np.float64: 1e-12}[xdt]) * 10)
    # a float16 input is not rounded before a float32 target sees it
    if xdt == np.float16 and tdt == np.float32:
        g = np.empty_like(x)
        _, g2 = fastxent.cross_entropy(x, t, return_grad=True, grad_out=g)
        assert g2 is g


@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_infinite_target_as_torch(log_target):
    """A +inf target: PyTorch's xlogy(p, p) - p x is inf - inf x, NaN unless
    x < 0; with log_target exp(t) (t - x) is +inf for finite x."""
    x = np.array([-1.0, 0.0, 1.0, 2.0, -np.inf, np.inf, -1e-300])
    t = np.full_like(x, np.inf)
    for reduction in ("none", "sum"):
        got, grad = fastxent.kl_div(x, t, reduction=reduction, log_target=log_target,
                                    return_grad=True)
        want, want_g = torch_loss_and_grad(F.kl_div, x, torch.from_numpy(t),
                                           reduction=reduction, log_target=log_target)
        assert_same_values(got, want, reduction)
        assert_same_values(grad, want_g, reduction)


@pytest.mark.parametrize("fn", ["nll_loss", "cross_entropy"])
def test_ignore_index_of_the_wrong_type_or_beyond_int64_raises_as_torch(fn):
    """PyTorch takes ignore_index as an int64: a float (even -100.0) or a
    bool is a TypeError, an integer outside int64 a ValueError; the compiled
    function, the reference and the Dask path raise the same, naming it, and
    the int64 extremes and NumPy integers are taken."""
    x = np.zeros((4, 3))
    t = np.array([0, 1, 2, 1])
    ours = (getattr(fastxent, fn), getattr(refl, fn))
    for value, error in ((1.5, TypeError), (-100.0, TypeError), (True, TypeError),
                         (np.float64(2.0), TypeError), (np.array(1.0), TypeError),
                         (np.uint64(2**63), ValueError), (2**63, ValueError),
                         (-2**63 - 1, ValueError), (2**70, ValueError)):
        with pytest.raises(error):
            getattr(F, fn)(torch.from_numpy(x), torch.from_numpy(t), ignore_index=value)
        for f in ours:
            with pytest.raises(error, match="ignore_index"):
                f(x, t, ignore_index=value)
    for value in (2**63 - 1, -2**63, np.int8(1), np.uint64(1), np.array(1), np.array(-100)):
        want = getattr(F, fn)(torch.from_numpy(x), torch.from_numpy(t),
                              ignore_index=value).numpy()
        for f in ours:
            assert_same_values(f(x, t, ignore_index=value), want, f"{fn} {value!r}")
    da = pytest.importorskip("dask.array")
    for value, error in ((-100.0, TypeError), (2**63, ValueError)):
        with pytest.raises(error, match="ignore_index"):
            getattr(fastxent, fn)(da.from_array(x, chunks=2), t, ignore_index=value)


@pytest.mark.parametrize("value", ["yes", 1, 0, None, np.array([True, False])])
def test_kl_div_log_target_refuses_what_torch_refuses(value):
    """PyTorch's log_target takes a bool alone: anything else is a TypeError
    there and here (fastxent also takes a NumPy bool, which PyTorch
    refuses: NumPy pipelines make them)."""
    x = np.log(np.array([[0.2, 0.3, 0.5]]))
    t = np.array([[0.1, 0.1, 0.8]])
    with pytest.raises(TypeError, match="log_target"):
        F.kl_div(torch.from_numpy(x), torch.from_numpy(t), reduction="sum", log_target=value)
    for f in (fastxent.kl_div, refl.kl_div):
        with pytest.raises(TypeError, match="log_target"):
            f(x, t, reduction="sum", log_target=value)
