# nlp-template's own tasks: run `make` to list them.
# GNU make 4.0 or newer: make 3.81 (macOS's) ignores .SHELLFLAGS, 3.82 misreads them. Checked first.
ifneq ($(filter 0.% 1.% 2.% 3.%,$(MAKE_VERSION)),)
$(error GNU make $(MAKE_VERSION) is too old for this Makefile, which needs 4.0 or newer: install it (macOS: brew install make), then run gmake$(if $(MAKECMDGOALS), $(MAKECMDGOALS)))
endif
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:
.DEFAULT_GOAL := help
MAKEFLAGS += --no-builtin-rules

PYTHON ?= python3
VENV ?= .venv
DEMO_DIR ?= build/demo
PYTEST_ARGS ?=
# Test workers (pytest-xdist): each engine's container tests run on one, the rest spread over all; 0 runs in one
# process. Two, as these machines have 2 cores: a third gave 715.8 s against 815.3 s on warm caches, but 990.5 s and
# 977.2 s against 912.7 s from a fresh clone, where the caches are made as the tests run.
PYTEST_WORKERS ?= 2
BENCH_ARGS ?=
# The engine: a package of its own, its wheel built into dist/ and pinned by hash in template/scripts/tools.txt.
ENGINE := nlp-modeltools
ENGINE_EPOCH := 315532800
# A hash lock for every platform and Python a project may use: $(call uv_lock,path-without-.in)
uv_lock = UV_CUSTOM_COMPILE_COMMAND="make lock (in the nlp-template repository)" $(VENV)/bin/uv pip compile --quiet \
  --universal --python-version 3.10 --generate-hashes --output-file $(1).txt $(1).in

## List the targets (the default goal)
help:
	@awk '/^## /{d=substr($$0,4);next} /^[a-z][a-z%-]*:/{if(d!=""){sub(/:.*/,"");printf "  %-12s %s\n",$$0,d}} {d=""}' $(firstword $(MAKEFILE_LIST))
.PHONY: help

## Render the template with default answers, install it from a local model mirror, print entities
demo: $(VENV)/.installed dist
	TOOLS_FIND_LINKS=$(CURDIR)/dist $(VENV)/bin/python -m tests.demo --dest $(DEMO_DIR)
.PHONY: demo

## Run a target of the demo project again, e.g. make demo-test (after make demo)
demo-%:
	$(MAKE) -C $(DEMO_DIR) $* TOOLS_FIND_LINKS=$(CURDIR)/dist

## Run the whole test suite, container builds included
test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)
.PHONY: test

## Measure installs, locks, downloads and image builds side by side; BENCH_ARGS=--publish updates docs/
bench: $(VENV)/.installed dist
	TOOLS_FIND_LINKS=$(CURDIR)/dist $(VENV)/bin/python -m tests.bench $(BENCH_ARGS)
.PHONY: bench

## Check the Python code and the generated Dockerfile
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/python -m tests.lint_dockerfile
.PHONY: lint

## Build the engine's wheel (nlp-modeltools) into dist/: the same bytes from any clone, umask or day
dist: $(VENV)/.installed
	rm -rf dist/nlp_modeltools-*.whl
	cd $(ENGINE) && umask 022 && SOURCE_DATE_EPOCH=$(ENGINE_EPOCH) $(CURDIR)/$(VENV)/bin/python -m flit_core.wheel \
	  --outdir $(CURDIR)/dist >/dev/null
	@cd dist && sha256sum nlp_modeltools-*.whl
.PHONY: dist

## Compile requirements-dev.txt and the tool locks (the engine's, then the projects' with the engine's wheel hash)
lock: $(VENV)/.installed
	CUSTOM_COMPILE_COMMAND="make lock" $(VENV)/bin/pip-compile --quiet --strip-extras --generate-hashes \
	  --allow-unsafe --no-emit-index-url --no-emit-find-links --output-file requirements-dev.txt requirements-dev.in
	for tools in $(ENGINE)/src/nlp_modeltools/locks/publish $(ENGINE)/src/nlp_modeltools/locks/sbom; do \
	  $(call uv_lock,$$tools); \
	done
	$(MAKE) --no-print-directory dist
	$(call uv_lock,template/scripts/tools) --find-links dist --no-emit-find-links --upgrade-package nlp-modeltools
.PHONY: lock

# The lock is complete (pip-compile --allow-unsafe: pip and setuptools too), so nothing is resolved:
# --no-deps installs exactly its pins, whatever pip the venv got. Without it, the pip that Python
# bundles (23.x) resolves an extra such as smart-open[http] against the index's newest release and
# refuses it. pip check then proves the lock held every dependency.
$(VENV)/.installed: requirements-dev.txt
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes -r $<
	$(VENV)/bin/python -m pip check
	@touch $@

## Remove the dev venv, the demo and the test caches (cached model wheels included)
clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
.PHONY: clean
