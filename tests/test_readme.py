"""The README's Python examples run, in order, against the installed
package.  Skipped outside a source checkout.

The examples share one namespace, as a reader running them one after the
other would; the arrays the README leaves to the reader (its own logits,
labels, targets) come from PRELUDE, small.  A block that imports an
optional extra (Dask, zarr) is skipped where that extra is missing.
"""
import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
pytestmark = pytest.mark.skipif(not README.exists(), reason="no README.md here")

# the reader's data: files and arrays the examples name without making them
PRELUDE = """
import numpy as np
_rng = np.random.default_rng(0)
np.save("logits.npy", _rng.standard_normal((64, 50)).astype(np.float32))
np.save("labels.npy", _rng.integers(0, 50, 64))
p_target = _rng.dirichlet(np.ones(50), 64)
scores = _rng.standard_normal((64, 7))
y = (_rng.random((64, 7)) < 0.5).astype(np.float64)
logits_a = _rng.standard_normal((64, 50))
logits_b = _rng.standard_normal((64, 50))
"""


def _blocks():
    text = README.read_text(encoding="utf-8") if README.exists() else ""
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


# modules an example needs without importing them itself
_USES = {"zarr": ("to_zarr", "from_zarr")}


def _missing(code):
    """The first module `code` needs (imports, or calls through Dask) that
    is not installed, or None."""
    names = re.findall(r"^\s*(?:import|from)\s+([A-Za-z_][\w]*)", code, flags=re.M)
    names += [module for module, calls in _USES.items() if any(c in code for c in calls)]
    for name in names:
        if importlib.util.find_spec(name) is None:
            return name
    return None


def test_there_are_examples():
    assert len(_blocks()) >= 5


def test_examples_run_in_order(tmp_path, monkeypatch, capsys):
    # the examples write files (.npy, zarr stores) into the working directory
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__readme__"}
    exec(PRELUDE, namespace)
    ran, skipped = 0, []
    for i, code in enumerate(_blocks(), 1):
        missing = _missing(code)
        if missing:
            skipped.append((i, missing))
            continue
        with np.errstate(all="ignore"):
            try:
                exec(compile(code, f"README.md, Python example {i}", "exec"), namespace)
            except Exception as exc:  # the example's own error, named
                raise AssertionError(f"README Python example {i} failed: "
                                     f"{type(exc).__name__}: {exc}\n{code}") from exc
        ran += 1
    assert ran >= 5, (ran, skipped)
