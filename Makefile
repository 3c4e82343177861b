# Two commands for a fresh clone: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 5000
export PUBLIC_BASE_URL ?= http://127.0.0.1:$(PORT)

.PHONY: run test test-sqlite test-postgres bench lint check translations extract-messages clean

# A person at a terminal: log lines as text (LOG_FORMAT=json is the default for servers), and the
# set-up steps quiet but for what they print themselves (the demo sign-in and join URLs).
run: export LOG_FORMAT ?= text
run: $(VENV)/.run-deps translations
	LOG_LEVEL=WARNING $(BIN)/flask --app wsgi db upgrade
	LOG_LEVEL=WARNING $(BIN)/flask --app wsgi seed-demo
	@echo "SMS codes go to instance/sms-outbox.jsonl (SMS_BACKEND=console), sent by the consumer beside the server."
	$(BIN)/flask --app wsgi worker & worker=$$!; \
	trap 'kill $$worker 2>/dev/null' EXIT INT TERM; \
	$(BIN)/flask --app wsgi run --host 127.0.0.1 --port $(PORT)

# The whole suite twice: on SQLite, then on PostgreSQL when it answers (always in CI, where
# REQUIRE_SERVICES=1 makes a missing server a failure). TEST_POSTGRES_URL names another server.
PG_PROBE = $(BIN)/python -c "import os, psycopg; psycopg.connect(os.environ.get('TEST_POSTGRES_URL', 'postgresql://postgres@127.0.0.1:5432/test'), connect_timeout=3).close()"

test: $(VENV)/.test-deps translations
	@echo "== test suite on SQLite"
	TEST_DATABASE=sqlite $(BIN)/python -m pytest $(PYTEST_ARGS)
	@if [ "$$REQUIRE_SERVICES" = 1 ] || $(PG_PROBE) 2>/dev/null; then \
	  echo "== test suite on PostgreSQL"; \
	  TEST_DATABASE=postgres $(BIN)/python -m pytest $(PYTEST_ARGS); \
	else echo "== PostgreSQL not reachable: the PostgreSQL run is skipped (CI runs it)"; fi

test-sqlite: $(VENV)/.test-deps translations
	TEST_DATABASE=sqlite $(BIN)/python -m pytest $(PYTEST_ARGS)

test-postgres: $(VENV)/.test-deps translations
	TEST_DATABASE=postgres $(BIN)/python -m pytest $(PYTEST_ARGS)

# Benchmarks (real processes on 127.0.0.1; results go into docs/benchmarks.md by hand).
bench: $(VENV)/.test-deps
	$(BIN)/python -m bench.scan_page --returning
	$(BIN)/python -m bench.scan_page --database postgres --returning
	$(BIN)/python -m bench.joins --database sqlite
	$(BIN)/python -m bench.joins --database postgres
	$(BIN)/python -m bench.provider_latency
	$(BIN)/python -m bench.join_cpu
	$(BIN)/python -m bench.roster --members 1000000
	$(BIN)/python -m bench.exports --members 1000000
	$(BIN)/python -m bench.search --members 1000000
	$(BIN)/python -m bench.search --members 1000000 --database-url postgresql+psycopg://postgres@127.0.0.1:5432/scanjoin_bench_search
	$(BIN)/python -m bench.join_costs --joins 200 --members-url postgresql+psycopg://postgres@127.0.0.1:5432/scanjoin_bench_search

# CI gates (.ci/run): ruff (lint and format) on the whole repository, bandit at medium severity and up, mypy over app/
# ([tool.mypy] in pyproject.toml), known vulnerabilities in
# the pinned runtime requirements. pip-audit runs without --strict: the vulnerability service
# reachable here answers "not found" for some pins, which --strict would count as failures.
check: $(VENV)/.test-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/bandit -c pyproject.toml -r app -ll -q
	$(BIN)/mypy app
	$(BIN)/pip-audit -r requirements.txt --progress-spinner off

lint: $(VENV)/.test-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.run-deps: requirements.txt | $(VENV)/bin/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.test-deps: requirements.txt requirements-test.txt | $(VENV)/bin/python
	$(BIN)/pip install --quiet -r requirements-test.txt
	touch $@ $(VENV)/.run-deps

# Compiled catalogues are build output: made from the .po files on every run and test.
translations: $(VENV)/.run-deps
	@$(BIN)/pybabel compile --use-fuzzy -d app/translations >/dev/null

# After changing user-facing text: refresh the catalogues, then translate the new entries.
extract-messages: $(VENV)/.run-deps
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext --no-location --sort-output -o app/translations/messages.pot .
	$(BIN)/pybabel update -i app/translations/messages.pot -d app/translations --no-fuzzy-matching

clean:
	rm -rf $(VENV) .pytest_cache
