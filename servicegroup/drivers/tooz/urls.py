"""Backend URLs: checking, redacting, and the timing they carry.

Which tooz backends are installed, a URL's checks and its password-free
form, the tooz options that carry our timing, and the tooz member id of a
(member, group) pair.
"""

from __future__ import annotations

import importlib.metadata
import math
import urllib.parse
from collections.abc import Mapping
from typing import Any

from servicegroup import conf as sg_conf
from servicegroup import exceptions

TOOZ_BACKENDS_NAMESPACE = "tooz.backends"

#: tooz backends without group membership: they cannot host a service group.
NO_MEMBERSHIP = frozenset({"ipc", "mysql", "postgresql", "kubernetes"})

#: tooz drivers that run calls on an executor of their own.
EXECUTOR_SCHEMES = frozenset(
    {"redis", "memcached", "etcd3+http", "etcd3+https", "file"}
)


#: Separates member and group in the tooz member id (see the package
#: docstring).
MEMBER_GROUP_SEPARATOR = "@"


def available_backends() -> list[str]:
    """URL schemes of the installed tooz backends that support groups."""
    names = {
        ep.name for ep in importlib.metadata.entry_points(group=TOOZ_BACKENDS_NAMESPACE)
    }
    return sorted(names - NO_MEMBERSHIP)


def redact_url(url: str) -> str:
    """``url`` with its password (in the netloc or the query) masked."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostinfo = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{hostinfo}" if ":" in userinfo else netloc
    query = urllib.parse.urlencode(
        [
            (k, "***" if "password" in k.lower() or "key" in k.lower() else v)
            for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe="/:,*",
    )
    return urllib.parse.urlunsplit(
        (parts.scheme, netloc, parts.path, query, parts.fragment)
    )


def parse_url(url: object) -> urllib.parse.SplitResult:
    """Check ``url`` names an installed tooz backend with groups."""
    if not isinstance(url, str) or not url.strip():
        raise exceptions.InvalidURL(
            "servicegroup_tooz_url is empty; set it to a tooz URL such as "
            "redis://127.0.0.1:6379 or file:///var/lib/servicegroup"
        )
    shown = redact_url(url)
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError as exc:
        raise exceptions.InvalidURL(f"{shown!r} is not a valid URL: {exc}") from exc
    if not parts.scheme or "://" not in url:
        raise exceptions.InvalidURL(
            f"{shown!r} is not a URL; expected SCHEME://..., for example "
            "redis://127.0.0.1:6379"
        )
    schemes = available_backends()
    if parts.scheme not in schemes:
        why = (
            "has no group membership"
            if parts.scheme in NO_MEMBERSHIP
            else "is not an installed tooz backend"
        )
        raise exceptions.UnknownBackend(
            f"URL scheme {parts.scheme!r} {why}; available: {', '.join(schemes)}"
        )
    if parts.scheme == "file" and not parts.path:
        raise exceptions.InvalidURL(
            f"{shown!r} has no directory; use file:///absolute/path"
        )
    return parts


def backend_options(
    scheme: str, url_options: Mapping[str, Any], timing: sg_conf.Timing
) -> dict[str, Any]:
    """tooz options that carry our timing, for those the URL does not set."""
    down = timing.service_down_time
    op_timeout = timing.backend_timeout
    wanted: dict[str, Any]
    if scheme in ("kazoo", "zookeeper"):
        # The session timeout is the liveness timeout; kazoo reconnects by
        # itself and must not back off longer than we would.
        wanted = {
            "timeout": down,
            "connection_retry": {
                "max_tries": -1,
                "delay": 0.1,
                "max_delay": timing.retry_max_interval,
            },
        }
    elif scheme == "file":
        wanted = {"timeout": math.ceil(down)}
    elif scheme in ("memcached", "etcd3+http", "etcd3+https"):
        # These drivers take whole seconds: round up, never down.
        wanted = {
            "membership_timeout": math.ceil(down),
            "timeout": math.ceil(op_timeout),
        }
    elif scheme == "redis":
        wanted = {"membership_timeout": down, "timeout": math.ceil(op_timeout)}
    else:
        wanted = {"membership_timeout": down}
    if scheme in EXECUTOR_SCHEMES:
        # tooz would give every coordinator a thread pool whose shutdown
        # takes a second; our own threads already do the waiting, and the
        # client timeouts above bound every call.
        wanted["executor"] = "synchronous"
    return {k: v for k, v in wanted.items() if k not in url_options}


def tooz_member_id(member_id: str, group_id: str) -> bytes:
    """The tooz member id of ``member_id`` in ``group_id``."""
    return f"{member_id}{MEMBER_GROUP_SEPARATOR}{group_id}".encode()


def member_id_from_tooz(raw: bytes | str, group_id: str) -> str:
    """Inverse of :func:`tooz_member_id`; foreign ids pass through."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    suffix = MEMBER_GROUP_SEPARATOR + group_id
    return text[: -len(suffix)] if text.endswith(suffix) else text
