"""memcached: a liveness key lost before it could expire is not a death.

A node behind twemproxy dies, the proxy hashes the key elsewhere, and the
member writes it there only at its next beat. The observer's driver keeps
the member until the key would have expired, and no longer. Driven through
a stand-in pymemcache client and a controlled monotonic clock.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from servicegroup import member as sg_member
from servicegroup.drivers.tooz.backends import memcached as memcached_backend

GROUP = b"compute"
TIMEOUT = 3


class _Memcached:
    def __init__(self) -> None:
        self.items: dict[bytes, Any] = {}

    def gets(self, key: bytes) -> tuple[Any, int]:
        return self.items.get(key), 1

    def get(self, key: bytes) -> Any:
        return self.items.get(key)

    def get_many(self, keys: list[bytes]) -> dict[bytes, Any]:
        return {k: self.items[k] for k in keys if k in self.items}

    def cas(self, key: bytes, value: Any, cas: int) -> bool:
        self.items[key] = value
        return True

    def incr(self, key: bytes, value: int) -> int | None:
        if key not in self.items:
            return None
        self.items[key] = str(int(self.items[key]) + value).encode()
        return int(self.items[key])

    def add(self, key: bytes, value: Any, noreply: bool = True) -> bool:
        return self.items.setdefault(key, value) is value


World = tuple[Any, _Memcached, list[float]]


def _observer(store: _Memcached) -> Any:
    driver_class = memcached_backend._memcached_driver()
    parts = urllib.parse.urlsplit("memcached://127.0.0.1:11211")
    observer: Any = driver_class(
        b"observer",
        parts,
        {"membership_timeout": [str(TIMEOUT)], "executor": ["synchronous"]},
    )
    observer.client = store  # start() would connect; only reads are driven
    observer._executor.start()
    return observer


@pytest.fixture
def world(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[World]:
    now = [1000.0]
    monkeypatch.setattr(memcached_backend.time, "monotonic", lambda: now[0])
    store = _Memcached()
    observer = _observer(store)
    record = {b"capabilities": sg_member.envelope({}, 0.5)}
    store.items[observer._encode_group_id(GROUP)] = {b"a": record, b"b": record}
    yield observer, store, now
    observer._executor.stop()


def _beat(observer: Any, store: _Memcached, member: bytes, at: float) -> None:
    store.items[observer._encode_member_id(member)] = at


def _members(observer: Any) -> set[bytes]:
    return set(observer.get_members(GROUP).get())


def test_a_lost_key_keeps_the_member_until_it_would_have_expired(world) -> None:
    observer, store, now = world
    _beat(observer, store, b"a", 1.0)
    _beat(observer, store, b"b", 1.0)
    assert _members(observer) == {b"a", b"b"}
    del store.items[observer._encode_member_id(b"b")]  # its node died
    now[0] += TIMEOUT - 0.1
    records = observer.get_members_with_capabilities(GROUP).get()
    assert set(records) == {b"a", b"b"}
    # shown with the time of its last beat read: its gap grows honestly
    assert records[b"b"]["updated_at"] == 1.0
    group = store.items[observer._encode_group_id(GROUP)]
    assert set(group) == {b"a", b"b"}  # not pruned either
    # the member writes again at its next beat: nothing was lost
    _beat(observer, store, b"b", 2.0)
    assert _members(observer) == {b"a", b"b"}


def test_a_member_whose_key_is_gone_for_good_is_dropped_on_time(world) -> None:
    observer, store, now = world
    _beat(observer, store, b"a", 1.0)
    _beat(observer, store, b"b", 1.0)
    assert _members(observer) == {b"a", b"b"}
    del store.items[observer._encode_member_id(b"b")]
    now[0] += TIMEOUT
    assert _members(observer) == {b"a"}
    assert b"b" not in store.items[observer._encode_group_id(GROUP)]


def test_a_member_never_seen_beating_is_not_held(world) -> None:
    observer, store, _ = world
    _beat(observer, store, b"a", 1.0)
    assert _members(observer) == {b"a"}
