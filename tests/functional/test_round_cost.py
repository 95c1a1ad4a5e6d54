"""What one member's heartbeat round costs the server, counted by it.

A round must not grow with the group (issue #14: at most three server
operations per member per round). memcached's share is tested with the
group item (``test_memcached_group_item.py``); here Redis, whose members
rewrote their record with a script of three commands every round, on top
of the beat.
"""

from __future__ import annotations

from servicegroup.testing import servers
from tests import support


def test_a_redis_round_is_a_beat_and_one_check(server_pool, group) -> None:
    redis = server_pool.get("redis")
    assert isinstance(redis, servers.RedisServer)
    members = support.make_api(redis.url)
    ids = [f"member-{n:02d}" for n in range(20)]
    try:
        for member_id in ids:
            members.join(member_id, group, capabilities={"n": member_id})
        key = f"_tooz_group:{group}"

        def listed() -> int:
            found = redis.execute("HLEN", key)
            return int(found) if isinstance(found, int) else 0

        # Every member joined (the group hash also holds tooz's marker).
        support.wait_until(lambda: listed() > len(ids), 20, "every member listed")
        first = redis.command_stats()
        support.wait_until(
            lambda: (
                redis.command_stats().get("psetex", 0)
                >= first.get("psetex", 0) + 3 * len(ids)
            ),
            20,
            "three rounds of beats",
        )
        last = redis.command_stats()
        delta = {
            name: last[name] - first.get(name, 0)
            for name in last
            if last[name] != first.get(name, 0) and name != "info"
        }
        beats = delta.pop("psetex")
        per_round = (beats + sum(delta.values())) / beats
        assert per_round <= 3, (per_round, delta)
        # The record is written on join and on a change of capabilities only.
        assert "hset" not in delta and "evalsha" not in delta, delta
    finally:
        members.stop()


def test_a_redis_refresh_costs_the_same_whatever_the_group_size(
    server_pool, group
) -> None:
    """An observer's read of a group is a handful of commands, not one per
    member (the beats are read with MGET, a thousand at a time)."""
    redis = server_pool.get("redis")
    assert isinstance(redis, servers.RedisServer)
    members = support.make_api(redis.url)
    observer = support.make_api(redis.url)
    ids = [f"member-{n:02d}" for n in range(30)]
    try:
        for member_id in ids:
            members.join(member_id, group)
        support.wait_until(
            lambda: support.all_up(observer, group, ids), 20, "every member up"
        )
        fetch = observer.driver._observer.fetch  # type: ignore[attr-defined]
        first = redis.command_stats()
        assert len(fetch(group)) == len(ids)
        last = redis.command_stats()
        # Everything the server ran for this one read, beats of the members
        # and our own stats probe aside.
        ran = {
            name: last[name] - first.get(name, 0)
            for name in last
            if last[name] != first.get(name, 0)
            and name not in ("info", "psetex", "hexists")
        }
        assert sum(ran.values()) < 10, ran
    finally:
        members.stop()
        observer.stop()
