"""Outputs that share memory with the operands.

Every function with an output (``out=``, ``grad_out=``) gives the right
result whatever memory the output shares with what it reads: exactly the
input of a kernel that works in place (computed in place), part of an input
or of a target, weight or label array (computed into a new array and copied,
as NumPy's ufuncs do), or interleaved with an input without touching it
(written directly).  Each case is built in a few memory pools and compared

* bit for bit with the same call on the same layouts in memory of their
  own (the output as a new array where the function buffers it), and
* to a few ulp with the call on contiguous copies (another kernel may
  round differently),

and memory outside the output is never written.  (No function takes two
outputs, so outputs cannot alias each other.)
"""

import zlib

import numpy as np
import pytest

from arrays import assert_agree, assert_bitwise_equal, assert_close, magnitude

# ---------------------------------------------------------------------------
# the functions with an output, called on a dict of operands

IGNORE = -100


def _lse(fx, ops, out):
    return None, fx.logsumexp(ops["a"], axis=1, b=ops.get("b"), out=out)


def _softmax(fx, ops, out):
    return None, fx.softmax(ops["input"], axis=1, out=out)


def _log_softmax(fx, ops, out):
    return None, fx.log_softmax(ops["input"], axis=1, out=out)


def _xent_probs(fx, ops, out):
    return fx.cross_entropy(ops["input"], ops["target"], weight=ops["weight"],
                            label_smoothing=0.1, return_grad=True, grad_out=out)


def _xent_labels(fx, ops, out):
    return fx.cross_entropy(ops["input"], ops["labels"], weight=ops["weight"],
                            label_smoothing=0.1, return_grad=True, grad_out=out)


def _nll(fx, ops, out):
    return fx.nll_loss(ops["input"], ops["labels"], weight=ops["weight"], return_grad=True,
                       grad_out=out)


def _kl(fx, ops, out):
    return fx.kl_div(ops["input"], ops["target"], reduction="batchmean", return_grad=True,
                     grad_out=out)


def _bce(fx, ops, out):
    return fx.binary_cross_entropy_with_logits(ops["input"], ops["target"], ops["weight"],
                                               pos_weight=ops["pos_weight"], return_grad=True,
                                               grad_out=out)


# name -> (call, {operand other than the input: its kind})
FUNCS = {
    "logsumexp": (_lse, {"b": "weights"}),
    "softmax": (_softmax, {}),
    "log_softmax": (_log_softmax, {}),
    "cross_entropy probs": (_xent_probs, {"target": "probs", "weight": "class"}),
    "cross_entropy labels": (_xent_labels, {"labels": "labels", "weight": "class"}),
    "nll_loss": (_nll, {"labels": "labels", "weight": "class"}),
    "kl_div": (_kl, {"target": "probs"}),
    "bce_with_logits": (_bce, {"target": "probs", "weight": "weights",
                               "pos_weight": "per class"}),
}

# layouts of the class axis (axis 1): rows of up to 64 classes (transposed
# block kernels), long rows (chunked row kernels), PyTorch's (N, C, d)
FAMILIES = {
    "1 x 10": (1, 10),
    "short rows": (16, 16),
    "short rows, tall": (40, 5),
    "long rows": (3, 3000),
    "class axis 1": (6, 5, 6),
}


def _shape_of(kind, shape):
    """The shape of an operand of `kind` for an input of `shape`."""
    if kind in ("data", "probs", "weights"):
        return shape
    if kind == "class":
        return (shape[1],)
    if kind == "per class":
        return (shape[1],) + (1,) * (len(shape) - 2)   # broadcasts (pos_weight)
    return shape[:1] + shape[2:]                       # labels, logsumexp's result


def _fill(kind, arr, rng):
    """Valid values for an operand, written into its (possibly shared) memory."""
    if kind == "labels":
        values = rng.integers(0, 2, arr.shape)        # class 0 or 1, some ignored
        values.flat[::7] = IGNORE
    elif kind == "probs":
        values = rng.uniform(0, 1, arr.shape)
    elif kind in ("weights", "class", "per class"):
        values = rng.uniform(0.5, 2, arr.shape)
    else:
        values = 3 * rng.standard_normal(arr.shape)
    arr[...] = values


def _pool(n, dtype):
    return np.zeros(n, dtype)


# ---------------------------------------------------------------------------
# where the output goes

def _scenarios(name, shape, dtype):
    """``(label, how, place)``: `place()` returns the operand views and the
    output, in new memory pools; `how` is 'in place', 'direct' or 'buffer':
    how the function is expected to write (for the bitwise reference)."""
    others = FUNCS[name][1]
    first = "a" if name == "logsumexp" else "input"
    kinds = {first: "data", **others}
    n = int(np.prod(shape))
    out_shape = _shape_of("labels", shape) if name == "logsumexp" else shape
    full = [k for k, kind in kinds.items() if _shape_of(kind, shape) == shape
            and kind != "labels"]
    small = [k for k in kinds if k not in full]

    def separate(skip=()):
        """Each operand in a pool of its own (but those in `skip`)."""
        ops = {}
        for k in kinds:
            if k not in skip:
                s = _shape_of(kinds[k], shape)
                ops[k] = _pool(int(np.prod(s)), np.int64 if kinds[k] == "labels" else dtype
                               ).reshape(s)
        return ops

    out_is_full = out_shape == shape
    for k in full:
        in_place = k == first and out_is_full
        if out_is_full:
            def exact(k=k):
                ops = separate()
                return ops, ops[k]
            yield f"out is {k}", "in place" if in_place else "buffer", exact

            def exact_view(k=k):
                ops = separate((k,))
                ops[k] = _pool(2 * n, dtype).reshape(shape[:1] + (2 * shape[1],) + shape[2:]
                                                     )[:, ::-2]
                return ops, ops[k]
            yield f"out is {k}, a reversed strided view", \
                "in place" if in_place else "buffer", exact_view

            for shift in (1, -1, shape[1] if len(shape) == 2 else shape[1] * shape[2]):
                def shifted(k=k, shift=shift):
                    ops = separate((k,))
                    pool = _pool(n + abs(shift), dtype)
                    lo, hi = (0, shift) if shift > 0 else (-shift, 0)
                    ops[k] = pool[lo:lo + n].reshape(shape)
                    return ops, pool[hi:hi + n].reshape(shape)
                yield f"out is {k} shifted by {shift}", "buffer", shifted

            def reversed0(k=k):
                ops = separate()
                return ops, ops[k][::-1]
            yield f"out is {k}[::-1]", "buffer", reversed0

            def reversed1(k=k):
                ops = separate()
                return ops, ops[k][:, ::-1]
            yield f"out is {k}[:, ::-1]", "buffer", reversed1

            if shape[0] == shape[-1]:
                def transposed(k=k):
                    ops = separate()
                    return ops, ops[k].T
                yield f"out is {k}.T", "buffer", transposed

            def interleaved(k=k):
                ops = separate((k,))
                pool = _pool(2 * n, dtype).reshape(shape[:-1] + (2 * shape[-1],))
                ops[k] = pool[..., ::2]
                return ops, pool[..., 1::2]
            yield f"out interleaved with {k}", "direct", interleaved
        else:
            # logsumexp: a row or column of an operand, or its first elements
            def column(k=k):
                ops = separate()
                return ops, ops[k][:, 0]
            yield f"out is {k}[:, 0]", "buffer", column

            def head(k=k):
                ops = separate((k,))
                pool = _pool(n + 1, dtype)
                ops[k] = pool[:n].reshape(shape)
                return ops, pool[1:1 + int(np.prod(out_shape))].reshape(out_shape)
            yield f"out over the start of {k}", "buffer", head

    for k in small:
        if kinds[k] == "labels" and np.dtype(dtype).itemsize == 2:
            continue    # int64 labels inside a float16 output: not worth the arithmetic

        def inside(k=k):
            ops = separate((k,))
            size = int(np.prod(out_shape))
            pool = _pool(size, dtype)
            m = int(np.prod(_shape_of(kinds[k], shape)))
            if kinds[k] == "labels":
                ops[k] = pool.view(np.int64)[:m].reshape(_shape_of("labels", shape))
            else:
                start = 1 if m < size else 0
                ops[k] = pool[start:start + m].reshape(_shape_of(kinds[k], shape))
            return ops, pool.reshape(out_shape)
        yield f"{k} inside out", "buffer", inside


# ---------------------------------------------------------------------------
# the harness

def _root(a):
    while a.base is not None and isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _offset(v, root):
    return v.__array_interface__["data"][0] - root.__array_interface__["data"][0]


def _rebuilt(v, copies):
    """The view `v` (of a pool) with the same offset and strides in the copy
    of its pool in `copies` (keyed by id of the pool)."""
    root = _root(v)
    return np.ndarray(v.shape, v.dtype, buffer=copies[id(root)], offset=_offset(v, root),
                      strides=v.strides)


def _footprint(out, root):
    """Bytes of `root` (a 1-d pool) that `out` covers."""
    mask = np.zeros(root.nbytes, np.uint8)
    view = np.ndarray(out.shape, f"u{out.itemsize}", buffer=mask, offset=_offset(out, root),
                      strides=out.strides)
    view[...] = np.iinfo(view.dtype).max
    return mask != 0


def _check_case(fx, name, shape, dtype, label, how, place, rng):
    call = FUNCS[name][0]
    kinds = {"a": "data", "input": "data", **FUNCS[name][1]}
    ops, out = place()
    for k, v in ops.items():
        _fill(kinds[k], v, rng)
    roots = {id(_root(v)): _root(v) for v in list(ops.values()) + [out]}
    before = {i: r.copy() for i, r in roots.items()}

    # the same layouts in memory of their own
    copies = {i: r.copy() for i, r in roots.items()}
    ops_b = {k: _rebuilt(v, copies) for k, v in ops.items()}
    if how == "buffer":
        # the function's buffer: in the input's memory order where the
        # output has the input's shape
        data_b = ops_b.get("input", ops_b.get("a"))
        out_b = np.empty_like(data_b if data_b.shape == out.shape else out)
    else:
        own = _root(out).copy()
        out_b = _rebuilt(out, {id(_root(out)): own})
    want_loss, want = call(fx, ops_b, out_b)
    # contiguous copies, a new output
    truth_loss, truth = call(fx, {k: np.ascontiguousarray(v) for k, v in ops.items()}, None)

    loss, got = call(fx, ops, out)
    assert got is out, label
    assert_bitwise_equal(np.array(out), np.array(want), label)
    if want_loss is not None:
        assert_bitwise_equal(loss, want_loss, label + " (loss)")
    data = ops.get("input", ops.get("a"))
    fname = name.split()[0]
    if fname in ("logsumexp", "softmax", "log_softmax"):
        src = np.ascontiguousarray(_rebuilt(data, copies))
        assert_agree(np.array(out), truth, src, fname, label + " (against contiguous copies)")
    else:
        eps = float(np.finfo(dtype).eps)
        scale = max(magnitude(np.ascontiguousarray(_rebuilt(v, copies)))
                    for k, v in ops.items() if kinds[k] != "labels")
        assert_close(np.array(out), truth, rtol=16 * eps, atol=16 * eps * scale,
                     err_msg=label + " grad (against contiguous copies)")
        assert_close(loss, truth_loss, rtol=16 * eps, atol=16 * eps * scale * out.size,
                     err_msg=label + " loss (against contiguous copies)")
    # nothing outside the output was written
    for i, root in roots.items():
        keep = ~_footprint(out, root) if _root(out) is root else np.ones(root.nbytes, bool)
        assert np.array_equal(root.view(np.uint8)[keep], before[i].view(np.uint8)[keep]), (
            f"{label}: memory outside the output was written")


DTYPES = (np.float64, np.float32)


@pytest.mark.parametrize("dtype", DTYPES, ids=[np.dtype(d).name for d in DTYPES])
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("name", FUNCS)
def test_output_overlapping_an_operand(fx, name, family, dtype):
    shape = FAMILIES[family]
    rng = np.random.default_rng(zlib.crc32(f"{name} {family}".encode()))
    failures = []
    count = 0
    for label, how, place in _scenarios(name, shape, dtype):
        count += 1
        try:
            _check_case(fx, name, shape, dtype, f"{name} {family} {label}", how, place, rng)
        except AssertionError as exc:
            failures.append(str(exc))
    assert count > 0
    assert not failures, f"{len(failures)} of {count} cases failed:\n\n" + "\n\n".join(
        failures[:8])


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_float16_out_overlapping_the_input(fx, name):
    # float16 is computed in float32 and stored back: same rules
    rng = np.random.default_rng(3)
    for shape in FAMILIES.values():
        for label, how, place in _scenarios(name, shape, np.float16):
            _check_case(fx, name, shape, np.float16, f"{name} {shape} {label}", how, place, rng)


def test_overlap_too_hard_to_decide_is_taken_as_overlap(fx, monkeypatch):
    # with little effort allowed, np.shares_memory gives up on these two
    # disjoint views of one pool: the result then goes through a buffer,
    # still right, and nothing outside the output is written
    from fastxent import _layout

    monkeypatch.setattr(_layout, "_MAX_WORK", 1)
    as_strided = np.lib.stride_tricks.as_strided
    pool = np.random.default_rng(4).standard_normal(500)
    x = as_strided(pool, (5, 5), (432, 144))
    out = as_strided(pool[44:], (5, 5), (432, 320))
    assert not np.shares_memory(out, x)
    with pytest.raises(np.exceptions.TooHardError):
        np.shares_memory(out, x, max_work=1)
    before = pool.copy()
    want = fx.log_softmax(np.array(x), axis=1)
    assert fx.log_softmax(x, axis=1, out=out) is out
    assert_agree(np.array(out), want, np.array(x), "log_softmax")
    written = np.zeros(pool.shape, bool)
    as_strided(written[44:], (5, 5), (432 // 8, 320 // 8))[...] = True
    np.testing.assert_array_equal(pool[~written], before[~written])
