# Thin: every target calls a script or a tool; the logic lives in infra/ and services/cli/local/.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
# uv: the machine's (`python3 -m uv`), else one that pip installs into the user's cache with
# --target, which works where the system Python is externally managed (PEP 668: Debian 12,
# Ubuntu 24.04) and `pip install --user` is refused.
UV_DIR := $(HOME)/.cache/chancery/uv
UV := UV_PYTHON_DOWNLOADS=never PYTHONPATH=$(UV_DIR) $(PYTHON) -m uv
UV_VERSION := uv>=0.9,<0.10
BIN := .venv/bin
PYTEST_ARGS ?=

.PHONY: help uv venv servers browser atlas run run-cluster stop test reliability bench lint clean distclean

help:
	@echo "make run    start Kafka, Redis, ingest, projector and API; load seeds; Ctrl-C stops all"
	@echo "make run-cluster  the same on three Kafka nodes and a Redis Cluster (7000-7005)"
	@echo "make test   the whole suite against real Kafka and Redis on free ports"
	@echo "            (bar the longest fault scenarios: make reliability runs those)"
	@echo "make reliability  the reliability and security suite, all of it (~5 min)"
	@echo "make lint   ruff, ruff format --check, mypy, shellcheck, tsc (the Atlas)"
	@echo "make atlas  build the Atlas (the web page at /) into atlas/dist"
	@echo "make bench  the benchmarks;  make stop  stop what a killed 'make run' left"
	@echo "make clean  remove local state and caches (not .venv: make distclean)"

uv:
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --target $(UV_DIR) '$(UV_VERSION)'
	@$(UV) --version

# The environment, from the lock file: .venv/ is (re)made when pyproject.toml or uv.lock change.
venv: $(BIN)/.synced
$(BIN)/.synced: pyproject.toml uv.lock
	@$(MAKE) --no-print-directory uv
	$(UV) sync --frozen
	touch $@

# The real servers: Kafka's jars (cached outside the repo) and Debian's redis-server.
servers:
	infra/kafka/kafka.sh fetch >/dev/null
	infra/redis/redis.sh install

# The Atlas: its npm packages from the lock file (again when the lock file changes), then the
# build into atlas/dist (again when a source changes). Node.js and npm come with the machine.
ATLAS_SOURCES := $(shell find atlas/src atlas/scripts -type f 2>/dev/null) atlas/tsconfig.json
atlas: atlas/dist/manifest.json
atlas/node_modules/.installed: atlas/package.json atlas/package-lock.json
	cd atlas && npm ci --no-audit --no-fund --loglevel=error
	touch $@
atlas/dist/manifest.json: atlas/node_modules/.installed $(ATLAS_SOURCES)
	cd atlas && npm run --silent build

# Debian's chromium, which the browser tests drive (Playwright cannot fetch its own here).
browser:
	infra/chromium/chromium.sh install

run: venv servers atlas
	$(BIN)/chancery up

run-cluster: venv servers atlas
	$(BIN)/chancery up --cluster

stop: venv
	$(BIN)/python -m services.cli.local stop

# The reliability scenarios marked reliability_long (a 100,000-event replay under SIGKILL,
# a broker stopped under load, a broker of the cluster killed under load) take minutes:
# `make test` leaves them to `make reliability`.
test: venv servers atlas browser
	$(BIN)/pytest -m "not reliability_long" $(PYTEST_ARGS)

reliability: venv servers
	$(BIN)/pytest -m reliability $(PYTEST_ARGS)

bench: venv servers atlas browser
	$(BIN)/python -m bench

lint: venv atlas/node_modules/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	cd atlas && npm run --silent typecheck
	@if command -v shellcheck >/dev/null; then shellcheck infra/*/*.sh .ci/run; \
	else echo "shellcheck not installed (apt-get install shellcheck): skipped"; fi

clean:
	-$(BIN)/python -m services.cli.local stop 2>/dev/null
	rm -rf .chancery .pytest_cache .mypy_cache .ruff_cache .hypothesis bench/results atlas/dist
	rm -rf tests/browser/screenshots
	find . -path ./.venv -prune -o -type d -name __pycache__ -print0 | xargs -0 rm -rf

distclean: clean
	rm -rf .venv atlas/node_modules bench/peers/quix-env/.venv
