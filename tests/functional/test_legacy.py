"""Liberty-era mc and zk configurations, unchanged, against real servers.

Each test writes a ``nova.conf`` the way a Liberty deployment had it
(``servicegroup_driver = zk`` or ``mc`` and the legacy options), reads it
with oslo.config as the host service would, and checks that services are
seen joining, leaving and dying on a real ZooKeeper or memcached started by
``servicegroup.testing.servers``, and that the deprecation is announced.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from oslo_config import cfg

import servicegroup
from servicegroup import conf as sg_conf
from servicegroup.drivers import legacy
from servicegroup.testing import servers
from tests import support
from tests.functional.conftest import require

#: Slack for a loaded 2-core machine on top of the promised bounds.
SLACK = 3.0


def read_conf(path: Path) -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    sg_conf.register_opts(conf)
    conf(["--config-file", str(path)], project="nova", default_config_files=[])
    return conf


@pytest.fixture
def nova_conf(tmp_path: Path) -> Callable[[str], Path]:
    """Writes a nova.conf (dedented) and returns its path."""

    def write(text: str) -> Path:
        path = tmp_path / "nova.conf"
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture
def apis() -> Iterator[list[servicegroup.API]]:
    """APIs to stop after the test, whatever it did."""
    made: list[servicegroup.API] = []
    yield made
    for api in made:
        api.stop()


def legacy_api(path: Path, apis: list[servicegroup.API]) -> servicegroup.API:
    with pytest.warns(DeprecationWarning, match="is deprecated for removal") as rec:
        api = servicegroup.API(conf=read_conf(path))  # the-caller
    apis.append(api)
    # Attributed to this line, not to servicegroup or stevedore.
    # (A ResourceWarning of a socket collected meanwhile may be recorded too.)
    [warning] = [w for w in rec if issubclass(w.category, DeprecationWarning)]
    assert warning.filename == __file__
    lines = Path(__file__).read_text().splitlines()
    assert "# the-caller" in lines[warning.lineno - 1]
    return api


MEMBER_SCRIPT = """
import signal, sys, threading, warnings
warnings.simplefilter("ignore", DeprecationWarning)
from oslo_config import cfg
import servicegroup
from servicegroup import conf as sg_conf
conf = cfg.ConfigOpts()
sg_conf.register_opts(conf)
conf(["--config-file", sys.argv[1]], project="nova", default_config_files=[])
api = servicegroup.API(conf=conf)
api.join(sys.argv[2], sys.argv[3])
print("started", flush=True)
done = threading.Event()
signal.signal(signal.SIGTERM, lambda *a: done.set())
done.wait()
api.stop()
"""


def start_member(path: Path, member: str, group: str) -> subprocess.Popen[str]:
    """A service in its own process, configured by ``path``."""
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-c", MEMBER_SCRIPT, str(path), member, group],
        stdout=subprocess.PIPE,
        text=True,
        cwd=root,
        env=dict(os.environ, PYTHONPATH=str(root)),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "started", f"member process said {line!r}"
    return proc


# -- zk -----------------------------------------------------------------------


def test_liberty_zk_conf_works_unchanged(
    server_pool, nova_conf, apis, group, caplog: pytest.LogCaptureFixture
) -> None:
    zookeeper = server_pool.get("zookeeper")
    path = nova_conf(
        f"""\
        [DEFAULT]
        servicegroup_driver = zk
        report_interval = 0.5
        service_down_time = 3

        [zookeeper]
        address = {zookeeper.address}
        recv_timeout = 4000
        sg_prefix = /servicegroups
        sg_retry_interval = 5
        """
    )
    caplog.set_level(logging.WARNING, logger="servicegroup")
    compute = legacy_api(path, apis)
    api = legacy_api(path, apis)  # nova-api, in its own process in real life
    assert isinstance(api.driver, legacy.ZooKeeperDriver)
    [log] = [r for r in caplog.records if r.name == "servicegroup.drivers.legacy"][:1]
    assert f"servicegroup_tooz_url = kazoo://{zookeeper.address}?timeout=4" in (
        log.getMessage()
    )

    compute.join("compute1", group, capabilities={"version": "1.2"})
    support.wait_until(lambda: api.is_up("compute1", group), 10, "compute1 up")
    assert api.service_is_up({"host": "compute1", "topic": group})
    assert api.get_all(group) == ["compute1"]
    [member] = api.get_members(group)
    assert member.capabilities == {"version": "1.2"}

    # Kept where Nova's zk driver kept it: under sg_prefix, one znode a group.
    kazoo_client = pytest.importorskip("kazoo.client")
    zk = kazoo_client.KazooClient(hosts=zookeeper.address)
    zk.start(timeout=10)
    try:
        assert zk.get_children(f"/servicegroups/{group}") == [f"compute1@{group}"]
    finally:
        zk.stop()
        zk.close()

    compute.leave("compute1", group)
    support.wait_until(
        lambda: not api.is_up("compute1", group), 1.0 + SLACK, "compute1 down"
    )


def test_upgraded_observer_reads_a_group_with_liberty_znodes(
    server_pool, nova_conf, apis, group
) -> None:
    """During the upgrade, a Liberty zk driver's znode (not tooz data) in the
    same group neither hides the upgraded members nor is itself hidden: its
    ephemeral node means that old service is alive."""
    zookeeper = server_pool.get("zookeeper")
    path = nova_conf(
        f"""\
        [DEFAULT]
        servicegroup_driver = zk
        report_interval = 0.5
        service_down_time = 3

        [zookeeper]
        address = {zookeeper.address}
        sg_prefix = /servicegroups
        """
    )
    kazoo_client = pytest.importorskip("kazoo.client")
    zk = kazoo_client.KazooClient(hosts=zookeeper.address)
    zk.start(timeout=10)
    try:
        zk.create(
            f"/servicegroups/{group}/oldcompute",
            b"0.8444218515250481",  # not msgpack: what tooz cannot decode
            ephemeral=True,
            makepath=True,
        )
        api = legacy_api(path, apis)
        api.join("newcompute", group, capabilities={"version": "2"})
        support.wait_until(
            lambda: api.get_all(group) == ["newcompute", "oldcompute"],
            10,
            "both the upgraded and the Liberty service up",
        )
        caps = {m.id: m.capabilities for m in api.get_members(group)}
        assert caps == {"newcompute": {"version": "2"}, "oldcompute": {}}
    finally:
        zk.stop()  # the old service goes away: its ephemeral node with it
        zk.close()
    support.wait_until(
        lambda: not api.is_up("oldcompute", group), 3.0 + SLACK, "oldcompute down"
    )
    assert api.is_up("newcompute", group)


def test_zk_uses_every_listed_server(server_pool, nova_conf, apis, group) -> None:
    """A dead first server does not matter: kazoo is given all of them."""
    zookeeper = server_pool.get("zookeeper")
    dead = f"{servers.HOST}:1"  # nothing listens there: refused at once
    path = nova_conf(
        f"""\
        [DEFAULT]
        servicegroup_driver = zk
        report_interval = 0.5
        service_down_time = 3

        [zookeeper]
        address = {dead},{zookeeper.address}
        """
    )
    api = legacy_api(path, apis)
    assert api.describe()["url"].startswith(
        f"kazoo://{dead}?hosts={zookeeper.address}&"
    )
    api.join("compute1", group)
    support.wait_until(lambda: api.is_up("compute1", group), 20, "compute1 up")


def test_zk_session_timeout_comes_from_recv_timeout(
    server_pool, nova_conf, apis, group
) -> None:
    """A killed service is down once its session expires (recv_timeout),
    long before service_down_time, as with Liberty's zk driver."""
    zookeeper = server_pool.get("zookeeper")
    path = nova_conf(
        f"""\
        [DEFAULT]
        servicegroup_driver = zk
        report_interval = 1
        service_down_time = 60

        [zookeeper]
        address = {zookeeper.address}
        recv_timeout = 2000
        """
    )
    api = legacy_api(path, apis)
    assert api.describe()["membership_timeout"] == 2.0
    proc = start_member(path, "compute1", group)
    try:
        support.wait_until(lambda: api.is_up("compute1", group), 10, "compute1 up")
        # The server grants what was asked for (its bounds are 1..60 s).
        assert 2000 in zookeeper.session_timeouts()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        support.wait_until(
            lambda: not api.is_up("compute1", group),
            2.0 + 1.0 + SLACK * 2,
            "the killed service down after its session timeout",
        )
    finally:
        proc.kill()
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


# -- mc -----------------------------------------------------------------------


def has_key(server: servers.MemcachedServer, key: str) -> bool:
    """Whether one memcached node (not the proxy) holds ``key``."""
    with socket.create_connection((server.host, server.port), timeout=2) as sock:
        sock.sendall(f"get {key}\r\n".encode())
        reply = b""
        while not reply.endswith(b"END\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    return reply.startswith(b"VALUE ")


def test_liberty_mc_conf_works_unchanged(
    server_pool, nova_conf, apis, group, caplog: pytest.LogCaptureFixture
) -> None:
    memcached = server_pool.get("memcached")
    path = nova_conf(
        f"""\
        [DEFAULT]
        servicegroup_driver = mc
        memcached_servers = {memcached.address}
        report_interval = 0.5
        service_down_time = 3
        """
    )
    caplog.set_level(logging.WARNING, logger="servicegroup")
    compute = legacy_api(path, apis)
    api = legacy_api(path, apis)
    assert isinstance(api.driver, legacy.MemcachedDriver)
    # service_down_time, plus memcached's one-second clock tick
    assert api.describe()["membership_timeout"] == 4.0
    messages = [
        r.getMessage()
        for r in caplog.records
        if r.name == "servicegroup.drivers.legacy"
    ]
    # One line per driver built, and only the deprecation (one server).
    assert len(messages) == 2
    assert f'"servicegroup_tooz_url = memcached://{memcached.address}"' in (messages[0])

    compute.join("compute1", group, capabilities={"version": "1.2"})
    compute.join("compute2", group)
    support.wait_until(
        lambda: api.get_all(group) == ["compute1", "compute2"], 10, "computes up"
    )
    compute.leave("compute2", group)
    support.wait_until(
        lambda: api.get_all(group) == ["compute1"], 1.0 + SLACK, "compute2 down"
    )

    # A crash (heartbeats stop, no leave): down after service_down_time.
    compute.driver.abandon("compute1", group)  # type: ignore[attr-defined]
    support.wait_until(
        lambda: not api.is_up("compute1", group),
        3 + 0.5 + SLACK * 2,
        "the crashed compute down after service_down_time",
    )


def test_mc_with_several_servers_uses_the_first(
    private_server, nova_conf, apis, group, caplog: pytest.LogCaptureFixture
) -> None:
    first = private_server("memcached")
    second = private_server("memcached")
    path = nova_conf(
        f"""\
        [DEFAULT]
        servicegroup_driver = mc
        memcached_servers = {first.address},{second.address}
        report_interval = 0.5
        service_down_time = 3
        """
    )
    caplog.set_level(logging.WARNING, logger="servicegroup")
    api = legacy_api(path, apis)
    assert any(
        f"using {first.address} and ignoring {second.address}" in r.getMessage()
        for r in caplog.records
    )
    api.join("compute1", group)
    support.wait_until(lambda: api.is_up("compute1", group), 10, "compute1 up")
    assert int(first.stats()["curr_items"]) > 0
    assert int(second.stats()["curr_items"]) == 0


def test_mc_through_twemproxy_survives_a_memcached_node(
    private_server, nova_conf, apis, group
) -> None:
    """The documented HA set-up: the legacy option names the proxy alone."""
    require("nutcracker")
    nodes = [private_server("memcached"), private_server("memcached")]
    with servers.NutcrackerProxy(nodes, server_retry_timeout=60000) as proxy:
        path = nova_conf(
            f"""\
            [DEFAULT]
            servicegroup_driver = mc
            memcached_servers = {proxy.address}
            report_interval = 0.5
            service_down_time = 3
            servicegroup_refresh_interval = 0.2
            servicegroup_backend_timeout = 2
            """
        )
        compute = legacy_api(path, apis)
        api = legacy_api(path, apis)
        compute.join("compute1", group)
        support.wait_until(lambda: api.is_up("compute1", group), 10, "compute1 up")

        key = f"_TOOZ_GROUP_{group}"  # tooz keeps the whole group in it
        [holder] = [n for n in nodes if has_key(n, key)]
        [survivor] = [n for n in nodes if n is not holder]
        holder.kill()  # the group is gone with it
        # twemproxy ejects the dead node, so the key now hashes to the
        # survivor; the member finds itself missing and joins again there,
        # with no restart.
        support.wait_until(
            lambda: has_key(survivor, key),
            15,
            "the group rebuilt on the surviving memcached",
        )
        support.wait_until(
            lambda: any(
                m.id == "compute1" and m.is_up and not m.stale
                for m in api.get_members(group)
            ),
            15,
            "compute1 seen up from a fresh view",
        )
