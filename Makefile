# knowpay — the README's two commands are `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test bench lint typecheck fmt migrate install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Start knowpay with demo data on the embedded SQLite default (http://127.0.0.1:8000).
run: $(STAMP)
	$(BIN)/knowpay demo --host $(HOST) --port $(PORT)

## The whole suite on SQLite, the database tests again on PostgreSQL if reachable, then linters.
test: $(STAMP)
	BIN=$(BIN) bash scripts/test

## The benchmark (docs/benchmarks.md): knowpay, its worker and the simulators on a fresh
## PostgreSQL database, 64 concurrent paid flows, a duplicate storm and pgbench's TPC-B.
bench: $(STAMP)
	$(BIN)/knowpay bench

lint: $(STAMP)
	$(BIN)/ruff check src tests migrations
	$(BIN)/ruff format --check src tests migrations
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format src tests migrations
	$(BIN)/ruff check --fix src tests migrations

migrate: $(STAMP)
	$(BIN)/knowpay migrate

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
