"""The deprecated ``mc`` and ``zk`` drivers: Nova's options, run on tooz.

Nova's own memcache and ZooKeeper service group drivers are not carried
over; a deployment still configured for them (``servicegroup_driver = mc``
or ``zk`` and their Liberty options) keeps working because these shims read
the legacy options, build the equivalent tooz URL and run
:class:`~servicegroup.drivers.tooz.ToozServiceGroupDriver` on it.
Each one warns (a :class:`DeprecationWarning` for developers, one WARNING
log line with the exact replacement lines for operators).

``mc``
    reads ``[DEFAULT] memcached_servers`` or, as Nova's mc driver since
    Newton, oslo.cache's ``[cache] memcache_servers`` (with ``[cache]
    enabled``), and runs on ``memcached://HOST:PORT``.
``zk``
    reads ``[zookeeper] address, recv_timeout, sg_prefix,
    sg_retry_interval`` and runs on
    ``kazoo://HOST1:PORT1?hosts=HOST2:PORT2&timeout=S&namespace=PREFIX``.

``mc``: tooz's memcached driver keeps a whole group in one key on one
server, so it cannot hash members across several servers the way Nova's
python-memcached client did. With several ``memcached_servers`` the shim uses
the *first* one and logs a warning naming the ones it ignores: every service
must then list the same server first (python-memcached needed identical
lists too, or services hashed their keys to different servers). For
availability, put twemproxy in front of the memcached servers and list the
proxy alone (the drivers page of the documentation shows the set-up). The
membership timeout comes from ``service_down_time``, as the expiry of Nova's
memcache keys did.

``zk``: every server of ``address`` is passed (kazoo fails over between
them); ``recv_timeout`` (ms) becomes the session timeout in whole seconds,
rounded up, and so decides when a silent service is down, as in Liberty;
``sg_prefix`` becomes the tooz namespace (groups are its child znodes);
``sg_retry_interval`` caps the reconnection backoff when it is smaller than
``servicegroup_retry_max_interval``.

.. deprecated:: 0.1.0
   Use ``servicegroup_driver = tooz`` with ``servicegroup_tooz_url``.
"""

from __future__ import annotations

import logging
import math
import sys
import urllib.parse
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, cast

from oslo_config import cfg

from servicegroup import conf as sg_conf
from servicegroup import exceptions, scheduling
from servicegroup.drivers import tooz as tooz_driver

LOG = logging.getLogger(__name__)

MEMCACHED_DEFAULT_PORT = 11211
ZOOKEEPER_DEFAULT_PORT = 2181

#: Modules whose frames stand between the code that asked for a service
#: group and the shim: the library itself and the plugin loader. The
#: DeprecationWarning is attributed to the first frame outside them.
_INTERNAL_MODULES = ("servicegroup", "stevedore", "importlib")


def _is_internal(module: str) -> bool:
    return any(
        module == name or module.startswith(name + ".") for name in _INTERNAL_MODULES
    )


def _caller_stacklevel() -> int:
    """``stacklevel`` (for a warn() called by our caller) naming user code.

    A fixed number would be wrong as soon as the shim is reached another
    way (``servicegroup.API`` through stevedore, or constructed directly),
    or stevedore's call depth changes between releases.
    """
    frame = sys._getframe(1)
    level = 1
    while frame.f_back is not None and _is_internal(
        frame.f_globals.get("__name__", "")
    ):
        frame = frame.f_back
        level += 1
    return level


def _warn_deprecated(driver: str, replacement: Mapping[str, str]) -> None:
    quoted = [f'"{name} = {value}"' for name, value in replacement.items()]
    lines = ", ".join(quoted[:-1]) + " and " + quoted[-1]
    warnings.warn(
        f"servicegroup_driver = {driver} is deprecated for removal; set "
        f"{lines} in [DEFAULT] instead",
        DeprecationWarning,
        stacklevel=_caller_stacklevel(),
    )
    LOG.warning(
        "servicegroup_driver = %s is deprecated for removal and now runs the "
        "tooz driver. Replace it and its legacy options with these lines in "
        "[DEFAULT]: %s (see the servicegroup migration guide)",
        driver,
        lines,
    )


# -- URLs ---------------------------------------------------------------------


def _split_address(entry: str, default_port: int, option: str) -> tuple[str, int]:
    """``host:port`` (or ``[v6]:port``, or ``host``) -> (host, port)."""
    try:
        parts = urllib.parse.urlsplit("//" + entry)
        host = parts.hostname
        port = parts.port
    except ValueError as exc:
        raise exceptions.ConfigurationError(
            f"{option}: {entry!r} is not HOST:PORT ({exc})"
        ) from exc
    if not host or parts.path or parts.query or parts.username:
        raise exceptions.ConfigurationError(
            f"{option}: {entry!r} is not HOST:PORT (an IPv6 address goes in "
            "brackets: [::1]:PORT)"
        )
    return host, port or default_port


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def memcached_url(servers: Sequence[str] | None) -> tuple[str, list[str]]:
    """The tooz URL for Nova's ``memcached_servers``, and the servers ignored.

    Entries are ``HOST:PORT``; python-memcached's ``inet:``/``inet6:``
    prefixes are accepted. Only the first server is used (see the module
    docstring); the others are returned so the caller can warn about them.

    :raises ConfigurationError: no server, a Unix socket, or a bad entry.
    """
    if isinstance(servers, str):
        # A host that registered the option as a StrOpt.
        servers = servers.split(",")
    entries = [s.strip() for s in servers or () if s and s.strip()]
    if not entries:
        raise exceptions.ConfigurationError(
            "servicegroup_driver = mc needs memcached_servers in [DEFAULT] "
            "or, as Nova reads it since Newton, [cache] memcache_servers with "
            "[cache] enabled = true (HOST:PORT,...): without them Nova used "
            "an in-process cache that "
            "no other service could see. Better, set servicegroup_driver = "
            "tooz and servicegroup_tooz_url = memcached://HOST:PORT"
        )
    addresses = []
    for entry in entries:
        bare = entry
        for prefix in ("inet6:", "inet:"):
            if bare.startswith(prefix):
                bare = bare[len(prefix) :]
        if bare.startswith(("unix:", "/")):
            raise exceptions.ConfigurationError(
                f"memcached_servers: {entry!r} is a Unix socket, which the "
                "tooz memcached driver cannot use; give HOST:PORT"
            )
        host, port = _split_address(bare, MEMCACHED_DEFAULT_PORT, "memcached_servers")
        addresses.append(_netloc(host, port))
    return f"memcached://{addresses[0]}", addresses[1:]


def legacy_memcached_servers(conf: cfg.ConfigOpts) -> Sequence[str] | None:
    """The servers Nova's mc driver would use, from either of its options.

    Since Newton, Nova's mc driver takes its servers from oslo.cache's
    ``[cache] memcache_servers`` (read when ``[cache] enabled`` is true;
    oslo.cache registers that group, as Nova does). Before, and in the
    Liberty option this package still reads, they were ``[DEFAULT]
    memcached_servers``, which wins when both are set.
    """
    servers: Sequence[str] | None = conf.memcached_servers
    if servers:
        return servers
    if "cache" in conf and "memcache_servers" in conf.cache:
        cache = conf.cache
        if getattr(cache, "enabled", False):
            cached: Sequence[str] | None = cache.memcache_servers
            return cached
    return servers


def zookeeper_namespace(sg_prefix: str | None) -> str:
    """The tooz namespace for Nova's ``sg_prefix`` (``/servicegroups``).

    tooz keeps groups at ``/NAMESPACE/GROUP``, as Nova kept them at
    ``SG_PREFIX/GROUP``; the namespace is a path below the root, hence
    without its leading slash.
    """
    namespace = (sg_prefix or "").strip().strip("/")
    if not namespace or "//" in namespace:
        raise exceptions.ConfigurationError(
            f"[zookeeper] sg_prefix {sg_prefix!r} must name a znode below the "
            "root, such as /servicegroups"
        )
    return namespace


def session_timeout_seconds(recv_timeout_ms: int | None) -> int | None:
    """Nova's ``recv_timeout`` (ms) as tooz's whole-second session timeout.

    Rounded up: tooz takes whole seconds, and a shorter session than asked
    for would declare services down sooner than the deployment expects.
    None (unset or not positive) leaves the timeout to ``service_down_time``.
    """
    if recv_timeout_ms is None or recv_timeout_ms <= 0:
        return None
    return max(1, math.ceil(recv_timeout_ms / 1000))


def zookeeper_url(
    address: str | None,
    recv_timeout_ms: int | None = 4000,
    sg_prefix: str | None = "/servicegroups",
) -> str:
    """The tooz ``kazoo://`` URL for Nova's ``[zookeeper]`` options.

    ``address`` is ``HOST1:PORT1,HOST2:PORT2,...``: the first server goes in
    the netloc, the others in ``hosts=`` (tooz gives kazoo all of them).

    :raises ConfigurationError: no address or a bad entry or prefix.
    """
    entries = [a.strip() for a in (address or "").split(",") if a.strip()]
    if not entries:
        raise exceptions.ConfigurationError(
            "servicegroup_driver = zk needs [zookeeper] address "
            "(HOST1:PORT,HOST2:PORT,...). Better, set servicegroup_driver = "
            "tooz and servicegroup_tooz_url = kazoo://HOST1:PORT?hosts=HOST2:PORT"
        )
    if "/" in entries[-1]:
        # The ZooKeeper C client took a chroot after the last server; tooz
        # has its namespace for that.
        raise exceptions.ConfigurationError(
            f"[zookeeper] address {address!r} ends with a chroot path; put the "
            "path in [zookeeper] sg_prefix instead"
        )
    netlocs = [
        _netloc(*_split_address(e, ZOOKEEPER_DEFAULT_PORT, "[zookeeper] address"))
        for e in entries
    ]
    query: list[tuple[str, str]] = [("hosts", n) for n in netlocs[1:]]
    timeout = session_timeout_seconds(recv_timeout_ms)
    if timeout is not None:
        query.append(("timeout", str(timeout)))
    query.append(("namespace", zookeeper_namespace(sg_prefix)))
    return f"kazoo://{netlocs[0]}?{urllib.parse.urlencode(query, safe=':/[]')}"


# -- the drivers --------------------------------------------------------------


class MemcachedDriver(tooz_driver.ToozServiceGroupDriver):
    """``servicegroup_driver = mc``: ``memcached_servers`` on tooz.

    .. deprecated:: 0.1.0
       Set ``servicegroup_driver = tooz`` and ``servicegroup_tooz_url =
       memcached://HOST:PORT`` (twemproxy's address for several servers).

    :raises ConfigurationError: ``memcached_servers`` is empty or invalid.
    """

    def __init__(
        self, conf: cfg.ConfigOpts, *, clock: scheduling.Clock | None = None
    ) -> None:
        sg_conf.register_opts(conf)
        url, ignored = memcached_url(legacy_memcached_servers(conf))
        _warn_deprecated(
            "mc", {"servicegroup_driver": "tooz", "servicegroup_tooz_url": url}
        )
        if ignored:
            LOG.warning(
                "memcached_servers lists %d servers but tooz keeps each group "
                "on one server: using %s and ignoring %s. Every service must "
                "list the same first server; for availability put twemproxy "
                "in front of them and list only the proxy",
                len(ignored) + 1,
                url.removeprefix("memcached://"),
                ", ".join(ignored),
            )
        self.legacy_url = url
        super().__init__(conf, clock=clock, url=url)

    def __repr__(self) -> str:
        return (
            f"<MemcachedDriver (deprecated) {tooz_driver.redact_url(self.legacy_url)}>"
        )

    def describe(self) -> Mapping[str, Any]:
        return {**super().describe(), "driver": "mc", "deprecated": True}


class ZooKeeperDriver(tooz_driver.ToozServiceGroupDriver):
    """``servicegroup_driver = zk``: Nova's ``[zookeeper]`` options on tooz.

    .. deprecated:: 0.1.0
       Set ``servicegroup_driver = tooz`` and ``servicegroup_tooz_url =
       kazoo://HOST1:PORT?hosts=HOST2:PORT&timeout=S&namespace=servicegroups``.

    :raises ConfigurationError: ``[zookeeper] address`` is empty or invalid.
    """

    def __init__(
        self, conf: cfg.ConfigOpts, *, clock: scheduling.Clock | None = None
    ) -> None:
        sg_conf.register_opts(conf)
        zk = conf.zookeeper
        url = zookeeper_url(zk.address, zk.recv_timeout, zk.sg_prefix)
        replacement = {"servicegroup_driver": "tooz", "servicegroup_tooz_url": url}
        retry_cap = min(
            float(conf.servicegroup_retry_max_interval), float(conf.report_interval)
        )
        overrides: dict[str, Any] = {}
        if zk.sg_retry_interval is not None and 0 < zk.sg_retry_interval < retry_cap:
            overrides["servicegroup_retry_max_interval"] = float(zk.sg_retry_interval)
            replacement["servicegroup_retry_max_interval"] = str(zk.sg_retry_interval)
        _warn_deprecated("zk", replacement)
        self.legacy_url = url
        super().__init__(
            cast(cfg.ConfigOpts, sg_conf.ConfOverlay(conf, overrides)),
            clock=clock,
            url=url,
        )

    def __repr__(self) -> str:
        return (
            f"<ZooKeeperDriver (deprecated) {tooz_driver.redact_url(self.legacy_url)}>"
        )

    def describe(self) -> Mapping[str, Any]:
        return {**super().describe(), "driver": "zk", "deprecated": True}


__all__ = [
    "MemcachedDriver",
    "ZooKeeperDriver",
    "memcached_url",
    "session_timeout_seconds",
    "zookeeper_namespace",
    "zookeeper_url",
]
