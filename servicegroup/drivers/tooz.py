"""The service group driver on tooz coordinators.

The backend is chosen by ``servicegroup_tooz_url``:

==========================  ==============================================
URL                         backend
==========================  ==============================================
``kazoo://h1:2181``         ZooKeeper (``zookeeper://`` is the same);
                            more hosts with ``?hosts=h2:2181&hosts=h3:2181``
``etcd3+http://h:2379``     etcd v3 through its gRPC gateway (one host)
``redis://h:6379``          Redis; Sentinel: ``redis://s1:26379?sentinel=NAME``
                            ``&sentinel_fallback=s2:26379``
``memcached://h:11211``     memcached, or twemproxy in front of several
``file:///var/lib/sg``      a local directory (one host only)
``fake://name``             in memory, for tests (:mod:`servicegroup.testing`)
==========================  ==============================================

Timing is translated into each backend's own knob unless the URL sets it:
``service_down_time`` becomes ``membership_timeout`` (Redis, memcached,
etcd lease TTL), the ZooKeeper session ``timeout``, or the file ``timeout``;
``servicegroup_backend_timeout`` becomes the socket/HTTP ``timeout`` where
that is a separate option. :meth:`ToozServiceGroupDriver.describe` reports the
values in effect.

Each joined (member, group) pair gets its own tooz coordinator whose tooz
member id is ``MEMBER@GROUP``: Redis and memcached keep one liveness key per
tooz member id, so the same host in two groups from two processes (a
compute and a conductor on one machine) must not share one. One more
coordinator, which never joins anything, reads groups for the local view.

Only this module (and the fake backend) imports tooz.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime
import functools
import importlib.metadata
import logging
import math
import os
import random
import socket
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from oslo_config import cfg
from tooz import coordination
from tooz import utils as tooz_utils
from tooz.drivers import file as tooz_file

from servicegroup import conf as sg_conf
from servicegroup import (
    exceptions,
    heartbeat,
    membership,
    scheduling,
    validation,
)
from servicegroup import member as sg_member
from servicegroup.drivers import base

LOG = logging.getLogger(__name__)

T = TypeVar("T")

TOOZ_BACKENDS_NAMESPACE = "tooz.backends"

#: tooz backends without group membership: they cannot host a service group.
NO_MEMBERSHIP = frozenset({"ipc", "mysql", "postgresql", "kubernetes"})

#: tooz drivers that run calls on an executor of their own.
EXECUTOR_SCHEMES = frozenset(
    {"redis", "memcached", "etcd3+http", "etcd3+https", "file"}
)

#: Separates member and group in the tooz member id (see module docstring).
MEMBER_GROUP_SEPARATOR = "@"

#: Consecutive failed reads after which the observer coordinator is rebuilt.
OBSERVER_RECONNECT_AFTER = 5


# -- URLs ---------------------------------------------------------------------


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


# -- tooz plumbing ------------------------------------------------------------


class _AlreadyExists(exceptions.BackendError):
    """The group or member we tried to create is already there."""


class _Undecodable(exceptions.BackendError):
    """The backend answered with a record tooz cannot decode."""


#: Client libraries' connection errors that are not OSErrors (matched by
#: name so that no optional client library has to be imported).
_CONNECTION_ERROR_NAMES = frozenset({"ConnectionError", "ConnectionFailedError"})


def _is_connection_error(exc: BaseException) -> bool:
    return isinstance(exc, OSError) or any(
        cls.__name__ in _CONNECTION_ERROR_NAMES for cls in type(exc).__mro__
    )


@contextlib.contextmanager
def translate_errors(what: str) -> Iterator[None]:
    """Turn whatever tooz or its client library raised into our errors."""
    try:
        yield
    except coordination.GroupNotCreated as exc:
        raise exceptions.GroupNotFound(f"{what}: group not found") from exc
    except coordination.MemberNotJoined as exc:
        raise exceptions.MemberNotFound(f"{what}: member not in group") from exc
    except (
        coordination.GroupAlreadyExist,
        coordination.MemberAlreadyExist,
    ) as exc:
        raise _AlreadyExists(f"{what}: already exists") from exc
    except coordination.ToozConnectionError as exc:
        raise exceptions.BackendUnavailable(f"{what}: {exc}") from exc
    except tooz_utils.SerializationError as exc:
        raise _Undecodable(f"{what}: undecodable record: {exc}") from exc
    except (
        coordination.OperationTimedOut,
        concurrent.futures.TimeoutError,
    ) as exc:
        raise exceptions.BackendTimeout(f"{what}: timed out") from exc
    except exceptions.ServiceGroupError:
        raise
    except Exception as exc:
        # Drivers let some client errors through untranslated (redis-py,
        # kazoo, etcd3gw): at this seam they are all backend failures.
        if _is_connection_error(exc):
            raise exceptions.BackendUnavailable(
                f"{what}: {type(exc).__name__}: {exc}"
            ) from exc
        raise exceptions.BackendError(f"{what}: {type(exc).__name__}: {exc}") from exc


class _FileDriver(tooz_file.FileDriver):
    """tooz's file driver plus the ``update_capabilities`` it lacks.

    The heartbeat rewrites the member record, so the file's mtime (which the
    driver uses for liveness) and the stored timestamp move together.
    """

    def update_capabilities(
        self, group_id: bytes, capabilities: coordination.Capabilities | None
    ) -> coordination.CoordAsyncResult[None]:
        group_dir = os.path.join(self._group_dir, self._make_filesystem_safe(group_id))
        me_path = os.path.join(group_dir, f"{self._safe_member_id}.raw")

        def _update() -> None:
            with self._driver_lock:
                if not os.path.exists(os.path.join(group_dir, ".metadata")):
                    raise coordination.GroupNotCreated(group_id)
                try:
                    with open(me_path, "rb") as fh:
                        details = tooz_utils.loads(fh.read())
                except FileNotFoundError:
                    raise coordination.MemberNotJoined(
                        group_id, self._member_id
                    ) from None
                details["capabilities"] = capabilities
                fd, tmp_path = tempfile.mkstemp(".tooz", dir=self._tmpdir)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(tooz_utils.dumps(details))
                os.replace(tmp_path, me_path)

        return tooz_file.FileFutureResult(self._executor.submit(_update))


#: Lua scripts that replace tooz's ``WATCH``/``MULTI`` transactions on the
#: group hash. Every heartbeat rewrites a member's record in that hash, so
#: in a busy group an optimistic transaction is aborted again and again and
#: redis-py retries it without end: joins and refreshes livelocked (see
#: doc/source/benchmarks.rst). A script runs atomically and never retries.
#: ``${group_existence_key}`` is filled in by tooz, as for its own scripts.
_REDIS_SCRIPTS = {
    "sg_join_group": """
local group_key = KEYS[1]
if redis.call("exists", group_key) == 0 then
    return -1
end
return redis.call("hsetnx", group_key, ARGV[1], ARGV[2])
""",
    "sg_leave_group": """
local group_key = KEYS[1]
if redis.call("exists", group_key) == 0 then
    return -1
end
return redis.call("hdel", group_key, ARGV[1])
""",
    # Members whose heartbeat key expired are pruned, as tooz does, but in
    # the same atomic step as the read. The heartbeat keys are not declared
    # in KEYS: tooz's Redis driver supports one server or Sentinel, never
    # Redis Cluster, where that would matter.
    "sg_members_with_capabilities": """
local group_key = KEYS[1]
local beat_prefix = ARGV[1]
local self_id = ARGV[2]
if redis.call("exists", group_key) == 0 then
    return -1
end
local fields = redis.call("hgetall", group_key)
local alive = {}
for i = 1, #fields, 2 do
    local member = fields[i]
    if member ~= "${group_existence_key}" then
        if member == self_id
            or redis.call("exists", beat_prefix .. member) == 1 then
            alive[#alive + 1] = member
            alive[#alive + 1] = fields[i + 1]
        else
            redis.call("hdel", group_key, member)
        end
    end
end
return alive
""",
}


@functools.cache
def _redis_driver() -> type[coordination.CoordinationDriver]:
    """tooz's Redis driver, fixed for busy groups and fast recovery.

    * Without redis-py's own retries: redis-py retries a refused connection
      with exponential backoff (about a minute in all before tooz sees an
      error), and tooz offers no option to change that. The heartbeat loop
      already retries with backoff and jitter; a second layer underneath
      only keeps a recovered backend waiting.
    * Joining, leaving and reading a group run as Lua scripts instead of
      optimistic transactions (see :data:`_REDIS_SCRIPTS`).

    Imported on first use: redis-py is an optional extra.
    """
    from redis import backoff, retry
    from tooz.drivers import redis as tooz_redis

    class _RedisDriver(tooz_redis.RedisDriver):
        SCRIPTS = {**tooz_redis.RedisDriver.SCRIPTS, **_REDIS_SCRIPTS}

        @classmethod
        def _make_client(
            cls,
            parsed_url: Any,
            options: dict[str, Any],
            default_socket_timeout: int,
        ) -> Any:
            client = super()._make_client(parsed_url, options, default_socket_timeout)
            client.set_retry(retry.Retry(backoff.NoBackoff(), 0))
            return client

        def _script_result(
            self,
            name: str,
            keys: list[bytes],
            args: list[bytes],
            then: Callable[[Any], T],
        ) -> coordination.CoordinatorResult[T]:
            script = self._get_script(name)
            return tooz_redis.RedisFutureResult(
                self._submit(lambda: then(script(keys=keys, args=args)))
            )

        def join_group(
            self,
            group_id: bytes,
            capabilities: coordination.Capabilities | None = None,
        ) -> coordination.CoordinatorResult[None]:
            def joined(answer: Any) -> None:
                if answer == -1:
                    raise coordination.GroupNotCreated(group_id)
                if answer == 0:
                    raise coordination.MemberAlreadyExist(group_id, self._member_id)
                self._joined_groups.add(group_id)

            return self._script_result(
                "sg_join_group",
                [self._encode_group_id(group_id)],
                [self._encode_member_id(self._member_id), self._dumps(capabilities)],
                joined,
            )

        def leave_group(self, group_id: bytes) -> coordination.CoordinatorResult[None]:
            def left(answer: Any) -> None:
                if answer == -1:
                    raise coordination.GroupNotCreated(group_id)
                if answer == 0:
                    raise coordination.MemberNotJoined(group_id, self._member_id)
                self._joined_groups.discard(group_id)

            return self._script_result(
                "sg_leave_group",
                [self._encode_group_id(group_id)],
                [self._encode_member_id(self._member_id)],
                left,
            )

        def get_members_with_capabilities(
            self, group_id: bytes
        ) -> coordination.CoordinatorResult[
            dict[bytes, coordination.Capabilities | None]
        ]:
            def members(answer: Any) -> dict[bytes, coordination.Capabilities | None]:
                if answer == -1:
                    raise coordination.GroupNotCreated(group_id)
                return {
                    self._decode_member_id(answer[i]): self._loads(answer[i + 1])
                    for i in range(0, len(answer), 2)
                }

            return self._script_result(
                "sg_members_with_capabilities",
                [self._encode_group_id(group_id)],
                [
                    self._beat_prefix + self.NAMESPACE_SEP,
                    self._encode_member_id(self._member_id),
                ],
                members,
            )

    return _RedisDriver


#: Tries of one gets/cas change of a memcached group item, and the most a
#: clash waits before the next (drawn at random, so clashing writers part).
_MEMCACHED_CAS_TRIES = 200
_MEMCACHED_CAS_BACKOFF = 0.01


@functools.cache
def _memcached_driver() -> type[coordination.CoordinationDriver]:
    """tooz's memcached driver, without rewriting the group on every beat.

    tooz keeps a whole group in one item, written with ``gets``/``cas`` and
    retried on every clash (sleeping up to a second each time). Rewriting
    each member's record there on every heartbeat made traffic grow as N²
    and livelocked joins at a few hundred members (doc/source/benchmarks.rst).
    Here the liveness key that tooz's heartbeat sets (it only checks that
    the key exists) holds the time of the beat, which observers read with
    one ``get_many`` for the whole group and show as ``updated_at``; a
    member checks that it is still in the group with a plain ``get``
    (:meth:`check_joined`) and writes its record only when its capabilities
    change. A read prunes dead members with one ``cas`` and never retries:
    the next read prunes what a clash left.

    Imported on first use: pymemcache is an optional extra.
    """
    from tooz.drivers import memcached as tooz_memcached

    class _MemcachedDriver(tooz_memcached.MemcachedDriver):
        def _change_group(
            self, group_id: bytes, change: Callable[[dict[bytes, Any]], None]
        ) -> None:
            """Apply ``change`` to the group item with gets/cas.

            tooz sleeps a second or more after each clash, which a few
            hundred members joining at once (a restart) turn into minutes;
            a clash here costs a few milliseconds before the next try.
            """
            encoded_group = self._encode_group_id(group_id)
            for _ in range(_MEMCACHED_CAS_TRIES):
                members, cas = self.client.gets(encoded_group)
                if members is None:
                    raise coordination.GroupNotCreated(group_id)
                change(members)
                if self.client.cas(encoded_group, members, cas):
                    return
                time.sleep(random.uniform(0, _MEMCACHED_CAS_BACKOFF))
            raise coordination.ToozError(
                f"group {group_id!r} changed under {_MEMCACHED_CAS_TRIES} "
                "writes in a row"
            )

        def _submit_change(
            self,
            group_id: bytes,
            change: Callable[[dict[bytes, Any]], None],
            then: Callable[[], None] = lambda: None,
        ) -> coordination.CoordAsyncResult[None]:
            def run() -> None:
                self._change_group(group_id, change)
                then()

            return tooz_memcached.MemcachedFutureResult(self._executor.submit(run))

        def join_group(
            self,
            group_id: bytes,
            capabilities: coordination.Capabilities | None = None,
        ) -> coordination.CoordAsyncResult[None]:
            def join(members: dict[bytes, Any]) -> None:
                if self._member_id in members:
                    raise coordination.MemberAlreadyExist(group_id, self._member_id)
                members[self._member_id] = {b"capabilities": capabilities}

            return self._submit_change(
                group_id, join, lambda: self._joined_groups.add(group_id)
            )

        def leave_group(self, group_id: bytes) -> coordination.CoordAsyncResult[None]:
            def leave(members: dict[bytes, Any]) -> None:
                if self._member_id not in members:
                    raise coordination.MemberNotJoined(group_id, self._member_id)
                del members[self._member_id]

            return self._submit_change(
                group_id, leave, lambda: self._joined_groups.discard(group_id)
            )

        def update_capabilities(
            self, group_id: bytes, capabilities: coordination.Capabilities | None
        ) -> coordination.CoordAsyncResult[None]:
            def update(members: dict[bytes, Any]) -> None:
                if self._member_id not in members:
                    raise coordination.MemberNotJoined(group_id, self._member_id)
                members[self._member_id][b"capabilities"] = capabilities

            return self._submit_change(group_id, update)

        def heartbeat(self) -> float:
            self.client.set(
                self._encode_member_id(self._member_id),
                time.time(),
                expire=self.membership_timeout,
            )
            for lock in self._acquired_locks:
                lock.heartbeat()
            return float(self.membership_timeout)

        def _live_records(self, group_id: bytes) -> dict[bytes, Any]:
            """Live members -> their capabilities, with the beat's time."""
            encoded_group = self._encode_group_id(group_id)
            members, cas = self.client.gets(encoded_group)
            if members is None:
                raise coordination.GroupNotCreated(group_id)
            keys = {m: self._encode_member_id(m) for m in members}
            beats = self.client.get_many(list(keys.values())) if keys else {}
            live = {
                m: info
                for m, info in members.items()
                if m == self._member_id or beats.get(keys[m])
            }
            if len(live) != len(members):
                self.client.cas(encoded_group, live, cas)
            return {
                m: sg_member.with_heartbeat(
                    info.get(b"capabilities"), beats.get(keys[m])
                )
                for m, info in live.items()
            }

        def _submit_read(
            self, read: Callable[[], T]
        ) -> coordination.CoordAsyncResult[T]:
            return tooz_memcached.MemcachedFutureResult(self._executor.submit(read))

        def get_members(
            self, group_id: bytes
        ) -> coordination.CoordAsyncResult[set[bytes]]:
            return self._submit_read(lambda: set(self._live_records(group_id)))

        def get_members_with_capabilities(
            self, group_id: bytes
        ) -> coordination.CoordAsyncResult[dict[bytes, Any]]:
            return self._submit_read(lambda: self._live_records(group_id))

        def get_member_capabilities(
            self, group_id: bytes, member_id: bytes
        ) -> coordination.CoordAsyncResult[Any]:
            def read() -> Any:
                records = self._live_records(group_id)
                if member_id not in records:
                    raise coordination.MemberNotJoined(group_id, member_id)
                return records[member_id]

            return self._submit_read(read)

        def check_joined(self, group_id: bytes) -> coordination.CoordAsyncResult[None]:
            """Raise GroupNotCreated or MemberNotJoined if we are gone."""

            def check() -> None:
                members = self.client.get(self._encode_group_id(group_id))
                if members is None:
                    raise coordination.GroupNotCreated(group_id)
                if self._member_id not in members:
                    raise coordination.MemberNotJoined(group_id, self._member_id)

            return self._submit_read(check)

    return _MemcachedDriver


def _driver_override(scheme: str) -> type[coordination.CoordinationDriver] | None:
    """Our subclass of the tooz driver for ``scheme``, if we have one."""
    if scheme == "file":
        return _FileDriver
    if scheme == "redis":
        return _redis_driver()
    if scheme == "memcached":
        return _memcached_driver()
    return None


class ToozBackend:
    """One backend URL: makes coordinators and waits on their results."""

    def __init__(self, url: str, timing: sg_conf.Timing) -> None:
        self._parts = parse_url(url)
        self._url = url
        self.scheme = self._parts.scheme
        self.redacted_url = redact_url(url)
        url_options = urllib.parse.parse_qs(self._parts.query)
        self.options = backend_options(self.scheme, url_options, timing)
        self.timing = timing
        self.check_options()
        self.effective = self._effective_timeouts(url_options)

    def _effective_timeouts(
        self, url_options: Mapping[str, list[str]]
    ) -> dict[str, float]:
        merged: dict[str, Any] = {k: v[-1] for k, v in url_options.items()}
        merged.update(self.options)
        key = (
            "timeout"
            if self.scheme in ("kazoo", "zookeeper", "file")
            else "membership_timeout"
        )
        # For ZooKeeper this is the session timeout asked for: the server
        # clamps it to its minSessionTimeout..maxSessionTimeout (2..20 x
        # tickTime by default) and kazoo keeps the negotiated value private.
        return {"membership_timeout": float(merged.get(key, 0) or 0)}

    def _new_coordinator(self, tooz_member: bytes) -> coordination.CoordinationDriver:
        """A coordinator for ``tooz_member``, not started (no traffic yet)."""
        try:
            driver_class = _driver_override(self.scheme)
            if driver_class is not None:
                # What get_coordinator does, with our subclass: our options
                # first, then the URL's for the keys we left alone.
                options = {k: [v] for k, v in self.options.items()}
                for key, values in urllib.parse.parse_qs(self._parts.query).items():
                    options.setdefault(key, values)
                coord: coordination.CoordinationDriver = driver_class(
                    tooz_member, self._parts, options
                )
            else:
                coord = coordination.get_coordinator(
                    self._url, tooz_member, **self.options
                )
        except (ValueError, TypeError, KeyError) as exc:
            # tooz parses the URL's options here: timeout=abc, handler=nope.
            raise exceptions.InvalidURL(
                f"{self.redacted_url!r} has an option tooz cannot use: {exc}"
            ) from exc
        if self.is_zookeeper:
            # tooz waits its session timeout (service_down_time, 60 s
            # for Nova) for kazoo to connect; one backend operation's
            # worth is enough, the heartbeat loop tries again.
            coord.timeout = math.ceil(self.timing.backend_timeout)  # type: ignore[attr-defined]
        return coord

    def check_options(self) -> None:
        """Raise InvalidURL now if tooz rejects the URL's options."""
        _stop_quietly(self._new_coordinator(b"servicegroup-option-check"))

    def coordinator(self, tooz_member: bytes) -> coordination.CoordinationDriver:
        """A started coordinator for ``tooz_member``."""
        coord = self._new_coordinator(tooz_member)
        with translate_errors(f"connecting to {self.redacted_url}"):
            try:
                coord.start(start_heart=False)
            except BaseException:
                _stop_quietly(coord)
                raise
        return coord

    @property
    def is_zookeeper(self) -> bool:
        return self.scheme in ("kazoo", "zookeeper")

    def ensure_connected(
        self, coord: coordination.CoordinationDriver, what: str
    ) -> None:
        """Fail at once while a ZooKeeper client has no live connection.

        kazoo queues requests until it reconnects, so every call would wait
        the whole backend timeout (tooz's ``heartbeat()`` even waits without
        any), and the heartbeat loop would need five of those before it
        resets a client that may never reconnect: a ZooKeeper that lost
        its data refuses, forever, a client that saw a newer zxid (see
        :meth:`ToozMemberSession.reset`). Failing fast lets the loop reset
        it within about a second.
        """
        if not self.is_zookeeper:
            return
        client = getattr(coord, "_coord", None)  # tooz's KazooClient
        if client is not None and not client.connected:
            raise exceptions.BackendUnavailable(f"{what}: no ZooKeeper connection")

    def wait(self, what: str, result: coordination.CoordAsyncResult[T]) -> T:
        """The value of a tooz async result, within the backend timeout."""
        with translate_errors(what):
            return result.get(timeout=self.timing.backend_timeout)


def _stop_quietly(
    coord: coordination.CoordinationDriver, *, keep_liveness: bool = False
) -> None:
    # tooz's stop() leaves every joined group and waits without a timeout;
    # we already left (with one), so a dead backend must not hang us here.
    coord._joined_groups = set()
    redis_client = None
    if keep_liveness and getattr(coord, "_beat_prefix", None) is not None:
        # tooz's Redis driver deletes the member's heartbeat key when it
        # stops, and the next observer to read the group would prune the
        # member: hide the client from it, and close it ourselves.
        redis_client, coord._client = coord._client, None  # type: ignore[attr-defined]
    try:
        coord.stop()
    except Exception:  # noqa: BLE001 - closing must never fail the caller
        LOG.debug("Ignoring error while stopping a tooz coordinator", exc_info=True)
    # tooz stops its kazoo client but never closes it, which leaks the
    # client's socketpair until garbage collection.
    kazoo_client = getattr(coord, "_coord", None)
    close = getattr(kazoo_client, "close", None)
    if callable(close):
        try:
            close()
        except Exception:  # noqa: BLE001 - as above
            LOG.debug("Ignoring error while closing a kazoo client", exc_info=True)
    if redis_client is not None:
        try:
            redis_client.connection_pool.disconnect()
        except Exception:  # noqa: BLE001 - as above
            LOG.debug("Ignoring error while closing a Redis client", exc_info=True)
    # Nor does it close etcd3gw's requests session: its pooled sockets stay
    # open until the garbage collector finds the cycle they are part of.
    session = getattr(getattr(coord, "client", None), "session", None)
    close_session = getattr(session, "close", None)
    if callable(close_session):
        try:
            close_session()
        except Exception:  # noqa: BLE001 - as above
            LOG.debug("Ignoring error while closing an etcd session", exc_info=True)


class ToozMemberSession(heartbeat.MemberSession):
    """One member in one group, through its own tooz coordinator."""

    def __init__(self, backend: ToozBackend, member_id: str, group_id: str) -> None:
        self._backend = backend
        self._tooz_member = tooz_member_id(member_id, group_id)
        self._group = group_id.encode()
        self._name = f"member {member_id} of group {group_id}"
        self._coord: coordination.CoordinationDriver | None = None

    def _require(self) -> coordination.CoordinationDriver:
        if self._coord is None:
            raise exceptions.BackendUnavailable(f"{self._name}: not connected")
        return self._coord

    def connect(self) -> None:
        self._coord = self._backend.coordinator(self._tooz_member)

    def beat(self) -> None:
        coord = self._require()
        if self._backend.is_zookeeper:
            # kazoo's own pings keep the session alive; tooz's heartbeat()
            # is only a read, and one that can block forever.
            self._backend.ensure_connected(coord, f"heartbeat of {self._name}")
            return
        with translate_errors(f"heartbeat of {self._name}"):
            coord.heartbeat()

    def join(self, record: Mapping[str, Any]) -> None:
        coord = self._require()
        wait = self._backend.wait
        what = f"joining {self._name}"
        try:
            wait(what, coord.join_group(self._group, dict(record)))
            return
        except exceptions.GroupNotFound:
            with contextlib.suppress(_AlreadyExists):
                wait("creating group", coord.create_group(self._group))
            try:
                wait(what, coord.join_group(self._group, dict(record)))
                return
            except _AlreadyExists:
                pass
        except _AlreadyExists:
            pass
        # An entry with our id survives from a process that crashed (or a
        # session or lease that expired): replace it now rather than wait
        # for the backend to expire it.
        LOG.info("Replacing a stale entry for %s", self._name)
        if not self._backend.is_zookeeper:
            # The entry is keyed by our tooz member id and its liveness key
            # is the one we beat: rewriting the record makes it ours (etcd
            # moves the key onto our lease) with no moment where observers
            # could see the member missing. A ZooKeeper node belongs to the
            # session that created it, so it has to be created again.
            try:
                wait(what, coord.update_capabilities(self._group, dict(record)))
                return
            except exceptions.MemberNotFound:
                pass  # gone meanwhile: join below
        with contextlib.suppress(exceptions.MemberNotFound):
            wait(f"removing stale {self._name}", coord.leave_group(self._group))
        wait(what, coord.join_group(self._group, dict(record)))

    def confirm(self) -> bool:
        coord = self._require()
        check_joined = getattr(coord, "check_joined", None)
        if check_joined is None:
            return False
        self._backend.wait(f"checking {self._name}", check_joined(self._group))
        return True

    def refresh(self, record: Mapping[str, Any]) -> None:
        coord = self._require()
        self._backend.wait(
            f"updating {self._name}",
            coord.update_capabilities(self._group, dict(record)),
        )

    def leave(self) -> None:
        coord = self._require()
        self._backend.wait(f"leaving {self._name}", coord.leave_group(self._group))

    def close(self) -> None:
        if self._coord is not None:
            _stop_quietly(self._coord)
            self._coord = None

    def reset(self) -> bool:
        coord = self._coord
        if coord is None:
            return True
        kazoo_client = (
            getattr(coord, "_coord", None) if self._backend.is_zookeeper else None
        )
        if kazoo_client is not None and not kazoo_client._stopped.is_set():
            # kazoo reconnects by itself, and closing its session would
            # delete the member's node: during a leader election, or with
            # the member's server gone, observers would see it down. What
            # kazoo cannot get past alone is a server that lost its data:
            # it refuses, forever, a client that saw a newer zxid than its
            # own. Forgetting ours lets the client in; a server that still
            # knows the session resumes it, one that does not expires it and
            # kazoo opens a new one (the member then joins again).
            kazoo_client.last_zxid = 0
            return False
        self._coord = None
        _stop_quietly(coord, keep_liveness=True)
        return True


def _member_capabilities(
    coord: coordination.CoordinationDriver, *, group: bytes, tooz_member: bytes
) -> coordination.CoordAsyncResult[Any]:
    return coord.get_member_capabilities(group, tooz_member)


class ToozObserver:
    """Reads groups through a coordinator that never joins any."""

    def __init__(self, backend: ToozBackend) -> None:
        self._backend = backend
        self._tooz_member = (
            f"observer-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        ).encode()
        self._coord: coordination.CoordinationDriver | None = None
        self._failures = 0
        self._closed = False
        self._lock = threading.Lock()
        self._undecodable_groups: set[str] = set()

    def _coordinator(self) -> coordination.CoordinationDriver:
        if self._coord is None:
            self._coord = self._backend.coordinator(self._tooz_member)
        return self._coord

    def _read(
        self, what: str, call: Callable[[coordination.CoordinationDriver], Any]
    ) -> Any:
        # Another read may be stuck in a client library's connect: callers
        # wait no longer than the backend timeout for it.
        if not self._lock.acquire(timeout=self._backend.timing.backend_timeout):
            raise exceptions.BackendTimeout(f"{what}: backend is not answering")
        try:
            if self._closed:
                raise exceptions.BackendUnavailable(f"{what}: closed")
            try:
                coord = self._coordinator()
                self._backend.ensure_connected(coord, what)
                result = self._backend.wait(what, call(coord))
            except (
                exceptions.GroupNotFound,
                exceptions.MemberNotFound,
                _Undecodable,
            ):
                # The backend answered: the connection is fine.
                self._failures = 0
                raise
            except exceptions.BackendError:
                self._failures += 1
                if self._failures % OBSERVER_RECONNECT_AFTER == 0:
                    self._close_locked()
                raise
            self._failures = 0
            return result
        finally:
            if self._closed:
                self._close_locked()
            self._lock.release()

    def fetch(self, group_id: str) -> dict[str, Any]:
        """Members of ``group_id`` that are alive -> their stored record."""
        group = group_id.encode()
        try:
            raw = self._read(
                f"reading group {group_id}",
                lambda c: c.get_members_with_capabilities(group),
            )
        except _Undecodable as exc:
            raw = self._fetch_one_by_one(group_id, exc)
        return {member_id_from_tooz(k, group_id): v for k, v in raw.items()}

    def _fetch_one_by_one(self, group_id: str, cause: _Undecodable) -> dict[bytes, Any]:
        # tooz decodes a whole group at once, so one record it cannot read
        # (a Liberty zk driver's znode under the same prefix during an
        # upgrade, another program's data) would hide every member. Read
        # them one by one instead: such a member is alive (it is listed)
        # but has no capabilities to show.
        if group_id not in self._undecodable_groups:
            self._undecodable_groups.add(group_id)
            LOG.warning(
                "Group %s holds records that are not tooz capabilities (%s); "
                "those members are listed without capabilities",
                group_id,
                cause,
            )
        group = group_id.encode()
        raw: dict[bytes, Any] = {}
        for tooz_member in self._read(
            f"listing group {group_id}", lambda c: c.get_members(group)
        ):
            read_one = functools.partial(
                _member_capabilities, group=group, tooz_member=tooz_member
            )
            try:
                raw[tooz_member] = self._read(
                    f"reading member {tooz_member!r} of group {group_id}", read_one
                )
            except _Undecodable:
                raw[tooz_member] = None
            except exceptions.MemberNotFound:
                pass  # left meanwhile
        return raw

    def groups(self) -> list[str]:
        raw = self._read("listing groups", lambda c: c.get_groups())
        return sorted(g.decode() if isinstance(g, bytes) else g for g in raw)

    def _close_locked(self) -> None:
        if self._coord is not None:
            _stop_quietly(self._coord)
            self._coord = None

    def close(self) -> None:
        """Close the coordinator now, or when the read in progress ends."""
        self._closed = True
        if self._lock.acquire(timeout=self._backend.timing.backend_timeout):
            try:
                self._close_locked()
            finally:
                self._lock.release()


# -- the driver ---------------------------------------------------------------


class ToozServiceGroupDriver(base.ServiceGroupDriver):
    """Service groups on any tooz backend that supports group membership.

    :param conf: options registered by :func:`servicegroup.conf.register_opts`.
    :param clock: runs the background tasks (a FakeClock in tests).
    :param url: overrides ``conf.servicegroup_tooz_url``.
    """

    def __init__(
        self,
        conf: cfg.ConfigOpts,
        *,
        clock: scheduling.Clock | None = None,
        url: str | None = None,
    ) -> None:
        self._timing = sg_conf.timing_from_conf(conf)
        self._backend = ToozBackend(
            url if url is not None else conf.servicegroup_tooz_url,
            self._timing,
        )
        self._clock = clock or scheduling.SystemClock()
        self._observer = ToozObserver(self._backend)
        self._membership = membership.MembershipCache(
            self._observer.fetch, self._clock, self._timing
        )
        self._agents: dict[tuple[str, str], heartbeat.MemberAgent] = {}
        self._lock = threading.Lock()
        self._stopped = False
        LOG.info(
            "servicegroup on %s: report_interval %.1f s, service_down_time %.1f s",
            self._backend.redacted_url,
            self._timing.report_interval,
            self._timing.service_down_time,
        )

    def __repr__(self) -> str:
        return f"<ToozServiceGroupDriver {self._backend.redacted_url}>"

    @property
    def timing(self) -> sg_conf.Timing:
        """The timing in effect (after adjusting service_down_time)."""
        return self._timing

    def describe(self) -> Mapping[str, Any]:
        return {
            "driver": "tooz",
            "url": self._backend.redacted_url,
            "backend": self._backend.scheme,
            "report_interval": self._timing.report_interval,
            "service_down_time": self._timing.service_down_time,
            "refresh_interval": self._timing.refresh_interval,
            **self._backend.effective,
        }

    def join(
        self, member_id: str, group_id: str, capabilities: Mapping[str, Any]
    ) -> None:
        with self._lock:
            if self._stopped:
                raise exceptions.ServiceGroupError(
                    "the service group driver is stopped",
                    group_id=group_id,
                    member_id=member_id,
                )
            agent = self._agents.get((member_id, group_id))
            if agent is None:
                session = ToozMemberSession(self._backend, member_id, group_id)
                self._agents[(member_id, group_id)] = heartbeat.MemberAgent(
                    member_id,
                    group_id,
                    capabilities,
                    session,
                    self._clock,
                    self._timing,
                    on_change=self._membership.wake,
                )
                return
        agent.update_capabilities(capabilities)

    def update_capabilities(
        self, member_id: str, group_id: str, capabilities: Mapping[str, Any]
    ) -> None:
        self._agent(member_id, group_id).update_capabilities(capabilities)

    def leave(self, member_id: str, group_id: str) -> None:
        agent = self._agent(member_id, group_id, remove=True)
        agent.leave(self._timing.backend_timeout)

    def abandon(self, member_id: str, group_id: str) -> None:
        """Stop heartbeating for a member without leaving: a simulated crash.

        Observers see the member down after ``service_down_time``. For tests
        (``ServiceGroupFixture.crash``); a real service calls ``leave``.
        """
        self._agent(member_id, group_id, remove=True).abandon()

    def _agent(
        self, member_id: str, group_id: str, *, remove: bool = False
    ) -> heartbeat.MemberAgent:
        with self._lock:
            key = (member_id, group_id)
            agent = self._agents.pop(key, None) if remove else self._agents.get(key)
        if agent is None:
            raise exceptions.MemberNotJoined(
                f"member {member_id} has not joined group {group_id} here",
                group_id=group_id,
                member_id=member_id,
            )
        return agent

    def is_up(self, member_id: str, group_id: str) -> bool:
        up = self._membership.up_sets.get(group_id)
        if up is None:
            # The first question about a group costs a fetch: check the ids
            # before any traffic (later questions need no check: an invalid
            # id is simply never up).
            validation.member_id(member_id)
            validation.group_id(group_id)
            up = self._view(group_id).up
        return member_id in up

    def _view(self, group_id: str) -> membership.GroupView:
        if group_id not in self._membership.up_sets:
            self._await_local_joins(group_id)
        return self._membership.view(group_id)

    def _await_local_joins(self, group_id: str) -> None:
        # A process that joins and then asks at once must see its own
        # members: the first fetch of a group waits (bounded) for the first
        # round of this process's agents in it.
        with self._lock:
            agents = [a for (_, g), a in self._agents.items() if g == group_id]
        deadline = self._clock.monotonic() + self._timing.backend_timeout
        for agent in agents:
            remaining = deadline - self._clock.monotonic()
            self._clock.wait(agent.first_round, max(0.0, remaining))

    def get_all(self, group_id: str) -> list[str]:
        return sorted(self._view(group_id).up)

    def get_members(self, group_id: str) -> list[sg_member.Member]:
        view = self._view(group_id)
        return [view.members[k] for k in sorted(view.members)]

    def get_updated_time(
        self, member_id: str, group_id: str
    ) -> datetime.datetime | None:
        known = self._view(group_id).members.get(member_id)
        return None if known is None else known.updated_at

    def get_groups(self) -> list[str]:
        return self._observer.groups()

    def watch(
        self, group_id: str, callback: membership.WatchCallback
    ) -> Callable[[], None]:
        return self._membership.watch(group_id, callback)

    def stop(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            agents = list(self._agents.values())
            self._agents.clear()
        # All members leave at once, so one slow leave does not use up the
        # time of the others; the wait is bounded as a whole.
        for agent in agents:
            agent.request_leave()
        deadline = self._clock.monotonic() + self._timing.backend_timeout
        for agent in agents:
            agent.wait_left(max(0.0, deadline - self._clock.monotonic()))
        self._membership.close()
        self._observer.close()


__all__ = [
    "ToozServiceGroupDriver",
    "available_backends",
    "parse_url",
    "redact_url",
]
