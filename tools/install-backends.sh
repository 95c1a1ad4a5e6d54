#!/usr/bin/env bash
# Install the backend servers the functional tests and benchmarks run.
#
# Idempotent: packages already installed are left alone, and apt-get is not
# called at all when nothing is missing.  Debian/Ubuntu only.
#
# The tests never use the system services these packages may start
# (redis-server on 6379, memcached on 11211, zookeeper on 2181, etcd on
# 2379): servicegroup.testing.servers launches its own servers on free
# loopback ports with throw-away data directories.  So this script does not
# stop, disable or reconfigure anything already running on the machine.
#
# Usage: tools/install-backends.sh [--dry-run]
set -euo pipefail

dry_run=0
case "${1:-}" in
    --dry-run) dry_run=1 ;;
    "") ;;
    -h|--help)
        sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "usage: $0 [--dry-run]" >&2
        exit 2
        ;;
esac

packages=(
    redis-server
    redis-sentinel
    memcached
    nutcracker
    zookeeper
    etcd-server
    etcd-client
)
# ZooKeeper is a Java program; the zookeeper package pulls a JRE in through
# its dependencies, but only ask for one explicitly when java is missing so
# an existing JDK is not joined by a second runtime.
if ! command -v java >/dev/null 2>&1; then
    packages+=(default-jre-headless)
fi

if ! command -v dpkg >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-backends: dpkg/apt-get not found; install these yourself:" >&2
    echo "  ${packages[*]}" >&2
    exit 1
fi

missing=()
for pkg in "${packages[@]}"; do
    if ! dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed'; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-backends: all installed: ${packages[*]}"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "install-backends: not root and no sudo; as root, run:" >&2
    echo "  apt-get install ${missing[*]}" >&2
    exit 1
fi

echo "install-backends: installing: ${missing[*]}"
if [ "$dry_run" -eq 1 ]; then
    echo "(dry run) ${as_root[*]:-} apt-get update"
    echo "(dry run) ${as_root[*]:-} apt-get install -y --no-install-recommends ${missing[*]}"
    exit 0
fi

${as_root[@]+"${as_root[@]}"} apt-get update
${as_root[@]+"${as_root[@]}"} env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}"

echo "install-backends: done."
echo "Note: the tests start their own servers on free 127.0.0.1 ports;" \
     "any system services these packages started are not used."
