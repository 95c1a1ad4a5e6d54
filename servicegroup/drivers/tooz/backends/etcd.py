"""etcd v3 (``etcd3+http://``, ``etcd3+https://``): a lease, several endpoints.

What differs from the other backends, all of it here: the timing is the
lease TTL (``membership_timeout``, whole seconds) and the HTTP ``timeout``;
the URL may name more endpoints (``?hosts=h2:2379&hosts=h3:2379``), which
our driver (:func:`_etcd_driver`) reaches through the failover client of
:mod:`servicegroup.drivers.tooz.etcd`; etcd grants a lease at least its
minimum TTL, which it derives from its election timeout (1.5 x
``--election-timeout``, in whole seconds), so dead members can stay up for
longer than ``service_down_time``: tooz's driver drops the TTL of the lease
grant, so :class:`EtcdTerms` asks for it after every start; and tooz's
``stop()`` leaves the requests session open.
"""

from __future__ import annotations

import functools
import logging
import math
import urllib.parse
from collections.abc import Mapping
from typing import Any

from servicegroup import exceptions
from servicegroup.drivers.tooz import compat, urls
from servicegroup.drivers.tooz.backends import base
from servicegroup.drivers.tooz.server_limits import GrantedByServer, Record, seconds

LOG = logging.getLogger(__name__)

#: What tooz's etcd driver uses when the URL names no host or port.
DEFAULT_HOST = "localhost"
DEFAULT_PORT = 2379

#: etcd3gw's path of LeaseTimeToLive, which answers the ``grantedTTL``.
LEASE_TIME_TO_LIVE = "/kv/lease/timetolive"


def etcd_endpoints(
    parts: urllib.parse.SplitResult, hosts: object = None
) -> list[tuple[str, int]]:
    """Every ``(host, port)`` an etcd URL names, in order, without repeats.

    The URL's own host comes first, then each ``hosts`` option (taken from
    the URL's query unless ``hosts`` is given: a list, or one string). With
    no host at all it is tooz's default, ``localhost:2379``.

    :raises ValueError: an endpoint that is not ``HOST[:PORT]``.
    """
    if hosts is None:
        hosts = urls.hosts_options(parts)
    extra = [hosts] if isinstance(hosts, str) else list(hosts)  # type: ignore[call-overload]
    found: list[tuple[str, int]] = []
    if parts.netloc:
        found.append((parts.hostname or DEFAULT_HOST, parts.port or DEFAULT_PORT))
    for entry in extra:
        # hosts=h2:2379,h3:2379 is accepted too, as kazoo's own host list.
        for text in str(entry).split(","):
            found.append(urls.host_port(text, DEFAULT_PORT))
    if not found:
        found.append((DEFAULT_HOST, DEFAULT_PORT))
    return list(dict.fromkeys(found))


def granted_ttl(answer: object) -> float | None:
    """The ``grantedTTL`` (seconds) of an etcd LeaseTimeToLive answer.

    etcd's JSON gateway sends 64-bit numbers as strings; a lease etcd does
    not know (expired meanwhile) has ``TTL`` -1 and no ``grantedTTL``:
    None then, as for anything that is not such an answer.
    """
    if not isinstance(answer, Mapping):
        return None
    try:
        ttl = int(answer.get("grantedTTL", 0))
    except (TypeError, ValueError):
        return None
    return float(ttl) if ttl > 0 else None


class EtcdTerms(GrantedByServer):
    """The lease TTL etcd granted."""

    server = "etcd"
    granted_what = "the lease TTL etcd granted"
    last_sign = "heartbeat"

    def after_start(self, coord: Any, record: Record) -> None:
        """Ask etcd the TTL it granted the membership lease of ``coord``.

        tooz's etcd driver grants its membership lease in ``start()`` and
        keeps only its id: LeaseTimeToLive (one request through the
        coordinator's client, bounded by its timeout) gives the TTL
        granted. A failure is not the caller's: the value stays as it was.
        """
        lease, client = coord._membership_lease, coord.client
        try:
            answer = client.post(
                client.get_url(LEASE_TIME_TO_LIVE), json={"ID": lease.id}
            )
        except Exception:  # noqa: BLE001 - only a report: the next start retries
            LOG.debug("Could not read the granted lease TTL", exc_info=True)
            return
        granted = granted_ttl(answer)
        if granted is not None:
            record(granted)

    def granted_instead(self, url: str, granted: float, asked: float) -> str:
        return (
            f"etcd at {url} granted a lease TTL of {seconds(granted)} instead "
            f"of the {seconds(asked)} asked for"
        )

    def fix(self, asked: float, *, lower: bool) -> str:
        return (
            "etcd's minimum lease TTL is 1.5 x its --election-timeout, "
            "in whole seconds: lower --election-timeout (and "
            "--heartbeat-interval with it)"
        )


@functools.cache
def _etcd_driver() -> type[base.Coordinator]:
    """tooz's etcd driver on every endpoint of the URL, not only its host.

    tooz builds an etcd3gw client for the URL's one ``host:port``; here it
    is replaced, before any traffic, by a
    :class:`~servicegroup.drivers.tooz.etcd.FailoverClient`
    over the URL's host and its ``hosts`` options, with tooz's TLS settings
    (``ca_cert`` made to win over ``REQUESTS_CA_BUNDLE``, which requests
    otherwise lets replace it), its timeout and its API path. Everything
    else is tooz's: the lease, which holds the client and so follows it to
    another endpoint, and every request. Imported on first use: etcd3gw is
    an optional extra.
    """
    compat.check_etcd()
    from tooz.drivers import etcd3gw as tooz_etcd

    from servicegroup.drivers.tooz import etcd as failover

    class _Etcd3Driver(tooz_etcd.Etcd3Driver):
        def __init__(
            self, member_id: bytes, parsed_url: Any, options: dict[str, Any]
        ) -> None:
            super().__init__(member_id, parsed_url, options)
            single = self.client
            self.client = failover.FailoverClient(
                etcd_endpoints(parsed_url, options.get(urls.HOSTS_OPTION)),
                protocol=single.protocol,
                session=failover.pinned_session(single.session),
                timeout=single.timeout,
                api_path=single._api_path,
            )

        def close_session(self) -> None:
            """Close etcd3gw's requests session: tooz's stop() does not, and
            its pooled sockets stay open until the garbage collector finds
            the cycle they are part of."""
            self.client.session.close()

    return _Etcd3Driver


class EtcdBackend(base.Backend):
    """etcd v3 through its JSON gateway, on every endpoint of the URL."""

    schemes = ("etcd3+http", "etcd3+https")
    client_module = "etcd3gw"
    extra = "etcd"
    own_executor = True
    terms = EtcdTerms()

    @classmethod
    def check_url(cls, parts: urllib.parse.SplitResult, shown: str) -> None:
        try:
            etcd_endpoints(parts)
        except ValueError as exc:
            raise exceptions.InvalidURL(
                f"{shown!r} has an etcd endpoint that is not HOST[:PORT] "
                f"in its hosts= options: {exc}"
            ) from exc

    @classmethod
    def endpoints(cls, parts: urllib.parse.SplitResult) -> list[tuple[str, int]]:
        return etcd_endpoints(parts)

    def timing_options(self) -> dict[str, Any]:
        # Whole seconds: round up, never down.
        return {
            "membership_timeout": math.ceil(self.timing.service_down_time),
            "timeout": math.ceil(self.timing.backend_timeout),
        }

    @classmethod
    def driver_class(cls) -> type[base.Coordinator]:
        return _etcd_driver()

    def close_clients(self, coord: base.Coordinator) -> None:
        driver: Any = coord
        driver.close_session()
