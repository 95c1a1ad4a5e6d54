"""kazoo's reconnection chatter: one line per outage."""

from __future__ import annotations

import logging

from servicegroup.drivers.tooz.kazoo_logs import ReconnectNoiseFilter


def _record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(
        "kazoo.client", logging.WARNING, "x", 1, message, args, None
    )


def test_one_line_per_outage() -> None:
    quiet = ReconnectNoiseFilter()
    retries = [
        _record("Connecting to %s:%s", "127.0.0.1", 2181),
        _record("Connection dropped: %s", "refused"),
        _record("Transition to CONNECTING"),
    ] * 40
    passed = [r.getMessage() for r in retries if quiet.filter(r)]
    assert passed == ["Connecting to 127.0.0.1:2181", "Connection dropped: refused"]
    assert quiet.filter(_record("Zookeeper connection established, state: %s", "C"))
    # The next outage is reported again.
    assert quiet.filter(_record("Connection dropped: %s", "reset"))
    assert quiet.filter(_record("Session has expired"))  # not a retry: kept
