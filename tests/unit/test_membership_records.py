"""The view keeps a Member while its fetched record is the very same object.

ZooKeeper's observer (fed by watches) hands back unchanged records as the
same objects refresh after refresh; rebuilding 10,000 Members from them was
most of a refresh. Anything else still builds a new Member.
"""

from __future__ import annotations

from typing import Any

from servicegroup import conf as sg_conf
from servicegroup import exceptions, membership
from servicegroup import member as sg_member
from servicegroup.testing import FakeClock

TIMING = sg_conf.Timing(
    report_interval=1.0,
    service_down_time=3.0,
    refresh_interval=1.0,
    backend_timeout=1.0,
    retry_max_interval=1.0,
)


def _cache(records: dict[str, Any], clock: FakeClock) -> membership.MembershipCache:
    def fetch(group_id: str) -> dict[str, Any]:
        if records.get("fail"):
            raise exceptions.BackendUnavailable("down")
        return dict(records["members"])

    return membership.MembershipCache(fetch, clock, TIMING)


def test_same_record_same_member_new_record_new_member() -> None:
    clock = FakeClock()
    a = sg_member.envelope({"v": 1}, clock.time())
    b = sg_member.envelope({"v": 1}, clock.time())
    records: dict[str, Any] = {"members": {"a": a, "b": b}}
    cache = _cache(records, clock)
    first = cache.view("g").members
    clock.advance(TIMING.refresh_interval)
    second = cache.view("g").members
    assert second["a"] is first["a"] and second["b"] is first["b"]

    # An equal record, but a new object (what other backends always
    # return): decoded again, to the same value.
    records["members"] = {"a": a, "b": dict(b, updated_at=b["updated_at"] + 1)}
    clock.advance(TIMING.refresh_interval)
    third = cache.view("g").members
    assert third["a"] is first["a"]
    assert third["b"] is not first["b"]
    assert third["b"].updated_at > first["b"].updated_at


def test_a_stale_member_is_not_kept() -> None:
    clock = FakeClock()
    a = sg_member.envelope({"v": 1}, clock.time())
    records: dict[str, Any] = {"members": {"a": a}}
    cache = _cache(records, clock)
    cache.view("g")
    records["fail"] = True
    clock.advance(TIMING.refresh_interval)
    assert cache.view("g").members["a"].stale
    records["fail"] = False
    clock.advance(TIMING.refresh_interval)
    back = cache.view("g").members["a"]
    assert back.is_up and not back.stale
