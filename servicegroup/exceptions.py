"""Errors raised by servicegroup.

Every error the library raises derives from :class:`ServiceGroupError`, so a
host service can catch one class. Backend client errors (tooz, kazoo, redis,
...) never escape: the tooz driver translates them once, at the seam, with
``raise ... from exc`` so the original stays available as ``__cause__``::

    ServiceGroupError
    ├── ConfigurationError           (also a ValueError)
    │   ├── UnknownDriver            servicegroup_driver names no plugin
    │   ├── UnknownBackend           the URL scheme names no tooz backend
    │   ├── InvalidURL               the URL cannot be parsed or used
    │   └── MissingDependency        the backend's client library is not installed
    ├── InvalidArgument              (also a ValueError) bad ids, capabilities
    ├── NotSupported                 an optional driver feature is missing
    ├── MemberNotJoined              leave() of a member this process never joined
    └── BackendError                 the coordination backend failed
        ├── BackendUnavailable       it cannot be reached
        ├── BackendTimeout           it did not answer in time
        ├── GroupNotFound            the group does not exist there
        ├── GroupNotEmpty            a group to delete still has members
        └── MemberNotFound           the member is not in the group there
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "BackendTimeout",
    "BackendUnavailable",
    "ConfigurationError",
    "GroupNotEmpty",
    "GroupNotFound",
    "InvalidArgument",
    "InvalidURL",
    "MemberNotFound",
    "MemberNotJoined",
    "MissingDependency",
    "NotSupported",
    "ServiceGroupError",
    "UnknownBackend",
    "UnknownDriver",
]


class ServiceGroupError(Exception):
    """Base class of every error raised by servicegroup.

    :ivar group_id: the group concerned, when there is one.
    :ivar member_id: the member concerned, when there is one.
    """

    def __init__(
        self,
        message: str,
        *,
        group_id: str | None = None,
        member_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.group_id = group_id
        self.member_id = member_id


class ConfigurationError(ServiceGroupError, ValueError):
    """The configuration cannot work; the message says what to change."""


class UnknownDriver(ConfigurationError):
    """``servicegroup_driver`` names no installed driver plugin."""


class UnknownBackend(ConfigurationError):
    """The URL scheme names no installed tooz backend."""


class InvalidURL(ConfigurationError):
    """The backend URL cannot be parsed or used."""


class MissingDependency(ConfigurationError):
    """The client library of the URL's backend is not installed.

    The message names the extra that installs it
    (``pip install 'servicegroup[zookeeper]'``).
    """


class InvalidArgument(ServiceGroupError, ValueError):
    """An id or a capabilities mapping was rejected before any network call."""


class NotSupported(ServiceGroupError):
    """The driver does not implement this optional feature."""


class MemberNotJoined(ServiceGroupError):
    """``leave`` was asked for a member this process has not joined."""


class BackendError(ServiceGroupError):
    """The coordination backend failed to do what was asked."""


class BackendUnavailable(BackendError):
    """The coordination backend cannot be reached."""


class BackendTimeout(BackendError):
    """The coordination backend did not answer in time."""


class GroupNotFound(BackendError):
    """The group does not exist in the backend (yet, or any more)."""


class GroupNotEmpty(BackendError):
    """The group to delete still has members that are alive."""


class MemberNotFound(BackendError):
    """The member is not in the group in the backend (evicted or never there)."""
