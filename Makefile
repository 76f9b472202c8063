# One task runner: what a person types is what CI runs (.ci/run calls `make test`).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ASSETS_CSS := api/assets/dist/govuk.css

.PHONY: run test unit integration e2e lint bench bench-data-sets install system-deps browser-deps clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) $(ASSETS_CSS)

## the dashboards' styles: GOV.UK Frontend's Sass from the npm registry (locked), compiled with
## perfplat's settings (api/assets/govuk.scss) into api/assets/dist/govuk.css
$(ASSETS_CSS): api/assets/package-lock.json api/assets/package.json api/assets/govuk.scss
	cd api/assets && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build

.PHONY: assets
assets: $(ASSETS_CSS)

## the whole stack on the embedded default: Tansu broker, ingest, Faust worker, chdb under ./var
run: $(STAMP) $(ASSETS_CSS)
	$(BIN)/perfplat up

## Debian's ClickHouse server for the integration tier (installed only when missing)
system-deps:
	@if ! command -v clickhouse-server >/dev/null && ! test -x /usr/sbin/clickhouse-server; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq clickhouse-server >/dev/null; \
	fi

## Debian's Chromium for the browser tests (tests/support/browser.py drives it with Playwright,
## whose own browser downloads are not used); installed only when missing
browser-deps:
	@if ! command -v chromium >/dev/null && ! test -x /usr/bin/chromium; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit -q

integration: $(STAMP) system-deps
	$(BIN)/pytest tests/integration -q

e2e: $(STAMP) $(ASSETS_CSS) system-deps browser-deps
	$(BIN)/pytest tests/e2e -q

## every tier; the test session starts and stops the broker and the ClickHouse server itself
test: $(STAMP) $(ASSETS_CSS) system-deps browser-deps lint
	$(BIN)/pytest tests -q

## start the embedded stack in ./var/bench, drive it with `perfplat bench`, stop it
bench: $(STAMP) $(ASSETS_CSS)
	rm -rf var/bench && mkdir -p var/bench
	PERFPLAT_DATA_DIR=var/bench $(BIN)/perfplat up > var/bench/stack.log 2>&1 & pid=$$!; \
	trap 'kill -INT $$pid 2>/dev/null; wait $$pid' EXIT; \
	for i in $$(seq 120); do curl -sf http://127.0.0.1:8000/healthz >/dev/null && break; sleep 0.5; done; \
	sleep 8; $(BIN)/perfplat bench $(ARGS)

## the data-set API's targets on a stack of its own (broker, ClickHouse server, api, worker)
bench-data-sets: $(STAMP) system-deps
	$(BIN)/perfplat bench data-sets $(ARGS)

## the dashboard page's first render with a year of data, on a stack of its own (embedded by
## default: perfplat up on free ports; ARGS='--backend server' for the ClickHouse server)
.PHONY: bench-dashboard
bench-dashboard: $(STAMP) $(ASSETS_CSS)
	$(BIN)/perfplat bench dashboard $(ARGS)

## the browser beacon: install the locked minifier, build producers/beacon/dist/beacon.min.js (commit it)
.PHONY: beacon
beacon:
	cd producers/beacon && npm ci --no-audit --no-fund && npm run --silent build

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
