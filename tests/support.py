"""Helpers shared by the functional tests: polling and member processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import TypeVar

from oslo_config import cfg

import servicegroup
from servicegroup import conf as sg_conf

T = TypeVar("T")

#: Timing for functional tests: short, but long enough that a loaded
#: 2-core machine does not make members flap.
FAST = {
    "report_interval": 0.5,
    "service_down_time": 3.0,
    "servicegroup_refresh_interval": 0.2,
    "servicegroup_backend_timeout": 3.0,
}


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    message: str,
    interval: float = 0.05,
) -> T:
    """Poll ``predicate`` until it returns something truthy, or fail."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"after {timeout} s: {message}")
        time.sleep(interval)


def make_conf(url: str, **overrides: float | str) -> cfg.ConfigOpts:
    """A ConfigOpts for ``url`` with the FAST timing (and ``overrides``)."""
    conf = cfg.ConfigOpts()
    sg_conf.register_opts(conf)
    conf([], project="servicegroup", default_config_files=[])
    conf.set_override("servicegroup_tooz_url", url)
    for name, value in {**FAST, **overrides}.items():
        conf.set_override(name, value)
    return conf


def make_api(url: str, **overrides: float | str) -> servicegroup.API:
    return servicegroup.API(conf=make_conf(url, **overrides))


MEMBER_SCRIPT = """
import sys, signal, threading
from tests.support import make_api
url, member, group = sys.argv[1:4]
api = make_api(url)
api.join(member, group, capabilities={"pid": __import__("os").getpid()})
print("started", flush=True)
done = threading.Event()
signal.signal(signal.SIGTERM, lambda *a: done.set())
done.wait()
api.stop()
print("stopped", flush=True)
"""


def start_member_process(url: str, member: str, group: str) -> subprocess.Popen[str]:
    """A member in another process: joins, heartbeats until SIGTERM."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root)
    proc = subprocess.Popen(
        [sys.executable, "-c", MEMBER_SCRIPT, url, member, group],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=root,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "started", f"member process said {line!r}"
    return proc
