"""tooz's own API suite, on the fake backend and on our drivers.

tooz ships its API suite (``tooz/tests/test_coordination.py``) in its wheel.
It runs here, in a subprocess per backend, against ``fake://`` and against
our subclasses of tooz's drivers (``servicegroup/drivers/tooz/backends/``)
on the real servers the suite starts: a tooz upgrade that changes what our
subclasses lean on fails here first. ``tests/tooz_api_plugin.py`` routes
tooz's ``get_coordinator`` to our subclasses and holds the list of tests
skipped or expected to fail, each with its reason.

Every test's outcome is checked: none may fail, and the skipped set must be
exactly the one below (tooz turns ``NotImplemented`` into a skip, so a call
that stopped working would otherwise vanish into the skip count). Run with
``pytest -s`` to see the counts per backend.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import pytest

from servicegroup.drivers.tooz.backends import registry
from tests import tooz_api_plugin
from tests.functional.conftest import SERVER_KINDS

REPO = Path(__file__).resolve().parents[2]

#: Tests skipped on a backend -> why. tooz's own skips (the test decides it
#: does not apply, or the driver raises tooz.NotImplemented) carry tooz's
#: reason; ours are in tests/tooz_api_plugin.py. tooz's own drivers skip
#: the same tests (checked with SERVICEGROUP_TOOZ_SUITE_DRIVERS=tooz).
_NOT_ACROSS_HOSTS = "This driver is not distributed across hosts"
_NO_DESTROY = "only works with coordinators that have the ability to destroy groups"
_NOT_TIMEOUT_BASED = "This driver is not based on timeout"
#: tooz.NotImplemented: the driver has no such call.
_MISSING = "not implemented"
_NO_SHARED_LOCKS = {
    "test_get_shared_lock": _MISSING,
    "test_get_shared_lock_locking_same_lock_twice": _MISSING,
    "test_get_shared_lock_locking_two_lock": _MISSING,
    "test_get_lock_locking_exclusive_and_shared": _MISSING,
    "test_get_lock_locking_shared_and_exclusive": _MISSING,
}
_NO_MEMBER_INFO = {
    "test_get_member_info": _MISSING,
    "test_get_member_info_complex": _MISSING,
    "test_get_member_info_nonexistent_group": _MISSING,
    "test_get_member_info_nonjoined_member": _MISSING,
}
_NO_ELECTION = {
    "test_get_leader": _MISSING,
    "test_run_for_election": _MISSING,
    "test_run_for_election_multiple_clients": _MISSING,
    "test_run_for_election_multiple_clients_stand_down": _MISSING,
    "test_unwatch_elected_as_leader": _MISSING,
    "test_unwatch_elected_as_leader_callback_not_found": _MISSING,
}
EXPECTED_SKIPS: dict[str, dict[str, str]] = {
    "fake": {
        "test_connection_error_bad_host": _NOT_ACROSS_HOSTS,
        "test_watch_join_group_disappear": _NO_DESTROY,
        **{
            name: why
            for (backend, name), (kind, why) in tooz_api_plugin.EXPECTATIONS.items()
            if backend == "fake" and kind == "skip"
        },
    },
    # tooz's own file driver also lacks update_capabilities (ours adds it).
    "file": {
        "test_connection_error_bad_host": _NOT_ACROSS_HOSTS,
        "test_watch_join_group_disappear": _NO_DESTROY,
        "test_timeout": _NOT_TIMEOUT_BASED,
        "test_get_lock_release_broken": _MISSING,
        **_NO_MEMBER_INFO,
        **_NO_ELECTION,
    },
    "redis": {
        **_NO_SHARED_LOCKS,
        **_NO_MEMBER_INFO,
        # Redis has run_watchers but no stand_down_group_leader / get_leader.
        "test_get_leader": _MISSING,
        "test_run_for_election_multiple_clients": _MISSING,
        "test_run_for_election_multiple_clients_stand_down": _MISSING,
    },
    "memcached": {
        **_NO_SHARED_LOCKS,
        **_NO_MEMBER_INFO,
        "test_run_for_election_multiple_clients_stand_down": _MISSING,
    },
    "zookeeper": {
        **_NO_SHARED_LOCKS,
        "test_get_lock_release_broken": _MISSING,
        "test_timeout": _NOT_TIMEOUT_BASED,
        "test_watch_join_group_disappear": _NO_DESTROY,
    },
    "etcd": {
        "test_connection_error_bad_host": _NOT_ACROSS_HOSTS,
        "test_timeout": _NOT_TIMEOUT_BASED,
        "test_get_members_str_member_id": "does not support str member_id",
        **_NO_SHARED_LOCKS,
        **_NO_MEMBER_INFO,
        **_NO_ELECTION,
    },
}

#: Fewer tests than this means the suite was not really run (tooz 9.0.1
#: has 78, 9.1.0 has 83); the exact skip sets above catch the rest.
MIN_TESTS = 75

#: etcd's run takes about 42 s, more than CI's 30 minutes leave; our driver
#: there is tooz's with another HTTP client (endpoint failover), which the
#: contract and HA suites exercise. It runs with --run-slow.
BACKENDS = [
    "fake",
    "file",
    *(
        pytest.param(k, marks=pytest.mark.slow) if k == "etcd" else k
        for k in SERVER_KINDS
    ),
]


def _suite() -> str:
    for module in ("testtools", "sysv_ipc"):
        if importlib.util.find_spec(module) is None:
            pytest.fail(f"tooz's API suite needs {module}; install servicegroup[test]")
    spec = importlib.util.find_spec("tooz.tests.test_coordination")
    assert spec is not None and spec.origin is not None, "tooz ships no API suite"
    return spec.origin


def _expected_driver(url: str) -> str:
    scheme = urllib.parse.urlsplit(url).scheme
    override = registry.for_scheme(scheme).driver_class()
    if override is not None:
        return f"{override.__module__}.{override.__qualname__}"
    if scheme == "fake":
        return "servicegroup.testing.fake.driver.FakeDriver"
    return ""  # tooz's own driver (etcd): nothing of ours to check


def suite_url(url: str) -> str:
    """``url`` with the executor servicegroup runs these drivers with.

    tooz gives each coordinator a thread pool whose shutdown takes a second
    (the suite makes hundreds); servicegroup asks for tooz's synchronous
    executor on these schemes (``registry.EXECUTOR_SCHEMES``), so that is what
    is worth testing, and it runs the suite ten times faster.
    """
    if urllib.parse.urlsplit(url).scheme not in registry.EXECUTOR_SCHEMES:
        return url
    return url + ("&" if "?" in url else "?") + "executor=synchronous"


def run_suite(backend: str, url: str, drivers: str = "ours") -> dict[str, object]:
    """Run tooz's API suite on ``url``; the plugin's report."""
    with tempfile.TemporaryDirectory(prefix="sg-tooz-suite-") as tmp:
        report = Path(tmp) / "report.json"
        env = {
            **os.environ,
            "TOOZ_TEST_URL": suite_url(url),
            "SERVICEGROUP_TOOZ_SUITE_BACKEND": backend,
            "SERVICEGROUP_TOOZ_SUITE_DRIVERS": drivers,
            "SERVICEGROUP_TOOZ_SUITE_REPORT": str(report),
        }
        started = time.monotonic()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                "-p",
                "tests.tooz_api_plugin",
                "-q",
                "-rfE",
                "-W",
                "ignore::DeprecationWarning",
                _suite(),
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        took = time.monotonic() - started
        assert report.exists(), f"the suite wrote no report:\n{proc.stdout[-4000:]}"
        data: dict[str, object] = json.loads(report.read_text())
    data["seconds"] = round(took, 1)
    data["output"] = proc.stdout[-6000:] + proc.stderr[-2000:]
    data["returncode"] = proc.returncode
    return data


@pytest.mark.parametrize("backend", BACKENDS)
def test_tooz_api_suite(backend: str, server_pool: object) -> None:
    with tempfile.TemporaryDirectory(prefix="sg-tooz-file-") as path:
        if backend == "fake":
            url = "fake://tooz-api-suite"
        elif backend == "file":
            url = f"file://{path}"
        else:
            url = server_pool.get(SERVER_KINDS[backend]).url  # type: ignore[attr-defined]
        data = run_suite(backend, url)
    outcomes: dict[str, str] = data["outcomes"]  # type: ignore[assignment]
    reasons: dict[str, str] = data["reasons"]  # type: ignore[assignment]
    print(
        f"\ntooz API suite on {backend} ({data['seconds']} s): "
        + ", ".join(f"{n} {o}" for o, n in sorted(data["counts"].items()))  # type: ignore[attr-defined]
    )
    for name in sorted(reasons):
        print(f"  {outcomes.get(name)} {name}: {reasons[name]}")
    bad = {n: o for n, o in outcomes.items() if o in ("failed", "error", "xpassed")}
    assert not bad, f"{bad}\n{data['output']}"
    assert data["returncode"] == 0, data["output"]
    expected = _expected_driver(url)
    if expected:
        assert expected in data["drivers"], data["drivers"]  # type: ignore[operator]
    skipped = {n: reasons.get(n, "") for n, o in outcomes.items() if o == "skipped"}
    # Older tooz releases in the pinned range lack some of the tests.
    want = {n: w for n, w in EXPECTED_SKIPS.get(backend, {}).items() if n in outcomes}
    assert set(skipped) == set(want), f"skipped {skipped}, expected {want}"
    for name, why in want.items():
        assert why in skipped[name], (name, skipped[name])
    assert len(outcomes) >= MIN_TESTS, f"only {len(outcomes)} tests ran"
