"""ZooKeeper (``kazoo://``, ``zookeeper://``): sessions, not heartbeats.

What differs from the other backends, all of it here:

* **Timing.** The liveness timeout is the session ``timeout``; kazoo
  reconnects by itself and must not back off longer than we would. tooz
  waits its session timeout for kazoo to connect in ``start()``; one backend
  operation's worth is enough (the heartbeat loop tries again), so our
  driver takes ``start_timeout``.
* **The server decides.** A server clamps the session timeout asked for to
  its ``minSessionTimeout .. maxSessionTimeout`` (2 to 20 x ``tickTime`` by
  default) and kazoo keeps only the read timeout it derives from the answer
  (two thirds of it): :class:`ZooKeeperTerms` reads it back on every
  (re)connect by wrapping, on that one client, kazoo's ``_connect``. kazoo's
  public state listener cannot do it: the negotiated value is not kept
  anywhere a listener could read it.
* **Beating.** kazoo's own pings keep the session alive; tooz's
  ``heartbeat()`` is only a read, and one that can block forever. A beat
  only checks that the client is connected: kazoo queues requests while it
  reconnects, so every call would wait the whole backend timeout.
* **A stale entry** (a node left by a session that has not expired yet)
  belongs to that session: it is removed and created again, never rewritten.
* **Recovery.** A server that lost its data refuses, forever, a client that
  saw a newer zxid than its own; see :meth:`ZooKeeperBackend.reset` for a
  member, and our driver's ``forget_zxid_when_disconnected`` (a kazoo state
  listener) for an observer. A reset never closes a member's session: that
  would delete its node, and during a leader election, or with the member's
  server gone, observers would see it down.
* **Reading groups.** tooz reads a group with N + 1 requests per refresh;
  an observer here reads only what changed, as watches tell it
  (:mod:`..zookeeper_view`), and joins and leaves wake the view at once.
* **Logs.** kazoo logs two lines per reconnection attempt;
  :mod:`..kazoo_logs` keeps the first of an outage.
"""

from __future__ import annotations

import functools
import logging
import math
import socket
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from servicegroup import exceptions
from servicegroup.drivers.tooz import compat, kazoo_logs, urls, zookeeper_view
from servicegroup.drivers.tooz.backends import base
from servicegroup.drivers.tooz.server_limits import GrantedByServer, Record, seconds
from servicegroup.heartbeat import Reset

LOG = logging.getLogger(__name__)

#: ZooKeeper's client port, when the URL names none.
DEFAULT_PORT = 2181

#: kazoo's ``_connect`` returns ``(read_timeout, connect_timeout)`` in
#: milliseconds, the read timeout being this fraction of the negotiated
#: session timeout (compat.check_zookeeper makes sure it still is).
KAZOO_READ_TIMEOUT_FRACTION = 2.0 / 3.0


def negotiated_session_timeout(connect_result: object) -> float | None:
    """Seconds of the session timeout behind what kazoo's ``_connect`` returns.

    None when the result is not the ``(read_timeout, connect_timeout)`` pair
    of milliseconds that kazoo returns.
    """
    try:
        read_timeout_ms = float(connect_result[0])  # type: ignore[index]
    except (TypeError, ValueError, IndexError, KeyError):
        return None
    if read_timeout_ms <= 0:
        return None
    # Whole milliseconds, as the server sent them.
    return round(read_timeout_ms / KAZOO_READ_TIMEOUT_FRACTION) / 1000.0


class ZooKeeperTerms(GrantedByServer):
    """The session timeout a ZooKeeper server negotiated."""

    url_option = "timeout"
    server = "the ZooKeeper server"
    granted_what = "the session timeout the ZooKeeper server negotiated"
    last_sign = "ping"

    def before_start(self, coord: Any, record: Record) -> None:
        """Wrap, on this client only, kazoo's connect to record the timeout.

        It runs in kazoo's connection thread, before any request of the new
        connection is answered.
        """
        handler = coord._coord._connection  # tooz's KazooClient's handler
        if "_connect" in vars(handler):
            return  # wrapped already
        handler._connect = _recording(handler._connect, record)

    def granted_instead(self, url: str, granted: float, asked: float) -> str:
        return (
            f"The ZooKeeper server at {url} negotiated a session timeout of "
            f"{seconds(granted)} instead of the {seconds(asked)} asked for"
        )

    def fix(self, asked: float, *, lower: bool) -> str:
        ms = round(asked * 1000)
        if lower:
            return (
                "Raise maxSessionTimeout (milliseconds, 20 x tickTime by "
                f"default) in the servers' zoo.cfg to at least {ms}"
            )
        return (
            "Lower minSessionTimeout (milliseconds, 2 x tickTime by "
            f"default) in the servers' zoo.cfg to at most {ms}, or "
            "their tickTime"
        )


def _recording(connect: Callable[..., Any], record: Record) -> Callable[..., Any]:
    def connect_and_record(*args: Any, **kwargs: Any) -> Any:
        result = connect(*args, **kwargs)
        try:
            granted = negotiated_session_timeout(result)
            if granted is not None:
                record(granted)
        except Exception:  # noqa: BLE001 - never break kazoo's connect
            LOG.debug("Could not read the negotiated timeout", exc_info=True)
        return result

    return connect_and_record


@functools.cache
def _zookeeper_driver() -> type[base.Coordinator]:
    """tooz's ZooKeeper driver, fixed for recovery and our timing.

    tooz creates its namespace node (``/tooz``) only in ``start()``. A
    member keeps its client across a ZooKeeper that lost its data (see
    :meth:`ZooKeeperBackend.reset`), so it must create the namespace again
    before the group, or every join fails with "namespace has not been
    created". Imported on first use: kazoo is an optional extra.
    """
    compat.check_zookeeper()
    from kazoo.protocol.states import KazooState
    from tooz.drivers import zookeeper as tooz_zookeeper

    class _KazooDriver(tooz_zookeeper.KazooDriver):
        """tooz's driver; ``start_timeout`` bounds ``start()`` (tooz: the
        session timeout), and ``forget_zxid_when_disconnected`` suits a
        client that owns no node (an observer)."""

        def __init__(
            self,
            member_id: bytes,
            parsed_url: Any,
            options: dict[str, Any],
            *,
            start_timeout: float | None = None,
            forget_zxid_when_disconnected: bool = False,
        ) -> None:
            super().__init__(member_id, parsed_url, options)
            if start_timeout is not None:
                self.timeout = math.ceil(start_timeout)
            #: Between a successful start() and stop(): kazoo is connected
            #: or trying to reconnect.
            self._running = False
            if forget_zxid_when_disconnected:
                # An observer owns no node and may read from any server:
                # nothing is lost if its client reconnects to one that lags
                # or lost its data. kazoo calls listeners on its connection
                # thread, which is the thread that sends the zxid when it
                # connects again, so this needs no other thread to touch
                # the client.
                self._coord.add_listener(self._forget_zxid_unless_connected)

        def _forget_zxid_unless_connected(self, state: Any) -> None:
            if state != KazooState.CONNECTED:
                self._coord.last_zxid = 0

        def _start(self) -> None:
            super()._start()
            self._running = True

        def _stop(self) -> None:
            self._running = False
            super()._stop()

        def create_group(self, group_id: bytes) -> Any:
            self._coord.ensure_path_async(self._base_path()).get(timeout=self.timeout)
            return super().create_group(group_id)

        def is_connected(self) -> bool:
            """Whether kazoo has a live connection now."""
            return bool(self._coord.connected)

        def forget_zxid(self) -> bool:
            """Let a reconnecting client in to a server that lost its data.

            A server that still knows the session resumes it, one that does
            not expires it and kazoo opens a new one. False when the client
            is not running (never started, or stopped).

            Called from the member's heartbeat thread, not from a state
            listener: a member forgets its zxid only after failing
            :data:`~servicegroup.heartbeat.RECONNECT_AFTER_FAILURES` rounds
            in a row, and while kazoo retries a refused connection it makes
            no state transition at all, so a listener would never run at
            that moment. kazoo reads the value once per connection attempt.
            """
            if not self._running:
                return False
            self._coord.last_zxid = 0
            return True

        def close_client(self) -> None:
            """Close kazoo's client: tooz stops it but never closes it,
            which leaks the client's socketpair until garbage collection."""
            self._coord.close()

    return _KazooDriver


class ZooKeeperBackend(base.Backend):
    """ZooKeeper through tooz's kazoo driver."""

    schemes = ("kazoo", "zookeeper")
    client_module = "kazoo"
    extra = "zookeeper"
    membership_option = "timeout"
    terms = ZooKeeperTerms()

    @classmethod
    def endpoints(cls, parts: urllib.parse.SplitResult) -> list[tuple[str, int]]:
        """The URL's host, then its ``hosts`` options (kazoo's own list)."""
        pairs = super().endpoints(parts)
        if pairs:
            for entry in urls.hosts_options(parts):
                pairs.extend(urls.host_port(t, 0) for t in entry.split(","))
        return pairs

    def timing_options(self) -> dict[str, Any]:
        return {
            "timeout": self.timing.service_down_time,
            "connection_retry": {
                "max_tries": -1,
                "delay": 0.1,
                "max_delay": self.timing.retry_max_interval,
            },
        }

    @classmethod
    def driver_class(cls) -> type[base.Coordinator]:
        return _zookeeper_driver()

    def driver_arguments(self, *, observer: bool) -> dict[str, Any]:
        return {
            "start_timeout": self.timing.backend_timeout,
            "forget_zxid_when_disconnected": observer,
        }

    def new_coordinator(
        self, tooz_member: bytes, ours: Mapping[str, Any], *, observer: bool = False
    ) -> base.Coordinator:
        coord = super().new_coordinator(tooz_member, ours, observer=observer)
        kazoo_logs.quiet_reconnects()
        return coord

    def start_failed(self, what: str) -> exceptions.BackendError | None:
        # kazoo retries a refused connection until tooz's start gives up,
        # which tooz reports as a time-out: say what really happened.
        if self._all_refused():
            return exceptions.BackendUnavailable(
                f"{what}: connection refused by every ZooKeeper server"
            )
        return None

    def _all_refused(self) -> bool:
        hosts = [self.parts.netloc.rpartition("@")[2], *urls.hosts_options(self.parts)]
        for entry in ",".join(hosts).split(","):
            host, sep, port = entry.strip().rpartition(":")
            if not sep or "]" in port:  # no port given (or a bare IPv6)
                host, port = entry.strip(), str(DEFAULT_PORT)
            try:
                socket.create_connection(
                    (host.strip("[]"), int(port)), timeout=0.5
                ).close()
            except ConnectionRefusedError:
                continue
            except (OSError, ValueError):
                return False  # silent, unresolvable or malformed: not refused
            return False
        return True

    def check_connected(self, coord: base.Coordinator, what: str) -> None:
        """Fail at once while the client has no live connection.

        kazoo queues requests until it reconnects, so every call would wait
        the whole backend timeout (tooz's ``heartbeat()`` even waits without
        any), and the heartbeat loop would need five of those before it
        resets a client that may never reconnect (see :meth:`reset`).
        Failing fast lets the loop reset it within about a second.
        """
        driver: Any = coord
        if not driver.is_connected():
            raise exceptions.BackendUnavailable(f"{what}: no ZooKeeper connection")

    def beat(self, coord: base.Coordinator, what: str) -> None:
        # kazoo's own pings keep the session alive.
        self.check_connected(coord, what)

    def replace_stale(
        self,
        coord: base.Coordinator,
        group: bytes,
        record: dict[str, Any],
        wait: base.Wait[None],
        name: str,
    ) -> None:
        # A node belongs to the session that created it: it has to be
        # created again.
        self.leave_and_join(coord, group, record, wait, name)

    def reset(self, coord: base.Coordinator) -> Reset:
        # kazoo reconnects by itself, and closing its session would delete
        # the member's node: during a leader election, or with the member's
        # server gone, observers would see it down. What kazoo cannot get
        # past alone is a server that lost its data.
        driver: Any = coord
        if driver.forget_zxid():
            return Reset.IN_PLACE
        return super().reset(coord)

    def close_clients(self, coord: base.Coordinator) -> None:
        driver: Any = coord
        driver.close_client()

    def group_reader(
        self, coord: base.Coordinator, on_change: Callable[[], None]
    ) -> base.GroupReader:
        # N + 1 requests per refresh with tooz: only the changes here.
        return zookeeper_view.WatchedGroups(coord, on_change)
