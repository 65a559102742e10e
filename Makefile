# The two set-up commands: `make run` and `make test`. Everything else is what they need.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
DEV_CONFIG ?= ops/dev.toml

.PHONY: run test install lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(BIN)/.installed

run: install
	@bash ops/dev/run.sh $(DEV_CONFIG)

test: install
	bash ops/dev/test-deps.sh
	$(BIN)/ruff check .
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python ops/bench/ingest

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache .hypothesis
