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
