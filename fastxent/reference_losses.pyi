# Types of reference_losses.py (checked against it by mypy.stubtest in
# tests/test_typing.py): those of fastxent's functions without grad_out and
# n_threads.
from typing import Any, Literal, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray
from typing_extensions import TypeAlias

__all__ = [
    "cross_entropy",
    "nll_loss",
    "kl_div",
    "binary_cross_entropy_with_logits",
    "entropy",
    "softmax_entropy",
    "softmax_cross_entropy",
    "softmax_kl_div",
]

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
def softmax_entropy(logits: ArrayLike, axis: int = -1) -> _FloatArray: ...
def softmax_cross_entropy(
    p_logits: ArrayLike, q_logits: ArrayLike, axis: int = -1
) -> _FloatArray: ...
def softmax_kl_div(p_logits: ArrayLike, q_logits: ArrayLike, axis: int = -1) -> _FloatArray: ...
@overload
def entropy(
    pk: ArrayLike,
    qk: ArrayLike | None,
    base: float | None,
    axis: None,
) -> _Float: ...
@overload
def entropy(
    pk: ArrayLike,
    qk: ArrayLike | None = None,
    base: float | None = None,
    *,
    axis: None,
) -> _Float: ...
@overload
def entropy(
    pk: ArrayLike,
    qk: ArrayLike | None = None,
    base: float | None = None,
    axis: int = 0,
) -> _FloatArray: ...
