"""Failure detection: how long until an observer sees a member down.

Each member runs in its own process (``sgbench.worker`` with one member),
as in production. Half of them are killed with SIGKILL (a crash: the backend
must expire them), half get SIGTERM (a graceful stop: ``API.stop`` leaves
the group). Events are spread over time so that they fall at every phase of
the heartbeat. An observer thread polls ``is_up`` every few milliseconds;
the latency is from the signal to the first ``False``, reported as a
multiple of ``service_down_time``.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import servicegroup
from sgbench import backends, procs

#: Timing of the runs: short, so a run takes seconds, with Nova's ratio of
#: down time to report interval kept above 2.5.
REPORT_INTERVAL = 1.0
SERVICE_DOWN_TIME = 3.0
REFRESH_INTERVAL = 1.0  # the library's default
POLL_SECONDS = 0.005


class _Poller(threading.Thread):
    """Polls is_up and records when each watched member first looks down."""

    def __init__(self, api: servicegroup.API, group: str, ids: list[str]) -> None:
        super().__init__(daemon=True)
        self._api = api
        self._group = group
        self._ids = ids
        self.down_at: dict[str, float] = {}
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            now = time.monotonic()
            for member in self._ids:
                if member not in self.down_at and not self._api.is_up(
                    member, self._group
                ):
                    self.down_at[member] = now
            self._done.wait(POLL_SECONDS)

    def stop(self) -> None:
        self._done.set()
        self.join(5.0)


def run_round(
    backend: backends.Backend, members: int, rng: random.Random
) -> dict[str, list[float]]:
    """One batch of members: half crash, half leave. Seconds per event."""
    group = f"failure-{int(time.time() * 1000)}"
    ids = [f"member{i:03d}" for i in range(members)]
    workers = [
        procs.Worker(
            {
                "url": backend.url,
                "group": group,
                "members": [member],
                "report_interval": REPORT_INTERVAL,
                "service_down_time": SERVICE_DOWN_TIME,
                "join_timeout": 30.0,
                "settle": 0.0,
            }
        )
        for member in ids
    ]
    api = servicegroup.API(
        conf=backends.make_conf(
            backend.url,
            report_interval=REPORT_INTERVAL,
            service_down_time=SERVICE_DOWN_TIME,
            refresh_interval=REFRESH_INTERVAL,
        )
    )
    poller: _Poller | None = None
    out: dict[str, list[float]] = {"kill": [], "leave": [], "missed": []}
    try:
        if not procs.wait_ready(workers, 60.0):
            raise RuntimeError("member processes did not start")
        api.get_all(group)
        for worker in workers:
            worker.send("go")
        deadline = time.monotonic() + 30.0
        while len(api.get_all(group)) < members:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"only {len(api.get_all(group))}/{members} members came up"
                )
            time.sleep(0.05)
        # Let every member beat a few times, at its own phase.
        time.sleep(2 * REPORT_INTERVAL)
        poller = _Poller(api, group, ids)
        poller.start()
        order = list(range(members))
        rng.shuffle(order)
        events: dict[str, tuple[str, float]] = {}
        for position, index in enumerate(order):
            kind = "kill" if position % 2 == 0 else "leave"
            time.sleep(rng.uniform(0.05, 0.35))
            events[ids[index]] = (kind, time.monotonic())
            if kind == "kill":
                workers[index].kill()
            else:
                workers[index].terminate()
        deadline = time.monotonic() + 4 * SERVICE_DOWN_TIME + 5.0
        while len(poller.down_at) < members and time.monotonic() < deadline:
            time.sleep(0.05)
        poller.stop()
        for member, (kind, at) in events.items():
            if member in poller.down_at:
                out[kind].append(poller.down_at[member] - at)
            else:
                out["missed"].append(float("nan"))
        return out
    finally:
        if poller is not None:
            poller.stop()
        backends.stop_api(api)
        for worker in workers:
            worker.kill()
            worker.close(1.0)


def run(backend: backends.Backend, members: int, rounds: int) -> dict[str, Any]:
    rng = random.Random(7)
    kills: list[float] = []
    leaves: list[float] = []
    missed = 0
    for _ in range(rounds):
        got = run_round(backend, members, rng)
        kills += got["kill"]
        leaves += got["leave"]
        missed += len(got["missed"])
    return {
        "backend": backend.name,
        "report_interval": REPORT_INTERVAL,
        "service_down_time": SERVICE_DOWN_TIME,
        "refresh_interval": REFRESH_INTERVAL,
        "kill": kills,
        "leave": leaves,
        "missed": missed,
    }
