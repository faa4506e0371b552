# Two commands on a fresh machine: `make run` serves on :5000 (in-memory store),
# `make test` runs the whole suite (real Redis, real clamd, real gunicorn).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench system clean

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

run: $(BIN)/.installed
	@dpkg -s libmagic1 >/dev/null 2>&1 || scripts/ensure-system.sh
	LOG_FORMAT=$${LOG_FORMAT:-text} $(BIN)/gunicorn api:app -c gunicorn.conf.py

system:
	scripts/ensure-system.sh

test: $(BIN)/.installed system
	$(BIN)/python -m pytest

lint: $(BIN)/.installed
	$(BIN)/ruff check .

bench: $(BIN)/.installed system
	$(BIN)/python bench/bench_extraction.py

clean:
	rm -rf $(VENV) .pytest_cache
