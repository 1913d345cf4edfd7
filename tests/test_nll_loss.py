"""fastxent.nll_loss, the compiled kernel, against torch.nn.functional.nll_loss.

Every layout ((C,), (N, C), (N, C, d1, ...), strided, non-mergeable), dtype,
reduction, weight and ignore_index, the loss and the gradient; label and
weight dtypes and strides read without conversion; bad labels; results that
do not depend on the thread count on inputs large enough to use two threads.
"""
import itertools

import numpy as np
import pytest

import fastxent as fx
from fastxent import reference as rl

torch = pytest.importorskip("torch")
F = torch.nn.functional

DTYPES = [np.float16, np.float32, np.float64]
REDUCTIONS = ["none", "sum", "mean"]
RTOL = {np.float16: 2e-3, np.float32: 2e-6, np.float64: 1e-13}


def _layouts(rng, dtype):
    """(name, input, target) of every layout, strided views included."""
    def logp(shape):
        return np.log(rng.random(shape) + 1e-3).astype(dtype)

    def labels(shape, C):
        return rng.integers(0, C, size=shape)

    big = logp((6, 5, 4, 5))
    yield "C", logp((5,)), np.int64(3)
    yield "NxC", logp((9, 5)), labels((9,), 5)
    yield "NxCxd", logp((4, 5, 6)), labels((4, 6), 5)
    yield "NxCxd1xd2", logp((3, 5, 2, 4)), labels((3, 2, 4), 5)
    yield "NxC transposed", logp((5, 9)).T, labels((9,), 5)
    yield "NxC reversed", logp((9, 5))[::-1, ::-1], labels((9,), 5)[::-1]
    yield "NxCxd Fortran", np.asfortranarray(logp((4, 5, 6))), np.asfortranarray(labels((4, 6), 5))
    # trailing dims that cannot merge: every operand walked by its strides
    yield "NxCxd1xd2 sliced", big[:, :, 1:, :3], labels((6, 4, 5), 5)[:, 1:, :3]
    yield "NxCxd strided target", logp((4, 5, 6)), labels((8, 12), 5)[::2, ::2]


def _torch(x, t, weight, ignore_index, reduction, dtype):
    """torch's loss and gradient, computed in float32 for float16 input (as
    fastxent), then rounded to the input dtype."""
    work = torch.float32 if dtype == np.float16 else None
    xt = torch.tensor(np.array(x), dtype=work, requires_grad=True)
    batched = x.ndim > 1
    xb = xt if batched else xt[None]
    tt = torch.tensor(np.array(t)).long()
    tb = tt if batched else tt[None]
    w = None if weight is None else torch.tensor(weight, dtype=xt.dtype)
    loss = F.nll_loss(xb, tb, weight=w, ignore_index=ignore_index, reduction=reduction)
    if reduction == "none" and not batched:
        loss = loss[0]
    loss.sum().backward()
    with np.errstate(over="ignore"):
        return (loss.detach().numpy().astype(dtype), xt.grad.numpy().astype(dtype))


def _close(got, want, dtype, what):
    np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want, np.float64),
                               rtol=RTOL[dtype], atol=RTOL[dtype] * 1e-3, equal_nan=True,
                               err_msg=what)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_matches_torch_every_layout_and_option(dtype):
    rng = np.random.default_rng(1)
    for name, x, t in _layouts(rng, dtype):
        C = x.shape[1] if x.ndim > 1 else x.shape[0]
        weight = (rng.random(C) + 0.25).astype(dtype)
        for w, ignore_index, reduction in itertools.product(
                [None, weight], [-100, 1], REDUCTIONS):
            what = f"{name} weight={w is not None} ignore_index={ignore_index} {reduction}"
            want, want_g = _torch(x, t, w, ignore_index, reduction, dtype)
            got, g = fx.nll_loss(x, t, weight=w, ignore_index=ignore_index,
                                 reduction=reduction, return_grad=True)
            assert np.asarray(got).dtype == dtype and np.shape(got) == want.shape, what
            assert g.dtype == dtype and g.shape == x.shape, what
            _close(got, want, dtype, what)
            _close(g, want_g, dtype, what + " (grad)")
            # the loss alone is the same bits
            alone = fx.nll_loss(x, t, weight=w, ignore_index=ignore_index, reduction=reduction)
            np.testing.assert_array_equal(alone, got, err_msg=what)
            # and so is the reference's per-row arithmetic
            ref = rl.nll_loss(x, t, weight=w, ignore_index=ignore_index, reduction=reduction)
            if reduction == "none":
                np.testing.assert_array_equal(got, ref, err_msg=what)
            else:
                _close(got, ref, dtype, what + " (reference)")


@pytest.mark.parametrize("ltype", [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16,
                                   np.uint32, np.uint64, ">i4", "<u8"])
def test_label_dtypes_read_as_they_are(ltype):
    rng = np.random.default_rng(2)
    x = np.log(rng.random((11, 6)))
    t64 = rng.integers(0, 6, 11)
    w = rng.random(6) + 0.5
    want = fx.nll_loss(x, t64, weight=w, reduction="none")
    for t in (t64.astype(ltype), np.repeat(t64.astype(ltype), 3)[::3]):
        got = fx.nll_loss(x, t, weight=w, reduction="none")
        np.testing.assert_array_equal(got, want)
        assert fx.nll_loss(x, t, weight=w) == fx.nll_loss(x, t64, weight=w)


@pytest.mark.parametrize("wtype", [np.float16, np.float32, np.float64, np.int64])
def test_weight_dtypes_and_strides(wtype):
    rng = np.random.default_rng(3)
    for dtype in DTYPES:
        x = np.log(rng.random((13, 4, 3))).astype(dtype)
        t = rng.integers(0, 4, (13, 3))
        t[0, 0] = -100
        w = rng.integers(1, 5, 8).astype(wtype)[::2]     # strided, values exact in float16
        dense = np.ascontiguousarray(w).astype(np.float64)
        for reduction in REDUCTIONS:
            got, g = fx.nll_loss(x, t, weight=w, reduction=reduction, return_grad=True)
            want, want_g = fx.nll_loss(x, t, weight=dense, reduction=reduction,
                                       return_grad=True)
            np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(g, want_g)


def test_float16_weights_rounded_to_float32_as_the_reference():
    x = np.array([[-1.0, -2.0], [-0.5, -3.0]], np.float16)
    t = np.array([0, 1])
    w = np.array([3.0001, 1e-6])
    for reduction in REDUCTIONS:
        got, g = fx.nll_loss(x, t, weight=w, reduction=reduction, return_grad=True)
        want, want_g = rl.nll_loss(x, t, weight=w.astype(np.float32), reduction=reduction,
                                   return_grad=True)
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=1e-3)
        np.testing.assert_allclose(g.astype(np.float64), want_g.astype(np.float64), rtol=1e-3)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("layout", ["NxC", "NxCxd"])
def test_threads_give_the_same_bits(dtype, layout):
    # 120000 targets: far above the one-thread threshold, and 1024 blocks
    rng = np.random.default_rng(4)
    shape = (120000, 7) if layout == "NxC" else (300, 7, 400)
    x = np.log(rng.random(shape) + 1e-3).astype(dtype)
    rows = shape[:1] + shape[2:]
    t = rng.integers(0, 7, rows)
    t.flat[::17] = -100
    w = (rng.random(7) + 0.5).astype(dtype)
    assert fx.get_config()["openmp"]
    for weight, reduction in itertools.product([None, w], REDUCTIONS):
        one = fx.nll_loss(x, t, weight=weight, reduction=reduction, return_grad=True,
                          n_threads=1)
        two = fx.nll_loss(x, t, weight=weight, reduction=reduction, return_grad=True,
                          n_threads=2)
        for a, b in zip(one, two):
            assert np.asarray(a).tobytes() == np.asarray(b).tobytes(), (weight is None, reduction)
        if dtype != np.float16:
            want, want_g = _torch(x, t, weight, -100, reduction, dtype)
            _close(two[0], want, dtype, reduction)
            _close(two[1], want_g, dtype, reduction + " (grad)")


def test_long_rows_threads_and_torch():
    # few rows of many classes: the gradient rows dominate
    rng = np.random.default_rng(5)
    x = np.log(rng.random((64, 50000), np.float32) + 1e-6)
    t = rng.integers(0, 50000, 64)
    t[3] = -100
    one = fx.nll_loss(x, t, return_grad=True, n_threads=1)
    two = fx.nll_loss(x, t, return_grad=True, n_threads=2)
    assert one[0] == two[0] and np.array_equal(one[1], two[1])
    want, want_g = _torch(x, t, None, -100, "mean", np.float32)
    _close(two[0], want, np.float32, "mean")
    np.testing.assert_array_equal(two[1], want_g)


def test_sums_near_the_largest_float_do_not_depend_on_row_order():
    # terms of +-1.5e308: summed one after the other, the first 32 overflow
    # before the last 32 bring the total back; fastxent's sum (and the
    # reference's) is infinite only where the true sum is
    big = 1.5e308
    x = np.zeros((64, 2))
    x[:32, 0], x[32:, 0] = -big, 0.999 * big
    t = np.zeros(64, np.int64)
    want = 32 * (big - 0.999 * big)  # each pair cancels to 1.5e305
    # rtol: 64 roundings of about 2**-53 * 1.5e308 each, against a sum 30x
    # smaller (the cancellation), bound the error near 1e-13
    for order in (np.arange(64), np.arange(64)[::-1], np.r_[0:64:2, 1:64:2]):
        for n_threads in (1, 2):
            got = fx.nll_loss(x[order], t, reduction="sum", n_threads=n_threads)
            np.testing.assert_allclose(got, want, rtol=1e-11)
            np.testing.assert_allclose(fx.nll_loss(x[order], t, n_threads=n_threads),
                                       want / 64, rtol=1e-11)
        np.testing.assert_allclose(rl.nll_loss(x[order], t, reduction="sum"), want, rtol=1e-11)
    # interleaved, no partial sum overflows in any order: PyTorch agrees
    x2 = np.empty_like(x)
    x2[0::2], x2[1::2] = x[:32], x[32:]
    for reduction in ("sum", "mean"):
        torch_value = F.nll_loss(torch.from_numpy(x2), torch.from_numpy(t),
                                 reduction=reduction).item()
        np.testing.assert_allclose(fx.nll_loss(x2, t, reduction=reduction), torch_value,
                                   rtol=1e-11)
    # a weight sum that overflows is infinite in any order: inf / inf, NaN,
    # as in PyTorch
    w = np.array([1e308, 1.0])
    x3, t3 = -np.ones((4, 2)), np.zeros(4, np.int64)
    torch_value = F.nll_loss(torch.from_numpy(x3), torch.from_numpy(t3),
                             weight=torch.from_numpy(w)).item()
    assert np.isnan(torch_value) and np.isnan(fx.nll_loss(x3, t3, weight=w))


def test_bad_labels_raise_and_leave_grad_out_untouched():
    x = np.log(np.full((4, 3), 1 / 3))
    for bad in (3, -1, 2 ** 62, -(2 ** 62)):
        t = np.array([0, 1, bad, 2])
        grad_out = np.full_like(x, 7.0)
        for reduction in REDUCTIONS:
            with pytest.raises(IndexError, match=f"Target {bad} is out of bounds"):
                fx.nll_loss(x, t, reduction=reduction, return_grad=True, grad_out=grad_out)
            assert (grad_out == 7.0).all()
            with pytest.raises(IndexError, match=f"Target {bad} is out of bounds"):
                fx.nll_loss(x, t, reduction=reduction)
    # the first bad target in the target's C order is named
    t = np.array([[0, 5], [7, 1]], np.uint8)
    with pytest.raises(IndexError, match="Target 5 is"):
        fx.nll_loss(np.zeros((2, 3, 2)), t)
    with pytest.raises(IndexError, match=f"Target {2 ** 64 - 1} is"):
        fx.nll_loss(x, np.array([0, 2 ** 64 - 1, 1, 1], np.uint64))


def test_ignore_index_counts_in_nothing():
    rng = np.random.default_rng(6)
    x = np.log(rng.random((8, 4)))
    x[2] = np.nan          # an ignored row is never read
    t = np.array([0, 1, 3, 2, 3, 0, 3, 1])
    w = rng.random(4) + 0.5
    loss, g = fx.nll_loss(x, t, weight=w, ignore_index=3, return_grad=True)
    keep = t != 3
    want = -(w[t[keep]] * x[keep, t[keep]]).sum() / w[t[keep]].sum()
    np.testing.assert_allclose(loss, want, rtol=1e-14)
    assert (g[~keep] == 0).all()
    rows = fx.nll_loss(x, t, weight=w, ignore_index=3, reduction="none")
    assert (rows[~keep] == 0).all()
    # every target ignored: NaN mean (as torch), 0 sum, zero gradient
    loss, g = fx.nll_loss(x, np.full(8, -100), return_grad=True)
    assert np.isnan(loss) and (g == 0).all()
    assert fx.nll_loss(x, np.full(8, -100), reduction="sum") == 0
    # an ignore_index that no label equals; any integer type
    x[2] = 0.5
    assert fx.nll_loss(x, t, ignore_index=2 ** 63 - 1) == fx.nll_loss(x, t, ignore_index=-5)
    assert fx.nll_loss(x, t, ignore_index=-2 ** 63) == fx.nll_loss(x, t, ignore_index=-5)
    assert fx.nll_loss(x, t, ignore_index=np.int8(3)) == fx.nll_loss(x, t, ignore_index=3)


def test_in_place_gradient_and_overlap():
    rng = np.random.default_rng(7)
    x = np.log(rng.random((10, 5)))
    t = rng.integers(0, 5, 10)
    for reduction in REDUCTIONS:
        want, want_g = fx.nll_loss(x, t, reduction=reduction, return_grad=True)
        y = x.copy()
        got, g = fx.nll_loss(y, t, reduction=reduction, return_grad=True, grad_out=y)
        assert g is y
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(g, want_g)


def test_empty_and_no_classes():
    for shape, t in (((0, 4), np.zeros(0, np.int64)), ((0, 4, 3), np.zeros((0, 3), np.int64)),
                     ((3, 0), np.full(3, -100))):
        x = np.zeros(shape)
        for reduction in REDUCTIONS:
            got, g = fx.nll_loss(x, t, reduction=reduction, return_grad=True)
            want, want_g = _torch(x, t, None, -100, reduction, np.float64)
            np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(g, want_g)
    with pytest.raises(IndexError):
        fx.nll_loss(np.zeros((2, 0)), np.array([0, -100]))


def test_no_memory_beyond_the_results():
    import tracemalloc

    rng = np.random.default_rng(8)
    x = np.log(rng.random((200000, 10), np.float32))
    t = rng.integers(0, 10, 200000).astype(np.int32)
    w = np.linspace(0.5, 2.0, 20, dtype=np.float32)[::2]
    fx.nll_loss(x, t, weight=w, n_threads=2)
    for reduction, results in (("mean", 0), ("sum", 0), ("none", 200000 * 4)):
        tracemalloc.start()
        fx.nll_loss(x, t, weight=w, reduction=reduction, n_threads=2)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < results + 16384, (reduction, peak)
