#!/usr/bin/env bash
# Nova 34's own functional tests with servicegroup's Nova driver swapped in.
#
# 1. Sets up .nova-venv if it is missing (or its pins changed): nova 34.0.0
#    from PyPI, its test-requirements.txt, openstack-placement, eventlet and
#    this checkout (editable, extras "all"), pinned by tools/nova/constraints.txt.
#    The wheel lacks etc/nova/api-paste.ini and doc/api_samples/, which the
#    functional tests read next to the nova package; they are copied from the
#    nova sdist, downloaded from PyPI into .nova-venv/src at set-up time.
# 2. Applies doc/source/nova/nova-34.0.0-servicegroup.patch (the one the docs
#    show) to the installed nova, from pristine files each run: the stage fails
#    if it does not apply.
# 3. Runs the tests of tools/nova/tests.txt (plus a probe that fails unless
#    the driver in use is the one asked for) in a matrix: concurrency mode
#    {eventlet, threading} x driver {db (baseline), tooz on fake://, tooz on
#    Redis servers started for the run, one per worker}, prints passed/failed/
#    skipped and wall time per cell, and exits non-zero if a test that passes
#    with db in a mode does not pass with ours in that mode (tests listed in
#    tools/nova/db-only.txt, whose up/down can only come from database rows,
#    are reported but do not count). The driver is switched through oslo.config's
#    environment source (OS_DEFAULT__SERVICEGROUP_DRIVER=tooz,
#    OS_DEFAULT__SERVICEGROUP_TOOZ_URL=...), which Nova's ConfFixture honours.
#
# Usage: tools/run-nova-tests.sh [--modes eventlet,threading]
#            [--drivers db,tooz-fake,tooz-redis] [--concurrency 3] [...]
#        (arguments go to tools/nova/matrix.py; --help lists them)
# Environment: PYTHON (default python3), SERVICEGROUP_NOVA_VENV (default
# .nova-venv), SERVICEGROUP_NOVA_WORK (stestr repositories and logs; default
# ${TMPDIR:-/tmp}/servicegroup-nova-tests, emptied first).
# Needs redis-server (tools/install-backends.sh) for the tooz-redis cells.
set -euo pipefail
cd "$(dirname "$0")/.."

NOVA_VERSION=34.0.0
PYTHON=${PYTHON:-python3}
VENV=${SERVICEGROUP_NOVA_VENV:-.nova-venv}
WORK=${SERVICEGROUP_NOVA_WORK:-${TMPDIR:-/tmp}/servicegroup-nova-tests}
PATCH_FILE=doc/source/nova/nova-${NOVA_VERSION}-servicegroup.patch
CONSTRAINTS=tools/nova/constraints.txt
SDIST=$VENV/src/nova-$NOVA_VERSION

started=$SECONDS
step() { printf '\n== nova: %s\n' "$*"; }
# pip's output (and the build backends' warnings) go to a log, shown on failure.
pip_quiet() {
  if ! "$VENV/bin/python" -m pip "$@" >> "$VENV/setup.log" 2>&1; then
    grep -v "^WARNING: Location" "$VENV/setup.log" | tail -40 >&2
    echo "pip $* failed (log: $VENV/setup.log)" >&2
    return 1
  fi
}

# What the venv was built from (servicegroup is installed editable from this
# checkout): a change in any of these rebuilds it.
stamp=$(cat "$CONSTRAINTS" setup.cfg | sha256sum | cut -d' ' -f1)
stamp="nova-$NOVA_VERSION $("$PYTHON" -c 'import sys; print(sys.version.split()[0])') $PWD $stamp"

if [ ! -f "$VENV/.stage-ready" ] || [ "$(cat "$VENV/.stage-ready")" != "$stamp" ]; then
  step "virtualenv $VENV (nova $NOVA_VERSION, test requirements, servicegroup[all])"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  pip_quiet install --quiet --upgrade pip
  mkdir -p "$VENV/src"
  pip_quiet download --quiet --no-binary :all: --no-deps -d "$VENV/src" \
    "nova==$NOVA_VERSION"
  tar -xzf "$VENV/src/nova-$NOVA_VERSION.tar.gz" -C "$VENV/src"
  rm -f "$VENV/src/nova-$NOVA_VERSION.tar.gz"
  # nova itself from its wheel, as a deployment installs it; the sdist is
  # only where the test data files and test-requirements.txt come from.
  pip_quiet install --quiet -c "$CONSTRAINTS" --only-binary nova \
    "nova==$NOVA_VERSION" -r "$SDIST/test-requirements.txt" \
    openstack-placement eventlet -e ".[all]"
  site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  # Nova's test fixtures read $pybasedir/etc/nova/api-paste.ini and
  # nova/tests/functional/../../../doc/api_samples: both beside the package.
  mkdir -p "$site/etc/nova" "$site/doc"
  cp "$SDIST/etc/nova/api-paste.ini" "$site/etc/nova/"
  rm -rf "$site/doc/api_samples"
  cp -r "$SDIST/doc/api_samples" "$site/doc/"
  "$VENV/bin/python" -c "import nova, servicegroup, stestr, placement"
  echo "$stamp" > "$VENV/.stage-ready"
  echo "set up in $((SECONDS - started)) s"
fi
site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

step "patch $PATCH_FILE"
# Back to the pristine files (the sdist's), so the patch is applied anew each
# run and a patch that no longer applies fails here.
mapfile -t patched < <(sed -n 's|^+++ b/\([^[:space:]]*\).*|\1|p' "$PATCH_FILE")
if [ "${#patched[@]}" -eq 0 ]; then
  echo "no file in $PATCH_FILE" >&2
  exit 1
fi
for f in "${patched[@]}"; do
  cmp -s "$SDIST/$f" "$site/$f" || cp "$SDIST/$f" "$site/$f"
done
patch_to=$(realpath "$PATCH_FILE")
if ! (cd "$SDIST" && patch -p1 --dry-run --batch --silent --forward < "$patch_to"); then
  echo "$PATCH_FILE does not apply to the nova $NOVA_VERSION sdist" >&2
  exit 1
fi
if ! (cd "$site" && patch -p1 --batch --forward --no-backup-if-mismatch < "$patch_to"); then
  echo "$PATCH_FILE does not apply to the installed nova in $site" >&2
  exit 1
fi
"$VENV/bin/python" - <<'EOF'
from nova.conf import servicegroup as conf
from nova.servicegroup import api
assert api._driver_name_class_mapping["tooz"] == "servicegroup.nova.ToozDriver"
assert "tooz" in conf.SERVICEGROUP_OPTS[0].type.choices
EOF
# The probe runs among Nova's tests, in the same workers and fixtures.
cp tools/nova/test_servicegroup_probe.py "$site/nova/tests/functional/"

step "functional tests (tools/nova/tests.txt) per mode and driver"
rm -rf "$WORK"
mkdir -p "$WORK"
status=0
"$VENV/bin/python" tools/nova/matrix.py \
  --venv-bin "$VENV/bin" --site "$site" --work "$WORK" \
  --tests tools/nova/tests.txt \
  --threading-excludes "$SDIST/threading_functional_test_excludes.txt" \
  --db-only tools/nova/db-only.txt \
  "$@" || status=$?
echo "Nova stage: $((SECONDS - started)) s in all (logs in $WORK)"
exit "$status"
