# Two commands on a fresh machine: `make run` and `make test`. Each creates or updates .venv
# itself; the stamp file makes pip run again whenever pyproject.toml changes.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: run test bench venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11+ is required")'
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

# Serves the API on 127.0.0.1:8000; honours PORT, SWITCHBOARD_DATA, DATABASE_URL and the other
# settings in README.md.
run: $(STAMP)
	$(BIN)/switchboard run

# Two test processes, each with its own embedded Postgres; a file's tests stay in one process
# (module fixtures serve them). PYTEST_WORKERS=0 runs in this process.
PYTEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

bench: $(STAMP)
	@set -e; found=0; for script in bench/*.py; do \
		[ -e "$$script" ] || continue; found=1; \
		echo "== $$script"; $(BIN)/python "$$script"; \
	done; [ $$found = 1 ] || echo "no benchmarks in bench/"

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
