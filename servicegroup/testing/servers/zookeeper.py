"""ZooKeeper: a standalone server or an ensemble.

- :class:`ZooKeeperServer`, run with ``java`` directly.
- :class:`ZooKeeperEnsemble`, ``size`` servers in one quorum.
"""

from __future__ import annotations

import os

from servicegroup.testing.servers.base import (
    BackendServer,
    ServerGroup,
    ServerStartError,
    _free_port,
    _require_binary,
    _tcp_exchange,
    _zookeeper_classpath,
    missing_reason,
)

_ZOOKEEPER_MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"


class ZooKeeperServer(BackendServer):
    """A ZooKeeper server, run with ``java`` directly (no init scripts).

    Session timeouts: a server clamps what clients ask for to
    ``[minSessionTimeout, maxSessionTimeout]`` (default ``2..20 x
    tickTime``).  Tests need both short sessions (expiry in a second or
    two) and Nova-like ones (``service_down_time`` = 60 s), so the bounds
    are set explicitly: 1 s .. 60 s by default.  ``tick_time_ms`` also sets
    how often expired sessions are reaped, hence a small default.

    The four-letter-word commands are all whitelisted (``ruok``, ``srvr``,
    ``mntr``, ``cons`` ...), the AdminServer (HTTP on 0.0.0.0:8080) is
    off, and fsync is disabled: the data is throw-away anyway.

    Constructed directly this is a standalone server; members of a
    :class:`ZooKeeperEnsemble` are created by the ensemble.
    """

    kind = "zookeeper"
    scheme = "kazoo"

    def __init__(
        self,
        *,
        tick_time_ms: int = 500,
        min_session_timeout_ms: int | None = 1000,
        max_session_timeout_ms: int | None = 60000,
        heap_mb: int = 256,
        startup_timeout: float = 30.0,
        stop_timeout: float = 10.0,
        base_dir: str | None = None,
    ) -> None:
        super().__init__(
            startup_timeout=startup_timeout,
            stop_timeout=stop_timeout,
            base_dir=base_dir,
        )
        self.tick_time_ms = tick_time_ms
        self.min_session_timeout_ms = min_session_timeout_ms
        self.max_session_timeout_ms = max_session_timeout_ms
        self.heap_mb = heap_mb
        self.config_path = os.path.join(self.dir, "zoo.cfg")
        # Set by ZooKeeperEnsemble: (myid, "server.N=..." lines).
        self._myid: int | None = None
        self._server_lines: list[str] = []
        self.peer_port = 0
        self.election_port = 0

    def _prepare(self) -> None:
        config = [
            f"tickTime={self.tick_time_ms}",
            "initLimit=10",
            "syncLimit=5",
            f"dataDir={self.data_dir}",
            f"clientPort={self.port}",
            f"clientPortAddress={self.host}",
            "maxClientCnxns=0",
            "admin.enableServer=false",
            "4lw.commands.whitelist=*",
            "forceSync=no",
            "autopurge.purgeInterval=0",
            "reconfigEnabled=false",
        ]
        if self.min_session_timeout_ms is not None:
            config.append(f"minSessionTimeout={self.min_session_timeout_ms}")
        if self.max_session_timeout_ms is not None:
            config.append(f"maxSessionTimeout={self.max_session_timeout_ms}")
        if self._myid is not None:
            config += self._server_lines
            config.append("standaloneEnabled=false")
            with open(os.path.join(self.data_dir, "myid"), "w") as fh:
                fh.write(f"{self._myid}\n")
        with open(self.config_path, "w") as fh:
            fh.write("\n".join(config) + "\n")

    def _command(self) -> list[str]:
        java = _require_binary("java", "zookeeper")
        classpath = _zookeeper_classpath()
        if classpath is None:
            raise ServerStartError(missing_reason("zookeeper"))
        return [
            java,
            f"-Xmx{self.heap_mb}m",
            "-Xms32m",
            "-Xss512k",
            # Start-up time dominates short tests: no JIT tiers beyond C1,
            # the smallest GC, no perf-data files in /tmp.
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-XX:-UsePerfData",
            "-Djava.awt.headless=true",
            "-Djava.net.preferIPv4Stack=true",
            "-Dzookeeper.admin.enableServer=false",
            "-Dzookeeper.jmx.log4j.disable=true",
            "-Dzookeeper.preAllocSize=1024",
            "-Dzookeeper.cnxTimeout=1000",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=info",
            "-Dorg.slf4j.simpleLogger.showDateTime=true",
            "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd HH:mm:ss.SSS",
            "-cp", os.pathsep.join(classpath),
            _ZOOKEEPER_MAIN,
            self.config_path,
        ]  # fmt: skip

    def _probe(self) -> bool:
        if self.four_letter("ruok") != "imok":
            return False
        return self.mode() in ("standalone", "leader", "follower")

    def four_letter(self, word: str, timeout: float = 2.0) -> str:
        """Send a four-letter-word command (``ruok``, ``mntr``, ...)."""
        reply = _tcp_exchange(self.port, word.encode(), timeout=timeout)
        return reply.decode(errors="replace").strip()

    def srvr(self) -> dict[str, str]:
        """``srvr`` as a dict (``Mode``, ``Zxid``, ``Latency min/avg/max``...).

        Empty while the server is not serving (no quorum).
        """
        info = {}
        for line in self.four_letter("srvr").splitlines():
            key, sep, value = line.partition(":")
            if sep:
                info[key.strip()] = value.strip()
        return info

    def mode(self) -> str | None:
        """``standalone``, ``leader`` or ``follower``; None if not serving."""
        return self.srvr().get("Mode")

    def mntr(self) -> dict[str, str]:
        """``mntr`` counters (``zk_packets_received``, ``zk_num_alive_
        connections``, ``zk_avg_latency`` ...) as strings."""
        stats = {}
        for line in self.four_letter("mntr").splitlines():
            key, sep, value = line.partition("\t")
            if sep:
                stats[key.strip()] = value.strip()
        return stats

    def session_timeouts(self) -> list[int]:
        """Negotiated timeouts (ms) of the client sessions connected now.

        Read from ``cons``; this is the server's view, i.e. after
        clamping, which is what a driver reporting effective timeouts must
        match.
        """
        timeouts = []
        for line in self.four_letter("cons").splitlines():
            for field in line.strip().rstrip(")").split(","):
                key, _, value = field.partition("=")
                if key == "to" and value.isdigit():
                    timeouts.append(int(value))
        return timeouts


class ZooKeeperEnsemble(ServerGroup):
    """A ZooKeeper ensemble of ``size`` servers on loopback.

    :attr:`url` lists every member the way tooz's kazoo driver takes it:
    ``kazoo://h1:p1?hosts=h2:p2&hosts=h3:p3``.  Each node is a
    :class:`ZooKeeperServer`; killing, pausing or wiping nodes simulates
    member failures, and :meth:`leader` finds the one to kill.
    Parameters are passed to every :class:`ZooKeeperServer`.
    """

    nodes: list[ZooKeeperServer]  # type: ignore[assignment]

    def __init__(
        self,
        size: int = 3,
        *,
        tick_time_ms: int = 500,
        min_session_timeout_ms: int | None = 1000,
        max_session_timeout_ms: int | None = 60000,
        heap_mb: int = 192,
        startup_timeout: float = 30.0,
        base_dir: str | None = None,
    ) -> None:
        if size < 1:
            raise ValueError("an ensemble needs at least one server")
        nodes = [
            ZooKeeperServer(
                tick_time_ms=tick_time_ms,
                min_session_timeout_ms=min_session_timeout_ms,
                max_session_timeout_ms=max_session_timeout_ms,
                heap_mb=heap_mb,
                startup_timeout=startup_timeout,
                base_dir=base_dir,
            )
            for _ in range(size)
        ]
        if size > 1:
            lines = []
            for myid, node in enumerate(nodes, start=1):
                node.peer_port = _free_port()
                node.election_port = _free_port()
                lines.append(
                    f"server.{myid}={node.host}:{node.peer_port}:{node.election_port}"
                )
            for myid, node in enumerate(nodes, start=1):
                node._myid = myid
                node._server_lines = lines
                node._ports_movable = False
        super().__init__(nodes)

    @property
    def url(self) -> str:
        """tooz URL naming every member."""
        first, *rest = self.nodes
        url = f"kazoo://{first.address}"
        if rest:
            url += "?" + "&".join(f"hosts={n.address}" for n in rest)
        return url

    @property
    def hosts(self) -> str:
        """``h1:p1,h2:p2,...``: the connection string kazoo itself takes."""
        return ",".join(node.address for node in self.nodes)

    def leader(self) -> ZooKeeperServer | None:
        """The member currently leading (or the standalone server)."""
        for node in self.nodes:
            if not node.is_running() or node.paused:
                continue
            try:
                if node.mode() in ("leader", "standalone"):
                    return node
            except OSError:
                continue
        return None
