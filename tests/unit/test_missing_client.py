"""A backend whose client library is missing names the extra to install."""

from __future__ import annotations

import pytest

from servicegroup import exceptions
from servicegroup.cmd import errors as cmd_errors
from servicegroup.drivers.tooz.backends import base
from tests import support


def _without(module: str) -> object:
    def new_coordinator(*args: object, **kwargs: object) -> None:
        # What importing tooz's driver, or our subclass of it, raises.
        raise ModuleNotFoundError(f"No module named {module!r}", name=module)

    return new_coordinator


@pytest.mark.parametrize(
    ("url", "module", "extra"),
    [
        ("kazoo://127.0.0.1:2181", "kazoo", "zookeeper"),
        ("redis://127.0.0.1:6379", "redis", "redis"),
        ("memcached://127.0.0.1:11211", "pymemcache", "memcached"),
    ],
)
def test_missing_client_library_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, url: str, module: str, extra: str
) -> None:
    monkeypatch.setattr(base.Backend, "new_coordinator", _without(module))
    with pytest.raises(exceptions.MissingDependency) as info:
        support.make_api(url)
    assert f"pip install 'servicegroup[{extra}]'" in str(info.value)
    sentence, code = cmd_errors.explain(info.value)
    assert code == cmd_errors.ExitCode.USAGE and "not installed" in sentence


def test_a_missing_module_of_ours_is_not_disguised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(base.Backend, "new_coordinator", _without("servicegroup.nope"))
    with pytest.raises(ModuleNotFoundError):
        support.make_api("redis://127.0.0.1:6379")
