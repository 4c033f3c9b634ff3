# The README's commands. Each target creates .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: run test check lint format install install-test system-tools clean

$(BIN)/cdrlog: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.test-deps: $(BIN)/cdrlog
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

system-tools:
	@scripts/ensure-system-tools

install: $(BIN)/cdrlog

install-test: $(VENV)/.test-deps

run: install
	$(BIN)/cdrlog serve --host $(HOST) --port $(PORT)

test: install-test system-tools
	$(BIN)/pytest

lint: install-test
	$(BIN)/ruff format --check src tests
	$(BIN)/ruff check src tests
	$(BIN)/mypy

format: install-test
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

check: lint test

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
