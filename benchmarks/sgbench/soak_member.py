"""One soak member in its own process: ``python -m sgbench.soak_member SPEC``.

The soak (``soak.py``) runs each member id in a process of its own, as a
host service would, and drives it:

* stdin, one word a line: ``leave`` (``API.leave``, the process stays),
  ``join`` (join again, with a new join number in the capabilities);
* SIGTERM: ``API.stop()``, then exit (what a host service does on a
  graceful shutdown); SIGSTOP / SIGCONT / SIGKILL from outside as they are.

It prints one JSON object a line on stdout, each with ``mono``, this
host's ``time.monotonic()`` (the same clock in every process on Linux), so
the soak times events where they happened, not when it read them:
``ready``, ``joined`` (``join`` returned; ``seq`` is the join number, also
in the capabilities, with the pid, so an observer tells this join's record
from an older one under the same id), ``left`` (``leave`` returned),
``term`` (SIGTERM seen) and ``stopped`` (``API.stop()`` returned; its
``seconds``). Library logs go to stderr (a file per member, kept by the
soak). For post-mortems: SIGUSR1 dumps every thread's stack to stderr, and
so does a stop, or an exit after it, that takes longer than the spec's
``dump_after`` seconds.
"""

from __future__ import annotations

import faulthandler
import json
import logging
import os
import signal
import sys
import threading
import time
from typing import Any

import servicegroup
from servicegroup import exceptions
from sgbench import backends


def _emit(event: str, **fields: Any) -> None:
    sys.stdout.write(
        json.dumps(
            {"event": event, "mono": time.monotonic(), "wall": time.time(), **fields}
        )
        + "\n"
    )
    sys.stdout.flush()


#: Signals the command thread leaves to the main thread (see main).
_HOST_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1}


class _Member:
    """The one member of this process; joins carry a join number."""

    def __init__(self, api: servicegroup.API, member: str, group: str) -> None:
        self.api, self.member, self.group = api, member, group
        self.seq = 0

    def join(self) -> None:
        self.seq += 1
        self.api.join(
            self.member,
            self.group,
            capabilities={"pid": os.getpid(), "seq": self.seq},
        )
        _emit("joined", seq=self.seq)

    def serve_commands(self) -> None:
        """Run the soak's commands until stdin closes."""
        for line in sys.stdin:
            word = line.strip()
            if word == "leave":
                started = time.monotonic()
                try:
                    self.api.leave(self.member, self.group)
                except exceptions.MemberNotJoined:
                    pass  # the soak asked twice: nothing to leave
                _emit("left", seconds=time.monotonic() - started)
            elif word == "join":
                self.join()
        # The soak went away: stop as on SIGTERM.
        os.kill(os.getpid(), signal.SIGTERM)


def main(argv: list[str]) -> int:
    spec = json.loads(argv[1])
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s.%(msecs)03d %(process)d %(threadName)s %(name)s "
        "%(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    term = threading.Event()
    termed_at: list[float] = []

    def on_sigterm(signum: int, frame: object) -> None:
        termed_at.append(time.monotonic())
        term.set()

    signal.signal(signal.SIGTERM, on_sigterm)
    conf = backends.make_conf(
        spec["url"],
        report_interval=spec["report_interval"],
        service_down_time=spec["service_down_time"],
        refresh_interval=spec["refresh_interval"],
        backend_timeout=spec["backend_timeout"],
    )
    api = servicegroup.API(conf=conf)
    _emit("ready", pid=os.getpid())
    member = _Member(api, spec["member"], spec["group"])
    # The first join from the main thread, as a host service does: the
    # library's threads start from there (a thread inherits the signal
    # mask of the thread that starts it).
    member.join()
    # The commands run on a thread of their own that, as a careful host's
    # threads do, leaves signals to the main thread (it inherits the mask
    # it is started with): whether a SIGTERM reaches the handler is then
    # up to the library's threads alone.
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _HOST_SIGNALS)
    try:
        threading.Thread(
            target=member.serve_commands, name="commands", daemon=True
        ).start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    # Like a host service's main thread (oslo.service's launcher waits the
    # same way): no timeout, so only the SIGTERM handler ends the wait.
    term.wait()
    _emit("term", at=termed_at[0])
    faulthandler.dump_traceback_later(spec["dump_after"])
    stopping = time.monotonic()
    api.stop()
    faulthandler.cancel_dump_traceback_later()
    _emit("stopped", seconds=time.monotonic() - stopping)
    # Whatever holds up the interpreter's exit from here shows in the log.
    faulthandler.dump_traceback_later(spec["dump_after"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
