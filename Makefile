# Qdrant Portal: `make run` serves the app, `make test` runs every test. Both set themselves up.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test test-python test-js lint format bench clean setup setup-dev

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime-installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.runtime-installed $@

setup: $(VENV)/.runtime-installed
setup-dev: $(VENV)/.dev-installed

# Development settings for `make run` and for `.venv/bin/python manage.py <command>` alike (the
# settings read .env; the environment wins over it). Written once; git ignores it.
.env:
	printf '%s\n' '# Local development settings, written by `make run` (git ignores this file).' \
		'# Every variable of .env.example may be set here; the environment wins over this file.' \
		'DJANGO_DEBUG=1' > $@

## Serve on http://$(HOST):$(PORT) with SQLite, a file cache and a local gitops repository.
run: setup .env
	mkdir -p var
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	@# What it cannot sync (an unknown folder in var/gitops.git, an unreachable remote) it says;
	@# the portal is served all the same, as the admin's System status then shows it.
	$(BIN)/python manage.py gitops_sync || echo "gitops_sync: see the problems above; serving anyway."
	@# Links in emails (invitations, password resets) point at this server, unless PUBLIC_URL is set.
	if [ -z "$$PUBLIC_URL" ] && ! grep -qs '^PUBLIC_URL=' .env; then export PUBLIC_URL=http://$(HOST):$(PORT); fi; \
		$(BIN)/python manage.py runserver $(HOST):$(PORT)

## The whole suite: Python (pytest, incl. browser tests when Chromium is installed) and JavaScript.
test: test-python test-js

test-python: setup-dev
	$(BIN)/pytest $(PYTEST_ARGS)

test-js:
	@if ! command -v node >/dev/null 2>&1; then \
		echo "node is not installed: skipped the JavaScript unit tests"; \
	elif [ -d tests/frontend/js ]; then \
		node --test tests/frontend/js/; \
	fi

lint: setup-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Benchmarks (figures printed; see bench/README section in README.md).
bench: setup-dev
	$(BIN)/python bench/auth.py
	$(BIN)/python bench/gitops.py
	$(BIN)/python bench/deployments.py

clean:
	rm -rf var staticfiles .pytest_cache
