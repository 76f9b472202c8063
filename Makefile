# One task runner: what a person types is what CI runs (.ci/run calls `make test`).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test unit integration e2e lint bench bench-data-sets install system-deps clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## the whole stack on the embedded default: Tansu broker, ingest, Faust worker, chdb under ./var
run: $(STAMP)
	$(BIN)/perfplat up

## Debian's ClickHouse server for the integration tier (installed only when missing)
system-deps:
	@if ! command -v clickhouse-server >/dev/null && ! test -x /usr/sbin/clickhouse-server; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq clickhouse-server >/dev/null; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit -q

integration: $(STAMP) system-deps
	$(BIN)/pytest tests/integration -q

e2e: $(STAMP) system-deps
	$(BIN)/pytest tests/e2e -q

## every tier; the test session starts and stops the broker and the ClickHouse server itself
test: $(STAMP) system-deps lint
	$(BIN)/pytest tests -q

## start the embedded stack in ./var/bench, drive it with `perfplat bench`, stop it
bench: $(STAMP)
	rm -rf var/bench && mkdir -p var/bench
	PERFPLAT_DATA_DIR=var/bench $(BIN)/perfplat up > var/bench/stack.log 2>&1 & pid=$$!; \
	trap 'kill -INT $$pid 2>/dev/null; wait $$pid' EXIT; \
	for i in $$(seq 120); do curl -sf http://127.0.0.1:8000/healthz >/dev/null && break; sleep 0.5; done; \
	sleep 8; $(BIN)/perfplat bench $(ARGS)

## the data-set API's targets on a stack of its own (broker, ClickHouse server, api, worker)
bench-data-sets: $(STAMP) system-deps
	$(BIN)/perfplat bench data-sets $(ARGS)

## the browser beacon: install the locked minifier, build producers/beacon/dist/beacon.min.js (commit it)
.PHONY: beacon
beacon:
	cd producers/beacon && npm ci --no-audit --no-fund && npm run --silent build

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
