"""The service group driver on tooz coordinators."""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from oslo_config import cfg

from servicegroup import conf as sg_conf
from servicegroup import (
    exceptions,
    heartbeat,
    membership,
    process,
    scheduling,
    validation,
)
from servicegroup import member as sg_member
from servicegroup.drivers import base
from servicegroup.drivers.tooz.backends import registry
from servicegroup.drivers.tooz.session import (
    ToozBackend,
    ToozMemberSession,
    ToozObserver,
)

LOG = logging.getLogger(__name__)


class ToozServiceGroupDriver(base.ServiceGroupDriver):
    """Service groups on any tooz backend that supports group membership.

    :param conf: options registered by :func:`servicegroup.conf.register_opts`.
    :param clock: runs the background tasks (a FakeClock in tests).
    :param url: overrides ``conf.servicegroup_tooz_url``.
    """

    def __init__(
        self,
        conf: cfg.ConfigOpts,
        *,
        clock: scheduling.Clock | None = None,
        url: str | None = None,
    ) -> None:
        self._timing = sg_conf.timing_from_conf(conf)
        self._backend = ToozBackend(
            url if url is not None else conf.servicegroup_tooz_url,
            self._timing,
        )
        self._clock = clock or scheduling.SystemClock()
        self._agents: dict[tuple[str, str], heartbeat.MemberAgent] = {}
        self._lock = threading.Lock()
        self._stopped = False
        self._start_local_view()
        LOG.info(
            "servicegroup on %s: report_interval %.1f s, service_down_time %.1f s",
            self._backend.redacted_url,
            self._timing.report_interval,
            self._timing.service_down_time,
        )

    def _start_local_view(self) -> None:
        self._generation = process.generation()
        self._observer = ToozObserver(self._backend)
        self._membership = membership.MembershipCache(
            self._observer.fetch, self._clock, self._timing
        )
        # Joins and leaves that the backend reports (ZooKeeper's watches)
        # reach the view at once, not at the next refresh.
        self._observer.on_change = self._membership.wake

    def _in_this_process(self) -> None:
        """Start over if this is a child forked since the driver was built.

        The child has none of the parent's threads, and the parent's
        coordinators hold the parent's sockets: they are orphaned, not
        closed, and the members they keep stay the parent's (the child never
        beats for them). The local view starts again, empty, on first use.
        """
        if self._generation == process.generation():
            return
        with process.lock():
            if self._generation == process.generation():
                return
            process.orphan(self._agents, self._observer, self._membership)
            self._agents = {}
            self._lock = threading.Lock()
            self._start_local_view()
        LOG.debug("servicegroup on %s: started over in a forked child", self)

    def __repr__(self) -> str:
        return f"<ToozServiceGroupDriver {self._backend.redacted_url}>"

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stopped

    @property
    def timing(self) -> sg_conf.Timing:
        """The timing in effect (after adjusting service_down_time)."""
        return self._timing

    def describe(self) -> Mapping[str, Any]:
        return {
            "driver": "tooz",
            "url": self._backend.redacted_url,
            "backend": self._backend.scheme,
            "endpoints": registry.endpoints(self._backend.redacted_url),
            "report_interval": self._timing.report_interval,
            "service_down_time": self._timing.service_down_time,
            "refresh_interval": self._timing.refresh_interval,
            **self._backend.effective,
            # What the server grants instead (ZooKeeper, etcd may differ).
            **self._backend.limits.describe(),
        }

    def join(
        self, member_id: str, group_id: str, capabilities: Mapping[str, Any]
    ) -> None:
        self._in_this_process()
        with self._lock:
            if self._stopped:
                raise exceptions.ServiceGroupError(
                    "the service group driver is stopped",
                    group_id=group_id,
                    member_id=member_id,
                )
            agent = self._agents.get((member_id, group_id))
            if agent is None:
                session = ToozMemberSession(self._backend, member_id, group_id)
                self._agents[(member_id, group_id)] = heartbeat.MemberAgent(
                    member_id,
                    group_id,
                    capabilities,
                    session,
                    self._clock,
                    self._timing,
                    on_change=self._membership.wake,
                )
                return
        agent.update_capabilities(capabilities)

    def update_capabilities(
        self, member_id: str, group_id: str, capabilities: Mapping[str, Any]
    ) -> None:
        self._agent(member_id, group_id).update_capabilities(capabilities)

    def leave(self, member_id: str, group_id: str) -> None:
        agent = self._agent(member_id, group_id, remove=True)
        agent.leave(self._timing.backend_timeout)

    def abandon(self, member_id: str, group_id: str) -> None:
        """Stop heartbeating for a member without leaving: a simulated crash.

        Observers see the member down after ``service_down_time``. For tests
        (``ServiceGroupFixture.crash``); a real service calls ``leave``.
        """
        self._agent(member_id, group_id, remove=True).abandon()

    def _agent(
        self, member_id: str, group_id: str, *, remove: bool = False
    ) -> heartbeat.MemberAgent:
        self._in_this_process()
        with self._lock:
            key = (member_id, group_id)
            agent = self._agents.pop(key, None) if remove else self._agents.get(key)
        if agent is None:
            raise exceptions.MemberNotJoined(
                f"member {member_id} has not joined group {group_id} here",
                group_id=group_id,
                member_id=member_id,
            )
        return agent

    def is_up(self, member_id: str, group_id: str) -> bool:
        if self._generation != process.generation():  # inline: the hot path
            self._in_this_process()
        up = self._membership.up_sets.get(group_id)
        if up is None:
            # The first question about a group costs a fetch: check the ids
            # before any traffic (later questions need no check: an invalid
            # id is simply never up).
            validation.member_id(member_id)
            validation.group_id(group_id)
            up = self._view(group_id).up
        if member_id in up:
            return True
        # Read your own writes: a member this process joined, and the
        # backend accepted, is up even before the next refresh shows it.
        agent = self._agents.get((member_id, group_id))
        return agent is not None and agent.joined

    def _view(self, group_id: str) -> membership.GroupView:
        self._in_this_process()
        if group_id in self._membership.up_sets:
            return self._membership.view(group_id)
        # The first question about a group waits at most backend_timeout
        # in all: for this process's own joins, then for the first fetch.
        deadline = self._clock.monotonic() + self._timing.backend_timeout
        self._await_local_joins(group_id, deadline)
        return self._membership.view(
            group_id, timeout=deadline - self._clock.monotonic()
        )

    def _await_local_joins(self, group_id: str, deadline: float) -> None:
        # A process that joins and then asks at once must see its own
        # members: the first fetch of a group waits (bounded) for the first
        # round of this process's agents in it.
        with self._lock:
            agents = [a for (_, g), a in self._agents.items() if g == group_id]
        for agent in agents:
            remaining = deadline - self._clock.monotonic()
            self._clock.wait(agent.first_round, max(0.0, remaining))

    def get_all(self, group_id: str) -> list[str]:
        return sorted(self._view(group_id).up)

    def get_members(self, group_id: str) -> list[sg_member.Member]:
        view = self._view(group_id)
        return [view.members[k] for k in sorted(view.members)]

    def get_updated_time(
        self, member_id: str, group_id: str
    ) -> datetime.datetime | None:
        known = self._view(group_id).members.get(member_id)
        return None if known is None else known.updated_at

    def is_registered(self, member_id: str, group_id: str) -> bool:
        self._in_this_process()
        with self._lock:
            agent = self._agents.get((member_id, group_id))
        return agent is not None and agent.joined

    def get_groups(self) -> list[str]:
        self._in_this_process()
        return self._observer.groups()

    def delete_group(self, group_id: str) -> None:
        self._in_this_process()
        self._observer.delete_group(group_id)
        self._membership.wake()

    def watch(
        self, group_id: str, callback: membership.WatchCallback
    ) -> Callable[[], None]:
        # As for any first question: this process's own joins are seen.
        self._view(group_id)
        return self._membership.watch(group_id, callback)

    def stop(self) -> None:
        self._in_this_process()
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            agents = list(self._agents.values())
            self._agents.clear()
        # All members leave at once, so one slow leave does not use up the
        # time of the others; the wait is bounded as a whole.
        for agent in agents:
            agent.request_leave()
        # One deadline for the whole stop: what is not done by then (a
        # backend that stopped answering) finishes on daemon threads.
        deadline = self._clock.monotonic() + self._timing.backend_timeout

        def remaining() -> float:
            return max(0.0, deadline - self._clock.monotonic())

        for agent in agents:
            agent.wait_left(remaining())
        self._membership.close(remaining())
        self._observer.close(remaining())
