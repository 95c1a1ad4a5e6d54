"""The import-time check of the tooz private names our drivers use."""

from __future__ import annotations

import importlib

import pytest
from tooz import coordination
from tooz.drivers import file as tooz_file

from servicegroup.drivers.tooz import compat
from servicegroup.drivers.tooz.backends import file as file_backend


def test_the_installed_tooz_has_everything() -> None:
    compat.check_core()
    compat.check_redis()
    compat.check_memcached()
    compat.check_zookeeper()


def test_a_missing_method_is_named_with_the_tooz_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(tooz_file.FileDriver, "_make_filesystem_safe")
    with pytest.raises(compat.ToozIncompatible) as caught:
        compat.check_core()
    message = str(caught.value)
    assert "tooz.drivers.file.FileDriver._make_filesystem_safe" in message
    assert f"tooz {compat.tooz_version()}" in message
    assert compat.tooz_version()[0].isdigit()
    assert caught.value.missing == [
        "tooz.drivers.file.FileDriver._make_filesystem_safe"
    ]
    assert isinstance(caught.value, ImportError)


def test_importing_the_file_backend_fails_when_a_name_is_gone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(tooz_file, "FileFutureResult")
    try:
        with pytest.raises(compat.ToozIncompatible, match="FileFutureResult"):
            importlib.reload(file_backend)
    finally:
        monkeypatch.undo()
        importlib.reload(file_backend)


def test_a_renamed_instance_attribute_is_found_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What a tooz that renamed _joined_groups would look like: no method of
    # the base driver mentions it any more.
    def init(self: object, *args: object) -> None:
        self.joined = set()  # type: ignore[attr-defined]

    for name in ("__init__", "start", "stop"):
        monkeypatch.setattr(coordination.CoordinationDriver, name, init)
    monkeypatch.setattr(
        coordination.CoordinationDriverCachedRunWatchers, "run_watchers", init
    )
    with pytest.raises(compat.ToozIncompatible, match="_joined_groups"):
        compat.require([compat.uses(coordination.CoordinationDriver, "_joined_groups")])


def test_a_changed_redis_template_is_found_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tooz.drivers import redis as tooz_redis

    source = compat.inspect.getsource(tooz_redis)
    monkeypatch.setattr(
        compat.inspect,
        "getsource",
        lambda module: source.replace("group_existence_key", "group_marker"),
    )
    with pytest.raises(compat.ToozIncompatible, match="group_existence_key"):
        compat.check_redis()


def test_kazoo_private_names_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from kazoo import client as kazoo_client

    monkeypatch.delattr(kazoo_client.KazooClient, "ensure_path_async")
    with pytest.raises(compat.ToozIncompatible, match="ensure_path_async"):
        compat.check_zookeeper()


def test_what_server_limits_reads_of_kazoo_is_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kazoo.protocol import connection as kazoo_connection

    monkeypatch.delattr(kazoo_connection.ConnectionHandler, "_connect")
    with pytest.raises(compat.ToozIncompatible, match="ConnectionHandler._connect"):
        compat.check_zookeeper()


def test_a_changed_kazoo_read_timeout_is_found_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # server_limits derives the negotiated session timeout from kazoo's
    # read timeout: a kazoo that computed it otherwise would be misread.
    from kazoo.protocol import connection as kazoo_connection

    source = compat.inspect.getsource(kazoo_connection)
    monkeypatch.setattr(
        compat.inspect,
        "getsource",
        lambda module: source.replace("* 2.0 / 3.0", "* 0.5"),
    )
    with pytest.raises(compat.ToozIncompatible, match="2/3 of the negotiated"):
        compat.check_zookeeper()


def test_the_etcd_lease_server_limits_reads_is_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What a tooz whose etcd driver renamed its lease would look like.
    names = compat._code_names
    monkeypatch.setattr(
        compat, "_code_names", lambda klass: names(klass) - {"_membership_lease"}
    )
    with pytest.raises(compat.ToozIncompatible) as caught:
        compat.check_etcd()
    assert caught.value.missing == [
        "tooz.drivers.etcd3gw.Etcd3Driver._membership_lease"
    ]
