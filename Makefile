# Everything a fresh machine needs: Python >= 3.11 and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Development installs every extra: the tool (cli), its tests, the peer limiters, Redis, reports.
EXTRAS := cli,test,peers,redis,report

.PHONY: test bench lint typecheck docs dist dist-check clean memcheck system-packages cython-bench

# Debian packages that some tests drive, as package:binary. Without them those tests
# skip (and fail when CI is set); .ci/run installs them.
DEBIAN_PACKAGES := redis-server:/usr/bin/redis-server chromium:/usr/bin/chromium valgrind:/usr/bin/valgrind

# setup.py builds the C accelerator in place; rebuild when its source changes.
$(STAMP): pyproject.toml setup.py batchsem/_cbatchsem.c
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "batchsem needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	@touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check batchsem tests benchmarks tools

typecheck: $(STAMP)
	$(BIN)/mypy --strict batchsem

system-packages:
	@for pair in $(DEBIAN_PACKAGES); do pkg=$${pair%%:*}; bin=$${pair#*:}; \
	  [ -x "$$bin" ] || echo "missing Debian package $$pkg ($$bin): apt-get install -y $$pkg"; \
	done

test: lint typecheck system-packages
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/batchsem bench

# Regenerate the option reference in docs/cli.md from the click commands.
docs: $(STAMP)
	$(BIN)/python tools/cli_docs.py

# Build the sdist and wheel into dist/ and check them (metadata, README rendering, contents).
dist: $(STAMP)
	rm -rf dist
	$(BIN)/python -m build --no-isolation --outdir dist .

dist-check: dist
	$(BIN)/twine check --strict dist/*
	$(BIN)/check-wheel-contents dist/*.whl

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

# Hand-written C against Cython (docs/development.md): the Python core compiled by Cython
# three ways, measured beside the C core, then the SIGINT storm against every core.
# Cython goes into the dev venv for this target only; batchsem never needs it.
cython-bench: $(STAMP)
	$(BIN)/python -m pip install --quiet cython
	$(BIN)/python benchmarks/cython_core/compare.py --rounds 9 --json benchmarks/results/cython_vs_c.json
	$(BIN)/python benchmarks/cython_core/storm.py --runs 5 --json benchmarks/results/cython_vs_c-storm.json

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis dist build
