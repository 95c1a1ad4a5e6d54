"""The in-memory tooz backend, under its first name.

It now lives in :mod:`servicegroup.testing.fake`; this module keeps the
names tests and host projects already import from here.
"""

from servicegroup.testing.fake.driver import FakeDriver
from servicegroup.testing.fake.locks import FakeLock
from servicegroup.testing.fake.store import _STORES, FakeStore, drop_store, store

__all__ = ["_STORES", "FakeDriver", "FakeLock", "FakeStore", "drop_store", "store"]
