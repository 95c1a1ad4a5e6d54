"""The loop that keeps one member in one group, whatever the backend does.

A :class:`MemberAgent` owns a :class:`MemberSession` (the backend side, given
by the driver) and runs one round per ``report_interval`` on the clock:
connect if needed, heartbeat, rewrite its record. When the backend answers
that the member or the group is missing (evicted after a pause, backend
restarted empty, session or lease expired) the agent joins again in the same
round. When the backend does not answer, it retries with capped exponential
backoff and jitter, forever, so a host service starts and runs while its
backend is down. Leaving and closing run on the same loop, so the session is
only ever used from one thread.
"""

from __future__ import annotations

import abc
import enum
import logging
import random
import threading
from collections.abc import Callable, Mapping
from typing import Any

from servicegroup import conf as sg_conf
from servicegroup import exceptions, member, scheduling

LOG = logging.getLogger(__name__)

#: First retry delay after a failure; doubles up to the configured cap.
INITIAL_BACKOFF = 0.1
#: After this many failed rounds in a row, the session is reset (see
#: MemberSession.reset), in case the client library is stuck in a state it
#: cannot leave.
RECONNECT_AFTER_FAILURES = 5
#: Delay reported to the clock once the agent is done (it is cancelled then).
IDLE = 3600.0


class Reset(enum.Enum):
    """What :meth:`MemberSession.reset` did, and so what the agent does next."""

    #: The connection was closed: the agent connects and joins again.
    RECONNECT = "reconnect"
    #: The connection stays open and gets going again by itself (a
    #: ZooKeeper session, whose node would go with it): the agent keeps
    #: beating on it.
    IN_PLACE = "in place"


class MemberSession(abc.ABC):
    """One member's handle on one group in the backend.

    Methods raise :class:`servicegroup.exceptions.BackendError` subclasses:
    ``GroupNotFound`` and ``MemberNotFound`` mean the backend answered.
    """

    @abc.abstractmethod
    def connect(self) -> None:
        """Open the connection (may be called again after :meth:`close`)."""

    @abc.abstractmethod
    def beat(self) -> None:
        """Tell the backend the member is alive."""

    @abc.abstractmethod
    def join(self, record: Mapping[str, Any]) -> None:
        """Join the group, creating it if needed, replacing a stale entry."""

    @abc.abstractmethod
    def refresh(self, record: Mapping[str, Any]) -> None:
        """Rewrite the member's record; raise MemberNotFound if it is gone."""

    #: Whether :meth:`confirm` can stand in for :meth:`refresh`: true for a
    #: backend where :meth:`beat` alone keeps the member's heartbeat time
    #: visible to observers, so its record needs writing only when the
    #: capabilities change. False (the default): the record is rewritten
    #: every round.
    confirms_membership: bool = False

    def confirm(self) -> None:
        """Check, without writing, that the member is still in the group.

        Only called where :attr:`confirms_membership` is true. Raises
        ``MemberNotFound`` or ``GroupNotFound`` when the member is gone.
        """
        raise NotImplementedError(f"{type(self).__name__} does not confirm")

    @abc.abstractmethod
    def leave(self) -> None:
        """Remove the member from the group."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close the connection; never raises."""

    def reset(self) -> Reset:
        """Get a client that stopped making progress going again.

        Called after :data:`RECONNECT_AFTER_FAILURES` failed rounds in a
        row. Must not remove the member: an observer would see it down while
        it is alive. The default closes the connection.
        """
        self.close()
        return Reset.RECONNECT


class _Goal(enum.Enum):
    JOINED = "joined"
    LEFT = "left"


class MemberAgent:
    """Keeps ``member_id`` in ``group_id`` until told to leave."""

    def __init__(
        self,
        member_id: str,
        group_id: str,
        capabilities: Mapping[str, Any],
        session: MemberSession,
        clock: scheduling.Clock,
        timing: sg_conf.Timing,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.member_id = member_id
        self.group_id = group_id
        self._capabilities = dict(capabilities)
        self._session = session
        self._clock = clock
        self._timing = timing
        self._goal = _Goal.JOINED
        self._connected = False
        self._joined = False
        #: The capabilities of the latest record the backend accepted
        #: (update_capabilities replaces the dict, so identity tells).
        self._written: Mapping[str, Any] | None = None
        self._failures = 0
        self._left = threading.Event()
        self._on_change = on_change
        #: Set once the first round has run, whatever its outcome: the
        #: first question about the group waits for it (briefly), so a
        #: process that joins and then asks sees its own member.
        self.first_round = threading.Event()
        self._timer = clock.schedule(
            f"servicegroup-heartbeat-{group_id}-{member_id}",
            self._round,
            timing.report_interval,
        )
        # Waking rather than scheduling with no delay lets a FakeClock run
        # the first round inline, so a test sees the member joined at once.
        self._timer.wake()

    @property
    def joined(self) -> bool:
        """Whether the backend accepted the member's latest record."""
        return self._joined

    def update_capabilities(self, capabilities: Mapping[str, Any]) -> None:
        """Store new capabilities with the next heartbeat (sent at once)."""
        self._capabilities = dict(capabilities)
        self._timer.wake()

    def leave(self, timeout: float) -> bool:
        """Remove the member and close the session.

        Waits up to ``timeout`` seconds; returns whether the backend confirmed.
        A member that could not be removed is seen down after
        ``service_down_time`` anyway.
        """
        self.request_leave()
        return self.wait_left(timeout)

    def request_leave(self) -> None:
        """Start leaving on the agent's own thread; do not wait."""
        self._goal = _Goal.LEFT
        self._timer.wake()

    def wait_left(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the leave; True once done.

        When the wait is cut short the agent still leaves (and ends its
        thread) as soon as the backend lets it.
        """
        deadline = self._clock.monotonic() + timeout
        done = self._clock.wait(self._left, timeout)
        if done:
            # What is left of the wait, not all of it again: the thread may
            # still be closing the connection to a backend that stopped
            # answering after the leave.
            self._timer.cancel(timeout=max(0.0, deadline - self._clock.monotonic()))
        return done

    def abandon(self) -> None:
        """Stop heartbeating without leaving or closing, as a crash would."""
        self._timer.cancel(timeout=0)

    def _round(self) -> float:
        try:
            return self._run_round()
        finally:
            self.first_round.set()

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    def _run_round(self) -> float:
        if self._goal is _Goal.LEFT:
            self._finish()
            self._changed()
            # Ends this thread once the round returns (cancel does not wait
            # when called from the task itself).
            self._timer.cancel(timeout=0)
            return IDLE
        was_joined = self._joined
        try:
            self._keep_joined()
        except exceptions.BackendError as exc:
            return self._failed(exc)
        if not was_joined:
            self._changed()
        if self._failures:
            LOG.info(
                "Member %s is back in group %s after %d failed attempts",
                self.member_id,
                self.group_id,
                self._failures,
            )
        self._failures = 0
        return self._timing.report_interval

    def _keep_joined(self) -> None:
        if not self._connected:
            self._session.connect()
            self._connected = True
        self._session.beat()
        capabilities = self._capabilities
        record = member.envelope(capabilities, self._clock.time())
        if not self._joined:
            self._session.join(record)
            self._joined = True
            self._written = capabilities
            LOG.info("Member %s joined group %s", self.member_id, self.group_id)
            return
        try:
            if capabilities is self._written and self._session.confirms_membership:
                self._session.confirm()
                return
            self._session.refresh(record)
            self._written = capabilities
        except (exceptions.MemberNotFound, exceptions.GroupNotFound) as exc:
            # Evicted after a pause, backend restarted empty, ZooKeeper
            # session or etcd lease expired: the member is alive, so it
            # belongs in the group again.
            self._joined = False
            LOG.warning(
                "Member %s was missing from group %s (%s); joining again",
                self.member_id,
                self.group_id,
                exc,
            )
            self._session.join(record)
            self._joined = True
            self._written = capabilities

    def _failed(self, exc: exceptions.BackendError) -> float:
        self._failures += 1
        delay = min(
            self._timing.retry_max_interval,
            INITIAL_BACKOFF * 2.0 ** min(self._failures - 1, 30),
        ) * random.uniform(0.5, 1.0)
        log = LOG.warning if self._failures == 1 else LOG.debug
        log(
            "Member %s could not report to group %s (attempt %d, retrying in "
            "%.1f s): %s",
            self.member_id,
            self.group_id,
            self._failures,
            delay,
            exc,
        )
        if (
            self._failures % RECONNECT_AFTER_FAILURES == 0
            and self._session.reset() is Reset.RECONNECT
        ):
            self._connected = False
            self._joined = False
        return delay

    def _finish(self) -> None:
        if self._connected and self._joined:
            try:
                self._session.leave()
                LOG.info("Member %s left group %s", self.member_id, self.group_id)
            except (exceptions.MemberNotFound, exceptions.GroupNotFound):
                pass
            except exceptions.BackendError as exc:
                LOG.warning(
                    "Member %s could not leave group %s (%s); it will be "
                    "seen down after service_down_time",
                    self.member_id,
                    self.group_id,
                    exc,
                )
        # Waiters are released before closing: the member is out of the
        # group already, and closing a tooz coordinator can take a second.
        self._connected = self._joined = False
        self._left.set()
        self._session.close()
