# The platform's front door. `make run` and `make test` do all set-up on a fresh machine
# (Python environment, Delta jars) and skip it when it is already done.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON     ?= python3
UV_VERSION := 0.13.8
TOOLS      := .cache/tools
UV         := $(TOOLS)/bin/uv
VENV       := .venv
AIRFLOW_VENV := .venv-airflow
PY         := $(VENV)/bin/python
JAR_DIR    := .cache/jars
KAFKA_JARS := .cache/kafka-jars
DBT_DEPS   := dbt_project/dbt_packages/.installed
SETUP      := $(VENV)/.installed $(JAR_DIR)/.complete $(KAFKA_JARS)/.complete $(DBT_DEPS) \
              $(AIRFLOW_VENV)/.installed $(VENV)/.bytecode $(AIRFLOW_VENV)/.bytecode

export UV_PYTHON_DOWNLOADS := never

.PHONY: help setup run test test-fast bench up down status ingest dbt-build publish report backfill docs airflow \
        lint format clean clean-data

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: $(SETUP) ## install the Python environments, fetch the Delta and Kafka jars (once)

$(UV):
	@command -v java >/dev/null || { echo "Java 17+ is required (JAVA_HOME or java on PATH)"; exit 1; }
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

# Every module's .pyc, written once: without them each Python process compiles what it imports
# from source again wherever PYTHONDONTWRITEBYTECODE is set (as on the development machines and
# in CI): ~2 CPU-s per Airflow task process, more per dbt start-up (docs/performance.md).
# (A sync with nothing to install; uv compiles in parallel and skips what it cannot compile.)
$(VENV)/.bytecode: $(VENV)/.installed
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON) --quiet
	@touch $@

$(AIRFLOW_VENV)/.bytecode: $(AIRFLOW_VENV)/.installed
	UV_PROJECT_ENVIRONMENT=$(CURDIR)/$(AIRFLOW_VENV) $(UV) sync --frozen --compile-bytecode \
		--project orchestration --python $(PYTHON) --quiet
	@touch $@

# Airflow + Cosmos get an environment of their own (orchestration/pyproject.toml and uv.lock).
$(AIRFLOW_VENV)/.installed: orchestration/pyproject.toml orchestration/uv.lock | $(UV)
	UV_PROJECT_ENVIRONMENT=$(CURDIR)/$(AIRFLOW_VENV) $(UV) sync --frozen --project orchestration \
		--python $(PYTHON)
	@touch $@

$(JAR_DIR)/.complete: engine/pom.xml $(VENV)/.installed
	@command -v mvn >/dev/null || { echo "Maven is required to fetch the Delta jars"; exit 1; }
	rm -rf $(JAR_DIR)
	mvn -B -q -f engine/pom.xml dependency:copy-dependencies -DoutputDirectory=$(CURDIR)/$(JAR_DIR)
	$(PY) -m lakehouse.stack.jars
	@touch $@

$(KAFKA_JARS)/.complete: engine/kafka/pom.xml
	@command -v mvn >/dev/null || { echo "Maven is required to fetch the Kafka jars"; exit 1; }
	rm -rf $(KAFKA_JARS)
	mvn -B -q -f engine/kafka/pom.xml dependency:copy-dependencies -DoutputDirectory=$(CURDIR)/$(KAFKA_JARS)
	@touch $@

# dbt packages are local (dbt_project/packages): `dbt deps` links them, no network.
$(DBT_DEPS): dbt_project/packages.yml $(VENV)/.installed
	$(VENV)/bin/dbt deps --project-dir dbt_project --profiles-dir profiles
	@touch $@

run: $(SETUP) ## run the whole pipeline on the local engine: ingest, dbt build, publish, report
	$(PY) -m lakehouse run

# Debian's Chromium for the UI screenshot tests (Playwright drives it; it downloads no browser).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] || { \
		echo "the UI tests need Chromium at $(CHROMIUM): install Debian's chromium package"; exit 1; }
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

# The fast tier (tests/fast/): no engine, no service (no JVM, PostgreSQL, broker, emulator or
# running Airflow); spread test by test over FAST_WORKERS pytest workers, as most of its time is
# waiting (retry back-offs, dlt's and dbt's start-up). Whatever lands in tests/fast/ runs here,
# the DAG-integrity test in the Airflow environment included (set-up installs it).
FAST_WORKERS ?= 4
test-fast: $(SETUP) ## the fast tier alone (tests/fast/: no engine, no service), in about a minute
	$(VENV)/bin/pytest tests/fast -n $(FAST_WORKERS)

# Lint, the fast tier, then the engine tier on two pytest workers: the modules on the suite's lake
# in order on one; beside them on the other, the modules that share nothing with it (crash
# recovery, the service tests), then Airflow's on a lake of its own (tests/conftest.py places
# each module; docs/performance.md: `make test`). TEST_WORKERS=0 runs the engine tier in one
# process, in file order.
TEST_WORKERS ?= 2
test: $(SETUP) $(CHROMIUM) ## lint, the fast tier, then the engine tier (real engines: pytest runs dbt build and its tests)
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory test-fast
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --ignore=tests/fast

# The bench's own lake home, emptied at each start: never the data of `make run` or the tests.
SCALE ?= 1
BENCH_HOME := .lakehouse-bench
bench: $(SETUP) ## measure against issue 16's targets: SCALE=1 (default); TESTS=1 also times make test
	$(PY) -m lakehouse.bench --scale $(SCALE) --home $(BENCH_HOME) $(if $(TESTS),--tests) \
		$(if $(REPEAT),--repeat $(REPEAT))

up: $(SETUP) ## start the local Spark Thrift Server, source systems and warehouse stand-ins
	$(PY) -m lakehouse up

down: ## stop everything `make up` and `make airflow` started
	@if [ -x $(PY) ]; then $(PY) -m lakehouse down; fi

status: $(SETUP) ## is the engine up, and where does data live
	$(PY) -m lakehouse status

ingest: $(SETUP) ## load every source into bronze
	$(PY) -m lakehouse ingest

dbt-build: $(SETUP) ## dbt build against the running engine (make up first), with lineage
	$(PY) -m lakehouse dbt build

publish: $(SETUP) ## publish gold to Snowflake and Redshift (WAREHOUSE=snowflake|redshift for one)
	$(PY) -m lakehouse publish $(if $(WAREHOUSE),--warehouse $(WAREHOUSE))

report: $(SETUP) ## watchdog report (HTML: freshness, volume, DQ, runs, cost); row counts if the engine is up
	$(PY) -m lakehouse report

# A window of one source, then dbt build of exactly its downstream models (docs/operations.md):
#   make backfill SOURCE=fx FROM=2025-01-14 [TO=2025-01-15]            days, both included
#   make backfill SOURCE=crm|kafka|redshift FROM=<ISO-8601> TO=<ISO-8601>  [FROM, TO), UTC
#   make backfill SOURCE=redshift FROM_ID=1000 TO_ID=2000 [TABLE=sessions]  ids [FROM_ID, TO_ID)
#   make backfill SOURCE=snowflake MODE=reload|downstream-only [TABLE=orders]
# Optional: TABLE (one or more, space-separated), NO_REBUILD=1, DRY_RUN=1 (validate, say what).
backfill: $(SETUP) ## reload a window of a source, rebuild downstream: SOURCE= FROM= TO= | FROM_ID= TO_ID= | MODE=reload|downstream-only [TABLE= DRY_RUN=1]
	$(if $(filter-out window ids reload downstream-only,$(MODE)),$(error MODE=$(MODE): choose window, ids, reload or downstream-only))
	$(PY) -m lakehouse backfill --source "$(SOURCE)" $(if $(FROM),--from "$(FROM)") \
		$(if $(TO),--to "$(TO)") $(if $(FROM_ID),--from-id "$(FROM_ID)") \
		$(if $(TO_ID),--to-id "$(TO_ID)") $(if $(filter reload,$(MODE)),--reload) \
		$(if $(filter downstream-only,$(MODE)),--downstream-only) \
		$(foreach t,$(TABLE),--table "$(t)") $(if $(NO_REBUILD),--no-rebuild) \
		$(if $(DRY_RUN),--dry-run)

docs: $(SETUP) ## generate the docs site (dbt docs, column lineage, dataset registry) and serve it on :8081
	$(PY) -m lakehouse docs --serve $(if $(PORT),--port $(PORT))

airflow: $(SETUP) ## start the local stack and Airflow (UI on http://127.0.0.1:8080); make down stops it
	$(PY) -m lakehouse up
	$(PY) -m lakehouse airflow up

# The dbt project's lint: sqlfluff over its SQL (.sqlfluff: the house style, one worker per
# core), then dbt-score over its manifest (pyproject.toml [tool.dbt-score]: the conventions,
# dbt_project/lint/dbt_score_rules). `dbt parse` writes the manifest without an engine; each
# target enables only its own models, so the three targets are parsed side by side and merged.
DBT_LINT := dbt_project/target/lint
DBT_LINT_TARGETS := local snowflake_local redshift_local
lint: $(SETUP) ## ruff, sqlfluff over the dbt SQL, dbt-score over the dbt project's conventions
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/sqlfluff lint dbt_project/models dbt_project/macros dbt_project/tests
	@pids=(); for t in $(DBT_LINT_TARGETS); do \
		$(VENV)/bin/dbt parse --quiet --project-dir dbt_project --profiles-dir profiles --target $$t \
			--target-path $(CURDIR)/$(DBT_LINT)/$$t & pids+=($$!); done; \
		for p in "$${pids[@]}"; do wait $$p || exit 1; done
	$(PY) dbt_project/lint/merge_manifests.py $(DBT_LINT)/manifest.json \
		$(foreach t,$(DBT_LINT_TARGETS),$(DBT_LINT)/$(t)/manifest.json)
	PYTHONPATH=dbt_project/lint DBT_PROJECT_DIR= DBT_TARGET_DIR=$(DBT_LINT) \
		$(VENV)/bin/dbt-score lint --manifest $(DBT_LINT)/manifest.json

format: $(SETUP) ## apply ruff's and sqlfluff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .
	$(VENV)/bin/sqlfluff fix dbt_project/models dbt_project/macros dbt_project/tests

clean-data: down ## delete the local lake, warehouse and metastore
	rm -rf .lakehouse .lakehouse-test .lakehouse-test-* .lakehouse-bench dbt_project/target dbt_project/logs

clean: clean-data ## also delete the environments and jar cache
	rm -rf $(VENV) $(AIRFLOW_VENV) .cache
