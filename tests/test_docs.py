"""The documentation site (docs/) builds without a warning and its examples
run.  Skipped without Sphinx and numpydoc (the ``docs`` extra) or outside a
source checkout."""
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sphinx")
pytest.importorskip("numpydoc")

DOCS = Path(__file__).resolve().parent.parent / "docs"
pytestmark = pytest.mark.skipif(not (DOCS / "conf.py").exists(), reason="no docs/ folder here")


@pytest.mark.parametrize("builder", ["html", "doctest"])
def test_docs_build_without_warnings(builder, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q",
                           "-b", builder, "-d", str(tmp_path / "doctrees"), str(DOCS),
                           str(tmp_path / builder)],
                          capture_output=True, text=True, timeout=600,
                          # not the clone's root: `python -m` would import its
                          # uncompiled fastxent/ instead of the installed package
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
