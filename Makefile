# Every target works from a fresh clone: it builds .venv (reinstalling when the requirements change)
# and, where services are needed, brings the local stack up first.
SHELL := /bin/bash
PYTHON_BOOT ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements.sha
REQ_SHA := $(shell cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
export PYTHON := $(abspath $(PY))

.PHONY: venv up down status test test-dates demo bench lint

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
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

# The whole suite again under clocks pinned to awkward dates (libfaketime, from Debian, installed by make up), as a
# fixed offset from the real clock, so every process of a run (pytest, the scripts it starts) shows the same time.
# The broker and MariaDB keep the real clock. Narrow it with PYTEST_ARGS="tests/test_lake_layout.py".
PINNED_DATES ?= 2027-01-05 09:00:00,2026-09-09 09:00:00,2028-02-29 09:00:00,2026-12-31 23:59:30
FAKETIME_LIB = $(firstword $(wildcard /usr/lib/*/faketime/libfaketime.so.1))
test-dates: up
	@test -n "$(FAKETIME_LIB)" || { echo "libfaketime is not installed (apt-get install libfaketime)"; exit 1; }
	@dates="$(PINNED_DATES)"; IFS=,; for moment in $$dates; do \
	  offset=$$(( $$(date -ud "$$moment" +%s) - $$(date +%s) )); \
	  echo "[test-dates] clock pinned at $$moment UTC (offset $${offset}s)"; \
	  FAKETIME="$$(printf '%+d' $$offset)s" LD_PRELOAD=$(FAKETIME_LIB) $(PY) -m pytest $(PYTEST_ARGS) || exit 1; \
	done

demo: up
	@$(PY) -m lakehouse.orchestration.demo

bench: up  # make bench BENCH_ARGS="--quick --only warehouse,latency"
	@$(PY) -m bench.run $(BENCH_ARGS)

lint: venv
	@$(PY) -m ruff check .
