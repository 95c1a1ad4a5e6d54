"""The waits the documentation promises: at most servicegroup_backend_timeout.

Against a server that accepts connections and never answers, and against a
refused port, on every networked backend: the first ``is_up`` after a
``join`` and ``stop()`` each return within the backend timeout (plus slack
for a loaded 2-core machine), instead of adding up several such waits.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from tests import support

TIMEOUT = 1.5
#: Scheduling slack on a shared 2-core machine; one more wait would exceed it.
SLACK = 1.0
SCHEMES = ["redis", "memcached", "kazoo", "etcd3+http"]


@pytest.fixture(scope="module")
def silent_port() -> Iterator[int]:
    """A port whose connections the kernel accepts and nobody answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    yield listener.getsockname()[1]
    listener.close()


@pytest.fixture
def refused_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port: int = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    return port


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("server", ["silent", "refused"])
def test_first_question_and_stop_are_bounded(
    scheme: str, server: str, request: pytest.FixtureRequest
) -> None:
    port = request.getfixturevalue(f"{server}_port")
    api = support.make_api(
        f"{scheme}://127.0.0.1:{port}", servicegroup_backend_timeout=TIMEOUT
    )
    api.join("host1", "compute")
    start = time.monotonic()
    assert not api.is_up("host1", "compute")
    first_question = time.monotonic() - start
    start = time.monotonic()
    api.stop()
    stop = time.monotonic() - start
    print(f"{server} {scheme}: first is_up {first_question:.2f} s, stop {stop:.2f} s")
    assert first_question <= TIMEOUT + SLACK
    assert stop <= TIMEOUT + SLACK
