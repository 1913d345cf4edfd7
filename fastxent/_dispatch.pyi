# Types of _dispatch.py (checked against it by mypy.stubtest in
# tests/test_typing.py).
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any, TypedDict

import numpy as np

class _Config(TypedDict):
    openmp: bool
    cpu_path: str
    cpu_paths: list[str]
    max_threads: int

# the compiled kernel module in use (fastxent._kernels_baseline,
# fastxent._kernels_avx2 or fastxent._kernels_avx512): private, untyped
active: ModuleType

def kernels() -> ModuleType: ...
# a specialized entry of a compiled kernel: private, untyped
def kernel(name: str, dtype: np.dtype[Any]) -> Any: ...
@contextmanager
def cpu_path(name: str) -> Iterator[None]: ...
def resolve_threads(n_threads: int | None) -> int: ...
def checked_threads(n_threads: int) -> int: ...
def get_config() -> _Config: ...
def show_config() -> None: ...
