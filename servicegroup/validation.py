"""Checks on what callers pass in, done before any network traffic.

The limits are the strictest of the backends, so an id that works on one
backend works on all of them: memcached keys are at most 250 bytes of
printable ASCII without whitespace (the tooz key adds a prefix, the group and
the member), ZooKeeper node names cannot contain ``/``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from servicegroup import exceptions

#: Longest member id accepted, in characters (hostnames are at most 253).
MAX_MEMBER_ID_LENGTH = 160
#: Longest group id accepted, in characters.
MAX_GROUP_ID_LENGTH = 64
#: Largest capabilities mapping accepted, serialised as JSON, in bytes.
#: memcached keeps a whole group in one value of at most 1 MiB.
MAX_CAPABILITIES_BYTES = 4096

_ALLOWED = frozenset(chr(c) for c in range(0x21, 0x7F)) - {"/"}
#: The same set as a pattern: a match is several times faster than sets.
_VALID = re.compile(r"[!-.0-~]+")


def _check_id(kind: str, value: object, max_length: int) -> str:
    if not isinstance(value, str):
        raise exceptions.InvalidArgument(
            f"{kind} id must be a str, not {type(value).__name__}"
        )
    if not value:
        raise exceptions.InvalidArgument(f"{kind} id must not be empty")
    if len(value) > max_length:
        raise exceptions.InvalidArgument(
            f"{kind} id is {len(value)} characters long; the limit is {max_length}"
        )
    if not _VALID.fullmatch(value):
        bad = sorted(set(value) - _ALLOWED)
        raise exceptions.InvalidArgument(
            f"{kind} id {value!r} contains {', '.join(map(repr, bad))}; ids "
            "are printable ASCII without whitespace or '/'"
        )
    return value


def member_id(value: object) -> str:
    """Return ``value`` if it is a valid member id, else raise InvalidArgument."""
    return _check_id("member", value, MAX_MEMBER_ID_LENGTH)


def group_id(value: object) -> str:
    """Return ``value`` if it is a valid group id, else raise InvalidArgument."""
    return _check_id("group", value, MAX_GROUP_ID_LENGTH)


def _check_keys(value: object) -> None:
    # json.dumps would quietly turn an int key into a str: what an observer
    # read back would then differ from what the member joined with.
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise exceptions.InvalidArgument(
                    f"capabilities keys must be str, not {key!r}"
                )
            _check_keys(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check_keys(item)


def capabilities(value: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return a JSON-normalised copy of ``value``, else raise InvalidArgument.

    Normalising (tuples become lists) makes what a member stores equal to what
    every observer reads back, whatever the backend's own serialisation.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise exceptions.InvalidArgument(
            f"capabilities must be a mapping, not {type(value).__name__}"
        )
    _check_keys(value)
    try:
        encoded = json.dumps(dict(value), allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise exceptions.InvalidArgument(
            f"capabilities must be JSON-serialisable with str keys: {exc}"
        ) from exc
    size = len(encoded.encode())
    if size > MAX_CAPABILITIES_BYTES:
        raise exceptions.InvalidArgument(
            f"capabilities take {size} bytes; the limit is {MAX_CAPABILITIES_BYTES}"
        )
    result: dict[str, Any] = json.loads(encoded)
    return result
