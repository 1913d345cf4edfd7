# Types of softmax_family.py (checked against it by mypy.stubtest in
# tests/test_typing.py): those of fastxent's functions without out and
# n_threads.
from typing import Any, Literal, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray
from typing_extensions import TypeAlias

__all__ = ["logsumexp", "softmax", "log_softmax"]

_Float: TypeAlias = np.floating[Any]
_FloatArray: TypeAlias = NDArray[np.floating[Any]]
_Axis: TypeAlias = int | tuple[int, ...] | None

@overload
def logsumexp(
    a: ArrayLike,
    axis: None = None,
    b: ArrayLike | None = None,
    keepdims: Literal[False] = False,
    return_sign: Literal[False] = False,
) -> _Float: ...
@overload
def logsumexp(
    a: ArrayLike,
    axis: None = None,
    b: ArrayLike | None = None,
    keepdims: Literal[False] = False,
    *,
    return_sign: Literal[True],
) -> tuple[_Float, _Float]: ...
@overload
def logsumexp(
    a: ArrayLike,
    axis: _Axis = None,
    b: ArrayLike | None = None,
    keepdims: bool = False,
    return_sign: Literal[False] = False,
) -> _FloatArray: ...
@overload
def logsumexp(
    a: ArrayLike,
    axis: _Axis,
    b: ArrayLike | None,
    keepdims: bool,
    return_sign: Literal[True],
) -> tuple[_FloatArray, _FloatArray]: ...
@overload
def logsumexp(
    a: ArrayLike,
    axis: _Axis = None,
    b: ArrayLike | None = None,
    keepdims: bool = False,
    *,
    return_sign: Literal[True],
) -> tuple[_FloatArray, _FloatArray]: ...
@overload
def logsumexp(
    a: ArrayLike,
    axis: _Axis = None,
    b: ArrayLike | None = None,
    keepdims: bool = False,
    return_sign: bool = False,
) -> _Float | _FloatArray | tuple[_Float | _FloatArray, _Float | _FloatArray]: ...
def softmax(x: ArrayLike, axis: _Axis = None) -> _FloatArray: ...
def log_softmax(x: ArrayLike, axis: _Axis = None) -> _FloatArray: ...
