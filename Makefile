# `make run` and `make test` create the virtualenv on first use; later calls reuse it at once.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= config.example.toml

.PHONY: run test test-fast venv compile bench clean

# The project's own modules compiled ahead: with PYTHONDONTWRITEBYTECODE set (as on this team's machines) every start
# would otherwise compile them from source again (0.12 s of `postbud run`'s start-up). A module edited
# later is compiled in memory until the next `make venv` or `make compile` (Python checks the source's
# time against the .pyc's, so a stale one is never used).
PACKAGES := core connectors rules delivery collector router postbud sandbox
COMPILE := $(BIN)/python -m compileall -q $(PACKAGES)

venv: $(STAMP)

compile: $(STAMP)
	$(COMPILE)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(COMPILE)
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/postbud --config $(CONFIG) run

# One worker per core; a test file stays on one worker (module fixtures such as the browser's daemon
# start once). TEST_WORKERS=0 runs in this process, one test at a time.
TEST_WORKERS ?= auto
TEST_RUN := $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

test: $(STAMP)
	$(TEST_RUN)

test-fast: $(STAMP)
	$(TEST_RUN) -m 'not slow'

bench: compile
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var/ .pytest_cache
