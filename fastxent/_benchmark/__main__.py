"""``python -m fastxent._benchmark``: the comparison's command line.

Also runs as a path, ``python fastxent/_benchmark`` (the command a run loaded
from its folder prints to repeat itself): the folder is then loaded as a
package of its own, and fastxent is imported, lazily, from the folder that
holds it.
"""
import sys


def _load_from_folder():
    """This package, loaded from its folder without importing fastxent."""
    import importlib.util
    import os

    folder = os.path.dirname(os.path.abspath(__file__))
    # fastxent comes from the folder that holds the package (an in-place
    # build), never a module of this folder
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != folder]
    sys.path.insert(0, os.path.dirname(os.path.dirname(folder)))
    spec = importlib.util.spec_from_file_location(
        "_fastxent_benchmark", os.path.join(folder, "__init__.py"),
        submodule_search_locations=[folder])
    harness = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = harness
    spec.loader.exec_module(harness)
    return harness


def _main():
    if __package__:
        from . import main
    else:
        main = _load_from_folder().main
    return main()


if __name__ == "__main__":
    sys.exit(_main())
