"""Correct calls as a user writes them, for ``mypy --strict`` (test_typing.py).

mypy must accept every line; ``assert_type`` pins the types the stubs give,
and the isinstance checks, run by test_typing.py, that NumPy returns them.
"""
from typing import Any

import numpy as np
from numpy.typing import NDArray
from typing_extensions import assert_type

import fastxent
from fastxent import reference

FloatArray = NDArray[np.floating[Any]]


def softmax_family(logits: NDArray[np.float32]) -> None:
    total = fastxent.logsumexp(logits)
    assert_type(total, np.floating[Any])
    assert isinstance(total, np.floating)
    lse = fastxent.logsumexp(logits, axis=-1, n_threads=1)
    assert_type(lse, FloatArray)
    assert lse.shape == logits.shape[:1]
    res, sgn = fastxent.logsumexp(logits, axis=1, b=0.5, return_sign=True)
    assert_type(sgn, FloatArray)
    assert res.shape == sgn.shape
    whole, sign = fastxent.logsumexp([1.0, 2.0], b=[1.0, -1.0], return_sign=True)
    assert_type(sign, np.floating[Any])
    assert float(sign) == -1.0
    kept = fastxent.logsumexp(logits, axis=(0, 1), keepdims=True)
    assert kept.shape == (1, 1)
    buf = np.empty_like(logits)
    p = fastxent.softmax(logits, axis=-1, out=buf)
    assert_type(p, FloatArray)
    logp = fastxent.log_softmax(logits, -1)
    assert_type(logp, FloatArray)
    assert float(reference.logsumexp([0.0, 0.0])) > 0.69


def losses(logits: NDArray[np.float64], labels: NDArray[np.int64]) -> None:
    mean = fastxent.cross_entropy(logits, labels)
    assert_type(mean, np.floating[Any])
    assert isinstance(mean, np.floating)
    rows = fastxent.cross_entropy(logits, labels, reduction="none", label_smoothing=0.1)
    assert_type(rows, FloatArray)
    assert rows.shape == labels.shape
    loss, grad = fastxent.cross_entropy(logits, labels, return_grad=True, n_threads=2)
    assert_type(loss, np.floating[Any])
    assert_type(grad, FloatArray)
    assert grad.shape == logits.shape
    rows, grad = fastxent.cross_entropy(logits, labels, None, -100, "none", return_grad=True,
                                        grad_out=grad)
    assert_type(rows, FloatArray)
    nll = fastxent.nll_loss(fastxent.log_softmax(logits, axis=1), labels, weight=[1.0] * 3,
                            reduction="sum")
    assert_type(nll, np.floating[Any])
    assert isinstance(nll, np.floating)
    ref_rows = reference.cross_entropy(logits, labels, reduction="none")
    assert_type(ref_rows, FloatArray)


def pointwise_losses(logits: NDArray[np.float64], targets: NDArray[np.float64]) -> None:
    logq = fastxent.log_softmax(logits, axis=-1)
    p = fastxent.softmax(targets, axis=-1)
    kl = fastxent.kl_div(logq, p, reduction="batchmean")
    assert_type(kl, np.floating[Any])
    terms, g = fastxent.kl_div(logq, p, "none", return_grad=True)
    assert_type(terms, FloatArray)
    assert terms.shape == g.shape == logits.shape
    bce, g = fastxent.binary_cross_entropy_with_logits(
        logits, targets > 0, pos_weight=np.full(logits.shape[-1], 3.0), return_grad=True)
    assert_type(bce, np.floating[Any])
    per_element = fastxent.binary_cross_entropy_with_logits(logits, targets > 0,
                                                            reduction="none")
    assert per_element.shape == logits.shape


def entropies(logits: NDArray[np.float64]) -> None:
    h = fastxent.softmax_entropy(logits)
    assert_type(h, FloatArray)
    ce = fastxent.softmax_cross_entropy(logits, logits[::-1], axis=1)
    kl = fastxent.softmax_kl_div(logits, logits, n_threads=None)
    assert h.shape == ce.shape == kl.shape == logits.shape[:1]
    s = fastxent.entropy([1, 1], base=2)
    assert float(s) == 1.0
    flat = fastxent.entropy(logits ** 2, axis=None)
    assert_type(flat, np.floating[Any])
    assert isinstance(flat, np.floating)
    per_column = fastxent.entropy(logits ** 2, logits ** 2 + 1.0)
    assert per_column.shape == logits.shape[1:]


def configuration() -> None:
    config = fastxent.get_config()
    assert_type(config["openmp"], bool)
    assert isinstance(config["max_threads"], int)
    with fastxent.cpu_path(config["cpu_paths"][0]):
        assert fastxent.get_config()["cpu_path"] == config["cpu_paths"][0]


def main() -> None:
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((4, 3))
    softmax_family(logits.astype(np.float32))
    losses(logits, np.array([0, 2, 1, 1]))
    pointwise_losses(logits, rng.standard_normal((4, 3)))
    entropies(logits)
    configuration()


if __name__ == "__main__":
    main()
