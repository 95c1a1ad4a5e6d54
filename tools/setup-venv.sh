#!/usr/bin/env bash
# Create .venv (if missing) and install servicegroup with every backend
# client and the test tools. Idempotent; safe to run on a fresh clone.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
extras=${SERVICEGROUP_EXTRAS:-all,test,docs,bench}
.venv/bin/python -m pip install --quiet -e ".[${extras}]" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import servicegroup" # fail loudly if the install did not work
