"""The backend for a URL scheme, and the URL checks that end with its own.

Backends are keyed by the URL schemes they serve; a scheme with no module
of its own (``fake://``, tooz's other drivers with groups) gets
:class:`~.base.Backend`, whose answers are what tooz does without us.
"""

from __future__ import annotations

import urllib.parse

from servicegroup.drivers.tooz import urls
from servicegroup.drivers.tooz.backends import (
    base,
    etcd,
    file,
    memcached,
    redis,
    zookeeper,
)

#: Every backend with a module of its own.
BACKENDS: tuple[type[base.Backend], ...] = (
    zookeeper.ZooKeeperBackend,
    redis.RedisBackend,
    memcached.MemcachedBackend,
    etcd.EtcdBackend,
    file.FileBackend,
)

_BY_SCHEME: dict[str, type[base.Backend]] = {
    scheme: backend for backend in BACKENDS for scheme in backend.schemes
}

#: Client library (top-level module) -> the extra of ours that installs it.
CLIENT_EXTRAS: dict[str, str] = {
    b.client_module: b.extra for b in BACKENDS if b.client_module and b.extra
}

#: Schemes whose tooz driver runs calls on an executor of its own.
EXECUTOR_SCHEMES = frozenset(
    scheme for scheme, backend in _BY_SCHEME.items() if backend.own_executor
)


def for_scheme(scheme: str) -> type[base.Backend]:
    """The backend serving ``scheme`` (the generic one if none has a module)."""
    return _BY_SCHEME.get(scheme, base.Backend)


def parse_url(url: object) -> urllib.parse.SplitResult:
    """Check ``url`` names an installed tooz backend with groups, usable as is."""
    parts = urls.split_url(url)
    assert isinstance(url, str)  # split_url says so
    for_scheme(parts.scheme).check_url(parts, urls.redact_url(url))
    return parts


def endpoints(url: str) -> list[str]:
    """The ``host:port`` endpoints of a backend URL, as its client uses them.

    Never any credentials. Empty when the URL cannot be parsed or has no
    network endpoint (``file://``).
    """
    try:
        parts = urllib.parse.urlsplit(url)
        pairs = for_scheme(parts.scheme).endpoints(parts)
    except ValueError:
        return []
    return urls.endpoint_texts(pairs)
