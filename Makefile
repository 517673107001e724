# Faregate development tasks.  `make test` works from a fresh clone.
PYTHON ?= python3
VENV := .venv
# Default: everything but the llama.cpp tests, which `make test-llama` runs with their server.
PYTEST_ARGS ?= -m "not llama"
# The suite runs on pytest-xdist workers, one test module per worker at a time (module-scoped
# servers are started once). Most of a test's time is spent waiting on servers it started, so
# three workers help even on two cores; PYTEST_WORKERS=0 runs it in one process.
PYTEST_WORKERS ?= 3
BENCH_ARGS ?=

.PHONY: .venv serve test lint test-llama bench bench-workers bench-usage soak clean

.venv: $(VENV)/.installed

# Re-installs whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --upgrade pip
	$(VENV)/bin/python -m pip install -e '.[dev]'
	touch $@

serve: .venv
	$(VENV)/bin/faregate db upgrade
	exec $(VENV)/bin/faregate serve

# scripts/testenv.py provides PostgreSQL and Redis (system ones, or private throw-away ones).
test: .venv lint
	$(VENV)/bin/python scripts/testenv.py -- $(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist loadscope $(PYTEST_ARGS)

lint: .venv
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test-llama:
	bash scripts/test-llama.sh

bench: .venv
	$(VENV)/bin/python bench/run.py $(BENCH_ARGS)

# Issue 8: server CPU per request, serve --workers 2 vs 1 on PostgreSQL, interleaved rounds.
bench-workers: .venv
	$(VENV)/bin/python scripts/testenv.py -- $(VENV)/bin/python bench/workers.py $(BENCH_ARGS)

# Usage reports on 10M records and the rollup worker's cost to /v1 (PostgreSQL via testenv).
bench-usage: .venv
	$(VENV)/bin/python scripts/testenv.py -- $(VENV)/bin/python bench/usage.py $(BENCH_ARGS)

# The 20-minute soak (issue 8): 2 processes on PostgreSQL, steady load, RSS and errors per
# minute recorded in bench/results/. FAREGATE_SOAK_MINUTES=3 make soak for a short run.
soak: .venv
	$(VENV)/bin/python scripts/testenv.py -- $(VENV)/bin/python bench/soak.py $(BENCH_ARGS)

clean:
	rm -rf .test-services build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache \
	       .import_linter_cache
	find . -name __pycache__ -not -path './.venv*' -prune -exec rm -rf {} +
