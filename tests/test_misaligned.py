"""Misaligned operands and outputs: data one byte past an aligned address,
and fields of packed records (strides that are not whole elements).

The kernels load and store through typed pointers, so the Python layer
copies a misaligned operand first and computes a misaligned output into an
aligned array that it copies back.  Every operand and output of every
function, in each layout of the class axis and on the small-call paths,
gives bit for bit the result of aligned contiguous copies, and the
misaligned operands are not modified.
"""

import numpy as np
import pytest

from arrays import assert_bitwise_equal, misaligned

IGNORE = -100


def _record_field(a):
    """A copy of `a` as the field of a packed record: stride itemsize + 1,
    every element misaligned but the first."""
    rec = np.zeros(a.shape, [("pad", "u1"), ("f", a.dtype)])
    rec["f"] = a
    return rec["f"]


LAYOUTS = {"offset by one byte": misaligned, "packed record field": _record_field}


def _data(rng, shape, dtype):
    return (3 * rng.standard_normal(shape)).astype(dtype)


def _probs(rng, shape, dtype):
    return rng.uniform(0, 1, shape).astype(dtype)


def _labels(rng, shape, dtype):
    t = rng.integers(0, shape[1], shape[:1] + shape[2:])
    t.flat[::5] = IGNORE
    return t


def _class_weights(rng, shape, dtype):
    return rng.uniform(0.5, 2, shape[1]).astype(dtype)


# name -> (operand makers, call(fx, ops, out) -> tuple of results, output shape)
def _batch(shape):
    return shape[:1] + shape[2:]


FUNCS = {
    "logsumexp": ({"a": _data, "b": _probs},
                  lambda fx, o, out: (fx.logsumexp(o["a"], axis=1, b=o["b"], out=out),),
                  _batch),
    "logsumexp without b": ({"a": _data},
                            lambda fx, o, out: (fx.logsumexp(o["a"], axis=1, out=out),), _batch),
    "softmax": ({"x": _data}, lambda fx, o, out: (fx.softmax(o["x"], axis=1, out=out),),
                lambda s: s),
    "log_softmax": ({"x": _data},
                    lambda fx, o, out: (fx.log_softmax(o["x"], axis=1, out=out),), lambda s: s),
    "cross_entropy labels": (
        {"input": _data, "target": _labels, "weight": _class_weights},
        lambda fx, o, out: fx.cross_entropy(o["input"], o["target"], o["weight"],
                                            label_smoothing=0.1, return_grad=True,
                                            grad_out=out), lambda s: s),
    "cross_entropy probs": (
        {"input": _data, "target": _probs, "weight": _class_weights},
        lambda fx, o, out: fx.cross_entropy(o["input"], o["target"], o["weight"],
                                            return_grad=True, grad_out=out), lambda s: s),
    "cross_entropy rows": (
        {"input": _data, "target": _labels},
        lambda fx, o, out: (fx.cross_entropy(o["input"], o["target"], reduction="none"),),
        None),
    "nll_loss": ({"input": _data, "target": _labels, "weight": _class_weights},
                 lambda fx, o, out: fx.nll_loss(o["input"], o["target"], o["weight"],
                                                return_grad=True, grad_out=out), lambda s: s),
    "kl_div": ({"input": _data, "target": _probs},
               lambda fx, o, out: fx.kl_div(o["input"], o["target"], reduction="batchmean",
                                            return_grad=True, grad_out=out), lambda s: s),
    "kl_div none": ({"input": _data, "target": _data},
                    lambda fx, o, out: (fx.kl_div(o["input"], o["target"], reduction="none",
                                                  log_target=True),), None),
    "bce_with_logits": (
        {"input": _data, "target": _probs, "weight": _probs, "pos_weight": _class_weights},
        lambda fx, o, out: fx.binary_cross_entropy_with_logits(
            o["input"], o["target"], o["weight"],
            pos_weight=o["pos_weight"].reshape((-1,) + (1,) * (o["input"].ndim - 2)),
            return_grad=True, grad_out=out), lambda s: s),
    "entropy": ({"pk": _probs, "qk": _probs},
                lambda fx, o, out: (fx.entropy(o["pk"], o["qk"], axis=1),), None),
    "entropy without qk": ({"pk": _probs},
                           lambda fx, o, out: (fx.entropy(o["pk"], axis=1),), None),
    "softmax_entropy": ({"x": _data},
                        lambda fx, o, out: (fx.softmax_entropy(o["x"], axis=1),), None),
    "softmax_cross_entropy": ({"x": _data, "y": _data},
                              lambda fx, o, out: (fx.softmax_cross_entropy(o["x"], o["y"],
                                                                           axis=1),), None),
    "softmax_kl_div": ({"x": _data, "y": _data},
                       lambda fx, o, out: (fx.softmax_kl_div(o["x"], o["y"], axis=1),), None),
}

# the small-call paths (2-d, a few classes), rows of up to 64 classes,
# long rows, and PyTorch's class axis 1 of (N, C, d)
SHAPES = {"1 x 10": (1, 10), "short rows": (40, 5), "long rows": (3, 3000),
          "class axis 1": (4, 5, 6)}
DTYPES = (np.float64, np.float32, np.float16)


def _results(value):
    return tuple(np.array(v) if isinstance(v, np.ndarray) else v for v in value)


@pytest.mark.parametrize("dtype", DTYPES, ids=[np.dtype(d).name for d in DTYPES])
@pytest.mark.parametrize("shape", SHAPES, ids=list(SHAPES))
@pytest.mark.parametrize("name", FUNCS)
def test_misaligned_operands_and_outputs(fx, name, shape, dtype):
    makers, call, out_shape = FUNCS[name]
    shape = SHAPES[shape]
    rng = np.random.default_rng(len(name) + 100 * len(shape))
    ops = {k: make(rng, shape, dtype) for k, make in makers.items()}
    want = _results(call(fx, ops, None))
    cases = []
    for layout, moved in LAYOUTS.items():
        for k in ops:
            if ops[k].dtype.itemsize > 1:
                cases.append((f"{k} {layout}", {**ops, k: moved(ops[k])}, None))
        if out_shape is not None:
            res_dtype = np.asarray(want[-1]).dtype
            out = moved(np.full(out_shape(shape), np.nan, res_dtype))
            cases.append((f"out {layout}", ops, out))
            # everything at once
            cases.append((f"all {layout}", {k: moved(v) for k, v in ops.items()},
                          moved(np.full(out_shape(shape), np.nan, res_dtype))))
    for label, operands, out in cases:
        label = f"{name} {shape} {np.dtype(dtype).name}: {label}"
        before = {k: np.array(v) for k, v in operands.items()}
        got = call(fx, operands, out)
        if out is not None:
            assert got[-1] is out, label
        assert_bitwise_equal(_results(got), want, label)
        for k, v in operands.items():
            assert_bitwise_equal(np.array(v), before[k], f"{label}: {k} modified")
