# The two commands of the README's quick start: `make demo` and `make test`.
# Each sets up the virtual environment on its own, so either works on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test tools lint typecheck pytest bench mutate clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

test: $(STAMP) tools lint typecheck pytest

# The real servers the tests drive (Debian packages), installed where missing.
tools:
	sh scripts/tools.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# jobs/ joins in once it holds Python files (git keeps no empty folders).
typecheck: $(STAMP)
	$(BIN)/mypy runner examples/jobs $(if $(wildcard jobs/*/*.py jobs/*.py),jobs)

# Workers: most tests wait on the servers they start (runner, sandbox, PostgreSQL, nginx,
# Chromium), so 3 keep 2 cores busy; 938 tests take ~3.5 min instead of ~9.5 on one.
PYTEST_WORKERS ?= 3
pytest: $(STAMP)
	$(BIN)/pytest --numprocesses=$(PYTEST_WORKERS) --cov --cov-report=term

bench: $(STAMP)
	$(BIN)/python scripts/bench.py

# Mutation testing of the security modules (issue 17); not part of `make test`.
mutate: $(STAMP)
	$(BIN)/python scripts/mutate.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .coverage mutants

# -- sandbox fidelity (issue 12) ---------------------------------------------------------
# azure-cli lives in its own virtualenv (its pins clash with ours); tests/azcli makes it on
# first use, this target makes it up front. bench-sandbox prints the issue's figures.
.PHONY: az-venv bench-sandbox
az-venv: $(STAMP)
	$(BIN)/python -c "from tests.azcli.conftest import ensure_azure_cli; ensure_azure_cli()"

bench-sandbox: $(STAMP)
	$(BIN)/python scripts/bench_sandbox.py
