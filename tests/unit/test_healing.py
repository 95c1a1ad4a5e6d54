"""Self-healing logic, deterministic: FakeClock, fake:// backend, no sleeping.

The same behaviours are proven against real servers and real process faults
in ``tests/functional/test_healing.py`` and ``test_ha.py``; here each rule
is pinned down exactly: the backoff sequence, when a session is rebuilt,
how fast an evicted or wiped member is back, and how an observer fails
static and recovers.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from servicegroup import conf as sg_conf
from servicegroup import exceptions, heartbeat
from servicegroup.testing import FakeClock, ServiceGroupFixture

GROUP = "compute"


@pytest.fixture
def sg() -> Iterator[ServiceGroupFixture]:
    fixture = ServiceGroupFixture(
        report_interval=10.0, service_down_time=60.0, refresh_interval=1.0
    )
    fixture.setUp()
    yield fixture
    fixture.cleanUp()


def _tooz_id(member: str) -> str:
    return f"{member}@{GROUP}"


# -- a scripted session, to watch the agent's decisions -----------------------


class ScriptedSession(heartbeat.MemberSession):
    """Fails while ``failing`` is set; records every call with its time."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.failing = True
        self.calls: list[tuple[str, float]] = []

    def _call(self, name: str) -> None:
        self.calls.append((name, self.clock.monotonic()))
        if self.failing:
            raise exceptions.BackendUnavailable("scripted outage")

    def connect(self) -> None:
        self._call("connect")

    def beat(self) -> None:
        self._call("beat")

    def join(self, record: Mapping[str, Any]) -> None:
        self._call("join")

    def refresh(self, record: Mapping[str, Any]) -> None:
        self._call("refresh")

    def leave(self) -> None:
        self._call("leave")

    def close(self) -> None:
        self.calls.append(("close", self.clock.monotonic()))

    def times(self, name: str) -> list[float]:
        return [t for n, t in self.calls if n == name]


def _timing(report: float = 10.0, retry_max: float = 10.0) -> sg_conf.Timing:
    return sg_conf.Timing(
        report_interval=report,
        service_down_time=6 * report,
        refresh_interval=1.0,
        backend_timeout=5.0,
        retry_max_interval=min(retry_max, report),
    )


def _agent(
    timing: sg_conf.Timing,
) -> tuple[FakeClock, ScriptedSession, heartbeat.MemberAgent]:
    clock = FakeClock()
    session = ScriptedSession(clock)
    agent = heartbeat.MemberAgent("host1", GROUP, {}, session, clock, timing)
    return clock, session, agent


def _advance_finely(clock: FakeClock, seconds: float, step: float = 0.01) -> None:
    for _ in range(round(seconds / step)):
        clock.advance(step)


def _gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:], strict=False)]


# -- 1. backend down at start: backoff -----------------------------------------


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    random.seed(1234)
    clock, session, agent = _agent(_timing(report=10.0, retry_max=2.0))
    _advance_finely(clock, 20.0, step=0.005)
    gaps = _gaps(session.times("connect"))
    nominal = [0.1, 0.2, 0.4, 0.8, 1.6] + [2.0] * (len(gaps) - 5)
    assert len(gaps) >= 10
    for gap, expected in zip(gaps, nominal, strict=True):
        # Jitter draws from [0.5, 1] x the nominal delay (one step of slack
        # for the fake clock's resolution).
        assert expected * 0.5 - 0.01 <= gap <= expected + 0.01, (gap, expected)
    capped = gaps[5:]
    assert max(capped) <= 2.0 + 0.01
    assert len({round(g, 2) for g in capped}) > 1, "no jitter: members stampede"
    assert not agent.joined


def test_retry_cap_never_exceeds_report_interval() -> None:
    """A cap above report_interval is lowered to it (DESIGN: a recovered
    backend sees every member within one report_interval)."""
    conf_timing = _timing(report=1.0, retry_max=30.0)
    assert conf_timing.retry_max_interval == 1.0
    clock, session, _ = _agent(conf_timing)
    _advance_finely(clock, 30.0, step=0.01)
    assert max(_gaps(session.times("connect"))) <= 1.0 + 0.01


def test_agent_joins_within_the_cap_once_the_backend_answers() -> None:
    clock, session, agent = _agent(_timing(report=10.0, retry_max=3.0))
    _advance_finely(clock, 60.0, step=0.05)  # long outage: backoff at the cap
    session.failing = False
    back = clock.monotonic()
    _advance_finely(clock, 3.0, step=0.05)
    assert agent.joined
    joined_at = session.times("join")[-1]
    assert joined_at - back <= 3.0


def test_session_is_rebuilt_after_five_failed_rounds() -> None:
    clock, session, _ = _agent(_timing(report=10.0, retry_max=1.0))
    _advance_finely(clock, 2.0, step=0.01)
    closes = session.times("close")
    assert closes, "a client stuck in a bad state must be rebuilt"
    connects = session.times("connect")
    assert len([t for t in connects if t <= closes[0]]) == 5


class ResumableSession(ScriptedSession):
    """A session whose client gets going again without being closed."""

    def reset(self) -> heartbeat.Reset:
        self.calls.append(("reset", self.clock.monotonic()))
        return heartbeat.Reset.IN_PLACE


def test_a_session_that_resets_in_place_is_not_closed_or_joined_again() -> None:
    """A ZooKeeper session is reset in place (closing it would delete the
    member's node): the agent keeps beating on it, it does not reconnect
    or join again."""
    clock = FakeClock()
    session = ResumableSession(clock)
    session.failing = False
    agent = heartbeat.MemberAgent(
        "host1", GROUP, {}, session, clock, _timing(report=1.0, retry_max=1.0)
    )
    assert agent.joined
    session.failing = True
    _advance_finely(clock, 3.0, step=0.01)
    assert session.times("reset"), "no reset after five failed rounds"
    session.failing = False
    _advance_finely(clock, 1.5, step=0.01)
    assert session.times("close") == []
    assert len(session.times("connect")) == 1
    assert len(session.times("join")) == 1
    assert session.times("refresh")[-1] > session.times("reset")[0]


class ConfirmingSession(ScriptedSession):
    """A session whose beats keep the member's time (memcached's)."""

    confirms_membership = True

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.evicted = False

    def confirm(self) -> None:
        self._call("confirm")
        if self.evicted:
            self.evicted = False
            raise exceptions.MemberNotFound("evicted")


def test_record_is_written_only_when_the_capabilities_change() -> None:
    clock = FakeClock()
    session = ConfirmingSession(clock)
    session.failing = False
    agent = heartbeat.MemberAgent(
        "host1", GROUP, {"v": 1}, session, clock, _timing(report=1.0)
    )
    clock.advance(5.0)
    assert len(session.times("beat")) == 6
    assert len(session.times("confirm")) == 5
    assert session.times("refresh") == []
    agent.update_capabilities({"v": 2})
    clock.advance(1.0)
    assert len(session.times("refresh")) == 1
    clock.advance(1.0)
    assert len(session.times("refresh")) == 1  # confirmed again, not written
    session.evicted = True
    clock.advance(1.0)
    assert len(session.times("join")) == 2, "an evicted member joins again"


def test_join_returns_at_once_while_the_backend_is_down(
    sg: ServiceGroupFixture,
) -> None:
    sg.store.set_reachable(False)
    sg.api.join("host1", GROUP)  # must not raise, must not block
    sg.api.join("host2", GROUP)
    sg.advance(120.0)  # retrying all along, forever
    sg.store.set_reachable(True)
    observer = sg.new_api()
    sg.advance(sg.report_interval)  # cap = min(retry max, report_interval)
    assert observer.get_all(GROUP) == ["host1", "host2"]


# -- 2. and 3. eviction, backend wiped ------------------------------------------


def test_evicted_member_is_back_within_one_report_interval(
    sg: ServiceGroupFixture,
) -> None:
    sg.api.join("host1", GROUP)
    observer = sg.new_api()
    assert observer.is_up("host1", GROUP)
    sg.store.evict(GROUP, _tooz_id("host1"))
    sg.advance(sg.refresh_interval)
    assert not observer.is_up("host1", GROUP), "eviction seen"
    sg.advance(sg.report_interval)
    assert observer.is_up("host1", GROUP)


def test_member_paused_past_the_down_time_comes_back(sg: ServiceGroupFixture) -> None:
    """A pause: beats stop long enough for the backend to prune the member."""
    sg.api.join("host1", GROUP)
    observer = sg.new_api()
    assert observer.is_up("host1", GROUP)
    beat_at = sg.store.beats[_tooz_id("host1").encode()]
    sg.store.beats[_tooz_id("host1").encode()] = beat_at - 1000  # expired
    sg.advance(sg.refresh_interval)
    assert not observer.is_up("host1", GROUP)
    sg.advance(sg.report_interval)
    assert observer.is_up("host1", GROUP)


def test_wiped_backend_every_member_rejoins_and_observers_never_see_a_gap(
    sg: ServiceGroupFixture,
) -> None:
    ids = [f"host{i}" for i in range(5)]
    for member in ids:
        sg.api.join(member, GROUP)
    observer = sg.new_api()
    assert observer.get_all(GROUP) == ids
    sg.store.wipe()
    for _ in range(int(2 * sg.report_interval / 0.5)):
        sg.advance(0.5)
        # The group vanished: the observer holds its members while they
        # register again (recovery grace) rather than report them down.
        assert observer.get_all(GROUP) == ids
    assert sorted(m.decode() for m in sg.store.groups[GROUP.encode()]) == [
        _tooz_id(m) for m in ids
    ]
    assert not any(m.stale for m in observer.get_members(GROUP))


def test_member_that_died_during_the_loss_is_down_after_the_grace(
    sg: ServiceGroupFixture,
) -> None:
    sg.api.join("host1", GROUP)
    sg.api.join("host2", GROUP)
    observer = sg.new_api()
    assert observer.get_all(GROUP) == ["host1", "host2"]
    sg.crash("host2", GROUP)
    sg.store.wipe()
    sg.advance(sg.refresh_interval)
    held = {m.id: m for m in observer.get_members(GROUP)}
    assert held["host2"].is_up and held["host2"].stale
    sg.advance(sg.report_interval + sg.report_interval + sg.refresh_interval)
    assert observer.get_all(GROUP) == ["host1"]
    assert not any(m.stale for m in observer.get_members(GROUP))


# -- 4. same id restarted -------------------------------------------------------


def test_restarted_member_takes_over_its_stale_entry(sg: ServiceGroupFixture) -> None:
    sg.api.join("host1", GROUP, capabilities={"run": 1})
    observer = sg.new_api()
    sg.crash("host1", GROUP)  # its entry stays until service_down_time
    restarted = sg.new_api()
    restarted.join("host1", GROUP, capabilities={"run": 2})  # at once
    sg.advance(sg.refresh_interval)
    [record] = observer.get_members(GROUP)
    assert record.is_up and record.capabilities == {"run": 2}
    sg.advance(sg.service_down_time * 2)
    assert observer.is_up("host1", GROUP), "the old entry's expiry undid it"


# -- 5. graceful leave and stop ---------------------------------------------------


def test_leave_and_stop_are_seen_within_one_refresh(sg: ServiceGroupFixture) -> None:
    member = sg.new_api()
    member.join("host1", GROUP)
    member.join("host2", GROUP)
    observer = sg.new_api()
    assert observer.get_all(GROUP) == ["host1", "host2"]
    member.leave("host1", GROUP)
    sg.advance(sg.refresh_interval)
    assert observer.get_all(GROUP) == ["host2"]
    member.stop()
    sg.advance(sg.refresh_interval)
    assert observer.get_all(GROUP) == []


# -- 6. fail static -------------------------------------------------------------


def test_observer_fails_static_logs_once_and_recovers(
    sg: ServiceGroupFixture, caplog: pytest.LogCaptureFixture
) -> None:
    ids = ["host1", "host2", "host3"]
    for member in ids:
        sg.api.join(member, GROUP)
    observer = sg.new_api()
    assert observer.get_all(GROUP) == ids
    caplog.set_level(logging.INFO, logger="servicegroup.membership")
    sg.store.set_reachable(False)
    # Far longer than service_down_time: the view is still whole.
    for _ in range(int(3 * sg.service_down_time / sg.refresh_interval)):
        sg.advance(sg.refresh_interval)
        assert observer.get_all(GROUP) == ids
    view = observer.get_members(GROUP)
    assert all(m.is_up and m.stale for m in view)
    cannot = [r for r in caplog.records if "Cannot refresh" in r.getMessage()]
    assert len(cannot) == 1, "logged once per outage, not once per refresh"
    assert cannot[0].levelno == logging.WARNING

    sg.store.set_reachable(True)
    # Every member's beat expired meanwhile: the first reads see nobody, yet
    # the observer holds them until they are back (one report_interval).
    for _ in range(int(sg.report_interval / sg.refresh_interval) + 1):
        sg.advance(sg.refresh_interval)
        assert observer.get_all(GROUP) == ids
    assert not any(m.stale for m in observer.get_members(GROUP))
    assert any("refreshed again" in r.getMessage() for r in caplog.records)


def test_first_question_while_unreachable_answers_empty_and_stale(
    sg: ServiceGroupFixture,
) -> None:
    sg.api.join("host1", GROUP)
    sg.store.set_reachable(False)
    observer = sg.new_api()
    assert not observer.is_up("host1", GROUP)  # no last good view to use
    sg.store.set_reachable(True)
    sg.advance(sg.refresh_interval)
    assert observer.is_up("host1", GROUP)


def test_graceful_leave_outside_an_outage_is_not_held(
    sg: ServiceGroupFixture,
) -> None:
    """The recovery grace applies after an outage or a lost group only."""
    sg.api.join("host1", GROUP)
    sg.api.join("host2", GROUP)
    observer = sg.new_api()
    assert observer.get_all(GROUP) == ["host1", "host2"]
    sg.api.leave("host1", GROUP)
    sg.advance(sg.refresh_interval)
    assert observer.get_all(GROUP) == ["host2"]


def test_an_outage_during_a_grace_gets_a_grace_of_its_own(
    sg: ServiceGroupFixture,
) -> None:
    sg.api.join("host1", GROUP)
    sg.api.join("host2", GROUP)
    observer = sg.new_api()
    assert observer.get_all(GROUP) == ["host1", "host2"]
    sg.crash("host2", GROUP)  # never comes back: its grace never ends early
    sg.store.wipe()
    sg.advance(sg.refresh_interval)
    assert observer.get_all(GROUP) == ["host1", "host2"]  # in its grace
    sg.store.set_reachable(False)
    sg.advance(2 * sg.service_down_time)  # outlives that grace
    sg.store.set_reachable(True)
    for _ in range(int(sg.report_interval / sg.refresh_interval)):
        sg.advance(sg.refresh_interval)
        assert observer.is_up("host1", GROUP), "host1 had no time to report"
    sg.advance(2 * sg.report_interval)
    assert observer.get_all(GROUP) == ["host1"]


def test_member_back_in_a_grace_then_leaving_is_not_held(
    sg: ServiceGroupFixture,
) -> None:
    """The grace holds members until they are found again, not after."""
    sg.api.join("host1", GROUP)
    sg.api.join("host2", GROUP)
    observer = sg.new_api()
    assert observer.get_all(GROUP) == ["host1", "host2"]
    sg.crash("host2", GROUP)  # never comes back: the grace runs its course
    sg.store.wipe()
    sg.advance(sg.refresh_interval)
    sg.advance(sg.report_interval)  # host1 is back
    assert observer.get_all(GROUP) == ["host1", "host2"]
    sg.api.leave("host1", GROUP)
    sg.advance(sg.refresh_interval)
    assert observer.get_all(GROUP) == ["host2"]  # still in its grace


def test_an_outage_during_a_grace_is_logged(
    sg: ServiceGroupFixture, caplog: pytest.LogCaptureFixture
) -> None:
    sg.api.join("host1", GROUP)
    sg.api.join("host2", GROUP)
    observer = sg.new_api()
    assert observer.get_all(GROUP) == ["host1", "host2"]
    sg.crash("host2", GROUP)
    sg.store.wipe()
    sg.advance(sg.refresh_interval)
    assert any(m.stale for m in observer.get_members(GROUP))  # in its grace
    caplog.set_level(logging.WARNING, logger="servicegroup.membership")
    sg.store.set_reachable(False)
    for _ in range(3):
        sg.advance(sg.refresh_interval)
    cannot = [r for r in caplog.records if "Cannot refresh" in r.getMessage()]
    assert len(cannot) == 1
