# Everything a fresh machine needs: Python >= 3.11 and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test bench lint typecheck clean system-packages

# Debian packages that some tests drive, as package:binary. Without them those tests
# skip (and fail when CI is set); .ci/run installs them.
DEBIAN_PACKAGES := chromium:/usr/bin/chromium

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "batchsem needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,peers,report]'
	@touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check batchsem tests benchmarks

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

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
