# Types of the public functions of _entropies.py (checked against it by
# mypy.stubtest in tests/test_typing.py).  Row results are typed NDArray (a
# NumPy scalar for a single row, as NumPy's own functions return for 0-d
# results); entropy with axis=None always returns a NumPy scalar.
from typing import Any, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray
from typing_extensions import TypeAlias

__all__ = ["entropy", "softmax_entropy", "softmax_cross_entropy", "softmax_kl_div"]

_Float: TypeAlias = np.floating[Any]
_FloatArray: TypeAlias = NDArray[np.floating[Any]]

def softmax_entropy(
    logits: ArrayLike, axis: int = -1, *, n_threads: int | None = None
) -> _FloatArray: ...
def softmax_cross_entropy(
    p_logits: ArrayLike, q_logits: ArrayLike, axis: int = -1, *, n_threads: int | None = None
) -> _FloatArray: ...
def softmax_kl_div(
    p_logits: ArrayLike, q_logits: ArrayLike, axis: int = -1, *, n_threads: int | None = None
) -> _FloatArray: ...
@overload
def entropy(
    pk: ArrayLike,
    qk: ArrayLike | None,
    base: float | None,
    axis: None,
    *,
    n_threads: int | None = None,
) -> _Float: ...
@overload
def entropy(
    pk: ArrayLike,
    qk: ArrayLike | None = None,
    base: float | None = None,
    *,
    axis: None,
    n_threads: int | None = None,
) -> _Float: ...
@overload
def entropy(
    pk: ArrayLike,
    qk: ArrayLike | None = None,
    base: float | None = None,
    axis: int = 0,
    *,
    n_threads: int | None = None,
) -> _FloatArray: ...
@overload
def entropy(
    pk: ArrayLike,
    qk: ArrayLike | None = None,
    base: float | None = None,
    *,
    axis: tuple[int, ...],
    n_threads: int | None = None,
) -> _Float | _FloatArray: ...
