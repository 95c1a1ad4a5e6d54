"""Coordinators: making and stopping them, one member's, the observer's.

:class:`ToozBackend` makes coordinators for one URL and waits on their
results, :class:`ToozMemberSession` is one member in one group and
:class:`ToozObserver` reads groups without joining any. Everything a
backend does its own way is asked of its policy (:mod:`.backends`): nothing
here names a backend.
"""

from __future__ import annotations

import contextlib
import functools
import logging
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
from servicegroup.drivers.tooz.backends import base, registry
from servicegroup.drivers.tooz.errors import (
    _AlreadyExists,
    _Undecodable,
    translate_errors,
)
from servicegroup.drivers.tooz.server_limits import ServerLimits
from servicegroup.drivers.tooz.urls import (
    member_id_from_tooz,
    merged_options,
    redact_url,
    tooz_member_id,
)

LOG = logging.getLogger(__name__)

T = TypeVar("T")

#: Consecutive failed reads after which the observer coordinator is rebuilt.
OBSERVER_RECONNECT_AFTER = 5


def _missing_client(scheme: str, exc: ModuleNotFoundError) -> Exception:
    """Name the extra to install when a backend's client library is missing."""
    module = (exc.name or "").split(".")[0]
    extra = registry.CLIENT_EXTRAS.get(module)
    if extra is None:
        return exc  # not a client library: a broken installation, as it is
    return exceptions.MissingDependency(
        f"the {scheme}:// backend needs the {module} client library, which is "
        f"not installed: pip install 'servicegroup[{extra}]'"
    )


class ToozBackend:
    """One backend URL: makes coordinators and waits on their results."""

    def __init__(self, url: str, timing: sg_conf.Timing) -> None:
        parts = registry.parse_url(url)
        self.scheme = parts.scheme
        self.redacted_url = redact_url(url)
        self.timing = timing
        #: What this backend does its own way.
        self.policy = registry.for_scheme(self.scheme)(url, parts, timing)
        url_options = urllib.parse.parse_qs(parts.query)
        #: Our tooz options, for those the URL does not set.
        self.options = {
            k: v for k, v in self.policy.tooz_options().items() if k not in url_options
        }
        self.check_options()
        knob = self.policy.membership_option
        merged = merged_options(parts, self.options)
        # For a server that decides (ZooKeeper, etcd) this is what was asked
        # for; self.limits reads back what it granted.
        asked = float(merged.get(knob, [0])[-1] or 0)
        self.effective = {"membership_timeout": asked}
        #: What the server grants instead, read back as coordinators connect.
        self.limits = ServerLimits(
            self.policy.terms,
            self.redacted_url,
            asked,
            timing,
            from_url=knob not in self.options,
        )

    def _new_coordinator(
        self, tooz_member: bytes, *, observer: bool = False
    ) -> coordination.CoordinationDriver:
        """A coordinator for ``tooz_member``, not started (no traffic yet)."""
        try:
            return self.policy.new_coordinator(
                tooz_member, self.options, observer=observer
            )
        except ModuleNotFoundError as exc:
            raise _missing_client(self.scheme, exc) from exc
        except (ValueError, TypeError, KeyError) as exc:
            # tooz parses the URL's options here: timeout=abc, handler=nope.
            raise exceptions.InvalidURL(
                f"{self.redacted_url!r} has an option tooz cannot use: {exc}"
            ) from exc

    def check_options(self) -> None:
        """Raise InvalidURL now if tooz rejects the URL's options."""
        self.policy.close(
            self._new_coordinator(b"servicegroup-option-check"), started=False
        )

    def coordinator(
        self, tooz_member: bytes, *, observer: bool = False
    ) -> coordination.CoordinationDriver:
        """A started coordinator for ``tooz_member`` (``observer``: joins nothing)."""
        coord = self._new_coordinator(tooz_member, observer=observer)
        self.limits.before_start(coord)
        what = f"connecting to {self.redacted_url}"
        try:
            with translate_errors(what):
                try:
                    coord.start(start_heart=False)
                except BaseException:
                    self.policy.close(coord, started=False)
                    raise
        except (exceptions.BackendTimeout, exceptions.BackendUnavailable) as exc:
            truer = self.policy.start_failed(what)
            if truer is not None:
                raise truer from exc
            raise
        self.policy.started(coord)
        self.limits.after_start(coord)
        return coord

    def wait(self, what: str, result: base.Pending[T]) -> T:
        """The value of a tooz async result, within the backend timeout."""
        with translate_errors(what):
            return result.get(timeout=self.timing.backend_timeout)


class ToozMemberSession(heartbeat.MemberSession):
    """One member in one group, through its own tooz coordinator."""

    def __init__(self, backend: ToozBackend, member_id: str, group_id: str) -> None:
        self._backend = backend
        self._policy = backend.policy
        self._tooz_member = tooz_member_id(member_id, group_id)
        self._group = group_id.encode()
        self._name = f"member {member_id} of group {group_id}"
        self._coord: coordination.CoordinationDriver | None = None
        self.confirms_membership = self._policy.confirms_membership

    def _require(self) -> coordination.CoordinationDriver:
        if self._coord is None:
            raise exceptions.BackendUnavailable(f"{self._name}: not connected")
        return self._coord

    def connect(self) -> None:
        self._coord = self._backend.coordinator(self._tooz_member)

    def beat(self) -> None:
        self._policy.beat(self._require(), f"heartbeat of {self._name}")

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
        self._policy.replace_stale(coord, self._group, dict(record), wait, self._name)

    def confirm(self) -> None:
        self._policy.confirm(
            self._require(), self._group, self._backend.wait, f"checking {self._name}"
        )

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
            self._policy.close(self._coord)
            self._coord = None

    def reset(self) -> heartbeat.Reset:
        coord = self._coord
        if coord is None:
            return heartbeat.Reset.RECONNECT
        outcome = self._policy.reset(coord)
        if outcome is heartbeat.Reset.RECONNECT:
            self._coord = None
        return outcome


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
        #: How groups are read through the current coordinator.
        self._reader: base.GroupReader | None = None

    def _coordinator(self) -> coordination.CoordinationDriver:
        if self._coord is None:
            self._coord = self._backend.coordinator(self._tooz_member, observer=True)
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
                self._backend.policy.check_connected(coord, what)
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
        try:
            read = self._read(what, lambda c: self._group_reader(c).read(group))
        except _Undecodable as exc:
            raw = self._fetch_one_by_one(group_id, exc)
        else:
            if read.undecodable is not None:
                self._warn_undecodable(
                    group_id, f"{what}: undecodable record: {read.undecodable}"
                )
            raw = read.records
        return {member_id_from_tooz(k, group_id): v for k, v in raw.items()}

    def _group_reader(self, coord: coordination.CoordinationDriver) -> base.GroupReader:
        # Called under the lock; a reader may keep state on its coordinator's
        # client (ZooKeeper's watches), so a new coordinator gets a new one.
        reader = self._reader
        if reader is None or reader.coordinator is not coord:
            if reader is not None:
                reader.close()
            reader = self._reader = self._backend.policy.group_reader(
                coord, lambda: self.on_change()
            )
        return reader

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
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._coord is not None:
            self._backend.policy.close(self._coord)
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
