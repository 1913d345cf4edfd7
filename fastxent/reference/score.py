"""Reference of the per-row scores of a model's outputs: the twin of
fastxent/_score_rows.py.

:func:`~fastxent.reference.score_rows` gives, for each row of logits and its class label, every
per-row quantity an offline evaluation needs (see the docstring of
:func:`fastxent.score_rows` for the definitions).  Everything is computed in
float64 (float16 and bfloat16 are widened exactly) and rounded once to the
result dtype: float64 for float64 logits, float32 for every other dtype.
"""

import numbers

import numpy as np

from ._common import _float_array
from .losses import _check_ignore_index, _class_indices

__all__ = ["score_rows", "RowScores", "ROW_FIELDS"]

ROW_FIELDS = ("nll", "rank", "prediction", "confidence", "entropy", "brier")


class RowScores(tuple):
    """The per-row scores: a named tuple of arrays (or NumPy scalars for an
    unbatched input), fields ``nll``, ``rank``, ``prediction``,
    ``confidence``, ``entropy``, ``brier`` in that order."""

    __slots__ = ()
    _fields = ROW_FIELDS

    def __new__(cls, nll, rank, prediction, confidence, entropy, brier):
        return tuple.__new__(cls, (nll, rank, prediction, confidence, entropy, brier))

    nll = property(lambda self: self[0], doc="lse - x[target] (0 for an ignored row)")
    rank = property(lambda self: self[1], doc="classes with a logit > x[target] (-1: ignored)")
    prediction = property(lambda self: self[2], doc="first index of the largest logit")
    confidence = property(lambda self: self[3], doc="largest probability")
    entropy = property(lambda self: self[4], doc="entropy of softmax(x), nats")
    brier = property(lambda self: self[5], doc="sum_c (p_c - [c == target])**2 (0: ignored)")

    # the rest of the named-tuple API (collections.namedtuple's), which
    # Dask also looks for before it computes the fields of one
    _field_defaults: dict = {}

    @classmethod
    def _make(cls, iterable):
        return cls(*iterable)

    def _replace(self, **fields):
        unknown = set(fields) - set(ROW_FIELDS)
        if unknown:
            raise ValueError(f"got unexpected field names: {sorted(unknown)!r}")
        return type(self)(*[fields.get(k, v) for k, v in zip(ROW_FIELDS, self)])

    def _asdict(self):
        return dict(zip(ROW_FIELDS, self))

    def __getnewargs__(self):   # pickle and copy call __new__ with the fields
        return tuple(self)

    def __repr__(self):
        return "RowScores(" + ", ".join(f"{k}={v!r}" for k, v in zip(ROW_FIELDS, self)) + ")"


def _widen(x):
    """float64 copy of `x`; bfloat16 (ml_dtypes) and float16 are exact in it."""
    if x.dtype.kind == "f" or x.dtype.name == "bfloat16":
        return np.asarray(x, dtype=np.float64)
    raise TypeError(f"input: expected floating-point logits, got dtype {x.dtype}")


def score_rows(input, target, *, ignore_index=-100, temperature=1.0):
    """Per-row scores of logits `input` (classes on axis 1, or axis 0 for an
    unbatched ``(C,)`` input) against class labels `target`."""
    x = np.asarray(input)
    if x.dtype.name != "bfloat16":
        x = _float_array(x, "input")
    ignore_index = _check_ignore_index(ignore_index)
    if isinstance(temperature, (bool, np.bool_)) or not isinstance(temperature, numbers.Real):
        raise TypeError(f"temperature: expected a positive finite number, got {temperature!r}")
    try:
        finite = 0 < float(temperature) < np.inf
    except OverflowError:   # an int beyond float64
        finite = False
    if not finite:
        raise ValueError(f"temperature: must be a positive finite number, got {temperature!r}")
    if x.ndim == 0:
        raise ValueError("input: expected 1 or more dimensions, got a 0-d array")
    result_dtype = np.dtype(np.float64 if x.dtype == np.float64 else np.float32)
    idx, valid = _class_indices(target, x, ignore_index)
    if result_dtype == np.float64:
        z = x / float(temperature)
    else:
        # z = x / T in float32, T rounded to float32 (as documented): a
        # quotient that underflows to a tie or overflows to inf does so here
        with np.errstate(over="ignore", under="ignore"):
            z = (_widen(x).astype(np.float32) / np.float32(temperature)).astype(np.float64)
    z = z if z.ndim == 1 else np.moveaxis(z, 1, -1)   # classes last
    n_classes = z.shape[-1]
    with np.errstate(all="ignore"):
        m = np.max(z, axis=-1, initial=-np.inf)
        # every row holding a NaN or a +inf, or only -inf (or no classes), has
        # no distribution: NaN in every quantity computed from it
        undefined = ~np.isfinite(m) | np.isnan(z).any(axis=-1)
        m_safe = np.where(undefined, 0.0, m)
        shifted = z - m_safe[..., None]
        e = np.exp(shifted)
        s = e.sum(axis=-1)
        lse = m_safe + np.log(s)
        p = e / s[..., None]
        # entropy: lse - sum_c p_c z_c, with 0 * (-inf) = 0
        pz = np.where(p == 0, 0.0, p * shifted).sum(axis=-1)
        entropy = np.log(s) - pz
        confidence = 1.0 / s            # p at the max: exp(0) / s
        # no class (every row ignored then): nothing to take
        x_t = (np.take_along_axis(z, idx[..., None], axis=-1)[..., 0] if n_classes else
               np.full(z.shape[:-1], np.nan))
        nll = lse - x_t
        onehot = np.arange(n_classes) == idx[..., None]
        brier = ((p - onehot) ** 2).sum(axis=-1)
        # rank: classes strictly greater than the target's logit (NaN is never
        # greater); a row without a distribution ranks last, n_classes
        rank = (z > x_t[..., None]).sum(axis=-1).astype(np.int64)
        # prediction: the first largest logit, NaN counting as the largest
        # (np.argmax); 0 for a row without classes
        prediction = (np.argmax(z, axis=-1) if n_classes else
                      np.zeros(z.shape[:-1], np.intp)).astype(np.int64)
    nan = np.nan
    nll = np.where(undefined, nan, nll)
    confidence = np.where(undefined, nan, confidence)
    entropy = np.where(undefined, nan, entropy)
    brier = np.where(undefined, nan, brier)
    rank = np.where(undefined, n_classes, rank)
    # ignored rows count in nothing: 0 loss, 0 Brier term, rank -1
    nll = np.where(valid, nll, 0.0)
    brier = np.where(valid, brier, 0.0)
    rank = np.where(valid, rank, -1).astype(np.int64)

    def finish(a, dtype):
        a = np.asarray(a).astype(dtype)
        return a[()] if a.ndim == 0 else a

    return RowScores(finish(nll, result_dtype), finish(rank, np.int64),
                     finish(prediction, np.int64), finish(confidence, result_dtype),
                     finish(entropy, result_dtype), finish(brier, result_dtype))
