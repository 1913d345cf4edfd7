"""On a free-threaded CPython, importing and using fastxent leaves the GIL off:
every compiled module declares itself free-threading compatible
(``freethreading_compatible`` in setup.py), or CPython would turn the GIL
back on at import, with a RuntimeWarning."""
import os
import subprocess
import sys
import sysconfig
import textwrap

import pytest

pytestmark = pytest.mark.skipif(
    not sysconfig.get_config_var("Py_GIL_DISABLED"),
    reason="needs a free-threaded CPython (3.14t): this interpreter has a GIL")


def test_import_keeps_the_gil_disabled(tmp_path):
    code = textwrap.dedent("""
        import sys, warnings
        warnings.simplefilter("error", RuntimeWarning)  # the GIL-enabling warning fails the import
        import numpy as np
        import fastxent
        from fastxent import _dispatch
        for path in fastxent.get_config()["cpu_paths"]:
            with fastxent.cpu_path(path):
                fastxent.logsumexp(np.ones((3, 5)), axis=1, n_threads=2)
        print(sorted(_dispatch._MODULES), sys._is_gil_enabled())
    """)
    # PYTHON_GIL=1 (or -X gil=1) would force the GIL on regardless
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHON_GIL", "PYTHONPATH")}
    # from a folder of its own: the current folder must not shadow the installed package
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("False"), proc.stdout + proc.stderr
