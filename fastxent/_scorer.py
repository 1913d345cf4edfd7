"""An offline evaluation of a model's outputs: the summary metrics of logits
against class labels (loss, perplexity, top-k accuracy, calibration, Brier
score, entropy), accumulated chunk by chunk in a state whose size does not
depend on the number of rows."""

import math
import numbers

import numpy as np

from . import _dask, _dispatch
from ._checks import check_temperature as _check_temperature, plain_array
from ._score_rows import _score_into, _score_metrics, _score_state

__all__ = ["Scorer", "score"]

# Rows of one call of the chunk reduction are bounded by this many bytes of
# logits, so that the temporaries of the reduction stay a bounded multiple of it.
CHUNK_BYTES = 32 << 20


# the default topk, checked already (a Scorer's construction is a small
# call's cost)
_DEFAULT_TOPK = (1, 5)
# the result keys of each (checked) topk: (topk, names in their order, a
# dict of them), as the kernel forms the metrics
_SPECS: dict[tuple[int, ...], tuple[tuple[int, ...], tuple[str, ...], dict]] = {}


def _spec(topk):
    spec = _SPECS.get(topk)
    if spec is None:
        names = (("count", "undefined", "nll", "perplexity", "bits_per_token")
                 + tuple(f"accuracy@{k}" for k in topk) + ("ece", "mce", "brier", "entropy"))
        spec = _SPECS[topk] = (topk, names, dict.fromkeys(names))
    return spec


_DEFAULT_SPEC = _spec(_DEFAULT_TOPK)


# max(topk) and n_bins of at most this many (the kernels' bound: every size
# formed from them fits a Py_ssize_t)
_MAX_SIZE = 1 << 40


def _check_topk(topk):
    if topk is _DEFAULT_TOPK:
        return topk
    if type(topk) is tuple and all(type(k) is int and 0 < k <= _MAX_SIZE for k in topk) and topk:
        return tuple(sorted(set(topk)))   # the usual call, without ABC checks
    if isinstance(topk, (numbers.Integral, np.integer)) and not isinstance(topk, (bool, np.bool_)):
        topk = (topk,)
    try:
        ks = tuple(topk)
    except TypeError:
        raise TypeError(f"topk: expected a positive integer or a sequence of them, got {topk!r}") \
            from None
    if not ks:
        raise ValueError("topk: expected at least one k, got an empty sequence")
    for k in ks:
        if isinstance(k, (bool, np.bool_)) or not isinstance(k, (numbers.Integral, np.integer)):
            raise TypeError(f"topk: expected positive integers, got {k!r}")
        if k < 1:
            raise ValueError(f"topk: expected positive integers, got {int(k)}")
        if k > _MAX_SIZE:
            raise ValueError(f"topk: at most {_MAX_SIZE} ranks can be counted, got {int(k)}")
    return tuple(sorted({int(k) for k in ks}))


def _check_n_bins(n_bins):
    if type(n_bins) is int and 1 <= n_bins <= _MAX_SIZE:
        return n_bins
    if isinstance(n_bins, (bool, np.bool_)) or not isinstance(n_bins, (numbers.Integral, np.integer)):
        raise TypeError(f"n_bins: expected a positive integer, got {n_bins!r}")
    if n_bins < 1:
        raise ValueError(f"n_bins: expected a positive integer, got {int(n_bins)}")
    if n_bins > _MAX_SIZE:
        raise ValueError(f"n_bins: expected 1 to {_MAX_SIZE} bins, got {int(n_bins)}")
    return int(n_bins)


def _check_ignore_index(ignore_index):
    if type(ignore_index) is int:
        return ignore_index
    if (isinstance(ignore_index, (bool, np.bool_))
            or not isinstance(ignore_index, (numbers.Integral, np.integer))):
        raise TypeError(f"ignore_index: expected an integer, got {ignore_index!r}")
    return int(ignore_index)


def _check_n_threads(n_threads):
    # every call's check (and cap), at construction rather than at each update
    return None if n_threads is None else _dispatch.checked_threads(n_threads)


def _ints(counts):
    """Counts (an integer array or a sequence) as a list of Python ints."""
    if type(counts) is np.ndarray and counts.dtype.kind in "iu":
        return counts.tolist()
    return [int(v) for v in counts]


def metric_names(topk=_DEFAULT_TOPK):
    """The keys of :meth:`Scorer.result` for `topk`, in their order."""
    return list(_spec(_check_topk(topk))[1])


def _chunked_labels(x, target):
    """The labels of an update of (N, C, ...) logits `x` in chunks, their
    shape checked (as the kernel's layer checks a single chunk)."""
    t = target if isinstance(target, np.ndarray) else plain_array(target, "target")
    expected = (x.shape[0],) + x.shape[2:]
    if t.shape != expected:
        raise ValueError(f"target has shape {t.shape}; class-index targets for input of "
                         f"shape {x.shape} must have shape {expected}")
    return t


class Scorer:
    r"""Summary metrics of logits against class labels, accumulated over chunks.

    Each :meth:`update` adds a chunk of rows to running sums (int64 counts,
    float64 sums; ``O(max(topk) + n_bins)`` numbers whatever the number of
    rows), which the kernel updates in place; :meth:`merge` adds another
    scorer's sums (of other rows, e.g. from another process), :meth:`result`
    turns the sums into metrics.  The result does not depend on how the rows
    were split into chunks, up to the float64 rounding of the sums.  The
    counts overflow after 2**63 rows, centuries of scoring at a billion rows
    a second.

    Parameters
    ----------
    topk : int or sequence of int
        The ``k`` of the ``accuracy@k`` metrics (positive integers).
    n_bins : int
        Equal-width confidence bins of the calibration errors.
    ignore_index : int
        Rows whose label equals it are not counted at all.
    temperature : float
        Logits are divided by it first (positive, finite).
    n_threads : int, optional
        Threads of each chunk's reduction; does not change the results.

    Notes
    -----
    With, for each counted row ``i`` (label ``y_i != ignore_index``),
    ``z = x_i / temperature``, ``p = softmax(z)``, and ``n`` counted rows:

    - ``count``: ``n``; ``undefined``: counted rows without a distribution
      (a NaN or ``+inf`` logit, or only ``-inf``).
    - ``nll = (1/n) sum_i (logsumexp(z) - z[y_i])`` (nats), as
      ``torch.nn.functional.cross_entropy(..., reduction='mean')`` without
      weights; ``perplexity = exp(nll)``; ``bits_per_token = nll / ln 2``.
    - ``accuracy@k = (1/n) #{i : rank_i < k}``, ``rank_i = #{c : z_c > z[y_i]}``:
      ties with the label's logit count in its favour.
    - ``ece = sum_b (n_b / n) |acc_b - conf_b|`` and ``mce = max_b |acc_b - conf_b|``
      over the bins ``b / n_bins <= max_c p_c < (b + 1) / n_bins`` plus one bin
      for a confidence of exactly 1, as torchmetrics' ``CalibrationError``
      (norms ``'l1'`` and ``'max'``, top-label): ``conf_b`` is the mean
      confidence of the bin, ``acc_b`` the fraction of its rows whose
      prediction (the first largest logit) is the label, empty bins count 0.
    - ``brier = (1/n) sum_i sum_c (p_c - [c == y_i])^2``, in ``[0, 2]``
      (scikit-learn's multiclass ``brier_score_loss``; for two classes
      scikit-learn halves it by default).
    - ``entropy = (1/n) sum_i -sum_c p_c log p_c`` (nats).

    Special cases: with no counted row every metric but the counts is NaN
    (no exception).  A counted row without a distribution makes every
    metric but the counts NaN, as a NaN in a sum would; ``undefined`` says
    how many there were.  Ignored rows count in nothing, whatever their
    logits.
    """

    def __init__(self, *, topk=_DEFAULT_TOPK, n_bins=15, ignore_index=-100, temperature=1.0,
                 n_threads=None):
        self.topk = _check_topk(topk)
        self.n_bins = _check_n_bins(n_bins)
        self.ignore_index = _check_ignore_index(ignore_index)
        self.temperature = _check_temperature(temperature)
        self.n_threads = _check_n_threads(n_threads)
        self.reset()

    @property
    def _max_rank(self):
        return self.topk[-1]

    def _settings(self):
        return (self.topk, self.n_bins, self.ignore_index, self.temperature)

    def reset(self):
        """Forget every row seen."""
        nb = self.n_bins + 1
        # the sums in the kernel's layout (see _score_state), which update()
        # adds to in place: float64 nll, entropy and Brier sums, then the
        # bins' confidence sums; int64 count, undefined, the rank counts,
        # the bins' counts and their correct counts.  int64 counts overflow
        # after 9.2e18 rows, centuries of scoring at a billion rows a second.
        try:
            self._f = np.zeros(3 + nb)
            self._c = np.zeros(2 + self._max_rank + 2 * nb, np.int64)
        except MemoryError:
            raise MemoryError(
                f"n_bins, topk: out of memory for the sums of {self.n_bins} calibration bins "
                f"and {self._max_rank} rank counts ({8 * (5 + self._max_rank + 3 * nb) / 2**30:.3g}"
                f" GiB); lower n_bins or max(topk)") from None
        return self

    def __copy__(self):
        # the running sums are arrays: a copy gets its own
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new._f, new._c = self._f.copy(), self._c.copy()
        return new

    def __setstate__(self, state):
        # unpickled arrays may be read-only or misaligned views of a buffer
        # (pickle protocol 5); the kernel adds into the sums: own copies.
        # A scorer pickled by fastxent 0.1.0 before the sums became arrays
        # holds them as attributes: converted.
        state = dict(state)
        if "_c" not in state:
            k, nb = state["topk"][-1], state["n_bins"] + 1
            c = np.zeros(2 + k + 2 * nb, np.int64)
            c[0], c[1] = state.pop("count"), state.pop("undefined")
            c[2:2 + k] = state.pop("rank_counts")
            c[2 + k:2 + k + nb] = state.pop("bin_count")
            c[2 + k + nb:] = state.pop("bin_correct")
            f = np.zeros(3 + nb)
            f[:3] = [state.pop("nll_sum"), state.pop("entropy_sum"), state.pop("brier_sum")]
            f[3:] = state.pop("bin_confidence_sum")
            state["_f"], state["_c"] = f, c
        state["_f"] = np.array(state["_f"], np.float64)
        state["_c"] = np.array(state["_c"], np.int64)
        self.__dict__.update(state)

    # the sums as attributes (read-only views of the state)
    count = property(lambda self: int(self._c[0]), doc="Rows counted.")
    undefined = property(lambda self: int(self._c[1]),
                         doc="Counted rows without a distribution.")
    nll_sum = property(lambda self: float(self._f[0]), doc="Sum of the counted rows' nll.")
    entropy_sum = property(lambda self: float(self._f[1]),
                           doc="Sum of the counted rows' entropies.")
    brier_sum = property(lambda self: float(self._f[2]),
                         doc="Sum of the counted rows' Brier scores.")
    rank_counts = property(lambda self: self._c[2:2 + self._max_rank].tolist(),
                           doc="Rows of each rank below max(topk), a list.")
    bin_count = property(lambda self: self._c[2 + self._max_rank:][:self.n_bins + 1].tolist(),
                         doc="Rows in each calibration bin, a list.")
    bin_correct = property(lambda self: self._c[3 + self._max_rank + self.n_bins:].tolist(),
                           doc="Correctly predicted rows of each bin, a list.")
    bin_confidence_sum = property(lambda self: self._f[3:].copy(),
                                  doc="Sum of the confidences of each bin's rows, an array.")

    def _add_state(self, s):
        """Add a state of _score_state (or of another scorer, as a dict)."""
        k, nb = self._max_rank, self.n_bins + 1
        c, f = self._c, self._f
        c[0] += int(s["count"])
        c[1] += int(s["undefined"])
        f[0] += float(s["nll_sum"])
        f[1] += float(s["entropy_sum"])
        f[2] += float(s["brier_sum"])
        c[2:2 + k] += np.asarray(_ints(s["rank_counts"]), np.int64)
        c[2 + k:2 + k + nb] += np.asarray(_ints(s["bin_count"]), np.int64)
        c[2 + k + nb:] += np.asarray(_ints(s["bin_correct"]), np.int64)
        f[3:] += np.asarray(s["bin_confidence_sum"], np.float64)

    def update(self, input, target):
        """Add the rows of `input` (logits, classes on axis 1: ``(N, C)``,
        ``(N, C, d1, ...)``, or one ``(C,)`` row) against class labels
        `target` (``(N,)``, ``(N, d1, ...)``, or 0-d); returns self.

        Arrays of more than 32 MiB of logits are reduced in chunks of rows
        of about that size along axis 0, so that the reduction's temporaries
        stay a bounded multiple of it.  Bad arguments raise before anything
        is added.
        """
        # Dask logits (NumPy logits with Dask labels compute the labels: the
        # sums are computed here anyway)
        if type(input) is not np.ndarray and _dask.any_dask(input, target):
            return _dask.scorer_update(self, input, target)
        x = input if type(input) is np.ndarray else plain_array(input, "input")
        ignore, temp, rank, bins, nt = (self.ignore_index, self.temperature, self.topk[-1],
                                        self.n_bins, self.n_threads)
        if x.ndim <= 1 or x.nbytes <= CHUNK_BYTES:
            # one chunk: the kernel adds its sums into the state itself (after
            # checking the shapes and every label)
            _score_into(x, target, self._f, self._c, ignore, temp, rank, bins, nt)
            return self
        else:
            t = _chunked_labels(x, target)
            # every chunk is reduced (and checked) before any is added, so a bad
            # label in the last chunk leaves the scorer as it was
            row_bytes = x.nbytes // x.shape[0]
            step = max(1, CHUNK_BYTES // max(row_bytes, 1))
            states = [_score_state(x[i:i + step], t[i:i + step], ignore_index=ignore,
                                   temperature=temp, max_rank=rank, n_bins=bins, n_threads=nt)
                      for i in range(0, x.shape[0], step)]
        for s in states:
            self._add_state(s)
        return self

    def merge(self, other):
        """Add the sums of `other`, a Scorer of the same settings (``topk``,
        ``n_bins``, ``ignore_index``, ``temperature``); returns self."""
        if not isinstance(other, Scorer):
            raise TypeError(f"other: expected a Scorer, got {type(other).__name__}")
        if other._settings() != self._settings():
            names = ("topk", "n_bins", "ignore_index", "temperature")
            diff = [f"{n}={a!r} vs {b!r}" for n, a, b in
                    zip(names, self._settings(), other._settings()) if a != b]
            raise ValueError("other: a Scorer of other settings cannot be merged: "
                             + ", ".join(diff))
        f, c = other._f.copy(), other._c.copy()   # other may be self
        self._f += f
        self._c += c
        return self

    def reliability(self):
        """The calibration bins: a dict of ``lower`` (bin lower edges, the
        last bin being confidence 1), ``count``, ``accuracy`` and
        ``confidence`` (means over the bin's rows, NaN for an empty bin)."""
        count = np.array(self.bin_count, dtype=np.int64)
        with np.errstate(invalid="ignore", divide="ignore"):
            accuracy = np.array(self.bin_correct, dtype=np.float64) / count
            confidence = self.bin_confidence_sum / count
        lower = np.append(np.linspace(0.0, 1.0, self.n_bins + 1)[:-1], 1.0)
        return {"lower": lower, "count": count, "accuracy": accuracy, "confidence": confidence}

    def result(self):
        """The metrics of every row added: a dict of ``count``, ``undefined``,
        ``nll``, ``perplexity``, ``bits_per_token``, ``accuracy@k`` for each
        k of ``topk``, ``ece``, ``mce``, ``brier``, ``entropy`` (see the class
        docstring for their definitions and special cases)."""
        # formed in C from the sums (math.fsum's exactly rounded ece)
        return _dispatch.active.score_metrics(self._f, self._c, self._max_rank, self.n_bins,
                                              *_spec(self.topk))

    def __repr__(self):
        return (f"Scorer(topk={self.topk}, n_bins={self.n_bins}, ignore_index={self.ignore_index}, "
                f"temperature={self.temperature}, n_threads={self.n_threads}; count={self.count})")


def score(input, target, *, topk=_DEFAULT_TOPK, n_bins=15, ignore_index=-100, temperature=1.0,
          n_threads=None):
    """Summary metrics of logits `input` against class labels `target`.

    ``Scorer(topk=..., ...).update(input, target).result()``: see
    :class:`Scorer` for the definitions, ties and special values.

    Parameters
    ----------
    input : array_like, float64, float32, float16 or bfloat16
        Logits, classes on axis 1 (``(N, C)``, ``(N, C, d1, ...)``) or one
        ``(C,)`` row; read in chunks of rows, memory-mapped arrays included.
    target : array_like of int
        Class labels, ``(N,)`` / ``(N, d1, ...)``, or 0-d.
    topk, n_bins, ignore_index, temperature, n_threads
        As for :class:`Scorer`.

    Returns
    -------
    dict
        ``count``, ``undefined``, ``nll``, ``perplexity``,
        ``bits_per_token``, ``accuracy@k`` for each k, ``ece``, ``mce``,
        ``brier``, ``entropy``.
    """
    if type(input) is not np.ndarray and _dask.any_dask(input, target):
        return Scorer(topk=topk, n_bins=n_bins, ignore_index=ignore_index,
                      temperature=temperature, n_threads=n_threads).update(input, target).result()
    # the usual settings without a call each (a small call's quarter)
    spec = _DEFAULT_SPEC if topk is _DEFAULT_TOPK else _spec(_check_topk(topk))
    if type(n_bins) is not int or not 1 <= n_bins <= _MAX_SIZE:
        n_bins = _check_n_bins(n_bins)
    if type(ignore_index) is not int:
        ignore_index = _check_ignore_index(ignore_index)
    if type(temperature) is not float or not 0.0 < temperature < math.inf:
        temperature = _check_temperature(temperature)
    if n_threads is not None:
        n_threads = _check_n_threads(n_threads)
    x = input if type(input) is np.ndarray else plain_array(input, "input")
    if x.ndim > 1 and x.nbytes > CHUNK_BYTES:
        # in chunks, as a Scorer reads them
        return Scorer(topk=spec[0], n_bins=n_bins, ignore_index=ignore_index,
                      temperature=temperature, n_threads=n_threads).update(x, target).result()
    # one chunk: the sums stay in the kernel, which returns their metrics
    # (a Scorer's bits)
    return _score_metrics(x, target, ignore_index, temperature, spec, n_bins, n_threads)
