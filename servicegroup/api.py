"""The facade host services use: ``servicegroup.API``.

It loads the driver named by ``servicegroup_driver`` through stevedore,
validates every argument before any network traffic, and adapts Nova's
``service_ref`` (a mapping or an object with ``host`` and ``topic`` or
``binary``, and optionally ``forced_down``).
"""

from __future__ import annotations

import datetime
import logging
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


def load_driver(
    conf: cfg.ConfigOpts, clock: scheduling.Clock | None = None
) -> base.ServiceGroupDriver:
    """Instantiate the driver named by ``conf.servicegroup_driver``."""
    name = conf.servicegroup_driver
    try:
        manager: stevedore.DriverManager[base.ServiceGroupDriver]
        manager = stevedore.DriverManager(
            DRIVER_NAMESPACE,
            name,
            invoke_on_load=True,
            invoke_args=(conf,),
            invoke_kwds={"clock": clock},
        )
    except stevedore.exception.NoMatches as exc:
        available = sorted(stevedore.ExtensionManager(DRIVER_NAMESPACE).names())
        raise exceptions.UnknownDriver(
            f"servicegroup_driver {name!r} is not installed; available: "
            f"{', '.join(available)}"
        ) from exc
    driver = manager.driver
    if not isinstance(driver, base.ServiceGroupDriver):
        raise exceptions.UnknownDriver(
            f"servicegroup_driver {name!r} is not a ServiceGroupDriver"
        )
    return driver


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
            if conf is None:
                conf = cfg.ConfigOpts()
                sg_conf.register_opts(conf)
                conf([], project="servicegroup", default_config_files=[])
            else:
                sg_conf.register_opts(conf)
            driver = load_driver(conf, clock)
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

    def get_groups(self) -> list[str]:
        """Every group the backend knows (a network call)."""
        return self._driver.get_groups()

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
