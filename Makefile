# rolloutdesk: `make run` serves the app with a Celery worker and beat; `make test` runs the suite.
# Needs only Python 3.11+; the virtual environment lives in .venv and is (re)installed when
# pyproject.toml changes.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A copy of the pyproject.toml last installed from: install again only when it differs.
STAMP := $(VENV)/.installed-pyproject.toml
PORT ?= 8000
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install env run test lint format

help:
	@echo "make run    create .venv, install, migrate, load demo data, serve web + worker + beat"
	@echo "            at http://127.0.0.1:$(PORT)/ (embedded: SQLite + file broker under var/)"
	@echo "make env    write .env (DEBUG=true + a generated SECRET_KEY) if there is none; make run does"
	@echo "make test   run the test suite (extra pytest arguments: make test ARGS='-x -k gate')"
	@echo "make lint   ruff check + ruff format --check"
	@echo "make format ruff format + ruff check --fix"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
		echo "rolloutdesk needs Python 3.11 or newer as '$(PYTHON)'; try: make $(MAKECMDGOALS) PYTHON=python3.12" >&2; \
		exit 1; }
	$(PYTHON) -m venv $(VENV)

install: $(BIN)/python
	@if ! cmp -s pyproject.toml $(STAMP); then \
		echo "Installing rolloutdesk and its dependencies into $(VENV) ..."; \
		$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[dev]' && \
		cp pyproject.toml $(STAMP); \
	fi

# The embedded mode's .env: DEBUG=true and a generated SECRET_KEY, so that `manage.py` commands
# run by hand later (issue_token, import_runbook, ...) work too. Written once, never overwritten;
# plain python3 and the standard library, as it runs before .venv exists.
env:
	@$(PYTHON) rolloutdesk/write_env.py

# DEBUG defaults to true here too, for a .env of your own that does not set it.
run: export DEBUG ?= true
# Links in emails point at the server this starts.
run: export SITE_URL ?= http://127.0.0.1:$(PORT)
run: env install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py load_demo
	@echo "rolloutdesk: http://127.0.0.1:$(PORT)/  (admin /admin/, API docs /api/v1/docs/); Ctrl-C stops web, worker and beat."
	exec env WEB_PORT=$(PORT) PATH="$(abspath $(BIN)):$$PATH" $(BIN)/honcho -f Procfile.dev start

test: install
	$(BIN)/pytest $(ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
