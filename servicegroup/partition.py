"""Partition work over the live members of a group.

Many worker processes each own a share of all resources; ownership follows
group membership. :class:`Partitioner` watches a group through the
servicegroup API, keeps a :class:`~servicegroup.ring.HashRing` of the
members that are up, and tells you what moved (a
:class:`~servicegroup.ring.Rebalance`) when membership changes (see
``doc/source/partition.rst``).

The ring itself, its hashing and the computation of what moves live in
:mod:`servicegroup.ring`, which does no I/O and starts no thread; their
public names are re-exported here, where users have always imported them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from servicegroup.ring import (
    DEFAULT_PARTITION_BITS,
    MAX_WEIGHT,
    VNODES_PER_WEIGHT,
    HashRing,
    K,
    Key,
    Rebalance,
    _check_weight,
)

__all__ = [
    "DEFAULT_PARTITION_BITS",
    "MAX_WEIGHT",
    "VNODES_PER_WEIGHT",
    "GroupMembership",
    "HashRing",
    "Key",
    "Partitioner",
    "Rebalance",
    "RebalanceCallback",
]

LOG = logging.getLogger(__name__)


class _MemberRecord(Protocol):
    """What the partitioner reads of a :class:`servicegroup.Member`."""

    @property
    def id(self) -> str: ...

    @property
    def is_up(self) -> bool: ...

    @property
    def capabilities(self) -> Mapping[str, Any]: ...

    @property
    def stale(self) -> bool: ...


class GroupMembership(Protocol):
    """The part of :class:`servicegroup.API` a :class:`Partitioner` uses."""

    def get_members(self, group_id: str) -> Sequence[_MemberRecord]: ...

    def watch(
        self, group_id: str, callback: Callable[[Any], None]
    ) -> Callable[[], None]: ...


RebalanceCallback = Callable[[Rebalance], None]


class Partitioner:
    """Share work among the live members of a group.

    Keeps a :class:`~servicegroup.ring.HashRing` of the members that are
    up, weighted by their ``weight_capability``, and replaces it whenever
    the group's membership changes (it watches the group through ``api``).
    Lookups never touch the network and cost the same whatever the group's
    size.

    >>> parts = Partitioner(api, "rug", "rug-1")     # doctest: +SKIP
    >>> parts.mine(router_ids)                        # doctest: +SKIP

    Until this process sees its own member up in the group (its first
    refresh after joining), :meth:`belongs_to_me` answers False for every
    key and :meth:`mine` returns nothing: a member that is not on the ring
    owns nothing, and assuming otherwise could give a key two owners. After
    :meth:`close`, likewise.

    :param api: a :class:`servicegroup.API` (anything with ``get_members``
        and ``watch`` will do).
    :param group_id: the group whose members share the work.
    :param member_id: this process's own member, or None to only observe.
    :param weight_capability: the capability holding a member's weight (a
        positive number up to :data:`~servicegroup.ring.MAX_WEIGHT`; absent
        means 1.0). A bad value counts as 1.0 and is logged once.
    :param partition_bits: passed to :class:`~servicegroup.ring.HashRing`;
        every member must use the same value.
    """

    def __init__(
        self,
        api: GroupMembership,
        group_id: str,
        member_id: str | None = None,
        *,
        weight_capability: str = "weight",
        partition_bits: int = DEFAULT_PARTITION_BITS,
    ) -> None:
        self._api = api
        self._group_id = group_id
        self._member_id = member_id
        self._weight_capability = weight_capability
        self._bits = partition_bits
        # Serialises rebuilds and callback delivery, so every Rebalance's
        # ``old`` is the previous one's ``new``. Readers never take it.
        self._lock = threading.RLock()
        self._callbacks: list[RebalanceCallback] = []
        self._warned: set[tuple[str, str]] = set()
        self._closed = False
        self._ring = HashRing(partition_bits=partition_bits)
        # Watch first, then read: a change that lands in between is then
        # seen by the watcher, and both read the latest view under the lock.
        self._unwatch = api.watch(group_id, self._on_change)
        self.refresh()

    # -- state ----------------------------------------------------------------

    @property
    def group_id(self) -> str:
        return self._group_id

    @property
    def member_id(self) -> str | None:
        return self._member_id

    @property
    def ring(self) -> HashRing:
        """The current ring (immutable; a new one replaces it on change)."""
        return self._ring

    @property
    def active(self) -> bool:
        """Whether this member is on the current ring and not closed."""
        return (
            not self._closed
            and self._member_id is not None
            and self._member_id in self._ring
        )

    @property
    def stale(self) -> bool:
        """Whether this process could not refresh the group lately.

        The ring then stays as it was (fail static), while the others may
        already have evicted this member and handed its keys over. A worker
        that must never share a key with another should stop claiming while
        this is True. It reads the local view: no network traffic, but
        O(members), so check it per batch rather than per key.
        """
        members = self._api.get_members(self._group_id)
        return any(m.stale for m in members)

    # -- lookups --------------------------------------------------------------

    def owner(self, key: Key) -> str | None:
        """The member owning ``key``; None while no member is up."""
        return self._ring.owner(key)

    def owners(self, key: Key, n: int) -> list[str]:
        """Up to ``n`` distinct members for ``key``, owner first."""
        return self._ring.owners(key, n)

    def belongs_to_me(self, key: Key) -> bool:
        """Whether this member owns ``key`` now (see the class notes)."""
        me = self._require_member()
        if self._closed:
            return False
        return self._ring.owner(key) == me

    def mine(self, keys: Iterable[K]) -> list[K]:
        """The keys among ``keys`` that this member owns now, in order."""
        me = self._require_member()
        if self._closed:
            return []
        return self._ring.owned_by(keys, me)

    # -- changes --------------------------------------------------------------

    def on_rebalance(
        self, callback: RebalanceCallback, *, initial: bool = False
    ) -> Callable[[], None]:
        """Call ``callback`` with a :class:`.Rebalance` on every ring change.

        Callbacks run on the thread that saw the change (the library's
        refresh thread, or the caller of :meth:`refresh`), one at a time and
        in order; keep them quick and hand real work to your own thread.
        An exception is logged, never raised into the refresh loop.

        :param initial: also call it at once with the change from an empty
            ring to the current one, so nothing falls between reading the
            current state and subscribing.
        :returns: a function that stops the calls.
        """
        with self._lock:
            self._callbacks.append(callback)
            if initial:
                empty = HashRing(partition_bits=self._bits)
                self._deliver([callback], self._rebalance(empty, self._ring))

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return unsubscribe

    def refresh(self) -> Rebalance | None:
        """Rebuild the ring from the group's current members now.

        The watcher does this on every membership change; call it after
        something the watcher does not see, such as a weight change. Returns
        what changed, or None.
        """
        with self._lock:
            if self._closed:
                return None
            members = self._api.get_members(self._group_id)
            weights = {m.id: self._weight(m) for m in members if m.is_up}
            if weights == dict(self._ring.members):
                return None
            new = HashRing(weights, partition_bits=self._bits)
            change = self._rebalance(self._ring, new)
            self._ring = new
            LOG.debug(
                "Group %s rebalanced: %d members, +%s -%s, %.1f%% moved",
                self._group_id,
                len(new),
                sorted(change.joined),
                sorted(change.left),
                100 * change.moved_share,
            )
            self._deliver(list(self._callbacks), change)
            return change

    def close(self) -> None:
        """Stop following the group; nothing belongs to this member any more.

        Call it before leaving the group so that this process stops
        claiming its keys at once. Idempotent.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._callbacks.clear()
        self._unwatch()

    def __enter__(self) -> Partitioner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Partitioner(group_id={self._group_id!r}, "
            f"member_id={self._member_id!r}, ring={self._ring!r})"
        )

    # -- internals ------------------------------------------------------------

    def _on_change(self, change: object) -> None:
        # Runs on the library's refresh thread: never let anything escape.
        try:
            self.refresh()
        except Exception:
            LOG.exception(
                "Cannot rebuild the ring of group %s; keeping the old one",
                self._group_id,
            )

    def _require_member(self) -> str:
        if self._member_id is None:
            raise ValueError(
                "this Partitioner only observes; pass member_id to ask "
                "what belongs to it"
            )
        return self._member_id

    def _weight(self, member: _MemberRecord) -> float:
        value = member.capabilities.get(self._weight_capability, 1.0)
        try:
            return _check_weight(member.id, value)
        except (TypeError, ValueError) as exc:
            token = (member.id, repr(value))
            if token not in self._warned:
                self._warned.add(token)
                LOG.warning(
                    "Member %s of group %s: %s; using weight 1.0",
                    member.id,
                    self._group_id,
                    exc,
                )
            return 1.0

    def _rebalance(self, old: HashRing, new: HashRing) -> Rebalance:
        return Rebalance.between(
            old, new, group_id=self._group_id, member_id=self._member_id
        )

    def _deliver(self, callbacks: list[RebalanceCallback], change: Rebalance) -> None:
        for callback in callbacks:
            try:
                callback(change)
            except Exception:
                LOG.exception(
                    "on_rebalance callback %r of group %s failed",
                    callback,
                    self._group_id,
                )
