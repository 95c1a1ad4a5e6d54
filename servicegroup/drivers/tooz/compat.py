"""Checking that the installed tooz still has what our subclasses lean on.

Our subclasses of tooz's drivers and the policies of the backend modules
(:mod:`.backends`) use tooz's private names (``_joined_groups``, which the
base policy empties before a stop, ``_client``, ``_coord``, the Redis script
templates, the file driver's on-disk layout), kazoo's ``last_zxid`` (see
:mod:`.backends.zookeeper`) and etcd3gw's client internals that the
failover client (:mod:`.etcd`) builds on (``_api_path``,
``_discover_api_path``, ``base_url``); reading back what the server granted
uses kazoo's ``_connection._connect`` and tooz's etcd ``_membership_lease``,
and the watch-fed ZooKeeper reads (:mod:`.zookeeper_view`) check theirs. A
tooz release may rename any of them; without this check the first sign
would be an AttributeError deep in a heartbeat. Each ``check_*`` function
raises :class:`ToozIncompatible`, naming the tooz version found and every
missing name, when the subclass is built: the file driver's and tooz's core
names when :mod:`.backends.file` is imported, the others when their
(optional) client library is first used.

Instance attributes cannot be looked up on a class, so :func:`uses` looks
for the name in the code of the class's methods: a renamed attribute
disappears from there.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import types
from collections.abc import Callable, Iterable, Iterator
from typing import Any

#: The tooz releases servicegroup is tested with (setup.cfg pins the same).
TESTED_TOOZ = ">=9.0,<9.2"

#: (what is needed, how to check it is there)
Need = tuple[str, Callable[[], bool]]


class ToozIncompatible(ImportError):
    """The installed tooz lacks private names that servicegroup relies on."""

    def __init__(self, missing: list[str]) -> None:
        self.tooz_version = tooz_version()
        self.missing = missing
        super().__init__(
            f"servicegroup cannot use tooz {self.tooz_version}: it lacks "
            f"{', '.join(missing)} (servicegroup is tested with tooz"
            f"{TESTED_TOOZ}; install a tested tooz release)"
        )


def tooz_version() -> str:
    try:
        return importlib.metadata.version("tooz")
    except importlib.metadata.PackageNotFoundError:
        return "(version unknown)"


def _name(owner: Any) -> str:
    if isinstance(owner, types.ModuleType):
        return owner.__name__
    return f"{owner.__module__}.{owner.__qualname__}"


def _codes(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _codes(const)  # closures, comprehensions


def _code_names(klass: type) -> set[str]:
    """Every attribute name the methods of ``klass`` (and its bases) use."""
    names: set[str] = set()
    for base in klass.__mro__:
        for member in vars(base).values():
            func = getattr(member, "__func__", member)  # class/staticmethods
            if isinstance(member, property):
                func = member.fget
            code = getattr(func, "__code__", None)
            if isinstance(code, types.CodeType):
                for each in _codes(code):
                    names.update(each.co_names)
    return names


def has(owner: Any, name: str) -> Need:
    """``owner`` (a class or module) has the attribute ``name``."""
    return f"{_name(owner)}.{name}", lambda: hasattr(owner, name)


def uses(klass: type, name: str) -> Need:
    """Instances of ``klass`` have the attribute ``name`` (see module doc)."""
    return f"{_name(klass)}.{name}", lambda: name in _code_names(klass)


def mentions(module: types.ModuleType, text: str, what: str) -> Need:
    """``module``'s source contains ``text`` (a template name, a path)."""
    return f"{what} in {module.__name__}", lambda: text in inspect.getsource(module)


def require(needs: Iterable[Need]) -> None:
    """Raise ToozIncompatible naming every need that is not met."""
    missing = [what for what, present in needs if not present()]
    if missing:
        raise ToozIncompatible(missing)


def check_core() -> None:
    """tooz's base driver and file driver (backends.base, backends.file)."""
    from tooz import coordination
    from tooz.drivers import file as tooz_file

    driver = tooz_file.FileDriver
    require(
        [
            uses(coordination.CoordinationDriver, "_joined_groups"),
            has(coordination.CoordinationDriver, "_start"),
            has(coordination.CoordinationDriver, "_stop"),
            has(tooz_file, "FileFutureResult"),
            has(driver, "_make_filesystem_safe"),
            # Replaced in a forked child (backends.file).
            has(driver, "_barriers"),
            *(
                uses(driver, name)
                for name in (
                    "_group_dir",
                    "_tmpdir",
                    "_driver_lock",
                    "_safe_member_id",
                    "_executor",
                    "_timeout",
                )
            ),
            # The on-disk layout _FileDriver.update_capabilities rewrites.
            mentions(tooz_file, ".metadata", "the group marker file .metadata"),
            mentions(tooz_file, "_safe_member_id}.raw", "member files MEMBER.raw"),
            mentions(tooz_file, "'capabilities'", "the record key 'capabilities'"),
            # _FileDriver.delete_group judges liveness as get_members does.
            mentions(tooz_file, "st_mtime", "liveness by member file mtime"),
        ]
    )


def check_redis() -> None:
    """tooz's Redis driver (used by backends.redis)."""
    from tooz.drivers import redis as tooz_redis

    driver = tooz_redis.RedisDriver
    require(
        [
            has(tooz_redis, "RedisFutureResult"),
            has(driver, "SCRIPTS"),
            has(driver, "NAMESPACE_SEP"),
            *(
                has(driver, name)
                for name in (
                    "_get_script",
                    "_make_client",
                    "_submit",
                    "_encode_group_id",
                    "_encode_member_id",
                    "_decode_member_id",
                    "_dumps",
                    "_loads",
                    "_encode_beat_id",
                )
            ),
            uses(driver, "_client"),
            uses(driver, "_parsed_url"),
            uses(driver, "_beat_prefix"),
            uses(driver, "membership_timeout"),
            uses(driver, "_acquired_locks"),
            # Our Lua scripts use the placeholder tooz fills in its own.
            mentions(
                tooz_redis, "group_existence_key", "the ${group_existence_key} template"
            ),
        ]
    )


def check_memcached() -> None:
    """tooz's memcached driver (used by backends.memcached)."""
    from tooz.drivers import memcached as tooz_memcached

    driver = tooz_memcached.MemcachedDriver
    require(
        [
            has(tooz_memcached, "MemcachedFutureResult"),
            has(driver, "_encode_group_id"),
            has(driver, "_encode_member_id"),
            *(
                uses(driver, name)
                for name in (
                    "client",
                    "timeout",
                    "membership_timeout",
                    "_acquired_locks",
                    "_executor",
                )
            ),
        ]
    )


def check_zookeeper() -> None:
    """tooz's ZooKeeper driver and kazoo (used by backends.zookeeper)."""
    from kazoo import client as kazoo_client
    from kazoo.protocol import connection as kazoo_connection
    from tooz.drivers import zookeeper as tooz_zookeeper

    driver = tooz_zookeeper.KazooDriver
    kazoo = kazoo_client.KazooClient
    require(
        [
            uses(driver, "_coord"),
            uses(driver, "timeout"),
            has(driver, "_base_path"),
            uses(kazoo, "last_zxid"),
            has(kazoo, "connected"),
            has(kazoo, "close"),
            has(kazoo, "ensure_path_async"),
            has(kazoo, "add_listener"),
            # ZooKeeperTerms wraps _connect and derives the negotiated
            # session timeout from the read timeout it returns.
            uses(kazoo, "_connection"),
            has(kazoo_connection.ConnectionHandler, "_connect"),
            mentions(
                kazoo_connection,
                "read_timeout = negotiated_session_timeout * 2.0 / 3.0",
                "the read timeout as 2/3 of the negotiated session timeout",
            ),
            mentions(
                kazoo_connection,
                "return read_timeout, connect_timeout",
                "_connect returning (read_timeout, connect_timeout)",
            ),
        ]
    )


def check_etcd() -> None:
    """tooz's etcd driver and etcd3gw (used by backends.etcd, etcd.py).

    The failover client relies on every etcd3gw request (its ``Lease``'s
    keep-alive included) going through ``Etcd3Client.post`` on a URL from
    ``get_url``, built on ``base_url``, except the version discovery.
    """
    from etcd3gw import lease as etcd3gw_lease
    from etcd3gw.client import Etcd3Client
    from tooz.drivers import etcd3gw as tooz_etcd

    driver = tooz_etcd.Etcd3Driver
    require(
        [
            uses(driver, "client"),
            # EtcdTerms asks for the TTL granted to this lease.
            uses(driver, "_membership_lease"),
            uses(etcd3gw_lease.Lease, "id"),
            has(Etcd3Client, "post"),
            has(Etcd3Client, "get_url"),
            has(Etcd3Client, "_discover_api_path"),
            has(Etcd3Client, "base_url"),
            uses(Etcd3Client, "_api_path"),
            uses(Etcd3Client, "session"),
            uses(Etcd3Client, "protocol"),
            uses(Etcd3Client, "timeout"),
            # The lease keeps its client and posts through it.
            uses(etcd3gw_lease.Lease, "client"),
            uses(etcd3gw_lease.Lease, "post"),
        ]
    )
