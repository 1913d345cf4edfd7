"""Bad arguments give SciPy's exception type and message where fastxent stands
in for scipy.stats.entropy and scipy.special.logsumexp: SciPy's own tests,
and code written against SciPy, match on those messages.

Each case runs the same bad call through SciPy and through fastxent and
compares the type and the message.  Cases where SciPy does not raise, or
raises only by accident of its implementation (an object array failing deep
inside a ufunc), are not compared: fastxent raises its own, clearer
TypeError there (see test_input_validation.py).
"""
import numpy as np
import pytest

scipy_special = pytest.importorskip("scipy.special")
scipy_stats = pytest.importorskip("scipy.stats")

ENTROPY_CASES = {
    "base zero": dict(pk=[1.0, 2.0], base=0),
    "base negative": dict(pk=[1.0, 2.0], base=-1.5),
    "base negative int": dict(pk=[1, 2], qk=[2, 1], base=-2),
    "qk shape": dict(pk=[1.0, 2.0, 3.0], qk=[1.0, 2.0]),
    "qk shape 2-d": dict(pk=np.ones((2, 3)), qk=np.ones((3, 2))),
    "axis out of range": dict(pk=[1.0, 2.0], axis=2),
    "axis out of range 2-d": dict(pk=np.ones((2, 2)), axis=-3),
    "axis out of range with qk": dict(pk=np.ones(2), qk=np.ones(2), axis=-3),
    "axis of a 0-d pk": dict(pk=5.0, axis=1),
    "axis not an integer": dict(pk=np.ones((2, 2)), axis="a"),
    "ragged pk": dict(pk=[[1.0, 2.0], [1.0]]),
}

LOGSUMEXP_CASES = {
    "b shape": dict(a=[1.0, 2.0, 3.0], b=[1.0, 2.0]),
    "b shape 2-d": dict(a=np.ones((2, 3)), b=np.ones((3, 2))),
    "b empty": dict(a=np.ones((2, 3)), b=np.ones(0)),
    "axis out of range": dict(a=[1.0, 2.0], axis=2),
    "axis out of range negative": dict(a=np.ones((2, 2)), axis=-3),
    "axis of a 0-d a": dict(a=5.0, axis=1),
    "axis in a tuple out of range": dict(a=np.ones((2, 2)), axis=(0, 2)),
    "axis repeated": dict(a=np.ones((2, 2)), axis=(0, 0)),
    "axis repeated as negative": dict(a=np.ones((2, 2)), axis=(0, -2)),
    "axis a float": dict(a=np.ones((2, 2)), axis=1.0),
    "axis a float in a tuple": dict(a=np.ones((2, 2)), axis=(0, 1.0)),
    "axis a string": dict(a=np.ones(2), axis="a"),
    "ragged a": dict(a=[[1.0, 2.0], [1.0]]),
}


def _raised(func, kwargs):
    with pytest.raises(Exception) as info:
        func(**kwargs)
    return type(info.value), str(info.value)


def _compare(scipy_func, fx_func, kwargs):
    want_type, want = _raised(scipy_func, kwargs)
    got_type, got = _raised(fx_func, kwargs)
    assert got_type is want_type, (got_type, got, want_type, want)
    if "inhomogeneous" in want:
        # NumPy's ragged-array message, which fastxent prefixes with the
        # argument's name
        assert got.endswith(want), (got, want)
    else:
        assert got == want


@pytest.mark.parametrize("case", ENTROPY_CASES)
def test_entropy_errors_as_scipy(fx, case):
    _compare(scipy_stats.entropy, fx.entropy, ENTROPY_CASES[case])


@pytest.mark.parametrize("case", LOGSUMEXP_CASES)
def test_logsumexp_errors_as_scipy(fx, case):
    _compare(scipy_special.logsumexp, fx.logsumexp, LOGSUMEXP_CASES[case])


def test_broadcast_error_notes_the_shapes(fx):
    """SciPy's message does not say which shapes: a note does."""
    with pytest.raises(ValueError) as info:
        fx.entropy([1.0, 2.0, 3.0], [1.0, 2.0])
    assert info.value.__notes__ == ["pk of shape (3,) and qk of shape (2,) do not broadcast"]
    with pytest.raises(ValueError) as info:
        fx.logsumexp(np.ones((2, 3)), b=np.ones(4))
    assert info.value.__notes__ == ["a of shape (2, 3) and b of shape (4,) do not broadcast"]
