# Types of pointwise_losses.py (checked against it by mypy.stubtest in
# tests/test_typing.py): those of fastxent's functions without grad_out and
# n_threads.
from typing import Any, Literal, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray
from typing_extensions import TypeAlias

__all__ = ["kl_div", "binary_cross_entropy_with_logits"]

_Float: TypeAlias = np.floating[Any]
_FloatArray: TypeAlias = NDArray[np.floating[Any]]
_Reduction: TypeAlias = Literal["none", "mean", "sum"]

@overload
def kl_div(
    input: ArrayLike,
    target: ArrayLike,
    reduction: Literal["mean", "batchmean", "sum"] = "mean",
    log_target: bool = False,
    *,
    return_grad: Literal[False] = False,
) -> _Float: ...
@overload
def kl_div(
    input: ArrayLike,
    target: ArrayLike,
    reduction: Literal["mean", "batchmean", "sum"] = "mean",
    log_target: bool = False,
    *,
    return_grad: Literal[True],
) -> tuple[_Float, _FloatArray]: ...
@overload
def kl_div(
    input: ArrayLike,
    target: ArrayLike,
    reduction: Literal["none"],
    log_target: bool = False,
    *,
    return_grad: Literal[False] = False,
) -> _FloatArray: ...
@overload
def kl_div(
    input: ArrayLike,
    target: ArrayLike,
    reduction: Literal["none"],
    log_target: bool = False,
    *,
    return_grad: Literal[True],
) -> tuple[_FloatArray, _FloatArray]: ...
@overload
def kl_div(
    input: ArrayLike,
    target: ArrayLike,
    reduction: Literal["none", "mean", "batchmean", "sum"] = "mean",
    log_target: bool = False,
    *,
    return_grad: bool = False,
) -> _Float | _FloatArray | tuple[_Float | _FloatArray, _FloatArray]: ...
@overload
def binary_cross_entropy_with_logits(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    reduction: Literal["mean", "sum"] = "mean",
    pos_weight: ArrayLike | None = None,
    *,
    return_grad: Literal[False] = False,
) -> _Float: ...
@overload
def binary_cross_entropy_with_logits(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    reduction: Literal["mean", "sum"] = "mean",
    pos_weight: ArrayLike | None = None,
    *,
    return_grad: Literal[True],
) -> tuple[_Float, _FloatArray]: ...
@overload
def binary_cross_entropy_with_logits(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None,
    reduction: Literal["none"],
    pos_weight: ArrayLike | None = None,
    *,
    return_grad: Literal[False] = False,
) -> _FloatArray: ...
@overload
def binary_cross_entropy_with_logits(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    *,
    reduction: Literal["none"],
    pos_weight: ArrayLike | None = None,
    return_grad: Literal[False] = False,
) -> _FloatArray: ...
@overload
def binary_cross_entropy_with_logits(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None,
    reduction: Literal["none"],
    pos_weight: ArrayLike | None = None,
    *,
    return_grad: Literal[True],
) -> tuple[_FloatArray, _FloatArray]: ...
@overload
def binary_cross_entropy_with_logits(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    *,
    reduction: Literal["none"],
    pos_weight: ArrayLike | None = None,
    return_grad: Literal[True],
) -> tuple[_FloatArray, _FloatArray]: ...
@overload
def binary_cross_entropy_with_logits(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    reduction: _Reduction = "mean",
    pos_weight: ArrayLike | None = None,
    *,
    return_grad: bool = False,
) -> _Float | _FloatArray | tuple[_Float | _FloatArray, _FloatArray]: ...
