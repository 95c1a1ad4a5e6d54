"""How the command shows members, groups and events: tables, JSON, lines.

Everything here is a pure function of its arguments (the current time is
passed in), so it is unit-tested without a backend. Colour and in-place
redrawing are only used on a terminal; piped output is plain text that
``grep`` and ``awk`` can read, or JSON with ``--format json``.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any

from servicegroup import member as sg_member

FORMATS = ("table", "json")

# SGR colour codes.
GREEN = "32"
RED = "31"
YELLOW = "33"
BOLD = "1"
DIM = "2"


def is_terminal(stream: IO[str]) -> bool:
    """Whether ``stream`` is an interactive terminal we may redraw."""
    try:
        return stream.isatty() and os.environ.get("TERM", "") != "dumb"
    except (AttributeError, ValueError):
        return False


@dataclasses.dataclass(frozen=True)
class Style:
    """Colours for a terminal; a no-op for pipes and when NO_COLOR is set."""

    color: bool = False

    @classmethod
    def for_stream(cls, stream: IO[str]) -> Style:
        """Colour only on a terminal, and never when NO_COLOR is set."""
        return cls(color=is_terminal(stream) and not os.environ.get("NO_COLOR"))

    def __call__(self, text: str, sgr: str | None) -> str:
        if not self.color or not sgr or not text:
            return text
        return f"\x1b[{sgr}m{text}\x1b[0m"


@dataclasses.dataclass(frozen=True)
class Cell:
    """A table cell: its text and an optional colour."""

    text: str
    sgr: str | None = None


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[str | Cell]],
    style: Style = Style(),
) -> list[str]:
    """Lines of a left-aligned table, columns two spaces apart.

    Widths are computed on the plain text, so colours do not break the
    alignment; lines carry no trailing spaces.
    """
    cells = [[c if isinstance(c, Cell) else Cell(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell.text))
    lines = []
    head = [Cell(h, BOLD) for h in headers]
    for row in [head, *cells]:
        parts = []
        for index, cell in enumerate(row):
            last = index == len(row) - 1
            pad = "" if last else " " * (widths[index] - len(cell.text))
            parts.append(style(cell.text, cell.sgr) + pad)
        lines.append("  ".join(parts).rstrip())
    return lines


# -- values -------------------------------------------------------------------


def capabilities_text(capabilities: Mapping[str, Any]) -> str:
    """``key=value`` pairs sorted by key; non-strings as compact JSON."""
    if not capabilities:
        return "-"
    parts = []
    for key in sorted(capabilities):
        value = capabilities[key]
        shown = value if isinstance(value, str) else compact_json(value)
        parts.append(f"{key}={shown}")
    return " ".join(parts)


def compact_json(value: object) -> str:
    """JSON without spaces; anything JSON cannot hold becomes its str()."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def seconds(value: float) -> str:
    """A duration an operator reads at a glance: ``0.21 s``, ``42 s``."""
    if value < 10:
        return f"{value:.2f} s"
    if value < 120:
        return f"{value:.0f} s"
    if value < 7200:
        return f"{value / 60:.0f} min"
    if value < 172800:
        return f"{value / 3600:.0f} h"
    return f"{value / 86400:.0f} d"


def setting(value: float) -> str:
    """A configured number of seconds as written: ``0.5 s``, ``60 s``."""
    return f"{value:g} s"


def age(when: datetime.datetime | None, now: datetime.datetime) -> str:
    """How long ago ``when`` was: ``0.42 s ago``; ``-`` when unknown.

    A time slightly in the future (clocks of two hosts differ) reads as
    ``just now`` rather than a negative age.
    """
    if when is None:
        return "-"
    delta = (now - when).total_seconds()
    if delta < 0.01:
        return "just now"
    return f"{seconds(delta)} ago"


def clock_time(when: datetime.datetime | None) -> str:
    """Local wall-clock time with milliseconds: ``12:00:01.234``."""
    if when is None:
        return "-"
    return when.astimezone().strftime("%H:%M:%S.%f")[:-3]


def iso(when: datetime.datetime | None) -> str | None:
    """ISO 8601 in UTC with milliseconds and a ``Z``; None stays None."""
    if when is None:
        return None
    utc = when.astimezone(datetime.timezone.utc)
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def thousands(value: int) -> str:
    """``1,000``."""
    return f"{value:,}"


# -- members ------------------------------------------------------------------


def state(member: sg_member.Member) -> str:
    """``up`` or ``down``, with ``(stale)`` when the view is not fresh."""
    text = "up" if member.is_up else "down"
    return f"{text} (stale)" if member.stale else text


def state_cell(member: sg_member.Member) -> Cell:
    """The state, green when up, red when down, yellow when stale."""
    if member.stale:
        return Cell(state(member), YELLOW)
    return Cell(state(member), GREEN if member.is_up else RED)


def member_table(
    members: Sequence[sg_member.Member],
    now: datetime.datetime,
    since: Mapping[str, datetime.datetime] | None = None,
    style: Style = Style(),
    absolute: bool = False,
) -> list[str]:
    """The members as a table.

    :param since: when this observer saw each member change state. Only a
        long-running observer (``watch``, the demo) knows it, so the SINCE
        column is shown only when given.
    :param absolute: also show the latest heartbeat as a time (ISO 8601,
        UTC) next to its age, for output that is read later or compared
        with logs (``members``).
    """
    headers = ["MEMBER", "STATE"]
    if since is not None:
        headers.append("SINCE")
    headers.append("LAST HEARTBEAT")
    if absolute:
        headers.append("UPDATED AT (UTC)")
    headers.append("CAPABILITIES")
    rows = []
    for member in members:
        row: list[str | Cell] = [member.id, state_cell(member)]
        if since is not None:
            row.append(clock_time(since.get(member.id)))
        row.append(age(member.updated_at, now))
        if absolute:
            row.append(iso(member.updated_at) or "-")
        row.append(capabilities_text(member.capabilities))
        rows.append(row)
    return table(headers, rows, style)


def member_json(member: sg_member.Member) -> dict[str, Any]:
    """One member as a JSON-ready mapping."""
    return {
        "id": member.id,
        "group": member.group_id,
        "up": member.is_up,
        "stale": member.stale,
        "updated_at": iso(member.updated_at),
        "capabilities": dict(member.capabilities),
    }


def members_document(
    url: str, group_id: str, members: Sequence[sg_member.Member]
) -> dict[str, Any]:
    """What ``members --format json`` prints."""
    return {
        "url": url,
        "group": group_id,
        "members": [member_json(m) for m in members],
    }


def group_table(up_by_group: Mapping[str, Sequence[str]]) -> list[str]:
    """Groups with how many members are up and which."""
    rows = [
        [group, str(len(up)), " ".join(up) or "-"]
        for group, up in sorted(up_by_group.items())
    ]
    return table(["GROUP", "UP", "MEMBERS UP"], rows)


def groups_document(
    url: str, up_by_group: Mapping[str, Sequence[str]]
) -> dict[str, Any]:
    """What ``groups --format json`` prints."""
    return {
        "url": url,
        "groups": [
            {"group": group, "up": list(up)}
            for group, up in sorted(up_by_group.items())
        ],
    }


def dumps(document: object) -> str:
    """JSON for humans and ``jq``: sorted keys, two-space indent."""
    return json.dumps(document, indent=2, sort_keys=True, default=str)


# -- events -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Event:
    """Something ``watch`` reports: a member going up or down, and more.

    :ivar kind: ``snapshot`` (the group when watching starts), ``up``,
        ``down``, ``stale`` (the backend stopped answering this observer;
        the view is its last good one) or ``fresh`` (answering again).
    :ivar member: the member concerned, for ``up`` and ``down``.
    :ivar up: ids of the members up after the event.
    """

    time: datetime.datetime
    group_id: str
    kind: str
    member: str | None
    up: tuple[str, ...]


def event_line(event: Event) -> str:
    """One line per event, for pipes: time, group, what happened, who is up."""
    stamp = iso(event.time)
    who = ", ".join(event.up) if event.up else "none"
    if event.kind == "snapshot":
        return f"{stamp} {event.group_id} snapshot: {len(event.up)} up: {who}"
    if event.kind in ("up", "down"):
        return (
            f"{stamp} {event.group_id} {event.kind} {event.member} "
            f"({len(event.up)} up: {who})"
        )
    if event.kind == "stale":
        return (
            f"{stamp} {event.group_id} stale: the backend does not answer; "
            "showing the last good view"
        )
    return f"{stamp} {event.group_id} {event.kind}: the backend answers again"


def event_json(event: Event) -> str:
    """One event as one line of JSON (JSON Lines)."""
    document: dict[str, Any] = {
        "time": iso(event.time),
        "group": event.group_id,
        "event": event.kind,
        "up": list(event.up),
    }
    if event.member is not None:
        document["member"] = event.member
    return json.dumps(document, sort_keys=True)


def events_from_change(
    time: datetime.datetime,
    group_id: str,
    up: Iterable[str],
    joined: Iterable[str],
    left: Iterable[str],
) -> list[Event]:
    """One event per member that went down or up, in that order, by id."""
    members = tuple(sorted(up))
    downs = [Event(time, group_id, "down", m, members) for m in sorted(left)]
    ups = [Event(time, group_id, "up", m, members) for m in sorted(joined)]
    return downs + ups


# -- terminal -----------------------------------------------------------------


class LiveArea:
    """A block of lines redrawn in place on a terminal.

    Lines printed with :meth:`print` scroll above the block. On anything
    but a terminal :meth:`update` draws nothing, so piped output only gets
    the permanent lines.
    """

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._live = is_terminal(stream)
        self._drawn = 0
        self._lines: list[str] = []

    @property
    def live(self) -> bool:
        """Whether the block is redrawn (the stream is a terminal)."""
        return self._live

    def _erase(self) -> str:
        if not self._drawn:
            return ""
        # Up to the first line of the block, then clear to the end.
        return f"\x1b[{self._drawn}F\x1b[J"

    def update(self, lines: Sequence[str]) -> None:
        """Replace the block with ``lines`` (terminal only)."""
        if not self._live:
            return
        self._lines = list(lines)
        text = "".join(f"{line}\n" for line in self._lines)
        self._stream.write(self._erase() + text)
        self._stream.flush()
        self._drawn = len(self._lines)

    def print(self, line: str = "") -> None:
        """A permanent line, above the block."""
        if self._live and self._drawn:
            block = "".join(f"{x}\n" for x in self._lines)
            self._stream.write(f"{self._erase()}{line}\n{block}")
        else:
            self._stream.write(f"{line}\n")
        self._stream.flush()

    def clear(self) -> None:
        """Remove the block."""
        if self._live and self._drawn:
            self._stream.write(self._erase())
            self._stream.flush()
        self._drawn = 0
        self._lines = []
