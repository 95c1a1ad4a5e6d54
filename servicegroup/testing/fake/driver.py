"""The tooz driver of the fake backend: ``fake://NAME[?OPTIONS]``.

==================  ===========================================  =========
option              meaning                                      default
==================  ===========================================  =========
timeout             default of the three below, in seconds       30
membership_timeout  a member not heard from for this long is     timeout
                    gone from its groups
lock_timeout        a lock not renewed for this long is free     timeout
leader_timeout      a leadership not renewed for this long ends  timeout
==================  ===========================================  =========

All three are judged on the store's clock (:attr:`FakeStore.clock`). Like
tooz's Redis driver, a coordinator beats when it starts and on every
:meth:`FakeDriver.heartbeat`, which also renews its locks and leaderships;
stopping it forgets its liveness at once, and a group read drops members
whose liveness lapsed. Watchers work as in tooz's Redis and memcached
drivers: ``run_watchers`` compares the members with those it saw last time
and then runs for election in the groups watched with
``watch_elected_as_leader``.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any, TypeVar

from tooz import coordination
from tooz import utils as tooz_utils

from servicegroup.testing.fake.locks import FakeLock
from servicegroup.testing.fake.store import FakeStore, Lease, Record, key, store

T = TypeVar("T")

#: Seconds, as tooz's Redis and memcached drivers default to.
DEFAULT_TIMEOUT = 30.0


class _Done(coordination.CoordAsyncResult[T]):
    """A result computed at once (memory does not make anyone wait)."""

    def __init__(self, call: Callable[[], T]) -> None:
        self._error: BaseException | None = None
        try:
            self._value: T | None = call()
        except Exception as exc:  # noqa: BLE001 - handed to get() like a future
            self._value = None
            self._error = exc

    def get(self, timeout: float | None = None) -> T:
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    def done(self) -> bool:
        return True


def _utc(stamp: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(stamp, datetime.timezone.utc)


class FakeDriver(coordination.CoordinationDriverCachedRunWatchers):
    """tooz driver for ``fake://NAME`` (options in the module docstring)."""

    CHARACTERISTICS = (
        coordination.Characteristics.DISTRIBUTED_ACROSS_THREADS,
        coordination.Characteristics.LINEARIZABLE,
        coordination.Characteristics.SAME_VIEW_ACROSS_CLIENTS,
    )

    def __init__(
        self, member_id: bytes, parsed_url: Any, options: dict[str, Any]
    ) -> None:
        # tooz accepts str member ids at run time; the store keeps bytes.
        super().__init__(key(member_id), parsed_url, options)
        self.store: FakeStore = store(parsed_url.netloc + parsed_url.path)
        collapsed = tooz_utils.collapse(options)
        timeout = float(collapsed.get("timeout", DEFAULT_TIMEOUT))
        self.membership_timeout = float(collapsed.get("membership_timeout", timeout))
        self.lock_timeout = float(collapsed.get("lock_timeout", timeout))
        self.leader_timeout = float(collapsed.get("leader_timeout", timeout))
        self._acquired_locks: set[FakeLock] = set()

    def _op(self, name: str, call: Callable[[], T]) -> _Done[T]:
        def locked() -> T:
            with self.store.lock:
                self.store.enter(name)
                return call()

        return _Done(locked)

    # -- life cycle and liveness -----------------------------------------------

    def _renew(self) -> None:
        now = self.store.clock()
        self.store.beats[self._member_id] = now + self.membership_timeout
        for lock in list(self._acquired_locks):
            hold = self.store.holds(lock._key).get(lock)
            if hold is None:
                self._acquired_locks.discard(lock)
            else:
                hold.expires = now + lock.timeout
        for lease in self.store.leaders.values():
            if lease.owner is self:
                lease.expires = now + self.leader_timeout

    def _start(self) -> None:
        # A member is visible from the start, as with tooz's server drivers.
        self._op("start", self._renew).get()

    def _stop(self) -> None:
        def forget() -> None:
            self.store.beats.pop(self._member_id, None)
            for lock in list(self._acquired_locks):
                holds = self.store.locks.get(lock._key, {})
                holds.pop(lock, None)
                if not holds:
                    self.store.locks.pop(lock._key, None)
            self._acquired_locks.clear()
            led = [g for g, lease in self.store.leaders.items() if lease.owner is self]
            for group_id in led:
                del self.store.leaders[group_id]
            self.store.changed.notify_all()

        try:
            self._op("stop", forget).get()
        except coordination.ToozConnectionError:
            pass  # what a network outage leaves behind expires in time

    def heartbeat(self) -> float:
        self._op("heartbeat", self._renew).get()
        return min(self.membership_timeout, self.lock_timeout, self.leader_timeout)

    # -- groups ----------------------------------------------------------------

    def create_group(self, group_id: bytes) -> _Done[None]:
        def create() -> None:
            if key(group_id) in self.store.groups:
                raise coordination.GroupAlreadyExist(group_id)
            self.store.groups[key(group_id)] = {}

        return self._op("create_group", create)

    def get_groups(self) -> _Done[list[bytes]]:
        return self._op("get_groups", lambda: sorted(self.store.groups))

    def delete_group(self, group_id: bytes) -> _Done[None]:
        def delete() -> None:
            if self.store.group(group_id):
                raise coordination.GroupNotEmpty(group_id)
            del self.store.groups[key(group_id)]

        return self._op("delete_group", delete)

    def _destroy_group(self, group_id: bytes) -> None:
        """Make the group vanish, members and all (as a backend losing it).

        tooz's API suite calls this on drivers that can lose a group.
        """
        self._op("destroy_group", lambda: self.store.groups.pop(key(group_id), None))

    def join_group(
        self,
        group_id: bytes,
        capabilities: coordination.Capabilities | None = None,
    ) -> _Done[None]:
        def join() -> None:
            members = self.store.group(group_id)
            if self._member_id in members:
                raise coordination.MemberAlreadyExist(group_id, self._member_id)
            now = self.store.wall_clock()
            members[self._member_id] = Record(capabilities, now, now)
            self._joined_groups.add(group_id)

        return self._op("join_group", join)

    def leave_group(self, group_id: bytes) -> _Done[None]:
        def leave() -> None:
            members = self.store.groups.get(key(group_id))
            if members is None:
                raise coordination.GroupNotCreated(group_id)
            if members.pop(self._member_id, None) is None:
                raise coordination.MemberNotJoined(group_id, self._member_id)
            self._joined_groups.discard(group_id)

        return self._op("leave_group", leave)

    def get_members(self, group_id: bytes) -> _Done[set[bytes]]:
        return self._op("get_members", lambda: set(self.store.group(group_id)))

    def _record(self, group_id: bytes, member_id: bytes) -> Record:
        record = self.store.group(group_id).get(key(member_id))
        if record is None:
            raise coordination.MemberNotJoined(group_id, member_id)
        return record

    def get_member_capabilities(
        self, group_id: bytes, member_id: bytes
    ) -> _Done[coordination.Capabilities | None]:
        return self._op(
            "get_member_capabilities",
            lambda: self._record(group_id, member_id).capabilities,
        )

    def get_member_info(
        self, group_id: bytes, member_id: bytes
    ) -> _Done[dict[str, Any]]:
        """Capabilities, and when the member joined and last changed them.

        The times are aware UTC datetimes from :attr:`FakeStore.wall_clock`
        (tooz's ZooKeeper driver, the only other one with this call, gives
        the member node's ctime and mtime).
        """

        def info() -> dict[str, Any]:
            record = self._record(group_id, member_id)
            return {
                "capabilities": record.capabilities,
                "created_at": _utc(record.created_at),
                "updated_at": _utc(record.updated_at),
            }

        return self._op("get_member_info", info)

    def get_members_with_capabilities(
        self, group_id: bytes
    ) -> _Done[dict[bytes, coordination.Capabilities | None]]:
        return self._op(
            "get_members_with_capabilities",
            lambda: self.store.live_members(group_id),
        )

    def update_capabilities(
        self, group_id: bytes, capabilities: coordination.Capabilities | None
    ) -> _Done[None]:
        def update() -> None:
            record = self._record(group_id, self._member_id)
            record.capabilities = capabilities
            record.updated_at = self.store.wall_clock()

        return self._op("update_capabilities", update)

    # -- locks -----------------------------------------------------------------

    def get_lock(self, name: bytes) -> FakeLock:
        return FakeLock(self, name, self.lock_timeout)

    # -- leader election -------------------------------------------------------

    def get_leader(self, group_id: bytes) -> _Done[bytes]:
        """The leader's member id, or None while the group has none."""

        def leader() -> bytes:
            lease = self.store.leader(group_id)
            return None if lease is None else lease.member_id  # type: ignore[return-value]

        return self._op("get_leader", leader)

    def _run_for_election(self) -> list[Any]:
        results: list[Any] = []
        for group_id, hooks in list(self._hooks_elected_leader.items()):
            with self.store.lock:
                self.store.enter("run_for_election")
                if self.store.leader(group_id) is not None:
                    continue  # someone leads (maybe us, elected before)
                self.store.leaders[key(group_id)] = Lease(
                    self._member_id, self, self.store.clock() + self.leader_timeout
                )
            # Outside the store's lock: a callback may call the driver.
            results.extend(
                hooks.run(coordination.LeaderElected(group_id, self._member_id))
            )
        return results

    def run_elect_coordinator(self) -> None:
        self._run_for_election()

    def stand_down_group_leader(self, group_id: bytes) -> bool:
        def stand_down() -> bool:
            lease = self.store.leader(group_id)
            if lease is None or lease.owner is not self:
                return False
            del self.store.leaders[key(group_id)]
            self.store.changed.notify_all()
            return True

        return self._op("stand_down_group_leader", stand_down).get()

    # -- watchers --------------------------------------------------------------

    def run_watchers(self, timeout: float | None = None) -> list[Any]:
        """Group watchers' callbacks, then the election's; their results."""
        results = super().run_watchers(timeout=timeout)
        results.extend(self._run_for_election())
        return results
