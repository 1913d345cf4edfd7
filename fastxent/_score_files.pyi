# Types of _score_files.py (checked against it by mypy.stubtest in
# tests/test_typing.py).
import os
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._scorer import Scorer

__all__ = ["score_file", "open_logits", "open_labels", "score_sources"]

CHUNK_BYTES: int
LOGITS_NAMES: tuple[str, ...]
LABELS_NAMES: tuple[str, ...]

_Path = str | os.PathLike[str]

class _Source:
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    drop_pages: bool
    origin: str | None
    def read(self, start: int, stop: int) -> NDArray[Any]: ...
    def release(self, stop: int) -> None: ...
    def close(self) -> None: ...
    @property
    def boundaries(self) -> list[int]: ...

def origin(path: _Path | None, name: str, logits_path: _Path | None = None) -> str: ...
def open_logits(path: _Path) -> _Source: ...
def open_labels(path: _Path | None, logits_path: _Path | None = None) -> _Source: ...
def check_labels(labels: _Source, n_classes: int, ignore_index: int,
                 chunk_rows: int = ...) -> None: ...
def score_sources(
    logits: _Source,
    labels: _Source,
    scorer: Scorer,
    *,
    chunk_bytes: int = ...,
    on_chunk: Callable[[int, int, NDArray[Any], NDArray[Any]], object] | None = None,
) -> Scorer: ...
def score_file(
    logits_path: _Path,
    targets_path: _Path | None = None,
    *,
    topk: int | Iterable[int] = ...,
    n_bins: int = 15,
    ignore_index: int = -100,
    temperature: float = 1.0,
    n_threads: int | None = None,
    chunk_bytes: int = ...,
) -> dict[str, Any]: ...
