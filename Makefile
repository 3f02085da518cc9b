# The two commands: `make run` and `make test`. Everything else is a helper.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
NIGHT ?= 2026-11-27
ANPR_READS ?= 5000
export XFORCE_DATA_DIR ?= $(CURDIR)/data
export GX_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1

.PHONY: install run up down test test-unit lint bench clean lock-check

$(BIN)/xforce: pyproject.toml requirements.lock
	@command -v $(PY) >/dev/null || { echo "Python 3.11 is needed ($(PY) not found)"; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==0.13.8"
	$(BIN)/uv pip sync --quiet --compile-bytecode --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $@

install: $(BIN)/xforce

run: install
	$(BIN)/xforce generate --date $(NIGHT) --out $(XFORCE_DATA_DIR)/landing --anpr-reads $(ANPR_READS)
	$(BIN)/xforce run --date $(NIGHT)

# Airflow here in the background to watch nights (UI on 127.0.0.1, port XFORCE_UI_PORT or 8080); `make down` stops it.
up: install
	$(BIN)/xforce up

down:
	$(BIN)/xforce down

test: install
	$(BIN)/python -m pytest

test-unit: install
	$(BIN)/python -m pytest -m unit

lint: install
	$(BIN)/ruff check plugins dags tests tools
	$(BIN)/ruff format --check plugins dags tests tools
	$(BIN)/mypy plugins/xforce tools/xforce_tools

lock-check: install
	rm -f /tmp/xforce-lock.raw
	$(BIN)/uv pip compile --quiet pyproject.toml --extra dev --python-version 3.11 -o /tmp/xforce-lock.raw
	grep -v '^#' /tmp/xforce-lock.raw | grep -v '^ ' > /tmp/xforce-lock.txt
	grep -v '^#' requirements.lock | grep -v '^ ' | diff - /tmp/xforce-lock.txt

bench: install
	$(BIN)/python -m xforce_tools.bench

clean:
	rm -rf data
