# Types of the public functions of _losses.py (checked against it by
# mypy.stubtest in tests/test_typing.py).
#
# 'mean' and 'sum' return a NumPy scalar; 'none' the per-row losses, typed
# NDArray (a NumPy scalar for an unbatched input, as NumPy's own functions
# return for 0-d results).  return_grad=True returns (loss, grad).  A
# reduction given positionally or by keyword takes separate overloads, since
# a Literal without a default cannot follow arguments that have one.
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
    grad_out: _FloatArray | None = None,
    n_threads: int | None = None,
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
    grad_out: _FloatArray | None = None,
    n_threads: int | None = None,
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
    grad_out: _FloatArray | None = None,
    n_threads: int | None = None,
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
    grad_out: _FloatArray | None = None,
    n_threads: int | None = None,
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
    grad_out: _FloatArray | None = None,
    n_threads: int | None = None,
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
    grad_out: _FloatArray | None = None,
    n_threads: int | None = None,
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
    grad_out: _FloatArray | None = None,
    n_threads: int | None = None,
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
    grad_out: _FloatArray | None = None,
    n_threads: int | None = None,
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
    grad_out: _FloatArray | None = None,
    n_threads: int | None = None,
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
    grad_out: _FloatArray | None = None,
    n_threads: int | None = None,
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
    grad_out: _FloatArray | None = None,
    n_threads: int | None = None,
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
    grad_out: _FloatArray | None = None,
    n_threads: int | None = None,
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
    grad_out: _FloatArray | None = None,
    n_threads: int | None = None,
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
    grad_out: _FloatArray | None = None,
    n_threads: int | None = None,
) -> _Float | _FloatArray | tuple[_Float | _FloatArray, _FloatArray]: ...
