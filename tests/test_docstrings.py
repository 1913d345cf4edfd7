"""The Examples sections of the public docstrings run and print what they say."""
import doctest
import importlib

import pytest

MODULES = ["fastxent._softmax_family", "fastxent._losses", "fastxent.reference"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    failures, tried = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert tried > 0
    assert failures == 0
