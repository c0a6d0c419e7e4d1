# One Makefile for people and CI. Every target creates .venv first if it is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt pyproject.toml | cksum | cut -d' ' -f1)

.DEFAULT_GOAL := help
.PHONY: help venv test test-fast lint fmt clean compiled

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "mdgw needs Python 3.11+; set PYTHON=python3.11 (found " + sys.version.split()[0] + ")")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

venv: $(STAMP) compiled  ## create .venv, install the pinned dependencies, build the compiled hot path

# The compiled hot path (mdgw.compiled): mypyc builds mdgw/_compiled/<hash of the sources>/
# when a C compiler is present. A no-op when the build for the current sources exists, so
# every target that runs code depends on it; an edited module is never shadowed by an old
# build either way (the import hook only takes a build whose hash matches the sources).
compiled: $(STAMP)  ## build the compiled hot path if a C compiler is present (else pure Python)
	@$(PY) -m mdgw.compiled_build

# Two phases. The core tests (tests/core: sans-I/O, no processes, no timing) run first, on two
# workers: with the build in use, then once more on pure Python (MDGW_PURE=1) when the build is
# compiled; both must pass. The second run's property tests take a third of their examples
# (mdgw.testing.examples): same source, checked twice. Then everything else, one test at a
# time, because those tests start real processes and wait on them with deadlines.
test: compiled  ## run the whole test suite, then the core tests on the pure-Python fallback
	@echo "make test: $$($(PY) -m mdgw.compiled_build --status)" >&2
	@echo "make test: the core tests (tests/core), on two workers" >&2
	@$(PY) -m pytest -q -n 2 tests/core || exit $$?
	@if $(PY) -c 'import sys, mdgw; sys.exit(0 if mdgw.compiled.IS_COMPILED else 1)'; then \
		echo "make test: the core tests again, on the pure-Python fallback (MDGW_PURE=1)" >&2; \
		MDGW_PURE=1 $(PY) -m pytest -q -n 2 tests/core || exit $$?; \
	fi
	@echo "make test: everything else, one test at a time" >&2
	@$(PY) -m pytest -q --ignore=tests/core; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: no tests were collected" >&2; exit 1; fi; exit $$rc

test-fast: compiled  ## run the tests except the end-to-end ones
	$(PY) -m pytest -q -m "not e2e"

lint: $(STAMP)  ## ruff check, ruff format --check, mypy --strict
	$(VENV)/bin/ruff check services tests scripts
	$(VENV)/bin/ruff format --check services tests scripts
	$(VENV)/bin/mypy --strict services

fmt: $(STAMP)  ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix services tests scripts
	$(VENV)/bin/ruff format services tests scripts

# --- Benchmarks (docs/performance.md) -------------------------------------------------------
# Real processes on loopback, one benchmark at a time. BENCH_ARGS passes options to the
# driver, e.g. BENCH_ARGS=--strict (exit 1 when a target is missed) or "--only latency".
BENCH_ARGS ?=
.PHONY: bench bench-long

bench: compiled  ## throughput, latency, ingestor rate, metrics scrape (< 4 min): one table, JSON in var/bench/
	$(PY) scripts/bench.py $(BENCH_ARGS)

bench-long: compiled  ## scale (1,200 symbols) and 10-minute memory soak (~13 min)
	$(PY) scripts/bench.py --long $(BENCH_ARGS)

# mdgw's builder core against cryptofeed's Bybit handler, in one process (scripts/bench_peers.py).
# cryptofeed, pinned, lives in its own venv under var/ (never in .venv), with the few packages
# mdgw's core needs to run beside it and mdgw itself (editable, no dependencies). PEERS_ARGS passes options, e.g. "--rounds 3".
CRYPTOFEED_VERSION := 2.4.1
PEERS_VENV := var/peers-venv
PEERS_STAMP := $(PEERS_VENV)/.installed-cryptofeed-$(CRYPTOFEED_VERSION)-mdgw-$(shell grep -E '^(pyzmq|msgspec|orjson)==' requirements.txt | cksum | cut -d' ' -f1)
PEERS_ARGS ?=
.PHONY: bench-peers

$(PEERS_STAMP): requirements.txt
	@mkdir -p var
	@test -x $(PEERS_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		cryptofeed==$(CRYPTOFEED_VERSION) $$(grep -E '^(pyzmq|msgspec|orjson)==' requirements.txt)
	$(PEERS_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@rm -f $(PEERS_VENV)/.installed-*
	@touch $@

bench-peers: compiled $(PEERS_STAMP)  ## mdgw vs cryptofeed in process (~3 min): one table, JSON in var/bench/
	$(PEERS_VENV)/bin/python scripts/bench_peers.py $(PEERS_ARGS)

clean:  ## remove the venv and run-time files
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache .hypothesis services/mdgw/_compiled

# --- Running the gateway under supervisord (docs/operations.md) ------------------------------
# One supervisord per checkout: deploy/supervisord.conf takes every path from its own place
# (var/run/supervisor.sock, var/log/), so `supervisorctl -c deploy/supervisord.conf ...`
# works as typed. `make up` (live Bybit) or `make demo` (offline, deploy/demo.conf: the
# simulator and config/demo.toml); `make down` stops whichever runs.
GATEWAY_CONFIG ?= config/gateway.toml
UP_TIMEOUT ?= 30
DOWN_TIMEOUT ?= 30
SUPERVISOR_CONF := deploy/supervisord.conf
DEMO_CONF := deploy/demo.conf
RUN_VAR := $(CURDIR)/var
SUPERVISORCTL := $(VENV)/bin/supervisorctl -c $(SUPERVISOR_CONF)
SUPERVISOR_WAIT := $(PY) scripts/supervisor_wait.py -c $(SUPERVISOR_CONF)

.PHONY: up demo down status logs restart

# $(call supervise,CONF,ENV): start supervisord with that conf and environment, or, when
# it already runs with the same ones, apply changes of the conf and start what is stopped;
# then wait until every program is RUNNING.
define supervise
@mkdir -p $(RUN_VAR)/log $(RUN_VAR)/run && chmod 0700 $(RUN_VAR)/run
@wanted="$(1) $(2)"; \
if $(SUPERVISORCTL) pid >/dev/null 2>&1; then \
	running="$$(cat $(RUN_VAR)/run/mdgw.env 2>/dev/null)"; \
	if [ "$$running" != "$$wanted" ]; then \
		echo "supervisord already runs with: $${running:-unknown settings}; 'make down' first" >&2; \
		exit 1; \
	fi; \
	$(SUPERVISORCTL) update >/dev/null; \
	$(SUPERVISORCTL) start 'mdgw:*' >/dev/null || true; \
else \
	echo "$$wanted" > $(RUN_VAR)/run/mdgw.env; \
	env $(2) $(VENV)/bin/supervisord -c $(1) || exit 1; \
fi; \
echo "waiting up to $(UP_TIMEOUT)s for every program to be RUNNING"; \
if ! $(SUPERVISOR_WAIT) --timeout $(UP_TIMEOUT) running; then $(SUPERVISORCTL) status; exit 1; fi; \
$(SUPERVISORCTL) status
endef

up: compiled  ## book_builder + ingestor + printer on live Bybit (GATEWAY_CONFIG) under supervisord
	$(call supervise,$(SUPERVISOR_CONF),MDGW_CONFIG=$(abspath $(GATEWAY_CONFIG)))

# The printer's log is followed from where it ended before this start: no lines of an
# earlier run. Ctrl-C stops tail (and make says "Interrupt"); the services keep running.
demo: compiled  ## offline: simulator + the three services under supervisord; follow the printer
	@mkdir -p $(RUN_VAR)/log && touch $(RUN_VAR)/log/printer.log
	@stat -c %s $(RUN_VAR)/log/printer.log > $(RUN_VAR)/log/.printer.offset
	$(call supervise,$(DEMO_CONF),)
	@echo "following var/log/printer.log: Ctrl-C stops the viewing; 'make down' stops the services" >&2
	@tail -c +$$(( $$(cat $(RUN_VAR)/log/.printer.offset) + 1 )) -F $(RUN_VAR)/log/printer.log

down: $(STAMP)  ## stop every program and supervisord; wait until all have exited
	@if ! $(SUPERVISORCTL) pid >/dev/null 2>&1; then echo "supervisord is not running"; exit 0; fi; \
	pids="$$( { $(SUPERVISORCTL) pid; $(SUPERVISORCTL) pid all; } | grep -vx 0)"; \
	$(SUPERVISORCTL) shutdown && $(SUPERVISOR_WAIT) --timeout $(DOWN_TIMEOUT) gone $$pids && \
	rm -f $(RUN_VAR)/run/mdgw.env && echo "stopped (pids $$(echo $$pids))"

status: $(STAMP)  ## supervisorctl status of the programs
	@$(SUPERVISORCTL) status

restart: compiled  ## restart every program (same config) and wait until RUNNING
	@$(SUPERVISORCTL) restart 'mdgw:*'
	@$(SUPERVISOR_WAIT) --timeout $(UP_TIMEOUT) running || { $(SUPERVISORCTL) status; exit 1; }
	@$(SUPERVISORCTL) status

logs: $(STAMP)  ## follow every log file under var/log (JSON lines; Ctrl-C to stop)
	@mkdir -p $(RUN_VAR)/log
	tail -n 20 -F $(RUN_VAR)/log/*.log

# --- Security and reliability (docs/configuration.md "CURVE across hosts", docs/reliability.md)
KEYS_DIR ?= var/keys
CLIENTS ?= client
SOAK_ARGS ?=

.PHONY: keys soak

keys: $(STAMP)  ## CURVE keypairs (server + CLIENTS="client") into var/keys/, files 0600; kept if present
	$(PY) scripts/make_keys.py --dir $(KEYS_DIR) $(foreach c,$(CLIENTS),--client $(c))

soak: compiled  ## 30 min at 5k frames/s with periodic faults; SOAK_ARGS="--minutes 5 --rate 2000"
	$(PY) scripts/soak.py $(SOAK_ARGS)

# --- Observability (docs/operations.md "Metrics and health") -------------------------------
# make top: reads the config of the gateway supervisord runs (make up / make demo), else
# GATEWAY_CONFIG. TOP_ARGS passes options, e.g. TOP_ARGS="--ingestor http://127.0.0.1:9113".
TOP_ARGS ?=
.PHONY: top

top: $(STAMP)  ## live terminal view of the running gateway (python -m mdgw.top; Ctrl-C quits)
	@config="$$(sed -n 's/^MDGW_CONFIG=\([^ ]*\).*/\1/p' $(RUN_VAR)/run/mdgw.env 2>/dev/null)"; \
	MDGW_CONFIG="$${config:-$(abspath $(GATEWAY_CONFIG))}" $(PY) -m mdgw.top $(TOP_ARGS)
