"""Backend URLs: the grammar every backend shares.

Which tooz backends are installed, the checks every URL gets, its
password-free form, the ``HOST[:PORT]`` endpoints of its ``hosts`` options,
the one merge of our tooz options with the URL's, and the tooz member id of
a (member, group) pair. Nothing here knows one backend from another: what a
backend adds (its own checks, endpoints and options) is in its module under
:mod:`.backends`, and :func:`.backends.registry.parse_url` runs both.
"""

from __future__ import annotations

import importlib.metadata
import urllib.parse
from collections.abc import Mapping
from typing import Any

from servicegroup import exceptions

TOOZ_BACKENDS_NAMESPACE = "tooz.backends"

#: tooz backends without group membership: they cannot host a service group.
NO_MEMBERSHIP = frozenset({"ipc", "mysql", "postgresql", "kubernetes"})

#: The URL option naming further endpoints of a cluster (tooz's ZooKeeper
#: convention: ``kazoo://h1:2181?hosts=h2:2181&hosts=h3:2181``).
HOSTS_OPTION = "hosts"

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
            (k, _redact_query_value(k, v))
            for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe="/:,*@[]",
    )
    return urllib.parse.urlunsplit(
        (parts.scheme, netloc, parts.path, query, parts.fragment)
    )


#: Words that make a URL query option a secret (``password``, ``ssl_key``,
#: ``sentinel_password``...): their values are masked wherever shown.
SECRET_OPTION_WORDS = ("password", "key")


def is_secret_option(key: str) -> bool:
    """Whether the value of the URL query option ``key`` is a secret."""
    return any(word in key.lower() for word in SECRET_OPTION_WORDS)


def _redact_query_value(key: str, value: str) -> str:
    if is_secret_option(key):
        return "***"
    if key == HOSTS_OPTION and "@" in value:
        # Nothing in tooz reads credentials from here, but an endpoint
        # written as user:secret@host must not show the secret either.
        userinfo, _, hostinfo = value.rpartition("@")
        if ":" in userinfo:
            return f"{userinfo.split(':', 1)[0]}:***@{hostinfo}"
    return value


def host_port(text: str, default_port: int) -> tuple[str, int]:
    """``host[:port]`` (``[v6]:port`` for IPv6) as (host, port).

    :raises ValueError: anything else (a scheme, a path, credentials, a
        port that is not a number).
    """
    if not text or any(c in text for c in "/@?#") or text != text.strip():
        raise ValueError(f"{text!r} is not HOST[:PORT]")
    parts = urllib.parse.urlsplit(f"//{text}")
    if not parts.hostname:
        raise ValueError(f"{text!r} has no host")
    return parts.hostname, parts.port or default_port


def hosts_options(parts: urllib.parse.SplitResult) -> list[str]:
    """The URL's ``hosts`` options, as written (each may list several)."""
    return urllib.parse.parse_qs(parts.query).get(HOSTS_OPTION, [])


def endpoint_texts(pairs: list[tuple[str, int]]) -> list[str]:
    """``(host, port)`` pairs as ``host:port`` (``[v6]:port``; no port if 0)."""
    return [(f"[{h}]" if ":" in h else h) + (f":{p}" if p else "") for h, p in pairs]


def split_url(url: object) -> urllib.parse.SplitResult:
    """The checks every URL gets: well formed, naming a backend with groups.

    :func:`.backends.registry.parse_url` adds the backend's own checks.
    """
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
    return parts


def merged_options(
    parts: urllib.parse.SplitResult, ours: Mapping[str, Any]
) -> dict[str, list[Any]]:
    """What tooz's ``get_coordinator`` hands a driver: ``ours``, then the URL's.

    Each value is a list, as ``parse_qs`` gives them; ``ours`` only holds
    options the URL does not set, so neither overrides the other.
    """
    options: dict[str, list[Any]] = {k: [v] for k, v in ours.items()}
    for key, values in urllib.parse.parse_qs(parts.query).items():
        options.setdefault(key, values)
    return options


def tooz_member_id(member_id: str, group_id: str) -> bytes:
    """The tooz member id of ``member_id`` in ``group_id``."""
    return f"{member_id}{MEMBER_GROUP_SEPARATOR}{group_id}".encode()


def member_id_from_tooz(raw: bytes | str, group_id: str) -> str:
    """Inverse of :func:`tooz_member_id`; foreign ids pass through."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    suffix = MEMBER_GROUP_SEPARATOR + group_id
    return text[: -len(suffix)] if text.endswith(suffix) else text
