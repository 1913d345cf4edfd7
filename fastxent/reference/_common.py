"""What the reference modules share: argument checks, the working
precision, the final rounding, and the log-softmax rows the losses and the
entropies of logits both start from."""

import reprlib

import numpy as np

_REDUCTIONS = ("none", "mean", "sum")


# ---------------------------------------------------------------------------
# argument checks

def _float_array(value, name):
    """`value` as a floating-point array; TypeError for anything else."""
    arr = np.asarray(value)
    if arr.dtype.kind != "f":
        raise TypeError(f"{name}: expected a floating-point array, got dtype {arr.dtype}")
    return arr


def _real_array(value, name, *, allow_bool=True):
    """`value` as an array of real numbers (bool, int or float)."""
    arr = np.asarray(value)
    kinds = "biuf" if allow_bool else "iuf"
    if arr.dtype.kind == "c":
        raise TypeError(f"{name}: complex input is not supported (dtype {arr.dtype})")
    if arr.dtype.kind not in kinds:
        raise TypeError(f"{name}: expected a real numeric array, got dtype {arr.dtype}")
    return arr


def _check_flag(value, name):
    """True or False (a NumPy bool too); TypeError otherwise, as PyTorch."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {type(value).__name__} "
                    f"{reprlib.repr(value)}")


def _check_reduction(reduction, allowed=_REDUCTIONS):
    if not isinstance(reduction, str) or reduction not in allowed:
        raise ValueError(f"reduction: {reduction!r} is not one of {', '.join(map(repr, allowed))}")


# ---------------------------------------------------------------------------
# precision

def _work_in_own_dtype(dtype):
    """The dtype SciPy's softmax family computes `dtype` in, float16 aside:
    float16 is computed in float32, every other float in its own dtype."""
    return np.dtype(np.float32) if dtype == np.float16 else np.dtype(dtype)

def _work_in_float64(dtype):
    """The dtype the losses and entropies compute `dtype` in: float16 in
    float32, float32 and float64 in float64 (rounded once to `dtype` after)."""
    return np.dtype(np.float32) if np.dtype(dtype) == np.float16 else np.dtype(np.float64)

def _finish(value, dtype):
    """Round once to `dtype`; a 0-d result becomes a NumPy scalar."""
    with np.errstate(over="ignore"):  # float16 may overflow to inf
        out = np.asarray(value).astype(dtype)
    return out[()] if out.ndim == 0 else out


# ---------------------------------------------------------------------------
# terms and reductions

def _sum_terms(terms):
    """The sum of element terms, independent of their order where it can
    be: NaN with a NaN or both infinities, else the infinity, else the
    finite terms summed at 2**-8 (a partial sum of fewer than 256 terms
    cannot overflow), so that the sum is infinite only where it overflows."""
    terms = np.asarray(terms)
    finite = np.isfinite(terms)
    if not finite.all():
        rest = terms[~finite]
        if np.isnan(rest).any() or ((rest > 0).any() and (rest < 0).any()):
            return terms.dtype.type(np.nan)
        return rest[0]
    with np.errstate(over="ignore"):
        return np.sum(terms * 2.0**-8) * 2.0**8


def _times_log(coef, log_term):
    """``coef * log_term`` with 0 where `coef` is 0 and `log_term` infinite."""
    with np.errstate(invalid="ignore"):
        return np.where((coef == 0) & np.isinf(log_term), 0, coef * log_term)


def _mean(total, count):
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count


def _reduce_rows(per_row, reduction, denominator):
    if reduction == "none":
        return per_row
    total = np.sum(per_row)
    return total if reduction == "sum" else _mean(total, denominator)


def _log_softmax_rows(x, axis, scale=1.0):
    """``log(softmax(x))`` along `axis`, with PyTorch's special rows: a row
    holding a NaN or a +inf, or of only -inf, is NaN throughout.

    Returns the log-probabilities (times `scale`, a power of two, applied
    before the subtraction so that ``scale = 0.5`` cannot overflow) and a
    mask of those rows (the axis kept)."""
    with np.errstate(all="ignore"):
        m = np.max(x, axis=axis, keepdims=True, initial=-np.inf)  # -inf: no classes
        undefined = ~np.isfinite(m)
        m = np.where(undefined, 0, m)
        shifted = x - m
        # log(sum(exp(shifted))) = log k + log1p(s / k), with k the number of
        # maxima and s the sum over the others: keeps the digits of a
        # log-probability near zero (as fastxent.reference.log_softmax)
        is_max = shifted == 0
        k = np.sum(is_max, axis=axis, keepdims=True)
        s = np.sum(np.where(is_max, 0, np.exp(shifted)), axis=axis, keepdims=True)
        lse = np.log(k) + np.log1p(s / k)
        if scale != 1:
            shifted = x * scale - m * scale
        logp = np.where(undefined, np.nan, shifted - lse * scale)
    return logp, undefined
