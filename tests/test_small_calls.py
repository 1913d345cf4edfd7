"""The small-call entries: a small C-ordered call of logsumexp, softmax,
log_softmax, kl_div, binary_cross_entropy_with_logits or cross_entropy goes
from the public function straight to its driver (``logsumexp_small``,
``softmax_small``, ``kl_div_small``, ``bce_with_logits_small``,
``cross_entropy_small`` of the kernel modules), skipping the checks and the
layout layer.  They must give exactly what the layout
layer's path gives -- the same bits, dtype, shape and sign of zero, for
special values too -- and decline (None) every call they do not cover, which
then takes the usual path with its errors and semantics.

The usual path is reached through the same public call with ``n_threads``
given, which the small entries never take.
"""
import numpy as np
import pytest

import fastxent

from arrays import RTOL, assert_close, misaligned, tolerance

SMALL = 32768   # at most: one thread whatever the default (MIN_WORK_PER_THREAD)
ONE_UNIT = 16383   # kl_div: fewer than FX_CHUNK elements, one partial sum


def _bits(a):
    """The bytes of `a` with its dtype and shape: equal only for the same bits."""
    a = np.asarray(a)
    return a.dtype, a.shape, a.tobytes()


def _logits(shape, dtype, seed=0):
    """Random logits of `shape` with some special values where there is room."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    flat = x.reshape(-1)
    if flat.size >= 40:
        flat[3] = -np.inf            # a -inf entry in a finite row
        flat[17] = np.nan            # a NaN row
        flat[25] = np.inf            # a +inf row
        flat[30:40] = -np.inf        # rows of only -inf where C <= 10
    return x


COVERED = [
    ((1, 10), -1), ((1, 10), 1), ((1, 10), None), ((10,), -1), ((10,), 0), ((10,), None),
    ((3, 7), -1), ((7, 1), -1), ((1, 1), 1), ((2, 3, 4), -1), ((2, 3, 4), 2),
    ((2, 3, 4), None), ((4, 1, 5), -1), ((1000, 10), -1), ((16, 2048), -1),
    ((1, SMALL), -1), ((2, SMALL // 2), None),
]


# each function of the softmax family: the public function and its entry
FAMILY = {
    "logsumexp": (fastxent.logsumexp, lambda m, x, axis: m.logsumexp_small(x, axis)),
    "softmax": (fastxent.softmax, lambda m, x, axis: m.softmax_small(x, axis, False)),
    "log_softmax": (fastxent.log_softmax, lambda m, x, axis: m.softmax_small(x, axis, True)),
}


def _out_like(name, x, axis):
    """An `out=` array of the call's result shape, filled with 7s."""
    if name != "logsumexp":
        return np.full(x.shape, 7, x.dtype)
    return np.full(() if axis is None else x.shape[:-1], 7, x.dtype)


@pytest.mark.parametrize("name", FAMILY)
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
@pytest.mark.parametrize("shape, axis", COVERED, ids=[f"{s}-{a}" for s, a in COVERED])
def test_family_small_is_the_layout_path(module, shape, axis, dtype, name):
    f, entry = FAMILY[name]
    x = _logits(shape, dtype)
    assert entry(module, x, axis) is not None   # the entry takes it
    with np.errstate(all="ignore"):
        fast = f(x, axis)
        usual = f(x, axis, n_threads=1)
        into = _out_like(name, x, axis)
        f(x, axis, out=into)
    assert type(fast) is type(usual)
    assert type(fast) is not np.ndarray or fast.flags.c_contiguous
    assert _bits(fast) == _bits(usual) == _bits(into)


def _declined():
    x = _logits((6, 10), np.float64)
    yield "subclass", x.view(_Sub), -1
    yield "F-ordered", np.asfortranarray(x), -1
    yield "strided", x[:, ::2], -1
    yield "transposed", x.T, -1
    yield "byte-swapped", x.astype(x.dtype.newbyteorder()), -1
    yield "misaligned", misaligned(x), -1
    yield "axis 0", x, 0
    yield "NumPy integer axis", x, np.int64(-1)
    yield "bool axis", x[0], True
    yield "tuple axis", x, (1,)
    yield "axis out of range", x, 2
    yield "0-d", np.float64(3.0) * np.ones(()), None
    yield "empty", np.empty((0, 10)), -1
    yield "zero-length axis", np.empty((3, 0)), -1
    yield "int64", np.arange(60).reshape(6, 10), -1
    yield "bool", x > 0, -1
    yield "too large", _logits((2, SMALL // 2 + 1), np.float64), -1
    yield "too large along None", _logits((1, SMALL + 1), np.float32), None


class _Sub(np.ndarray):
    pass


DECLINED = list(_declined())


@pytest.mark.parametrize("name", FAMILY)
@pytest.mark.parametrize("case, x, axis", DECLINED, ids=[d[0] for d in DECLINED])
def test_family_small_declines_other_calls(module, case, x, axis, name):
    f, entry = FAMILY[name]
    assert entry(module, x, axis) is None
    try:
        with np.errstate(all="ignore"):
            usual = f(x, axis, n_threads=1)
    except Exception as e:   # the same error through the public default call
        with pytest.raises(type(e)):
            f(x, axis)
        return
    with np.errstate(all="ignore"):
        got = f(x, axis)
    assert type(got) is type(usual)
    assert _bits(got) == _bits(usual)


def test_family_small_calls_match_scipy(scipy_special):
    # SciPy's own exp and order of sums: the suite's tolerances (arrays.py)
    rng = np.random.default_rng(3)
    for shape, axis in [((1, 10), -1), ((4, 6), 1), ((9,), None), ((2, 3, 5), None)]:
        x = rng.standard_normal(shape)
        for name in FAMILY:
            rtol, atol = tolerance(name, x.dtype, x, peer="scipy")
            assert_close(getattr(fastxent, name)(x, axis), getattr(scipy_special, name)(x, axis),
                         rtol=rtol, atol=atol, err_msg=f"{name} {shape} axis={axis}")


def _kl_operands(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    logq = rng.standard_normal(shape)
    logq -= np.log(np.exp(logq).sum(-1, keepdims=True))
    p = rng.dirichlet(np.ones(shape[-1]), shape[:-1]) if shape else np.array(1.0)
    return logq.astype(dtype), p.astype(dtype)


KL_SHAPES = [(1, 10), (10,), (3, 7), (2, 3, 4), (), (1, ONE_UNIT), (127, 129)]


@pytest.mark.parametrize("log_target", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "batchmean", "sum"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
@pytest.mark.parametrize("shape", KL_SHAPES, ids=str)
def test_kl_div_small_is_the_layout_path(module, shape, dtype, reduction, log_target):
    x, p = _kl_operands(shape, dtype)
    with np.errstate(divide="ignore"):
        t = np.asarray(np.log(p)) if log_target else p
    mode = {"sum": 0, "mean": 1, "batchmean": 2}[reduction]
    # float16 takes the usual path: its rounding of the loss is NumPy's
    assert (module.kl_div_small(x, t, log_target, mode) is None) == (dtype == np.float16)
    with np.errstate(all="ignore"):
        fast = fastxent.kl_div(x, t, reduction, log_target)
        usual = fastxent.kl_div(x, t, reduction, log_target, n_threads=1)
    assert type(fast) is type(usual)
    assert _bits(fast) == _bits(usual)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kl_div_small_special_values(module, dtype):
    inf, nan = np.inf, np.nan
    cases = [
        ([[0.0, -inf, 1.0]], [[0.0, 0.0, 1.0]]),      # -inf input where p is 0
        ([[0.0, -inf, 1.0]], [[0.5, 0.5, 0.0]]),      # -inf input where p > 0: +inf
        ([[nan, 0.0]], [[0.5, 0.5]]),
        ([[0.0, 0.0]], [[0.0, 0.0]]),                 # every term 0
        ([[-0.0, 0.0]], [[0.0, 0.0]]),
        ([[1.0, 2.0]], [[-0.0, 0.0]]),                # -0.0 terms: the loss is +0.0
        ([[1.0, 2.0]], [[-1.0, 0.5]]),                # a negative target: NaN term
        ([[0.0, 0.0]], [[inf, 1.0]]),
    ]
    for x, t in cases:
        x, t = np.array(x, dtype), np.array(t, dtype)
        for reduction in ("mean", "batchmean", "sum"):
            with np.errstate(all="ignore"):
                fast = fastxent.kl_div(x, t, reduction)
                usual = fastxent.kl_div(x, t, reduction, n_threads=1)
            assert _bits(fast) == _bits(usual), (x, t, reduction)


def test_kl_div_small_overflowing_float64_sum_takes_the_exact_path(module):
    # 256 terms of 1.7e308, then 256 of -1.7e308: the kernel's running sums
    # overflow (inf - inf), the sum is 0; the usual path sums the terms
    # again in an order that does not overflow (_exact_total)
    x = np.repeat([[-1.7e308, 1.7e308]], 256, axis=1)
    p = np.ones((1, 512))
    assert module.kl_div_small(x, p, False, 0) is None
    with np.errstate(all="ignore"):
        got = fastxent.kl_div(x, p, "sum")
        usual = fastxent.kl_div(x, p, "sum", n_threads=1)
    assert got == 0.0 and _bits(got) == _bits(usual)


@pytest.mark.parametrize("reduction", ["sum", "mean", "batchmean"])
def test_kl_div_small_float32_overflow_warns_as_usual(module, reduction):
    # finite float32 terms whose float64 sum (divided) rounds to inf in
    # float32: NumPy's cast warns of the overflow in the usual path
    x = np.full((1, 2), -3e38, np.float32)
    t = np.ones((1, 2), np.float32)
    mode = {"sum": 0, "mean": 1, "batchmean": 2}[reduction]
    if reduction == "mean":   # 6e38 / 2 fits float32
        assert module.kl_div_small(x, t, False, mode) is not None
        return
    assert module.kl_div_small(x, t, False, mode) is None
    with pytest.warns(RuntimeWarning, match="overflow"):
        got = fastxent.kl_div(x, t, reduction)
    assert got == np.inf and got.dtype == np.float32


def _pair_declined(operands, fill):
    """The calls the entries of two same-shaped operands (kl_div_small,
    bce_with_logits_small: _small_pair) decline, from `operands(shape,
    dtype)`; `fill` a valid target value."""
    x, t = operands((4, 10), np.float64)
    yield "F-ordered", np.asfortranarray(x), t
    yield "strided target", x, np.full((4, 20), fill)[:, ::2]
    yield "dtypes differ", x, t.astype(np.float32)
    yield "subclass", x.view(_Sub), t
    yield "misaligned", misaligned(x), t
    yield "byte-swapped", x.astype(x.dtype.newbyteorder()), t
    yield "float16", x.astype(np.float16), t.astype(np.float16)
    yield "two units", *operands((1, ONE_UNIT + 1), np.float64)
    yield "empty", np.empty((0, 3)), np.empty((0, 3))


def _kl_declined():
    yield from _pair_declined(_kl_operands, 0.1)
    x, p = _kl_operands((4, 10), np.float64)
    yield "broadcast target", x, p[:1]
    yield "int target", x, np.zeros((4, 10), np.int64)
    yield "list target", x, p.tolist()


KL_DECLINED = list(_kl_declined())


@pytest.mark.parametrize("name, x, t", KL_DECLINED, ids=[d[0] for d in KL_DECLINED])
def test_kl_div_small_declines_other_calls(module, name, x, t):
    assert module.kl_div_small(x, t, False, 1) is None
    for reduction in ("mean", "batchmean", "sum"):
        with np.errstate(all="ignore"):
            usual = fastxent.kl_div(x, t, reduction, n_threads=1)
            got = fastxent.kl_div(x, t, reduction)
        assert _bits(got) == _bits(usual)


def test_kl_div_small_keeps_the_argument_checks():
    x, p = _kl_operands((2, 5), np.float64)
    with pytest.raises(ValueError, match="reduction"):
        fastxent.kl_div(x, p, "avg")
    with pytest.raises(ValueError, match="reduction"):
        fastxent.kl_div(x, p, 1)
    with pytest.raises(TypeError, match="log_target"):
        fastxent.kl_div(x, p, "sum", log_target=np.ones(2))


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")
def test_kl_div_small_calls_match_torch(torch):
    x, p = _kl_operands((3, 10), np.float64, seed=5)
    for reduction in ("mean", "batchmean", "sum"):
        want = torch.nn.functional.kl_div(torch.from_numpy(x), torch.from_numpy(p),
                                          reduction=reduction).item()
        assert float(fastxent.kl_div(x, p, reduction)) == pytest.approx(want, rel=RTOL[np.float64])


def _bce_operands(shape, dtype, seed=0):
    """Logits and soft targets in [0, 1] of `shape`."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 4
    y = rng.uniform(size=shape)
    return np.asarray(x).astype(dtype), np.asarray(y).astype(dtype)


BCE_SHAPES = [(1, 10), (10,), (3, 7), (2, 3, 4), (), (1, ONE_UNIT), (127, 129)]


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
@pytest.mark.parametrize("shape", BCE_SHAPES, ids=str)
def test_bce_small_is_the_layout_path(module, shape, dtype, reduction):
    x, y = _bce_operands(shape, dtype)
    mode = {"sum": 0, "mean": 1}[reduction]
    # float16 takes the usual path: its rounding of the loss is NumPy's
    assert (module.bce_with_logits_small(x, y, mode) is None) == (dtype == np.float16)
    fast = fastxent.binary_cross_entropy_with_logits(x, y, reduction=reduction)
    usual = fastxent.binary_cross_entropy_with_logits(x, y, reduction=reduction, n_threads=1)
    assert type(fast) is type(usual)
    assert _bits(fast) == _bits(usual)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bce_small_special_values(module, dtype):
    inf, nan = np.inf, np.nan
    cases = [
        ([inf, -inf, 0.0], [1.0, 0.0, 0.5]),     # infinite logits on their side: 0
        ([inf, 1.0], [0.0, 1.0]),                 # +inf against target 0: +inf
        ([-inf, 1.0], [1.0, 0.0]),                # -inf against target 1: +inf
        ([inf, -inf], [0.5, 0.5]),                # +inf against a soft target
        ([nan, 0.0], [1.0, 0.0]),
        ([0.0, 1.0], [nan, 1.0]),
        ([1.0, 2.0], [inf, 0.0]),                 # an infinite target (its limit)
        ([1.0, -2.0], [-inf, 0.0]),
        ([-0.0, 0.0], [0.0, 1.0]),
        ([1e300, -1e300], [0.0, 1.0]),            # huge logits: huge finite terms
        ([200.0, -200.0], [1.0, 0.0]),            # softplus(-200): a tiny exp
        ([3.0, 4.0], [-1.0, 2.0]),                # targets outside [0, 1]
    ]
    for x, y in cases:
        with np.errstate(over="ignore"):   # 1e300 is inf in float32
            x, y = np.array([x], dtype), np.array([y], dtype)
        for reduction in ("mean", "sum"):
            with np.errstate(all="ignore"):
                fast = fastxent.binary_cross_entropy_with_logits(x, y, reduction=reduction)
                usual = fastxent.binary_cross_entropy_with_logits(x, y, reduction=reduction,
                                                                  n_threads=1)
            assert _bits(fast) == _bits(usual), (x, y, reduction)


def test_bce_small_overflowing_float64_sum_takes_the_exact_path(module):
    # terms of 1.5e308 and their cancelling sum overflow the kernel's running
    # sum: +inf there, finite where the usual path sums the terms again
    x = np.repeat([[1.5e308, -1.5e308]], 256, axis=1)
    y = np.repeat([[0.0, 1.0]], 256, axis=1)
    assert module.bce_with_logits_small(x, y, 0) is None
    with np.errstate(all="ignore"):
        got = fastxent.binary_cross_entropy_with_logits(x, y, reduction="sum")
        usual = fastxent.binary_cross_entropy_with_logits(x, y, reduction="sum", n_threads=1)
    assert _bits(got) == _bits(usual)


def test_bce_small_float32_overflow_warns_as_usual(module):
    # two finite float32 terms of 3e38 whose sum rounds to inf in float32:
    # NumPy's cast warns of the overflow in the usual path; their mean fits
    x = np.full((1, 2), 3e38, np.float32)
    y = np.zeros((1, 2), np.float32)
    assert module.bce_with_logits_small(x, y, 1) is not None
    assert module.bce_with_logits_small(x, y, 0) is None
    with pytest.warns(RuntimeWarning, match="overflow"):
        got = fastxent.binary_cross_entropy_with_logits(x, y, reduction="sum")
    assert got == np.inf and got.dtype == np.float32


def _bce_declined():
    yield from _pair_declined(_bce_operands, 0.5)
    x, y = _bce_operands((4, 10), np.float64)
    yield "int target", x, np.ones((4, 10), np.int64)
    yield "bool target", x, np.ones((4, 10), bool)


BCE_DECLINED = list(_bce_declined())


@pytest.mark.parametrize("name, x, y", BCE_DECLINED, ids=[d[0] for d in BCE_DECLINED])
def test_bce_small_declines_other_calls(module, name, x, y):
    assert module.bce_with_logits_small(x, y, 1) is None
    for reduction in ("mean", "sum"):
        with np.errstate(all="ignore"):
            usual = fastxent.binary_cross_entropy_with_logits(x, y, reduction=reduction,
                                                              n_threads=1)
            got = fastxent.binary_cross_entropy_with_logits(x, y, reduction=reduction)
        assert _bits(got) == _bits(usual)


def test_bce_small_keeps_the_argument_checks():
    x, y = _bce_operands((2, 5), np.float64)
    bce = fastxent.binary_cross_entropy_with_logits
    with pytest.raises(ValueError, match="reduction"):
        bce(x, y, reduction="batchmean")
    with pytest.raises(ValueError, match="reduction"):
        bce(x, y, reduction=1)
    with pytest.raises(ValueError, match="target"):
        bce(x, y[:, :4])
    with pytest.raises(ValueError, match="grad_out"):
        bce(x, y, grad_out=np.empty_like(x))
    with pytest.raises(TypeError, match="return_grad"):
        bce(x, y, return_grad=np.ones(2))


def test_bce_small_options_take_the_usual_path():
    x, y = _bce_operands((3, 4), np.float64)
    bce = fastxent.binary_cross_entropy_with_logits
    w, pw = np.full(4, 2.0), np.full(4, 3.0)
    want = bce(x, y, reduction="sum", n_threads=1)
    assert bce(x, y, w, reduction="sum") == pytest.approx(2 * want, rel=1e-15)
    loss, grad = bce(x, y, reduction="sum", return_grad=True)
    assert _bits(loss) == _bits(want) and grad.shape == x.shape
    assert bce(x, y, pos_weight=pw, reduction="sum") > want


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")
def test_bce_small_calls_match_torch(torch):
    x, y = _bce_operands((3, 10), np.float64, seed=5)
    for reduction in ("mean", "sum"):
        want = torch.nn.functional.binary_cross_entropy_with_logits(
            torch.from_numpy(x), torch.from_numpy(y), reduction=reduction).item()
        got = fastxent.binary_cross_entropy_with_logits(x, y, reduction=reduction)
        assert float(got) == pytest.approx(want, rel=RTOL[np.float64])


def _xent_operands(n, c, dtype, seed=0, ignore=()):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, c)) * 3).astype(dtype)
    y = rng.integers(0, c, n)
    for r in ignore:
        y[r] = -100
    return x, y


XENT_SHAPES = [(1, 10), (3, 7), (16, 5), (1, 1), (2, 2048), (1, SMALL)]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
@pytest.mark.parametrize("n, c", XENT_SHAPES, ids=str)
def test_cross_entropy_small_is_the_layout_path(module, n, c, dtype, reduction):
    x, y = _xent_operands(n, c, dtype, ignore=(0,) if n > 1 else ())
    if x.size >= 8:
        x.flat[2], x.flat[5] = -np.inf, np.inf   # a row with -inf, a row with +inf
    mode = {"sum": 0, "mean": 1, "none": 2}[reduction]
    assert module.cross_entropy_small(x, y, -100, mode) is not None
    with np.errstate(all="ignore"):
        fast = fastxent.cross_entropy(x, y, reduction=reduction)
        usual = fastxent.cross_entropy(x, y, reduction=reduction, n_threads=1)
    assert type(fast) is type(usual)
    assert _bits(fast) == _bits(usual)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_small_ignored_rows(module, reduction):
    x, y = _xent_operands(4, 6, np.float64)
    for ignore_index, labels in [(-100, [-100] * 4), (3, [3, 1, 3, 0]), (7, [7, 7, 2, 5])]:
        y = np.array(labels)
        with np.errstate(all="ignore"):
            fast = fastxent.cross_entropy(x, y, ignore_index=ignore_index, reduction=reduction)
            usual = fastxent.cross_entropy(x, y, ignore_index=ignore_index, reduction=reduction,
                                           n_threads=1)
        assert _bits(fast) == _bits(usual)


@pytest.mark.parametrize("label", [-1, 6, -100, 2**40])
def test_cross_entropy_small_bad_label_raises_as_usual(module, label):
    x, y = _xent_operands(3, 6, np.float64)
    y[1] = label
    if label == -100:   # the default ignore_index: not a bad label
        assert module.cross_entropy_small(x, y, -100, 1) is not None
        return
    assert module.cross_entropy_small(x, y, -100, 1) is None
    with pytest.raises(IndexError) as usual:
        fastxent.cross_entropy(x, y, n_threads=1)
    with pytest.raises(IndexError) as fast:
        fastxent.cross_entropy(x, y)
    assert str(fast.value) == str(usual.value)


def _xent_declined():
    x, y = _xent_operands(4, 10, np.float64)
    yield "1-d input", x[0], y[:1].reshape(())
    yield "3-d input", x.reshape(2, 2, 10), y.reshape(2, 2)
    yield "F-ordered", np.asfortranarray(x), y
    yield "int32 labels", x, y.astype(np.int32)
    yield "strided labels", x, np.repeat(y, 2)[::2]
    yield "byte-swapped labels", x, y.astype(y.dtype.newbyteorder())
    yield "labels of another length", x, y[:3]
    yield "probabilities", x, np.full((4, 10), 0.1)
    yield "more rows than a block, reduced", *_xent_operands(17, 4, np.float32)
    yield "too large", *_xent_operands(2, SMALL // 2 + 1, np.float32)


XENT_DECLINED = list(_xent_declined())


@pytest.mark.parametrize("case, x, y", XENT_DECLINED, ids=[d[0] for d in XENT_DECLINED])
def test_cross_entropy_small_declines_other_calls(module, case, x, y):
    assert module.cross_entropy_small(x, y, -100, 1) is None
    for reduction in ("mean", "sum"):
        try:
            usual = fastxent.cross_entropy(x, y, reduction=reduction, n_threads=1)
        except Exception as e:
            with pytest.raises(type(e)):
                fastxent.cross_entropy(x, y, reduction=reduction)
            continue
        assert _bits(fastxent.cross_entropy(x, y, reduction=reduction)) == _bits(usual)


def test_cross_entropy_small_keeps_the_argument_checks():
    x, y = _xent_operands(2, 5, np.float64)
    with pytest.raises(ValueError, match="reduction"):
        fastxent.cross_entropy(x, y, reduction="avg")
    with pytest.raises(TypeError, match="ignore_index"):
        fastxent.cross_entropy(x, y, ignore_index=1.5)
    with pytest.raises(ValueError, match="label_smoothing"):
        fastxent.cross_entropy(x, y, label_smoothing=-0.5)


def test_cross_entropy_small_calls_match_torch(torch):
    x, y = _xent_operands(5, 10, np.float64, seed=7, ignore=(2,))
    for reduction in ("mean", "sum", "none"):
        want = torch.nn.functional.cross_entropy(torch.from_numpy(x), torch.from_numpy(y),
                                                 reduction=reduction).numpy()
        np.testing.assert_allclose(fastxent.cross_entropy(x, y, reduction=reduction), want,
                                   rtol=RTOL[np.float64])


@pytest.mark.parametrize("into", ["new", "grad_out"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
@pytest.mark.parametrize("n, c", XENT_SHAPES, ids=str)
def test_cross_entropy_small_gradient_is_the_layout_path(module, n, c, dtype, reduction, into):
    x, y = _xent_operands(n, c, dtype, ignore=(0,) if n > 1 else ())
    if x.size >= 8:
        x.flat[2], x.flat[5] = -np.inf, np.inf
    mode = {"sum": 0, "mean": 1, "none": 2}[reduction]
    g_fast, g_usual = np.full_like(x, 7), np.full_like(x, 7)
    kw = {} if into == "new" else {"grad_out": g_fast}
    assert module.cross_entropy_small(x, y, -100, mode, True, kw.get("grad_out")) is not None
    g_fast[...] = 7
    with np.errstate(all="ignore"):
        fast = fastxent.cross_entropy(x, y, reduction=reduction, return_grad=True, **kw)
        usual = fastxent.cross_entropy(x, y, reduction=reduction, return_grad=True,
                                       n_threads=1, **({} if into == "new"
                                                       else {"grad_out": g_usual}))
    assert type(fast) is tuple and len(fast) == 2
    assert type(fast[0]) is type(usual[0]) and _bits(fast[0]) == _bits(usual[0])
    assert _bits(fast[1]) == _bits(usual[1])
    assert fast[1].flags.c_contiguous
    if into == "grad_out":
        assert fast[1] is g_fast


def test_cross_entropy_small_gradient_of_ignored_rows(module):
    x, y = _xent_operands(4, 6, np.float64)
    y[:] = [-100, 2, -100, 5]
    for reduction in ("mean", "sum", "none"):
        fast = fastxent.cross_entropy(x, y, reduction=reduction, return_grad=True)
        usual = fastxent.cross_entropy(x, y, reduction=reduction, return_grad=True, n_threads=1)
        assert _bits(fast[1]) == _bits(usual[1])
        assert not fast[1][[0, 2]].any()   # an ignored row has no gradient
    y[:] = -100   # every row ignored: 'mean' is 0 / 0
    fast = fastxent.cross_entropy(x, y, return_grad=True)
    usual = fastxent.cross_entropy(x, y, return_grad=True, n_threads=1)
    assert _bits(fast[0]) == _bits(usual[0]) and _bits(fast[1]) == _bits(usual[1])


def test_cross_entropy_small_gradient_bad_label_writes_nothing(module):
    x, y = _xent_operands(3, 6, np.float64)
    y[2] = 6
    g = np.full_like(x, 7)
    assert module.cross_entropy_small(x, y, -100, 1, True, g) is None
    assert (g == 7).all()
    with pytest.raises(IndexError, match="out of bounds"):
        fastxent.cross_entropy(x, y, return_grad=True, grad_out=g)
    assert (g == 7).all()


def _xent_grad_declined():
    x, y = _xent_operands(4, 10, np.float64)
    yield "F-ordered", x, y, np.asfortranarray(np.empty_like(x))
    yield "another dtype", x, y, np.empty(x.shape, np.float32)
    yield "another shape", x, y, np.empty((4, 11))
    yield "read-only", x, y, np.empty_like(x).copy()
    yield "subclass", x, y, np.empty_like(x).view(_Sub)
    yield "the input itself", x, y, x
    yield "a view of the input", x, y, np.empty((8, 10))[:4]
    yield "list", x, y, np.empty_like(x).tolist()


XENT_GRAD_DECLINED = list(_xent_grad_declined())


@pytest.mark.parametrize("case, x, y, g", XENT_GRAD_DECLINED,
                         ids=[d[0] for d in XENT_GRAD_DECLINED])
def test_cross_entropy_small_gradient_declines_other_outputs(module, case, x, y, g):
    if case == "read-only":
        g.flags.writeable = False
    if case == "a view of the input":
        base = g.base
        x = base[4:]           # another part of the same buffer: no overlap
        assert module.cross_entropy_small(x, y, -100, 1, True, g) is not None
        x = base[2:6]          # overlapping rows: the usual path's buffer
        g = base[:4]
    x_before = x.copy()
    assert module.cross_entropy_small(x, y, -100, 1, True, g) is None
    try:
        usual = fastxent.cross_entropy(x_before.copy(), y, return_grad=True, n_threads=1,
                                       grad_out=g)
    except Exception as e:
        with pytest.raises(type(e)):
            fastxent.cross_entropy(x, y, return_grad=True, grad_out=g)
        return
    fast = fastxent.cross_entropy(x_before.copy(), y, return_grad=True, grad_out=g)
    assert _bits(fast[0]) == _bits(usual[0])


def test_cross_entropy_small_new_arrays_keep_dtype_metadata(module):
    # the usual path's new arrays (per-row losses, a new gradient) take x's
    # dtype with its metadata: the entry declines those calls
    x = np.zeros((2, 3), np.dtype("f8", metadata={"k": 1}))
    y = np.array([0, 2])
    assert module.cross_entropy_small(x, y, -100, 2) is None
    assert module.cross_entropy_small(x, y, -100, 1, True, None) is None
    assert module.cross_entropy_small(x, y, -100, 1) is not None   # a scalar loss
    rows = fastxent.cross_entropy(x, y, reduction="none")
    loss, grad = fastxent.cross_entropy(x, y, return_grad=True)
    assert rows.dtype.metadata == {"k": 1} and grad.dtype.metadata == {"k": 1}
    g = np.empty((2, 3))
    assert module.cross_entropy_small(x, y, -100, 1, True, g) is not None   # the caller's


def test_cross_entropy_small_gradient_in_place_as_usual():
    x, y = _xent_operands(3, 5, np.float64)
    a, b = x.copy(), x.copy()
    loss_a, ga = fastxent.cross_entropy(a, y, return_grad=True, grad_out=a)
    loss_b, gb = fastxent.cross_entropy(b, y, return_grad=True, grad_out=b, n_threads=1)
    assert ga is a and _bits(loss_a) == _bits(loss_b) and _bits(ga) == _bits(gb)


def test_cross_entropy_small_gradient_matches_torch(torch):
    x, y = _xent_operands(5, 10, np.float64, seed=7, ignore=(2,))
    for reduction in ("mean", "sum"):
        tx = torch.from_numpy(x.copy()).requires_grad_(True)
        torch.nn.functional.cross_entropy(tx, torch.from_numpy(y), reduction=reduction).backward()
        _, g = fastxent.cross_entropy(x, y, reduction=reduction, return_grad=True)
        np.testing.assert_allclose(g, tx.grad.numpy(), rtol=RTOL[np.float64], atol=1e-16)


# the entropies of rows: the public call and its entry's kind (y: a second
# operand of the same shape, or None)
ENTROPIES = {
    "softmax_entropy": (lambda x, y, **kw: fastxent.softmax_entropy(x, **kw), 0, False),
    "softmax_cross_entropy": (fastxent.softmax_cross_entropy, 1, True),
    "softmax_kl_div": (fastxent.softmax_kl_div, 2, True),
    "entropy": (lambda x, y, **kw: fastxent.entropy(x, **kw), 3, False),
    "relative entropy": (fastxent.entropy, 3, True),
}


def _entropy_operands(name, shape, dtype, seed=0):
    """Logits (a -inf entry where there is room) or, for scipy's entropy,
    unnormalized probabilities with a zero."""
    if name in ("entropy", "relative entropy"):
        rng = np.random.default_rng(seed)
        x, y = rng.uniform(size=shape), rng.uniform(size=shape)
        x.reshape(-1)[::7] = 0.0
        return x.astype(dtype), y.astype(dtype)
    return _logits(shape, dtype, seed), _logits(shape, dtype, seed + 1)


ENTROPY_SHAPES = [(1, 10), (10,), (3, 7), (2, 3, 4), (7, 1), (1000, 10), (16, 2048),
                  (1, SMALL)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
@pytest.mark.parametrize("shape", ENTROPY_SHAPES, ids=str)
@pytest.mark.parametrize("name", list(ENTROPIES))
def test_entropies_small_are_the_layout_path(module, name, shape, dtype):
    f, kind, pair = ENTROPIES[name]
    x, y = _entropy_operands(name, shape, dtype)
    y = y if pair else None
    axis = -1 if len(shape) > 1 or kind != 3 else 0   # entropy's default axis is 0
    with np.errstate(all="ignore"):
        entry = module.row_entropies_small(kind, x, y, axis)
        fast = f(x, y, axis=axis)
        usual = f(x, y, axis=axis, n_threads=1)
    assert entry is not None
    assert type(fast) is type(usual)
    assert _bits(fast) == _bits(usual)
    assert _bits(entry) == _bits(usual)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(ENTROPIES))
def test_entropies_small_special_values(module, name, dtype):
    f, kind, pair = ENTROPIES[name]
    inf, nan = np.inf, np.nan
    rows = [[0.0, 0.0, 0.0], [-inf, -inf, -inf], [inf, 0.0, 1.0], [nan, 0.0, 1.0],
            [-inf, 0.0, 1.0], [1e308, -1e308, 0.0], [-0.0, 0.0, 0.0], [1.0, -1.0, 2.0],
            [5.0, 5.0, 5.0], [0.0, 0.0, 1.0]]
    with np.errstate(over="ignore"):   # 1e308 is inf in float32
        x = np.array(rows, dtype)
    for y in (x[::-1].copy(), np.roll(x, 1, axis=1)):
        with np.errstate(all="ignore"):
            fast = f(x, y if pair else None, axis=1)
            usual = f(x, y if pair else None, axis=1, n_threads=1)
        assert _bits(fast) == _bits(usual)


def _entropies_declined():
    x, y = _entropy_operands("softmax_kl_div", (4, 10), np.float64)
    yield "F-ordered", np.asfortranarray(x), y, -1
    yield "strided", np.repeat(x, 2, axis=1)[:, ::2], y, -1
    yield "first axis", x, y, 0
    yield "numpy int axis", x, y, np.int64(-1)
    yield "axis None", x, y, None
    # the second operand's own conditions: the one-operand calls take x
    yield "broadcast y", x, y[:1], -1
    yield "dtypes differ", x, y.astype(np.float32), -1
    yield "F-ordered y", x, np.asfortranarray(y), -1
    yield "int logits", np.ones((4, 10), np.int64), np.ones((4, 10), np.int64), -1
    yield "subclass", x.view(_Sub), y, -1
    yield "misaligned", misaligned(x), y, -1
    yield "byte-swapped", x.astype(x.dtype.newbyteorder()), y, -1
    yield "large", *_entropy_operands("softmax_kl_div", (2, SMALL), np.float64), -1
    yield "empty rows", np.empty((0, 3)), np.empty((0, 3)), -1
    yield "0-d", np.array(1.0), np.array(2.0), -1


ENTROPIES_DECLINED = list(_entropies_declined())


@pytest.mark.parametrize("name, x, y, axis", ENTROPIES_DECLINED,
                         ids=[d[0] for d in ENTROPIES_DECLINED])
def test_entropies_small_decline_other_calls(module, name, x, y, axis):
    only_y = name in ("broadcast y", "dtypes differ", "F-ordered y")
    for kind in (1, 2, 3):
        assert module.row_entropies_small(kind, x, y, axis) is None
    for fname, (f, kind, pair) in ENTROPIES.items():
        entry = module.row_entropies_small(kind, x, y if pair else None, axis)
        assert (entry is None) == (pair or not only_y)
        def call(**kw):
            with np.errstate(all="ignore"):
                return f(x, y if pair else None, axis=axis, **kw)
        try:
            usual = call(n_threads=1)
        except Exception as exc:   # the same error through the public call
            with pytest.raises(type(exc)):
                call()
            continue
        assert _bits(call()) == _bits(usual), fname


def test_entropies_small_operand_counts():
    x, y = _entropy_operands("softmax_kl_div", (2, 5), np.float64)
    entry = fastxent._dispatch.active.row_entropies_small
    assert entry(0, x, y, -1) is None      # softmax_entropy takes no second operand
    assert entry(1, x, None, -1) is None   # the pairs need one
    assert entry(2, x, None, -1) is None


def test_entropies_small_keep_the_argument_checks():
    x, y = _entropy_operands("softmax_kl_div", (2, 5), np.float64)
    with pytest.raises(np.exceptions.AxisError):
        fastxent.softmax_entropy(x, axis=2)
    with pytest.raises(np.exceptions.AxisError):
        fastxent.softmax_kl_div(x, y, axis=-3)
    with pytest.raises(ValueError, match="broadcast"):
        fastxent.softmax_cross_entropy(x, y[:, :4])
    with pytest.raises(np.exceptions.AxisError):
        fastxent.entropy(np.ones(3), axis=1)
    with pytest.raises(ValueError):
        fastxent.entropy(np.ones(3), base=-1.0)
    # base takes the usual path: the entropy in bits
    assert fastxent.entropy(np.ones(4), base=2) == pytest.approx(2.0, rel=1e-15)


def test_entropies_small_calls_match_scipy():
    entropy = pytest.importorskip("scipy.stats").entropy
    rng = np.random.default_rng(3)
    p, q = rng.uniform(size=10), rng.uniform(size=10)
    assert float(fastxent.entropy(p)) == pytest.approx(entropy(p), rel=RTOL[np.float64])
    assert float(fastxent.entropy(p, q)) == pytest.approx(entropy(p, q), rel=RTOL[np.float64])
    P = rng.uniform(size=(3, 10))
    rtol, atol = tolerance("entropy", np.float64, P, peer="scipy")
    assert_close(fastxent.entropy(P, axis=-1), entropy(P, axis=-1), rtol=rtol, atol=atol)


def test_softmax_entropies_small_calls_match_torch(torch):
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((3, 10)) * 4, rng.standard_normal((3, 10)) * 4
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    lp, lq = torch.log_softmax(tx, 1), torch.log_softmax(ty, 1)
    want = {
        "softmax_entropy": -(lp.exp() * lp).sum(1).numpy(),
        "softmax_cross_entropy": -(lp.exp() * lq).sum(1).numpy(),
        "softmax_kl_div": torch.nn.functional.kl_div(lq, lp, log_target=True,
                                                     reduction="none").sum(1).numpy(),
    }
    for name, w in want.items():
        got = fastxent.softmax_entropy(x) if name == "softmax_entropy" else \
            getattr(fastxent, name)(x, y)
        rtol, atol = tolerance(name, np.float64, x, peer="torch")
        assert_close(got, w, rtol=rtol, atol=atol, err_msg=name)
