# Two commands set up everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements/dev.txt
# One resolution for every environment: the serve and model locks are constrained by the dev one.
COMPILE := $(BIN)/uv pip compile --universal --python-version 3.11 --no-header --annotation-style line --quiet
export OPENBLAS_NUM_THREADS ?= 1

.PHONY: run serve test lint format bench bento lock clean

## The locked packages (requirements/dev.txt), then the project itself without resolving again.
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

## Resolve pyproject.toml again into the locks (dev: everything; serve: the Bento; model: MLflow).
lock: $(STAMP)
	$(COMPILE) pyproject.toml --extra dev -o requirements/dev.txt
	$(COMPILE) pyproject.toml --extra serve -c requirements/dev.txt -o requirements/serve.txt
	$(COMPILE) pyproject.toml requirements/model.in -c requirements/dev.txt -o requirements/model.txt

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
	$(BIN)/deptry .
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/deptry .

format: $(STAMP)
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python benchmarks/simulate_bench.py
	$(BIN)/python benchmarks/serving_bench.py
	$(BIN)/python benchmarks/load_test.py

## A Bento of the ranking service with the registry's champion baked in (docs/operations.md).
bento: $(STAMP)
	$(BIN)/recsys bento

clean:
	rm -rf $(VENV) data/ mlruns/ mlartifacts/ mlflow.db build/
