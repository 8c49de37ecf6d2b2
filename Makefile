# The two commands of the README — `make run` and `make test` — do all set-up themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-infra-down infra-up infra-down infra-status install lint typecheck schemas unit clean demo bench profile faults faults-cluster docs browser asyncapi-tools models analytics

$(STAMP): pyproject.toml
	@echo "[setup] creating $(VENV) and installing the project (first run only)…"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@$(BIN)/python -m pip install --quiet --progress-bar off -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# AsyncAPI's parser, Modelina and tsc, pinned by tools/asyncapi/package-lock.json, for the
# tests that hold docs/asyncapi to what consumers' tools accept (Node 20+ and npm needed).
NODE_TOOLS := tools/asyncapi
NODE_STAMP := $(NODE_TOOLS)/node_modules/.installed

$(NODE_STAMP): $(NODE_TOOLS)/package.json $(NODE_TOOLS)/package-lock.json
	@command -v npm >/dev/null || { echo "[setup] npm not found: install Node.js 20 or newer with npm (the AsyncAPI tests run AsyncAPI's own parser)" >&2; exit 1; }
	@echo "[setup] installing AsyncAPI's parser, Modelina and tsc into $(NODE_TOOLS)/node_modules (first run only)…"
	@cd $(NODE_TOOLS) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $(NODE_STAMP)

asyncapi-tools: $(NODE_STAMP)

# What a consumer generates from offer_service.json: TypeScript models (Modelina) in build/models.
models: asyncapi-tools
	@node $(NODE_TOOLS)/models.cjs docs/asyncapi/offer_service.json build/models

infra-up:
	@$(PYTHON) infra/infra.py up

infra-down:
	@$(PYTHON) infra/infra.py down

infra-status:
	@$(PYTHON) infra/infra.py status

# Kafka and the database in the background, the three services and the gateway (the page for
# both parties: http://127.0.0.1:8000/) in the foreground; Ctrl-C stops all.
run: install infra-up
	@$(BIN)/python -m services

# With `make run` going in another terminal: a whole negotiation, step by step.
demo: install
	@$(BIN)/offers demo

# Figures for the README: throughput beside two plain aiokafka pipelines, latency, resuming
# after kill -9, growth.
bench: install infra-up
	@$(BIN)/python -m bench

# py-spy on offer_service and notification_service while the throughput path runs: top frames.
profile: install infra-up
	@$(BIN)/python -m bench.profile

# The reference analytics consumer (analytics/): catches up on the event topics of `make run`'s
# Kafka into .infra/analytics.duckdb, prints the funnel and writes .infra/analytics-report.html.
analytics: install infra-up
	@$(BIN)/python -m analytics --until-caught-up
	@$(BIN)/python -m analytics report --html .infra/analytics-report.html

# The fault scripts that restart Kafka or the database; each prints a verdict.
faults: install
	@$(TEST_ENV) $(PYTHON) infra/infra.py up
	@$(TEST_ENV) $(BIN)/python -m faults

# The faults that lose a broker, its disk, or an instance of each service, on a local cluster of
# three brokers (infra/cluster.py, started here; `infra/cluster.py down` stops it).
faults-cluster: install
	@$(TEST_ENV) $(BIN)/python -m faults broker-lost disk-lost instances-lost

# The AsyncAPI documents under docs/, regenerated from the code.
docs: install
	@$(BIN)/python -m services.asyncapi

lint: install
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .

typecheck: install
	@$(BIN)/mypy contracts services offers_cli analytics faults bench tests infra/infra.py infra/cluster.py

schemas: install
	@$(BIN)/python -m contracts.schemas

unit: install asyncapi-tools
	@$(BIN)/pytest -q tests/unit

# The tests (and the fault scripts) get a Kafka and a database of their own (infra/test.env),
# so that what they leave on the topics never reaches the services `make run` starts.
TEST_ENV := env $$(cat infra/test.env)

# Debian's Chromium for the browser test (installed when missing; says what to do where it cannot).
browser:
	@infra/browser.sh

# Every tier: unit, integration (real Kafka + FerretDB) and end to end (services as processes,
# and two parties in headless Chromium).
test: install asyncapi-tools browser
	@$(TEST_ENV) $(PYTHON) infra/infra.py up
	@$(BIN)/ruff check .
	@$(BIN)/mypy contracts services offers_cli analytics faults bench tests infra/infra.py infra/cluster.py
	@$(TEST_ENV) $(BIN)/pytest -q

test-infra-down:
	@$(TEST_ENV) $(PYTHON) infra/cluster.py down
	@$(TEST_ENV) $(PYTHON) infra/infra.py down

clean: infra-down test-infra-down
	@$(PYTHON) infra/cluster.py down
	rm -rf $(VENV) .infra $(NODE_TOOLS)/node_modules
