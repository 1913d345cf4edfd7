"""The public functions on Dask arrays: lazy results, any chunking.

Each public function routes Dask input here with one check at its top
(:func:`is_dask_array`, which does not import Dask).  A reduction over a
class axis that is one chunk maps the NumPy function over the blocks; one
split into several chunks merges exact per-block partial states
(:mod:`.row_state`) in a tree, never rechunking the class axis.

Importing fastxent does not import Dask: the submodules that do are
imported on the first call with a Dask array.
"""

import sys

from numpy import ndarray

__all__ = ["is_dask_array", "logsumexp", "softmax", "log_softmax", "entropy",
           "softmax_entropy", "softmax_cross_entropy", "softmax_kl_div", "cross_entropy",
           "nll_loss", "kl_div", "binary_cross_entropy_with_logits", "score_rows",
           "scorer_update"]


def is_dask_array(x):
    """True for a Dask array (or another object of a ``dask.`` module), or
    an instance of a subclass of ``dask.array.Array`` defined elsewhere.

    Looks at the type's module name first, so that it costs a few tens of
    nanoseconds and never imports Dask; a subclass is looked for only once
    ``dask.array`` is imported (none can exist before).
    """
    if type(x).__module__.startswith("dask."):
        return True
    dask_array = sys.modules.get("dask.array")
    return dask_array is not None and isinstance(x, dask_array.Array)


def any_dask(*values):
    """True when one of `values` is a Dask array (None and NumPy arrays
    are skipped fast)."""
    for v in values:
        if v is not None and type(v) is not ndarray and is_dask_array(v):
            return True
    return False


def logsumexp(*args, **kwargs):
    from .softmax_family import logsumexp
    return logsumexp(*args, **kwargs)


def softmax(*args, **kwargs):
    from .softmax_family import softmax
    return softmax(*args, **kwargs)


def log_softmax(*args, **kwargs):
    from .softmax_family import log_softmax
    return log_softmax(*args, **kwargs)


def softmax_entropy(*args, **kwargs):
    from .entropies import softmax_entropy
    return softmax_entropy(*args, **kwargs)


def softmax_cross_entropy(*args, **kwargs):
    from .entropies import softmax_cross_entropy
    return softmax_cross_entropy(*args, **kwargs)


def softmax_kl_div(*args, **kwargs):
    from .entropies import softmax_kl_div
    return softmax_kl_div(*args, **kwargs)


def entropy(*args, **kwargs):
    from .entropies import entropy
    return entropy(*args, **kwargs)


def cross_entropy(*args, **kwargs):
    from .losses import cross_entropy
    return cross_entropy(*args, **kwargs)


def nll_loss(*args, **kwargs):
    from .losses import nll_loss
    return nll_loss(*args, **kwargs)


def kl_div(*args, **kwargs):
    from .losses import kl_div
    return kl_div(*args, **kwargs)


def binary_cross_entropy_with_logits(*args, **kwargs):
    from .losses import binary_cross_entropy_with_logits
    return binary_cross_entropy_with_logits(*args, **kwargs)


def score_rows(*args, **kwargs):
    from .score import score_rows
    return score_rows(*args, **kwargs)


def scorer_update(*args, **kwargs):
    from .score import scorer_update
    return scorer_update(*args, **kwargs)
