"""Self-healing membership against real servers and real process faults.

Every fault here is real: member processes are SIGSTOPped and SIGKILLed,
servers are killed, restarted empty, or cut off behind a TCP proxy. The
bounds asserted are the promises of ``doc/source/failure-model.rst`` for
the FAST timing of :mod:`tests.support` (``report_interval`` 0.5 s,
``service_down_time`` 3 s, refresh 0.2 s), plus :data:`SLACK` for a loaded
2-core CI machine. Measured times are printed (``pytest -s``) as
``MEASURED name: seconds``; ``doc/source/failure-model.rst`` quotes them.

Per-backend faults: backend down at start (1), member paused past
``service_down_time`` (2), backend restarted empty (3), same member id
restarted after a crash (4), graceful stop (5), observer cut off from the
backend (6). HA topologies are in ``test_ha.py``, leaks in ``test_leaks.py``.
Every fault runs on every backend it applies to in the default run.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Iterator

import pytest

import servicegroup
from servicegroup.testing import servers
from tests import support
from tests.functional import conftest

FAST = support.FAST
REPORT = FAST["report_interval"]
DOWN = FAST["service_down_time"]
REFRESH = FAST["servicegroup_refresh_interval"]
#: Slack on top of every promised bound, for a loaded 2-core machine (a
#: member process may wait that long for a CPU, a JVM for its GC).
SLACK = 2.0
#: Time for kazoo clients to be rebuilt after a wiped ZooKeeper (see test).
ZOOKEEPER_CLIENT_REBUILD = 1.5
#: memcached and file keep time in whole seconds: an expiry or an mtime
#: can be up to one second late.
WHOLE_SECOND = 1.0

SERVER_BACKENDS = ["redis", "memcached", "zookeeper", "etcd"]
ALL_BACKENDS = [*SERVER_BACKENDS, "file"]


@pytest.fixture
def shared_url(
    request: pytest.FixtureRequest, server_pool: conftest._ServerPool
) -> Iterator[Callable[[str], str]]:
    """URL of a shared (not broken by the test) backend of each kind."""
    dirs: list[tempfile.TemporaryDirectory[str]] = []

    def url(backend: str) -> str:
        if backend == "file":
            tmp = tempfile.TemporaryDirectory(prefix="sg-heal-")
            dirs.append(tmp)
            return f"file://{tmp.name}"
        return server_pool.get(conftest.SERVER_KINDS[backend]).url

    yield url
    for tmp in dirs:
        tmp.cleanup()


@pytest.fixture
def observers() -> Iterator[Callable[..., servicegroup.API]]:
    """Factory of observer APIs in this process, stopped at teardown."""
    made: list[servicegroup.API] = []

    def make(url: str, **overrides: float | str) -> servicegroup.API:
        api = support.make_api(url, **overrides)
        made.append(api)
        return api

    yield make
    for api in made:
        api.stop()


@pytest.fixture
def members() -> Iterator[Callable[..., support.MemberProcess]]:
    """Factory of member processes, killed at teardown."""
    made: list[support.MemberProcess] = []

    def make(
        url: str, group: str, ids: list[str], **overrides: float | str
    ) -> support.MemberProcess:
        proc = support.MemberProcess(url, group, ids, **overrides)
        made.append(proc)
        return proc

    yield make
    for proc in made:
        proc.kill()


def _unstarted_server(kind: str) -> servers.BackendServer:
    conftest.require(kind)
    return conftest._FACTORIES[kind]()


# -- 1. backend down at start -------------------------------------------------


@pytest.mark.parametrize("backend", SERVER_BACKENDS)
def test_member_started_while_backend_is_down(backend, group, members, observers):
    """join returns at once; the member is up soon after the backend starts."""
    server = _unstarted_server(conftest.SERVER_KINDS[backend])
    try:
        proc = members(server.url, group, ["m1", "m2"])
        # The joins returned although nothing listens on the port yet.
        assert proc.join_seconds < 0.5, proc.join_seconds
        observer = observers(server.url)
        assert not observer.is_up("m1", group)  # first view: none, stale
        # Let the member fail for a while: its backoff reaches the cap.
        time.sleep(2 * REPORT + 1.0)
        assert proc.proc.poll() is None, "the member process must keep running"
        server.start()
        took = support.timed_wait(
            lambda: support.all_up(observer, group, ["m1", "m2"]),
            REPORT + 1.0 + SLACK,
            "members up after the backend started",
        )
        support.measured(f"{backend} start-while-down: up after backend ready", took)
        assert not any(m.stale for m in observer.get_members(group))
    finally:
        server.close()


# -- 2. eviction after a pause --------------------------------------------------


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_paused_member_is_down_then_back(
    backend, group, shared_url, members, observers
):
    """SIGSTOP past service_down_time: down while paused, back on resume."""
    url = shared_url(backend)
    observer = observers(url)
    proc = members(url, group, ["m1"])
    observer.join("m2", group)  # a bystander that must stay up
    support.wait_until(
        lambda: support.all_up(observer, group, ["m1", "m2"]), 10, "members up"
    )
    proc.pause()
    paused_at = time.monotonic()
    took = support.timed_wait(
        lambda: not observer.is_up("m1", group),
        DOWN + REPORT + REFRESH + WHOLE_SECOND + SLACK,
        "the paused member to be seen down",
    )
    support.measured(f"{backend} eviction: paused member seen down", took)
    # Stay away well past service_down_time: the backend has dropped the
    # member (pruned, session expired, lease revoked) by now.
    time.sleep(max(0.0, DOWN + 2 * REPORT - (time.monotonic() - paused_at)))
    assert not observer.is_up("m1", group)
    assert observer.is_up("m2", group)
    proc.resume()
    took = support.timed_wait(
        lambda: observer.is_up("m1", group),
        REPORT + REFRESH + SLACK,
        "the resumed member to be up again",
    )
    support.measured(f"{backend} eviction: resumed member up again", took)
    assert observer.is_up("m2", group)


# -- 3. backend restarted with data loss -----------------------------------------


@pytest.mark.parametrize("backend", SERVER_BACKENDS)
def test_backend_restarted_empty(backend, group, private_server, members, observers):
    """Redis without persistence, memcached, and wiped ZooKeeper / etcd."""
    server = private_server(conftest.SERVER_KINDS[backend])
    ids = ["m1", "m2", "m3", "m4"]
    procs = [members(server.url, group, ids[:2]), members(server.url, group, ids[2:])]
    observer = observers(server.url)
    support.wait_until(lambda: support.all_up(observer, group, ids), 10, "members up")
    lost_at = time.time()
    start = time.monotonic()
    server.restart(wipe=True)
    answered = time.monotonic()
    # A wiped ZooKeeper refuses the old sessions: members and the observer
    # rebuild their kazoo clients after RECONNECT_AFTER_FAILURES fast
    # retries, a constant (about 1 s here) that does not shrink with the
    # short test report_interval; with Nova's 10 s it is noise.
    rebuild = ZOOKEEPER_CLIENT_REBUILD if backend == "zookeeper" else 0.0
    took = support.timed_wait(
        lambda: support.whole_since(observer, group, ids, lost_at),
        2 * REPORT + REFRESH + SLACK + rebuild,
        "every member up again after the backend came back empty",
    )
    support.measured(
        f"{backend} restart with data loss: server down and back", answered - start
    )
    support.measured(
        f"{backend} restart with data loss: all members back after it answered", took
    )
    # Healed by the same processes: nothing was restarted.
    pids = {m.capabilities.get("pid") for m in observer.get_members(group)}
    assert pids == {p.pid for p in procs}
    assert all(p.proc.poll() is None for p in procs)


# -- 4. same member id restarted after a crash -----------------------------------


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_restarted_member_replaces_its_stale_entry(
    backend, group, shared_url, members, observers
):
    """Crash, restart at once with the same id: no wait for the expiry.

    service_down_time is 10 s here so that waiting for the stale entry to
    expire could not pass for a takeover.
    """
    url = shared_url(backend)
    slow_expiry = {"service_down_time": 8.0}
    observer = observers(url, **slow_expiry)
    first = members(url, group, ["m1"], **slow_expiry)

    def pid_of_m1() -> object:
        for m in observer.get_members(group):
            if m.id == "m1" and m.is_up:
                return m.capabilities.get("pid")
        return None

    support.wait_until(lambda: pid_of_m1() == first.pid, 10, "first process up")
    first.kill()
    start = time.monotonic()
    second = members(url, group, ["m1"], **slow_expiry)
    took = support.timed_wait(
        lambda: pid_of_m1() == second.pid,
        REPORT + REFRESH + SLACK,
        "the restarted process to own m1",
    )
    total = time.monotonic() - start
    support.measured(
        f"{backend} same id restarted: new process up (incl. its start)", total
    )
    assert total < slow_expiry["service_down_time"], total
    del took
    # The takeover is not undone when the crashed process's entry (its
    # session, lease, heartbeat key or file) would have expired.
    expired_at = start + slow_expiry["service_down_time"] + WHOLE_SECOND + REFRESH
    while time.monotonic() < expired_at + REFRESH:
        assert pid_of_m1() == second.pid, "the old entry's expiry took m1 down"
        time.sleep(REFRESH / 2)


# -- 5. graceful stop -----------------------------------------------------------


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_stopped_member_process_is_down_within_one_refresh(
    backend, group, shared_url, members, observers
):
    url = shared_url(backend)
    observer = observers(url)
    proc = members(url, group, ["m1", "m2"])
    support.wait_until(
        lambda: support.all_up(observer, group, ["m1", "m2"]), 10, "members up"
    )
    proc.terminate()  # the child calls api.stop(), which leaves
    took = support.timed_wait(
        lambda: support.none_up(observer, group, ["m1", "m2"]),
        REFRESH + SLACK,
        "stopped members down",
    )
    support.measured(f"{backend} graceful stop: down after the process exited", took)


# -- 6. fail static: the observer loses the backend ------------------------------


def _proxied(url: str, proxy: support.TcpProxy) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://127.0.0.1:{proxy.port}"


@pytest.mark.parametrize("backend", SERVER_BACKENDS)
def test_observer_cut_off_fails_static(
    backend, group, server_pool, members, observers, caplog
):
    """Stale, not empty: the observer keeps its last view and heals itself."""
    server = server_pool.get(conftest.SERVER_KINDS[backend])
    proxy = support.TcpProxy(server.port)
    try:
        observer = observers(_proxied(server.url, proxy))
        ids = ["m1", "m2"]
        members(server.url, group, ids)
        support.wait_until(lambda: support.all_up(observer, group, ids), 10, "up")
        caplog.set_level(logging.WARNING, logger="servicegroup.membership")
        caplog.clear()
        proxy.cut(blackhole=True)
        cut_at = time.monotonic()
        # Longer than service_down_time, and every answer stays "up".
        while time.monotonic() - cut_at < DOWN + 2.0:
            assert support.all_up(observer, group, ids), "fail static broken"
            time.sleep(0.05)
        view = observer.get_members(group)
        assert view and all(m.stale and m.is_up for m in view), view
        warnings = [
            r for r in caplog.records if "Cannot refresh group" in r.getMessage()
        ]
        assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
        proxy.restore()
        took = support.timed_wait(
            lambda: (
                not any(m.stale for m in observer.get_members(group))
                and support.all_up(observer, group, ids)
            ),
            FAST["servicegroup_backend_timeout"] + REPORT + SLACK,
            "the observer to recover by itself",
        )
        support.measured(
            f"{backend} fail static: observer fresh again after restore", took
        )
    finally:
        proxy.close()


def test_zookeeper_member_cut_off_keeps_its_session(
    group, server_pool, observers, caplog
) -> None:
    """A member that fails round after round (so its client gets reset) but
    is back before its session times out is never seen down: the reset
    keeps the ZooKeeper session, and with it the member's node."""
    server = server_pool.get("zookeeper")
    proxy = support.TcpProxy(server.port)
    down_time = 20.0  # the session timeout: far longer than the cut
    try:
        member = observers(_proxied(server.url, proxy), service_down_time=down_time)
        observer = observers(server.url, service_down_time=down_time)
        member.join("m1", group)
        support.wait_until(lambda: observer.is_up("m1", group), 10, "m1 up")
        created_by = _node_creator(server, group)
        changes: list[servicegroup.MembershipChange] = []
        observer.watch(group, changes.append)
        caplog.set_level(logging.DEBUG, logger="servicegroup.heartbeat")
        proxy.cut(blackhole=False)  # refused at once: rounds fail fast
        support.wait_until(
            lambda: "attempt 6" in caplog.text,
            down_time / 2,
            "the member failing past a reset",
        )
        proxy.restore()
        support.wait_until(
            lambda: "is back in group" in caplog.text, down_time / 2, "m1 back"
        )
        assert observer.is_up("m1", group)
        assert not any("m1" in change.left for change in changes), changes
        assert _node_creator(server, group) == created_by
    finally:
        proxy.close()


def _node_creator(server: servers.BackendServer, group: str) -> int:
    """The transaction that created the group's one member node."""
    kazoo_client = pytest.importorskip("kazoo.client")
    zk = kazoo_client.KazooClient(hosts=server.address)
    zk.start(timeout=10)
    try:
        [child] = zk.get_children(f"/tooz/{group}")
        return int(zk.get(f"/tooz/{group}/{child}")[1].czxid)
    finally:
        zk.stop()
        zk.close()
