"""fastxent: the entropy family over NumPy arrays, exact and without temporaries.

Functions that share a name with scipy.special have its semantics; see each
docstring for the few documented differences.
"""
__version__ = "0.1.0"

from ._dispatch import cpu_path, get_config, show_config
from ._losses import cross_entropy, nll_loss
from ._softmax_family import log_softmax, logsumexp, softmax

__all__ = ["logsumexp", "softmax", "log_softmax", "cross_entropy", "nll_loss",
           "get_config", "show_config", "cpu_path"]
