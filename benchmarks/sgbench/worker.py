"""A process that hosts members: ``python -m sgbench.worker SPEC_JSON``.

Real deployments run one member per process; benchmarks need thousands,
so a worker hosts a share of them in one ``servicegroup.API`` (each member
still has its own tooz coordinator, connection and heartbeat thread, as in
production). The parent talks to it over pipes:

* stdout, one JSON object a line: ``ready`` (imports done), ``progress``
  and ``joined`` (every agent accepted by the backend), ``memory``;
* stdin, one word a line: ``go`` (join everything now), ``stop`` (leave
  gracefully and exit). SIGTERM is a graceful stop too; SIGKILL is a crash.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from typing import Any

import servicegroup
from sgbench import backends

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """Resident set size of this process."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * _PAGE


def _emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, "wall": time.time(), **fields}) + "\n")
    sys.stdout.flush()


def _joined_count(api: servicegroup.API, members: list[str], group: str) -> int:
    return sum(api.is_registered(member, group) for member in members)


class _Graceful(Exception):
    """SIGTERM arrived: leave, then exit."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Graceful


def main(argv: list[str]) -> int:
    spec = json.loads(argv[1])
    logging.basicConfig(level=logging.ERROR)
    conf = backends.make_conf(
        spec["url"],
        report_interval=spec["report_interval"],
        service_down_time=spec["service_down_time"],
        # A worker never asks is_up; a long refresh keeps its observer idle.
        refresh_interval=3600.0,
    )
    members: list[str] = spec["members"]
    group: str = spec["group"]
    join_timeout: float = spec.get("join_timeout", 120.0)
    signal.signal(signal.SIGTERM, _on_sigterm)
    api = servicegroup.API(conf=conf)
    try:
        rss_before = rss_bytes()
        threads_before = threading.active_count()
        _emit("ready", rss=rss_before)
        if sys.stdin.readline().strip() != "go":
            return 0
        started = time.monotonic()
        for member in members:
            try:
                api.join(member, group, capabilities={"version": "1.0", "slots": 8})
            except Exception as exc:  # noqa: BLE001 - reported, then measured
                # A host limit (no more threads, no more file descriptors)
                # is a result: say so, and keep the members already joining.
                _emit("error", error=f"{type(exc).__name__}: {exc}", at=member)
                members = members[: members.index(member)]
                break
        deadline = started + join_timeout
        last_progress = 0.0
        while True:
            joined = _joined_count(api, members, group)
            now = time.monotonic()
            if joined == len(members):
                _emit("joined", n=joined, seconds=now - started)
                break
            if now >= deadline:
                _emit("timeout", n=joined, seconds=now - started)
                break
            if now - last_progress >= 1.0:
                _emit("progress", n=joined, seconds=now - started)
                last_progress = now
            time.sleep(0.02)
        # Let the first heartbeat rounds allocate what they allocate.
        time.sleep(spec.get("settle", 1.0))
        _emit(
            "memory",
            rss_before=rss_before,
            rss_after=rss_bytes(),
            threads=threading.active_count() - threads_before,
            n=len(members),
        )
        while True:
            line = sys.stdin.readline()
            if not line or line.strip() == "stop":
                break
    except _Graceful:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        api.stop()
        _emit("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
