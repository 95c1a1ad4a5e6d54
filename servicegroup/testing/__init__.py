"""Test support shipped with servicegroup, for its users' unit tests.

- :class:`FakeClock`: time that moves only when the test says so.
- :class:`ServiceGroupFixture`: an API on a private in-memory backend.
- ``fake://NAME``: the in-memory tooz backend (:mod:`.fake_backend`).
- :mod:`.pytest_plugin`: the ``servicegroup_fake`` pytest fixture.
- :mod:`.servers`: real Redis, memcached, ZooKeeper, etcd servers on free
  loopback ports, for functional tests.
"""

from servicegroup.testing.clock import FakeClock
from servicegroup.testing.fixture import ServiceGroupFixture

__all__ = ["FakeClock", "ServiceGroupFixture"]
