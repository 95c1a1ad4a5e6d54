"""Locks of the fake backend, shared by every coordinator of one store.

They behave as tooz's Redis and memcached locks do: a lock is held by one
lock *object* (not a thread, not a coordinator), is not re-entrant, lapses
``lock_timeout`` seconds (on the store's clock) after it was taken unless
the coordinator's heartbeat or :meth:`FakeLock.heartbeat` renews it, and a
holder whose lock lapsed or was broken gets ``False`` from ``release()``.
Shared holds are counted per lock object, as tooz's file driver does.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from tooz import coordination, locking
from tooz import utils as tooz_utils

from servicegroup.testing.fake.store import Hold, key

if TYPE_CHECKING:
    from servicegroup.testing.fake.driver import FakeDriver

#: Longest real-time wait between two looks at a lock while blocked: a
#: release wakes waiters at once, but a hold lapsing on the store's clock
#: (possibly a FakeClock another thread advances) wakes no one.
_POLL = 0.05


class FakeLock(locking.Lock):
    """A lock named ``name`` in the coordinator's store."""

    def __init__(self, coord: FakeDriver, name: bytes, timeout: float) -> None:
        super().__init__(name)
        self._coord = coord
        self._store = coord.store
        self._key = key(name)
        #: seconds a hold lasts without a heartbeat (``lock_timeout``).
        self.timeout = timeout

    @property
    def acquired(self) -> bool:
        """Whether this lock object believes it holds the lock."""
        return self in self._coord._acquired_locks

    def _mine(self) -> Hold | None:
        return self._store.holds(self._key).get(self)

    def _try_take(self, shared: bool) -> bool:
        holds = self._store.holds(self._key)
        expires = self._store.clock() + self.timeout
        mine = holds.get(self)
        if shared:
            if any(not hold.shared for hold in holds.values()):
                return False
            if mine is not None:
                mine.count += 1
                mine.expires = expires
                return True
        elif holds:
            return False
        self._store.locks.setdefault(self._key, {})[self] = Hold(shared, 1, expires)
        self._coord._acquired_locks.add(self)
        return True

    def acquire(
        self,
        blocking: bool | float = True,
        shared: bool = False,
        timeout: float | None = None,
    ) -> bool:
        """Take the lock; ``blocking`` may be a number of seconds to wait.

        Waits are in real seconds: a thread blocked here cannot know about a
        fake clock, while lapsed holds are judged on the store's clock.
        """
        wait, wait_for = tooz_utils.convert_blocking(blocking, timeout)
        deadline = None if wait_for is None else time.monotonic() + wait_for
        with self._store.lock:
            self._store.enter("lock_acquire")
            while True:
                if not self._store.reachable:
                    raise coordination.ToozConnectionError(
                        f"fake://{self._store.name} is unreachable"
                    )
                if self._try_take(shared):
                    return True
                if not wait:
                    return False
                if deadline is None:
                    pause = _POLL
                else:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    pause = min(left, _POLL)
                self._store.changed.wait(pause)

    def release(self) -> bool:
        """Give back one hold; False if this object holds nothing (any more)."""
        with self._store.lock:
            self._store.enter("lock_release")
            mine = self._mine()
            if mine is None:
                self._coord._acquired_locks.discard(self)
                return False
            mine.count -= 1
            if mine.count == 0:
                holds = self._store.locks[self._key]
                del holds[self]
                if not holds:
                    del self._store.locks[self._key]
                self._coord._acquired_locks.discard(self)
            self._store.changed.notify_all()
            return True

    def break_(self) -> bool:
        """Free the lock whoever holds it (an operator's or a test's action)."""
        with self._store.lock:
            self._store.enter("lock_break")
            if not self._store.holds(self._key):
                return False
            del self._store.locks[self._key]
            self._store.changed.notify_all()
            return True

    def heartbeat(self) -> bool:
        """Renew our hold; False if we hold nothing (never took it, or lost it)."""
        with self._store.lock:
            self._store.enter("lock_heartbeat")
            mine = self._mine()
            if mine is None:
                self._coord._acquired_locks.discard(self)
                return False
            mine.expires = self._store.clock() + self.timeout
            return True

    def is_still_owner(self) -> bool:
        """Whether the store still has this object's hold."""
        with self._store.lock:
            self._store.enter("lock_owner")
            return self._mine() is not None
