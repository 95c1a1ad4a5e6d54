"""The FakeClock runs tasks in due order, only when told."""

from __future__ import annotations

import threading

import pytest

from servicegroup.testing import FakeClock


def test_tasks_run_in_due_order_and_reschedule() -> None:
    clock = FakeClock()
    runs: list[tuple[str, float]] = []
    clock.schedule("a", lambda: runs.append(("a", clock.monotonic())) or 2.0, 2.0)
    clock.schedule("b", lambda: runs.append(("b", clock.monotonic())) or 3.0, 3.0)
    clock.advance(6.0)
    assert runs == [("a", 2.0), ("b", 3.0), ("a", 4.0), ("a", 6.0), ("b", 6.0)]
    assert clock.monotonic() == 6.0


def test_wake_runs_inline_and_cancel_stops() -> None:
    clock = FakeClock()
    runs: list[float] = []
    timer = clock.schedule("t", lambda: runs.append(clock.monotonic()) or 5.0, 5.0)
    timer.wake()
    assert runs == [0.0]
    timer.cancel()
    clock.advance(20)
    assert runs == [0.0]
    assert clock.pending == 0


def test_a_task_that_raises_is_retried() -> None:
    clock = FakeClock()
    calls: list[float] = []

    def task() -> float:
        calls.append(clock.monotonic())
        raise RuntimeError("boom")

    clock.schedule("t", task, 0.5)
    clock.advance(2.0)
    assert calls == [0.5, 1.5]


def test_time_only_moves_forward() -> None:
    clock = FakeClock(start=100.0)
    assert clock.time() == 100.0
    clock.advance(1.5)
    assert clock.time() == 101.5
    with pytest.raises(ValueError):
        clock.advance(-1)
    event = threading.Event()
    assert clock.wait(event, 10) is False
    event.set()
    assert clock.wait(event, 10) is True
