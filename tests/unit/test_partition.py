"""Tests for servicegroup.partition: the ring's properties, then the glue."""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from servicegroup.partition import (
    DEFAULT_PARTITION_BITS,
    MAX_WEIGHT,
    HashRing,
)

# One plane (65,536 partitions) builds in milliseconds; the properties
# checked here do not depend on the size.
BITS = 16

PROPS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

member_ids = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.é",
    min_size=1,
    max_size=12,
)
member_sets = st.sets(member_ids, min_size=1, max_size=24)
weights = st.sampled_from([0.25, 0.5, 1.0, 1.0, 1.0, 1.5, 2.0, 3.0])
weighted_members = st.dictionaries(
    member_ids, weights, min_size=1, max_size=16
)
keys = st.one_of(st.text(max_size=20), st.binary(max_size=20))


def table(ring: HashRing) -> list[str]:
    return [ring.partition_owner(i) for i in range(ring.partitions)]


def only_moved_to(before: list[str], after: list[str], member: str) -> bool:
    """True when every changed partition now belongs to ``member``."""
    return all(
        a == b or b == member for a, b in zip(before, after, strict=True)
    )


def only_moved_from(before: list[str], after: list[str], member: str) -> bool:
    return all(
        a == b or a == member for a, b in zip(before, after, strict=True)
    )


def moved(before: list[str], after: list[str]) -> float:
    return sum(a != b for a, b in zip(before, after, strict=True)) / len(
        before
    )


# -- the checks can fail ---------------------------------------------------


def test_movement_checks_catch_modulo_hashing() -> None:
    # hash(key) % N is the textbook non-consistent scheme: adding a member
    # reshuffles nearly everything. The helpers must say so, or the
    # properties below prove nothing.
    def mod_n(members: list[str]) -> list[str]:
        ordered = sorted(members)
        return [ordered[i % len(ordered)] for i in range(4096)]

    before = mod_n([f"m{i}" for i in range(10)])
    after = mod_n([f"m{i}" for i in range(10)] + ["new"])
    assert not only_moved_to(before, after, "new")
    assert moved(before, after) > 0.5


# -- determinism -------------------------------------------------------------


def test_golden_owners() -> None:
    # Pinned values: a change here means every deployed worker would
    # disagree with an upgraded one about who owns what.
    ring = HashRing({"alpha": 1.0, "beta": 2.0, "gamma": 0.5, "delta": 1.0})
    assert ring.partition("router-1") == 100226
    assert [ring.owner(f"router-{i}") for i in range(1, 7)] == [
        "gamma",
        "alpha",
        "delta",
        "delta",
        "beta",
        "delta",
    ]
    assert ring.owner("é") == "gamma"
    assert ring.owners("router-1", 4) == ["gamma", "alpha", "beta", "delta"]


@pytest.mark.parametrize(
    ("members", "digest"),
    [
        (
            {"alpha": 1.0, "beta": 2.0, "gamma": 0.5, "delta": 1.0},
            "5f9f8190d1531bcfb69c0f1fabe3b91436e398a04cddf89124791a422324fcac",
        ),
        (
            {f"host-{i}": 1.0 for i in range(300)},
            "50a3662639e12ab470d33271d52cc5a47fd04749add3ab425530551431daad34",
        ),
    ],
    ids=["few-members-successor-fill", "many-members-first-claim"],
)
def test_golden_tables(members: dict[str, float], digest: str) -> None:
    ring = HashRing(members, partition_bits=BITS)
    encoded = "\n".join(table(ring)).encode()
    assert hashlib.sha256(encoded).hexdigest() == digest


def test_same_owner_in_other_processes() -> None:
    # Different PYTHONHASHSEEDs: nothing may depend on hash().
    script = (
        "from servicegroup.partition import HashRing\n"
        "r = HashRing({f'w{i}': 1.0 + i % 3 for i in range(40)})\n"
        "print(','.join(r.owner(f'k{i}') or '' for i in range(300)))\n"
    )
    outputs = set()
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        out = subprocess.run(
            [sys.executable, "-c", script],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        outputs.add(out)
    ring = HashRing({f"w{i}": 1.0 + i % 3 for i in range(40)})
    here = ",".join(ring.owner(f"k{i}") or "" for i in range(300))
    assert outputs == {here + "\n"}


@PROPS
@given(members=weighted_members, data=st.data())
def test_order_of_members_does_not_matter(
    members: dict[str, float], data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(list(members.items())))
    a = HashRing(members, partition_bits=BITS)
    b = HashRing(dict(shuffled), partition_bits=BITS)
    assert a == b
    assert table(a) == table(b)


# -- consistency: what moves on a change --------------------------------------


@PROPS
@given(members=member_sets, joiner=member_ids)
def test_join_moves_only_to_the_joiner(members: set[str], joiner: str) -> None:
    assume(joiner not in members)
    before = table(HashRing(members, partition_bits=BITS))
    after = table(HashRing(members | {joiner}, partition_bits=BITS))
    assert only_moved_to(before, after, joiner)
    assert joiner in after


@PROPS
@given(members=member_sets, data=st.data())
def test_leave_moves_only_the_leavers_keys(
    members: set[str], data: st.DataObject
) -> None:
    assume(len(members) >= 2)
    leaver = data.draw(st.sampled_from(sorted(members)))
    before = table(HashRing(members, partition_bits=BITS))
    after = table(HashRing(members - {leaver}, partition_bits=BITS))
    assert only_moved_from(before, after, leaver)
    assert leaver not in after


@PROPS
@given(members=weighted_members, data=st.data())
def test_weight_change_moves_only_that_members_keys(
    members: dict[str, float], data: st.DataObject
) -> None:
    assume(len(members) >= 2)
    member = data.draw(st.sampled_from(sorted(members)))
    heavier = dict(members)
    heavier[member] = members[member] + 1.0
    before = table(HashRing(members, partition_bits=BITS))
    after = table(HashRing(heavier, partition_bits=BITS))
    assert only_moved_to(before, after, member)


@PROPS
@given(size=st.integers(min_value=2, max_value=40), salt=st.integers(0, 999))
def test_moved_share_is_close_to_ideal(size: int, salt: int) -> None:
    members = {f"node-{salt}-{i}" for i in range(size)}
    ring = HashRing(members, partition_bits=BITS)
    joined = HashRing(members | {"newcomer"}, partition_bits=BITS)
    left = HashRing(members - {f"node-{salt}-0"}, partition_bits=BITS)
    assert ring.moved_share(joined) * (size + 1) == pytest.approx(1, abs=0.1)
    assert ring.moved_share(left) * size == pytest.approx(1, abs=0.1)
    assert moved(table(ring), table(joined)) == ring.moved_share(joined)


# -- balance ---------------------------------------------------------------


@PROPS
@given(size=st.integers(min_value=2, max_value=40), salt=st.integers(0, 999))
def test_equal_members_get_equal_shares(size: int, salt: int) -> None:
    ring = HashRing(
        {f"node-{salt}-{i}" for i in range(size)}, partition_bits=BITS
    )
    shares = ring.shares()
    assert math.fsum(shares.values()) == pytest.approx(1.0)
    assert max(shares.values()) * size <= 1.10
    assert min(shares.values()) * size >= 0.90


@PROPS
@given(members=weighted_members)
def test_shares_follow_weights(members: dict[str, float]) -> None:
    assume(len(members) >= 2)
    ring = HashRing(members, partition_bits=BITS)
    total = sum(members.values())
    for member, share in ring.shares().items():
        ideal = members[member] / total
        # Rounding to whole partitions and 1/4 weight steps aside, a share
        # is its weight's fraction to within a few percent of that fraction.
        assert share == pytest.approx(ideal, rel=0.15, abs=0.002)


@pytest.mark.parametrize("salt", ["a", "b"])
def test_issue_target_balance_with_100_members(salt: str) -> None:
    # The issue's target, at the default size: max/mean <= 1.10 with 100
    # members (a ring of 32 virtual nodes each gives about 1.5).
    ring = HashRing({f"rug-{salt}-{i:03d}" for i in range(100)})
    assert ring.partition_bits == DEFAULT_PARTITION_BITS
    shares = ring.shares().values()
    assert max(shares) * 100 <= 1.10
    assert min(shares) * 100 >= 0.90


def test_sampled_keys_agree_with_shares() -> None:
    ring = HashRing({"a": 1.0, "b": 1.0, "c": 2.0}, partition_bits=BITS)
    counts = {"a": 0, "b": 0, "c": 0}
    for i in range(40000):
        owner = ring.owner(f"resource-{i}")
        assert owner is not None
        counts[owner] += 1
    for member, share in ring.shares().items():
        assert counts[member] / 40000 == pytest.approx(share, abs=0.015)


# -- lookups ---------------------------------------------------------------


@PROPS
@given(members=member_sets, key=keys, n=st.integers(0, 30))
def test_owners_are_distinct_and_extend_owner(
    members: set[str], key: str | bytes, n: int
) -> None:
    ring = HashRing(members, partition_bits=BITS)
    replicas = ring.owners(key, n)
    assert len(replicas) == min(n, len(members))
    assert len(set(replicas)) == len(replicas)
    assert set(replicas) <= members
    if n:
        assert replicas[0] == ring.owner(key)
    assert ring.owners(key, n + 1)[:n] == replicas


def test_owners_include_members_owning_no_partition() -> None:
    # Next to twelve members of the largest weight, one of the smallest
    # expects about one partition; this one (found by search) gets none.
    # It still owns no keys, but it is still a replica candidate.
    members = {f"heavy-{i}": MAX_WEIGHT for i in range(12)}
    members["light-7"] = 0.25
    ring = HashRing(members, partition_bits=BITS)
    assert ring.shares()["light-7"] == 0.0
    for key in ("a", "b", "c"):
        assert sorted(ring.owners(key, 20)) == sorted(members)
        assert "light-7" not in ring.owners(key, 12)
        assert ring.owners(key, 13)[-1] == "light-7"


@given(key=st.text(max_size=30))
@PROPS
def test_text_keys_hash_as_utf8(key: str) -> None:
    ring = HashRing({"a", "b", "c"}, partition_bits=BITS)
    assert ring.owner(key) == ring.owner(key.encode("utf-8"))
    assert ring.partition(key) == ring.partition(key.encode("utf-8"))


def test_owned_by_matches_owner() -> None:
    ring = HashRing({"a", "b", "c"}, partition_bits=BITS)
    resources: list[str | bytes] = [f"r{i}" for i in range(500)]
    resources += [b"raw", "é"]
    for member in ("a", "b", "c", "nobody"):
        expected = [k for k in resources if ring.owner(k) == member]
        assert ring.owned_by(resources, member) == expected


def test_empty_ring() -> None:
    ring = HashRing()
    assert len(ring) == 0
    assert ring.owner("x") is None
    assert ring.owners("x", 3) == []
    assert ring.owned_by(["x"], "a") == []
    assert ring.shares() == {}
    with pytest.raises(IndexError):
        ring.partition_owner(0)


def test_single_member_owns_everything() -> None:
    ring = HashRing(["only"])
    assert ring.shares() == {"only": 1.0}
    assert ring.owners("x", 5) == ["only"]


def test_mapping_and_iterable_forms_agree() -> None:
    assert HashRing(["a", "b"]) == HashRing({"a": 1.0, "b": 1})
    assert HashRing(["a", "b"]) != HashRing({"a": 1.0, "b": 2.0})
    assert HashRing(["a"], partition_bits=16) != HashRing(["a"])
    ring = HashRing({"b": 2.0, "a": 1.0})
    assert list(ring.members) == ["a", "b"]
    assert len(ring) == 2 and "a" in ring and "z" not in ring
    assert "2 members" in repr(ring)


@pytest.mark.parametrize(
    ("members", "error"),
    [
        ({"a": 0.0}, ValueError),
        ({"a": -1.0}, ValueError),
        ({"a": math.nan}, ValueError),
        ({"a": math.inf}, ValueError),
        ({"a": MAX_WEIGHT * 2}, ValueError),
        ({"a": "1"}, TypeError),
        ({"a": True}, TypeError),
        ({"": 1.0}, ValueError),
        ({1: 1.0}, TypeError),
    ],
)
def test_bad_members_are_refused(
    members: dict[object, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        HashRing(members)  # type: ignore[arg-type]


@pytest.mark.parametrize("bits", [15, 25, True, "18"])
def test_bad_partition_bits_are_refused(bits: object) -> None:
    with pytest.raises(ValueError):
        HashRing(["a"], partition_bits=bits)  # type: ignore[arg-type]


def test_bad_keys_are_refused() -> None:
    ring = HashRing(["a"])
    bad: Callable[[object], object]
    for bad in (ring.owner, ring.partition):  # type: ignore[assignment]
        with pytest.raises(TypeError):
            bad(42)


def test_moved_share_needs_same_partitioning() -> None:
    with pytest.raises(ValueError):
        HashRing(["a"]).moved_share(HashRing(["a"], partition_bits=16))
    assert HashRing().moved_share(HashRing()) == 0.0
    assert HashRing().moved_share(HashRing(["a"])) == 1.0
