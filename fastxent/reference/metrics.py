"""Reference of the summary metrics of an evaluation: the twin of
fastxent/_scorer.py, computed in one go from the per-row scores of
:func:`fastxent.reference.score_rows` (see :class:`fastxent.Scorer`
for the definitions)."""

import math

import numpy as np

from .score import score_rows

__all__ = ["score"]


def score(input, target, *, topk=(1, 5), n_bins=15, ignore_index=-100, temperature=1.0):
    """The dict :func:`fastxent.score` returns, from whole per-row arrays."""
    r = score_rows(input, target, ignore_index=ignore_index, temperature=temperature)
    t = np.asarray(target)
    counted = t != ignore_index
    n = int(counted.sum())
    conf = np.asarray(r.confidence, dtype=np.float64)[counted]
    undefined = int(np.isnan(conf).sum())
    ks = sorted(set(int(k) for k in (topk if np.ndim(topk) else [topk])))
    out = {"count": n, "undefined": undefined}
    if n == 0 or undefined:
        nan = math.nan
        out.update(nll=nan, perplexity=nan, bits_per_token=nan)
        out.update({f"accuracy@{k}": nan for k in ks})
        out.update(ece=nan, mce=nan, brier=nan, entropy=nan)
        return out
    nll = float(np.mean(np.asarray(r.nll, dtype=np.float64)[counted]))
    out.update(nll=nll, perplexity=float(np.exp(nll)), bits_per_token=nll / math.log(2))
    rank = np.asarray(r.rank)[counted]
    out.update({f"accuracy@{k}": float(np.mean(rank < k)) for k in ks})
    correct = (np.asarray(r.prediction) == t)[counted]
    # bin b holds edges[b] <= conf < edges[b + 1]; conf == 1 goes to an extra bin
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    b = np.digitize(conf, edges, right=False) - 1
    gaps, weights = [], []
    for i in range(n_bins + 1):
        in_bin = b == i
        if in_bin.any():
            gaps.append(abs(correct[in_bin].mean() - conf[in_bin].mean()))
            weights.append(in_bin.sum() / n)
    out["ece"] = float(np.dot(gaps, weights))
    out["mce"] = float(max(gaps))
    out["brier"] = float(np.mean(np.asarray(r.brier, dtype=np.float64)[counted]))
    out["entropy"] = float(np.mean(np.asarray(r.entropy, dtype=np.float64)[counted]))
    return out
