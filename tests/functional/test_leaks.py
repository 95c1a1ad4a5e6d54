"""No leaks: 200 join/leave/stop cycles leave threads and fds at baseline.

Every cycle builds an API (its observer coordinator and refresh thread),
joins two members (a coordinator and a heartbeat thread each), waits until
the backend has them, asks ``is_up``, leaves one, and stops the API (which
leaves the other). A cycle that left one socket or thread behind would show
200 of them at the end.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from tests import support

CYCLES = 200


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _threads() -> int:
    # /proc counts native threads too (a client library's own).
    return len(os.listdir("/proc/self/task"))


def _cycle(url: str, group: str) -> None:
    api = support.make_api(url)
    try:
        api.join("m1", group)
        api.join("m2", group)
        support.wait_until(
            lambda: api.is_registered("m1", group) and api.is_registered("m2", group),
            30,
            "members joined",
            interval=0.002,
        )
        # The observer side too: its coordinator and refresh thread.
        support.wait_until(lambda: api.is_up("m1", group), 30, "m1 up")
        api.leave("m1", group)
    finally:
        api.stop()


def _no_library_threads() -> bool:
    return not any(t.name.startswith("servicegroup-") for t in threading.enumerate())


def _settled(baseline_fds: int, baseline_threads: int) -> bool:
    return _fds() <= baseline_fds and _threads() <= baseline_threads


@pytest.mark.parametrize(
    "backend_url",
    [
        "fake",
        "file",
        "redis",
        "memcached",
        "zookeeper",
        "etcd",
    ],
    indirect=True,
)
def test_join_leave_stop_cycles_leak_nothing(backend_url, group):
    for _ in range(3):  # warm up: imports, lazily created client globals
        _cycle(backend_url, group)
    support.wait_until(_no_library_threads, 10, "warm-up threads gone")
    fds, threads = _fds(), _threads()
    start = time.monotonic()
    for _ in range(CYCLES):
        _cycle(backend_url, group)
    took = time.monotonic() - start
    print(f"MEASURED leaks {backend_url.split(':')[0]}: {CYCLES} cycles: {took:.1f}s")
    # Threads end a moment after stop() returns (they were told to; a
    # client library's reader may need one more timeout to notice).
    support.wait_until(
        lambda: _settled(fds, threads),
        10,
        f"fds {_fds()} (baseline {fds}), threads {_threads()} (baseline "
        f"{threads}): {[t.name for t in threading.enumerate()]}",
    )
