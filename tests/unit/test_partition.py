"""Tests for servicegroup.partition: the ring's properties, then the glue."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import servicegroup
from servicegroup.partition import (
    DEFAULT_PARTITION_BITS,
    MAX_WEIGHT,
    HashRing,
    Partitioner,
    Rebalance,
)
from servicegroup.testing import ServiceGroupFixture

# One plane (65,536 partitions) builds in milliseconds; the properties
# checked here do not depend on the size.
BITS = 16

PROPS = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
# Exact properties (what moves, determinism) hold for every example, so
# they explore new ones each run. Statistical ones (shares within 10%) hold
# with overwhelming but not total probability; they run a fixed sample so
# that CI cannot flake, and still fail if the ring's balance regresses.
STATS = settings(PROPS, derandomize=True)

member_ids = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.é",
    min_size=1,
    max_size=12,
)
member_sets = st.sets(member_ids, min_size=1, max_size=16)
weights = st.sampled_from([0.25, 0.5, 1.0, 1.0, 1.0, 1.5, 2.0, 3.0])
weighted_members = st.dictionaries(member_ids, weights, min_size=1, max_size=16)
keys = st.one_of(st.text(max_size=20), st.binary(max_size=20))


def table(ring: HashRing) -> list[str]:
    owners = list(ring.partition_owners())
    assert len(owners) == ring.partitions or not ring
    return owners


def only_moved_to(before: list[str], after: list[str], member: str) -> bool:
    """True when every changed partition now belongs to ``member``."""
    return all(a == b or b == member for a, b in zip(before, after, strict=True))


def only_moved_from(before: list[str], after: list[str], member: str) -> bool:
    return all(a == b or a == member for a, b in zip(before, after, strict=True))


def moved(before: list[str], after: list[str]) -> float:
    return sum(a != b for a, b in zip(before, after, strict=True)) / len(before)


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


def test_balance_bound_catches_a_classic_ring() -> None:
    # A ring of 32 MD5 points per member (tooz's default) at 100 members:
    # the balance bound used below must reject it.
    points = sorted(
        (int.from_bytes(hashlib.md5(f"m{m}-{v}".encode()).digest(), "big"), m)
        for m in range(100)
        for v in range(32)
    )
    shares = [0] * 100
    previous = points[-1][0] - (1 << 128)
    for point, member in points:
        shares[member] += point - previous
        previous = point
    assert max(shares) / (1 << 128) * 100 > 1.10


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
    owners = table(ring)
    assert ring.partition_owner(0) == owners[0]
    assert ring.partition_owner(65535) == owners[-1]
    encoded = "\n".join(owners).encode()
    assert hashlib.sha256(encoded).hexdigest() == digest


def test_same_owner_in_other_processes() -> None:
    # Another interpreter with another PYTHONHASHSEED: nothing may depend
    # on hash() or on anything else that varies between runs.
    script = (
        "from servicegroup.partition import HashRing\n"
        "r = HashRing({f'w{i}': 1.0 + i % 3 for i in range(40)})\n"
        "print(','.join(r.owner(f'k{i}') or '' for i in range(300)))\n"
    )
    seed = "1" if os.environ.get("PYTHONHASHSEED") == "0" else "0"
    out = subprocess.run(
        [sys.executable, "-c", script],
        env=dict(os.environ, PYTHONHASHSEED=seed),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    ring = HashRing({f"w{i}": 1.0 + i % 3 for i in range(40)})
    assert out == ",".join(ring.owner(f"k{i}") or "" for i in range(300)) + "\n"


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


@STATS
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


@STATS
@given(size=st.integers(min_value=2, max_value=40), salt=st.integers(0, 999))
def test_equal_members_get_equal_shares(size: int, salt: int) -> None:
    ring = HashRing({f"node-{salt}-{i}" for i in range(size)}, partition_bits=BITS)
    shares = ring.shares()
    assert math.fsum(shares.values()) == pytest.approx(1.0)
    assert max(shares.values()) * size <= 1.10
    assert min(shares.values()) * size >= 0.90


@STATS
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
    assert ring.partition_owners() == ()
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
        ("abc", TypeError),
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


# -- Partitioner over a group ------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FakeMember:
    id: str
    is_up: bool = True
    capabilities: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    stale: bool = False


@dataclasses.dataclass(frozen=True)
class FakeChange:
    group_id: str
    members: frozenset[str]
    joined: frozenset[str]
    left: frozenset[str]


class FakeGroups:
    """The two calls a Partitioner makes, on an in-memory group.

    Mirrors the library's contract: watchers hear about changes of the up
    set only (not of capabilities), after the new view is readable.
    """

    def __init__(self) -> None:
        self.members: dict[str, dict[str, FakeMember]] = {}
        self.watchers: dict[str, list[Callable[[Any], None]]] = {}

    def get_members(self, group_id: str) -> list[FakeMember]:
        group = self.members.get(group_id, {})
        return [group[k] for k in sorted(group)]

    def watch(
        self, group_id: str, callback: Callable[[Any], None]
    ) -> Callable[[], None]:
        self.watchers.setdefault(group_id, []).append(callback)
        return lambda: self.watchers[group_id].remove(callback)

    def up(self, group_id: str) -> frozenset[str]:
        group = self.members.get(group_id, {})
        return frozenset(m.id for m in group.values() if m.is_up)

    def put(self, group_id: str, *members: FakeMember) -> None:
        before = self.up(group_id)
        group = self.members.setdefault(group_id, {})
        for member in members:
            group[member.id] = member
        self._publish(group_id, before)

    def down(self, group_id: str, *member_ids: str) -> None:
        before = self.up(group_id)
        group = self.members[group_id]
        for member_id in member_ids:
            group[member_id] = dataclasses.replace(group[member_id], is_up=False)
        self._publish(group_id, before)

    def _publish(self, group_id: str, before: frozenset[str]) -> None:
        after = self.up(group_id)
        if after == before:
            return
        change = FakeChange(group_id, after, after - before, before - after)
        for callback in list(self.watchers.get(group_id, ())):
            callback(change)


RESOURCES = [f"router-{i}" for i in range(2000)]


@pytest.fixture
def groups() -> FakeGroups:
    fake = FakeGroups()
    fake.put("rug", *(FakeMember(f"rug-{i}") for i in range(3)))
    return fake


def test_partitioner_matches_a_ring_of_the_up_members(
    groups: FakeGroups,
) -> None:
    groups.put("rug", FakeMember("rug-down", is_up=False))
    part = Partitioner(groups, "rug", "rug-0", partition_bits=BITS)
    ring = HashRing(["rug-0", "rug-1", "rug-2"], partition_bits=BITS)
    assert part.ring == ring
    assert part.active
    assert part.mine(RESOURCES) == ring.owned_by(RESOURCES, "rug-0")
    for key in RESOURCES[:200]:
        assert part.owner(key) == ring.owner(key)
        assert part.belongs_to_me(key) == (ring.owner(key) == "rug-0")
        assert part.owners(key, 2) == ring.owners(key, 2)


def test_every_key_has_exactly_one_owner_among_members(
    groups: FakeGroups,
) -> None:
    parts = [
        Partitioner(groups, "rug", f"rug-{i}", partition_bits=BITS) for i in range(3)
    ]
    claimed = [key for part in parts for key in part.mine(RESOURCES)]
    assert sorted(claimed) == sorted(RESOURCES)


def test_member_not_yet_seen_owns_nothing(groups: FakeGroups) -> None:
    part = Partitioner(groups, "rug", "rug-new", partition_bits=BITS)
    assert not part.active
    assert part.mine(RESOURCES) == []
    assert not any(part.belongs_to_me(key) for key in RESOURCES)
    # It can still ask who owns what.
    assert part.owner("router-1") in {"rug-0", "rug-1", "rug-2"}
    groups.put("rug", FakeMember("rug-new"))
    assert part.active
    assert part.mine(RESOURCES)


def test_empty_group(groups: FakeGroups) -> None:
    part = Partitioner(groups, "empty", "me", partition_bits=BITS)
    assert part.owner("x") is None
    assert part.owners("x", 2) == []
    assert not part.belongs_to_me("x")


def test_rebalance_reports_what_moved(groups: FakeGroups) -> None:
    part = Partitioner(groups, "rug", "rug-0", partition_bits=BITS)
    seen: list[Rebalance] = []
    part.on_rebalance(seen.append)
    groups.put("rug", FakeMember("rug-3"))
    groups.down("rug", "rug-1")

    assert [(c.joined, c.left) for c in seen] == [
        (frozenset({"rug-3"}), frozenset()),
        (frozenset(), frozenset({"rug-1"})),
    ]
    first, second = seen
    assert first.new is second.old  # a chain, nothing skipped
    assert second.new is part.ring

    old, new = first.old, first.new
    moved = [k for k in RESOURCES if old.owner(k) != new.owner(k)]
    assert first.moved(RESOURCES) == moved
    assert all(new.owner(k) == "rug-3" for k in moved)
    assert first.lost(RESOURCES) == [k for k in moved if old.owner(k) == "rug-0"]
    assert first.gained(RESOURCES) == []
    assert first.moved_share == pytest.approx(0.25, abs=0.02)

    gained = second.gained(RESOURCES)
    assert gained
    assert all(second.old.owner(k) == "rug-1" for k in gained)
    assert second.lost(RESOURCES) == []


def test_initial_rebalance_hands_over_current_keys(
    groups: FakeGroups,
) -> None:
    part = Partitioner(groups, "rug", "rug-2", partition_bits=BITS)
    seen: list[Rebalance] = []
    part.on_rebalance(seen.append, initial=True)
    assert len(seen) == 1
    assert seen[0].joined == {"rug-0", "rug-1", "rug-2"}
    assert seen[0].gained(RESOURCES) == part.mine(RESOURCES)


def test_no_rebalance_without_a_change(groups: FakeGroups) -> None:
    part = Partitioner(groups, "rug", "rug-0", partition_bits=BITS)
    seen: list[Rebalance] = []
    part.on_rebalance(seen.append)
    ring = part.ring
    for callback in groups.watchers["rug"]:
        callback(None)  # a spurious notification
    assert part.refresh() is None
    assert seen == [] and part.ring is ring


def test_weights_come_from_capabilities(groups: FakeGroups) -> None:
    groups.put("rug", FakeMember("big", capabilities={"weight": 3}))
    part = Partitioner(groups, "rug", "big", partition_bits=BITS)
    assert part.ring.members["big"] == 3.0
    assert part.ring.shares()["big"] == pytest.approx(0.5, abs=0.02)

    # A weight change alone does not change the up set, so the watcher
    # says nothing; refresh() picks it up and reports it.
    groups.put("rug", FakeMember("big", capabilities={"weight": 1}))
    assert part.ring.members["big"] == 3.0
    change = part.refresh()
    assert change is not None
    assert change.reweighted == {"big"}
    assert change.lost(RESOURCES)


def test_custom_weight_capability(groups: FakeGroups) -> None:
    groups.put("rug", FakeMember("big", capabilities={"cores": 8}))
    part = Partitioner(groups, "rug", weight_capability="cores", partition_bits=BITS)
    assert part.ring.members["big"] == 8.0


@pytest.mark.parametrize(
    "bad", ["3", -1, 0, None, True, float("nan"), MAX_WEIGHT + 1, [2]]
)
def test_bad_weight_counts_as_one_and_is_logged_once(
    groups: FakeGroups, bad: object, caplog: pytest.LogCaptureFixture
) -> None:
    groups.put("rug", FakeMember("odd", capabilities={"weight": bad}))
    with caplog.at_level(logging.WARNING, "servicegroup.partition"):
        part = Partitioner(groups, "rug", "odd", partition_bits=BITS)
        groups.put("rug", FakeMember("rug-9"))
        part.refresh()
    assert part.ring.members["odd"] == 1.0
    warnings = [r for r in caplog.records if "odd" in r.getMessage()]
    assert len(warnings) == 1


def test_failing_callback_is_logged_and_others_still_run(
    groups: FakeGroups, caplog: pytest.LogCaptureFixture
) -> None:
    part = Partitioner(groups, "rug", "rug-0", partition_bits=BITS)
    seen: list[Rebalance] = []

    def broken(change: Rebalance) -> None:
        raise RuntimeError("boom")

    part.on_rebalance(broken)
    part.on_rebalance(seen.append)
    with caplog.at_level(logging.ERROR, "servicegroup.partition"):
        groups.put("rug", FakeMember("rug-3"))  # must not raise
    assert len(seen) == 1
    assert "boom" in caplog.text


def test_failing_membership_read_keeps_the_old_ring(
    groups: FakeGroups, caplog: pytest.LogCaptureFixture
) -> None:
    part = Partitioner(groups, "rug", "rug-0", partition_bits=BITS)
    ring = part.ring

    def unreachable(group_id: str) -> list[FakeMember]:
        raise OSError("backend gone")

    groups.get_members = unreachable  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, "servicegroup.partition"):
        groups._publish("rug", frozenset())  # a watcher call, must not raise
    assert part.ring is ring
    assert "keeping the old one" in caplog.text


def test_unsubscribe_and_close(groups: FakeGroups) -> None:
    part = Partitioner(groups, "rug", "rug-0", partition_bits=BITS)
    seen: list[Rebalance] = []
    stop = part.on_rebalance(seen.append)
    stop()
    stop()  # idempotent
    groups.put("rug", FakeMember("rug-3"))
    assert seen == []

    part.on_rebalance(seen.append)
    with part:
        assert part.mine(RESOURCES)
    assert not part.active
    assert part.mine(RESOURCES) == []
    assert not any(part.belongs_to_me(k) for k in RESOURCES)
    assert groups.watchers["rug"] == []
    part.close()  # idempotent
    assert part.refresh() is None
    assert seen == []


def test_observer_cannot_ask_what_is_its_own(groups: FakeGroups) -> None:
    part = Partitioner(groups, "rug", partition_bits=BITS)
    assert part.member_id is None and not part.active
    assert part.owner("x") is not None
    with pytest.raises(ValueError):
        part.belongs_to_me("x")
    with pytest.raises(ValueError):
        part.mine(["x"])
    assert "rug" in repr(part)


# -- convergence with real member processes ---------------------------------

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "rug_worker.py"
REPORT_INTERVAL = 0.25
SERVICE_DOWN_TIME = 1.5
REFRESH_INTERVAL = 0.2
# Process scheduling on a busy two-core machine; the checks below are about
# intervals of the library's own timing, not about this.
SLACK = 1.0
DEADLINE = 30.0


class WorkerProcess:
    """examples/rug_worker.py in a subprocess, its JSON reports collected."""

    def __init__(self, member: str, url: str, resources: int) -> None:
        self.member = member
        root = str(EXAMPLE.parents[1])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (root, env.get("PYTHONPATH")) if p
        )
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(EXAMPLE),
                "--json",
                f"--member={member}",
                f"--url={url}",
                f"--resources={resources}",
                f"--report-interval={REPORT_INTERVAL}",
                f"--service-down-time={SERVICE_DOWN_TIME}",
                f"--refresh-interval={REFRESH_INTERVAL}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.records: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self.records.append(json.loads(line))

    @property
    def latest(self) -> dict[str, Any] | None:
        with self._lock:
            return self.records[-1] if self.records else None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self) -> int:
        code = self.proc.wait(timeout=DEADLINE)
        self._reader.join(timeout=DEADLINE)
        return code

    def stderr(self) -> str:
        assert self.proc.stderr is not None
        return self.proc.stderr.read() if self.proc.poll() is not None else ""


def wait_until(
    condition: Callable[[], bool], what: str, workers: list[WorkerProcess]
) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            states = {w.member: w.latest for w in workers}
            pytest.fail(f"timed out waiting for {what}: {states}")
        time.sleep(0.02)


def agreed(workers: list[WorkerProcess], members: set[str]) -> bool:
    """Every worker's latest view is ``members`` and the views match."""
    latest = [w.latest for w in workers]
    return (
        all(r is not None and set(r["members"]) == members for r in latest)
        and len({r["ring"] for r in latest if r is not None}) == 1
    )


def ownership(workers: list[WorkerProcess]) -> list[str]:
    owned: list[str] = []
    for worker in workers:
        record = worker.latest
        assert record is not None
        owned.extend(record["owned"])
    return owned


def first_time(worker: WorkerProcess, members: set[str], since: float) -> float:
    """When ``worker`` first reported ``members`` at or after ``since``."""
    return min(
        float(r["time"])
        for r in worker.records
        if set(r["members"]) == members and r["time"] >= since
    )


def test_member_processes_converge_on_changes(tmp_path: Path) -> None:
    url = f"file://{tmp_path}"
    names = ["rug-a", "rug-b", "rug-c"]
    resources = 300
    workers = [WorkerProcess(name, url, resources) for name in names[:2]]
    try:
        wait_until(lambda: agreed(workers, set(names[:2])), "2 agree", workers)
        # Join: the newcomer sees itself first (two owners for its keys) or
        # last (no owner); either way the others agree with it within one
        # refresh, and then every router has exactly one owner.
        joined_at = time.time()
        workers.append(WorkerProcess(names[2], url, resources))
        wait_until(lambda: agreed(workers, set(names)), "3 agree", workers)
        seen = [first_time(worker, set(names), joined_at) for worker in workers]
        assert max(seen) - min(seen) <= REFRESH_INTERVAL + SLACK
        owned = ownership(workers)
        assert sorted(owned) == sorted(f"router-{i}" for i in range(300))

        # Graceful leave: rug-c stops claiming before it leaves, so its
        # routers have no owner (never two) until the others refresh, at
        # most one refresh interval later.
        leaver, crasher, survivor = workers[2], workers[1], workers[0]
        left_at = time.time()
        leaver.stop(signal.SIGTERM)
        wait_until(
            lambda: (leaver.latest or {}).get("event") == "stopped",
            "rug-c to stop",
            workers,
        )
        stopped = leaver.records[-1]
        assert stopped["owned"] == [] and stopped["released"]
        remaining = [survivor, crasher]
        wait_until(lambda: agreed(remaining, {"rug-a", "rug-b"}), "2 agree", workers)
        assert sorted(ownership(remaining)) == sorted(owned)
        for worker in remaining:
            took_at = first_time(worker, {"rug-a", "rug-b"}, left_at)
            assert stopped["time"] <= took_at
            assert took_at - stopped["time"] <= REFRESH_INTERVAL + SLACK

        # Crash: nobody says goodbye, so rug-b's routers have no live owner
        # until its heartbeats are missed for service_down_time.
        crashed_at = time.time()
        crasher.stop(signal.SIGKILL)
        crasher.wait()
        wait_until(lambda: agreed([survivor], {"rug-a"}), "1 left", workers)
        took_at = first_time(survivor, {"rug-a"}, crashed_at)
        elapsed = took_at - crashed_at
        assert SERVICE_DOWN_TIME - REPORT_INTERVAL <= elapsed
        assert elapsed <= SERVICE_DOWN_TIME + REFRESH_INTERVAL + SLACK
        assert len(ownership([survivor])) == resources
        assert leaver.wait() == 0
    finally:
        for worker in workers:
            worker.stop(signal.SIGKILL)
            worker.wait()


# -- Partitioner on the library's fake backend --------------------------------


@pytest.fixture
def sg() -> Iterator[ServiceGroupFixture]:
    fixture = ServiceGroupFixture(
        report_interval=10.0, service_down_time=60.0, refresh_interval=1.0
    )
    fixture.setUp()
    try:
        yield fixture
    finally:
        fixture.cleanUp()


def start_members(
    sg: ServiceGroupFixture, names: list[str], **caps: Any
) -> dict[str, Partitioner]:
    """One API (one process) per member, joined, with its partitioner."""
    parts = {}
    for name in names:
        api = sg.new_api()
        api.join(name, "rug", capabilities=caps or None)
        parts[name] = Partitioner(api, "rug", name, partition_bits=BITS)
    return parts


def views_agree(parts: Mapping[str, Partitioner], members: set[str]) -> bool:
    rings = {p.ring for p in parts.values()}
    return len(rings) == 1 and set(next(iter(rings)).members) == members


def claims(parts: Mapping[str, Partitioner]) -> list[str]:
    return sorted(k for p in parts.values() for k in p.mine(RESOURCES))


def test_members_agree_within_one_refresh(sg: ServiceGroupFixture) -> None:
    parts = start_members(sg, ["rug-a", "rug-b", "rug-c"])
    sg.advance(sg.refresh_interval)
    assert views_agree(parts, {"rug-a", "rug-b", "rug-c"})
    assert claims(parts) == sorted(RESOURCES)

    # A newcomer sees itself at once (its first fetch follows its join);
    # the others see it at their next refresh. In between, the keys moving
    # to it have two owners: it and their previous owner.
    newcomer = start_members(sg, ["rug-d"])["rug-d"]
    doubles = newcomer.mine(RESOURCES)
    assert doubles
    for key in doubles:
        assert sum(p.belongs_to_me(key) for p in parts.values()) == 1
    parts["rug-d"] = newcomer
    sg.advance(sg.refresh_interval)
    assert views_agree(parts, {"rug-a", "rug-b", "rug-c", "rug-d"})
    assert claims(parts) == sorted(RESOURCES)


def test_graceful_leave_is_seen_within_one_refresh(
    sg: ServiceGroupFixture,
) -> None:
    parts = start_members(sg, ["rug-a", "rug-b", "rug-c"])
    sg.advance(sg.refresh_interval)
    leaving = parts.pop("rug-c")
    orphans = leaving.mine(RESOURCES)
    leaving.close()  # stops claiming at once...
    api = leaving._api
    assert isinstance(api, servicegroup.API)
    api.leave("rug-c", "rug")  # ...then leaves
    # Until the others refresh, rug-c's keys have no owner (never two).
    assert not any(p.belongs_to_me(k) for p in parts.values() for k in orphans)
    sg.advance(sg.refresh_interval)
    assert views_agree(parts, {"rug-a", "rug-b"})
    assert claims(parts) == sorted(RESOURCES)


def test_crashed_member_keeps_its_keys_until_service_down_time(
    sg: ServiceGroupFixture,
) -> None:
    parts = start_members(sg, ["rug-a", "rug-b", "rug-c"])
    sg.advance(sg.refresh_interval)
    crashed = parts.pop("rug-c")
    orphans = crashed.mine(RESOURCES)
    api = crashed._api
    assert isinstance(api, servicegroup.API)
    sg.crash("rug-c", "rug", api=api)
    # Nobody takes over while rug-c could still be alive: its keys have
    # no live owner for up to service_down_time (plus one refresh).
    sg.advance(sg.service_down_time - sg.report_interval)
    assert views_agree(parts, {"rug-a", "rug-b", "rug-c"})
    assert not any(p.belongs_to_me(k) for p in parts.values() for k in orphans)
    sg.advance(sg.report_interval + sg.refresh_interval)
    assert views_agree(parts, {"rug-a", "rug-b"})
    assert claims(parts) == sorted(RESOURCES)


def test_lost_backend_keeps_the_last_ring(sg: ServiceGroupFixture) -> None:
    parts = start_members(sg, ["rug-a", "rug-b"])
    sg.advance(sg.refresh_interval)
    seen: list[Rebalance] = []
    for part in parts.values():
        part.on_rebalance(seen.append)
    ring = parts["rug-a"].ring
    assert not parts["rug-a"].stale
    # Fail static: an observer that cannot reach the backend keeps
    # answering from its last view rather than dropping everyone, and says
    # its view is stale so that a worker can fence itself.
    sg.store.set_reachable(False)
    sg.advance(sg.service_down_time + sg.refresh_interval)
    assert parts["rug-a"].ring is ring and seen == []
    assert claims(parts) == sorted(RESOURCES)
    assert all(part.stale for part in parts.values())
    sg.store.set_reachable(True)
    sg.advance(sg.report_interval + sg.refresh_interval)
    assert not any(part.stale for part in parts.values())
    assert views_agree(parts, {"rug-a", "rug-b"})


def test_weights_are_read_from_joined_capabilities(
    sg: ServiceGroupFixture,
) -> None:
    parts = start_members(sg, ["small"])
    parts.update(start_members(sg, ["big"], weight=3))
    sg.advance(sg.refresh_interval)
    ring = parts["small"].ring
    assert dict(ring.members) == {"big": 3.0, "small": 1.0}
    assert ring.shares()["big"] == pytest.approx(0.75, abs=0.02)
