# The two commands of the README: `make demo` (main job) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The modules mypyc compiles (clearway/domain/native.py): an edit to one rebuilds them.
NATIVE_SRC := setup.py clearway/domain/native.py $(shell sed -n 's/^    "\(clearway\.[a-z_.]*\)",$$/\1/p' clearway/domain/native.py | tr . / | sed 's/$$/.py/')

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml $(NATIVE_SRC)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/clearway demo

# The second pytest: the domain tests again on the Python source of the compiled modules
# (what an install without a C compiler runs; clearway/__init__.py).
test: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n 2
	CLEARWAY_PURE_PYTHON=1 $(BIN)/python -m pytest -n 2 tests/domain

bench: $(STAMP)
	$(BIN)/clearway bench matching --json

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build
	find clearway -name "*.so" -delete
