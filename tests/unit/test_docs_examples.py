"""Every code example of the documentation, run.

The pages include these examples with ``literalinclude`` (between the
``# [name]`` / ``# [end name]`` markers, or a whole function), so what a
reader copies is what runs here. Change an example here and the page
follows.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from servicegroup.testing import servers

#: The pages that include examples from this file.
DOC_SOURCE = Path(__file__).resolve().parents[2] / "doc" / "source"


def _poll(predicate: Callable[[], Any], timeout: float = 10.0) -> None:
    """Wait for what the docs say happens "a moment later" (real clocks)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout} s: {predicate}")
        time.sleep(0.02)


# -- quickstart ------------------------------------------------------------------


def test_quickstart() -> None:
    # [quickstart-member]
    import tempfile

    from oslo_config import cfg

    import servicegroup
    from servicegroup import conf as sg_conf

    conf = cfg.ConfigOpts()
    sg_conf.register_opts(conf)
    conf([], project="myservice")  # your service's own arguments and files
    state_dir = tempfile.mkdtemp()  # any directory the host's services share
    conf.set_override("servicegroup_tooz_url", f"file://{state_dir}")

    api = servicegroup.API(conf=conf)
    api.join("host1", "compute", capabilities={"version": "1.2"})  # at once
    # [end quickstart-member]
    try:
        _poll(lambda: api.is_up("host1", "compute"))
        # [quickstart-observer]
        assert api.is_up("host1", "compute")
        assert api.service_is_up({"host": "host1", "topic": "compute"})
        assert not api.service_is_up(
            {"host": "host1", "topic": "compute", "forced_down": True}
        )
        assert api.get_all("compute") == ["host1"]

        [member] = api.get_members("compute")
        assert member.capabilities == {"version": "1.2"}
        assert member.updated_at is not None  # an aware UTC datetime
        # [end quickstart-observer]
        # [quickstart-leave]
        api.leave("host1", "compute")  # observers see it down at once
        # [end quickstart-leave]
        _poll(lambda: not api.is_up("host1", "compute"))
    finally:
        # [quickstart-stop]
        api.stop()  # leaves everything joined here; call it at shutdown
        # [end quickstart-stop]
        shutil.rmtree(state_dir)


def test_quickstart_context_manager(tmp_path: Path) -> None:
    from oslo_config import cfg

    from servicegroup import conf as sg_conf

    conf = cfg.ConfigOpts()
    sg_conf.register_opts(conf)
    conf([], project="myservice")
    conf.set_override("servicegroup_tooz_url", f"file://{tmp_path}")
    # [quickstart-with]
    import servicegroup

    with servicegroup.API(conf=conf) as api:
        api.join("host1", "conductor")
        ...  # serve; stop() runs on the way out, even on error
    # [end quickstart-with]


# -- testing guide: pytest ---------------------------------------------------------


# [testing-pytest]
def test_a_crashed_compute_goes_down(servicegroup_fake):
    sg = servicegroup_fake  # fake backend, fake clock, cleaned up after
    sg.api.join("host1", "compute")
    assert sg.api.is_up("host1", "compute")

    sg.crash("host1", "compute")  # heartbeats stop; it does not leave
    sg.advance(sg.service_down_time - sg.report_interval)
    assert sg.api.is_up("host1", "compute")  # not yet

    sg.advance(2 * sg.report_interval)  # no sleeping: time is fake
    assert not sg.api.is_up("host1", "compute")


# [end testing-pytest]


# [testing-observer]
def test_a_graceful_leave_is_seen_within_one_refresh(servicegroup_fake):
    sg = servicegroup_fake
    scheduler = sg.new_api()  # another process, same backend and clock
    sg.api.join("host1", "compute", capabilities={"cells": [1]})
    sg.api.join("host2", "compute")
    assert scheduler.get_all("compute") == ["host1", "host2"]

    sg.api.leave("host2", "compute")
    sg.advance(sg.refresh_interval)
    assert scheduler.get_all("compute") == ["host1"]
    members = {m.id: m for m in scheduler.get_members("compute")}
    assert members["host1"].capabilities == {"cells": [1]}
    assert not members["host2"].is_up  # still listed, as down


# [end testing-observer]


# [testing-clock]
def test_heartbeat_times_follow_the_fake_clock(servicegroup_fake):
    import datetime

    sg = servicegroup_fake
    ref = {"host": "host1", "topic": "compute"}
    sg.api.join("host1", "compute")
    first = sg.api.get_updated_time(ref)
    assert first == datetime.datetime.fromtimestamp(
        sg.clock.time(), datetime.timezone.utc
    )

    sg.advance(sg.report_interval)  # one heartbeat...
    sg.advance(sg.refresh_interval)  # ...and one refresh of the view
    later = sg.api.get_updated_time(ref)
    assert later - first == datetime.timedelta(seconds=sg.report_interval)


# [end testing-clock]


# [testing-outage]
def test_an_unreachable_backend_does_not_take_the_group_down(servicegroup_fake):
    sg = servicegroup_fake
    sg.api.join("host1", "compute")
    assert sg.api.is_up("host1", "compute")

    sg.store.set_reachable(False)  # every backend call fails now
    sg.advance(3 * sg.service_down_time)
    assert sg.api.is_up("host1", "compute")  # the last good view...
    [member] = sg.api.get_members("compute")
    assert member.stale  # ...marked stale

    sg.store.set_reachable(True)
    sg.store.wipe()  # and it came back empty, as after a restart
    sg.advance(sg.report_interval + sg.refresh_interval)
    [member] = sg.api.get_members("compute")
    assert member.is_up and not member.stale  # joined again by itself


# [end testing-outage]


# -- testing guide: unittest / fixtures -------------------------------------------


# [testing-unittest]
import fixtures  # noqa: E402

from servicegroup.testing import ServiceGroupFixture  # noqa: E402


class TestScheduling(fixtures.TestWithFixtures):
    def setUp(self):
        super().setUp()
        # Nova's timing: beats every 10 s, down after 60 s of silence.
        self.sg = self.useFixture(
            ServiceGroupFixture(report_interval=10, service_down_time=60)
        )

    def test_only_live_hosts_are_candidates(self):
        self.sg.api.join("host1", "compute")
        self.sg.api.join("host2", "compute")
        self.sg.crash("host2", "compute")
        self.sg.advance(70)
        self.assertEqual(["host1"], self.sg.api.get_all("compute"))


# [end testing-unittest]


# -- testing guide: code that builds its own API (the Nova pattern) --------------

# [testing-own-api]
import threading  # noqa: E402

import fixtures  # noqa: E402, F811
from oslo_config import cfg  # noqa: E402

import servicegroup  # noqa: E402
from servicegroup.testing import ServiceGroupFixture  # noqa: E402, F811


class ComputeService:
    """The code under test: it builds its own API, as Nova's Service does."""

    def __init__(self, host: str, conf: cfg.ConfigOpts) -> None:
        self.host = host
        self.servicegroup_api = servicegroup.API(conf=conf)

    def start(self) -> None:
        self.servicegroup_api.join(self.host, "compute")


class TestComputeService(fixtures.TestWithFixtures):
    def setUp(self):
        super().setUp()
        self.conf = cfg.ConfigOpts()
        self.sg = self.useFixture(ServiceGroupFixture(conf=self.conf))

    def test_a_crashed_compute_goes_down(self):
        threads = set(threading.enumerate())
        compute = ComputeService("host1", self.conf)  # after the fixture
        compute.start()
        self.assertTrue(self.sg.api.is_up("host1", "compute"))
        self.sg.crash("host1", "compute", api=compute.servicegroup_api)
        self.sg.advance(70)  # the fixture's clock runs the service's API
        self.assertFalse(self.sg.api.is_up("host1", "compute"))
        self.assertEqual(threads, set(threading.enumerate()))  # none started


# [end testing-own-api]


# -- testing guide: a fake:// URL in your own configuration --------------------------


def test_fake_url_with_your_own_conf() -> None:
    # [testing-fake-url]
    from oslo_config import cfg

    import servicegroup
    from servicegroup import conf as sg_conf
    from servicegroup.testing import FakeClock, fake_backend

    clock = FakeClock()
    fake_backend.store("billing-tests").clock = clock.monotonic  # expiry time

    conf = cfg.ConfigOpts()
    sg_conf.register_opts(conf)
    conf([], default_config_files=[])
    conf.set_override("servicegroup_tooz_url", "fake://billing-tests")

    worker = servicegroup.API(conf=conf, clock=clock)
    monitor = servicegroup.API(conf=conf, clock=clock)  # same store
    worker.join("billing-1", "billing")
    assert monitor.get_all("billing") == ["billing-1"]

    worker.stop()
    monitor.stop()
    fake_backend.drop_store("billing-tests")  # forget it for the next test
    # [end testing-fake-url]
    assert "billing-tests" not in fake_backend._STORES


# -- testing guide: real servers ------------------------------------------------------


@pytest.mark.skipif(
    not servers.available("memcached"), reason=servers.missing_reason("memcached")
)
def test_against_a_real_memcached() -> None:
    from oslo_config import cfg

    from servicegroup import conf as sg_conf

    def make_conf(url: str) -> cfg.ConfigOpts:
        conf = cfg.ConfigOpts()
        sg_conf.register_opts(conf)
        conf([], default_config_files=[])
        conf.set_override("servicegroup_tooz_url", url)
        conf.set_override("report_interval", 0.5)
        conf.set_override("service_down_time", 3.0)
        return conf

    wait_until = _poll
    # [testing-servers]
    import servicegroup
    from servicegroup.testing.servers import MemcachedServer

    with MemcachedServer() as memcached:  # a free 127.0.0.1 port, killed after
        api = servicegroup.API(conf=make_conf(memcached.url))
        try:
            api.join("host1", "compute")
            wait_until(lambda: api.is_up("host1", "compute"))

            memcached.restart()  # comes back empty: host1 is gone from it
            # api's own view keeps host1 up for a while (it was up before the
            # outage), so ask a new observer, which only sees the server:
            observer = servicegroup.API(conf=make_conf(memcached.url))
            wait_until(lambda: observer.is_up("host1", "compute"))  # joined again
            observer.stop()
        finally:
            api.stop()
    # [end testing-servers]


@pytest.mark.skipif(
    not servers.available("memcached"), reason=servers.missing_reason("memcached")
)
def test_the_real_server_example_waits_for_the_rejoin() -> None:
    """The check of ``testing-servers`` fails while the member cannot rejoin.

    A member that stopped beating (abandoned, as after a crash) is still up
    in its own process's view right after the restart, which is why that
    view cannot tell that the member joined again; a new observer sees it
    down until it really does.
    """
    import servicegroup
    from servicegroup.testing.servers import MemcachedServer

    conf = _memcached_conf
    with MemcachedServer() as memcached:
        api = servicegroup.API(conf=conf(memcached.url))
        try:
            api.join("host1", "compute")
            _poll(lambda: api.is_up("host1", "compute"))
            api.driver.abandon("host1", "compute")  # beats no more, never rejoins
            memcached.restart()
            # What the example checked before: true with nobody there.
            assert api.is_up("host1", "compute")
            observer = servicegroup.API(conf=conf(memcached.url))
            try:
                assert not observer.is_up("host1", "compute")
            finally:
                observer.stop()
        finally:
            api.stop()


def _memcached_conf(url: str) -> Any:
    from oslo_config import cfg

    from servicegroup import conf as sg_conf

    conf = cfg.ConfigOpts()
    sg_conf.register_opts(conf)
    conf([], default_config_files=[])
    conf.set_override("servicegroup_tooz_url", url)
    conf.set_override("report_interval", 0.5)
    conf.set_override("service_down_time", 3.0)
    return conf


# -- testing guide: fake:// with tooz directly (Ceilometer, Aodh) ------------------


@pytest.fixture
def _forget_tooz_stores() -> Iterator[None]:
    from servicegroup.testing import fake_backend

    yield
    for name in ("aodh-locks", "ceilometer-election", "ceilometer-agents"):
        fake_backend.drop_store(name)


@pytest.mark.usefixtures("_forget_tooz_stores")
def test_tooz_lock() -> None:
    # [tooz-lock]
    from tooz import coordination

    url = "fake://aodh-locks"  # what the code under test reads from its config
    evaluator1 = coordination.get_coordinator(url, b"evaluator-1")
    evaluator2 = coordination.get_coordinator(url, b"evaluator-2")
    evaluator1.start()
    evaluator2.start()

    with evaluator1.get_lock(b"alarm-42"):
        # Held: the other evaluator cannot take it, nor wait it out.
        assert not evaluator2.get_lock(b"alarm-42").acquire(blocking=False)
        assert not evaluator2.get_lock(b"alarm-42").acquire(blocking=0.1)
    assert evaluator2.get_lock(b"alarm-42").acquire(blocking=False)

    evaluator1.stop()
    evaluator2.stop()  # a stopped coordinator's locks are free again
    # [end tooz-lock]


@pytest.mark.usefixtures("_forget_tooz_stores")
def test_tooz_leader_election() -> None:
    # [tooz-election]
    from tooz import coordination

    url = "fake://ceilometer-election"
    group = b"central-agents"
    agent1 = coordination.get_coordinator(url, b"agent-1")
    agent2 = coordination.get_coordinator(url, b"agent-2")
    agent1.start()
    agent2.start()
    leaders = []
    for agent in (agent1, agent2):
        agent.watch_elected_as_leader(group, lambda e: leaders.append(e.member_id))

    agent1.run_watchers()  # the code under test calls this periodically
    agent2.run_watchers()
    assert leaders == [b"agent-1"]
    assert agent2.get_leader(group).get() == b"agent-1"

    agent1.stand_down_group_leader(group)  # or agent1.stop()
    agent2.run_watchers()
    assert leaders == [b"agent-1", b"agent-2"]

    agent1.stop()
    agent2.stop()
    # [end tooz-election]


@pytest.mark.usefixtures("_forget_tooz_stores")
def test_tooz_group_watcher_on_fake_time() -> None:
    # [tooz-watcher]
    from tooz import coordination

    from servicegroup.testing import FakeClock, fake_backend

    clock = FakeClock()
    fake_backend.store("ceilometer-agents").clock = clock.monotonic

    url = "fake://ceilometer-agents?membership_timeout=30"
    group = b"notification-agents"
    watcher = coordination.get_coordinator(url, b"agent-1")
    crasher = coordination.get_coordinator(url, b"agent-2")
    watcher.start()
    crasher.start()
    watcher.join_group_create(group)
    events = []
    watcher.watch_join_group(group, events.append)
    watcher.watch_leave_group(group, events.append)

    crasher.join_group(group).get()
    watcher.run_watchers()
    assert [type(e).__name__ for e in events] == ["MemberJoinedGroup"]

    clock.advance(20)
    watcher.heartbeat()  # agent-1 beats; agent-2 has crashed and does not
    clock.advance(20)
    watcher.run_watchers()
    assert [(type(e).__name__, e.member_id) for e in events[1:]] == [
        ("MemberLeftGroup", b"agent-2")
    ]
    assert watcher.get_members(group).get() == {b"agent-1"}

    watcher.stop()
    crasher.stop()
    fake_backend.drop_store("ceilometer-agents")
    # [end tooz-watcher]


# -- the markers above are the ones the pages include ---------------------------------


def test_every_included_example_exists() -> None:
    """A page naming a marker this file lacks would fail the docs build."""
    source = Path(__file__).read_text()
    for page in DOC_SOURCE.glob("*.rst"):
        text = page.read_text()
        for line in text.splitlines():
            line = line.strip()
            if line.startswith(":start-after: # ["):
                assert line.split(":start-after: ", 1)[1] in source, page
    assert os.path.isdir(DOC_SOURCE)
