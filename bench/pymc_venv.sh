#!/usr/bin/env bash
# Create bench/.venvs/pymc: a venv with PyMC-Marketing, for bench/clv_vs_pymc.py only. PyMC's
# stack (pymc, pytensor, pymc-extras, arviz, xarray, numba, ...) is kept out of the project venv
# so that it can never pin or downgrade the pipeline's own stack.
# Run: bash bench/pymc_venv.sh   (idempotent; PYTHON=python3.11 to choose the interpreter)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venvs/pymc"
"${PYTHON:-python3}" -m venv "$venv"
# The versions the results were made with. pymc-marketing 0.19.2 is the newest release the
# package registry serves here; it resolved without extra constraints to pymc 5.28.5 (which
# caps pytensor < 2.39), pytensor 2.38.3 and pymc-extras 0.10.0. Those, and numpy / scipy /
# pandas equal to the project venv's, are pinned so that a rebuild fits with the same code.
# PyTensor compiles its C ops with the system g++ (cached under ~/.pytensor), so the first fit
# on a new machine is slower; it warns that no BLAS was found, which these models do not use.
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "pymc-marketing==0.19.2" "pymc==5.28.5" "pytensor==2.38.3" "pymc-extras==0.10.0" \
    "numpy==2.4.6" "scipy==1.17.1" "pandas==3.1.1"
"$venv/bin/python" -W ignore -c "import pymc_marketing, pymc, pytensor; print('pymc-marketing', \
pymc_marketing.__version__, 'pymc', pymc.__version__, 'pytensor', pytensor.__version__, \
'in', '$venv')"
