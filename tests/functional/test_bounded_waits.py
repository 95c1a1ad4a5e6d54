"""The waits the documentation promises: at most servicegroup_backend_timeout.

Against a server that accepts connections and never answers, and against a
refused port, on every networked backend: the first ``is_up`` after a
``join`` and ``stop()`` each return within the backend timeout (plus slack
for a loaded 2-core machine), instead of adding up several such waits;
and Ctrl-C stops a command that waits on such a server at once.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import psutil
import pytest

from tests import support

TIMEOUT = 1.5
#: Scheduling slack on a shared 2-core machine; one more wait would exceed it.
SLACK = 1.0
SCHEMES = ["redis", "memcached", "kazoo", "etcd3+http"]


@pytest.fixture(scope="module")
def silent_port() -> Iterator[int]:
    """A port whose connections the kernel accepts and nobody answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    yield listener.getsockname()[1]
    listener.close()


@pytest.fixture
def refused_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port: int = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    return port


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("server", ["silent", "refused"])
def test_first_question_and_stop_are_bounded(
    scheme: str, server: str, request: pytest.FixtureRequest
) -> None:
    port = request.getfixturevalue(f"{server}_port")
    api = support.make_api(
        f"{scheme}://127.0.0.1:{port}", servicegroup_backend_timeout=TIMEOUT
    )
    api.join("host1", "compute")
    start = time.monotonic()
    assert not api.is_up("host1", "compute")
    first_question = time.monotonic() - start
    start = time.monotonic()
    api.stop()
    stop = time.monotonic() - start
    print(f"{server} {scheme}: first is_up {first_question:.2f} s, stop {stop:.2f} s")
    assert first_question <= TIMEOUT + SLACK
    assert stop <= TIMEOUT + SLACK


#: The backend timeout of the interrupted commands: far longer than the
#: bound asserted, so a command that waits it out cannot pass.
LONG_TIMEOUT = 30.0


@pytest.mark.parametrize("scheme", ["redis", "kazoo"])
def test_ctrl_c_stops_a_command_waiting_on_a_silent_server(
    scheme: str, silent_port: int
) -> None:
    env = dict(os.environ, OS_DEFAULT__SERVICEGROUP_BACKEND_TIMEOUT=str(LONG_TIMEOUT))
    command = subprocess.Popen(
        [sys.executable, "-m", "servicegroup.cmd.main", "--url",
         f"{scheme}://127.0.0.1:{silent_port}", "members", "compute"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:

        def waiting_on_the_server() -> bool:
            return any(
                conn.raddr and conn.raddr.port == silent_port
                for conn in psutil.Process(command.pid).net_connections("tcp")
            )

        support.wait_until(waiting_on_the_server, 20, "the command connected")
        command.send_signal(signal.SIGINT)
        start = time.monotonic()
        code = command.wait(timeout=LONG_TIMEOUT)
        took = time.monotonic() - start
    finally:
        command.kill()
        stderr = command.communicate()[1]
    print(f"{scheme}: exited {took:.2f} s after Ctrl-C")
    assert code == 130, stderr
    assert "interrupted" in stderr
    assert took < LONG_TIMEOUT / 3, took
