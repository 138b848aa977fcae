# Every target works from a fresh clone: it builds .venv (reinstalling when the requirements change)
# and, where services are needed, brings the local stack up first.
SHELL := /bin/bash
PYTHON_BOOT ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements.sha
REQ_SHA := $(shell cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
export PYTHON := $(abspath $(PY))

.PHONY: venv up down status test demo bench lint

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

demo: up
	@$(PY) -m lakehouse.demo

bench: up  # make bench BENCH_ARGS="--quick --only warehouse,latency"
	@$(PY) -m bench.run $(BENCH_ARGS)

lint: venv
	@$(PY) -m ruff check .
