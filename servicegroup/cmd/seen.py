"""What ``servicegroup members`` saw before: how it lists members that are down.

The backends forget a member once it stops heartbeating (its key expires,
its session ends), so a one-shot command asking the backend only ever sees
the members that are up. To list the others, as ``openstack compute service
list`` or ``consul members`` do, the command keeps on this host a record of
the members it saw in each group, with their latest heartbeat and
capabilities, under ``servicegroup_state_path``. A member recorded and no
longer up is listed as down; it is forgotten :data:`FORGET_AFTER` after its
latest heartbeat, or when its group is deleted.

The record is a convenience of the command, not part of the library: what it
lists as down are the members this host's commands saw, and the heartbeat
shown is the latest one they saw. Failing to read or write it never fails a
command.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

from servicegroup import member as sg_member

LOG = logging.getLogger(__name__)

#: How long a member that is down stays listed, after its latest heartbeat.
FORGET_AFTER = datetime.timedelta(days=7)

_FORMAT = 1


def _path(state_dir: str, url: str, group_id: str) -> str:
    # One file per backend and group; the names are hashed, so any group
    # id makes a valid, short file name. The file itself names both.
    digest = hashlib.sha256(f"{url}\0{group_id}".encode()).hexdigest()[:32]
    return os.path.join(state_dir, "cli", "seen", f"{digest}.json")


def _parse_time(text: object) -> datetime.datetime | None:
    if not isinstance(text, str):
        return None
    try:
        when = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


class Record:
    """The members of one group that this host's commands saw."""

    def __init__(self, state_dir: str, url: str, group_id: str) -> None:
        self.url = url
        self.group_id = group_id
        self.path = _path(state_dir, url, group_id)

    def load(self) -> dict[str, tuple[sg_member.Member, datetime.datetime]]:
        """The members recorded, all marked down, with when they were seen.

        Empty when there is no record or it cannot be read.
        """
        try:
            with open(self.path, encoding="utf-8") as record_file:
                document = json.load(record_file)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            LOG.debug("Ignoring the unreadable record %s: %s", self.path, exc)
            return {}
        if (
            not isinstance(document, dict)
            or document.get("format") != _FORMAT
            or document.get("url") != self.url
            or document.get("group") != self.group_id
            or not isinstance(document.get("members"), dict)
        ):
            return {}
        found = {}
        for member_id, entry in document["members"].items():
            if not isinstance(entry, dict):
                continue
            seen_at = _parse_time(entry.get("seen_at"))
            if seen_at is None:
                continue
            capabilities = entry.get("capabilities")
            known = sg_member.Member(
                id=member_id,
                group_id=self.group_id,
                is_up=False,
                capabilities=capabilities if isinstance(capabilities, dict) else {},
                updated_at=_parse_time(entry.get("updated_at")),
            )
            found[member_id] = (known, seen_at)
        return found

    def merge(
        self, members: Sequence[sg_member.Member], now: datetime.datetime
    ) -> list[sg_member.Member]:
        """``members`` plus the recorded ones missing from them, sorted by id.

        The record is then rewritten with every member still worth listing.
        A view that could not be refreshed (stale) leaves the record as it
        is: it says nothing new.
        """
        merged = {m.id: m for m in members}
        seen = {m.id: now for m in members}
        for member_id, (known, seen_at) in self.load().items():
            if member_id in merged:
                continue
            if now - (known.updated_at or seen_at) > FORGET_AFTER:
                continue
            merged[member_id] = known
            seen[member_id] = seen_at
        listed = [merged[k] for k in sorted(merged)]
        if not any(m.stale for m in members):
            self._save(listed, seen)
        return listed

    def forget(self) -> None:
        """Drop the record (its group was deleted)."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            LOG.debug("Could not remove the record %s: %s", self.path, exc)

    def _save(
        self,
        members: Sequence[sg_member.Member],
        seen: Mapping[str, datetime.datetime],
    ) -> None:
        entries: dict[str, Any] = {}
        for member in members:
            entries[member.id] = {
                "updated_at": _iso(member.updated_at),
                "seen_at": _iso(seen[member.id]),
                "capabilities": _jsonable(member.capabilities),
            }
        document = {
            "format": _FORMAT,
            "url": self.url,
            "group": self.group_id,
            "members": entries,
        }
        directory = os.path.dirname(self.path)
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            # Write then rename: two commands at once never leave half a file.
            fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as record_file:
                    json.dump(document, record_file, sort_keys=True)
                os.replace(tmp, self.path)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError as exc:
            LOG.debug("Could not write the record %s: %s", self.path, exc)


def _iso(when: datetime.datetime | None) -> str | None:
    return None if when is None else when.astimezone(datetime.timezone.utc).isoformat()


def _jsonable(capabilities: Mapping[str, Any]) -> dict[str, Any]:
    # Capabilities are JSON on every backend; anything else becomes text.
    result: dict[str, Any] = json.loads(json.dumps(dict(capabilities), default=str))
    return result
