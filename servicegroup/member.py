"""The member record observers get, and what a member stores to produce it.

A member stores a small envelope as its tooz capabilities: the caller's
capabilities plus the wall-clock time it was written. Where the heartbeat
itself records its time (the liveness key on Redis and memcached), the
envelope is written on join and on a change of capabilities only, and
observers take the later of the two times (:func:`with_heartbeat`); on the
other backends the member rewrites it every round, which is also how it
notices that it was evicted. Either way ``get_updated_time`` is accurate to
one ``report_interval``.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from typing import Any

#: Marks an envelope written by servicegroup (other tooz users may share a
#: group; their capabilities are passed through as they are).
ENVELOPE_VERSION_KEY = "servicegroup"
ENVELOPE_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Member:
    """What an observer knows about one member of a group.

    :ivar id: the member id (Nova: the host).
    :ivar group_id: the group (Nova: the topic).
    :ivar is_up: whether the member's heartbeats are arriving.
    :ivar capabilities: what the member joined with.
    :ivar updated_at: its latest heartbeat as an aware UTC datetime, or None
        if the backend does not say.
    :ivar stale: True when this comes from a view that could not be
        refreshed lately (the observer lost the backend).
    """

    id: str
    group_id: str
    is_up: bool
    capabilities: Mapping[str, Any]
    updated_at: datetime.datetime | None
    stale: bool = False


def envelope(capabilities: Mapping[str, Any], now: float) -> dict[str, Any]:
    """The tooz capabilities a member stores: its own plus a timestamp."""
    return {
        ENVELOPE_VERSION_KEY: ENVELOPE_VERSION,
        "capabilities": dict(capabilities),
        "updated_at": now,
    }


def from_envelope(
    raw: object,
) -> tuple[Mapping[str, Any], datetime.datetime | None]:
    """Split what a member stored into (capabilities, updated_at)."""
    if isinstance(raw, Mapping) and raw.get(ENVELOPE_VERSION_KEY) is not None:
        caps = raw.get("capabilities") or {}
        stamp = raw.get("updated_at")
        updated_at = (
            datetime.datetime.fromtimestamp(stamp, datetime.timezone.utc)
            if isinstance(stamp, (int, float))
            else None
        )
        return caps, updated_at
    if isinstance(raw, Mapping):
        return raw, None
    return {}, None


def with_heartbeat(raw: object, beat_time: object) -> object:
    """``raw`` with its ``updated_at`` moved up to ``beat_time`` if later.

    For backends where the heartbeat itself records its time (memcached's
    liveness key), so the record need not be rewritten on every beat.
    Anything that is not an envelope, or no time, passes through unchanged.
    """
    if not isinstance(beat_time, (int, float)) or isinstance(beat_time, bool):
        return raw
    if not isinstance(raw, Mapping) or raw.get(ENVELOPE_VERSION_KEY) is None:
        return raw
    stamp = raw.get("updated_at")
    if isinstance(stamp, (int, float)) and stamp >= beat_time:
        return raw
    return {**raw, "updated_at": float(beat_time)}
