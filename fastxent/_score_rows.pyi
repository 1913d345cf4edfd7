# Types of the public functions of _score_rows.py (checked against it by
# mypy.stubtest in tests/test_typing.py).  The fields of the result are
# NDArrays (NumPy scalars for an unbatched input).
from typing import Any

from numpy.typing import ArrayLike, NDArray

from .reference.score import ROW_FIELDS as ROW_FIELDS, RowScores as RowScores

__all__ = ["score_rows", "RowScores", "ROW_FIELDS"]

def score_rows(
    input: ArrayLike,
    target: ArrayLike,
    *,
    ignore_index: int = -100,
    temperature: float = 1.0,
    out: RowScores | dict[str, NDArray[Any]] | None = None,
    n_threads: int | None = None,
) -> RowScores: ...
def _score_state(
    input: ArrayLike,
    target: ArrayLike,
    *,
    ignore_index: int = -100,
    temperature: float = 1.0,
    max_rank: int = 5,
    n_bins: int = 15,
    n_threads: int | None = None,
) -> dict[str, Any]: ...
