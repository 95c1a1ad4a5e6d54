"""Redis: joining, leaving and reading a group whose hash is rewritten all
the time, as thousands of heartbeats do.

tooz reads and joins through optimistic ``WATCH``/``MULTI`` transactions on
the group hash, which every write to that hash aborts (redis-py then retries
without end); the driver replaces them with Lua scripts. A writer thread
rewrites one member's record back to back here, which makes the window of a
transaction all but impossible to get through.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator

import pytest

from servicegroup.testing import servers
from tests import support

redis = pytest.importorskip("redis")


@pytest.fixture
def redis_server(server_pool) -> servers.RedisServer:
    server = server_pool.get("redis")
    assert isinstance(server, servers.RedisServer)
    return server


@pytest.fixture
def client(redis_server: servers.RedisServer) -> Iterator[object]:
    conn = redis.Redis(host=redis_server.host, port=redis_server.port)
    yield conn
    conn.close()


def make_api(url: str):
    # Slow background traffic, so the operations counted are the ones the
    # test causes, even on a machine that stalls for a while.
    return support.make_api(
        url,
        report_interval=5,
        service_down_time=15,
        servicegroup_refresh_interval=1,
    )


def group_key(client, group: str) -> bytes:
    [key] = [k for k in client.keys("*") if k.endswith(f":{group}".encode())]
    return key


@pytest.fixture
def rewriting(client, redis_server, group) -> Iterator[None]:
    """A member ``busy`` whose record is rewritten as fast as Redis allows."""
    api = make_api(redis_server.url)
    api.join("busy", group)
    support.wait_until(lambda: api.is_up("busy", group), 10, "busy up")
    key = group_key(client, group)
    [field] = [f for f in client.hkeys(key) if f.startswith(b"busy@")]
    # Another process, and a fast one: redis-benchmark pipelining rewrites
    # (a Python thread here would share the GIL with the client under test
    # and never write in the middle of its transaction). The record it
    # writes is an empty msgpack map: "busy" stays up, with no capabilities.
    writer = subprocess.Popen(
        [
            shutil.which("redis-benchmark") or "redis-benchmark",
            "-h",
            redis_server.host,
            "-p",
            str(redis_server.port),
            "-c",
            "2",
            "-P",
            "16",
            "-n",
            "1000000000",
            "-q",
            b"HSET",
            key,
            field,
            b"\x80",
        ],  # fmt: skip
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    support.wait_until(
        lambda: client.hget(key, field) == b"\x80", 10, "redis-benchmark writing"
    )
    yield
    writer.kill()
    writer.wait()
    api.stop()


def operations_besides_hset(client) -> int:
    """Commands the server ran so far, but HSET (the writer's) and INFO."""
    stats = client.info("commandstats")  # one reply: a consistent count
    return sum(
        int(value["calls"])
        for name, value in stats.items()
        if name not in ("cmdstat_hset", "cmdstat_info")
    )


#: Server operations a join seen by an observer, or a first read of a group,
#: may take here, background heartbeats and refreshes included (about 10
#: measured); tooz's transactions, aborted by every write, took 600 to
#: 45,000 when measured.
FEW_OPERATIONS = 100


def test_join_and_leave_get_through(client, rewriting, redis_server, group) -> None:
    api = make_api(redis_server.url)
    try:
        before = operations_besides_hset(client)
        api.join("newcomer", group)
        support.wait_until(
            lambda: api.get_all(group) == ["busy", "newcomer"], 10, "newcomer up"
        )
        assert operations_besides_hset(client) - before < FEW_OPERATIONS
        before = operations_besides_hset(client)
        api.leave("newcomer", group)
        support.wait_until(lambda: api.get_all(group) == ["busy"], 10, "newcomer gone")
        assert operations_besides_hset(client) - before < FEW_OPERATIONS
    finally:
        api.stop()


def test_dead_member_is_pruned_while_the_group_is_busy(
    client, redis_server, group, rewriting
) -> None:
    # A member whose heartbeat key expired long ago (it never had one):
    # reading the group prunes it.
    key = group_key(client, group)
    client.hset(key, f"ghost@{group}", b"\x80")
    observer = make_api(redis_server.url)
    try:
        before = operations_besides_hset(client)
        assert observer.get_all(group) == ["busy"]
        assert operations_besides_hset(client) - before < FEW_OPERATIONS
        assert not client.hexists(key, f"ghost@{group}")
        [member] = observer.get_members(group)
        assert (member.id, member.is_up, member.stale) == ("busy", True, False)
    finally:
        observer.stop()


def test_a_reset_client_keeps_the_heartbeat_key(client, redis_server, group) -> None:
    """Resetting a stuck member client must not delete its heartbeat key
    (tooz's stop does), or the next observer read prunes a live member;
    leaving does delete it."""
    from servicegroup import conf as sg_conf
    from servicegroup import heartbeat
    from servicegroup.drivers.tooz import session as tooz_session

    timing = sg_conf.timing_from_conf(support.make_conf(redis_server.url))
    backend = tooz_session.ToozBackend(redis_server.url, timing)
    member = tooz_session.ToozMemberSession(backend, "m1", group)

    def heartbeat_keys() -> list[bytes]:
        return [
            k for k in client.keys("*_beats*") if k.endswith(f"m1@{group}".encode())
        ]

    member.connect()
    member.beat()
    member.join({"capabilities": {}})
    assert heartbeat_keys()
    assert member.reset() is heartbeat.Reset.RECONNECT  # closed: connect again
    assert heartbeat_keys(), "the reset deleted the heartbeat key"
    member.connect()
    member.leave()
    member.close()
    assert not heartbeat_keys()
