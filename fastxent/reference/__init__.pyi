# Types of the reference package (checked against it by mypy.stubtest in
# tests/test_typing.py): the functions of its modules, re-exported.
from .entropies import (
    entropy as entropy,
    softmax_cross_entropy as softmax_cross_entropy,
    softmax_entropy as softmax_entropy,
    softmax_kl_div as softmax_kl_div,
)
from .losses import cross_entropy as cross_entropy, nll_loss as nll_loss
from .pointwise_losses import (
    binary_cross_entropy_with_logits as binary_cross_entropy_with_logits,
    kl_div as kl_div,
)
from .score import RowScores as RowScores, score_rows as score_rows
from .softmax_family import log_softmax as log_softmax, logsumexp as logsumexp, softmax as softmax

__all__ = [
    "logsumexp",
    "softmax",
    "log_softmax",
    "cross_entropy",
    "nll_loss",
    "kl_div",
    "binary_cross_entropy_with_logits",
    "entropy",
    "softmax_entropy",
    "softmax_cross_entropy",
    "softmax_kl_div",
    "score_rows",
    "RowScores",
]
