# The README's commands. Each target creates .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: run test check lint format install install-test system-tools soak bench bench-read clean

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

# Runs the MariaDB and PostgreSQL tests too when local servers answer (see tests/conftest.py);
# `make test FIND_DATABASES=` runs only those the CDRLOG_TEST_*_URL variables name.
FIND_DATABASES ?= 1

# Two workers, each on databases of its own (tests/conftest.py); the tests that time the
# server (marked `alone`) run afterwards with nothing beside them. `make test WORKERS=0`
# runs everything in one process.
WORKERS ?= 2

test: install-test system-tools
	CDRLOG_TEST_FIND_DATABASES=$(FIND_DATABASES) $(BIN)/pytest -n $(WORKERS) --dist loadgroup -m 'not alone'
	CDRLOG_TEST_FIND_DATABASES=$(FIND_DATABASES) $(BIN)/pytest -m alone

lint: install-test
	$(BIN)/ruff format --check src tests scripts
	$(BIN)/ruff check src tests scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

format: install-test
	$(BIN)/ruff format src tests scripts
	$(BIN)/ruff check --fix src tests scripts

check: lint test

# Benchmarks print figures; they are not tests. They use databases cdrlog_perf (push)
# and cdrlog_bench (read) on the local MariaDB and PostgreSQL, and skip those that are
# not there; `--backends NAME=URL` picks others (their tables are dropped and recreated).
# The push benchmark also serves the seed's PHP script (nginx and php-fpm, on MariaDB's
# cdrlog_perf_seed) and times `cdrlog replay` of 1,000,000 events (about 15 minutes in
# all); `make bench BENCH_ARGS='--seconds 5 --replay-events 100000'` is a quick one.
BENCH_ARGS ?=
BENCH_HOOKS_ARGS ?=

bench: install-test system-tools
	@scripts/ensure-bench-tools
	$(BIN)/python scripts/bench_push.py $(BENCH_ARGS)
	$(BIN)/python scripts/bench_hooks.py $(BENCH_HOOKS_ARGS)

bench-read: install-test
	$(BIN)/python scripts/bench_read.py

# Longer chaos runs than CI's, on SQLite and MariaDB: 20,000 events under SIGKILL,
# 10,000 fuzzed requests (about 9 minutes on two quiet cores).
SOAK_MYSQL_URL ?= mysql+pymysql://root@127.0.0.1/test

soak: install-test
	CDRLOG_REQUIRE_ALL=1 CDRLOG_TEST_MYSQL_URL='$(SOAK_MYSQL_URL)' CDRLOG_KILL_EVENTS=20000 \
		$(BIN)/pytest -s --durations=0 tests/system/test_kill.py -k 'sqlite or mariadb'
	CDRLOG_REQUIRE_ALL=1 CDRLOG_TEST_MYSQL_URL='$(SOAK_MYSQL_URL)' CDRLOG_FUZZ_REQUESTS=10000 \
		$(BIN)/pytest -s --durations=0 tests/system/test_fuzz.py -k 'sqlite or mariadb'

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
