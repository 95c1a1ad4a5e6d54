"""The shared state behind one ``fake://NAME`` URL, and the registry of them.

A :class:`FakeStore` is what a backend server would hold: groups and their
member records, one liveness deadline per tooz member id (as Redis keeps one
heartbeat key per member id), locks and group leaders. Every coordinator of
the same NAME in a process shares one store, so two coordinators see each
other as two processes would see each other through a server.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any

from tooz import coordination

_STORES: dict[str, FakeStore] = {}
_STORES_LOCK = threading.Lock()


def key(raw: bytes | str) -> bytes:
    """The stored form of a group, member or lock id.

    tooz types ids as bytes but accepts str at run time; storing one form
    keeps ``get_groups()`` sortable when callers mix them, and gives back
    bytes as tooz's server drivers (Redis, ZooKeeper, etcd) do.
    """
    return raw.encode() if isinstance(raw, str) else raw


@dataclasses.dataclass
class Record:
    """One member's entry in a group."""

    capabilities: Any
    #: wall-clock seconds (:attr:`FakeStore.wall_clock`) of the join and of
    #: the latest change of capabilities, as ZooKeeper's ctime and mtime.
    created_at: float
    updated_at: float


@dataclasses.dataclass
class Hold:
    """One lock object's hold on a lock."""

    shared: bool
    #: how many times a shared hold was taken (each release gives one back).
    count: int
    #: store-clock deadline; the hold lapses unless renewed by a heartbeat.
    expires: float


@dataclasses.dataclass
class Lease:
    """The leadership of a group."""

    member_id: bytes
    #: the coordinator holding it (two coordinators may share a member id).
    owner: object
    expires: float


class FakeStore:
    """The shared state behind one ``fake://NAME`` URL."""

    def __init__(self, name: str) -> None:
        self.name = name
        #: monotonic seconds for expiry; a test sets it to its FakeClock's
        #: monotonic so that members, locks and leaders expire on its time.
        self.clock: Callable[[], float] = time.monotonic
        #: seconds since the epoch, for ``get_member_info``'s timestamps.
        self.wall_clock: Callable[[], float] = time.time
        self.reachable = True
        self.groups: dict[bytes, dict[bytes, Record]] = {}
        #: tooz member id -> store-clock deadline of its liveness.
        self.beats: dict[bytes, float] = {}
        #: lock name -> lock object -> its hold.
        self.locks: dict[bytes, dict[object, Hold]] = {}
        self.leaders: dict[bytes, Lease] = {}
        #: How many calls reached the store, by operation (for tests that
        #: check the hot path stays off the network).
        self.calls: dict[str, int] = {}
        self.lock = threading.RLock()
        #: Woken whenever a lock or leadership is given up, for blocked
        #: acquirers; built on :attr:`lock` so waiting releases it.
        self.changed = threading.Condition(self.lock)

    # -- faults, for tests -----------------------------------------------------

    def set_reachable(self, reachable: bool) -> None:
        """Make every call fail (False) or work again (True)."""
        self.reachable = reachable

    def wipe(self) -> None:
        """Lose everything, like a backend restarted without persistence."""
        with self.lock:
            self.groups.clear()
            self.beats.clear()
            self.locks.clear()
            self.leaders.clear()
            self.changed.notify_all()

    def evict(self, group_id: str, member_id: str) -> None:
        """Remove one member record, as an expiry or an operator would.

        ``member_id`` is the tooz member id (servicegroup stores
        ``MEMBER@GROUP``).
        """
        with self.lock:
            self.groups.get(key(group_id), {}).pop(key(member_id), None)

    # -- what the driver uses (call with :attr:`lock` held) -------------------

    def enter(self, operation: str) -> None:
        """Count one call, or fail it as a network outage would."""
        if not self.reachable:
            raise coordination.ToozConnectionError(f"fake://{self.name} is unreachable")
        self.calls[operation] = self.calls.get(operation, 0) + 1

    def alive(self, member_id: bytes) -> bool:
        return self.beats.get(member_id, float("-inf")) > self.clock()

    def group(self, group_id: bytes | str) -> dict[bytes, Record]:
        """The live records of a group, pruning expired ones as Redis does."""
        members = self.groups.get(key(group_id))
        if members is None:
            raise coordination.GroupNotCreated(group_id)
        for member_id in [m for m in members if not self.alive(m)]:
            del members[member_id]
        return members

    def live_members(self, group_id: bytes | str) -> dict[bytes, Any]:
        """Live members of a group -> their capabilities."""
        return {m: r.capabilities for m, r in self.group(group_id).items()}

    def holds(self, name: bytes) -> dict[object, Hold]:
        """The unexpired holds on lock ``name`` (expired ones dropped)."""
        holds = self.locks.get(name, {})
        now = self.clock()
        for owner in [o for o, h in holds.items() if h.expires <= now]:
            del holds[owner]
        if not holds:
            self.locks.pop(name, None)
        return holds

    def leader(self, group_id: bytes | str) -> Lease | None:
        """The group's unexpired leadership, if any."""
        lease = self.leaders.get(key(group_id))
        if lease is not None and lease.expires <= self.clock():
            del self.leaders[key(group_id)]
            self.changed.notify_all()
            return None
        return lease


def store(name: str) -> FakeStore:
    """The store behind ``fake://NAME`` (created on first use)."""
    with _STORES_LOCK:
        if name not in _STORES:
            _STORES[name] = FakeStore(name)
        return _STORES[name]


def drop_store(name: str) -> None:
    """Forget ``fake://NAME`` entirely."""
    with _STORES_LOCK:
        _STORES.pop(name, None)
