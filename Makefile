# contacts-api: every target creates .venv and installs the project first when needed.
PYTHON ?= python3
PORT   := 4000  # make run PORT=N (an exported PORT, as PaaS shells set, is not taken)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install run test lint format bench clean

help: ## list the targets
	@grep -E '^[a-z]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install the project with all extras (quick when done)

run: $(STAMP) ## apply migrations and serve on http://127.0.0.1:4000 (PORT=N for another)
	$(BIN)/contacts-api serve --port $(PORT)

test: $(STAMP) ## the whole test suite (PostgreSQL/Redis when they answer on 127.0.0.1)
	$(BIN)/python -m tests.run_suite

lint: $(STAMP) ## ruff check, ruff format --check, mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP) ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP) ## load benchmarks on loopback; prints ratios against a baseline from the same run
	$(BIN)/python -m bench.run

clean: ## remove the virtual environment and local databases
	rm -rf $(VENV) contacts.db contacts.db-wal contacts.db-shm contacts.db-writers.lock
