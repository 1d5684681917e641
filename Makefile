# Every user-facing target starts what it needs by itself (venv, Kafka, PostgreSQL).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Every install takes its versions from this lock (pyproject.toml says only what is allowed).
LOCK := constraints.txt
UV := $(VENV)/bin/uv
LOCK_TARGET := --python-version 3.11 --python-platform x86_64-manylinux_2_28
STACK_ENV = eval "$$($(PY) -m devstack env)"

.PHONY: help venv lock lock-upgrade lock-check browser stack-up stack-down stack-status migrate demo demo-stop test test-unit lint bench-ledger bench-pipeline bench-swaps bench-api bench-rules bench-smoke openapi clean

help:
	@echo "make demo          a day at the bank end to end (starts Kafka, the ledger, a worker)"
	@echo "make demo-stop     stop everything the demo and the stack started"
	@echo "make test          run every test against a real Kafka broker and real PostgreSQL"
	@echo "make bench-ledger  ledger benchmark (PostgreSQL and SQLite), last line is JSON"
	@echo "make bench-pipeline  Kafka -> earning worker -> PostgreSQL benchmark, last line is JSON"
	@echo "make bench-swaps   swap round trips through the partner simulator, last line is JSON"
	@echo "make bench-api     customer API under 50 connections (wrk), last line is JSON"
	@echo "make bench-rules   the rules engine alone (no stack), last line is JSON"
	@echo "make bench-smoke   every bench at small sizes (< 2 min); fails if any bench fails"
	@echo "make stack-up|stack-down|stack-status   the local Kafka + PostgreSQL stack"
	@echo "make lint          ruff + mypy over every package and the tests"
	@echo "make lock          re-resolve constraints.txt after editing pyproject.toml's dependencies"
	@echo "make lock-upgrade  move every locked version to the newest that pyproject.toml allows"
	@echo "make lock-check    fail if constraints.txt does not match pyproject.toml (CI runs it)"

# PYTHONWARNINGS silences setuptools' "Editable installation" notice (a reminder, not a problem).
$(STAMP): pyproject.toml $(LOCK)
	@command -v $(PYTHON) >/dev/null || { echo "missing: $(PYTHON) (Python 3.11+)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	PYTHONWARNINGS='ignore:Editable installation' $(PY) -m pip install -q -c $(LOCK) -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

# The resolver (uv, at the version the lock pins) is installed by itself, so `make lock` works
# even when the edited pyproject.toml no longer agrees with the old lock.
$(UV):
	@command -v $(PYTHON) >/dev/null || { echo "missing: $(PYTHON) (Python 3.11+)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c $(LOCK) uv

# `make lock` keeps every version already in the lock that pyproject.toml still allows and
# resolves only what is new or no longer allowed; `make lock-upgrade` moves everything to the
# newest allowed. The lock file is replaced only when it changed (so the venv is not rebuilt).
# `make lock-check` (CI) fails when pyproject.toml was edited without `make lock`.
lock: $(UV)
	$(call resolve_lock,$(LOCK).new,)
	@$(take_new_lock)

lock-upgrade: $(UV)
	$(call resolve_lock,$(LOCK).new,--upgrade)
	@$(take_new_lock)

lock-check: $(UV)
	$(call resolve_lock,$(LOCK).check,)
	@if cmp -s $(LOCK) $(LOCK).check; then rm $(LOCK).check; echo "$(LOCK) matches pyproject.toml"; \
	else diff -u $(LOCK) $(LOCK).check; rm $(LOCK).check; \
	  echo "$(LOCK) does not match pyproject.toml: run make lock and commit it"; exit 1; fi

take_new_lock = if cmp -s $(LOCK) $(LOCK).new; then rm $(LOCK).new; echo "$(LOCK) unchanged"; \
	else mv $(LOCK).new $(LOCK); echo "$(LOCK) updated: review git diff $(LOCK)"; fi

# $(1): the file to write (a copy of the lock, so its versions are kept); $(2): extra flags.
define resolve_lock
	cp $(LOCK) $(1)
	$(UV) pip compile pyproject.toml --extra dev $(LOCK_TARGET) --quiet $(2) \
	  --custom-compile-command "make lock" -o $(1)
endef

stack-up: venv
	$(PY) -m devstack up

stack-down: venv
	$(PY) -m devstack down

stack-status: venv
	$(PY) -m devstack status

migrate: venv
	$(PY) -m alembic upgrade head

# The demo's ledger is embedded SQLite unless POINTS_DATABASE__URL is set: then it needs only
# the broker (and no PostgreSQL install).
demo: venv
	$(PY) -m devstack up $(if $(POINTS_DATABASE__URL),,--only kafka)
	$(STACK_ENV) && $(PY) -m demo

demo-stop: venv
	$(PY) -m demo stop
	$(PY) -m devstack down

test: stack-up browser
	$(STACK_ENV) && $(PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS)

# The dashboard's end-to-end test drives Debian's headless chromium.
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get install -y -q chromium fonts-dejavu-core >/dev/null 2>&1 || \
	     (apt-get update -q >/dev/null && apt-get install -y -q chromium fonts-dejavu-core >/dev/null)) && \
	    echo "installed chromium for the dashboard test"; \
	  else echo "missing: chromium (apt-get install -y chromium fonts-dejavu-core)"; exit 1; fi; }

test-unit: venv
	$(PY) -m pytest tests/unit -q

lint: venv
	$(PY) -m ruff check .
	$(PY) -m mypy

bench-ledger: stack-up
	$(STACK_ENV) && $(PY) -m benchmarks.bench_ledger --pg-url "$$POINTS_BENCH_PG_URL"

bench-pipeline: stack-up
	$(STACK_ENV) && $(PY) -m benchmarks.bench_pipeline

bench-swaps: stack-up
	$(STACK_ENV) && $(PY) -m benchmarks.bench_swaps

bench-api: stack-up
	$(STACK_ENV) && $(PY) -m benchmarks.bench_api

bench-rules: venv
	$(PY) -m benchmarks.bench_rules

# Every bench at small sizes: proves each still runs end to end (not a measurement). Each prints
# its last-line JSON; the first one that fails fails the target.
bench-smoke: stack-up
	$(STACK_ENV) && set -e && \
	  echo "== bench-rules" && $(PY) -m benchmarks.bench_rules --customers 300 --transactions 2000 && \
	  echo "== bench-ledger" && $(PY) -m benchmarks.bench_ledger --pg-url "$$POINTS_BENCH_PG_URL" --quick && \
	  echo "== bench-pipeline" && $(PY) -m benchmarks.bench_pipeline --transactions 3000 --customers 500 --latency-seconds 2 && \
	  echo "== bench-swaps" && $(PY) -m benchmarks.bench_swaps --swaps 200 --chunk 100 --timeout 60 && \
	  echo "== bench-api" && $(PY) -m benchmarks.bench_api --customers 200 --seconds 2

openapi: venv
	$(PY) -m points.api.openapi

clean: stack-down
	rm -rf .stack data
