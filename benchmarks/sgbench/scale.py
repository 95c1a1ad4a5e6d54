"""Scale per backend: joining, reading and heartbeating with N members.

For each group size the members are hosted by worker processes (at most
``per_worker`` each; every member keeps its own coordinator, connection and
heartbeat thread, as it would in its own process), and the parent is the
observer. Measured:

* time until all have joined: on the members' side (every agent accepted)
  and on the observer's side (``get_all`` lists all N);
* ``refresh``: one backend read of the whole group (what the background
  refresh does each ``servicegroup_refresh_interval``), and ``get_all``
  from the local view;
* backend operations and bytes per heartbeat round, counted by the server
  while only the members talk to it (the observer is stopped);
* client memory (RSS) and threads per member, in the workers.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import msgpack

import servicegroup
from servicegroup import exceptions
from servicegroup.testing import servers
from sgbench import backends, procs

LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Settings:
    report_interval: float
    service_down_time: float
    join_timeout: float
    per_worker: int
    rounds: int  # heartbeat rounds in the operation-count window
    fetches: int  # timed backend reads of the whole group
    fetch_seconds: float  # ... and the time they may take at most


FULL = Settings(10.0, 60.0, 150.0, 1000, 2, 50, 45.0)
QUICK = Settings(2.0, 6.0, 30.0, 1000, 1, 3, 5.0)

HotPath = Callable[[servicegroup.API, str, list[str]], dict[str, Any]]


def member_ids(n: int) -> list[str]:
    return [f"host{i:05d}" for i in range(n)]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _memcached_group_bytes(backend: backends.Backend, group: str) -> dict[str, Any]:
    """Size of the one value that holds a whole group in tooz's driver."""
    from pymemcache.client.base import Client

    server = backend.server
    client = Client((server.host, server.port), connect_timeout=5, timeout=5)
    try:
        raw = client.get(b"_TOOZ_GROUP_" + group.encode())
    finally:
        client.close()
    settings = server.stats("settings")  # type: ignore[attr-defined]
    # tooz stores the group as one msgpack map: member id -> record.
    entries = len(msgpack.unpackb(raw, raw=True)) if raw else 0
    return {
        "group_value_bytes": len(raw) if raw is not None else 0,
        "group_entries": entries,
        "item_size_max": int(settings.get("item_size_max", 1024 * 1024)),
    }


def _redis_commands(backend: backends.Backend) -> dict[str, int]:
    server = backend.server
    if isinstance(server, servers.RedisServer):
        try:
            return server.command_stats()
        except (OSError, servers.ServerError):
            LOG.warning("redis did not answer INFO commandstats")
    return {}


#: Threads the rest of the machine keeps for itself while members run:
#: running out of process ids takes every process on the host down, the
#: benchmark's shell included.
THREAD_RESERVE = 6000


def thread_budget() -> int:
    """Threads the host can still start (``kernel.pid_max`` bounds them)."""
    limits = []
    for path in ("/proc/sys/kernel/pid_max", "/proc/sys/kernel/threads-max"):
        try:
            with open(path) as fh:
                limits.append(int(fh.read()))
        except (OSError, ValueError):
            continue
    if not limits:
        return 1 << 30
    running = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                running += len(os.listdir(f"/proc/{entry}/task"))
            except OSError:
                continue
    return min(limits) - running - THREAD_RESERVE


def too_many_threads(
    backend: backends.Backend, n: int, threads_per_member: float
) -> dict[str, Any] | None:
    """A result row saying why ``n`` members cannot run here, or None."""
    needed = int(n * threads_per_member)
    budget = thread_budget()
    if needed <= budget:
        return None
    return {
        "backend": backend.name,
        "n": n,
        "limit": (
            f"not run: {n:,} members need ~{needed:,} client threads "
            f"({threads_per_member:g} per member, measured at the smaller "
            f"size) and this host can start ~{budget:,} more (kernel.pid_max "
            "bounds all threads); one member per host does not have this limit"
        ),
        "skipped": True,
    }


def run_one(
    backend: backends.Backend,
    n: int,
    settings: Settings,
    hot_path: HotPath | None = None,
) -> dict[str, Any]:
    """Measure one group size on one backend; never raises for a limit hit."""
    group = f"scale{n}-{int(time.time())}"
    ids = member_ids(n)
    result: dict[str, Any] = {
        "backend": backend.name,
        "n": n,
        "report_interval": settings.report_interval,
        "service_down_time": settings.service_down_time,
    }
    workers = procs.spawn(
        backend.url,
        group,
        ids,
        settings.per_worker,
        report_interval=settings.report_interval,
        service_down_time=settings.service_down_time,
        join_timeout=settings.join_timeout,
    )
    result["workers"] = len(workers)
    observer: servicegroup.API | None = None
    try:
        if not procs.wait_ready(workers, 120.0):
            result["error"] = "workers did not start"
            return result
        observer = servicegroup.API(
            conf=backends.make_conf(
                backend.url,
                report_interval=settings.report_interval,
                service_down_time=settings.service_down_time,
                refresh_interval=0.5,
                backend_timeout=30.0,
            )
        )
        observer.get_all(group)  # watch it now: the first fetch is done
        join_before = backend.counters()
        commands_before = _redis_commands(backend)
        started = time.monotonic()
        for worker in workers:
            worker.send("go")
        deadline = started + settings.join_timeout
        visible = 0
        while time.monotonic() < deadline:
            visible = len(observer.get_all(group))
            if visible == n:
                break
            time.sleep(0.05)
        result["visible"] = visible
        if visible == n:
            result["visible_seconds"] = time.monotonic() - started
        # Workers answer late when their members saturate them: wait a
        # little past the deadline, then count from what each one said last.
        grace = time.monotonic() + 10.0
        finals = [
            w.wait_event(
                "joined", "timeout", timeout=max(0.1, grace - time.monotonic())
            )
            for w in workers
        ]
        joined = 0
        for worker in workers:
            latest = [worker.last.get(k) for k in ("joined", "timeout", "progress")]
            known = [e for e in latest if e is not None]
            joined += max((int(e["n"]) for e in known), default=0)
        result["joined"] = joined
        errors = [w.last["error"] for w in workers if "error" in w.last]
        if errors:
            result["worker_errors"] = (
                f"{len(errors)} of {len(workers)} workers could not start all "
                f"their members: {errors[0]['error']}"
            )
        join_after = backend.counters()
        result["join_ops"] = join_after["ops"] - join_before["ops"]
        commands_after = _redis_commands(backend)
        if commands_after:
            # Optimistic transactions: WATCH per attempt, EXEC per commit.
            result["join_commands"] = {
                k: v - commands_before.get(k, 0)
                for k, v in commands_after.items()
                if v - commands_before.get(k, 0) > 0
            }
        if joined == n and all(e and e["event"] == "joined" for e in finals):
            result["join_seconds"] = max(float(e["seconds"]) for e in finals if e)
        if joined < n or visible < n:
            result["limit"] = (
                f"{joined}/{n} joined, {visible}/{n} visible to the observer "
                f"after {settings.join_timeout:.0f} s"
            )
            if errors:
                result["limit"] += f" ({result['worker_errors']})"
            LOG.warning("%s N=%d: %s", backend.name, n, result["limit"])
        grace = time.monotonic() + 30.0
        memories = [
            w.wait_event("memory", timeout=max(0.1, grace - time.monotonic()))
            for w in workers
        ]
        if all(memories) and joined == n:
            delta = sum(e["rss_after"] - e["rss_before"] for e in memories if e)
            threads = sum(e["threads"] for e in memories if e)
            result["rss_per_member_kib"] = delta / n / 1024
            result["threads_per_member"] = threads / n
        if hot_path is not None:
            # With fewer members than asked (a limit was hit), the hot path
            # is still measured, on those that are up, and says how many.
            up = observer.get_all(group)
            if up:
                result["hot"] = {"ids": up, **hot_path(observer, group, up)}
        # get_all from the local view: a sort of N ids, no network.
        get_all = observer.get_all
        count = 0
        t0 = time.perf_counter()
        while count < 200 and time.perf_counter() - t0 < 1.0:
            get_all(group)
            count += 1
        result["get_all_local_ms"] = (time.perf_counter() - t0) / count * 1000
        if not backends.stop_api(observer):
            result["stop_hung"] = True
        observer = None
        # Only the members talk to the server from now on.
        time.sleep(1.0)
        window = settings.rounds * settings.report_interval
        before = backend.counters()
        t0 = time.monotonic()
        time.sleep(window)
        after = backend.counters()
        elapsed = time.monotonic() - t0
        rounds = elapsed / settings.report_interval
        ops_rate = (after["ops"] - before["ops"]) / elapsed
        result["ops_per_round"] = (after["ops"] - before["ops"]) / rounds
        result["ops_per_member_round"] = result["ops_per_round"] / n
        result["bytes_per_round"] = (after["bytes"] - before["bytes"]) / rounds
        finished, fetched = backends.bounded(
            _time_fetches,
            settings.fetch_seconds + 60.0,
            backend,
            group,
            settings,
            ops_rate,
        )
        if finished and isinstance(fetched, str):
            result["refresh_error"] = fetched
            LOG.warning(
                "%s N=%d: whole-group reads failed: %s", backend.name, n, fetched
            )
        elif finished:
            result.update(fetched)
        else:
            result["refresh_hung"] = True
            LOG.warning("%s N=%d: whole-group reads did not return", backend.name, n)
        if backend.name == "memcached":
            try:
                result.update(_memcached_group_bytes(backend, group))
            except OSError as exc:
                # A saturated memcached times out even this one read.
                result["group_read_error"] = f"{type(exc).__name__}: {exc}"
                result["group_entries"] = 0
            if result["group_entries"]:
                per_member = result["group_value_bytes"] / result["group_entries"]
                result["group_bytes_per_member"] = per_member
                result["max_members_one_item"] = int(
                    result["item_size_max"] / per_member
                )
        return result
    finally:
        if observer is not None and not backends.stop_api(observer):
            result["stop_hung"] = True
        procs.close_all(workers, 30.0)


def _time_fetches(
    backend: backends.Backend, group: str, settings: Settings, ops_rate: float
) -> dict[str, Any] | str:
    """Latency and server operations of whole-group reads (refreshes).

    A string says why they could not be made.
    """
    api = servicegroup.API(
        conf=backends.make_conf(
            backend.url,
            report_interval=settings.report_interval,
            service_down_time=settings.service_down_time,
            # No background refresh: only the timed reads below go out.
            refresh_interval=3600.0,
            backend_timeout=60.0,
        )
    )
    try:
        return _timed_fetches(api, backend, group, settings, ops_rate)
    except exceptions.ServiceGroupError as exc:
        # A new client refused by an overloaded server is a result too.
        return f"{type(exc).__name__}: {exc}"
    finally:
        backends.stop_api(api)


def _timed_fetches(
    api: servicegroup.API,
    backend: backends.Backend,
    group: str,
    settings: Settings,
    ops_rate: float,
) -> dict[str, Any]:
    fetch = api.driver._observer.fetch  # type: ignore[attr-defined]
    fetch(group)  # connect
    latencies = []
    before = backend.counters()
    t0 = time.monotonic()
    while (
        len(latencies) < settings.fetches
        and time.monotonic() - t0 < settings.fetch_seconds
    ):
        t = time.perf_counter()
        fetch(group)
        latencies.append(time.perf_counter() - t)
    elapsed = time.monotonic() - t0
    after = backend.counters()
    # Members keep heartbeating meanwhile: their measured rate is taken out.
    ops = (after["ops"] - before["ops"]) - ops_rate * elapsed
    return {
        "refresh_p50_ms": statistics.median(latencies) * 1000,
        "refresh_p95_ms": _percentile(latencies, 0.95) * 1000,
        "refresh_samples": len(latencies),
        "ops_per_refresh": max(0.0, ops / len(latencies)),
    }
