#!/usr/bin/env bash
# Build the documentation into doc/build/html, warnings as errors.
#
# Uses the venv's sphinx-build (tools/setup-venv.sh installs the docs
# extra), or the one on PATH inside tox. Extra arguments go to sphinx-build.
set -euo pipefail
cd "$(dirname "$0")/.."

sphinx_build=.venv/bin/sphinx-build
if [ ! -x "$sphinx_build" ]; then
    sphinx_build=$(command -v sphinx-build || true)
fi
if [ -z "$sphinx_build" ]; then
    echo "build-docs: sphinx-build not found (run tools/setup-venv.sh)" >&2
    exit 2
fi

# -E: read every source again, so a stale environment cannot hide a warning.
rm -rf doc/build/html doc/build/doctrees
"$sphinx_build" -W --keep-going -E -b html \
    -d doc/build/doctrees doc/source doc/build/html "$@"
echo "build-docs: doc/build/html/index.html"
