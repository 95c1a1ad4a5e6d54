"""What an observer costs: refresh latency and idle traffic.

The members are a synthetic population, written straight into the layout
the driver uses and kept alive in bulk, so that 10,000 members cost one
connection and no member threads and only the observer is measured:

* ZooKeeper: one kazoo session owns N ephemeral nodes
  (``/tooz/<group>/<member>``, each holding a tooz-serialized envelope);
* Redis: the group hash and N heartbeat keys, written and kept alive by
  pipelines (the heartbeat key holds the time of the beat, as ours do);
* etcd: N keys under the group's prefix, all attached to one lease that one
  keep-alive renews.

Every number is set next to the same run's raw tooz baseline,
``get_members_with_capabilities`` on the same group (on ZooKeeper, what the
observer's refresh did before it read through watches: one
``getChildren``, then one ``getData`` per member).

* ``refresh``: one call of the observer's read (what the membership view
  calls every ``servicegroup_refresh_interval``) with nothing changed, and
  the same plus building the view from it (``view refresh``); the first,
  full read of a group (``cold``) is shown apart. Operations per refresh
  are counted by the server.
* ``idle`` (ZooKeeper): an observer API with the default refresh interval
  (1 s) watching the group: packets per second the server receives from it,
  net of the population's own (measured just before, over as long). Also
  measured with the population rewriting every record once per
  ``report_interval`` (10 s), as joined members do with their heartbeat:
  then each rewrite is a change, and costs the observer one read. Redis and
  etcd answer a whole group in one request, whatever changed.
"""

from __future__ import annotations

import dataclasses
import statistics
import threading
import time
from collections.abc import Iterable
from typing import Any

import servicegroup
from servicegroup import member as sg_member
from servicegroup.testing import servers
from sgbench import backends

#: Issue 14's targets.
IDLE_TARGET_PACKETS_PER_SECOND = 50.0
IDLE_TARGET_N = 2000
REFRESH_TARGET_MS = 100.0
REFRESH_TARGET_N = 10000
#: As joined members do, in the "beating" idle run.
REPORT_INTERVAL = 10.0


@dataclasses.dataclass(frozen=True)
class Settings:
    latency_sizes: tuple[int, ...]
    idle_n: int
    window: float  # seconds of each idle measurement
    beating: bool  # also measure with the records rewritten as members do
    refreshes: int  # timed steady-state refreshes per size
    baseline_reads: int  # timed raw tooz reads per size
    baseline_seconds: float  # ... and the time they may take at most
    report_interval: float


FULL = Settings((1000, 10000), IDLE_TARGET_N, 10.0, True, 50, 5, 30.0, REPORT_INTERVAL)
QUICK = Settings((50,), 100, 0.5, False, 5, 2, 2.0, REPORT_INTERVAL)


class Population:
    """N members of one group, owned by one kazoo session, in tooz's layout."""

    def __init__(self, server: servers.BackendServer, group: str, n: int) -> None:
        from kazoo.client import KazooClient
        from tooz import utils as tooz_utils

        self._dumps = tooz_utils.dumps
        self.group = group
        self.ids = [f"host{i:05d}" for i in range(n)]
        base = f"/tooz/{group}"
        self._paths = [f"{base}/{_tooz_id(m, group).decode()}" for m in self.ids]
        self.client = KazooClient(hosts=server.address, timeout=60.0)
        self.client.start(timeout=30)
        self.client.ensure_path(base)
        self._write(
            lambda path, data: self.client.create_async(path, data, ephemeral=True)
        )
        self._beating = threading.Event()
        self._beater: threading.Thread | None = None

    def _record(self, member_id: str) -> bytes:
        data: bytes = self._dumps(_envelope(member_id))
        return data

    def _write(self, call: Any, indexes: Iterable[int] | None = None) -> None:
        if indexes is None:
            indexes = range(len(self.ids))
        # Pipelined, in batches, so that kazoo's queue stays short.
        batch: list[Any] = []
        for i in indexes:
            batch.append(call(self._paths[i], self._record(self.ids[i])))
            if len(batch) >= 1000:
                for result in batch:
                    result.get(timeout=60)
                batch = []
        for result in batch:
            result.get(timeout=60)

    def start_beating(self, report_interval: float) -> None:
        """Rewrite every record once per ``report_interval``, spread evenly
        (what joined members' heartbeats do)."""
        self._beating.set()
        n = len(self.ids)
        tick = 0.1
        per_tick = n * tick / report_interval

        def beat() -> None:
            owed = 0.0
            i = 0
            due = time.monotonic()
            while self._beating.is_set():
                due += tick
                owed += per_tick
                count = int(owed)
                owed -= count
                if count:
                    self._write(
                        lambda path, data: self.client.set_async(path, data),
                        [(i + j) % n for j in range(count)],
                    )
                    i = (i + count) % n
                time.sleep(max(0.0, due - time.monotonic()))

        self._beater = threading.Thread(target=beat, name="bench-beat", daemon=True)
        self._beater.start()

    def stop_beating(self) -> None:
        self._beating.clear()
        if self._beater is not None:
            self._beater.join(30)
            self._beater = None

    def close(self) -> None:
        self.stop_beating()
        self.client.stop()
        self.client.close()


def _tooz_id(member_id: str, group: str) -> bytes:
    from servicegroup.drivers.tooz import urls

    return urls.tooz_member_id(member_id, group)


def _envelope(member_id: str) -> object:
    return sg_member.envelope({"version": "1.0", "host": member_id}, time.time())


class _KeptAlive:
    """Renews a synthetic population every few seconds until closed."""

    def __init__(self, renew: Any, every: float) -> None:
        self._done = threading.Event()

        def loop() -> None:
            while not self._done.wait(every):
                renew()

        self._thread = threading.Thread(target=loop, name="bench-keep", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._done.set()
        self._thread.join(30)


class RedisPopulation:
    """N members in the driver's Redis layout: the group hash, one
    heartbeat key each (holding the beat's time), renewed by pipelines."""

    TTL_MS = 60_000

    def __init__(self, server: servers.BackendServer, group: str, n: int) -> None:
        import redis

        coord = _tooz_coordinator(server.url)
        try:
            coord.create_group(group.encode()).get(timeout=60)
            self._group_key = coord._encode_group_id(group.encode())
            members = [
                coord._encode_member_id(_tooz_id(f"host{i:05d}", group))
                for i in range(n)
            ]
            self._beat_keys = [coord._encode_beat_id(m) for m in members]
            dumps = coord._dumps
        finally:
            coord.stop()
        assert isinstance(server, servers.RedisServer)
        self.client = redis.Redis(host=server.host, port=server.port)
        pipe = self.client.pipeline(transaction=False)
        for i, member in enumerate(members):
            pipe.hset(self._group_key, member, dumps(_envelope(f"host{i:05d}")))
        pipe.execute()
        self._renew()
        self._keeper = _KeptAlive(self._renew, 5.0)

    def _renew(self) -> None:
        pipe = self.client.pipeline(transaction=False)
        beat = repr(time.time())
        for key in self._beat_keys:
            pipe.psetex(key, self.TTL_MS, beat)
        pipe.execute()

    def close(self) -> None:
        self._keeper.close()
        self.client.close()


class EtcdPopulation:
    """N members in tooz's etcd layout, all on one lease kept alive."""

    def __init__(self, server: servers.BackendServer, group: str, n: int) -> None:
        import base64

        from tooz import utils as tooz_utils

        coord = _tooz_coordinator(server.url)
        self._coord = coord
        coord.create_group(group.encode()).get(timeout=60)
        prefix = coord._prefix_group(group.encode())
        client = coord.client
        self._lease = client.lease(60)
        put = client.get_url("/kv/put")

        def b64(raw: bytes) -> str:
            return base64.b64encode(raw).decode()

        for i in range(n):
            member = f"host{i:05d}"
            client.post(
                put,
                json={
                    "key": b64(prefix + _tooz_id(member, group)),
                    "value": b64(tooz_utils.dumps(_envelope(member))),
                    "lease": self._lease.id,
                },
            )
        self._keeper = _KeptAlive(self._lease.refresh, 5.0)

    def close(self) -> None:
        self._keeper.close()
        self._lease.revoke()
        self._coord.stop()


def population(
    backend: backends.Backend, group: str, n: int
) -> Population | RedisPopulation | EtcdPopulation:
    """The synthetic population of ``backend``'s kind."""
    kinds = {"zookeeper": Population, "redis": RedisPopulation, "etcd": EtcdPopulation}
    return kinds[backend.name](backend.server, group, n)


def _packets(backend: backends.Backend) -> float:
    return backend.counters()["ops"]


def _timed(call: Any, count: int, seconds: float) -> list[float]:
    latencies: list[float] = []
    started = time.monotonic()
    while len(latencies) < count and time.monotonic() - started < seconds:
        t = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - t)
    return latencies


def _ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50_ms": statistics.median(ordered) * 1000,
        "p95_ms": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        * 1000,
        "samples": len(ordered),
    }


def _observer_api(url: str, refresh_interval: float) -> servicegroup.API:
    return servicegroup.API(
        conf=backends.make_conf(
            url,
            report_interval=REPORT_INTERVAL,
            service_down_time=60.0,
            refresh_interval=refresh_interval,
            backend_timeout=60.0,
        )
    )


def _tooz_coordinator(url: str) -> Any:
    from tooz import coordination

    coord = coordination.get_coordinator(url, b"bench-raw-tooz", timeout=60)
    coord.start()
    return coord


def latency(backend: backends.Backend, n: int, settings: Settings) -> dict[str, Any]:
    """Refresh latency and packets per refresh at ``n`` members."""
    group = f"observer{n}-{int(time.time())}"
    members = population(backend, group, n)
    row: dict[str, Any] = {"n": n}
    # No background refresh: only the timed reads go out.
    api = _observer_api(backend.url, 3600.0)
    coord = _tooz_coordinator(backend.url)
    try:
        fetch = api.driver._observer.fetch  # type: ignore[attr-defined]
        membership = api.driver._membership  # type: ignore[attr-defined]
        api.get_groups()  # connected: the cold read below is only the read
        t = time.perf_counter()
        got = fetch(group)
        row["cold_ms"] = (time.perf_counter() - t) * 1000
        if len(got) != n:
            row["error"] = f"the observer read {len(got)} of {n} members"
            return row
        api.get_all(group)  # the view watches the group from now on

        before = _packets(backend)
        lat = _timed(lambda: fetch(group), settings.refreshes, 30.0)
        row["packets_per_refresh"] = (_packets(backend) - before) / len(lat)
        row["refresh"] = _ms(lat)
        view = _timed(
            lambda: membership._refresh_group(group), settings.refreshes, 30.0
        )
        row["view_refresh"] = _ms(view)

        raw_read = coord.get_members_with_capabilities
        before = _packets(backend)
        raw = _timed(
            lambda: raw_read(group.encode()).get(timeout=60),
            settings.baseline_reads,
            settings.baseline_seconds,
        )
        row["tooz_packets_per_refresh"] = (_packets(backend) - before) / len(raw)
        row["tooz_refresh"] = _ms(raw)
        row["ratio"] = row["refresh"]["p50_ms"] / row["tooz_refresh"]["p50_ms"]
        return row
    finally:
        coord.stop()
        backends.stop_api(api)
        members.close()


class _Ours:
    """An observer API refreshing the group every second, as by default."""

    def __init__(self, url: str, group: str) -> None:
        self._url = url
        self._group = group
        self._api: servicegroup.API | None = None

    def start(self) -> None:
        self._api = _observer_api(self._url, 1.0)
        self._api.get_all(self._group)  # watched from now on

    def stop(self) -> None:
        if self._api is not None:
            backends.stop_api(self._api)
            self._api = None


class _Tooz:
    """The baseline: tooz's whole-group read once a second."""

    def __init__(self, url: str, group: str) -> None:
        self._url = url
        self._group = group.encode()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._coord: Any = None

    def start(self) -> None:
        self._coord = _tooz_coordinator(self._url)
        self._done.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._done.wait(1.0):
            self._coord.get_members_with_capabilities(self._group).get(timeout=60)

    def stop(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join(60)
            self._thread = None
        if self._coord is not None:
            self._coord.stop()
            self._coord = None


def _net_rate(backend: backends.Backend, window: float, reader: _Ours | _Tooz) -> float:
    """Packets/s the server receives while ``reader`` runs, net of its rate
    over the same window just before."""
    before = _packets(backend)
    time.sleep(window)
    background = (_packets(backend) - before) / window
    reader.start()
    try:
        time.sleep(min(2.0, window))  # the first, full read is not idle
        before = _packets(backend)
        t0 = time.monotonic()
        time.sleep(window)
        rate = (_packets(backend) - before) / (time.monotonic() - t0)
    finally:
        reader.stop()
    return max(0.0, rate - background)


def idle(backend: backends.Backend, settings: Settings) -> dict[str, Any]:
    """Packets/s from one idle observer of ``settings.idle_n`` members."""
    n = settings.idle_n
    group = f"idle{n}-{int(time.time())}"
    population = Population(backend.server, group, n)
    result: dict[str, Any] = {"n": n, "window_s": settings.window}
    try:
        for beating in (False, True) if settings.beating else (False,):
            key = "beating" if beating else "idle"
            if beating:
                population.start_beating(settings.report_interval)
                result["report_interval"] = settings.report_interval
            ours = _Ours(backend.url, group)
            result[key] = _net_rate(backend, settings.window, ours)
            tooz = _Tooz(backend.url, group)
            result[f"tooz_{key}"] = _net_rate(backend, settings.window, tooz)
        return result
    finally:
        population.close()


#: Backends whose observer cost is measured with a synthetic population.
BACKENDS = ("zookeeper", "redis", "etcd")


def run(backend: backends.Backend, quick: bool) -> dict[str, Any]:
    """Every measurement of this module on one server (see :data:`BACKENDS`)."""
    settings = QUICK if quick else FULL
    result: dict[str, Any] = {
        "latency": [latency(backend, n, settings) for n in settings.latency_sizes]
    }
    if backend.name == "zookeeper":
        result["idle"] = idle(backend, settings)
    return result


def targets(name: str, result: dict[str, Any]) -> list[str]:
    """MET/MISSED lines for issue 14's targets (at their sizes only)."""
    lines = []
    idle_row = result.get("idle") or {}
    if idle_row.get("n") == IDLE_TARGET_N and "idle" in idle_row:
        rate = idle_row["idle"]
        verdict = "MET" if rate <= IDLE_TARGET_PACKETS_PER_SECOND else "MISSED"
        lines.append(
            f"{verdict}: idle {name} observer of {IDLE_TARGET_N:,} members: "
            f"{rate:.1f} packets/s to the server (target at most "
            f"{IDLE_TARGET_PACKETS_PER_SECOND:g}; tooz's read each refresh: "
            f"{idle_row['tooz_idle']:,.0f})"
        )
    for row in result.get("latency", []):
        if row["n"] == REFRESH_TARGET_N and "refresh" in row:
            ms = row["refresh"]["p50_ms"]
            verdict = "MET" if ms <= REFRESH_TARGET_MS else "MISSED"
            lines.append(
                f"{verdict}: {name} refresh at {REFRESH_TARGET_N:,} members: "
                f"{ms:.1f} ms p50 (target at most {REFRESH_TARGET_MS:g}; tooz's "
                f"read: {row['tooz_refresh']['p50_ms']:,.0f} ms)"
            )
    return lines
