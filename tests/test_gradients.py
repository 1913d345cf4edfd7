"""return_grad of every loss against central finite differences of the
loss itself (float64), for each reduction and the main options.

The gradient is that of the returned loss, or of its sum for
reduction='none'; these checks need no peer, so they run everywhere.
"""
import numpy as np
import pytest

import fastxent as fx

RNG = np.random.default_rng(2026)
X = RNG.standard_normal((4, 5)) * 2
LABELS = np.array([0, 3, -100, 4])
PROBS = RNG.random((4, 5))
PROBS /= PROBS.sum(axis=1, keepdims=True)
WEIGHT = RNG.random(5) + 0.5
Y01 = (RNG.random((4, 5)) > 0.5).astype(float)


def _scalar_loss(f, x):
    return float(np.sum(f(x)))


def _finite_difference(f, x, h=1e-6):
    g = np.empty_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        g[i] = (_scalar_loss(f, xp) - _scalar_loss(f, xm)) / (2 * h)
    return g


CASES = {
    "cross_entropy labels": lambda x, **kw: fx.cross_entropy(x, LABELS, **kw),
    "cross_entropy labels weight smoothing": lambda x, **kw: fx.cross_entropy(
        x, LABELS, weight=WEIGHT, label_smoothing=0.2, **kw),
    "cross_entropy probabilities": lambda x, **kw: fx.cross_entropy(x, PROBS, weight=WEIGHT, **kw),
    "cross_entropy (N, C, d)": lambda x, **kw: fx.cross_entropy(
        x, np.array([[0, 1], [2, -100]]), **kw),
    "nll_loss": lambda x, **kw: fx.nll_loss(x, LABELS, weight=WEIGHT, **kw),
    "kl_div": lambda x, **kw: fx.kl_div(x, PROBS, **kw),
    "kl_div log_target": lambda x, **kw: fx.kl_div(x, np.log(PROBS), log_target=True, **kw),
    "bce_with_logits": lambda x, **kw: fx.binary_cross_entropy_with_logits(
        x, Y01, weight=WEIGHT, pos_weight=np.full(5, 3.0), **kw),
    "bce_with_logits soft targets": lambda x, **kw: fx.binary_cross_entropy_with_logits(
        x, PROBS, **kw),
}


PARAMS = [(name, reduction) for name in CASES
          for reduction in ("mean", "sum", "none") + (("batchmean",) if name.startswith("kl_div") else ())]


@pytest.mark.parametrize("name, reduction", PARAMS)
def test_gradient_matches_finite_differences(name, reduction):
    f = CASES[name]
    x = X.reshape(2, 5, 2).copy() if "(N, C, d)" in name else X.copy()

    def loss(z):
        return f(z, reduction=reduction)

    _, grad = f(x, reduction=reduction, return_grad=True)
    want = _finite_difference(loss, x)
    np.testing.assert_allclose(grad, want, rtol=1e-6, atol=1e-8, err_msg=f"{name} {reduction}")
