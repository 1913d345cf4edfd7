"""Speed and peak-memory comparison of fastxent with NumPy, SciPy, PyTorch and JAX.

One process, one run: every implementation that can be imported is timed on the
same seeded data, with the implementations interleaved across repeats so that
machine noise hits all of them alike, and the median is reported. Each
(operation, shape, dtype) row shows the time of every implementation, the ratio
peer / fastxent, and the fraction of the roofline (the physical limit of this
machine, from ``docs/design.rst``) that fastxent reaches. A second table gives the
peak memory a fastxent call takes beyond its input, measured in a fresh
subprocess per call, next to the size of the output it must return.

Run it with ``python -m fastxent._benchmark --help``, ``python bench/compare.py``
or through :func:`run` (``python -m fastxent`` uses that). Options:
``--quick`` (smaller shapes, fewer repeats: a self-check), ``--large`` (adds
4096 x 50257 float32), ``--ops``, ``--impls``, ``--threads``, ``--repeats``,
``--markdown`` (a table for the README), ``--mem-impls``/``--no-mem``.

Operations (``--ops``, names or groups, comma-separated): the default run
times the group ``default`` (``logsumexp``, ``log_softmax``, ``softmax``,
``cross_entropy``, ``cross_entropy_grad``); the group ``divergences``
(``kl_div``, ``bce_with_logits``, ``entropy``, ``softmax_kl_div``,
``softmax_entropy``) is selected with ``--ops divergences``; ``losses`` is
``cross_entropy``, ``cross_entropy_grad``, ``kl_div``, ``bce_with_logits``;
``softmax_family`` the first three; ``all`` every operation.

What is timed, per implementation (the input conversion is done once, outside
the timed region; every call allocates its output, as a user's call would):

``fastxent``
    ``fastxent.<op>(x, axis=-1, n_threads=threads)``; on the 1 x 10 call-overhead
    row without ``n_threads`` (a user's small call; the kernels never start
    threads below their size threshold).
``fastxent_out`` (not in the default set)
    the same with ``out=`` a preallocated, already-touched array: shows the cost
    of faulting in fresh output pages.
``numpy``
    a plain numerically stable NumPy implementation: ``x - max``, ``exp``,
    ``sum``, ``log`` (single-threaded, full-size temporaries).
``scipy``
    ``scipy.special.<op>(x, axis=-1)``.
``torch``
    ``torch.logsumexp/softmax/log_softmax(t, dim=-1)`` on
    ``t = torch.from_numpy(x)`` (zero-copy), with ``torch.set_num_threads(threads)``.
``jax``
    ``jax.jit(partial(jax.nn.<op>, axis=-1))`` on ``jax.device_put(x)``, waited for
    with ``block_until_ready``; compilation happens in the untimed warm-up call.
    float64 needs ``jax_enable_x64``, which is switched on. JAX's CPU thread pool
    is sized by XLA at import: with ``--threads 1`` this sets ``XLA_FLAGS`` to a
    single-threaded Eigen pool (only if JAX was not imported yet and ``XLA_FLAGS``
    is unset); otherwise JAX uses all cores.

The divergences run on inputs made once per shape from the case's logits
``x`` and the seed, outside the timed region (:func:`op_inputs`): a second
array of logits ``y``, ``softmax``/``log_softmax`` rows computed in float64
and rounded to the dtype, and 0/1 targets. Per implementation:

``kl_div``
    ``reduction='batchmean'`` of the target ``p = softmax(y)`` against the
    input ``log q = log_softmax(x)``: ``fastxent.kl_div(log q, p,
    reduction='batchmean')``; numpy ``sum(where(p > 0, p log p, 0) - p log q) /
    rows``; scipy ``rel_entr(p, q).sum() / rows`` on ``q = exp(log q)`` (made
    untimed: SciPy takes probabilities); torch ``F.kl_div(log q, p,
    reduction='batchmean')``; jax the same formula with ``xlogy``, jitted.
``bce_with_logits``
    ``reduction='mean'`` of logits ``x`` against 0/1 targets (in the dtype of
    ``x``): ``fastxent.binary_cross_entropy_with_logits``; numpy and jax the
    softplus formula ``max(x, 0) - x t + log1p(exp(-|x|))``; torch
    ``F.binary_cross_entropy_with_logits``; SciPy has none.
``entropy``
    per-row ``scipy.stats.entropy(p, axis=-1)`` of ``p = softmax(x)`` (rows
    normalized again, as SciPy does): ``fastxent.entropy(p, axis=-1)``; numpy
    and jax normalize and sum ``-xlogy(p, p)``; scipy ``scipy.stats.entropy``;
    torch ``Categorical(probs=p, validate_args=False).entropy()``.
``softmax_kl_div``
    per-row ``KL(softmax(x) || softmax(y))``: ``fastxent.softmax_kl_div(x,
    y)``; numpy and jax ``sum(exp(lp) (lp - lq))`` from the two stable
    log_softmax; scipy ``rel_entr(softmax(x), softmax(y)).sum(-1)``; torch
    ``F.kl_div(F.log_softmax(y, -1), F.log_softmax(x, -1), log_target=True,
    reduction='none').sum(-1)``.
``softmax_entropy``
    per-row entropy of ``softmax(x)``: ``fastxent.softmax_entropy(x)``; numpy
    and jax ``-sum(exp(lp) lp)``; scipy ``entr(softmax(x)).sum(-1)``; torch
    ``Categorical(logits=x, validate_args=False).entropy()``.

Every answer is checked once against a float64 NumPy reference of the same
operation (the first 256 rows of a per-row result; the whole array, summed in
float64 by row chunks, for the one-number ``kl_div`` and ``bce_with_logits``).

Roofline (``docs/design.rst``, measured on the project's 2-core machine; thread counts
above 2 use the 2-thread figures): a row reduction (logsumexp) is bound by exp
throughput, ``N*V / 5.4e9`` s for float32 and ``N*V / 1.6e9`` s for float64 on two
threads (the read stream, ``N*V*itemsize / 26e9`` s, is below that); a function
that writes a full-size output (softmax, log_softmax) is bound by
``max(exp bound, bytes read + written / 22e9 B/s)``. The divergences take
``max(transcendentals per element / exp throughput, bytes read / 26e9 B/s)``
(docs/design.rst measures exp only; a vectorized log or log1p is taken to cost
the same): ``entropy`` and ``softmax_entropy`` one log or exp per element and
one array read; ``kl_div`` one log per element (``p log p``) and two arrays
read (memory bound in float32, the two bounds about equal in float64);
``bce_with_logits`` one exp and one log1p per element and two arrays read;
``softmax_kl_div`` two exps per element and two arrays read (4096 x 50257
float32: 76 ms). See :func:`roofline_seconds`. The 1 x 10 row is compared
with the floor of a Cython call (0.24 us with raw pointers).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import partial

__all__ = ["build_parser", "run", "main", "roofline_seconds"]

# The default run: the softmax family and cross-entropy from labels.
DEFAULT_OPS = ("logsumexp", "log_softmax", "softmax", "cross_entropy", "cross_entropy_grad")
# Divergences, entropies and the binary cross-entropy: selected with --ops
# (the group "divergences" names all five); each takes a second input or
# probabilities, made once per shape from the seed, outside the timed region.
DIVERGENCE_OPS = ("kl_div", "bce_with_logits", "entropy", "softmax_kl_div", "softmax_entropy")
OPS = DEFAULT_OPS + DIVERGENCE_OPS
# Names that --ops expands to several operations.
OP_GROUPS = {
    "default": DEFAULT_OPS,
    "softmax_family": ("logsumexp", "log_softmax", "softmax"),
    "losses": ("cross_entropy", "cross_entropy_grad", "kl_div", "bce_with_logits"),
    "divergences": DIVERGENCE_OPS,
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
# Operations that return one number for the whole array (the others: one per row).
_SCALAR_OPS = ("kl_div", "bce_with_logits")
IMPLS = ("fastxent", "numpy", "scipy", "torch", "jax")
# Implementations that can be asked for with --impls but are not run by default.
EXTRA_IMPLS = ("fastxent_out",)
PEERS = ("numpy", "scipy", "torch", "jax")

DEFAULT_REPEATS = 7
QUICK_REPEATS = 3
DEFAULT_SEED = 0
# Calls per sample on the call-overhead row (time many calls, report the mean
# call of each sample, then the median sample).
OVERHEAD_CALLS = 2000
QUICK_OVERHEAD_CALLS = 200

# docs/design.rst, "Machine facts" (2 cores, Zen 3, AVX2 + FMA):
# vectorized exp throughput per dtype (exp/s), streaming read and read + write
# bandwidth with plain stores (B/s), for 1 and 2 threads.
_LIMITS = {
    1: {"exp": {"float32": 2.8e9, "float64": 0.9e9}, "read": 18e9, "read_write": 16e9},
    2: {"exp": {"float32": 5.4e9, "float64": 1.6e9}, "read": 26e9, "read_write": 22e9},
}
# docs/design.rst, "Rooflines", call overhead: a Cython function taking a (1, 10) array.
CALL_FLOOR_US = 0.24

# Environment variables that change what the run measures; they are echoed in
# the reproduce command.
_ENV_PREFIXES = ("OMP_", "GOMP_", "KMP_", "OPENBLAS_", "MKL_", "XLA_", "FASTXENT_", "JAX_")


@dataclass(frozen=True)
class Case:
    """One input: ``rows x cols`` of ``dtype``, reduced along the last axis."""

    rows: int
    cols: int
    dtype: str
    overhead: bool = False  # a call-overhead row: many calls, microseconds

    @property
    def shape(self):
        return (self.rows, self.cols)

    @property
    def label(self):
        return f"{self.rows} x {self.cols}"

    @property
    def size(self):
        return self.rows * self.cols


def cases(quick=False, large=False):
    """The shapes of a run, in the order they are timed."""
    if quick:
        out = [Case(64, 50257, "float32"), Case(100_000, 10, "float32"), Case(10_000, 1000, "float64")]
        if large:
            out.append(Case(256, 50257, "float32"))
    else:
        out = [Case(1024, 50257, "float32"), Case(1_000_000, 10, "float32"), Case(100_000, 1000, "float64")]
        if large:
            out.append(Case(4096, 50257, "float32"))
    out.append(Case(1, 10, "float64", overhead=True))
    return out


def roofline_seconds(op, case, threads):
    """Lower bound on the time of ``op`` over ``case`` with ``threads`` threads.

    The docs/design.rst model: the transcendental functions every element needs at
    the vectorized exp throughput (docs/design.rst measures exp only; a vectorized
    log or log1p is a polynomial of the same cost, so the exp figures stand
    for them), and the memory traffic (the inputs read, plus the output
    written for a full-size output), whichever is slower:

    - ``logsumexp``, ``cross_entropy``, ``softmax_entropy``: one exp per
      element, one array read;
    - ``entropy`` (of probabilities): one log per element, one array read;
    - ``kl_div`` (target probabilities ``p`` against ``log q``): two arrays
      read, and one log per element (``p log p``); the read bound is the
      larger in float32, the two are about equal in float64;
    - ``bce_with_logits``: two arrays read (logits, targets), one exp and
      one log1p per element (two transcendentals);
    - ``softmax_kl_div``: two logit arrays read, two exps per element (the
      softmax of each row);
    - ``softmax``, ``log_softmax``, ``cross_entropy_grad``: one exp per
      element, one array read and one written.
    """
    limits = _LIMITS[min(max(int(threads), 1), 2)]
    itemsize = 4 if case.dtype == "float32" else 8
    n = case.size
    per_exp = 1 / limits["exp"][case.dtype]
    read = n * itemsize / limits["read"]
    if op in ("logsumexp", "cross_entropy", "softmax_entropy", "entropy"):
        return max(n * per_exp, read)
    if op == "kl_div":
        return max(n * per_exp, 2 * read)
    if op in ("bce_with_logits", "softmax_kl_div"):
        return max(2 * n * per_exp, 2 * read)
    return max(n * per_exp, 2 * n * itemsize / limits["read_write"])


def make_data(case, seed=DEFAULT_SEED):
    """Seeded standard-normal logits of ``case``'s shape and dtype (touched)."""
    import numpy as np

    rng = np.random.default_rng([seed, case.rows, case.cols])
    return rng.standard_normal(case.shape, dtype=np.dtype(case.dtype))


# Inputs derived from a case's logits x (and the seed): kind -> (x, seed, array).
# Made once per shape and shared by every implementation (and by the
# operations that use the same kind); run() drops them after each shape.
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
        value = rng.standard_normal(x.shape, dtype=x.dtype)
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


# --------------------------------------------------------------------------
# Implementations
# --------------------------------------------------------------------------


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
              "softmax_kl_div": numpy_softmax_kl_div, "softmax_entropy": numpy_softmax_entropy}
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


# --------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------


def _check(op, case, x, result, tolerance_rows=256, *, seed=DEFAULT_SEED, reference=None):
    """Max error of ``result`` against a float64 NumPy reference, scaled.

    Only the first ``tolerance_rows`` rows of a per-row result are checked (a
    sanity check that the table does not compare wrong answers, not a test);
    a one-number result (kl_div, bce_with_logits) is checked against the
    float64 reference over the whole array. ``reference``: that reference,
    when already computed (:func:`reference_result`).
    """
    import numpy as np

    k = min(case.rows, tolerance_rows)
    if reference is not None:
        ref = np.asarray(reference)
    elif op in DIVERGENCE_OPS:
        ref = np.asarray(reference_result(op, x, seed, rows=k))
    else:
        ref = _NUMPY_OPS[op](np.asarray(x[:k], dtype=np.float64))
    got = np.asarray(result)
    got = (got if got.ndim == 0 else got[:k]).astype(np.float64)
    if got.shape != ref.shape:
        return float("inf")
    scale = max(float(np.max(np.abs(ref))), np.finfo(np.float64).tiny)
    return float(np.max(np.abs(got - ref))) / scale


def _tolerance(dtype):
    return 1e-4 if dtype == "float32" else 1e-9


def time_case(case, op, x, impls, threads, repeats, overhead_calls, log, seed=DEFAULT_SEED):
    """Time ``op`` on ``x`` for each impl; return ``{impl: seconds or Exception}``.

    Each implementation is warmed up (and checked) once, then the repeats run
    with the implementations interleaved: repeat ``r`` starts with the
    ``r``-th implementation, so none always runs first or after the same one.
    ``seed`` makes the second input of DIVERGENCE_OPS (:func:`op_inputs`).
    """
    calls, errors, mismatch = {}, {}, {}
    reference = []  # computed once, at the first implementation that runs
    for impl in impls:
        try:
            call, to_numpy = prepare(impl, op, x, threads, overhead=case.overhead, seed=seed)
            result = call()  # warm-up: imports, JAX compile, thread pools
            if not reference:
                if op in DIVERGENCE_OPS:
                    reference.append(reference_result(op, x, seed))
                else:
                    reference.append(None)
            err = _check(op, case, x, to_numpy(result), seed=seed, reference=reference[0])
            del result
            if case.overhead:
                for _ in range(min(50, overhead_calls)):
                    call()
        except Unavailable as exc:
            errors[impl] = exc
            continue
        except Exception as exc:  # an implementation's own failure: report, go on
            errors[impl] = exc
            log(f"  {impl}: {type(exc).__name__}: {exc}")
            continue
        if not err <= _tolerance(case.dtype):
            mismatch[impl] = err
            log(f"  {impl}: result differs from the float64 reference by {err:.3g} (scaled)")
        calls[impl] = call

    names = list(calls)
    samples = {name: [] for name in names}
    perf_counter = time.perf_counter
    loop = range(overhead_calls)
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for r in range(repeats):
            k = r % len(names) if names else 0
            for name in names[k:] + names[:k]:
                call = calls[name]
                if case.overhead:
                    t0 = perf_counter()
                    for _ in loop:
                        call()
                    samples[name].append((perf_counter() - t0) / overhead_calls)
                else:
                    # The result is freed after the clock stops, for every impl alike.
                    t0 = perf_counter()
                    keep = [call()]
                    samples[name].append(perf_counter() - t0)
                    keep.clear()
    finally:
        if gc_was_enabled:
            gc.enable()
    out = {name: statistics.median(s) for name, s in samples.items()}
    out.update(errors)
    return out, mismatch


# --------------------------------------------------------------------------
# Peak memory (one fresh subprocess per call)
# --------------------------------------------------------------------------


def _status_kib():
    """VmRSS and VmHWM of this process in KiB, from /proc/self/status."""
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                values[key] = int(value.split()[0])
    return values


def _reset_peak():
    """Reset VmHWM to the current RSS (Linux >= 4.0); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return "VmHWM" in _status_kib()
    except OSError:
        return False


def _maxrss_kib():
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss // 1024 if sys.platform == "darwin" else rss  # bytes on macOS


def measure_peak_memory(impl, op, case, seed, threads):
    """Run one call of ``op`` in this process and return its peak extra memory.

    Call in a fresh process (see :func:`peak_memory_subprocess`): the input is
    allocated and touched (with the second input of DIVERGENCE_OPS), the
    libraries are loaded and warmed up on a tiny input, the high-water mark is
    reset, then the timed call runs once. ``input_bytes`` counts every array
    the call takes.
    """
    import numpy as np

    x = make_data(case, seed)
    call, _ = prepare(impl, op, x, threads, aot=True, seed=seed)
    inputs = op_inputs(op, x, seed)
    input_bytes = sum(int(a.nbytes) for a in {id(a): a for a in inputs}.values())
    # Warm up on a tiny input: lazy imports, dispatch tables, first allocations.
    tiny_call, _ = prepare(impl, op, np.ones((2, 3), dtype=x.dtype), threads, seed=seed)
    tiny_call()
    del tiny_call
    gc.collect()
    if _reset_peak():
        method = "VmHWM"
        base = _status_kib()["VmRSS"]
        result = call()
        peak = _status_kib()["VmHWM"]
    else:
        method = "ru_maxrss"
        base = _maxrss_kib()
        result = call()
        peak = _maxrss_kib()
    out_bytes = int(getattr(result, "nbytes", 0))
    return {
        "impl": impl,
        "op": op,
        "method": method,
        "input_bytes": input_bytes,
        "output_bytes": out_bytes,
        "extra_bytes": max(peak - base, 0) * 1024,
    }


def _mem_child_main(spec_json):
    spec = json.loads(spec_json)
    case = Case(spec["rows"], spec["cols"], spec["dtype"])
    res = measure_peak_memory(spec["impl"], spec["op"], case, spec["seed"], spec["threads"])
    sys.stdout.write("FASTXENT_MEM " + json.dumps(res) + "\n")


def peak_memory_subprocess(impl, op, case, seed, threads, timeout=600):
    """Measure :func:`measure_peak_memory` in a fresh Python process."""
    spec = json.dumps(
        {"impl": impl, "op": op, "rows": case.rows, "cols": case.cols, "dtype": case.dtype,
         "seed": seed, "threads": threads}
    )
    # Load this very file (it may not be importable as fastxent._benchmark when
    # the package is not built), and let it import fastxent as the parent did.
    # `-c` puts the current folder first on sys.path: started in a clone's root
    # the child would import the uncompiled source folder, so it is dropped.
    code = (
        "import importlib.util, sys\n"
        "sys.path = [p for p in sys.path if p != '']\n"
        f"spec = importlib.util.spec_from_file_location('_fastxent_benchmark', {os.path.abspath(__file__)!r})\n"
        "mod = importlib.util.module_from_spec(spec); sys.modules[spec.name] = mod\n"
        "spec.loader.exec_module(mod)\n"
        "mod._mem_child_main(sys.argv[1])\n"
    )
    env = dict(os.environ)
    fx = sys.modules.get("fastxent")
    fx_file = getattr(fx, "__file__", None)
    if fx_file:  # the child imports the same fastxent as this process
        root = os.path.dirname(os.path.dirname(os.path.abspath(fx_file)))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-c", code, spec], capture_output=True, text=True, env=env, timeout=timeout
    )
    for line in proc.stdout.splitlines():
        if line.startswith("FASTXENT_MEM "):
            return json.loads(line[len("FASTXENT_MEM "):])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    raise RuntimeError(f"memory subprocess failed (exit {proc.returncode}): {tail}")


# --------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------


def _fmt(v):
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    if v >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def _fmt_ratio(r):
    return f"{r:.0f}x" if r >= 100 else f"{r:.1f}x" if r >= 10 else f"{r:.2f}x"


def _mib(n):
    return n / 2**20


def _table(header, rows, markdown, text_columns=3):
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    def line(cells):
        return "  ".join(c.ljust(w) if i < text_columns else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def speed_table(results, impls, threads, markdown=False):
    """Rows: op, shape, dtype, each impl's time (ratio to fastxent), roofline, % reached."""
    shown = [i for i in impls if any(isinstance(r["times"].get(i), float) for r in results)]
    header = ["operation", "shape", "dtype"]
    header += [f"{i} (x fastxent)" if i in PEERS and "fastxent" in shown else i for i in shown]
    header += ["roofline", "fastxent % of roofline"]
    rows = []
    for r in results:
        case, times = r["case"], r["times"]
        unit, scale = ("us", 1e6) if case.overhead else ("ms", 1e3)
        fx = times.get("fastxent")
        fx = fx if isinstance(fx, float) else None
        cells = [r["op"], f"{case.label}" + (" (call, us)" if case.overhead else ""), case.dtype]
        for impl in shown:
            t = times.get(impl)
            if not isinstance(t, float):
                cells.append("-")
                continue
            cell = _fmt(t * scale)
            if impl in r.get("mismatch", {}):
                cell += " (!)"
            if fx and impl in PEERS:
                cell += f" ({_fmt_ratio(t / fx)})"
            cells.append(cell)
        if case.overhead:
            floor = CALL_FLOOR_US * 1e-6
            cells.append(f"{_fmt(CALL_FLOOR_US)} us call floor")
        else:
            floor = roofline_seconds(r["op"], case, threads)
            cells.append(f"{_fmt(floor * scale)} {unit}")
        cells.append(f"{100 * floor / fx:.0f}%" if fx else "-")
        rows.append(cells)
    return _table(header, rows, markdown)


def memory_table(mem_results, markdown=False):
    header = ["impl", "operation", "shape", "dtype", "input MiB", "output MiB", "peak extra MiB",
              "extra / output"]
    rows = []
    for m in mem_results:
        case = m["case"]
        if "error" in m:
            rows.append([m["impl"], m["op"], case.label, case.dtype, "-", "-", m["error"], "-"])
            continue
        out_b, extra = m["output_bytes"], m["extra_bytes"]
        rows.append([
            m["impl"], m["op"], case.label, case.dtype,
            f"{_mib(m['input_bytes']):.1f}", f"{_mib(out_b):.3f}" if out_b < 2**20 else f"{_mib(out_b):.1f}",
            f"{_mib(extra):.2f}", f"{extra / out_b:.2f}" if out_b >= 2**20 else "(output < 1 MiB)",
        ])
    return _table(header, rows, markdown, text_columns=4)


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _read_first_line(path):
    try:
        with open(path) as f:
            return f.readline().strip()
    except OSError:
        return "n/a"


def default_threads():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def reproduce_command(ns):
    """The exact command line (environment included) that repeats this run."""
    env = [f"{k}={shlex.quote(v)}" for k, v in sorted(os.environ.items()) if k.startswith(_ENV_PREFIXES)]
    if __name__ in ("fastxent._benchmark", "__main__") and __package__ == "fastxent":
        cmd = [sys.executable, "-m", "fastxent._benchmark"]
    else:
        cmd = [sys.executable, os.path.abspath(__file__)]
    cmd += ["--ops", ",".join(ns.ops), "--impls", ",".join(ns.impls), "--threads", str(ns.threads),
            "--repeats", str(ns.repeats), "--seed", str(ns.seed)]
    if ns.no_mem:
        cmd.append("--no-mem")
    else:
        cmd += ["--mem-impls", ",".join(ns.mem_impls)]
    cmd += [flag for flag, on in (("--quick", ns.quick), ("--large", ns.large), ("--markdown", ns.markdown)) if on]
    return " ".join(env + [shlex.join(cmd)])


def environment_lines(ns):
    """Versions and settings that the numbers depend on."""
    lines = [
        f"machine: {_cpu_model()}, {os.cpu_count()} CPUs, python {platform.python_version()}",
        f"transparent huge pages: {_read_first_line('/sys/kernel/mm/transparent_hugepage/enabled')}",
        f"threads: {ns.threads}; repeats: {ns.repeats} (median, implementations interleaved); seed: {ns.seed}",
    ]
    if hasattr(os, "getloadavg"):  # other work on the machine makes every number noisier
        lines.append("load average at start (1, 5, 15 min): " + ", ".join(f"{v:.2f}" for v in os.getloadavg()))
    versions = []
    wanted = {"fastxent" if i == "fastxent_out" else i for i in ns.impls} | {"numpy"}
    for impl in (i for i in IMPLS if i in wanted):
        try:
            lib = _load(impl, ns.threads)
        except Unavailable as exc:
            versions.append(f"{impl} unavailable ({exc})")
            continue
        mod = sys.modules.get(impl, lib)
        versions.append(f"{impl} {getattr(mod, '__version__', '?')}")
    lines.append("versions: " + "; ".join(versions))
    fx = _LIB_CACHE.get("fastxent")
    if fx is not None and not isinstance(fx, Unavailable):
        try:
            lines.append(f"fastxent config: {fx.get_config()}")
        except Exception as exc:
            lines.append(f"fastxent config: unavailable ({type(exc).__name__}: {exc})")
    try:
        from threadpoolctl import threadpool_info

        pools = sorted({f"{p['internal_api']} ({p.get('prefix')}, {p['num_threads']} threads)"
                        for p in threadpool_info()})
        lines.append("thread pools loaded: " + ", ".join(pools))
    except Exception:
        pass
    if "OPENBLAS_CORETYPE" in os.environ or "OPENBLAS_L2_SIZE" in os.environ:
        lines.append(
            "note: OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE are set; they slow OpenBLAS (numpy's BLAS), which "
            "none of these operations use; unset both in this command to compare against a current numpy's BLAS"
        )
    return lines


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def _csv(choices, groups=None):
    groups = groups or {}

    def parse(text):
        items = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in items if t not in choices and t not in groups]
        if bad or not items:
            names = list(choices) + [f"{g} (group)" for g in groups]
            raise argparse.ArgumentTypeError(f"choose from {', '.join(names)} (got {text!r})")
        return expand_ops(items, groups)
    return parse


def expand_ops(names, groups=OP_GROUPS):
    """Replace group names (OP_GROUPS) by their operations; drop repeats, keep order."""
    out = []
    for name in names:
        for op in groups.get(name, (name,)):
            if op not in out:
                out.append(op)
    return out


def build_parser(parser=None):
    """Add this harness's options to ``parser`` (a new one when None)."""
    if parser is None:
        parser = argparse.ArgumentParser(
            prog="python -m fastxent._benchmark",
            description="Time fastxent against NumPy, SciPy, PyTorch and JAX, and measure its peak memory.",
        )
    all_impls = IMPLS + EXTRA_IMPLS
    parser.add_argument("--quick", action="store_true", help="smaller shapes and fewer repeats (a self-check)")
    parser.add_argument("--large", action="store_true", help="add 4096 x 50257 float32 (256 x 50257 with --quick)")
    groups = "; ".join(f"{g} = {','.join(ops)}" for g, ops in OP_GROUPS.items() if g != "all")
    parser.add_argument("--ops", type=_csv(OPS, OP_GROUPS), default=list(DEFAULT_OPS),
                        help="comma-separated operations or groups: " + ",".join(OPS)
                        + f" (default: the group default); groups: {groups}; all = every operation")
    parser.add_argument("--impls", type=_csv(all_impls), default=list(IMPLS),
                        help="comma-separated: " + ",".join(all_impls) + " (default: all but fastxent_out)")
    parser.add_argument("--threads", type=int, default=None, help="threads for fastxent and torch (default: all CPUs)")
    parser.add_argument("--repeats", type=int, default=None,
                        help=f"timed calls per implementation (default {DEFAULT_REPEATS}, --quick {QUICK_REPEATS})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the data generator")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables (for the README)")
    parser.add_argument("--mem-impls", type=_csv(all_impls), default=["fastxent"],
                        help="implementations whose peak memory is measured (default: fastxent)")
    parser.add_argument("--no-mem", action="store_true", help="skip the peak-memory subprocesses")
    return parser


def _resolve(ns):
    ops = expand_ops([ns.ops] if isinstance(ns.ops, str) else list(ns.ops))
    bad = [op for op in ops if op not in OPS]
    if bad or not ops:
        raise SystemExit(f"--ops: unknown operation {bad[0] if bad else '(none)'!r}; choose from "
                         + ", ".join(list(OPS) + list(OP_GROUPS)))
    ns.ops = ops
    if ns.threads is None:
        ns.threads = default_threads()
    if ns.threads < 1:
        raise SystemExit("--threads must be at least 1")
    if ns.repeats is None:
        ns.repeats = QUICK_REPEATS if ns.quick else DEFAULT_REPEATS
    if ns.repeats < 1:
        raise SystemExit("--repeats must be at least 1")
    return ns


def run(argv=None, *, file=None, **options):
    """Run the comparison and print it; return the results.

    Parameters
    ----------
    argv : list of str or argparse.Namespace, optional
        Command-line arguments (``sys.argv[1:]`` when None), or a namespace
        already parsed by a parser that :func:`build_parser` filled.
    file : file-like, optional
        Where the tables go (``sys.stdout``); progress goes to ``sys.stderr``.
    **options
        Override parsed options by name, e.g. ``run([], quick=True, ops=["softmax"])``.

    Returns
    -------
    dict
        ``{"speed": [...], "memory": [...], "command": str}``.
    """
    if isinstance(argv, argparse.Namespace):
        ns = argparse.Namespace(**vars(argv))
    else:
        ns = build_parser().parse_args(argv)
    defaults = vars(build_parser().parse_args([]))
    for key, value in defaults.items():
        if not hasattr(ns, key):
            setattr(ns, key, value)
    for key, value in options.items():
        if key not in defaults:
            raise TypeError(f"run() got an unexpected option {key!r}")
        setattr(ns, key, value)
    ns = _resolve(ns)
    out = file if file is not None else sys.stdout

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    torch_threads = None
    if "torch" in sys.modules:
        torch_threads = sys.modules["torch"].get_num_threads()
    command = reproduce_command(ns)
    header = environment_lines(ns)
    started = time.perf_counter()

    speed = []
    try:
        for case in cases(ns.quick, ns.large):
            x = make_data(case, ns.seed)
            calls = QUICK_OVERHEAD_CALLS if ns.quick else OVERHEAD_CALLS
            for i, op in enumerate(ns.ops):
                log(f"timing {op} {case.label} {case.dtype} ...")
                times, mismatch = time_case(case, op, x, ns.impls, ns.threads, ns.repeats, calls, log,
                                            seed=ns.seed)
                speed.append({"op": op, "case": case, "times": times, "mismatch": mismatch})
                # Keep only the derived inputs that the operations still to come use.
                _drop_derived(keep=_kinds_needed(ns.ops[i + 1:]))
            _drop_derived()
            del x
            gc.collect()
    finally:
        _drop_derived()
        if torch_threads is not None:
            sys.modules["torch"].set_num_threads(torch_threads)

    memory = []
    if not ns.no_mem:
        for impl in ns.mem_impls:
            for case in cases(ns.quick, ns.large):
                if case.overhead:
                    continue
                for op in ns.ops:
                    log(f"peak memory {impl} {op} {case.label} {case.dtype} ...")
                    try:
                        lib = _load(impl, ns.threads)  # not importable here: no subprocess
                        if impl in ("fastxent", "fastxent_out") and op in DIVERGENCE_OPS:
                            fastxent_function(lib, op)  # nor when this fastxent lacks the function
                        m = peak_memory_subprocess(impl, op, case, ns.seed, ns.threads)
                    except Unavailable as exc:
                        key = "fastxent" if impl == "fastxent_out" else impl
                        not_importable = isinstance(_LIB_CACHE.get(key), Unavailable)
                        m = {"impl": impl, "op": op, "error": "not importable" if not_importable else "not available"}
                        if not not_importable:
                            log(f"  {exc}")
                    except Exception as exc:
                        m = {"impl": impl, "op": op, "error": "failed"}
                        log(f"  {(str(exc).splitlines() or ['?'])[0]}")
                    m["case"] = case
                    memory.append(m)

    elapsed = time.perf_counter() - started
    p = partial(print, file=out)
    if ns.markdown:
        p("Reproduce with:\n\n```\n" + command + "\n```\n")
        p("\n".join(f"- {line}" for line in header))
        p()
    else:
        p("Reproduce with: " + command)
        p("\n".join(header))
        p()
    p("Time per call, ms (median), and peer time / fastxent time:")
    p()
    p(speed_table(speed, ns.impls, ns.threads, ns.markdown))
    not_run = {}  # (impl, reason) -> operations
    for r in speed:
        for i, t in r["times"].items():
            if isinstance(t, Unavailable):
                ops_ = not_run.setdefault((i, str(t)), [])
                if r["op"] not in ops_:
                    ops_.append(r["op"])
    failed = sorted({f"{i} {r['op']}: {type(t).__name__}: {t}" for r in speed for i, t in r["times"].items()
                     if isinstance(t, Exception) and not isinstance(t, Unavailable)})
    if not_run:
        p()
        for (impl, reason), ops_ in sorted(not_run.items()):
            p(f"not run: {impl} ({reason}): {', '.join(ops_)}")
    for line in failed:
        p(f"failed: {line}")
    if any(r["mismatch"] for r in speed):
        p("(!) result differs from a float64 NumPy reference by more than "
          f"{_tolerance('float32')} (float32) / {_tolerance('float64')} (float64), scaled by max |reference|")
    if memory:
        p()
        p("Peak memory of one call beyond its input (fresh process, "
          f"{memory[0].get('method', 'VmHWM')} after reset), against the output it returns:")
        p()
        p(memory_table(memory, ns.markdown))
    p()
    p(f"total time {elapsed:.0f} s")
    return {"speed": speed, "memory": memory, "command": command}


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    run(argv)
    return 0


if __name__ == "__main__":
    if not __package__:
        # Run as a file (python fastxent/_benchmark.py): import fastxent from the
        # folder that holds the package, not modules of the package's folder.
        here = os.path.dirname(os.path.abspath(__file__))
        sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
        sys.path.insert(0, os.path.dirname(here))
    sys.exit(main())
