# cc-intake — every command an operator or developer needs. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PYTHONPATH := $(CURDIR)
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins

.DEFAULT_GOAL := help
.PHONY: help venv lint test test-fast demo up check backfill bench lock settings clean

help: ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP) ## Create .venv with the pinned environment

lint: $(STAMP) ## ruff (lint + format check) and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: $(STAMP) ## Every test: unit, DAG policy, integration (SFTP/HTTP/SMTP), e2e under the scheduler
	$(PY) -m pytest

test-fast: $(STAMP) ## Unit and DAG tests only
	$(PY) -m pytest tests/unit tests/dags

demo: $(STAMP) ## Run every sandbox provider's DAG for J-1 on a local sandbox, print a summary
	$(PY) -m include.cc_intake.sandbox.demo --work .demo

up: $(STAMP) ## airflow standalone with the sandbox (UI on http://127.0.0.1:$${CC_INTAKE_UP_PORT:-8080})
	$(PY) -m include.cc_intake.sandbox.up --work .up

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

bench: $(STAMP) ## Transfer benchmark vs OpenSSH sftp (see docs/benchmarks.md)
	$(PY) -m tests.benchmarks.bench_transfer

settings: $(STAMP) ## Load airflow_settings.yaml (Astro schema) into the plain Airflow at $$AIRFLOW_HOME
	$(PY) -m include.cc_intake.airflow.settings airflow_settings.yaml

lock: ## Re-resolve the pins into constraints.txt (needs PyPI)
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet $$(grep -hv '^\(-\|#\)' requirements.txt requirements-dev.txt)
	.lock-venv/bin/pip freeze > constraints.txt && rm -rf .lock-venv

clean: ## Remove the demo/up work folders (keeps .venv)
	rm -rf .demo .up .bench
