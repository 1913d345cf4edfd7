"""logsumexp, softmax and log_softmax over the last axis: fastxent against its peers.

Each class times one operation and measures the peak memory of the same call,
for every implementation (the ``impl`` parameter) on the same seeded data:

- ``fastxent``: ``fastxent.<op>(x, axis=-1)``;
- ``numpy``: a plain numerically stable implementation (``x - max``, ``exp``,
  ``sum``, ``log``), single-threaded, with full-size temporaries;
- ``scipy``: ``scipy.special.<op>(x, axis=-1)``;
- ``torch``: ``torch.<op>(t, dim=-1)`` on ``t = torch.from_numpy(x)``.

``IntoReusedOutput`` times fastxent's softmax and log_softmax with ``out=`` a
reused array: the kernel without the OS's first-touch cost of a fresh output.

A combination whose library is missing (or a fastxent commit without the
function) is skipped: ``setup`` raises ``NotImplementedError``. Threads: every
CPU this process may run on, or ``FASTXENT_BENCH_THREADS``; applied to OpenMP
(fastxent) through threadpoolctl and to torch through ``torch.set_num_threads``.

``peakmem_*`` is the peak RSS of the whole benchmark process, so it includes
the input and every imported library (all are imported by this module, so
that part is the same for every ``impl``); differences between impls are the
temporaries and outputs of the call. The one-call view, net of the input, is
in ``python bench/compare.py`` (``fastxent._benchmark``).

This file stands alone on purpose (it does not import ``fastxent._benchmark``),
so that asv can run it against commits that predate the harness.
"""

import os

# Imports are guarded so that the suite still loads, and skips what it cannot
# run, against older commits and in environments without the peers.
try:
    import numpy as np
except ImportError:
    np = None

try:
    import fastxent
except ImportError:
    fastxent = None

try:
    import scipy.special as scipy_special
except ImportError:
    scipy_special = None

try:
    import torch
except ImportError:
    torch = None

try:
    from threadpoolctl import threadpool_limits
except ImportError:
    threadpool_limits = None


def _default_threads():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


THREADS = int(os.environ.get("FASTXENT_BENCH_THREADS", 0)) or _default_threads()
SEED = 1234
IMPLS = ["fastxent", "numpy", "scipy", "torch"]
# Rows x classes: a language-model vocabulary, many short rows, a middle case.
SHAPES = ["256x50257", "100000x10", "10000x1000"]
DTYPES = ["float32", "float64"]


def _stable_max(x):
    m = x.max(axis=-1, keepdims=True)
    m[~np.isfinite(m)] = 0  # an all -inf row: shift by 0, not -inf
    return m


def _numpy_logsumexp(x):
    m = _stable_max(x)
    e = np.subtract(x, m)
    np.exp(e, out=e)
    out = np.log(e.sum(axis=-1))
    out += m[..., 0]
    return out


def _numpy_log_softmax(x):
    shifted = x - _stable_max(x)
    shifted -= np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return shifted


def _numpy_softmax(x):
    e = x - _stable_max(x)
    np.exp(e, out=e)
    e /= e.sum(axis=-1, keepdims=True)
    return e


_NUMPY = {"logsumexp": _numpy_logsumexp, "log_softmax": _numpy_log_softmax, "softmax": _numpy_softmax}


def _function(impl, op):
    """The call to time, taking the prepared input; NotImplementedError to skip."""
    if impl == "fastxent":
        f = getattr(fastxent, op, None)
        if f is None:
            raise NotImplementedError(f"fastxent.{op} is not available")
        return lambda x: f(x, axis=-1)
    if impl == "numpy":
        return _NUMPY[op]
    if impl == "scipy":
        f = getattr(scipy_special, op, None)
        if f is None:
            raise NotImplementedError(f"scipy.special.{op} is not available")
        return lambda x: f(x, axis=-1)
    if impl == "torch":
        if torch is None:
            raise NotImplementedError("torch is not installed")
        f = getattr(torch, op)
        return lambda t: f(t, dim=-1)
    raise NotImplementedError(impl)


class _SoftmaxFamily:
    """Shared grid and setup; subclasses set ``op`` and define the benchmarks."""

    params = [IMPLS, SHAPES, DTYPES]
    param_names = ["impl", "shape", "dtype"]
    timeout = 300
    op = None

    def setup(self, impl, shape, dtype):
        if np is None:
            raise NotImplementedError("numpy is not installed")
        self.func = _function(impl, self.op)
        rows, cols = (int(n) for n in shape.split("x"))
        x = np.random.default_rng([SEED, rows, cols]).standard_normal((rows, cols), dtype=np.dtype(dtype))
        self.x = torch.from_numpy(x) if impl == "torch" else x
        if impl == "torch":
            torch.set_num_threads(THREADS)
        self._limits = None
        if threadpool_limits is not None:
            self._limits = threadpool_limits(limits=THREADS, user_api="openmp")
        self.func(self.x[:2])  # warm-up outside the timed region: lazy imports, thread pools

    def teardown(self, impl, shape, dtype):
        if getattr(self, "_limits", None) is not None:
            self._limits.restore_original_limits()


class Logsumexp(_SoftmaxFamily):
    op = "logsumexp"

    def time_logsumexp(self, impl, shape, dtype):
        self.func(self.x)

    def peakmem_logsumexp(self, impl, shape, dtype):
        self.func(self.x)


class Softmax(_SoftmaxFamily):
    op = "softmax"

    def time_softmax(self, impl, shape, dtype):
        self.func(self.x)

    def peakmem_softmax(self, impl, shape, dtype):
        self.func(self.x)


class LogSoftmax(_SoftmaxFamily):
    op = "log_softmax"

    def time_log_softmax(self, impl, shape, dtype):
        self.func(self.x)

    def peakmem_log_softmax(self, impl, shape, dtype):
        self.func(self.x)


class IntoReusedOutput:
    """softmax and log_softmax written into a reused array (``out=``): the
    kernel alone.  A fresh output costs the OS's zeroing of its pages on
    first touch on top (see docs/design.rst), which the classes above include."""

    params = [["softmax", "log_softmax"], SHAPES, DTYPES]
    param_names = ["op", "shape", "dtype"]
    timeout = 300

    def setup(self, op, shape, dtype):
        if np is None or fastxent is None:
            raise NotImplementedError("numpy and fastxent are needed")
        rows, cols = (int(n) for n in shape.split("x"))
        self.x = np.random.default_rng([SEED, rows, cols]).standard_normal((rows, cols), dtype=np.dtype(dtype))
        self.out = np.zeros_like(self.x)   # touched: no page faults while timed
        self.func = getattr(fastxent, op)
        self._limits = None
        if threadpool_limits is not None:
            self._limits = threadpool_limits(limits=THREADS, user_api="openmp")
        self.func(self.x, axis=-1, out=self.out)

    def teardown(self, op, shape, dtype):
        if getattr(self, "_limits", None) is not None:
            self._limits.restore_original_limits()

    def time_into_reused_output(self, op, shape, dtype):
        self.func(self.x, axis=-1, out=self.out)
