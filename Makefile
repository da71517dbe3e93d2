# omg: two commands from a fresh clone (Python 3.11 on the PATH):
#   make demo   set up .venv, run the whole lifecycle on the bundled demo data
#   make test   set up .venv, run the test suite
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(abspath $(BIN)):$(PATH)
export MPLBACKEND := Agg
DEMO_DIR ?= demo
NAME ?=

.PHONY: setup system-deps demo test matrix bench export clean-nbs lint clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "omg needs Python 3.11, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[all,dev]'
	@touch $(STAMP)

setup: $(STAMP)

demo: setup
	rm -rf $(DEMO_DIR)/adult-income
	mkdir -p $(DEMO_DIR)
	$(BIN)/omg ml init adult-income --dir $(DEMO_DIR)
	@# --no-gates: run all five phases and record every gate's verdict (shown in the table and in
	@# reports/index.html) instead of stopping at the first failed gate.
	cd $(DEMO_DIR)/adult-income && $(abspath $(BIN))/omg ml run --no-gates
	@echo
	@echo "Review:   $(abspath $(DEMO_DIR))/adult-income/reports/index.html"
	@echo "Reports:  $(abspath $(DEMO_DIR))/adult-income/reports/"
	@ls -1 $(DEMO_DIR)/adult-income/reports/
	@echo "Manifest: $$(ls -d $(abspath $(DEMO_DIR))/adult-income/runs/*/manifest.json | tail -1)"

# System packages the tests need (browser tests drive Debian's chromium).
# System packages the tests need: Debian's chromium (browser tests) and PostgreSQL server
# (a throwaway cluster on 127.0.0.1 for the scale-out tests, started and stopped by the tests).
system-deps:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages for the tests:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# Both cores: two pytest workers, each test module on one worker (its module fixtures built once).
test: setup system-deps
	$(BIN)/pytest -n 2 --dist loadfile

# The data-set matrix alone, its table printed: one table of each task through phases 1-5, the
# others 1-3 (`make test` runs the same). Figures in test-artifacts/matrix.json.
matrix: setup system-deps
	$(BIN)/pytest -s tests/test_matrix.py

# The peers the benchmarks measure (the `bench` extra: Evidently, FLAML) on top of the kit's setup.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[all,dev,bench]'
	@touch $(BENCH_STAMP)

bench: setup system-deps $(BENCH_STAMP)
	$(BIN)/python bench/run.py $(NAME)

# Re-export the notebooks' `#| export` cells into the template project module (nbdev 3).
export: setup
	$(BIN)/nbdev-export

clean-nbs: setup
	$(BIN)/nbdev-clean

lint: setup
	$(BIN)/ruff check omgmagics tests bench

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
