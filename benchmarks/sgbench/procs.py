"""Worker processes hosting members, driven over pipes (see worker.py)."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import IO, Any

_HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Worker:
    """One ``sgbench.worker`` process and the events it printed."""

    def __init__(
        self,
        spec: dict[str, Any],
        *,
        module: str = "sgbench.worker",
        stderr: IO[Any] | None = None,
    ) -> None:
        """Start ``python -m module SPEC_JSON``.

        :param module: the process's main module (``sgbench.soak_member``
            for the soak's one-member processes).
        :param stderr: where its stderr goes (inherited when None).
        """
        env = dict(os.environ)
        env["PYTHONPATH"] = _HERE + os.pathsep + env.get("PYTHONPATH", "")
        self.members: list[str] = (
            list(spec["members"]) if "members" in spec else [spec["member"]]
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=env,
            # Its own session: a Ctrl-C in the terminal reaches the parent,
            # which then stops its workers in order.
            start_new_session=True,
        )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.last: dict[str, dict[str, Any]] = {}
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            self.last[event["event"]] = event
            self.events.put(event)

    def wait_event(self, *names: str, timeout: float) -> dict[str, Any] | None:
        """The first event with one of ``names`` (or None at the deadline)."""
        for name in names:
            if name in self.last:
                return self.last[name]
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.proc.poll() is not None and self.events.empty():
                return None
            try:
                event = self.events.get(timeout=min(remaining, 0.2))
            except queue.Empty:
                continue
            if event["event"] in names:
                return event

    def send(self, word: str) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(word + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def terminate(self) -> None:
        """SIGTERM: the member leaves gracefully."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: a crash."""
        if self.proc.poll() is None:
            self.proc.kill()

    def close(self, timeout: float) -> None:
        """Ask for a graceful stop; kill what is left after ``timeout``."""
        self.send("stop")
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass


def spawn(
    url: str,
    group: str,
    members: Sequence[str],
    per_worker: int,
    *,
    report_interval: float,
    service_down_time: float,
    join_timeout: float,
    settle: float = 1.0,
) -> list[Worker]:
    """Workers hosting ``members``, at most ``per_worker`` each."""
    workers = []
    for start in range(0, len(members), per_worker):
        workers.append(
            Worker(
                {
                    "url": url,
                    "group": group,
                    "members": list(members[start : start + per_worker]),
                    "report_interval": report_interval,
                    "service_down_time": service_down_time,
                    "join_timeout": join_timeout,
                    "settle": settle,
                }
            )
        )
    return workers


def wait_ready(workers: Sequence[Worker], timeout: float) -> bool:
    """Whether every worker finished importing within ``timeout``."""
    deadline = time.monotonic() + timeout
    for worker in workers:
        remaining = max(0.0, deadline - time.monotonic())
        if worker.wait_event("ready", timeout=remaining) is None:
            return False
    return True


def close_all(workers: Sequence[Worker], timeout: float) -> None:
    """Stop every worker, gracefully first, within about ``timeout``."""
    for worker in workers:
        worker.send("stop")
    deadline = time.monotonic() + timeout
    for worker in workers:
        worker.close(max(0.1, deadline - time.monotonic()))
