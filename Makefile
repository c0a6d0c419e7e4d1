# One Makefile for people and CI. Every target creates .venv first if it is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt pyproject.toml | cksum | cut -d' ' -f1)

.DEFAULT_GOAL := help
.PHONY: help venv test test-fast lint fmt clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "mdgw needs Python 3.11+; set PYTHON=python3.11 (found " + sys.version.split()[0] + ")")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

venv: $(STAMP)  ## create .venv and install the pinned dependencies

test: $(STAMP)  ## run the whole test suite (pytest's exit 5, no tests collected, is a failure)
	@$(PY) -m pytest -q; rc=$$?; if [ $$rc -eq 5 ]; then echo "make test: no tests were collected" >&2; exit 1; fi; exit $$rc

test-fast: $(STAMP)  ## run the tests except the end-to-end ones
	$(PY) -m pytest -q -m "not e2e"

lint: $(STAMP)  ## ruff check, ruff format --check, mypy --strict
	$(VENV)/bin/ruff check services tests scripts
	$(VENV)/bin/ruff format --check services tests scripts
	$(VENV)/bin/mypy --strict services

fmt: $(STAMP)  ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix services tests scripts
	$(VENV)/bin/ruff format services tests scripts

clean:  ## remove the venv and run-time files
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache .hypothesis
