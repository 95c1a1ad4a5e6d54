"""The facade host services use: ``servicegroup.API``.

It loads the driver named by ``servicegroup_driver`` through stevedore,
validates every argument before any network traffic, and adapts Nova's
``service_ref`` (a mapping or an object with ``host`` and ``topic`` or
``binary``, and optionally ``forced_down``).
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

import stevedore
from oslo_config import cfg

from servicegroup import conf as sg_conf
from servicegroup import exceptions, membership, scheduling, validation
from servicegroup import member as sg_member
from servicegroup.drivers import base

LOG = logging.getLogger(__name__)

DRIVER_NAMESPACE = "servicegroup.drivers"


def _field(service_ref: object, name: str) -> Any:
    # Plain dicts first: service_is_up is on hot paths and an ABC check
    # costs more than the lookup itself.
    if type(service_ref) is dict or isinstance(service_ref, Mapping):
        return service_ref.get(name)
    return getattr(service_ref, name, None)


def _ref_fields(service_ref: object) -> tuple[Any, Any]:
    """(member, group) of a Nova service_ref: host and topic (or binary)."""
    host = _field(service_ref, "host")
    group = _field(service_ref, "topic") or _field(service_ref, "binary")
    if host is None or group is None:
        raise exceptions.InvalidArgument(
            "service_ref needs a 'host' and a 'topic' (or 'binary'); got "
            f"{type(service_ref).__name__}"
        )
    return host, group


def _ref_ids(service_ref: object) -> tuple[str, str]:
    """Validated (member, group) of a Nova service_ref."""
    host, group = _ref_fields(service_ref)
    return validation.member_id(host), validation.group_id(group)


def _installed_drivers() -> list[str]:
    names = {ep.name for ep in importlib.metadata.entry_points(group=DRIVER_NAMESPACE)}
    return sorted(names)


#: What a ``servicegroup_driver`` the host defined itself falls back to
#: when its value names none of ours (Nova's default is its own ``db``).
HOST_DRIVER_FALLBACK = "tooz"


def load_driver(
    conf: cfg.ConfigOpts,
    clock: scheduling.Clock | None = None,
    *,
    name: str | None = None,
    host_owned: bool = False,
    **kwargs: Any,
) -> base.ServiceGroupDriver:
    """Instantiate the driver named by ``conf.servicegroup_driver``.

    :param name: load this driver instead of the configured one.
    :param host_owned: the host (Nova) defined ``servicegroup_driver``; a
        value of its own, such as ``db``, means :data:`HOST_DRIVER_FALLBACK`.
    :param kwargs: passed to the driver (``url=`` for the tooz driver).
    """
    name = name or conf.servicegroup_driver
    if host_owned and name not in _installed_drivers():
        LOG.info(
            "servicegroup_driver is %r, a driver of the host service; "
            "servicegroup uses its %r driver",
            name,
            HOST_DRIVER_FALLBACK,
        )
        name = HOST_DRIVER_FALLBACK
    try:
        manager: stevedore.DriverManager[base.ServiceGroupDriver]
        manager = stevedore.DriverManager(
            DRIVER_NAMESPACE,
            name,
            invoke_on_load=True,
            invoke_args=(conf,),
            invoke_kwds={"clock": clock, **kwargs},
        )
    except stevedore.exception.NoMatches as exc:
        raise exceptions.UnknownDriver(
            f"servicegroup_driver {name!r} is not installed; available: "
            f"{', '.join(_installed_drivers())}"
        ) from exc
    driver = manager.driver
    if not isinstance(driver, base.ServiceGroupDriver):
        raise exceptions.UnknownDriver(
            f"servicegroup_driver {name!r} is not a ServiceGroupDriver"
        )
    return driver


@dataclasses.dataclass
class BackendOverride:
    """Where every API built while it is active goes, whatever its conf.

    Set by :class:`servicegroup.testing.ServiceGroupFixture`, so that code
    under test that builds its own ``servicegroup.API()`` (or Nova's driver)
    gets the test's fake backend and clock; not for production use.
    """

    url: str
    clock: scheduling.Clock
    #: The conf an API built without one uses.
    conf: cfg.ConfigOpts
    #: Every driver built under the override, for the test to stop.
    drivers: list[base.ServiceGroupDriver] = dataclasses.field(default_factory=list)

    def build(self, conf: cfg.ConfigOpts) -> base.ServiceGroupDriver:
        """A tooz driver on the override's backend and clock."""
        driver = load_driver(conf, self.clock, name="tooz", url=self.url)
        with _override_lock:
            self.drivers.append(driver)
        return driver

    def stop_all(self) -> None:
        """Stop every driver built under the override."""
        with _override_lock:
            drivers, self.drivers = self.drivers, []
        for driver in drivers:
            driver.stop()


_override: BackendOverride | None = None
_override_lock = threading.Lock()


def active_override() -> BackendOverride | None:
    """The backend override in force, if a test set one."""
    return _override


def set_override(override: BackendOverride | None) -> BackendOverride | None:
    """Install ``override`` (None: remove it); returns the previous one."""
    global _override
    with _override_lock:
        previous, _override = _override, override
    return previous


class API:
    """Who of a group is alive.

    :param conf: a ConfigOpts with the servicegroup options registered (they
        are registered here if missing); a fresh one parsing no files if None.
    :param driver: a driver instance to use instead of loading one (tests).
    :param clock: the clock for background work; a FakeClock in tests.
    """

    def __init__(
        self,
        conf: cfg.ConfigOpts | None = None,
        *,
        driver: base.ServiceGroupDriver | None = None,
        clock: scheduling.Clock | None = None,
    ) -> None:
        if driver is None:
            override = _override
            if conf is None and override is not None:
                conf = override.conf
            if conf is None:
                conf = cfg.ConfigOpts()
                sg_conf.register_opts(conf)
                conf([], project="servicegroup", default_config_files=[])
                host_owned: frozenset[str] = frozenset()
            else:
                host_owned = sg_conf.register_opts(conf)
                sg_conf.share_adjusted_down_time(conf)
            if override is not None:
                driver = override.build(conf)
            else:
                driver = load_driver(
                    conf,
                    clock,
                    host_owned="servicegroup_driver" in host_owned,
                )
        self._driver = driver

    def __repr__(self) -> str:
        return f"<servicegroup.API {self._driver!r}>"

    def __enter__(self) -> API:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def driver(self) -> base.ServiceGroupDriver:
        """The driver in use."""
        return self._driver

    def join(
        self,
        member_id: str,
        group_id: str,
        service: object = None,
        capabilities: Mapping[str, Any] | None = None,
    ) -> None:
        """Join ``member_id`` to ``group_id`` and heartbeat for it.

        Returns at once; registration goes on in the background, retrying
        while the backend is down. Joining again updates the capabilities.
        ``service`` is accepted for Nova compatibility and not used.
        """
        self._driver.join(
            validation.member_id(member_id),
            validation.group_id(group_id),
            validation.capabilities(capabilities),
        )

    def leave(self, member_id: str, group_id: str) -> None:
        """Remove the member now, so observers see it down within one refresh."""
        self._driver.leave(
            validation.member_id(member_id), validation.group_id(group_id)
        )

    def update_capabilities(
        self, member_id: str, group_id: str, capabilities: Mapping[str, Any]
    ) -> None:
        """Advertise new capabilities for a member joined by this process."""
        self._driver.update_capabilities(
            validation.member_id(member_id),
            validation.group_id(group_id),
            validation.capabilities(capabilities),
        )

    def is_up(self, member_id: str, group_id: str) -> bool:
        """Whether ``member_id`` is alive in ``group_id``; no network traffic.

        The first question about a group waits for one fetch (bounded by
        ``servicegroup_backend_timeout``); later ones are a set lookup.
        """
        try:
            if self._driver.is_up(member_id, group_id):
                return True
        except TypeError:
            pass  # an unhashable id: the checks below say what is wrong
        # Invalid ids are never up; they are checked only on this slower
        # path so the common answer costs one lookup.
        validation.member_id(member_id)
        validation.group_id(group_id)
        return False

    def service_is_up(self, service_ref: object) -> bool:
        """Nova's form: ``service_ref`` has ``host`` and ``topic``.

        A service that an operator forced down is down whatever its
        heartbeats say.
        """
        if _field(service_ref, "forced_down"):
            return False
        return self.is_up(*_ref_fields(service_ref))

    def get_all(self, group_id: str) -> list[str]:
        """Sorted ids of the members of ``group_id`` that are up."""
        return self._driver.get_all(validation.group_id(group_id))

    def get_members(self, group_id: str) -> list[sg_member.Member]:
        """Every member seen in ``group_id``, up or down, sorted by id."""
        return self._driver.get_members(validation.group_id(group_id))

    def get_updated_time(self, service_ref: object) -> datetime.datetime | None:
        """The latest heartbeat of a service (aware UTC), or None if unknown."""
        member_id, group_id = _ref_ids(service_ref)
        return self._driver.get_updated_time(member_id, group_id)

    def is_registered(self, member_id: str, group_id: str) -> bool:
        """Whether the backend accepted ``member_id``, joined by this API.

        False until the first heartbeat round got through (``join`` returns
        at once, and keeps trying while the backend is down), and again
        while the member is being joined once more after the backend lost
        it. No network traffic.
        """
        return self._driver.is_registered(
            validation.member_id(member_id), validation.group_id(group_id)
        )

    def get_groups(self) -> list[str]:
        """Every group the backend knows (a network call)."""
        return self._driver.get_groups()

    def delete_group(self, group_id: str) -> None:
        """Remove a group that has no live member (a network call).

        :raises GroupNotEmpty: a member is still alive in it.
        :raises GroupNotFound: there is no such group.
        """
        self._driver.delete_group(validation.group_id(group_id))

    def watch(
        self, group_id: str, callback: membership.WatchCallback
    ) -> Callable[[], None]:
        """Call ``callback`` with each change of the group's up members.

        Returns a function that stops the calls.
        """
        return self._driver.watch(validation.group_id(group_id), callback)

    def describe(self) -> Mapping[str, Any]:
        """The driver's effective settings, secrets masked."""
        return self._driver.describe()

    def stop(self) -> None:
        """Leave every member joined here and stop background work.

        Idempotent; bounded by ``servicegroup_backend_timeout`` even when
        the backend is unreachable.
        """
        self._driver.stop()
