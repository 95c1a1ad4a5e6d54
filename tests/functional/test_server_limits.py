"""Servers that grant another timeout than the one asked for, for real.

A ZooKeeper whose ``maxSessionTimeout`` (2 s) is below the session timeout
asked for (``service_down_time``, 3 s), and an etcd whose election timeout
(2 s) makes its minimum lease TTL (3 s) longer than the one asked for
(2 s): ``describe()`` and ``servicegroup check`` report what the server
granted, and one warning per URL says which way it goes and what to change.
Each server is started once for the module.
"""

from __future__ import annotations

import io
import json
import logging
import pathlib
from collections.abc import Iterator

import pytest

from servicegroup.cmd import main
from servicegroup.drivers.tooz import server_limits
from servicegroup.testing import servers
from tests import support
from tests.functional.conftest import require

LOGGER = "servicegroup.drivers.tooz.server_limits"

#: The most a small ZooKeeper grants; FAST asks for service_down_time, 3 s.
ZK_MAX_SESSION_MS = 2000

#: etcd's minimum TTL is 1.5 x election timeout: 3 s, against the 2 s
#: (service_down_time 1.5 s, rounded up) asked for.
ETCD_TIMING = {"report_interval": 0.5, "service_down_time": 1.5}


@pytest.fixture(scope="module")
def small_zookeeper() -> Iterator[servers.ZooKeeperServer]:
    require("zookeeper")
    with servers.ZooKeeperServer(
        min_session_timeout_ms=1000, max_session_timeout_ms=ZK_MAX_SESSION_MS
    ) as server:
        yield server


@pytest.fixture(scope="module")
def slow_etcd() -> Iterator[servers.EtcdServer]:
    require("etcd")
    with servers.EtcdServer(heartbeat_ms=400, election_ms=2000) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Every test sees its warning as a new process would; main.run()
    # configures the root logger, as the command does.
    monkeypatch.setattr(server_limits, "_warned", set())
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def apis() -> Iterator[list]:
    built: list = []
    yield built
    for api in built:
        api.stop()


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def _check(tmp_path: pathlib.Path, url: str, *args: str, **timing: float) -> str:
    conf = tmp_path / "servicegroup.conf"
    conf.write_text("[DEFAULT]\n" + "".join(f"{k} = {v}\n" for k, v in timing.items()))
    out = io.StringIO()
    code = main.run(["--url", url, "--config-file", str(conf), "check", *args], out)
    assert code == 0
    return out.getvalue()


def test_zookeeper_clamped_session_timeout_is_reported_and_warned_once(
    small_zookeeper: servers.ZooKeeperServer,
    apis: list,
    group: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    url = small_zookeeper.url
    member = support.make_api(url)
    observer = support.make_api(url)
    apis += [member, observer]
    assert member.describe()["granted_membership_timeout"] is None
    member.join("m1", group)
    support.wait_until(lambda: observer.is_up("m1", group), 20, "m1 up")
    for api in (member, observer):
        described = api.describe()
        assert described["membership_timeout"] == 3.0  # asked for
        assert described["granted_membership_timeout"] == 2.0
        assert described["expiry"].startswith(
            "dead members expire 2 s after their last ping"
        )
    # What the server says it granted, to both sessions.
    assert small_zookeeper.session_timeouts().count(ZK_MAX_SESSION_MS) >= 2
    [warning] = _warnings(caplog)  # two drivers, two sessions, one warning
    assert f"at {url} negotiated a session timeout of 2 s instead" in warning
    assert "earlier than service_down_time (3 s)" in warning
    assert "Raise maxSessionTimeout" in warning
    assert "to at least 3000" in warning


def test_check_shows_the_negotiated_session_timeout(
    small_zookeeper: servers.ZooKeeperServer,
    tmp_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = small_zookeeper.url
    text = _check(tmp_path, url, service_down_time=3, report_interval=0.5)
    lines = text.splitlines()
    assert lines[0].startswith(f"OK: {url} answered in ")
    assert lines[1] == (
        "Expiry: dead members expire 2 s after their last ping (the session "
        "timeout the ZooKeeper server negotiated; asked for 3 s, "
        "service_down_time 3 s)."
    )
    err = capsys.readouterr().err
    assert err.count("negotiated a session timeout of 2 s instead") == 1
    report = json.loads(_check(tmp_path, url, "--format", "json", service_down_time=60))
    assert report["status"] == "ok"
    assert report["service_down_time"] == 60.0
    assert report["membership_timeout"] == 60.0
    assert report["granted_membership_timeout"] == 2.0
    assert report["expiry"].startswith("dead members expire 2 s after")


def test_etcd_granted_lease_ttl_is_reported_and_warned_once(
    slow_etcd: servers.EtcdServer,
    apis: list,
    group: str,
    tmp_path: pathlib.Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    url = slow_etcd.url
    api = support.make_api(url, **ETCD_TIMING)
    apis.append(api)
    api.join("m1", group)
    api.join("m2", group)
    support.wait_until(lambda: api.is_up("m2", group), 20, "m2 up")
    described = api.describe()
    assert described["membership_timeout"] == 2.0
    assert described["granted_membership_timeout"] == 3.0
    [warning] = _warnings(caplog)  # three coordinators, one warning
    assert f"etcd at {url} granted a lease TTL of 3 s instead of the 2 s" in warning
    assert "later than service_down_time (1.5 s)" in warning
    assert "--election-timeout" in warning

    report = json.loads(_check(tmp_path, url, "--format", "json", **ETCD_TIMING))
    assert report["membership_timeout"] == 2.0
    assert report["granted_membership_timeout"] == 3.0
    assert report["expiry"] == (
        "dead members expire 3 s after their last heartbeat (the lease TTL "
        "etcd granted; asked for 2 s, service_down_time 1.5 s)"
    )
