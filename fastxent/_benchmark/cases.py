"""The shapes of a run and their seeded data."""

from __future__ import annotations

from dataclasses import dataclass


DEFAULT_SEED = 0


@dataclass(frozen=True)
class Case:
    """One input: ``rows x cols`` of ``dtype``, reduced along the last axis."""

    rows: int
    cols: int
    dtype: str
    overhead: bool = False  # a call-overhead row: many calls, microseconds

    @property
    def shape(self):
        return (self.rows, self.cols)

    @property
    def label(self):
        return f"{self.rows} x {self.cols}"

    @property
    def size(self):
        return self.rows * self.cols


def cases(quick=False, large=False, calls=False):
    """The shapes of a run, in the order they are timed; with `calls`, only
    the call-overhead row."""
    if calls:
        return [Case(1, 10, "float64", overhead=True)]
    if quick:
        out = [Case(64, 50257, "float32"), Case(100_000, 10, "float32"), Case(10_000, 1000, "float64"),
               Case(64, 50257, "float16")]
        if large:
            out.append(Case(256, 50257, "float32"))
    else:
        out = [Case(1024, 50257, "float32"), Case(1_000_000, 10, "float32"), Case(100_000, 1000, "float64"),
               Case(1024, 50257, "float16")]
        if large:
            out.append(Case(4096, 50257, "float32"))
    out.append(Case(1, 10, "float64", overhead=True))
    return out


def standard_normal(rng, shape, dtype):
    """Standard-normal values of ``dtype``; float16 (which NumPy's generator
    does not make) rounded once from float32."""
    import numpy as np

    dtype = np.dtype(dtype)
    if dtype == np.float16:
        return rng.standard_normal(shape, dtype=np.float32).astype(np.float16)
    return rng.standard_normal(shape, dtype=dtype)


def make_data(case, seed=DEFAULT_SEED):
    """Seeded standard-normal logits of ``case``'s shape and dtype (touched)."""
    import numpy as np

    rng = np.random.default_rng([seed, case.rows, case.cols])
    return standard_normal(rng, case.shape, case.dtype)
