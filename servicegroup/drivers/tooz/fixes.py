"""Our subclasses of tooz drivers, fixing tooz's behaviour.

The file driver gains ``update_capabilities``; the Redis driver runs without
redis-py's retries and with Lua scripts instead of optimistic transactions;
the memcached driver stops rewriting the group item on every heartbeat;
the etcd driver takes several endpoints and fails over between them.
:func:`_driver_override` picks the subclass for a URL scheme.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import random
import tempfile
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

from tooz import coordination
from tooz import utils as tooz_utils
from tooz.drivers import file as tooz_file

from servicegroup import member as sg_member
from servicegroup.drivers.tooz import compat

LOG = logging.getLogger(__name__)

T = TypeVar("T")

# Fail at import, naming what is missing, if this tooz lacks the private
# names the subclasses below use (the optional drivers check theirs when
# they are first built).
compat.check_core()


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

    def delete_group(self, group_id: bytes) -> coordination.CoordAsyncResult[None]:
        # tooz refuses to delete a group while any member file is left, even
        # one whose member expired long ago (a killed process never removes
        # its file): those are removed first, as other backends expire them.
        group_dir = os.path.join(self._group_dir, self._make_filesystem_safe(group_id))
        with self._driver_lock:
            try:
                entries = os.listdir(group_dir)
            except FileNotFoundError:
                entries = []
            for entry in entries:
                path = os.path.join(group_dir, entry)
                if entry.endswith(".raw") and not self._is_alive(path):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
        return super().delete_group(group_id)

    def _is_alive(self, path: str) -> bool:
        # The same rule as tooz's get_members: written within the timeout.
        try:
            age = time.time() - os.stat(path).st_mtime
        except FileNotFoundError:
            return False
        return 0 <= age <= self._timeout


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
        local beat = redis.call("get", beat_prefix .. member)
        if member == self_id or beat then
            alive[#alive + 1] = member
            alive[#alive + 1] = fields[i + 1]
            alive[#alive + 1] = beat or ""
        else
            redis.call("hdel", group_key, member)
        end
    end
end
return alive
""",
}


def _beat_time(raw: object) -> float | None:
    """The time a heartbeat key holds, if it holds one (tooz's: a constant)."""
    try:
        return float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


_unused_password_warned: set[str] = set()


def _warn_if_password_unused(client: Any, parsed_url: Any) -> None:
    """Say so when the URL has a password that the server does not ask for.

    redis-py swallows the error a server without ``requirepass`` answers to
    the AUTH it sends on connecting, so a password meant for production
    silently protects nothing: that server accepts any client. Asked once
    per server and process.
    """
    kwargs = client.connection_pool.connection_kwargs
    password = kwargs.get("password")
    where = f"{parsed_url.hostname}:{parsed_url.port}"
    if not password or where in _unused_password_warned:
        return
    from redis import exceptions as redis_exceptions

    username = kwargs.get("username")
    args = ("AUTH", username, password) if username else ("AUTH", password)
    try:
        client.execute_command(*args)
    except (
        redis_exceptions.AuthenticationError,
        redis_exceptions.ResponseError,
    ) as exc:
        if "without any password configured" not in str(exc):
            raise
        _unused_password_warned.add(where)
        LOG.warning(
            "The Redis server at %s requires no password: the one in "
            "servicegroup_tooz_url is not used, and the server accepts any "
            "client",
            where,
        )


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
    compat.check_redis()
    from redis import backoff, retry
    from tooz.drivers import redis as tooz_redis

    class _RedisDriver(tooz_redis.RedisDriver):
        SCRIPTS = {**tooz_redis.RedisDriver.SCRIPTS, **_REDIS_SCRIPTS}

        #: Set before stop() when a stuck client is reset, not a member
        #: leaving: tooz's _stop deletes the member's heartbeat key, and the
        #: next observer to read the group would prune a live member.
        keep_liveness_on_stop = False

        def _stop(self) -> None:
            client = self._client
            if self.keep_liveness_on_stop:
                self._client = None  # what makes tooz skip the delete
            try:
                super()._stop()
            finally:
                if client is not None and self.keep_liveness_on_stop:
                    client.connection_pool.disconnect()

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

        def _start(self) -> None:
            super()._start()
            _warn_if_password_unused(self._client, self._parsed_url)

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

        def heartbeat(self) -> float:
            # tooz writes a constant; the time of the beat lets observers
            # show it as updated_at, so the record is not rewritten every
            # round (see check_joined).
            assert self._client is not None
            self._client.psetex(
                self._encode_beat_id(self._member_id),
                time_ms=max(0, int(self.membership_timeout * 1000.0)),
                value=repr(time.time()),
            )
            for lock in self._acquired_locks.copy():
                lock.heartbeat()
            return float(self.membership_timeout)

        def check_joined(self, group_id: bytes) -> coordination.CoordinatorResult[None]:
            """Raise MemberNotJoined if we are no longer in the group.

            One HEXISTS, where rewriting the record every round cost a
            script and its three commands. A missing group answers the
            same (the member then creates it when it joins again).
            """

            def check() -> None:
                assert self._client is not None
                if not self._client.hexists(
                    self._encode_group_id(group_id),
                    self._encode_member_id(self._member_id),
                ):
                    raise coordination.MemberNotJoined(group_id, self._member_id)

            return tooz_redis.RedisFutureResult(self._submit(check))

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
                    self._decode_member_id(answer[i]): cast(
                        "coordination.Capabilities | None",
                        sg_member.with_heartbeat(
                            self._loads(answer[i + 1]), _beat_time(answer[i + 2])
                        ),
                    )
                    for i in range(0, len(answer), 3)
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


#: Wait after the first clash of a gets/cas change of a memcached group
#: item, and the most any wait grows to (doubling, drawn at random so that
#: clashing writers part: a thousand members joining at once otherwise
#: clash round after round).
_MEMCACHED_CAS_FIRST_BACKOFF = 0.002
_MEMCACHED_CAS_MAX_BACKOFF = 0.25
#: Prefix of the key counting a group item's changes (see check_joined).
_MEMCACHED_GENERATION_PREFIX = b"_SG_GROUP_GENERATION_"
#: What a leave writes to the member's liveness key (a beat is a float).
_MEMCACHED_LEFT = b"left"


@dataclasses.dataclass
class _SeenMember:
    """What a memcached reader last read of one member."""

    #: The latest beat value read (the time of the beat).
    beat: Any
    #: time.monotonic() when that value was first read.
    read_at: float
    #: The capabilities last read from the group item.
    capabilities: Any


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
    member checks that it is still in the group with two small reads, the
    group item only when it changed (:meth:`check_joined`: three server
    operations per member per round in all), and writes its record only
    when its capabilities change. A read prunes dead members with one
    ``cas`` and never retries: the next read prunes what a clash left.

    Imported on first use: pymemcache is an optional extra.
    """
    compat.check_memcached()
    from tooz.drivers import memcached as tooz_memcached

    class _MemcachedDriver(tooz_memcached.MemcachedDriver):
        #: Our liveness key holds the mark of a leave (see leave_group).
        _left = False
        #: Set before stop() when a stuck client is reset, not a member
        #: leaving: read by _stop, as on Redis.
        keep_liveness_on_stop = False

        def _change_group(
            self, group_id: bytes, change: Callable[[dict[bytes, Any]], None]
        ) -> None:
            """Apply ``change`` to the group item with gets/cas.

            tooz sleeps a second or more after each clash, which a few
            hundred members joining at once (a restart) turn into minutes;
            here a clash waits milliseconds at first, doubling up to a
            quarter of a second.
            """
            encoded_group = self._encode_group_id(group_id)
            # Bounded like any other call (the client timeout): the
            # heartbeat loop retries later with its own backoff.
            deadline = time.monotonic() + self.timeout
            backoff = _MEMCACHED_CAS_FIRST_BACKOFF
            while True:
                members, cas = self.client.gets(encoded_group)
                if members is None:
                    raise coordination.GroupNotCreated(group_id)
                change(members)
                if self.client.cas(encoded_group, members, cas):
                    self._bump_generation(group_id)
                    return
                if time.monotonic() >= deadline:
                    raise coordination.ToozError(
                        f"group {group_id!r} kept changing for {self.timeout} s"
                    )
                time.sleep(random.uniform(0, backoff))
                backoff = min(backoff * 2, _MEMCACHED_CAS_MAX_BACKOFF)

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

            def joined() -> None:
                self._joined_groups.add(group_id)
                if self._left:  # our key holds the mark of a leave: beat now
                    self._left = False
                    self.heartbeat()

            return self._submit_change(group_id, join, joined)

        def leave_group(self, group_id: bytes) -> coordination.CoordAsyncResult[None]:
            def leave(members: dict[bytes, Any]) -> None:
                if self._member_id not in members:
                    raise coordination.MemberNotJoined(group_id, self._member_id)
                del members[self._member_id]

            def mark_and_leave() -> None:
                # The mark tells readers that the member left, rather than
                # being lost with a group item that was created again (see
                # _live_records); written first, so that it is there even
                # when the item no longer lists us. _stop keeps it; it
                # expires when a beat would have.
                self.client.set(
                    self._encode_member_id(self._member_id),
                    _MEMCACHED_LEFT,
                    expire=self.membership_timeout,
                )
                self._left = True
                self._change_group(group_id, leave)
                self._joined_groups.discard(group_id)

            return tooz_memcached.MemcachedFutureResult(
                self._executor.submit(mark_and_leave)
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

        def __init__(
            self, member_id: bytes, parsed_url: Any, options: dict[str, Any]
        ) -> None:
            super().__init__(member_id, parsed_url, options)
            #: (group, member) -> what this reader last knew of the member;
            #: see _live_records.
            self._seen: dict[tuple[bytes, bytes], _SeenMember] = {}
            #: group -> its generation key's value when this member last
            #: read the group item (see check_joined).
            self._generations_seen: dict[bytes, bytes] = {}

        def _stop(self) -> None:
            # tooz's _stop deletes the liveness key. After a leave that
            # would erase the mark that the member left, and on a reset of
            # a live member it would make readers count from the last beat
            # they saw; both keep the key (it expires by itself).
            if not (self._left or self.keep_liveness_on_stop):
                super()._stop()
                return
            coordination.CoordinationDriver._stop(self)
            for lock in list(self._acquired_locks):
                lock.release()
            self.client.close()

        def _live_records(self, group_id: bytes) -> dict[bytes, Any]:
            """Live members -> their capabilities, with the beat's time.

            A record can vanish while its member lives:

            - its liveness key, when the key's memcached node died or
              restarted, or a proxy in front (twemproxy) ejected the node
              and now hashes the key to another one, where the member
              writes it again only at its next beat;
            - its entry in the group item, when the item was lost the same
              way and the first member to notice created it again, or when
              another reader pruned the member while its key was lost; the
              member joins again at its next beat.

            Taking that member for dead would show a live service down. A
            beat read at some moment was written before it, so it expires
            at the latest ``membership_timeout`` after that moment: until
            then a member this reader saw stays, with the last beat and
            capabilities read, unless it left (a leave overwrites its key
            with a mark). A member that really died is dropped when its key
            would have expired, at most one read later than memcached
            itself would have dropped it.
            """
            encoded_group = self._encode_group_id(group_id)
            members, cas = self.client.gets(encoded_group)
            if members is None:
                raise coordination.GroupNotCreated(group_id)
            seen = self._seen
            # Saw before, gone from the item now: left, pruned, or lost.
            unlisted = [m for g, m in seen if g == group_id and m not in members]
            keys = {m: self._encode_member_id(m) for m in [*members, *unlisted]}
            beats = self.client.get_many(list(keys.values())) if keys else {}
            now = time.monotonic()
            live: dict[bytes, Any] = {}
            for m in keys:
                beat = beats.get(keys[m])
                last = seen.get((group_id, m))
                listed = m in members
                if beat == _MEMCACHED_LEFT:
                    beat = None
                    if not listed:
                        seen.pop((group_id, m), None)
                        continue
                caps = members[m].get(b"capabilities") if listed else None
                if beat:
                    if last is None or last.beat != beat:
                        if not listed and last is not None:
                            caps = last.capabilities
                        last = seen[(group_id, m)] = _SeenMember(beat, now, caps)
                    elif listed:
                        last.capabilities = caps
                elif last is not None and now < last.read_at + self.membership_timeout:
                    beat = last.beat  # lost before it could have expired
                    if listed:
                        last.capabilities = caps
                elif m != self._member_id or not listed:
                    seen.pop((group_id, m), None)
                    continue
                if not listed:
                    assert last is not None
                    caps = last.capabilities
                live[m] = sg_member.with_heartbeat(caps, beat)
            if any(m not in live for m in members):
                if self.client.cas(
                    encoded_group, {m: members[m] for m in members if m in live}, cas
                ):
                    self._bump_generation(group_id)
            return live

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

        def _generation_key(self, group_id: bytes) -> bytes:
            return _MEMCACHED_GENERATION_PREFIX + tooz_utils.to_binary(group_id)

        def _bump_generation(self, group_id: bytes) -> None:
            """Tell members that the group item changed (see check_joined)."""
            key = self._generation_key(group_id)
            if self.client.incr(key, 1) is None:
                # Never set, or lost with its node. A random start, so that
                # a member cannot find the value it last saw by chance.
                start = str(random.getrandbits(62)).encode()
                self.client.add(key, start, noreply=False)

        def check_joined(self, group_id: bytes) -> coordination.CoordAsyncResult[None]:
            """Raise GroupNotCreated or MemberNotJoined if we are gone.

            Every member asks this at every beat: reading the whole group
            item for it made each round cost N reads of N entries. The item
            is read only when the group's generation key, which every
            change of the item increments, differs from the value seen at
            the last read; otherwise a ``touch`` (no data) checks that the
            item still exists, since a lost item does not change the key.
            The key is read before the item, so a change between the two
            reads shows at the next check.
            """

            def check() -> None:
                key = self._generation_key(group_id)
                generation = self.client.get(key)
                encoded_group = self._encode_group_id(group_id)
                if not self.client.touch(encoded_group, 0, noreply=False):
                    raise coordination.GroupNotCreated(group_id)
                seen = self._generations_seen.get(group_id)
                if generation is not None and generation == seen:
                    return
                members = self.client.get(encoded_group)
                if members is None:
                    raise coordination.GroupNotCreated(group_id)
                if self._member_id not in members:
                    raise coordination.MemberNotJoined(group_id, self._member_id)
                if generation is None:
                    self._bump_generation(group_id)  # read at the next check
                else:
                    self._generations_seen[group_id] = generation

            return self._submit_read(check)

    return _MemcachedDriver


@functools.cache
def _zookeeper_driver() -> type[coordination.CoordinationDriver]:
    """tooz's ZooKeeper driver, able to create a group after a wipe.

    tooz creates its namespace node (``/tooz``) only in ``start()``. A
    member keeps its client across a ZooKeeper that lost its data (see
    ``ToozMemberSession.reset``), so it must create the namespace again
    before the group, or every join fails with "namespace has not been
    created". Imported on first use: kazoo is an optional extra.
    """
    compat.check_zookeeper()
    from tooz.drivers import zookeeper as tooz_zookeeper

    class _KazooDriver(tooz_zookeeper.KazooDriver):
        def create_group(self, group_id: bytes) -> Any:
            self._coord.ensure_path_async(self._base_path()).get(timeout=self.timeout)
            return super().create_group(group_id)

    return _KazooDriver


@functools.cache
def _etcd_driver() -> type[coordination.CoordinationDriver]:
    """tooz's etcd driver on every endpoint of the URL, not only its host.

    tooz builds an etcd3gw client for the URL's one ``host:port``; here it
    is replaced, before any traffic, by a :class:`.etcd.FailoverClient`
    over the URL's host and its ``hosts`` options, with tooz's TLS settings
    (``ca_cert`` made to win over ``REQUESTS_CA_BUNDLE``, which requests
    otherwise lets replace it), its timeout and its API path. Everything
    else is tooz's: the lease, which holds the client and so follows it to
    another endpoint, and every request. Imported on first use: etcd3gw is
    an optional extra.
    """
    compat.check_etcd()
    from tooz.drivers import etcd3gw as tooz_etcd

    from servicegroup.drivers.tooz import etcd, urls

    class _Etcd3Driver(tooz_etcd.Etcd3Driver):
        def __init__(
            self, member_id: bytes, parsed_url: Any, options: dict[str, Any]
        ) -> None:
            super().__init__(member_id, parsed_url, options)
            single = self.client
            self.client = etcd.FailoverClient(
                urls.etcd_endpoints(parsed_url, options.get(urls.HOSTS_OPTION)),
                protocol=single.protocol,
                session=etcd.pinned_session(single.session),
                timeout=single.timeout,
                api_path=single._api_path,
            )

    return _Etcd3Driver


def _driver_override(scheme: str) -> type[coordination.CoordinationDriver] | None:
    """Our subclass of the tooz driver for ``scheme``, if we have one."""
    if scheme == "file":
        return _FileDriver
    if scheme in ("kazoo", "zookeeper"):
        return _zookeeper_driver()
    if scheme == "redis":
        return _redis_driver()
    if scheme == "memcached":
        return _memcached_driver()
    if scheme in ("etcd3+http", "etcd3+https"):
        return _etcd_driver()
    return None
