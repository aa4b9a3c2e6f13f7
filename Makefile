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
.PHONY: help install run test lint format

help:
	@echo "make run    create .venv, install, migrate, load demo data, serve web + worker + beat"
	@echo "            at http://127.0.0.1:$(PORT)/ (embedded: SQLite + file broker under var/)"
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

# DEBUG defaults to true here only: the embedded run serves static files and needs no SECRET_KEY.
run: export DEBUG ?= true
run: install
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
