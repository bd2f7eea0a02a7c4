#!/usr/bin/env bash
# Create bench/.venvs/lifetimes: a venv with the `lifetimes` package, for
# bench/clv_vs_lifetimes.py only. lifetimes (last release 0.11.3, 2020, unmaintained) is kept
# out of the project venv so that it can never pin or downgrade the pipeline's own stack.
# Run: bash bench/lifetimes_venv.sh   (idempotent; PYTHON=python3.11 to choose the interpreter)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venvs/lifetimes"
"${PYTHON:-python3}" -m venv "$venv"
# The versions the results were made with. lifetimes 0.11.3 still imports and fits with
# numpy 2 / pandas 3 / scipy 1.17 (pandas 3 only warns about lifetimes' chained_assignment
# option, which pandas 4 removes: keep pandas < 4 if these pins are ever loosened).
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "lifetimes==0.11.3" "autograd==1.9.1" "numpy==2.4.6" "pandas==3.1.1" "scipy==1.17.1"
"$venv/bin/python" -c "import lifetimes; print('lifetimes', lifetimes.__version__, 'in', '$venv')"
