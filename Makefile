# gfs2-cluster: every target installs what it needs first (tools/setup.sh is idempotent).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
STACK ?= local
# Source archives of the Pulumi pieces no registry here serves (tools/toolchain.sh).
GFS2_UPSTREAM_DIR ?= $(if $(wildcard ../shared/upstream/*.tar.gz),$(abspath ../shared/upstream),)
export GFS2_UPSTREAM_DIR
ENV := source tools/env.sh &&

.PHONY: setup up preview destroy test unit engine-checks e2e-local e2e-day2 e2e bench team-db team-db-stop

setup:
	tools/setup.sh

up: setup
	$(ENV) tools/stack.sh up $(STACK)

preview: setup
	$(ENV) tools/stack.sh preview $(STACK)

destroy: setup
	$(ENV) tools/stack.sh destroy $(STACK)

# The whole proof: fast tests, the real engine on every stack and the policy pack, then
# the local cluster end to end through `pulumi up`.
test: setup
	$(MAKE) --no-print-directory unit engine-checks e2e-local

unit: setup
	$(ENV) python -m pytest -q -m "not e2e and not engine" tests

engine-checks: setup
	$(ENV) python -m pytest -q -rA -s -m engine tests/engine tests/policy tests/tools tests/team

e2e-local: setup
	$(ENV) python -m pytest -q -rA -s -m e2e tests/e2e

# Changing the running local cluster (members, storage, sizes) through `pulumi up`: a
# session of its own, never beside another cluster of the local stack.
e2e-day2: setup
	$(ENV) python -m pytest -q -rA -s -m e2e tests/day2

# Everything on real guests: the image, the local cluster, tenant isolation, day-2 changes.
e2e: setup
	$(ENV) python -m pytest -q -rA -m e2e tests/image tests/isolation tests/e2e
	$(MAKE) --no-print-directory e2e-day2

bench: setup
	$(ENV) python bench/run.py

# A throw-away PostgreSQL on loopback to try the team backend with (README: Working as a
# team): prints the variables to export; team-db-stop stops it (by its PID) and removes it.
TEAM_DB ?= /tmp/gfs2-team-db
team-db: setup
	python3 tools/pg_throwaway.py start $(TEAM_DB)

team-db-stop:
	python3 tools/pg_throwaway.py remove $(TEAM_DB)
