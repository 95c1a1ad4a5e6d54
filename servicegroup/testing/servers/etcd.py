"""etcd: a single member or a cluster.

- :class:`EtcdServer`, an etcd v3 server.
- :class:`EtcdCluster`, ``size`` members in one raft cluster.
- ``_http``, a proxy-free loopback HTTP client for its JSON gateway.
"""

from __future__ import annotations

import json
import os
import platform
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

from servicegroup.testing.servers.base import (
    HOST,
    BackendServer,
    ServerError,
    ServerGroup,
    _free_port,
    _require_binary,
)

_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _http(
    port: int,
    path: str,
    body: Mapping[str, Any] | None = None,
    timeout: float = 2.0,
) -> bytes:
    """GET (or POST JSON when ``body`` is given) on a loopback server.

    Environment proxies are ignored on purpose: an ``http_proxy`` set for
    the machine would otherwise swallow requests meant for 127.0.0.1.
    """
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://{HOST}:{port}{path}",
        data=data,
        headers={"Content-Type": "application/json"} if data else {},
    )
    with _NO_PROXY_OPENER.open(request, timeout=timeout) as response:
        payload: bytes = response.read()
        return payload


class EtcdServer(BackendServer):
    """An ``etcd`` v3 server with client and peer ports on loopback.

    tooz talks to it through etcd3gw (the JSON gRPC gateway), so
    :attr:`url` is ``etcd3+http://127.0.0.1:PORT``.  Members of an
    :class:`EtcdCluster` are created by the cluster.

    :param heartbeat_ms: raft heartbeat interval.
    :param election_ms: raft election timeout; together with
        ``heartbeat_ms`` this decides how fast a cluster replaces a dead
        leader.
    """

    kind = "etcd"
    scheme = "etcd3+http"

    def __init__(
        self,
        *,
        heartbeat_ms: int = 100,
        election_ms: int = 1000,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 15.0,
        stop_timeout: float = 10.0,
        base_dir: str | None = None,
    ) -> None:
        super().__init__(
            startup_timeout=startup_timeout,
            stop_timeout=stop_timeout,
            base_dir=base_dir,
        )
        self.heartbeat_ms = heartbeat_ms
        self.election_ms = election_ms
        self.extra_args = list(extra_args)
        self.peer_port = _free_port()
        self.name = f"sg-{self.port}"
        self.initial_cluster = f"{self.name}={self.peer_url}"
        self.initial_cluster_state = "new"
        self.cluster_token = f"sg-{os.getpid()}-{self.port}"
        self._cluster: EtcdCluster | None = None

    def _allocate_ports(self) -> None:
        super()._allocate_ports()
        self.peer_port = _free_port()
        self.name = f"sg-{self.port}"
        self.initial_cluster = f"{self.name}={self.peer_url}"
        self.cluster_token = f"sg-{os.getpid()}-{self.port}"

    @property
    def client_url(self) -> str:
        """Plain ``http://host:port`` (for etcdctl or etcd3gw directly)."""
        return f"http://{self.host}:{self.port}"

    @property
    def peer_url(self) -> str:
        """The raft peer URL."""
        return f"http://{self.host}:{self.peer_port}"

    def _env(self) -> dict[str, str]:
        # etcd reads ETCD_* variables as flags and refuses to start when a
        # variable and a flag both set something; the test run's own
        # environment must not leak into the server.
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
        if platform.machine() in ("aarch64", "arm64"):
            env["ETCD_UNSUPPORTED_ARCH"] = "arm64"
        return env

    def _command(self) -> list[str]:
        return [
            _require_binary("etcd", "etcd"),
            "--name", self.name,
            "--data-dir", self.data_dir,
            "--listen-client-urls", self.client_url,
            "--advertise-client-urls", self.client_url,
            "--listen-peer-urls", self.peer_url,
            "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", self.initial_cluster,
            "--initial-cluster-state", self.initial_cluster_state,
            "--initial-cluster-token", self.cluster_token,
            "--heartbeat-interval", str(self.heartbeat_ms),
            "--election-timeout", str(self.election_ms),
            "--logger", "zap",
            "--log-outputs", "stderr",
            # Strict checking refuses membership changes until every peer
            # has been connected for 5 s, which would make wiping a member
            # of a young test cluster fail.
            "--strict-reconfig-check=false",
        ] + self.extra_args  # fmt: skip

    def _probe(self) -> bool:
        return self.health()

    def health(self, timeout: float = 2.0) -> bool:
        """``GET /health``: true once this member sees a leader."""
        try:
            reply = json.loads(_http(self.port, "/health", timeout=timeout))
        except urllib.error.HTTPError:
            return False  # 503 while there is no leader
        return str(reply.get("health")).lower() == "true"

    def status(self) -> dict[str, Any]:
        """``/v3/maintenance/status``: version, leader, raft index, db size."""
        reply: dict[str, Any] = json.loads(
            _http(self.port, "/v3/maintenance/status", body={})
        )
        return reply

    def member_id(self) -> str:
        """This member's id (decimal string, as etcd's JSON gateway has it)."""
        return str(self.status()["header"]["member_id"])

    def is_leader(self) -> bool:
        """Whether this member is the raft leader right now."""
        status = self.status()
        return bool(status["leader"] == status["header"]["member_id"])

    def metrics(self) -> str:
        """``GET /metrics``: Prometheus text (``etcd_server_*``,
        ``etcd_mvcc_*``, ``grpc_server_handled_total`` ...)."""
        return _http(self.port, "/metrics").decode()

    def metric_values(self, prefix: str) -> dict[str, float]:
        """Samples whose name starts with ``prefix``, parsed from /metrics.

        Keys keep their labels (``grpc_server_handled_total{...}``).
        """
        values = {}
        for line in self.metrics().splitlines():
            if line.startswith(prefix) and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                try:
                    values[name] = float(value)
                except ValueError:
                    continue
        return values

    def restart(self, wipe: bool = False) -> None:
        """Stop and start again; for a cluster member, ``wipe`` re-adds it.

        A cluster member whose data is gone cannot simply rejoin (etcd
        refuses: "member has already been bootstrapped"), so a wiped member
        is removed from the cluster and added back under a new member id,
        as an operator replacing a failed disk would do.
        """
        with self._lock:
            self.stop()
            if wipe:
                self._wipe()
                if self._cluster is not None:
                    self._cluster._readd(self)
            self.start()


class EtcdCluster(ServerGroup):
    """An etcd cluster of ``size`` members on loopback.

    :attr:`url` names every member, the first as the URL's host and the
    others as ``hosts=`` options: members and observers fail over between
    them (:mod:`servicegroup.drivers.tooz.etcd`). :attr:`members` has each
    member's own single-endpoint URL.
    """

    nodes: list[EtcdServer]  # type: ignore[assignment]

    def __init__(
        self,
        size: int = 3,
        *,
        heartbeat_ms: int = 100,
        election_ms: int = 1000,
        startup_timeout: float = 20.0,
        base_dir: str | None = None,
    ) -> None:
        if size < 1:
            raise ValueError("a cluster needs at least one member")
        nodes = [
            EtcdServer(
                heartbeat_ms=heartbeat_ms,
                election_ms=election_ms,
                startup_timeout=startup_timeout,
                base_dir=base_dir,
            )
            for _ in range(size)
        ]
        initial = ",".join(f"{n.name}={n.peer_url}" for n in nodes)
        token = f"sg-{os.getpid()}-{nodes[0].port}"
        for node in nodes:
            node.initial_cluster = initial
            node.cluster_token = token
            node._cluster = self
            node._ports_movable = False
        super().__init__(nodes)

    @property
    def url(self) -> str:
        """tooz URL naming every member."""
        first, *rest = self.nodes
        url = first.url
        if rest:
            url += "?" + "&".join(f"hosts={n.host}:{n.port}" for n in rest)
        return url

    def stop(self) -> None:
        """Stop every member with SIGKILL.

        A graceful stop of a whole cluster costs ~7 s: the leader tries to
        hand leadership over to peers that are stopping too, and gives up
        only after etcd's request timeout.  etcd's WAL is written for
        crashes, so killing loses nothing a test could notice.  (Stopping
        a single member with ``node.stop()`` stays graceful.)
        """
        self.kill()

    @property
    def members(self) -> list[str]:
        """tooz URLs of every member, in node order."""
        return [node.url for node in self.nodes]

    def leader(self) -> EtcdServer | None:
        """The member currently leading, as seen by any live member."""
        for node in self.nodes:
            if not node.is_running() or node.paused:
                continue
            try:
                leader_id = str(node.status()["leader"])
            except (OSError, ValueError, KeyError):
                continue
            for candidate in self.nodes:
                if not candidate.is_running() or candidate.paused:
                    continue
                try:
                    if candidate.member_id() == leader_id:
                        return candidate
                except (OSError, ValueError, KeyError):
                    continue
        return None

    def _live_peer(self, exclude: EtcdServer) -> EtcdServer:
        for node in self.nodes:
            if node is not exclude and node.is_running() and not node.paused:
                return node
        raise ServerError("no running etcd member to reconfigure through")

    def _readd(self, node: EtcdServer) -> None:
        """Replace ``node``'s membership so it can start with no data."""
        peer = self._live_peer(node)

        def call(path: str, body: Mapping[str, Any]) -> Any:
            try:
                return json.loads(_http(peer.port, path, body, timeout=10.0))
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode(errors="replace")
                raise ServerError(
                    f"etcd {path} via {peer!r} failed: {exc} {detail}"
                ) from exc

        reply = call("/v3/cluster/member/list", {})
        for member in reply.get("members", []):
            if node.peer_url in member.get("peerURLs", []):
                call("/v3/cluster/member/remove", {"ID": member["ID"]})
        call("/v3/cluster/member/add", {"peerURLs": [node.peer_url]})
        node.initial_cluster_state = "existing"
