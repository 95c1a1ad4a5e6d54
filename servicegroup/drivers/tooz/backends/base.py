"""What every backend answers, and the answers for a tooz driver as it is.

:class:`Backend` is the one seam between the code every backend shares
(:mod:`..session`: making coordinators, one member's session, the observer)
and what one backend does its own way. Its defaults are what tooz's drivers
do without our help, which is how ``fake://`` and tooz's other drivers run;
a backend module overrides only what differs there. One instance serves one
URL; the backend's class attributes are its capabilities.

Coordinators stay tooz's objects: what our subclass of a tooz driver needs
comes through its constructor (:meth:`Backend.driver_arguments`) or a method
of the subclass, never an attribute set on it from outside.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Protocol, TypeVar

from tooz import coordination

from servicegroup import conf as sg_conf
from servicegroup import exceptions
from servicegroup.drivers.tooz import server_limits, urls
from servicegroup.drivers.tooz.errors import translate_errors
from servicegroup.heartbeat import Reset

LOG = logging.getLogger(__name__)

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

Coordinator = coordination.CoordinationDriver


class Pending(Protocol[T_co]):
    """A result to wait for: tooz's async results, and our own reads."""

    def get(self, timeout: float | None = None) -> T_co: ...


#: Waits on a result within the backend timeout: ``wait(what, result)``.
Wait = Callable[[str, Pending[T]], T]


@dataclasses.dataclass(frozen=True)
class GroupRecords:
    """One read of a group: tooz member id -> decoded capabilities."""

    records: dict[bytes, Any]
    #: Why some records could not be decoded (they read as None), or None.
    undecodable: str | None = None


class GroupReader(Protocol):
    """How an observer reads groups through one coordinator."""

    @property
    def coordinator(self) -> Coordinator:
        """The coordinator read through (a new one needs a new reader)."""
        ...

    def read(self, group: bytes) -> Pending[GroupRecords]:
        """The live members of ``group`` with their records."""
        ...

    def close(self) -> None:
        """Forget what was read; the coordinator is closed by its owner."""
        ...


class ToozGroupReader:
    """Reads a group as tooz does: ``get_members_with_capabilities``."""

    def __init__(self, coord: Coordinator) -> None:
        self._coord = coord

    @property
    def coordinator(self) -> Coordinator:
        return self._coord

    def read(self, group: bytes) -> Pending[GroupRecords]:
        return _Records(self._coord.get_members_with_capabilities(group))

    def close(self) -> None:
        pass


class _Records:
    def __init__(self, result: Pending[dict[bytes, Any]]) -> None:
        self._result = result

    def get(self, timeout: float | None = None) -> GroupRecords:
        return GroupRecords(self._result.get(timeout=timeout))


class KeepsLivenessOnReset:
    """Mixed into our drivers whose tooz ``_stop`` deletes the liveness key.

    A stuck client is reset by stopping it, and a live member must not look
    dead for it: the driver's ``_stop`` reads :attr:`_keep_liveness`.
    """

    #: True during :meth:`stop_keeping_liveness` only.
    _keep_liveness = False

    def stop_keeping_liveness(self) -> None:
        """tooz's ``stop()``, keeping the member's liveness key."""
        self._keep_liveness = True
        try:
            self.stop()  # type: ignore[attr-defined]
        finally:
            self._keep_liveness = False


class Backend:
    """One backend URL's policy; these defaults suit tooz's drivers as they are.

    :param url: the URL, already checked (:func:`.registry.parse_url`).
    :param parts: its parts.
    :param timing: the driver's timing.
    """

    #: The URL schemes this backend serves (the registry's keys).
    schemes: ClassVar[tuple[str, ...]] = ()
    #: The client library (top-level module) and our extra that installs it.
    client_module: ClassVar[str | None] = None
    extra: ClassVar[str | None] = None
    #: The tooz option that carries the membership timeout.
    membership_option: ClassVar[str] = "membership_timeout"
    #: Whether tooz's driver runs calls on an executor of its own.
    own_executor: ClassVar[bool] = False
    #: Whether a beat keeps the heartbeat time visible, so that
    #: :meth:`confirm` can stand in for rewriting the record every round.
    confirms_membership: ClassVar[bool] = False
    #: The server's say on the membership timeout, in the backend's words.
    terms: ClassVar[server_limits.ServerTerms] = server_limits.ServerTerms()

    def __init__(
        self, url: str, parts: urllib.parse.SplitResult, timing: sg_conf.Timing
    ) -> None:
        self.url = url
        self.parts = parts
        self.timing = timing

    # -- the URL ---------------------------------------------------------------

    @classmethod
    def check_url(cls, parts: urllib.parse.SplitResult, shown: str) -> None:
        """Raise InvalidURL for what this backend cannot use (``shown``: redacted)."""

    @classmethod
    def endpoints(cls, parts: urllib.parse.SplitResult) -> list[tuple[str, int]]:
        """Every ``(host, port)`` the client reaches (port 0: the default)."""
        return [(parts.hostname, parts.port or 0)] if parts.hostname else []

    def timing_options(self) -> dict[str, Any]:
        """The tooz options that carry our timing (before the URL's win)."""
        return {"membership_timeout": self.timing.service_down_time}

    def tooz_options(self) -> dict[str, Any]:
        """:meth:`timing_options`, with tooz's synchronous executor if it has one."""
        wanted = self.timing_options()
        if self.own_executor:
            # tooz would give every coordinator a thread pool whose shutdown
            # takes a second; our own threads already do the waiting, and the
            # client timeouts bound every call.
            wanted["executor"] = "synchronous"
        return wanted

    # -- making and starting coordinators --------------------------------------

    @classmethod
    def driver_class(cls) -> type[Coordinator] | None:
        """Our subclass of tooz's driver, or None for tooz's own."""
        return None

    def driver_arguments(self, *, observer: bool) -> dict[str, Any]:
        """Keyword arguments for our subclass (``observer``: joins nothing)."""
        return {}

    def new_coordinator(
        self, tooz_member: bytes, ours: Mapping[str, Any], *, observer: bool = False
    ) -> Coordinator:
        """A coordinator, not started (no traffic yet); ``ours``: our options."""
        driver_class = self.driver_class()
        if driver_class is None:
            return coordination.get_coordinator(self.url, tooz_member, **ours)
        # What get_coordinator does, with our subclass.
        return driver_class(
            tooz_member,
            self.parts,
            urls.merged_options(self.parts, ours),
            **self.driver_arguments(observer=observer),
        )

    def start_failed(self, what: str) -> exceptions.BackendError | None:
        """A truer error than the time-out or outage starting met, if any."""
        return None

    def started(self, coord: Coordinator) -> None:
        """Called once ``coord`` started."""

    def check_connected(self, coord: Coordinator, what: str) -> None:
        """Fail at once if a call could only wait (the client is offline)."""

    # -- one member's session --------------------------------------------------

    def beat(self, coord: Coordinator, what: str) -> None:
        """Tell the backend the member is alive."""
        with translate_errors(what):
            coord.heartbeat()

    def confirm(
        self, coord: Coordinator, group: bytes, wait: Wait[None], what: str
    ) -> None:
        """Check the member is still in ``group`` (see ``confirms_membership``)."""
        raise NotImplementedError(f"{type(self).__name__} does not confirm")

    def replace_stale(
        self,
        coord: Coordinator,
        group: bytes,
        record: dict[str, Any],
        wait: Wait[None],
        name: str,
    ) -> None:
        """Make an entry with our id, left by a process gone, ours.

        ``name`` says which member of which group, for messages.
        """
        # The entry is keyed by our tooz member id and its liveness key is
        # the one we beat: rewriting the record makes it ours, with no
        # moment where observers could see the member missing.
        try:
            wait(f"joining {name}", coord.update_capabilities(group, record))
            return
        except exceptions.MemberNotFound:
            pass  # gone meanwhile: join below
        self.leave_and_join(coord, group, record, wait, name)

    @staticmethod
    def leave_and_join(
        coord: Coordinator,
        group: bytes,
        record: dict[str, Any],
        wait: Wait[None],
        name: str,
    ) -> None:
        """Remove the entry with our id, then join."""
        with contextlib.suppress(exceptions.MemberNotFound):
            wait(f"removing stale {name}", coord.leave_group(group))
        wait(f"joining {name}", coord.join_group(group, record))

    def reset(self, coord: Coordinator) -> Reset:
        """Get a member's client that stopped making progress going again."""
        self.close(coord, keep_liveness=True)
        return Reset.RECONNECT

    def close(
        self, coord: Coordinator, *, keep_liveness: bool = False, started: bool = True
    ) -> None:
        """Stop ``coord`` without hanging on a dead backend; never raises.

        :param keep_liveness: a reset of a live member, not a leave: the
            member's liveness key must stay.
        :param started: whether ``coord.start()`` succeeded.
        """
        # tooz's stop() leaves every joined group and waits without a
        # timeout; we already left (with one), so a dead backend must not
        # hang us here. (tooz's own attribute, checked by compat.)
        coord._joined_groups = set()
        # tooz refuses to stop a coordinator whose start() did not succeed
        # (and says so with a traceback at every start with -vv): only the
        # client objects need closing then.
        if started:
            try:
                self.stop(coord, keep_liveness=keep_liveness)
            except Exception:  # noqa: BLE001 - closing must never fail the caller
                LOG.debug(
                    "Ignoring error while stopping a tooz coordinator", exc_info=True
                )
        try:
            self.close_clients(coord)
        except Exception:  # noqa: BLE001 - as above
            LOG.debug("Ignoring error while closing a client", exc_info=True)

    def stop(self, coord: Coordinator, *, keep_liveness: bool) -> None:
        """tooz's ``stop()``; ``keep_liveness`` matters where it deletes keys."""
        coord.stop()

    def close_clients(self, coord: Coordinator) -> None:
        """Close what tooz's ``stop()`` leaves open."""

    # -- the observer ----------------------------------------------------------

    def group_reader(
        self, coord: Coordinator, on_change: Callable[[], None]
    ) -> GroupReader:
        """How an observer reads groups through ``coord``.

        ``on_change`` is for a backend that learns of joins and leaves by
        itself (it wakes the membership view).
        """
        return ToozGroupReader(coord)


class ConfirmingBackend(Backend):
    """A backend whose beat carries its time: our driver checks membership.

    Our Redis and memcached subclasses write the beat's time into the
    liveness key and answer ``check_joined``, so a round confirms instead of
    rewriting the record; they keep the liveness key when a stuck client is
    reset (:class:`KeepsLivenessOnReset`).
    """

    confirms_membership = True

    def confirm(
        self, coord: Coordinator, group: bytes, wait: Wait[None], what: str
    ) -> None:
        driver: Any = coord
        wait(what, driver.check_joined(group))

    def stop(self, coord: Coordinator, *, keep_liveness: bool) -> None:
        driver: Any = coord
        if keep_liveness:
            driver.stop_keeping_liveness()
        else:
            driver.stop()
