# Types of __main__.py (checked against it by mypy.stubtest in
# tests/test_typing.py).
from collections.abc import Sequence
from typing import TextIO

def self_check(out: TextIO = ...) -> bool: ...
def main(argv: Sequence[str] | None = None) -> int: ...
