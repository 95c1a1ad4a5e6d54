"""Redis (``redis://``, Sentinel too): fixes for busy groups and fast recovery.

What differs from the other backends, all of it here: the timing is the
heartbeat key's expiry (``membership_timeout``) and redis-py's socket
``timeout``; our driver (:func:`_redis_driver`) replaces tooz's optimistic
transactions with Lua scripts, runs without redis-py's own retries, writes
the time of each beat into the heartbeat key (shown as ``updated_at``) so
that a round is one beat and one ``HEXISTS`` (``confirms_membership``), and
keeps the heartbeat key when a stuck client is reset rather than a member
leaving. A Redis server keeps the expiry it is given.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

from tooz import coordination

from servicegroup import member as sg_member
from servicegroup.drivers.tooz import compat, server_limits
from servicegroup.drivers.tooz.backends import base

LOG = logging.getLogger(__name__)

T = TypeVar("T")


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
local members, records, beat_keys = {}, {}, {}
for i = 1, #fields, 2 do
    if fields[i] ~= "${group_existence_key}" then
        members[#members + 1] = fields[i]
        records[#records + 1] = fields[i + 1]
        beat_keys[#beat_keys + 1] = beat_prefix .. fields[i]
    end
end
-- One MGET per thousand members rather than a GET each (unpack is bounded
-- by Lua's stack).
local alive = {}
for first = 1, #beat_keys, 1000 do
    local last = math.min(first + 999, #beat_keys)
    local beats = redis.call("mget", unpack(beat_keys, first, last))
    for j = 1, #beats do
        local k = first + j - 1
        if members[k] == self_id or beats[j] then
            alive[#alive + 1] = members[k]
            alive[#alive + 1] = records[k]
            alive[#alive + 1] = beats[j] or ""
        else
            redis.call("hdel", group_key, members[k])
        end
    end
end
-- One string for the whole group: the client parses it in one step (in C),
-- where it parses thousands of replies one by one in Python.
return cmsgpack.pack(alive)
""",
}


#: A member as one read decoded it: the raw record and beat it came from,
#: its member id and the record with the beat's time.
_Decoded = tuple[bytes, bytes, bytes, object]


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
def _redis_driver() -> type[base.Coordinator]:
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
    import msgpack  # type: ignore[import-untyped]
    from redis import backoff, retry
    from tooz.drivers import redis as tooz_redis

    class _RedisDriver(tooz_redis.RedisDriver, base.KeepsLivenessOnReset):
        SCRIPTS = {**tooz_redis.RedisDriver.SCRIPTS, **_REDIS_SCRIPTS}

        def __init__(
            self, member_id: bytes, parsed_url: Any, options: dict[str, Any]
        ) -> None:
            super().__init__(member_id, parsed_url, options)
            #: group -> raw member id -> what the latest read decoded of it
            #: (see get_members_with_capabilities).
            self._decoded: dict[bytes, dict[bytes, _Decoded]] = {}

        def _stop(self) -> None:
            # tooz's _stop deletes the member's heartbeat key: on a reset
            # the next observer to read the group would prune a live member.
            client = self._client
            if self._keep_liveness:
                self._client = None  # what makes tooz skip the delete
            try:
                super()._stop()
            finally:
                if client is not None and self._keep_liveness:
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
                # Most records and beats are those of the previous read (a
                # refresh every second, a beat every ten): decoding only
                # what changed was most of a read at 10,000 members, and
                # the same record object lets the view keep its Member.
                known = self._decoded.get(group_id, {})
                decoded: dict[bytes, _Decoded] = {}
                records: dict[bytes, coordination.Capabilities | None] = {}
                fields = msgpack.unpackb(answer, raw=True)
                for i in range(0, len(fields), 3):
                    raw_id, raw_record, raw_beat = fields[i : i + 3]
                    seen = known.get(raw_id)
                    if seen is None or seen[:2] != (raw_record, raw_beat):
                        record = sg_member.with_heartbeat(
                            self._loads(raw_record), _beat_time(raw_beat)
                        )
                        member_id = self._decode_member_id(raw_id)
                        seen = (raw_record, raw_beat, member_id, record)
                    decoded[raw_id] = seen
                    records[seen[2]] = cast("coordination.Capabilities | None", seen[3])
                self._decoded[group_id] = decoded
                return records

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


class RedisTerms(server_limits.ServerTerms):
    """A Redis server keeps the expiry it is given."""

    expires_by = "the expiry of their Redis heartbeat key"


class RedisBackend(base.ConfirmingBackend):
    """Redis through our subclass of tooz's driver."""

    schemes = ("redis",)
    client_module = "redis"
    extra = "redis"
    own_executor = True
    terms = RedisTerms()

    def timing_options(self) -> dict[str, Any]:
        return {
            "membership_timeout": self.timing.service_down_time,
            "timeout": math.ceil(self.timing.backend_timeout),
        }

    @classmethod
    def driver_class(cls) -> type[base.Coordinator]:
        return _redis_driver()
