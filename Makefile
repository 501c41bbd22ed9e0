# Two commands do everything on a fresh machine:
#   make run   set up .venv, build the bundled index if missing, open the app
#   make test  set up .venv with the dev extras, install Chromium for the browser test, run every test
#              but the cluster ones (under CI=true a missing Chromium fails the run instead of
#              skipping the browser tests)
#   make test-cluster  the tests that start a two-node Ray cluster on loopback (15-20 minutes on
#              2 cores: a real model encodes the bundled 2,000 on it, four times)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
# torch is pinned here (not in pyproject) so pip takes the local CPU wheel.
CONSTRAINTS := -c constraints.txt
PORT ?= 8501

.PHONY: run test test-cluster lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) install --quiet $(CONSTRAINTS) -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install --quiet $(CONSTRAINTS) -e '.[dev]'
	touch $@

run: $(VENV)/.installed
	HF_HUB_OFFLINE=1 $(BIN)/papersift demo --port $(PORT)

/usr/bin/chromium:
	@echo "installing Debian's chromium for the browser tests"
	(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || if [ "$$CI" = true ]; then echo "error: could not install chromium; CI=true runs the browser tests" >&2; exit 1; \
	     else echo "warning: could not install chromium; browser tests will be skipped"; fi

test: $(VENV)/.installed-dev /usr/bin/chromium
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q
	$(BIN)/ruff check .

test-cluster: $(VENV)/.installed-dev
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m cluster

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .

bench: $(VENV)/.installed-dev
	HF_HUB_OFFLINE=1 $(BIN)/python bench/build_and_query.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
