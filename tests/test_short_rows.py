"""The short-row kernels: many rows of at most 64 classes, taken 64 rows at a
time side by side (AVX2 builds: 8 rows per register, float32 in registers).

Each result is checked against the row kernels (a row alone is too few rows
for the short-row path) and, where rounding is the same by construction,
bit for bit against the other short-row routes: contiguous rows, strided
rows, a partial last group of 8 and an in-place call."""

import numpy as np
import pytest

from arrays import assert_agree, assert_bitwise_equal

FUNCS = ["logsumexp", "log_softmax", "softmax"]
DTYPES = [np.float32, np.float64, np.float16]
DTYPE_IDS = ["float32", "float64", "float16"]
# rows of more than 16 classes: their exps summed in runs of 16, written
# back 8 columns at a time; and both sides of the limit of 64
WIDE_C = (17, 20, 31, 32, 33, 47, 63, 64, 65)


def _call(fx, name, x, **kwargs):
    f = getattr(fx, name)
    return f(x, axis=-1, **kwargs)


def _row_by_row(fx, name, x):
    """Each row alone: the row kernels, not the short-row path."""
    return np.stack([_call(fx, name, x[i:i + 1])[0] for i in range(x.shape[0])])


def _special_rows(x, rng):
    """Put rows that leave the fast route into x (in place): -inf entries,
    a row of -inf, +inf, NaN, ties at the max and a range wide enough that
    exp(x - max) is subnormal or 0."""
    n, c = x.shape
    picks = rng.choice(n, size=min(n, 9), replace=False)
    rows = [
        np.r_[np.full(c - 1, -np.inf), 1.0][:c],
        np.full(c, -np.inf),
        np.r_[np.inf, np.zeros(c - 1)][:c],
        np.r_[np.nan, np.zeros(c - 1)][:c],
        np.zeros(c),
        np.r_[2.0, 2.0, np.linspace(-1, 1, c)][:c],
        np.r_[0.0, np.linspace(-90, -120, c - 1)][:c],
        np.r_[0.0, np.full(c - 1, -88.0)][:c],
        np.r_[np.inf, np.inf, np.zeros(c)][:c],
    ]
    for i, r in zip(picks, rows):
        x[i] = r
    return x


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("special", [False, True], ids=["finite", "special"])
def test_every_class_count_matches_row_kernels(fx, name, dtype, special):
    rng = np.random.default_rng(7)
    for c in (*range(1, 17), *WIDE_C):
        for n in (16, 67, 130):
            x = (rng.standard_normal((n, c)) * 3).astype(dtype)
            if special:
                with np.errstate(invalid="ignore"):
                    _special_rows(x, rng)
            with np.errstate(all="ignore"):
                got = _call(fx, name, x)
                want = _row_by_row(fx, name, x)
            assert_agree(got, want, x, name, f"{name} {n} x {c}")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", FUNCS)
def test_contiguous_strided_and_in_place_rows_agree_bitwise(fx, name, dtype):
    rng = np.random.default_rng(8)
    for c in (1, 3, 8, 10, 16, 17, 40, 64):
        for n in (16, 61, 64, 200):
            wide = (rng.standard_normal((n, c + 5)) * 4).astype(dtype)
            strided = wide[:, :c]
            contiguous = np.ascontiguousarray(strided)
            want = _call(fx, name, contiguous)
            assert_bitwise_equal(_call(fx, name, strided), want, f"strided {n} x {c}")
            out = np.empty_like(want)
            assert_bitwise_equal(_call(fx, name, contiguous, out=out), want, f"out= {n} x {c}")
            if name != "logsumexp":
                inplace = contiguous.copy()
                _call(fx, name, inplace, out=inplace)
                assert_bitwise_equal(inplace, want, f"in place {n} x {c}")


@pytest.mark.parametrize("name", FUNCS)
def test_bitwise_identical_across_thread_counts(fx, name):
    for c in (10, 40):
        x = np.random.default_rng(9).standard_normal((100_003 // c * 10, c)).astype(np.float32)
        _special_rows(x, np.random.default_rng(10))
        with np.errstate(all="ignore"):
            want = _call(fx, name, x, n_threads=1)
            assert_bitwise_equal(_call(fx, name, x, n_threads=2), want, f"{name} C={c}")


@pytest.mark.parametrize("name", FUNCS)
def test_float16_rows_are_float32_results_rounded_once(fx, name):
    # float16 rows are converted into float32 blocks and take float32's route
    # (AVX2 builds) or the same operations in the portable loops; either way
    # each value is float32's result rounded once to float16.  Rows of up to
    # 16 classes give those bits on every layout; longer ones with strided
    # classes take the row kernels, whose sums may round differently from
    # the lanes' (and, for float16, from float32's row kernels): there the
    # tolerance of test_every_class_count_matches_row_kernels
    rng = np.random.default_rng(12)
    for c in (*range(1, 17), *WIDE_C):
        for layout in ("C", "strided"):
            x = (rng.standard_normal((203, c)) * 4).astype(np.float16)
            _special_rows(x, rng)
            if layout == "strided":
                x = np.repeat(x, 2, axis=1)[:, ::2]
            with np.errstate(all="ignore"):
                got = _call(fx, name, x)
                want = _call(fx, name, x.astype(np.float32)).astype(np.float16)
            if layout == "C" or c <= 16:
                assert_bitwise_equal(got, want, f"{layout} {c}")
            else:
                assert_agree(got, want, x, name, f"{layout} {c}")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("special", [False, True], ids=["finite", "special"])
def test_logsumexp_rows_of_up_to_64(fx, dtype, special):
    rng = np.random.default_rng(17)
    for c in WIDE_C:
        for n in (16, 67):
            x = (rng.standard_normal((n, c)) * 3).astype(dtype)
            if special:
                with np.errstate(invalid="ignore"):
                    _special_rows(x, rng)
            with np.errstate(all="ignore"):
                got = fx.logsumexp(x, axis=-1)
                want = _row_by_row(fx, "logsumexp", x)
                assert_agree(got, want, x, "logsumexp", f"{n} x {c}")
                signed = fx.logsumexp(x, axis=-1, return_sign=True)
                alone = [fx.logsumexp(x[i:i + 1], axis=-1, return_sign=True) for i in range(n)]
                want_signed = tuple(np.concatenate(v) for v in zip(*alone))
                assert_agree(signed, want_signed, x, "logsumexp", f"sign {n} x {c}")
            # rows apart in memory, an out= array, float16 as float32's
            # result rounded once: the same bits
            wide = np.concatenate([x, x[:, :5]], axis=1)
            with np.errstate(all="ignore"):
                assert_bitwise_equal(fx.logsumexp(wide[:, :c], axis=-1), got, f"strided {c}")
                out = np.empty_like(got)
                assert_bitwise_equal(fx.logsumexp(x, axis=-1, out=out), got, f"out= {c}")
                if dtype == np.float16:
                    want16 = fx.logsumexp(x.astype(np.float32), axis=-1).astype(np.float16)
                    assert_bitwise_equal(got, want16, f"float16 {c}")


def test_logsumexp_rows_of_up_to_64_on_threads_and_against_scipy(fx, scipy_special):
    x = np.random.default_rng(18).standard_normal((20_003, 40)).astype(np.float32)
    _special_rows(x, np.random.default_rng(19))
    with np.errstate(all="ignore"):
        want = fx.logsumexp(x, axis=-1, n_threads=1)
        assert_bitwise_equal(fx.logsumexp(x, axis=-1, n_threads=2), want, "threads")
        assert_agree(want, scipy_special.logsumexp(x, axis=-1), x, "logsumexp", "scipy")


def test_logsumexp_near_zero_keeps_its_digits(fx):
    # one dominant logit at 0: the result is log1p(sum of tiny exps), which
    # a sum that includes the 1 would round away in float32
    a = np.linspace(8, 80, 640)
    for c in (2, 5, 10, 16, 17, 40, 64):
        x = np.zeros((a.size, c), np.float32)
        x[:, 1:] = -a[:, None].astype(np.float32)
        want = np.log1p((c - 1) * np.exp(x[:, 1].astype(np.float64)))
        got = fx.logsumexp(x, axis=-1).astype(np.float64)
        np.testing.assert_allclose(got, want, rtol=4 * np.finfo(np.float32).eps, atol=0)


def test_log_softmax_of_the_max_near_zero(fx):
    a = np.linspace(8, 80, 640).astype(np.float32)
    for c in (10, 17, 40, 64):
        x = np.zeros((a.size, c), np.float32)
        x[:, 1:] = -a[:, None]
        want = -np.log1p((c - 1) * np.exp(-a.astype(np.float64)))
        got = fx.log_softmax(x, axis=-1)[:, 0].astype(np.float64)
        np.testing.assert_allclose(got, want, rtol=4 * np.finfo(np.float32).eps, atol=0,
                                   err_msg=f"C={c}")


@pytest.mark.parametrize("name", FUNCS)
def test_short_rows_match_scipy(fx, scipy_special, name):
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((1000, 10)) * 5).astype(np.float32)
    with np.errstate(invalid="ignore"):
        _special_rows(x, rng)
    with np.errstate(all="ignore"):
        got = _call(fx, name, x)
        want = getattr(scipy_special, name)(x, axis=-1)
    assert_agree(got, want, x, name, name)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduction", ["none", "sum"])
def test_cross_entropy_loss_bits_do_not_depend_on_the_gradient(fx, dtype, reduction):
    # without a gradient (and without label smoothing) the short-row loss
    # takes a vectorized route; with one, the per-row loop: same bits
    rng = np.random.default_rng(12)
    for c in (2, 7, 10, 16, 17, 40, 64, 65):
        x = (rng.standard_normal((203, c)) * 3).astype(dtype)
        t = rng.integers(0, c, 203)
        w = (rng.random(c) + 0.5).astype(dtype)
        w[0] = 0
        for special in (False, True):
            if special:
                with np.errstate(invalid="ignore"):
                    _special_rows(x, rng)
                t[::17] = -100
            for weight in (None, w):
                with np.errstate(all="ignore"):
                    loss = fx.cross_entropy(x, t, weight=weight, reduction=reduction)
                    with_grad = fx.cross_entropy(x, t, weight=weight, reduction=reduction,
                                                 return_grad=True)[0]
                assert_bitwise_equal(loss, with_grad, f"C={c} special={special}")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_rows_written_back_stay_inside_the_output(fx, dtype):
    # rows are written back from the block with whole-vector stores where
    # what they run over is rewritten later: never past the last row
    rng = np.random.default_rng(13)
    for c in (*range(1, 17), 17, 23, 40, 63, 64):
        for n in (16, 61, 67):
            wide = (rng.standard_normal((n, c + 3)) * 3).astype(dtype)
            x = wide[:, :c]                      # strided rows: the transposed route
            t = rng.integers(0, c, n)
            t[5] = -100
            for what in ("softmax", "log_softmax", "grad"):
                buf = np.full(n * c + 16, 7.0, dtype)
                out = buf[8:8 + n * c].reshape(n, c)
                if what == "grad":
                    want = fx.cross_entropy(x, t, return_grad=True)[1]
                    fx.cross_entropy(x, t, return_grad=True, grad_out=out)
                else:
                    want = _call(fx, what, x)
                    _call(fx, what, x, out=out)
                assert_bitwise_equal(out, want, f"{what} {n} x {c}")
                assert (buf[:8] == 7).all() and (buf[-8:] == 7).all(), f"{what} {n} x {c}"


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", FUNCS)
def test_a_row_does_not_depend_on_its_neighbours(fx, name, dtype):
    # a tie in one row, or where the block ends, must not change the others
    rng = np.random.default_rng(14)
    for c in (3, 10, 16, 40):
        a = (rng.standard_normal((72, c)) * 3).astype(dtype)
        want = _call(fx, name, a)
        for row in (0, 30, 63, 71):
            b = a.copy()
            b[row, :2] = b[row].max()        # ties at the max (k = 2)
            got = _call(fx, name, b)
            keep = np.arange(a.shape[0]) != row
            assert_bitwise_equal(got[keep], want[keep], f"C={c} tie in row {row}")
        for n in (61, 64, 65):
            assert_bitwise_equal(_call(fx, name, a[:n]), want[:n], f"C={c} first {n} rows")


@pytest.mark.parametrize("name", FUNCS)
def test_record_fields_and_column_strides(fx, name):
    # rows whose stride is not a whole number of elements (a record field),
    # and F-ordered rows: the same results as contiguous copies
    rng = np.random.default_rng(15)
    rec = np.zeros(40, [("a", "<f4", (3,)), ("b", "u1")])
    rec["a"] = rng.standard_normal((40, 3))
    field = rec["a"]
    want = _call(fx, name, np.ascontiguousarray(field))
    assert_bitwise_equal(_call(fx, name, field), want, "record field")
    assert_bitwise_equal(_call(fx, name, field[::-1]), want[::-1], "reversed record field")
    f = np.asfortranarray(rng.standard_normal((300, 12)).astype(np.float32))
    # the F-ordered rows (classes strided) against two other routes: the
    # short-row kernel on a contiguous copy and the row kernels row by row
    got = _call(fx, name, f)
    assert_agree(got, _call(fx, name, np.ascontiguousarray(f)), f, name, "F order")
    assert_agree(got, _row_by_row(fx, name, f), f, name, "F order vs one row at a time")
