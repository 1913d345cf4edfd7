"""A result never depends on the memory layout of an output.

Every function that writes an output (`out=`, `grad_out=`) is called on many
small random problems with the output C-ordered, F-ordered, sliced with a step
and reversed; the loss and every output element must be the same bits as with
the C-ordered output, on every CPU path.  (The sum order of a loss must not
depend on which loop wrote the gradient.)
"""
import numpy as np
import pytest

import fastxent

OUT_LAYOUTS = ("F", "strided", "reversed")
N_CASES = 200


def with_layout(a, layout):
    if layout == "C":
        return np.ascontiguousarray(a)
    if layout == "F":
        return np.asfortranarray(a)
    if layout == "strided":
        big = np.zeros(tuple(2 * n + 1 for n in a.shape), a.dtype)
        v = big[tuple(slice(1, None, 2) for _ in a.shape)]
        v[...] = a
        return v
    flip = tuple(slice(None, None, -1) for _ in a.shape)
    return np.ascontiguousarray(a[flip])[flip]


def bits(a):
    """The bytes of `a` (a scalar or array) in C order, for bitwise checks."""
    return np.ascontiguousarray(np.asarray(a)).view(np.uint8)


def assert_same_bits(got, want, what):
    assert got.dtype == want.dtype, what
    assert np.array_equal(bits(got), bits(want)), \
        f"{what}: {np.asarray(got).ravel()[:8]} vs {np.asarray(want).ravel()[:8]}"


def cases(seed):
    """Small random shapes (class axis 1; a third axis sometimes) and dtypes."""
    rng = np.random.default_rng(seed)
    for k in range(N_CASES):
        if k % 8 == 0:     # many short rows: the transposed-block kernels
            n, c = int(rng.integers(16, 150)), int(rng.integers(1, 17))
        elif k % 8 == 1:   # long rows: several folds and blocks
            n, c = int(rng.integers(1, 4)), int(rng.integers(257, 5000))
        else:
            n, c = int(rng.integers(1, 13)), int(rng.integers(1, 40))
        shape = (n, c) if rng.random() < 0.75 else (n, c, int(rng.integers(2, 5)))
        dtype = np.float32 if rng.random() < 0.5 else np.float64
        yield rng, shape, dtype


def out_calls(call, shape, dtype, what):
    """call(out) -> (loss, output) for a C-ordered output, then each layout."""
    loss0, out0 = call(np.full(shape, np.nan, dtype))
    for layout in OUT_LAYOUTS:
        loss, out = call(with_layout(np.full(shape, np.nan, dtype), layout))
        assert_same_bits(loss, loss0, f"{what} {layout} loss")
        assert_same_bits(out, out0, f"{what} {layout} output")


@pytest.fixture(params=["baseline", "avx2", "avx512"])
def path(request):
    if request.param not in fastxent.get_config()["cpu_paths"]:
        pytest.skip(f"no {request.param} path in this process (not on this CPU, or "
                    "FASTXENT_CPU forces another)")
    with fastxent.cpu_path(request.param):
        yield request.param


def test_cross_entropy(path):
    for k, (rng, shape, dtype) in enumerate(cases(1)):
        x = (rng.standard_normal(shape) * 4).astype(dtype)
        C = shape[1]
        probs = k % 3 == 0
        if probs:
            t = rng.uniform(0, 1, shape).astype(dtype)
        else:
            t = rng.integers(0, C, shape[:1] + shape[2:])
        w = rng.uniform(0.5, 2, C).astype(dtype) if k % 2 else None
        eps = 0.1 if k % 4 == 1 else 0.0
        red = ("none", "sum", "mean")[k % 3]
        out_calls(lambda g: fastxent.cross_entropy(x, t, weight=w, label_smoothing=eps,
                                                   reduction=red, return_grad=True,
                                                   grad_out=g),
                  shape, dtype, f"case {k} {shape} {dtype.__name__} {red}")


def test_nll_loss(path):
    for k, (rng, shape, dtype) in enumerate(cases(2)):
        x = rng.standard_normal(shape).astype(dtype)
        t = rng.integers(0, shape[1], shape[:1] + shape[2:])
        w = rng.uniform(0.5, 2, shape[1]).astype(dtype) if k % 2 else None
        out_calls(lambda g: fastxent.nll_loss(x, t, weight=w, reduction="mean",
                                              return_grad=True, grad_out=g),
                  shape, dtype, f"case {k} {shape}")


def test_kl_div(path):
    for k, (rng, shape, dtype) in enumerate(cases(3)):
        x = np.log(rng.uniform(0.01, 1, shape)).astype(dtype)
        t = rng.uniform(0, 1, shape).astype(dtype)
        lt = k % 2 == 1
        if lt:
            t = np.log(t)
        out_calls(lambda g: fastxent.kl_div(x, t, reduction="sum", log_target=lt,
                                            return_grad=True, grad_out=g),
                  shape, dtype, f"case {k} {shape} log_target={lt}")


def test_bce_with_logits(path):
    for k, (rng, shape, dtype) in enumerate(cases(4)):
        x = (rng.standard_normal(shape) * 3).astype(dtype)
        y = rng.uniform(0, 1, shape).astype(dtype)
        w = rng.uniform(0.5, 2, shape).astype(dtype) if k % 2 else None
        pw = rng.uniform(0.5, 2, shape[-1:]).astype(dtype) if k % 3 == 0 else None
        out_calls(lambda g: fastxent.binary_cross_entropy_with_logits(
                      x, y, weight=w, pos_weight=pw, reduction="mean", return_grad=True,
                      grad_out=g),
                  shape, dtype, f"case {k} {shape}")


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_out(name, path):
    f = getattr(fastxent, name)
    for k, (rng, shape, dtype) in enumerate(cases(5)):
        x = (rng.standard_normal(shape) * 3).astype(dtype)
        axis = k % len(shape)
        out_calls(lambda o: (np.float64(0), f(x, axis=axis, out=o)), shape, dtype,
                  f"case {k} {shape} axis={axis}")


def test_logsumexp_out(path):
    for k, (rng, shape, dtype) in enumerate(cases(6)):
        x = (rng.standard_normal(shape) * 3).astype(dtype)
        axis = k % len(shape)
        b = rng.uniform(-1, 2, shape).astype(dtype) if k % 3 == 0 else None
        rshape = shape[:axis] + shape[axis + 1:]
        out_calls(lambda o: (np.float64(0), fastxent.logsumexp(x, axis=axis, b=b, out=o)),
                  rshape, dtype, f"case {k} {shape} axis={axis}")
