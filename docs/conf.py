"""Sphinx configuration of the fastxent documentation.

Build with ``sphinx-build -W --keep-going -b html docs docs/_build/html``
against an installed fastxent (the API pages import it).
"""
import fastxent

project = "fastxent"
author = "the fastxent developers"
copyright = "the fastxent developers"
version = release = fastxent.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "sphinx.ext.mathjax",
    "numpydoc",
]

exclude_patterns = ["_build"]
html_theme = "alabaster"
html_theme_options = {"description": "The entropy family over NumPy arrays", "fixed_sidebar": True}

# the pages document functions; autosummary only tabulates them (no generated files)
autosummary_generate = False

# `sphinx-build -b doctest` runs the docstring examples shown on the pages
# have_dask: the Dask page's examples are skipped where Dask is not installed
# (it is an optional extra), as the tests that need it are
doctest_global_setup = (
    "import importlib.util\n"
    "import numpy as np\n"
    "import fastxent\n"
    "have_dask = importlib.util.find_spec('dask') is not None"
)

# class pages list their methods with ``:members:``; numpydoc's own table of
# them would need autosummary's generated stub files
numpydoc_show_class_members = False
