"""Differential fuzz test: every public function against its plain-NumPy twin.

One registry (:data:`REGISTRY`) lists the public functions, each with a
hypothesis strategy that builds its arguments (from the operand strategies
of ``strategies.py``) and the tolerances of its results; one test runs every
entry.  A new function joins with one entry, and
:func:`test_registry_covers_the_public_functions` fails until it has one.

Each example draws shapes (empty dimensions, 0-d where allowed, many short
rows, long rows, ``(N, C, d1)``), dtypes (float16/32/64, integers where
allowed), axes and options, and for every operand separately (the data,
targets, weights, ``b``, ``pos_weight``, ``qk``, ``out=``, ``grad_out=``) a
memory layout: C, Fortran, sliced and negative strides, offset, broadcast,
misaligned, a packed record field, byte-swapped, read-only; outputs may also
be the input itself or overlap it, or be invalid (read-only, byte-swapped:
``ValueError``).  Then it checks that

* the function raises what the reference raises, or returns the same type,
  dtype and shape, with NaN and infinities in the same places and values
  within the tolerance of the result's dtype (below);
* an output argument is the array returned, and nothing around it was
  written;
* no input (nor any byte around it) was modified.

Tolerances, as in the modules of each function: relative 1e-13 for float64
(the reference computes in float64 too; both are a few ulp from exact),
2e-6 for float32 (the losses compute in float64 and round once; the
reference of the softmax family sums in float32), 2e-3 for float16 (one
rounding of nearly the same float32 value); plus the same factor times the
magnitude a result is computed from (the absolute rounding error of a
shifted or cancelling sum, e.g. ``lse - x`` for large logits).  A weighted
``logsumexp`` whose sum cancels (negative ``b``) is compared only where the
condition number of the sum is below 1e3.

Run longer with ``FASTXENT_HYPOTHESIS_PROFILE=thorough``.
"""

import math

import numpy as np
import pytest

pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402

import fastxent as fx  # noqa: E402
from arrays import assert_close, axes_for, outcome  # noqa: E402
from fastxent import reference as ref  # noqa: E402
from fastxent import reference as rl  # noqa: E402
from strategies import (  # noqa: E402
    FLOAT_DTYPES,
    INT_DTYPES,
    Operand,
    broadcastable_to,
    class_shapes,
    is_bad_output,
    laid_out,
    labels,
    logits,
    mutually_broadcastable,
    n_threads,
    outputs,
    probabilities,
    shapes,
    weights,
)

CONFIG_HELPERS = {"get_config", "show_config", "cpu_path"}
# summaries built on score_rows, tested in test_scorer.py and test_score_files.py
EVALUATION = {"score", "Scorer", "score_file"}
RTOL = {np.float64: 1e-13, np.float32: 2e-6, np.float16: 2e-3}
# a cancelling weighted sum is compared where its condition number is below this
MAX_CONDITION = 1e3
# examples per registry entry: two thirds of the profile's (40 of the default
# 60, so that the module takes about a minute on two busy cores)
EXAMPLES = max(1, settings.default.max_examples * 2 // 3)

pytestmark = [
    pytest.mark.filterwarnings("ignore::RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:reduction. 'mean' divides:UserWarning"),
]


# ---------------------------------------------------------------------------
# a case: the arguments of one call, as operands in their layouts

class Case:
    """The arguments of one call.  `operands` maps argument names to
    :class:`strategies.Operand` inputs, `outs` names to output operands (or
    None), `options` the other arguments (given to both implementations),
    `extra` the keyword arguments only fastxent takes."""

    def __init__(self, operands, options=None, outs=None, extra=None, aliases=()):
        self.operands = operands
        self.options = options or {}
        self.outs = {k: v for k, v in (outs or {}).items() if v is not None}
        self.extra = extra or {}
        self.aliases = set(aliases)  # inputs that are also an output

    def fx_kwargs(self):
        kw = {k: op.array for k, op in self.operands.items()}
        kw.update({k: op.array for k, op in self.outs.items()})
        return {**kw, **self.options, **self.extra}

    def ref_kwargs(self):
        return {**{k: op.values for k, op in self.operands.items()}, **self.options}

    def __repr__(self):
        parts = [f"{k}={op!r}" for k, op in {**self.operands, **self.outs}.items()]
        parts += [f"{k}={v!r}" for k, v in {**self.options, **self.extra}.items()]
        return "Case(" + ", ".join(parts) + ")"


@st.composite
def output_for(draw, shape, dtype, x_op=None, bad=True):
    """`outputs` plus, when `x_op` can hold the result, the input itself
    (documented as allowed) or an array overlapping it one element further
    on (as if the result were written to a fresh array and copied)."""
    kind = draw(st.sampled_from(["drawn"] * 6 + ["input itself", "overlaps input"]))
    usable = (x_op is not None and x_op.array.flags.writeable and x_op.array.shape == shape
              and x_op.array.dtype == dtype
              and not any(s % x_op.array.itemsize for s in x_op.array.strides))
    if kind == "drawn" or not usable:
        return draw(outputs(shape, dtype, bad=bad)), False
    if kind == "input itself":
        return x_op, True
    if x_op.arena is None:
        return None, False
    a = x_op.array
    start = a.__array_interface__["data"][0] - x_op.arena.ctypes.data + a.itemsize
    if start + _extent(a) > x_op.arena.size:
        return None, False
    view = np.ndarray(a.shape, a.dtype, buffer=x_op.arena, offset=start, strides=a.strides)
    op = Operand(view, "overlaps input", x_op.arena, np.zeros(x_op.arena.size, bool))
    op.mask[...] = True  # the input's bytes may change: it is an output too
    return op, True


def _extent(a):
    """Bytes from the first element of `a` to the end of its last one (for
    non-negative strides; negative ones start at the end)."""
    if a.size == 0:
        return 0
    return sum((n - 1) * s for n, s in zip(a.shape, a.strides) if s > 0) + a.itemsize


# ---------------------------------------------------------------------------
# tolerances

def _rtol(dtype):
    return RTOL[np.dtype(dtype).type]


def _finite_abs(a):
    a = np.abs(np.asarray(a, dtype=np.float64))
    return np.where(np.isfinite(a), a, 0.0)


def _magnitude(*arrays):
    """max(1, largest finite |value|) of `arrays`."""
    m = [float(_finite_abs(a).max()) for a in arrays if np.size(a)]
    return max([1.0] + m)


class Tol:
    """The tolerance of one result: relative, absolute (a number or per
    element) and a mask of elements not compared (or None)."""

    def __init__(self, rtol, atol=0.0, skip=None):
        self.rtol, self.atol, self.skip = rtol, atol, skip


def _dtype_of(result):
    return np.asarray(result).dtype


def tol_softmax_family(name):
    def tol(case, want):
        x = case.operands["x"].values
        dtype = _dtype_of(want)
        rtol = _rtol(dtype)
        # the reference sums the n terms of a row in its working dtype
        # (float16 in float32), one after the other along a strided axis:
        # its sum is off by up to (n - 1) half-ulps, which softmax carries as
        # a relative error and log_softmax (through log1p(s / k), s / (k + s)
        # <= 1) as an absolute one
        axis = case.options["axis"]
        shape = np.shape(x)
        axes = range(len(shape)) if axis is None else np.atleast_1d(axis)
        n = math.prod(shape[a] for a in axes) if shape else 1
        work = np.float32 if dtype == np.float16 else dtype
        sum_err = n * float(np.finfo(work).eps) / 2
        if name == "softmax":
            return [Tol(rtol + sum_err, float(np.finfo(dtype).tiny))]
        return [Tol(rtol, 8 * float(np.finfo(dtype).eps) * _magnitude(x) + sum_err)]
    return tol


def tol_logsumexp(case, want):
    a = case.operands["a"].values.astype(np.float64)
    res = want[0] if isinstance(want, tuple) else want
    dtype = _dtype_of(res)
    rtol = _rtol(dtype)
    eps = float(np.finfo(dtype).eps)
    atol = 8 * eps * _magnitude(a) + rtol
    skip = None
    if "b" in case.operands:
        b = np.asarray(case.operands["b"].values, dtype=np.float64)
        axis = case.options["axis"]
        a_b, b_b = np.broadcast_arrays(np.atleast_1d(a), np.atleast_1d(b))
        with np.errstate(all="ignore"):
            a_b = np.where(b_b == 0, -np.inf, a_b)
            m = np.max(a_b, axis=axis, keepdims=True) if a_b.size else a_b
            m = np.where(np.isfinite(m), m, 0.0)
            e = np.exp(a_b - m)
            total = np.sum(b_b * e, axis=axis, keepdims=case.options["keepdims"])
            size = np.sum(np.abs(b_b) * e, axis=axis, keepdims=case.options["keepdims"])
            cond = np.where(size == 0, 1.0, size / np.abs(total))
        cond = np.where(np.isnan(cond), 1.0, cond)
        skip = np.reshape(cond > MAX_CONDITION, np.shape(res))
        atol = atol + 64 * eps * np.reshape(np.where(skip, 0, cond), np.shape(res))
    tols = [Tol(rtol, atol, skip)]
    if isinstance(want, tuple):
        tols.append(Tol(0.0, 0.0, skip))
    return tols


def _class_last(a):
    return a if a.ndim == 1 else np.moveaxis(a, 1, -1)


def _reduce_scale(per_row, reduction, denominator):
    if reduction == "none":
        return per_row
    total = float(np.sum(per_row))
    if reduction == "sum":
        return total
    return total / abs(denominator) if denominator else 0.0


def tol_cross_entropy(case, want):
    """Per row, the coefficients ``a_c`` of ``sum_c a_c (lse - x_c)`` times
    the magnitude of its terms; the gradient ``W softmax - a`` by ``sum |a|``."""
    x = case.operands["input"].values.astype(np.float64)
    t = case.operands["target"].values
    w = case.operands["weight"].values if "weight" in case.operands else None
    eps = case.options["label_smoothing"]
    reduction = case.options["reduction"]
    xm = _class_last(x)
    C = xm.shape[-1]
    w_abs = np.ones(C) if w is None else _finite_abs(w)
    uniform = eps / C if C else 0.0
    if t.dtype.kind == "f":
        coef = _finite_abs(_class_last(t.astype(np.float64))) * (1 - eps) + uniform
        per_row = np.sum(coef * w_abs, axis=-1) if C else np.zeros(xm.shape[:-1])
        denominator = per_row.size
    else:
        ignored = t == case.options["ignore_index"]
        idx = np.where(ignored | (t < 0) | (t >= C), 0, t).astype(np.intp)
        w_t = np.where(ignored, 0.0, w_abs[idx] if C else 0.0)
        per_row = (1 - eps) * w_t + uniform * np.sum(w_abs)
        per_row = np.where(ignored, 0.0, per_row)
        wt_signed = np.where(ignored, 0.0, (np.ones(C) if w is None else
                                            np.asarray(w, np.float64))[idx] if C else 0.0)
        denominator = float(np.sum(wt_signed))
    terms = 2 * _magnitude(x) + math.log(max(C, 1)) + 1
    dtype = _dtype_of(want[0] if isinstance(want, tuple) else want)
    rtol = _rtol(dtype)
    loss_atol = rtol * _reduce_scale(per_row * terms, reduction, denominator)
    tols = [Tol(rtol, loss_atol)]
    if isinstance(want, tuple):
        g = 2 * per_row
        if reduction == "mean":
            g = g / abs(denominator) if denominator else np.zeros_like(g)
        g = np.broadcast_to(np.asarray(g)[..., None], xm.shape)
        g = g if x.ndim == 1 else np.moveaxis(g, -1, 1)
        grtol = _rtol(_dtype_of(want[1]))
        tols.append(Tol(grtol, grtol * g + float(np.finfo(_dtype_of(want[1])).tiny)))
    return tols


def tol_nll_loss(case, want):
    x = case.operands["input"].values.astype(np.float64)
    t = case.operands["target"].values
    w = case.operands["weight"].values if "weight" in case.operands else None
    reduction = case.options["reduction"]
    xm = _class_last(x)
    C = xm.shape[-1]
    w_full = np.ones(C) if w is None else np.asarray(w, np.float64)
    ignored = t == case.options["ignore_index"]
    idx = np.where(ignored | (t < 0) | (t >= C), 0, t).astype(np.intp)
    if C:
        picked = np.take_along_axis(xm, np.asarray(idx)[..., None], axis=-1)[..., 0]
        w_t = np.where(ignored, 0.0, w_full[idx])
    else:
        picked = w_t = np.zeros(np.shape(t))
    per_row = _finite_abs(w_t * picked)
    denominator = float(np.sum(w_t))
    dtype = _dtype_of(want[0] if isinstance(want, tuple) else want)
    rtol = _rtol(dtype)
    tols = [Tol(rtol, rtol * _reduce_scale(per_row, reduction, denominator))]
    if isinstance(want, tuple):
        tols.append(Tol(rtol, float(np.finfo(dtype).tiny)))
    return tols


def tol_kl_div(case, want):
    x = np.asarray(case.operands["input"].values, np.float64)
    t = np.asarray(case.operands["target"].values, np.float64)
    log_target = case.options["log_target"]
    reduction = case.options["reduction"]
    with np.errstate(all="ignore"):
        if log_target:
            p = np.exp(t)
            s = p * (np.abs(t) + np.abs(x))
        else:
            p = t
            s = np.abs(t * np.log(np.abs(t))) + np.abs(t * x)
    s = np.where(np.isfinite(s), s, 0.0)
    full = np.broadcast_shapes(x.shape, t.shape)
    s = np.broadcast_to(s, full)
    count = {"mean": int(np.prod(full)), "batchmean": x.shape[0] if x.ndim else 1}.get(
        reduction, 1)
    dtype = _dtype_of(want[0] if isinstance(want, tuple) else want)
    rtol = _rtol(dtype)
    loss_atol = rtol * (s if reduction == "none" else float(np.sum(s)) / (count or 1))
    tols = [Tol(rtol, loss_atol)]
    if isinstance(want, tuple):
        g = np.broadcast_to(_finite_abs(p), full) / (count or 1)
        g = rl._sum_to_shape(g, x.shape).reshape(x.shape)
        grtol = _rtol(_dtype_of(want[1]))
        tols.append(Tol(grtol, grtol * g))
    return tols


def tol_bce(case, want):
    x = np.asarray(case.operands["input"].values, np.float64)
    w = _finite_abs(case.operands["weight"].values) if "weight" in case.operands else 1.0
    pw = _finite_abs(case.operands["pos_weight"].values) if "pos_weight" in case.operands \
        else 1.0
    y = _finite_abs(case.operands["target"].values)
    reduction = case.options["reduction"]
    s = np.broadcast_to(w * (1 + pw) * (1 + y) * (_finite_abs(x) + 1), x.shape)
    n = s.size
    dtype = _dtype_of(want[0] if isinstance(want, tuple) else want)
    rtol = _rtol(dtype)
    loss = s if reduction == "none" else float(np.sum(s)) / (n if reduction == "mean" and n
                                                             else 1)
    tols = [Tol(rtol, rtol * loss)]
    if isinstance(want, tuple):
        g = np.broadcast_to(w * (1 + pw) * (1 + y), x.shape)
        g = g / n if reduction == "mean" and n else g
        grtol = _rtol(_dtype_of(want[1]))
        tols.append(Tol(grtol, grtol * g + float(np.finfo(_dtype_of(want[1])).tiny)))
    return tols


def tol_entropy(case, want):
    pk = case.operands["pk"].values
    qk = case.operands["qk"].values if "qk" in case.operands else None
    axis, base = case.options["axis"], case.options["base"]
    arrays = [np.asarray(pk, np.float64)] + ([] if qk is None else [np.asarray(qk, np.float64)])
    arrays = np.broadcast_arrays(*arrays)
    if axis is None:
        arrays, axis = [a.ravel() for a in arrays], 0
    arrays = [np.atleast_1d(a) for a in arrays]
    with np.errstate(all="ignore"):
        norm = [np.abs(a) / np.sum(np.abs(a), axis=axis, keepdims=True) for a in arrays]
        p = norm[0]
        s = np.abs(p * np.log(p))
        if qk is not None:
            s = s + np.abs(p * np.log(norm[1]))
        s = np.sum(np.where(np.isfinite(s), s, 0.0), axis=axis)
        if base is not None:
            s = s / abs(math.log(base))
    s = np.where(np.isfinite(s), s, 0.0) + 1.0
    rtol = _rtol(_dtype_of(want))
    return [Tol(rtol, rtol * s)]


def tol_of_logits(case, want):
    arrays = [op.values for op in case.operands.values()]
    rtol = _rtol(_dtype_of(want))
    return [Tol(rtol, rtol * _magnitude(*arrays))]


# ---------------------------------------------------------------------------
# argument strategies, one per function

def _axis(ndim, tuples=True):
    choices = axes_for(ndim) if ndim else [None, 0, -1]
    if not tuples:
        choices = [a for a in choices if isinstance(a, int)] or [-1]
    last = [-1] if ndim else []
    return st.sampled_from(last * 3 + choices)


def _row_axis(axis, ndim):
    return axis if isinstance(axis, int) and ndim else None


def _kept_shape(shape, axis, keepdims):
    shape = shape or (1,)
    axes = range(len(shape)) if axis is None else (axis if isinstance(axis, tuple) else (axis,))
    axes = {a % len(shape) for a in axes}
    if keepdims:
        return tuple(1 if i in axes else n for i, n in enumerate(shape))
    return tuple(n for i, n in enumerate(shape) if i not in axes)


@st.composite
def logsumexp_cases(draw):
    shape = draw(shapes())
    axis = draw(_axis(len(shape)))
    a = draw(logits(shape, dtypes=FLOAT_DTYPES + INT_DTYPES[:3] + (np.bool_,),
                    row_axis=_row_axis(axis, len(shape))))
    operands = {"a": draw(laid_out(a))}
    options = {"axis": axis, "keepdims": draw(st.booleans()), "return_sign": draw(st.booleans())}
    b_kind = draw(st.sampled_from(["none", "none", "array", "negative", "scalar"]))
    dtypes = [a.dtype]
    if b_kind == "scalar":  # a Python number: weak in NumPy's promotion
        options["b"] = draw(st.sampled_from([2.5, 0.0, -1.0, 1e-300]))
        if options["b"] < 0:
            options["return_sign"] = True
    elif b_kind != "none":
        b = draw(weights(draw(broadcastable_to(shape))))
        if b_kind == "negative":
            rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
            b = np.where(rng.random(b.shape) < 0.5, b, -b).astype(b.dtype)
        operands["b"] = draw(laid_out(b))
        dtypes.append(b.dtype)
    dtype = np.result_type(*dtypes, 1.0)
    if dtype.kind != "f":
        dtype = np.dtype(np.float64)
    out_shape = _kept_shape(shape, axis, options["keepdims"])
    out, _ = draw(output_for(out_shape, dtype))
    return Case(operands, options, {"out": out}, {"n_threads": draw(n_threads())})


def softmax_cases(name):
    @st.composite
    def cases(draw):
        shape = draw(shapes())
        axis = draw(_axis(len(shape)))
        x = draw(logits(shape, dtypes=FLOAT_DTYPES + INT_DTYPES[:4],
                        row_axis=_row_axis(axis, len(shape))))
        x_op = draw(laid_out(x))
        dtype = np.exp(np.zeros(0, x.dtype)).dtype
        out, alias = draw(output_for(shape, dtype, x_op))
        return Case({"x": x_op}, {"axis": axis}, {"out": out}, {"n_threads": draw(n_threads())},
                    aliases=["x"] if alias else [])
    return cases()


@st.composite
def class_loss_cases(draw, name, target_kind):
    shape = draw(class_shapes())
    C = shape[1] if len(shape) > 1 else shape[0]
    rows = shape[:1] + shape[2:] if len(shape) > 1 else ()
    class_axis = 1 if len(shape) > 1 else 0
    x = draw(logits(shape, dtypes=FLOAT_DTYPES, row_axis=class_axis))
    if name == "nll_loss" and draw(st.booleans()):
        x = rl._log_softmax_rows(x.astype(np.float64), class_axis)[0].astype(x.dtype)
    x_op = draw(laid_out(x))
    options = {"reduction": draw(st.sampled_from(["mean", "sum", "none"]))}
    operands = {"input": x_op}
    if target_kind == "probabilities":
        t = draw(probabilities(shape, normalized_axis=class_axis))
        operands["target"] = draw(laid_out(t))
        options["ignore_index"] = -100
    else:
        ignore_index = draw(st.sampled_from([-100, -1, 0, 2, C]))
        options["ignore_index"] = ignore_index
        operands["target"] = draw(laid_out(draw(labels(rows, C, ignore_index))))
    if name == "cross_entropy":
        options["label_smoothing"] = draw(st.sampled_from([0.0, 0.0, 0.1, 1.0]))
    if draw(st.booleans()):
        operands["weight"] = draw(laid_out(draw(weights((C,)))))
    options["return_grad"] = draw(st.booleans())
    extra, outs, aliases = {}, {}, []
    if options["return_grad"]:
        outs["grad_out"], alias = draw(output_for(shape, x.dtype, x_op))
        aliases = ["input"] if alias else []
    if name == "cross_entropy":
        extra["n_threads"] = draw(n_threads())
    return Case(operands, options, outs, extra, aliases)


@st.composite
def kl_div_cases(draw):
    x_shape, t_shape = draw(mutually_broadcastable(draw(shapes(max_dims=3))))
    log_target = draw(st.booleans())
    x = draw(logits(x_shape))
    if log_target:
        t = draw(logits(t_shape))
    else:
        t = draw(probabilities(t_shape, dtypes=FLOAT_DTYPES + (np.int32, np.uint8, np.bool_)))
    x_op = draw(laid_out(x))
    operands = {"input": x_op, "target": draw(laid_out(t))}
    options = {"reduction": draw(st.sampled_from(["mean", "batchmean", "sum", "none"])),
               "log_target": log_target}
    options["return_grad"] = draw(st.booleans())
    extra, outs, aliases = {"n_threads": draw(n_threads())}, {}, []
    if options["return_grad"]:
        outs["grad_out"], alias = draw(output_for(x_shape, x.dtype, x_op))
        aliases = ["input"] if alias else []
    return Case(operands, options, outs, extra, aliases)


@st.composite
def bce_cases(draw):
    shape = draw(shapes(max_dims=3))
    x = draw(logits(shape))
    y = draw(probabilities(shape, dtypes=FLOAT_DTYPES + (np.int64, np.bool_)))
    x_op = draw(laid_out(x))
    operands = {"input": x_op, "target": draw(laid_out(y))}
    for name in ("weight", "pos_weight"):
        if draw(st.booleans()):
            operands[name] = draw(laid_out(draw(weights(draw(broadcastable_to(shape))))))
    options = {"reduction": draw(st.sampled_from(["mean", "sum", "none"]))}
    options["return_grad"] = draw(st.booleans())
    extra, outs, aliases = {"n_threads": draw(n_threads())}, {}, []
    if options["return_grad"]:
        outs["grad_out"], alias = draw(output_for(shape, x.dtype, x_op))
        aliases = ["input"] if alias else []
    return Case(operands, options, outs, extra, aliases)


@st.composite
def entropy_cases(draw):
    shape = draw(shapes(max_dims=3))
    dtypes = FLOAT_DTYPES + (np.int64, np.uint8, np.bool_)
    with_qk = draw(st.booleans())
    p_shape, q_shape = draw(mutually_broadcastable(shape)) if with_qk else (shape, None)
    ndim = len(shape)
    axis = draw(st.sampled_from([None] + (list(range(-ndim, ndim)) if ndim else [0, -1])))
    operands = {"pk": draw(laid_out(draw(probabilities(p_shape, dtypes=dtypes))))}
    if with_qk:
        operands["qk"] = draw(laid_out(draw(probabilities(q_shape, dtypes=dtypes))))
    options = {"axis": axis, "base": draw(st.sampled_from([None, None, 2, 10.0, 0.5, math.e]))}
    return Case(operands, options, extra={"n_threads": draw(n_threads())})


def logit_cases(names):
    @st.composite
    def cases(draw):
        shape = draw(shapes(min_dims=0, max_dims=3))
        ndim = len(shape)
        axis = draw(_axis(ndim, tuples=False)) if ndim else -1
        pair = draw(mutually_broadcastable(shape)) if len(names) == 2 else (shape,)
        dtypes = FLOAT_DTYPES + (np.int8, np.int16, np.int64, np.uint8)
        operands = {}
        for name, s in zip(names, pair):
            row_axis = _row_axis(axis, ndim) if len(s) == ndim else None
            operands[name] = draw(laid_out(draw(logits(s, dtypes=dtypes, row_axis=row_axis))))
        return Case(operands, {"axis": axis}, extra={"n_threads": draw(n_threads())})
    return cases()


# ---------------------------------------------------------------------------
# the registry

class Entry:
    """A public function: its name in fastxent, the reference, a strategy
    of :class:`Case`, and the tolerances of its results."""

    def __init__(self, name, reference, cases, tolerances, label=None):
        self.name, self.reference, self.cases, self.tolerances = name, reference, cases, tolerances
        self.label = label or name


REGISTRY = [
    Entry("logsumexp", ref.logsumexp, logsumexp_cases(), tol_logsumexp),
    Entry("softmax", ref.softmax, softmax_cases("softmax"), tol_softmax_family("softmax")),
    Entry("log_softmax", ref.log_softmax, softmax_cases("log_softmax"),
          tol_softmax_family("log_softmax")),
    Entry("cross_entropy", rl.cross_entropy, class_loss_cases("cross_entropy", "labels"),
          tol_cross_entropy, "cross_entropy labels"),
    Entry("cross_entropy", rl.cross_entropy, class_loss_cases("cross_entropy", "probabilities"),
          tol_cross_entropy, "cross_entropy probabilities"),
    Entry("nll_loss", rl.nll_loss, class_loss_cases("nll_loss", "labels"), tol_nll_loss),
    Entry("kl_div", rl.kl_div, kl_div_cases(), tol_kl_div),
    Entry("binary_cross_entropy_with_logits", rl.binary_cross_entropy_with_logits, bce_cases(),
          tol_bce),
    Entry("entropy", rl.entropy, entropy_cases(), tol_entropy),
    Entry("softmax_entropy", rl.softmax_entropy, logit_cases(["logits"]), tol_of_logits),
    Entry("softmax_cross_entropy", rl.softmax_cross_entropy,
          logit_cases(["p_logits", "q_logits"]), tol_of_logits),
    Entry("softmax_kl_div", rl.softmax_kl_div, logit_cases(["p_logits", "q_logits"]),
          tol_of_logits),
]


def test_registry_covers_the_public_functions():
    public = set(fx.__all__) - CONFIG_HELPERS - EVALUATION
    assert public == {e.name for e in REGISTRY}


# ---------------------------------------------------------------------------
# the checks

def _parts(result, kwargs):
    pair = kwargs.get("return_sign") or kwargs.get("return_grad")
    return list(result) if pair else [result]


def _compare(got, want, tol, err_msg, check_type=True):
    if check_type:
        assert type(got) is type(want), (
            f"{err_msg}: returned {type(got).__name__}, expected {type(want).__name__}")
    g, w = np.asarray(got), np.asarray(want)
    assert g.dtype == w.dtype, f"{err_msg}: dtype {g.dtype}, expected {w.dtype}"
    assert g.shape == w.shape, f"{err_msg}: shape {g.shape}, expected {w.shape}"
    # below the smallest normal number a result may be flushed to zero
    floor = float(np.finfo(w.dtype).tiny) if w.dtype.kind == "f" else 0.0
    g, w = g.astype(np.float64), w.astype(np.float64)
    atol = np.broadcast_to(np.asarray(tol.atol, np.float64) + floor, w.shape)
    if w.dtype.kind == "f" and floor:
        # a finite result whose allowed rounding error exceeds the dtype's
        # range (a float16 gradient cancelling terms of 1e18 to 0) may
        # round to +-inf there: not comparable
        dtype_max = float(np.finfo(np.asarray(want).dtype).max)
        loose = (atol > dtype_max) & np.isfinite(w) & np.isinf(g)
        g, w = np.where(loose, 0, g), np.where(loose, 0, w)
    if tol.skip is not None:
        g, w = np.where(tol.skip, 0, g), np.where(tol.skip, 0, w)
    assert_close(g, w, rtol=tol.rtol, atol=atol, err_msg=err_msg, check_type=False)


@pytest.mark.parametrize("entry", REGISTRY, ids=[e.label for e in REGISTRY])
@settings(max_examples=EXAMPLES)
@given(data=st.data())
def test_matches_reference(entry, data):
    _check(entry, data.draw(entry.cases, label="case"))


def _check(entry, case):
    """Call fastxent and the reference on `case` and compare (see the top)."""
    kwargs = case.fx_kwargs()
    want, want_exc = outcome(entry.reference, **case.ref_kwargs())
    got, exc = outcome(getattr(fx, entry.name), **kwargs)

    for name, op in case.operands.items():
        if name not in case.aliases:
            op.assert_unchanged(name)
    bad = [name for name, op in case.outs.items() if is_bad_output(op)]
    if bad:
        assert exc is not None, f"{bad[0]} ({case.outs[bad[0]].label}) was accepted"
        assert isinstance(exc, ValueError) or (
            want_exc is not None and isinstance(exc, type(want_exc))), (
            f"{bad[0]} ({case.outs[bad[0]].label}): raised {type(exc).__name__}: {exc}")
        return
    if want_exc is not None:
        assert exc is not None, (
            f"expected {type(want_exc).__name__}({want_exc}), got a result {got!r}")
        assert isinstance(exc, type(want_exc)), (
            f"raised {type(exc).__name__}({exc}), expected {type(want_exc).__name__}({want_exc})")
        return
    assert exc is None, f"raised {type(exc).__name__}: {exc}"

    got_parts, want_parts = _parts(got, kwargs), _parts(want, kwargs)
    assert len(got_parts) == len(want_parts)
    tols = entry.tolerances(case, want)
    out_name = "out" if "out" in case.outs else ("grad_out" if "grad_out" in case.outs else None)
    for i, (g, w, tol) in enumerate(zip(got_parts, want_parts, tols)):
        what = ["result", "second result"][i]
        is_out = out_name is not None and (i == len(got_parts) - 1 if out_name == "grad_out"
                                           else i == 0)
        if is_out:
            assert g is case.outs[out_name].array, f"{out_name} is not the array returned"
        _compare(g, w, tol, f"{entry.label} {what}", check_type=not is_out)
    for name, op in case.outs.items():
        op.assert_outside_unchanged(name)
