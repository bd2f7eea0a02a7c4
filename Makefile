# The two commands: `make run` (install, sample data if absent, materialize everything once)
# and `make test`. Everything is installed into .venv from pinned versions.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCK := $(shell cat pyproject.toml requirements.lock | cksum | cut -d' ' -f1)
# `make run` installs what a run needs; the dev and Spark extras (pytest, ruff, sqlfluff, dg,
# pyspark: 500 MB of the venv) come with `make test`, `make run-spark` and the other dev targets.
STAMP := $(VENV)/.installed-run-$(LOCK)
DEV_STAMP := $(VENV)/.installed-dev-$(LOCK)
DEV_EXTRAS := .[dev,spark]
# uv installs the pinned versions 5x faster than pip (README, "Install"); pip is the fallback.
UV_VERSION := 0.13.9
UV := $(BIN)/uv
export DAGSTER_HOME ?= $(CURDIR)/data/dagster_home
# pytest workers (pytest-xdist), one per core; each test file runs in one worker, the longest
# files first (tests/conftest.py)
TEST_WORKERS ?= 2

.PHONY: install install-dev run run-spark spark-check test lint format ui docs clean bench \
	dashboard dashboard-build test-dashboard

$(UV):
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# $(1): what to install, $(2): the stamp it leaves. uv compiles the bytecode at install (40 s on
# 2 cores; pip does it by default): otherwise each process compiles dagster and dbt again
# wherever PYTHONDONTWRITEBYTECODE is set (it is on our machines): a 20k shop ran 1.4x longer.
define pinned_install
	$(UV) pip install --quiet --compile-bytecode --python $(BIN)/python -c requirements.lock \
		-e '$(1)' \
		|| $(BIN)/python -m pip install --quiet --disable-pip-version-check \
			-c requirements.lock -e '$(1)'
	@touch $(2)
endef

$(STAMP): pyproject.toml requirements.lock | $(UV)
	$(call pinned_install,.,$@)

$(DEV_STAMP): pyproject.toml requirements.lock | $(UV)
	$(call pinned_install,$(DEV_EXTRAS),$@)
	@touch $(STAMP)

install: $(STAMP)

install-dev: $(DEV_STAMP)

run: install
	@mkdir -p "$(DAGSTER_HOME)"
	$(BIN)/ltv run

# The same pipeline on a local Apache Spark session (LTV_WAREHOUSE=spark; Java 17+ on PATH).
# Spark's files go under data/spark/; the published snapshot has the same layout.
run-spark: install-dev
	@mkdir -p "$(DAGSTER_HOME)"
	LTV_WAREHOUSE=spark SPARK_LOCAL_IP=127.0.0.1 $(BIN)/ltv run

# Runs the pipeline on both engines on a generated shop and prints, per table, the row counts
# on each and whether they are equal (floats within 1e-9 relative).
spark-check: install-dev
	$(BIN)/ltv prepare
	SPARK_LOCAL_IP=127.0.0.1 $(BIN)/python -m tests.engines

test: install-dev lint
	$(BIN)/ltv prepare
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=25

# sqlfluff compiles the models with dbt: point it at a throwaway warehouse.
lint: install-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	@mkdir -p dbt_project/target
	LTV_WAREHOUSE=duckdb DBT_PROJECT_DIR=$(CURDIR)/dbt_project \
		LTV_DUCKDB_PATH=$(CURDIR)/dbt_project/target/lint.duckdb \
		$(BIN)/sqlfluff lint dbt_project/models

format: install-dev
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

ui: install
	@mkdir -p "$(DAGSTER_HOME)"
	@# the dagster.yaml `ltv run` writes, if the folder has none (ltv_pipeline/instance.py)
	@$(BIN)/python -c "from ltv_pipeline.instance import ensure_instance_config as e; e()"
	$(BIN)/ltv prepare
	$(BIN)/dagster dev -h 127.0.0.1 -p 3000 -w workspace.yaml

# dbt docs (lineage, every column's description, the catalog of the working warehouse).
docs: install
	$(BIN)/ltv prepare
	$(BIN)/ltv dbt docs generate --static --target-path $(CURDIR)/data/dbt_docs
	@echo "open data/dbt_docs/static_index.html (one file, opens from disk), or: .venv/bin/ltv dbt docs serve --host 127.0.0.1 --port 8080 --target-path $(CURDIR)/data/dbt_docs"

# The dashboard (Evidence, dashboard/): a static site built from the last published snapshot
# (data/published/marts.duckdb), served on 127.0.0.1. npm installs from the lock (`npm ci`
# refuses it: npm leaves optional platform packages of @duckdb/node-api out of a lock); the patch
# lets Evidence build with no network (dashboard/evidence-offline.patch says why).
DASHBOARD_PORT ?= 3001
DASH_STAMP := dashboard/node_modules/.installed
EVIDENCE_ENV := SEND_ANONYMOUS_USAGE_STATS=no

$(DASH_STAMP): dashboard/package-lock.json dashboard/evidence-offline.patch
	cd dashboard && npm install --no-audit --no-fund
	patch -p1 -N -d dashboard/node_modules/@evidence-dev < dashboard/evidence-offline.patch
	@touch $@

dashboard-build: $(DASH_STAMP)
	@test -f data/published/marts.duckdb || { echo "no published snapshot: make run first"; exit 1; }
	cd dashboard && $(EVIDENCE_ENV) npm run sources && $(EVIDENCE_ENV) npm run build

dashboard: dashboard-build
	@echo "dashboard: http://127.0.0.1:$(DASHBOARD_PORT)/ (Ctrl-C stops it)"
	$(PYTHON) -m http.server $(DASHBOARD_PORT) --bind 127.0.0.1 -d dashboard/build

# Renders every page in headless Chromium (Debian's chromium, installed if absent) and checks
# its figures against the snapshot.
test-dashboard: install-dev dashboard-build
	@command -v chromium >/dev/null || apt-get install -y --no-install-recommends chromium
	$(BIN)/python -m pytest -m dashboard tests/dashboard

clean:
	rm -rf dbt_project/target dbt_project/logs .pytest_cache

# Pipeline benchmark (wall time, peak RSS, baselines, targets); writes bench/results/pipeline.md.
# The 20k shop measures the fixed cost (start-up, dbt, Dagster). 100M orders need about 15 GiB
# of disk, 45 min and a DuckDB memory limit:
#   make bench ORDERS=100000000 LTV_DUCKDB_MEMORY_LIMIT=6GiB LTV_DBT_THREADS=1
ORDERS ?= 20000 1000000 10000000
bench: install-dev
	$(BIN)/python bench/pipeline_bench.py --orders $(ORDERS)
