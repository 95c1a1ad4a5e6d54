"""A ``fixtures.Fixture`` giving a test its own in-memory service group."""

from __future__ import annotations

import itertools
import os
from typing import Any

import fixtures
from oslo_config import cfg

from servicegroup import api as sg_api
from servicegroup import conf as sg_conf
from servicegroup.testing import clock as fake_clock
from servicegroup.testing import fake_backend

_counter = itertools.count()


class ServiceGroupFixture(fixtures.Fixture):
    """An :class:`servicegroup.API` on a private ``fake://`` backend.

    Time is a :class:`~servicegroup.testing.FakeClock` shared by the API and
    the backend: ``fixture.advance(seconds)`` runs heartbeats and refreshes
    and expires members whose heartbeats stopped, with no sleeping.

    While the fixture is active, every ``servicegroup.API`` built in the
    process, with or without a conf, and Nova's
    :class:`servicegroup.nova.ToozDriver`, is on this backend and clock;
    clean-up stops them all::

        sg = self.useFixture(ServiceGroupFixture())
        sg.api.join("host1", "compute")
        sg.crash("host1", "compute")             # stops beating, does not leave
        sg.advance(sg.service_down_time + sg.report_interval)
        assert not sg.api.is_up("host1", "compute")

    :param report_interval: seconds between heartbeats (Nova's default).
    :param service_down_time: seconds until a silent member is down.
    :param refresh_interval: seconds between refreshes of the local view.
    :param conf: a ConfigOpts to use (options are registered and overridden).
    """

    def __init__(
        self,
        report_interval: float = 10.0,
        service_down_time: float = 60.0,
        refresh_interval: float = 1.0,
        conf: cfg.ConfigOpts | None = None,
    ) -> None:
        super().__init__()
        self.report_interval = report_interval
        self.service_down_time = service_down_time
        self.refresh_interval = refresh_interval
        self._conf = conf

    def _setUp(self) -> None:
        self.name = f"fixture-{os.getpid()}-{next(_counter)}"
        self.url = f"fake://{self.name}"
        self.clock = fake_clock.FakeClock()
        self.store = fake_backend.store(self.name)
        self.store.clock = self.clock.monotonic
        self.addCleanup(fake_backend.drop_store, self.name)
        self.conf = self._conf or cfg.ConfigOpts()
        sg_conf.register_opts(self.conf)
        if self._conf is None:
            self.conf([], project="servicegroup", default_config_files=[])
        overrides: dict[str, Any] = {
            "servicegroup_tooz_url": self.url,
            "report_interval": self.report_interval,
            "service_down_time": self.service_down_time,
            "servicegroup_refresh_interval": self.refresh_interval,
        }
        for name, value in overrides.items():
            self.conf.set_override(name, value)
            self.addCleanup(self.conf.clear_override, name)
        # Code under test that builds its own API (or Nova's driver) while
        # the fixture is active lands here too; clean-up stops all of them.
        self.override = sg_api.BackendOverride(self.url, self.clock, self.conf)
        previous = sg_api.set_override(self.override)
        self.addCleanup(sg_api.set_override, previous)
        self.addCleanup(self.override.stop_all)
        self.api = self.new_api()

    def new_api(self) -> sg_api.API:
        """Another API on the same backend and clock (another process)."""
        api = sg_api.API(conf=self.conf, clock=self.clock)
        self.addCleanup(api.stop)
        return api

    def advance(self, seconds: float) -> None:
        """Move time forward, running what falls due."""
        self.clock.advance(seconds)

    def crash(
        self, member_id: str, group_id: str, api: sg_api.API | None = None
    ) -> None:
        """Stop a member's heartbeats without leaving, as a crash would."""
        driver = (api or self.api).driver
        abandon = getattr(driver, "abandon", None)
        if abandon is None:
            raise TypeError(f"{driver!r} cannot simulate a crash")
        abandon(member_id, group_id)
