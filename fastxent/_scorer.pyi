# Types of _scorer.py (checked against it by mypy.stubtest in
# tests/test_typing.py).  Metrics are Python floats (NaN where undefined),
# counts Python ints.
from collections.abc import Iterable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["Scorer", "score"]

CHUNK_BYTES: int

def metric_names(topk: int | Iterable[int] = ...) -> list[str]: ...

class Scorer:
    topk: tuple[int, ...]
    n_bins: int
    ignore_index: int
    temperature: float
    n_threads: int | None
    @property
    def count(self) -> int: ...
    @property
    def undefined(self) -> int: ...
    @property
    def nll_sum(self) -> float: ...
    @property
    def entropy_sum(self) -> float: ...
    @property
    def brier_sum(self) -> float: ...
    @property
    def rank_counts(self) -> list[int]: ...
    @property
    def bin_count(self) -> list[int]: ...
    @property
    def bin_correct(self) -> list[int]: ...
    @property
    def bin_confidence_sum(self) -> NDArray[np.float64]: ...
    def __init__(
        self,
        *,
        topk: int | Iterable[int] = ...,
        n_bins: int = 15,
        ignore_index: int = -100,
        temperature: float = 1.0,
        n_threads: int | None = None,
    ) -> None: ...
    def __copy__(self) -> Scorer: ...
    def __setstate__(self, state: dict[str, Any]) -> None: ...
    def reset(self) -> Scorer: ...
    def update(self, input: ArrayLike, target: ArrayLike) -> Scorer: ...
    def merge(self, other: Scorer) -> Scorer: ...
    def reliability(self) -> dict[str, NDArray[Any]]: ...
    def result(self) -> dict[str, Any]: ...

def score(
    input: ArrayLike,
    target: ArrayLike,
    *,
    topk: int | Iterable[int] = ...,
    n_bins: int = 15,
    ignore_index: int = -100,
    temperature: float = 1.0,
    n_threads: int | None = None,
) -> dict[str, Any]: ...
