"""Real backend servers, started by the test session on loopback ports.

Servers are session-scoped and shared; tests isolate themselves with unique
group names. A test that breaks its server (kill, restart, wipe) asks for a
private one with :func:`private_server`. In CI a server that cannot run is
a failure, never a skip: the contract must really be checked everywhere.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable, Iterator

import pytest

from servicegroup.testing import servers

#: Backend names as the contract suite knows them -> server kind.
SERVER_KINDS = {
    "redis": "redis",
    "memcached": "memcached",
    "zookeeper": "zookeeper",
    "etcd": "etcd",
}
ALL_BACKENDS = ["fake", "file", *SERVER_KINDS]

_FACTORIES: dict[str, Callable[[], servers.BackendServer]] = {
    "redis": servers.RedisServer,
    "memcached": servers.MemcachedServer,
    "zookeeper": servers.ZooKeeperServer,
    "etcd": servers.EtcdServer,
}


def require(kind: str) -> None:
    """Skip (fail in CI) when the server binary for ``kind`` is missing."""
    if servers.available(kind):
        return
    reason = servers.missing_reason(kind)
    if os.environ.get("CI"):
        pytest.fail(f"{kind} is required in CI: {reason}")
    pytest.skip(reason)


def new_server(kind: str) -> servers.BackendServer:
    require(kind)
    server = _FACTORIES[kind]()
    server.start()
    return server


class _ServerPool:
    def __init__(self) -> None:
        self._servers: dict[str, servers.BackendServer] = {}

    def get(self, kind: str) -> servers.BackendServer:
        server = self._servers.get(kind)
        if server is None or not server.is_running():
            server = self._servers[kind] = new_server(kind)
        return server

    def close(self) -> None:
        for server in self._servers.values():
            server.close()


@pytest.fixture(scope="session")
def server_pool() -> Iterator[_ServerPool]:
    pool = _ServerPool()
    yield pool
    pool.close()


@pytest.fixture
def private_server() -> Iterator[Callable[[str], servers.BackendServer]]:
    """Factory of servers owned by one test (it may kill or wipe them)."""
    started: list[servers.BackendServer] = []

    def factory(kind: str) -> servers.BackendServer:
        server = new_server(kind)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.close()


@pytest.fixture(params=ALL_BACKENDS)
def backend_url(
    request: pytest.FixtureRequest, server_pool: _ServerPool
) -> Iterator[str]:
    """A URL on each backend in turn, isolated from other tests."""
    name = request.param
    if name == "fake":
        yield f"fake://{uuid.uuid4().hex}"
    elif name == "file":
        with tempfile.TemporaryDirectory(prefix="sg-file-") as path:
            yield f"file://{path}"
    else:
        yield server_pool.get(SERVER_KINDS[name]).url


@pytest.fixture
def group() -> str:
    """A group name no other test uses."""
    return f"g{uuid.uuid4().hex[:12]}"
