# The two set-up commands: `make run` and `make test`. Everything else is what they need.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
DEV_CONFIG ?= ops/dev.toml

# Test files run in parallel, a file to a process (its module-scoped daemons stay in one place); most of a test's
# time is spent waiting for processes, so more processes than cores pay.
TEST_WORKERS ?= 4

.PHONY: run test test-quick install lint bench clean

# Every process the tests start imports TDS anew: with PYTHONDONTWRITEBYTECODE set (some shells set it),
# each would compile every module from source again, which makes the suite half again as slow.
unexport PYTHONDONTWRITEBYTECODE

# uv installs what pip would, in a quarter of the time (a fresh clone's `make test` installs first), and
# compiles it as pip does.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q uv
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -e '.[test]'
	touch $@

install: $(BIN)/.installed

run: install
	@bash ops/dev/run.sh $(DEV_CONFIG)

test: install
	bash ops/dev/test-deps.sh
	$(BIN)/ruff check .
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# What needs no process of its own (no daemon, API, worker, simulator or browser): in under a minute. Its
# tests mostly wait on the commands they run: as many test processes as `make test`.
test-quick: install
	$(BIN)/ruff check .
	$(BIN)/pytest -m "not daemon" -n $(TEST_WORKERS) -q

# The whole suite under coverage.py, every process it starts measured too ([tool.coverage.*] in
# pyproject.toml); slower than `make test`. Test files in parallel as `make test` runs them when it sets
# TEST_WORKERS; PYTEST_ARGS go to pytest. Report: the summary here, the files in htmlcov/.
.PHONY: coverage
coverage: install
	bash ops/dev/test-deps.sh
	rm -rf .coverage .coverage.* coverage.json htmlcov
	$(BIN)/coverage run -m pytest $(if $(TEST_WORKERS),-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder) $(PYTEST_ARGS); status=$$?; \
	$(BIN)/coverage combine -q && $(BIN)/coverage json -q -o coverage.json && \
	$(BIN)/coverage html -q --omit='*/tds_daemon/simulator/*' && \
	$(BIN)/python ops/dev/coverage_summary.py coverage.json && exit $$status

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python ops/bench/ingest

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache .hypothesis .coverage .coverage.* coverage.json htmlcov
