"""The timeout a backend server grants, against the one we asked for.

``service_down_time`` becomes a timeout we *ask* the backend for
(:func:`.urls.backend_options`), and two backends may apply another one
without saying so:

* a ZooKeeper server clamps the session timeout a client asks for to its
  ``minSessionTimeout .. maxSessionTimeout`` (2 to 20 x ``tickTime`` by
  default): a member killed with SIGKILL was seen down after 8.3 s while
  ``service_down_time`` was 60 s, and nothing said why;
* etcd grants a lease at least its minimum TTL, which it derives from its
  election timeout (1.5 x ``--election-timeout``, in whole seconds), so
  dead members can stay up for longer than ``service_down_time``.

Neither client keeps what the server answered: kazoo uses the negotiated
session timeout inside ``ConnectionHandler._connect`` and returns only the
read timeout it derives from it (two thirds of it), and tooz's etcd driver
drops the TTL of the lease grant. :class:`ServerLimits` reads them back,
on every ZooKeeper (re)connect and every etcd coordinator start, reports
them in :meth:`ServerLimits.describe` (``describe()`` of the driver, the
``servicegroup check`` command), and logs one warning per backend URL and
process when the server changed what we asked for, saying which way and
which server setting to change.

Redis keeps the expiry it is given; memcached's is whole seconds on a clock
that ticks once a second (hence the second :mod:`.urls` adds), which the
report spells out. Every other backend applies what it is given.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from servicegroup import conf as sg_conf

LOG = logging.getLogger(__name__)

#: Backend URLs whose granted timeout was already warned about, in this
#: process (see :meth:`ServerLimits.record`).
_warned: set[str] = set()
_warned_lock = threading.Lock()

#: kazoo's ``_connect`` returns ``(read_timeout, connect_timeout)`` in
#: milliseconds, the read timeout being this fraction of the negotiated
#: session timeout (compat.check_zookeeper makes sure it still is).
KAZOO_READ_TIMEOUT_FRACTION = 2.0 / 3.0

#: Differences below this (seconds) are rounding, not a server's choice:
#: kazoo sends whole milliseconds.
_TOLERANCE = 0.001

#: etcd3gw's path of LeaseTimeToLive, which answers the ``grantedTTL``.
ETCD_LEASE_TIME_TO_LIVE = "/kv/lease/timetolive"


def _s(seconds: float) -> str:
    return f"{seconds:g} s"


def negotiated_session_timeout(connect_result: object) -> float | None:
    """Seconds of the session timeout behind what kazoo's ``_connect`` returns.

    None when the result is not the ``(read_timeout, connect_timeout)`` pair
    of milliseconds that kazoo returns.
    """
    try:
        read_timeout_ms = float(connect_result[0])  # type: ignore[index]
    except (TypeError, ValueError, IndexError, KeyError):
        return None
    if read_timeout_ms <= 0:
        return None
    # Whole milliseconds, as the server sent them.
    return round(read_timeout_ms / KAZOO_READ_TIMEOUT_FRACTION) / 1000.0


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


class ServerLimits:
    """What one backend URL applies as the membership timeout.

    :param scheme: the URL's scheme.
    :param redacted_url: the URL without its password, for messages.
    :param asked: the membership timeout asked for (seconds): the URL's
        own, or the one :func:`.urls.backend_options` derived.
    :param timing: the driver's timing (``service_down_time``).
    :param from_url: whether the URL set ``asked`` itself (the advice then
        names the URL option rather than ``service_down_time``).
    """

    def __init__(
        self,
        scheme: str,
        redacted_url: str,
        asked: float,
        timing: sg_conf.Timing,
        *,
        from_url: bool = False,
    ) -> None:
        self.scheme = scheme
        self.redacted_url = redacted_url
        self.asked = asked
        self.service_down_time = timing.service_down_time
        self.from_url = from_url
        #: What the server granted; known at once where the server keeps
        #: what it is given, after the first connect for ZooKeeper and etcd.
        self.granted: float | None = None if self.server_decides else asked

    @property
    def is_zookeeper(self) -> bool:
        return self.scheme in ("kazoo", "zookeeper")

    @property
    def is_etcd(self) -> bool:
        return self.scheme in ("etcd3+http", "etcd3+https")

    @property
    def server_decides(self) -> bool:
        """Whether the server may grant another timeout than the one asked."""
        return self.is_zookeeper or self.is_etcd

    # -- reading it back ------------------------------------------------------

    def before_start(self, coord: Any) -> None:
        """Prepare ``coord`` (not started yet) to report what it is granted.

        For ZooKeeper, kazoo's connection handler is wrapped, on this
        instance only, so that every (re)connect records the negotiated
        session timeout; it happens in kazoo's connection thread, before
        any request of the new connection is answered.
        """
        if not self.is_zookeeper:
            return
        handler = getattr(getattr(coord, "_coord", None), "_connection", None)
        connect = getattr(handler, "_connect", None)
        if handler is None or connect is None or "_connect" in vars(handler):
            return
        handler._connect = self._recording(connect)

    def _recording(self, connect: Callable[..., Any]) -> Callable[..., Any]:
        def connect_and_record(*args: Any, **kwargs: Any) -> Any:
            result = connect(*args, **kwargs)
            try:
                granted = negotiated_session_timeout(result)
                if granted is not None:
                    self.record(granted)
            except Exception:  # noqa: BLE001 - never break kazoo's connect
                LOG.debug("Could not read the negotiated timeout", exc_info=True)
            return result

        return connect_and_record

    def after_start(self, coord: Any) -> None:
        """Read what the server granted ``coord``, now started (etcd).

        tooz's etcd driver grants its membership lease in ``start()`` and
        keeps only its id: LeaseTimeToLive (one request through the
        coordinator's client, bounded by its timeout) gives the TTL
        granted. A failure is not the caller's: the value stays as it was.
        """
        if not self.is_etcd:
            return
        lease = getattr(coord, "_membership_lease", None)
        client = getattr(coord, "client", None)
        if lease is None or client is None:
            return
        try:
            answer = client.post(
                client.get_url(ETCD_LEASE_TIME_TO_LIVE), json={"ID": lease.id}
            )
        except Exception:  # noqa: BLE001 - only a report: the next start retries
            LOG.debug("Could not read the granted lease TTL", exc_info=True)
            return
        granted = granted_ttl(answer)
        if granted is not None:
            self.record(granted)

    def record(self, granted: float) -> None:
        """Remember ``granted``; warn once per URL if it is not what we asked."""
        self.granted = granted
        if abs(granted - self.asked) < _TOLERANCE:
            return
        with _warned_lock:
            if self.redacted_url in _warned:
                return
            _warned.add(self.redacted_url)
        LOG.warning("%s", self.warning(granted))

    # -- saying it ------------------------------------------------------------

    def _compared(self, granted: float) -> str:
        down = self.service_down_time
        if abs(granted - down) < _TOLERANCE:
            way = "the same as"
        else:
            way = "earlier than" if granted < down else "later than"
        return (
            f"dead members will be seen down after about {_s(granted)}, "
            f"{way} service_down_time ({_s(down)})"
        )

    def warning(self, granted: float) -> str:
        """The warning for a server that granted ``granted`` (seconds)."""
        lower = granted < self.asked
        if self.is_zookeeper:
            what = (
                f"The ZooKeeper server at {self.redacted_url} negotiated a "
                f"session timeout of {_s(granted)} instead of the "
                f"{_s(self.asked)} asked for"
            )
            ms = round(self.asked * 1000)
            if lower:
                fix = (
                    "Raise maxSessionTimeout (milliseconds, 20 x tickTime by "
                    f"default) in the servers' zoo.cfg to at least {ms}"
                )
            else:
                fix = (
                    "Lower minSessionTimeout (milliseconds, 2 x tickTime by "
                    f"default) in the servers' zoo.cfg to at most {ms}, or "
                    "their tickTime"
                )
        elif self.is_etcd:
            what = (
                f"etcd at {self.redacted_url} granted a lease TTL of "
                f"{_s(granted)} instead of the {_s(self.asked)} asked for"
            )
            fix = (
                "etcd's minimum lease TTL is 1.5 x its --election-timeout, "
                "in whole seconds: lower --election-timeout (and "
                "--heartbeat-interval with it)"
            )
        else:
            what = (
                f"The backend at {self.redacted_url} applies a membership "
                f"timeout of {_s(granted)} instead of the {_s(self.asked)} "
                "asked for"
            )
            fix = "Check the server's configuration"
        if self.from_url:
            option = "timeout" if self.is_zookeeper else "membership_timeout"
            fix += f", or set the URL's {option} option to {granted:g}"
        else:
            way = "lower" if lower else "raise"
            fix += f", or {way} service_down_time to {_s(granted)}"
        return f"{what}: {self._compared(granted)}. {fix}."

    def expiry(self) -> str:
        """One sentence for people: when dead members expire, and why then."""
        asked, down = self.asked, self.service_down_time
        context = f"service_down_time {_s(down)}"
        if self.is_zookeeper or self.is_etcd:
            knob = (
                "the session timeout the ZooKeeper server negotiated"
                if self.is_zookeeper
                else "the lease TTL etcd granted"
            )
            last = "ping" if self.is_zookeeper else "heartbeat"
            if self.granted is None:
                server = "the ZooKeeper server" if self.is_zookeeper else "etcd"
                return (
                    f"not known until {server} answers (asked for "
                    f"{_s(asked)}, {context})"
                )
            return (
                f"dead members expire {_s(self.granted)} after their last "
                f"{last} ({knob}; asked for {_s(asked)}, {context})"
            )
        if self.scheme == "memcached":
            early = max(0.0, asked - 1)
            return (
                f"dead members expire {early:g} to {_s(asked)} after their "
                f"last heartbeat (their memcached key is set to expire in "
                f"{_s(asked)}, in whole seconds on memcached's once-a-second "
                f"clock; {context})"
            )
        how = {
            "redis": "the expiry of their Redis heartbeat key",
            "file": "the age of their file",
        }.get(self.scheme, "the membership timeout")
        return (
            f"dead members expire {_s(asked)} after their last heartbeat "
            f"({how}; {context})"
        )

    def describe(self) -> dict[str, Any]:
        """``granted_membership_timeout`` (None until known) and ``expiry``."""
        return {
            "granted_membership_timeout": self.granted,
            "expiry": self.expiry(),
        }


def membership_knob(scheme: str) -> str:
    """The tooz option that carries the membership timeout for ``scheme``."""
    return (
        "timeout" if scheme in ("kazoo", "zookeeper", "file") else "membership_timeout"
    )


def for_backend(
    scheme: str,
    redacted_url: str,
    asked: float,
    timing: sg_conf.Timing,
    derived_options: Mapping[str, Any],
) -> ServerLimits:
    """The :class:`ServerLimits` of a backend.

    ``derived_options`` are the options :func:`.urls.backend_options`
    derived from the timing, which leave out those the URL sets.
    """
    from_url = membership_knob(scheme) not in derived_options
    return ServerLimits(scheme, redacted_url, asked, timing, from_url=from_url)
