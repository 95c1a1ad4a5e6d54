"""One log line per ZooKeeper outage instead of kazoo's two per retry.

Against a dead server kazoo logs "Connecting to ..." and "Connection
dropped: ..." on every retry (about 80 lines in 15 s), for each client of
the process. servicegroup says what the outage means to its members and
views once; kazoo's first line of an outage stays (it names the cause), the
repeats are dropped until a connection is established again.
"""

from __future__ import annotations

import logging
import threading

_KAZOO_LOGGER = "kazoo.client"

#: Messages kazoo repeats on every reconnection attempt.
_REPEATED = (
    "Connecting to ",
    "Connection dropped",
    "Connection time-out",
    "Transition to CONNECTING",
    "Failed connecting to Zookeeper",
    "Zookeeper session closed",
    "Zookeeper connection lost",
)
_RECOVERED = "Zookeeper connection established"


class ReconnectNoiseFilter(logging.Filter):
    """Lets the first reconnection message of an outage through."""

    def __init__(self) -> None:
        super().__init__()
        self._in_outage = False
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        with self._lock:
            if message.startswith(_RECOVERED):
                self._in_outage = False
                return True
            if not message.startswith(_REPEATED):
                return True
            if message.startswith("Connecting to "):
                return not self._in_outage
            first = not self._in_outage
            self._in_outage = True
            return first


_installed: ReconnectNoiseFilter | None = None


def quiet_reconnects() -> None:
    """Install the filter on kazoo's logger, once per process."""
    global _installed
    if _installed is None:
        _installed = ReconnectNoiseFilter()
        logging.getLogger(_KAZOO_LOGGER).addFilter(_installed)
