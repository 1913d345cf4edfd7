"""fastxent: the entropy family over NumPy arrays, exact and without temporaries.

Functions that share a name with scipy.special, scipy.stats or
torch.nn.functional have its semantics; see each
docstring for the few documented differences.
"""
__version__ = "0.1.0"

from ._dispatch import cpu_path, get_config, show_config
from ._entropies import entropy, softmax_cross_entropy, softmax_entropy, softmax_kl_div
from ._losses import cross_entropy, nll_loss
from ._pointwise_losses import binary_cross_entropy_with_logits, kl_div
from ._softmax_family import log_softmax, logsumexp, softmax

__all__ = ["logsumexp", "softmax", "log_softmax", "cross_entropy", "nll_loss", "kl_div",
           "binary_cross_entropy_with_logits", "entropy", "softmax_entropy",
           "softmax_cross_entropy", "softmax_kl_div", "get_config", "show_config", "cpu_path"]
