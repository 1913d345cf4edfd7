"""Cross-entropy and nll_loss from class labels (mean), with and without the gradient.

Like softmax_family.py, one class per operation, parametrized by ``impl``,
shape and dtype, each ``time_*`` paired with a ``peakmem_*`` on the same
call; ``setup`` raises ``NotImplementedError`` to skip what cannot run (a
missing peer, or a fastxent commit without ``cross_entropy``).

- ``fastxent``: ``fastxent.cross_entropy(x, t)`` (``return_grad=True`` for the
  gradient);
- ``numpy``: ``mean(logsumexp(x) - x[range, t])`` and ``softmax(x) - one_hot``;
- ``torch``: ``F.cross_entropy`` on ``torch.from_numpy(x)``, ``.backward()``
  for the gradient.

``NLLLoss`` and ``NLLLossGrad`` time ``nll_loss`` the same way (the input
taken as log-probabilities; ``numpy``: ``-mean(x[range, t])`` and a scattered
``-1 / N``; ``torch``: ``F.nll_loss``), over shapes where the gather of one
element per row meets long rows (the gradient's writes) and many short ones.

The other losses of ``torch.nn.functional`` that fastxent has, ``kl_div`` and
``binary_cross_entropy_with_logits``, are in divergences.py (``KLDiv``,
``BCEWithLogits``), with the entropies; ``python bench/compare.py --ops
losses`` compares all four losses in one run.
"""

from .softmax_family import THREADS, SEED, _numpy_logsumexp, _numpy_softmax, np, torch, fastxent

try:
    from threadpoolctl import threadpool_limits
except ImportError:
    threadpool_limits = None

IMPLS = ["fastxent", "numpy", "torch"]
SHAPES = ["256x50257", "100000x10", "10000x1000"]
DTYPES = ["float32", "float64"]


def _loss(impl, grad):
    if impl == "fastxent":
        if getattr(fastxent, "cross_entropy", None) is None:
            raise NotImplementedError("fastxent.cross_entropy is not available")
        if grad:
            return lambda x, t: fastxent.cross_entropy(x, t, return_grad=True)
        return lambda x, t: fastxent.cross_entropy(x, t)
    if impl == "numpy":
        def numpy_loss(x, t):
            rows = np.arange(x.shape[0])
            loss = np.mean(_numpy_logsumexp(x) - x[rows, t])
            if not grad:
                return loss
            g = _numpy_softmax(x)
            g[rows, t] -= 1
            g /= x.shape[0]
            return loss, g
        return numpy_loss
    if impl == "torch":
        if torch is None:
            raise NotImplementedError("torch is not installed")
        F = torch.nn.functional
        if grad:
            def torch_loss(x, t):
                x = x.detach().requires_grad_(True)
                loss = F.cross_entropy(x, t)
                loss.backward()
                return loss, x.grad
            return torch_loss
        return F.cross_entropy
    raise NotImplementedError(impl)


def _nll(impl, grad):
    if impl == "fastxent":
        if getattr(fastxent, "nll_loss", None) is None:
            raise NotImplementedError("fastxent.nll_loss is not available")
        if grad:
            return lambda x, t: fastxent.nll_loss(x, t, return_grad=True)
        return lambda x, t: fastxent.nll_loss(x, t)
    if impl == "numpy":
        def numpy_nll(x, t):
            rows = np.arange(x.shape[0])
            loss = -np.mean(x[rows, t])
            if not grad:
                return loss
            g = np.zeros_like(x)
            g[rows, t] = -1.0 / x.shape[0]
            return loss, g
        return numpy_nll
    if impl == "torch":
        if torch is None:
            raise NotImplementedError("torch is not installed")
        F = torch.nn.functional
        if grad:
            def torch_nll(x, t):
                x = x.detach().requires_grad_(True)
                loss = F.nll_loss(x, t)
                loss.backward()
                return loss, x.grad
            return torch_nll
        return F.nll_loss
    raise NotImplementedError(impl)


class _CrossEntropy:
    params = [IMPLS, SHAPES, DTYPES]
    param_names = ["impl", "shape", "dtype"]
    timeout = 300
    grad = False
    make = staticmethod(_loss)

    def setup(self, impl, shape, dtype):
        if np is None:
            raise NotImplementedError("numpy is not installed")
        self.func = self.make(impl, self.grad)
        rows, cols = (int(n) for n in shape.split("x"))
        rng = np.random.default_rng([SEED, rows, cols])
        x = rng.standard_normal((rows, cols), dtype=np.dtype(dtype))
        t = rng.integers(0, cols, rows)
        if impl == "torch":
            torch.set_num_threads(THREADS)
            x, t = torch.from_numpy(x), torch.from_numpy(t)
        self.x, self.t = x, t
        self._limits = None
        if threadpool_limits is not None:
            self._limits = threadpool_limits(limits=THREADS, user_api="openmp")
        self.func(self.x[:2], self.t[:2])

    def teardown(self, impl, shape, dtype):
        if getattr(self, "_limits", None) is not None:
            self._limits.restore_original_limits()


class CrossEntropy(_CrossEntropy):
    def time_cross_entropy(self, impl, shape, dtype):
        self.func(self.x, self.t)

    def peakmem_cross_entropy(self, impl, shape, dtype):
        self.func(self.x, self.t)


class CrossEntropyGrad(_CrossEntropy):
    grad = True

    def time_cross_entropy_grad(self, impl, shape, dtype):
        self.func(self.x, self.t)

    def peakmem_cross_entropy_grad(self, impl, shape, dtype):
        self.func(self.x, self.t)


class NLLLoss(_CrossEntropy):
    params = [IMPLS, ["1024x50257", "4000000x10"], DTYPES]
    make = staticmethod(_nll)

    def time_nll_loss(self, impl, shape, dtype):
        self.func(self.x, self.t)

    def peakmem_nll_loss(self, impl, shape, dtype):
        self.func(self.x, self.t)


class NLLLossGrad(NLLLoss):
    grad = True

    def time_nll_loss_grad(self, impl, shape, dtype):
        self.func(self.x, self.t)

    def peakmem_nll_loss_grad(self, impl, shape, dtype):
        self.func(self.x, self.t)
