# Two entry points for a fresh machine: `make demo` and `make test`. Everything else is a step of those.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip -q --disable-pip-version-check
PYTHON ?= python3
OPENCLIPART ?= /usr/share/openclipart
TEST_DATABASE_URL ?= postgres://provenant:provenant@127.0.0.1:5432/provenant
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: setup demo test lint format services demo-data

# A stamp keyed on the dependency files: a second `make setup` with nothing changed does nothing.
$(VENV)/.installed: pyproject.toml constraints.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -U pip
	$(PIP) install -c constraints.txt -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

services:
	bash scripts/services.sh

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: setup services
	bash scripts/browser.sh
	$(MAKE) lint
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) PROVENANT_REQUIRE_BROWSER=1 $(VENV)/bin/pytest

demo-data:
	@if [ ! -d $(OPENCLIPART)/svg ] || [ ! -d $(OPENCLIPART)/png ]; then \
	  echo "==> installing Debian's openclipart-svg and openclipart-png"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openclipart-svg openclipart-png; \
	fi

demo: setup demo-data
	bash scripts/demo.sh
