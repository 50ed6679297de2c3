# Two commands set up everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export OPENBLAS_NUM_THREADS ?= 1

.PHONY: run serve test lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

## The main job on embedded defaults (local files, no server).
## RUN_FLAGS=--sync-from-mock serves the catalog synced from a mock of the national API.
run: $(STAMP)
	$(BIN)/recsys run $(RUN_FLAGS)

## The ranking service on the current champion (embedded defaults).
serve: $(STAMP)
	$(BIN)/recsys serve

## The whole test suite (what CI runs).
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python benchmarks/simulate_bench.py
	$(BIN)/python benchmarks/serving_bench.py
	$(BIN)/python benchmarks/load_test.py

clean:
	rm -rf $(VENV) data/ mlruns/ mlartifacts/ mlflow.db
