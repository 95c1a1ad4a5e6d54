"""The HA topologies of the seeds, with real servers losing a node.

- memcached behind twemproxy (seeds 000 and 004): three memcached servers,
  the one holding the group record is killed, then comes back empty;
- a three-node ZooKeeper ensemble losing its leader: no member is ever
  seen down;
- Redis Sentinel failing the master over to its replica (tooz's sentinel
  URL options);
- a three-node etcd cluster losing its leader: no member is ever seen down.

Members run in their own processes, observers in the test process. Bounds
are the promises of ``DESIGN.md`` for the FAST timing of
:mod:`tests.support`, plus :data:`SLACK`; measured times are printed as
``MEASURED name: seconds`` (``pytest -s``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from pymemcache.client.base import Client as MemcacheClient

import servicegroup
from servicegroup.testing import servers
from tests import support
from tests.functional import conftest

FAST = support.FAST
REPORT = FAST["report_interval"]
DOWN = FAST["service_down_time"]
REFRESH = FAST["servicegroup_refresh_interval"]
#: Slack for a loaded 2-core machine running three JVMs or etcds at once.
SLACK = 3.0


def measured(name: str, seconds: float) -> None:
    print(f"MEASURED {name}: {seconds:.2f}s")


def _require(kind: str) -> None:
    if not servers.available(kind):
        conftest.require(kind)


def whole(
    api: servicegroup.API, group: str, ids: list[str], since: float = 0.0
) -> bool:
    """Every member up in a fresh view, with a record written after ``since``."""
    return support.whole_since(api, group, ids, since)


def never_down(
    api: servicegroup.API, group: str, ids: list[str], seconds: float
) -> float:
    """Assert for ``seconds`` that no member is ever reported down.

    Returns the longest a member went without writing its record in that
    window (its heartbeat gap, as observers saw it).
    """
    end = time.monotonic() + seconds
    longest = 0.0
    while time.monotonic() < end:
        down = [m for m in ids if not api.is_up(m, group)]
        assert not down, f"{down} seen down"
        now = time.time()
        for member in api.get_members(group):
            if member.updated_at is not None:
                longest = max(longest, now - member.updated_at.timestamp())
        time.sleep(0.02)
    return longest


@pytest.fixture
def cleanup() -> Iterator[Callable[[Callable[[], object]], None]]:
    """Register closing calls, run in reverse order at teardown."""
    calls: list[Callable[[], object]] = []
    yield calls.append
    for call in reversed(calls):
        call()


def members(cleanup, url: str, group: str, ids: list[str]) -> None:
    """Two member processes sharing ``ids``."""
    half = len(ids) // 2
    for chunk in (ids[:half], ids[half:]):
        cleanup(support.MemberProcess(url, group, chunk).kill)


def observer_api(cleanup, url: str) -> servicegroup.API:
    api = support.make_api(url)
    cleanup(api.stop)
    return api


def test_twemproxy_losing_the_memcached_with_the_group(group, cleanup):
    """Kill the node holding the group record: whole again, and again when
    the node comes back empty."""
    _require("nutcracker")
    _require("memcached")
    pool = [servers.MemcachedServer() for _ in range(3)]
    for server in pool:
        cleanup(server.close)
    retry_ms = 2000
    proxy = servers.NutcrackerProxy(pool, server_retry_timeout=retry_ms)
    cleanup(proxy.close)
    proxy.start()
    ids = ["m1", "m2", "m3", "m4"]
    members(cleanup, proxy.url, group, ids)
    observer = observer_api(cleanup, proxy.url)
    support.wait_until(lambda: whole(observer, group, ids), 10, "members up")

    key = f"_TOOZ_GROUP_{group}".encode()
    holders = []
    for server in pool:
        client = MemcacheClient((server.host, server.port), timeout=2)
        if client.get(key) is not None:
            holders.append(server)
        client.close()
    assert len(holders) == 1, holders
    holder = holders[0]

    holder.kill()
    lost_at = time.time()
    bound = 2 * REPORT + retry_ms / 1000 + REFRESH + SLACK
    took = support.timed_wait(
        lambda: whole(observer, group, ids, lost_at),
        bound,
        "whole again after the kill",
    )
    measured("twemproxy: whole again after the group's memcached died", took)
    # Stays whole across the proxy's retries of the dead node.
    time.sleep(retry_ms / 1000 + 0.5)
    retried_at = time.time()
    support.wait_until(
        lambda: whole(observer, group, ids, retried_at),
        bound,
        "whole across proxy retries",
    )

    holder.start()  # back, and empty: the keys that hash to it are gone
    back_at = time.time()
    took = support.timed_wait(
        lambda: whole(observer, group, ids, back_at),
        bound,
        "whole again after the node came back empty",
    )
    measured("twemproxy: whole again after the node came back empty", took)


def test_zookeeper_ensemble_losing_its_leader(group, cleanup):
    _require("zookeeper")
    ensemble = servers.ZooKeeperEnsemble(3)
    cleanup(ensemble.close)
    ensemble.start()
    ids = ["m1", "m2", "m3", "m4"]
    members(cleanup, ensemble.url, group, ids)
    observer = observer_api(cleanup, ensemble.url)
    support.wait_until(lambda: whole(observer, group, ids), 15, "members up")
    leader = ensemble.leader()
    assert leader is not None
    leader.kill()
    killed_at = time.time()
    # Longer than service_down_time: sessions move to the survivors.
    gap = never_down(observer, group, ids, DOWN + 2 * REPORT)
    measured("zookeeper ensemble: longest heartbeat gap, none seen down", gap)
    support.wait_until(
        lambda: whole(observer, group, ids, killed_at), DOWN + SLACK, "fresh view"
    )
    new_leader = support.wait_until(ensemble.leader, 10, "a new leader")
    assert new_leader is not leader


def test_redis_sentinel_failover(group, cleanup):
    _require("redis-sentinel")
    sentinel = servers.RedisSentinel.create(replicas=1)
    cleanup(sentinel.close)
    sentinel.start()
    ids = ["m1", "m2", "m3", "m4"]
    members(cleanup, sentinel.url, group, ids)
    observer = observer_api(cleanup, sentinel.url)
    support.wait_until(lambda: whole(observer, group, ids), 10, "members up")
    master = sentinel.current_master()
    assert master is not None
    master.kill()
    killed_at = time.monotonic()
    sentinel.wait_for_new_master((master.host, master.port), timeout=20)
    failover = time.monotonic() - killed_at
    named_at = time.time()
    measured("sentinel: failover (sentinel's own)", failover)
    took = support.timed_wait(
        lambda: whole(observer, group, ids, named_at),
        2 * REPORT + REFRESH + SLACK,
        "members up after the failover",
    )
    measured("sentinel: whole again after the new master was named", took)


def test_etcd_cluster_losing_its_leader(group, cleanup):
    _require("etcd")
    cluster = servers.EtcdCluster(3)
    cleanup(cluster.close)
    cluster.start()
    leader = support.wait_until(cluster.leader, 10, "an etcd leader")
    # tooz's etcd driver talks to one endpoint: clients use the followers,
    # so losing the leader is a cluster fault, not a lost endpoint.
    followers = [n for n in cluster.nodes if n is not leader]
    ids = ["m1", "m2", "m3", "m4"]
    cleanup(support.MemberProcess(followers[0].url, group, ids[:2]).kill)
    cleanup(support.MemberProcess(followers[1].url, group, ids[2:]).kill)
    observer = observer_api(cleanup, followers[0].url)
    support.wait_until(lambda: whole(observer, group, ids), 10, "members up")
    leader.kill()
    killed_at = time.time()
    gap = never_down(observer, group, ids, DOWN + 2 * REPORT)
    measured("etcd cluster: longest heartbeat gap, none seen down", gap)
    support.wait_until(
        lambda: whole(observer, group, ids, killed_at), DOWN + SLACK, "fresh view"
    )
