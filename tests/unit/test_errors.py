"""Which exceptions the tooz seam turns into BackendError, and which not.

The heartbeat loop retries a BackendError forever, so a bug translated into
one would be retried in silence: programming errors must propagate.
"""

from __future__ import annotations

import concurrent.futures
import json

import pytest
from tooz import coordination
from tooz import utils as tooz_utils

from servicegroup import exceptions
from servicegroup.drivers.tooz import errors


def _translated(exc: BaseException) -> BaseException:
    """What leaves translate_errors when ``exc`` is raised inside it."""
    try:
        with errors.translate_errors("testing"):
            raise exc
    except BaseException as out:  # noqa: BLE001 - the point is to look at it
        return out
    raise AssertionError("translate_errors swallowed the exception")


@pytest.mark.parametrize(
    "exc",
    [
        AttributeError("'NoneType' object has no attribute 'get'"),
        TypeError("unsupported operand"),
        NameError("name 'clinet' is not defined"),
        KeyError("capabilities"),
        ValueError("bad"),
        ZeroDivisionError("division by zero"),
        IndexError("list index out of range"),
        AssertionError("invariant"),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_programming_errors_propagate_unchanged(exc: Exception) -> None:
    assert _translated(exc) is exc


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (coordination.GroupNotCreated(b"g"), exceptions.GroupNotFound),
        (coordination.MemberNotJoined(b"g", b"m"), exceptions.MemberNotFound),
        (coordination.GroupAlreadyExist(b"g"), errors._AlreadyExists),
        (coordination.MemberAlreadyExist(b"g", b"m"), errors._AlreadyExists),
        (coordination.ToozConnectionError("down"), exceptions.BackendUnavailable),
        (tooz_utils.SerializationError("bad msgpack"), errors._Undecodable),
        (coordination.OperationTimedOut("slow"), exceptions.BackendTimeout),
        (concurrent.futures.TimeoutError(), exceptions.BackendTimeout),
        (coordination.ToozError("group kept changing"), exceptions.BackendError),
        (ConnectionRefusedError(111, "refused"), exceptions.BackendUnavailable),
        (OSError(113, "no route to host"), exceptions.BackendUnavailable),
        (json.JSONDecodeError("Expecting value", "", 0), exceptions.BackendError),
    ],
    ids=lambda v: type(v).__name__,
)
def test_backend_errors_are_translated(
    exc: Exception, expected: type[exceptions.BackendError]
) -> None:
    out = _translated(exc)
    assert type(out) is expected
    assert out.__cause__ is exc
    assert "testing" in str(out)


def test_our_errors_pass_through() -> None:
    exc = exceptions.BackendTimeout("already ours")
    assert _translated(exc) is exc


def _client_errors() -> list[tuple[Exception, type[exceptions.BackendError]]]:
    """Real exceptions of the client libraries that are installed."""
    cases: list[tuple[Exception, type[exceptions.BackendError]]] = []
    redis_exc = pytest.importorskip("redis.exceptions")
    cases += [
        (redis_exc.ConnectionError("refused"), exceptions.BackendUnavailable),
        (redis_exc.ResponseError("NOSCRIPT"), exceptions.BackendError),
        (redis_exc.BusyLoadingError("loading"), exceptions.BackendUnavailable),
    ]
    kazoo_exc = pytest.importorskip("kazoo.exceptions")
    from kazoo.handlers.threading import KazooTimeoutError

    cases += [
        (kazoo_exc.NoNodeError(), exceptions.BackendError),
        (kazoo_exc.ConnectionLoss(), exceptions.BackendError),
        (KazooTimeoutError("no connection"), exceptions.BackendError),
    ]
    memcache_exc = pytest.importorskip("pymemcache.exceptions")
    cases += [
        (memcache_exc.MemcacheUnexpectedCloseError(), exceptions.BackendError),
        (memcache_exc.MemcacheServerError("SERVER_ERROR"), exceptions.BackendError),
    ]
    etcd_exc = pytest.importorskip("etcd3gw.exceptions")
    cases += [
        (etcd_exc.ConnectionFailedError(), exceptions.BackendUnavailable),
        (etcd_exc.Etcd3Exception("500"), exceptions.BackendError),
    ]
    requests_exc = pytest.importorskip("requests.exceptions")
    cases += [
        # An OSError subclass too: a connection problem.
        (requests_exc.ConnectionError("reset"), exceptions.BackendUnavailable),
        (
            requests_exc.JSONDecodeError("Expecting value", "", 0),
            exceptions.BackendUnavailable,
        ),
    ]
    return cases


def test_client_library_errors_are_backend_errors() -> None:
    for exc, expected in _client_errors():
        out = _translated(exc)
        assert type(out) is expected, (exc, out)
        assert out.__cause__ is exc


def test_client_errors_are_matched_by_module_not_by_import() -> None:
    # A client library's error that derives from KeyError (no library has
    # to be imported for the match): a backend condition, not our bug.
    odd = type("MissingKey", (KeyError,), {"__module__": "etcd3gw.exceptions"})
    out = _translated(odd("kvs"))
    assert type(out) is exceptions.BackendError
    # Our own KeyError, raised the same way, is a bug.
    assert type(_translated(KeyError("kvs"))) is KeyError
    assert errors.is_backend_error(odd("kvs"))
    assert not errors.is_backend_error(KeyError("kvs"))


def test_an_error_without_a_message_is_named_not_left_empty() -> None:
    reason, translate_errors = errors.reason, errors.translate_errors

    class ConnectionFailedError(Exception):  # etcd3gw's, raised bare
        __module__ = "etcd3gw.exceptions"

    with pytest.raises(exceptions.BackendUnavailable) as info:
        with translate_errors("leaving member host1 of group compute"):
            try:
                raise ConnectionFailedError()
            except ConnectionFailedError as exc:
                raise coordination.ToozConnectionError(str(exc)) from exc
    assert str(info.value).endswith(": ConnectionFailedError (no message)")
    assert reason(TimeoutError("read timed out")) == "TimeoutError: read timed out"
    assert reason(coordination.ToozConnectionError("refused")) == "refused"
