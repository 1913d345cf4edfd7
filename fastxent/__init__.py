"""fastxent: the entropy family over NumPy arrays, exact and without temporaries.

Functions that share a name with scipy.special, scipy.stats or
torch.nn.functional have its semantics; see each
docstring for the few documented differences.
"""
__version__ = "0.1.0"


def _refuse_source_tree() -> None:
    """Raise ImportError when this is the uncompiled ``fastxent/`` of a clone.

    ``python -m ...`` and ``python -c ...`` put the current folder first on
    sys.path, so started from a clone's root they find the source folder, not
    the installed package; say so and what to do, instead of failing later on
    a missing compiled module.
    """
    import importlib.machinery
    import os

    here = os.path.dirname(os.path.abspath(__file__))
    if any(os.path.exists(os.path.join(here, "_kernels_baseline" + suffix))
           for suffix in importlib.machinery.EXTENSION_SUFFIXES):
        return
    root = os.path.dirname(here)
    if not (os.path.exists(os.path.join(root, "setup.py"))
            and os.path.exists(os.path.join(root, "src", "_kernels_baseline.pyx"))):
        return  # an installed package without kernels: _dispatch says why
    raise ImportError(
        f"fastxent is being imported from its source folder {here}, which has no "
        "compiled kernels, instead of from the installed package: Python puts the "
        "current folder first on sys.path for `python -m` and `python -c`. Either "
        "run from another folder, or use the installed commands, which do not look "
        "in the current folder (`fastxent --quick`, `pytest`, not `python -m "
        "fastxent` or `python -m pytest`); or, to work on the source, build the "
        "kernels in place: `pip install -e . --no-build-isolation` (needs "
        "setuptools>=77 and Cython>=3.1 installed first).")


_refuse_source_tree()

from ._dispatch import cpu_path, get_config, show_config
from ._entropies import entropy, softmax_cross_entropy, softmax_entropy, softmax_kl_div
from ._losses import cross_entropy, nll_loss
from ._pointwise_losses import binary_cross_entropy_with_logits, kl_div
from ._score_files import score_file
from ._score_rows import RowScores, score_rows
from ._scorer import Scorer, score
from ._softmax_family import log_softmax, logsumexp, softmax

__all__ = ["logsumexp", "softmax", "log_softmax", "cross_entropy", "nll_loss", "kl_div",
           "binary_cross_entropy_with_logits", "entropy", "softmax_entropy",
           "softmax_cross_entropy", "softmax_kl_div", "score_rows", "RowScores", "score", "Scorer",
           "score_file", "get_config", "show_config", "cpu_path"]
