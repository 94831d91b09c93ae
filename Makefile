# Two commands: `make demo` (sets up what is missing, then runs the main job) and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements/lock.txt requirements/nodeps.txt pyproject.toml | cksum | cut -d' ' -f1)
TEST_STAMP := $(VENV)/.test-installed-$(shell cat requirements/test.txt | cksum | cut -d' ' -f1)
# Required coverage (tests/required.py): a missing procgen, torch, Slurm controller or browser fails `make test`
# instead of skipping its tests. `make test MAZEAGENT_REQUIRE_ALL=0` skips them (e.g. on a laptop without Slurm).
MAZEAGENT_REQUIRE_ALL ?= 1
# Test workers (pytest-xdist; each test file runs whole on one worker, so module fixtures are set up once; the files
# run in the order tests/conftest.py gives, longest first, not xdist's most-tests-first).
TEST_WORKERS ?= 2

.PHONY: setup setup-test demo test bench clean

setup: $(STAMP)

$(STAMP): requirements/lock.txt requirements/nodeps.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements/lock.txt
	$(BIN)/python -m pip install -q --no-deps -r requirements/nodeps.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $@

demo: setup
	$(BIN)/mazeagent demo --out out/demo

setup-test: setup $(TEST_STAMP)

$(TEST_STAMP): requirements/test.txt
	$(BIN)/python -m pip install -q -r requirements/test.txt
	rm -f $(VENV)/.test-installed-*
	touch $@

test: setup-test
	MAZEAGENT_REQUIRE_ALL=$(MAZEAGENT_REQUIRE_ALL) $(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=15 $(PYTEST_ARGS)

bench: setup
	$(BIN)/mazeagent bench env --envs 256 --seconds 10

clean:
	rm -rf $(VENV) out
