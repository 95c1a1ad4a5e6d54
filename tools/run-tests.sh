#!/usr/bin/env bash
# Set up everything on a fresh machine and run the whole test suite:
# backend servers (Debian packages), the virtualenv, lint and types, the
# sample configuration check, the docs build, the benchmark smoke run, Nova
# 34's own functional tests with our driver swapped in (tools/run-nova-tests.sh,
# its own .nova-venv), and pytest (unit, contract suite on every real backend,
# fault tests).
#
# Usage: tools/run-tests.sh [pytest arguments...]
#   e.g. tools/run-tests.sh -k redis          (a subset)
#        tools/run-tests.sh --run-slow        (also the slow soak runs)
# The Nova stage runs only without pytest arguments, and not with
# SERVICEGROUP_SKIP_NOVA=1.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "backend servers (Debian packages)"
bash tools/install-backends.sh

step "virtualenv and Python dependencies"
bash tools/setup-venv.sh

step "lint and types"
.venv/bin/ruff check servicegroup tests benchmarks examples
.venv/bin/ruff format --check servicegroup tests benchmarks examples
.venv/bin/mypy servicegroup

if [ -f tools/check-sample-config.sh ]; then
  step "sample configuration is current"
  bash tools/check-sample-config.sh
fi

if [ -f tools/build-docs.sh ]; then
  step "documentation (warnings are errors) and release notes"
  bash tools/build-docs.sh
  .venv/bin/reno lint
fi

if [ -f benchmarks/run.py ]; then
  step "benchmark smoke run"
  .venv/bin/python benchmarks/run.py --quick --out "${TMPDIR:-/tmp}/servicegroup-bench-quick"
fi

if [ "$#" -gt 0 ]; then
  step "Nova functional tests: skipped (pytest arguments given)"
elif [ "${SERVICEGROUP_SKIP_NOVA:-0}" = 1 ]; then
  step "Nova functional tests: skipped (SERVICEGROUP_SKIP_NOVA=1)"
else
  step "Nova 34 functional tests with servicegroup's driver"
  bash tools/run-nova-tests.sh
fi

step "tests"
# CI=true makes a missing backend server a failure instead of a skip.
export CI="${CI:-true}"
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
