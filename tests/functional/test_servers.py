"""The real-server launchers in ``servicegroup.testing.servers``.

Every functional test trusts these launchers to give it a server that
really answers, comes back empty after ``restart(wipe=True)``, goes silent
on ``pause()`` and dies on ``kill()``.  So these tests start each server
and cluster for real and check exactly that, with real clients, no mocks.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator

import pytest

from servicegroup.testing import servers
from servicegroup.testing.servers import (
    EtcdCluster,
    EtcdServer,
    MemcachedServer,
    NutcrackerProxy,
    RedisSentinel,
    RedisServer,
    ServerError,
    ServerStartError,
    ZooKeeperEnsemble,
    ZooKeeperServer,
)


def needs(kind: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        not servers.available(kind), reason=servers.missing_reason(kind)
    )


def wait_for(
    predicate: Callable[[], object], timeout: float = 10.0, what: str = ""
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (OSError, ServerError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or predicate}")


def tooz_roundtrip(url: str) -> None:
    """Join a group through tooz: proves ``url`` is a URL tooz takes."""
    coordination = pytest.importorskip("tooz.coordination")
    coordinator = coordination.get_coordinator(url, b"member")
    coordinator.start(start_heart=False)
    try:
        try:
            coordinator.create_group(b"group").get()
        except coordination.GroupAlreadyExist:
            pass
        coordinator.join_group(b"group").get()
        assert coordinator.get_members(b"group").get() == {b"member"}
    finally:
        coordinator.stop()


def assert_silent(probe: Callable[[], object]) -> None:
    """A paused server accepts the connection (the kernel does) but never
    answers, so the request times out."""
    with pytest.raises((TimeoutError, OSError)):
        probe()


# --------------------------------------------------------------------------
# availability and the life cycle shared by every server
# --------------------------------------------------------------------------


def test_available_knows_every_kind() -> None:
    for kind in servers.KINDS:
        reason = servers.missing_reason(kind)
        assert servers.available(kind) is (reason == "")
    with pytest.raises(ValueError, match="known kinds"):
        servers.available("mongodb")


@needs("redis")
def test_failed_start_raises_with_log_tail() -> None:
    server = RedisServer(extra_args=["--no-such-option", "1"])
    try:
        with pytest.raises(ServerStartError) as info:
            server.start()
        assert "no-such-option" in str(info.value)
        assert info.value.log_tail
        assert not server.is_running()
    finally:
        server.close()


@needs("redis")
def test_context_manager_close_stops_and_removes_directory() -> None:
    with RedisServer() as server:
        assert server.is_running()
        assert server.url == f"redis://127.0.0.1:{server.port}"
        assert (server.host, server.address) == (
            "127.0.0.1",
            f"127.0.0.1:{server.port}",
        )
        pid = server.pid
        directory = server.dir
    assert not server.is_running()
    assert not os.path.exists(directory)
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    server.close()  # idempotent
    server.stop()
    with pytest.raises(ServerError):
        server.start()


@needs("redis")
def test_kill_then_start_on_same_port_and_stop_while_paused() -> None:
    with RedisServer() as server:
        port = server.port
        server.kill()
        assert not server.is_running()
        server.kill()  # idempotent
        server.start()
        assert server.port == port
        assert server.execute("PING") == "PONG"
        server.pause()
        assert server.paused
        server.stop(timeout=5)  # continued so it can handle SIGTERM
        assert not server.is_running()
        server.stop()


@needs("redis")
def test_atexit_hook_kills_servers_left_running() -> None:
    script = textwrap.dedent(
        """
        from servicegroup.testing.servers import RedisServer
        server = RedisServer()
        server.start()
        print(server.pid, server.dir, flush=True)
        raise SystemExit(3)   # a crashed test run: nobody calls close()
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 3, result.stderr
    pid_text, directory = result.stdout.split()
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_text), 0)
    assert not os.path.exists(directory)


# --------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------


@needs("redis")
def test_redis_wipe_pause_and_command_stats() -> None:
    with RedisServer() as redis:
        redis.reset_stats()
        assert redis.execute("SET", "k", "v") == "OK"
        assert redis.execute("GET", "k") == b"v"
        stats = redis.command_stats()
        assert stats["set"] == 1
        assert stats["get"] == 1
        assert all(isinstance(v, int) for v in stats.values())

        redis.restart(wipe=True)
        assert redis.dbsize() == 0

        redis.pause()
        assert_silent(lambda: redis.execute("PING", timeout=0.3))
        redis.resume()
        assert redis.execute("PING") == "PONG"


@needs("redis")
def test_persistent_redis_keeps_data_unless_wiped() -> None:
    with RedisServer(persistent=True) as redis:
        redis.execute("SET", "k", "v")
        redis.restart()
        assert redis.execute("GET", "k") == b"v"
        redis.restart(wipe=True)
        assert redis.execute("GET", "k") is None


# --------------------------------------------------------------------------
# memcached and twemproxy
# --------------------------------------------------------------------------


def memcached_set(port: int, key: str, value: str, timeout: float = 2.0) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        data = value.encode()
        sock.sendall(b"set %s 0 0 %d\r\n%s\r\n" % (key.encode(), len(data), data))
        return sock.recv(1024).decode().strip()


@needs("memcached")
def test_memcached_wipe_pause_and_stats() -> None:
    with MemcachedServer() as memcached:
        assert memcached.url == f"memcached://127.0.0.1:{memcached.port}"
        assert memcached_set(memcached.port, "k", "v") == "STORED"
        stats = memcached.stats()
        assert int(stats["curr_items"]) == 1
        assert int(stats["cmd_set"]) == 1

        memcached.restart(wipe=True)
        assert int(memcached.stats()["curr_items"]) == 0

        memcached.pause()
        assert_silent(lambda: memcached_set(memcached.port, "k", "v", 0.3))
        memcached.resume()
        assert memcached_set(memcached.port, "k", "v") == "STORED"


@needs("nutcracker")
def test_nutcracker_ejects_a_dead_memcached() -> None:
    pool = [MemcachedServer(), MemcachedServer()]
    proxy = NutcrackerProxy(pool, server_retry_timeout=30000)
    try:
        proxy.start()  # starts the pool too
        assert all(server.is_running() for server in pool)
        assert proxy.url == f"memcached://127.0.0.1:{proxy.port}"
        keys = [f"key{i}" for i in range(200)]
        assert {memcached_set(proxy.port, k, "v") for k in keys} == {"STORED"}
        items = [int(s.stats()["curr_items"]) for s in pool]
        assert sum(items) == len(keys)
        tooz_roundtrip(proxy.url)

        # Kill a node that holds keys (ketama may well put all 200 on one
        # of two nodes: it did, with some port pairs).
        dead, survivor = sorted(pool, key=lambda s: int(s.stats()["curr_items"]))[::-1]
        dead.kill()

        # The first failure ejects the dead node (server_failure_limit=1);
        # after that every key maps to the survivor.
        def all_stored() -> bool:
            replies = {memcached_set(proxy.port, k, "v") for k in keys}
            return replies == {"STORED"}

        wait_for(all_stored, timeout=5, what="ejection of the dead node")
        assert int(survivor.stats()["curr_items"]) >= len(keys)
        stats = proxy.stats()
        assert "servicegroup" in stats
        assert isinstance(stats["total_connections"], int)
    finally:
        proxy.close()
        for server in pool:
            server.close()


# --------------------------------------------------------------------------
# ZooKeeper
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def zookeeper() -> Iterator[ZooKeeperServer]:
    if not servers.available("zookeeper"):
        pytest.skip(servers.missing_reason("zookeeper"))
    with ZooKeeperServer() as server:
        yield server


def test_zookeeper_answers_and_reports_mntr(
    zookeeper: ZooKeeperServer,
) -> None:
    assert zookeeper.url == f"kazoo://127.0.0.1:{zookeeper.port}"
    assert zookeeper.four_letter("ruok") == "imok"
    assert zookeeper.mode() == "standalone"
    stats = zookeeper.mntr()
    assert int(stats["zk_packets_received"]) >= 0
    assert int(stats["zk_znode_count"]) > 0
    assert stats["zk_server_state"] == "standalone"


def test_zookeeper_session_timeouts_are_clamped_to_1_60_s(
    zookeeper: ZooKeeperServer,
) -> None:
    kazoo_client = pytest.importorskip("kazoo.client")
    negotiated = {}
    for asked in (0.5, 2.0, 120.0):
        client = kazoo_client.KazooClient(hosts=zookeeper.address, timeout=asked)
        client.start(timeout=10)
        try:
            negotiated[asked] = zookeeper.session_timeouts()
        finally:
            client.stop()
            client.close()
    assert negotiated == {0.5: [1000], 2.0: [2000], 120.0: [60000]}


def test_zookeeper_wipe_and_pause(zookeeper: ZooKeeperServer) -> None:
    kazoo_client = pytest.importorskip("kazoo.client")
    client = kazoo_client.KazooClient(hosts=zookeeper.address, timeout=5)
    client.start(timeout=10)
    try:
        client.create("/sg-test", b"x")
    finally:
        client.stop()
        client.close()

    zookeeper.restart()
    client = kazoo_client.KazooClient(hosts=zookeeper.address, timeout=5)
    client.start(timeout=10)
    try:
        assert client.exists("/sg-test")
    finally:
        client.stop()
        client.close()

    zookeeper.restart(wipe=True)
    client = kazoo_client.KazooClient(hosts=zookeeper.address, timeout=5)
    client.start(timeout=10)
    try:
        assert not client.exists("/sg-test")
    finally:
        client.stop()
        client.close()

    zookeeper.pause()
    assert_silent(lambda: zookeeper.four_letter("ruok", timeout=0.3))
    zookeeper.resume()
    assert zookeeper.four_letter("ruok") == "imok"


@needs("zookeeper")
def test_zookeeper_ensemble_survives_leader_loss_and_wipe() -> None:
    kazoo_client = pytest.importorskip("kazoo.client")
    with ZooKeeperEnsemble(3) as ensemble:
        first, second, third = ensemble.nodes
        assert ensemble.url == (
            f"kazoo://{first.address}?hosts={second.address}&hosts={third.address}"
        )
        modes = sorted(str(node.mode()) for node in ensemble.nodes)
        assert modes == ["follower", "follower", "leader"]
        tooz_roundtrip(ensemble.url)

        client = kazoo_client.KazooClient(hosts=ensemble.hosts, timeout=4)
        client.start(timeout=10)
        try:
            client.create("/sg-test", b"x")
            leader = ensemble.leader()
            assert leader is not None
            leader.kill()
            wait_for(
                lambda: ensemble.leader() not in (None, leader),
                what="a new ZooKeeper leader",
            )
            # Wiped, the old leader rejoins and syncs from the new one.
            leader.restart(wipe=True)
            assert leader.mode() == "follower"
            assert int(leader.mntr()["zk_znode_count"]) >= 5
            client.sync("/")
            assert client.exists("/sg-test")
        finally:
            client.stop()
            client.close()


# --------------------------------------------------------------------------
# etcd
# --------------------------------------------------------------------------


@needs("etcd")
def test_etcd_wipe_pause_and_metrics() -> None:
    etcd3gw = pytest.importorskip("etcd3gw")
    with EtcdServer() as etcd:
        assert etcd.url == f"etcd3+http://127.0.0.1:{etcd.port}"
        client = etcd3gw.client(host=etcd.host, port=etcd.port)
        client.put("sg-test", "x")
        assert client.get("sg-test") == [b"x"]
        assert "etcd_server_has_leader 1" in etcd.metrics()
        puts = etcd.metric_values("etcd_mvcc_put_total")
        assert sum(puts.values()) >= 1
        assert etcd.status()["version"]

        etcd.restart()
        assert client.get("sg-test") == [b"x"]
        etcd.restart(wipe=True)
        assert client.get("sg-test") == []

        etcd.pause()
        with pytest.raises((TimeoutError, OSError)):
            etcd.health(timeout=0.3)
        etcd.resume()
        assert etcd.health()


@needs("etcd")
def test_etcd_cluster_survives_leader_loss_and_wipe() -> None:
    etcd3gw = pytest.importorskip("etcd3gw")
    with EtcdCluster(3) as cluster:
        first, second, third = cluster.nodes
        assert cluster.url == (
            f"{first.url}?hosts={second.host}:{second.port}"
            f"&hosts={third.host}:{third.port}"
        )
        assert cluster.members == [node.url for node in cluster.nodes]
        leader = cluster.leader()
        assert leader is not None and leader.is_leader()
        leader.kill()
        wait_for(
            lambda: cluster.leader() not in (None, leader),
            what="a new etcd leader",
        )
        survivor = cluster.running_nodes()[0]
        client = etcd3gw.client(host=survivor.host, port=survivor.port)
        client.put("sg-test", "x")

        # Wiped, the old leader is re-added and gets the data from raft.
        leader.restart(wipe=True)
        client = etcd3gw.client(host=leader.host, port=leader.port)
        assert client.get("sg-test") == [b"x"]
        assert all(node.health() for node in cluster.nodes)


# --------------------------------------------------------------------------
# Redis Sentinel
# --------------------------------------------------------------------------


@needs("redis-sentinel")
def test_sentinel_fails_over_to_the_replica() -> None:
    with RedisSentinel.create(replicas=1) as sentinel:
        master, replica = sentinel.redis_servers
        first, second, third = sentinel.nodes
        assert sentinel.url == (
            f"redis://{first.address}?sentinel={sentinel.master_name}"
            f"&sentinel_fallback={second.address}"
            f"&sentinel_fallback={third.address}"
        )
        assert sentinel.current_master() is master
        tooz_roundtrip(sentinel.url)
        assert replica.role() == "slave"
        master.execute("SET", "k", "v")
        wait_for(lambda: replica.execute("GET", "k") == b"v")

        master.kill()
        address = sentinel.wait_for_new_master((master.host, master.port), timeout=20)
        assert address == (replica.host, replica.port)
        wait_for(lambda: replica.role() == "master", what="promotion")
        assert replica.execute("SET", "k2", "v") == "OK"


# --------------------------------------------------------------------------
# the URLs really work with tooz
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(RedisServer, marks=needs("redis"), id="redis"),
        pytest.param(MemcachedServer, marks=needs("memcached"), id="memcached"),
        pytest.param(ZooKeeperServer, marks=needs("zookeeper"), id="zookeeper"),
        pytest.param(EtcdServer, marks=needs("etcd"), id="etcd"),
    ],
)
def test_url_is_accepted_by_tooz(
    make: Callable[[], servers.BackendServer],
) -> None:
    with make() as server:
        tooz_roundtrip(server.url)
