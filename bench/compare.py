#!/usr/bin/env python
"""Compare fastxent with NumPy, SciPy, PyTorch and JAX: speed and peak memory.

A thin wrapper around ``fastxent._benchmark`` (the one harness, also behind
``python -m fastxent``); every option is passed through::

    python bench/compare.py              # default shapes, about 3-5 minutes
    python bench/compare.py --quick      # smaller shapes, fewer repeats
    python bench/compare.py --large --markdown --threads 2
    python bench/compare.py --help

When the installed or in-place fastxent cannot be imported (not built yet),
the harness is loaded from this checkout's folder and times the peers alone.
"""

import importlib.util
import os
import sys


def _load_harness():
    try:
        from fastxent import _benchmark
    except ImportError:
        # fastxent/__init__.py failed (for example, the extension is not built):
        # load the harness package from its folder under another name; it
        # imports fastxent lazily per call.
        folder = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir,
                                               "fastxent", "_benchmark"))
        spec = importlib.util.spec_from_file_location("_fastxent_benchmark",
                                                      os.path.join(folder, "__init__.py"),
                                                      submodule_search_locations=[folder])
        _benchmark = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = _benchmark
        spec.loader.exec_module(_benchmark)
    return _benchmark


if __name__ == "__main__":
    sys.exit(_load_harness().main(sys.argv[1:]))
