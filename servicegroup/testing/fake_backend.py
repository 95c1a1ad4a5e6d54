"""An in-memory tooz backend: ``fake://NAME``.

It is registered in tooz's own ``tooz.backends`` namespace, so
``servicegroup_tooz_url = fake://NAME`` runs the real tooz driver code of
servicegroup against memory. Each NAME is a separate :class:`FakeStore`, so
tests do not see each other. Membership expires like Redis's: a member whose
heartbeats stop for ``membership_timeout`` (on the store's clock) is pruned.

Tests can also break the backend: :meth:`FakeStore.set_reachable` makes every
call fail as a network outage would, :meth:`FakeStore.wipe` loses all data as
a restart without persistence would, :meth:`FakeStore.evict` removes one
member.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from tooz import coordination
from tooz import utils as tooz_utils

T = TypeVar("T")

_STORES: dict[str, FakeStore] = {}
_STORES_LOCK = threading.Lock()


class FakeStore:
    """The shared state behind one ``fake://NAME`` URL."""

    def __init__(self, name: str) -> None:
        self.name = name
        #: monotonic seconds; a test sets it to its FakeClock's monotonic.
        self.clock: Callable[[], float] = time.monotonic
        self.reachable = True
        self.groups: dict[bytes, dict[bytes, Any]] = {}
        self.beats: dict[bytes, float] = {}
        #: How many calls reached the store, by operation (for tests that
        #: check the hot path stays off the network).
        self.calls: dict[str, int] = {}
        self.lock = threading.RLock()

    def set_reachable(self, reachable: bool) -> None:
        """Make every call fail (False) or work again (True)."""
        self.reachable = reachable

    def wipe(self) -> None:
        """Lose everything, like a backend restarted without persistence."""
        with self.lock:
            self.groups.clear()
            self.beats.clear()

    def evict(self, group_id: str, member_id: str) -> None:
        """Remove one member record, as an expiry or an operator would.

        ``member_id`` is the tooz member id (servicegroup stores
        ``MEMBER@GROUP``).
        """
        with self.lock:
            self.groups.get(group_id.encode(), {}).pop(member_id.encode(), None)

    def enter(self, operation: str) -> None:
        if not self.reachable:
            raise coordination.ToozConnectionError(f"fake://{self.name} is unreachable")
        self.calls[operation] = self.calls.get(operation, 0) + 1

    def alive(self, member_id: bytes) -> bool:
        return self.beats.get(member_id, float("-inf")) > self.clock()

    def live_members(self, group_id: bytes) -> dict[bytes, Any]:
        members = self.groups.get(group_id)
        if members is None:
            raise coordination.GroupNotCreated(group_id)
        for member_id in [m for m in members if not self.alive(m)]:
            del members[member_id]
        return dict(members)


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


class FakeDriver(coordination.CoordinationDriver):
    """tooz driver for ``fake://NAME[?membership_timeout=SECONDS]``."""

    CHARACTERISTICS = (
        coordination.Characteristics.DISTRIBUTED_ACROSS_THREADS,
        coordination.Characteristics.LINEARIZABLE,
    )

    def __init__(
        self, member_id: bytes, parsed_url: Any, options: dict[str, Any]
    ) -> None:
        super().__init__(member_id, parsed_url, options)
        self.store = store(parsed_url.netloc + parsed_url.path)
        collapsed = tooz_utils.collapse(options)
        self.membership_timeout = float(collapsed.get("membership_timeout", 30))

    def _op(self, name: str, call: Callable[[], T]) -> _Done[T]:
        def locked() -> T:
            with self.store.lock:
                self.store.enter(name)
                return call()

        return _Done(locked)

    def _start(self) -> None:
        self._op("start", lambda: None).get()

    def _stop(self) -> None:
        def forget() -> None:
            self.store.beats.pop(self._member_id, None)

        try:
            self._op("stop", forget).get()
        except coordination.ToozConnectionError:
            pass

    def heartbeat(self) -> float:
        def beat() -> None:
            self.store.beats[self._member_id] = (
                self.store.clock() + self.membership_timeout
            )

        self._op("heartbeat", beat).get()
        return self.membership_timeout

    def create_group(self, group_id: bytes) -> _Done[None]:
        def create() -> None:
            if group_id in self.store.groups:
                raise coordination.GroupAlreadyExist(group_id)
            self.store.groups[group_id] = {}

        return self._op("create_group", create)

    def get_groups(self) -> _Done[list[bytes]]:
        return self._op("get_groups", lambda: sorted(self.store.groups))

    def delete_group(self, group_id: bytes) -> _Done[None]:
        def delete() -> None:
            if self.store.live_members(group_id):
                raise coordination.GroupNotEmpty(group_id)
            del self.store.groups[group_id]

        return self._op("delete_group", delete)

    def join_group(self, group_id: bytes, capabilities: Any = b"") -> _Done[None]:
        def join() -> None:
            members = self.store.live_members(group_id)
            if self._member_id in members:
                raise coordination.MemberAlreadyExist(group_id, self._member_id)
            self.store.groups[group_id][self._member_id] = capabilities
            self._joined_groups.add(group_id)

        return self._op("join_group", join)

    def leave_group(self, group_id: bytes) -> _Done[None]:
        def leave() -> None:
            members = self.store.groups.get(group_id)
            if members is None:
                raise coordination.GroupNotCreated(group_id)
            if members.pop(self._member_id, None) is None:
                raise coordination.MemberNotJoined(group_id, self._member_id)
            self._joined_groups.discard(group_id)

        return self._op("leave_group", leave)

    def get_members(self, group_id: bytes) -> _Done[set[bytes]]:
        return self._op("get_members", lambda: set(self.store.live_members(group_id)))

    def get_member_capabilities(self, group_id: bytes, member_id: bytes) -> _Done[Any]:
        def read() -> Any:
            members = self.store.live_members(group_id)
            if member_id not in members:
                raise coordination.MemberNotJoined(group_id, member_id)
            return members[member_id]

        return self._op("get_member_capabilities", read)

    def get_members_with_capabilities(self, group_id: bytes) -> _Done[dict[bytes, Any]]:
        return self._op(
            "get_members_with_capabilities",
            lambda: self.store.live_members(group_id),
        )

    def update_capabilities(self, group_id: bytes, capabilities: Any) -> _Done[None]:
        def update() -> None:
            members = self.store.live_members(group_id)
            if self._member_id not in members:
                raise coordination.MemberNotJoined(group_id, self._member_id)
            self.store.groups[group_id][self._member_id] = capabilities

        return self._op("update_capabilities", update)
