"""The ``servicegroup`` command, driven for real as a subprocess.

Every subcommand runs as an operator would run it: the installed console
script, its output piped, against the embedded ``file://`` backend in a
temporary directory and against a real Redis. Waiting is always polling
with a deadline on what the command prints, never sleeping and hoping.
"""

from __future__ import annotations

import json
import os
import pathlib
import pty
import queue
import re
import select
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from servicegroup.testing import servers
from tests.support import FAST, wait_until

_SCRIPT = pathlib.Path(sys.executable).parent / "servicegroup"
#: The installed console script (what the README runs), else the module.
COMMAND = (
    [str(_SCRIPT)]
    if _SCRIPT.is_file()
    else [sys.executable, "-m", "servicegroup.cmd.main"]
)

#: What a single one-shot command may take, start-up included.
ONE_SHOT_TIMEOUT = 60.0
#: Waiting for a long-running command to print something.
EXPECT_TIMEOUT = 30.0

SECRET = "hunter2-S3cret"

ANSI = re.compile(r"\x1b\[")
#: An absolute time as the command prints it: ISO 8601, UTC, milliseconds.
ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


# -- fixtures and helpers -----------------------------------------------------


@pytest.fixture
def env(tmp_path: pathlib.Path) -> dict[str, str]:
    """An environment where the command finds no user configuration or state.

    HOME and XDG_STATE_HOME point into the test's directory, so the default
    ``file://`` backend and oslo.config's search for ``servicegroup.conf``
    only see what the test puts there.
    """
    home = tmp_path / "home"
    home.mkdir()
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("OS_") and k not in ("NO_COLOR", "TERM")
    }
    environ.update(HOME=str(home), XDG_STATE_HOME=str(tmp_path / "state"))
    return environ


def write_conf(path: pathlib.Path, **options: float) -> str:
    lines = ["[DEFAULT]", *(f"{k} = {v}" for k, v in options.items())]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.fixture
def fast_conf(tmp_path: pathlib.Path) -> str:
    """A configuration file with short intervals (no URL: --url gives it).

    The backend timeout is generous: these tests are about what the
    command shows, and a busy machine must not turn an answer into a
    timeout (exit 1).
    """
    return write_conf(
        tmp_path / "fast.conf", **{**FAST, "servicegroup_backend_timeout": 10.0}
    )


@pytest.fixture
def file_url(tmp_path: pathlib.Path) -> str:
    return f"file://{tmp_path}/tooz"


@pytest.fixture
def redis_url(server_pool) -> str:  # type: ignore[no-untyped-def]
    return str(server_pool.get("redis").url)


@pytest.fixture(params=["file", "redis"])
def url(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> str:
    """The embedded backend, then a real Redis."""
    if request.param == "file":
        return f"file://{tmp_path}/tooz"
    return str(request.getfixturevalue("server_pool").get("redis").url)


@pytest.fixture
def group(request: pytest.FixtureRequest) -> str:
    return f"cli-{os.getpid()}-{abs(hash(request.node.nodeid)) % 10**8}"


def run(
    env: dict[str, str], *args: str, timeout: float = ONE_SHOT_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run the command to completion, output captured (i.e. piped)."""
    return subprocess.run(
        [*COMMAND, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


class Running:
    """A long-running command whose output lines are read as they come."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.args = args
        self.proc = subprocess.Popen(
            [*COMMAND, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        #: Every line read so far, per stream.
        self.output: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self._queues: dict[str, queue.Queue[str | None]] = {}
        self._readers = []
        for name in ("stdout", "stderr"):
            self._queues[name] = queue.Queue()
            reader = threading.Thread(target=self._read, args=(name,), daemon=True)
            reader.start()
            self._readers.append(reader)

    @property
    def lines(self) -> list[str]:
        """What the command printed on stdout so far."""
        return self.output["stdout"]

    @property
    def stderr(self) -> str:
        """What the command printed on stderr so far."""
        return "".join(f"{line}\n" for line in self.output["stderr"])

    def _read(self, name: str) -> None:
        stream = getattr(self.proc, name)
        for raw in stream:
            line = raw.rstrip("\n")
            self.output[name].append(line)
            self._queues[name].put(line)
        self._queues[name].put(None)

    def expect(
        self,
        pattern: str | Callable[[str], bool],
        timeout: float = EXPECT_TIMEOUT,
        stream: str = "stdout",
    ) -> str:
        """The next line of ``stream`` matching ``pattern`` (regex or predicate)."""
        matches = (
            pattern
            if callable(pattern)
            else (lambda line: re.search(pattern, line) is not None)
        )
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self._queues[stream].get(timeout=max(0.0, left))
            except queue.Empty:
                raise AssertionError(
                    f"{self.args} printed no {pattern!r} on {stream} within "
                    f"{timeout} s; it printed: {self.output}"
                ) from None
            if line is None:
                self._queues[stream].put(None)
                raise AssertionError(
                    f"{self.args} exited ({self.proc.wait()}) before printing "
                    f"{pattern!r} on {stream}; it printed: {self.output}"
                )
            if matches(line):
                return line

    def json_event(self, event: str, member: str | None = None) -> dict[str, object]:
        """The next JSON Lines event of ``event`` kind (for ``member``)."""

        def wanted(line: str) -> bool:
            doc = json.loads(line)
            return bool(
                doc["event"] == event
                and (member is None or doc.get("member") == member)
            )

        return dict(json.loads(self.expect(wanted)))

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Send ``signum``; the exit status, once all output is read."""
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        status = self.proc.wait(timeout)
        for reader in self._readers:
            reader.join(timeout=5)
        return status

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def start(env: dict[str, str]) -> Iterator[Callable[..., Running]]:
    """Start long-running commands; whatever is still running is killed."""
    started: list[Running] = []

    def factory(*args: str) -> Running:
        running = Running(env, *args)
        started.append(running)
        return running

    yield factory
    for running in started:
        running.kill()


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that contain ``text``."""
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(cmdline)
    return found


# -- help and usage -----------------------------------------------------------


def test_help_lists_commands_and_exit_codes(env: dict[str, str]) -> None:
    result = run(env, "--help")
    assert result.returncode == 0
    for command in ("demo", "members", "groups", "watch", "join", "check"):
        assert command in result.stdout
    assert "exit status:" in result.stdout
    for code in ("0 ", "1 ", "2 ", "3 ", "130 "):
        assert f"\n  {code}" in result.stdout
    for command in ("demo", "members", "groups", "watch", "join", "check"):
        sub = run(env, command, "--help")
        assert sub.returncode == 0, sub.stderr
        assert "exit status:" in sub.stdout
        assert "--url" in sub.stdout and "--config-file" in sub.stdout


def test_no_command_is_a_usage_error(env: dict[str, str]) -> None:
    result = run(env)
    assert result.returncode == 2
    assert "usage: servicegroup" in result.stderr


# -- the demo -----------------------------------------------------------------


def _measured(output: str, what: str) -> float:
    match = re.search(rf"was seen down (\d+\.\d+) s after {what}", output)
    assert match, output
    return float(match.group(1))


def test_demo_on_the_embedded_default(env: dict[str, str]) -> None:
    started = time.monotonic()
    result = run(env, "demo", timeout=60)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert elapsed < 60
    # Piped: plain text, nothing for a terminal.
    assert not ANSI.search(out)
    # Each step happened, in order.
    steps = [
        "1. Starting 4 members",
        "All 4 members are up",
        "2. Killing host-2 with SIGKILL",
        "3. Stopping host-3 with SIGTERM",
        "4. Restarting host-3",
        "host-3 is up again",
        "5. Stopping the other members",
        "Summary",
    ]
    positions = [out.index(step) for step in steps]
    assert positions == sorted(positions)
    # The table: member, state, since, capabilities.
    assert re.search(r"MEMBER\s+STATE\s+SINCE\s+LAST HEARTBEAT\s+CAPABILITIES", out)
    assert re.search(r"host-2\s+down\s+\d\d:\d\d:\d\d\.\d{3}\s.*zone=az2", out)
    assert re.search(r"host-3\s+up\s.*version=1\.1 zone=az1", out)
    # A crash is seen after service_down_time (2 s, heartbeats every 0.5 s,
    # refresh 0.2 s), a clean stop long before it.
    crash = _measured(out, "SIGKILL")
    assert 1.0 <= crash <= 4.0, crash
    assert "service_down_time is 2 s" in out
    leave = _measured(out, "SIGTERM")
    assert leave < 1.5, leave
    # The ring: only the departed member's items move.
    assert "Hash ring: 1,000 work items over 4 members" in out
    assert "Only the items of host-2 moved" in out
    assert "Only the items of host-3 moved" in out
    assert "host-3 got back exactly the items it owned" in out
    # It ran in a private directory, now gone, and left no process or state.
    match = re.search(r"file://(/\S*servicegroup-demo-[^/\s]+)/tooz", out)
    assert match, out
    workdir = match.group(1)
    assert not os.path.exists(workdir)
    assert processes_mentioning(workdir) == []
    assert not os.path.exists(os.path.join(env["XDG_STATE_HOME"], "servicegroup"))


def test_demo_in_a_terminal_redraws_its_table(env: dict[str, str]) -> None:
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [*COMMAND, "demo", "--members", "3"],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=dict(env, TERM="xterm"),
    )
    os.close(terminal)
    chunks = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.5)
            if not ready:
                continue
            try:
                data = os.read(controller, 65536)
            except OSError:  # EIO: the command exited, the terminal closed
                break
            if not data:
                break
            chunks.append(data)
        status = proc.wait(timeout=10)
    finally:
        os.close(controller)
        if proc.poll() is None:
            proc.kill()
    text = b"".join(chunks).decode(errors="replace")
    assert status == 0, text
    assert "\x1b[32mup\x1b[0m" in text  # colour on a terminal
    assert "\x1b[J" in text  # the live table is redrawn in place
    assert "waiting for host-2 to be seen down" in text
    assert "next step in" in text
    assert "Summary" in text


def test_demo_on_redis_uses_a_fresh_group(env: dict[str, str], redis_url: str) -> None:
    result = run(env, "--url", redis_url, "demo", "--members", "3", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    match = re.search(r"in group (compute-demo-[0-9a-f]{6}) on redis://", result.stdout)
    assert match, result.stdout
    crash = _measured(result.stdout, "SIGKILL")
    assert 1.0 <= crash <= 4.0, crash
    groups = run(env, "--url", redis_url, "groups", "--format", "json")
    assert groups.returncode == 0, groups.stderr
    found = {g["group"]: g["up"] for g in json.loads(groups.stdout)["groups"]}
    # Every member left, and the demo deleted the group it created.
    assert match.group(1) not in found


def test_demo_interrupted_stops_its_members(
    env: dict[str, str], start: Callable[..., Running]
) -> None:
    demo = start("demo")
    first = demo.expect(r"servicegroup demo: .* file://")
    workdir = re.search(r"file://(\S+)/tooz", first).group(1)  # type: ignore[union-attr]
    demo.expect(r"host-\d up")
    assert processes_mentioning(workdir)
    assert demo.stop(signal.SIGINT) == 130
    assert "interrupted" in demo.stderr
    # Members were stopped before the demo returned, the directory removed.
    assert processes_mentioning(workdir) == []
    assert not os.path.exists(workdir)


def test_demo_rejects_too_few_members(env: dict[str, str]) -> None:
    result = run(env, "demo", "--members", "2")
    assert result.returncode == 2
    assert "--members must be from 3 to 20" in result.stderr


# -- the operator's commands, on each backend ---------------------------------


def test_join_members_groups_watch_check(
    url: str, fast_conf: str, group: str, start: Callable[..., Running], env
) -> None:  # type: ignore[no-untyped-def]
    common = ["--url", url, "--config-file", fast_conf]
    host1 = start(
        *common,
        "join",
        group,
        "host1",
        "--capability",
        "zone=az1",
        "--capability",
        "weight:=2",
    )
    host1.expect(rf"member host1 of group {group} is up")

    watch = start(*common, "watch", group, "--format", "json")
    snapshot = watch.json_event("snapshot")
    assert snapshot["up"] == ["host1"]

    host2 = start("join", group, "host2", *common)
    host2.expect("is up")
    assert watch.json_event("up", "host2")["up"] == ["host1", "host2"]

    members = run(env, *common, "members", group, "--format", "json")
    assert members.returncode == 0, members.stderr
    document = json.loads(members.stdout)
    assert document["group"] == group
    by_id = {m["id"]: m for m in document["members"]}
    assert sorted(by_id) == ["host1", "host2"]
    assert by_id["host1"]["capabilities"] == {"zone": "az1", "weight": 2}
    assert by_id["host1"]["up"] is True and by_id["host1"]["stale"] is False
    assert by_id["host1"]["updated_at"].endswith("Z")

    table = run(env, *common, "members", group)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert re.match(
        r"MEMBER\s+STATE\s+LAST HEARTBEAT\s+UPDATED AT \(UTC\)\s+CAPABILITIES$",
        lines[0],
    )
    assert re.match(rf"host1\s+up\s+.*ago\s+{ISO}\s+weight=2 zone=az1$", lines[1])
    assert re.match(rf"host2\s+up\s+.*ago\s+{ISO}\s+-$", lines[2])

    groups = run(env, *common, "groups")
    assert groups.returncode == 0, groups.stderr
    assert re.search(rf"^{group}\s+2\s+host1 host2$", groups.stdout, re.M)

    check = run(env, *common, "check")
    assert check.returncode == 0, check.stderr
    assert re.match(r"OK: \S+ answered in \d+\.\d ms", check.stdout)

    # A clean stop is seen at once, not after service_down_time.
    stopped = time.monotonic()
    assert host2.stop(signal.SIGTERM) == 0
    assert host2.lines[-1].endswith(f"member host2 of group {group} left")
    assert watch.json_event("down", "host2")["up"] == ["host1"]
    assert time.monotonic() - stopped < FAST["service_down_time"]

    assert host1.stop(signal.SIGINT) == 0
    watch.json_event("down", "host1")
    assert watch.stop(signal.SIGTERM) == 0
    # Both left: the backend forgot them, this host's command did not.
    after = run(env, *common, "members", group)
    assert after.returncode == 0, after.stderr
    assert re.search(rf"^host1\s+down\s+.*ago\s+{ISO}\s+weight=2", after.stdout, re.M)
    assert re.search(rf"^host2\s+down\s+.*ago\s+{ISO}\s+-$", after.stdout, re.M)

    # Nobody is up in the group: it is hidden, then deleted, on request.
    shown = run(env, *common, "groups", "--non-empty", "--format", "json")
    assert shown.returncode == 0, shown.stderr
    assert group not in [g["group"] for g in json.loads(shown.stdout)["groups"]]
    deleted = run(env, *common, "groups", "--delete-empty")
    assert deleted.returncode == 0, deleted.stderr
    assert f"Deleted group {group}: nobody was up in it." in deleted.stdout
    gone = run(env, *common, "members", group)
    assert gone.returncode == 3, gone.stdout + gone.stderr


def test_members_lists_a_crashed_member_down(
    url: str, fast_conf: str, group: str, start: Callable[..., Running], env
) -> None:  # type: ignore[no-untyped-def]
    common = ["--url", url, "--config-file", fast_conf]
    host1 = start(*common, "join", group, "host1")
    host2 = start(*common, "join", group, "host2", "--capability", "zone=az2")
    host1.expect("is up")
    host2.expect("is up")

    def table() -> str:
        result = run(env, *common, "members", group)
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert re.search(r"^host2\s+up\s", table(), re.M)
    host2.kill()  # SIGKILL: it cannot leave
    down = re.compile(rf"^host2\s+down\s+.*ago\s+({ISO})\s+zone=az2$", re.M)
    seen: list[str] = []
    wait_until(
        lambda: seen.append(table()) or down.search(seen[-1]),
        FAST["service_down_time"] * 3 + 20,
        f"host2 listed down; last output: {seen[-1:]}",
    )
    assert re.search(r"^host1\s+up\s", seen[-1], re.M)
    document = json.loads(
        run(env, *common, "members", group, "--format", "json").stdout
    )
    by_id = {m["id"]: m for m in document["members"]}
    assert by_id["host2"]["up"] is False
    assert by_id["host2"]["capabilities"] == {"zone": "az2"}
    assert re.fullmatch(ISO, by_id["host2"]["updated_at"])
    assert host1.stop() == 0


def test_watch_writes_one_line_per_event_when_piped(
    file_url: str, fast_conf: str, group: str, start: Callable[..., Running]
) -> None:
    common = ["--url", file_url, "--config-file", fast_conf]
    host1 = start(*common, "join", group, "host1")
    host1.expect("is up")
    watch = start(*common, "watch", group)
    watch.expect(rf"Z {group} snapshot: 1 up: host1$")
    host2 = start(*common, "join", group, "host2")
    watch.expect(rf"Z {group} up host2 \(2 up: host1, host2\)$")
    assert host2.stop() == 0
    watch.expect(rf"Z {group} down host2 \(1 up: host1\)$")
    assert watch.stop(signal.SIGINT) == 0
    assert not any(ANSI.search(line) for line in watch.lines)


def test_watch_in_a_terminal_redraws_its_table(
    env: dict[str, str],
    file_url: str,
    fast_conf: str,
    group: str,
    start: Callable[..., Running],
) -> None:
    common = ["--url", file_url, "--config-file", fast_conf]
    start(*common, "join", group, "host1", "--capability", "zone=az1").expect("is up")
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [*COMMAND, *common, "watch", group],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=dict(env, TERM="xterm"),
    )
    os.close(terminal)
    text = ""
    deadline = time.monotonic() + EXPECT_TIMEOUT
    try:
        # Until the table has been drawn at least twice, then stop it.
        while time.monotonic() < deadline and text.count("\x1b[H") < 2:
            ready, _, _ = select.select([controller], [], [], 0.5)
            if ready:
                text += os.read(controller, 65536).decode(errors="replace")
        proc.send_signal(signal.SIGTERM)
        # Keep reading, so a full terminal buffer cannot block its exit.
        while proc.poll() is None and time.monotonic() < deadline + 15:
            ready, _, _ = select.select([controller], [], [], 0.5)
            if ready:
                try:
                    text += os.read(controller, 65536).decode(errors="replace")
                except OSError:  # EIO: the command exited
                    break
        status = proc.wait(timeout=15)
    finally:
        os.close(controller)
        if proc.poll() is None:
            proc.kill()
    assert status == 0, text
    assert text.count("\x1b[H") >= 2, text  # redrawn in place
    assert re.search(r"host1\s+\x1b\[32mup\x1b\[0m.*zone=az1", text), text
    assert "Recent events:" in text


def test_watch_reports_a_stale_view_while_the_backend_is_paused(
    private_server, fast_conf: str, group: str, start: Callable[..., Running]
) -> None:  # type: ignore[no-untyped-def]
    redis = private_server("redis")
    # The backend timeout is how long a refresh waits before the view is
    # stale: short here.
    conf = write_conf(pathlib.Path(fast_conf).with_name("stale.conf"), **FAST)
    common = ["--url", redis.url, "--config-file", conf]
    start(*common, "join", group, "host1").expect("is up")
    watch = start(*common, "watch", group, "--format", "json")
    watch.json_event("snapshot")
    redis.pause()
    try:
        stale = watch.json_event("stale")
        # Fail static: the last good view, not an empty group.
        assert stale["up"] == ["host1"]
    finally:
        redis.resume()
    watch.json_event("fresh")
    assert watch.stop() == 0


def test_join_leaves_when_its_parent_dies(
    file_url: str, fast_conf: str, group: str, env: dict[str, str]
) -> None:
    # A parent that starts a member with --exit-with-parent and dies
    # without stopping it, as a crashed supervisor (or demo) would.
    parent = textwrap.dedent(
        """
        import os, subprocess, sys
        child = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, text=True)
        for line in child.stdout:
            if " is up" in line:
                break
        print(child.pid, flush=True)
        os._exit(0)
        """
    )
    command = [*COMMAND, "--url", file_url, "--config-file", fast_conf]
    command += ["join", group, "orphan", "--exit-with-parent"]
    result = subprocess.run(
        [sys.executable, "-c", parent, *command],
        capture_output=True,
        text=True,
        env=env,
        timeout=ONE_SHOT_TIMEOUT,
    )
    child = int(result.stdout.strip())

    def gone() -> bool:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return True
        return False

    try:
        wait_until(gone, EXPECT_TIMEOUT, "the orphaned member exits")
    finally:
        if not gone():
            os.kill(child, signal.SIGKILL)
    # It left the group on its way out: not up, well before service_down_time.
    members = run(env, "--url", file_url, "--config-file", fast_conf, "members", group)
    assert members.returncode == 0, members.stderr
    assert "orphan" not in members.stdout


def test_check_on_redis_reports_the_round_trip(
    env: dict[str, str], redis_url: str, fast_conf: str
) -> None:
    result = run(
        env, "--url", redis_url, "--config-file", fast_conf, "check", "--format", "json"
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "ok"
    assert report["backend"] == "redis"
    assert report["url"] == redis_url
    assert 0 < report["round_trip_ms"] < 5000
    assert report["connect_ms"] > 0


# -- errors: sentences, exit codes, no secrets --------------------------------


def test_unknown_group_exits_3(
    env: dict[str, str], file_url: str, fast_conf: str, group: str
) -> None:
    # An existing backend directory: one the command has to create is
    # reported created on stderr too (test_input_warnings).
    os.makedirs(file_url.removeprefix("file://"), exist_ok=True)
    for command in ("members", "watch"):
        result = run(env, "--url", file_url, "--config-file", fast_conf, command, group)
        assert result.returncode == 3, result.stderr
        assert result.stderr == (
            f"servicegroup: there is no group {group!r} on {file_url}\n"
        )
        assert result.stdout == ""
    # Among many groups the error names the group and a close one, never
    # the whole list.
    from tooz import coordination

    coord = coordination.get_coordinator(file_url, b"test")
    coord.start()
    try:
        for name in [f"other-{i}" for i in range(50)] + [f"{group}x"]:
            coord.create_group(name.encode()).get()
    finally:
        coord.stop()
    result = run(env, "--url", file_url, "--config-file", fast_conf, "members", group)
    assert result.returncode == 3, result.stderr
    assert result.stderr == (
        f"servicegroup: there is no group {group!r} on {file_url} (did you mean "
        f"{group}x?)\n"
    )
    for command in ("members", "watch"):
        result = run(env, "--url", file_url, command, group, "--format", "json")
        assert result.returncode == 3, result.stderr
        document = json.loads(result.stdout)
        assert document["status"] == "error"
        assert document["exit_code"] == 3
        assert document["error"] == result.stderr.removeprefix("servicegroup: ")[:-1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--url", "nosuch://x", "check"], "URL scheme 'nosuch' is not an installed"),
        (["--url", "redis//x", "members", "g"], "is not a URL"),
        (["--url", "ipc://", "groups"], "has no group membership"),
        (["--config-file", "/nonexistent/sg.conf", "check"], "/nonexistent/sg.conf"),
        (["--url", "file:///tmp/x", "members", "a/b"], "group id 'a/b' contains '/'"),
        (["join", "g", "h", "--capability", "novalue"], "KEY=VALUE or KEY:=JSON"),
        (["join", "g", "h", "--capability", "k:=[1"], "is not JSON"),
        (["check", "--timeout", "0"], "--timeout must be a positive number"),
    ],
)
def test_usage_and_configuration_errors_exit_2(
    env: dict[str, str], args: list[str], message: str
) -> None:
    result = run(env, *args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("servicegroup: "), result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_bad_value_in_configuration_file_exits_2(
    env: dict[str, str], tmp_path: pathlib.Path
) -> None:
    conf = tmp_path / "bad.conf"
    conf.write_text("[DEFAULT]\nreport_interval = often\n")
    result = run(env, "--config-file", str(conf), "--url", "file:///tmp/x", "check")
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        f"servicegroup: the configuration file {conf} sets report_interval to a "
        "value that is not valid: could not convert string to float: 'often'\n"
    )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind((servers.HOST, 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("scheme", ["redis", "memcached"])
def test_unreachable_backend_exits_1_with_one_line(
    env: dict[str, str], scheme: str
) -> None:
    url = f"{scheme}://{servers.HOST}:{_closed_port()}"
    for args in (["check"], ["members", "g"], ["groups"]):
        result = run(env, "--url", url, *args, "--config-file", os.devnull)
        assert result.returncode == 1, result.stderr
        assert result.stdout == ""
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("servicegroup: cannot reach the backend"), lines
        assert url in lines[0]
    # --format json: every command writes its error as a document on stdout.
    for args in (["check"], ["members", "g"], ["groups"], ["watch", "g"]):
        report = run(env, "--url", url, *args, "--format", "json")
        assert report.returncode == 1, report.stderr
        document = json.loads(report.stdout)
        assert document["status"] == "error", document
        assert document["command"] == args[0]
        assert document["exit_code"] == 1
        assert document["error"].startswith("cannot reach the backend")
        assert document["url"] == url


def test_check_gives_up_at_its_timeout(env: dict[str, str]) -> None:
    # A listening socket that never answers: the connection succeeds and
    # then nothing comes back, the worst case for a monitoring probe.
    with socket.socket() as sock:
        sock.bind((servers.HOST, 0))
        sock.listen(16)
        url = f"redis://{servers.HOST}:{sock.getsockname()[1]}"
        started = time.monotonic()
        result = run(env, "--url", url, "check", "--timeout", "1")
        elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    assert elapsed < 10
    assert "did not answer" in result.stderr or "cannot reach" in result.stderr


def test_credentials_never_appear(
    env: dict[str, str],
    private_server,  # type: ignore[no-untyped-def]
    fast_conf: str,
    group: str,
    start: Callable[..., Running],
) -> None:
    redis = private_server("redis")
    redis.execute("CONFIG", "SET", "requirepass", SECRET)
    where = f"{servers.HOST}:{redis.port}"
    outputs: list[str] = []

    def one_shot(url: str, *args: str, code: int) -> None:
        result = run(env, "-vv", "--url", url, "--config-file", fast_conf, *args)
        assert result.returncode == code, result.stderr
        outputs.extend([result.stdout, result.stderr])

    # The right password: every command works and shows the URL masked.
    url = f"redis://:{SECRET}@{where}"
    agent = start("-vv", "--url", url, "--config-file", fast_conf, "join", group, "h")
    agent.expect("is up")
    one_shot(url, "check", code=0)
    one_shot(f"redis://default:{SECRET}@{where}", "check", "--format", "json", code=0)
    one_shot(url, "members", group, code=0)
    one_shot(url, "groups", "--format", "json", code=0)
    one_shot(url, "members", "nosuchgroup", code=3)
    watch = start("-vv", "--url", url, "--config-file", fast_conf, "watch", group)
    watch.expect("snapshot")
    assert watch.stop() == 0
    assert agent.stop() == 0
    outputs += [*agent.lines, agent.stderr, *watch.lines, watch.stderr]

    # Rejected: when client libraries are most tempted to echo what they
    # were given.
    wrong = f"redis://user:{SECRET}-wrong@{where}"
    for url, args in (
        (wrong, ["check"]),
        (wrong, ["members", group]),
        (f"redis://{where}?password={SECRET}", ["check"]),
    ):
        one_shot(url, *args, code=1)
        assert "\nservicegroup: cannot reach the backend" in outputs[-1]
    agent = start("-vv", "--url", wrong, "--config-file", fast_conf, "join", group, "h")
    agent.expect("joining")
    agent.expect("invalid username-password pair", stream="stderr")
    assert agent.stop() == 0
    outputs += [*agent.lines, agent.stderr]

    text = "\n".join(outputs)
    assert SECRET not in text
    assert "***" in text
