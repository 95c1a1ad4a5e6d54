"""Watch-fed reads of ZooKeeper groups: a refresh costs O(changes), not O(N).

Used only by :mod:`.backends.zookeeper`, as its observers' group reader.

tooz reads a group on ZooKeeper with one ``getChildren`` and then one
``getData`` per member, one after the other: N + 1 requests and N round
trips on every refresh, whether anything changed or not (332 ms at 1,000
members; one idle observer of 2,000 members made the server receive 700 to
1,000 packets/s). An observer's refresh runs every ``refresh_interval``, for
as long as the process lives, so here it reads only what changed since its
last read, as ZooKeeper's watches tell it:

* a **child watch** on the group node fires when members join or leave:
  the next read lists the children again (one request) and reads the
  records of the new members only;
* a **data watch** on each member node fires when its record is rewritten
  (capabilities, or the heartbeat time a member writes every
  ``report_interval``) or the node goes: the next read reads that member
  only. Watches fire once; the read that follows sets the next one.

A group nobody touches costs no request at all, only the session's pings.
Members that rewrite their records cost one read per rewrite: joined
members rewrite theirs every ``report_interval`` (the envelope carries the
heartbeat's time, see :mod:`servicegroup.member`), so a group of N of them
costs about N / ``report_interval`` reads per second (200 for 2,000 members
at Nova's 10 s), where tooz's read cost N + 1 per refresh. Fewer would need
the heartbeat time to come from elsewhere than the record.
Joins and leaves also call ``on_change`` (the membership view's ``wake``), so
they reach the view, and its ``watch()`` callbacks, as soon as ZooKeeper
reports them rather than at the next ``refresh_interval``. Record rewrites
do not wake anybody: with every member writing its heartbeat each
``report_interval`` that would turn the periodic refresh into a busy loop,
and nothing a watcher is told about (who is up) changes with them.

Watches live on one connection of one session. kazoo drops every watch
when its connection is lost (it does not set them again on reconnecting, as
ZooKeeper's Java client does), and ZooKeeper drops them with an expired
session, so any lost connection or session marks every group of this
client for a *full* read: all children and all records again, every watch
set again, the first time the client is connected. A read that fails half
way does the same, so a cache can never go stale silently. The requests of
one read are all sent at once (kazoo pipelines them), so even a full read
costs one round trip, not N.

Layout (tooz's :class:`~tooz.drivers.zookeeper.KazooDriver`):
``/<namespace>/<group>/<member>``, one ephemeral node per member holding its
capabilities serialized by tooz (``utils.dumps``; empty means None). What
:meth:`WatchedGroups.read` returns is what tooz's
``get_members_with_capabilities`` returns, except that a record tooz cannot
decode does not fail the whole group: it reads as None (no capabilities)
and is named in :attr:`GroupRecords.undecodable`.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from tooz import coordination
from tooz import utils as tooz_utils

from servicegroup.drivers.tooz import compat
from servicegroup.drivers.tooz.backends.base import GroupRecords

LOG = logging.getLogger(__name__)


@functools.cache
def _check_compat() -> None:
    """Fail, naming what is missing, if tooz or kazoo renamed what we use."""
    from kazoo import client as kazoo_client
    from tooz.drivers import zookeeper as tooz_zookeeper

    driver = tooz_zookeeper.KazooDriver
    kazoo = kazoo_client.KazooClient
    compat.require(
        [
            compat.uses(driver, "_coord"),
            compat.has(driver, "_path_group"),
            compat.has(driver, "_path_member"),
            compat.has(kazoo, "get_children_async"),
            compat.has(kazoo, "get_async"),
            compat.has(kazoo, "add_listener"),
            compat.has(kazoo, "remove_listener"),
            compat.has(kazoo, "client_id"),
        ]
    )


@dataclasses.dataclass
class _Group:
    """What this client knows of one group, and what it must read again."""

    path: str
    records: dict[bytes, Any] = dataclasses.field(default_factory=dict)
    #: member -> why its record could not be decoded.
    undecodable: dict[bytes, str] = dataclasses.field(default_factory=dict)
    #: Whether the records are complete and every watch is set: False
    #: until a full read succeeds, and again once watches may be lost.
    valid: bool = False
    #: The child watch fired (or is not set): list the children again.
    children_changed: bool = True
    #: Members whose data watch fired: read their records again.
    changed: set[bytes] = dataclasses.field(default_factory=set)
    #: Bumped whenever watches may have been lost, so that a read in
    #: flight at that moment does not mark the group valid.
    epoch: int = 0


class WatchedGroups:
    """The groups one observer reads, cached on its kazoo client by watches.

    :param coord: the observer's started tooz ZooKeeper coordinator; its
        kazoo client carries the watches, its paths give tooz's layout.
    :param on_change: called (on kazoo's callback thread; it must be quick)
        when members join or leave a group read before, and when the
        client is connected again after losing its connection.

    Reads (:meth:`read`) are made by one thread at a time (the observer's
    lock); watches and connection changes arrive on kazoo's threads.
    """

    def __init__(self, coord: Any, on_change: Callable[[], None]) -> None:
        _check_compat()
        from kazoo import exceptions as kazoo_exceptions
        from kazoo.protocol import states

        self._no_node = kazoo_exceptions.NoNodeError
        self._event_none = states.EventType.NONE
        self._connected_state = states.KazooState.CONNECTED
        self._coord = coord
        self._client = coord._coord
        self._timeout_exception = self._client.handler.timeout_exception
        self._on_change = on_change
        self._groups: dict[bytes, _Group] = {}
        self._watchers: dict[tuple[bytes, bool], Callable[[Any], None]] = {}
        self._lock = threading.Lock()
        #: Set by the state listener until the client is connected again.
        self._connection_was_lost = False
        self._session = self._client.client_id
        self._client.add_listener(self._state_changed)
        self._closed = False

    @property
    def coordinator(self) -> Any:
        """The tooz coordinator whose client holds the watches."""
        return self._coord

    def close(self) -> None:
        """Stop listening to the client (its watches go with it)."""
        self._closed = True
        self._client.remove_listener(self._state_changed)
        with self._lock:
            self._groups.clear()

    def read(self, group_id: bytes) -> _PendingRead:
        """The members of ``group_id`` with their records, as tooz reads them.

        Returns a result whose ``get(timeout)`` makes the read, the way tooz's
        async results are waited on. ``get`` raises tooz's
        ``GroupNotCreated`` when the group node does not exist,
        ``OperationTimedOut`` when the server leaves a request unanswered
        for ``timeout``, or kazoo's errors. The timeout bounds each request,
        not the whole read: a full read of 10,000 members takes seconds in
        kazoo (one request or answer per turn of its connection loop), and
        cutting it short while answers keep coming would fail it for good.
        """
        return _PendingRead(self, group_id)

    # -- reading ---------------------------------------------------------

    def _read(self, group_id: bytes, timeout: float | None) -> GroupRecords:
        with self._lock:
            if self._client.client_id != self._session:
                # A new session (the old one expired): no watch survived.
                self._session = self._client.client_id
                self._invalidate_all_locked()
            group = self._groups.get(group_id)
            if group is None:
                path = self._coord._path_group(group_id)
                group = self._groups[group_id] = _Group(path)
            epoch = group.epoch
            full = not group.valid
            list_children = full or group.children_changed
            changed = set(group.changed)
            # Cleared before reading: a watch firing from now on is for a
            # change this read may not see, and marks it again.
            group.children_changed = False
            group.changed.clear()
            known = set(group.records)
        try:
            children = (
                self._list_children(group_id, group, timeout) if list_children else None
            )
            members = known if children is None else children
            if full:
                to_read = members
            else:
                to_read = (changed | (members - known)) & members
            read = self._read_records(group_id, to_read, timeout)
        except coordination.GroupNotCreated:
            with self._lock:
                # Gone: forget it, so that a group created again later is
                # read in full.
                if self._groups.get(group_id) is group:
                    del self._groups[group_id]
            raise
        except BaseException:
            with self._lock:
                self._invalidate_locked(group)
            raise
        with self._lock:
            if children is not None:
                for gone in group.records.keys() - children:
                    del group.records[gone]
                    group.undecodable.pop(gone, None)
            for member, value in read.items():
                if value is _GONE:
                    group.records.pop(member, None)
                    group.undecodable.pop(member, None)
                    continue
                record, why = value
                group.records[member] = record
                if why is None:
                    group.undecodable.pop(member, None)
                else:
                    group.undecodable[member] = why
            if full and group.epoch == epoch:
                group.valid = True
            undecodable = next(iter(group.undecodable.values()), None)
            return GroupRecords(dict(group.records), undecodable)

    def _list_children(
        self, group_id: bytes, group: _Group, timeout: float | None
    ) -> set[bytes]:
        result = self._client.get_children_async(
            group.path, watch=self._watcher(group_id, children=True)
        )
        try:
            names = self._wait(result, timeout)
        except self._no_node:
            raise coordination.GroupNotCreated(group_id) from None
        # tooz's own conversion of child names to member ids.
        return {name.encode("ascii") for name in names}

    def _read_records(
        self, group_id: bytes, members: Iterable[bytes], timeout: float | None
    ) -> dict[bytes, Any]:
        watch = self._watcher(group_id, children=False)
        # All requests go out before the first answer is waited for.
        pending = [
            (
                member,
                self._client.get_async(
                    self._coord._path_member(group_id, member), watch=watch
                ),
            )
            for member in members
        ]
        read: dict[bytes, Any] = {}
        for member, result in pending:
            try:
                data, _stat = self._wait(result, timeout)
            except self._no_node:
                # Left since it was listed; the child watch says so too.
                read[member] = _GONE
                continue
            read[member] = _decode(data)
        return read

    def _wait(self, result: Any, timeout: float | None) -> Any:
        try:
            return result.get(block=True, timeout=timeout)
        except self._timeout_exception as exc:
            raise coordination.OperationTimedOut(str(exc) or "timed out") from exc

    # -- watches and connection changes ------------------------------------

    def _watcher(self, group_id: bytes, *, children: bool) -> Callable[[Any], None]:
        # One callable per group and kind, so that kazoo (which keeps a set
        # of watchers per path) does not call it twice for one event when a
        # full read sets a watch that was still set.
        key = (group_id, children)
        watcher = self._watchers.get(key)
        if watcher is None:
            watcher = self._watchers[key] = functools.partial(
                self._watch_fired, group_id, children
            )
        return watcher

    def _watch_fired(self, group_id: bytes, children: bool, event: Any) -> None:
        """A watch fired (on kazoo's callback thread)."""
        if self._closed:
            return
        wake = False
        with self._lock:
            group = self._groups.get(group_id)
            if group is None:
                return
            if event.type == self._event_none:
                # kazoo dropped the watches: connection or session lost.
                self._invalidate_locked(group)
            elif children:
                group.children_changed = True
                wake = True
            else:
                member = event.path.rpartition("/")[2].encode("ascii")
                group.changed.add(member)
        if wake:
            self._on_change()

    def _state_changed(self, state: Any) -> None:
        """kazoo's connection state changed (on its connection thread)."""
        if self._closed:
            return
        if state != self._connected_state:
            # Suspended or lost: watches are gone with the connection.
            with self._lock:
                self._connection_was_lost = True
                self._invalidate_all_locked()
            return
        with self._lock:
            was_lost, self._connection_was_lost = self._connection_was_lost, False
        if was_lost:
            # Listeners run on kazoo's connection thread, which must never
            # wait for a read: the wake-up goes to its callback thread.
            # Read everything again now, not at the next refresh: the view
            # was blind while the connection was down.
            self._client.handler.dispatch_callback(_callback(self._on_change))

    def _invalidate_all_locked(self) -> None:
        for group in self._groups.values():
            self._invalidate_locked(group)

    @staticmethod
    def _invalidate_locked(group: _Group) -> None:
        group.valid = False
        group.children_changed = True
        group.epoch += 1


#: A member whose node went between listing and reading.
_GONE = object()


def _decode(data: bytes) -> tuple[Any, str | None]:
    """(record, None), or (None, why) for a record tooz cannot decode."""
    if not data:
        return None, None
    try:
        return tooz_utils.loads(data), None
    except tooz_utils.SerializationError as exc:
        return None, str(exc) or type(exc).__name__


def _callback(func: Callable[[], None]) -> Any:
    from kazoo.protocol.states import Callback

    return Callback("watch", func, ())


class _PendingRead:
    """A read of one group, made when waited on (like tooz's results)."""

    def __init__(self, groups: WatchedGroups, group_id: bytes) -> None:
        self._groups = groups
        self._group_id = group_id

    def get(self, timeout: float | None = None) -> GroupRecords:
        return self._groups._read(self._group_id, timeout)
