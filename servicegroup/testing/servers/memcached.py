"""memcached, alone or behind twemproxy (nutcracker).

- :class:`MemcachedServer`.
- :class:`NutcrackerProxy`, twemproxy in front of memcached servers.
- ``_memcached_call``, a one-command text-protocol client.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Sequence
from typing import Any

from servicegroup.testing.servers.base import (
    HOST,
    BackendServer,
    _free_port,
    _require_binary,
    _tcp_exchange,
)


def _memcached_call(port: int, command: bytes, timeout: float = 2.0) -> str:
    """Run a text-protocol command, read up to ``END``/a one-line reply."""
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(command + b"\r\n")
        buf = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
            if buf.endswith(b"END\r\n") or (
                not buf.startswith((b"STAT ", b"VALUE ", b"ITEM "))
                and buf.endswith(b"\r\n")
            ):
                break
        return buf.decode(errors="replace")


class MemcachedServer(BackendServer):
    """A ``memcached`` instance.

    memcached keeps nothing on disk, so every restart comes back empty;
    ``wipe`` makes no difference.  A graceful ``stop()`` takes about a
    second (memcached acts on SIGTERM at its next one-second clock tick);
    ``kill()`` is instant.

    :param memory_mb: item memory (``-m``).
    :param threads: worker threads (``-t``).
    """

    kind = "memcached"
    scheme = "memcached"

    def __init__(
        self,
        *,
        memory_mb: int = 64,
        threads: int = 2,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 10.0,
        stop_timeout: float = 10.0,
        base_dir: str | None = None,
    ) -> None:
        super().__init__(
            startup_timeout=startup_timeout,
            stop_timeout=stop_timeout,
            base_dir=base_dir,
        )
        self.memory_mb = memory_mb
        self.threads = threads
        self.extra_args = list(extra_args)

    def _command(self) -> list[str]:
        command = [
            _require_binary("memcached", "memcached"),
            "-l", self.host,
            "-p", str(self.port),
            "-U", "0",
            "-m", str(self.memory_mb),
            "-t", str(self.threads),
            "-c", "4096",
        ]  # fmt: skip
        if os.geteuid() == 0:
            # memcached refuses to run as root unless told whom to be.
            command += ["-u", "root"]
        return command + self.extra_args

    def _probe(self) -> bool:
        return _memcached_call(self.port, b"version").startswith("VERSION ")

    def stats(self, group: str = "") -> dict[str, str]:
        """``stats [group]`` as a dict (values as memcached prints them)."""
        command = b"stats " + group.encode() if group else b"stats"
        stats = {}
        for line in _memcached_call(self.port, command).splitlines():
            parts = line.split(" ", 2)
            if len(parts) == 3 and parts[0] == "STAT":
                stats[parts[1]] = parts[2]
        return stats

    def reset_stats(self) -> None:
        """``stats reset``: zero the counters."""
        _memcached_call(self.port, b"stats reset")

    def flush_all(self) -> None:
        """Invalidate every item."""
        _memcached_call(self.port, b"flush_all")


# --------------------------------------------------------------------------
# twemproxy (nutcracker) in front of memcached
# --------------------------------------------------------------------------


class NutcrackerProxy(BackendServer):
    """twemproxy in front of memcached servers, as deployed for HA caches.

    With ``auto_eject_hosts`` a dead memcached node is taken out of the
    ketama ring after ``server_failure_limit`` failures and retried after
    ``server_retry_timeout`` ms, so its keys move to other nodes: the
    "memcached node behind a proxy died" case of the failure model
    (``doc/source/failure-model.rst``).

    The memcached servers are not owned: start and close them yourself
    (``start()`` here does start any that are not running, for
    convenience).  twemproxy keeps no data, so ``wipe`` is a no-op.

    :param memcached_servers: the pool, in order.
    :param server_retry_timeout: ms before an ejected server is retried.
    :param server_failure_limit: failures before a server is ejected.
    :param timeout: ms twemproxy waits for a server before failing a request.
    """

    kind = "nutcracker"
    scheme = "memcached"

    def __init__(
        self,
        memcached_servers: Sequence[MemcachedServer],
        *,
        server_retry_timeout: int = 2000,
        server_failure_limit: int = 1,
        timeout: int = 400,
        auto_eject_hosts: bool = True,
        startup_timeout: float = 10.0,
        stop_timeout: float = 10.0,
        base_dir: str | None = None,
    ) -> None:
        if not memcached_servers:
            raise ValueError("NutcrackerProxy needs at least one server")
        super().__init__(
            startup_timeout=startup_timeout,
            stop_timeout=stop_timeout,
            base_dir=base_dir,
        )
        self.memcached_servers = list(memcached_servers)
        self.server_retry_timeout = server_retry_timeout
        self.server_failure_limit = server_failure_limit
        self.timeout = timeout
        self.auto_eject_hosts = auto_eject_hosts
        self.stats_port = _free_port()
        self.config_path = os.path.join(self.dir, "nutcracker.yml")

    def _allocate_ports(self) -> None:
        super()._allocate_ports()
        self.stats_port = _free_port()

    def _prepare(self) -> None:
        lines = [
            "servicegroup:",
            f"  listen: {self.host}:{self.port}",
            "  hash: fnv1a_64",
            "  distribution: ketama",
            f"  timeout: {self.timeout}",
            "  preconnect: false",
            f"  auto_eject_hosts: {str(self.auto_eject_hosts).lower()}",
            f"  server_retry_timeout: {self.server_retry_timeout}",
            f"  server_failure_limit: {self.server_failure_limit}",
            "  servers:",
        ]
        lines += [
            f"   - {server.host}:{server.port}:1" for server in self.memcached_servers
        ]
        with open(self.config_path, "w") as fh:
            fh.write("\n".join(lines) + "\n")

    def start(self, wait: bool = True) -> None:
        for server in self.memcached_servers:
            if not server.is_running():
                server.start()
        super().start(wait)

    def _command(self) -> list[str]:
        return [
            _require_binary("nutcracker", "nutcracker"),
            "-c", self.config_path,
            # The stats listener defaults to 0.0.0.0:22222.
            "-a", self.host,
            "-s", str(self.stats_port),
            "-i", "1000",
            "-o", self.log_path,
            "-p", os.path.join(self.dir, "nutcracker.pid"),
        ]  # fmt: skip

    def _probe(self) -> bool:
        # Not a memcached command: the answer would depend on the pool's
        # health, and a proxy whose servers are all down is still "up".
        self.stats()
        with socket.create_connection((self.host, self.port), timeout=1.0):
            return True

    def stats(self) -> dict[str, Any]:
        """twemproxy's JSON stats (refreshed every second by the proxy)."""
        stats: dict[str, Any] = json.loads(_tcp_exchange(self.stats_port, b""))
        return stats
