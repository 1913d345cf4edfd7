# Types of losses.py (checked against it by mypy.stubtest in
# tests/test_typing.py): those of fastxent's functions without grad_out and
# n_threads.
from typing import Any, Literal, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray
from typing_extensions import TypeAlias

__all__ = ["cross_entropy", "nll_loss"]

_Float: TypeAlias = np.floating[Any]
_FloatArray: TypeAlias = NDArray[np.floating[Any]]
_Reduction: TypeAlias = Literal["none", "mean", "sum"]

@overload
def cross_entropy(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    reduction: Literal["mean", "sum"] = "mean",
    label_smoothing: float = 0.0,
    *,
    return_grad: Literal[False] = False,
) -> _Float: ...
@overload
def cross_entropy(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    reduction: Literal["mean", "sum"] = "mean",
    label_smoothing: float = 0.0,
    *,
    return_grad: Literal[True],
) -> tuple[_Float, _FloatArray]: ...
@overload
def cross_entropy(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None,
    ignore_index: int,
    reduction: Literal["none"],
    label_smoothing: float = 0.0,
    *,
    return_grad: Literal[False] = False,
) -> _FloatArray: ...
@overload
def cross_entropy(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    *,
    reduction: Literal["none"],
    label_smoothing: float = 0.0,
    return_grad: Literal[False] = False,
) -> _FloatArray: ...
@overload
def cross_entropy(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None,
    ignore_index: int,
    reduction: Literal["none"],
    label_smoothing: float = 0.0,
    *,
    return_grad: Literal[True],
) -> tuple[_FloatArray, _FloatArray]: ...
@overload
def cross_entropy(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    *,
    reduction: Literal["none"],
    label_smoothing: float = 0.0,
    return_grad: Literal[True],
) -> tuple[_FloatArray, _FloatArray]: ...
@overload
def cross_entropy(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    reduction: _Reduction = "mean",
    label_smoothing: float = 0.0,
    *,
    return_grad: bool = False,
) -> _Float | _FloatArray | tuple[_Float | _FloatArray, _FloatArray]: ...
@overload
def nll_loss(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    reduction: Literal["mean", "sum"] = "mean",
    *,
    return_grad: Literal[False] = False,
) -> _Float: ...
@overload
def nll_loss(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    reduction: Literal["mean", "sum"] = "mean",
    *,
    return_grad: Literal[True],
) -> tuple[_Float, _FloatArray]: ...
@overload
def nll_loss(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None,
    ignore_index: int,
    reduction: Literal["none"],
    *,
    return_grad: Literal[False] = False,
) -> _FloatArray: ...
@overload
def nll_loss(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    *,
    reduction: Literal["none"],
    return_grad: Literal[False] = False,
) -> _FloatArray: ...
@overload
def nll_loss(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None,
    ignore_index: int,
    reduction: Literal["none"],
    *,
    return_grad: Literal[True],
) -> tuple[_FloatArray, _FloatArray]: ...
@overload
def nll_loss(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    *,
    reduction: Literal["none"],
    return_grad: Literal[True],
) -> tuple[_FloatArray, _FloatArray]: ...
@overload
def nll_loss(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    reduction: _Reduction = "mean",
    *,
    return_grad: bool = False,
) -> _Float | _FloatArray | tuple[_Float | _FloatArray, _FloatArray]: ...
