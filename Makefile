# Two commands: `make demo` (install + the main job on built-in defaults) and
# `make test` (install + the test suite). Each creates ./.venv if needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export NUMBA_CACHE_DIR ?= $(CURDIR)/.numba_cache

.PHONY: demo test test-all lint bench docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed-core: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@ $(VENV)/.installed-core

demo: $(VENV)/.installed-core
	$(BIN)/descentlab demo -o results/demo

test: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q -m "not slow" -n 2 --dist loadfile

test-all: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

bench: $(VENV)/.installed-core
	$(BIN)/python benchmarks/run.py

docs: $(VENV)/.installed-core  # regenerate docs/spec-reference.md and docs/cli-reference.md
	$(BIN)/python -m descentlab.reference_docs docs

clean:
	rm -rf $(VENV) .numba_cache results
