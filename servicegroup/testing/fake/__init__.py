"""An in-memory tooz backend: ``fake://NAME``.

It is registered in tooz's own ``tooz.backends`` namespace, so
``servicegroup_tooz_url = fake://NAME`` runs the real tooz driver code of
servicegroup against memory, and a project using tooz directly can test its
locks, leader elections and group watchers without a server. Each NAME is a
separate :class:`FakeStore`, so tests do not see each other. It passes
tooz's own API suite (``tests/functional/test_tooz_api_suite.py``).

Time is the store's: set :attr:`FakeStore.clock` to a
:class:`~servicegroup.testing.FakeClock`'s ``monotonic`` and members, locks
and leaderships expire as that clock moves, with no sleeping.

Tests can also break the backend: :meth:`FakeStore.set_reachable` makes every
call fail as a network outage would, :meth:`FakeStore.wipe` loses all data as
a restart without persistence would, :meth:`FakeStore.evict` removes one
member; :attr:`FakeStore.calls` counts the calls that reached the store.

The package has one module per job: :mod:`.store` (the shared state and the
registry of stores), :mod:`.locks` and :mod:`.driver` (the tooz driver).
"""

from servicegroup.testing.fake.driver import FakeDriver
from servicegroup.testing.fake.locks import FakeLock
from servicegroup.testing.fake.store import FakeStore, drop_store, store

__all__ = ["FakeDriver", "FakeLock", "FakeStore", "drop_store", "store"]
