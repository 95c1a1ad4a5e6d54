"""Real backend servers for functional tests and benchmarks.

The contract suite runs the same tests against every backend tooz can reach
(``tests/functional/test_contract.py``), and the liveness promises of the
failure model (``doc/source/failure-model.rst``: self-healing after a
backend restarts empty, fail static while it is paused, rejoining after a
ZooKeeper session expires) can only be checked against the real thing. This
package starts those servers as child processes of the test run, on free
loopback ports, each with its data in its own temporary directory, so tests
never touch a server the machine is already running and never listen on
anything but ``127.0.0.1``.

Every server object has the same life cycle::

    with RedisServer() as redis:          # start(), and close() on exit
        url = redis.url                    # "redis://127.0.0.1:PORT"
        redis.pause()                      # SIGSTOP: a hung server
        redis.resume()                     # SIGCONT
        redis.restart(wipe=True)           # same port, comes back empty
        redis.kill()                       # SIGKILL: a crashed server

Clusters (:class:`ZooKeeperEnsemble`, :class:`EtcdCluster`,
:class:`RedisSentinel`) expose ``.nodes``; each node has the same methods, so
a test can kill the leader and watch the rest carry on.

Only the standard library is used, and tooz is never imported: the
launchers must stay usable when the code under test is broken.

Import from here; the modules are:

- :mod:`.base`: errors, binary lookup (``SERVICEGROUP_BIN_<NAME>``),
  :func:`available` and :func:`missing_reason`, free ports, the life cycle
  (:class:`BackendServer`, :class:`ServerGroup`) and clean-up at exit.
- :mod:`.redis`: :class:`RedisServer`, :func:`make_replica`,
  :class:`SentinelServer`, :class:`RedisSentinel`.
- :mod:`.memcached`: :class:`MemcachedServer`, :class:`NutcrackerProxy`.
- :mod:`.zookeeper`: :class:`ZooKeeperServer`, :class:`ZooKeeperEnsemble`.
- :mod:`.etcd`: :class:`EtcdServer`, :class:`EtcdCluster`.
"""

from servicegroup.testing.servers.base import (
    HOST,
    KINDS,
    BackendServer,
    ServerError,
    ServerGroup,
    ServerStartError,
    available,
    missing_reason,
)
from servicegroup.testing.servers.etcd import EtcdCluster, EtcdServer
from servicegroup.testing.servers.memcached import MemcachedServer, NutcrackerProxy
from servicegroup.testing.servers.redis import (
    RedisSentinel,
    RedisServer,
    RespError,
    SentinelServer,
    make_replica,
)
from servicegroup.testing.servers.zookeeper import ZooKeeperEnsemble, ZooKeeperServer

__all__ = [
    "HOST",
    "KINDS",
    "BackendServer",
    "EtcdCluster",
    "EtcdServer",
    "MemcachedServer",
    "NutcrackerProxy",
    "RedisSentinel",
    "RedisServer",
    "RespError",
    "SentinelServer",
    "ServerError",
    "ServerGroup",
    "ServerStartError",
    "ZooKeeperEnsemble",
    "ZooKeeperServer",
    "available",
    "make_replica",
    "missing_reason",
]
