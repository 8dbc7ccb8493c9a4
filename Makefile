# The two commands of the README: `make demo` (main job) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The compiled domain (setup.py, clearway/native.py) relies on the types of every
# domain module, so an edit to any of them rebuilds it (with the rest of the install).
NATIVE_SRC := setup.py $(shell find clearway/domain -name '*.py')

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml $(NATIVE_SRC)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	CLEARWAY_PURE_PYTHON=0 $(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/clearway demo

# The second pytest: the domain tests again on the Python source of the compiled modules
# (what an install without a C compiler runs; clearway/__init__.py).
test: $(STAMP)
	$(BIN)/lint-imports
	CLEARWAY_PURE_PYTHON=0 $(BIN)/python -m pytest -n 2
	CLEARWAY_PURE_PYTHON=1 $(BIN)/python -m pytest -n 2 tests/domain

bench: $(STAMP)
	$(BIN)/clearway bench matching --json

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build
	find clearway -name "*.so" -delete
