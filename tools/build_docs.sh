#!/usr/bin/env bash
# Build the documentation (docs/_build/html) with every warning an error, and
# run the docstring examples it shows as doctests. Needs fastxent installed
# and its `docs` extra (Sphinx, numpydoc).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m sphinx -W --keep-going -b html docs docs/_build/html
python -m sphinx -W --keep-going -b doctest docs docs/_build/doctest
