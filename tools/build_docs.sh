#!/usr/bin/env bash
# Build the documentation (docs/_build/html) with every warning an error, and
# run the docstring examples it shows as doctests. Needs fastxent installed
# and its `docs` extra (Sphinx, numpydoc).
set -euo pipefail
# from docs/, not the root: `python -m` puts the current folder first on
# sys.path, and the root's fastxent/ holds no compiled kernels
cd "$(dirname "$0")/../docs"
python -m sphinx -W --keep-going -b html . _build/html
python -m sphinx -W --keep-going -b doctest . _build/doctest
