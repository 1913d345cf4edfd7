"""One description of every public function of fastxent, for the contract tests.

An :class:`Entry` says how to build valid example arguments of a given size
and dtype, which arguments are array operands (the input first), which
output the function writes (``out=``, or ``grad_out=`` with
``return_grad=True``), its axis convention and its NumPy reference.  The
examples are well conditioned (moderate logits, probabilities away from 0),
so that one relative tolerance per dtype, plus a multiple of the machine
epsilon times the operands' magnitude, bounds the difference from the
reference whatever the code path.

``ENTRIES`` holds one entry per function of ``fastxent.__all__`` except the
configuration helpers (``CONFIG_HELPERS``), the result types
(``RESULT_TYPES``) and the evaluation built on
``score_rows`` (``EVALUATION``: summaries of whole files or arrays, no
array output, tested in test_scorer.py, test_score_files.py and
test_cli_score.py); test_contract.py fails when a public function has none.
"""
import importlib

import numpy as np

CONFIG_HELPERS = frozenset({"get_config", "show_config", "cpu_path"})
# public names that are result types, not functions
RESULT_TYPES = frozenset({"RowScores"})
EVALUATION = frozenset({"score", "Scorer", "score_file"})

# axis conventions
ANY_AXIS = "any axis"          # axis= names the reduced (or normalized) axis
CLASS_AXIS = "class axis 1"    # (N, C, d1, ...): classes on axis 1, (C,) unbatched
ELEMENTWISE = "element-wise"   # operands broadcast together, no axis

# The kernels start a second thread only when the call has at least this many
# elements per thread (``MIN_WORK_PER_THREAD`` in src/softmax_family.pxi; a
# test checks the two agree when the source is at hand): an example meant to
# run on two threads needs at least twice as many elements.
MIN_WORK_PER_THREAD = 32768

# relative tolerance against the reference, per result dtype (those of
# test_fuzz_differential.py)
RTOL = {np.dtype(np.float64): 1e-13, np.dtype(np.float32): 2e-6, np.dtype(np.float16): 2e-3}


def reference(name):
    """The NumPy reference of the public function `name` (``fastxent.reference``
    exposes each by its public name)."""
    return getattr(importlib.import_module("fastxent.reference"), name)


def _logits(rng, shape, dtype):
    return (2.0 * rng.standard_normal(shape)).astype(dtype)


def _probs(rng, shape, dtype, axis=-1):
    p = rng.uniform(0.05, 1.0, shape)
    return (p / p.sum(axis=axis, keepdims=True)).astype(dtype)


def _positive(rng, shape, dtype):
    return rng.uniform(0.25, 2.0, shape).astype(dtype)


def _labels(rng, rows, classes):
    t = rng.integers(0, classes, rows)
    t[::7] = -100  # ignored rows (the default ignore_index)
    return t


class Entry:
    """A public function of fastxent as the contract tests see it.

    Parameters
    ----------
    name : str
        Its name in ``fastxent``.
    axis : str
        ``ANY_AXIS``, ``CLASS_AXIS`` or ``ELEMENTWISE``.
    operands : tuple of str
        The names of its array arguments, the input first.
    output : str or None
        ``"out"``, ``"grad_out"`` (written with ``return_grad=True``) or None.
    build : callable
        ``build(rng, rows, cols, dtype) -> (operands, options)``: a dict of
        C-ordered arrays by operand name (the input of shape ``(rows,
        cols)``) and a dict of the other keyword arguments.
    output_shape : callable, optional
        ``output_shape(rows, cols)``: the shape of the output (default: the
        input's).
    label : str, optional
        A name for the test ids (default: `name`), when a function has
        several entries.
    """

    def __init__(self, name, axis, operands, output, build, output_shape=None, label=None):
        self.name = name
        self.axis = axis
        self.operands = tuple(operands)
        self.output = output
        self.build = build
        self.output_shape = output_shape or (lambda rows, cols: (rows, cols))
        self.label = label or name

    def __repr__(self):
        return f"Entry({self.label!r})"

    @property
    def input(self):
        """The name of the input operand (which ``grad_out`` or ``out`` may alias)."""
        return self.operands[0]

    @property
    def returns_pair(self):
        """Whether the call with the example options returns ``(result, grad)``."""
        return self.output == "grad_out"

    def parts(self, result):
        """The arrays of a result: ``(result, grad)``, or the fields of a
        named tuple of arrays, as a list; else ``[result]``."""
        if self.returns_pair or hasattr(result, "_fields"):
            return list(result)
        return [result]

    def example(self, rows, cols, dtype, seed=0):
        """``(operands, options)`` for an input of shape ``(rows, cols)``."""
        return self.build(np.random.default_rng(seed), rows, cols, np.dtype(dtype))

    def func(self):
        import fastxent

        return getattr(fastxent, self.name)

    def reference(self):
        return reference(self.name)

    def call(self, operands, options, n_threads=None, **extra):
        """fastxent's result on keyword operands; `n_threads` is passed
        when given."""
        if n_threads is not None:
            extra["n_threads"] = n_threads
        return self.func()(**operands, **options, **extra)

    def call_reference(self, operands, options):
        """The reference's result on C-ordered native copies of the operands."""
        copies = {k: np.array(v, dtype=np.asarray(v).dtype.newbyteorder("="), order="C")
                  for k, v in operands.items()}
        return self.reference()(**copies, **options)


def _lse(rng, rows, cols, dtype):
    return ({"a": _logits(rng, (rows, cols), dtype), "b": _positive(rng, (rows, cols), dtype)},
            {"axis": 1})


def _softmax(rng, rows, cols, dtype):
    return {"x": _logits(rng, (rows, cols), dtype)}, {"axis": 1}


def _xent_labels(rng, rows, cols, dtype):
    return ({"input": _logits(rng, (rows, cols), dtype), "target": _labels(rng, rows, cols),
             "weight": _positive(rng, (cols,), dtype)},
            {"reduction": "none", "label_smoothing": 0.1, "return_grad": True})


def _xent_probs(rng, rows, cols, dtype):
    return ({"input": _logits(rng, (rows, cols), dtype),
             "target": _probs(rng, (rows, cols), dtype, axis=1),
             "weight": _positive(rng, (cols,), dtype)},
            {"reduction": "none", "return_grad": True})


def _nll(rng, rows, cols, dtype):
    x = _logits(rng, (rows, cols), np.float64)
    logp = (x - np.log(np.exp(x).sum(axis=1, keepdims=True))).astype(dtype)
    return ({"input": logp, "target": _labels(rng, rows, cols),
             "weight": _positive(rng, (cols,), dtype)},
            {"reduction": "none", "return_grad": True})


def _kl(rng, rows, cols, dtype):
    logq = np.log(_probs(rng, (rows, cols), np.float64)).astype(dtype)
    return ({"input": logq, "target": _probs(rng, (rows, cols), dtype)},
            {"reduction": "none", "return_grad": True})


def _bce(rng, rows, cols, dtype):
    return ({"input": _logits(rng, (rows, cols), dtype),
             "target": rng.uniform(0.0, 1.0, (rows, cols)).astype(dtype),
             "weight": _positive(rng, (rows, cols), dtype),
             "pos_weight": _positive(rng, (cols,), dtype)},
            {"reduction": "none", "return_grad": True})


def _entropy(rng, rows, cols, dtype):
    return ({"pk": _positive(rng, (rows, cols), dtype), "qk": _positive(rng, (rows, cols), dtype)},
            {"axis": 1})


def _softmax_entropy(rng, rows, cols, dtype):
    return {"logits": _logits(rng, (rows, cols), dtype)}, {"axis": 1}


def _softmax_pair(rng, rows, cols, dtype):
    return ({"p_logits": _logits(rng, (rows, cols), dtype),
             "q_logits": _logits(rng, (rows, cols), dtype)}, {"axis": 1})


def _score_rows(rng, rows, cols, dtype):
    return ({"input": _logits(rng, (rows, cols), dtype), "target": _labels(rng, rows, cols)},
            {"temperature": 1.5})


def _rows(rows, cols):
    return (rows,)


ENTRIES = [
    Entry("logsumexp", ANY_AXIS, ("a", "b"), "out", _lse, _rows),
    Entry("softmax", ANY_AXIS, ("x",), "out", _softmax),
    Entry("log_softmax", ANY_AXIS, ("x",), "out", _softmax),
    Entry("cross_entropy", CLASS_AXIS, ("input", "target", "weight"), "grad_out", _xent_labels,
          label="cross_entropy labels"),
    Entry("cross_entropy", CLASS_AXIS, ("input", "target", "weight"), "grad_out", _xent_probs,
          label="cross_entropy probs"),
    Entry("nll_loss", CLASS_AXIS, ("input", "target", "weight"), "grad_out", _nll),
    Entry("kl_div", ELEMENTWISE, ("input", "target"), "grad_out", _kl),
    Entry("binary_cross_entropy_with_logits", ELEMENTWISE,
          ("input", "target", "weight", "pos_weight"), "grad_out", _bce),
    Entry("entropy", ANY_AXIS, ("pk", "qk"), None, _entropy),
    Entry("softmax_entropy", ANY_AXIS, ("logits",), None, _softmax_entropy),
    Entry("softmax_cross_entropy", ANY_AXIS, ("p_logits", "q_logits"), None, _softmax_pair),
    Entry("softmax_kl_div", ANY_AXIS, ("p_logits", "q_logits"), None, _softmax_pair),
    # a named tuple of per-row arrays (out= is a RowScores: test_score_rows.py)
    Entry("score_rows", CLASS_AXIS, ("input", "target"), None, _score_rows, _rows),
]

BY_LABEL = {e.label: e for e in ENTRIES}


def missing_entries(names):
    """The public function names among `names` that have no entry."""
    return sorted(set(names) - CONFIG_HELPERS - RESULT_TYPES - EVALUATION
                  - {e.name for e in ENTRIES})
