"""WatchedGroups on a fake kazoo client: what it reads, and when again.

The fake keeps nodes in a dict and fires one-shot watches the way
ZooKeeper and kazoo do (a data watch on a rewrite or a delete, the parent's
child watch on a create or a delete, every watch with a NONE event when
the connection is lost). The real thing is in
``tests/functional/test_zookeeper_watches.py``.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

import pytest
from kazoo import exceptions as kazoo_exceptions
from kazoo.protocol.states import EventType, KazooState, KeeperState, WatchedEvent
from tooz import coordination
from tooz import utils as tooz_utils

from servicegroup.drivers.tooz import compat, zookeeper_view

GROUP = b"g"


class _Result:
    def __init__(self, value: Any = None, error: Exception | None = None) -> None:
        self._value = value
        self._error = error

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        if self._error is not None:
            raise self._error
        return self._value


class _Handler:
    timeout_exception = TimeoutError

    def __init__(self) -> None:
        self.dispatched: list[Callable[[], None]] = []

    def dispatch_callback(self, callback: Any) -> None:
        self.dispatched.append(lambda: callback.func(*callback.args))


class FakeKazoo:
    """Nodes, one-shot watches and request counts."""

    def __init__(self) -> None:
        self.nodes: dict[str, bytes] = {}
        self.handler = _Handler()
        self.requests: collections.Counter[str] = collections.Counter()
        self.data_watches: dict[str, set[Callable[[Any], None]]] = {}
        self.child_watches: dict[str, set[Callable[[Any], None]]] = {}
        self.listeners: set[Callable[[Any], None]] = set()
        self.client_id = (1, b"secret")
        #: Called with the path after a get has been answered.
        self.after_get: Callable[[str], None] = lambda path: None

    # -- the client API WatchedGroups uses --

    def add_listener(self, listener: Callable[[Any], None]) -> None:
        self.listeners.add(listener)

    def remove_listener(self, listener: Callable[[Any], None]) -> None:
        self.listeners.discard(listener)

    def get_children_async(self, path: str, watch: Any = None) -> _Result:
        self.requests["children"] += 1
        if path not in self.nodes:
            return _Result(error=kazoo_exceptions.NoNodeError())
        self.child_watches.setdefault(path, set()).add(watch)
        prefix = path + "/"
        return _Result([p[len(prefix) :] for p in self.nodes if p.startswith(prefix)])

    def get_async(self, path: str, watch: Any = None) -> _Result:
        self.requests["data"] += 1
        if path not in self.nodes:
            return _Result(error=kazoo_exceptions.NoNodeError())
        result = _Result((self.nodes[path], None))
        self.data_watches.setdefault(path, set()).add(watch)
        self.after_get(path)
        return result

    # -- what other clients and the network do --

    def _fire(self, watches: dict[str, set[Any]], path: str, kind: str) -> None:
        for watch in watches.pop(path, set()):
            watch(WatchedEvent(kind, KeeperState.CONNECTED, path))

    def create(self, path: str, data: bytes = b"") -> None:
        self.nodes[path] = data
        self._fire(self.child_watches, path.rpartition("/")[0], EventType.CHILD)

    def set(self, path: str, data: bytes) -> None:
        self.nodes[path] = data
        self._fire(self.data_watches, path, EventType.CHANGED)

    def delete(self, path: str) -> None:
        del self.nodes[path]
        self._fire(self.data_watches, path, EventType.DELETED)
        self._fire(self.child_watches, path.rpartition("/")[0], EventType.CHILD)

    def lose_connection(self) -> None:
        for listener in list(self.listeners):
            listener(KazooState.SUSPENDED)
        # kazoo then drops every watch, telling each with a NONE event.
        watches = [*self.data_watches.values(), *self.child_watches.values()]
        self.data_watches, self.child_watches = {}, {}
        for watch in {w for ws in watches for w in ws}:
            watch(WatchedEvent(EventType.NONE, KeeperState.CONNECTING, None))

    def reconnect(self) -> None:
        for listener in list(self.listeners):
            listener(KazooState.CONNECTED)


class FakeCoordinator:
    """What WatchedGroups takes from tooz's KazooDriver: client and paths."""

    def __init__(self, client: FakeKazoo) -> None:
        self._coord = client

    def _path_group(self, group_id: bytes) -> str:
        return f"/tooz/{group_id.decode()}"

    def _path_member(self, group_id: bytes, member_id: bytes) -> str:
        return f"/tooz/{group_id.decode()}/{member_id.decode()}"


def _record(version: int) -> bytes:
    return tooz_utils.dumps({"version": version})


@pytest.fixture
def zk() -> FakeKazoo:
    client = FakeKazoo()
    client.nodes["/tooz/g"] = b""
    for name in ("m1", "m2", "m3"):
        client.nodes[f"/tooz/g/{name}"] = _record(1)
    return client


@pytest.fixture
def wakes() -> list[int]:
    return []


@pytest.fixture
def groups(zk: FakeKazoo, wakes: list[int]) -> zookeeper_view.WatchedGroups:
    return zookeeper_view.WatchedGroups(FakeCoordinator(zk), lambda: wakes.append(1))


def read(groups: zookeeper_view.WatchedGroups) -> dict[bytes, Any]:
    return groups.read(GROUP).get(timeout=1).records


def test_idle_reads_ask_nothing_and_changes_ask_for_themselves(
    zk: FakeKazoo, groups: zookeeper_view.WatchedGroups, wakes: list[int]
) -> None:
    everyone = {m: {"version": 1} for m in (b"m1", b"m2", b"m3")}
    assert read(groups) == everyone
    assert zk.requests == {"children": 1, "data": 3}
    for _ in range(5):
        assert read(groups) == everyone
    assert zk.requests == {"children": 1, "data": 3}

    zk.set("/tooz/g/m2", _record(2))  # a heartbeat: no wake-up
    assert not wakes
    assert read(groups)[b"m2"] == {"version": 2}
    assert zk.requests == {"children": 1, "data": 4}

    zk.create("/tooz/g/m4", _record(1))
    zk.delete("/tooz/g/m1")
    assert wakes  # joins and leaves reach the view at once
    got = read(groups)
    assert set(got) == {b"m2", b"m3", b"m4"}
    # One listing for both changes, one record read: the new member's.
    assert zk.requests == {"children": 2, "data": 5}


def test_a_write_during_a_read_is_read_next_time(
    zk: FakeKazoo, groups: zookeeper_view.WatchedGroups
) -> None:
    read(groups)
    zk.set("/tooz/g/m1", _record(2))

    def write_again(path: str) -> None:
        # Lands after the server answered this read: the read returns
        # version 2, the watch it set fires for version 3.
        zk.after_get = lambda path: None
        zk.set(path, _record(3))

    zk.after_get = write_again
    assert read(groups)[b"m1"] == {"version": 2}
    assert read(groups)[b"m1"] == {"version": 3}


def test_a_lost_connection_makes_the_next_read_a_full_one(
    zk: FakeKazoo, groups: zookeeper_view.WatchedGroups, wakes: list[int]
) -> None:
    read(groups)
    zk.lose_connection()
    # Unseen: the watch that would have told is gone.
    zk.nodes["/tooz/g/m1"] = _record(7)
    del zk.nodes["/tooz/g/m3"]
    zk.reconnect()
    assert zk.handler.dispatched, "no wake-up once connected again"
    for call in zk.handler.dispatched:
        call()
    assert wakes
    before = sum(zk.requests.values())
    got = read(groups)
    assert got == {b"m1": {"version": 7}, b"m2": {"version": 1}}
    assert sum(zk.requests.values()) - before == 3  # listing + both records
    # Watched again: the next change costs one read.
    zk.set("/tooz/g/m2", _record(2))
    assert read(groups)[b"m2"] == {"version": 2}
    assert sum(zk.requests.values()) - before == 4


def test_a_new_session_makes_the_next_read_a_full_one(
    zk: FakeKazoo, groups: zookeeper_view.WatchedGroups
) -> None:
    read(groups)
    zk.client_id = (2, b"other")
    zk.nodes["/tooz/g/m1"] = _record(9)
    assert read(groups)[b"m1"] == {"version": 9}


def test_a_missing_group_and_a_failed_read(
    zk: FakeKazoo, groups: zookeeper_view.WatchedGroups
) -> None:
    with pytest.raises(coordination.GroupNotCreated):
        groups.read(b"nope").get(timeout=1)
    read(groups)
    zk.set("/tooz/g/m1", _record(2))
    real_get = zk.get_async
    zk.get_async = lambda path, watch=None: _Result(  # type: ignore[method-assign]
        error=kazoo_exceptions.ConnectionLoss()
    )
    with pytest.raises(kazoo_exceptions.ConnectionLoss):
        read(groups)
    zk.get_async = real_get  # type: ignore[method-assign]
    before = zk.requests["data"]
    assert read(groups)[b"m1"] == {"version": 2}
    assert zk.requests["data"] - before == 3  # a full read after a failure


def test_undecodable_and_empty_records(
    zk: FakeKazoo, groups: zookeeper_view.WatchedGroups
) -> None:
    zk.nodes["/tooz/g/m1"] = b"\xc1 not msgpack"
    zk.nodes["/tooz/g/m2"] = b""
    read_once = groups.read(GROUP).get(timeout=1)
    assert read_once.records[b"m1"] is None
    assert read_once.records[b"m2"] is None  # tooz: empty data is None
    assert read_once.undecodable
    zk.set("/tooz/g/m1", _record(1))
    assert groups.read(GROUP).get(timeout=1).undecodable is None


def test_a_renamed_tooz_path_method_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from tooz.drivers import zookeeper as tooz_zookeeper

    monkeypatch.delattr(tooz_zookeeper.KazooDriver, "_path_member")
    zookeeper_view._check_compat.cache_clear()
    try:
        with pytest.raises(compat.ToozIncompatible, match="_path_member"):
            zookeeper_view.WatchedGroups(FakeCoordinator(FakeKazoo()), lambda: None)
    finally:
        monkeypatch.undo()
        zookeeper_view._check_compat.cache_clear()
