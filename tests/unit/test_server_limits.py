"""What the backend server granted, read back, reported and warned about.

The real servers (a ZooKeeper that clamps, an etcd with a long election
timeout) are in ``tests/functional/test_server_limits.py``; here are the
parsing, the messages, the warning once per URL and what ``describe()``
says for the backends whose server keeps what it is given.
"""

from __future__ import annotations

import logging
import types
from collections.abc import Iterator
from typing import Any

import pytest
from oslo_config import cfg

import servicegroup
from servicegroup import conf as sg_conf
from servicegroup.drivers.tooz import server_limits
from servicegroup.drivers.tooz.backends import etcd, registry, zookeeper

LOGGER = "servicegroup.drivers.tooz.server_limits"


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_limits, "_warned", set())


def _timing(down: float = 60.0) -> sg_conf.Timing:
    return sg_conf.Timing(
        report_interval=10.0,
        service_down_time=down,
        refresh_interval=1.0,
        backend_timeout=5.0,
        retry_max_interval=10.0,
    )


def _limits(
    url: str = "kazoo://zk1:2181",
    asked: float = 60.0,
    down: float = 60.0,
    *,
    from_url: bool = False,
) -> server_limits.ServerLimits:
    scheme = url.split(":", 1)[0]
    return server_limits.ServerLimits(
        registry.for_scheme(scheme).terms, url, asked, _timing(down), from_url=from_url
    )


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == LOGGER and r.levelno == logging.WARNING
    ]


# -- parsing ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "seconds"),
    [
        # kazoo: read_timeout = negotiated * 2/3, connect = negotiated / hosts
        ((40000 * 2.0 / 3.0, 40000 / 3), 40.0),
        ((8333 * 2.0 / 3.0, 8333.0), 8.333),
        ((2000 * 2.0 / 3.0, 2000.0), 2.0),
        ((0, 0), None),
        (None, None),
        ("nonsense", None),
        ((), None),
    ],
)
def test_the_negotiated_session_timeout_from_kazoos_connect(
    result: object, seconds: float | None
) -> None:
    assert zookeeper.negotiated_session_timeout(result) == seconds


@pytest.mark.parametrize(
    ("answer", "seconds"),
    [
        ({"ID": "7", "TTL": "2", "grantedTTL": "3"}, 3.0),
        ({"ID": "7", "TTL": 59, "grantedTTL": 60}, 60.0),
        # A lease etcd does not know (expired meanwhile).
        ({"ID": "7", "TTL": "-1"}, None),
        ({"grantedTTL": "soon"}, None),
        ([], None),
    ],
)
def test_the_granted_ttl_from_lease_time_to_live(
    answer: object, seconds: float | None
) -> None:
    assert etcd.granted_ttl(answer) == seconds


# -- the warning --------------------------------------------------------------


def test_a_clamped_zookeeper_session_timeout_is_warned_about_once_per_url(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    limits = _limits()
    limits.record(8.333)
    limits.record(8.333)
    _limits().record(8.333)  # another driver on the same URL
    assert limits.granted == 8.333
    [message] = _warnings(caplog)
    assert message == (
        "The ZooKeeper server at kazoo://zk1:2181 negotiated a session timeout "
        "of 8.333 s instead of the 60 s asked for: dead members will be seen "
        "down after about 8.333 s, earlier than service_down_time (60 s). "
        "Raise maxSessionTimeout (milliseconds, 20 x tickTime by default) in "
        "the servers' zoo.cfg to at least 60000, or lower service_down_time "
        "to 8.333 s."
    )
    _limits("kazoo://zk2:2181").record(8.333)
    assert len(_warnings(caplog)) == 2


def test_what_was_asked_for_is_not_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    limits = _limits(asked=2.5, down=2.5)
    limits.record(2.5)
    limits.record(2.5004)  # whole milliseconds on the wire
    assert _warnings(caplog) == []
    assert "expire 2.5004 s after their last ping" in limits.expiry()


def test_a_session_timeout_raised_to_the_minimum_names_min_session_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    _limits(asked=0.6, down=0.6).record(1.0)
    [message] = _warnings(caplog)
    assert "of 1 s instead of the 0.6 s asked for" in message
    assert "later than service_down_time (0.6 s)" in message
    assert "Lower minSessionTimeout" in message
    assert "to at most 600, or their tickTime" in message
    assert message.endswith("or raise service_down_time to 1 s.")


def test_a_timeout_from_the_url_is_compared_with_service_down_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Asked for 2 s in the URL, with service_down_time 60 s: the server's
    # 4 s is later than asked but still earlier than service_down_time.
    caplog.set_level(logging.WARNING, logger=LOGGER)
    _limits(asked=2.0, down=60.0, from_url=True).record(4.0)
    [message] = _warnings(caplog)
    assert "earlier than service_down_time (60 s)" in message
    assert message.endswith("or set the URL's timeout option to 4.")


def test_a_larger_etcd_lease_names_the_election_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    limits = _limits("etcd3+http://e1:2379", asked=2.0, down=1.5)
    assert limits.granted is None
    assert limits.expiry() == (
        "not known until etcd answers (asked for 2 s, service_down_time 1.5 s)"
    )
    limits.record(8.0)
    [message] = _warnings(caplog)
    assert message.startswith(
        "etcd at etcd3+http://e1:2379 granted a lease TTL of 8 s instead of "
        "the 2 s asked for: dead members will be seen down after about 8 s, "
        "later than service_down_time (1.5 s). etcd's minimum lease TTL is "
        "1.5 x its --election-timeout"
    )
    assert message.endswith("or raise service_down_time to 8 s.")
    assert limits.expiry() == (
        "dead members expire 8 s after their last heartbeat (the lease TTL "
        "etcd granted; asked for 2 s, service_down_time 1.5 s)"
    )


# -- reading it back from the clients -----------------------------------------


class _Handler:
    """Stands for kazoo's ConnectionHandler."""

    def __init__(self, negotiated_ms: float) -> None:
        self.negotiated_ms = negotiated_ms
        self.calls: list[tuple[Any, ...]] = []

    def _connect(self, host: str, hostip: str, port: int) -> tuple[float, float]:
        self.calls.append((host, hostip, port))
        return self.negotiated_ms * 2.0 / 3.0, self.negotiated_ms


def _kazoo_coordinator(handler: _Handler) -> Any:
    return types.SimpleNamespace(_coord=types.SimpleNamespace(_connection=handler))


def test_every_zookeeper_connect_records_the_negotiated_timeout() -> None:
    handler = _Handler(4000)
    limits = _limits(asked=3.0, down=3.0)
    limits.before_start(_kazoo_coordinator(handler))
    limits.before_start(_kazoo_coordinator(handler))  # wrapped once only
    assert limits.granted is None
    assert handler._connect("zk1", "10.0.0.1", 2181) == (4000 * 2.0 / 3.0, 4000)
    assert limits.granted == 4.0
    handler.negotiated_ms = 3000  # a reconnect, to a server that grants it
    handler._connect("zk2", "10.0.0.2", 2181)
    assert limits.granted == 3.0
    assert handler.calls == [("zk1", "10.0.0.1", 2181), ("zk2", "10.0.0.2", 2181)]


def test_a_failure_to_record_never_breaks_kazoos_connect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handler = _Handler(4000)
    limits = _limits(asked=3.0, down=3.0)
    limits.before_start(_kazoo_coordinator(handler))

    def broken(granted: float) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(limits, "record", broken)
    assert handler._connect("zk1", "10.0.0.1", 2181)[1] == 4000


def test_an_etcd_start_reads_the_granted_ttl_of_its_lease() -> None:
    asked: list[tuple[str, Any]] = []

    class Client:
        def get_url(self, path: str) -> str:
            return f"http://e1:2379/v3{path}"

        def post(self, url: str, json: Any = None) -> dict[str, str]:
            asked.append((url, json))
            return {"ID": "42", "TTL": "7", "grantedTTL": "8"}

    limits = _limits("etcd3+http://e1:2379", asked=2.0, down=1.5)
    coord = types.SimpleNamespace(
        client=Client(), _membership_lease=types.SimpleNamespace(id=42)
    )
    limits.after_start(coord)
    assert limits.granted == 8.0
    assert asked == [("http://e1:2379/v3/kv/lease/timetolive", {"ID": 42})]
    # Other backends ask nothing.
    _limits("redis://r1:6379", asked=3.0).after_start(coord)
    assert len(asked) == 1


def test_an_etcd_that_does_not_answer_leaves_the_value_as_it_was() -> None:
    class Client:
        def get_url(self, path: str) -> str:
            return path

        def post(self, url: str, json: Any = None) -> dict[str, str]:
            raise ConnectionError("refused")

    limits = _limits("etcd3+http://e1:2379", asked=2.0, down=1.5)
    limits.after_start(
        types.SimpleNamespace(
            client=Client(), _membership_lease=types.SimpleNamespace(id=1)
        )
    )
    assert limits.granted is None


# -- describe() where the server keeps what it is given -----------------------


@pytest.fixture
def api_on() -> Iterator[Any]:
    built: list[servicegroup.API] = []

    def make(url: str, down: float) -> servicegroup.API:
        conf = cfg.ConfigOpts()
        sg_conf.register_opts(conf)
        conf([], default_config_files=[])
        conf.set_override("servicegroup_tooz_url", url)
        conf.set_override("report_interval", 1.0)
        conf.set_override("service_down_time", down)
        api = servicegroup.API(conf=conf)
        built.append(api)
        return api

    yield make
    for api in built:
        api.stop()


def test_memcached_reports_the_expiry_its_whole_second_clock_gives(
    api_on: Any,
) -> None:
    described = api_on("memcached://192.0.2.1:11211", 3.0).describe()
    assert described["membership_timeout"] == 4.0
    assert described["granted_membership_timeout"] == 4.0
    assert described["expiry"] == (
        "dead members expire 3 to 4 s after their last heartbeat (their "
        "memcached key is set to expire in 4 s, in whole seconds on "
        "memcached's once-a-second clock; service_down_time 3 s)"
    )


def test_redis_reports_the_expiry_it_sets(api_on: Any) -> None:
    described = api_on("redis://192.0.2.1:6379", 2.5).describe()
    assert described["granted_membership_timeout"] == 2.5
    assert described["expiry"] == (
        "dead members expire 2.5 s after their last heartbeat (the expiry of "
        "their Redis heartbeat key; service_down_time 2.5 s)"
    )


def test_zookeeper_reports_nothing_granted_before_it_connects(api_on: Any) -> None:
    described = api_on("kazoo://192.0.2.1:2181?timeout=20", 60.0).describe()
    assert described["membership_timeout"] == 20.0
    assert described["granted_membership_timeout"] is None
    assert described["expiry"] == (
        "not known until the ZooKeeper server answers (asked for 20 s, "
        "service_down_time 60 s)"
    )
