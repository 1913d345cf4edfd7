"""score_rows and _score_state: the per-row scores of logits against labels,
and the sums of an evaluation chunk, against the NumPy reference
(fastxent.reference.score), PyTorch and torchmetrics' binning."""
import numpy as np
import pytest

import fastxent
from fastxent._score_rows import _score_state
from fastxent.reference.score import ROW_FIELDS, RowScores
from fastxent.reference.score import score_rows as reference
from registry import MIN_WORK_PER_THREAD

try:
    import ml_dtypes
except ImportError:   # optional: the bfloat16 cases skip
    ml_dtypes = None

try:
    import torch
except ImportError:
    torch = None

PATHS = list(fastxent.get_config()["cpu_paths"])
FLOAT_FIELDS = ("nll", "confidence", "entropy", "brier")
# relative tolerance per result dtype; float16/bfloat16 data are exact in
# float32, so they get float32's
RTOL = {np.dtype(np.float64): 1e-13, np.dtype(np.float32): 3e-6}


@pytest.fixture(params=PATHS)
def path(request):
    with fastxent.cpu_path(request.param):
        yield request.param


def _dtypes():
    out = [np.float64, np.float32, np.float16]
    out.append(pytest.param("bfloat16", marks=pytest.mark.skipif(
        ml_dtypes is None, reason="ml_dtypes is not installed")))
    return out


def _as(x, dtype):
    if dtype == "bfloat16":
        return np.asarray(x, dtype=ml_dtypes.bfloat16)
    return np.asarray(x).astype(dtype)


def assert_scores_close(got, want, what=""):
    assert isinstance(got, RowScores), what
    for name, g, w in zip(ROW_FIELDS, got, want):
        g, w = np.asarray(g), np.asarray(w)
        assert g.dtype == w.dtype, f"{what} {name}: dtype {g.dtype}, expected {w.dtype}"
        assert g.shape == w.shape, f"{what} {name}: shape {g.shape}, expected {w.shape}"
        if name in FLOAT_FIELDS:
            rtol = RTOL[w.dtype]
            np.testing.assert_allclose(g.astype(np.float64), w.astype(np.float64), rtol=rtol,
                                       atol=rtol, err_msg=f"{what} {name}")
        else:
            np.testing.assert_array_equal(g, w, err_msg=f"{what} {name}")


def _special_rows(rng, n, c):
    """Logits with every kind of special row: -inf entries, NaN, +inf, only
    -inf, ties at the max, ties with the label, a confident row."""
    x = 3.0 * rng.standard_normal((n, c))
    t = rng.integers(0, c, n)
    x[1, :2] = -np.inf              # masked classes
    x[2, 1] = np.nan                # NaN row
    x[3, c - 1] = np.inf            # +inf row
    x[4, :] = -np.inf               # only -inf
    x[5, :] = 1.5                   # all tied
    x[6, :] = x[6, 0]
    x[6, 2] = x[6, 0] + 1           # the label tied with others, below the max
    t[6] = 0
    x[7, :] = 0.0
    x[7, 3] = 40.0                  # confident and right
    t[7] = 3
    x[8, 0] = -np.inf               # a label on a -inf class
    t[8] = 0
    x[9, 1] = np.inf
    x[9, 0] = np.nan                # NaN after... and before +inf: first NaN predicted
    x[10, 2] = np.nan
    x[10, 0] = np.inf
    t[::6] = -100                   # ignored rows (some special ones too)
    return x, t


@pytest.mark.parametrize("dtype", _dtypes())
@pytest.mark.parametrize("temperature", [1.0, 2.0, 0.7])
def test_matches_reference(path, dtype, temperature):
    rng = np.random.default_rng(0)
    for n, c in [(40, 7), (13, 300), (3, 5000)]:
        x, t = _special_rows(rng, max(n, 11), c)
        x = _as(x, dtype)
        got = fastxent.score_rows(x, t, temperature=temperature, n_threads=1)
        want = reference(x, t, temperature=temperature)
        assert_scores_close(got, want, f"{path} {dtype} T={temperature} {n}x{c}")


@pytest.mark.parametrize("dtype", _dtypes())
def test_special_values_in_later_blocks(path, dtype):
    """Long rows are read in blocks of 2048 classes, each scanned for its
    max, min, NaN and infinities before its sums: -inf, NaN and +inf in the
    blocks after the first, alone and together, the first NaN and the first
    max far from the start, a max that rises in a later block."""
    rng = np.random.default_rng(11)
    c = 7000   # four blocks, the last one partial
    x = 3.0 * rng.standard_normal((12, c))
    t = rng.integers(0, c, 12)
    x[0, 2100:2200] = -np.inf                   # masked classes in block 1 only
    x[1, 5000] = np.nan                         # NaN in block 2
    x[2, 6999] = np.inf                         # +inf in the last element
    x[3, 3000] = -np.inf
    x[3, 4500] = np.nan                         # -inf then NaN
    x[3, 6500] = np.nan
    x[4, 2500] = np.inf
    x[4, 6100] = np.nan                         # +inf, then the first NaN later
    x[5, :] = -np.inf
    x[5, 4096:4100] = 0.5                       # only -inf but in block 2
    x[6, 6000] = 30.0                           # the max rises in the last block
    x[7, 2048:4096] = -np.inf                   # a whole block of -inf
    x[8, 4000] = 60.0
    x[8, 4001] = 60.0                           # tied maxima, both in block 1
    t[8] = 4001
    x[9, ::2] = -np.inf                         # every other class masked
    x[10, 1000] = -120.0                        # exps below the normal range
    x[10, 3000] = -800.0                        # ... of float32 and of float64
    x = _as(x, dtype)
    got = fastxent.score_rows(x, t, n_threads=1)
    assert_scores_close(got, reference(x, t), f"{path} {dtype}")
    assert got.prediction[[1, 2, 3, 4, 6, 8]].tolist() == [5000, 6999, 4500, 6100, 6000, 4000]
    st = _score_state(x, t, max_rank=3, n_bins=4)
    assert st["undefined"] == 4                 # rows 1-4


@pytest.mark.parametrize("dtype", _dtypes())
@pytest.mark.parametrize("temperature", [1.0, 0.5, 0.7])
def test_short_rows_and_their_fallbacks(path, dtype, temperature):
    """Rows of up to 64 classes are scored side by side (more than 16 with
    their sums in runs of 16); they hand rows with a NaN, +inf, only -inf or
    an exp below the normal range to the row path, which takes rows of up
    to 32 through a short path: both sides of each size limit and of each
    fallback, against the reference, and the same bits for every layout of
    the rows."""
    rng = np.random.default_rng(7)
    # 150 rows: up to 64 classes, rows are scored 64 at a time side by side
    # (two whole groups and a partial one); more, one at a time
    for c in (1, 2, 9, 16, 17, 31, 32, 33, 40, 64, 65):
        x, t = _special_rows(rng, 150, max(c, 3)) if c >= 3 else (
            3.0 * rng.standard_normal((150, c)), rng.integers(0, c, 150))
        x = x[:, :c]
        t = np.where(t < c, t, 0)
        x[140, 0] = np.nan           # rows to hand back, in the last group
        x[141, :] = -np.inf
        x[143, -1] = np.inf
        if c >= 2:
            # spreads whose smaller exps are subnormal or 0 in float32 and in
            # float64: the general path's sums
            x[11, :] = 0.0
            x[11, 1] = -95.0
            x[12, :] = 1.0
            x[12, c - 1] = -760.0
            x[13, 0] = 200.0
            t[11:14] = [1, c - 1, 0]
        x = _as(x, dtype)
        want = reference(x, t, temperature=temperature)
        got = fastxent.score_rows(x, t, temperature=temperature, n_threads=1)
        assert_scores_close(got, want, f"{path} {dtype} T={temperature} C={c}")
        for xv in (np.asfortranarray(x), np.repeat(x, 2, axis=1)[:, ::2]):
            other = fastxent.score_rows(xv, t, temperature=temperature, n_threads=1)
            for name, a, b in zip(ROW_FIELDS, got, other):
                np.testing.assert_array_equal(a, b, err_msg=f"{dtype} C={c} {name}: layout")
        # a row alone (a group of one: a small call) has the bits it has
        # among 63 others
        for i in (0, 1, 11, 12, 13, 63, 64, 140, 141, 143, 149):
            alone = fastxent.score_rows(x[i:i + 1], t[i:i + 1], temperature=temperature,
                                        n_threads=1)
            for name, a, b in zip(ROW_FIELDS, got, alone):
                np.testing.assert_array_equal(a[i:i + 1], b,
                                              err_msg=f"{dtype} C={c} row {i} {name}: alone")


@pytest.mark.parametrize("dtype", [np.float16, "bfloat16"])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_half_precision_rows_score_as_their_float32_values(path, dtype, temperature):
    """float16 and bfloat16 logits are computed in float32: short rows (up
    to 64 classes) of finite logits score with the bits of the same values
    given as float32, on every layout (contiguous rows are converted into
    float32 rows and take float32's lanes, strided ones the portable loops),
    and so do an evaluation's sums.  (Rows the general path takes -- longer
    ones, or with -inf entries -- may differ by an ulp, within float32's
    tolerance, as the tests above check.)"""
    if dtype == "bfloat16" and ml_dtypes is None:
        pytest.skip("ml_dtypes is not installed")
    rng = np.random.default_rng(11)
    for c in (2, 5, 10, 16, 17, 32, 40, 64):
        x = 3.0 * rng.standard_normal((150, c))
        t = rng.integers(0, c, 150)
        x[20, 0] = 1e-7                  # a subnormal float16, a tiny bfloat16
        x[21, :] = 1.5                   # all tied
        x[22, :] = 0.0
        x[22, 1] = 30.0                  # confident
        t[::25] = -100                   # ignored rows
        xh = _as(x, dtype)
        x32 = xh.astype(np.float32)
        want = fastxent.score_rows(x32, t, temperature=temperature, n_threads=1)
        for xv in (xh, np.repeat(xh, 2, axis=1)[:, ::2], np.asfortranarray(xh)):
            got = fastxent.score_rows(xv, t, temperature=temperature, n_threads=1)
            for name, a, b in zip(ROW_FIELDS, got, want):
                np.testing.assert_array_equal(a, b, err_msg=f"{dtype} C={c} {name}")
        got_m = fastxent.score(xh, t, temperature=temperature)
        assert got_m == fastxent.score(x32, t, temperature=temperature), f"{dtype} C={c}"


@pytest.mark.parametrize("dtype", [np.float16, "bfloat16", np.float32])
def test_rows_over_two_dims_not_in_memory_order(path, dtype):
    # (2, m, C) C-ordered, moved to (m, C, 2): row (i, j) lies at
    # i C + m j C elements, so a group of 2 m rows in row order (i, j)
    # starts and ends where 2 m rows in memory order would, with the rows
    # between them elsewhere (m = 8: one group of 16 rows)
    if dtype == "bfloat16" and ml_dtypes is None:
        pytest.skip("ml_dtypes is not installed")
    rng = np.random.default_rng(12)
    for c, m in ((5, 8), (10, 8), (16, 8), (10, 32)):
        base = _as(rng.standard_normal((2, m, c)), dtype)
        x = base.transpose(1, 2, 0)
        t = rng.integers(0, c, (m, 2))
        got = fastxent.score_rows(x, t, n_threads=1)
        want = fastxent.score_rows(np.ascontiguousarray(x), t, n_threads=1)
        for name, a, b in zip(ROW_FIELDS, got, want):
            np.testing.assert_array_equal(a, b, err_msg=f"{dtype} C={c} {name}")
        assert fastxent.score(x, t) == fastxent.score(np.ascontiguousarray(x), t)
    # channels-last images with the spatial axes swapped: 16384 rows, in
    # groups of 64
    base = _as(rng.standard_normal((256, 8, 8, 10)), dtype)
    x = base.transpose(0, 3, 2, 1)
    t = rng.integers(0, 10, (256, 8, 8))
    got = fastxent.score_rows(x, t, n_threads=1)
    want = fastxent.score_rows(np.ascontiguousarray(x), t, n_threads=1)
    for name, a, b in zip(ROW_FIELDS, got, want):
        np.testing.assert_array_equal(a, b, err_msg=f"{dtype} channels-last {name}")
    assert fastxent.score(x, t) == fastxent.score(np.ascontiguousarray(x), t)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_layouts(dtype):
    rng = np.random.default_rng(1)
    # (N, C, d1, d2): classes on axis 1
    x = rng.standard_normal((3, 5, 4, 2)).astype(dtype)
    t = rng.integers(0, 5, (3, 4, 2))
    t[0, 1, 1] = -100
    assert_scores_close(fastxent.score_rows(x, t), reference(x, t), "(N, C, d1, d2)")
    # unbatched: NumPy scalars
    got = fastxent.score_rows(x[0, :, 0, 0], np.int64(2))
    want = reference(x[0, :, 0, 0], np.int64(2))
    for g, w in zip(got, want):
        assert np.ndim(g) == 0 and type(g) is type(w)
    assert_scores_close(got, want, "unbatched")
    # strided, F-ordered and reversed logits; labels of other integer types
    # and strides
    x2 = rng.standard_normal((30, 9)).astype(dtype)
    t2 = rng.integers(0, 9, 30)
    want = reference(x2, t2)
    for xv in (np.asfortranarray(x2), x2[::-1][::-1], np.repeat(x2, 2, axis=1)[:, ::2],
               np.ascontiguousarray(x2[::-1, ::-1])[::-1, ::-1]):
        for tv in (t2.astype(np.int8), t2.astype(np.uint16), t2.astype(np.int32),
                   np.repeat(t2, 3)[::3], t2.astype(">i8")):
            assert_scores_close(fastxent.score_rows(xv, tv), want, "layout")


def test_empty_and_one_class():
    for dtype in (np.float64, np.float32):
        x = np.zeros((0, 4), dtype)
        got = fastxent.score_rows(x, np.zeros(0, np.int64))
        assert_scores_close(got, reference(x, np.zeros(0, np.int64)), "N = 0")
        st = _score_state(x, np.zeros(0, np.int64))
        assert st["count"] == 0 and st["nll_sum"] == 0.0 and st["bin_count"].sum() == 0
        x = np.array([[3.0], [-np.inf], [np.nan]], dtype)
        t = np.array([0, 0, 0])
        got = fastxent.score_rows(x, t)
        assert_scores_close(got, reference(x, t), "C = 1")
        assert got.nll[0] == 0 and got.confidence[0] == 1 and got.brier[0] == 0
    # no class at all: every row ignored
    x = np.zeros((2, 0))
    t = np.array([-100, -100])
    assert_scores_close(fastxent.score_rows(x, t), reference(x, t), "C = 0")


def test_special_values_by_hand():
    x = np.array([[1.0, 2.0, 2.0, np.nan, 5.0], [0.0, np.inf, 1.0, np.inf, 2.0],
                  [-np.inf, -np.inf, -np.inf, -np.inf, -np.inf],
                  [1.0, 2.0, 2.0, 0.0, 2.0]])
    t = np.array([0, 2, 1, 0])
    r = fastxent.score_rows(x, t)
    assert r.prediction.tolist() == [3, 1, 0, 1]       # first NaN, first +inf, first max
    assert r.rank.tolist() == [5, 5, 5, 3]              # undefined rows rank C
    assert np.isnan(r.nll[:3]).all() and np.isnan(r.brier[:3]).all()
    assert np.isnan(r.confidence[:3]).all() and np.isnan(r.entropy[:3]).all()
    # three tied maxima: confidence is one of their probabilities
    p = np.exp(x[3] - 2.0) / np.exp(x[3] - 2.0).sum()
    assert r.confidence[3] == pytest.approx(p.max(), rel=1e-15)
    # ignored: nll 0, brier 0, rank -1, the rest computed
    r = fastxent.score_rows(x[3:], np.array([7]), ignore_index=7)
    assert (r.nll[0], r.brier[0], r.rank[0], r.prediction[0]) == (0.0, 0.0, -1, 1)
    assert r.entropy[0] > 0


def test_confident_rows_keep_their_digits():
    # 1 - p_y from the other classes: no cancellation when p_y ~ 1
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 50
    for big in (20.0, 35.0, 60.0):
        z = np.array([big, 0.0, -1.0, 0.5])
        r = fastxent.score_rows(z[None, :], np.array([0]))
        e = [mp.exp(mp.mpf(v) - big) for v in z]
        s = sum(e)
        p = [v / s for v in e]
        brier = (1 - p[0]) ** 2 + sum(v ** 2 for v in p[1:])
        ent = -sum(v * mp.log(v) for v in p)
        nll = mp.log(s)
        assert r.brier[0] == pytest.approx(float(brier), rel=1e-13)
        assert r.entropy[0] == pytest.approx(float(ent), rel=1e-13)
        assert r.nll[0] == pytest.approx(float(nll), rel=1e-13)
        r32 = fastxent.score_rows(z[None, :].astype(np.float32), np.array([0]))
        assert r32.brier[0] == pytest.approx(float(brier), rel=1e-5)
        assert r32.entropy[0] == pytest.approx(float(ent), rel=1e-5)


def test_confident_short_rows_keep_their_digits():
    # one dominant logit: nll = log1p((C - 1) e^-a), entropy and Brier about
    # as small, in float32 rows of 2 to 64 classes (more than 16: the sums
    # in runs of 16, added in double)
    a = np.linspace(8, 80, 640)
    for c in (2, 10, 16, 17, 40, 64):
        x = np.zeros((a.size, c), np.float32)
        x[:, 1:] = -a[:, None].astype(np.float32)
        t = np.zeros(a.size, np.int64)
        r = fastxent.score_rows(x, t)
        e = (c - 1) * np.exp(x[:, 1].astype(np.float64))
        np.testing.assert_allclose(r.nll, np.log1p(e), rtol=4 * np.finfo(np.float32).eps,
                                   atol=0, err_msg=f"C={c} nll")
        # in closed form (p_0 = 1 / S, S = 1 + e, the others u / S with u =
        # e^-a): H = log S + (C - 1) u a / S, Brier = (e / S)^2 + (C - 1) (u / S)^2
        u = np.exp(x[:, 1].astype(np.float64))
        S = 1 + e
        ent = np.log1p(e) - (c - 1) * u * x[:, 1].astype(np.float64) / S
        brier = (e / S) ** 2 + (c - 1) * (u / S) ** 2
        np.testing.assert_allclose(r.entropy, ent, rtol=8 * np.finfo(np.float32).eps, atol=0,
                                   err_msg=f"C={c} entropy")
        # Brier's terms u^2, summed in float32, leave its normal range first
        # (subnormals hold fewer digits)
        normal = u ** 2 >= np.finfo(np.float32).tiny
        np.testing.assert_allclose(r.brier[normal], brier[normal],
                                   rtol=8 * np.finfo(np.float32).eps, atol=0,
                                   err_msg=f"C={c} brier")


@pytest.mark.skipif(torch is None, reason="needs PyTorch")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_against_torch(dtype):
    rng = np.random.default_rng(3)
    x = (2.0 * rng.standard_normal((50, 11))).astype(dtype)
    x[3, 4] = -np.inf
    t = rng.integers(0, 11, 50)
    t[::9] = -100
    r = fastxent.score_rows(x, t)
    tx = torch.from_numpy(x)
    nll = torch.nn.functional.cross_entropy(tx, torch.from_numpy(t), reduction="none").numpy()
    rtol = RTOL[np.dtype(dtype)]
    np.testing.assert_allclose(r.nll, nll, rtol=rtol, atol=rtol)
    conf = torch.softmax(tx, dim=1).max(dim=1).values.numpy()
    np.testing.assert_allclose(r.confidence, conf, rtol=rtol, atol=rtol)
    # torch.argmax takes the first maximum too
    np.testing.assert_array_equal(r.prediction, torch.argmax(tx, dim=1).numpy())


# ---------------------------------------------------------------------------
# _score_state

def _bins(conf, n_bins):
    """torchmetrics' bin of float64 confidences: bucketize on the boundaries
    b / n_bins, right=True, minus 1."""
    edges = np.arange(n_bins + 1) / n_bins
    return np.searchsorted(edges, conf, side="right") - 1


def _state_from_reference(x, t, ignore_index=-100, temperature=1.0, max_rank=5, n_bins=15,
                          rows=reference):
    """The sums composed by NumPy from the per-row scores of `rows` (the
    reference, or score_rows itself)."""
    r = rows(x, t, ignore_index=ignore_index, temperature=temperature)
    valid = np.asarray(t) != ignore_index
    rank = np.asarray(r.rank)[valid]
    conf = np.asarray(r.confidence, np.float64)[valid]
    correct = (np.asarray(r.prediction) == t)[valid]
    defined = ~np.isnan(conf)
    bins = _bins(conf[defined], n_bins)
    return {
        "count": int(valid.sum()),
        "undefined": int((~defined).sum()),
        "nll_sum": float(np.sum(np.asarray(r.nll, np.float64)[valid])),
        "entropy_sum": float(np.sum(np.asarray(r.entropy, np.float64)[valid])),
        "brier_sum": float(np.sum(np.asarray(r.brier, np.float64)[valid])),
        "rank_counts": np.bincount(rank[rank < max_rank], minlength=max_rank),
        "bin_count": np.bincount(bins, minlength=n_bins + 1),
        "bin_correct": np.bincount(bins, weights=correct[defined], minlength=n_bins + 1),
        "bin_confidence_sum": np.bincount(bins, weights=conf[defined], minlength=n_bins + 1),
    }


def _assert_state(got, want, rtol, what=""):
    assert set(got) == set(want)
    for k in ("count", "undefined"):
        assert got[k] == want[k], f"{what} {k}"
    for k in ("rank_counts", "bin_count", "bin_correct"):
        assert got[k].dtype == np.int64
        np.testing.assert_array_equal(got[k], want[k], err_msg=f"{what} {k}")
    for k in ("nll_sum", "entropy_sum", "brier_sum", "bin_confidence_sum"):
        np.testing.assert_allclose(got[k], want[k], rtol=rtol, atol=rtol, err_msg=f"{what} {k}")


@pytest.mark.parametrize("dtype", _dtypes())
def test_state_matches_reference(path, dtype):
    rng = np.random.default_rng(4)
    x = (1.5 * rng.standard_normal((300, 6)))
    x[::17, 2] = -np.inf
    t = rng.integers(0, 6, 300)
    t[::11] = -100
    x = _as(x, dtype)
    rtol = 1e-12 if dtype == np.float64 else 3e-6
    for kw in ({}, {"max_rank": 2, "n_bins": 10, "temperature": 0.5}, {"n_bins": 1}):
        got = _score_state(x, t, n_threads=1, **kw)
        _assert_state(got, _state_from_reference(x, t, **kw), rtol, f"{dtype} {kw}")
        # the sums of score_rows' own rows: only the order of the sums differs
        _assert_state(got, _state_from_reference(x, t, rows=fastxent.score_rows, **kw), 1e-12,
                      f"{dtype} {kw}, against score_rows")
    # with undefined rows: NaN sums, counted as undefined, in no bin
    xs, ts = _special_rows(rng, 30, 8)
    xs = _as(xs, dtype)
    got = _score_state(xs, ts, n_threads=1)
    want = _state_from_reference(xs, ts)
    assert got["undefined"] == want["undefined"] > 0 and np.isnan(got["nll_sum"])
    _assert_state(got, want, rtol, "special rows")


# rows enough for blocks of FX_SCORE_ACC_ROWS (256) rows: 256 blocks of them,
# where the rows scored side by side keep sums of their own (fx_score_acc)
LONG_ROWS = 66000


def _long_evaluation(rng, c, dtype):
    """LONG_ROWS rows of c classes: random ones, every special row of
    _special_rows repeated through the blocks, and rows whose confidence is
    exactly 1/k (k tied maxima, the others far below but their exps
    normal), which sit on bin edges."""
    x, t = _special_rows(rng, LONG_ROWS, c)
    for start in range(1000, LONG_ROWS - 11, 6007):
        x[start:start + 11] = x[:11]
        t[start:start + 11] = t[:11]
    far = -700.0 if dtype == np.float64 else -80.0
    for i, k in enumerate(range(1, c + 1)):
        rows = slice(20000 + 37 * i, 20000 + 37 * i + 30)
        x[rows] = far
        x[rows, :k] = 0.0
    return _as(x, dtype), t


@pytest.mark.parametrize("dtype", _dtypes())
@pytest.mark.parametrize("c", [4, 10, 16, 40])
def test_long_evaluation_state_is_the_sum_of_its_rows(path, dtype, c):
    # the lanes' own sums (per lane, the bins split four ways, folded at the
    # end of a block) hold the same rows as score_rows gives; only the order
    # of the float sums differs, and it is the same on every thread count
    rng = np.random.default_rng(40 + c)
    x, t = _long_evaluation(rng, c, dtype)
    for kw in ({}, {"max_rank": 16, "n_bins": 63}, {"max_rank": 17, "n_bins": 64},
               {"max_rank": 1, "n_bins": 1}, {"max_rank": 2, "n_bins": 10, "temperature": 0.5}):
        got = _score_state(x, t, n_threads=1, **kw)
        want = _state_from_reference(x, t, rows=fastxent.score_rows, **kw)
        assert got["undefined"] == want["undefined"] > 0
        for k in ("nll_sum", "entropy_sum", "brier_sum"):
            assert np.isnan(got[k]) and np.isnan(want[k])
        got_bins = {k: got[k] for k in ("bin_count", "bin_correct", "bin_confidence_sum")}
        want_bins = {k: want[k] for k in got_bins}
        _assert_state(dict(got, **got_bins), dict(want, **want_bins), 1e-12, f"{dtype} {kw}")
        # without the undefined rows the float sums are numbers to compare
        ok = ~np.isnan(np.asarray(fastxent.score_rows(x, t).confidence, np.float64))
        got_ok = _score_state(x[ok], t[ok], n_threads=1, **kw)
        want_ok = _state_from_reference(x[ok], t[ok], rows=fastxent.score_rows, **kw)
        _assert_state(got_ok, want_ok, 1e-12, f"{dtype} {kw}, defined rows")
        two = _score_state(x[ok], t[ok], n_threads=2, **kw)
        for k in got_ok:
            np.testing.assert_array_equal(two[k], got_ok[k], err_msg=f"{dtype} {kw} {k}: threads")


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_long_evaluation_sums_rows_rounded_to_their_type(path, dtype):
    # LONG_ROWS copies of one row: the sum of as many copies of a float32 is
    # exact in float64, so the means are the row's float32 values exactly,
    # which they are not if the float64 values were summed unrounded
    x = np.tile(_as([[0.3, -1.7, 2.2, 0.1, 0.9, -0.4, 1.3]], dtype), (LONG_ROWS, 1))
    t = np.full(LONG_ROWS, 1)
    r = fastxent.score_rows(x[:1], t[:1])
    m = fastxent.score(x, t)
    assert r.prediction[0] == 2 and m["accuracy@1"] == 0.0
    assert m["nll"] == float(r.nll[0])
    assert m["entropy"] == float(r.entropy[0])
    assert m["brier"] == float(r.brier[0])
    assert m["ece"] == float(r.confidence[0])   # every row wrong, in one bin


@pytest.mark.skipif(torch is None, reason="needs PyTorch")
def test_bins_are_torchmetrics_bins():
    # confidences on and near the boundaries: 1/k from k tied classes, and
    # random ones; float64 confidences against torch.bucketize
    rng = np.random.default_rng(5)
    rows = [np.zeros(k).tolist() + [-np.inf] * (20 - k) for k in range(1, 21)]
    x = np.vstack([np.array(rows), rng.standard_normal((200, 20))])
    t = np.zeros(len(x), np.int64)
    # up to 256 bins the kernel looks the edges up, above it divides
    for n_bins in (1, 3, 10, 15, 20, 40, 256, 257, 1000):
        st = _score_state(x, t, n_bins=n_bins)
        conf = torch.from_numpy(np.asarray(fastxent.score_rows(x, t).confidence))
        edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
        b = torch.bucketize(conf, edges, right=True) - 1
        want = np.bincount(b.numpy(), minlength=n_bins + 1)
        np.testing.assert_array_equal(st["bin_count"], want, err_msg=f"n_bins={n_bins}")


@pytest.mark.skipif(not fastxent.get_config()["openmp"], reason="serial build")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_two_threads_give_the_bits_of_one(path, dtype):
    rng = np.random.default_rng(6)
    n, c = 2 * MIN_WORK_PER_THREAD // 8 + 37, 12
    x = (2.0 * rng.standard_normal((n, c))).astype(dtype)
    x[::101, 3] = -np.inf
    t = rng.integers(0, c, n)
    t[::13] = -100
    one = _score_state(x, t, n_threads=1)
    two = _score_state(x, t, n_threads=2)
    for k in one:
        assert np.asarray(one[k]).tobytes() == np.asarray(two[k]).tobytes(), k
    r1 = fastxent.score_rows(x, t, n_threads=1)
    r2 = fastxent.score_rows(x, t, n_threads=2)
    for a, b in zip(r1, r2):
        assert a.tobytes() == b.tobytes()
    # and the state is the sums of those rows
    _assert_state(two, _state_from_reference(x, t, rows=fastxent.score_rows), 1e-12)


# ---------------------------------------------------------------------------
# out=

def test_out():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((20, 5)).astype(np.float32)
    t = rng.integers(0, 5, 20)
    want = fastxent.score_rows(x, t)
    outs = {name: np.full(20, 99, np.int64 if name in ("rank", "prediction") else np.float32)
            for name in ROW_FIELDS}
    got = fastxent.score_rows(x, t, out=outs)
    for name, a, w in zip(ROW_FIELDS, got, want):
        assert a is outs[name]
        assert a.tobytes() == w.tobytes()
    # a RowScores of strided views
    big = RowScores(*(np.zeros(40, a.dtype) for a in want))
    views = RowScores(*(a[::2] for a in big))
    got = fastxent.score_rows(x, t, out=views)
    for a, w, b in zip(got, want, big):
        assert a.tobytes() == w.tobytes() and not b[1::2].any()
    # an output overlapping the input: computed from the input as it was
    x64 = rng.standard_normal((20, 5))
    want = fastxent.score_rows(x64, t)
    outs = dict(zip(ROW_FIELDS, (np.empty(20, a.dtype) for a in want)))
    outs["nll"] = x64[:, 0]
    got = fastxent.score_rows(x64.copy(), t)   # values before the write
    got2 = fastxent.score_rows(x64, t, out=outs)
    for a, b in zip(got, got2):
        assert a.tobytes() == np.ascontiguousarray(b).tobytes()
    # wrong dtype, shape, missing field
    bad = dict(outs, nll=np.empty(20, np.float32))
    with pytest.raises(ValueError, match="nll"):
        fastxent.score_rows(x64, t, out=bad)
    with pytest.raises(ValueError, match="shape"):
        fastxent.score_rows(x64, t, out=dict(outs, rank=np.empty(19, np.int64)))
    with pytest.raises(ValueError):
        fastxent.score_rows(x64, t, out={"nll": outs["nll"]})


def test_bad_label_writes_nothing():
    x = np.zeros((4, 3))
    outs = {name: np.full(4, 7, np.int64 if name in ("rank", "prediction") else np.float64)
            for name in ROW_FIELDS}
    with pytest.raises(IndexError, match="target"):
        fastxent.score_rows(x, np.array([0, 1, 3, 0]), out=outs)
    assert all((a == 7).all() for a in outs.values())


@pytest.mark.parametrize("n_threads", [1, 2])
def test_the_first_bad_label_is_named(path, n_threads):
    """The error names the first bad label (in row order) whatever the
    labels' layout, with ignore_index's rows skipped: rows of one dim of
    int64 labels have a check loop of their own, strided and other dtypes
    and dims the general walk."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3000, 7))
    for ignore in (-100, -1, 7):
        for where, value in ((0, 7), (5, -1), (1234, 2**40), (2999, -100), (2999, -2)):
            t = rng.integers(0, 7, 3000)
            t[::11] = ignore
            t[where] = value
            t[where + 1:] = np.where(rng.random(2999 - where) < 0.5, 9, t[where + 1:])
            bad = value != ignore
            if not bad:   # the first bad label is then a later one, or none
                continue
            layouts = [t, np.repeat(t, 2)[::2], t.reshape(30, 100)]
            if abs(value) < 2**31:
                layouts.append(t.astype(np.int32))
            for labels in layouts:
                xs = x if labels.ndim == 1 else x.reshape(30, 100, 7).transpose(0, 2, 1)
                with fastxent.cpu_path(path), pytest.raises(
                        IndexError, match=rf"^target {value} is out of bounds"):
                    fastxent.score_rows(xs, labels, ignore_index=ignore, n_threads=n_threads)
                with fastxent.cpu_path(path), pytest.raises(
                        IndexError, match=rf"^target {value} is out of bounds"):
                    fastxent.score(xs, labels, ignore_index=ignore, n_threads=n_threads)


# ---------------------------------------------------------------------------
# errors

@pytest.mark.parametrize("func", [fastxent.score_rows, _score_state])
def test_errors(func):
    x = np.zeros((4, 3))
    t = np.array([0, 1, 2, 0])
    for bad in ([0, 1, 3, 0], [0, -1, 2, 0], [0, -100 + 1, 2, 0]):
        with pytest.raises(IndexError, match="target"):
            func(x, np.array(bad))
    with pytest.raises(IndexError, match="target"):
        func(x, np.array([0, 1, 2, 2**63], np.uint64))
    with pytest.raises(ValueError):
        func(x, t[:3])                      # wrong shape
    with pytest.raises(ValueError):
        func(x, t[:, None])
    with pytest.raises(ValueError):
        func(np.float64(1.0), np.int64(0))  # 0-d input
    with pytest.raises(TypeError):
        func(x.astype(np.int32), t)         # non-float input
    with pytest.raises(TypeError):
        func(x, t.astype(np.float64))       # non-integer target
    with pytest.raises(TypeError):
        func(x, t, ignore_index=1.5)
    for temperature in (0.0, -1.0, np.nan, np.inf, 10**400):
        with pytest.raises(ValueError, match="temperature"):
            func(x, t, temperature=temperature)
    for temperature in (True, "1", None):   # not a number: as Scorer and score
        with pytest.raises(TypeError, match="temperature"):
            func(x, t, temperature=temperature)
    # an ignore_index beyond int64 ignores nothing
    assert np.asarray(func(x, t, ignore_index=2**70)[0] if func is fastxent.score_rows
                      else func(x, t, ignore_index=2**70)["count"]).size


@pytest.mark.parametrize("big", [2**63, 2**64 - 1])
def test_an_ignore_index_above_int64_ignores_the_uint64_labels_equal_to_it(big):
    # only a uint64 label can equal it; an int64 label of the same bits
    # (a negative one) is not ignored but out of bounds
    rng = np.random.default_rng(3)
    x = rng.standard_normal((300, 5)).astype(np.float32)
    t = rng.integers(0, 5, 300).astype(np.uint64)
    t[::7] = big
    keep = t != big
    r = fastxent.score_rows(x, t, ignore_index=big)
    want = fastxent.score_rows(x[keep], t[keep].astype(np.int64))
    np.testing.assert_array_equal(r.nll[keep], want.nll)
    assert (r.rank[~keep] == -1).all() and (r.nll[~keep] == 0).all()
    got = fastxent.score(x, t, ignore_index=big)
    assert got == fastxent.score(x[keep], t[keep].astype(np.int64))
    s = fastxent.Scorer(ignore_index=big).update(x, t)
    assert s.count == keep.sum()
    with pytest.raises(IndexError, match=f"target {big} is out of bounds"):
        fastxent.score(x, t, ignore_index=big - 1 if big > 2**63 else big + 1)
    signed = t.astype(np.int64)   # the same bits: negative labels
    for func in (fastxent.score_rows, fastxent.score):
        with pytest.raises(IndexError, match="out of bounds"):
            func(x, signed, ignore_index=big)


def test_state_argument_errors():
    x = np.zeros((4, 3))
    t = np.array([0, 1, 2, 0])
    with pytest.raises(ValueError):
        _score_state(x, t, n_bins=0)
    with pytest.raises(ValueError):
        _score_state(x, t, max_rank=-1)
    with pytest.raises(TypeError):
        _score_state(x, t, n_bins=2.5)
    assert _score_state(x, t, max_rank=0)["rank_counts"].shape == (0,)


def test_float32_temperature_scales_in_float32():
    # z = x / T is float32 for float32 logits: halving +-1.4e-45 gives two
    # zeros, a tie, rank 0 -- as PyTorch's x / T and a count of larger z;
    # doubling 3e38 overflows to inf: a row without a distribution
    x = np.array([[-1.4e-45, 1.4e-45], [3e38, 1.0]], np.float32)
    for f in (fastxent.score_rows, reference):
        half = f(x[:1], np.array([0]), temperature=2.0)
        assert half.rank.tolist() == [0], f
        double = f(x[1:], np.array([1]), temperature=0.5)
        assert double.rank.tolist() == [2] and np.isnan(double.nll).all(), f
    torch = pytest.importorskip("torch")
    z = torch.from_numpy(x[:1]) / 2.0
    assert int((z[0] > z[0, 0]).sum()) == 0


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
@pytest.mark.parametrize("shape, labels_of", [
    ((6, 7), lambda t: t), ((6, 7), lambda t: t[::-1]), ((3, 7, 4), lambda t: t.T.copy().T),
    ((7,), lambda t: t)], ids=["rows", "reversed labels", "F-ordered labels", "unbatched"])
def test_new_outputs_are_c_ordered_arrays_of_the_labels_shape(dtype, shape, labels_of):
    # the kernel makes the six outputs itself: owned, writeable, C-ordered
    # arrays of the labels' shape, int64 rank and prediction, the float ones
    # float64 for float64 logits and float32 otherwise; the same values as
    # into the caller's arrays
    rng = np.random.default_rng(len(shape))
    x = rng.standard_normal(shape).astype(dtype)
    rows = (shape[0],) + shape[2:] if len(shape) > 1 else ()
    t = labels_of(rng.integers(0, 7, rows))
    got = fastxent.score_rows(x, t)
    result = np.float64 if dtype == np.float64 else np.float32
    out = {name: np.empty(rows, np.int64 if name in ("rank", "prediction") else result)
           for name in ROW_FIELDS}
    fastxent.score_rows(x, t, out=out)
    for name, a in zip(ROW_FIELDS, got):
        want_dtype = np.int64 if name in ("rank", "prediction") else result
        if not rows:
            assert type(a) is want_dtype, name
            a = np.asarray(a)
        else:
            assert a.dtype == want_dtype and a.shape == rows, name
            assert a.flags.c_contiguous and a.flags.owndata and a.flags.writeable, name
        np.testing.assert_array_equal(a, out[name], err_msg=name)


def test_outputs_sharing_memory_are_refused():
    """Two outputs in one array would leave one holding the other's values;
    columns of one 2-d array are separate outputs and fine."""
    x = np.array([[2.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
    y = np.array([0, 1])
    want = fastxent.score_rows(x, y)
    out = {k: np.zeros(2, np.int64 if k in ("rank", "prediction") else np.float64)
           for k in want._fields}
    out["brier"] = out["nll"]
    with pytest.raises(ValueError, match="out\\['brier'\\] and out\\['nll'\\] share memory"):
        fastxent.score_rows(x, y, out=out)
    floats = np.zeros((2, 4))
    ints = np.zeros((2, 2), np.int64)
    out = {"nll": floats[:, 0], "confidence": floats[:, 1], "entropy": floats[:, 2],
           "brier": floats[:, 3], "rank": ints[:, 0], "prediction": ints[:, 1]}
    got = fastxent.score_rows(x, y, out=out)
    for k in want._fields:
        np.testing.assert_array_equal(getattr(got, k), getattr(want, k), err_msg=k)


def test_a_temperature_that_rounds_to_zero_in_float32_is_refused():
    x = np.zeros((1, 3), np.float32)
    with pytest.raises(ValueError, match="rounds to 0 in float32"):
        fastxent.score_rows(x, np.array([0]), temperature=1e-46)
    with pytest.raises(ValueError, match="rounds to 0 in float32"):
        fastxent.score(x, np.array([0]), temperature=1e-46)
    # float64 logits divide in float64
    assert fastxent.score(x.astype(np.float64), np.array([0]), temperature=1e-46)["count"] == 1


def test_row_scores_pickle_and_copy():
    import copy
    import pickle

    x = np.random.default_rng(8).standard_normal((5, 4))
    r = fastxent.score_rows(x, np.array([0, 1, 2, 3, 0]))
    for back in (pickle.loads(pickle.dumps(r)), copy.copy(r), copy.deepcopy(r)):
        assert type(back) is type(r) and back._fields == r._fields
        for a, b in zip(back, r):
            np.testing.assert_array_equal(a, b)
