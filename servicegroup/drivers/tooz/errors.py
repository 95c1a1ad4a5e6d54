"""Turning what tooz and its client libraries raise into our exceptions.

Only failures of the backend become :class:`~servicegroup.exceptions.
BackendError`: tooz's errors, the client libraries' own (matched by the
module that defines them, see :data:`BACKEND_ERROR_MODULES`), OSErrors and
timeouts. The heartbeat loop retries a BackendError forever, so anything
else (an AttributeError, TypeError, NameError or KeyError: a bug, ours or a
client library's, or a tooz whose internals changed) propagates unchanged
instead of being retried in silence.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
from collections.abc import Iterator

import tooz
from tooz import coordination
from tooz import utils as tooz_utils

from servicegroup import exceptions


class _AlreadyExists(exceptions.BackendError):
    """The group or member we tried to create is already there."""


class _Undecodable(exceptions.BackendError):
    """The backend answered with a record tooz cannot decode."""


#: Top-level modules whose exceptions report a backend condition: the
#: client libraries of tooz's drivers (redis-py, kazoo, pymemcache, etcd3gw
#: and the requests/urllib3 it talks through), the record codecs (msgpack,
#: json), and the standard library's network layers. Matched by name, so
#: no optional client library has to be imported. Some of them raise odd
#: types for backend conditions (pymemcache's MemcacheUnexpectedCloseError,
#: kazoo's NoNodeError after a wipe, etcd3gw's Etcd3Exception on an HTTP
#: error, requests' JSONDecodeError for a truncated answer).
BACKEND_ERROR_MODULES = frozenset(
    {
        "redis",
        "kazoo",
        "pymemcache",
        "etcd3gw",
        "requests",
        "urllib3",
        "msgpack",
        "json",
        "socket",
        "ssl",
        "http",
        "tenacity",  # tooz's retry wrappers giving up on the backend
    }
)

#: Client libraries' connection errors that are not OSErrors (matched by
#: name, as above).
_CONNECTION_ERROR_NAMES = frozenset({"ConnectionError", "ConnectionFailedError"})


def is_backend_error(exc: BaseException) -> bool:
    """Whether ``exc`` reports a failure of the backend (not a bug)."""
    # concurrent.futures.TimeoutError is an OSError from Python 3.11 on only.
    if isinstance(exc, (tooz.ToozError, OSError, concurrent.futures.TimeoutError)):
        return True
    return any(
        cls.__module__.split(".")[0] in BACKEND_ERROR_MODULES
        for cls in type(exc).__mro__
    )


def _is_connection_error(exc: BaseException) -> bool:
    return isinstance(exc, OSError) or any(
        cls.__name__ in _CONNECTION_ERROR_NAMES for cls in type(exc).__mro__
    )


def reason(exc: BaseException) -> str:
    """What went wrong, never empty.

    Client libraries raise errors with no message (etcd3gw's
    ``ConnectionFailedError()``, a bare ``TimeoutError``), and tooz wraps
    some in errors whose message is that empty string: the first non-empty
    message along the chain of causes is the one an operator can act on.
    """
    seen: BaseException | None = exc
    innermost = exc
    while seen is not None:
        text = str(seen).strip()
        if text:
            name = type(seen).__name__
            return text if seen is exc and "Tooz" in name else f"{name}: {text}"
        innermost = seen
        seen = seen.__cause__ or seen.__context__
    return f"{type(innermost).__name__} (no message)"


@contextlib.contextmanager
def translate_errors(what: str) -> Iterator[None]:
    """Turn a backend failure that tooz or its client library raised into ours.

    Anything that is not a backend failure (see :func:`is_backend_error`)
    passes through untouched.
    """
    try:
        yield
    except coordination.GroupNotCreated as exc:
        raise exceptions.GroupNotFound(f"{what}: group not found") from exc
    except coordination.GroupNotEmpty as exc:
        raise exceptions.GroupNotEmpty(f"{what}: the group has members") from exc
    except coordination.MemberNotJoined as exc:
        raise exceptions.MemberNotFound(f"{what}: member not in group") from exc
    except (
        coordination.GroupAlreadyExist,
        coordination.MemberAlreadyExist,
    ) as exc:
        raise _AlreadyExists(f"{what}: already exists") from exc
    except coordination.ToozConnectionError as exc:
        raise exceptions.BackendUnavailable(f"{what}: {reason(exc)}") from exc
    except tooz_utils.SerializationError as exc:
        raise _Undecodable(f"{what}: undecodable record: {exc}") from exc
    except (
        coordination.OperationTimedOut,
        concurrent.futures.TimeoutError,
    ) as exc:
        raise exceptions.BackendTimeout(f"{what}: timed out") from exc
    except exceptions.ServiceGroupError:
        raise
    except Exception as exc:
        if not is_backend_error(exc):
            raise
        # Drivers let some client errors through untranslated (redis-py,
        # kazoo, etcd3gw): at this seam they are all backend failures.
        if _is_connection_error(exc):
            raise exceptions.BackendUnavailable(f"{what}: {reason(exc)}") from exc
        raise exceptions.BackendError(f"{what}: {reason(exc)}") from exc
