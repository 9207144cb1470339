# cc-intake — every command an operator or developer needs. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PIP_TOOLS := pip-tools==7.6.2
export PYTHONPATH := $(CURDIR)
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins

.DEFAULT_GOAL := help

.PHONY: help venv lint test test-fast demo up cluster check backfill worklist bench lock settings clean

help: ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) \
	  | awk 'BEGIN {FS = ":.*## "} {gsub(/\$$\$$/, "$$", $$2); printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade 'pip>=26.1'  # older pip ignores the lock's hashes
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP) ## Create .venv with the pinned environment

lint: $(STAMP) ## ruff (lint + format check), mypy and the layer contracts (import-linter)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# One pytest run per tier, cheapest first; make stops at the first failing tier. Exit code 5
# ("no tests collected") is not a failure: a tier may be empty, or fully deselected by -k.
PYTEST_TIER = $(PY) -m pytest $(1) $(PYTEST_ARGS) || [ $$? -eq 5 ]

test: $(STAMP) ## Every test, tier by tier (unit + DAG, integration, e2e); stops at the first failing tier
	$(call PYTEST_TIER,tests/unit tests/dags)
	$(call PYTEST_TIER,tests/integration)
	$(call PYTEST_TIER,tests/e2e)

test-fast: $(STAMP) ## Unit and DAG tests only (the first tier of make test)
	$(call PYTEST_TIER,tests/unit tests/dags)

demo: $(STAMP) ## Run every sandbox provider's DAG for J-1 on a local sandbox, print a summary
	$(PY) -m include.cc_intake.sandbox.demo --work .demo

up: $(STAMP) ## airflow standalone with the sandbox (UI on http://127.0.0.1:$${CC_INTAKE_UP_PORT:-8080})
	$(PY) -m include.cc_intake.sandbox.up --work .up

cluster: $(STAMP) ## PostgreSQL + Redis + CeleryExecutor ($${CC_INTAKE_WORKERS:-2} workers) with the sandbox, on loopback
	$(PY) -m include.cc_intake.sandbox.cluster --work .cluster

check: $(STAMP) ## Onboarding dry run: make check PROVIDER=<id> [DATE=YYYY-MM-DD]
	@test -n "$(PROVIDER)" || { echo "usage: make check PROVIDER=<id> [DATE=YYYY-MM-DD]"; exit 2; }
	@if [ ! -f include/providers/$(PROVIDER).yaml ] && [ -f include/cc_intake/sandbox/providers/$(PROVIDER).yaml ]; then \
	  $(PY) -m include.cc_intake.sandbox.check $(PROVIDER) $(if $(DATE),--date $(DATE)); \
	else \
	  $(PY) -m include.cc_intake.airflow.check $(PROVIDER) $(if $(DATE),--date $(DATE)); \
	fi

backfill: $(STAMP) ## Re-process a range of days: make backfill PROVIDER=<id> FROM=YYYY-MM-DD TO=YYYY-MM-DD [DRY_RUN=1]
	@test -n "$(PROVIDER)" -a -n "$(FROM)" -a -n "$(TO)" || { echo "usage: make backfill PROVIDER=<id> FROM=YYYY-MM-DD TO=YYYY-MM-DD"; exit 2; }
	$(PY) -m include.cc_intake.airflow.backfill $(PROVIDER) $(FROM) $(TO) $(if $(DRY_RUN),--dry-run)

worklist: $(STAMP) ## Build (or top up) and show an evaluators' worklist: make worklist PROVIDER=<id> DATE=YYYY-MM-DD [SHOW=1]
	@test -n "$(PROVIDER)" -a -n "$(DATE)" || { echo "usage: make worklist PROVIDER=<id> DATE=YYYY-MM-DD [SHOW=1]"; exit 2; }
	$(PY) -m include.cc_intake.airflow.worklist $(PROVIDER) $(DATE) $(if $(SHOW),--show)

bench: $(STAMP) ## Copy benchmark vs OpenSSH sftp, rclone, asyncssh mget; loopback and WAN (docs/benchmarks.md)
	$(PY) -m tests.benchmarks.bench_transfer --json .bench/last-run.json

settings: $(STAMP) ## Load airflow_settings.yaml (Astro schema) into the plain Airflow at $$AIRFLOW_HOME
	$(PY) -m include.cc_intake.airflow.settings airflow_settings.yaml

lock: ## Lock every pin with its hashes into constraints.txt (needs PyPI); UPGRADE=1 re-resolves all
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade 'pip>=26.1'
	.lock-venv/bin/python -m pip install --quiet $(PIP_TOOLS)
	$(if $(UPGRADE),: > constraints.txt)
	CUSTOM_COMPILE_COMMAND="make lock" .lock-venv/bin/pip-compile --quiet --generate-hashes \
	  --strip-extras --no-emit-index-url --no-emit-find-links \
	  --output-file constraints.txt requirements-dev.txt
	sed -i '/^    #   -c constraints.txt$$/d' constraints.txt  # every pin is "via" itself
	rm -rf .lock-venv

clean: ## Remove the demo/up/cluster work folders (keeps .venv)
	rm -rf .demo .up .cluster .bench
