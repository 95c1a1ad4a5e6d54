#!/usr/bin/env bash
# Set up servicegroup and run its demo on the embedded file:// backend: no
# server to install. Extra arguments go to `servicegroup demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
# pip and setuptools are chatty (build warnings on every run): keep their
# output for when the setup fails, so the demo is the first thing one reads.
log=$(mktemp "${TMPDIR:-/tmp}/servicegroup-setup.XXXXXX")
trap 'rm -f "$log"' EXIT
echo "Setting up .venv (pip install; the first time takes a minute)..." >&2
if ! SERVICEGROUP_EXTRAS=${SERVICEGROUP_EXTRAS:-test} bash tools/setup-venv.sh >"$log" 2>&1; then
  cat "$log" >&2
  echo "tools/demo.sh: setting up .venv failed (output above)" >&2
  exit 1
fi
rm -f "$log"
trap - EXIT
status=0
.venv/bin/servicegroup demo "$@" || status=$?
# The command is installed in .venv, which is not on PATH: say how to reach
# it, since the demo's last lines suggest commands to try.
if [ "$(command -v servicegroup || true)" != "$PWD/.venv/bin/servicegroup" ]; then
  echo >&2
  echo "tools/demo.sh: the servicegroup command is in .venv/bin, not on PATH:" \
    "run '. .venv/bin/activate' first, or call it as .venv/bin/servicegroup" >&2
fi
exit "$status"
