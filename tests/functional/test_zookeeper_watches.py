"""ZooKeeper observers read only what changed, and hear of it at once.

The members here are written straight into tooz's layout
(``/tooz/<group>/<member>``, ephemeral, tooz-serialized envelopes) by one
kazoo session, so a few hundred cost one connection. Costs are counted by
the server itself (``mntr`` ``zk_packets_received``); every wait polls with
a deadline, none asserts how long something took.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

import servicegroup
from servicegroup import member as sg_member
from servicegroup.testing import servers
from tests import support
from tests.functional import conftest

kazoo_client = pytest.importorskip("kazoo.client")
tooz_coordination = pytest.importorskip("tooz.coordination")
tooz_utils = pytest.importorskip("tooz.utils")

#: Long enough that only a watch can bring a change to the view in time.
NEVER = 3600.0
#: Deadline of every wait for a change to show.
DEADLINE = 10.0


class Population:
    """Members of one group owned by one kazoo session, in tooz's layout."""

    def __init__(self, server: servers.BackendServer, group: str) -> None:
        self.group = group
        self.client = kazoo_client.KazooClient(hosts=server.address)
        self.client.start(timeout=10)
        self.client.ensure_path(f"/tooz/{group}")

    def _path(self, member_id: str) -> str:
        from servicegroup.drivers.tooz import urls

        node = urls.tooz_member_id(member_id, self.group).decode()
        return f"/tooz/{self.group}/{node}"

    @staticmethod
    def _record(member_id: str, version: int = 1) -> bytes:
        caps = {"id": member_id, "version": version}
        return tooz_utils.dumps(sg_member.envelope(caps, time.time()))

    def join(self, *member_ids: str) -> None:
        results = [
            self.client.create_async(self._path(m), self._record(m), ephemeral=True)
            for m in member_ids
        ]
        for result in results:
            result.get(timeout=10)

    def rewrite(self, member_id: str, version: int) -> None:
        self.client.set(self._path(member_id), self._record(member_id, version))

    def leave(self, member_id: str) -> None:
        self.client.delete(self._path(member_id))

    def close(self) -> None:
        self.client.stop()
        self.client.close()


@pytest.fixture
def zookeeper(server_pool: conftest._ServerPool) -> servers.ZooKeeperServer:
    server = server_pool.get("zookeeper")
    assert isinstance(server, servers.ZooKeeperServer)
    return server


@pytest.fixture
def population(zookeeper, group) -> Iterator[Population]:
    made = Population(zookeeper, group)
    yield made
    made.close()


@pytest.fixture
def observer(zookeeper) -> Iterator[servicegroup.API]:
    api = support.make_api(zookeeper.url, servicegroup_refresh_interval=NEVER)
    yield api
    api.stop()


def packets(server: servers.ZooKeeperServer) -> int:
    return int(server.mntr()["zk_packets_received"])


def raw_tooz_read(
    server: servers.ZooKeeperServer, group: str
) -> tuple[dict[str, object], int]:
    """What tooz itself reads (ids as the observer reports them), and the
    packets the read cost the server (connecting excluded)."""
    from servicegroup.drivers.tooz import urls

    coord = tooz_coordination.get_coordinator(server.url, b"raw-reader")
    coord.start()
    try:
        before = packets(server)
        raw = coord.get_members_with_capabilities(group.encode()).get(timeout=10)
        cost = packets(server) - before
    finally:
        coord.stop()
    return {urls.member_id_from_tooz(k, group): v for k, v in raw.items()}, cost


def test_idle_refreshes_cost_no_reads(zookeeper, population, observer, group):
    """N + 1 requests per refresh before; now only what changed is read."""
    ids = [f"host{i:03d}" for i in range(300)]
    population.join(*ids)
    fetch = observer.driver._observer.fetch  # the refresh's one backend call
    expected, raw_cost = raw_tooz_read(zookeeper, group)
    assert len(expected) == len(ids) and raw_cost > len(ids)
    assert fetch(group) == expected  # the first read is a full one
    assert observer.get_all(group) == ids

    refreshes = 20
    before = packets(zookeeper)
    for _ in range(refreshes):
        assert fetch(group) == expected
    idle_cost = packets(zookeeper) - before
    # 20 x 301 with tooz's read; what is left is pings of the sessions
    # open on the server meanwhile.
    assert idle_cost < raw_cost / 10, (idle_cost, raw_cost)

    # One record rewritten, one member gone, one new: a few reads, not N.
    before = packets(zookeeper)
    population.rewrite("host007", version=2)
    population.leave("host008")
    population.join("host300")

    def caught_up() -> bool:
        got = fetch(group)
        record = got.get("host007")
        caps, _ = sg_member.from_envelope(record)
        return caps.get("version") == 2 and "host008" not in got and "host300" in got

    support.wait_until(caught_up, DEADLINE, "the changes in the observer's read")
    change_cost = packets(zookeeper) - before
    assert change_cost < raw_cost / 10, (change_cost, raw_cost)
    # And what it returns is still exactly what tooz reads.
    expected, _ = raw_tooz_read(zookeeper, group)
    assert fetch(group) == expected


def test_join_and_leave_reach_the_view_before_the_refresh(population, observer, group):
    """watch() callbacks fire as the backend reports, not a refresh later."""
    population.join("host1", "host2")
    assert observer.get_all(group) == ["host1", "host2"]
    changes: list[servicegroup.MembershipChange] = []
    observer.watch(group, changes.append)

    population.join("host3")
    support.wait_until(
        lambda: any("host3" in c.joined for c in changes),
        DEADLINE,
        "a watch callback for the join (refresh_interval is an hour)",
    )
    assert observer.get_all(group) == ["host1", "host2", "host3"]
    population.leave("host1")
    support.wait_until(
        lambda: any("host1" in c.left for c in changes),
        DEADLINE,
        "a watch callback for the leave",
    )
    assert not observer.is_up("host1", group)
    assert observer.get_all(group) == ["host2", "host3"]


@pytest.mark.parametrize("session", ["kept", "expired"])
def test_lost_connection_is_read_again_in_full(zookeeper, population, group, session):
    """Watches die with the connection (kazoo does not set them again) or
    the session: what changed meanwhile is read as soon as the observer is
    connected again, and the watches work again after it."""
    proxy = support.TcpProxy(zookeeper.port)
    url = f"kazoo://127.0.0.1:{proxy.port}"
    # A session that outlives the cut unless it is expired on purpose.
    observer = support.make_api(
        url, servicegroup_refresh_interval=NEVER, service_down_time=20.0
    )
    try:
        ids = [f"host{i:02d}" for i in range(50)]
        population.join(*ids)
        assert observer.get_all(group) == ids
        changes: list[servicegroup.MembershipChange] = []
        observer.watch(group, changes.append)
        client = observer.driver._observer._coord._coord  # the kazoo client
        client_id = client.client_id

        proxy.cut(blackhole=False)
        support.wait_until(lambda: not client.connected, DEADLINE, "disconnected")
        population.leave("host00")
        population.join("late")
        if session == "expired":
            # kazoo's own test harness does it so: a second client takes
            # over the session and closes it.
            thief = kazoo_client.KazooClient(
                hosts=zookeeper.address, client_id=client_id
            )
            thief.start(timeout=10)
            thief.stop()
            thief.close()
        proxy.restore()

        expected = sorted([*ids[1:], "late"])
        support.wait_until(
            lambda: observer.get_all(group) == expected,
            DEADLINE,
            "what changed while disconnected, without a refresh",
        )
        assert (client.client_id != client_id) == (session == "expired")
        assert any("late" in c.joined for c in changes), changes
        assert any("host00" in c.left for c in changes), changes
        # Every watch is set again.
        population.join("later")
        support.wait_until(
            lambda: observer.is_up("later", group),
            DEADLINE,
            "a join after the reconnection",
        )
        population.rewrite("host01", version=2)
        fetch = observer.driver._observer.fetch
        support.wait_until(
            lambda: (
                sg_member.from_envelope(fetch(group)["host01"])[0].get("version") == 2
            ),
            DEADLINE,
            "a rewritten record after the reconnection",
        )
    finally:
        observer.stop()
        proxy.close()
