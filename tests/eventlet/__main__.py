"""Run pytest under ``eventlet.monkey_patch()``, as Nova's eventlet mode runs.

``python -m tests.eventlet [pytest arguments]``: the patching happens before
pytest, servicegroup, tooz or any client library is imported, which is how
a monkey-patched service (nova-compute under eventlet) loads them.
"""

from __future__ import annotations

import eventlet

eventlet.monkey_patch()
for _module in ("thread", "socket", "time", "select"):
    assert eventlet.patcher.is_monkey_patched(_module), _module

import os  # noqa: E402 - only after the patching
import sys  # noqa: E402

#: Tells the tests' own child scripts to patch themselves too.
os.environ["SERVICEGROUP_TEST_EVENTLET"] = "1"

import pytest  # noqa: E402

if __name__ == "__main__":
    sys.exit(pytest.main(sys.argv[1:]))
