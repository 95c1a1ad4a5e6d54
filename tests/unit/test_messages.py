"""What the library logs: no noise on a normal start, no misleading words."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import servicegroup
from servicegroup.testing import ServiceGroupFixture
from tests import support


def test_a_normal_start_logs_no_traceback(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    api = support.make_api(f"file://{tmp_path}")
    api.join("host1", "compute")
    assert api.get_all("compute") == ["host1"]
    api.stop()
    noisy = [r.getMessage() for r in caplog.records if r.exc_info]
    assert noisy == []


def test_a_backend_that_never_answered_is_not_a_last_good_view(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sg = ServiceGroupFixture()
    sg.setUp()
    try:
        sg.store.set_reachable(False)
        observer = sg.new_api()
        assert not observer.is_up("host1", "compute")
        sg.advance(sg.refresh_interval)
        text = " ".join(r.getMessage() for r in caplog.records)
        assert "the backend never answered" in text
        assert "last good view" not in text
    finally:
        sg.cleanUp()


def test_version_is_the_installed_one() -> None:
    import importlib.metadata

    assert servicegroup.__version__ == importlib.metadata.version("servicegroup")
