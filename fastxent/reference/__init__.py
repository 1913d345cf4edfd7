"""Plain-NumPy reference implementations of every fastxent function.

These are the slow, obviously correct twins of the public functions of
fastxent, under the same names and with the same arguments (without ``out``,
``grad_out`` and ``n_threads``).  One module per public module:

* :mod:`fastxent.reference.softmax_family`: :func:`logsumexp`,
  :func:`softmax`, :func:`log_softmax`, with the semantics of
  ``scipy.special`` (SciPy 1.17);
* :mod:`fastxent.reference.losses`: :func:`cross_entropy`, :func:`nll_loss`,
  and :mod:`fastxent.reference.pointwise_losses`: :func:`kl_div`,
  :func:`binary_cross_entropy_with_logits`, with the semantics of
  ``torch.nn.functional`` (PyTorch 2.13), plus ``return_grad=True``, which
  also returns the gradient of the returned loss with respect to `input` (for
  ``reduction='none'``, of its sum), equal to PyTorch autograd's;
* :mod:`fastxent.reference.entropies`: :func:`entropy` with the semantics of
  ``scipy.stats.entropy`` (SciPy 1.17), and :func:`softmax_entropy`,
  :func:`softmax_cross_entropy`, :func:`softmax_kl_div`: entropy,
  cross-entropy and Kullback-Leibler divergence of softmax distributions,
  straight from logits;
* :mod:`fastxent.reference.score`: :func:`score_rows`, the per-row scores of
  an evaluation (computed in float64, rounded once to float64 for float64
  logits and to float32 otherwise), and :mod:`fastxent.reference.metrics`:
  :func:`fastxent.reference.metrics.score`, the metrics of
  :func:`fastxent.score` from those arrays (not importable as
  ``fastxent.reference.score``, the name of the module).

Conventions of the losses and the entropies:

* **Precision.**  float16 data are computed in float32 and the result is
  rounded once to float16; float32 and float64 data are computed in float64
  and rounded once to their own dtype.  The result dtype of a loss is
  PyTorch's: the promotion of `input` and a floating `target`; `weight` and
  `pos_weight` never change it.  Gradients have the dtype and shape of
  `input` and are always ndarrays.  :func:`entropy` follows SciPy (integers
  give float64) but keeps float16; the functions of logits follow
  :func:`fastxent.softmax` (the dtype ``np.exp`` gives).  The softmax family
  computes float16 in float32 and every other float in its own dtype, as
  SciPy does.
* **0-d results** (every ``'mean'``/``'sum'`` reduction, ``'none'`` on an
  unbatched input, a single row) are returned as a NumPy scalar of the result
  dtype, where PyTorch returns a 0-d tensor.
* **Zero times an infinite logarithm is zero.**  A term whose coefficient is
  exactly zero (a target probability, a smoothed target mass, a class
  weight, ``weight`` or ``pos_weight``) contributes exactly zero, even where
  the logarithm it multiplies is infinite (a logit or log-probability of
  -inf, a logit of +inf).  That is the limit of the loss as the logit tends to
  its infinite value, and the convention 0 * log 0 = 0 of information
  theory.  PyTorch computes ``0 * inf = NaN`` there; a NaN in the data still
  gives NaN.
* **Ignored targets** (class index equal to `ignore_index`) contribute
  nothing: loss 0 under ``'none'``, no weight in the ``'mean'`` denominator
  and a gradient of exactly 0 in their row, whatever the logits of that row
  hold (PyTorch's autograd gives NaN in an ignored row with a NaN, a +inf or
  only -inf logits, since ``0 * NaN`` enters its softmax backward).

They allocate temporaries of the input's size and are meant for tests, not
for speed.  Being part of the package, they let the tests of an installed
wheel compare against them.
"""

# The differential tests build log-probabilities and tolerances with these
# two private functions, next to the public ones: they stay reachable here.
from ._common import _log_softmax_rows  # noqa: F401
from .entropies import entropy, softmax_cross_entropy, softmax_entropy, softmax_kl_div
from .losses import cross_entropy, nll_loss
from .pointwise_losses import _sum_to_shape, binary_cross_entropy_with_logits, kl_div  # noqa: F401
from .score import RowScores, score_rows
from .softmax_family import log_softmax, logsumexp, softmax

__all__ = ["logsumexp", "softmax", "log_softmax", "cross_entropy", "nll_loss", "kl_div",
           "binary_cross_entropy_with_logits", "entropy", "softmax_entropy",
           "softmax_cross_entropy", "softmax_kl_div", "score_rows", "RowScores"]
