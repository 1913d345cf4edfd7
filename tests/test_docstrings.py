"""The Examples sections of the public docstrings run and print what they say."""
import doctest
import importlib
import pkgutil

import pytest

# every module whose docstrings hold examples
MODULES = ["fastxent._softmax_family", "fastxent._losses", "fastxent._pointwise_losses",
           "fastxent._entropies", "fastxent._score_rows", "fastxent.reference.softmax_family", "fastxent.reference.losses",
           "fastxent.reference.pointwise_losses", "fastxent.reference.entropies"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    failures, tried = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert tried > 0
    assert failures == 0


def test_every_module_with_examples_is_listed():
    import fastxent

    finder = doctest.DocTestFinder()
    with_examples = set()
    # the subpackages' modules too (fastxent.reference.*)
    for info in pkgutil.walk_packages(fastxent.__path__, "fastxent."):
        if info.name.startswith("fastxent._kernels"):
            continue  # compiled; the x86 builds must not be imported on other CPUs
        try:
            module = importlib.import_module(info.name)
        except ModuleNotFoundError as exc:
            # the Dask integration imports Dask, an optional extra; any other
            # missing module is a defect
            if info.name.startswith("fastxent._dask") and (exc.name or "").split(".")[0] in (
                    "dask", "distributed"):
                continue
            raise
        if any(t.examples for t in finder.find(module)):
            with_examples.add(info.name)
    if any(t.examples for t in finder.find(fastxent)):
        with_examples.add("fastxent")
    assert with_examples == set(MODULES)
