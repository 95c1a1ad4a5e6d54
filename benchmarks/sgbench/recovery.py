"""Recovery: from a backend crash and restart to a whole membership again.

N members in a worker process heartbeat with short timing. The server is
SIGKILLed and started again, empty (its data wiped: what memcached and a
non-persistent Redis always do, and the worst case for ZooKeeper and etcd)
or, for ZooKeeper and etcd, with its data kept.
Every member must notice it is missing and join again on its own; the
observer must reconnect. Measured from the moment the server answers again
until an observer's fresh (not stale) view lists all N, and the lowest count
that view showed on the way (a backend that comes back empty is seen empty
for a moment: that dip is real, not an artefact).
"""

from __future__ import annotations

import shutil
import time
from typing import Any

import servicegroup
from sgbench import backends, procs

REPORT_INTERVAL = 1.0
SERVICE_DOWN_TIME = 3.0
REFRESH_INTERVAL = 1.0
#: How long a recovery may take before it is reported as not recovered.
RECOVERY_TIMEOUT = 90.0


def run(backend: backends.Backend, members: int, wipe: bool = True) -> dict[str, Any]:
    """One crash and restart; ``wipe``: the server comes back empty."""
    group = f"recovery-{int(time.time())}"
    ids = [f"host{i:05d}" for i in range(members)]
    workers = procs.spawn(
        backend.url,
        group,
        ids,
        1000,
        report_interval=REPORT_INTERVAL,
        service_down_time=SERVICE_DOWN_TIME,
        join_timeout=60.0,
        settle=0.0,
    )
    api = servicegroup.API(
        conf=backends.make_conf(
            backend.url,
            report_interval=REPORT_INTERVAL,
            service_down_time=SERVICE_DOWN_TIME,
            refresh_interval=REFRESH_INTERVAL,
        )
    )
    result: dict[str, Any] = {
        "backend": backend.name,
        "n": members,
        "report_interval": REPORT_INTERVAL,
        "service_down_time": SERVICE_DOWN_TIME,
        "refresh_interval": REFRESH_INTERVAL,
        "wiped": wipe,
    }
    try:
        if not procs.wait_ready(workers, 60.0):
            raise RuntimeError("workers did not start")
        api.get_all(group)
        for worker in workers:
            worker.send("go")
        deadline = time.monotonic() + 60.0
        while len(api.get_all(group)) < members:
            if time.monotonic() > deadline:
                raise RuntimeError("members did not all join before the restart")
            time.sleep(0.05)
        time.sleep(2 * REPORT_INTERVAL)
        membership = api.driver._membership  # type: ignore[attr-defined]
        killed = time.monotonic()
        backend.server.kill()
        if wipe:
            # What a replaced node or a lost disk looks like; Redis without
            # persistence and memcached come back empty whatever we do.
            shutil.rmtree(backend.server.data_dir, ignore_errors=True)
        backend.server.start()
        answering = time.monotonic()
        result["restart_seconds"] = answering - killed
        lowest = members
        fresh_at: float | None = None
        deadline = answering + RECOVERY_TIMEOUT
        while time.monotonic() < deadline:
            view = membership.view(group)
            if view.fetched_at is not None and view.fetched_at > answering:
                if fresh_at is None:
                    fresh_at = view.fetched_at
                # Members the observer only holds up for a grace period
                # after the restart (stale) have not registered again yet.
                registered = sum(
                    1 for m in view.members.values() if m.is_up and not m.stale
                )
                lowest = min(lowest, registered)
                if registered == members:
                    result["recovered_seconds"] = view.fetched_at - answering
                    break
            time.sleep(0.02)
        else:
            view = membership.view(group)
            result["recovered"] = sum(
                1 for m in view.members.values() if m.is_up and not m.stale
            )
        if fresh_at is not None:
            result["observer_back_seconds"] = fresh_at - answering
        result["lowest_seen"] = lowest
        return result
    finally:
        backends.stop_api(api)
        procs.close_all(workers, 15.0)
