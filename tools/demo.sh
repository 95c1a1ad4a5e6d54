#!/usr/bin/env bash
# Set up servicegroup and run its demo on the embedded file:// backend: no
# server to install. Extra arguments go to `servicegroup demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
SERVICEGROUP_EXTRAS=${SERVICEGROUP_EXTRAS:-test} bash tools/setup-venv.sh
exec .venv/bin/servicegroup demo "$@"
