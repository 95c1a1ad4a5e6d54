"""Turning what tooz and its client libraries raise into our exceptions."""

from __future__ import annotations

import concurrent.futures
import contextlib
from collections.abc import Iterator

from tooz import coordination
from tooz import utils as tooz_utils

from servicegroup import exceptions


class _AlreadyExists(exceptions.BackendError):
    """The group or member we tried to create is already there."""


class _Undecodable(exceptions.BackendError):
    """The backend answered with a record tooz cannot decode."""


#: Client libraries' connection errors that are not OSErrors (matched by
#: name so that no optional client library has to be imported).
_CONNECTION_ERROR_NAMES = frozenset({"ConnectionError", "ConnectionFailedError"})


def _is_connection_error(exc: BaseException) -> bool:
    return isinstance(exc, OSError) or any(
        cls.__name__ in _CONNECTION_ERROR_NAMES for cls in type(exc).__mro__
    )


@contextlib.contextmanager
def translate_errors(what: str) -> Iterator[None]:
    """Turn whatever tooz or its client library raised into our errors."""
    try:
        yield
    except coordination.GroupNotCreated as exc:
        raise exceptions.GroupNotFound(f"{what}: group not found") from exc
    except coordination.MemberNotJoined as exc:
        raise exceptions.MemberNotFound(f"{what}: member not in group") from exc
    except (
        coordination.GroupAlreadyExist,
        coordination.MemberAlreadyExist,
    ) as exc:
        raise _AlreadyExists(f"{what}: already exists") from exc
    except coordination.ToozConnectionError as exc:
        raise exceptions.BackendUnavailable(f"{what}: {exc}") from exc
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
        # Drivers let some client errors through untranslated (redis-py,
        # kazoo, etcd3gw): at this seam they are all backend failures.
        if _is_connection_error(exc):
            raise exceptions.BackendUnavailable(
                f"{what}: {type(exc).__name__}: {exc}"
            ) from exc
        raise exceptions.BackendError(f"{what}: {type(exc).__name__}: {exc}") from exc
