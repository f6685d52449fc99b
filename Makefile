# Everything a fresh machine needs: Python >= 3.11 and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test bench lint typecheck clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "batchsem needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,peers,redis]'
	@touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check batchsem tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy --strict batchsem

test: lint typecheck
	@command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || \
		echo "make: redis-server not found: the RedisSemaphore tests are skipped (they fail with CI set)." \
		     "Install the Debian package: sudo apt-get install redis-server"
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/batchsem bench

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
