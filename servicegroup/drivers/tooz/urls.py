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


#: tooz's etcd v3 schemes (etcd3gw, the JSON gateway).
ETCD_SCHEMES = frozenset({"etcd3+http", "etcd3+https"})

#: What tooz's etcd driver uses when the URL names no host or port.
ETCD_DEFAULT_HOST = "localhost"
ETCD_DEFAULT_PORT = 2379

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


def _host_port(text: str, default_port: int) -> tuple[str, int]:
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


def etcd_endpoints(
    parts: urllib.parse.SplitResult, hosts: object = None
) -> list[tuple[str, int]]:
    """Every ``(host, port)`` an etcd URL names, in order, without repeats.

    The URL's own host comes first, then each ``hosts`` option (taken from
    the URL's query unless ``hosts`` is given: a list, or one string). With
    no host at all it is tooz's default, ``localhost:2379``.

    :raises ValueError: an endpoint that is not ``HOST[:PORT]``.
    """
    if hosts is None:
        hosts = urllib.parse.parse_qs(parts.query).get(HOSTS_OPTION, [])
    extra = [hosts] if isinstance(hosts, str) else list(hosts)  # type: ignore[call-overload]
    found: list[tuple[str, int]] = []
    if parts.netloc:
        found.append(
            (parts.hostname or ETCD_DEFAULT_HOST, parts.port or ETCD_DEFAULT_PORT)
        )
    for entry in extra:
        # hosts=h2:2379,h3:2379 is accepted too, as kazoo's own host list.
        for text in str(entry).split(","):
            found.append(_host_port(text, ETCD_DEFAULT_PORT))
    if not found:
        found.append((ETCD_DEFAULT_HOST, ETCD_DEFAULT_PORT))
    return list(dict.fromkeys(found))


def endpoints(url: str) -> list[str]:
    """The ``host:port`` endpoints of a cluster URL, as the client uses them.

    For etcd, every endpoint :func:`etcd_endpoints` finds; for ZooKeeper,
    the URL's host and its ``hosts`` options (kazoo's own list). Other
    backends: the URL's host. Never any credentials. Empty when the URL
    cannot be parsed or has no network endpoint (``file://``).
    """
    try:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme in ETCD_SCHEMES:
            pairs = etcd_endpoints(parts)
        elif parts.hostname:
            pairs = [(parts.hostname, parts.port or 0)]
            if parts.scheme in ("kazoo", "zookeeper"):
                query = urllib.parse.parse_qs(parts.query)
                for entry in query.get(HOSTS_OPTION, []):
                    pairs.extend(_host_port(t, 0) for t in entry.split(","))
        else:
            return []
    except ValueError:
        return []
    return [(f"[{h}]" if ":" in h else h) + (f":{p}" if p else "") for h, p in pairs]


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
    if parts.scheme in ETCD_SCHEMES:
        try:
            etcd_endpoints(parts)
        except ValueError as exc:
            raise exceptions.InvalidURL(
                f"{shown!r} has an etcd endpoint that is not HOST[:PORT] "
                f"in its hosts= options: {exc}"
            ) from exc
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
    elif scheme == "memcached":
        # Whole seconds, and memcached's clock ticks once a second: an item
        # set for T seconds expires after T-1 to T, so one more second keeps
        # a member that beats within service_down_time from expiring early.
        wanted = {
            "membership_timeout": math.ceil(down) + 1,
            "timeout": math.ceil(op_timeout),
        }
    elif scheme in ("etcd3+http", "etcd3+https"):
        # Whole seconds: round up, never down.
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
