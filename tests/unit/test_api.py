"""The API facade and the tooz driver on the in-memory backend."""

from __future__ import annotations

import dataclasses
import datetime
import logging
import threading
from collections.abc import Iterator

import pytest
from oslo_config import cfg

import servicegroup
from servicegroup import conf as sg_conf
from servicegroup import exceptions
from servicegroup.testing import ServiceGroupFixture
from tests import support


@pytest.fixture
def sg() -> Iterator[ServiceGroupFixture]:
    fixture = ServiceGroupFixture()
    fixture.setUp()
    yield fixture
    fixture.cleanUp()


def test_downstream_crash_story(sg: ServiceGroupFixture) -> None:
    sg.api.join("host1", "compute", capabilities={"version": "1.2"})
    sg.api.join("host2", "compute")
    assert sg.api.get_all("compute") == ["host1", "host2"]
    sg.crash("host1", "compute")
    sg.advance(sg.service_down_time - 1)
    assert sg.api.is_up("host1", "compute"), "down before service_down_time"
    sg.advance(1 + sg.refresh_interval)
    assert not sg.api.is_up("host1", "compute")
    assert sg.api.is_up("host2", "compute")
    assert sg.api.get_all("compute") == ["host2"]


def test_is_up_is_a_local_lookup_after_the_first_question(
    sg: ServiceGroupFixture,
) -> None:
    sg.api.join("host1", "compute")
    observer = sg.new_api()
    before = dict(sg.store.calls)
    assert observer.is_up("host1", "compute")
    reads = sg.store.calls.get("get_members_with_capabilities", 0)
    assert reads == before.get("get_members_with_capabilities", 0) + 1
    for _ in range(1000):
        assert observer.is_up("host1", "compute")
        assert not observer.is_up("nobody", "compute")
    assert sg.store.calls.get("get_members_with_capabilities", 0) == reads


def test_service_ref_forms(sg: ServiceGroupFixture) -> None:
    sg.api.join("host1", "compute")

    @dataclasses.dataclass
    class Service:
        host: str
        binary: str
        topic: str | None = None
        forced_down: bool = False

    assert sg.api.service_is_up({"host": "host1", "topic": "compute"})
    assert sg.api.service_is_up(Service("host1", "nova-compute", "compute"))
    assert sg.api.service_is_up(Service("host1", "compute"))  # binary fallback
    assert not sg.api.service_is_up(Service("host1", "compute", forced_down=True))
    assert not sg.api.service_is_up(
        {"host": "host1", "topic": "compute", "forced_down": True}
    )
    assert not sg.api.service_is_up({"host": "host9", "topic": "compute"})
    with pytest.raises(exceptions.InvalidArgument, match="needs a 'host'"):
        sg.api.service_is_up({"topic": "compute"})


def test_updated_time_is_the_latest_heartbeat(sg: ServiceGroupFixture) -> None:
    sg.api.join("host1", "compute")
    ref = {"host": "host1", "topic": "compute"}
    assert sg.api.get_updated_time(ref) == datetime.datetime.fromtimestamp(
        sg.clock.time(), datetime.timezone.utc
    )
    sg.advance(sg.report_interval * 3 + 0.5)
    updated = sg.api.get_updated_time(ref)
    assert updated is not None
    age = sg.clock.time() - updated.timestamp()
    assert 0 <= age <= sg.report_interval + sg.refresh_interval
    assert sg.api.get_updated_time({"host": "host9", "topic": "compute"}) is None


def test_leave_is_seen_within_one_refresh(sg: ServiceGroupFixture) -> None:
    sg.api.join("host1", "compute")
    observer = sg.new_api()
    assert observer.is_up("host1", "compute")
    sg.api.leave("host1", "compute")
    sg.advance(sg.refresh_interval)
    assert not observer.is_up("host1", "compute")
    (record,) = observer.get_members("compute")
    assert record.id == "host1" and not record.is_up
    with pytest.raises(exceptions.MemberNotJoined):
        sg.api.leave("host1", "compute")


def test_join_returns_at_once_while_the_backend_is_down(
    sg: ServiceGroupFixture,
) -> None:
    sg.store.set_reachable(False)
    sg.api.join("host1", "compute")  # no exception, no waiting
    sg.store.set_reachable(True)
    sg.advance(sg.report_interval + sg.refresh_interval)
    assert sg.api.is_up("host1", "compute")


def test_watch_reports_joins_and_departures(sg: ServiceGroupFixture) -> None:
    changes: list[servicegroup.MembershipChange] = []
    unwatch = sg.api.watch("compute", changes.append)
    sg.api.join("host1", "compute")
    sg.advance(sg.refresh_interval)
    sg.api.leave("host1", "compute")
    sg.advance(sg.refresh_interval)
    assert [(c.joined, c.left) for c in changes] == [
        (frozenset({"host1"}), frozenset()),
        (frozenset(), frozenset({"host1"})),
    ]
    unwatch()
    sg.api.join("host2", "compute")
    sg.advance(sg.refresh_interval)
    assert len(changes) == 2


def test_update_capabilities_reaches_observers(sg: ServiceGroupFixture) -> None:
    sg.api.join("host1", "compute", capabilities={"v": 1})
    sg.api.update_capabilities("host1", "compute", {"v": 2})
    sg.advance(sg.refresh_interval)
    (record,) = sg.api.get_members("compute")
    assert record.capabilities == {"v": 2}
    with pytest.raises(exceptions.MemberNotJoined):
        sg.api.update_capabilities("host9", "compute", {})


def test_bad_ids_raise_before_any_traffic(sg: ServiceGroupFixture) -> None:
    before = dict(sg.store.calls)
    for call in (
        lambda: sg.api.join("a/b", "compute"),
        lambda: sg.api.join("host1", ""),
        lambda: sg.api.join("host1", "compute", capabilities={"x": object()}),
        lambda: sg.api.is_up("a\x00", "compute"),
        lambda: sg.api.get_all("bad group"),
        lambda: sg.api.get_members("g" * 100),
        lambda: sg.api.leave("", "compute"),
    ):
        with pytest.raises(exceptions.InvalidArgument):
            call()
    assert sg.store.calls == before


def test_stop_is_idempotent_and_final(sg: ServiceGroupFixture) -> None:
    sg.api.join("host1", "compute")
    sg.api.stop()
    sg.api.stop()
    with pytest.raises(exceptions.ServiceGroupError, match="stopped"):
        sg.api.join("host1", "compute")


def _conf(**overrides: object) -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    sg_conf.register_opts(conf)
    conf([], default_config_files=[])
    for name, value in overrides.items():
        conf.set_override(name, value)
    return conf


def test_unknown_driver_lists_the_available_ones() -> None:
    with pytest.raises(exceptions.UnknownDriver, match="available: .*tooz"):
        servicegroup.API(conf=_conf(servicegroup_driver="db"))


@pytest.mark.parametrize(
    ("url", "error", "fragment"),
    [
        ("nosuch://x", exceptions.UnknownBackend, "available: .*redis"),
        ("mysql://x", exceptions.UnknownBackend, "no group membership"),
        ("redis-no-scheme", exceptions.InvalidURL, "not a URL"),
        ("redis://h:notaport", exceptions.InvalidURL, "not a valid URL"),
        ("", exceptions.InvalidURL, "empty"),
        ("file://", exceptions.InvalidURL, "no directory"),
        # Options tooz parses itself; nothing listens on port 1, and the
        # error must come at once, not from a background retry loop.
        ("redis://:pw@127.0.0.1:1?timeout=x", exceptions.InvalidURL, "'x'"),
        ("memcached://127.0.0.1:1?membership_timeout=x", exceptions.InvalidURL, "'x'"),
        ("kazoo://127.0.0.1:1?handler=nope", exceptions.InvalidURL, "handler"),
        ("etcd3+http://127.0.0.1:1?timeout=x", exceptions.InvalidURL, "'x'"),
        ("file:///nonexistent?timeout=x", exceptions.InvalidURL, "'x'"),
    ],
)
def test_bad_urls(url: str, error: type[Exception], fragment: str) -> None:
    with pytest.raises(error, match=fragment):
        servicegroup.API(conf=_conf(servicegroup_tooz_url=url))


def test_passwords_never_show(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url = "fake://user:s3cr3t@name?password=s3cr3t&sentinel_password=s3cr3t"
    api = servicegroup.API(conf=_conf(servicegroup_tooz_url=url))
    try:
        shown = [repr(api), repr(api.driver), str(api.describe()), caplog.text]
        assert all("s3cr3t" not in text for text in shown), shown
        assert "***" in api.describe()["url"]
    finally:
        api.stop()
    with pytest.raises(exceptions.ServiceGroupError) as info:
        servicegroup.API(conf=_conf(servicegroup_tooz_url="nosuch://u:s3cr3t@h"))
    assert "s3cr3t" not in str(info.value)


def test_service_down_time_too_short_is_adjusted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    conf = _conf(report_interval=10, service_down_time=5)
    with caplog.at_level(logging.WARNING):
        timing = sg_conf.timing_from_conf(conf)
    assert timing.service_down_time == 25.0
    assert "service_down_time" in caplog.text


def test_register_opts_tolerates_the_host_options() -> None:
    conf = cfg.ConfigOpts()
    # Nova registers these itself, as IntOpts with its own help.
    conf.register_opts(
        [
            cfg.IntOpt("report_interval", default=10),
            cfg.IntOpt("service_down_time", default=60),
        ]
    )
    sg_conf.register_opts(conf)
    sg_conf.register_opts(conf)
    conf([], default_config_files=[])
    assert conf.report_interval == 10
    assert conf.servicegroup_driver == "tooz"


def test_timing_is_translated_into_backend_options() -> None:
    api = servicegroup.API(
        conf=_conf(servicegroup_tooz_url="fake://translate", service_down_time=42)
    )
    try:
        assert api.describe()["membership_timeout"] == 42.0
    finally:
        api.stop()
    explicit = servicegroup.API(
        conf=_conf(servicegroup_tooz_url="fake://t2?membership_timeout=7")
    )
    try:
        assert explicit.describe()["membership_timeout"] == 7.0
    finally:
        explicit.stop()


def test_redacted_url_keeps_its_shape() -> None:
    from servicegroup.drivers.tooz import redact_url

    assert (
        redact_url("redis://user:pw@h:1?password=pw&sentinel=m")
        == "redis://user:***@h:1?password=***&sentinel=m"
    )


def test_client_connection_errors_mean_unavailable() -> None:
    from servicegroup.drivers.tooz.errors import translate_errors

    class ConnectionFailedError(Exception):  # etcd3gw's, by name and module
        pass

    ConnectionFailedError.__module__ = "etcd3gw.exceptions"

    for raised in (ConnectionFailedError("refused"), ConnectionRefusedError()):
        with pytest.raises(exceptions.BackendUnavailable):
            with translate_errors("reading"):
                raise raised
    # Not a client library's error: a bug, which must not be retried as a
    # backend failure (tests/unit/test_errors.py has the rest).
    with pytest.raises(KeyError):
        with translate_errors("reading"):
            raise KeyError("odd")


def test_join_when_the_host_has_no_threads_left(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    """Out of threads (kernel.pid_max, ulimit -u) is a ServiceGroupError
    that says so, and the member is not half-joined."""
    api = servicegroup.API(conf=_conf(servicegroup_tooz_url=f"file://{tmp_path}"))
    try:

        def refuse(self: threading.Thread) -> None:
            raise RuntimeError("can't start new thread")

        with monkeypatch.context() as patch:
            patch.setattr(threading.Thread, "start", refuse)
            with pytest.raises(exceptions.ServiceGroupError, match="too many threads"):
                api.join("host1", "compute")
        with pytest.raises(exceptions.MemberNotJoined):
            api.leave("host1", "compute")
        api.join("host1", "compute")  # threads again: joins as usual
        assert api.is_up("host1", "compute")
    finally:
        api.stop()


def test_is_registered_follows_what_the_backend_accepted(
    sg: ServiceGroupFixture,
) -> None:
    sg.store.set_reachable(False)
    sg.api.join("host1", "compute")  # returns at once, keeps trying
    assert not sg.api.is_registered("host1", "compute")
    sg.store.set_reachable(True)
    sg.advance(sg.report_interval)
    assert sg.api.is_registered("host1", "compute")
    assert not sg.api.is_registered("host2", "compute")  # not joined here
    sg.api.leave("host1", "compute")
    assert not sg.api.is_registered("host1", "compute")


def test_describe_lists_the_endpoints_without_secrets() -> None:
    api = support.make_api("etcd3+http://user:s3cret@127.0.0.1:1?hosts=127.0.0.1:2")
    try:
        assert api.describe()["endpoints"] == ["127.0.0.1:1", "127.0.0.1:2"]
        assert "s3cret" not in str(api.describe())
    finally:
        api.stop()
