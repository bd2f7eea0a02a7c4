#!/usr/bin/env bash
# One dbt model's incremental build from two source trees, alternating, on one warehouse.
#
#   bench/model_ab.sh <shop folder> <model> <rounds> <tree> <tree> ...
#
# The shop folder holds raw/ and warehouse.duckdb (a kept `pipeline_bench.py --keep` shop after
# its night). Each tree is a checkout of this repo (a git worktree); its src/ and dbt project
# run with this repo's .venv. Prints dbt's own time for the model, per tree and round.
set -euo pipefail
shop=$1 model=$2 rounds=$3
shift 3
venv=$(cd "$(dirname "$0")/.." && pwd)/.venv
export LTV_DATA_DIR=$shop LTV_DUCKDB_PATH=$shop/warehouse.duckdb
for round in $(seq "$rounds"); do
  for tree in "$@"; do
    seconds=$(PYTHONPATH=$tree/src "$venv/bin/ltv" dbt run --select "$model" 2>&1 \
      | grep -o "OK created sql [a-z]* model [a-z_]*\.$model .*in [0-9.]*s" \
      | grep -o "[0-9.]*s" | tail -1)
    echo "$(basename "$tree") round $round: $seconds"
  done
done
