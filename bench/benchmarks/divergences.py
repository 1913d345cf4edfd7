"""KL divergence, binary cross-entropy with logits, entropy, and the entropy and
KL divergence of softmax rows: fastxent against its peers.

Like softmax_family.py and losses.py: one class per operation, parametrized by
``impl``, shape and dtype, each ``time_*`` paired with a ``peakmem_*`` on the
same call; ``setup`` makes the seeded inputs (the second input included)
outside the timed region and raises ``NotImplementedError`` to skip what
cannot run (a missing peer, or a fastxent commit without the function).

The inputs, from the shape's standard-normal logits ``x`` and a second array
``y`` seeded apart (softmax and log_softmax computed in float64 and rounded
once to the dtype):

- ``KLDiv``: ``reduction='batchmean'`` of the target ``p = softmax(y)``
  against the input ``log q = log_softmax(x)``. fastxent: ``fastxent.kl_div``;
  numpy: ``sum(xlogy(p, p) - p * log q) / rows`` with a ``where``; scipy:
  ``scipy.special.rel_entr(p, q).sum() / rows`` (``q = exp(log q)`` made in
  setup: SciPy takes probabilities); torch: ``F.kl_div(log q, p,
  reduction='batchmean')``.
- ``BCEWithLogits``: ``reduction='mean'`` of logits ``x`` against targets of
  0 and 1. fastxent: ``fastxent.binary_cross_entropy_with_logits``; numpy: the
  softplus formula ``max(x, 0) - x t + log1p(exp(-|x|))``; torch:
  ``F.binary_cross_entropy_with_logits``. SciPy has none.
- ``Entropy``: per-row entropy of the probabilities ``softmax(x)``, as
  ``scipy.stats.entropy(p, axis=-1)`` (rows normalized again). fastxent:
  ``fastxent.entropy(p, axis=-1)``; numpy: normalize, ``-sum(xlogy(p, p))``;
  scipy: ``scipy.stats.entropy``; torch: ``Categorical(probs=p,
  validate_args=False).entropy()``.
- ``EntropyColumns``: the same entropy along axis 0 of a C-ordered
  (classes, columns) array, whose columns lie side by side in memory (the
  class axis strided). fastxent: ``fastxent.entropy(p, axis=0)``; numpy and
  scipy as for ``Entropy``, along axis 0.
- ``SoftmaxKLDiv``: per-row ``KL(softmax(x) || softmax(y))``. fastxent:
  ``fastxent.softmax_kl_div(x, y)``; numpy: from the two stable log_softmax;
  scipy: ``rel_entr(softmax(x), softmax(y)).sum(-1)``; torch:
  ``F.kl_div(F.log_softmax(y, -1), F.log_softmax(x, -1), log_target=True,
  reduction='none').sum(-1)``.
- ``SoftmaxEntropy``: per-row entropy of ``softmax(x)``. fastxent:
  ``fastxent.softmax_entropy(x)``; numpy: ``-sum(exp(lp) * lp)`` with ``lp``
  the stable log_softmax; scipy: ``entr(softmax(x)).sum(-1)``; torch:
  ``Categorical(logits=x, validate_args=False).entropy()``.

Threads and ``peakmem_*`` as in softmax_family.py. ``python bench/compare.py
--ops divergences`` compares the same operations in one run, with JAX, the
roofline and the peak memory net of the inputs.
"""

from .softmax_family import THREADS, SEED, _numpy_log_softmax, _numpy_softmax, np, torch, fastxent

try:
    import scipy.special as scipy_special
except ImportError:
    scipy_special = None

try:
    from threadpoolctl import threadpool_limits
except ImportError:
    threadpool_limits = None

SHAPES = ["256x50257", "100000x10", "10000x1000"]
DTYPES = ["float32", "float64"]


# ---------------------------------------------------------------------------
# inputs

def _logits(rows, cols, dtype, stream=()):
    rng = np.random.default_rng([SEED, rows, cols, *stream])
    return rng.standard_normal((rows, cols), dtype=np.dtype(dtype))


def _in_float64(fn, x):
    """``fn`` of ``x`` computed in float64, rounded once to the dtype of ``x``."""
    return fn(x.astype(np.float64)).astype(x.dtype)


def _binary_targets(rows, cols, dtype):
    rng = np.random.default_rng([SEED, rows, cols, 2])
    return rng.integers(0, 2, (rows, cols), dtype=np.int8).astype(dtype)


# ---------------------------------------------------------------------------
# NumPy implementations: plain formulas, in the dtype of the input

def _xlogx(p):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(p > 0, p * np.log(p), 0)


def _numpy_kl_div(logq, p):
    terms = _xlogx(p)
    terms -= p * logq
    return terms.sum() / p.shape[0]


def _numpy_bce_with_logits(x, t):
    terms = np.maximum(x, 0)
    terms -= x * t
    terms += np.log1p(np.exp(-np.abs(x)))
    return terms.sum() / x.size


def _numpy_entropy(p):
    p = p / p.sum(axis=-1, keepdims=True)
    return -_xlogx(p).sum(axis=-1)


def _numpy_softmax_kl_div(x, y):
    lp = _numpy_log_softmax(x)
    d = lp - _numpy_log_softmax(y)
    np.exp(lp, out=lp)
    d *= lp
    return d.sum(axis=-1)


def _numpy_softmax_entropy(x):
    lp = _numpy_log_softmax(x)
    return -(np.exp(lp) * lp).sum(axis=-1)


# ---------------------------------------------------------------------------
# the suite

def _fastxent(name, **kw):
    f = getattr(fastxent, name, None)
    if f is None:
        raise NotImplementedError(f"fastxent.{name} is not available")
    return lambda *args: f(*args, **kw)


def _scipy_entropy(axis):
    """``scipy.stats.entropy`` along `axis`, or NotImplementedError without SciPy."""
    try:
        import scipy.stats
    except ImportError:
        raise NotImplementedError("scipy is not installed") from None
    return lambda p: scipy.stats.entropy(p, axis=axis)


def _need(module, name):
    if module is None:
        raise NotImplementedError(f"{name} is not installed")


class _Divergence:
    """Shared grid and setup; subclasses set ``impls`` and define
    ``_inputs`` (the arrays, made once in setup) and ``_function``."""

    param_names = ["impl", "shape", "dtype"]
    timeout = 300

    def _inputs(self, rows, cols, dtype):
        raise NotImplementedError

    def _function(self, impl):
        raise NotImplementedError(impl)

    def setup(self, impl, shape, dtype):
        if np is None:
            raise NotImplementedError("numpy is not installed")
        self.func = self._function(impl)
        rows, cols = (int(n) for n in shape.split("x"))
        args = self._inputs(rows, cols, dtype)
        if impl == "scipy":
            args = self._scipy_inputs(args)
        if impl == "torch":
            torch.set_num_threads(THREADS)
            args = tuple(torch.from_numpy(a) for a in args)
        self.args = args
        self._limits = None
        if threadpool_limits is not None:
            self._limits = threadpool_limits(limits=THREADS, user_api="openmp")
        self.func(*(a[:2] for a in self.args))  # warm-up outside the timed region

    def _scipy_inputs(self, args):
        return args

    def teardown(self, impl, shape, dtype):
        if getattr(self, "_limits", None) is not None:
            self._limits.restore_original_limits()


class KLDiv(_Divergence):
    params = [["fastxent", "numpy", "scipy", "torch"], SHAPES, DTYPES]

    def _inputs(self, rows, cols, dtype):
        logq = _in_float64(_numpy_log_softmax, _logits(rows, cols, dtype))
        p = _in_float64(_numpy_softmax, _logits(rows, cols, dtype, (1,)))
        return logq, p

    def _scipy_inputs(self, args):
        logq, p = args
        return np.exp(logq), p  # SciPy takes the probabilities q

    def _function(self, impl):
        if impl == "fastxent":
            return _fastxent("kl_div", reduction="batchmean")
        if impl == "numpy":
            return _numpy_kl_div
        if impl == "scipy":
            _need(scipy_special, "scipy")
            return lambda q, p: scipy_special.rel_entr(p, q).sum() / p.shape[0]
        if impl == "torch":
            _need(torch, "torch")
            F = torch.nn.functional
            return lambda logq, p: F.kl_div(logq, p, reduction="batchmean")
        raise NotImplementedError(impl)

    def time_kl_div(self, impl, shape, dtype):
        self.func(*self.args)

    def peakmem_kl_div(self, impl, shape, dtype):
        self.func(*self.args)


class BCEWithLogits(_Divergence):
    params = [["fastxent", "numpy", "torch"], SHAPES, DTYPES]

    def _inputs(self, rows, cols, dtype):
        return _logits(rows, cols, dtype), _binary_targets(rows, cols, dtype)

    def _function(self, impl):
        if impl == "fastxent":
            return _fastxent("binary_cross_entropy_with_logits", reduction="mean")
        if impl == "numpy":
            return _numpy_bce_with_logits
        if impl == "torch":
            _need(torch, "torch")
            return torch.nn.functional.binary_cross_entropy_with_logits
        raise NotImplementedError(impl)

    def time_bce_with_logits(self, impl, shape, dtype):
        self.func(*self.args)

    def peakmem_bce_with_logits(self, impl, shape, dtype):
        self.func(*self.args)


class Entropy(_Divergence):
    params = [["fastxent", "numpy", "scipy", "torch"], SHAPES, DTYPES]

    def _inputs(self, rows, cols, dtype):
        return (_in_float64(_numpy_softmax, _logits(rows, cols, dtype)),)

    def _function(self, impl):
        if impl == "fastxent":
            return _fastxent("entropy", axis=-1)
        if impl == "numpy":
            return _numpy_entropy
        if impl == "scipy":
            return _scipy_entropy(axis=-1)
        if impl == "torch":
            _need(torch, "torch")
            Categorical = torch.distributions.Categorical
            return lambda p: Categorical(probs=p, validate_args=False).entropy()
        raise NotImplementedError(impl)

    def time_entropy(self, impl, shape, dtype):
        self.func(*self.args)

    def peakmem_entropy(self, impl, shape, dtype):
        self.func(*self.args)


def _numpy_entropy_columns(p):
    p = p / p.sum(axis=0, keepdims=True)
    return -_xlogx(p).sum(axis=0)


class EntropyColumns(_Divergence):
    """Entropy along axis 0 of a C-ordered (classes, columns) array: the
    columns lie side by side in memory (a strided class axis)."""
    params = [["fastxent", "numpy", "scipy"], ["1000x20000", "20000x1000", "50000x100"],
              DTYPES]

    def _inputs(self, rows, cols, dtype):
        p = _in_float64(_numpy_softmax, _logits(cols, rows, dtype))
        return (np.ascontiguousarray(p.T),)

    def _function(self, impl):
        if impl == "fastxent":
            return _fastxent("entropy", axis=0)
        if impl == "numpy":
            return _numpy_entropy_columns
        if impl == "scipy":
            return _scipy_entropy(axis=0)
        raise NotImplementedError(impl)

    def time_entropy_columns(self, impl, shape, dtype):
        self.func(*self.args)

    def peakmem_entropy_columns(self, impl, shape, dtype):
        self.func(*self.args)


class SoftmaxKLDiv(_Divergence):
    params = [["fastxent", "numpy", "scipy", "torch"], SHAPES, DTYPES]

    def _inputs(self, rows, cols, dtype):
        return _logits(rows, cols, dtype), _logits(rows, cols, dtype, (1,))

    def _function(self, impl):
        if impl == "fastxent":
            return _fastxent("softmax_kl_div", axis=-1)
        if impl == "numpy":
            return _numpy_softmax_kl_div
        if impl == "scipy":
            _need(scipy_special, "scipy")
            softmax, rel_entr = scipy_special.softmax, scipy_special.rel_entr
            return lambda x, y: rel_entr(softmax(x, axis=-1), softmax(y, axis=-1)).sum(axis=-1)
        if impl == "torch":
            _need(torch, "torch")
            F = torch.nn.functional
            return lambda x, y: F.kl_div(F.log_softmax(y, -1), F.log_softmax(x, -1), log_target=True,
                                         reduction="none").sum(-1)
        raise NotImplementedError(impl)

    def time_softmax_kl_div(self, impl, shape, dtype):
        self.func(*self.args)

    def peakmem_softmax_kl_div(self, impl, shape, dtype):
        self.func(*self.args)


class SoftmaxEntropy(_Divergence):
    params = [["fastxent", "numpy", "scipy", "torch"], SHAPES, DTYPES]

    def _inputs(self, rows, cols, dtype):
        return (_logits(rows, cols, dtype),)

    def _function(self, impl):
        if impl == "fastxent":
            return _fastxent("softmax_entropy", axis=-1)
        if impl == "numpy":
            return _numpy_softmax_entropy
        if impl == "scipy":
            _need(scipy_special, "scipy")
            softmax, entr = scipy_special.softmax, scipy_special.entr
            return lambda x: entr(softmax(x, axis=-1)).sum(axis=-1)
        if impl == "torch":
            _need(torch, "torch")
            Categorical = torch.distributions.Categorical
            return lambda x: Categorical(logits=x, validate_args=False).entropy()
        raise NotImplementedError(impl)

    def time_softmax_entropy(self, impl, shape, dtype):
        self.func(*self.args)

    def peakmem_softmax_entropy(self, impl, shape, dtype):
        self.func(*self.args)
