"""Nova's driver interface (servicegroup.nova) as Nova uses it.

Nova's options are registered the way ``nova.conf`` registers them (Nova
itself is not a test dependency of this suite: its own functional tests run
with our driver in ``tools/run-nova-tests.sh``). Services are tied to real
oslo.service thread groups, of both backends Nova runs on.
"""

from __future__ import annotations

import collections
import datetime
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from oslo_config import cfg

import servicegroup
from servicegroup import conf as sg_conf
from servicegroup import exceptions, nova
from servicegroup.testing import ServiceGroupFixture


def nova_options() -> list[cfg.Opt]:
    """Nova 34's definitions of the options it shares with us."""
    return [
        cfg.StrOpt(
            "servicegroup_driver",
            default="db",
            choices=[("db", "Database"), ("mc", "Memcache"), ("tooz", "tooz")],
        ),
        cfg.IntOpt("report_interval", default=10),
        cfg.IntOpt("service_down_time", default=60),
    ]


@pytest.fixture
def nova_conf(monkeypatch: pytest.MonkeyPatch) -> cfg.ConfigOpts:
    """A private global CONF, as ``nova.conf`` leaves it."""
    conf = cfg.ConfigOpts()
    conf.register_opts(nova_options())
    conf([], project="nova", default_config_files=[])
    monkeypatch.setattr(cfg, "CONF", conf)
    return conf


@pytest.fixture
def sg(nova_conf: cfg.ConfigOpts) -> Iterator[ServiceGroupFixture]:
    fixture = ServiceGroupFixture(conf=nova_conf)
    fixture.setUp()
    yield fixture
    fixture.cleanUp()


def _eventlet_group() -> Any:
    from oslo_service.backend._eventlet import threadgroup

    return threadgroup.ThreadGroup()


def _threading_group() -> Any:
    from oslo_service.backend._threading import threadgroup

    return threadgroup.ThreadGroup()


class Service:
    """What Nova's driver sees of ``nova.service.Service``."""

    def __init__(self, new_group: Callable[[], Any], report_interval: Any = 10):
        self.tg = new_group()
        self.report_interval = report_interval

    def stop(self) -> None:
        # nova.service.Service.stop() ends with oslo.service's Service.stop()
        self.tg.stop()


@pytest.fixture(params=[_eventlet_group, _threading_group], ids=["eventlet", "threads"])
def new_group(request: pytest.FixtureRequest) -> Callable[[], Any]:
    factory: Callable[[], Any] = request.param
    return factory


def test_nova_options_registered_first_win(nova_conf: cfg.ConfigOpts) -> None:
    nova.ToozDriver()
    assert nova_conf.report_interval == 10
    assert isinstance(nova_conf.report_interval, int)
    assert nova_conf.servicegroup_driver == "db"
    assert nova_conf.servicegroup_tooz_url.startswith("file://")


def test_nova_options_registered_after_ours(monkeypatch: pytest.MonkeyPatch) -> None:
    conf = cfg.ConfigOpts()
    monkeypatch.setattr(cfg, "CONF", conf)
    sg_conf.register_host_opts(conf)
    # What importing nova.conf then does; it raised DuplicateOptError when
    # servicegroup registered report_interval first.
    conf.register_opts(nova_options())
    conf([], project="nova", default_config_files=[])
    assert isinstance(conf.service_down_time, int)
    assert conf.servicegroup_driver == "db"


def test_a_host_without_novas_options_gets_our_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conf = cfg.ConfigOpts()
    monkeypatch.setattr(cfg, "CONF", conf)
    sg_conf.register_host_opts(conf)
    conf([], project="not-nova", default_config_files=[])
    conf.set_override("servicegroup_tooz_url", "fake://not-nova")
    try:
        driver = nova.ToozDriver()
        assert driver.api.describe()["report_interval"] == 10.0
        assert "report_interval" not in conf
    finally:
        nova.stop_shared_drivers()


def test_facade_on_novas_conf_uses_tooz_for_novas_db(
    nova_conf: cfg.ConfigOpts,
) -> None:
    sg_conf.register_host_opts(nova_conf)
    nova_conf.set_override("servicegroup_tooz_url", "fake://nova-db-choice")
    api = servicegroup.API(conf=nova_conf)
    try:
        assert api.describe()["driver"] == "tooz"
    finally:
        api.stop()


def test_facade_shares_the_adjusted_down_time(nova_conf: cfg.ConfigOpts) -> None:
    sg_conf.register_host_opts(nova_conf)
    nova_conf.set_override("servicegroup_tooz_url", "fake://nova-adjusted")
    nova_conf.set_override("report_interval", 10)
    nova_conf.set_override("service_down_time", 10)
    api = servicegroup.API(conf=nova_conf)
    try:
        assert nova_conf.service_down_time == 25
        assert api.describe()["service_down_time"] == 25
    finally:
        api.stop()


def test_every_driver_of_a_process_shares_one_backend_driver(
    nova_conf: cfg.ConfigOpts,
) -> None:
    sg_conf.register_host_opts(nova_conf)
    nova_conf.set_override("servicegroup_tooz_url", "fake://nova-shared")
    try:
        drivers = [nova.ToozDriver() for _ in range(10)]
        assert len({id(d.api.driver) for d in drivers}) == 1
        nova_conf.set_override("servicegroup_tooz_url", "fake://nova-other")
        assert nova.ToozDriver().api.driver is not drivers[0].api.driver
    finally:
        nova.stop_shared_drivers()


def test_stopped_service_is_down_at_once(
    sg: ServiceGroupFixture, new_group: Callable[[], Any]
) -> None:
    compute = Service(new_group)
    nova.ToozDriver().join("host1", "compute", compute)
    scheduler = nova.ToozDriver()
    assert scheduler.is_up({"host": "host1", "topic": "compute"})
    compute.stop()
    # No time passes: the leave itself tells the local view.
    assert not scheduler.is_up({"host": "host1", "topic": "compute"})
    assert sg.api.get_all("compute") == []


def test_a_member_joined_under_another_timing_is_up_at_once(
    sg: ServiceGroupFixture,
    nova_conf: cfg.ConfigOpts,
    new_group: Callable[[], Any],
) -> None:
    # As Nova's test_bug_1938326 does: the scheduler starts on the default
    # timing, then report_interval changes and the computes start, joining
    # through the shared driver of that other timing.
    scheduler = nova.ToozDriver()
    assert not scheduler.is_up({"host": "src", "topic": "compute"})
    nova_conf.set_override("report_interval", 1)
    nova_conf.set_override("service_down_time", 6)
    compute_driver = nova.ToozDriver()
    assert compute_driver.api.driver is not scheduler.api.driver
    compute = Service(new_group)
    compute_driver.join("src", "compute", compute)
    # No time passes, so no refresh: the join itself answers.
    assert scheduler.is_up({"host": "src", "topic": "compute"})
    compute.stop()
    assert not scheduler.is_up({"host": "src", "topic": "compute"})


def test_restarted_service_joins_again(
    sg: ServiceGroupFixture, new_group: Callable[[], Any]
) -> None:
    compute = Service(new_group)
    driver = nova.ToozDriver()
    driver.join("host1", "compute", compute)
    compute.stop()
    driver.join("host1", "compute", compute)  # Service.start() after a SIGHUP
    assert driver.is_up({"host": "host1", "topic": "compute"})
    compute.stop()
    assert not driver.is_up({"host": "host1", "topic": "compute"})


def test_killed_service_is_down_after_service_down_time(
    sg: ServiceGroupFixture, new_group: Callable[[], Any]
) -> None:
    compute = Service(new_group)
    driver = nova.ToozDriver()
    driver.join("host1", "compute", compute)
    sg.crash("host1", "compute", api=driver.api)  # SIGKILL: no stop, no beats
    sg.advance(sg.service_down_time - 1)
    assert driver.is_up({"host": "host1", "topic": "compute"})
    sg.advance(1 + sg.refresh_interval)
    assert not driver.is_up({"host": "host1", "topic": "compute"})


@pytest.mark.parametrize("report_interval", [0, None])
def test_service_that_does_not_report_is_never_up(
    sg: ServiceGroupFixture, new_group: Callable[[], Any], report_interval: Any
) -> None:
    driver = nova.ToozDriver()
    driver.join("host1", "compute", Service(new_group, report_interval))
    sg.advance(sg.report_interval)
    assert not driver.is_up({"host": "host1", "topic": "compute"})


class NovaObject:
    """Like nova.objects.Service: attributes, and a lazy load that raises."""

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)

    def __getattr__(self, name: str) -> Any:
        raise NotImplementedError(f"Cannot load '{name}' in the base class")


def test_service_ref_forms_nova_passes(sg: ServiceGroupFixture) -> None:
    nova.ToozDriver().join("host1", "compute")
    driver = nova.ToozDriver()
    assert driver.is_up({"host": "host1", "topic": "compute"})
    assert driver.is_up({"host": "host1", "topic": None, "binary": "compute"})
    assert driver.is_up(NovaObject(host="host1", topic="compute"))
    assert driver.is_up(NovaObject(host="host1", binary="compute"))
    # The scheduler's HostState.service: Nova's ReadOnlyDict, a UserDict
    assert driver.is_up(collections.UserDict(host="host1", topic="compute"))
    # A compute node joined with its service, as the hypervisors API reads it
    assert driver.is_up({"host": "host1", "topic": "compute", "hypervisor": "x"})
    assert not driver.is_up({"host": "host2", "topic": "compute"})
    with pytest.raises(exceptions.InvalidArgument):
        driver.is_up({"topic": "compute"})


def test_updated_time_is_the_newer_of_beat_and_row(sg: ServiceGroupFixture) -> None:
    driver = nova.ToozDriver()
    driver.join("host1", "compute")
    beat = sg.api.get_updated_time({"host": "host1", "topic": "compute"})
    assert beat is not None
    older = beat - datetime.timedelta(hours=1)
    newer = beat + datetime.timedelta(hours=1)
    ref = {"host": "host1", "topic": "compute"}
    assert driver.updated_time({**ref, "updated_at": None}) == beat
    assert driver.updated_time({**ref, "updated_at": older}) == beat
    assert driver.updated_time({**ref, "updated_at": newer}) == newer
    naive = newer.replace(tzinfo=None)
    assert driver.updated_time({**ref, "updated_at": naive}) == newer
    unknown = {"host": "host9", "topic": "compute", "updated_at": older}
    assert driver.updated_time(unknown) == older


def test_fixture_cleanup_stops_the_shared_driver(nova_conf: cfg.ConfigOpts) -> None:
    before = set(threading.enumerate())
    fixture = ServiceGroupFixture(conf=nova_conf)
    fixture.setUp()
    driver = nova.ToozDriver()
    driver.join("host1", "compute")
    assert driver.is_up({"host": "host1", "topic": "compute"})
    shared = driver._sg.driver
    fixture.cleanUp()
    assert getattr(shared, "stopped", False)
    assert set(threading.enumerate()) <= before


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def test_a_service_the_backend_never_saw_is_judged_by_its_row(
    sg: ServiceGroupFixture,
) -> None:
    """A cell switching from db: services still on db report to their rows."""
    driver = nova.ToozDriver()
    recent = _utcnow() - datetime.timedelta(seconds=5)
    old = _utcnow() - datetime.timedelta(seconds=sg.service_down_time + 5)
    ref = {"host": "on-db", "topic": "compute"}
    assert driver.is_up({**ref, "last_seen_up": recent, "created_at": old})
    assert not driver.is_up({**ref, "last_seen_up": old, "created_at": old})
    assert driver.is_up({**ref, "last_seen_up": None, "created_at": recent})
    naive = recent.replace(tzinfo=None).isoformat()  # a row that came over RPC
    assert driver.is_up({**ref, "last_seen_up": naive, "created_at": old})
    assert not driver.is_up(ref)  # no row times at all


def test_a_service_the_backend_knows_is_judged_by_the_backend(
    sg: ServiceGroupFixture, new_group: Callable[[], Any]
) -> None:
    compute = Service(new_group)
    driver = nova.ToozDriver()
    driver.join("host1", "compute", compute)
    row = {"host": "host1", "topic": "compute", "last_seen_up": _utcnow()}
    assert driver.is_up(row)
    compute.stop()
    assert not driver.is_up(row), "a fresh row must not keep a stopped service up"
