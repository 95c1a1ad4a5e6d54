"""The HA topologies of the seeds, with real servers losing a node.

In every case the server that is killed is one a member process is
connected to (found from the process's own TCP connections), and the
observer checks all along that no member is ever seen down:

- memcached behind twemproxy (the Fuel and HA-guide set-ups): three
  memcached servers, the one holding the group record is killed, then comes
  back empty;
- a three-node ZooKeeper ensemble, every host in the URL, losing the server
  of a member's session;
- Redis Sentinel losing the master (tooz's sentinel URL options);
- a three-node etcd cluster with every endpoint in the URL losing the
  member's endpoint, which is also the leader; the lease is the same after;
- the same over ``etcd3+https`` with client certificates.

Members run in their own processes, observers in the test process. Bounds
are the promises of the failure model for the FAST timing of
:mod:`tests.support`, plus :data:`SLACK`; measured times are printed as
``MEASURED name: seconds`` (``pytest -s``); the longest heartbeat gap of
each case is what ``doc/source/failure-model.rst`` reports.
"""

from __future__ import annotations

import io
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import etcd3gw
import psutil
import pytest
import requests
from pymemcache.client.base import Client as MemcacheClient

import servicegroup
from servicegroup.cmd import main as cli
from servicegroup.testing import servers
from tests import support
from tests.functional import conftest

FAST = support.FAST
REPORT = FAST["report_interval"]
DOWN = FAST["service_down_time"]
REFRESH = FAST["servicegroup_refresh_interval"]
#: Slack for a loaded 2-core machine running three JVMs or etcds at once.
SLACK = 3.0

S = TypeVar("S", bound=servers.BackendServer)


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


def members(
    cleanup, url: str, group: str, ids: list[str], **overrides: float
) -> list[support.MemberProcess]:
    """Two member processes sharing ``ids``."""
    half = len(ids) // 2
    started = []
    for chunk in (ids[:half], ids[half:]):
        process = support.MemberProcess(url, group, chunk, **overrides)
        cleanup(process.kill)
        started.append(process)
    return started


def connected_to(
    process: support.MemberProcess, nodes: Sequence[S], port: Callable[[S], int]
) -> list[S]:
    """The nodes ``process`` has an open TCP connection to, most used first.

    Read from the process's own sockets: the server to kill is the one the
    member really talks to, not the one it was configured to start with.
    """
    count = {id(node): 0 for node in nodes}
    by_port = {port(node): node for node in nodes}
    for conn in psutil.Process(process.pid).net_connections(kind="tcp"):
        if conn.status == psutil.CONN_ESTABLISHED and conn.raddr:
            node = by_port.get(conn.raddr.port)
            if node is not None:
                count[id(node)] += 1
    found = [node for node in nodes if count[id(node)]]
    return sorted(found, key=lambda node: -count[id(node)])


def client_port(node: servers.BackendServer) -> int:
    return node.port


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

    # Members reach memcached only through the proxy, and the proxy holds
    # a connection to every node: the one to kill is the group's.
    holder.kill()
    lost_at = time.time()
    bound = 2 * REPORT + retry_ms / 1000 + REFRESH + SLACK
    # Keys that hashed to the dead node are gone, the group item with them:
    # the first member to notice creates it again and the others follow at
    # their next beat. Observers keep every member they saw until its last
    # beat could have expired, so none is ever seen down meanwhile.
    gap = never_down(observer, group, ids, DOWN + retry_ms / 1000 + 2 * REPORT)
    support.measured("twemproxy: longest heartbeat gap, none seen down", gap)
    took = support.timed_wait(
        lambda: whole(observer, group, ids, lost_at),
        bound,
        "whole again after the kill",
    )
    support.measured("twemproxy: whole again after the group's memcached died", took)
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
    gap = never_down(observer, group, ids, retry_ms / 1000 + 2 * REPORT + REFRESH)
    support.measured("twemproxy: longest gap after the node came back, none down", gap)
    took = support.timed_wait(
        lambda: whole(observer, group, ids, back_at),
        bound,
        "whole again after the node came back empty",
    )
    support.measured("twemproxy: whole again after the node came back empty", took)


def test_zookeeper_ensemble_losing_the_server_of_a_member(group, cleanup):
    _require("zookeeper")
    ensemble = servers.ZooKeeperEnsemble(3)
    cleanup(ensemble.close)
    ensemble.start()
    assert all(node.address in ensemble.url for node in ensemble.nodes)
    ids = ["m1", "m2", "m3", "m4"]
    first, _ = members(cleanup, ensemble.url, group, ids)
    observer = observer_api(cleanup, ensemble.url)
    support.wait_until(lambda: whole(observer, group, ids), 15, "members up")
    # kazoo picks a random host of the URL for each session.
    used = support.wait_until(
        lambda: connected_to(first, ensemble.nodes, client_port),
        10,
        "the member process connected to a ZooKeeper server",
    )
    leader = ensemble.leader()
    # The leader if a member talks to it: both faults at once.
    target = leader if leader in used else used[0]
    target.kill()
    killed_at = time.time()
    # Longer than service_down_time: sessions move to the survivors.
    gap = never_down(observer, group, ids, DOWN + 2 * REPORT)
    support.measured(
        f"zookeeper ensemble (killed {'leader' if target is leader else 'follower'}"
        "): longest heartbeat gap, none seen down",
        gap,
    )
    support.wait_until(
        lambda: whole(observer, group, ids, killed_at), DOWN + SLACK, "fresh view"
    )
    survivors = [node for node in ensemble.nodes if node is not target]
    support.wait_until(
        lambda: (
            connected_to(first, survivors, client_port)
            and target not in connected_to(first, ensemble.nodes, client_port)
        ),
        DOWN + SLACK,
        "the member's sessions on the surviving servers",
    )


def test_redis_sentinel_losing_the_master(group, cleanup):
    _require("redis-sentinel")
    sentinel = servers.RedisSentinel.create(replicas=1)
    cleanup(sentinel.close)
    sentinel.start()
    ids = ["m1", "m2", "m3", "m4"]
    first, _ = members(cleanup, sentinel.url, group, ids)
    observer = observer_api(cleanup, sentinel.url)
    support.wait_until(lambda: whole(observer, group, ids), 10, "members up")
    master = sentinel.current_master()
    assert master is not None
    support.wait_until(
        lambda: master in connected_to(first, sentinel.redis_servers, client_port),
        10,
        "the member process connected to the master",
    )
    master.kill()
    killed_at = time.monotonic()
    # Sentinel needs down_after_ms to agree the master is gone, then
    # promotes the replica; the members' keys are on the replica already.
    gap = never_down(observer, group, ids, DOWN + 2 * REPORT)
    support.measured("sentinel: longest heartbeat gap, none seen down", gap)
    sentinel.wait_for_new_master((master.host, master.port), timeout=20)
    failover = time.monotonic() - killed_at
    named_at = time.time()
    support.measured("sentinel: failover (sentinel's own)", failover)
    took = support.timed_wait(
        lambda: whole(observer, group, ids, named_at),
        2 * REPORT + REFRESH + SLACK,
        "members up after the failover",
    )
    support.measured("sentinel: whole again after the new master was named", took)


# -- etcd: every endpoint in the URL -----------------------------------------


def etcd_url(
    nodes: Sequence[servers.EtcdServer],
    *,
    scheme: str = "etcd3+http",
    port: Callable[[servers.EtcdServer], int] = client_port,
    options: str = "",
) -> str:
    first, *rest = nodes
    query = "&".join([f"hosts={n.host}:{port(n)}" for n in rest] + [options])
    return f"{scheme}://{first.host}:{port(first)}?{query.rstrip('&')}"


def member_leases(node: servers.EtcdServer, group: str) -> dict[bytes, str]:
    """Each member key of ``group`` -> the lease it is attached to."""
    session = requests.Session()
    session.trust_env = False  # no machine proxy between us and loopback
    try:
        client = etcd3gw.client(host=node.host, port=node.port, session=session)
        found = client.get_prefix(f"tooz/groups/{group}/")
    finally:
        session.close()
    return {meta["key"]: str(meta["lease"]) for _, meta in found if "lease" in meta}


def etcd_failover_case(
    name: str,
    cluster: servers.EtcdCluster,
    url: str,
    group: str,
    cleanup: Any,
    port: Callable[[servers.EtcdServer], int] = client_port,
) -> None:
    """Kill the endpoint the members use; none seen down; same leases."""
    ids = ["m1", "m2", "m3", "m4"]
    first, second = members(cleanup, url, group, ids)
    observer = observer_api(cleanup, url)
    support.wait_until(lambda: whole(observer, group, ids), 10, "members up")
    used = support.wait_until(
        lambda: connected_to(first, cluster.nodes, port),
        10,
        "the member process connected to an etcd endpoint",
    )
    target = used[0]
    # Clients start on the URL's own host.
    assert url.split("://", 1)[1].startswith(f"{target.host}:{port(target)}?")
    survivor = next(node for node in cluster.nodes if node is not target)
    leases = member_leases(survivor, group)
    assert len(leases) == len(ids), leases
    was_leader = target is cluster.leader()
    target.kill()
    killed_at = time.time()
    gap = never_down(observer, group, ids, DOWN + 2 * REPORT)
    support.measured(
        f"{name} (killed {'leader' if was_leader else 'follower'}): "
        "longest heartbeat gap, none seen down",
        gap,
    )
    support.wait_until(
        lambda: whole(observer, group, ids, killed_at), DOWN + SLACK, "fresh view"
    )
    # etcd leases are the cluster's: the members kept theirs.
    assert member_leases(survivor, group) == leases
    for process in (first, second):
        assert target not in connected_to(process, cluster.nodes, port)


def test_etcd_cluster_losing_the_members_endpoint_and_leader(group, cleanup):
    _require("etcd")
    cluster = servers.EtcdCluster(3)
    cleanup(cluster.close)
    cluster.start()
    leader = support.wait_until(cluster.leader, 10, "an etcd leader")
    # The leader first in the URL: members talk to it, so its death takes
    # both their endpoint and the cluster's leader.
    order = [leader] + [node for node in cluster.nodes if node is not leader]
    url = etcd_url(order)
    etcd_failover_case("etcd cluster", cluster, url, group, cleanup)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_certificates(directory: Path) -> dict[str, str]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate."""
    ca_key, ca = directory / "ca.key", directory / "ca.pem"
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        "-subj", "/CN=servicegroup test CA", "-keyout", str(ca_key), "-out", str(ca),
    )  # fmt: skip
    made = {"ca": str(ca)}
    # etcd's JSON gateway reaches etcd's own gRPC with the server's
    # certificate, so that one must be good for clients too.
    for name, extensions in (
        (
            "server",
            ["subjectAltName=IP:127.0.0.1", "extendedKeyUsage=serverAuth,clientAuth"],
        ),
        ("client", ["extendedKeyUsage=clientAuth"]),
    ):
        key, csr, cert = (directory / f"{name}.{x}" for x in ("key", "csr", "pem"))
        ext = directory / f"{name}.ext"
        ext.write_text("".join(f"{line}\n" for line in extensions))
        _openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
            "-keyout", str(key), "-out", str(csr),
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
            "-CAcreateserial", "-days", "1", "-extfile", str(ext), "-out", str(cert),
        )  # fmt: skip
        made[f"{name}_cert"], made[f"{name}_key"] = str(cert), str(key)
    return made


def test_etcd_over_https_losing_the_members_endpoint(group, cleanup, tmp_path):
    _require("etcd")
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make the test certificates")
    certs = make_certificates(tmp_path)
    cluster = servers.EtcdCluster(3)
    cleanup(cluster.close)
    tls_port: dict[int, int] = {}
    for node in cluster.nodes:
        tls_port[id(node)] = _free_port()
        # The plain listener stays for the test harness's readiness probe;
        # the members only know the TLS one, which wants client certificates.
        node.extra_args += [
            "--listen-client-urls",
            f"{node.client_url},https://{node.host}:{tls_port[id(node)]}",
            "--cert-file", certs["server_cert"],
            "--key-file", certs["server_key"],
            "--trusted-ca-file", certs["ca"],
            "--client-cert-auth",
        ]  # fmt: skip
    cluster.start()

    def tls(node: servers.EtcdServer) -> int:
        return tls_port[id(node)]

    options = (
        f"ca_cert={certs['ca']}&cert_cert={certs['client_cert']}"
        f"&cert_key={certs['client_key']}"
    )
    url = etcd_url(cluster.nodes, scheme="etcd3+https", port=tls, options=options)
    for shown in shown_by_describe_and_check(url):
        for node in cluster.nodes:
            assert f"{node.host}:{tls(node)}" in shown, shown
        assert certs["client_key"] not in shown, shown
    etcd_failover_case("etcd cluster over https", cluster, url, group, cleanup, tls)


def shown_by_describe_and_check(url: str) -> list[str]:
    """What ``describe()`` and ``servicegroup check`` say about ``url``."""
    api = support.make_api(url)
    try:
        described = str(api.describe()["url"])
    finally:
        api.stop()
    out = io.StringIO()
    assert cli.run(["check", "--url", url], out=out) == 0
    return [described, out.getvalue()]
