"""The contract suite, fork safety and Nova's driver under eventlet.

Nova 34's tests, and some deployments until 2027, run monkey-patched by
eventlet: threads are green threads, sockets and locks cooperative. The same
tests as on native threads run in a child interpreter patched before
anything is imported (``python -m tests.eventlet``), on the real servers.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: The part of the suite that exercises threads, sockets and forks: the
#: whole contract suite, and forks on two backends (the fork code is the
#: same on every backend; ZooKeeper's own green thread is a known limit,
#: see test_fork.KAZOO_UNDER_EVENTLET).
UNDER_EVENTLET = [
    "tests/functional/test_contract.py",
    *(
        f"tests/functional/test_fork.py::{test}[{backend}]"
        for test in (
            "test_children_of_a_fork_see_the_group_live",
            "test_a_member_of_a_dead_parent_is_down_in_its_child",
        )
        for backend in ("file", "redis")
    ),
    "tests/unit/test_nova.py",
]


def test_the_contract_holds_under_eventlet() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.eventlet",
            "-p",
            "no:cacheprovider",
            "-q",
            "-W",
            "ignore::DeprecationWarning",
            *UNDER_EVENTLET,
        ],
        cwd=ROOT,
        env=dict(os.environ, CI="true", PYTHONPATH=ROOT),
        capture_output=True,
        text=True,
        timeout=600,
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout else ""
    print(f"under eventlet: {summary}")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) >= 60, summary
    assert not re.search(r"\d+ (failed|errors?)\b", summary), summary
