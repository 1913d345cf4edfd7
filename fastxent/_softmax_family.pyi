# Types of the public functions of _softmax_family.py (checked against it by
# mypy.stubtest in tests/test_typing.py).
#
# Array results are typed NDArray, as NumPy types its own functions of arrays
# (np.exp of an array is an NDArray): where a result is 0-d, fastxent returns
# a NumPy scalar, which reads like a 0-d array.  A call that reduces the whole
# input (logsumexp with axis=None, no keepdims, no out) is typed as the NumPy
# scalar it returns.
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
    *,
    out: None = None,
    n_threads: int | None = None,
) -> _Float: ...
@overload
def logsumexp(
    a: ArrayLike,
    axis: None = None,
    b: ArrayLike | None = None,
    keepdims: Literal[False] = False,
    *,
    return_sign: Literal[True],
    out: None = None,
    n_threads: int | None = None,
) -> tuple[_Float, _Float]: ...
@overload
def logsumexp(
    a: ArrayLike,
    axis: _Axis = None,
    b: ArrayLike | None = None,
    keepdims: bool = False,
    return_sign: Literal[False] = False,
    *,
    out: _FloatArray | None = None,
    n_threads: int | None = None,
) -> _FloatArray: ...
@overload
def logsumexp(
    a: ArrayLike,
    axis: _Axis,
    b: ArrayLike | None,
    keepdims: bool,
    return_sign: Literal[True],
    *,
    out: _FloatArray | None = None,
    n_threads: int | None = None,
) -> tuple[_FloatArray, _FloatArray]: ...
@overload
def logsumexp(
    a: ArrayLike,
    axis: _Axis = None,
    b: ArrayLike | None = None,
    keepdims: bool = False,
    *,
    return_sign: Literal[True],
    out: _FloatArray | None = None,
    n_threads: int | None = None,
) -> tuple[_FloatArray, _FloatArray]: ...
@overload
def logsumexp(
    a: ArrayLike,
    axis: _Axis = None,
    b: ArrayLike | None = None,
    keepdims: bool = False,
    return_sign: bool = False,
    *,
    out: _FloatArray | None = None,
    n_threads: int | None = None,
) -> _Float | _FloatArray | tuple[_Float | _FloatArray, _Float | _FloatArray]: ...
def softmax(
    x: ArrayLike,
    axis: _Axis = None,
    *,
    out: _FloatArray | None = None,
    n_threads: int | None = None,
) -> _FloatArray: ...
def log_softmax(
    x: ArrayLike,
    axis: _Axis = None,
    *,
    out: _FloatArray | None = None,
    n_threads: int | None = None,
) -> _FloatArray: ...
