"""One module per tooz backend: everything servicegroup does differently there.

Each module holds one :class:`~.base.Backend` subclass (its URL checks and
endpoints, the tooz options that carry our timing, the coordinator factory
with our subclass of tooz's driver, the server's own timeout and how to read
it back, and the session policy: beat, confirm, replacing a stale entry,
reset, close, how an observer reads a group) and nothing about any other
backend:

* :mod:`.base`: the policy's interface, with the answers for a tooz driver
  we do not subclass (``fake://``, tooz's other drivers);
* :mod:`.zookeeper`, :mod:`.redis`, :mod:`.memcached`, :mod:`.etcd`,
  :mod:`.file`: one backend each;
* :mod:`.registry`: the backend for a URL scheme, and the URL check that
  ends with the backend's own.

The modules shared by every backend (:mod:`..session`, :mod:`..urls`,
:mod:`..driver`) ask the policy and never name a backend.
"""
