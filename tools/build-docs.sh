#!/usr/bin/env bash
# Build the documentation into doc/build/html, warnings as errors.
#
# Uses the venv's sphinx-build, or the one of the active virtualenv (tox).
# When neither has Sphinx, as on a fresh clone after tools/demo.sh, it first
# installs the docs extra into .venv (tools/setup-venv.sh with
# SERVICEGROUP_EXTRAS=docs; a minute, once). Extra arguments go to
# sphinx-build.
set -euo pipefail
cd "$(dirname "$0")/.."

sphinx_build=.venv/bin/sphinx-build
if [ ! -x "$sphinx_build" ] && [ -n "${VIRTUAL_ENV:-}" ]; then
    sphinx_build=$(command -v sphinx-build || true)
fi
if [ -z "$sphinx_build" ] || [ ! -x "$sphinx_build" ]; then
    echo "build-docs: installing the docs extra into .venv (tools/setup-venv.sh)..." >&2
    SERVICEGROUP_EXTRAS=docs bash tools/setup-venv.sh
    sphinx_build=.venv/bin/sphinx-build
fi
if [ ! -x "$sphinx_build" ]; then
    echo "build-docs: sphinx-build not found after installing the docs extra;" \
        "run: SERVICEGROUP_EXTRAS=docs bash tools/setup-venv.sh" >&2
    exit 2
fi

# -E: read every source again, so a stale environment cannot hide a warning.
rm -rf doc/build/html doc/build/doctrees
"$sphinx_build" -W --keep-going -E -b html \
    -d doc/build/doctrees doc/source doc/build/html "$@"
echo "build-docs: doc/build/html/index.html"
