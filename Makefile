# Everything a fresh machine needs: Python >= 3.11 and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test bench lint typecheck clean memcheck

# setup.py builds the C accelerator in place; rebuild when its source changes.
$(STAMP): pyproject.toml setup.py batchsem/_cbatchsem.c
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "batchsem needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,peers]'
	@touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check batchsem tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy --strict batchsem

test: lint typecheck
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/batchsem bench

# valgrind memcheck over the compiled core. It needs an interpreter that is clean under
# valgrind on its own: Debian's /usr/bin/python3 is (0 errors for `-c pass`); a pyenv
# build of the same 3.11 reports hundreds of errors inside CPython itself. The
# extension built in place by the venv is ABI-compatible with any CPython 3.11.
MEMCHECK_PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || echo $(BIN)/python)
VALGRIND_SUPP   := $(wildcard /usr/lib/valgrind/python3.supp)
memcheck: $(STAMP)
	PYTHONPATH=. PYTHONMALLOC=malloc valgrind --tool=memcheck --leak-check=full \
	    --show-leak-kinds=definite --errors-for-leak-kinds=definite --error-exitcode=1 \
	    --num-callers=30 $(addprefix --suppressions=,$(VALGRIND_SUPP)) \
	    $(MEMCHECK_PYTHON) benchmarks/stress_memcheck.py --rounds 3

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
