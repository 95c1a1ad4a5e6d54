"""Input a user may get wrong is accepted only with a clear word."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import servicegroup
from tests import support


def _join_once(api: servicegroup.API) -> None:
    try:
        api.join("host1", "compute")
        support.wait_until(lambda: api.is_up("host1", "compute"), 10, "joined")
    finally:
        api.stop()


def test_a_file_directory_that_did_not_exist_is_reported_created(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "not" / "there"
    api = support.make_api(f"file://{missing}")
    _join_once(api)
    created = [r for r in caplog.records if "was created" in r.getMessage()]
    assert len(created) == 1 and str(missing) in created[0].getMessage()
    assert created[0].levelno == logging.WARNING


def test_an_existing_file_directory_is_not_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    api = support.make_api(f"file://{tmp_path}")
    _join_once(api)
    assert not [r for r in caplog.records if "was created" in r.getMessage()]


def test_a_redis_password_the_server_does_not_ask_for_is_reported(
    server_pool: object, caplog: pytest.LogCaptureFixture
) -> None:
    """redis-py ignores the error AUTH gets from a server without a password."""
    url = server_pool.get("redis").url  # type: ignore[attr-defined]
    api = support.make_api(url.replace("redis://", "redis://:s3cret@", 1))
    _join_once(api)
    warned = [m for m in caplog.messages if "requires no password" in m]
    assert len(warned) == 1, "once per server and process"
    assert "s3cret" not in caplog.text
