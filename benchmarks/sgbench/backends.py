"""Start the backend servers and read their own counters.

Operation counts come from the server (Redis ``INFO commandstats``,
memcached ``stats``, ZooKeeper ``mntr``, etcd ``/metrics``), never from the
client, so they show what a deployment's backend really has to serve.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import logging
import os
import platform
import resource
import subprocess
import time
from typing import Any

from oslo_config import cfg

from servicegroup import conf as sg_conf
from servicegroup.testing import servers

LOG = logging.getLogger(__name__)

#: Backends in the order they are benchmarked.
KNOWN = ("redis", "memcached", "zookeeper", "etcd")

#: Client libraries whose versions the report records.
CLIENTS = ("tooz", "redis", "pymemcache", "kazoo", "etcd3gw", "oslo.config")

#: Connection caps raised for the scale runs: every member holds its own
#: connection (one coordinator per member), and the servers' defaults
#: (Redis 10,000 clients, memcached 1,024 or the launcher's 4,096) are below
#: the 10,000-member run plus observers.
MAX_CONNECTIONS = min(30000, resource.getrlimit(resource.RLIMIT_NOFILE)[1] - 256)


@dataclasses.dataclass
class Backend:
    """A running server of one kind, with its counters."""

    name: str
    server: servers.BackendServer

    @property
    def url(self) -> str:
        return self.server.url

    def counters(self) -> dict[str, float]:
        """``ops`` (requests served so far) and, where known, ``bytes``.

        NaN when the server does not answer its stats probe in time (a
        Redis saturated by 10,000 clients lets even a new connection time
        out): a missing count must not lose the rest of a measurement.
        """
        for attempt in range(3):
            try:
                return self._counters()
            except (OSError, KeyError, ValueError, servers.ServerError):
                LOG.warning(
                    "%s did not answer its stats (attempt %d)", self.name, attempt + 1
                )
                time.sleep(1.0)
        return {"ops": float("nan"), "bytes": float("nan")}

    def _counters(self) -> dict[str, float]:
        server = self.server
        if isinstance(server, servers.RedisServer):
            calls = server.command_stats()
            # Our own INFO/CONFIG probes are not the library's traffic.
            ops = sum(
                v for k, v in calls.items() if not k.startswith(("info", "config"))
            )
            stats = server.info("stats")
            return {
                "ops": float(ops),
                "bytes": float(stats["total_net_input_bytes"])
                + float(stats["total_net_output_bytes"]),
            }
        if isinstance(server, servers.MemcachedServer):
            stats = server.stats()
            keys = (
                "cmd_get",
                "cmd_set",
                "cmd_touch",
                "delete_hits",
                "delete_misses",
                "incr_hits",
                "incr_misses",
                "decr_hits",
                "decr_misses",
            )
            return {
                "ops": float(sum(int(stats.get(k, 0)) for k in keys)),
                "bytes": float(stats["bytes_read"]) + float(stats["bytes_written"]),
            }
        if isinstance(server, servers.ZooKeeperServer):
            # Packets include kazoo's session pings: load all the same.
            mntr = server.mntr()
            return {
                "ops": float(mntr["zk_packets_received"]),
                "bytes": float("nan"),
            }
        if isinstance(server, servers.EtcdServer):
            handled = server.metric_values("grpc_server_handled_total")
            received = server.metric_values(
                "etcd_network_client_grpc_received_bytes_total"
            )
            sent = server.metric_values("etcd_network_client_grpc_sent_bytes_total")
            return {
                "ops": sum(handled.values()),
                "bytes": sum(received.values()) + sum(sent.values()),
            }
        raise TypeError(f"no counters for {server!r}")

    def version(self) -> str:
        server = self.server
        try:
            if isinstance(server, servers.RedisServer):
                return "Redis " + server.info("server")["redis_version"]
            if isinstance(server, servers.MemcachedServer):
                return "memcached " + server.stats()["version"]
            if isinstance(server, servers.ZooKeeperServer):
                raw = server.srvr().get("Zookeeper version", "?")
                return "ZooKeeper " + raw.split("-")[0].split(",")[0]
            if isinstance(server, servers.EtcdServer):
                return "etcd " + str(server.status()["version"])
        except (OSError, KeyError, servers.ServerError):
            LOG.debug("cannot read the version of %r", server, exc_info=True)
        return self.name

    def close(self) -> None:
        self.server.close()


def make_server(name: str) -> servers.BackendServer:
    """An unstarted server of kind ``name``, configured for benchmarks."""
    if name == "redis":
        return servers.RedisServer(extra_args=["--maxclients", str(MAX_CONNECTIONS)])
    if name == "memcached":
        # A later -c wins over the launcher's own.
        return servers.MemcachedServer(extra_args=["-c", str(MAX_CONNECTIONS)])
    if name == "zookeeper":
        # 10,000 sessions and their ephemeral nodes need more than the
        # launcher's 256 MiB default heap.
        return servers.ZooKeeperServer(heap_mb=1024)
    if name == "etcd":
        return servers.EtcdServer()
    raise ValueError(f"unknown backend {name!r}; known: {', '.join(KNOWN)}")


def start(name: str) -> Backend:
    """Start a server of kind ``name`` and return it once it answers."""
    server = make_server(name)
    server.start()
    return Backend(name, server)


def missing(name: str) -> str:
    """Why ``name`` cannot run here (empty if it can)."""
    return servers.missing_reason(name)


def make_conf(
    url: str,
    *,
    report_interval: float,
    service_down_time: float,
    refresh_interval: float = 1.0,
    backend_timeout: float = 5.0,
) -> cfg.ConfigOpts:
    """A ConfigOpts for ``url`` with the given timing (nothing read from disk)."""
    conf = cfg.ConfigOpts()
    sg_conf.register_opts(conf)
    conf([], project="servicegroup-bench", default_config_files=[])
    conf.set_override("servicegroup_tooz_url", url)
    conf.set_override("report_interval", report_interval)
    conf.set_override("service_down_time", service_down_time)
    conf.set_override("servicegroup_refresh_interval", refresh_interval)
    conf.set_override("servicegroup_backend_timeout", backend_timeout)
    return conf


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = ""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                    break
    except OSError:
        pass
    clients = {}
    for dist in CLIENTS:
        try:
            clients[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            clients[dist] = "not installed"
    java = ""
    try:
        out = subprocess.run(
            ["java", "-version"], capture_output=True, text=True, timeout=20
        )
        java = (out.stderr or out.stdout).splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory": memory,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "java": java,
        "clients": clients,
    }


def stop_api(api: Any, timeout: float = 30.0) -> bool:
    """``api.stop()``, given up on after ``timeout``; whether it returned.

    ``API.stop`` can block past its documented bound (an observer's close
    waits for a refresh stuck in the backend); a benchmark must go on and
    report it rather than hang.
    """
    import threading

    done = threading.Event()

    def stop() -> None:
        try:
            api.stop()
        finally:
            done.set()

    threading.Thread(target=stop, name="bench-api-stop", daemon=True).start()
    if not done.wait(timeout):
        LOG.warning("API.stop() did not return within %.0f s", timeout)
        return False
    return True


def bounded(func: Any, timeout: float, *args: Any) -> tuple[bool, Any]:
    """``(True, func(*args))``, or ``(False, None)`` if it takes > ``timeout``.

    For calls into client libraries that can block without a bound (a
    Redis transaction retrying forever under contention); the call is left
    running on a daemon thread.
    """
    import threading

    box: dict[str, Any] = {}

    def call() -> None:
        try:
            box["value"] = func(*args)
        except BaseException as exc:  # noqa: BLE001 - re-raised by the caller
            box["error"] = exc

    thread = threading.Thread(target=call, name="bench-bounded", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return False, None
    if "error" in box:
        raise box["error"]
    return True, box.get("value")
