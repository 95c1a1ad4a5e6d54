"""pytest fixtures for projects that use servicegroup.

Enable with ``pytest -p servicegroup.testing.pytest_plugin`` or
``pytest_plugins = ["servicegroup.testing.pytest_plugin"]`` in a conftest.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from servicegroup.testing.fixture import ServiceGroupFixture


@pytest.fixture
def servicegroup_fake() -> Iterator[ServiceGroupFixture]:
    """A :class:`ServiceGroupFixture` (fake backend, fake clock), cleaned up."""
    fixture = ServiceGroupFixture()
    fixture.setUp()
    try:
        yield fixture
    finally:
        fixture.cleanUp()
