"""Per-row scores of a model's outputs: every per-row quantity of an
offline evaluation from one read of each row of logits.

:func:`score_rows` returns the scores of each row; :func:`_score_state` the
sums an evaluation of many chunks is made of (the same row function in C,
accumulating instead of writing rows).  Both read the logits and the labels
where they are, through their strides (fx_score.h, score.pxi); the checks
here are O(1) but for labels, which the kernel checks itself.
"""
import math
import numbers

import numpy as np

from . import _dask, _dispatch
from ._dispatch import resolve_threads
from ._arrays import aligned
from ._checks import as_array, check_out, check_temperature, class_axis, plain_array
from ._layout import kernel_out, overlaps
from .reference.score import ROW_FIELDS, RowScores

__all__ = ["score_rows", "RowScores", "ROW_FIELDS"]

_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
_I64 = np.dtype(np.int64)
_U16 = np.dtype(np.uint16)
_INT_FIELDS = ("rank", "prediction")


def _logits(input):
    """The logits as the kernel reads them: (array, is bfloat16).  float16
    and bfloat16 (ml_dtypes, recognised by name) are passed as their bits."""
    x = input if isinstance(input, np.ndarray) else plain_array(input, "input")
    d = x.dtype
    if (d is _F64 or d is _F32) and aligned(x):   # the usual logits, by identity
        return x, False
    # dtype.name is computed in Python by NumPy (microseconds): asked only of
    # dtypes that are not NumPy's numbers (ml_dtypes' are kind 'V')
    if x.dtype.kind == "V" and x.dtype.itemsize == 2 and x.dtype.name == "bfloat16":
        if not x.flags.aligned:
            x = np.array(x)
        return x.view(_U16), True
    x = as_array(x, "input")
    if x.dtype.kind != "f":
        raise TypeError(f"input must be a float16, float32, float64 or bfloat16 array of "
                        f"logits, got dtype {x.dtype}")
    if x.dtype.itemsize == 2:
        x = x.view(_U16)
    return x, False


def _zero_in_float32(T):
    """Whether a positive float T rounds to 0 in float32: at or below half
    its least subnormal (2^-150, a tie, rounds to even: 0).  A comparison,
    not a cast, which warns of overflow for a T beyond float32."""
    return T <= 2.0 ** -150


def _temperature(temperature, kernel_dtype):
    """(tmode, t) of the kernel: z = x (T == 1), x * (1/T) where 1/T is exact
    in the working type, else x / T."""
    if type(temperature) is float and temperature == 1.0:   # the default, without ABC checks
        return 0, 1.0
    T = check_temperature(temperature)
    if T == 1.0:
        return 0, 1.0
    work = np.float64 if kernel_dtype == _F64 else np.float32
    # never 0 in float64, where T is a float
    if work is np.float32 and _zero_in_float32(T):
        # the kernels divide in the logits' precision: z = x / 0 is no softmax
        raise ValueError(f"temperature {temperature!r} rounds to 0 in float32, the precision "
                         "of these logits")
    inv = 1.0 / T
    m, _ = math.frexp(T)
    # a power of two whose inverse is a normal number of the working type:
    # multiplying by it rounds as dividing by T does
    if m == 0.5 and np.isfinite(work(inv)) and work(inv) == inv and work(inv) >= np.finfo(work).tiny:
        return 1, inv
    return 2, T


def _labels(target, batch_shape, shape):
    t = target if type(target) is np.ndarray else plain_array(target, "target")
    if t.dtype.kind not in "iu":
        raise TypeError(f"target must hold class indices (integers), got dtype {t.dtype}")
    if t.shape != batch_shape:
        raise ValueError(f"target has shape {t.shape}; class-index targets for input of "
                         f"shape {shape} must have shape {batch_shape}")
    if not t.dtype.isnative:   # the kernel reads native integers: O(rows), rare
        t = t.astype(t.dtype.newbyteorder("="))
    return t


def _ignore(ignore_index):
    if type(ignore_index) is int:
        return ignore_index
    if isinstance(ignore_index, (bool, np.bool_)) or not isinstance(ignore_index, numbers.Integral):
        raise TypeError(f"ignore_index must be an integer, got {ignore_index!r}")
    return int(ignore_index)


def _prepare(input, target, ignore_index, temperature):
    """The checked operands: (x, bf16, labels, ignore, tmode, t, result dtype,
    batch shape)."""
    x = input if type(input) is np.ndarray else plain_array(input, "input")
    dtype = x.dtype
    if (dtype is _F64 or dtype is _F32) and aligned(x):   # _logits' usual case, without a call
        bf16 = False
    else:
        x, bf16 = _logits(x)
        dtype = x.dtype
    shape = x.shape
    if not shape:
        raise ValueError("input must have at least one dimension (the classes)")
    result = _F64 if dtype is _F64 or dtype == _F64 else _F32
    # the defaults without a call each (a small call's tenth)
    if type(temperature) is float and temperature == 1.0:
        tmode, t = 0, 1.0
    else:
        tmode, t = _temperature(temperature, dtype)
    ignore = ignore_index if type(ignore_index) is int else _ignore(ignore_index)
    batch_shape = shape[:1] if len(shape) == 2 else class_axis(shape)[1]
    if type(target) is np.ndarray and target.dtype is _I64 and target.shape == batch_shape:
        labels = target   # the usual labels, without a call
    else:
        labels = _labels(target, batch_shape, shape)
    return x, bf16, labels, ignore, tmode, t, result, batch_shape


# RowScores of six arrays without the namedtuple's Python-level constructor
# (a small call's tenth)
_TUPLE_NEW = tuple.__new__


def _raise_bad(bad, labels, C, ignore_index):
    value = int(labels[np.unravel_index(bad, labels.shape)]) if labels.ndim else int(labels)
    raise IndexError(f"target {value} is out of bounds: class indices must be in "
                     f"[0, {C}) or equal ignore_index={ignore_index}")


def _outputs(out, batch_shape, result, reads):
    """The caller's output arrays (checked) and the arrays the kernel writes
    (the same, or buffers where they overlap an operand or are misaligned)."""
    if isinstance(out, RowScores):
        arrays = dict(zip(ROW_FIELDS, out))
    elif isinstance(out, dict):
        arrays = dict(out)
    else:
        raise ValueError(f"out must be a RowScores or a dict of arrays, got {type(out).__name__}")
    if set(arrays) != set(ROW_FIELDS):
        raise ValueError(f"out must hold exactly the arrays {ROW_FIELDS}, got {sorted(arrays)}")
    caller, work = [], []
    for name in ROW_FIELDS:
        dtype = _I64 if name in _INT_FIELDS else result
        a = check_out(arrays[name], batch_shape, dtype, f"out[{name!r}]")
        for other, b in zip(ROW_FIELDS, caller):
            # one would silently hold the other's values (columns of one
            # array do not overlap: they are fine)
            if overlaps(a, b):
                raise ValueError(f"out[{name!r}] and out[{other!r}] share memory: each "
                                 "output needs its own")
        caller.append(a)
        w = kernel_out(a, reads + work)
        work.append(w)
    return caller, work


def score_rows(input, target, *, ignore_index=-100, temperature=1.0, out=None,
               n_threads=None):
    r"""Per-row scores of logits against class labels, from one read of each row.

    With :math:`z = x / T` (`temperature` :math:`T`), :math:`M = \max_c z_c`,
    :math:`S = \sum_c e^{z_c - M}`, :math:`p = \mathrm{softmax}(z)` and the
    row's label :math:`y`:

    .. math::

        \mathrm{nll} &= \mathrm{lse}(z) - z_y = (M - z_y) + \log S \\
        \mathrm{rank} &= \#\{c : z_c > z_y\} \\
        \mathrm{prediction} &= \text{the first } c \text{ with } z_c = M \\
        \mathrm{confidence} &= \max_c p_c = 1 / S \\
        \mathrm{entropy} &= -\sum_c p_c \log p_c = \log S - \sum_c p_c (z_c - M) \\
        \mathrm{brier} &= \sum_c (p_c - [c = y])^2
                         = (1 - p_y)^2 + \sum_{c \ne y} p_c^2

    Parameters
    ----------
    input : array_like, float64, float32, float16 or bfloat16
        Logits, classes on axis 1 (``(N, C)`` or ``(N, C, d1, ...)``), or an
        unbatched ``(C,)`` row.  bfloat16 is ``ml_dtypes.bfloat16`` (recognised
        by its dtype name; ml_dtypes is not needed otherwise).
    target : array_like of int
        Class labels of any integer dtype, shape ``(N,)``/``(N, d1, ...)``, or
        0-d for ``(C,)``.
    ignore_index : int
        Rows whose label equals it count in nothing: nll 0, brier 0, rank -1
        (their prediction, confidence and entropy are computed all the same).
    temperature : float
        Logits are divided by it before everything else (multiplied by
        ``1 / temperature`` where that is exact: a power of two).
    out : RowScores or dict of arrays, optional
        Arrays of the target's shape to write the results into: ``rank`` and
        ``prediction`` int64, the others of the result dtype.  They may
        overlap the operands (the results then go through a buffer).
    n_threads : int, optional
        Threads of the call; the results do not depend on it.

    Returns
    -------
    RowScores
        Named tuple of ``nll``, ``rank``, ``prediction``, ``confidence``,
        ``entropy``, ``brier``: arrays of the target's shape (NumPy scalars
        for an unbatched input); ``rank`` and ``prediction`` int64, the
        others float64 for float64 logits and float32 for every other dtype.

    Raises
    ------
    IndexError
        For a target outside ``[0, C)`` that is not `ignore_index` (nothing
        is written then).
    ValueError
        For a target whose shape does not fit the input, a 0-d input, a
        temperature that is not a positive finite number (or rounds to 0
        in float32 for logits other than float64), or a bad `out` (also
        two outputs that share memory).
    TypeError
        For non-float logits, non-integer targets, a non-integer
        `ignore_index` or a temperature that is not a real number (a
        bool, a string).

    See Also
    --------
    cross_entropy : the mean of ``nll`` (reduction='none' gives it per row).
    softmax_entropy : ``entropy``.

    Notes
    -----
    Ties: ``rank`` counts only logits strictly greater than the label's, so a
    label tied with the maximum has rank 0; ``prediction`` is the first
    index of the maximum, a NaN counting as the largest (as ``np.argmax``).

    Special rows: a row holding a NaN or ``+inf`` logit, or only ``-inf``
    logits (or no class), has no distribution: its ``nll``,
    ``confidence``, ``entropy`` and ``brier`` are NaN and its ``rank`` is
    C.  ``-inf`` logits elsewhere are classes of probability 0 (a label
    there has ``nll = inf``).

    Precision: float64 logits compute in float64; float32, float16 and
    bfloat16 in float32 (z, the exponentials and their sums within blocks
    of 2048 logits, folded into float64 every 256), and the per-row
    quantities are formed in float64 and rounded once to float32.  Every
    formula above is evaluated as a sum of terms of one sign; ``1 - p_y``
    is computed from the other classes' terms, so the Brier score of a
    confident correct row keeps its digits.  For non-float64 logits the
    temperature is rounded to float32, and ``x / T`` overflowing float32
    makes the row one without a distribution.

    The row is read once: its maximum, the count above the label's logit
    and the first maximum in a first pass over each block of 2048 logits,
    the exponentials in a second pass while the block is in cache.

    Examples
    --------
    >>> import numpy as np
    >>> import fastxent
    >>> r = fastxent.score_rows(np.array([[2.0, 1.0, 0.0], [0.0, 0.0, 3.0]]),
    ...                         np.array([0, 1]))
    >>> r.rank.tolist(), r.prediction.tolist()
    ([0, 1], [0, 2])
    >>> np.round(r.nll, 4).tolist()
    [0.4076, 3.0949]
    """
    # Dask logits or labels (a lazy result); a Python int label is neither
    if ((type(input) is not np.ndarray or type(target) not in (np.ndarray, int))
            and _dask.any_dask(input, target)):
        return _dask.score_rows(input, target, ignore_index=ignore_index,
                                temperature=temperature, out=out, n_threads=n_threads)
    nt = resolve_threads(n_threads)
    x, bf16, labels, ignore, tmode, t, result, batch_shape = _prepare(
        input, target, ignore_index, temperature)
    if out is None:
        # the kernel makes the six arrays (of the labels' shape, C order)
        bad, caller, _ = _dispatch.active.score(x, labels, ignore, tmode, t, bf16, True, 0, 0,
                                                nt)
    else:
        caller, work = _outputs(out, batch_shape, result, [x, labels])
        bad, _, _ = _dispatch.active.score(x, labels, ignore, tmode, t, bf16, work, 0, 0, nt)
    if bad >= 0:
        _raise_bad(bad, labels, x.shape[1] if x.ndim > 1 else x.shape[0], ignore_index)
    if out is not None:
        for c, w in zip(caller, work):
            if c is not w:
                np.copyto(c, w)
    if not batch_shape:
        caller = [a[()] for a in caller]
    return _TUPLE_NEW(RowScores, caller)   # without the namedtuple's Python constructor


def _score_into(input, target, add_f, add_c, ignore_index, temperature, max_rank, n_bins,
                n_threads):
    """Add the sums of :func:`_score_state` of the rows of `input` into
    `add_f` (float64) and `add_c` (int64), an evaluation's running state in
    the kernel's layout (see Scorer.reset); the settings are checked ones.
    A bad label raises before anything is added."""
    nt = resolve_threads(n_threads)
    x, bf16, labels, ignore, tmode, t, result, batch_shape = _prepare(
        input, target, ignore_index, temperature)
    bad, _, _ = _dispatch.active.score(x, labels, ignore, tmode, t, bf16, None, max_rank,
                                       n_bins, nt, add_f, add_c)
    if bad >= 0:
        _raise_bad(bad, labels, x.shape[1] if x.ndim > 1 else x.shape[0], ignore_index)


def _score_metrics(input, target, ignore_index, temperature, spec, n_bins, n_threads):
    """The metrics of :func:`fastxent.score` of the rows of `input` in one
    kernel call (the sums stay in C); the settings are checked ones and
    `spec` is (topk, the result's keys, a dict of them) as the kernel takes
    it (see fastxent._scorer._spec)."""
    nt = resolve_threads(n_threads)
    x, bf16, labels, ignore, tmode, t, result, batch_shape = _prepare(
        input, target, ignore_index, temperature)
    # positional: keywords cost a small call's tenth
    bad, metrics, _ = _dispatch.active.score(x, labels, ignore, tmode, t, bf16, None,
                                             spec[0][-1], n_bins, nt, None, None, spec)
    if bad >= 0:
        _raise_bad(bad, labels, x.shape[1] if x.ndim > 1 else x.shape[0], ignore_index)
    return metrics


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

    The per-row quantities are those of :func:`score_rows`, rounded to its
    result dtype before they are added.  The rows are cut into fixed blocks
    (at most 256, whatever the thread count), each summed in an order fixed
    by its rows (row order; rows of up to 64 classes in blocks of 256 rows
    or more, which are scored 64 at a time side by side, per lane and then
    across the lanes) and the blocks in order: the sums are the same bits on
    any thread count.
    The bin boundaries are the correctly rounded ``b / n_bins`` (the values
    of ``torch.linspace`` but for a last-bit difference at a few of them).
    """
    for name, v in (("max_rank", max_rank), ("n_bins", n_bins)):
        if type(v) is not int and (isinstance(v, (bool, np.bool_))
                                   or not isinstance(v, numbers.Integral)):
            raise TypeError(f"{name} must be an integer, got {v!r}")
    max_rank, n_bins = int(max_rank), int(n_bins)
    if max_rank < 0:
        raise ValueError(f"max_rank must be >= 0, got {max_rank}")
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    nt = resolve_threads(n_threads)
    x, bf16, labels, ignore, tmode, t, result, batch_shape = _prepare(
        input, target, ignore_index, temperature)
    bad, f, c = _dispatch.active.score(x, labels, ignore, tmode, t, bf16, None, max_rank,
                                       n_bins, nt)
    if bad >= 0:
        _raise_bad(bad, labels, x.shape[1] if x.ndim > 1 else x.shape[0], ignore_index)
    nb = n_bins + 1
    count, undefined = c[:2].tolist()
    nll_sum, entropy_sum, brier_sum = f[:3].tolist()
    # views of the kernel's two fresh arrays, which nothing else holds
    return {
        "count": count,
        "undefined": undefined,
        "nll_sum": nll_sum,
        "entropy_sum": entropy_sum,
        "brier_sum": brier_sum,
        "rank_counts": c[2:2 + max_rank],
        "bin_count": c[2 + max_rank:2 + max_rank + nb],
        "bin_correct": c[2 + max_rank + nb:2 + max_rank + 2 * nb],
        "bin_confidence_sum": f[3:3 + nb],
    }
