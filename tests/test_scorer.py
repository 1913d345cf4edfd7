"""fastxent.score and fastxent.Scorer: the summary metrics against the
reference (fastxent.reference.metrics), scikit-learn, torchmetrics and
PyTorch; independence from chunking and merging; special rows; argument
checks."""
import math

import numpy as np
import pytest

import fastxent
from fastxent import _scorer
from fastxent.reference.metrics import score as ref_score

FLOATS = ("nll", "perplexity", "bits_per_token", "ece", "mce", "brier", "entropy")


def _data(rows=600, classes=12, dtype=np.float64, seed=0, ignored=True):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((rows, classes)) * 2.5).astype(dtype)
    t = rng.integers(0, classes, rows)
    # make the model right more often than chance, so calibration is not trivial
    hit = rng.random(rows) < 0.5
    x[hit, t[hit]] += 3
    if ignored:
        t[::9] = -100
    return x, t


def _softmax(x):
    z = np.asarray(x, np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def assert_same(got, want, rtol=1e-12):
    assert list(got) == list(want)
    for k in want:
        if isinstance(want[k], int):
            assert got[k] == want[k], k
            assert isinstance(got[k], int), k
        else:
            assert isinstance(got[k], float), k
            np.testing.assert_allclose(got[k], want[k], rtol=rtol, atol=rtol, err_msg=k)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_against_the_reference(dtype):
    x, t = _data(dtype=dtype)
    got = fastxent.score(x, t, topk=(1, 3, 5), n_bins=10)
    # per-row results are rounded to the result dtype (float32 below float64)
    # before they are summed, and the kernel forms float32 rows in float32: a
    # float32 ulp per row at most
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    assert_same(got, ref_score(x, t, topk=(1, 3, 5), n_bins=10), rtol=rtol)
    assert got["count"] == int((t != -100).sum())
    assert got["undefined"] == 0
    assert 0 < got["accuracy@1"] < got["accuracy@3"] < got["accuracy@5"] < 1
    assert got["perplexity"] == pytest.approx(math.exp(got["nll"]), rel=1e-15)
    assert got["bits_per_token"] == pytest.approx(got["nll"] / math.log(2), rel=1e-15)


def test_temperature_is_a_division_of_the_logits():
    x, t = _data()
    assert_same(fastxent.score(x, t, temperature=2.5), fastxent.score(x / 2.5, t))


def test_class_axis_1_and_unbatched():
    x, t = _data(rows=60)
    x3 = np.ascontiguousarray(x.reshape(20, 3, 12).transpose(0, 2, 1))   # (N, C, d)
    t3 = t.reshape(20, 3)
    assert_same(fastxent.score(x3, t3), fastxent.score(x, t))
    one = fastxent.score(x[1], t[1])
    assert_same(one, fastxent.score(x[1:2], t[1:2]))
    assert one["count"] == 1


def test_against_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    x, t = _data(classes=12, ignored=False)
    p = _softmax(x)
    got = fastxent.score(x, t, topk=(1, 2, 5))
    labels = np.arange(12)
    assert got["nll"] == pytest.approx(metrics.log_loss(t, p, labels=labels), rel=1e-12)
    for k in (1, 2, 5):
        # continuous logits: no ties, where scikit-learn's and our ranks could differ
        want = metrics.top_k_accuracy_score(t, p, k=k, labels=labels)
        assert got[f"accuracy@{k}"] == pytest.approx(want, rel=1e-15)
    # scikit-learn >= 1.7: multiclass Brier score sum_c (p_c - y_c)^2, not halved
    want = metrics.brier_score_loss(t, p, labels=labels, scale_by_half=False)
    assert got["brier"] == pytest.approx(want, rel=1e-12)


def test_brier_of_two_classes_is_twice_scikit_learns_default():
    metrics = pytest.importorskip("sklearn.metrics")
    x, t = _data(classes=2, ignored=False)
    p = _softmax(x)
    # for two classes scikit-learn's default halves the score (to [0, 1])
    assert fastxent.score(x, t)["brier"] == pytest.approx(
        2 * metrics.brier_score_loss(t, p[:, 1]), rel=1e-12)


def test_calibration_errors_against_torchmetrics():
    torch = pytest.importorskip("torch")
    cls = pytest.importorskip("torchmetrics.classification")
    x, t = _data(classes=12)
    for n_bins in (15, 7):
        got = fastxent.score(x, t, n_bins=n_bins)
        for norm, key in (("l1", "ece"), ("max", "mce")):
            m = cls.MulticlassCalibrationError(num_classes=12, n_bins=n_bins, norm=norm,
                                               ignore_index=-100)
            # torchmetrics takes the softmax of logits itself, and bins float32 confidences
            want = float(m(torch.from_numpy(x), torch.from_numpy(t)))
            assert got[key] == pytest.approx(want, rel=1e-5, abs=1e-6), (norm, n_bins)


def test_a_confidence_of_one_has_its_own_bin():
    torch = pytest.importorskip("torch")
    cls = pytest.importorskip("torchmetrics.classification")
    x, t = _data(rows=200, classes=5, ignored=False)
    x[:50] = 0.0
    x[:50, 0] = 1000.0            # softmax exactly one-hot: confidence 1
    t[:50:2] = 1                  # half of them wrong
    got = fastxent.score(x, t, n_bins=10)
    m = cls.MulticlassCalibrationError(num_classes=5, n_bins=10, norm="max")
    assert got["mce"] == pytest.approx(float(m(torch.from_numpy(x), torch.from_numpy(t))),
                                       rel=1e-5)
    s = fastxent.Scorer(n_bins=10).update(x, t)
    assert s.bin_count[10] >= 50
    assert got["mce"] >= 0.5 - 1e-12


def test_nll_and_perplexity_against_torch():
    torch = pytest.importorskip("torch")
    x, t = _data()
    got = fastxent.score(x, t)
    want = torch.nn.functional.cross_entropy(torch.from_numpy(x), torch.from_numpy(t),
                                             ignore_index=-100)
    assert got["nll"] == pytest.approx(float(want), rel=1e-12)
    text = pytest.importorskip("torchmetrics.text")
    ppl = text.Perplexity(ignore_index=-100)
    want = float(ppl(torch.from_numpy(x)[None], torch.from_numpy(t)[None]))
    assert got["perplexity"] == pytest.approx(want, rel=1e-6)


def test_entropy_against_scipy():
    stats = pytest.importorskip("scipy.stats")
    x, t = _data()
    keep = t != -100
    want = np.mean(stats.entropy(_softmax(x[keep]), axis=1))
    assert fastxent.score(x, t)["entropy"] == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_independent_of_chunks_and_merges(dtype, monkeypatch):
    x, t = _data(rows=1000, dtype=dtype)
    whole = fastxent.score(x, t, topk=(1, 5), n_bins=15)
    # update() splits arrays above CHUNK_BYTES into chunks of rows
    monkeypatch.setattr(_scorer, "CHUNK_BYTES", 7 * x.shape[1] * x.itemsize)
    assert_same(fastxent.score(x, t), whole)
    monkeypatch.undo()
    rng = np.random.default_rng(3)
    cuts = np.sort(rng.choice(np.arange(1, 1000), 6, replace=False))
    one = fastxent.Scorer()
    parts = []
    for a, b in zip([0, *cuts], [*cuts, 1000]):
        one.update(x[a:b], t[a:b])
        parts.append(fastxent.Scorer().update(x[a:b], t[a:b]))
    assert_same(one.result(), whole)
    merged = fastxent.Scorer()
    for s in reversed(parts):
        merged.merge(s)
    assert_same(merged.result(), whole)
    assert merged.count == one.count and merged.rank_counts == one.rank_counts
    assert merged.bin_count == one.bin_count and merged.bin_correct == one.bin_correct


def test_merge_needs_the_same_settings():
    a = fastxent.Scorer(topk=(1, 5))
    for other in (fastxent.Scorer(topk=(1,)), fastxent.Scorer(n_bins=10),
                  fastxent.Scorer(ignore_index=0), fastxent.Scorer(temperature=2.0)):
        with pytest.raises(ValueError, match="other settings"):
            a.merge(other)
    a.merge(fastxent.Scorer(topk=[5, 1, 1], n_threads=1))   # same settings, threads aside
    with pytest.raises(TypeError, match="Scorer"):
        a.merge({"count": 1})


def test_no_counted_row_gives_nan_without_error():
    x, t = _data(rows=10)
    for got in (fastxent.score(x, np.full(10, -100)), fastxent.score(np.empty((0, 5)),
                                                                     np.empty(0, np.int64)),
                fastxent.Scorer().result()):
        assert got["count"] == 0 and got["undefined"] == 0
        for k, v in got.items():
            if k not in ("count", "undefined"):
                assert math.isnan(v), k


def test_an_undefined_row_makes_the_metrics_nan():
    x, t = _data(rows=50, ignored=False)
    for bad in (np.nan, np.inf):
        y = x.copy()
        y[7, 3] = bad
        got = fastxent.score(y, t)
        assert got["count"] == 50 and got["undefined"] == 1
        assert all(math.isnan(v) for k, v in got.items() if k not in ("count", "undefined"))
        assert_same(got, ref_score(y, t))
        # the same row, ignored, counts in nothing
        u = t.copy()
        u[7] = -100
        assert_same(fastxent.score(y, u), fastxent.score(np.delete(x, 7, 0), np.delete(t, 7)))
    y = x.copy()
    y[4] = -np.inf
    assert fastxent.score(y, t)["undefined"] == 1
    # -inf entries in an otherwise finite row are fine
    y = x.copy()
    y[4, :5] = -np.inf
    t2 = t.copy()
    t2[4] = 6
    got = fastxent.score(y, t2)
    assert got["undefined"] == 0 and math.isfinite(got["nll"])


def test_ties_count_for_the_label():
    x = np.zeros((4, 3))
    t = np.array([0, 1, 2, 0])
    got = fastxent.score(x, t, topk=(1, 2))
    # every class ties at the max: rank 0, whichever the label
    assert got["accuracy@1"] == 1.0
    assert got["nll"] == pytest.approx(math.log(3), rel=1e-15)
    assert got["entropy"] == pytest.approx(math.log(3), rel=1e-15)
    # the calibration prediction is the first largest logit (class 0)
    assert got["ece"] == pytest.approx(abs(0.5 - 1 / 3), rel=1e-12)


def test_bfloat16_input():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x, t = _data(rows=100)
    xb = x.astype(ml_dtypes.bfloat16)
    # the bfloat16 and float32 kernels round the same per-row quantities to float32
    assert_same(fastxent.score(xb, t), fastxent.score(xb.astype(np.float32), t), rtol=1e-6)


def test_bad_labels_change_nothing(monkeypatch):
    x, t = _data(rows=100, ignored=False)
    s = fastxent.Scorer().update(x[:10], t[:10])
    before = s.result()
    bad = t.copy()
    bad[95] = 12
    monkeypatch.setattr(_scorer, "CHUNK_BYTES", 10 * x.shape[1] * x.itemsize)
    with pytest.raises(IndexError, match="target"):
        s.update(x, bad)
    assert_same(s.result(), before)
    with pytest.raises(ValueError, match="target has shape .* must have shape"):
        s.update(x, t[:-1])
    with pytest.raises(ValueError, match="target"):
        s.update(x, t[:, None])
    with pytest.raises(ValueError, match="input"):
        s.update(np.float64(1.0), 0)
    with pytest.raises(TypeError):
        s.update(x.astype(np.int64), t)
    assert_same(s.result(), before)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"topk": 0}, ValueError, "topk"),
    ({"topk": (1, -2)}, ValueError, "topk"),
    ({"topk": ()}, ValueError, "topk"),
    ({"topk": (1.5,)}, TypeError, "topk"),
    ({"topk": "15"}, TypeError, "topk"),
    ({"topk": True}, TypeError, "topk"),
    ({"topk": None}, TypeError, "topk"),
    ({"n_bins": 0}, ValueError, "n_bins"),
    ({"n_bins": 2.0}, TypeError, "n_bins"),
    ({"ignore_index": 1.0}, TypeError, "ignore_index"),
    ({"temperature": 0.0}, ValueError, "temperature"),
    ({"temperature": -1}, ValueError, "temperature"),
    ({"temperature": np.nan}, ValueError, "temperature"),
    ({"temperature": np.inf}, ValueError, "temperature"),
    ({"temperature": "1"}, TypeError, "temperature"),
    ({"n_threads": 0}, ValueError, "n_threads"),
    ({"n_threads": 1.5}, TypeError, "n_threads"),
])
def test_argument_checks_name_the_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        fastxent.Scorer(**kwargs)
    x, t = _data(rows=5)
    with pytest.raises(error, match=match):
        fastxent.score(x, t, **kwargs)


def test_topk_forms():
    x, t = _data(rows=50)
    assert_same(fastxent.score(x, t, topk=3), fastxent.score(x, t, topk=[3, 3]))
    assert [k for k in fastxent.score(x, t, topk=(5, 1, 2)) if k.startswith("acc")] == [
        "accuracy@1", "accuracy@2", "accuracy@5"]
    # k beyond the classes: every defined counted row is a hit
    assert fastxent.score(x, t, topk=(20,))["accuracy@20"] == 1.0


def test_a_scorer_pickles_for_merging_across_processes():
    import pickle

    x, t = _data(rows=300)
    a = fastxent.Scorer(topk=(1, 2)).update(x[:100], t[:100])
    b = pickle.loads(pickle.dumps(fastxent.Scorer(topk=(1, 2)).update(x[100:], t[100:])))
    assert_same(a.merge(b).result(), fastxent.score(x, t, topk=(1, 2)))


def test_state_attributes_are_python_numbers_and_a_copy():
    # the running state lives in two arrays the kernel adds into; its
    # attributes read it as Python numbers (lists of ints) and a copied array
    from fastxent._score_rows import _score_state

    x, t = _data(rows=50)
    s = fastxent.Scorer(topk=(1, 3), n_bins=4).update(x, t)
    st = _score_state(x, t, max_rank=3, n_bins=4)
    assert type(s.count) is int and type(s.undefined) is int and type(s.nll_sum) is float
    assert all(type(v) is int for v in s.rank_counts + s.bin_count + s.bin_correct)
    assert (s.count, s.undefined) == (st["count"], st["undefined"])
    assert (s.nll_sum, s.entropy_sum, s.brier_sum) == (st["nll_sum"], st["entropy_sum"],
                                                      st["brier_sum"])
    assert s.rank_counts == st["rank_counts"].tolist()
    assert s.bin_count == st["bin_count"].tolist() and s.bin_correct == st["bin_correct"].tolist()
    np.testing.assert_array_equal(s.bin_confidence_sum, st["bin_confidence_sum"])
    s.bin_confidence_sum[:] = -1.0
    np.testing.assert_array_equal(s.bin_confidence_sum, st["bin_confidence_sum"])
    # merging a scorer with itself doubles every sum
    s.merge(s)
    assert s.count == 2 * st["count"] and s.rank_counts == (2 * st["rank_counts"]).tolist()
    assert s.nll_sum == 2 * st["nll_sum"]
    assert s.reset().count == 0 and s.rank_counts == [0, 0, 0] and s.bin_count == [0] * 5


def test_a_bad_label_in_a_single_chunk_changes_nothing():
    # one chunk: the kernel checks every label before it adds anything
    x, t = _data(rows=100, ignored=False)
    s = fastxent.Scorer().update(x[:10], t[:10])
    before = (s.count, s.rank_counts, s.bin_count, s.bin_correct, s.nll_sum,
              s.bin_confidence_sum.tolist())
    for k in (0, 50, 99):
        bad = t.copy()
        bad[k] = -5
        with pytest.raises(IndexError, match="target -5"):
            s.update(x, bad)
        assert (s.count, s.rank_counts, s.bin_count, s.bin_correct, s.nll_sum,
                s.bin_confidence_sum.tolist()) == before


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ldtype", [np.int64, np.int32, np.uint16])
def test_the_first_bad_label_is_named_whatever_the_blocks(dtype, ldtype):
    # the sums check each label where its row is read, block by block on
    # every thread: the error still names the first bad row's label
    x, t = _data(rows=5000, dtype=dtype, ignored=False)
    t = t.astype(ldtype)
    s = fastxent.Scorer().update(x[:10], t[:10])
    before = (s.count, s.rank_counts, s.bin_count, s.nll_sum)
    ignore = -100 if np.issubdtype(ldtype, np.signedinteger) else 60000
    for first, later in [(40, 4900), (1000, 1010), (4999, None)]:
        bad = t.copy()
        bad[first] = 100
        if later is not None:
            bad[later] = 200
            bad[first + 1:later:7] = ignore   # ignored rows between count in nothing
        for n_threads in (1, 2):
            with pytest.raises(IndexError, match="target 100 "):
                fastxent.score(x, bad, ignore_index=ignore, n_threads=n_threads)
            with pytest.raises(IndexError, match="target 100 "):
                s.update(x, bad)
        assert (s.count, s.rank_counts, s.bin_count, s.nll_sum) == before


def test_a_copy_has_its_own_sums():
    import copy

    x, t = _data(rows=40)
    s = fastxent.Scorer().update(x, t)
    for c in (copy.copy(s), copy.deepcopy(s)):
        s2 = fastxent.Scorer().update(x, t)
        c.update(x, t)
        assert c.count == 2 * s.count and s.count == s2.count
        assert_same(s.result(), s2.result())


def test_an_unpickled_scorer_owns_aligned_writeable_sums():
    import pickle

    x, t = _data(rows=40)
    s = fastxent.Scorer().update(x, t)
    buffers = []
    data = pickle.dumps(s, protocol=5, buffer_callback=buffers.append)
    # out-of-band buffers at an odd address, read-only: the state is copied
    raw = [bytes(1) + bytes(b.raw()) for b in buffers]
    views = [memoryview(r)[1:] for r in raw]
    back = pickle.loads(data, buffers=views)
    back.update(x, t)
    assert back.count == 2 * s.count and back._f.flags.aligned and back._c.flags.writeable


def test_a_scorer_pickled_with_its_sums_as_attributes_loads():
    # the state of a scorer of fastxent 0.1.0 before its sums were arrays
    x, t = _data(rows=40)
    s = fastxent.Scorer(topk=(1, 3), n_bins=4).update(x, t)
    old = {"topk": s.topk, "n_bins": s.n_bins, "ignore_index": s.ignore_index,
           "temperature": s.temperature, "n_threads": s.n_threads, "count": s.count,
           "undefined": s.undefined, "nll_sum": s.nll_sum, "entropy_sum": s.entropy_sum,
           "brier_sum": s.brier_sum, "rank_counts": s.rank_counts, "bin_count": s.bin_count,
           "bin_correct": s.bin_correct, "bin_confidence_sum": s.bin_confidence_sum}
    back = fastxent.Scorer.__new__(fastxent.Scorer)
    back.__setstate__(old)
    assert back.result() == s.result()
    assert back.update(x, t).count == 2 * s.count


def _metrics_in_python(s):
    """Scorer `s`'s metrics from its sums by the formulas of its docstring,
    in Python floats: the ece an exactly rounded sum (math.fsum), mce the
    first largest gap; every ratio of integers exact (counts below 2**53)."""
    n, undefined = s.count, s.undefined
    out = {"count": n, "undefined": undefined}
    nan = math.nan
    if n == 0 or undefined:
        for name in _scorer.metric_names(s.topk)[2:]:
            out[name] = nan
        return out
    nll = s.nll_sum / n
    out.update(nll=nll, perplexity=math.exp(nll), bits_per_token=nll / math.log(2.0))
    for k in s.topk:
        out[f"accuracy@{k}"] = sum(s.rank_counts[:k]) / n
    binned = sum(s.bin_count)
    gaps = [(abs(correct / count - conf / count), count) for count, correct, conf
            in zip(s.bin_count, s.bin_correct, s.bin_confidence_sum.tolist()) if count > 0]
    out["ece"] = math.fsum(gap * (count / binned) for gap, count in gaps)
    out["mce"] = max(gap for gap, _ in gaps)
    out.update(brier=s.brier_sum / n, entropy=s.entropy_sum / n)
    return out


def _assert_bits(got, want):
    assert list(got) == list(want)
    for k in want:
        assert type(got[k]) is type(want[k]), k
        assert got[k] == want[k] or (math.isnan(got[k]) and math.isnan(want[k])), \
            (k, got[k], want[k])


@pytest.mark.parametrize("path", fastxent.get_config()["cpu_paths"])
def test_result_is_the_formulas_of_the_sums_bit_for_bit(path):
    """result() and score() form the metrics in C: the bits of the formulas
    in Python floats (math.fsum for the ece) on sums of real chunks and on
    made-up sums whose bins' terms span many magnitudes (where a plain sum
    of the terms rounds differently, so an inexact sum would fail)."""
    rng = np.random.default_rng(11)
    with fastxent.cpu_path(path):
        for trial in range(60):
            rows, classes = int(rng.integers(1, 300)), int(rng.integers(1, 40))
            x, t = _data(rows=rows, classes=classes, seed=trial, ignored=trial % 2 == 0)
            if trial % 10 == 3:
                x[0, 0] = np.nan   # an undefined row
            topk = tuple(int(k) for k in rng.choice(np.arange(1, 9), int(rng.integers(1, 4)),
                                                     replace=False))
            n_bins = int(rng.choice([1, 2, 7, 15, 63, 64, 200]))
            s = fastxent.Scorer(topk=topk, n_bins=n_bins).update(x, t)
            _assert_bits(s.result(), _metrics_in_python(s))
            _assert_bits(fastxent.score(x, t, topk=topk, n_bins=n_bins), s.result())
        # made-up sums: bins of counts from 1 to 2**50 (below 2**53: every
        # ratio of counts correctly rounded in C as in Python), so the
        # weighted gaps differ by up to 15 orders of magnitude
        inexact = 0
        for trial in range(300):
            n_bins = int(rng.choice([3, 15, 100]))
            s = fastxent.Scorer(topk=(1, 2), n_bins=n_bins)
            nb = n_bins + 1
            count = (2 ** rng.uniform(0, 50, nb)).astype(np.int64) * (rng.random(nb) < 0.8)
            correct = (count * rng.random(nb)).astype(np.int64)
            conf = count * rng.random(nb)
            c = np.concatenate([[count.sum(), 0], [count.sum() // 3, count.sum() // 5],
                                count, correct])
            f = np.concatenate([rng.random(3) * count.sum(), conf])
            s._c[:], s._f[:] = c, f
            want = _metrics_in_python(s)
            _assert_bits(s.result(), want)
            gaps = [abs(a / n - b / n) * (n / count.sum())
                    for n, a, b in zip(count.tolist(), correct.tolist(), conf.tolist()) if n]
            inexact += sum(gaps) != want["ece"]
        assert inexact > 10   # the sums where a plain sum is not exactly rounded


def test_many_ks_and_huge_settings():
    # more ks than the metrics' stack holds (16): the heap path, the same bits
    x, t = _data(rows=300, classes=40)
    topk = tuple(range(1, 41, 2))
    s = fastxent.Scorer(topk=topk).update(x, t)
    _assert_bits(s.result(), _metrics_in_python(s))
    _assert_bits(fastxent.score(x, t, topk=topk), s.result())
    # sizes whose per-block slots would overflow: an error, not a crash
    for kwargs, match in (({"n_bins": 2**62}, "n_bins"), ({"n_bins": 2**63 - 1}, "n_bins"),
                          ({"topk": (1, 2**62)}, "topk"), ({"topk": 2**61 + 2**60}, "topk")):
        with pytest.raises(ValueError, match=match):
            fastxent.score(x, t, **kwargs)
        with pytest.raises((ValueError, MemoryError)):
            fastxent.Scorer(**kwargs).update(x, t)


def test_settings_beyond_the_kernels_bound_or_memory_name_the_argument():
    """n_bins and max(topk) above 2**40 (the kernels' bound) are a ValueError
    naming the argument, not an OverflowError from the conversion to C; sums
    too large to allocate are a MemoryError naming n_bins and topk and the
    size asked, in score, in a Scorer and in the command-line scorer."""
    x, t = _data(rows=20, classes=5)
    for kwargs, match in (({"n_bins": 2**40 + 1}, "n_bins: expected 1 to"),
                          ({"n_bins": 2**70}, "n_bins: expected 1 to"),
                          ({"n_bins": np.uint64(2**63)}, "n_bins: expected 1 to"),
                          ({"topk": (1, 2**70)}, "topk: at most"),
                          ({"topk": 2**40 + 1}, "topk: at most")):
        with pytest.raises(ValueError, match=match):
            fastxent.score(x, t, **kwargs)
        with pytest.raises(ValueError, match=match):
            fastxent.Scorer(**kwargs)
    try:
        with open("/proc/sys/vm/overcommit_memory") as f:
            overcommit_always = f.read().strip() == "1"
    except OSError:
        overcommit_always = False
    if overcommit_always:
        pytest.skip("with vm.overcommit_memory = 1 an allocation of terabytes may succeed")
    # 2**40 bins or ranks: 8-24 TiB of sums, more than any machine's memory and swap
    for kwargs in ({"n_bins": 2**40}, {"topk": (1, 2**40)}):
        with pytest.raises(MemoryError, match="n_bins, topk: out of memory .* GiB"):
            fastxent.score(x, t, **kwargs)
        with pytest.raises(MemoryError, match="n_bins, topk: out of memory .* GiB"):
            fastxent.Scorer(**kwargs)


def test_metrics_need_state_arrays_of_the_settings():
    s = fastxent.Scorer(topk=(1, 3), n_bins=4)
    kernel = fastxent._dispatch.active
    spec = _scorer._spec((1, 3))
    for f, c in ((s._f[:-1], s._c), (s._f, s._c.astype(np.int32)), (s._f.astype(">f8"), s._c),
                 (list(s._f), s._c)):
        with pytest.raises(ValueError, match="sums"):
            kernel.score_metrics(f, c, 3, 4, *spec)
    # a k beyond the sums' ranks is refused, not read past them
    with pytest.raises(ValueError, match="topk"):
        kernel.score_metrics(s._f, s._c, 3, 4, *_scorer._spec((1, 4)))


def test_chunked_input_checks_the_whole_target_shape(monkeypatch):
    # rows a whole number of chunks and a target longer than them: refused
    # (a chunk at a time would never see the extra labels)
    x, t = _data(rows=100, ignored=False)
    monkeypatch.setattr(_scorer, "CHUNK_BYTES", 10 * x.shape[1] * x.itemsize)
    longer = np.concatenate([t, t[:10]])
    for call in (lambda: fastxent.score(x, longer), lambda: fastxent.Scorer().update(x, longer)):
        with pytest.raises(ValueError, match=r"target has shape \(110,\).* must have shape \(100,\)"):
            call()
    monkeypatch.undo()
    # the same message without chunks
    with pytest.raises(ValueError, match=r"target has shape \(110,\).* must have shape \(100,\)"):
        fastxent.score(x, longer)
