"""The fake tooz backend, through tooz's own API, on a FakeClock.

tooz's API suite runs on it too (tests/functional/test_tooz_api_suite.py);
these tests cover what that suite cannot: expiry on a controlled clock,
locks and leaderships lapsing, the fault helpers, a group vanishing.
"""

from __future__ import annotations

import datetime
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from tooz import coordination

from servicegroup.testing import FakeClock, fake_backend
from servicegroup.testing.fake import FakeDriver, FakeStore

Coordinator = coordination.CoordinationDriver


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def name(clock: FakeClock) -> Iterator[str]:
    name = f"unit-{uuid.uuid4().hex}"
    fake_backend.store(name).clock = clock.monotonic
    fake_backend.store(name).wall_clock = clock.time
    yield name
    fake_backend.drop_store(name)


@pytest.fixture
def store(name: str) -> FakeStore:
    return fake_backend.store(name)


@pytest.fixture
def coords(name: str) -> Iterator[list[Coordinator]]:
    made: list[Coordinator] = []
    yield made
    for coord in made:
        if coord.is_started:
            coord.stop()


@pytest.fixture
def new(name: str, coords: list[Coordinator]) -> Any:
    def make(member: str, **options: str) -> Coordinator:
        query = "&".join(f"{k}={v}" for k, v in options.items())
        coord = coordination.get_coordinator(f"fake://{name}?{query}", member.encode())
        coord.start()
        coords.append(coord)
        return coord

    return make


def test_get_coordinator_finds_the_fake_by_entry_point(new: Any) -> None:
    assert isinstance(new("a"), FakeDriver)
    # The first name keeps working for tests and projects that import it.
    assert fake_backend.FakeDriver is FakeDriver


def test_a_member_is_visible_from_start_on_and_expires(
    new: Any, clock: FakeClock
) -> None:
    a, b = new("a", membership_timeout="10"), new("b", membership_timeout="10")
    a.create_group(b"g").get()
    b.join_group(b"g").get()
    assert a.get_members(b"g").get() == {b"b"}  # before any heartbeat
    clock.advance(9)
    b.heartbeat()
    clock.advance(9)
    assert a.get_members(b"g").get() == {b"b"}
    clock.advance(1.5)
    assert a.get_members(b"g").get() == set()


def test_capabilities_default_to_none_and_ids_may_be_str(new: Any) -> None:
    a = new("a")
    a.create_group(b"bytes-group").get()
    a.create_group("str-group").get()  # type: ignore[arg-type]
    # Stored as bytes, as tooz's server drivers give them back: sortable.
    assert a.get_groups().get() == [b"bytes-group", b"str-group"]
    a.join_group(b"bytes-group").get()
    assert a.get_member_capabilities(b"bytes-group", b"a").get() is None
    assert a.get_members_with_capabilities("bytes-group").get() == {b"a": None}  # type: ignore[arg-type]


def test_member_info_carries_the_store_wall_clock(new: Any, clock: FakeClock) -> None:
    a = new("a")
    a.join_group_create(b"g", {"v": 1})
    clock.advance(5)
    a.update_capabilities(b"g", {"v": 2}).get()
    info = a.get_member_info(b"g", b"a").get()
    assert info["capabilities"] == {"v": 2}
    assert info["created_at"] == datetime.datetime.fromtimestamp(
        clock.time() - 5, datetime.timezone.utc
    )
    assert (info["updated_at"] - info["created_at"]).total_seconds() == 5
    with pytest.raises(coordination.MemberNotJoined):
        a.get_member_info(b"g", b"nobody").get()


def test_delete_group_only_when_empty_of_live_members(
    new: Any, clock: FakeClock
) -> None:
    a, b = new("a"), new("b", membership_timeout="5")
    a.create_group(b"g").get()
    b.join_group(b"g").get()
    with pytest.raises(coordination.GroupNotEmpty):
        a.delete_group(b"g").get()
    clock.advance(6)  # b's record is still there, but b is dead
    a.delete_group(b"g").get()
    assert a.get_groups().get() == []
    with pytest.raises(coordination.GroupNotCreated):
        a.delete_group(b"g").get()


def test_watchers_see_joins_leaves_expiry_and_a_vanished_group(
    new: Any, clock: FakeClock, store: FakeStore
) -> None:
    watcher = new("w")
    watcher.create_group(b"g").get()
    events: list[coordination.Event] = []
    watcher.watch_join_group(b"g", events.append)
    watcher.watch_leave_group(b"g", events.append)
    a, b = new("a", membership_timeout="5"), new("b")
    a.join_group(b"g").get()
    b.join_group(b"g").get()
    watcher.run_watchers()
    joined = sorted(e.member_id for e in events)  # type: ignore[attr-defined]
    assert joined == [b"a", b"b"]
    assert all(isinstance(e, coordination.MemberJoinedGroup) for e in events)
    events.clear()
    clock.advance(6)  # a booted out: its liveness lapsed
    b.heartbeat()
    watcher.heartbeat()
    watcher.run_watchers()
    assert [(type(e), e.member_id) for e in events] == [  # type: ignore[attr-defined]
        (coordination.MemberLeftGroup, b"a")
    ]
    events.clear()
    store.wipe()  # the group vanishes with the data
    watcher.run_watchers()
    assert [(type(e), e.member_id) for e in events] == [  # type: ignore[attr-defined]
        (coordination.MemberLeftGroup, b"b")
    ]
    with pytest.raises(coordination.GroupNotCreated):
        watcher.watch_join_group(b"other", events.append)


def test_a_member_booted_out_forgets_it_joined(new: Any, clock: FakeClock) -> None:
    a = new("a", membership_timeout="5")
    a.join_group_create(b"g")
    a.watch_leave_group(b"g", lambda event: None)
    clock.advance(6)
    a.run_watchers()
    assert b"g" not in a._joined_groups


def test_locks_exclude_across_coordinators_and_lapse_without_heartbeat(
    new: Any, clock: FakeClock
) -> None:
    a, b = new("a", lock_timeout="10"), new("b")
    lock_a, lock_b = a.get_lock(b"L"), b.get_lock(b"L")
    assert lock_a.acquire(blocking=False)
    assert not lock_b.acquire(blocking=False)
    clock.advance(8)
    a.heartbeat()  # renews the coordinator's locks
    clock.advance(8)
    assert not lock_b.acquire(blocking=False)
    assert lock_a.heartbeat()
    assert lock_a.is_still_owner()
    clock.advance(11)  # nobody renewed it
    assert not lock_a.is_still_owner()
    assert lock_b.acquire(blocking=False)
    assert not lock_a.release()  # it lapsed: no longer ours to release
    assert not lock_a.heartbeat()
    assert lock_b.release()


def test_a_blocked_acquire_wakes_on_release_and_times_out(new: Any) -> None:
    a, b = new("a"), new("b")
    held = a.get_lock(b"L")
    assert held.acquire()
    started = time.monotonic()
    assert not b.get_lock(b"L").acquire(blocking=0.2)
    assert time.monotonic() - started >= 0.2
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(b.get_lock(b"L").acquire()))
    waiter.start()
    deadline = time.monotonic() + 5
    while not waiter.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert held.release()
    waiter.join(5)
    assert got == [True]


def test_stopping_frees_locks_and_leadership(new: Any) -> None:
    a, b = new("a"), new("b")
    assert a.get_lock(b"L").acquire(blocking=False)
    a.watch_elected_as_leader(b"g", lambda event: None)
    a.run_watchers()
    assert b.get_leader(b"g").get() == b"a"
    a.stop()
    assert b.get_leader(b"g").get() is None
    assert b.get_lock(b"L").acquire(blocking=False)


def test_leadership_lapses_without_heartbeat_and_passes_on(
    new: Any, clock: FakeClock
) -> None:
    a, b = new("a", leader_timeout="10"), new("b")
    elected: list[bytes] = []
    for coord in (a, b):
        coord.watch_elected_as_leader(b"g", lambda e: elected.append(e.member_id))
    a.run_watchers()
    b.run_watchers()
    assert elected == [b"a"]
    clock.advance(8)
    a.heartbeat()
    clock.advance(8)
    b.run_watchers()
    assert elected == [b"a"]
    clock.advance(3)  # a stopped beating (a pause, a crash)
    b.run_watchers()
    assert elected == [b"a", b"b"]
    assert a.get_leader(b"g").get() == b"b"
    assert not a.stand_down_group_leader(b"g")
    assert b.stand_down_group_leader(b"g")


def test_faults_fail_every_call_and_wipe_loses_locks(
    new: Any, store: FakeStore
) -> None:
    a = new("a")
    lock = a.get_lock(b"L")
    assert lock.acquire()
    a.join_group_create(b"g")
    a.watch_join_group(b"g", lambda event: None)
    reads = store.calls["get_members"]
    store.set_reachable(False)
    for call in (
        lambda: a.get_members(b"g").get(),
        a.heartbeat,
        lambda: lock.acquire(blocking=False),
        a.run_watchers,
    ):
        with pytest.raises(coordination.ToozConnectionError):
            call()
    store.set_reachable(True)
    store.wipe()
    assert not lock.release()
    assert a.get_groups().get() == []
    # Calls that failed never reached the store.
    assert store.calls["get_members"] == reads
