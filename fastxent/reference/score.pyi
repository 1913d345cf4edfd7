# Types of score.py (checked against it by mypy.stubtest in
# tests/test_typing.py): those of fastxent.score_rows without out and
# n_threads.
from collections.abc import Iterable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["score_rows", "RowScores", "ROW_FIELDS"]

ROW_FIELDS: tuple[str, str, str, str, str, str]

class RowScores(tuple[Any, ...]):
    _fields: tuple[str, ...]
    _field_defaults: dict[str, Any]
    def __new__(
        cls, nll: Any, rank: Any, prediction: Any, confidence: Any, entropy: Any, brier: Any
    ) -> RowScores: ...
    @property
    def nll(self) -> NDArray[np.floating[Any]]: ...
    @property
    def rank(self) -> NDArray[np.int64]: ...
    @property
    def prediction(self) -> NDArray[np.int64]: ...
    @property
    def confidence(self) -> NDArray[np.floating[Any]]: ...
    @property
    def entropy(self) -> NDArray[np.floating[Any]]: ...
    @property
    def brier(self) -> NDArray[np.floating[Any]]: ...
    @classmethod
    def _make(cls, iterable: Iterable[Any]) -> RowScores: ...
    def _replace(self, **fields: Any) -> RowScores: ...
    def _asdict(self) -> dict[str, Any]: ...
    def __getnewargs__(self) -> tuple[Any, ...]: ...

def score_rows(
    input: ArrayLike, target: ArrayLike, *, ignore_index: int = -100, temperature: float = 1.0
) -> RowScores: ...
