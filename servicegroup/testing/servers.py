"""Real backend servers for functional tests and benchmarks.

The contract suite runs the same tests against every backend tooz can reach
(see ``STYLE.md``, "One contract suite, every backend"), and the liveness
promises in ``DESIGN.md`` (self-healing after a backend restarts empty, fail
static while it is paused, rejoining after a ZooKeeper session expires) can
only be checked against the real thing.  This module starts those servers as
child processes of the test run, on free loopback ports, each with its data in
its own temporary directory, so tests never touch a server the machine is
already running and never listen on anything but ``127.0.0.1``.

Every server object has the same life cycle::

    with RedisServer() as redis:          # start(), and close() on exit
        url = redis.url                    # "redis://127.0.0.1:PORT"
        redis.pause()                      # SIGSTOP: a hung server
        redis.resume()                     # SIGCONT
        redis.restart(wipe=True)           # same port, comes back empty
        redis.kill()                       # SIGKILL: a crashed server

Clusters (:class:`ZooKeeperEnsemble`, :class:`EtcdCluster`,
:class:`RedisSentinel`) expose ``.nodes``; each node has the same methods, so
a test can kill the leader and watch the rest carry on.

Only the standard library is used, and tooz is never imported: the
launchers must stay usable when the code under test is broken.

Binaries are looked up on ``PATH`` (plus the ``sbin`` directories, where
Debian puts ``nutcracker``); set ``SERVICEGROUP_BIN_<NAME>`` (for example
``SERVICEGROUP_BIN_ETCD=/opt/etcd/etcd``) to use another build.
``tools/install-backends.sh`` installs the Debian packages.

A server that is still running when the interpreter exits is killed by an
:mod:`atexit` hook, and temporary directories are removed, so a crashed test
run does not leave servers behind (set ``SERVICEGROUP_KEEP_SERVER_DIRS=1``
to keep the directories and their ``server.log`` for a post-mortem).
Nothing can clean up after a SIGKILLed interpreter; the servers are in
their own process groups, so ``kill -- -PGID`` works on them.
"""

from __future__ import annotations

import abc
import atexit
import json
import logging
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import types
import urllib.error
import urllib.request
import weakref
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

LOG = logging.getLogger(__name__)

__all__ = [
    "HOST",
    "KINDS",
    "BackendServer",
    "EtcdCluster",
    "EtcdServer",
    "MemcachedServer",
    "NutcrackerProxy",
    "RedisSentinel",
    "RedisServer",
    "RespError",
    "SentinelServer",
    "ServerError",
    "ServerGroup",
    "ServerStartError",
    "ZooKeeperEnsemble",
    "ZooKeeperServer",
    "available",
    "make_replica",
    "missing_reason",
]

#: The address every server listens on.  Deliberately not configurable:
#: test servers have no authentication and must never be reachable from
#: another machine.
HOST = "127.0.0.1"

#: Server kinds understood by :func:`available` and :func:`missing_reason`.
KINDS = (
    "redis",
    "redis-sentinel",
    "memcached",
    "nutcracker",
    "zookeeper",
    "etcd",
)

_SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")
_ZOOKEEPER_MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
_LOG_TAIL_LINES = 40
_START_MARK = "===== servicegroup.testing.servers: start "

_ServerT = TypeVar("_ServerT", bound="BackendServer")
_GroupT = TypeVar("_GroupT", bound="ServerGroup")


class ServerError(RuntimeError):
    """Something went wrong driving a test server (not the code under test)."""


class ServerStartError(ServerError):
    """A server did not come up; the message ends with its log's tail.

    Raised when the binary is missing, the process exits during start-up,
    or it does not answer its readiness probe before the deadline.
    """

    def __init__(self, message: str, log_tail: str = "") -> None:
        full = message
        if log_tail:
            full = f"{message}\n--- server log (tail) ---\n{log_tail}"
        super().__init__(full)
        self.log_tail = log_tail


# --------------------------------------------------------------------------
# Binaries and availability
# --------------------------------------------------------------------------


def _find_binary(name: str) -> str | None:
    """Find an executable, honouring ``SERVICEGROUP_BIN_<NAME>``."""
    env_name = "SERVICEGROUP_BIN_" + name.upper().replace("-", "_")
    override = os.environ.get(env_name)
    if override:
        return override if os.access(override, os.X_OK) else None
    found = shutil.which(name)
    if found:
        return found
    return shutil.which(name, path=os.pathsep.join(_SBIN_DIRS))


def _require_binary(name: str, kind: str) -> str:
    path = _find_binary(name)
    if path is None:
        raise ServerStartError(missing_reason(kind))
    return path


def _zookeeper_classpath() -> list[str] | None:
    """Jars needed to run ZooKeeper's server class, or None if not found.

    Debian ships ``/usr/share/java/zookeeper.jar`` whose manifest lists its
    dependencies (``Class-Path``), so that jar alone is enough; the upstream
    tarball layout (``$ZOOKEEPER_HOME/lib/*.jar``) is accepted too.
    ``slf4j-simple`` is added when present because Debian's ZooKeeper has
    no SLF4J binding and would otherwise log nothing at all, which makes a
    failed start impossible to diagnose.
    """
    home = os.environ.get("ZOOKEEPER_HOME")
    if home:
        jars: list[str] = []
        for sub in ("", "lib"):
            directory = os.path.join(home, sub)
            if os.path.isdir(directory):
                jars.extend(
                    os.path.join(directory, name)
                    for name in sorted(os.listdir(directory))
                    if name.endswith(".jar")
                )
        if any("zookeeper" in os.path.basename(j) for j in jars):
            return jars
    for candidate in (
        "/usr/share/java/zookeeper.jar",
        "/usr/share/zookeeper/zookeeper.jar",
    ):
        if os.path.isfile(candidate):
            jars = [candidate]
            simple = "/usr/share/java/slf4j-simple.jar"
            if os.path.isfile(simple):
                jars.append(simple)
            return jars
    return None


def missing_reason(kind: str) -> str:
    """Why servers of ``kind`` cannot run here; ``""`` if they can.

    Meant for ``pytest.skip(missing_reason(kind))`` so that a machine
    without, say, Java still runs every other backend's tests.
    """
    hint = " (run tools/install-backends.sh)"
    if kind == "redis":
        needed = ["redis-server"]
    elif kind == "redis-sentinel":
        # Without redis-sentinel, "redis-server CONF --sentinel" is used.
        needed = ["redis-server"]
    elif kind == "memcached":
        needed = ["memcached"]
    elif kind == "nutcracker":
        needed = ["nutcracker", "memcached"]
    elif kind == "etcd":
        needed = ["etcd"]
    elif kind == "zookeeper":
        if _find_binary("java") is None:
            return "java is not installed" + hint
        if _zookeeper_classpath() is None:
            return (
                "zookeeper.jar not found in /usr/share/java or $ZOOKEEPER_HOME" + hint
            )
        return ""
    else:
        raise ValueError(
            f"unknown server kind {kind!r}; known kinds: {', '.join(KINDS)}"
        )
    missing = [name for name in needed if _find_binary(name) is None]
    if missing:
        return f"{', '.join(missing)} not installed" + hint
    return ""


def available(kind: str) -> bool:
    """Whether servers of ``kind`` (one of :data:`KINDS`) can run here."""
    return not missing_reason(kind)


# --------------------------------------------------------------------------
# Ports
# --------------------------------------------------------------------------

_PORT_LOCK = threading.Lock()
_HANDED_OUT: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as fh:
            low, high = (int(x) for x in fh.read().split())
            return low, high
    except (OSError, ValueError):
        return 32768, 60999


def _port_is_free(port: int) -> bool:
    # No SO_REUSEADDR: a port with connections in TIME_WAIT is refused too,
    # which is what the server's own bind would run into after a restart.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    """A free loopback port outside the kernel's ephemeral range.

    Ports from ``bind(0)`` come from the ephemeral range, where an outgoing
    client connection may grab the port while a server is being restarted
    and make the restart fail.  Picking below that range avoids this; the
    set of ports already handed out keeps two servers of one test run from
    ever sharing a port.
    """
    low, high = _ephemeral_range()
    if low > 20000:
        lo, hi = 15000, low - 1
    else:
        lo, hi = high + 1, 65535
    rng = random.Random()
    with _PORT_LOCK:
        for _ in range(1000):
            port = rng.randint(lo, hi)
            if port in _HANDED_OUT:
                continue
            if _port_is_free(port):
                _HANDED_OUT.add(port)
                return port
        # Odd kernel configuration: fall back to whatever the kernel picks.
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
        _HANDED_OUT.add(port)
        return port


# --------------------------------------------------------------------------
# Small wire clients (readiness probes and stats)
# --------------------------------------------------------------------------


def _recv_all(sock: socket.socket) -> bytes:
    chunks: list[bytes] = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _tcp_exchange(port: int, payload: bytes, timeout: float = 2.0) -> bytes:
    """Send ``payload`` and read until the server closes the connection."""
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        if payload:
            sock.sendall(payload)
        return _recv_all(sock)


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


# --------------------------------------------------------------------------
# Process bookkeeping and clean-up at exit
# --------------------------------------------------------------------------

_REGISTRY_LOCK = threading.Lock()
_RUNNING: set[BackendServer] = set()
_ALL: weakref.WeakSet[BackendServer] = weakref.WeakSet()


def _cleanup_at_exit() -> None:
    """Kill every server still running, then remove their directories."""
    with _REGISTRY_LOCK:
        running = list(_RUNNING)
        everything = list(_ALL)
    for server in running:
        # Not server.kill(): a daemon thread may hold the server's lock
        # (stuck in wait_ready, say), and exit must not wait for it.
        proc = server._proc
        if proc is None:
            continue
        try:
            _signal_group(proc, signal.SIGKILL)
            proc.wait(5)
        except Exception:  # noqa: BLE001 - best effort while exiting
            LOG.debug("could not kill %r at exit", server, exc_info=True)
    if os.environ.get("SERVICEGROUP_KEEP_SERVER_DIRS"):
        return
    for server in everything:
        server._remove_dir()


atexit.register(_cleanup_at_exit)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        # The group leader is gone and its id was reused; only signal our
        # own child, which cannot have been reused while unreaped.
        if proc.poll() is None:
            proc.send_signal(sig)


# --------------------------------------------------------------------------
# The common server life cycle
# --------------------------------------------------------------------------


class BackendServer(abc.ABC):
    """One real server process on a free loopback port.

    Subclasses say how to configure, launch and probe the server; this
    class owns the life cycle that tests rely on: deterministic start-up
    (returns only once the server answers), a stable port across restarts
    so clients can reconnect, and signals for the failures we simulate
    (``kill`` for a crash, ``pause`` for a hung or partitioned server).

    :param startup_timeout: seconds to wait for the server to answer.
    :param stop_timeout: seconds between SIGTERM and SIGKILL in ``stop()``.
    :param base_dir: where to create the server's temporary directory
        (default: the system temp dir).
    """

    #: Name used in :func:`available` and in temp directory names.
    kind: ClassVar[str] = ""
    #: tooz URL scheme for :attr:`url`.
    scheme: ClassVar[str] = ""
    #: Whether a start-up port clash may be retried on fresh ports (only
    #: true for servers whose ports no other process has been told about).
    _ports_movable: bool = True

    def __init__(
        self,
        *,
        startup_timeout: float = 10.0,
        stop_timeout: float = 10.0,
        base_dir: str | None = None,
    ) -> None:
        self.host: str = HOST
        self.port: int = _free_port()
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.dir: str = tempfile.mkdtemp(
            prefix=f"sg-{self.kind or 'server'}-", dir=base_dir
        )
        self.data_dir: str = os.path.join(self.dir, "data")
        self.log_path: str = os.path.join(self.dir, "server.log")
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.RLock()
        self._paused = False
        self._started_once = False
        self._closed = False
        with _REGISTRY_LOCK:
            _ALL.add(self)
        # Removes the directory if the object is garbage collected without
        # close(); at exit _cleanup_at_exit does it after killing servers.
        self._dir_finalizer = weakref.finalize(self, shutil.rmtree, self.dir, True)
        self._dir_finalizer.atexit = False

    # -- what subclasses provide -----------------------------------------

    @abc.abstractmethod
    def _command(self) -> list[str]:
        """The command line that runs the server in the foreground."""

    @abc.abstractmethod
    def _probe(self) -> bool:
        """True once the server really serves requests (not just listens)."""

    def _prepare(self) -> None:
        """Write configuration files; called before every launch."""
        return None

    def _env(self) -> dict[str, str]:
        return dict(os.environ)

    def _allocate_ports(self) -> None:
        """Pick new ports after a start-up clash (see ``_ports_movable``)."""
        self.port = _free_port()

    # -- public properties -----------------------------------------------

    @property
    def address(self) -> str:
        """``host:port``, the form most client libraries take."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The tooz backend URL for this server."""
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """Process id while running, else None."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        if self._paused:
            state = "paused"
        return f"<{type(self).__name__} {self.url} {state}>"

    # -- life cycle ------------------------------------------------------

    def is_running(self) -> bool:
        """Whether the process exists (it may be paused)."""
        proc = self._proc
        return proc is not None and proc.poll() is None

    @property
    def paused(self) -> bool:
        """Whether :meth:`pause` stopped the process."""
        return self._paused and self.is_running()

    def start(self, wait: bool = True) -> None:
        """Launch the server and (by default) wait until it answers.

        Idempotent: a running server is left alone.  ``wait=False`` is for
        clusters, whose members cannot answer until a quorum is up; call
        :meth:`wait_ready` afterwards.

        :raises ServerStartError: binary missing, the process died, or no
            answer within ``startup_timeout`` (the log tail is included).
        """
        with self._lock:
            if self._closed:
                raise ServerError(f"{self!r} is closed")
            if self.is_running():
                return
            attempts = 3 if (self._ports_movable and not self._started_once) else 1
            for attempt in range(1, attempts + 1):
                self._spawn()
                if not wait:
                    return
                try:
                    self.wait_ready()
                    return
                except ServerStartError as exc:
                    clash = "address already in use" in exc.log_tail.lower()
                    if not clash or attempt == attempts:
                        raise
                    LOG.info(
                        "%s: port clash on %d, retrying on new ports",
                        self.kind,
                        self.port,
                    )
                    self._allocate_ports()

    def _spawn(self) -> None:
        os.makedirs(self.data_dir, exist_ok=True)
        self._prepare()
        command = self._command()
        with open(self.log_path, "ab") as log:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log.write(f"{_START_MARK}{stamp}: {command}\n".encode())
            log.flush()
            try:
                self._proc = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.dir,
                    env=self._env(),
                    # Own process group: signals reach the whole server and
                    # never the test runner; Ctrl-C in a terminal does not
                    # kill servers behind the runner's back either.
                    start_new_session=True,
                    close_fds=True,
                )
            except OSError as exc:
                raise ServerStartError(f"cannot run {command[0]}: {exc}") from exc
        self._paused = False
        self._started_at = time.monotonic()
        with _REGISTRY_LOCK:
            _RUNNING.add(self)
        LOG.debug("started %r pid %d", self, self._proc.pid)

    def wait_ready(self, timeout: float | None = None) -> float:
        """Poll the readiness probe until it passes; return seconds taken.

        :raises ServerStartError: the process exited, or the deadline passed
            (the process is then killed so nothing is left half-started).
        """
        timeout = self.startup_timeout if timeout is None else timeout
        started = time.monotonic()
        deadline = started + timeout
        delay = 0.02
        while True:
            proc = self._proc
            if proc is None:
                raise ServerStartError(f"{self!r} was never started")
            code = proc.poll()
            if code is not None:
                self._forget()
                raise ServerStartError(
                    f"{self.kind} server exited with status {code} during "
                    f"start-up (log: {self.log_path})",
                    self.log_tail(),
                )
            try:
                if self._probe():
                    self._started_once = True
                    took = time.monotonic() - started
                    LOG.debug("%r ready after %.2fs", self, took)
                    return took
            except (OSError, ValueError, ServerError):
                pass
            if time.monotonic() >= deadline:
                self.kill()
                raise ServerStartError(
                    f"{self.kind} server on port {self.port} did not answer "
                    f"within {timeout:.0f}s (log: {self.log_path})",
                    self.log_tail(),
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.2)

    def stop(self, timeout: float | None = None) -> None:
        """Graceful stop: SIGTERM, then SIGKILL after ``timeout``.

        Idempotent; works on a paused server too (it is continued so it
        can handle the SIGTERM).
        """
        with self._lock:
            proc = self._proc
            if proc is None:
                return
            if proc.poll() is None:
                timeout = self.stop_timeout if timeout is None else timeout
                self._terminate()
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    LOG.warning("%r ignored SIGTERM for %.0fs, killing", self, timeout)
                    _signal_group(proc, signal.SIGKILL)
                    proc.wait()
            # Children that outlive the leader (none expected) go too.
            _signal_group(proc, signal.SIGKILL)
            self._forget()

    def _terminate(self) -> None:
        """Send SIGTERM (and SIGCONT if paused) without waiting."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            _signal_group(proc, signal.SIGTERM)
            if self._paused:
                _signal_group(proc, signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL the server: a crash, with no chance to clean up."""
        with self._lock:
            proc = self._proc
            if proc is None:
                return
            _signal_group(proc, signal.SIGKILL)
            proc.wait()
            self._forget()

    def pause(self) -> None:
        """SIGSTOP the server: it keeps its sockets but answers nothing.

        This is what a long GC pause, an overloaded host or a one-way
        network partition look like to clients.
        """
        with self._lock:
            proc = self._require_running("pause")
            _signal_group(proc, signal.SIGSTOP)
            self._paused = True

    def resume(self) -> None:
        """SIGCONT a paused server."""
        with self._lock:
            proc = self._require_running("resume")
            _signal_group(proc, signal.SIGCONT)
            self._paused = False

    def restart(self, wipe: bool = False) -> None:
        """Stop and start again on the same port.

        :param wipe: delete the data directory first, so the server comes
            back empty (for memcached and non-persistent Redis this is what
            any restart does anyway).
        """
        with self._lock:
            self.stop()
            if wipe:
                self._wipe()
            self.start()

    def _wipe(self) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def close(self) -> None:
        """Kill the server and delete its directory.  Idempotent.

        SIGKILL rather than a graceful stop: the data is about to be
        deleted, and a graceful stop can take seconds (memcached waits
        for its maintenance threads, an etcd leader tries to hand over
        leadership) for nothing.
        """
        with self._lock:
            self.kill()
            self._closed = True
        self._remove_dir()

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines the server logged since its last start."""
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - 64 * 1024))
                text = fh.read().decode(errors="replace")
        except OSError:
            return ""
        mark = text.rfind(_START_MARK)
        if mark >= 0:
            text = text[text.index("\n", mark) + 1 :]
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self: _ServerT) -> _ServerT:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self.close()

    # -- helpers ---------------------------------------------------------

    def _require_running(self, action: str) -> subprocess.Popen[bytes]:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            raise ServerError(f"cannot {action} {self!r}: not running")
        return proc

    def _forget(self) -> None:
        self._proc = None
        self._paused = False
        with _REGISTRY_LOCK:
            _RUNNING.discard(self)

    def _remove_dir(self) -> None:
        # Not self._dir_finalizer(): finalizers become no-ops once weakref's
        # own exit hook has run, which happens before _cleanup_at_exit.
        self._dir_finalizer.detach()
        shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------
# Redis
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
# memcached
# --------------------------------------------------------------------------


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
    "memcached node behind a proxy died" case in ``DESIGN.md``.

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


# --------------------------------------------------------------------------
# ZooKeeper
# --------------------------------------------------------------------------


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


# --------------------------------------------------------------------------
# etcd
# --------------------------------------------------------------------------


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


# --------------------------------------------------------------------------
# Groups of servers
# --------------------------------------------------------------------------


class ServerGroup:
    """Several servers started, stopped and closed together.

    Members are started all at once and only then waited for, because a
    cluster member cannot answer before a quorum of its peers is up.
    """

    def __init__(self, nodes: Sequence[BackendServer]) -> None:
        self.nodes: list[BackendServer] = list(nodes)

    def start(self) -> None:
        """Start every node that is not running; wait for all of them."""
        try:
            for node in self.nodes:
                if not node.is_running():
                    node.start(wait=False)
            for node in self.nodes:
                node.wait_ready()
        except ServerStartError:
            self.stop()
            raise
        for node in self.nodes:
            node._started_once = True

    def stop(self) -> None:
        """Stop every node gracefully (idempotent).

        All nodes get SIGTERM at once: stopped one by one, the last etcd
        leader would spend seconds trying to hand leadership to peers
        that are already gone.
        """
        for node in self.nodes:
            node._terminate()
        for node in self.nodes:
            node.stop()

    def kill(self) -> None:
        """SIGKILL every node."""
        for node in self.nodes:
            node.kill()

    def close(self) -> None:
        """Kill every node and remove their directories (idempotent)."""
        for node in self.nodes:
            node.close()

    def is_running(self) -> bool:
        """Whether every node is running."""
        return all(node.is_running() for node in self.nodes)

    def running_nodes(self) -> list[BackendServer]:
        """Nodes whose process is running (paused ones included)."""
        return [node for node in self.nodes if node.is_running()]

    def __iter__(self) -> Iterator[BackendServer]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def __repr__(self) -> str:
        running = len(self.running_nodes())
        return f"<{type(self).__name__} {running}/{len(self)} running>"

    def __enter__(self: _GroupT) -> _GroupT:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self.close()


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


class EtcdCluster(ServerGroup):
    """An etcd cluster of ``size`` members on loopback.

    tooz's etcd3gw driver takes a single ``host:port``: there is no URL
    that lists several members and no client-side failover.  :attr:`url`
    is therefore the first member's URL; when a test kills that member it
    should connect through another one, from :attr:`members` or
    ``running_nodes()``.
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
        """The first member's tooz URL (see the class docstring)."""
        return self.nodes[0].url

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
