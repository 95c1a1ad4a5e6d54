"""Which process this is, so that work started before ``os.fork()`` restarts.

oslo.service builds a host's service objects (and so our APIs) in the parent
and then forks its workers. A child inherits the parent's memory but none of
its threads, and every socket it inherits is still the parent's too. So an
API must notice it is in a new process and, on first use there, start over:
new locks, new connections, new background threads, no view of a group frozen
at the fork.

:func:`generation` is a counter that ``os.register_at_fork`` bumps in each
child; objects remember the generation they were built in and compare it on
use, which costs one global read on the ``is_up`` hot path. What the parent
owned (its coordinators and their sockets) is handed to :func:`orphan` in the
child instead of being closed: closing would run client code (redis-py,
kazoo, etcd3gw) on sockets the parent still uses, and letting the garbage
collector close them could do the same.
"""

from __future__ import annotations

import os
import threading

_generation = 0
_lock = threading.Lock()
#: What the parent owned; kept alive in the child and never used there.
_orphans: list[object] = []


def generation() -> int:
    """How many forks lie between the first process and this one."""
    return _generation


def lock() -> threading.Lock:
    """A process-wide lock that is never inherited held across a fork."""
    return _lock


def orphan(*owned: object) -> None:
    """Keep the parent's ``owned`` objects alive, unused, in this child."""
    _orphans.extend(owned)


def _after_fork_in_child() -> None:
    global _generation, _lock
    _generation += 1
    # Another thread of the parent may have held the lock at the fork; that
    # thread does not exist here, so the copy would stay locked for ever.
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)
