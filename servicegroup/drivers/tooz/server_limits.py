"""The timeout a backend server grants, against the one we asked for.

``service_down_time`` becomes a timeout we *ask* the backend for (each
backend's ``timing_options``), and some backends may apply another one
without saying so: a ZooKeeper server clamps the session timeout to its
``minSessionTimeout .. maxSessionTimeout``, etcd grants a lease at least its
minimum TTL. Nothing said so before: a member killed with SIGKILL was seen
down after 8.3 s while ``service_down_time`` was 60 s.

:class:`ServerLimits` is the same for every backend: it remembers what was
asked and what was granted, reports both in :meth:`ServerLimits.describe`
(``describe()`` of the driver, the ``servicegroup check`` command), and logs
one warning per backend URL and process when the server changed what we
asked for, saying which way and which setting to change. What differs per
backend is in its :class:`ServerTerms`, defined in the backend's own module
(:mod:`.backends`): whether the server decides, how to read the granted value
back from a coordinator, and the words for it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, ClassVar

from servicegroup import conf as sg_conf

LOG = logging.getLogger(__name__)

#: Backend URLs whose granted timeout was already warned about, in this
#: process (see :meth:`ServerLimits.record`).
_warned: set[str] = set()
_warned_lock = threading.Lock()

#: Differences below this (seconds) are rounding, not a server's choice:
#: kazoo sends whole milliseconds.
_TOLERANCE = 0.001

#: What a reader of the granted value calls with it (seconds).
Record = Callable[[float], None]


def seconds(value: float) -> str:
    """``value`` as people read it: ``8.333 s``, ``60 s``."""
    return f"{value:g} s"


class ServerTerms:
    """How one backend applies the membership timeout, in its own words.

    These defaults suit a backend that applies what it is given (Redis, the
    file driver, tooz drivers we know nothing about): nothing to read back.
    """

    #: Whether the server may grant another timeout than the one asked for.
    server_decides: ClassVar[bool] = False
    #: The URL option that sets the membership timeout.
    url_option: ClassVar[str] = "membership_timeout"
    #: What makes dead members expire, for :meth:`expiry`.
    expires_by: ClassVar[str] = "the membership timeout"

    def before_start(self, coord: Any, record: Record) -> None:
        """Prepare ``coord`` (not started yet) to ``record`` what it is granted."""

    def after_start(self, coord: Any, record: Record) -> None:
        """Read what the server granted ``coord``, now started."""

    def granted_instead(self, url: str, granted: float, asked: float) -> str:
        """The first sentence of the warning: who granted what."""
        return (
            f"The backend at {url} applies a membership timeout of "
            f"{seconds(granted)} instead of the {seconds(asked)} asked for"
        )

    def fix(self, asked: float, *, lower: bool) -> str:
        """What to change on the server (``lower``: it granted less)."""
        return "Check the server's configuration"

    def expiry(self, granted: float | None, asked: float, context: str) -> str:
        """One sentence: when dead members expire, and why then."""
        return (
            f"dead members expire {seconds(asked)} after their last heartbeat "
            f"({self.expires_by}; {context})"
        )


class GrantedByServer(ServerTerms):
    """Terms of a backend whose server grants the timeout (read back)."""

    server_decides = True
    #: Who grants it (``"etcd"``), for "not known until ... answers".
    server: ClassVar[str] = "the server"
    #: What was granted (``"the lease TTL etcd granted"``).
    granted_what: ClassVar[str] = "the timeout the server granted"
    #: What a live member last sends (``"heartbeat"``, ``"ping"``).
    last_sign: ClassVar[str] = "heartbeat"

    def expiry(self, granted: float | None, asked: float, context: str) -> str:
        if granted is None:
            return (
                f"not known until {self.server} answers (asked for "
                f"{seconds(asked)}, {context})"
            )
        return (
            f"dead members expire {seconds(granted)} after their last "
            f"{self.last_sign} ({self.granted_what}; asked for "
            f"{seconds(asked)}, {context})"
        )


class ServerLimits:
    """What one backend URL applies as the membership timeout.

    :param terms: the backend's :class:`ServerTerms`.
    :param redacted_url: the URL without its password, for messages.
    :param asked: the membership timeout asked for (seconds): the URL's
        own, or the one derived from ``service_down_time``.
    :param timing: the driver's timing (``service_down_time``).
    :param from_url: whether the URL set ``asked`` itself (the advice then
        names the URL option rather than ``service_down_time``).
    """

    def __init__(
        self,
        terms: ServerTerms,
        redacted_url: str,
        asked: float,
        timing: sg_conf.Timing,
        *,
        from_url: bool = False,
    ) -> None:
        self.terms = terms
        self.redacted_url = redacted_url
        self.asked = asked
        self.service_down_time = timing.service_down_time
        self.from_url = from_url
        #: What the server granted; known at once where the server keeps
        #: what it is given, after the first connect where it decides.
        self.granted: float | None = None if terms.server_decides else asked

    # -- reading it back ------------------------------------------------------

    def before_start(self, coord: Any) -> None:
        """Prepare ``coord`` (not started yet) to report what it is granted."""
        self.terms.before_start(coord, self.record)

    def after_start(self, coord: Any) -> None:
        """Read what the server granted ``coord``, now started."""
        self.terms.after_start(coord, self.record)

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
            f"dead members will be seen down after about {seconds(granted)}, "
            f"{way} service_down_time ({seconds(down)})"
        )

    def warning(self, granted: float) -> str:
        """The warning for a server that granted ``granted`` (seconds)."""
        lower = granted < self.asked
        what = self.terms.granted_instead(self.redacted_url, granted, self.asked)
        fix = self.terms.fix(self.asked, lower=lower)
        if self.from_url:
            fix += f", or set the URL's {self.terms.url_option} option to {granted:g}"
        else:
            way = "lower" if lower else "raise"
            fix += f", or {way} service_down_time to {seconds(granted)}"
        return f"{what}: {self._compared(granted)}. {fix}."

    def expiry(self) -> str:
        """One sentence for people: when dead members expire, and why then."""
        context = f"service_down_time {seconds(self.service_down_time)}"
        return self.terms.expiry(self.granted, self.asked, context)

    def describe(self) -> dict[str, Any]:
        """``granted_membership_timeout`` (None until known) and ``expiry``."""
        return {
            "granted_membership_timeout": self.granted,
            "expiry": self.expiry(),
        }
