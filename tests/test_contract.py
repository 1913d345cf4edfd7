"""The contract every public function keeps, checked from one registry
(registry.py) on every CPU code path this machine runs.

* results agree with the NumPy reference, on each CPU path (the AVX2 and
  baseline paths may differ in their last bits, so each is compared with the
  reference, and with the other within the same tolerance, not bit for bit);
* results are bit for bit the same for one and two threads, on inputs large
  enough that the kernels do start a second thread (a probe counts the
  threads a fresh process starts);
* any memory layout of any operand (F order, strided, negative strides,
  broadcast, read-only, memory-mapped, byte-swapped) agrees with the
  reference, bit for bit with the call on C-ordered native copies where the
  layout keeps the kernel (read-only, memory-mapped, byte-swapped), and no
  operand is modified;
* ``out=`` / ``grad_out=``: the array returned, the same bits as a call
  without it whether fresh or reused with garbage in it, nothing written
  outside it, the input itself accepted (computed in place) where the
  output has the input's shape, and an output partially overlapping the
  input gives the result computed from the input as it was.
"""
import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastxent
from arrays import assert_bitwise_equal, memmap_copy
from registry import CONFIG_HELPERS, ENTRIES, MIN_WORK_PER_THREAD, RTOL, missing_entries

PATHS = list(fastxent.get_config()["cpu_paths"])
ENTRY_IDS = [e.label for e in ENTRIES]
WITH_OUTPUT = [e for e in ENTRIES if e.output]
# outputs of the input's shape, which may be the input itself
IN_PLACE = [e for e in WITH_OUTPUT if e.output_shape(2, 3) == (2, 3)]
DTYPES = [np.float64, np.float32]
DTYPE_IDS = ["float64", "float32"]
# short rows (at most 64 classes, taken 64 rows at a time: one full group
# and a partial one) and rows taken one at a time (fewer than 16)
SHAPES = [(70, 6), (4, 37)]
# threads: enough elements for two threads in every kernel, short rows
THREAD_SHAPE = (8192, 12)

pytestmark = [pytest.mark.filterwarnings("ignore::RuntimeWarning")]


@pytest.fixture(params=PATHS)
def path(request):
    """Run the test on one CPU code path."""
    with fastxent.cpu_path(request.param):
        yield request.param


def _parts(entry, result):
    return entry.parts(result)


def _magnitude(arrays):
    m = 0.0
    for a in arrays:
        a = np.asarray(a, np.float64)
        fin = np.abs(a[np.isfinite(a)])
        if fin.size:
            m = max(m, float(fin.max()))
    return m


def assert_matches_reference(entry, got, want, operands, what):
    """Each part of the result within the dtype's relative tolerance of the
    reference, plus that tolerance times the operands' (and the result's)
    magnitude for values that are small by cancellation."""
    floats = [v for v in operands.values() if np.asarray(v).dtype.kind == "f"]
    for i, (g, w) in enumerate(zip(_parts(entry, got), _parts(entry, want))):
        g, w = np.asarray(g), np.asarray(w)
        assert g.dtype == w.dtype, f"{what} part {i}: dtype {g.dtype}, expected {w.dtype}"
        assert g.shape == w.shape, f"{what} part {i}: shape {g.shape}, expected {w.shape}"
        if w.dtype.kind in "iu":   # counts and indices: exact
            np.testing.assert_array_equal(g, w, err_msg=f"{what} part {i}")
            continue
        rtol = RTOL[w.dtype]
        atol = rtol * max(_magnitude(floats), _magnitude([w]), 1.0) * 4
        np.testing.assert_allclose(g.astype(np.float64), w.astype(np.float64), rtol=rtol,
                                   atol=atol, err_msg=f"{what} part {i}")


def _snapshot(operands):
    return {k: (np.asarray(v).dtype, np.asarray(v).tobytes()) for k, v in operands.items()}


def assert_unchanged(operands, snapshot, what):
    for k, v in operands.items():
        assert (np.asarray(v).dtype, np.asarray(v).tobytes()) == snapshot[k], (
            f"{what}: operand {k} was modified")


# ---------------------------------------------------------------------------
# the registry itself

def test_every_public_function_has_an_entry():
    assert missing_entries(fastxent.__all__) == []
    for e in ENTRIES:
        assert e.name in fastxent.__all__ and e.name not in CONFIG_HELPERS, e.label
        assert callable(e.func()) and callable(e.reference()), e.label


def test_thread_threshold_is_the_kernels():
    # the registry's copy of the kernels' threshold, read from the source
    # when the tests run from a checkout
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "src", "fx_kernels.pxd.tp")
    if not os.path.exists(src):
        pytest.skip("no kernel source here")
    with open(src) as f:
        found = re.search(r"^    MIN_WORK_PER_THREAD = (\d+)$", f.read(), re.M)
    assert found and int(found.group(1)) == MIN_WORK_PER_THREAD


# ---------------------------------------------------------------------------
# results

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("entry", ENTRIES, ids=ENTRY_IDS)
def test_matches_reference(entry, path, dtype):
    for rows, cols in SHAPES:
        operands, options = entry.example(rows, cols, dtype)
        snapshot = _snapshot(operands)
        got = entry.call(operands, options, n_threads=1)
        assert_unchanged(operands, snapshot, f"{path} {rows}x{cols}")
        want = entry.call_reference(operands, options)
        assert_matches_reference(entry, got, want, operands, f"{path} {rows}x{cols}")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("entry", ENTRIES, ids=ENTRY_IDS)
def test_two_threads_give_the_bits_of_one(entry, path, dtype):
    rows, cols = THREAD_SHAPE
    # every kernel splits at most (elements // MIN_WORK_PER_THREAD) ways
    assert rows * cols >= 2 * MIN_WORK_PER_THREAD
    operands, options = entry.example(rows, cols, dtype, seed=1)
    snapshot = _snapshot(operands)
    one = entry.call(operands, options, n_threads=1)
    two = entry.call(operands, options, n_threads=2)
    assert_unchanged(operands, snapshot, path)
    assert_bitwise_equal(two, one, f"{entry.label} on {path}: 2 threads")
    assert_matches_reference(entry, two, entry.call_reference(operands, options), operands,
                             f"{path}, 2 threads")


PROBE = textwrap.dedent("""
    import json, os, sys
    sys.path.insert(0, {tests_dir!r})
    import numpy as np
    import fastxent
    from registry import ENTRIES, MIN_WORK_PER_THREAD

    def threads():
        return len(os.listdir("/proc/self/task"))

    start = threads()
    report = {{}}
    for e in ENTRIES:  # below the threshold: no thread started
        operands, options = e.example(70, 6, np.float64)
        e.call(operands, options, n_threads=2)
    report["small"] = threads() - start
    # each entry asks for one thread more than the one before, on just enough
    # elements: the OpenMP pool grows only if the kernel uses them all
    nt = 1
    for e in ENTRIES:
        nt += 1
        rows = -(-nt * MIN_WORK_PER_THREAD // 12)
        operands, options = e.example(rows, 12, np.float32)
        e.call(operands, options, n_threads=nt)
        report[e.label] = [threads() - start, nt - 1]
    print(json.dumps(report))
""")


def test_large_examples_do_start_threads(path, tmp_path):
    # a thread-count probe: the threads of this process (Linux lists them in
    # /proc/self/task) before and after each call, in a fresh process whose
    # OpenMP pool is empty
    if not sys.platform.startswith("linux") or not fastxent.get_config()["openmp"]:
        pytest.skip("counts the threads of a Linux process built with OpenMP")
    # without the OpenMP settings that may grant fewer threads than asked
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_THREAD_LIMIT", "OMP_DYNAMIC")}
    env["FASTXENT_CPU"] = path
    code = PROBE.format(tests_dir=os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report.pop("small") == 0, "a call below the threshold started a thread"
    assert len(report) == len(ENTRIES)
    for label, (started, wanted) in report.items():
        assert started == wanted, f"{label}: {started} threads started, {wanted} asked for"


# entries whose input is logits, where -inf (a masked class) is valid
LOGIT_INPUTS = {"logsumexp", "softmax", "log_softmax", "cross_entropy", "softmax_entropy",
                "softmax_cross_entropy", "softmax_kl_div", "score_rows"}


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("entry", ENTRIES, ids=ENTRY_IDS)
def test_cpu_paths_agree(entry, dtype):
    # the AVX2 build has kernels of its own (short rows of the softmax
    # family and of cross-entropy, the entropies, the element-wise losses):
    # each path within the reference's tolerance of the other, on many short
    # rows (several groups of 64, a partial one) and on long rows
    if len(PATHS) < 2:
        pytest.skip("one CPU path here")
    for rows, cols in [(203, 7), (3, 300)]:
        operands, options = entry.example(rows, cols, dtype, seed=6)
        if entry.name in LOGIT_INPUTS:
            operands[entry.input][::5, 1] = -np.inf
        results = {}
        for p in PATHS:
            with fastxent.cpu_path(p):
                results[p] = entry.call(operands, options)
        for p in PATHS[1:]:
            assert_matches_reference(entry, results[p], results[PATHS[0]], operands,
                                     f"{entry.label}: {p} vs {PATHS[0]}, {rows}x{cols}")


# ---------------------------------------------------------------------------
# layouts of the operands

def _strided(a):
    big = np.zeros(tuple(2 * n + 1 for n in a.shape), a.dtype)
    view = big[tuple(slice(1, None, 2) for _ in a.shape)]
    view[...] = a
    return view


def _negative(a):
    flip = (slice(None, None, -1),) * a.ndim
    return np.ascontiguousarray(a[flip])[flip]


def _read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


LAYOUTS = {
    "F": np.asfortranarray,
    "strided": _strided,
    "negative strides": _negative,
    "broadcast": lambda a: np.broadcast_to(a[:1], a.shape),
    "read-only": _read_only,
    "memmap": None,  # needs a file: built in the test
    "byte-swapped": lambda a: a.astype(a.dtype.newbyteorder()),
}


# Layouts read by the same kernels as a C-ordered native copy: the same bits.
# The others may take another kernel (column-wise, strided gathers, a
# reversed walk) that sums in another order: within the tolerance of the
# reference, as every code path.
SAME_ROUTE = {"read-only", "memmap", "byte-swapped"}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("entry", ENTRIES, ids=ENTRY_IDS)
def test_layouts_give_the_bits_of_contiguous_copies(entry, path, layout, tmp_path):
    for rows, cols in SHAPES:
        operands, options = entry.example(rows, cols, np.float64, seed=2)
        for name in entry.operands:
            laid = dict(operands)
            a = operands[name]
            if layout == "memmap":
                laid[name] = memmap_copy(a, tmp_path / f"{entry.name}-{name}-{rows}.dat")
            else:
                laid[name] = LAYOUTS[layout](a)
            # the values as given (broadcast repeats the first slice), in
            # C order and native byte order
            plain = {k: np.array(v, dtype=v.dtype.newbyteorder("="), order="C")
                     for k, v in laid.items()}
            snapshot = _snapshot(laid)
            what = f"{entry.label} on {path}, {name} {layout}, {rows}x{cols}"
            got = entry.call(laid, options)
            assert_unchanged(laid, snapshot, what)
            if layout in SAME_ROUTE:
                assert_bitwise_equal(got, entry.call(plain, options), what)
            else:
                assert_matches_reference(entry, got, entry.call_reference(plain, options),
                                         plain, what)


# ---------------------------------------------------------------------------
# outputs

def _plain(entry, operands, options):
    return entry.call(operands, options)


def _output_part(entry, result):
    return result[1] if entry.returns_pair else result


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("entry", WITH_OUTPUT, ids=[e.label for e in WITH_OUTPUT])
def test_output_fresh_and_reused_with_garbage(entry, path, dtype):
    rows, cols = SHAPES[0]
    operands, options = entry.example(rows, cols, dtype, seed=3)
    want = _plain(entry, operands, options)
    shape = entry.output_shape(rows, cols)
    guard = np.full(int(np.prod(shape)) + 2, np.nan, dtype)
    out = guard[1:-1].reshape(shape)
    got = entry.call(operands, options, **{entry.output: out})
    assert _output_part(entry, got) is out
    assert_bitwise_equal(got, want, f"{entry.label} on {path}: fresh {entry.output}")
    # reused: what the first call left, then garbage bytes
    for fill in ("previous result", "garbage"):
        if fill == "garbage":
            out.view(np.uint8)[...] = 0xFF
        got = entry.call(operands, options, **{entry.output: out})
        assert _output_part(entry, got) is out
        assert_bitwise_equal(got, want, f"{entry.label} on {path}: {entry.output} {fill}")
    assert np.isnan(guard[0]) and np.isnan(guard[-1]), "written outside the output"


@pytest.mark.parametrize("entry", [e for e in WITH_OUTPUT if e.returns_pair],
                         ids=[e.label for e in WITH_OUTPUT if e.returns_pair])
def test_grad_out_without_return_grad_is_refused(entry, path):
    # no gradient is computed without return_grad: a grad_out given alone
    # would be left as it was, so it is an error naming both arguments
    rows, cols = SHAPES[0]
    operands, options = entry.example(rows, cols, np.float64, seed=5)
    g = np.full(entry.output_shape(rows, cols), 7.0)
    for flag in ({"return_grad": False}, {}):
        opts = {k: v for k, v in options.items() if k != "return_grad"} | flag
        with pytest.raises(ValueError, match="grad_out.*return_grad"):
            entry.call(operands, opts, grad_out=g)
        assert (g == 7.0).all()
        # a result, unchanged, without it
        assert_bitwise_equal(entry.call(operands, opts), _plain(entry, operands, options)[0],
                             f"{entry.label} on {path} without the gradient")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("entry", IN_PLACE, ids=[e.label for e in IN_PLACE])
def test_output_is_the_input_itself(entry, path, dtype):
    # documented for every output of the input's shape: computed in place
    rows, cols = SHAPES[0]
    operands, options = entry.example(rows, cols, dtype, seed=4)
    want = _plain(entry, operands, options)
    x = operands[entry.input].copy()
    got = entry.call({**operands, entry.input: x}, options, **{entry.output: x})
    assert _output_part(entry, got) is x
    assert_bitwise_equal(got, want, f"{entry.label} on {path}: {entry.output} is the input")


@pytest.mark.parametrize("shift", [1, 3], ids=["shift 1", "shift 3"])
@pytest.mark.parametrize("entry", WITH_OUTPUT, ids=[e.label for e in WITH_OUTPUT])
def test_output_partially_overlapping_the_input(entry, path, shift):
    # documented: an output overlapping the input in any other way gets the
    # result computed from the input as it was before the call
    rows, cols = SHAPES[0]
    operands, options = entry.example(rows, cols, np.float64, seed=5)
    want = _plain(entry, operands, options)
    x = operands[entry.input]
    shape = entry.output_shape(rows, cols)
    n_out = int(np.prod(shape))
    buf = np.zeros(max(x.size, n_out + shift) + shift, x.dtype)
    xin = buf[:x.size].reshape(x.shape)
    xin[...] = x
    out = buf[shift:shift + n_out].reshape(shape)
    assert np.shares_memory(out, xin)
    got = entry.call({**operands, entry.input: xin}, options, **{entry.output: out})
    assert _output_part(entry, got) is out
    assert_bitwise_equal(got, want, f"{entry.label} on {path}: {entry.output} shifted by {shift}")
