"""The consistent hash ring: which member owns a key, and what moves.

A :class:`HashRing` is pure and immutable: a function of its members and
their weights alone, with no I/O, no threads and nothing of the
servicegroup API, so every process that sees the same members computes the
same table. :class:`Rebalance` is what changed from one ring to the next.
Following a live group and replacing its ring as members come and go is
the job of :mod:`servicegroup.partition`, which re-exports these names (see
``doc/source/partition.rst``).

How the ring works, and why
---------------------------

The key space is cut into ``2**partition_bits`` fixed partitions (262,144 by
default). A key's partition is the top bits of a 64-bit BLAKE2b digest of
its UTF-8 bytes, so a lookup is one hash and one list index: no bisect, no
per-call rebuilding, whatever the number of members.

Each partition is owned by rendezvous (highest-random-weight) hashing over
the members' virtual nodes: every virtual node walks its own endless
pseudo-random sequence of partitions (SHAKE-128 of the node's id), and a
partition belongs to the virtual node whose sequence reaches it first
(ties: the node with the smaller id). This choice is what makes the ring:

* **consistent and minimal**: a partition's owner is the minimum of a value
  each virtual node computes on its own, so adding a member only moves
  partitions *to* it and removing one only moves *its* partitions. What
  moves on a join or leave is exactly the joiner's or leaver's share.
* **balanced**: shares are as even as ``partitions / members`` allows
  (about 1.4% standard deviation at 100 members, where a classic ring of
  32 virtual nodes per member has about 18%).
* **a function of the membership only**: every process computes the same
  table from the same members and weights, in any order, on any platform.
  Python's ``hash()`` is never used.

Building walks the sequences round by round in C-level iterator code (the
first-claim order falls out of writing claims in reverse), which keeps a
1,000-member build to a fraction of a second in pure Python.

Weights become virtual-node counts (``round(weight * 4)``, at least one),
so a member's expected share is proportional to its weight, in steps of
0.25.
"""

from __future__ import annotations

import array
import collections
import dataclasses
import hashlib
import math
import operator
import sys
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import TypeVar

__all__ = [
    "DEFAULT_PARTITION_BITS",
    "MAX_WEIGHT",
    "VNODES_PER_WEIGHT",
    "HashRing",
    "Key",
    "Rebalance",
]

Key = str | bytes
"""What can be placed on the ring: text (hashed as UTF-8) or bytes."""

K = TypeVar("K", bound=Key)

DEFAULT_PARTITION_BITS = 18
"""``2**18`` partitions: the smallest power of two whose rounding keeps the
max/mean share of 100 equal members under 1.10 with a wide margin."""

VNODES_PER_WEIGHT = 4
"""Virtual nodes per unit of weight; weights are honoured in 1/4 steps."""

MAX_WEIGHT = 1000.0
"""Largest accepted weight; it bounds the virtual nodes one member adds."""

# Partitions are filled in planes of 2**16 so that a virtual node's
# sequence can be read straight out of its SHAKE output as unsigned 16-bit
# integers, with no per-element Python arithmetic.
_PLANE_BITS = 16
_PLANE = 1 << _PLANE_BITS
_MIN_PARTITION_BITS = _PLANE_BITS
_MAX_PARTITION_BITS = 24

# Claims per partition in the first pass of a plane. About e**-3 (5%) of
# the partitions are still free after it; later passes size themselves on
# how many are left, which costs less than one big pass sized for the
# unluckiest partition.
_OVERSAMPLE = 3.0

# Rounds of claims that count (see _fill_plane). A group too small to
# claim every partition in that many rounds still places 512 points per
# virtual node, which keeps shares within about 1.5% (standard deviation)
# at 10 to 100 members; doubling it buys little balance for twice the
# build time.
_CLAIM_ROUNDS = 512

# Claims per SHAKE output; part of the ring's definition, like the rest.
_BLOCK_ROUNDS = 64

_VNODE_PERSON = b"sg-ring-vnode"
_REPLICA_PERSON = b"sg-ring-replica"
_BIG_ENDIAN = sys.byteorder == "big"


def _key_bytes(key: Key) -> bytes:
    if isinstance(key, str):
        return key.encode("utf-8")
    if isinstance(key, (bytes, bytearray, memoryview)):
        return bytes(key)
    raise TypeError(f"ring keys are str or bytes, not {type(key).__name__}")


def _check_weight(member: str, weight: float) -> float:
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise TypeError(f"weight of {member!r} must be a number, not {weight!r}")
    weight = float(weight)
    if not (0.0 < weight <= MAX_WEIGHT) or math.isnan(weight):
        raise ValueError(
            f"weight of {member!r} must be > 0 and <= {MAX_WEIGHT:g}, not {weight!r}"
        )
    return weight


def _vnode_count(weight: float) -> int:
    """How many virtual nodes a member of ``weight`` gets (at least one)."""
    return max(1, round(weight * VNODES_PER_WEIGHT))


def _vnode_ids(member: str, weight: float) -> list[bytes]:
    encoded = member.encode("utf-8")
    return [
        hashlib.blake2b(
            index.to_bytes(4, "big") + encoded,
            digest_size=16,
            person=_VNODE_PERSON,
        ).digest()
        for index in range(_vnode_count(weight))
    ]


def _claims(tag: bytes, start: int, stop: int) -> bytes:
    """Claims ``start`` to ``stop`` of one virtual node in one plane.

    The endless sequence is cut into blocks of :data:`_BLOCK_ROUNDS` claims,
    each its own SHAKE-128 output, so extending it never rehashes what was
    read before.
    """
    first, last = start // _BLOCK_ROUNDS, (stop - 1) // _BLOCK_ROUNDS
    raw = b"".join(
        hashlib.shake_128(tag + block.to_bytes(4, "big")).digest(2 * _BLOCK_ROUNDS)
        for block in range(first, last + 1)
    )
    skip = start - first * _BLOCK_ROUNDS
    return raw[2 * skip : 2 * (skip + stop - start)]


def _sequences(
    vnodes: list[bytes], plane: int, start: int, stop: int
) -> array.array[int]:
    """Claims ``start`` to ``stop`` of every virtual node, round-major.

    Element ``r * len(vnodes) + i`` is the partition (within ``plane``)
    that virtual node ``i`` claims in round ``start + r``.
    """
    width = len(vnodes)
    suffix = plane.to_bytes(1, "big")
    out = array.array("H", bytes(2 * width * (stop - start)))
    for index, vnode in enumerate(vnodes):
        out[index::width] = array.array("H", _claims(vnode + suffix, start, stop))
    if _BIG_ENDIAN:
        # The sequences are defined as little-endian 16-bit integers.
        out.byteswap()
    return out


def _fill_plane(vnodes: list[bytes], owners: list[str], plane: int) -> list[str | None]:
    """Give each partition of a plane to the virtual node reaching it first.

    Claims are written in reverse order, so for every partition the write
    that survives is the earliest one: the first claim wins, lower index
    winning within a round. Everything runs in C-level iterators.

    Only the first :data:`_CLAIM_ROUNDS` rounds count. A partition nobody
    claims by then goes to the owner of the next claimed partition of the
    plane (wrapping around), as on a classic ring. That rule is still a
    function of the membership alone, and it still only moves partitions to
    a joiner or from a leaver; it bounds the work for small groups, where
    reaching every partition would take many rounds.
    """
    table: list[str | None] = [None] * _PLANE
    width = len(vnodes)
    rounds = math.ceil(_OVERSAMPLE * _PLANE / width)
    start, stop = 0, min(_CLAIM_ROUNDS, rounds)
    _write_first_claims(table, vnodes, owners, plane, start, stop)
    while stop < _CLAIM_ROUNDS and None in table:
        # Later rounds only matter where nobody has claimed yet: write them
        # to a scratch table and keep what the earlier rounds left free.
        # (Writing everything and merging beats filtering claim by claim.)
        # Each round reaches a free partition with odds width/_PLANE, so
        # this many more rounds leave none free about half the time.
        free = table.count(None)
        more = math.ceil(_PLANE / width * math.log(2 * free + 1))
        start, stop = stop, min(_CLAIM_ROUNDS, stop + more)
        later: list[str | None] = [None] * _PLANE
        _write_first_claims(later, vnodes, owners, plane, start, stop)
        table = [first or then for first, then in zip(table, later, strict=True)]
    if None in table:
        _inherit_from_successors(table)
    return table


def _write_first_claims(
    table: list[str | None],
    vnodes: list[bytes],
    owners: list[str],
    plane: int,
    start: int,
    stop: int,
) -> None:
    claims = _sequences(vnodes, plane, start, stop)
    # Reversed, so the surviving write for each partition is its first.
    collections.deque(
        map(
            table.__setitem__,
            reversed(claims),
            reversed(owners * (stop - start)),
        ),
        maxlen=0,
    )


def _inherit_from_successors(table: list[str | None]) -> None:
    """Give every unclaimed partition the owner of the next claimed one."""
    # The end of the plane inherits from its first claimed partition.
    heir = next(owner for owner in table if owner is not None)
    for index in range(len(table) - 1, -1, -1):
        owner = table[index]
        if owner is None:
            table[index] = heir
        else:
            heir = owner


class HashRing:
    """An immutable consistent hash ring over weighted members.

    >>> ring = HashRing({"worker-1": 1.0, "worker-2": 1.0})
    >>> ring.owner("router-42") in ring
    True

    :param members: member id -> weight (a positive number up to
        :data:`MAX_WEIGHT`), or an iterable of ids that all weigh 1.0.
    :param partition_bits: ``2**partition_bits`` partitions (16 to 24).
        Every process sharing work must use the same value.
    :raises TypeError: a weight is not a number, or an id is not a str.
    :raises ValueError: a weight is out of range, an id is empty, or
        ``partition_bits`` is out of range.
    """

    __slots__ = (
        "_weights",
        "_bits",
        "_shift",
        "_table",
        "_owning",
        "_shares",
    )

    def __init__(
        self,
        members: Mapping[str, float] | Iterable[str] = (),
        *,
        partition_bits: int = DEFAULT_PARTITION_BITS,
    ) -> None:
        if isinstance(partition_bits, bool) or not (
            isinstance(partition_bits, int)
            and _MIN_PARTITION_BITS <= partition_bits <= _MAX_PARTITION_BITS
        ):
            raise ValueError(
                f"partition_bits must be an int from {_MIN_PARTITION_BITS} "
                f"to {_MAX_PARTITION_BITS}, not {partition_bits!r}"
            )
        if isinstance(members, (str, bytes)):
            # A lone id would be split into one member per character.
            raise TypeError("members is a mapping or an iterable of ids")
        if isinstance(members, Mapping):
            items = list(members.items())
        else:
            items = [(member, 1.0) for member in members]
        weights: dict[str, float] = {}
        for member, weight in items:
            if not isinstance(member, str):
                raise TypeError(f"member ids are str, not {type(member).__name__}")
            if not member:
                raise ValueError("member ids must not be empty")
            weights[member] = _check_weight(member, weight)
        self._weights = dict(sorted(weights.items()))
        self._bits = partition_bits
        self._shift = 64 - partition_bits
        self._table = self._build()
        self._owning = frozenset(self._table)
        self._shares: dict[str, float] | None = None

    def _build(self) -> list[str]:
        size = 1 << self._bits
        if not self._weights:
            return []
        if len(self._weights) == 1:
            return [next(iter(self._weights))] * size
        nodes = sorted(
            (vnode, member)
            for member, weight in self._weights.items()
            for vnode in _vnode_ids(member, weight)
        )
        vnodes = [vnode for vnode, _ in nodes]
        owners = [member for _, member in nodes]
        table: list[str] = []
        for plane in range(size >> _PLANE_BITS):
            # Every partition of a plane is filled: the loop in
            # _fill_plane only ends once none is None.
            table.extend(_fill_plane(vnodes, owners, plane))  # type: ignore[arg-type]
        return table

    # -- what the ring is -----------------------------------------------------

    @property
    def members(self) -> Mapping[str, float]:
        """Member id -> weight, read-only, sorted by id."""
        return MappingProxyType(self._weights)

    @property
    def partition_bits(self) -> int:
        """``log2`` of the number of partitions."""
        return self._bits

    @property
    def partitions(self) -> int:
        """How many partitions the key space is cut into."""
        return 1 << self._bits

    def __len__(self) -> int:
        """The number of members."""
        return len(self._weights)

    def __iter__(self) -> Iterator[str]:
        return iter(self._weights)

    def __contains__(self, member: object) -> bool:
        return member in self._weights

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HashRing):
            return NotImplemented
        return self._bits == other._bits and self._weights == other._weights

    def __hash__(self) -> int:
        return hash((self._bits, tuple(self._weights.items())))

    def __repr__(self) -> str:
        return f"HashRing(<{len(self._weights)} members>, partition_bits={self._bits})"

    def shares(self) -> dict[str, float]:
        """The exact share of the key space each member owns.

        Shares sum to 1.0 (empty for an empty ring). A member whose weight
        is tiny next to the others' can own nothing at all; it is listed
        with 0.0.
        """
        if self._shares is None:
            size = len(self._table)
            counts = collections.Counter(self._table)
            self._shares = {
                member: counts.get(member, 0) / size for member in self._weights
            }
        return dict(self._shares)

    # -- lookups --------------------------------------------------------------

    def partition(self, key: Key) -> int:
        """The partition ``key`` falls in (stable for a ``partition_bits``)."""
        digest = hashlib.blake2b(_key_bytes(key), digest_size=8).digest()
        return int.from_bytes(digest, "big") >> self._shift

    def partition_owner(self, index: int) -> str:
        """The member that owns partition ``index``.

        :raises IndexError: the ring is empty or ``index`` is out of range.
        """
        if not 0 <= index < len(self._table):
            raise IndexError(f"no partition {index} in {self!r}")
        return self._table[index]

    def partition_owners(self) -> tuple[str, ...]:
        """The owner of every partition, by partition index."""
        return tuple(self._table)

    def owner(self, key: Key) -> str | None:
        """The member that owns ``key``; None only if the ring is empty."""
        # The hot path: one hash, one shift, one index. Kept inline.
        if key.__class__ is str:
            key = key.encode("utf-8")
        elif key.__class__ is not bytes:
            key = _key_bytes(key)
        table = self._table
        if not table:
            return None
        digest = hashlib.blake2b(key, digest_size=8).digest()
        return table[int.from_bytes(digest, "big") >> self._shift]

    def owners(self, key: Key, n: int) -> list[str]:
        """Up to ``n`` distinct members for ``key``, primary first.

        ``owners(key, 1) == [owner(key)]`` and ``owners(key, n)[:m] ==
        owners(key, m)``. Replicas are the owners of the following
        partitions, so they move as little as the primary does. Asking for
        more replicas than there are members gives every member.
        """
        if n <= 0 or not self._table:
            return []
        table = self._table
        size = len(table)
        want = min(n, len(self._owning))
        start = self.partition(key)
        found: dict[str, None] = {}
        index = start
        while len(found) < want:
            found.setdefault(table[index])
            index += 1
            if index == size:
                index = 0
        result = list(found)
        if n > len(result) and len(result) < len(self._weights):
            # Members that own no partition (tiny weights) still count as
            # replicas, after the others, in an order fixed per key.
            encoded = _key_bytes(key)
            rest = sorted(
                (m for m in self._weights if m not in found),
                key=lambda m: hashlib.blake2b(
                    encoded + b"\0" + m.encode("utf-8"),
                    digest_size=8,
                    person=_REPLICA_PERSON,
                ).digest(),
            )
            result.extend(rest[: n - len(result)])
        return result

    def owned_by(self, keys: Iterable[K], member: str) -> list[K]:
        """The keys among ``keys`` that ``member`` owns, in order."""
        table = self._table
        if not table or member not in self._owning:
            return []
        shift = self._shift
        blake2b = hashlib.blake2b
        from_bytes = int.from_bytes
        out: list[K] = []
        for key in keys:
            raw = key.encode("utf-8") if isinstance(key, str) else key
            digest = blake2b(raw, digest_size=8).digest()
            if table[from_bytes(digest, "big") >> shift] == member:
                out.append(key)
        return out

    def moved_share(self, other: HashRing) -> float:
        """The share of the key space whose owner differs in ``other``."""
        if self._bits != other._bits:
            raise ValueError("rings with different partition_bits")
        if not self._table and not other._table:
            return 0.0
        if not self._table or not other._table:
            return 1.0
        changed = int(sum(map(operator.ne, self._table, other._table)))
        return changed / len(self._table)


@dataclasses.dataclass(frozen=True)
class Rebalance:
    """What changed when a ring was replaced by another.

    A :class:`~servicegroup.partition.Partitioner` hands one to its
    callbacks each time it replaces its ring; :meth:`between` computes one
    for any two rings.

    :ivar group_id: the group.
    :ivar member_id: the partitioner's own member (None for an observer).
    :ivar old: the ring before.
    :ivar new: the ring now.
    :ivar joined: members in ``new`` and not in ``old``.
    :ivar left: members in ``old`` and not in ``new``.
    :ivar reweighted: members in both whose weight changed.
    """

    group_id: str
    member_id: str | None
    old: HashRing
    new: HashRing
    joined: frozenset[str]
    left: frozenset[str]
    reweighted: frozenset[str]

    @classmethod
    def between(
        cls,
        old: HashRing,
        new: HashRing,
        *,
        group_id: str,
        member_id: str | None = None,
    ) -> Rebalance:
        """The change from ``old`` to ``new``, as seen by ``member_id``.

        Who joined, left or was reweighted is read off the two rings'
        members; which keys moved is computed when asked, key by key.
        """
        before, after = old.members, new.members
        return cls(
            group_id=group_id,
            member_id=member_id,
            old=old,
            new=new,
            joined=frozenset(after.keys() - before.keys()),
            left=frozenset(before.keys() - after.keys()),
            reweighted=frozenset(
                m for m in before.keys() & after.keys() if before[m] != after[m]
            ),
        )

    @property
    def moved_share(self) -> float:
        """The share of the key space whose owner changed."""
        return self.old.moved_share(self.new)

    def moved(self, keys: Iterable[K]) -> list[K]:
        """The keys among ``keys`` whose owner changed, in order."""
        out: list[K] = []
        for key in keys:
            before, after = self._owners(key)
            if before != after:
                out.append(key)
        return out

    def gained(self, keys: Iterable[K]) -> list[K]:
        """The keys this member owns now and did not before."""
        me = self.member_id
        out: list[K] = []
        for key in keys:
            before, after = self._owners(key)
            if after == me and before != me:
                out.append(key)
        return out

    def lost(self, keys: Iterable[K]) -> list[K]:
        """The keys this member owned before and does not now."""
        me = self.member_id
        out: list[K] = []
        for key in keys:
            before, after = self._owners(key)
            if before == me and after != me:
                out.append(key)
        return out

    def _owners(self, key: Key) -> tuple[str | None, str | None]:
        return self.old.owner(key), self.new.owner(key)
