"""Coordinators: making and stopping them, one member's, the observer's.

:class:`ToozBackend` makes coordinators for one URL and waits on their
results, :func:`_stop_quietly` stops one without hanging on a dead backend,
:class:`ToozMemberSession` is one member in one group and
:class:`ToozObserver` reads groups without joining any.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import socket
import threading
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from tooz import coordination

from servicegroup import conf as sg_conf
from servicegroup import exceptions, heartbeat
from servicegroup.drivers.tooz import kazoo_logs, server_limits, zookeeper_view
from servicegroup.drivers.tooz.errors import (
    _AlreadyExists,
    _Undecodable,
    translate_errors,
)
from servicegroup.drivers.tooz.fixes import _driver_override
from servicegroup.drivers.tooz.urls import (
    backend_options,
    member_id_from_tooz,
    parse_url,
    redact_url,
    tooz_member_id,
)

LOG = logging.getLogger(__name__)

T = TypeVar("T")

#: Consecutive failed reads after which the observer coordinator is rebuilt.
OBSERVER_RECONNECT_AFTER = 5


#: Client library (top-level module) -> the extra of ours that installs it.
CLIENT_EXTRAS = {
    "kazoo": "zookeeper",
    "redis": "redis",
    "pymemcache": "memcached",
    "etcd3gw": "etcd",
}


def _missing_client(scheme: str, exc: ModuleNotFoundError) -> Exception:
    """Name the extra to install when a backend's client library is missing."""
    module = (exc.name or "").split(".")[0]
    extra = CLIENT_EXTRAS.get(module)
    if extra is None:
        return exc  # not a client library: a broken installation, as it is
    return exceptions.MissingDependency(
        f"the {scheme}:// backend needs the {module} client library, which is "
        f"not installed: pip install 'servicegroup[{extra}]'"
    )


class ToozBackend:
    """One backend URL: makes coordinators and waits on their results."""

    def __init__(self, url: str, timing: sg_conf.Timing) -> None:
        self._parts = parse_url(url)
        self._url = url
        self.scheme = self._parts.scheme
        self.redacted_url = redact_url(url)
        url_options = urllib.parse.parse_qs(self._parts.query)
        self.options = backend_options(self.scheme, url_options, timing)
        self.timing = timing
        self.check_options()
        self.effective = self._effective_timeouts(url_options)
        #: What the server grants instead, read back as coordinators connect.
        self.limits = server_limits.for_backend(
            self.scheme,
            self.redacted_url,
            self.effective["membership_timeout"],
            timing,
            self.options,
        )
        #: A file:// directory that does not exist yet: tooz creates it, with
        #: its missing parents, and that is said once it happened.
        self._will_create = (
            self._parts.path
            if self.scheme == "file" and not os.path.isdir(self._parts.path)
            else None
        )

    def _effective_timeouts(
        self, url_options: Mapping[str, list[str]]
    ) -> dict[str, float]:
        merged: dict[str, Any] = {k: v[-1] for k, v in url_options.items()}
        merged.update(self.options)
        key = (
            "timeout"
            if self.scheme in ("kazoo", "zookeeper", "file")
            else "membership_timeout"
        )
        # For ZooKeeper this is the session timeout asked for: the server
        # clamps it to its minSessionTimeout..maxSessionTimeout (2..20 x
        # tickTime by default); self.limits reads back what it granted.
        return {"membership_timeout": float(merged.get(key, 0) or 0)}

    def _new_coordinator(self, tooz_member: bytes) -> coordination.CoordinationDriver:
        """A coordinator for ``tooz_member``, not started (no traffic yet)."""
        try:
            driver_class = _driver_override(self.scheme)
            if driver_class is not None:
                # What get_coordinator does, with our subclass: our options
                # first, then the URL's for the keys we left alone.
                options = {k: [v] for k, v in self.options.items()}
                for key, values in urllib.parse.parse_qs(self._parts.query).items():
                    options.setdefault(key, values)
                coord: coordination.CoordinationDriver = driver_class(
                    tooz_member, self._parts, options
                )
            else:
                coord = coordination.get_coordinator(
                    self._url, tooz_member, **self.options
                )
        except ModuleNotFoundError as exc:
            raise _missing_client(self.scheme, exc) from exc
        except (ValueError, TypeError, KeyError) as exc:
            # tooz parses the URL's options here: timeout=abc, handler=nope.
            raise exceptions.InvalidURL(
                f"{self.redacted_url!r} has an option tooz cannot use: {exc}"
            ) from exc
        if self.is_zookeeper:
            kazoo_logs.quiet_reconnects()
            # tooz waits its session timeout (service_down_time, 60 s
            # for Nova) for kazoo to connect; one backend operation's
            # worth is enough, the heartbeat loop tries again.
            coord.timeout = math.ceil(self.timing.backend_timeout)  # type: ignore[attr-defined]
        return coord

    def forget_zxid(self, coord: coordination.CoordinationDriver) -> bool:
        """Let a reconnecting ZooKeeper client in to a server that lost data.

        A ZooKeeper server refuses, forever, a client that saw a newer zxid
        than its own. Forgetting ours lets the client in: a server that
        still knows the session resumes it, one that does not expires it and
        kazoo opens a new one. False when there is no kazoo client still
        trying to reconnect (another backend, or a stopped client).
        """
        client = getattr(coord, "_coord", None) if self.is_zookeeper else None
        if client is None or client._stopped.is_set():
            return False
        client.last_zxid = 0
        return True

    def check_options(self) -> None:
        """Raise InvalidURL now if tooz rejects the URL's options."""
        _stop_quietly(
            self._new_coordinator(b"servicegroup-option-check"), started=False
        )

    def coordinator(self, tooz_member: bytes) -> coordination.CoordinationDriver:
        """A started coordinator for ``tooz_member``."""
        coord = self._new_coordinator(tooz_member)
        self.limits.before_start(coord)
        what = f"connecting to {self.redacted_url}"
        try:
            with translate_errors(what):
                try:
                    coord.start(start_heart=False)
                except BaseException:
                    _stop_quietly(coord, started=False)
                    raise
        except (exceptions.BackendTimeout, exceptions.BackendUnavailable) as exc:
            # kazoo retries a refused connection until tooz's start gives
            # up, which tooz reports as a time-out: say what really happened.
            if self.is_zookeeper and self._all_refused():
                raise exceptions.BackendUnavailable(
                    f"{what}: connection refused by every ZooKeeper server"
                ) from exc
            raise
        if self._will_create is not None:
            created, self._will_create = self._will_create, None
            LOG.warning(
                "The file:// backend directory %s did not exist and was created "
                "(with any missing parent): every service on this host must "
                "use this same directory to see each other",
                created,
            )
        self.limits.after_start(coord)
        return coord

    def _all_refused(self) -> bool:
        hosts = [self._parts.netloc.rpartition("@")[2]]
        hosts += urllib.parse.parse_qs(self._parts.query).get("hosts", [])
        for entry in ",".join(hosts).split(","):
            host, sep, port = entry.strip().rpartition(":")
            if not sep or "]" in port:  # no port given (or a bare IPv6)
                host, port = entry.strip(), "2181"
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

    @property
    def is_zookeeper(self) -> bool:
        return self.scheme in ("kazoo", "zookeeper")

    def ensure_connected(
        self, coord: coordination.CoordinationDriver, what: str
    ) -> None:
        """Fail at once while a ZooKeeper client has no live connection.

        kazoo queues requests until it reconnects, so every call would wait
        the whole backend timeout (tooz's ``heartbeat()`` even waits without
        any), and the heartbeat loop would need five of those before it
        resets a client that may never reconnect: a ZooKeeper that lost
        its data refuses, forever, a client that saw a newer zxid (see
        :meth:`ToozMemberSession.reset`). Failing fast lets the loop reset
        it within about a second.
        """
        if not self.is_zookeeper:
            return
        client = getattr(coord, "_coord", None)  # tooz's KazooClient
        if client is not None and not client.connected:
            raise exceptions.BackendUnavailable(f"{what}: no ZooKeeper connection")

    def wait(self, what: str, result: coordination.CoordAsyncResult[T]) -> T:
        """The value of a tooz async result, within the backend timeout."""
        with translate_errors(what):
            return result.get(timeout=self.timing.backend_timeout)


def _stop_quietly(
    coord: coordination.CoordinationDriver,
    *,
    keep_liveness: bool = False,
    started: bool = True,
) -> None:
    # tooz's stop() leaves every joined group and waits without a timeout;
    # we already left (with one), so a dead backend must not hang us here.
    coord._joined_groups = set()
    # Read by our drivers that would otherwise delete the member's liveness
    # on stop (see fixes.py); a reset must not make a live member look dead.
    coord.keep_liveness_on_stop = keep_liveness  # type: ignore[attr-defined]
    # tooz refuses to stop a coordinator whose start() did not succeed (and
    # says so with a traceback at every start with -vv): only the client
    # objects below need closing then.
    if started:
        try:
            coord.stop()
        except Exception:  # noqa: BLE001 - closing must never fail the caller
            LOG.debug("Ignoring error while stopping a tooz coordinator", exc_info=True)
    # tooz stops its kazoo client but never closes it, which leaks the
    # client's socketpair until garbage collection.
    kazoo_client = getattr(coord, "_coord", None)
    close = getattr(kazoo_client, "close", None)
    if callable(close):
        try:
            close()
        except Exception:  # noqa: BLE001 - as above
            LOG.debug("Ignoring error while closing a kazoo client", exc_info=True)
    # Nor does it close etcd3gw's requests session: its pooled sockets stay
    # open until the garbage collector finds the cycle they are part of.
    session = getattr(getattr(coord, "client", None), "session", None)
    close_session = getattr(session, "close", None)
    if callable(close_session):
        try:
            close_session()
        except Exception:  # noqa: BLE001 - as above
            LOG.debug("Ignoring error while closing an etcd session", exc_info=True)


class ToozMemberSession(heartbeat.MemberSession):
    """One member in one group, through its own tooz coordinator."""

    def __init__(self, backend: ToozBackend, member_id: str, group_id: str) -> None:
        self._backend = backend
        self._tooz_member = tooz_member_id(member_id, group_id)
        self._group = group_id.encode()
        self._name = f"member {member_id} of group {group_id}"
        self._coord: coordination.CoordinationDriver | None = None

    def _require(self) -> coordination.CoordinationDriver:
        if self._coord is None:
            raise exceptions.BackendUnavailable(f"{self._name}: not connected")
        return self._coord

    def connect(self) -> None:
        self._coord = self._backend.coordinator(self._tooz_member)

    def beat(self) -> None:
        coord = self._require()
        if self._backend.is_zookeeper:
            # kazoo's own pings keep the session alive; tooz's heartbeat()
            # is only a read, and one that can block forever.
            self._backend.ensure_connected(coord, f"heartbeat of {self._name}")
            return
        with translate_errors(f"heartbeat of {self._name}"):
            coord.heartbeat()

    def join(self, record: Mapping[str, Any]) -> None:
        coord = self._require()
        wait = self._backend.wait
        what = f"joining {self._name}"
        try:
            wait(what, coord.join_group(self._group, dict(record)))
            return
        except exceptions.GroupNotFound:
            with contextlib.suppress(_AlreadyExists):
                wait("creating group", coord.create_group(self._group))
            try:
                wait(what, coord.join_group(self._group, dict(record)))
                return
            except _AlreadyExists:
                pass
        except _AlreadyExists:
            pass
        # An entry with our id survives from a process that crashed (or a
        # session or lease that expired): replace it now rather than wait
        # for the backend to expire it.
        LOG.info("Replacing a stale entry for %s", self._name)
        if not self._backend.is_zookeeper:
            # The entry is keyed by our tooz member id and its liveness key
            # is the one we beat: rewriting the record makes it ours (etcd
            # moves the key onto our lease) with no moment where observers
            # could see the member missing. A ZooKeeper node belongs to the
            # session that created it, so it has to be created again.
            try:
                wait(what, coord.update_capabilities(self._group, dict(record)))
                return
            except exceptions.MemberNotFound:
                pass  # gone meanwhile: join below
        with contextlib.suppress(exceptions.MemberNotFound):
            wait(f"removing stale {self._name}", coord.leave_group(self._group))
        wait(what, coord.join_group(self._group, dict(record)))

    def confirm(self) -> bool:
        coord = self._require()
        check_joined = getattr(coord, "check_joined", None)
        if check_joined is None:
            return False
        self._backend.wait(f"checking {self._name}", check_joined(self._group))
        return True

    def refresh(self, record: Mapping[str, Any]) -> None:
        coord = self._require()
        self._backend.wait(
            f"updating {self._name}",
            coord.update_capabilities(self._group, dict(record)),
        )

    def leave(self) -> None:
        coord = self._require()
        self._backend.wait(f"leaving {self._name}", coord.leave_group(self._group))

    def close(self) -> None:
        if self._coord is not None:
            _stop_quietly(self._coord)
            self._coord = None

    def reset(self) -> bool:
        coord = self._coord
        if coord is None:
            return True
        # kazoo reconnects by itself, and closing its session would delete
        # the member's node: during a leader election, or with the member's
        # server gone, observers would see it down. What kazoo cannot get
        # past alone is a server that lost its data.
        if self._backend.forget_zxid(coord):
            return False
        self._coord = None
        _stop_quietly(coord, keep_liveness=True)
        return True


def _member_capabilities(
    coord: coordination.CoordinationDriver, *, group: bytes, tooz_member: bytes
) -> coordination.CoordAsyncResult[Any]:
    return coord.get_member_capabilities(group, tooz_member)


class ToozObserver:
    """Reads groups through a coordinator that never joins any."""

    def __init__(self, backend: ToozBackend) -> None:
        self._backend = backend
        self._tooz_member = (
            f"observer-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        ).encode()
        self._coord: coordination.CoordinationDriver | None = None
        self._failures = 0
        self._closed = False
        self._lock = threading.Lock()
        self._undecodable_groups: set[str] = set()
        #: Called when a watch says that a group read before changed (set
        #: by the driver to the membership view's wake).
        self.on_change: Callable[[], None] = lambda: None
        #: On ZooKeeper: the groups read so far, kept current by watches.
        self._watched: zookeeper_view.WatchedGroups | None = None

    def _coordinator(self) -> coordination.CoordinationDriver:
        if self._coord is None:
            self._coord = self._backend.coordinator(self._tooz_member)
        return self._coord

    def _read(
        self, what: str, call: Callable[[coordination.CoordinationDriver], Any]
    ) -> Any:
        # Another read may be stuck in a client library's connect: callers
        # wait no longer than the backend timeout for it.
        if not self._lock.acquire(timeout=self._backend.timing.backend_timeout):
            raise exceptions.BackendTimeout(f"{what}: backend is not answering")
        try:
            if self._closed:
                raise exceptions.BackendUnavailable(f"{what}: closed")
            try:
                coord = self._coordinator()
                self._backend.ensure_connected(coord, what)
                result = self._backend.wait(what, call(coord))
            except (
                exceptions.GroupNotFound,
                exceptions.MemberNotFound,
                _Undecodable,
            ):
                # The backend answered: the connection is fine.
                self._failures = 0
                raise
            except exceptions.BackendError:
                self._failures += 1
                if self._coord is not None:
                    # An observer owns no node and may read from any server:
                    # nothing is lost if its client reconnects to one that
                    # lags (or lost its data), and waiting for the rebuild
                    # below would leave it blind for five refreshes.
                    self._backend.forget_zxid(self._coord)
                if self._failures % OBSERVER_RECONNECT_AFTER == 0:
                    self._close_locked()
                raise
            self._failures = 0
            return result
        finally:
            if self._closed:
                self._close_locked()
            self._lock.release()

    def fetch(self, group_id: str) -> dict[str, Any]:
        """Members of ``group_id`` that are alive -> their stored record."""
        group = group_id.encode()
        what = f"reading group {group_id}"
        if self._backend.is_zookeeper:
            # N + 1 requests per refresh with tooz: only the changes here.
            read = self._read(what, lambda c: self._watched_groups(c).read(group))
            if read.undecodable is not None:
                self._warn_undecodable(
                    group_id, f"{what}: undecodable record: {read.undecodable}"
                )
            raw = read.records
        else:
            try:
                raw = self._read(what, lambda c: c.get_members_with_capabilities(group))
            except _Undecodable as exc:
                raw = self._fetch_one_by_one(group_id, exc)
        return {member_id_from_tooz(k, group_id): v for k, v in raw.items()}

    def _watched_groups(
        self, coord: coordination.CoordinationDriver
    ) -> zookeeper_view.WatchedGroups:
        # Called under the lock; the watches live on this coordinator's
        # client, so a new coordinator starts with new ones.
        watched = self._watched
        if watched is None or watched.coordinator is not coord:
            if watched is not None:
                watched.close()
            watched = self._watched = zookeeper_view.WatchedGroups(
                coord, lambda: self.on_change()
            )
        return watched

    def _warn_undecodable(self, group_id: str, cause: object) -> None:
        # Once per group: such a member is alive (it is listed) but has no
        # capabilities to show.
        if group_id not in self._undecodable_groups:
            self._undecodable_groups.add(group_id)
            LOG.warning(
                "Group %s holds records that are not tooz capabilities (%s); "
                "those members are listed without capabilities",
                group_id,
                cause,
            )

    def _fetch_one_by_one(self, group_id: str, cause: _Undecodable) -> dict[bytes, Any]:
        # tooz decodes a whole group at once, so one record it cannot read
        # (a Liberty zk driver's znode under the same prefix during an
        # upgrade, another program's data) would hide every member. Read
        # them one by one instead.
        self._warn_undecodable(group_id, cause)
        group = group_id.encode()
        raw: dict[bytes, Any] = {}
        for tooz_member in self._read(
            f"listing group {group_id}", lambda c: c.get_members(group)
        ):
            read_one = functools.partial(
                _member_capabilities, group=group, tooz_member=tooz_member
            )
            try:
                raw[tooz_member] = self._read(
                    f"reading member {tooz_member!r} of group {group_id}", read_one
                )
            except _Undecodable:
                raw[tooz_member] = None
            except exceptions.MemberNotFound:
                pass  # left meanwhile
        return raw

    def groups(self) -> list[str]:
        raw = self._read("listing groups", lambda c: c.get_groups())
        return sorted(g.decode() if isinstance(g, bytes) else g for g in raw)

    def delete_group(self, group_id: str) -> None:
        """Remove ``group_id``; GroupNotEmpty while a member is alive in it."""
        group = group_id.encode()
        self._read(f"deleting group {group_id}", lambda c: c.delete_group(group))

    def _close_locked(self) -> None:
        if self._watched is not None:
            self._watched.close()
            self._watched = None
        if self._coord is not None:
            _stop_quietly(self._coord)
            self._coord = None

    def close(self, timeout: float | None = None) -> None:
        """Close the coordinator now, or when the read in progress ends.

        Waits at most ``timeout`` (``backend_timeout`` when None): closing a
        client whose server stopped answering can block for longer (kazoo
        waits up to 10 s for its connection thread), so the closing runs on
        a daemon thread that finishes on its own.
        """
        self._closed = True
        if timeout is None:
            timeout = self._backend.timing.backend_timeout
        closer = threading.Thread(
            target=self._close_when_idle,
            name="servicegroup-observer-close",
            daemon=True,
        )
        closer.start()
        closer.join(timeout)

    def _close_when_idle(self) -> None:
        # A read under way releases the lock within the backend timeout, and
        # closes the coordinator itself when it sees _closed.
        if self._lock.acquire(timeout=self._backend.timing.backend_timeout):
            try:
                self._close_locked()
            finally:
                self._lock.release()
