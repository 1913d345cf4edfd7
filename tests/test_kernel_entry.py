"""The kernels' entry, below the Python layers: what a driver accepts.

The Python layers hand the drivers checked arrays only, so nothing here is
reachable through the public functions; these tests pin the last line of
defence that keeps a kernel inside its operands' memory.  The drivers read
an ndarray's data, dims, strides and dtype from the array itself
(fx_get_buffer, src/fx_kernels.pxd.tp), and must refuse what NumPy's buffer
protocol would refuse or what the kernels cannot walk: a read-only output,
a byte-swapped, misaligned or non-float operand, dims that do not merge.
Also here: the C answers of fastxent._arrays against NumPy's flags, and a
reduced loss of one partial sum, which the kernel returns instead of
writing it to an array.
"""
import numpy as np
import pytest

import fastxent
from fastxent import _arrays

from arrays import misaligned

F64 = np.dtype(np.float64)


def _lse(module, x, out, lo=1, hi=1):
    module.logsumexp(x, out, None, None, False, 1, lo, hi)


def test_logsumexp_entry_accepts_the_layers_operands(module):
    x = np.random.default_rng(0).standard_normal((3, 5))
    out = np.empty(3)
    _lse(module, x, out)
    np.testing.assert_allclose(out, np.log(np.exp(x).sum(1)), rtol=1e-15)
    # F-ordered: the (outer, C, inner) groups merge, read through strides
    xf = np.asfortranarray(x)
    out_f = np.empty(3)
    _lse(module, xf, out_f)
    np.testing.assert_array_equal(out_f, out)


@pytest.mark.parametrize("case", ["byte-swapped", "misaligned", "int64", "bool", "records"])
def test_entry_refuses_inputs_it_cannot_walk(module, case):
    x = np.random.default_rng(1).standard_normal((3, 5))
    if case == "byte-swapped":
        x = x.astype(x.dtype.newbyteorder())
    elif case == "misaligned":
        x = misaligned(x)
    elif case == "int64":
        x = np.arange(15).reshape(3, 5)
    elif case == "bool":
        x = x > 0
    else:
        x = np.zeros((3, 5), [("a", "f8")])
    out = np.full(3, 7.0)
    with pytest.raises(ValueError, match="kernel operand|kernels' input"):
        _lse(module, x, out)
    np.testing.assert_array_equal(out, 7.0)   # nothing written


def test_entry_refuses_a_read_only_output(module):
    x = np.ones((3, 5))
    out = np.full(3, 7.0)
    out.setflags(write=False)
    with pytest.raises(ValueError, match="read-only"):
        _lse(module, x, out)
    np.testing.assert_array_equal(out, 7.0)


def test_entry_refuses_an_output_of_another_length_or_type(module):
    x = np.ones((3, 5))
    with pytest.raises(ValueError, match="different element types or lengths"):
        _lse(module, x, np.empty(4))
    with pytest.raises(ValueError, match="different element types or lengths"):
        _lse(module, x, np.empty(3, np.float32))


def test_entry_refuses_dims_that_do_not_merge(module):
    # axes 0 and 2 of a C-ordered (3, 4, 5) array reduced as one group 0..1
    # of its transpose: the two reduced dims are not one strided dim
    x = np.ones((3, 4, 5)).transpose(0, 2, 1)[:, :, ::2]
    with pytest.raises(ValueError, match="do not merge"):
        _lse(module, x, np.empty(3), lo=1, hi=2)


def test_entry_reads_non_array_buffers_through_the_protocol(module):
    x = np.random.default_rng(2).standard_normal((2, 4))
    out = np.empty(2)
    _lse(module, memoryview(x), memoryview(out))
    np.testing.assert_allclose(out, np.log(np.exp(x).sum(1)), rtol=1e-15)


def _zoo():
    base = np.arange(24.0).reshape(4, 6)
    yield "C", base
    yield "F", np.asfortranarray(base)
    yield "strided", base[:, ::2]
    yield "negative strides", base[::-1]
    yield "misaligned", misaligned(base)
    yield "0-d", np.ones(())
    yield "empty", np.empty((0, 3))
    yield "broadcast", np.broadcast_to(base[:1], (4, 6))


@pytest.mark.parametrize("name, a", list(_zoo()), ids=[n for n, _ in _zoo()])
def test_arrays_answers_as_numpys_flags(name, a):
    assert _arrays.c_contiguous(a) == a.flags.c_contiguous
    assert _arrays.aligned(a) == a.flags.aligned
    assert _arrays.c_aligned((a,)) == (a.flags.c_contiguous and a.flags.aligned)
    assert _arrays.c_aligned((None, a, None)) == _arrays.c_aligned((a,))


def test_arrays_c_aligned_of_several_and_of_non_arrays():
    c, f = np.ones((3, 4)), np.ones((3, 4), order="F")
    assert _arrays.c_aligned(())
    assert _arrays.c_aligned((c, None, c))
    assert not _arrays.c_aligned((c, f))
    assert not _arrays.c_aligned((c, [1.0, 2.0]))
    with pytest.raises(TypeError):
        _arrays.c_aligned([c])
    with pytest.raises(TypeError):
        _arrays.c_contiguous([1.0])


@pytest.mark.parametrize("rows", [1, 15, 16, 17, 33])
def test_reduced_losses_of_one_partial_and_of_several(rows):
    """Up to 16 rows (one partial sum) the kernel returns the sum; beyond,
    the layer sums an array of them.  Both agree with the per-row losses
    summed in order."""
    rng = np.random.default_rng(rows)
    x = rng.standard_normal((rows, 7))
    t = rng.integers(0, 7, rows)
    per_row = fastxent.cross_entropy(x, t, reduction="none")
    total = fastxent.cross_entropy(x, t, reduction="sum")
    np.testing.assert_allclose(total, per_row.sum(), rtol=1e-14)
    np.testing.assert_allclose(fastxent.cross_entropy(x, t), per_row.mean(), rtol=1e-14)
    p = rng.dirichlet(np.ones(7), rows)
    kl_rows = fastxent.kl_div(x, p, reduction="none")
    np.testing.assert_allclose(fastxent.kl_div(x, p, reduction="sum"), kl_rows.sum(), rtol=1e-13)
    y = (rng.random((rows, 7)) < 0.5).astype(np.float64)
    b_rows = fastxent.binary_cross_entropy_with_logits(x, y, reduction="none")
    np.testing.assert_allclose(fastxent.binary_cross_entropy_with_logits(x, y, reduction="sum"),
                               b_rows.sum(), rtol=1e-13)


def test_partial_sums_none_only_for_one(module):
    x = np.ones((17, 3))
    t = np.zeros(17, np.int64)
    with pytest.raises(ValueError, match="partial sums"):
        module.cross_entropy(x, t, -100, None, None, 0.0, None, 1.0, None, None, 1, 1, 1)
    one, denom, bad = module.cross_entropy(x[:16], t[:16], -100, None, None, 0.0, None, 1.0,
                                           None, None, 1, 1, 1)
    assert one == pytest.approx(16 * np.log(3.0), rel=1e-15)
    assert (denom, bad) == (16.0, -1)


def test_score_adds_into_checked_state_arrays(module):
    """The scorer's kernel adds an evaluation's sums into the caller's state
    arrays (a Scorer's update) only when they have the sums' layout, and
    adds nothing when a label is bad."""
    x = np.linspace(-2.0, 2.0, 12).reshape(3, 4)
    t = np.array([0, 3, 1])
    n_f, n_c = 4 + 2, 2 * 2 + 4 + 1   # n_bins = 2, max_rank = 1
    f, c = np.zeros(n_f), np.zeros(n_c, np.int64)
    for bad_f, bad_c in [(np.zeros(n_f, np.float32), c), (f, np.zeros(n_c)),
                         (np.zeros(n_f + 1), c), (f, np.zeros(n_c - 1, np.int64)), (f, None),
                         (None, c), (np.zeros(2 * n_f)[::2], c), ([0.0] * n_f, c)]:
        with pytest.raises(ValueError, match="add_f and add_c"):
            module.score(x, t, -100, 0, 1.0, False, None, 1, 2, 1, bad_f, bad_c)
    misaligned = np.frombuffer(bytearray(8 * n_f + 1), np.uint8)[1:].view(np.float64)
    for bad_f, bad_c in [(f, np.broadcast_to(c, c.shape)), (misaligned, c),
                         (np.zeros(n_f, ">f8"), c), (f, np.zeros(n_c, ">i8"))]:
        with pytest.raises(ValueError, match="add_f and add_c"):
            module.score(x, t, -100, 0, 1.0, False, None, 1, 2, 1, bad_f, bad_c)
    assert not f.any() and not c.any()
    assert module.score(x, t, -100, 0, 1.0, False, None, 1, 2, 1, f, c) == (-1, None, None)
    module.score(x, t, -100, 0, 1.0, False, None, 1, 2, 1, f, c)
    bad, f1, c1 = module.score(x, t, -100, 0, 1.0, False, None, 1, 2, 1)
    assert bad == -1 and c.tolist() == (2 * c1).tolist() and f.tolist() == (2 * f1).tolist()
    assert module.score(x, np.array([0, 9, 1]), -100, 0, 1.0, False, None, 1, 2, 1, f, c)[0] == 1
    assert c.tolist() == (2 * c1).tolist() and f.tolist() == (2 * f1).tolist()
