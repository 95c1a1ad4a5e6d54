"""A fixture reaches every API the code under test builds while it is active."""

from __future__ import annotations

import threading

import pytest
from oslo_config import cfg

import servicegroup
from servicegroup import api as sg_api
from servicegroup import conf as sg_conf
from servicegroup.testing import ServiceGroupFixture


def test_apis_built_without_or_with_any_conf_are_on_the_fixture() -> None:
    before = set(threading.enumerate())
    fixture = ServiceGroupFixture()
    fixture.setUp()
    unrelated = cfg.ConfigOpts()
    sg_conf.register_opts(unrelated)
    unrelated([], default_config_files=[])
    built = [servicegroup.API(), servicegroup.API(conf=unrelated)]
    built[0].join("host1", "compute")
    built[1].join("host2", "compute")
    assert fixture.api.get_all("compute") == ["host1", "host2"]
    assert all(api.describe()["url"] == fixture.url for api in built)
    fixture.crash("host1", "compute", api=built[0])
    fixture.advance(fixture.service_down_time + fixture.refresh_interval)
    assert built[1].get_all("compute") == ["host2"]  # on the fake clock
    fixture.cleanUp()
    assert all(getattr(api.driver, "stopped", False) for api in built)
    assert sg_api.active_override() is None
    assert set(threading.enumerate()) <= before


def test_nested_fixtures_restore_the_outer_one() -> None:
    outer = ServiceGroupFixture()
    outer.setUp()
    inner = ServiceGroupFixture()
    inner.setUp()
    assert servicegroup.API().describe()["url"] == inner.url
    inner.cleanUp()
    assert servicegroup.API().describe()["url"] == outer.url
    outer.cleanUp()
    assert sg_api.active_override() is None


def test_the_pytest_plugin_reaches_apis_too(
    servicegroup_fake: ServiceGroupFixture,
) -> None:
    api = servicegroup.API()
    api.join("host1", "compute")
    assert servicegroup_fake.api.is_up("host1", "compute")


@pytest.mark.parametrize("round_", range(2))
def test_no_state_leaks_between_tests(
    servicegroup_fake: ServiceGroupFixture, round_: int
) -> None:
    assert servicegroup.API().get_all("compute") == []
    servicegroup.API().join(f"host{round_}", "compute")
