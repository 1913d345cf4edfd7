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
