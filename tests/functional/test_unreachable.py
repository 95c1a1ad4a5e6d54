"""An unreachable backend never blocks join, is_up or stop for long.

Each backend's URL points at a loopback port where nothing listens (the
server was started once to get a real free port, then stopped). The bounds
are the documented ones: join returns at once, the first question about a
group waits at most ``servicegroup_backend_timeout``, and so does stop;
``SLACK`` absorbs a loaded 2-core machine.
"""

from __future__ import annotations

import time

import pytest

from servicegroup import exceptions
from tests import support
from tests.functional import conftest

BACKEND_TIMEOUT = 1.0
SLACK = 3.0


@pytest.mark.parametrize("kind", sorted(conftest.SERVER_KINDS))
def test_dead_backend_does_not_block(kind: str, private_server, group) -> None:
    server = private_server(kind)
    url = server.url
    server.stop()
    api = support.make_api(url, servicegroup_backend_timeout=BACKEND_TIMEOUT)
    try:
        started = time.monotonic()
        api.join("host1", group)
        assert time.monotonic() - started < SLACK, "join waited for the backend"

        started = time.monotonic()
        assert not api.is_up("host1", group)
        assert time.monotonic() - started < BACKEND_TIMEOUT + SLACK
        records = api.get_members(group)
        assert records == []  # nothing known yet, and nothing invented

        with pytest.raises(exceptions.BackendError):
            api.get_groups()
    finally:
        started = time.monotonic()
        api.stop()
        assert time.monotonic() - started < BACKEND_TIMEOUT + SLACK


def test_refused_zookeeper_is_not_called_a_time_out(private_server) -> None:
    server = private_server("zookeeper")
    url = server.url
    server.stop()
    api = support.make_api(url, servicegroup_backend_timeout=BACKEND_TIMEOUT)
    try:
        with pytest.raises(exceptions.BackendUnavailable, match="refused"):
            api.get_groups()
    finally:
        api.stop()
