"""Helpers shared by the functional tests: polling and member processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from oslo_config import cfg

import servicegroup
from servicegroup import conf as sg_conf

T = TypeVar("T")

#: Timing for functional tests: short, but long enough that a loaded
#: 2-core machine does not make members flap.
FAST = {
    "report_interval": 0.5,
    "service_down_time": 3.0,
    "servicegroup_refresh_interval": 0.2,
    "servicegroup_backend_timeout": 3.0,
}


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    message: str | Callable[[], str],
    interval: float = 0.05,
) -> T:
    """Poll ``predicate`` until it returns something truthy, or fail.

    ``message`` may be a function, called only on failure, to report the
    state the wait ended in.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            what = message() if callable(message) else message
            raise AssertionError(f"after {timeout} s: {what}")
        time.sleep(interval)


def measured(name: str, seconds: float) -> None:
    """Print a measured time where ``pytest -s`` and the docs pick it up."""
    print(f"MEASURED {name}: {seconds:.2f}s")


def make_conf(url: str, **overrides: float | str) -> cfg.ConfigOpts:
    """A ConfigOpts for ``url`` with the FAST timing (and ``overrides``)."""
    conf = cfg.ConfigOpts()
    sg_conf.register_opts(conf)
    conf([], project="servicegroup", default_config_files=[])
    conf.set_override("servicegroup_tooz_url", url)
    for name, value in {**FAST, **overrides}.items():
        conf.set_override(name, value)
    return conf


def make_api(url: str, **overrides: float | str) -> servicegroup.API:
    return servicegroup.API(conf=make_conf(url, **overrides))


MEMBER_SCRIPT = """
import sys, signal, threading
from tests.support import make_api
url, member, group = sys.argv[1:4]
api = make_api(url)
api.join(member, group, capabilities={"pid": __import__("os").getpid()})
print("started", flush=True)
done = threading.Event()
signal.signal(signal.SIGTERM, lambda *a: done.set())
done.wait()
api.stop()
print("stopped", flush=True)
"""


def start_member_process(url: str, member: str, group: str) -> subprocess.Popen[str]:
    """A member in another process: joins, heartbeats until SIGTERM."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root)
    proc = subprocess.Popen(
        [sys.executable, "-c", MEMBER_SCRIPT, url, member, group],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=root,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "started", f"member process said {line!r}"
    return proc


# -- member processes that fault tests can SIGSTOP / SIGKILL ------------------

#: A member process hosting several members of one group. Its argument is a
#: JSON object: url, group, members, overrides (conf options). It prints
#: ``started SECONDS`` once every join returned (SECONDS: how long the joins
#: took, which must be near zero even when the backend is down), then
#: ``joined`` once the backend accepted every member, and ``stopped`` after a
#: graceful stop on SIGTERM. Library logs go to stderr.
MEMBERS_SCRIPT = """
import json, logging, os, signal, sys, threading, time
logging.basicConfig(
    level=logging.INFO, stream=sys.stderr,
    format="member %(process)d %(asctime)s %(name)s %(levelname)s %(message)s",
)
from tests.support import make_api
spec = json.loads(sys.argv[1])
api = make_api(spec["url"], **spec.get("overrides", {}))
start = time.monotonic()
for member in spec["members"]:
    api.join(member, spec["group"], capabilities={"pid": os.getpid()})
print("started %.3f" % (time.monotonic() - start), flush=True)
done = threading.Event()
signal.signal(signal.SIGTERM, lambda *a: done.set())
while not done.wait(0.05):
    if all(api.is_registered(m, spec["group"]) for m in spec["members"]):
        print("joined", flush=True)
        break
done.wait()
api.stop()
print("stopped", flush=True)
"""


class MemberProcess:
    """Members of one group in a child process (see :data:`MEMBERS_SCRIPT`).

    :ivar join_seconds: how long the ``join`` calls took in the child.
    """

    def __init__(
        self,
        url: str,
        group: str,
        members: list[str],
        **overrides: float | str,
    ) -> None:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        spec = {
            "url": url,
            "group": group,
            "members": members,
            "overrides": overrides,
        }
        self.members = list(members)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", MEMBERS_SCRIPT, json.dumps(spec)],
            stdout=subprocess.PIPE,
            text=True,
            env=dict(os.environ, PYTHONPATH=root),
            cwd=root,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "started":
            self.kill()
            raise AssertionError(f"member process said {line!r}")
        self.join_seconds = float(line[1])

    @property
    def pid(self) -> int:
        return self.proc.pid

    def pause(self) -> None:
        """SIGSTOP: heartbeats (and ZooKeeper pings) stop, sockets stay."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def terminate(self, timeout: float = 15.0) -> None:
        """SIGTERM: the child calls ``api.stop()`` and exits."""
        self.proc.send_signal(signal.SIGCONT)
        self.proc.terminate()
        self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL: a crash; nothing is left or closed."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> MemberProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.kill()


def all_up(api: servicegroup.API, group: str, members: list[str]) -> bool:
    """Whether ``api`` sees every one of ``members`` up (a local lookup)."""
    return all(api.is_up(member, group) for member in members)


def whole_since(
    api: servicegroup.API, group: str, members: list[str], since: float
) -> bool:
    """Every one of ``members`` up in a fresh (not stale) view, each with a
    record written after ``since`` (``time.time()``): really back, not
    remembered from before a fault."""
    view = {m.id: m for m in api.get_members(group)}
    for member in members:
        found = view.get(member)
        if found is None or not found.is_up or found.stale:
            return False
        if found.updated_at is None or found.updated_at.timestamp() < since:
            return False
    return True


def none_up(api: servicegroup.API, group: str, members: list[str]) -> bool:
    return not any(api.is_up(member, group) for member in members)


def timed_wait(
    predicate: Callable[[], T], timeout: float, message: str, interval: float = 0.02
) -> float:
    """:func:`wait_until`, returning the seconds it took."""
    start = time.monotonic()
    wait_until(predicate, timeout, message, interval)
    return time.monotonic() - start


# -- a TCP proxy that cuts one client off the backend -------------------------


class TcpProxy:
    """Forwards a loopback port to a backend; :meth:`cut` partitions it.

    Only the clients that connect through the proxy lose the backend, which
    is how an observer that lost *its own* network looks, while members
    that talk to the backend directly carry on. ``cut(blackhole=True)``
    keeps accepting and never answers (a partition: calls time out);
    ``blackhole=False`` drops connections at once (connection refused/reset).
    """

    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self._target = (host, target_port)
        self._listener = socket.create_server((host, 0))
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self._cut = threading.Event()
        self._blackhole = False
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._accepter = threading.Thread(
            target=self._accept_loop, name="tcp-proxy", daemon=True
        )
        self._accepter.start()

    def cut(self, blackhole: bool = True) -> None:
        """Partition: existing connections drop, new ones get nowhere."""
        self._blackhole = blackhole
        self._cut.set()
        self._drop_all()

    def restore(self) -> None:
        self._cut.clear()

    def close(self) -> None:
        self._closed.set()
        self._accepter.join(5)
        self._listener.close()
        self._drop_all()

    def _drop_all(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._cut.is_set():
                if self._blackhole:
                    self._track(client)  # held open, never answered
                else:
                    client.close()
                continue
            try:
                upstream = socket.create_connection(self._target, timeout=2)
            except OSError:
                client.close()
                continue
            self._track(client)
            self._track(upstream)
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(
                    target=self._pipe, args=(src, dst), daemon=True
                ).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while not self._cut.is_set():
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
