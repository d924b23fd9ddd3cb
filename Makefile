# Two entry points for a fresh machine: `make demo` and `make test`. Everything else is a step of those.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip -q --disable-pip-version-check
PYTHON ?= python3
OPENCLIPART ?= /usr/share/openclipart
TEST_DATABASE_URL ?= postgres://provenant:provenant@127.0.0.1:5432/provenant
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: setup demo test lint typecheck format services demo-data img2dataset

# A stamp keyed on the dependency files: a second `make setup` with nothing changed does nothing.
$(VENV)/.installed: pyproject.toml constraints.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -U pip
	$(PIP) install -c constraints.txt -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

# img2dataset pins pandas<3 and opencv<5 (older than ours): a virtualenv of its own, for the tests that run it
IMG2DATASET_VENV ?= var/img2dataset-venv
$(IMG2DATASET_VENV)/.installed:
	test -d $(IMG2DATASET_VENV) || $(PYTHON) -m venv $(IMG2DATASET_VENV)
	$(IMG2DATASET_VENV)/bin/pip -q --disable-pip-version-check install img2dataset==1.47.0
	touch $@

img2dataset: $(IMG2DATASET_VENV)/.installed

services:
	bash scripts/services.sh

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# mypy with the Django and DRF plugins over the apps (configured in pyproject.toml)
typecheck: setup
	$(VENV)/bin/mypy

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: setup services img2dataset
	bash scripts/browser.sh
	bash scripts/test-tools.sh
	$(MAKE) lint
	$(MAKE) typecheck
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) PROVENANT_REQUIRE_BROWSER=1 $(VENV)/bin/pytest

demo-data:
	@if [ ! -d $(OPENCLIPART)/svg ] || [ ! -d $(OPENCLIPART)/png ]; then \
	  echo "==> installing Debian's openclipart-svg and openclipart-png"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openclipart-svg openclipart-png; \
	fi

demo: setup demo-data
	bash scripts/demo.sh
