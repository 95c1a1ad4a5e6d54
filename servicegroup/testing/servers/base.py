"""What every test server shares: errors, binaries, ports, the life cycle.

- :class:`ServerError` and :class:`ServerStartError`.
- Binary lookup, and :func:`available` / :func:`missing_reason` for
  skipping tests on machines without a backend.
- Free loopback ports on :data:`HOST`.
- :class:`BackendServer`, one server process and its life cycle, and
  :class:`ServerGroup`, several started and stopped together.
- ``_tcp_exchange``, the raw TCP helper more than one backend probes with.

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
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import types
import weakref
from collections.abc import Iterator, Sequence
from typing import ClassVar, TypeVar

# The package's name, as when this was one module: log configuration that
# names it keeps working.
LOG = logging.getLogger("servicegroup.testing.servers")

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
# Raw TCP exchange (ZooKeeper four-letter words, twemproxy stats)
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
