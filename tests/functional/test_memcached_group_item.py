"""memcached: heartbeats leave the group's one item alone.

tooz keeps a whole group in one memcached item, written with gets/cas and
retried on every clash. Members that rewrote their record there on every
heartbeat made traffic grow as N² and livelocked joins; the driver's
heartbeat now carries its time in the member's own liveness key, and the
group item is written only on join, leave, a capabilities change, or to
prune the dead.
"""

from __future__ import annotations

import datetime
import urllib.parse
from typing import Any

import pytest
from pymemcache.client.base import Client as MemcacheClient
from tooz import coordination

from servicegroup.drivers.tooz import urls
from servicegroup.drivers.tooz.backends import memcached as memcached_backend
from servicegroup.testing import servers
from tests import support

REPORT = support.FAST["report_interval"]


def cas_commands(server: servers.MemcachedServer) -> int:
    stats = server.stats()
    return sum(int(stats[k]) for k in ("cas_hits", "cas_misses", "cas_badval"))


def test_heartbeats_do_not_rewrite_the_group(server_pool, group) -> None:
    memcached = server_pool.get("memcached")
    assert isinstance(memcached, servers.MemcachedServer)
    members = support.make_api(memcached.url)
    observer = support.make_api(memcached.url)
    ids = ["m1", "m2", "m3"]
    try:
        for member_id in ids:
            members.join(member_id, group, capabilities={"n": member_id})
        support.wait_until(lambda: support.all_up(observer, group, ids), 10, "up")
        first = observer.get_updated_time({"host": "m1", "topic": group})
        assert first is not None
        before = cas_commands(memcached)

        # Several heartbeat rounds of three members, and refreshes.
        support.wait_until(
            lambda: (
                observer.get_updated_time({"host": "m1", "topic": group})
                >= first + datetime.timedelta(seconds=3 * REPORT)
            ),
            10,
            "m1's updated time moving with its heartbeats",
        )
        assert cas_commands(memcached) == before, "a heartbeat rewrote the group"
        assert support.all_up(observer, group, ids)
        # What observers show is still what the members joined with.
        caps = {m.id: m.capabilities for m in observer.get_members(group)}
        assert caps == {i: {"n": i} for i in ids}

        members.update_capabilities("m1", group, {"n": "changed"})
        support.wait_until(
            lambda: (
                {m.id: m.capabilities for m in observer.get_members(group)}["m1"]
                == {"n": "changed"}
            ),
            10,
            "the new capabilities",
        )
        assert cas_commands(memcached) > before
    finally:
        members.stop()
        observer.stop()


def _coordinator(url: str, member: bytes) -> Any:
    """Our memcached coordinator, started, with a 2 s membership timeout."""
    parts = urllib.parse.urlparse(url)
    options = {"membership_timeout": ["2"], "timeout": ["2"]}
    coord = memcached_backend._memcached_driver()(member, parts, options)
    coord.start()
    return coord


def test_a_group_item_created_again_keeps_its_live_members(server_pool, group) -> None:
    """The group item is lost (its node died behind a proxy) and the first
    member to notice creates it again: readers keep the others until their
    beats could have expired, and drop a member that left at once."""
    memcached = server_pool.get("memcached")
    gid = group.encode()
    m1, m2, m3 = (_coordinator(memcached.url, m) for m in (b"m1", b"m2", b"m3"))
    reader = _coordinator(memcached.url, b"reader")
    try:
        m1.create_group(gid).get()
        for coord, n in ((m1, 1), (m2, 2), (m3, 3)):
            coord.join_group(gid, {"n": n}).get()
        assert set(reader.get_members(gid).get()) == {b"m1", b"m2", b"m3"}

        # The item is gone; m1 rejoins first, creating it again.
        m1.client.delete(m1._encode_group_id(gid))
        m1.create_group(gid).get()
        m1.join_group(gid, {"n": 1}).get()
        assert reader.get_members_with_capabilities(gid).get() == {
            b"m1": {"n": 1},
            b"m2": {"n": 2},
            b"m3": {"n": 3},
        }
        # A leave is a leave, even of a member the new item never listed.
        with pytest.raises(coordination.MemberNotJoined):
            m3.leave_group(gid).get()
        assert set(reader.get_members(gid).get()) == {b"m1", b"m2"}

        # m2 beats no more: dropped once its last beat could have expired,
        # while m1, beating, stays.
        def only_m1_left() -> bool:
            m1.heartbeat()
            return set(reader.get_members(gid).get()) == {b"m1"}

        support.wait_until(
            only_m1_left,
            10,
            "m2 dropped after its membership timeout",
        )
    finally:
        for coord in (m1, m2, m3, reader):
            coord.stop()


def test_a_members_round_costs_the_same_whatever_the_group_size(
    server_pool, group
) -> None:
    """A member checks that it is still listed without reading the group
    item: what the server sends per beat stays small at 40 members, whose
    item alone is several KiB."""
    memcached = server_pool.get("memcached")
    assert isinstance(memcached, servers.MemcachedServer)
    members = support.make_api(memcached.url)
    ids = [f"member-{n:03d}" for n in range(40)]
    try:
        for member_id in ids:
            members.join(member_id, group, capabilities={"padding": "x" * 100})
        item = f"_TOOZ_GROUP_{group}"

        def counters() -> tuple[int, int]:
            stats = memcached.stats()
            return int(stats["cmd_set"]), int(stats["bytes_written"])

        def beats_after(start: int, rounds: int) -> bool:
            return counters()[0] >= start + rounds * len(ids)

        raw = MemcacheClient((memcached.host, memcached.port), timeout=2)
        try:

            def listed() -> int:
                value = raw.get(item.encode())
                return sum(
                    f"{m}{urls.MEMBER_GROUP_SEPARATOR}".encode() in (value or b"")
                    for m in ids
                )

            support.wait_until(lambda: listed() == len(ids), 20, "every member listed")
            item_size = len(raw.get(item.encode()) or b"")
        finally:
            raw.close()
        # Every member checks once more after the last join, reading the
        # item because it changed; from then on, beats are measured.
        listed_at = counters()[0]
        support.wait_until(lambda: beats_after(listed_at, 1), 20, "a round")
        sets_before, written_before = counters()
        support.wait_until(lambda: beats_after(sets_before, 3), 20, "three more rounds")
        sets_after, written_after = counters()
        per_beat = (written_after - written_before) / (sets_after - sets_before)
        assert item_size > 4096, item_size
        assert per_beat < 1024, f"{per_beat:.0f} bytes per beat"
    finally:
        members.stop()
