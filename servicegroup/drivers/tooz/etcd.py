"""etcd: one client for several endpoints of one cluster.

tooz's etcd driver builds an etcd3gw client for the single ``host:port`` of
its URL, so a member whose etcd server dies cannot heartbeat and is reported
down after ``service_down_time`` although the cluster is fine. Here the URL
may list more endpoints, with the convention tooz uses for ZooKeeper::

    etcd3+http://h1:2379?hosts=h2:2379&hosts=h3:2379

:class:`FailoverClient` is an etcd3gw client that sends each request to its
current endpoint and, when that one refuses, drops the connection, times out
or answers 503 (etcd's "no leader"), moves on to the next one *within the
same call*: a heartbeat that meets a dead server is sent to the next server
at once, not one retry later.

The lease survives the switch without any work: etcd leases are cluster
state, so a keep-alive for the same lease id is valid on any member, and
etcd3gw's ``Lease`` keeps a reference to the client (not to a URL), so
tooz's ``_membership_lease.refresh()`` simply follows the client to its new
endpoint. Keys attached to the lease stay attached.

Every etcd3gw call goes through :meth:`Etcd3Client.post`, except the API
version discovery (a GET), which :meth:`FailoverClient._discover_api_path`
spreads over the endpoints the same way. tooz's ``requests`` session (with
its TLS settings from ``ca_cert``, ``cert_cert``, ``cert_key``) is carried
over by :func:`pinned_session`: every endpoint is reached with the same
certificates, and ``ca_cert`` is really used (see :class:`PinnedSession`).
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import requests
from etcd3gw import exceptions as etcd3gw_exc
from etcd3gw.client import Etcd3Client

LOG = logging.getLogger(__name__)

T = TypeVar("T")

#: What makes a request go to the next endpoint. etcd3gw raises
#: ConnectionFailedError for a refused or dropped connection and for HTTP
#: 503 (a member cut off from the majority answers "no leader" forever),
#: ConnectionTimeoutError for a timeout and for 408/504. Other errors are
#: answers from a working cluster and are the caller's business.
FAILOVER_ERRORS = (
    etcd3gw_exc.ConnectionFailedError,
    etcd3gw_exc.ConnectionTimeoutError,
)

#: Endpoint lists -> the index that last answered, in this process. A
#: client built again (a member's reset, an observer's rebuild) starts
#: where the previous one got answers, rather than paying for a dead first
#: endpoint again. A forked child inherits a copy, which is only a hint.
_last_good: dict[tuple[tuple[str, int], ...], int] = {}
_last_good_lock = threading.Lock()


class PinnedSession(requests.Session):
    """A requests session whose own CA bundle beats the environment's.

    requests lets ``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE`` replace a
    session's ``verify`` (psf/requests#3829): on a machine that sets them,
    as many images do for the system bundle, tooz's ``ca_cert`` was
    silently ignored and an etcd with a private CA failed verification.
    A ``verify`` set on the session (a CA path, or False) now wins; a
    session left at the default still honours the environment.
    """

    def merge_environment_settings(
        self,
        url: Any,
        proxies: Any,
        stream: Any,
        verify: Any,
        cert: Any,
    ) -> dict[str, Any]:
        if verify is None and self.verify is not True:
            verify = self.verify
        return super().merge_environment_settings(url, proxies, stream, verify, cert)


def pinned_session(session: requests.Session) -> PinnedSession:
    """A :class:`PinnedSession` with ``session``'s TLS settings.

    ``session`` is closed: it is etcd3gw's own, made by tooz with only
    ``verify`` and ``cert`` set, and has sent nothing yet.
    """
    pinned = PinnedSession()
    pinned.verify = session.verify
    pinned.cert = session.cert
    session.close()
    return pinned


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _base_url(protocol: str, host: str, port: int) -> str:
    return f"{protocol}://{_hostport(host, port)}"


def _describe(exc: Exception) -> str:
    # etcd3gw keeps its message in detail_text and gives Exception no
    # arguments, so str() of its errors is empty (tooz's messages too).
    detail = getattr(exc, "detail_text", None) or str(exc)
    return f"{type(exc).__name__}: {str(detail)[:200]}"


def _path_of(url: str) -> str:
    """The part of an etcd3gw URL that does not depend on the endpoint."""
    parts = urllib.parse.urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


class FailoverClient(Etcd3Client):
    """An etcd3gw client that moves to the next endpoint when one fails.

    :param endpoints: ``(host, port)`` of each cluster member, in the order
        to try them; the first one that answers is used until it fails.
    :param protocol: ``http`` or ``https``, the same for every endpoint.
    :param session: the ``requests`` session to use (tooz's, with its TLS
        settings).
    :param timeout: seconds for one request; a call stops moving on to
        further endpoints once this much time has passed, so a call is
        bounded by about twice the timeout whatever the number of endpoints.
    :param api_path: the gateway's API prefix, or None to discover it.
    """

    def __init__(
        self,
        endpoints: Sequence[tuple[str, int]],
        *,
        protocol: str = "http",
        session: requests.Session | None = None,
        timeout: float | None = None,
        api_path: str | None = None,
    ) -> None:
        if not endpoints:
            raise ValueError("an etcd client needs at least one endpoint")
        self._endpoints = tuple(endpoints)
        with _last_good_lock:
            start = _last_good.get(self._endpoints, 0)
        self._current = start
        host, port = self._endpoints[start]
        super().__init__(
            host=host,
            port=port,
            protocol=protocol,
            timeout=timeout,
            api_path=api_path,
            session=session,
        )

    @property
    def endpoints(self) -> list[str]:
        """Every endpoint, as ``host:port``."""
        return [_hostport(host, port) for host, port in self._endpoints]

    @property
    def endpoint(self) -> str:
        """The endpoint requests go to now, as ``host:port``."""
        return self.endpoints[self._current]

    @property
    def base_url(self) -> str:
        # Read from one index (not from host and port set one after the
        # other) so that a thread switching endpoints never makes another
        # build a URL from one endpoint's host and the next one's port.
        host, port = self._endpoints[self._current]
        return _base_url(self.protocol, host, port)

    def _use(self, index: int) -> None:
        self._current = index
        # etcd3gw's own attributes, for anyone showing them.
        self.host, self.port = self._endpoints[index]
        with _last_good_lock:
            _last_good[self._endpoints] = index

    def _across_endpoints(self, attempt: Callable[[int], T]) -> T:
        """``attempt(index)`` on the current endpoint, then on the next ones."""
        count = len(self._endpoints)
        first = self._current
        started = time.monotonic()
        failures: list[tuple[int, Exception]] = []
        for step in range(count):
            index = (first + step) % count
            try:
                result = attempt(index)
            except FAILOVER_ERRORS as exc:
                failures.append((index, exc))
                following = (index + 1) % count
                if count > 1:
                    LOG.warning(
                        "etcd endpoint %s failed (%s); moving to %s",
                        self.endpoints[index],
                        _describe(exc),
                        self.endpoints[following],
                    )
                # The next call starts there even if this one gives up:
                # a server that times out is not asked first again.
                self._use(following)
                if self.timeout is not None and (
                    time.monotonic() - started >= self.timeout
                ):
                    break
                continue
            if index != self._current:
                self._use(index)
            return result
        last = failures[-1][1]
        text = "no etcd endpoint answered: " + "; ".join(
            f"{self.endpoints[i]} {_describe(e)}" for i, e in failures
        )
        # The same class, so that tooz translates it as it would the
        # original; with the text as an argument too, so that str() shows it.
        raise type(last)(text, text) from last

    def _discover_api_path(self) -> None:
        def discover(index: int) -> None:
            # etcd3gw's discovery reads base_url, which follows the index.
            self._current = index
            super(FailoverClient, self)._discover_api_path()

        self._across_endpoints(discover)

    def post(self, url: str, *args: Any, json: Any = None, **kwargs: Any) -> Any:
        # etcd3gw callers (its Lease among them) build the URL from
        # get_url() before calling post: only its path is kept, and each
        # attempt puts it on the endpoint tried.
        path = _path_of(url)
        host_url = self._url_at

        def send(index: int) -> Any:
            return super(FailoverClient, self).post(
                host_url(index) + path, *args, json=json, **kwargs
            )

        return self._across_endpoints(send)

    def _url_at(self, index: int) -> str:
        host, port = self._endpoints[index]
        return _base_url(self.protocol, host, port)
