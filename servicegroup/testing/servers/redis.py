"""Redis: standalone servers, replicas, and Redis Sentinel.

- :class:`RedisServer` and :func:`make_replica`.
- :class:`SentinelServer`, one ``redis-sentinel`` process, and
  :class:`RedisSentinel`, sentinels watching a master and its replicas.
- A minimal RESP client (``_redis_call``, raising :class:`RespError`), so
  the launchers need no redis-py.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence
from typing import Any

from servicegroup.testing.servers.base import (
    HOST,
    BackendServer,
    ServerError,
    ServerGroup,
    ServerStartError,
    _find_binary,
    _require_binary,
)


class RespError(ServerError):
    """Redis answered a command with an error reply."""


def _resp_encode(args: Sequence[str | bytes | int]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        else:
            data = str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _resp_read(reader: Any) -> object:
    line: bytes = reader.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed in the middle of a reply")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RespError(rest.decode(errors="replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        if size < 0:
            return None
        data: bytes = reader.read(size + 2)
        return data[:-2]
    if kind == b"*":
        count = int(rest)
        if count < 0:
            return None
        return [_resp_read(reader) for _ in range(count)]
    raise ConnectionError(f"unexpected RESP reply {line!r}")


def _redis_call(port: int, *args: str | bytes | int, timeout: float = 2.0) -> object:
    """One command over a fresh connection; no dependency on redis-py."""
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(_resp_encode(args))
        with sock.makefile("rb") as reader:
            return _resp_read(reader)


def _parse_info(text: str) -> dict[str, str]:
    info = {}
    for line in text.splitlines():
        if not line or line.startswith("#") or ":" not in line:
            continue
        key, _, value = line.partition(":")
        info[key] = value.strip()
    return info


# --------------------------------------------------------------------------
# Standalone servers and replicas
# --------------------------------------------------------------------------


class RedisServer(BackendServer):
    """A standalone ``redis-server`` (optionally a replica).

    No persistence by default (``--save "" --appendonly no``), so every
    restart comes back empty, like a cache node that was replaced.  Pass
    ``persistent=True`` to turn the append-only file on when a test needs
    data to survive ``restart(wipe=False)``.

    :param replica_of: start as a replica of this server (``replicaof``).
    :param extra_args: more ``--option value`` arguments for redis-server.
    """

    kind = "redis"
    scheme = "redis"

    def __init__(
        self,
        *,
        persistent: bool = False,
        replica_of: RedisServer | None = None,
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
        self.persistent = persistent
        self.replica_of = replica_of
        self.extra_args = list(extra_args)

    def _command(self) -> list[str]:
        command = [
            _require_binary("redis-server", "redis"),
            "--bind", self.host,
            "--port", str(self.port),
            "--dir", self.data_dir,
            "--daemonize", "no",
            "--logfile", "",
            "--save", "",
            "--appendonly", "yes" if self.persistent else "no",
            # Replicas would otherwise wait 5 s for company before their
            # first sync, which dominates a sentinel test's start-up.
            "--repl-diskless-sync-delay", "0",
        ]  # fmt: skip
        if self.replica_of is not None:
            command += [
                "--replicaof", self.replica_of.host, str(self.replica_of.port),
            ]  # fmt: skip
        return command + self.extra_args

    def _probe(self) -> bool:
        return _redis_call(self.port, "PING") == "PONG"

    def execute(self, *args: str | bytes | int, timeout: float = 5.0) -> object:
        """Run one Redis command and return the decoded RESP reply.

        Simple strings come back as ``str``, bulk strings as ``bytes``,
        integers as ``int``, arrays as ``list``.

        :raises RespError: the server replied with an error.
        """
        return _redis_call(self.port, *args, timeout=timeout)

    def info(self, section: str = "") -> dict[str, str]:
        """``INFO [section]`` as a flat dict."""
        args: tuple[str, ...] = ("INFO", section) if section else ("INFO",)
        reply = self.execute(*args)
        if not isinstance(reply, bytes):
            raise ServerError(f"unexpected INFO reply {reply!r}")
        return _parse_info(reply.decode())

    def command_stats(self) -> dict[str, int]:
        """Calls per command since start (or :meth:`reset_stats`).

        Keys are lower-case command names (``"hset"``,
        ``"client|list"``); benchmarks diff two snapshots to count what a
        driver really sends to the server.
        """
        stats = {}
        for key, value in self.info("commandstats").items():
            if not key.startswith("cmdstat_"):
                continue
            fields = dict(
                item.split("=", 1) for item in value.split(",") if "=" in item
            )
            stats[key[len("cmdstat_") :]] = int(fields.get("calls", "0"))
        return stats

    def reset_stats(self) -> None:
        """``CONFIG RESETSTAT``: zero the command statistics."""
        self.execute("CONFIG", "RESETSTAT")

    def dbsize(self) -> int:
        """Number of keys in database 0."""
        reply = self.execute("DBSIZE")
        if not isinstance(reply, int):
            raise ServerError(f"unexpected DBSIZE reply {reply!r}")
        return reply

    def role(self) -> str:
        """``"master"`` or ``"slave"`` as this server currently sees itself."""
        return self.info("replication").get("role", "")

    def wait_for_replication(self, timeout: float = 10.0) -> None:
        """Wait until this replica's link to its master is up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.info("replication").get("master_link_status") == "up":
                    return
            except (OSError, ServerError):
                pass
            time.sleep(0.05)
        raise ServerError(f"{self!r} did not sync with its master in time")


def make_replica(
    master: RedisServer, *, start: bool = True, **kwargs: Any
) -> RedisServer:
    """Create (and by default start) a replica of ``master``.

    When started, returns only once the replica has synced, so a test can
    fail the master over straight away.
    """
    replica = RedisServer(replica_of=master, **kwargs)
    if start:
        replica.start()
        if master.is_running():
            replica.wait_for_replication(replica.startup_timeout)
    return replica


# --------------------------------------------------------------------------
# Sentinel
# --------------------------------------------------------------------------


class SentinelServer(BackendServer):
    """One ``redis-sentinel`` process (members of :class:`RedisSentinel`)."""

    kind = "redis-sentinel"
    scheme = "redis"

    def __init__(
        self,
        master: RedisServer,
        *,
        master_name: str = "servicegroup",
        quorum: int = 1,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 3000,
        startup_timeout: float = 10.0,
        base_dir: str | None = None,
    ) -> None:
        super().__init__(startup_timeout=startup_timeout, base_dir=base_dir)
        self.master = master
        self.master_name = master_name
        self.quorum = quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.config_path = os.path.join(self.data_dir, "sentinel.conf")

    @property
    def url(self) -> str:
        """tooz URL for this sentinel alone."""
        return f"redis://{self.host}:{self.port}?sentinel={self.master_name}"

    def _prepare(self) -> None:
        # Sentinel rewrites its config file as it learns the topology, so
        # it lives in the data dir (kept across restarts unless wiped).
        if os.path.exists(self.config_path):
            return
        name, master, quorum = self.master_name, self.master, self.quorum
        config = [
            f"bind {self.host}",
            f"port {self.port}",
            f"dir {self.data_dir}",
            "sentinel resolve-hostnames no",
            f"sentinel monitor {name} {master.host} {master.port} {quorum}",
            f"sentinel down-after-milliseconds {name} {self.down_after_ms}",
            f"sentinel failover-timeout {name} {self.failover_timeout_ms}",
            f"sentinel parallel-syncs {name} 1",
        ]
        with open(self.config_path, "w") as fh:
            fh.write("\n".join(config) + "\n")

    def _command(self) -> list[str]:
        binary = _find_binary("redis-sentinel")
        if binary is not None:
            return [binary, self.config_path]
        return [
            _require_binary("redis-server", "redis-sentinel"),
            self.config_path,
            "--sentinel",
        ]

    def _probe(self) -> bool:
        return self.master_address() is not None

    def execute(self, *args: str | bytes | int, timeout: float = 5.0) -> object:
        """Run one command on the sentinel (``SENTINEL ...``)."""
        return _redis_call(self.port, *args, timeout=timeout)

    def master_address(self) -> tuple[str, int] | None:
        """Where this sentinel thinks the master is."""
        reply = self.execute("SENTINEL", "get-master-addr-by-name", self.master_name)
        if not isinstance(reply, list) or len(reply) != 2:
            return None
        host, port = reply
        if not isinstance(host, bytes) or not isinstance(port, bytes):
            return None
        return host.decode(), int(port)

    def _count(self, what: str) -> int:
        reply = self.execute("SENTINEL", what, self.master_name)
        return len(reply) if isinstance(reply, list) else 0


class RedisSentinel(ServerGroup):
    """Redis Sentinel watching a master and its replicas.

    ``sentinels`` sentinel processes monitor ``master`` with quorum
    ``sentinels // 2 + 1``; short ``down_after_ms``/``failover_timeout_ms``
    make a failover take a couple of seconds instead of a minute.
    :attr:`url` is tooz's sentinel form, every sentinel but the first as
    a ``sentinel_fallback``::

        redis://127.0.0.1:S1?sentinel=NAME&sentinel_fallback=127.0.0.1:S2

    The Redis servers passed in are not owned (``start()`` starts any that
    are not running, ``close()`` leaves them alone); :meth:`create` builds
    a master and replicas that it does own.

    ``start()`` returns once every sentinel knows every replica and every
    other sentinel: a failover can only be agreed on after that, so a test
    that kills the master straight after start-up would otherwise see no
    failover at all.
    """

    nodes: list[SentinelServer]  # type: ignore[assignment]

    def __init__(
        self,
        master: RedisServer,
        replicas: Sequence[RedisServer] = (),
        *,
        sentinels: int = 3,
        master_name: str = "servicegroup",
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 3000,
        startup_timeout: float = 15.0,
        base_dir: str | None = None,
    ) -> None:
        if sentinels < 1:
            raise ValueError("at least one sentinel is needed")
        self.master = master
        self.replicas = list(replicas)
        self.master_name = master_name
        self.startup_timeout = startup_timeout
        self._owned: list[RedisServer] = []
        nodes = [
            SentinelServer(
                master,
                master_name=master_name,
                quorum=sentinels // 2 + 1,
                down_after_ms=down_after_ms,
                failover_timeout_ms=failover_timeout_ms,
                startup_timeout=startup_timeout,
                base_dir=base_dir,
            )
            for _ in range(sentinels)
        ]
        super().__init__(nodes)

    @classmethod
    def create(
        cls, replicas: int = 1, sentinels: int = 3, **kwargs: Any
    ) -> RedisSentinel:
        """A sentinel group with its own master and ``replicas`` replicas.

        Nothing is started yet; ``close()`` closes the Redis servers too.
        """
        master = RedisServer()
        replica_servers = [RedisServer(replica_of=master) for _ in range(replicas)]
        group = cls(master, replica_servers, sentinels=sentinels, **kwargs)
        group._owned = [master, *replica_servers]
        return group

    @property
    def url(self) -> str:
        """tooz URL: first sentinel, the others as ``sentinel_fallback``."""
        first, *rest = self.nodes
        url = first.url
        for node in rest:
            url += f"&sentinel_fallback={node.address}"
        return url

    @property
    def redis_servers(self) -> list[RedisServer]:
        """The master given at construction followed by the replicas."""
        return [self.master, *self.replicas]

    def start(self) -> None:
        """Start Redis servers and sentinels; wait until they know each
        other (see the class docstring)."""
        for server in self.redis_servers:
            if not server.is_running():
                server.start()
        for replica in self.replicas:
            replica.wait_for_replication(self.startup_timeout)
        super().start()
        self.wait_until_discovered(self.startup_timeout)

    def wait_until_discovered(self, timeout: float = 15.0) -> None:
        """Wait until each sentinel sees all replicas and other sentinels."""
        deadline = time.monotonic() + timeout
        want_replicas = len(self.replicas)
        want_sentinels = len(self.nodes) - 1
        while True:
            try:
                if all(
                    node._count("replicas") >= want_replicas
                    and node._count("sentinels") >= want_sentinels
                    for node in self.nodes
                ):
                    return
            except (OSError, ServerError):
                pass
            if time.monotonic() >= deadline:
                raise ServerStartError(
                    "sentinels did not discover the replicas and each "
                    f"other within {timeout:.0f}s",
                    self.nodes[0].log_tail(),
                )
            time.sleep(0.1)

    def master_address(self) -> tuple[str, int] | None:
        """The master's address according to the first live sentinel."""
        for node in self.nodes:
            if node.is_running() and not node.paused:
                try:
                    return node.master_address()
                except (OSError, ServerError):
                    continue
        return None

    def current_master(self) -> RedisServer | None:
        """The :class:`RedisServer` sentinel currently calls master."""
        address = self.master_address()
        for server in self.redis_servers:
            if address == (server.host, server.port):
                return server
        return None

    def failover(self) -> None:
        """Force a failover now (``SENTINEL FAILOVER``)."""
        self.nodes[0].execute("SENTINEL", "FAILOVER", self.master_name)

    def wait_for_new_master(
        self, old: tuple[str, int], timeout: float = 20.0
    ) -> tuple[str, int]:
        """Wait until sentinel names a master other than ``old``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            address = self.master_address()
            if address is not None and address != old:
                return address
            time.sleep(0.1)
        raise ServerError(f"no failover away from {old} within {timeout}s")

    def close(self) -> None:
        """Close the sentinels, and the Redis servers :meth:`create` made."""
        super().close()
        for server in self._owned:
            server.close()
