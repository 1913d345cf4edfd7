"""Accuracy against a 50-digit mpmath reference (float64) and against float64
answers (float32 rows of 262144 classes).

The mpmath values are computed from the exact binary values of the float64
inputs, so an error here is the error of fastxent's arithmetic alone.
"""

import numpy as np
import pytest

mpmath = pytest.importorskip("mpmath")
mpf = mpmath.mpf

ULPS = 4


_CACHE = {}


def mp_logsumexp(row, b=None):
    """log|sum(b exp(row))| and its sign, in 50 digits."""
    key = (row.tobytes(), None if b is None else b.tobytes())
    if key not in _CACHE:
        _CACHE[key] = _mp_logsumexp(row, b)
    return _CACHE[key]


def _mp_logsumexp(row, b):
    with mpmath.workdps(50):
        weights = np.ones(len(row)) if b is None else b
        total = mpmath.fsum(
            mpf(float(w)) * mpmath.exp(mpf(float(v)))
            for v, w in zip(row, weights)
            if v != -np.inf and w != 0
        )
        if total == 0:
            return mpf("-inf"), 0
        return mpmath.log(abs(total)), (1 if total > 0 else -1)


def mp_log_softmax(row):
    """log_softmax of a finite-max row, each entry to 50 digits, rounded to float64."""
    lse, _ = mp_logsumexp(row)
    with mpmath.workdps(50):
        return np.array([float(mpf(float(v)) - lse) if v != -np.inf else -np.inf for v in row])


def mp_softmax(row):
    lse, _ = mp_logsumexp(row)
    with mpmath.workdps(50):
        return np.array([float(mpmath.exp(mpf(float(v)) - lse)) for v in row])


def ulps(got, exact):
    """|got - exact| in units of the last place of `exact` (exact infs must match)."""
    got = np.asarray(got, dtype=np.float64)
    exact = np.asarray(exact, dtype=np.float64)
    same = got == exact  # covers infinities and exact zeros
    with np.errstate(invalid="ignore"):
        err = np.where(same, 0.0, np.abs(got - exact) / np.spacing(np.abs(exact)))
    return np.nan_to_num(err, nan=np.inf)


def assert_ulps(got, exact, limit=ULPS, err_msg=""):
    err = ulps(got, exact)
    worst = int(np.argmax(err))
    assert err.flat[worst] <= limit, (
        f"{err_msg}: {err.flat[worst]:.1f} ulp at index {worst}: "
        f"got {np.asarray(got).flat[worst]!r}, exact {np.asarray(exact).flat[worst]!r}"
    )


def _rows():
    """(description, float64 row) with a finite maximum."""
    rng = np.random.default_rng(2024)
    yield "[0, -40]: result 4.2e-18", np.array([0.0, -40.0])
    yield "[0, -40, -45, -700]", np.array([0.0, -40.0, -45.0, -700.0])
    yield "[0, -1e-20]: log 2 + tiny", np.array([0.0, -1e-20])
    yield "[0, 0, 0, -40]: ties and a tiny term", np.array([0.0, 0.0, 0.0, -40.0])
    yield "[1000, 999]", np.array([1000.0, 999.0])
    yield "[-1000, -1001, -1002]", np.array([-1000.0, -1001.0, -1002.0])
    yield "[0, -inf, -3, -inf]", np.array([0.0, -np.inf, -3.0, -np.inf])
    yield "single element", np.array([-2.5])
    yield "single finite element among -inf", np.array([-np.inf, 7.25, -np.inf])
    dominating = rng.standard_normal(1000)
    dominating[17] = 45.0
    yield "one dominating element of 1000", dominating
    dominating = 3 * rng.standard_normal(20000)
    dominating[4321] = 40.0
    yield "one dominating element of 20000", dominating
    for n in (2, 3, 7, 10, 33, 100, 1000, 10000):
        yield f"normal*3, n={n}", 3 * rng.standard_normal(n)
    yield "normal*30, n=1000", 30 * rng.standard_normal(1000)
    yield "uniform(-1, 1), n=5000", rng.uniform(-1, 1, 5000)
    masked = 3 * rng.standard_normal(20000)
    masked[rng.random(20000) < 0.3] = -np.inf
    yield "30% -inf, n=20000", masked
    yield "long row normal, n=50000", rng.standard_normal(50000)


ROWS = list(_rows())


@pytest.mark.parametrize("desc, row", ROWS, ids=[d for d, _ in ROWS])
def test_logsumexp_within_4_ulp(fx, desc, row):
    exact, _ = mp_logsumexp(row)
    got = fx.logsumexp(row)
    assert_ulps(got, float(exact), err_msg=desc)
    # the same row as one of several rows of a 2-d array, and reversed
    rows = np.stack([row, row[::-1]])
    assert_ulps(fx.logsumexp(rows, axis=1), [float(exact)] * 2, err_msg=desc + " (2-d)")
    assert_ulps(fx.logsumexp(rows.T, axis=0), [float(exact)] * 2, err_msg=desc + " (axis 0)")


@pytest.mark.parametrize("desc, row", ROWS, ids=[d for d, _ in ROWS])
def test_log_softmax_within_4_ulp(fx, desc, row):
    exact = mp_log_softmax(row)
    assert_ulps(fx.log_softmax(row), exact, err_msg=desc)
    assert_ulps(fx.log_softmax(np.stack([row, row]), axis=1), np.stack([exact, exact]),
                err_msg=desc + " (2-d)")
    assert_ulps(fx.log_softmax(np.stack([row, row]).T, axis=0), np.stack([exact, exact]).T,
                err_msg=desc + " (axis 0)")


@pytest.mark.parametrize("desc, row", ROWS[:-3], ids=[d for d, _ in ROWS[:-3]])
def test_softmax_relative_error(fx, desc, row):
    # exp amplifies the one rounding of x - max: relative error up to
    # eps * |x - max| is inherent to any float64 computation, plus a few ulp
    exact = mp_softmax(row)
    got = fx.softmax(row)
    finite = np.isfinite(row)
    bound = np.finfo(np.float64).eps * (np.abs(row - row.max()) + 8)
    rel = np.abs(got[finite] - exact[finite]) / np.abs(exact[finite])
    tiny = exact[finite] < np.finfo(np.float64).tiny  # may be flushed to zero
    assert np.all((rel <= bound[finite]) | tiny), f"{desc}: worst {np.max(rel / bound[finite]):.2f}x"
    assert np.all(got[~finite] == 0)


@pytest.mark.parametrize("desc, row", ROWS, ids=[d for d, _ in ROWS])
def test_softmax_at_the_max_within_4_eps(fx, desc, row):
    # where x == max, x - max = 0 exactly and softmax is 1 / sum(exp(x - max)):
    # no error is inherent, only the sum's.  Relative error <= 4 eps (values
    # in [0.5, 1) have ulps of eps / 2; SciPy stays within 3 eps on these rows)
    lse, _ = mp_logsumexp(row)
    m = row.max()
    with mpmath.workdps(50):
        exact = float(mpmath.exp(mpf(float(m)) - lse))
    limit = 4 * np.finfo(np.float64).eps
    got = fx.softmax(row)[row == m]
    rel = np.abs(got - exact) / exact
    assert np.all(rel <= limit), f"{desc}: relative error {rel.max() / limit * 4:.1f} eps"
    both = np.stack([row, row[::-1]])
    got = fx.softmax(both, axis=1)[both == m]
    rel = np.abs(got - exact) / exact
    assert np.all(rel <= limit), f"{desc} (2-d): relative error {rel.max() / limit * 4:.1f} eps"


def test_log_softmax_of_dominating_element_is_not_zero(fx):
    x = np.array([50.0, 10.0, 9.0, 8.0])
    got = fx.log_softmax(x)
    assert got[0] < 0  # SciPy returns 0.0 here
    assert_ulps(got, mp_log_softmax(x))


WEIGHTED = [
    ("positive weights", np.array([1.0, 2.0, 3.0, -1.0]), np.array([0.5, 2.0, 1.0, 3.0])),
    ("zero weight on the max", np.array([10.0, 0.0, -1.0]), np.array([0.0, 1.0, 1.0])),
    ("tiny remainder", np.array([0.0, -40.0]), np.array([1.0, 1.0])),
    ("subtraction", np.array([3.0, 1.0, 0.0]), np.array([1.0, -1.0, -1.0])),
    ("negative total", np.array([5.0, 0.0]), np.array([-2.0, 1.0])),
    ("tiny subtraction", np.array([0.0, -40.0]), np.array([1.0, -1.0])),
    ("random positive, n=3000", np.random.default_rng(3).standard_normal(3000),
     np.random.default_rng(4).uniform(0, 2, 3000)),
]


@pytest.mark.parametrize("desc, a, b", WEIGHTED, ids=[d for d, _, _ in WEIGHTED])
def test_weighted_logsumexp_within_4_ulp(fx, desc, a, b):
    exact, sign = mp_logsumexp(a, b)
    got, sgn = fx.logsumexp(a, b=b, return_sign=True)
    assert sgn == sign
    assert_ulps(got, float(exact), err_msg=desc)


# ---------------------------------------------------------------------------
# float32 rows of 262144 classes against the float64 answer

V = 262144


def _float32_rows():
    rng = np.random.default_rng(99)
    rows = np.empty((6, V), np.float32)
    rows[0] = rng.standard_normal(V)
    rows[1] = 5 * rng.standard_normal(V)
    rows[2] = rng.uniform(-1, 1, V)
    rows[3] = 0.0
    rows[4] = rng.standard_normal(V) - 30
    rows[4, rng.random(V) < 0.5] = -np.inf
    rows[5] = rng.standard_normal(V)
    rows[5, 1234] = 25.0  # one dominating logit
    return rows


@pytest.fixture(scope="module")
def long_rows():
    return _float32_rows()


def test_float32_long_rows_logsumexp(fx, ref, long_rows):
    want = ref.logsumexp(long_rows.astype(np.float64), axis=1)
    got = fx.logsumexp(long_rows, axis=1)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=0)
    for i, row in enumerate(long_rows):  # each row alone: the long-row (split) path
        np.testing.assert_allclose(fx.logsumexp(row), want[i], rtol=1e-6, atol=0, err_msg=str(i))
    # the class axis first: reduction across the inner dimension
    np.testing.assert_allclose(fx.logsumexp(np.ascontiguousarray(long_rows[:3].T), axis=0),
                               want[:3], rtol=1e-6, atol=0)


def _at_argmax(values, rows):
    return values[np.arange(len(rows)), np.argmax(rows, axis=1)]


def test_float32_long_rows_log_softmax(fx, ref, long_rows):
    want = _at_argmax(ref.log_softmax(long_rows.astype(np.float64), axis=1), long_rows)
    got = fx.log_softmax(long_rows, axis=1)
    assert got.dtype == np.float32
    np.testing.assert_allclose(_at_argmax(got, long_rows), want, rtol=1e-6, atol=0)
    # the whole of one row, for the entries far from zero
    row = long_rows[0]
    np.testing.assert_allclose(fx.log_softmax(row), ref.log_softmax(row.astype(np.float64)),
                               rtol=1e-6, atol=0)


def test_float32_long_rows_softmax(fx, ref, long_rows):
    # the max entry is 1 / sum(exp(x - max)): the relative error of the sum
    want = _at_argmax(ref.softmax(long_rows.astype(np.float64), axis=1), long_rows)
    got = fx.softmax(long_rows, axis=1)
    assert got.dtype == np.float32
    np.testing.assert_allclose(_at_argmax(got, long_rows), want, rtol=1e-6, atol=0)


def test_float16_long_row_within_one_ulp(fx, ref):
    row = np.random.default_rng(5).standard_normal(V).astype(np.float16)
    want = ref.logsumexp(row.astype(np.float64))
    got = fx.logsumexp(row)
    assert got.dtype == np.float16
    assert abs(float(got) - want) <= float(np.spacing(np.float16(want)))


def _mp_grouped_logsumexp(values, a, b):
    """log|sum(b exp(a))| and its sign for `a` drawn from the few `values`:
    the weights of each value are added exactly (math.fsum), then combined
    in 50 digits -- a reference for rows of millions of terms."""
    import math

    with mpmath.workdps(50):
        total = mpmath.fsum(mpf(math.fsum(b[a == v].tolist())) * mpmath.exp(mpf(float(v)))
                            for v in values)
        return mpmath.log(abs(total)), (1 if total > 0 else -1)


def test_weighted_long_row_stays_within_ulps(fx):
    """A weighted sum of 10^6 terms keeps float64 results within a few ulp
    (a plain running sum drifts by thousands of ulp at this length)."""
    n = 10**6
    got = fx.logsumexp(np.zeros(n), b=0.1)
    with mpmath.workdps(50):
        exact = mpmath.log(mpf(0.1) * n)
    assert ulps(got, float(exact)) <= ULPS

    rng = np.random.default_rng(2024)
    values = np.array([-3.25, -1.5, 0.0, 0.75, 2.0])
    a = rng.choice(values, n)
    for b, want_sign in ((rng.uniform(0.0, 1.0, n), 1), (rng.uniform(-1.0, 0.9, n), -1),
                         (rng.uniform(-0.9, 1.0, n), 1)):
        lse, sign = fx.logsumexp(a, b=b, return_sign=True)
        exact, exact_sign = _mp_grouped_logsumexp(values, a, b)
        assert sign == exact_sign == want_sign
        assert ulps(lse, float(exact)) <= ULPS, (lse, float(exact))
