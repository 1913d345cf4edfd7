"""What is timed: the operations, and how each implementation runs them.

The inputs each operation takes (made once per shape from the case's logits
and the seed, outside the timed region), the import of each implementation
(:class:`Unavailable` when it cannot be used here), the plain NumPy versions,
the float64 results the timed answers are checked against, and
:func:`prepare`, which returns the call that is timed.
"""

from __future__ import annotations

import os
import sys
from functools import partial

from .cases import DEFAULT_SEED, standard_normal


# The default run: the softmax family and cross-entropy from labels.
DEFAULT_OPS = ("logsumexp", "log_softmax", "softmax", "cross_entropy", "cross_entropy_grad")


# Divergences, entropies and the binary cross-entropy: selected with --ops
# (the group "divergences" names all five); each takes a second input or
# probabilities, made once per shape from the seed, outside the timed region.
DIVERGENCE_OPS = ("kl_div", "bce_with_logits", "entropy", "softmax_kl_div", "softmax_entropy")


# The per-row scores of an evaluation (nll, rank, prediction, confidence,
# entropy, Brier score) against labels_for(x): selected with --ops.  Its
# answer, checked against NumPy, is the nll column.
SCORE_OPS = ("score_rows",)


OPS = DEFAULT_OPS + DIVERGENCE_OPS + SCORE_OPS


# Names that --ops expands to several operations.
OP_GROUPS = {
    "default": DEFAULT_OPS,
    "softmax_family": ("logsumexp", "log_softmax", "softmax"),
    "losses": ("cross_entropy", "cross_entropy_grad", "kl_div", "bce_with_logits"),
    "divergences": DIVERGENCE_OPS,
    "scores": SCORE_OPS,
    "all": OPS,
}


# The fastxent function behind each operation of DIVERGENCE_OPS, and the
# arguments it is called with besides the inputs.
_FASTXENT_CALLS = {
    "kl_div": ("kl_div", {"reduction": "batchmean"}),
    "bce_with_logits": ("binary_cross_entropy_with_logits", {"reduction": "mean"}),
    "entropy": ("entropy", {"axis": -1}),
    "softmax_kl_div": ("softmax_kl_div", {"axis": -1}),
    "softmax_entropy": ("softmax_entropy", {"axis": -1}),
}


IMPLS = ("fastxent", "numpy", "scipy", "torch", "jax")


# Implementations that can be asked for with --impls but are not run by default.
EXTRA_IMPLS = ("fastxent_out",)


PEERS = ("numpy", "scipy", "torch", "jax")


# Inputs derived from a case's logits x (and the seed): kind -> (x, seed, array).
# Made once per shape and shared by every implementation (and by the
# operations that use the same kind); time_cases() drops them after each shape.
_DERIVED = {}


# What each operation of DIVERGENCE_OPS is called on, in argument order.
_OP_INPUTS = {
    "kl_div": ("log_softmax_x", "softmax_y"),  # input log q, target p
    "bce_with_logits": ("x", "binary_targets"),
    "entropy": ("softmax_x",),
    "softmax_kl_div": ("x", "y"),
    "softmax_entropy": ("x",),
}


def _derived(kind, x, seed):
    """The input ``kind`` made from the logits ``x`` (cached, see _DERIVED).

    ``y``: a second array of standard-normal logits, seeded by ``seed``, the
    shape and 1; ``softmax_x``, ``softmax_y``, ``log_softmax_x``: computed in
    float64 and rounded once to the dtype of ``x`` (rows of positive
    probabilities that sum to 1); ``binary_targets``: 0 and 1 with probability
    1/2 each, seeded by ``seed``, the shape and 2, in the dtype of ``x``.
    """
    import numpy as np

    if kind == "x":
        return x
    hit = _DERIVED.get(kind)
    if hit is not None and hit[0] is x and hit[1] == seed:
        return hit[2]
    rows, cols = x.shape[0], x.shape[-1]
    if kind == "y":
        rng = np.random.default_rng([seed, rows, cols, 1])
        value = standard_normal(rng, x.shape, x.dtype)
    elif kind == "binary_targets":
        rng = np.random.default_rng([seed, rows, cols, 2])
        value = rng.integers(0, 2, x.shape, dtype=np.int8).astype(x.dtype)
    elif kind in ("softmax_x", "softmax_y", "log_softmax_x"):
        src = _derived("y", x, seed) if kind == "softmax_y" else x
        fn = numpy_log_softmax if kind == "log_softmax_x" else numpy_softmax
        value = np.empty_like(x)
        step = max(1, (1 << 20) // max(cols, 1))  # rows per chunk: float64 temporaries stay small
        for i in range(0, x.shape[0], step):
            value[i:i + step] = fn(np.asarray(src[i:i + step], dtype=np.float64))
    else:
        raise ValueError(f"unknown input {kind!r}")
    _DERIVED[kind] = (x, seed, value)
    return value


def op_inputs(op, x, seed=DEFAULT_SEED):
    """The arrays ``op`` is called on, made from the case's logits ``x``.

    ``(x,)`` for the softmax family and cross-entropy (whose labels come from
    :func:`labels_for`); for DIVERGENCE_OPS see ``_OP_INPUTS`` and
    :func:`_derived`: ``kl_div`` takes ``log_softmax(x)`` (input, log q) and
    ``softmax(y)`` (target p); ``bce_with_logits`` takes ``x`` and 0/1
    targets; ``entropy`` takes ``softmax(x)``; ``softmax_kl_div`` ``x`` and
    ``y``; ``softmax_entropy`` ``x``.
    """
    return tuple(_derived(kind, x, seed) for kind in _OP_INPUTS.get(op, ("x",)))


def _kinds_needed(ops):
    """The derived inputs that ``ops`` use, with what they are made from."""
    kinds = {k for op in ops for k in _OP_INPUTS.get(op, ())}
    return kinds | ({"y"} if "softmax_y" in kinds else set())


def _drop_derived(keep=()):
    """Forget the derived inputs, except the kinds in ``keep``."""
    for kind in [k for k in _DERIVED if k not in keep]:
        del _DERIVED[kind]


class Unavailable(Exception):
    """An implementation cannot be imported or used here."""


_LIB_CACHE = {}


def _load(impl, threads):
    """Import what ``impl`` needs; raise Unavailable with the reason."""
    key = "fastxent" if impl == "fastxent_out" else impl
    if key in _LIB_CACHE:
        lib = _LIB_CACHE[key]
        if isinstance(lib, Unavailable):
            raise lib
        return lib
    try:
        lib = _IMPORTERS[key](threads)
    except Unavailable as exc:
        _LIB_CACHE[key] = exc
        raise
    except Exception as exc:  # ImportError, or a broken install raising anything
        err = Unavailable(f"{type(exc).__name__}: {exc}".splitlines()[0])
        _LIB_CACHE[key] = err
        raise err from None
    _LIB_CACHE[key] = lib
    return lib


def _import_fastxent(threads):
    import fastxent

    if not hasattr(fastxent, "logsumexp"):
        where = list(getattr(fastxent, "__path__", []))
        raise Unavailable(f"fastxent at {where} has no logsumexp (not built?)")
    return fastxent


def _import_numpy(threads):
    import numpy as np

    return np


def _import_scipy(threads):
    import scipy.special

    return scipy.special


def _import_torch(threads):
    import torch

    torch.set_num_threads(int(threads))
    return torch


def _import_jax(threads):
    if int(threads) == 1 and "jax" not in sys.modules and "XLA_FLAGS" not in os.environ:
        os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    import jax

    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_platforms", "cpu")
    return jax


_IMPORTERS = {
    "fastxent": _import_fastxent,
    "numpy": _import_numpy,
    "scipy": _import_scipy,
    "torch": _import_torch,
    "jax": _import_jax,
}


def _numpy_stable_max(np, x):
    m = x.max(axis=-1, keepdims=True)
    # A row of -inf (or an inf) would give nan from x - m; shift by 0 there.
    m[~np.isfinite(m)] = 0
    return m


def numpy_logsumexp(x):
    """Plain stable logsumexp over the last axis: max, x - max, exp, sum, log."""
    import numpy as np

    m = _numpy_stable_max(np, x)
    e = np.subtract(x, m)
    np.exp(e, out=e)
    out = np.log(e.sum(axis=-1))
    out += m[..., 0]
    return out


def numpy_log_softmax(x):
    """Plain stable log_softmax over the last axis: x - max - log(sum(exp(x - max)))."""
    import numpy as np

    shifted = x - _numpy_stable_max(np, x)
    lse = np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    shifted -= lse
    return shifted


def numpy_softmax(x):
    """Plain stable softmax over the last axis: exp(x - max) / sum."""
    import numpy as np

    e = x - _numpy_stable_max(np, x)
    np.exp(e, out=e)
    e /= e.sum(axis=-1, keepdims=True)
    return e


def labels_for(x):
    """Class-index targets of the rows of ``x``: a fixed function of the row
    index, so the labels of ``x[:k]`` are the first k labels of ``x``."""
    import numpy as np

    return (np.arange(x.shape[0], dtype=np.int64) * 7919 + 13) % x.shape[-1]


def numpy_cross_entropy(x):
    """Per-row cross-entropy against labels_for(x): logsumexp(x) - x[label]."""
    import numpy as np

    t = labels_for(x)
    return numpy_logsumexp(x) - x[np.arange(x.shape[0]), t]


def numpy_score_rows(x):
    """Every per-row score against labels_for(x) (softmax, its maximum,
    entropy, Brier score, rank of the label); returns the nll column."""
    import numpy as np

    t = labels_for(x)
    rows = np.arange(x.shape[0])
    lp = numpy_log_softmax(x)
    p = np.exp(lp)
    nll = -lp[rows, t]
    # the other scores, computed as an evaluation would (not returned)
    p.max(axis=-1)
    -(p * lp).sum(axis=-1)
    (x > x[rows, t][:, None]).sum(axis=-1)
    np.argmax(x, axis=-1)
    p[rows, t] -= 1
    (p * p).sum(axis=-1)
    return nll


def numpy_cross_entropy_grad(x):
    """Gradient of the summed per-row cross-entropy: softmax(x) - one_hot."""
    import numpy as np

    g = numpy_softmax(x)
    g[np.arange(x.shape[0]), labels_for(x)] -= 1
    return g


def _xlogx(np, p):
    """``p * log(p)`` with 0 where ``p == 0`` (the xlogy convention)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(p > 0, p * np.log(p), 0)


def _kl_div_sum(logq, p):
    """Sum of the terms ``xlogy(p, p) - p * log q`` (PyTorch's kl_div formula)."""
    import numpy as np

    terms = _xlogx(np, p)
    terms -= p * logq
    return terms.sum()


def numpy_kl_div(logq, p):
    """KL divergence of target rows ``p`` from ``q``, ``reduction='batchmean'``:
    the sum of ``xlogy(p, p) - p * log q`` divided by the number of rows."""
    return _kl_div_sum(logq, p) / p.shape[0]


def _bce_sum(x, t):
    """Sum of the binary cross-entropy terms ``max(x, 0) - x t + log1p(exp(-|x|))``."""
    import numpy as np

    terms = np.maximum(x, 0)
    terms -= x * t
    terms += np.log1p(np.exp(-np.abs(x)))
    return terms.sum()


def numpy_bce_with_logits(x, t):
    """Binary cross-entropy of logits ``x`` against targets ``t``, ``'mean'``:
    the softplus formula ``max(x, 0) - x t + log1p(exp(-|x|))``."""
    return _bce_sum(x, t) / x.size


def numpy_entropy(p):
    """``scipy.stats.entropy(p, axis=-1)``, plainly: normalize the rows, then
    ``-sum(xlogy(p, p))``."""
    import numpy as np

    p = p / p.sum(axis=-1, keepdims=True)
    return -_xlogx(np, p).sum(axis=-1)


def numpy_softmax_kl_div(x, y):
    """Per-row ``KL(softmax(x) || softmax(y))``: ``sum(exp(lp) * (lp - lq))``
    with ``lp, lq`` the stable log_softmax of each."""
    import numpy as np

    lp = numpy_log_softmax(x)
    d = lp - numpy_log_softmax(y)
    np.exp(lp, out=lp)
    d *= lp
    return d.sum(axis=-1)


def numpy_softmax_entropy(x):
    """Per-row entropy of ``softmax(x)``: ``-sum(exp(lp) * lp)``, ``lp`` the
    stable log_softmax."""
    import numpy as np

    lp = numpy_log_softmax(x)
    return -(np.exp(lp) * lp).sum(axis=-1)


_NUMPY_OPS = {"logsumexp": numpy_logsumexp, "log_softmax": numpy_log_softmax, "softmax": numpy_softmax,
              "cross_entropy": numpy_cross_entropy, "cross_entropy_grad": numpy_cross_entropy_grad,
              "kl_div": numpy_kl_div, "bce_with_logits": numpy_bce_with_logits, "entropy": numpy_entropy,
              "softmax_kl_div": numpy_softmax_kl_div, "softmax_entropy": numpy_softmax_entropy,
              "score_rows": numpy_score_rows}


# The sums behind the one-number results, for a float64 reference computed in
# row chunks, and what each sum is divided by.
_SCALAR_SUMS = {"kl_div": (_kl_div_sum, lambda shape: shape[0]),
                "bce_with_logits": (_bce_sum, lambda shape: shape[0] * shape[-1])}


def reference_result(op, x, seed=DEFAULT_SEED, rows=256):
    """The float64 NumPy result of ``op`` for the check of the timed answers.

    Per-row operations: the first ``rows`` rows. One-number results (kl_div,
    bce_with_logits): the whole array, summed in float64 over chunks of rows
    (no full-size float64 temporary).
    """
    import numpy as np

    args = op_inputs(op, x, seed)
    if op in _SCALAR_SUMS:
        total_fn, divisor = _SCALAR_SUMS[op]
        step = max(1, (1 << 20) // max(x.shape[-1], 1))
        total = 0.0
        for i in range(0, x.shape[0], step):
            total += float(total_fn(*(np.asarray(a[i:i + step], dtype=np.float64) for a in args)))
        return np.float64(total / divisor(x.shape))
    k = min(x.shape[0], rows)
    return _NUMPY_OPS[op](*(np.asarray(a[:k], dtype=np.float64) for a in args))


def prepare(impl, op, x, threads, *, overhead=False, aot=False, seed=DEFAULT_SEED):
    """Return ``(call, to_numpy)``: ``call()`` runs ``op`` on ``x`` with ``impl``.

    Conversion of ``x`` to the implementation's array type happens here, outside
    any timed region. ``aot=True`` compiles JAX ahead of time without running it
    (used by the memory measurement, so the compile's buffers are not counted).
    The operations of DIVERGENCE_OPS run on inputs made from ``x`` and ``seed``
    (:func:`op_inputs`), also here.
    """
    if op in DIVERGENCE_OPS:
        return _prepare_divergence(impl, op, x, threads, overhead=overhead, aot=aot, seed=seed)
    if op.startswith("cross_entropy"):
        return _prepare_cross_entropy(impl, op, x, threads, overhead=overhead, aot=aot)
    if op == "score_rows":
        return _prepare_score_rows(impl, x, threads, overhead=overhead)
    lib = _load(impl, threads)
    if impl == "fastxent":
        f = getattr(lib, op)
        if overhead:
            return (lambda: f(x, axis=-1)), _identity
        return (lambda: f(x, axis=-1, n_threads=threads)), _identity
    if impl == "fastxent_out":
        import numpy as np

        f = getattr(lib, op)
        out = np.zeros(x.shape[:-1] if op == "logsumexp" else x.shape, dtype=x.dtype)
        if overhead:
            return (lambda: f(x, axis=-1, out=out)), _identity
        return (lambda: f(x, axis=-1, out=out, n_threads=threads)), _identity
    if impl == "numpy":
        f = _NUMPY_OPS[op]
        return (lambda: f(x)), _identity
    if impl == "scipy":
        f = getattr(lib, op)
        return (lambda: f(x, axis=-1)), _identity
    if impl == "torch":
        t = lib.from_numpy(x)
        f = getattr(lib, op)
        return (lambda: f(t, dim=-1)), _torch_to_numpy
    if impl == "jax":
        xj = lib.device_put(x)
        f = lib.jit(partial(getattr(lib.nn, op), axis=-1))
        if aot:
            f = f.lower(xj).compile()
        return (lambda: f(xj).block_until_ready()), _jax_to_numpy
    raise ValueError(f"unknown implementation {impl!r}")


def _prepare_cross_entropy(impl, op, x, threads, *, overhead=False, aot=False):
    """Per-row cross-entropy against labels_for(x) (reduction 'none': scoring
    rows), or the gradient of its sum with respect to x."""
    lib = _load(impl, threads)
    t = labels_for(x)
    grad = op == "cross_entropy_grad"
    if impl in ("fastxent", "fastxent_out"):
        kw = {} if overhead else {"n_threads": threads}
        if impl == "fastxent_out":
            if not grad:
                raise Unavailable("the per-row losses have no out=")
            import numpy as np

            kw["grad_out"] = np.zeros_like(x)
        if grad:
            return (lambda: lib.cross_entropy(x, t, reduction="sum", return_grad=True, **kw)[1]), _identity
        return (lambda: lib.cross_entropy(x, t, reduction="none", **kw)), _identity
    if impl == "numpy":
        f = _NUMPY_OPS[op]
        return (lambda: f(x)), _identity
    if impl == "scipy":
        raise Unavailable("SciPy has no cross-entropy from logits")
    if impl == "torch":
        F = lib.nn.functional
        tt = lib.from_numpy(t)
        if grad:
            def call():
                xt = lib.from_numpy(x).requires_grad_(True)
                F.cross_entropy(xt, tt, reduction="sum").backward()
                return xt.grad
            return call, _torch_to_numpy
        xt = lib.from_numpy(x)
        return (lambda: F.cross_entropy(xt, tt, reduction="none")), _torch_to_numpy
    if impl == "jax":
        jnp = lib.numpy
        xj, tj = lib.device_put(x), lib.device_put(t)

        def rows(v, labels):
            return -jnp.take_along_axis(lib.nn.log_softmax(v, axis=-1), labels[:, None], axis=1)[:, 0]

        f = lib.jit(lib.grad(lambda v, labels: rows(v, labels).sum())) if grad else lib.jit(rows)
        if aot:
            f = f.lower(xj, tj).compile()
        return (lambda: f(xj, tj).block_until_ready()), _jax_to_numpy
    raise ValueError(f"unknown implementation {impl!r}")


def _prepare_score_rows(impl, x, threads, *, overhead=False):
    """The per-row scores against labels_for(x); the nll column is the answer."""
    lib = _load(impl, threads)
    t = labels_for(x)
    if impl == "fastxent":
        f = fastxent_function(lib, "score_rows")
        kw = {} if overhead else {"n_threads": threads}
        return (lambda: f(x, t, **kw).nll), _identity
    if impl == "numpy":
        return (lambda: numpy_score_rows(x)), _identity
    raise Unavailable(f"{impl} has no score_rows")


def fastxent_function(lib, op):
    """The fastxent function behind ``op``; Unavailable when this build lacks it."""
    name = _FASTXENT_CALLS[op][0] if op in _FASTXENT_CALLS else op
    f = getattr(lib, name, None)
    if f is None:
        raise Unavailable(f"this fastxent ({getattr(lib, '__version__', '?')}) has no {name}")
    return f


def _prepare_divergence(impl, op, x, threads, *, overhead=False, aot=False, seed=DEFAULT_SEED):
    """KL divergence, binary cross-entropy, entropies (DIVERGENCE_OPS).

    The inputs (:func:`op_inputs`) are made, and converted to each library's
    arrays, here, outside the timed region.
    """
    lib = _load(impl, threads)
    args = op_inputs(op, x, seed)
    if impl == "fastxent_out":
        raise Unavailable(f"{op} has no out=")
    if impl == "fastxent":
        f = fastxent_function(lib, op)
        kw = dict(_FASTXENT_CALLS[op][1])
        if not overhead:
            kw["n_threads"] = threads
        return (lambda: f(*args, **kw)), _identity
    if impl == "numpy":
        f = _NUMPY_OPS[op]
        return (lambda: f(*args)), _identity
    if impl == "scipy":
        return _prepare_divergence_scipy(lib, op, args), _identity
    if impl == "torch":
        return _prepare_divergence_torch(lib, op, [lib.from_numpy(a) for a in args]), _torch_to_numpy
    if impl == "jax":
        jargs = [lib.device_put(a) for a in args]
        f = lib.jit(_jax_divergence(lib, op))
        if aot:
            f = f.lower(*jargs).compile()
        return (lambda: f(*jargs).block_until_ready()), _jax_to_numpy
    raise ValueError(f"unknown implementation {impl!r}")


def _prepare_divergence_scipy(special, op, args):
    if op == "kl_div":
        # scipy.special takes probabilities: q = exp(log q) is made here, untimed.
        import numpy as np

        logq, p = args
        q, rows = np.exp(logq), p.shape[0]
        return lambda: special.rel_entr(p, q).sum() / rows
    if op == "entropy":
        import scipy.stats

        (p,) = args
        return lambda: scipy.stats.entropy(p, axis=-1)
    if op == "softmax_kl_div":
        x, y = args
        return lambda: special.rel_entr(special.softmax(x, axis=-1), special.softmax(y, axis=-1)).sum(axis=-1)
    if op == "softmax_entropy":
        (x,) = args
        return lambda: special.entr(special.softmax(x, axis=-1)).sum(axis=-1)
    raise Unavailable("SciPy has no binary cross-entropy from logits")


def _prepare_divergence_torch(torch, op, args):
    F = torch.nn.functional
    Categorical = torch.distributions.Categorical
    if op == "kl_div":
        logq, p = args
        return lambda: F.kl_div(logq, p, reduction="batchmean")
    if op == "bce_with_logits":
        x, t = args
        return lambda: F.binary_cross_entropy_with_logits(x, t)
    if op == "entropy":
        (p,) = args
        return lambda: Categorical(probs=p, validate_args=False).entropy()
    if op == "softmax_kl_div":
        x, y = args
        return lambda: F.kl_div(F.log_softmax(y, -1), F.log_softmax(x, -1), log_target=True,
                                reduction="none").sum(-1)
    if op == "softmax_entropy":
        (x,) = args
        return lambda: Categorical(logits=x, validate_args=False).entropy()
    raise ValueError(op)


def _jax_divergence(jax, op):
    """The function of ``op`` that JAX jits (plain formulas, no optax)."""
    import jax.scipy.special

    jnp, special = jax.numpy, jax.scipy.special
    if op == "kl_div":
        return lambda logq, p: jnp.sum(special.xlogy(p, p) - p * logq) / p.shape[0]
    if op == "bce_with_logits":
        return lambda x, t: jnp.mean(jnp.maximum(x, 0) - x * t + jnp.log1p(jnp.exp(-jnp.abs(x))))
    if op == "entropy":
        return lambda p: jnp.sum(special.entr(p / jnp.sum(p, axis=-1, keepdims=True)), axis=-1)
    if op == "softmax_kl_div":
        def softmax_kl_div(x, y):
            lp = jax.nn.log_softmax(x, axis=-1)
            return jnp.sum(jnp.exp(lp) * (lp - jax.nn.log_softmax(y, axis=-1)), axis=-1)
        return softmax_kl_div
    if op == "softmax_entropy":
        def softmax_entropy(x):
            lp = jax.nn.log_softmax(x, axis=-1)
            return -jnp.sum(jnp.exp(lp) * lp, axis=-1)
        return softmax_entropy
    raise ValueError(op)


def _identity(r):
    return r


def _torch_to_numpy(r):
    return r.numpy()


def _jax_to_numpy(r):
    import numpy as np

    return np.asarray(r)
