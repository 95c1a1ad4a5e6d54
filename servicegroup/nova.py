"""Nova's own servicegroup driver interface, on the tooz driver.

Nova picks its servicegroup driver from ``[DEFAULT] servicegroup_driver``
through a name -> class path table in ``nova/servicegroup/api.py``; with
``'tooz': 'servicegroup.nova.ToozDriver'`` added there (the patch in
``doc/source/nova.rst``), a ``nova.conf`` needs only::

    [DEFAULT]
    servicegroup_driver = tooz
    servicegroup_tooz_url = kazoo://zk1:2181,zk2:2181,zk3:2181

How Nova uses a driver shapes this one:

* Nova builds it with ``importutils.import_object(path)``, no arguments, on
  the global ``oslo_config.cfg.CONF``, in about ten places, and never stops
  it. So building one is cheap, and every :class:`ToozDriver` of a process
  shares one :class:`~servicegroup.drivers.tooz.ToozServiceGroupDriver` per
  backend configuration: one set of threads and connections.
* Nova defines ``servicegroup_driver``, ``report_interval`` and
  ``service_down_time`` itself; only the ``servicegroup_*`` options are
  registered here, so Nova's definitions win whatever the import order.
* Nova has no leave: a member's life is its service's. :meth:`join` ties
  the member to the service's thread group (``service.tg``), which
  ``Service.stop()`` stops, also on SIGTERM through oslo.service: the member
  leaves then, and observers see it down at once. A service killed with
  SIGKILL stops beating and is down after ``service_down_time``.

Nothing here imports Nova.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import logging
import threading
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from oslo_config import cfg

from servicegroup import api as sg_api
from servicegroup import conf as sg_conf
from servicegroup import exceptions, process
from servicegroup.drivers import base

LOG = logging.getLogger(__name__)

_shared: dict[Hashable, base.ServiceGroupDriver] = {}


def shared_driver(conf: cfg.ConfigOpts) -> base.ServiceGroupDriver:
    """The process's tooz driver for the backend and timing ``conf`` names.

    Built on first use, and again if it was stopped. While a test's
    :class:`~servicegroup.testing.ServiceGroupFixture` is active, the driver
    is on the fixture's backend and clock.
    """
    override = sg_api.active_override()
    url = override.url if override is not None else conf.servicegroup_tooz_url
    key = (id(override), url, sg_conf.timing_from_conf(conf))
    driver = _shared.get(key)
    if driver is not None and not getattr(driver, "stopped", False):
        return driver
    with process.lock():
        driver = _shared.get(key)
        if driver is None or getattr(driver, "stopped", False):
            if override is not None:
                driver = override.build(conf)
            else:
                driver = sg_api.load_driver(conf, name="tooz", url=url)
            _shared[key] = driver
    return driver


def _joined_by_this_process(member: str, group: str) -> bool:
    """Whether a service of this process joined ``member`` and is accepted.

    Read your own writes across the shared drivers: there is one per timing,
    and a Nova test that changes report_interval before it starts its
    computes has them join through another driver than the one its
    scheduler asks, whose view shows them only at its next refresh (Nova's
    test_bug_1938326 got NoValidHost so under eventlet).
    """
    with process.lock():
        drivers = list(_shared.values())
    for driver in drivers:
        with contextlib.suppress(exceptions.NotSupported):
            if driver.is_registered(member, group):
                return True
    return False


def stop_shared_drivers() -> None:
    """Stop every shared driver: members leave, threads end.

    Runs at interpreter exit, so a service that exits without stopping
    (Nova never stops its servicegroup API) is seen down at once.
    """
    with process.lock():
        drivers = list(_shared.values())
        _shared.clear()
    for driver in drivers:
        driver.stop()


atexit.register(stop_shared_drivers)


def _field(service_ref: object, name: str) -> Any:
    """A field of what Nova passes: a mapping or a Nova object (or None).

    The scheduler's filters pass ``HostState.service``, a ``ReadOnlyDict``
    (a ``collections.UserDict``, not a ``dict``).
    """
    if isinstance(service_ref, Mapping):
        return service_ref.get(name)
    try:
        return getattr(service_ref, name, None)
    except Exception:  # noqa: BLE001 - a Nova object's lazy load of a field
        return None


def _host_and_group(service_ref: object) -> tuple[str, str]:
    host = _field(service_ref, "host")
    group = _field(service_ref, "topic") or _field(service_ref, "binary")
    if not host or not group:
        raise exceptions.InvalidArgument(
            "service_ref needs a 'host' and a 'topic' (or 'binary'); got "
            f"{type(service_ref).__name__}"
        )
    return str(host), str(group)


def _utcnow() -> datetime.datetime:
    # oslo.utils' clock when it is there (Nova's tests freeze it with
    # timeutils.set_time_override, and Nova's db driver reads it).
    try:
        from oslo_utils import timeutils
    except ImportError:
        return datetime.datetime.now(datetime.timezone.utc)
    return _as_utc(timeutils.utcnow())


def _as_utc(value: datetime.datetime) -> datetime.datetime:
    # Nova's objects carry aware UTC times; rows read without them are naive
    # UTC (as the database keeps them).
    if value.tzinfo is None:
        return value.replace(tzinfo=datetime.timezone.utc)
    return value


class _LeaveWhenStopped:
    """Stands among ``service.tg``'s timers: stopping them makes it leave.

    ``Service.stop()`` ends with oslo.service's ``ThreadGroup.stop()``, which
    calls ``stop()`` on each of its timers (both the eventlet and the
    threading backend), and ``ThreadGroup.wait()`` calls ``wait()``. The
    member leaves in that call, bounded by ``servicegroup_backend_timeout``,
    so it is out of the group before the service's ``stop()`` returns.
    """

    def __init__(self, leave: Callable[[], None]) -> None:
        self._leave: Callable[[], None] | None = leave
        self._lock = threading.Lock()

    def stop(self) -> None:
        with self._lock:
            leave, self._leave = self._leave, None
        if leave is not None:
            leave()

    def wait(self) -> None:
        return None


class ToozDriver:
    """``nova.servicegroup.drivers.base.Driver`` on servicegroup's tooz driver.

    :param args: ignored, as Nova passes what its API was given.
    :param kwargs: ignored.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        sg_conf.register_host_opts(cfg.CONF)
        self._conf = sg_conf.with_host_defaults(cfg.CONF)
        self._sg = sg_api.API(driver=shared_driver(self._conf))

    def __repr__(self) -> str:
        return f"<servicegroup.nova.ToozDriver {self._sg.driver!r}>"

    @property
    def api(self) -> sg_api.API:
        """The :class:`servicegroup.API` this driver answers from."""
        # A shared driver stopped at exit, or by a test fixture's clean-up,
        # is replaced by a new one on next use.
        if getattr(self._sg.driver, "stopped", False):
            self._sg = sg_api.API(driver=shared_driver(self._conf))
        return self._sg

    def join(self, member: str, group: str, service: object = None) -> None:
        """Join ``member`` to ``group`` for as long as ``service`` runs.

        A service whose ``report_interval`` is 0 or None does not report,
        as with Nova's db driver, and so is never up.
        """
        if service is not None and not getattr(service, "report_interval", None):
            LOG.debug(
                "report_interval of %r is not set: %s is not reported in %s",
                service,
                member,
                group,
            )
            return
        api = self.api
        api.join(member, group)
        if service is not None:
            self._leave_with(service, api, member, group)

    def _leave_with(
        self, service: object, api: sg_api.API, member: str, group: str
    ) -> None:
        timers = getattr(getattr(service, "tg", None), "timers", None)
        if not isinstance(timers, list):
            LOG.warning(
                "%r has no oslo.service thread group: member %s of group %s "
                "leaves when the process exits",
                service,
                member,
                group,
            )
            return

        def leave() -> None:
            try:
                api.leave(member, group)
            except exceptions.MemberNotJoined:
                pass  # left already (the process is exiting)

        timers.append(_LeaveWhenStopped(leave))

    def is_up(self, service_ref: object) -> bool:
        """Whether the service reports; Nova checks ``forced_down`` itself.

        A service the backend has never shown this process (one still on
        the db driver while a cell switches over, one whose row an operator
        or a test wrote) is judged by its row, as the db driver judges it:
        up while its last report is within ``service_down_time``. A service
        the backend knows is judged by the backend alone, so a stopped one
        is down at once.
        """
        host, group = _host_and_group(service_ref)
        api = self.api
        if api.is_up(host, group) or _joined_by_this_process(host, group):
            return True
        if api.get_updated_time({"host": host, "topic": group}) is not None:
            return False  # seen in the backend, and not up there now
        return self._row_is_recent(service_ref)

    def _row_is_recent(self, service_ref: object) -> bool:
        last = _field(service_ref, "last_seen_up") or _field(service_ref, "created_at")
        if isinstance(last, str):
            # Rows that came over RPC carry their times as strings.
            try:
                last = datetime.datetime.fromisoformat(last)
            except ValueError:
                return False
        if not isinstance(last, datetime.datetime):
            return False
        elapsed = (_utcnow() - _as_utc(last)).total_seconds()
        return abs(elapsed) <= float(self._conf.service_down_time)

    def updated_time(self, service_ref: object) -> datetime.datetime | None:
        """The newer of the latest heartbeat and the row's ``updated_at``.

        As Nova's mc driver does: the heartbeat is what ``openstack compute
        service list`` should show, but a row changed later (an operator
        disabled the service) is newer, and a service never seen by the
        backend still shows its row's time.
        """
        host, group = _host_and_group(service_ref)
        beat = self.api.get_updated_time({"host": host, "topic": group})
        row = _field(service_ref, "updated_at")
        if not isinstance(row, datetime.datetime):
            return beat if beat is not None else row
        if beat is None:
            return row
        return max(_as_utc(row), beat)
