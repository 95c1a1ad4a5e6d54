#!/usr/bin/env python3
"""Run every servicegroup benchmark and write the results.

From the repository root::

    .venv/bin/python benchmarks/run.py                 # full run (~30 min)
    .venv/bin/python benchmarks/run.py --quick         # smoke test (< 2 min)
    .venv/bin/python benchmarks/run.py --backends redis,etcd --out /tmp/res
    .venv/bin/python benchmarks/run.py --only soak --minutes 60 --backends redis

Every server is started by the run itself on loopback (see
``servicegroup.testing.servers``); a backend whose server is not installed
is skipped with a note. Writes ``RESULTS.md`` (and the same tables as
``RESULTS.rst`` for the doc page), ``results.json`` and PNG plots to
``--out`` (default ``benchmarks/results``, git-ignored).

The soak (``sgbench/soak.py``: members killed, paused, stopped and
rejoining while the server restarts empty) is not part of the default run,
being an hour long: name it with ``--only soak`` (``--minutes``,
``--restart-every``).

The exit status is non-zero only when something is broken (a benchmark
raised); a missed target is printed as ``MISSED`` with its ratio and does
not fail the run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import shlex
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sgbench import (  # noqa: E402
    backends,
    failure,
    hotpath,
    limits,
    observer,
    recovery,
    report,
    rst,
    scale,
    soak,
)

import servicegroup  # noqa: E402

LOG = logging.getLogger("benchmarks")

FULL_SIZES = (100, 1000, 10000)
QUICK_SIZES = (20,)
#: The group size of the is_up hot path (issue 7: 1,000 members).
HOT_SIZE = 1000
SECTIONS = ("scale", "observer", "failure", "recovery", "limits", "partition")
#: Sections run only when named in --only (the soak lasts an hour).
OPTIONAL_SECTIONS = ("soak",)


def _hot_path(backend: backends.Backend, quick: bool) -> scale.HotPath:
    def run(api: servicegroup.API, group: str, ids: list[str]) -> dict[str, Any]:
        result: dict[str, Any] = dict(hotpath.bench_api(api, group, ids, quick))
        options = dict(api.driver._backend.options)  # type: ignore[attr-defined]
        try:
            result["raw_tooz"] = hotpath.bench_raw_tooz(
                backend.url, options, group, quick
            )
        except Exception as exc:  # noqa: BLE001 - an overloaded server is a result
            LOG.warning("%s: raw tooz baseline failed: %s", backend.name, exc)
            result["raw_tooz_error"] = f"{type(exc).__name__}: {exc}"
        return result

    return run


def _derive_limits(results: dict[str, Any]) -> list[str]:
    """Plain statements of the limits the numbers show."""
    found = []
    for row in results.get("scale", []):
        if row.get("limit"):
            found.append(f"{row['backend']} with {row['n']:,} members: {row['limit']}")
        if row.get("max_members_one_item"):
            found.append(
                f"memcached keeps a whole group in one item: "
                f"{row['group_bytes_per_member']:.0f} bytes per member "
                f"({row['group_entries']:,} in the group at N={row['n']:,}), "
                f"so at most ~{row['max_members_one_item']:,} "
                f"members fit the {row['item_size_max'] // 1024} KiB item limit "
                f"(memcached -I raises it); every heartbeat reads that item "
                f"(one get, to notice an eviction; it writes only the member's "
                f"own key), {row['bytes_per_round'] / 1024:,.0f} KiB of "
                f"traffic per round at N={row['n']:,}, growing as N squared"
            )
    cap = results.get("zookeeper_cap")
    if cap:
        found.append(
            f"ZooKeeper maxClientCnxns={cap['max_client_cnxns']} (its default) "
            f"per client address: {cap['joined']} of {cap['members']} members "
            f"joined from one process after {cap['waited_seconds']:.0f} s; the "
            f"server logged {cap['log_refusals']} refusals. Each member holds "
            "its own session, so raise maxClientCnxns (or set 0) where many "
            "members share an address"
        )
    return found


def _partition(quick: bool) -> str:
    script = os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "bench_partition.py"
    )
    command = [sys.executable, script] + (["--quick"] if quick else [])
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=900, check=True
    )
    return done.stdout


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke test, < 2 min")
    parser.add_argument(
        "--backends",
        default=",".join(backends.KNOWN),
        help=f"comma-separated, from {', '.join(backends.KNOWN)}",
    )
    parser.add_argument(
        "--out",
        default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"),
        help="results directory",
    )
    parser.add_argument(
        "--sizes", help="comma-separated group sizes for the scale runs"
    )
    parser.add_argument(
        "--skip",
        default="",
        help=f"comma-separated sections to skip: {', '.join(SECTIONS)}",
    )
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated sections to run instead of the default ones: "
        f"{', '.join(SECTIONS + OPTIONAL_SECTIONS)} (soak runs only if named)",
    )
    parser.add_argument(
        "--minutes",
        type=float,
        help="length of the soak (default 60; 0.5 with --quick)",
    )
    parser.add_argument(
        "--restart-every",
        type=float,
        help="soak: mean seconds between two server restarts (default 45; "
        "shorter for runs under 10 minutes)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%X"
    )
    # Retries and rejoins are expected while limits are hit; the report
    # says what happened.
    logging.getLogger("servicegroup").setLevel(logging.ERROR)
    logging.getLogger("tooz").setLevel(logging.CRITICAL)
    logging.getLogger("kazoo").setLevel(logging.CRITICAL)

    names = [n.strip() for n in args.backends.split(",") if n.strip()]
    unknown = sorted(set(names) - set(backends.KNOWN))
    if unknown:
        parser.error(f"unknown backends {unknown}; known: {', '.join(backends.KNOWN)}")
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = sorted((skip | only) - set(SECTIONS + OPTIONAL_SECTIONS))
    if unknown:
        parser.error(
            f"unknown sections {unknown}; known: "
            f"{', '.join(SECTIONS + OPTIONAL_SECTIONS)}"
        )
    sections = (only or set(SECTIONS)) - skip
    minutes = args.minutes
    if minutes is None:
        minutes = 0.5 if args.quick else 60.0
    soak_settings = soak.settings_for(minutes, args.restart_every)
    if args.sizes:
        sizes = tuple(int(s) for s in args.sizes.split(","))
    else:
        sizes = QUICK_SIZES if args.quick else FULL_SIZES
    hot_size = HOT_SIZE if HOT_SIZE in sizes else max(sizes)
    settings = scale.QUICK if args.quick else scale.FULL
    os.makedirs(args.out, exist_ok=True)

    started = time.monotonic()
    results: dict[str, Any] = {
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "command": shlex.join(["benchmarks/run.py", *(argv or sys.argv[1:])]),
        "quick": args.quick,
        "machine": backends.machine(),
        "servers": {},
        "hot": {},
        "scale": [],
        "failure": [],
        "recovery": [],
        "soak": [],
        "errors": [],
        "skipped": {},
    }

    def guarded(what: str, func: Any, *a: Any) -> Any:
        LOG.info("%s ...", what)
        t0 = time.monotonic()
        try:
            value = func(*a)
        except Exception:
            LOG.exception("%s failed", what)
            results["errors"].append(f"{what}: {traceback.format_exc(limit=3)}")
            return None
        LOG.info("%s done in %.1f s", what, time.monotonic() - t0)
        return value

    # The old Nova mc driver baseline: one GET per question (for the hot
    # path, measured in the scale section).
    if "scale" not in sections:
        pass
    elif backends.missing("memcached"):
        results["skipped"]["memcached GET baseline"] = backends.missing("memcached")
    else:
        mc = guarded("memcached GET baseline", backends.start, "memcached")
        if mc is not None:
            try:
                server = mc.server
                got = guarded(
                    "memcached GET baseline",
                    hotpath.bench_memcached_get,
                    (server.host, server.port),
                    scale.member_ids(hot_size),
                    "compute",
                    args.quick,
                )
                if got:
                    results["hot"]["memcached_get"] = got
            finally:
                mc.close()

    for name in names:
        why = backends.missing(name)
        if why:
            LOG.warning("skipping %s: %s", name, why)
            results["skipped"][name] = why
            continue
        backend = guarded(f"starting {name}", backends.start, name)
        if backend is None:
            continue
        try:
            results["servers"][name] = backend.version()
            if "scale" in sections:
                threads_per_member = 1.0
                for n in sizes:
                    skipped = scale.too_many_threads(backend, n, threads_per_member)
                    if skipped is not None:
                        LOG.warning("%s N=%d: %s", name, n, skipped["limit"])
                        results["scale"].append(skipped)
                        continue
                    hot = _hot_path(backend, args.quick) if n == hot_size else None
                    row = guarded(
                        f"{name} scale N={n}", scale.run_one, backend, n, settings, hot
                    )
                    if row is None:
                        continue
                    if "hot" in row:
                        results["hot"][name] = {
                            "n": len(row["hot"].pop("ids")),
                            **row.pop("hot"),
                        }
                    results["scale"].append(row)
                    threads_per_member = max(
                        threads_per_member, row.get("threads_per_member") or 0.0
                    )
            if name in observer.BACKENDS and "observer" in sections:
                got = guarded(
                    f"{name} observer cost", observer.run, backend, args.quick
                )
                if got:
                    results.setdefault("observer", {})[name] = got
            if "failure" in sections:
                got = guarded(
                    f"{name} failure detection",
                    failure.run,
                    backend,
                    4 if args.quick else 10,
                    1 if args.quick else 2,
                )
                if got:
                    results["failure"].append(got)
            if "recovery" in sections:
                # Only servers that persist anything can come back with data.
                persistent = name in ("zookeeper", "etcd") and not args.quick
                for wipe in (True, False) if persistent else (True,):
                    got = guarded(
                        f"{name} recovery ({'empty' if wipe else 'data kept'})",
                        recovery.run,
                        backend,
                        10 if args.quick else 100,
                        wipe,
                    )
                    if got:
                        results["recovery"].append(got)
            if "soak" in sections:
                # Last: it restarts the server again and again.
                got = guarded(
                    f"{name} soak ({minutes:g} min)",
                    soak.run,
                    backend,
                    soak_settings,
                    args.out,
                )
                if got:
                    results["soak"].append(got)
        finally:
            backend.close()

    if not args.quick and "limits" in sections and "zookeeper" in names:
        if not backends.missing("zookeeper"):
            cap = guarded("ZooKeeper connection cap", limits.zookeeper_connection_cap)
            if cap:
                results["zookeeper_cap"] = cap
    if not args.quick and "partition" in sections:
        text = guarded("hash ring (bench_partition.py)", _partition, args.quick)
        if text:
            results["partition"] = text

    results["limits"] = _derive_limits(results)
    results["duration"] = time.monotonic() - started
    results["plots"] = report.plots(results, args.out)
    if not results["plots"]:
        results["limits"].append("matplotlib is not installed: no plots, tables only")
    text = report.markdown(results)
    with open(os.path.join(args.out, "RESULTS.md"), "w") as fh:
        fh.write(text)
    # The same tables for doc/source/benchmarks.rst.
    with open(os.path.join(args.out, "RESULTS.rst"), "w") as fh:
        fh.write(rst.convert(text))
    with open(os.path.join(args.out, "results.json"), "w") as fh:
        json.dump(results, fh, indent=1, default=str)
    print(text)
    for line in report.targets(results):
        print(line)
    print(f"results in {args.out} ({results['duration']:.0f} s)")
    if results["errors"]:
        print(f"BROKEN: {len(results['errors'])} benchmark(s) raised", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
