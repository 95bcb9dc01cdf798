# The README's two set-up commands: `make demo` (the main job on the embedded default) and
# `make test` (the test suite). Both create the virtual environment first when it is missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench bench-nightly bench-evaluate clean

$(BIN)/recmeta: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# the CPU build of torch first, so pip never pulls a multi-GB CUDA build
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/recmeta

demo: $(BIN)/recmeta
	$(BIN)/recmeta demo

test: $(BIN)/recmeta
	$(BIN)/python -m pytest

lint: $(BIN)/recmeta
	$(BIN)/ruff check .

bench: $(BIN)/recmeta
	$(BIN)/python benchmarks/core.py

bench-nightly: $(BIN)/recmeta
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/nightly.py

bench-evaluate: $(BIN)/recmeta
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/evaluate.py --threads 1 --out reports/evaluate

clean:
	rm -rf $(VENV) build dist *.egg-info
