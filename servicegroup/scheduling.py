"""Clocks and periodic background tasks.

Everything the library does in the background (heartbeats, refreshing the
local view of a group) is a *task*: a callable that does one round of work and
returns how many seconds to wait before the next round. A :class:`Clock`
runs tasks. :class:`SystemClock` gives each task a daemon thread;
:class:`servicegroup.testing.FakeClock` runs them inline when a test advances
time, which makes timing behaviour deterministic without sleeping.

Background threads start with every asynchronous signal blocked
(:func:`start_thread`), so that a signal sent to the process always reaches
one of the host's threads, where its handler can run.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator

from servicegroup import exceptions, process

LOG = logging.getLogger(__name__)

#: One round of background work; returns the delay before the next round.
Task = Callable[[], float]

#: Delay before a task that raised runs again (it should not raise at all).
FAILED_TASK_DELAY = 1.0


class Timer(abc.ABC):
    """Handle of a scheduled task."""

    @abc.abstractmethod
    def wake(self) -> None:
        """Run the task as soon as possible instead of after its delay."""

    @abc.abstractmethod
    def cancel(self, timeout: float | None = None) -> None:
        """Stop running the task; wait up to ``timeout`` for a running round."""


class Clock(abc.ABC):
    """Tells the time and runs periodic tasks."""

    @abc.abstractmethod
    def time(self) -> float:
        """Wall-clock seconds since the epoch (what timestamps record)."""

    @abc.abstractmethod
    def monotonic(self) -> float:
        """Seconds from an arbitrary origin, never going back (for delays)."""

    @abc.abstractmethod
    def schedule(self, name: str, task: Task, delay: float = 0.0) -> Timer:
        """Run ``task`` after ``delay`` seconds, then after what it returns."""

    @abc.abstractmethod
    def wait(self, event: threading.Event, timeout: float) -> bool:
        """Wait for ``event`` up to ``timeout`` seconds; True if it is set."""


#: Signals a fault raises in the thread that caused it, and those nothing
#: can block: never blocked (faulthandler must still see a crash).
_SYNCHRONOUS_SIGNALS = frozenset(
    getattr(signal, name)
    for name in (
        "SIGSEGV",
        "SIGBUS",
        "SIGFPE",
        "SIGILL",
        "SIGTRAP",
        "SIGSYS",
        "SIGABRT",
        "SIGKILL",
        "SIGSTOP",
    )
    if hasattr(signal, name)
)


def _green_threads() -> bool:
    # Under eventlet's monkey-patching a "thread" is a greenlet on the
    # calling OS thread: it has no signal mask of its own to set.
    patcher = sys.modules.get("eventlet.patcher")
    return patcher is not None and bool(patcher.is_monkey_patched("thread"))


@contextlib.contextmanager
def host_signals_blocked() -> Iterator[None]:
    """Block the asynchronous signals in this thread, for threads it starts.

    A thread inherits the signal mask of the thread that starts it, so
    threads started in the block (ours, and those a client library starts
    from them, such as kazoo's) never take a signal meant for the host
    service. Why it matters: the kernel hands a signal sent to the process
    (SIGTERM, SIGINT, SIGHUP) to any thread that does not block it, and it
    passes the main thread over while that thread is stopped or still
    waking up, which is the case for a SIGTERM sent with SIGCONT to a
    paused process (what systemd does). CPython runs the Python handler
    only in the main thread, and does not wake a main thread that waits
    without a timeout (``Event.wait()``, ``Thread.join()``): the host's
    SIGTERM handler, which calls ``API.stop()``, never ran, and the member
    went on beating, seen up, in a process that never exited (issue 12).
    Blocked here, such a signal stays pending until a host thread takes it.

    A no-op where there is no ``pthread_sigmask`` and under eventlet.
    """
    if not hasattr(signal, "pthread_sigmask") or _green_threads():
        yield
        return
    blocked = set(signal.valid_signals()) - _SYNCHRONOUS_SIGNALS
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def start_thread(thread: threading.Thread) -> None:
    """Start a background thread that leaves signals to the host's threads.

    See :func:`host_signals_blocked`.
    """
    with host_signals_blocked():
        thread.start()


def run_task_safely(name: str, task: Task) -> float:
    """Run one round of ``task``; a task that raises is retried, not lost."""
    try:
        return task()
    except Exception:
        LOG.exception("Background task %s failed; retrying", name)
        return FAILED_TASK_DELAY


class _ThreadTimer(Timer):
    def __init__(self, name: str, task: Task, delay: float) -> None:
        self._task = task
        self._wakeup = threading.Event()
        self._cancelled = False
        self._thread = threading.Thread(
            target=self._run, args=(delay,), name=name, daemon=True
        )
        try:
            start_thread(self._thread)
        except RuntimeError as exc:
            # "can't start new thread": the process or the host ran out of
            # threads (kernel.pid_max, ulimit -u). Say so in our own terms.
            raise exceptions.ServiceGroupError(
                f"cannot start the background thread {name}: {exc}; the "
                "process has too many threads for this host's limits"
            ) from exc

    def _run(self, delay: float) -> None:
        born_in = process.generation()
        while True:
            self._wakeup.wait(max(0.0, delay))
            self._wakeup.clear()
            # Under eventlet a fork copies green threads into the child: the
            # parent's tasks must not run there, on the parent's sockets.
            if self._cancelled or process.generation() != born_in:
                return
            delay = run_task_safely(self._thread.name, self._task)

    def wake(self) -> None:
        self._wakeup.set()

    def cancel(self, timeout: float | None = None) -> None:
        self._cancelled = True
        self._wakeup.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)


class SystemClock(Clock):
    """The real time; each task runs on its own daemon thread."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def schedule(self, name: str, task: Task, delay: float = 0.0) -> Timer:
        return _ThreadTimer(name, task, delay)

    def wait(self, event: threading.Event, timeout: float) -> bool:
        return event.wait(timeout)
