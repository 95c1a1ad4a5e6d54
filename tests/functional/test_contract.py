"""The contract every backend honours, checked against each real backend.

The same tests run on fake://, file://, Redis, memcached, ZooKeeper and
etcd (see conftest.py); a backend-specific test belongs elsewhere.
"""

from __future__ import annotations

import datetime
import signal

import pytest

import servicegroup
from servicegroup import exceptions
from tests import support

FAST = support.FAST
#: Slack for a loaded 2-core machine on top of the promised bounds.
SLACK = 2.0


@pytest.fixture
def apis(backend_url: str):
    """(member side, observer side): two APIs, as two processes would be."""
    member = support.make_api(backend_url)
    observer = support.make_api(backend_url)
    yield member, observer
    member.stop()
    observer.stop()


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def test_join_is_seen_with_capabilities(apis, group):
    member, observer = apis
    member.join("host1", group, capabilities={"version": "1.2", "cells": [1]})
    member.join("host2", group)
    support.wait_until(
        lambda: observer.get_all(group) == ["host1", "host2"],
        5,
        "both members up",
    )
    assert observer.is_up("host1", group)
    assert observer.service_is_up({"host": "host2", "topic": group})
    assert not observer.is_up("host3", group)
    records = {m.id: m for m in observer.get_members(group)}
    assert records["host1"].capabilities == {"version": "1.2", "cells": [1]}
    assert records["host2"].capabilities == {}
    assert records["host1"].is_up and not records["host1"].stale
    assert records["host1"].group_id == group


def test_updated_time_follows_heartbeats(apis, group, backend_url):
    member, observer = apis
    member.join("host1", group)
    ref = {"host": "host1", "topic": group}
    first = support.wait_until(
        lambda: observer.get_updated_time(ref), 5, "an updated time"
    )
    assert first.tzinfo is not None and first.utcoffset() == datetime.timedelta(0)
    later = support.wait_until(
        lambda: (t := observer.get_updated_time(ref)) and t > first and t,
        5,
        "the updated time to advance",
    )
    # Accurate to one report_interval (plus one refresh of the view).
    age = (_now() - later).total_seconds()
    bound = FAST["report_interval"] + FAST["servicegroup_refresh_interval"]
    assert -SLACK < age < bound + SLACK


def test_leave_is_seen_within_one_refresh(apis, group):
    member, observer = apis
    member.join("host1", group)
    support.wait_until(lambda: observer.is_up("host1", group), 5, "member up")
    member.leave("host1", group)
    support.wait_until(
        lambda: not observer.is_up("host1", group),
        FAST["servicegroup_refresh_interval"] + SLACK,
        "the member that left to be down",
    )
    down = [m for m in observer.get_members(group) if m.id == "host1"]
    assert down and not down[0].is_up
    assert observer.get_updated_time({"host": "host1", "topic": group})


def test_rejoin_updates_capabilities(apis, group):
    member, observer = apis
    member.join("host1", group, capabilities={"version": "1"})
    support.wait_until(lambda: observer.is_up("host1", group), 5, "member up")
    member.join("host1", group, capabilities={"version": "2"})

    def version() -> object:
        for m in observer.get_members(group):
            if m.id == "host1":
                return m.capabilities.get("version")
        return None

    support.wait_until(lambda: version() == "2", 5, "the new capabilities")


def test_same_member_in_two_groups_is_independent(apis, group):
    member, observer = apis
    other = group + "-b"
    member.join("host1", group)
    member.join("host1", other)
    support.wait_until(
        lambda: observer.is_up("host1", group) and observer.is_up("host1", other),
        5,
        "member up in both groups",
    )
    member.leave("host1", other)
    support.wait_until(
        lambda: not observer.is_up("host1", other), 3, "left the second group"
    )
    assert observer.is_up("host1", group)


def test_stop_leaves_every_member(backend_url, group):
    member = support.make_api(backend_url)
    observer = support.make_api(backend_url)
    try:
        member.join("host1", group)
        member.join("host2", group)
        support.wait_until(lambda: len(observer.get_all(group)) == 2, 5, "members up")
        member.stop()
        member.stop()  # idempotent
        support.wait_until(
            lambda: observer.get_all(group) == [],
            FAST["servicegroup_refresh_interval"] + SLACK,
            "every member down after stop",
        )
        with pytest.raises(servicegroup.exceptions.ServiceGroupError):
            member.join("host3", group)
    finally:
        member.stop()
        observer.stop()


def test_killed_member_process_goes_down(backend_url, group):
    if backend_url.startswith("fake://"):
        pytest.skip("fake:// lives in one process; see tests/unit/test_api.py")
    observer = support.make_api(backend_url)
    proc = support.start_member_process(backend_url, "host1", group)
    try:
        support.wait_until(lambda: observer.is_up("host1", group), 5, "member up")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        support.wait_until(
            lambda: not observer.is_up("host1", group),
            FAST["service_down_time"] + FAST["report_interval"] + SLACK * 2,
            "the killed member to be down",
        )
    finally:
        proc.kill()
        proc.wait()
        observer.stop()


def test_groups_are_listed(apis, group):
    member, observer = apis
    member.join("host1", group)
    support.wait_until(lambda: observer.is_up("host1", group), 5, "member up")
    assert group in observer.get_groups()


def test_empty_groups_can_be_deleted(apis, group):
    member, observer = apis
    member.join("host1", group)
    support.wait_until(lambda: observer.get_all(group) == ["host1"], 5, "joined")
    with pytest.raises(exceptions.GroupNotEmpty):
        observer.delete_group(group)
    member.leave("host1", group)
    support.wait_until(lambda: not observer.is_up("host1", group), 5, "left")
    observer.delete_group(group)
    assert group not in observer.get_groups()
    with pytest.raises(exceptions.GroupNotFound):
        observer.delete_group(group)


def test_a_partitioner_right_after_join_owns_its_share(backend_url, group):
    from servicegroup.partition import Partitioner

    api = support.make_api(backend_url)
    try:
        api.join("worker-1", group)
        partitioner = Partitioner(api, group, "worker-1")
        assert partitioner.active, "a join of this process is on the first ring"
        partitioner.close()
    finally:
        api.stop()


def test_a_group_whose_only_member_crashed_can_be_deleted(backend_url, group):
    """A killed member never leaves; once it expired the group is empty."""
    if backend_url.startswith("fake://"):
        pytest.skip("fake:// lives in one process: no member process to kill")
    down_time = support.FAST["service_down_time"]
    proc = support.start_member_process(backend_url, "crashed", group)
    observer = support.make_api(backend_url)
    try:
        support.wait_until(lambda: observer.is_up("crashed", group), 10, "up")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        support.wait_until(
            lambda: not observer.is_up("crashed", group), down_time + 10, "down"
        )

        def deleted() -> bool:
            try:
                observer.delete_group(group)
            except exceptions.GroupNotEmpty:
                return False  # the backend has not expired it yet
            return True

        support.wait_until(deleted, down_time + 10, "the group deleted")
        assert group not in observer.get_groups()
    finally:
        proc.kill()
        proc.wait()
        observer.stop()
