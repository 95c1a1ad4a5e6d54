"""memcached (``memcached://``, twemproxy in front of several): one item per group.

What differs from the other backends, all of it here: the timing is whole
seconds (``membership_timeout`` one second more than ``service_down_time``,
for memcached's once-a-second clock) and pymemcache's socket ``timeout``;
our driver (:func:`_memcached_driver`) stops rewriting the group item on
every heartbeat (the beat's liveness key holds its time; members confirm
with two small reads, ``confirms_membership``), backs off briefly on
``cas`` clashes, keeps members whose keys a dead node or a proxy lost, and
keeps the liveness key on a reset and after a leave.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from tooz import coordination
from tooz import utils as tooz_utils

from servicegroup import member as sg_member
from servicegroup.drivers.tooz import compat, server_limits
from servicegroup.drivers.tooz.backends import base

T = TypeVar("T")


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
def _memcached_driver() -> type[base.Coordinator]:
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

    class _MemcachedDriver(tooz_memcached.MemcachedDriver, base.KeepsLivenessOnReset):
        #: Our liveness key holds the mark of a leave (see leave_group).
        _left = False

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
            if not (self._left or self._keep_liveness):
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


class MemcachedTerms(server_limits.ServerTerms):
    """memcached keeps the expiry it is given, in whole seconds."""

    def expiry(self, granted: float | None, asked: float, context: str) -> str:
        early = max(0.0, asked - 1)
        return (
            f"dead members expire {early:g} to {server_limits.seconds(asked)} "
            f"after their last heartbeat (their memcached key is set to expire "
            f"in {server_limits.seconds(asked)}, in whole seconds on memcached's "
            f"once-a-second clock; {context})"
        )


class MemcachedBackend(base.ConfirmingBackend):
    """memcached through our subclass of tooz's driver."""

    schemes = ("memcached",)
    client_module = "pymemcache"
    extra = "memcached"
    own_executor = True
    terms = MemcachedTerms()

    def timing_options(self) -> dict[str, Any]:
        # Whole seconds, and memcached's clock ticks once a second: an item
        # set for T seconds expires after T-1 to T, so one more second keeps
        # a member that beats within service_down_time from expiring early.
        return {
            "membership_timeout": math.ceil(self.timing.service_down_time) + 1,
            "timeout": math.ceil(self.timing.backend_timeout),
        }

    @classmethod
    def driver_class(cls) -> type[base.Coordinator]:
        return _memcached_driver()
