"""Every operand of every function read (and written) through its own strides.

For each public function and each of its operands separately, the operand is
given C-ordered, F-ordered, sliced with a step, reversed (negative strides) and
-- for inputs -- broadcast (stride 0, read-only), while every other operand
stays C-ordered.  The result is checked against the NumPy reference computed
on C-ordered copies, and against SciPy or PyTorch where the function has a
peer (on the one-thread sizes).  The shapes take the short-row (C <= 64),
long-row (several 2048-element blocks), column ((N, C, d) with class axis 1)
and two-thread paths.
"""
import numpy as np
import pytest

import fastxent
from fastxent import reference as ref
from fastxent import reference as refl

LAYOUTS = ("C", "F", "strided", "reversed", "broadcast")
OUT_LAYOUTS = ("C", "F", "strided", "reversed")

# (name, shape of the logits, n_threads): class axis 1, or the last for 2-d
SIZES = [
    ("short", (40, 10), 1),
    ("long", (3, 5000), 1),
    ("columns", (3, 7, 70), 1),
    ("threads", (1100, 64), 2),
    ("short_threads", (8000, 10), 2),
]


def with_layout(a, layout):
    """`a`'s values (for 'broadcast': its first slice along axis 0, repeated)
    in the named memory layout."""
    a = np.asarray(a)
    if layout == "C":
        return np.ascontiguousarray(a)
    if layout == "F":
        return np.asfortranarray(a)
    if layout == "strided":
        big = np.zeros(tuple(2 * n + 1 for n in a.shape), a.dtype)
        v = big[tuple(slice(1, None, 2) for _ in a.shape)]
        v[...] = a
        return v
    if layout == "reversed":
        flip = tuple(slice(None, None, -1) for _ in a.shape)
        return np.ascontiguousarray(a[flip])[flip]
    if layout == "broadcast":
        return np.broadcast_to(a[:1], a.shape)
    raise AssertionError(layout)


def empty_out(shape, dtype, layout):
    return with_layout(np.full(shape, np.nan, dtype), layout)


def tol(dtype):
    return dict(rtol=1e-11, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=1e-6)


def close(got, want, dtype, what):
    np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want, np.float64),
                               err_msg=what, equal_nan=True, **tol(dtype))


def operand_cases(names, layouts=LAYOUTS):
    return [(n, lay) for n in names for lay in layouts]


def pick(operand, layout, arrays):
    """C-ordered copies of `arrays`, the one named `operand` in `layout`."""
    return {k: (with_layout(v, layout) if k == operand else np.ascontiguousarray(v))
            for k, v in arrays.items()}


@pytest.fixture(scope="module")
def torch_f():
    torch = pytest.importorskip("torch")
    return torch


@pytest.fixture(params=[np.float64, np.float32], ids=["f64", "f32"])
def dtype(request):
    return request.param


@pytest.fixture(params=SIZES, ids=[s[0] for s in SIZES])
def size(request):
    return request.param


def class_axis(shape):
    return 1 if len(shape) == 3 else -1


def logits(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * 3).astype(dtype)


# ---- logsumexp: a, b, out ----

@pytest.mark.parametrize("operand,layout", operand_cases(["a", "b"]) +
                         operand_cases(["out"], OUT_LAYOUTS))
def test_logsumexp(operand, layout, size, dtype):
    _, shape, nt = size
    ax = class_axis(shape)
    rng = np.random.default_rng(1)
    arrays = {"a": logits(shape, dtype, 0), "b": rng.uniform(0.1, 2.0, shape).astype(dtype)}
    use_b = operand == "b"
    ops = pick(operand, layout, arrays)
    arrays = {k: np.ascontiguousarray(v) for k, v in ops.items()}
    rshape = tuple(n for d, n in enumerate(shape) if d != ax % len(shape))
    kw = {"b": ops["b"]} if use_b else {}
    out = empty_out(rshape, dtype, layout) if operand == "out" else None
    got = fastxent.logsumexp(ops["a"], axis=ax, out=out, n_threads=nt, **kw)
    want = ref.logsumexp(arrays["a"], axis=ax, b=arrays["b"] if use_b else None)
    close(got, want, dtype, f"{operand} {layout}")
    if out is not None:
        assert got is out
    if nt > 1:
        return   # the peers are checked on the one-thread sizes
    from scipy.special import logsumexp as sp_lse
    close(got, sp_lse(arrays["a"].astype(np.float64), axis=ax,
                      b=arrays["b"].astype(np.float64) if use_b else None), dtype, "scipy")


# ---- softmax, log_softmax: x, out ----

@pytest.mark.parametrize("logarithm", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("operand,layout", operand_cases(["x"]) +
                         operand_cases(["out"], OUT_LAYOUTS))
def test_softmax(operand, layout, logarithm, size, dtype):
    _, shape, nt = size
    ax = class_axis(shape)
    x = logits(shape, dtype, 2)
    xin = with_layout(x, layout) if operand == "x" else x
    x = np.ascontiguousarray(xin)
    out = empty_out(shape, dtype, layout) if operand == "out" else None
    f = fastxent.log_softmax if logarithm else fastxent.softmax
    r = ref.log_softmax if logarithm else ref.softmax
    got = f(xin, axis=ax, out=out, n_threads=nt)
    close(got, r(x, axis=ax), dtype, f"{operand} {layout}")
    if nt > 1:
        return   # the peers are checked on the one-thread sizes
    from scipy import special
    peer = special.log_softmax if logarithm else special.softmax
    close(got, peer(x.astype(np.float64), axis=ax), dtype, "scipy")


# ---- cross_entropy: input, target (labels or probabilities), weight, grad_out ----

def xent_arrays(shape, dtype, probs):
    rng = np.random.default_rng(3)
    C = shape[1]
    x = logits(shape, dtype, 4)
    batch = shape[:1] + shape[2:]
    if probs:
        t = rng.uniform(0.0, 1.0, shape)
        t /= t.sum(axis=1, keepdims=True)
        t = t.astype(dtype)
    else:
        t = rng.integers(0, C, batch)
        t.flat[::7] = -100
    w = rng.uniform(0.2, 2.0, C).astype(dtype)
    return x, t, w


XENT_OPERANDS = (operand_cases(["input", "target", "weight"]) +
                 operand_cases(["grad_out"], OUT_LAYOUTS))


# label smoothing on the one-thread sizes: the threaded ones are covered
# without it
XENT_SIZES = ([(s, 0.0) for s in SIZES] +
              [(s, 0.1) for s in SIZES if s[2] == 1])


@pytest.mark.parametrize("probs", [False, True], ids=["labels", "probs"])
@pytest.mark.parametrize("size,smoothing", XENT_SIZES,
                         ids=[f"{s[0]}-{eps}" for s, eps in XENT_SIZES])
@pytest.mark.parametrize("operand,layout", XENT_OPERANDS)
def test_cross_entropy(operand, layout, probs, smoothing, size, dtype, torch_f):
    _, shape, nt = size
    x, t, w = xent_arrays(shape, dtype, probs)
    if operand == "weight" and layout == "broadcast":
        w = np.full_like(w, w[0])
    ops = pick(operand, layout, {"input": x, "target": t, "weight": w})
    x, t, w = (np.ascontiguousarray(ops[k]) for k in ("input", "target", "weight"))
    g = empty_out(shape, dtype, layout) if operand == "grad_out" else None
    for reduction in ("none", "sum"):
        loss, grad = fastxent.cross_entropy(ops["input"], ops["target"], weight=ops["weight"],
                                            reduction=reduction, label_smoothing=smoothing,
                                            return_grad=True, grad_out=g, n_threads=nt)
        want, want_g = refl.cross_entropy(x, t, weight=w, reduction=reduction,
                                          label_smoothing=smoothing, return_grad=True)
        what = f"{operand} {layout} {reduction}"
        close(loss, want, dtype, what)
        close(grad, want_g, dtype, what + " grad")
        if g is not None:
            assert grad is g
    if nt > 1:
        return   # the peers are checked on the one-thread sizes
    tx = torch_f.from_numpy(x.astype(np.float64))
    tt = torch_f.from_numpy(t.astype(np.float64) if probs else t.astype(np.int64))
    peer = torch_f.nn.functional.cross_entropy(tx, tt, weight=torch_f.from_numpy(
        w.astype(np.float64)), reduction="none", label_smoothing=smoothing).numpy()
    got = fastxent.cross_entropy(ops["input"], ops["target"], weight=ops["weight"],
                                 reduction="none", label_smoothing=smoothing, n_threads=nt)
    close(got, peer, dtype, "torch")


# ---- nll_loss: input, target, weight, grad_out ----

@pytest.mark.parametrize("operand,layout", XENT_OPERANDS)
def test_nll_loss(operand, layout, size, dtype, torch_f):
    _, shape, nt = size
    x, t, w = xent_arrays(shape, dtype, False)
    if operand == "weight" and layout == "broadcast":
        w = np.full_like(w, w[0])
    ops = pick(operand, layout, {"input": x, "target": t, "weight": w})
    x, t, w = (np.ascontiguousarray(ops[k]) for k in ("input", "target", "weight"))
    g = empty_out(shape, dtype, layout) if operand == "grad_out" else None
    loss, grad = fastxent.nll_loss(ops["input"], ops["target"], weight=ops["weight"],
                                   reduction="sum", return_grad=True, grad_out=g)
    want, want_g = refl.nll_loss(x, t, weight=w, reduction="sum", return_grad=True)
    close(loss, want, dtype, f"{operand} {layout}")
    close(grad, want_g, dtype, f"{operand} {layout} grad")
    if nt > 1:
        return   # the peers are checked on the one-thread sizes
    peer = torch_f.nn.functional.nll_loss(
        torch_f.from_numpy(x.astype(np.float64)), torch_f.from_numpy(t.astype(np.int64)),
        weight=torch_f.from_numpy(w.astype(np.float64)), reduction="sum").item()
    close(loss, peer, dtype, "torch")


# ---- kl_div: input, target, grad_out ----

@pytest.mark.parametrize("log_target", [False, True])
@pytest.mark.parametrize("operand,layout", operand_cases(["input", "target"]) +
                         operand_cases(["grad_out"], OUT_LAYOUTS))
def test_kl_div(operand, layout, log_target, size, dtype, torch_f):
    _, shape, nt = size
    ax = class_axis(shape)
    logq = ref.log_softmax(logits(shape, np.float64, 5), axis=ax).astype(dtype)
    p = ref.softmax(logits(shape, np.float64, 6), axis=ax)
    if not log_target:
        # zero probabilities (log_target: PyTorch's exp(-inf) (-inf - x) is
        # NaN where fastxent gives the limit 0, a documented difference)
        p.flat[::5] = 0.0
    t = (np.log(p) if log_target else p).astype(dtype)
    ops = pick(operand, layout, {"input": logq, "target": t})
    x, t = np.ascontiguousarray(ops["input"]), np.ascontiguousarray(ops["target"])
    g = empty_out(shape, dtype, layout) if operand == "grad_out" else None
    for reduction in ("none", "sum"):
        loss, grad = fastxent.kl_div(ops["input"], ops["target"], reduction=reduction,
                                     log_target=log_target, return_grad=True, grad_out=g,
                                     n_threads=nt)
        want, want_g = refl.kl_div(x, t, reduction=reduction, log_target=log_target,
                                   return_grad=True)
        close(loss, want, dtype, f"{operand} {layout} {reduction}")
        close(grad, want_g, dtype, f"{operand} {layout} {reduction} grad")
    if nt > 1:
        return   # the peers are checked on the one-thread sizes
    with np.errstate(divide="ignore"):
        peer = torch_f.nn.functional.kl_div(torch_f.from_numpy(x.astype(np.float64)),
                                            torch_f.from_numpy(t.astype(np.float64)),
                                            reduction="sum", log_target=log_target).item()
    close(loss, peer, dtype, "torch")


# ---- binary_cross_entropy_with_logits: input, target, weight, pos_weight, grad_out ----

@pytest.mark.parametrize("operand,layout", operand_cases(["input", "target", "weight",
                                                          "pos_weight"]) +
                         operand_cases(["grad_out"], OUT_LAYOUTS))
def test_bce_with_logits(operand, layout, size, dtype, torch_f):
    _, shape, nt = size
    rng = np.random.default_rng(7)
    arrays = {"input": logits(shape, dtype, 8),
              "target": rng.uniform(0, 1, shape).astype(dtype),
              "weight": rng.uniform(0.1, 2, shape).astype(dtype),
              "pos_weight": rng.uniform(0.5, 3, shape).astype(dtype)}
    ops = pick(operand, layout, arrays)
    c = {k: np.ascontiguousarray(v) for k, v in ops.items()}
    g = empty_out(shape, dtype, layout) if operand == "grad_out" else None
    for reduction in ("none", "sum"):
        loss, grad = fastxent.binary_cross_entropy_with_logits(
            ops["input"], ops["target"], weight=ops["weight"], pos_weight=ops["pos_weight"],
            reduction=reduction, return_grad=True, grad_out=g, n_threads=nt)
        want, want_g = refl.binary_cross_entropy_with_logits(
            c["input"], c["target"], weight=c["weight"], pos_weight=c["pos_weight"],
            reduction=reduction, return_grad=True)
        close(loss, want, dtype, f"{operand} {layout} {reduction}")
        close(grad, want_g, dtype, f"{operand} {layout} {reduction} grad")
    if nt > 1:
        return   # the peers are checked on the one-thread sizes
    tc = {k: torch_f.from_numpy(v.astype(np.float64)) for k, v in c.items()}
    peer = torch_f.nn.functional.binary_cross_entropy_with_logits(
        tc["input"], tc["target"], weight=tc["weight"], pos_weight=tc["pos_weight"],
        reduction="sum").item()
    close(loss, peer, dtype, "torch")


# ---- entropy (pk, qk) and the softmax divergences (logits x, y) ----

@pytest.mark.parametrize("operand,layout", operand_cases(["pk", "qk"]))
def test_entropy(operand, layout, size, dtype):
    _, shape, nt = size
    ax = class_axis(shape)
    rng = np.random.default_rng(9)
    arrays = {"pk": rng.uniform(0, 1, shape).astype(dtype),
              "qk": rng.uniform(0.1, 1, shape).astype(dtype)}
    ops = pick(operand, layout, arrays)
    c = {k: np.ascontiguousarray(v) for k, v in ops.items()}
    got = fastxent.entropy(ops["pk"], ops["qk"], axis=ax, n_threads=nt)
    close(got, refl.entropy(c["pk"], c["qk"], axis=ax), dtype, f"{operand} {layout}")
    if operand == "pk":
        alone = fastxent.entropy(ops["pk"], axis=ax, n_threads=nt)
        close(alone, refl.entropy(c["pk"], axis=ax), dtype, f"{operand} {layout} alone")
    if nt > 1:
        return   # the peers are checked on the one-thread sizes
    from scipy.stats import entropy as sp_entropy
    close(got, sp_entropy(c["pk"].astype(np.float64), c["qk"].astype(np.float64), axis=ax),
          dtype, "scipy")


# softmax_entropy has one operand, the two others two
DIVERGENCE_CASES = ([("softmax_entropy", "x", lay) for lay in LAYOUTS] +
                    [(kind, op, lay) for kind in ("softmax_cross_entropy", "softmax_kl_div")
                     for op, lay in operand_cases(["x", "y"])])


@pytest.mark.parametrize("kind,operand,layout", DIVERGENCE_CASES)
def test_softmax_divergences(kind, operand, layout, size, dtype, torch_f):
    _, shape, nt = size
    ax = class_axis(shape)
    arrays = {"x": logits(shape, dtype, 10), "y": logits(shape, dtype, 11)}
    ops = pick(operand, layout, arrays)
    c = {k: np.ascontiguousarray(v) for k, v in ops.items()}
    f, r = getattr(fastxent, kind), getattr(refl, kind)
    if kind == "softmax_entropy":
        got, want = f(ops["x"], axis=ax, n_threads=nt), r(c["x"], axis=ax)
    else:
        got, want = f(ops["x"], ops["y"], axis=ax, n_threads=nt), r(c["x"], c["y"], axis=ax)
    close(got, want, dtype, f"{operand} {layout}")
    if nt > 1:
        return   # the peers are checked on the one-thread sizes
    tx = torch_f.from_numpy(c["x"].astype(np.float64)).movedim(ax, -1)
    ty = torch_f.from_numpy(c["y"].astype(np.float64)).movedim(ax, -1)
    dist = torch_f.distributions.Categorical
    if kind == "softmax_entropy":
        peer = dist(logits=tx).entropy()
    elif kind == "softmax_kl_div":
        peer = torch_f.distributions.kl_divergence(dist(logits=tx), dist(logits=ty))
    else:
        peer = -(torch_f.softmax(tx, -1) * torch_f.log_softmax(ty, -1)).sum(-1)
    close(got, peer.numpy(), dtype, "torch")
