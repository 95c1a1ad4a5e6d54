"""pytest plugin that runs tooz's own API suite on our drivers.

``tests/functional/test_tooz_api_suite.py`` runs tooz's
``tooz/tests/test_coordination.py`` in a subprocess with ``-p
tests.tooz_api_plugin``. The plugin:

* routes ``tooz.coordination.get_coordinator`` to our subclass of the tooz
  driver for the URL's scheme (``driver_class()`` of its backend in
  :mod:`servicegroup.drivers.tooz.backends`), built the way tooz builds its
  own, unless
  ``SERVICEGROUP_TOOZ_SUITE_DRIVERS=tooz`` asks for tooz's drivers (to check
  that an expected failure is tooz's, not ours);
* marks the tests that cannot apply (skip) or that tooz's own driver fails
  too (strict xfail, so a fixed tooz shows up), from :data:`EXPECTATIONS`,
  for the backend named by ``SERVICEGROUP_TOOZ_SUITE_BACKEND``;
* writes every outcome, the counts and the driver classes that were built to
  the JSON file named by ``SERVICEGROUP_TOOZ_SUITE_REPORT``.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Iterable
from typing import Any

import pytest
from oslo_utils import netutils
from tooz import coordination

from servicegroup.drivers.tooz.backends import registry

#: (backend, test name) -> ("skip" or "xfail", why). Backends are the names
#: of tests/functional/test_tooz_api_suite.py.
_IN_PROCESS = (
    "the fake backend keeps its data in this process's memory: a spawned "
    "process has a store of its own, so a lock cannot be shared with it "
    "(and the serial test would pass without testing anything)"
)
EXPECTATIONS: dict[tuple[str, str], tuple[str, str]] = {
    ("fake", "test_get_lock_concurrency_locking_two_lock_process"): (
        "skip",
        _IN_PROCESS,
    ),
    ("fake", "test_get_lock_serial_locking_two_lock_process"): ("skip", _IN_PROCESS),
}

#: Names of the driver classes get_coordinator built, for the report.
_BUILT: set[str] = set()
_OUTCOMES: dict[str, str] = {}
_REASONS: dict[str, str] = {}


def _get_coordinator(
    backend_url: str,
    member_id: bytes,
    characteristics: Iterable[coordination.Characteristics] | None = None,
    **kwargs: Any,
) -> coordination.CoordinationDriver:
    """tooz's get_coordinator, building our subclass where we have one."""
    parsed = netutils.urlsplit(backend_url)
    driver_class = registry.for_scheme(parsed.scheme).driver_class()
    if driver_class is None:
        coord = _ORIGINAL(backend_url, member_id, characteristics, **kwargs)
    else:
        # As tooz does: keyword options win over the URL's of the same name.
        options: dict[str, Any] = {k: [v] for k, v in kwargs.items()}
        for name, values in urllib.parse.parse_qs(parsed.query).items():
            options.setdefault(name, values)
        coord = driver_class(member_id, parsed, options)
        missing = set(characteristics or ()) - set(coord.CHARACTERISTICS)
        if missing:
            raise coordination.ToozDriverChosenPoorly(f"{missing} not found")
    _BUILT.add(f"{type(coord).__module__}.{type(coord).__qualname__}")
    return coord


_ORIGINAL = coordination.get_coordinator


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("SERVICEGROUP_TOOZ_SUITE_DRIVERS", "ours") == "ours":
        # tooz's suite calls it as tooz.coordination.get_coordinator.
        coordination.get_coordinator = _get_coordinator  # type: ignore[assignment]


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    backend = os.environ.get("SERVICEGROUP_TOOZ_SUITE_BACKEND", "")
    for item in items:
        expected = EXPECTATIONS.get((backend, item.name))
        if expected is None:
            continue
        kind, why = expected
        if kind == "skip":
            item.add_marker(pytest.mark.skip(reason=why))
        else:
            item.add_marker(pytest.mark.xfail(reason=why, strict=True))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    name = report.nodeid.rsplit("::", 1)[-1]
    if hasattr(report, "wasxfail"):
        outcome = "xfailed" if report.skipped else "xpassed"
        _REASONS[name] = str(report.wasxfail)
    elif report.when == "call" or report.outcome != "passed":
        outcome = report.outcome
        if report.skipped and isinstance(report.longrepr, tuple):
            _REASONS[name] = str(report.longrepr[2])
    else:
        return
    if report.when != "call" and report.outcome == "failed":
        outcome = "error"
    # A teardown error after a pass must not hide behind the pass.
    if _OUTCOMES.get(name) in (None, "passed") or outcome == "error":
        _OUTCOMES[name] = outcome


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = os.environ.get("SERVICEGROUP_TOOZ_SUITE_REPORT")
    if not path:
        return
    counts: dict[str, int] = {}
    for outcome in _OUTCOMES.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(
            {
                "counts": counts,
                "outcomes": _OUTCOMES,
                "reasons": _REASONS,
                "drivers": sorted(_BUILT),
                "exitstatus": int(exitstatus),
            },
            fh,
            indent=1,
            sort_keys=True,
        )
