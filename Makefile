# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test lint typecheck bench openapi clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Install, then run everything on the embedded default (PostgreSQL + Redis from Python packages)
run: $(STAMP)
	$(BIN)/asinwatch up

## Install, then lint, type-check, check the import contracts and run the whole test suite with coverage (fails under 85%)
test: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest -n 2 --dist loadgroup --cov --cov-report=term --cov-report=xml -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check src tests bench && $(BIN)/ruff format --check src tests bench scripts
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench

openapi: $(STAMP)
	$(BIN)/python -m asinwatch.openapi_export docs/openapi.json

clean:
	rm -rf $(VENV) .asinwatch .coverage* coverage.xml .mypy_cache .ruff_cache .import_linter_cache
