# gfs2-cluster: every target installs what it needs first (tools/setup.sh is idempotent).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
STACK ?= local
ENV := source tools/env.sh &&

.PHONY: setup up preview destroy test unit engine-checks e2e bench

setup:
	tools/setup.sh

up: setup
	$(ENV) tools/stack.sh up $(STACK)

preview: setup
	$(ENV) tools/stack.sh preview $(STACK)

destroy: setup
	$(ENV) tools/stack.sh destroy $(STACK)

# Fast tests, then the real engine on every example stack.
test: setup
	$(MAKE) --no-print-directory unit engine-checks
	@echo "make test: the e2e suites (real guests, about 30 minutes) are not part of it: make e2e"

unit:
	$(ENV) python -m pytest -q -m "not e2e and not engine" tests

engine-checks:
	$(ENV) python -m pytest -q -rs -s -m engine tests/engine

e2e: setup
	$(ENV) python -m pytest -q -rA -m e2e tests/image tests/isolation tests/e2e

bench: setup
	$(ENV) python bench/run.py
