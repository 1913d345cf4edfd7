"""The public functions on Dask arrays: lazy, and equal to the NumPy call
for any chunking, including chunks along the reduced axes."""
import subprocess
import sys

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402

import fastxent  # noqa: E402
from fastxent import _dask  # noqa: E402

RTOL = {np.dtype(np.float64): 1e-13, np.dtype(np.float32): 2e-6}
# fewer examples than the default profile (each builds and computes Dask
# graphs); the thorough profile's many
SMALL = settings(max_examples=40 if settings.default.max_examples <= 60
                 else settings.default.max_examples, deadline=None)


def check(lazy, expected, dtype=None):
    """`lazy` is a Dask array of the expected dtype and shape, and computes
    to `expected` (NaN where it is NaN)."""
    assert isinstance(lazy, da.Array)
    expected = np.asarray(expected)
    assert lazy.dtype == expected.dtype
    assert lazy.shape == expected.shape
    got = lazy.compute(scheduler="sync")
    assert got.dtype == expected.dtype and got.shape == expected.shape
    rtol = RTOL.get(expected.dtype, 1e-13)
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol, equal_nan=True)


@st.composite
def chunked(draw, min_ndim=1, max_ndim=3, min_len=0, dtypes=(np.float64, np.float32)):
    """A NumPy array and chunks for it: any chunk size along any axis."""
    ndim = draw(st.integers(min_ndim, max_ndim))
    shape = tuple(draw(st.lists(st.integers(min_len, 6), min_size=ndim, max_size=ndim)))
    chunks = tuple(draw(st.integers(1, max(n, 1))) for n in shape)
    seed = draw(st.integers(0, 2**32 - 1))
    dtype = draw(st.sampled_from(dtypes))
    scale = draw(st.sampled_from([1.0, 30.0]))
    x = (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)
    return x, chunks


def axes_of(draw, ndim):
    kind = draw(st.sampled_from(["none", "int", "tuple"]))
    if kind == "none" or ndim == 0:
        return None
    if kind == "int":
        return draw(st.integers(-ndim, ndim - 1))
    return tuple(draw(st.sets(st.integers(0, ndim - 1), min_size=1, max_size=ndim)))


def test_importing_fastxent_does_not_import_dask():
    code = "import sys, fastxent; assert 'dask' not in sys.modules, 'dask imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd="/")


def test_is_dask_array():
    assert _dask.is_dask_array(da.zeros(3))
    assert not _dask.is_dask_array(np.zeros(3))
    assert not _dask.is_dask_array([1.0])


@SMALL
@given(data=st.data())
def test_logsumexp(data):
    x, chunks = data.draw(chunked(min_ndim=0))
    axis = axes_of(data.draw, x.ndim)
    keepdims = data.draw(st.booleans())
    d = da.from_array(x, chunks=chunks)
    check(fastxent.logsumexp(d, axis=axis, keepdims=keepdims),
          fastxent.logsumexp(x, axis=axis, keepdims=keepdims))


@SMALL
@given(data=st.data())
def test_logsumexp_weights_and_sign(data):
    x, chunks = data.draw(chunked(min_len=1))
    axis = axes_of(data.draw, x.ndim)
    signed = data.draw(st.booleans())
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    b = rng.uniform(-1.0 if signed else 0.0, 2.0, x.shape[-1:]).astype(x.dtype)
    b[rng.random(b.shape) < 0.2] = 0.0
    d = da.from_array(x, chunks=chunks)
    db = da.from_array(b, chunks=chunks[-1:])
    res, sgn = fastxent.logsumexp(d, axis=axis, b=db, return_sign=True)
    want_res, want_sgn = fastxent.logsumexp(x, axis=axis, b=b, return_sign=True)
    check(sgn, want_sgn)
    # a sum that cancels between blocks is as accurate as its terms
    scale = np.abs(np.ravel(fastxent.logsumexp(x, axis=axis, b=np.abs(b))))
    scale = np.max(scale[np.isfinite(scale)], initial=0.0)
    got = res.compute()
    np.testing.assert_allclose(got, want_res, rtol=RTOL[x.dtype],
                               atol=RTOL[x.dtype] * (1 + scale), equal_nan=True)
    if not signed:
        check(fastxent.logsumexp(d, axis=axis, b=db), fastxent.logsumexp(x, axis=axis, b=b))


def test_logsumexp_python_number_weight_keeps_float32():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    check(fastxent.logsumexp(da.from_array(x, chunks=1), axis=1, b=2.5),
          fastxent.logsumexp(x, axis=1, b=2.5))


@SMALL
@given(data=st.data())
def test_softmax_and_log_softmax(data):
    x, chunks = data.draw(chunked(min_len=1))
    axis = axes_of(data.draw, x.ndim)
    d = da.from_array(x, chunks=chunks)
    for fn in (fastxent.softmax, fastxent.log_softmax):
        check(fn(d, axis=axis), fn(x, axis=axis))


@SMALL
@given(data=st.data())
def test_softmax_entropies(data):
    x, chunks = data.draw(chunked(min_len=1))
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    y = (x[..., ::-1] * 0.5 + 1.0).astype(x.dtype)
    d, e = da.from_array(x, chunks=chunks), da.from_array(y, chunks=chunks)
    check(fastxent.softmax_entropy(d, axis=axis), fastxent.softmax_entropy(x, axis=axis))
    check(fastxent.softmax_cross_entropy(d, e, axis=axis),
          fastxent.softmax_cross_entropy(x, y, axis=axis))
    # the KL divergence is accurate to ulps of |x| / S in absolute terms
    got = fastxent.softmax_kl_div(d, e, axis=axis)
    want = fastxent.softmax_kl_div(x, y, axis=axis)
    assert got.dtype == want.dtype and got.shape == np.shape(want)
    tol = RTOL[x.dtype] * (1 + np.max(np.abs(x)) + np.max(np.abs(y)))
    np.testing.assert_allclose(got.compute(), want, rtol=RTOL[x.dtype], atol=tol)


@SMALL
@given(data=st.data())
def test_entropy(data):
    x, chunks = data.draw(chunked(min_len=1))
    p = np.abs(x)
    q = np.abs(x[..., ::-1]) + 0.1
    axis = data.draw(st.one_of(st.none(), st.integers(-x.ndim, x.ndim - 1)))
    base = data.draw(st.sampled_from([None, 2.0]))
    dp, dq = da.from_array(p, chunks=chunks), da.from_array(q, chunks=chunks)
    check(fastxent.entropy(dp, axis=axis, base=base), fastxent.entropy(p, axis=axis, base=base))
    check(fastxent.entropy(dp, dq, axis=axis, base=base),
          fastxent.entropy(p, q, axis=axis, base=base))


INF, NAN = np.inf, np.nan
SPECIAL_ROWS = np.array([
    [0.0, 1.0, -INF, -INF, 2.0, 3.0],       # a block of only -inf
    [-INF, -INF, -INF, -INF, -INF, -INF],   # only -inf
    [0.0, 1.0, 2.0, INF, 0.0, 1.0],         # +inf
    [0.0, 1.0, NAN, 3.0, 0.0, 1.0],         # NaN
    [700.0, -700.0, 1.0, 2.0, 700.0, 3.0],  # the maximum in two blocks
    [0.0, -40.0, -40.0, -40.0, -40.0, -50.0],  # a result near 0
])


@pytest.mark.parametrize("chunk", [1, 2, 4])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_special_values_across_blocks(chunk, dtype):
    x = SPECIAL_ROWS.astype(dtype)
    y = x[:, ::-1].copy()
    d, e = da.from_array(x, chunks=(2, chunk)), da.from_array(y, chunks=(2, chunk))
    with np.errstate(all="ignore"):
        for fn in (fastxent.logsumexp, fastxent.softmax, fastxent.log_softmax,
                   fastxent.softmax_entropy):
            check(fn(d, axis=1), fn(x, axis=1))
        check(fastxent.logsumexp(d, axis=1, return_sign=True)[1],
              fastxent.logsumexp(x, axis=1, return_sign=True)[1])
        for fn in (fastxent.softmax_cross_entropy, fastxent.softmax_kl_div):
            check(fn(d, e, axis=1), fn(x, y, axis=1))
        p = np.abs(np.nan_to_num(x, posinf=INF, neginf=0.0))
        check(fastxent.entropy(da.from_array(p, chunks=(2, chunk)), axis=1),
              fastxent.entropy(p, axis=1))


def test_results_are_lazy_with_dtype_and_shape():
    calls = []

    def block(x):
        if x.size:   # not dask's look at a 0-size meta array
            calls.append(1)
        return x

    x = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    d = da.from_array(x, chunks=(2, 3)).map_blocks(block, dtype=np.float32)
    results = [fastxent.logsumexp(d, axis=1), fastxent.softmax(d, axis=1),
               fastxent.log_softmax(d, axis=(0, 1)), fastxent.softmax_entropy(d),
               fastxent.softmax_cross_entropy(d, d), fastxent.softmax_kl_div(d, d),
               fastxent.entropy(abs(d), axis=1), fastxent.logsumexp(d, b=d, return_sign=True)[1]]
    assert not calls
    for res in results:
        assert isinstance(res, da.Array)
    assert results[0].dtype == np.float32 and results[0].shape == (4,)
    assert results[1].shape == (4, 6) and results[3].shape == (4,)
    assert results[2].dtype == np.float32
    assert fastxent.logsumexp(d.astype(np.int64), axis=0).dtype == np.float64
    assert fastxent.softmax(d.astype(np.int16), axis=0).dtype == np.float32


def test_errors_are_those_of_the_numpy_path():
    d = da.zeros((2, 3), chunks=1)
    with pytest.raises(np.exceptions.AxisError):
        fastxent.logsumexp(d, axis=2)
    with pytest.raises(ValueError, match="zero-size"):
        fastxent.softmax(da.zeros((2, 0)), axis=1)
    with pytest.raises(TypeError, match="bool"):
        fastxent.softmax(d.astype(bool))
    with pytest.raises(TypeError, match="Dask"):
        fastxent.logsumexp(d, out=np.empty(()))


def test_empty_logsumexp():
    x = np.zeros((0, 3))
    d = da.from_array(x, chunks=(1, 1))
    check(fastxent.logsumexp(d, axis=0), fastxent.logsumexp(x, axis=0))
    check(fastxent.logsumexp(d, axis=0, return_sign=True)[1],
          fastxent.logsumexp(x, axis=0, return_sign=True)[1])


def test_threaded_scheduler():
    x = np.random.default_rng(1).standard_normal((40, 30))
    d = da.from_array(x, chunks=(10, 7))
    got = fastxent.softmax(d, axis=1).compute(scheduler="threads")
    np.testing.assert_allclose(got, fastxent.softmax(x, axis=1), rtol=1e-13)


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as c:
        yield c


def test_distributed_cluster(client):
    x = np.random.default_rng(2).standard_normal((30, 20))
    d = da.from_array(x, chunks=(10, 6))
    lse, sm = dask.compute(fastxent.logsumexp(d, axis=1), fastxent.log_softmax(d, axis=1),
                           scheduler=client)
    np.testing.assert_allclose(lse, fastxent.logsumexp(x, axis=1), rtol=1e-13)
    np.testing.assert_allclose(sm, fastxent.log_softmax(x, axis=1), rtol=1e-13)


@st.composite
def logits_and_labels(draw):
    """(N, C) or (N, C, d) logits, class-index and probability targets and
    chunks, the class axis split anyhow."""
    dims = draw(st.sampled_from([1, 2, 3]))
    shape = tuple(draw(st.integers(1, 5)) for _ in range(dims))
    ca = 1 if dims > 1 else 0
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    C = shape[ca]
    batch = shape[:ca] + shape[ca + 1:]
    labels = rng.integers(0, C, batch)
    if draw(st.booleans()):
        labels = np.where(rng.random(batch) < 0.3, -100, labels)
    q = rng.random(shape).astype(dtype)
    chunks = tuple(draw(st.integers(1, n)) for n in shape)
    weight = rng.uniform(0.1, 2.0, C) if draw(st.booleans()) else None
    return x, labels, q, chunks, ca, weight


@SMALL
@given(case=logits_and_labels(), reduction=st.sampled_from(["none", "mean", "sum"]),
       smoothing=st.sampled_from([0.0, 0.2]))
def test_cross_entropy_and_nll_loss(case, reduction, smoothing):
    x, labels, q, chunks, ca, w = case
    d = da.from_array(x, chunks=chunks)
    t_chunks = chunks[:ca] + chunks[ca + 1:]
    dl = da.from_array(labels, chunks=t_chunks) if labels.ndim else da.from_array(labels)
    kw = dict(weight=w, reduction=reduction, label_smoothing=smoothing)
    check(fastxent.cross_entropy(d, dl, **kw), fastxent.cross_entropy(x, labels, **kw))
    check(fastxent.cross_entropy(d, da.from_array(q, chunks=chunks), **kw),
          fastxent.cross_entropy(x, q, **kw))
    check(fastxent.nll_loss(d, dl, weight=w, reduction=reduction),
          fastxent.nll_loss(x, labels, weight=w, reduction=reduction))


@pytest.mark.parametrize("chunk", [1, 2, 4])
def test_cross_entropy_special_values_across_blocks(chunk):
    x = SPECIAL_ROWS
    labels = np.array([2, 0, 1, 1, 4, 0])
    d = da.from_array(x, chunks=(2, chunk))
    with np.errstate(all="ignore"):
        for reduction in ("none", "sum"):
            check(fastxent.cross_entropy(d, labels, reduction=reduction),
                  fastxent.cross_entropy(x, labels, reduction=reduction))
            check(fastxent.nll_loss(d, labels, reduction=reduction),
                  fastxent.nll_loss(x, labels, reduction=reduction))
    ignored = np.array([-100] * 6)
    check(fastxent.cross_entropy(d, ignored), fastxent.cross_entropy(x, ignored))  # NaN


def test_bad_label_raises_at_compute():
    d = da.from_array(np.zeros((3, 4)), chunks=2)
    loss = fastxent.cross_entropy(d, np.array([0, 4, 1]))
    with pytest.raises(IndexError, match="Target 4 is out of bounds"):
        loss.compute()
    with pytest.raises(IndexError, match="Target 4 is out of bounds"):
        fastxent.nll_loss(d, np.array([0, 4, 1])).compute()


@pytest.mark.parametrize("label_dtype", [np.uint64, np.uint8, np.int32, np.int64])
def test_labels_of_any_integer_dtype_across_class_blocks(label_dtype):
    """Labels of every integer dtype, uint64 included (whose difference with
    an int64 class offset NumPy forms in float64), with the class axis in
    blocks: the in-memory results, and a uint64 label beyond int64 named."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((12, 7))
    t = rng.integers(0, 7, 12).astype(label_dtype)
    for chunks in ((5, 7), (5, 3), (12, 2)):
        d = da.from_array(x, chunks=chunks)
        for smoothing in (0.0, 0.1):
            check(fastxent.cross_entropy(d, t, label_smoothing=smoothing),
                  fastxent.cross_entropy(x, t, label_smoothing=smoothing))
        check(fastxent.nll_loss(d, t), fastxent.nll_loss(x, t))
        _check_metrics(fastxent.score(d, t, topk=(1, 3)), fastxent.score(x, t, topk=(1, 3)))
    if label_dtype is np.uint64:
        t[4] = 2**63 + 5
        d = da.from_array(x, chunks=(5, 3))
        with pytest.raises(IndexError, match=str(2**63 + 5)):
            fastxent.cross_entropy(d, t).compute()
        with pytest.raises(IndexError, match=str(2**63 + 5)):
            fastxent.score(d, t)


@SMALL
@given(data=st.data(), reduction=st.sampled_from(["none", "mean", "sum", "batchmean"]))
def test_elementwise_losses(data, reduction):
    x, chunks = data.draw(chunked(min_len=1))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    t = rng.random(x.shape).astype(x.dtype)
    d, dt = da.from_array(x, chunks=chunks), da.from_array(t, chunks=chunks)
    check(fastxent.kl_div(d, dt, reduction=reduction), fastxent.kl_div(x, t, reduction=reduction))
    if reduction != "batchmean":
        w = rng.random(x.shape[-1:]).astype(x.dtype)
        check(fastxent.binary_cross_entropy_with_logits(d, dt, reduction=reduction,
                                                        pos_weight=w),
              fastxent.binary_cross_entropy_with_logits(x, t, reduction=reduction,
                                                        pos_weight=w))


def test_entropy_broadcasts_before_flattening():
    p = np.arange(1.0, 13.0).reshape(3, 4)
    q = np.array([1.0, 2.0, 3.0, 4.0])
    dp, dq = da.from_array(p, chunks=2), da.from_array(q, chunks=3)
    check(fastxent.entropy(dp, dq, axis=None), fastxent.entropy(p, q, axis=None))
    check(fastxent.entropy(dp, dq, axis=0), fastxent.entropy(p, q, axis=0))


def test_softmax_keeps_the_chunks_and_empty_rows():
    x = np.random.default_rng(3).standard_normal((5, 7))
    d = da.from_array(x, chunks=(2, 3))
    assert fastxent.softmax(d, axis=1).chunks == d.chunks
    assert fastxent.log_softmax(d, axis=(0, 1)).chunks == d.chunks
    e = da.from_array(np.zeros((0, 4)), chunks=(1, 2))
    check(fastxent.softmax(e, axis=1), fastxent.softmax(np.zeros((0, 4)), axis=1))
    check(fastxent.softmax_entropy(e, axis=1), fastxent.softmax_entropy(np.zeros((0, 4)), axis=1))


@pytest.mark.parametrize("chunk", [1, 2, 4])
def test_cross_entropy_zero_weights_and_smoothing_at_neg_inf(chunk):
    x = np.array([[0.0, -INF, 1.0, 2.0, -INF, 0.5],
                  [-INF, -INF, 3.0, -INF, -INF, -INF],
                  [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]])
    w = np.array([1.0, 0.0, 2.0, 0.5, 0.0, 1.0])
    labels = np.array([0, 2, -100])
    d = da.from_array(x, chunks=(2, chunk))
    with np.errstate(all="ignore"):
        for kw in (dict(weight=w), dict(weight=w, label_smoothing=0.1), dict(label_smoothing=0.1)):
            for reduction in ("none", "mean"):
                check(fastxent.cross_entropy(d, labels, reduction=reduction, **kw),
                      fastxent.cross_entropy(x, labels, reduction=reduction, **kw))
            q = np.where(np.isinf(x), 0.0, 1.0 / 6)
            check(fastxent.cross_entropy(d, da.from_array(q, chunks=(2, chunk)), **kw),
                  fastxent.cross_entropy(x, q, **kw))


@pytest.mark.parametrize("w", [[1.0, -1.0], [0.0, 0.0], [0.0, 1.0]], ids=str)
@pytest.mark.parametrize("ls", [0.0, 0.2, 1.0])
def test_cross_entropy_mean_over_a_zero_weight_sum(w, ls):
    """'mean' over target weights that sum to 0 (+-inf or NaN, PyTorch's
    division of the label and smoothing terms apart) as the NumPy path."""
    x = np.array([[-1.0, 1.0], [2.0, -3.0], [0.5, 0.1]])
    t = np.array([0, 1, -100])
    w = np.array(w)
    for dtype in (np.float64, np.float16):
        xd = x.astype(dtype)
        check(fastxent.cross_entropy(da.from_array(xd, chunks=(1, 1)), t,
                                     weight=w.astype(dtype), label_smoothing=ls),
              fastxent.cross_entropy(xd, t, weight=w.astype(dtype), label_smoothing=ls))


def test_losses_are_lazy_and_take_n_threads():
    x = np.random.default_rng(4).standard_normal((4, 6))
    labels = np.array([0, 5, 2, 3])
    d = da.from_array(x, chunks=(2, 3))
    results = [fastxent.cross_entropy(d, labels, n_threads=2),
               fastxent.nll_loss(d, labels, reduction="none"),
               fastxent.kl_div(d, abs(d), reduction="batchmean"),
               fastxent.binary_cross_entropy_with_logits(d, abs(d) / 3, reduction="sum"),
               fastxent.softmax(d, axis=0, n_threads=2)]
    for res in results:
        assert isinstance(res, da.Array)
    assert [r.shape for r in results] == [(), (4,), (), (), (4, 6)]
    check(results[0], fastxent.cross_entropy(x, labels))
    check(results[4], fastxent.softmax(x, axis=0))
    with pytest.raises(TypeError, match="Dask"):
        fastxent.cross_entropy(d, labels, return_grad=True)


@st.composite
def sprinkled(draw):
    """A 2-d float64 array with -inf, +inf and NaN here and there (whole
    rows and runs of blocks of -inf too), and its chunks."""
    rows, cols = draw(st.integers(1, 5)), draw(st.integers(1, 9))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((rows, cols)) * 4
    u = rng.random((rows, cols))
    x[u < draw(st.sampled_from([0.0, 0.3, 0.7]))] = -INF
    x[u > draw(st.sampled_from([1.0, 0.97]))] = INF
    x[(u > 0.5) & (u < draw(st.sampled_from([0.5, 0.52])))] = NAN
    return x, (draw(st.integers(1, rows)), draw(st.integers(1, cols)))


@SMALL
@given(case=sprinkled(), other=sprinkled(), smoothing=st.sampled_from([0.0, 0.3]))
def test_special_values_anywhere(case, other, smoothing):
    x, chunks = case
    y = np.resize(other[0], x.shape)
    d, e = da.from_array(x, chunks=chunks), da.from_array(y, chunks=chunks)
    labels = np.arange(x.shape[0]) % x.shape[1]
    with np.errstate(all="ignore"):
        for fn in (fastxent.logsumexp, fastxent.softmax, fastxent.log_softmax,
                   fastxent.softmax_entropy):
            check(fn(d, axis=1), fn(x, axis=1))
        for fn in (fastxent.softmax_cross_entropy, fastxent.softmax_kl_div):
            check(fn(d, e, axis=1), fn(x, y, axis=1))
        check(fastxent.cross_entropy(d, labels, reduction="none", label_smoothing=smoothing),
              fastxent.cross_entropy(x, labels, reduction="none", label_smoothing=smoothing))
        check(fastxent.nll_loss(d, labels, reduction="none"),
              fastxent.nll_loss(x, labels, reduction="none"))


def test_blocks_of_only_neg_inf_merged_first_add_nothing():
    # a one-hot p row against a q row with -inf where p is -inf: the blocks
    # of -inf p merge among themselves before they meet the finite one
    x = np.array([[-INF, -1.3, -INF, -INF, -INF, -INF, -INF, -INF, -INF]])
    y = np.array([[-INF, 3.2, -INF, 3.2, -INF, 3.2, -INF, 3.2, -INF]])
    d, e = da.from_array(x, chunks=1), da.from_array(y, chunks=1)
    for fn in (fastxent.softmax_cross_entropy, fastxent.softmax_kl_div):
        check(fn(d, e, axis=1), fn(x, y, axis=1))
    check(fastxent.softmax_entropy(d, axis=1), fastxent.softmax_entropy(x, axis=1))


@pytest.mark.parametrize("merge_rows", [None, 1, 5])
def test_merge_of_listed_blocks_equals_merge_of_concatenated_states(merge_rows, monkeypatch):
    """dask.array.reduction(concatenate=False) hands a merge a (nested) list
    of blocks; the same states concatenated merge to the same bits, along
    one axis or two, whatever the rows merged at once."""
    from fastxent._dask import row_state, score as dscore

    if merge_rows:
        monkeypatch.setattr(row_state, "MERGE_ROWS", merge_rows)

    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 4, 24))
    x[0, 1, 5] = -INF
    blocks = [row_state.block_state(row_state.LSE, (2,), x[..., c:c + 6]) for c in range(0, 24, 6)]
    for keepdims in (True, False):
        a = row_state.merge(blocks, (2,), keepdims)
        b = row_state.merge(np.concatenate(blocks, axis=2), (2,), keepdims)
        with monkeypatch.context() as m:
            m.setattr(row_state, "MERGE_ROWS", 10**9)   # all rows at once
            c = row_state.merge(blocks, (2,), keepdims)
        assert a.shape == b.shape == c.shape == ((3, 4, 1) if keepdims else (3, 4))
        for name in row_state.LSE.names:
            np.testing.assert_array_equal(a[name], b[name])
            np.testing.assert_array_equal(a[name], c[name])
    # two merged axes: blocks nested by axis 1, then axis 2
    nested = [[row_state.block_state(row_state.ENTROPY, (1, 2), x[:, r:r + 2, c:c + 12])
               for c in (0, 12)] for r in (0, 2)]
    whole = np.concatenate([np.concatenate(row, axis=2) for row in nested], axis=1)
    a, b = row_state.merge(nested, (1, 2)), row_state.merge(whole, (1, 2))
    assert a.shape == b.shape == (3, 1, 1)
    for name in row_state.ENTROPY.names:
        np.testing.assert_array_equal(a[name], b[name])
    zy = x[0, :, 3].copy()
    states = [dscore._state_block(x[0][:, c:c + 8], zy, (slice(c, c + 8),), ca=1,
                                  temperature=1.0, result=np.float64) for c in (0, 8, 16)]
    a = dscore._merge(states, (1,), keepdims=False)
    b = dscore._merge(np.concatenate(states, axis=1), (1,), keepdims=False)
    for name in dscore.STATE.names:
        np.testing.assert_array_equal(a[name], b[name])


def _special_states(kind, B, R, rng):
    """B blocks of R random states of record dtype `kind` (fields m first),
    with the values a merge meets: ties for the largest m, -inf blocks (under
    finite, -inf and +inf maxima), +inf and NaN maxima, zero and +inf sums."""
    pool = np.array([-INF, INF, NAN, 0.0, -0.0, 1.5, -2.25, 700.0, -745.0, 3.0])
    states = np.zeros((B, R), kind)
    for name in kind.names:
        if kind[name] == np.int64:
            states[name] = rng.integers(-3, 50, (B, R))
            continue
        v = rng.standard_normal((B, R)) * 3
        special = rng.random((B, R)) < 0.3
        v[special] = rng.choice(pool, special.sum())
        # the signs of the states the blocks make: counts and sums of exps
        # at least 0, the scorer's first moment d (sum of e (z - m)) at most
        # 0, the entropies' t and u at least 0
        states[name] = (np.abs(v) if name in ("k", "r", "s", "q", "ky", "ry", "t", "u")
                        else -np.abs(v) if name == "d" else v)
    for m in ("m", "my"):
        if m in kind.names:
            states[m][:, ::5] = 1.5   # ties for the largest
            states[m][:, 1::7] = -INF   # rows of -inf blocks only
    return states


@pytest.mark.parametrize("kind", ["lse", "score", "entropy", "xent", "kl", "ce"])
def test_kernel_merge_follows_the_numpy_merge(kind):
    """The kernels' merge_states gives the NumPy merge's results: the same
    bits for the counts, maxima and flags, the sums of terms of one sign
    within 4 ulp (the exps are libm's there, NumPy's here, each within an
    ulp, squared in q's terms), the moments of the softmax entropies (whose
    shifted terms may cancel) within 1e-12, NaN where NaN; whatever the
    nesting of the blocks into leaves (the states of a tree's levels)."""
    from fastxent._dask import losses as dlosses, row_state, score as dscore

    rng = np.random.default_rng(31)
    dtype, core, kk = {
        "lse": (row_state.LSE, row_state._merge_fields, 0),
        "score": (dscore.STATE, dscore._merge_fields, 1),
        "entropy": (row_state.ENTROPY, row_state._merge_fields, 2),
        "xent": (row_state.XENT, row_state._merge_fields, 3),
        "kl": (row_state.KL, row_state._merge_fields, 4),
        "ce": (dlosses.CE, dlosses._ce_merge_fields, 5)}[kind]
    merge = fastxent._dispatch.kernel("merge_states", np.dtype(np.float64))
    for B, R in ((1, 9), (2, 300), (5, 613), (16, 40)):
        states = _special_states(dtype, B, R, rng)
        expected = core({name: np.ascontiguousarray(states[name]) for name in dtype.names})[0]
        for cut in sorted({0, B // 2, B - 1}):
            leaves = [np.ascontiguousarray(states[:cut + 1])]
            if cut + 1 < B:
                leaves.append(np.ascontiguousarray(states[cut + 1:]))
            got = np.empty(R, dtype)
            merge(kk, leaves, got)
            for name in dtype.names:
                a, b = got[name], expected[name]
                if dtype[name] == np.int64 or name in ("m", "my"):
                    np.testing.assert_array_equal(a, b, err_msg=name)
                elif name in ("t", "u", "v"):
                    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=name)
                else:
                    np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=name)
                    ok = ~np.isnan(a)
                    np.testing.assert_array_max_ulp(a[ok], b[ok], maxulp=4)


def test_merge_takes_states_at_any_address():
    """States that come from another worker may sit at any byte of the
    message that carried them; they merge as the same states aligned."""
    from fastxent._dask import row_state, score as dscore

    rng = np.random.default_rng(4)
    for kind, merge in ((row_state.LSE, row_state.merge), (dscore.STATE, dscore._merge),
                        (row_state.KL, row_state.merge)):
        states = _special_states(kind, 3, 50, rng)
        moved = np.zeros(states.nbytes + 3, np.uint8)[3:].view(kind).reshape(states.shape)
        moved[...] = states
        a = merge([states[i:i + 1] for i in range(3)], 0, keepdims=False)
        b = merge([moved[i:i + 1] for i in range(3)], 0, keepdims=False)
        assert a.tobytes() == b.tobytes()


def test_states_the_kernel_does_not_know_merge_in_numpy():
    """Records of another byte order (or any dtype other than the kinds'
    own) are merged by the NumPy merge, to the same values."""
    from fastxent._dask import losses as dlosses, row_state, score as dscore

    rng = np.random.default_rng(6)
    for kind, merge in ((row_state.LSE, row_state.merge), (dscore.STATE, dscore._merge),
                        (dlosses.CE, dlosses._ce_merge)):
        states = _special_states(kind, 4, 30, rng)
        swapped = states.astype(kind.newbyteorder(">"))
        a = merge([states[i:i + 1] for i in range(4)], 0, keepdims=False)
        b = merge([swapped[i:i + 1] for i in range(4)], 0, keepdims=False)
        for name in kind.names:
            np.testing.assert_allclose(b[name], a[name], rtol=1e-13, equal_nan=True)


@pytest.mark.parametrize("chunks", [(3, 4), (3, 2), (1, 1)])
def test_full_reductions_compute_to_numpy_scalars(chunks):
    """A reduction over every axis computes to the NumPy function's scalar
    type whatever the chunks (not a 0-d array), as the NumPy path does."""
    x = np.arange(12.0).reshape(3, 4) / 7
    p = np.abs(x) + 0.1
    d, q = da.from_array(x, chunks=chunks), da.from_array(p, chunks=chunks)
    pairs = [(fastxent.logsumexp(d), fastxent.logsumexp(x)),
             (fastxent.logsumexp(d[0]), fastxent.logsumexp(x[0])),
             (fastxent.logsumexp(d[0], return_sign=True)[1],
              fastxent.logsumexp(x[0], return_sign=True)[1]),
             (fastxent.softmax_entropy(d[0]), fastxent.softmax_entropy(x[0])),
             (fastxent.softmax_kl_div(d[0], d[1]), fastxent.softmax_kl_div(x[0], x[1])),
             (fastxent.entropy(q[0]), fastxent.entropy(p[0])),
             (fastxent.entropy(q, axis=None), fastxent.entropy(p, axis=None))]
    y = np.array([0, 3, 2])
    pairs += [(fastxent.cross_entropy(d, y), fastxent.cross_entropy(x, y)),
              (fastxent.cross_entropy(d[0], y[0], reduction="none"),
               fastxent.cross_entropy(x[0], y[0], reduction="none")),
              (fastxent.cross_entropy(d, q / 10, label_smoothing=0.1),
               fastxent.cross_entropy(x, p / 10, label_smoothing=0.1)),
              (fastxent.nll_loss(d, y, reduction="sum"), fastxent.nll_loss(x, y, reduction="sum")),
              (fastxent.kl_div(d, q), fastxent.kl_div(x, p)),
              (fastxent.binary_cross_entropy_with_logits(d, q / 9),
               fastxent.binary_cross_entropy_with_logits(x, p / 9))]
    for lazy, expected in pairs:
        got = lazy.compute(scheduler="sync")
        assert type(got) is type(expected), (type(got), type(expected))
        np.testing.assert_allclose(got, expected, rtol=1e-13)


def test_negative_class_weight_at_a_neg_inf_logit():
    """A -inf logit under a negative class weight adds -inf to the loss, as
    the NumPy path has it, over any chunking of the classes."""
    x = np.array([[0.0, 1.0, -INF, 2.0], [0.5, -INF, 1.0, -INF]])
    p = np.array([[0.3, 0.3, 0.4, 0.0], [0.2, 0.5, 0.3, 0.0]])
    w = np.array([1.0, -1.0, -1.0, 2.0])
    labels = np.array([2, 1])
    with np.errstate(all="ignore"):
        for chunks in ((2, 1), (1, 2), (2, 4)):
            d = da.from_array(x, chunks=chunks)
            for target, eps in ((p, 0.0), (p, 0.1), (labels, 0.0), (labels, 0.1)):
                check(fastxent.cross_entropy(d, target, w, reduction="none", label_smoothing=eps),
                      fastxent.cross_entropy(x, target, w, reduction="none", label_smoothing=eps))


def test_special_rows_of_a_kernel_state_are_formed_a_slice_at_a_time(monkeypatch):
    """Rows the kernels leave (NaN, +inf, only -inf: a masked part of a
    vocabulary can be a whole block) are formed by NumPy a few at a time,
    so that their copies and temporaries stay a slice's size."""
    from fastxent._dask import losses as dlosses, row_state

    monkeypatch.setattr(row_state, "SUB_ELEMENTS", 64)
    seen = []
    block_state = row_state._block_state

    def spy(kind, axes, x, y=None, b=None):
        seen.append(x.size)
        return block_state(kind, axes, x, y, b)
    monkeypatch.setattr(row_state, "_block_state", spy)
    x = np.full((50, 16), -INF)
    x[::7, 3] = NAN
    x[::9, 5] = 1.0
    labels = np.arange(50) % 16
    for kind in (row_state.LSE, row_state.ENTROPY):
        seen.clear()
        st = row_state.block_state(kind, (1,), x)
        assert seen and max(seen) <= 64
        expected = row_state._block_state(kind, (1,), x)
        for name in kind.names:
            np.testing.assert_array_equal(st[name], expected[name])
    seen.clear()
    got = dlosses._ce_block(x, labels, (slice(0, 16),), ca=1, C=16, eps=0.0, ignore_index=-100,
                            probs=False)
    assert seen and max(seen) <= 64
    np.testing.assert_array_equal(got["m"][:, 0], np.max(np.where(np.isnan(x), INF, x), axis=1)
                                  * np.where(np.isnan(x).any(axis=1), NAN, 1.0))


def test_kernel_merge_refuses_bad_states():
    from fastxent._dask import row_state, score as dscore

    merge = fastxent._dispatch.kernel("merge_states", np.dtype(np.float64))
    good = np.zeros((2, 4), row_state.LSE)
    out = np.empty(4, row_state.LSE)
    with pytest.raises(ValueError, match="kind from 0 to 5"):
        merge(6, [good], out)
    with pytest.raises(ValueError, match="no states"):
        merge(0, [], out)
    with pytest.raises(ValueError, match="records of 80 bytes"):
        merge(1, [good], np.empty(4, dscore.STATE))   # a scorer merge of log-sum-exp records
    with pytest.raises(ValueError, match="aligned"):
        raw = np.zeros(2 * 4 * 48 + 1, np.uint8)[1:]
        merge(0, [raw.view(row_state.LSE).reshape(2, 4)], out)
    with pytest.raises(ValueError, match=r"\(blocks, 4\)"):
        merge(0, [np.zeros((2, 5), row_state.LSE)], out)
    with pytest.raises(ValueError, match="C-contiguous"):
        merge(0, [np.zeros((4, 2), row_state.LSE).T], out)
    with pytest.raises(ValueError, match="writable"):
        out.flags.writeable = False
        merge(0, [good], out)
    with pytest.raises(TypeError, match="ndarrays"):
        merge(0, [good.tolist()], np.empty(4, row_state.LSE))


@pytest.mark.parametrize("split_every", [None, 3])
def test_more_class_chunks_than_one_merge_takes(split_every):
    """A class axis in more chunks than one merge task takes (16, or Dask's
    ``split_every`` setting where one is set) merges in a tree of several
    levels, to the in-memory results; each block's classes are its own."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((7, 40)) * 4
    x[2, 17] = -np.inf
    x[4, :5] = 9.0   # a tie for the first largest, in the first blocks
    y = rng.integers(0, 40, 7)
    y[3] = -100
    y[5] = 39
    w = rng.uniform(0.5, 2.0, 40)
    d = da.from_array(x, chunks=(4, 2))   # 20 blocks of 2 classes
    with dask.config.set({} if split_every is None else {"split_every": split_every}):
        check(fastxent.logsumexp(d, axis=1), fastxent.logsumexp(x, axis=1))
        check(fastxent.log_softmax(d, axis=1), fastxent.log_softmax(x, axis=1))
        check(fastxent.softmax_entropy(d, axis=1), fastxent.softmax_entropy(x, axis=1))
        check(fastxent.entropy(np.exp(d), axis=1), fastxent.entropy(np.exp(x), axis=1))
        for kw in ({}, {"weight": w}, {"label_smoothing": 0.2}):
            for reduction in ("none", "mean"):
                check(fastxent.cross_entropy(d, y, reduction=reduction, **kw),
                      fastxent.cross_entropy(x, y, reduction=reduction, **kw))
        check(fastxent.nll_loss(d, y, weight=w), fastxent.nll_loss(x, y, weight=w))
        rows, want = fastxent.score_rows(d, y), fastxent.score_rows(x, y)
        for name in ("rank", "prediction"):
            np.testing.assert_array_equal(getattr(rows, name).compute(scheduler="sync"),
                                          getattr(want, name))
        for name in ("nll", "confidence", "entropy", "brier"):
            check(getattr(rows, name), getattr(want, name))
        _check_metrics(fastxent.score(d, y, topk=(1, 3)), fastxent.score(x, y, topk=(1, 3)))


@SMALL
@given(case=sprinkled(), signed=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_logsumexp_weights_at_special_values(case, signed, seed):
    x, chunks = case
    rng = np.random.default_rng(seed)
    b = rng.uniform(-1.0 if signed else 0.0, 2.0, x.shape)
    b[rng.random(x.shape) < 0.3] = 0.0   # ignored, even at +inf or NaN
    d, db = da.from_array(x, chunks=chunks), da.from_array(b, chunks=chunks)
    with np.errstate(all="ignore"):
        res, sgn = fastxent.logsumexp(d, axis=1, b=db, return_sign=True)
        want_res, want_sgn = fastxent.logsumexp(x, axis=1, b=b, return_sign=True)
        check(sgn, want_sgn)
        got = res.compute()
        finite = np.isfinite(want_res)
        np.testing.assert_array_equal(got[~finite], want_res[~finite])
        # signed terms that cancel between blocks: accurate to the terms' scale
        np.testing.assert_allclose(got[finite], want_res[finite], rtol=1e-13,
                                   atol=1e-13 * (1 + np.abs(x[np.isfinite(x)]).max(initial=0)))


# ---------------------------------------------------------------------------
# score_rows, score and Scorer.update

def _check_rows(got, want, whole):
    """RowScores of lazy arrays against the in-memory ones: the integer
    scores exactly; the float ones bit for bit where the class axis is one
    chunk (the in-memory kernel per block), else to a few ulp of float64 or
    the rounding of the kernel's float32 block sums."""
    for name, g, w in zip(fastxent.RowScores._fields, got, want):
        assert isinstance(g, da.Array), name
        w = np.asarray(w)
        assert g.dtype == w.dtype and g.shape == w.shape, name
        g = g.compute(scheduler="sync")
        if w.dtype.kind == "i" or whole:
            np.testing.assert_array_equal(g, w, err_msg=name)
        else:
            rtol = 1e-13 if w.dtype == np.float64 else 2e-6
            np.testing.assert_allclose(g, w, rtol=rtol, atol=1e-300, equal_nan=True,
                                       err_msg=name)


def _check_metrics(got, want):
    assert got.keys() == want.keys()
    for k in want:
        if k in ("count", "undefined"):
            assert got[k] == want[k], k
        else:
            np.testing.assert_allclose(got[k], want[k], rtol=1e-6, equal_nan=True,
                                       err_msg=k)


@st.composite
def scored(draw):
    """Logits with special values, labels (some ignored), chunks."""
    x, labels, _, chunks, ca, _ = draw(logits_and_labels())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if draw(st.booleans()):   # ties, -inf, NaN, +inf here and there
        values = np.array([x.max(initial=0) + 1, -np.inf, np.nan, np.inf, 0.0], x.dtype)
        mask = rng.random(x.shape) < 0.15
        x = np.where(mask, rng.choice(values, x.shape), x)
    temperature = draw(st.sampled_from([1.0, 2.0, 0.7]))
    return x, labels, chunks, ca, temperature


@SMALL
@given(case=scored())
def test_score_rows_and_score(case):
    x, labels, chunks, ca, temperature = case
    d = da.from_array(x, chunks=chunks)
    t_chunks = chunks[:ca] + chunks[ca + 1:]
    dl = da.from_array(labels, chunks=t_chunks) if labels.ndim else da.from_array(labels)
    whole = chunks[ca] == x.shape[ca]
    with np.errstate(all="ignore"):
        want = fastxent.score_rows(x, labels, temperature=temperature)
        _check_rows(fastxent.score_rows(d, dl, temperature=temperature), want, whole)
        with dask.config.set(scheduler="sync"):
            _check_metrics(fastxent.score(d, dl, topk=(1, 2), temperature=temperature),
                           fastxent.score(x, labels, topk=(1, 2), temperature=temperature))


@pytest.mark.parametrize("chunk", [1, 2, 5])
def test_score_special_rows_across_blocks(chunk):
    x = SPECIAL_ROWS
    labels = np.array([2, 0, 1, -100, 4, 0])
    d = da.from_array(x, chunks=(2, chunk))
    with np.errstate(all="ignore"):
        _check_rows(fastxent.score_rows(d, labels), fastxent.score_rows(x, labels),
                    chunk == x.shape[1])
        with dask.config.set(scheduler="sync"):
            _check_metrics(fastxent.score(d, labels), fastxent.score(x, labels))


def test_scorer_update_with_dask_and_numpy_chunks():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((60, 12)).astype(np.float32)
    y = rng.integers(0, 12, 60)
    s = fastxent.Scorer(topk=(1, 3))
    with dask.config.set(scheduler="sync"):
        s.update(da.from_array(x[:40], chunks=(15, 5)), y[:40])   # classes in chunks
        s.update(da.from_array(x[40:], chunks=(7, 12)), da.from_array(y[40:], chunks=7))
    s.update(x[:0], y[:0])
    _check_metrics(s.result(), fastxent.score(x, y, topk=(1, 3)))
    # a bad label raises before anything is added
    before = s.result()
    with pytest.raises(IndexError, match="target 12 is out of bounds"):
        with dask.config.set(scheduler="sync"):
            s.update(da.from_array(x[:4], chunks=2), np.array([0, 12, 1, 1]))
    assert s.result()["count"] == before["count"]


def test_score_across_class_blocks_in_memory_or_computed():
    """Blocks already in memory are read by score's two phases in one
    compute; blocks made by tasks get the label's z computed first, so that
    no graph holds them between the phases.  Both give the same metrics."""
    from dask.callbacks import Callback
    from fastxent._dask.blocks import held

    rng = np.random.default_rng(8)
    x = rng.standard_normal((60, 12)).astype(np.float32)
    y = rng.integers(0, 12, 60)
    d = da.from_array(x, chunks=(20, 5))
    made = d.map_blocks(np.copy, dtype=d.dtype)
    assert held(d) and not held(made) and not held(d[:, ::-1])
    want = fastxent.score(x, y, topk=(1, 3))
    for arr, n_computes in ((d, 1), (made, 2)):
        starts = []
        with Callback(start=lambda dsk: starts.append(1)), dask.config.set(scheduler="sync"):
            got = fastxent.score(arr, y, topk=(1, 3))
        assert len(starts) == n_computes
        _check_metrics(got, want)


def test_numpy_labels_are_cut_into_the_row_chunks_without_tasks():
    """NumPy labels go with the tasks of their rows: no rechunk layer."""
    rng = np.random.default_rng(10)
    x = rng.standard_normal((40, 6))
    y = rng.integers(0, 6, 40)
    d = da.from_array(x, chunks=(7, 6))
    results = [(fastxent.cross_entropy(d, y, reduction="none"),
                fastxent.cross_entropy(x, y, reduction="none")),
               (fastxent.nll_loss(d, y, reduction="sum"), fastxent.nll_loss(x, y, reduction="sum")),
               (fastxent.score_rows(d, y).nll, fastxent.score_rows(x, y).nll),
               (fastxent.cross_entropy(d, x / 10), fastxent.cross_entropy(x, x / 10))]
    for lazy, want in results:
        layers = list(lazy.__dask_graph__().layers)
        assert not [name for name in layers if "rechunk" in name], layers
        np.testing.assert_allclose(lazy.compute(scheduler="sync"), want, rtol=1e-13)


@pytest.mark.parametrize("chunks", [((0, 10, 0, 30), (2, 0, 4)), ((20, 20), (0, 3, 3)),
                                    ((40,), (6, 0))])
def test_class_chunks_of_width_zero(chunks):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((40, 6))
    y = rng.integers(0, 6, 40)
    y[3] = -100
    d = da.from_array(x, chunks=chunks)
    p = fastxent.softmax(x[::-1], axis=1)
    check(fastxent.cross_entropy(d, y, reduction="none"),
          fastxent.cross_entropy(x, y, reduction="none"))
    check(fastxent.cross_entropy(d, p), fastxent.cross_entropy(x, p))
    check(fastxent.nll_loss(d, y, reduction="sum"), fastxent.nll_loss(x, y, reduction="sum"))
    _check_rows(fastxent.score_rows(d, y), fastxent.score_rows(x, y), False)
    with dask.config.set(scheduler="sync"):
        _check_metrics(fastxent.score(d, y), fastxent.score(x, y))
    with pytest.raises(IndexError, match="[Tt]arget 6 is out of bounds"):
        fastxent.cross_entropy(d, np.full(40, 6)).compute(scheduler="sync")


def test_score_rows_is_lazy_and_checks_arguments_at_once():
    d = da.from_array(np.zeros((4, 6)), chunks=(2, 3))
    rows = fastxent.score_rows(d, np.array([0, 1, 7, 2]))
    assert all(isinstance(a, da.Array) for a in rows)
    with pytest.raises(IndexError, match="target 7 is out of bounds"):
        rows.nll.compute(scheduler="sync")
    with pytest.raises(ValueError, match="temperature"):
        fastxent.score_rows(d, np.zeros(4, int), temperature=0.0)
    with pytest.raises(TypeError, match="class indices"):
        fastxent.score_rows(d, np.zeros(4))
    with pytest.raises(ValueError, match="must have shape"):
        fastxent.score_rows(d, np.zeros(5, int))
    with pytest.raises(TypeError, match="not supported for Dask"):
        fastxent.score_rows(d, np.zeros(4, int), out={})


def test_score_on_a_distributed_cluster(client):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((300, 40))
    y = rng.integers(0, 40, 300)
    for chunks in [(50, 40), (100, 15)]:
        d = da.from_array(x, chunks=chunks)
        _check_metrics(fastxent.score(d, y), fastxent.score(x, y))
        nll = fastxent.score_rows(d, y).nll.compute(scheduler=client)
        np.testing.assert_allclose(nll, fastxent.score_rows(x, y).nll, rtol=1e-13)
    # persisted on the workers: futures in the graph, read in one compute
    from fastxent._dask.blocks import held

    p = client.persist(da.from_array(x, chunks=(100, 15)).map_blocks(np.copy))
    assert held(p)
    with dask.config.set(scheduler=client):
        _check_metrics(fastxent.score(p, y), fastxent.score(x, y))


# ---------------------------------------------------------------------------
# fastxent score --scheduler

def _cli(args, cwd, **env):
    import os
    return subprocess.run([sys.executable, "-m", "fastxent", "score", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, **env))


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64, "bfloat16"])
def test_stored_logits_read_as_views_of_their_bytes(tmp_path, dtype):
    """The loader of ``fastxent score --scheduler`` (one task per chunk of
    rows, each a view of a memory map of its rows' bytes): every layout it
    reads gives the stored values, chunk boundaries and row offsets that are
    not multiples of the page size included; a C-ordered file's chunk is a
    read-only view of a map of its own rows, not of the whole file; an
    ``.npz`` member not aligned to its item size and a Fortran-ordered
    file's rows are copies."""
    import mmap
    import os
    from fastxent._dask import files
    rng = np.random.default_rng(8)
    if dtype == "bfloat16":
        ml_dtypes = pytest.importorskip("ml_dtypes")
        dtype = ml_dtypes.bfloat16
    x = rng.standard_normal((301, 37)).astype(dtype)
    np.save(tmp_path / "c.npy", x)
    np.save(tmp_path / "f.npy", np.asfortranarray(x))
    np.savez(tmp_path / "z.npz", other=np.arange(5), logits=x)
    (tmp_path / "shards").mkdir()
    np.save(tmp_path / "shards" / "0.npy", x[:100])
    np.save(tmp_path / "shards" / "1.npy", x[100:])
    np.save(tmp_path / "shards" / "2.npy", x[:0])
    # a few dozen chunks at most: before Python 3.13 each chunk in memory
    # holds a file descriptor (macOS allows 256 by default)
    for name in ("c.npy", "f.npy", "z.npz", "shards"):
        for chunk_bytes in (37 * 8 * x.itemsize + 3, 37 * 50 * x.itemsize, 1 << 20):
            lazy = files.lazy_logits(str(tmp_path / name), chunk_bytes)
            got = lazy.compute(scheduler="sync")
            assert got.dtype == x.dtype and got.shape == x.shape, name
            np.testing.assert_array_equal(got.view(np.uint8), x.view(np.uint8), err_msg=name)

    def mapped(a):
        while a is not None and not isinstance(a, mmap.mmap):
            a = a.base
        return a

    path = str(tmp_path / "c.npy")
    src = np.load(path, mmap_mode="r")
    chunk = files._read_rows(path, src.offset, x.shape, False, src.dtype.str, 15, 20)
    np.testing.assert_array_equal(chunk.view(np.uint8), x[15:20].view(np.uint8))
    assert not chunk.flags.writeable and not chunk.flags.owndata
    m = mapped(chunk)
    assert m is not None and len(m) < os.path.getsize(path) // 4
    assert files._read_rows(path, src.offset, x.shape, False, src.dtype.str, 7, 7).shape == (0, 37)
    # the member's data start: aligned or not to the item size, by its name's length
    for member in ("logits", "input", "arr_0"):
        np.savez(tmp_path / "m.npz", **{member: x})
        with np.load(tmp_path / "m.npz") as z:
            want = z[member]
        offset, stored = _stored_part(tmp_path / "m.npz")
        chunk = files._read_rows(str(tmp_path / "m.npz"), offset, x.shape, False, stored.str,
                                 3, 9)
        np.testing.assert_array_equal(chunk.view(np.uint8), want[3:9].view(np.uint8))
        assert chunk.flags.aligned
        assert (mapped(chunk) is None) == (offset % x.itemsize != 0), member
    chunk = files._read_rows(str(tmp_path / "f.npy"), np.load(tmp_path / "f.npy",
                             mmap_mode="r").offset, x.shape, True, src.dtype.str, 3, 9)
    assert mapped(chunk) is None and chunk.flags.c_contiguous
    np.testing.assert_array_equal(chunk.view(np.uint8), x[3:9].view(np.uint8))


def _stored_part(path):
    """(byte offset of the data, stored dtype) of the logits in `path`, as
    the files module reads them."""
    from fastxent import _score_files
    src = _score_files.open_logits(str(path))
    try:
        part = getattr(src, "parts", [src])[0]
        return part.offset, part.dtype
    finally:
        src.close()


def test_cli_scores_files_on_a_scheduler(client, tmp_path):
    import json
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3000, 200)).astype(np.float32)
    y = rng.integers(0, 200, 3000)
    y[::7] = -100
    np.save(tmp_path / "logits.npy", x)
    np.save(tmp_path / "labels.npy", y)
    (tmp_path / "shards").mkdir()
    np.save(tmp_path / "shards" / "0.npy", x[:1234])
    np.save(tmp_path / "shards" / "1.npy", x[1234:])
    want = fastxent.score(x, y, topk=(1, 3))
    address = client.scheduler.address
    for logits in ("logits.npy", "shards"):
        proc = _cli([logits, "labels.npy", "--scheduler", address, "--topk", "1,3",
                     "--chunk-mb", "0.5", "--json", "-"], tmp_path)
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)
        assert doc["scheduler"] == address and doc["rows"] == 3000
        _check_metrics(doc["metrics"], want)
    # bad input: one line, exit 1, no traceback
    np.save(tmp_path / "bad.npy", np.full(3000, 200))
    proc = _cli(["logits.npy", "bad.npy", "--scheduler", address], tmp_path)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert "out of range" in proc.stderr and "Traceback" not in proc.stderr
    proc = _cli(["logits.npy", "labels.npy", "--scheduler", "tcp://127.0.0.1:9"], tmp_path,
                DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT="1s")
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert "cannot connect to 'tcp://127.0.0.1:9'" in proc.stderr
    proc = _cli(["logits.npy", "labels.npy", "--scheduler", address, "--per-row", "r.npz"],
                tmp_path)
    assert proc.returncode == 2 and "--per-row" in proc.stderr, proc.stderr
    assert not (tmp_path / "r.npz").exists()


def test_cli_scheduler_without_dask_says_so(tmp_path):
    np.save(tmp_path / "logits.npy", np.zeros((4, 3), np.float32))
    np.save(tmp_path / "labels.npy", np.zeros(4, int))
    code = ("import sys; sys.modules['dask'] = None; from fastxent._score_cli import main; "
            "sys.exit(main(['logits.npy', 'labels.npy', '--scheduler', 'tcp://127.0.0.1:9']))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1 and "needs Dask" in proc.stderr, proc.stderr


def test_cli_reads_a_zarr_store_on_a_scheduler(client, tmp_path):
    import json
    pytest.importorskip("zarr")
    rng = np.random.default_rng(7)
    x = rng.standard_normal((500, 60)).astype(np.float32)
    y = rng.integers(0, 60, 500)
    da.from_array(x, chunks=(128, 60)).to_zarr(str(tmp_path / "logits.zarr"))
    da.from_array(y, chunks=128).to_zarr(str(tmp_path / "labels.zarr"))
    proc = _cli(["logits.zarr", "labels.zarr", "--scheduler", client.scheduler.address,
                 "--json", "-"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    _check_metrics(json.loads(proc.stdout)["metrics"], fastxent.score(x, y))


def test_score_rows_of_many_rows_across_class_blocks():
    # more rows than a block's state takes at once (_SUB_ROWS), in a 3-d layout
    rng = np.random.default_rng(9)
    x = rng.standard_normal((600, 20, 2)) * 4
    y = rng.integers(0, 20, (600, 2))
    y[::5, 1] = -100
    d = da.from_array(x, chunks=(550, 7, 1))
    _check_rows(fastxent.score_rows(d, y), fastxent.score_rows(x, y), False)


def test_large_blocks_are_reduced_in_slices(monkeypatch):
    # a block's state is formed in slices of rows (row_state.SUB_ELEMENTS,
    # made small here): the same results
    from fastxent._dask import row_state
    monkeypatch.setattr(row_state, "SUB_ELEMENTS", 40)
    rng = np.random.default_rng(10)
    x = rng.standard_normal((37, 12, 3)) * 5
    x[3, 4, 1] = np.inf
    x[5, :, 0] = -np.inf
    q = rng.random(x.shape)
    labels = rng.integers(0, 12, (37, 3))
    labels[::4, 2] = -100
    d = da.from_array(x, chunks=(20, 5, 3))
    check(fastxent.logsumexp(d, axis=1), fastxent.logsumexp(x, axis=1))
    check(fastxent.softmax_entropy(d, axis=1), fastxent.softmax_entropy(x, axis=1))
    check(fastxent.softmax_kl_div(d, d[::-1], axis=1), fastxent.softmax_kl_div(x, x[::-1], axis=1))
    for target in (labels, q):
        for smoothing in (0.0, 0.3):
            check(fastxent.cross_entropy(d, target, reduction="none", label_smoothing=smoothing),
                  fastxent.cross_entropy(x, target, reduction="none",
                                         label_smoothing=smoothing))


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_lse_block_state_from_the_kernel(dtype):
    # an unweighted log-sum-exp state is the row kernel's (m, k, s), rows
    # with special values formed by NumPy: the fields of the NumPy state
    from fastxent._dask import row_state
    rng = np.random.default_rng(12)
    x = np.concatenate([rng.standard_normal((9, 6)) * 4, SPECIAL_ROWS]).astype(dtype)
    x[2, :3] = x[2, 4]   # ties at the maximum
    rtol = {np.float64: 1e-14, np.float32: 1e-6, np.float16: 1e-6}[dtype]
    for block, axes in ((x, (1,)), (np.ascontiguousarray(x.T), (0,)), (x[:, None, :], (2,)),
                        (x.reshape(15, 2, 3), (1, 2))):
        got = row_state._kernel_state(row_state.LSE, axes, block, None, 1)
        assert got is not None, axes
        with np.errstate(all="ignore"):
            want = row_state._block_state(row_state.LSE, axes, block)
        assert got.dtype == want.dtype and got.shape == want.shape
        for name in ("m", "k", "z", "pos", "neg"):
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)
        np.testing.assert_allclose(got["r"], want["r"], rtol=rtol, atol=1e-300)
        # the public path agrees with the in-memory call
        check(fastxent.logsumexp(da.from_array(block, chunks=2), axis=axes),
              fastxent.logsumexp(block, axis=axes))
    # a layout whose rows need a copy is left to NumPy
    assert row_state._kernel_state(row_state.LSE, (0, 2), x.reshape(15, 2, 3), None, 1) is None


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16, "bfloat16"])
@pytest.mark.parametrize("temperature", [1.0, 0.5, 0.7])
def test_score_block_state_from_the_kernel(dtype, temperature):
    # the partial state of a block of classes from the compiled row scan is
    # the NumPy one: the same maxima, counts, indices and flags, sums to the
    # rounding of the kernel's working type
    from fastxent._dask import score as dscore
    if dtype == "bfloat16":
        ml_dtypes = pytest.importorskip("ml_dtypes")
        dtype = ml_dtypes.bfloat16
    rng = np.random.default_rng(13)
    x = np.concatenate([rng.standard_normal((9, 6)) * 4, SPECIAL_ROWS,
                        np.full((1, 6), -np.inf), [[np.nan, 1.0, np.inf, 2.0, np.nan, 0.0]]])
    x[2, :3] = x[2, 4]   # ties at the maximum
    x = x.astype(dtype)
    labels = rng.integers(0, 6, x.shape[0])
    labels[::5] = -100
    result = np.float64 if x.dtype == np.float64 else np.float32
    z = dscore._z(x, 1, temperature, np.dtype(result))
    zy = np.where(labels == -100, np.nan, np.take_along_axis(z, np.maximum(labels, 0)[:, None],
                                                             axis=1)[:, 0])
    for block, c0 in ((x, 0), (x[:, 2:5], 2), (np.asfortranarray(x)[:, 1:], 1), (x[:, ::2], 0)):
        got = dscore._kernel_state(block, zy, c0, temperature, 1)
        assert got is not None
        with np.errstate(all="ignore"):
            want = dscore._state_rows(dscore._z(block, 1, temperature, np.dtype(result)), zy, c0)
        bad = want["bad"] > 0
        for name in ("m", "gt", "first_nan", "bad", "n"):
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)
        # the prediction and the sums matter only where the row is defined
        ok = ~bad
        np.testing.assert_array_equal(got["pred"][ok], want["pred"][ok])
        np.testing.assert_array_equal(got["k"][ok], want["k"][ok])
        # float32 working sums: terms below float32's range are 0 (as in
        # the in-memory kernel), next to a maximum's term of 1
        rtol, atol = (1e-13, 1e-300) if result == np.float64 else (2e-6, 1e-37)
        for name in ("s", "d", "q"):
            np.testing.assert_allclose(got[name][ok], want[name][ok], rtol=rtol, atol=atol,
                                       err_msg=name)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_entropy_block_states_from_the_kernels(dtype):
    # the partial states of softmax_entropy, softmax_cross_entropy and
    # softmax_kl_div from the row kernels are the NumPy ones; rows with
    # special values (and a class of probability 0 under q only, +inf) too
    from fastxent._dask import row_state
    rng = np.random.default_rng(14)
    x = np.concatenate([rng.standard_normal((9, 6)) * 4, SPECIAL_ROWS]).astype(dtype)
    y = np.concatenate([rng.standard_normal((9, 6)) * 4, SPECIAL_ROWS[::-1]]).astype(dtype)
    x[2, :3] = x[2, 4]            # ties at the maximum
    y[3, 1] = -np.inf             # q = 0 where p > 0: +inf moments
    x[4, 2] = y[4, 2] = -np.inf   # p = q = 0: adds nothing
    rtol = 1e-13 if dtype == np.float64 else 2e-6
    cases = [(row_state.ENTROPY, None, "t"), (row_state.XENT, y, "u"), (row_state.KL, y, "v")]
    for kind, other, moment in cases:
        for block, oblock, axes in ((x, other, (1,)),
                                    (np.ascontiguousarray(x.T),
                                     None if other is None else np.ascontiguousarray(other.T),
                                     (0,))):
            got = row_state._kernel_state(kind, axes, block, oblock, 1)
            assert got is not None
            with np.errstate(all="ignore"):
                want = row_state._block_state(kind, axes, block, oblock)
            assert got.shape == want.shape
            for name in kind.names:
                if name in ("r", "ry", moment):
                    np.testing.assert_allclose(got[name], want[name], rtol=rtol, atol=1e-30,
                                               err_msg=name)
                else:
                    np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_score_block_state_of_misaligned_operands():
    # a block or its labels' z unpickled on a distributed worker may sit at
    # an odd address: the state is that of aligned copies, and the kernel
    # entry refuses misaligned operands instead of reading them
    from fastxent import _dispatch
    from fastxent._dask import score as dscore
    rng = np.random.default_rng(15)
    x = rng.standard_normal((7, 9))
    zy = x[np.arange(7), rng.integers(0, 9, 7)]

    def odd(a):
        raw = np.zeros(a.nbytes + 1, np.uint8)[1:]
        b = raw.view(a.dtype).reshape(a.shape)
        b[...] = a
        assert not b.flags.aligned
        return b

    want = dscore._kernel_state(x, zy, 0, 1.0, 1)
    got = dscore._kernel_state(x, odd(zy), 0, 1.0, 1)
    for name in want.dtype.names:
        np.testing.assert_array_equal(got[name], want[name])
    assert dscore._kernel_state(odd(x), zy, 0, 1.0, 1) is None   # left to NumPy
    kern = _dispatch.kernel("score_states", np.dtype(np.float64))
    f, i = np.empty(5 * 7), np.empty(4 * 7, np.int64)
    for args in ((odd(x), zy), (x, odd(zy))):
        with pytest.raises(ValueError, match="aligned"):
            kern(*args, f, i, False, 0, 1.0, 1)


# what Dask input must do as NumPy input does, defect by defect

def test_logsumexp_weights_with_more_dims_than_a():
    # the axes are those of the broadcast shape, as in SciPy
    a = np.array([0.0, 1.0, 2.0])
    b = np.array([[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]])
    for axis in (None, -1, 1, 0, (0, 1)):
        want = fastxent.logsumexp(a, axis=axis, b=b)
        check(fastxent.logsumexp(da.from_array(a, chunks=2), axis=axis, b=b), want)
        check(fastxent.logsumexp(da.from_array(a, chunks=2), axis=axis,
                                 b=da.from_array(b, chunks=(1, 2))), want)


@pytest.mark.parametrize("chunks", [40000, 7000])
def test_float16_means_of_sums_beyond_float16(chunks):
    # a block's sum above 65504 is not rounded to float16 (it was inf)
    rng = np.random.default_rng(7)
    x = (rng.standard_normal(40000) + 3).astype(np.float16)
    t = (rng.random(40000) < 0.5).astype(np.float16)
    w = rng.random(40000) + 0.5   # float64 weights that float16 cannot hold
    dx, dt = da.from_array(x, chunks=chunks), da.from_array(t, chunks=chunks)
    cases = [
        (fastxent.binary_cross_entropy_with_logits, (x, t), (dx, dt), {}),
        (fastxent.binary_cross_entropy_with_logits, (x, t.astype(np.int64)),
         (dx, dt.astype(np.int64)), {}),
        (fastxent.binary_cross_entropy_with_logits, (x, t), (dx, dt),
         {"weight": w, "pos_weight": np.float16(2)}),
        (fastxent.kl_div, (-np.abs(x), t + 1), (-abs(dx), dt + 1), {}),
        (fastxent.kl_div, (-np.abs(x), t + 1), (-abs(dx), dt + 1), {"reduction": "batchmean"}),
        (fastxent.kl_div, (-np.abs(x), t + 1), (-abs(dx), dt + 1), {"reduction": "sum"}),
    ]
    for fn, args, dargs, kw in cases:
        want = fn(*args, **kw)
        got = fn(*dargs, **kw)
        assert got.dtype == want.dtype == np.float16
        value = got.compute(scheduler="sync")
        if np.isinf(want):   # a 'sum' beyond float16, in both
            assert value == want
            continue
        # one rounding of float64 totals that agree to float32's precision
        assert abs(float(value) - float(want)) <= float(np.spacing(want)), (fn, kw, value, want)


def test_evaluation_with_numpy_logits_and_dask_labels_is_lazy():
    x = np.random.default_rng(3).standard_normal((8, 5))
    y = np.array([0, 1, 4, 2, -100, 3, 0, 1])
    dy = da.from_array(y, chunks=3)
    rows = fastxent.score_rows(x, dy)
    want = fastxent.score_rows(x, y)
    for lazy, expected in zip(rows, want):
        check(lazy, expected)
    assert fastxent.score(x, dy) == pytest.approx(fastxent.score(x, y), nan_ok=True)
    assert (fastxent.Scorer().update(x, dy).result()
            == pytest.approx(fastxent.Scorer().update(x, y).result(), nan_ok=True))


def test_no_classes_with_every_row_ignored():
    # the NumPy path scores rows without classes when none counts; the
    # probe of the arguments must not invent a label
    e = np.zeros((3, 0))
    labels = np.full(3, -100)
    for reduction in ("none", "sum", "mean"):
        check(fastxent.cross_entropy(da.from_array(e), labels, reduction=reduction),
              fastxent.cross_entropy(e, labels, reduction=reduction))
        check(fastxent.nll_loss(da.from_array(e), labels, reduction=reduction),
              fastxent.nll_loss(e, labels, reduction=reduction))
    for lazy, expected in zip(fastxent.score_rows(da.from_array(e), labels),
                              fastxent.score_rows(e, labels)):
        check(lazy, expected)
    # a label that counts is still an error, when computed
    with pytest.raises(IndexError):
        fastxent.cross_entropy(da.from_array(e), np.array([0, -100, -100])).compute()


def test_row_scores_compute_and_persist_as_a_named_tuple():
    x = np.random.default_rng(4).standard_normal((6, 4))
    y = np.array([0, 1, 2, 3, 0, 1])
    rows = fastxent.score_rows(da.from_array(x, chunks=(2, 4)), y)
    want = fastxent.score_rows(x, y)
    (got,) = dask.compute(rows, scheduler="sync")
    assert type(got) is type(want)
    for g, w in zip(got, want):
        assert isinstance(g, np.ndarray)
        np.testing.assert_array_equal(g, w)
    (kept,) = dask.persist(rows, scheduler="sync")
    assert type(kept) is type(want) and isinstance(kept.nll, da.Array)
    assert want._replace(rank=None).rank is None and type(want)._make(want) == want
    with pytest.raises(ValueError, match="unexpected field"):
        want._replace(ranks=None)


@pytest.mark.parametrize("shape", [(0, 5), (3, 0), (0,), (2, 0, 3)])
@pytest.mark.parametrize("axis", [None, "all", 0, -1])
def test_entropy_of_empty_arrays(shape, axis):
    if axis == "all":
        axis = tuple(range(len(shape)))
    p = np.zeros(shape)
    want = fastxent.entropy(p, axis=axis)
    check(fastxent.entropy(da.from_array(p, chunks=2), axis=axis), want)
    check(fastxent.entropy(da.from_array(p, chunks=2), da.from_array(p, chunks=2), axis=axis),
          fastxent.entropy(p, p, axis=axis))


def test_masked_arrays_are_read_as_their_data():
    # as np.asarray reads a masked array in the NumPy path: the result does
    # not depend on the chunks (a masked block's sum skipped the mask)
    m = np.array([[0.5, 2.0, 0.1, 0.3], [1.0, 3.0, 0.2, 0.2]])
    want_h = fastxent.entropy(m, axis=1)
    want_s = fastxent.softmax(m, axis=1)
    for chunks in ((1, 2), (2, 4)):
        masked = da.ma.masked_greater(da.from_array(m, chunks=chunks), 1.0)
        check(fastxent.entropy(masked, axis=1), want_h)
        got = fastxent.softmax(masked, axis=1)
        assert type(got.compute(scheduler="sync")) is np.ndarray
        check(got, want_s)


def test_n_threads_checked_at_the_call():
    x = da.from_array(np.ones((4, 6)), chunks=(2, 3))   # the class axis split
    labels = np.array([0, 1, 2, 3])
    calls = [lambda n: fastxent.logsumexp(x, axis=1, n_threads=n),
             lambda n: fastxent.softmax(x, axis=1, n_threads=n),
             lambda n: fastxent.cross_entropy(x, labels, n_threads=n),
             lambda n: fastxent.nll_loss(x, labels, n_threads=n),
             lambda n: fastxent.kl_div(x, x, n_threads=n),
             lambda n: fastxent.entropy(x, axis=1, n_threads=n),
             lambda n: fastxent.softmax_entropy(x, n_threads=n),
             lambda n: fastxent.score_rows(x, labels, n_threads=n)]
    for call in calls:
        for bad, error in ((0, ValueError), (-1, ValueError), (1.5, TypeError), (True, TypeError)):
            with pytest.raises(error, match="n_threads"):
                call(bad)
        call(10**6)   # capped, as the NumPy path caps it
    want = fastxent.score_rows(np.ones((4, 6)), labels)
    for lazy, expected in zip(fastxent.score_rows(x, labels, n_threads=2), want):
        check(lazy, expected)


def test_split_class_axis_score_kernel_takes_n_threads(monkeypatch):
    # the blocks' kernel calls get the n_threads asked for (they were given 1)
    from fastxent import _dispatch
    from fastxent._dask import score as dscore

    seen = []
    real = _dispatch.kernel

    def kernel(name, dtype):
        k = real(name, dtype)
        if name != "score_states":
            return k

        def recorded(*args):
            seen.append(args[-1])
            return k(*args)
        return recorded

    monkeypatch.setattr(dscore._dispatch, "kernel", kernel)
    x = da.from_array(np.random.default_rng(1).standard_normal((4, 6)), chunks=(4, 3))
    labels = np.array([0, 1, 2, 3])
    for n, want in ((None, 1), (2, 2)):
        seen.clear()
        fastxent.score_rows(x, labels, n_threads=n).nll.compute(scheduler="sync")
        assert seen and set(seen) == {want}


def test_unknown_chunk_sizes_name_the_argument():
    x = da.from_array(np.ones((6, 4)), chunks=(3, 2))
    xu = x[x[:, 0] > 0]
    labels = np.zeros(6, np.int64)
    for call, name in ((lambda: fastxent.softmax_entropy(xu), "logits"),
                       (lambda: fastxent.softmax_kl_div(x, xu), "q_logits"),
                       (lambda: fastxent.entropy(xu), "pk"),
                       (lambda: fastxent.kl_div(xu, x), "input"),
                       (lambda: fastxent.binary_cross_entropy_with_logits(x, xu), "target"),
                       (lambda: fastxent.logsumexp(x, b=xu), "b"),
                       (lambda: fastxent.cross_entropy(xu, labels), "input"),
                       (lambda: fastxent.nll_loss(xu, labels), "input"),
                       (lambda: fastxent.score_rows(xu, labels), "input")):
        with pytest.raises(ValueError, match=f"^{name} has unknown chunk sizes.*"
                                             "compute_chunk_sizes"):
            call()
    # row-wise functions of one array work on them, as before
    np.testing.assert_array_equal(fastxent.logsumexp(xu, axis=1).compute(scheduler="sync"),
                                  fastxent.logsumexp(np.ones((6, 4)), axis=1))


class _OwnArray(da.Array):
    """A Dask array subclass of another module, as libraries define them."""


def test_dask_array_subclasses_stay_lazy():
    x = np.random.default_rng(5).standard_normal((6, 4))
    base = da.from_array(x, chunks=(3, 2))
    own = _OwnArray(base.dask, base.name, base.chunks, meta=base._meta)
    assert type(own).__module__ != "dask.array.core"
    check(fastxent.logsumexp(own, axis=1), fastxent.logsumexp(x, axis=1))
    check(fastxent.softmax_entropy(own), fastxent.softmax_entropy(x))
    labels = np.array([0, 1, 2, 3, 0, 1])
    check(fastxent.cross_entropy(own, labels, reduction="none"),
          fastxent.cross_entropy(x, labels, reduction="none"))


def _lazy_results(x, p, y):
    """One lazy result of each function, the class axis split (`x`, `p`)
    and in one chunk."""
    whole, pw = x.rechunk((2, 6)), p.rechunk((2, 6))
    return {
        "logsumexp": fastxent.logsumexp(x, axis=1),
        "logsumexp b sign": fastxent.logsumexp(whole, axis=1, b=pw, return_sign=True)[1],
        "softmax": fastxent.softmax(x, axis=1),
        "log_softmax whole": fastxent.log_softmax(whole, axis=1),
        "softmax 0-d": fastxent.softmax(x[0, 0]),
        "cross_entropy": fastxent.cross_entropy(x, y),
        "cross_entropy whole": fastxent.cross_entropy(whole, y, weight=np.ones(6)),
        "nll_loss": fastxent.nll_loss(x, y),
        "bce": fastxent.binary_cross_entropy_with_logits(x, p),
        "bce none": fastxent.binary_cross_entropy_with_logits(x, p, reduction="none"),
        "kl_div": fastxent.kl_div(x, p, reduction="batchmean"),
        "score_rows": fastxent.score_rows(x, y).nll,
        "score_rows whole": fastxent.score_rows(whole, y).brier,
        "entropy": fastxent.entropy(p, axis=1),
        "entropy whole": fastxent.entropy(pw, pw, axis=1),
        "entropy 0-d": fastxent.entropy(p[0]),
        "softmax_entropy": fastxent.softmax_entropy(x),
        "softmax_kl_div whole": fastxent.softmax_kl_div(whole, x),
    }


def test_lazy_results_pickle_and_have_deterministic_names():
    # as Dask's own arrays: plain pickle takes the graph (its tasks call
    # module-level functions), and the same call names the same graph
    import pickle

    rng = np.random.default_rng(9)
    xn, pn = rng.standard_normal((4, 6)), rng.random((4, 6))
    x, p = da.from_array(xn, chunks=(2, 3)), da.from_array(pn, chunks=(2, 3))
    y = np.array([0, 5, 2, 1])
    first, again = _lazy_results(x, p, y), _lazy_results(x, p, y)
    for key, lazy in first.items():
        assert again[key].name == lazy.name, key
        back = pickle.loads(pickle.dumps(lazy))
        # the same values; Dask may re-plan an unpickled graph's own sum of
        # the blocks' float64 totals in another order (seen: one ulp of a
        # mean, in one environment of two), so not always the same bits
        np.testing.assert_allclose(back.compute(scheduler="sync"),
                                   lazy.compute(scheduler="sync"), rtol=1e-15, atol=0,
                                   err_msg=key)
    # other options, other names
    assert (fastxent.kl_div(x, p, log_target=True).name
            != fastxent.kl_div(x, p, log_target=False).name)
    assert (fastxent.cross_entropy(x.rechunk((2, 6)), y, label_smoothing=0.1).name
            != fastxent.cross_entropy(x.rechunk((2, 6)), y).name)
    assert fastxent.entropy(p, axis=1, base=2).name != fastxent.entropy(p, axis=1).name


def test_lazy_row_scores_pickle():
    import pickle

    x = np.random.default_rng(6).standard_normal((6, 4))
    y = np.array([0, 1, 2, 3, 0, 1])
    rows = fastxent.score_rows(da.from_array(x, chunks=(3, 2)), y)
    back = pickle.loads(pickle.dumps(rows))
    assert type(back) is type(rows)
    for a, b in zip(back, fastxent.score_rows(x, y)):
        check(a, b)
