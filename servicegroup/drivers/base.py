"""The contract every service group driver implements."""

from __future__ import annotations

import abc
import datetime
from collections.abc import Callable, Mapping
from typing import Any

from servicegroup import exceptions, membership
from servicegroup import member as sg_member


class ServiceGroupDriver(abc.ABC):
    """Tells which members of which groups are alive.

    Ids are validated ``str`` (see :mod:`servicegroup.validation`); the API
    facade validates them before calling a driver.
    """

    @abc.abstractmethod
    def join(
        self,
        member_id: str,
        group_id: str,
        capabilities: Mapping[str, Any],
    ) -> None:
        """Start keeping ``member_id`` in ``group_id``; return at once."""

    @abc.abstractmethod
    def leave(self, member_id: str, group_id: str) -> None:
        """Remove the member explicitly so observers see it down at once.

        :raises MemberNotJoined: this process did not join it.
        """

    @abc.abstractmethod
    def is_up(self, member_id: str, group_id: str) -> bool:
        """Whether the member is alive; must not touch the network."""

    @abc.abstractmethod
    def get_all(self, group_id: str) -> list[str]:
        """Sorted ids of the members of ``group_id`` that are up."""

    @abc.abstractmethod
    def get_members(self, group_id: str) -> list[sg_member.Member]:
        """Every member known in the group, up or not, sorted by id."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Leave every joined member and stop background work; idempotent."""

    def get_updated_time(
        self, member_id: str, group_id: str
    ) -> datetime.datetime | None:
        """The member's latest heartbeat (aware UTC), or None if unknown."""
        for known in self.get_members(group_id):
            if known.id == member_id:
                return known.updated_at
        return None

    def update_capabilities(
        self, member_id: str, group_id: str, capabilities: Mapping[str, Any]
    ) -> None:
        """Replace the capabilities a joined member advertises."""
        raise exceptions.NotSupported(
            f"{type(self).__name__} cannot update capabilities",
            group_id=group_id,
            member_id=member_id,
        )

    def is_registered(self, member_id: str, group_id: str) -> bool:
        """Whether the backend accepted a member this process joined."""
        raise exceptions.NotSupported(
            f"{type(self).__name__} cannot tell whether a join was accepted"
        )

    def get_groups(self) -> list[str]:
        """Every group the backend knows, sorted."""
        raise exceptions.NotSupported(f"{type(self).__name__} cannot list groups")

    def delete_group(self, group_id: str) -> None:
        """Remove a group that has no live member left."""
        raise exceptions.NotSupported(f"{type(self).__name__} cannot delete groups")

    def watch(
        self, group_id: str, callback: membership.WatchCallback
    ) -> Callable[[], None]:
        """Call ``callback`` with each change of the group's up members."""
        raise exceptions.NotSupported(f"{type(self).__name__} cannot watch groups")

    def describe(self) -> Mapping[str, Any]:
        """What the driver runs with (URL without password, timeouts)."""
        return {"driver": type(self).__name__}
