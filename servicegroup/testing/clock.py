"""A clock that only moves when a test says so."""

from __future__ import annotations

import threading

from servicegroup import scheduling

#: Wall-clock time a FakeClock starts at (2025-06-15T14:13:20Z), so
#: timestamps in tests are realistic and reproducible.
DEFAULT_START = 1_750_000_000.0


class _FakeTimer(scheduling.Timer):
    def __init__(
        self, clock: FakeClock, name: str, task: scheduling.Task, due: float
    ) -> None:
        self.clock = clock
        self.name = name
        self.task = task
        self.due = due
        self.cancelled = False
        self.running = False
        self.woken = False

    def run(self) -> None:
        self.running = True
        try:
            delay = scheduling.run_task_safely(self.name, self.task)
        finally:
            self.running = False
        self.due = self.clock.monotonic() + max(0.0, delay)
        if self.woken:
            self.woken = False
            self.due = self.clock.monotonic()

    def wake(self) -> None:
        if self.cancelled:
            return
        if self.running:
            self.woken = True
            return
        self.run()

    def cancel(self, timeout: float | None = None) -> None:
        self.cancelled = True


class FakeClock(scheduling.Clock):
    """Time stands still until :meth:`advance`; tasks run in the caller.

    Background tasks (heartbeats, refreshes) run inline, in due order, while
    :meth:`advance` moves time forward, and at once when the library wakes
    them (a join, the first question about a group). Nothing sleeps and no
    thread is started, so tests are deterministic and fast.
    """

    def __init__(self, start: float = DEFAULT_START) -> None:
        self._start = start
        self._now = 0.0
        self._timers: list[_FakeTimer] = []
        self._lock = threading.RLock()

    def time(self) -> float:
        return self._start + self._now

    def monotonic(self) -> float:
        return self._now

    def schedule(
        self, name: str, task: scheduling.Task, delay: float = 0.0
    ) -> scheduling.Timer:
        timer = _FakeTimer(self, name, task, self._now + max(0.0, delay))
        with self._lock:
            self._timers.append(timer)
        return timer

    def wait(self, event: threading.Event, timeout: float) -> bool:
        # Whatever the waiter waits for was done inline by a wake() already;
        # blocking would only hang the test.
        return event.is_set()

    def advance(self, seconds: float) -> None:
        """Move time forward, running every task that falls due on the way."""
        if seconds < 0:
            raise ValueError("time does not go backwards")
        target = self._now + seconds
        with self._lock:
            while True:
                self._timers = [t for t in self._timers if not t.cancelled]
                due = [t for t in self._timers if t.due <= target]
                if not due:
                    break
                timer = min(due, key=lambda t: t.due)
                self._now = max(self._now, timer.due)
                timer.run()
            self._now = target

    @property
    def pending(self) -> int:
        """How many tasks are scheduled (cancelled ones excluded)."""
        return sum(1 for t in self._timers if not t.cancelled)
