"""``servicegroup watch GROUP``: follow a group live.

On a terminal (and ``--format table``) the table is redrawn in place with
the latest events under it; anywhere else each event is one line (text or
JSON Lines), written as it happens, so ``watch`` can feed a log or a
script. Events come from the library's watcher (``API.watch``) on its
refresh thread; they are handed to the main thread through a queue so
output is written from one thread only.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import queue
from collections.abc import Callable
from typing import IO

from oslo_config import cfg

from servicegroup import member as sg_member
from servicegroup import membership, validation
from servicegroup.cmd import backend as sg_backend
from servicegroup.cmd import errors, render, signals

#: Events kept under the table on a terminal.
RECENT_EVENTS = 8

#: Longest wait for a change before looking at the stop request again.
POLL = 0.2


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


class Watcher:
    """Turns membership changes and staleness into events and output."""

    def __init__(
        self,
        backend: sg_backend.Backend,
        group_id: str,
        out: IO[str],
        fmt: str,
    ) -> None:
        self._backend = backend
        self._group = group_id
        self._out = out
        self._json = fmt == "json"
        self.redraws = fmt == "table" and render.is_terminal(out)
        self._style = render.Style.for_stream(out)
        self._changes: queue.Queue[
            tuple[datetime.datetime, membership.MembershipChange]
        ]
        self._changes = queue.Queue()
        self._since: dict[str, datetime.datetime] = {}
        self._recent: collections.deque[str] = collections.deque(maxlen=RECENT_EVENTS)
        self._stale = False

    def _on_change(self, change: membership.MembershipChange) -> None:
        # On the library's refresh thread: stamp it now, write nothing.
        self._changes.put((_now(), change))

    def run(self, stop: signals.StopRequest) -> None:
        """Report until ``stop`` is set."""
        api = self._backend.api
        unwatch: Callable[[], None] = self._backend.call(
            lambda: api.watch(self._group, self._on_change),
            f"reading group {self._group}",
        )
        try:
            members = api.get_members(self._group)
            self._emit(
                render.Event(
                    _now(),
                    self._group,
                    "snapshot",
                    None,
                    tuple(m.id for m in members if m.is_up),
                )
            )
            interval = float(self._backend.settings.get("refresh_interval", 1.0))
            while not stop.requested:
                try:
                    when, change = self._changes.get(timeout=min(interval, POLL))
                except queue.Empty:
                    pass
                else:
                    for event in render.events_from_change(
                        when,
                        change.group_id,
                        change.members,
                        change.joined,
                        change.left,
                    ):
                        self._since[event.member or ""] = when
                        self._emit(event)
                members = api.get_members(self._group)
                self._check_stale(members)
                if self.redraws:
                    self._draw(members)
        finally:
            unwatch()

    def _check_stale(self, members: list[sg_member.Member]) -> None:
        stale = any(m.stale for m in members)
        if stale != self._stale:
            self._stale = stale
            up = tuple(m.id for m in members if m.is_up)
            kind = "stale" if stale else "fresh"
            self._emit(render.Event(_now(), self._group, kind, None, up))

    def _emit(self, event: render.Event) -> None:
        line = render.event_json(event) if self._json else render.event_line(event)
        if self.redraws:
            self._recent.append(line)
            self._draw(self._backend.api.get_members(self._group))
        else:
            self._out.write(f"{line}\n")
            self._out.flush()

    def _draw(self, members: list[sg_member.Member]) -> None:
        now = _now()
        up = sum(1 for m in members if m.is_up)
        header = (
            f"Group {self._group} on {self._backend.url}: {up} up, "
            f"{len(members) - up} down at {render.clock_time(now)} "
            "(Ctrl-C to stop)"
        )
        lines = [self._style(header, render.BOLD), ""]
        if members:
            lines += render.member_table(members, now, self._since, self._style)
        else:
            lines.append("No member has been seen yet.")
        lines += ["", "Recent events:", *(f"  {e}" for e in self._recent)]
        # Home, each line cleared to its end, then the rest of the screen:
        # no flicker from clearing the whole screen first.
        text = "".join(f"{line}\x1b[K\n" for line in lines)
        self._out.write(f"\x1b[H{text}\x1b[J")
        self._out.flush()


def watch(args: argparse.Namespace, conf: cfg.ConfigOpts, out: IO[str]) -> int:
    """Follow a group until SIGINT or SIGTERM."""
    group_id = validation.group_id(args.group)
    stop = signals.StopRequest().install()
    with sg_backend.open_backend(conf) as backend:
        backend.require_group(group_id)
        watcher = Watcher(backend, group_id, out, args.format)
        if watcher.redraws:
            out.write("\x1b[H\x1b[2J")
        watcher.run(stop)
    return errors.ExitCode.OK
