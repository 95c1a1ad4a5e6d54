"""The local view of groups that answers ``is_up`` without network traffic.

A :class:`MembershipCache` keeps one :class:`GroupView` per group it was
asked about. The first question about a group waits (at most
``backend_timeout``) for one fetch; after that a background task refreshes
every watched group each ``refresh_interval`` and the question costs a
dictionary lookup. When a refresh fails the cache *fails static*: it keeps the
last good view, marks it stale and logs once, rather than declaring the whole
group down because the observer lost its own connection.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from servicegroup import conf as sg_conf
from servicegroup import exceptions, scheduling
from servicegroup import member as sg_member

LOG = logging.getLogger(__name__)

#: Reads a group from the backend: member id -> stored record. Raises
#: GroupNotFound when the group does not exist, BackendError on failure.
FetchGroup = Callable[[str], Mapping[str, Any]]


@dataclasses.dataclass(frozen=True)
class MembershipChange:
    """What changed in a group between two refreshes.

    :ivar members: the ids that are up now.
    :ivar joined: ids that came up.
    :ivar left: ids that went down.
    """

    group_id: str
    members: frozenset[str]
    joined: frozenset[str]
    left: frozenset[str]


WatchCallback = Callable[[MembershipChange], None]

#: Stands for a member that had no record in the previous fetch.
_NO_RECORD = object()


@dataclasses.dataclass(frozen=True)
class GroupView:
    """One consistent snapshot of a group.

    ``members`` holds every member this process has seen in the group since
    it started watching it, up or not, so a member that crashed is listed as
    down (with its last heartbeat) instead of vanishing.
    """

    group_id: str
    members: Mapping[str, sg_member.Member]
    up: frozenset[str]
    stale: bool
    #: clock.monotonic() of the latest successful fetch (None: never).
    fetched_at: float | None


class MembershipCache:
    """Views of the groups this process asked about, kept fresh."""

    def __init__(
        self,
        fetch: FetchGroup,
        clock: scheduling.Clock,
        timing: sg_conf.Timing,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._timing = timing
        # The hot path reads only this: group -> ids that are up. The
        # refresh task replaces whole values, which is atomic for readers.
        self.up_sets: dict[str, frozenset[str]] = {}
        self._views: dict[str, GroupView] = {}
        self._first_fetch: dict[str, threading.Event] = {}
        self._watchers: dict[str, list[WatchCallback]] = {}
        self._lock = threading.Lock()
        self._closed = False
        # Recovery grace (see _refresh_group): group -> (deadline on
        # clock.monotonic(), ids that were up before the outage or loss).
        self._grace: dict[str, tuple[float, frozenset[str]]] = {}
        self._unreachable: set[str] = set()
        # The records of each group's latest fetch. A fetch that returns
        # the very same record object again (ZooKeeper's, fed by watches,
        # returns unchanged records so) keeps the same Member: at 10,000
        # members, decoding them all again was most of a refresh.
        self._records: dict[str, Mapping[str, Any]] = {}
        self._timer = clock.schedule(
            "servicegroup-refresh", self._refresh_all, timing.refresh_interval
        )

    def view(self, group_id: str, timeout: float | None = None) -> GroupView:
        """The current view of ``group_id``, watching it from now on.

        The first question about a group waits for one fetch, at most
        ``timeout`` seconds (``backend_timeout`` when None).
        """
        view = self._views.get(group_id)
        if view is None:
            self._start_watching(group_id, timeout)
            view = self._views[group_id]
        return view

    def watch(self, group_id: str, callback: WatchCallback) -> Callable[[], None]:
        """Call ``callback`` on every change of the group's up members.

        Callbacks run on the refresh task; they must be quick. Returns a
        function that stops the calls.
        """
        self.view(group_id)
        with self._lock:
            self._watchers.setdefault(group_id, []).append(callback)

        def unwatch() -> None:
            with self._lock:
                callbacks = self._watchers.get(group_id, [])
                if callback in callbacks:
                    callbacks.remove(callback)

        return unwatch

    def wake(self) -> None:
        """Refresh soon (a member of this process joined or left)."""
        self._timer.wake()

    def close(self, timeout: float | None = None) -> None:
        """Stop refreshing; wait up to ``timeout`` for a refresh under way."""
        self._closed = True
        self._timer.cancel(
            timeout=self._timing.backend_timeout if timeout is None else timeout
        )

    def _start_watching(self, group_id: str, timeout: float | None = None) -> None:
        if timeout is None:
            timeout = self._timing.backend_timeout
        with self._lock:
            event = self._first_fetch.get(group_id)
            is_new = event is None
            if event is None:
                event = self._first_fetch[group_id] = threading.Event()
        if is_new:
            self._timer.wake()
        if not self._clock.wait(event, max(0.0, timeout)):
            LOG.warning(
                "No answer about group %s within %.1f s; treating it as "
                "empty until the backend answers",
                group_id,
                self._timing.backend_timeout,
            )
            with self._lock:
                if group_id not in self._views:
                    self._install(GroupView(group_id, {}, frozenset(), True, None))

    def _refresh_all(self) -> float:
        if self._closed:
            return scheduling.FAILED_TASK_DELAY
        with self._lock:
            groups = list(self._first_fetch)
        for group_id in groups:
            self._refresh_group(group_id)
        return self._timing.refresh_interval

    def _refresh_group(self, group_id: str) -> None:
        old = self._views.get(group_id)
        group_lost = False
        try:
            raw = self._fetch(group_id)
        except exceptions.GroupNotFound:
            raw = {}
            group_lost = True
        except exceptions.BackendError as exc:
            # Once per outage: a view can be stale for another reason (a
            # recovery grace, a first fetch that timed out).
            if group_id not in self._unreachable:
                LOG.warning(
                    "Cannot refresh group %s (%s); %s",
                    group_id,
                    exc,
                    "answering from the last good view until the backend is back"
                    if old is not None and old.fetched_at is not None
                    else "the backend never answered: no member is known up "
                    "until it does",
                )
            self._unreachable.add(group_id)
            if old is None:
                new = GroupView(group_id, {}, frozenset(), True, None)
            else:
                new = dataclasses.replace(
                    old,
                    stale=True,
                    members={
                        k: dataclasses.replace(m, stale=True)
                        for k, m in old.members.items()
                    },
                )
            self._publish(old, new)
            return
        recovered = group_id in self._unreachable
        self._unreachable.discard(group_id)
        if recovered:
            LOG.info("Group %s is refreshed again", group_id)
        self._publish(old, self._build(group_id, old, raw, recovered, group_lost))

    def _held(
        self,
        group_id: str,
        old: GroupView | None,
        raw: Mapping[str, Any],
        recovered: bool,
        group_lost: bool,
    ) -> frozenset[str]:
        """Members missing from ``raw`` that stay up for a grace period.

        After the backend was unreachable, or lost the group (restarted
        without persistence, a memcached node behind a proxy died), the
        members that were up had no way to report, or their records are
        gone: each writes again at its next round, within
        ``report_interval`` plus one backoff step (both bounded by
        ``report_interval``). Until then the first reads would show the
        whole group down, so those members stay up, marked stale, for that
        long. A member that really died during the outage is down once the
        grace ends. A member found again is no longer held: if it then
        leaves or stops beating, that is seen as usual.
        """
        now = self._clock.monotonic()
        grace = self._grace.get(group_id)
        if grace is not None and now >= grace[0]:
            del self._grace[group_id]
            grace = None
        before = old.up if old is not None and old.fetched_at is not None else None
        if grace is None and before and (recovered or group_lost):
            missing = before - frozenset(raw)
            if not missing:
                return frozenset()
            span = self._timing.report_interval + self._timing.retry_max_interval
            grace = self._grace[group_id] = (now + span, before)
            LOG.warning(
                "Group %s: %d members missing after the backend %s; keeping "
                "them up for %.1f s while they register again",
                group_id,
                len(missing),
                "lost the group" if group_lost else "came back",
                span,
            )
        if grace is None:
            return frozenset()
        held = grace[1] - frozenset(raw)
        if held:
            self._grace[group_id] = (grace[0], held)
        else:
            del self._grace[group_id]
        return held

    def _build(
        self,
        group_id: str,
        old: GroupView | None,
        raw: Mapping[str, Any],
        recovered: bool = False,
        group_lost: bool = False,
    ) -> GroupView:
        held = self._held(group_id, old, raw, recovered, group_lost)
        members: dict[str, sg_member.Member] = {}
        if old is not None:
            for member_id, known in old.members.items():
                if member_id in held:
                    members[member_id] = dataclasses.replace(
                        known, is_up=True, stale=True
                    )
                elif member_id not in raw:
                    members[member_id] = dataclasses.replace(
                        known, is_up=False, stale=False
                    )
        before = old.members if old is not None else {}
        previous = self._records.get(group_id, {})
        for member_id, record in raw.items():
            same = before.get(member_id)
            if (
                same is not None
                and same.is_up
                and not same.stale
                and previous.get(member_id, _NO_RECORD) is record
            ):
                members[member_id] = same
                continue
            caps, updated_at = sg_member.from_envelope(record)
            members[member_id] = sg_member.Member(
                id=member_id,
                group_id=group_id,
                is_up=True,
                capabilities=caps,
                updated_at=updated_at,
            )
        self._records[group_id] = raw
        return GroupView(
            group_id,
            members,
            frozenset(raw) | held,
            bool(held),
            self._clock.monotonic(),
        )

    def _publish(self, old: GroupView | None, new: GroupView) -> None:
        with self._lock:
            self._install(new)
            event = self._first_fetch.get(new.group_id)
            callbacks = list(self._watchers.get(new.group_id, ()))
        if event is not None:
            event.set()
        if old is None or old.up == new.up or not callbacks:
            return
        change = MembershipChange(
            new.group_id, new.up, new.up - old.up, old.up - new.up
        )
        for callback in callbacks:
            try:
                callback(change)
            except Exception:
                LOG.exception("Membership watcher %r failed", callback)

    def _install(self, view: GroupView) -> None:
        self._views[view.group_id] = view
        self.up_sets[view.group_id] = view.up
