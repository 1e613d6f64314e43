# nlp-template's own tasks: run `make` to list them.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:
.DEFAULT_GOAL := help
MAKEFLAGS += --no-builtin-rules

PYTHON ?= python3
VENV ?= .venv
DEMO_DIR ?= build/demo
PYTEST_ARGS ?=

## List the targets (the default goal)
help:
	@awk '/^## /{d=substr($$0,4);next} /^[a-z][a-z%-]*:/{if(d!=""){sub(/:.*/,"");printf "  %-12s %s\n",$$0,d}} {d=""}' $(firstword $(MAKEFILE_LIST))
.PHONY: help

## Render the template with default answers, install it from a local model mirror, print entities
demo: $(VENV)/.installed
	$(VENV)/bin/python -m tests.demo --dest $(DEMO_DIR)
.PHONY: demo

## Run a target of the demo project again, e.g. make demo-test (after make demo)
demo-%:
	$(MAKE) -C $(DEMO_DIR) $*

## Run the whole test suite, container builds included
test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)
.PHONY: test

## Measure the main flow (cold and warm install, image build) and print the figures
bench: $(VENV)/.installed
	$(VENV)/bin/python -m tests.bench
.PHONY: bench

## Check the Python code and the generated Dockerfile
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/python -m tests.lint_dockerfile
.PHONY: lint

## Compile requirements-dev.txt from requirements-dev.in, with hashes (use the product on itself)
lock: $(VENV)/.installed
	CUSTOM_COMPILE_COMMAND="make lock" $(VENV)/bin/pip-compile --quiet --strip-extras --generate-hashes \
	  --allow-unsafe --no-emit-index-url --no-emit-find-links --output-file requirements-dev.txt requirements-dev.in
.PHONY: lock

$(VENV)/.installed: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes -r $<
	@touch $@

## Remove the dev venv, the demo and the test caches (cached model wheels included)
clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
.PHONY: clean
