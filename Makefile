# The two commands of the README — `make run` and `make test` — do all set-up themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test infra-up infra-down infra-status install lint typecheck schemas unit clean

$(STAMP): pyproject.toml
	@echo "[setup] creating $(VENV) and installing the project (first run only)…"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@$(BIN)/python -m pip install --quiet --progress-bar off -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

infra-up:
	@$(PYTHON) infra/infra.py up

infra-down:
	@$(PYTHON) infra/infra.py down

infra-status:
	@$(PYTHON) infra/infra.py status

# Kafka and the database in the background, the three services in the foreground; Ctrl-C stops all.
run: install infra-up
	@$(BIN)/python -m services

lint: install
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .

typecheck: install
	@$(BIN)/mypy contracts services tests infra/infra.py

schemas: install
	@$(BIN)/python -m contracts.schemas

unit: install
	@$(BIN)/pytest -q tests/unit

# Every tier: unit, integration (real Kafka + FerretDB) and end to end (services as processes).
test: install infra-up
	@$(BIN)/ruff check .
	@$(BIN)/mypy contracts services tests infra/infra.py
	@$(BIN)/pytest -q

clean: infra-down
	rm -rf $(VENV) .infra
