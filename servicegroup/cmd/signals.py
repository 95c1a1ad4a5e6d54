"""Stopping long-running subcommands (``join``, ``watch``) on SIGINT or SIGTERM.

The handler only records the signal. It must not set a ``threading.Event``
or touch a queue: a handler runs on the main thread between two bytecodes,
possibly while that thread holds the very lock ``Event.set`` needs, and the
process would then hang instead of stopping. The main loop polls the flag
with short sleeps, which signals interrupt.
"""

from __future__ import annotations

import signal
import time

#: How long one sleep of :meth:`StopRequest.wait` lasts at most.
POLL = 0.05


class StopRequest:
    """Records the first SIGINT or SIGTERM received after :meth:`install`."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def install(self) -> StopRequest:
        """Handle SIGINT and SIGTERM from now on; returns self."""
        signal.signal(signal.SIGINT, self._handle)
        signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum: int, frame: object) -> None:
        if self.signum is None:
            self.signum = signum

    @property
    def requested(self) -> bool:
        """Whether a stop was asked for."""
        return self.signum is not None

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds or until asked to stop.

        Returns whether a stop was asked for.
        """
        deadline = time.monotonic() + timeout
        while self.signum is None:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(left, POLL))
        return self.signum is not None
