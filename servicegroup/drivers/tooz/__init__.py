"""The service group driver on tooz coordinators.

The backend is chosen by ``servicegroup_tooz_url``:

==========================  ==============================================
URL                         backend
==========================  ==============================================
``kazoo://h1:2181``         ZooKeeper (``zookeeper://`` is the same);
                            more hosts with ``?hosts=h2:2181&hosts=h3:2181``
``etcd3+http://h:2379``     etcd v3 through its gRPC gateway (one host)
``redis://h:6379``          Redis; Sentinel: ``redis://s1:26379?sentinel=NAME``
                            ``&sentinel_fallback=s2:26379``
``memcached://h:11211``     memcached, or twemproxy in front of several
``file:///var/lib/sg``      a local directory (one host only)
``fake://name``             in memory, for tests (:mod:`servicegroup.testing`)
==========================  ==============================================

Timing is translated into each backend's own knob unless the URL sets it:
``service_down_time`` becomes ``membership_timeout`` (Redis, memcached,
etcd lease TTL), the ZooKeeper session ``timeout``, or the file ``timeout``;
``servicegroup_backend_timeout`` becomes the socket/HTTP ``timeout`` where
that is a separate option. :meth:`ToozServiceGroupDriver.describe` reports the
values in effect.

Each joined (member, group) pair gets its own tooz coordinator whose tooz
member id is ``MEMBER@GROUP``: Redis and memcached keep one liveness key per
tooz member id, so the same host in two groups from two processes (a
compute and a conductor on one machine) must not share one. One more
coordinator, which never joins anything, reads groups for the local view.

The package has one module per job:

* :mod:`~servicegroup.drivers.tooz.backends`: one module per backend
  (ZooKeeper, Redis, memcached, etcd, file) holding everything servicegroup
  does differently there, with our subclass of its tooz driver; a generic
  policy for the others (``fake://``); the registry keyed by URL scheme;
* :mod:`~servicegroup.drivers.tooz.urls`: the URL grammar every backend
  shares: checking, redacting, merging options, tooz member ids;
* :mod:`~servicegroup.drivers.tooz.errors`: tooz and client library errors
  -> :mod:`servicegroup.exceptions`;
* :mod:`~servicegroup.drivers.tooz.server_limits`: the timeout a server
  grants against the one asked for, reported and warned about;
* :mod:`~servicegroup.drivers.tooz.session`: making and stopping
  coordinators (``ToozBackend``), one member's session
  (``ToozMemberSession``) and the observer (``ToozObserver``), asking the
  backend's policy wherever backends differ;
* :mod:`~servicegroup.drivers.tooz.driver`: :class:`ToozServiceGroupDriver`;
* helpers of one backend each: :mod:`~servicegroup.drivers.tooz.etcd` (the
  failover client), :mod:`~servicegroup.drivers.tooz.zookeeper_view`
  (watch-fed group reads), :mod:`~servicegroup.drivers.tooz.kazoo_logs`;
* :mod:`~servicegroup.drivers.tooz.compat`: the tooz and kazoo private
  names all of these use, checked.

Only this package (and the fake backend) imports tooz.
"""

from servicegroup.drivers.tooz.backends.registry import parse_url
from servicegroup.drivers.tooz.driver import ToozServiceGroupDriver
from servicegroup.drivers.tooz.urls import available_backends, redact_url

__all__ = [
    "ToozServiceGroupDriver",
    "available_backends",
    "parse_url",
    "redact_url",
]
