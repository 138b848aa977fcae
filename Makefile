# Every target works from a fresh clone: it builds .venv (reinstalling when the requirements change)
# and, where services are needed, brings the local stack up first.
SHELL := /bin/bash
PYTHON_BOOT ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements.sha
REQ_SHA := $(shell cat requirements.txt requirements-beam.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
export PYTHON := $(abspath $(PY))

.PHONY: venv up down status test test-dates demo bench lint

venv: $(STAMP)

$(STAMP): requirements.txt requirements-beam.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	@if [ "$$(cat $(STAMP) 2>/dev/null)" != "$(REQ_SHA)" ]; then \
	  echo "[venv] installing requirements into $(VENV)"; \
	  $(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt && echo "$(REQ_SHA)" > $(STAMP); \
	fi

up: venv
	@stack/stack.sh up

down:
	@stack/stack.sh down

status: venv
	@stack/stack.sh status; $(PY) data_lake_config.py status || true

test: up
	@$(PY) -m pytest

# The whole suite again under clocks pinned to awkward dates: tests/clock/sitecustomize.py moves the clock of every
# Python process of a run (pytest and each script a test starts) by one offset from the real clock, fixed per run,
# so they all agree. Narrow it with PINNED_DATES="2028-02-29 09:00:00" PYTEST_ARGS="tests/lake". Plugins are named,
# not autoloaded: time-machine, already imported by the clock, would be imported again as a pytest plugin.
PINNED_DATES ?= 2027-01-05 09:00:00,2026-09-09 09:00:00,2028-02-29 09:00:00,2026-12-31 23:59:30
test-dates: up
	@dates="$(PINNED_DATES)"; IFS=,; for moment in $$dates; do \
	  offset=$$(( $$(date -ud "$$moment" +%s) - $$(date +%s) )); \
	  echo "[test-dates] clock pinned at $$moment UTC (offset $${offset}s)"; \
	  LAKEHOUSE_TEST_CLOCK_OFFSET=$$offset PYTHONPATH=$(CURDIR)/tests/clock PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 \
	    $(PY) -m pytest -p pytest_timeout $(PYTEST_ARGS) || exit 1; \
	done

demo: up
	@$(PY) -m lakehouse.orchestration.demo

bench: up  # make bench BENCH_ARGS="--quick --only warehouse,latency"
	@$(PY) -m bench.run $(BENCH_ARGS)

lint: venv
	@$(PY) -m ruff check .
