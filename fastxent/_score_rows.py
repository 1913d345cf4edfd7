"""Per-row scores of a model's outputs: every per-row quantity of an
offline evaluation from one read of each row of logits."""

from .reference.score import ROW_FIELDS, RowScores
from .reference.score import score_rows as _reference_score_rows

__all__ = ["score_rows", "RowScores", "ROW_FIELDS"]


def score_rows(input, target, *, ignore_index=-100, temperature=1.0, out=None,
               n_threads=None):
    """Per-row scores of logits against class labels.

    Parameters
    ----------
    input : array_like, float64, float32, float16 or bfloat16
        Logits, classes on axis 1 (``(N, C)`` or ``(N, C, d1, ...)``), or an
        unbatched ``(C,)`` row.
    target : array_like of int
        Class labels, shape ``(N,)``/``(N, d1, ...)``, or 0-d for ``(C,)``.
    ignore_index : int
        Rows whose label equals it count in nothing (nll 0, brier 0, rank -1).
    temperature : float
        Logits are divided by it before everything else.
    out : RowScores or dict of arrays, optional
        Arrays to write the per-row results into.
    n_threads : int, optional
        Threads of the call.

    Returns
    -------
    RowScores
        Named tuple of ``nll``, ``rank``, ``prediction``, ``confidence``,
        ``entropy``, ``brier``.
    """
    # TEMPORARY: the kernel replaces this call to the reference
    return _reference_score_rows(input, target, ignore_index=ignore_index,
                                 temperature=temperature)


def _score_state(input, target, *, ignore_index=-100, temperature=1.0, max_rank=5, n_bins=15,
                 n_threads=None):
    """The sums an evaluation is made of, over the rows of one chunk.

    Returns a dict:

    ``count`` (int)
        rows that count (label != ignore_index);
    ``undefined`` (int)
        rows among those without a distribution (a NaN or +inf logit, or only -inf);
    ``nll_sum``, ``entropy_sum``, ``brier_sum`` (float)
        float64 sums of those per-row quantities over the rows that count
        (NaN as soon as an undefined row counts);
    ``rank_counts`` (int64 array of ``max_rank``)
        rows with ``rank == r`` for ``r < max_rank``;
    ``bin_count``, ``bin_correct`` (int64 arrays of ``n_bins + 1``), ``bin_confidence_sum`` (float64)
        top-label calibration bins as torchmetrics' ``CalibrationError``: row goes to
        bin ``b`` with ``b / n_bins <= confidence < (b + 1) / n_bins``, bin ``n_bins`` holding
        confidence exactly 1; ``bin_correct`` counts rows with ``prediction == target``.
        Undefined rows are in no bin.
    """
    # TEMPORARY: the kernel replaces this composition of NumPy reductions
    import numpy as np
    r = _reference_score_rows(input, target, ignore_index=ignore_index, temperature=temperature)
    t = np.asarray(target)
    valid = t != ignore_index
    rank = np.asarray(r.rank)[valid]
    conf = np.asarray(r.confidence, dtype=np.float64)[valid]
    correct = (np.asarray(r.prediction) == t)[valid]
    defined = ~np.isnan(conf)
    bins = np.minimum(np.floor(conf[defined] * n_bins), n_bins).astype(np.intp)
    bins = np.where(conf[defined] >= 1.0, n_bins, np.minimum(bins, n_bins - 1))
    return {
        "count": int(valid.sum()),
        "undefined": int((~defined).sum()),
        "nll_sum": float(np.sum(np.asarray(r.nll, dtype=np.float64)[valid])),
        "entropy_sum": float(np.sum(np.asarray(r.entropy, dtype=np.float64)[valid])),
        "brier_sum": float(np.sum(np.asarray(r.brier, dtype=np.float64)[valid])),
        "rank_counts": np.bincount(rank[rank < max_rank], minlength=max_rank).astype(np.int64),
        "bin_count": np.bincount(bins, minlength=n_bins + 1).astype(np.int64),
        "bin_correct": np.bincount(bins, weights=correct[defined],
                                   minlength=n_bins + 1).astype(np.int64),
        "bin_confidence_sum": np.bincount(bins, weights=conf[defined], minlength=n_bins + 1),
    }
