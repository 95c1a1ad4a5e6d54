#!/usr/bin/env bash
# Check that etc/servicegroup.conf.sample is what oslo-config-generator
# makes from the options now. Exit 1 with a diff when it is stale.
#
# The generator is the one of the project's venv (.venv), or the one on PATH
# (inside tox), or $OSLO_CONFIG_GENERATOR.
set -euo pipefail
cd "$(dirname "$0")/.."

generator=${OSLO_CONFIG_GENERATOR:-}
if [ -z "$generator" ]; then
    if [ -x .venv/bin/oslo-config-generator ]; then
        generator=.venv/bin/oslo-config-generator
    else
        generator=$(command -v oslo-config-generator || true)
    fi
fi
if [ -z "$generator" ]; then
    echo "check-sample-config: oslo-config-generator not found" \
         "(run tools/setup-venv.sh)" >&2
    exit 2
fi

sample=etc/servicegroup.conf.sample
fresh=$(mktemp)
trap 'rm -f "$fresh"' EXIT
"$generator" --config-file etc/oslo-config-generator/servicegroup.conf \
    --output-file "$fresh"

if ! diff -u "$sample" "$fresh"; then
    echo >&2
    echo "check-sample-config: $sample is out of date with the options in" \
         "servicegroup/conf.py. Run 'tox -e genconfig' (or" \
         "'$generator --config-file" \
         "etc/oslo-config-generator/servicegroup.conf') and commit it." >&2
    exit 1
fi
echo "check-sample-config: $sample is current"
