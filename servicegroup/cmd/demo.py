"""``servicegroup demo``: what the library does, in a few seconds.

The demo starts member processes (``servicegroup join``, the same code an
operator runs), watches them through its own :class:`servicegroup.API`, and
walks through the cases that matter: a crash (SIGKILL, seen down after
``service_down_time``, measured), a clean stop (seen down at once), a
restart, and what each change does to a hash ring of work items.

It never touches real groups: without a URL it works in a private
temporary directory; with one it uses a fresh group. Its member processes
are stopped on every way out (Ctrl-C and SIGTERM included), and they also
leave on their own if the demo is killed (``join --exit-with-parent``).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import datetime
import logging
import os
import queue
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import IO

from oslo_config import cfg

from servicegroup import exceptions, membership, ring, validation
from servicegroup.cmd import backend as sg_backend
from servicegroup.cmd import errors, render

LOG = logging.getLogger(__name__)

#: Short intervals so the whole demo takes seconds, not minutes.
DEMO_TIMING: Mapping[str, float] = {
    "report_interval": 0.5,
    "service_down_time": 2.0,
    "servicegroup_refresh_interval": 0.2,
    "servicegroup_backend_timeout": 2.0,
}

#: Work items placed on the hash ring.
RING_ITEMS = [f"item-{index:04d}" for index in range(1000)]

#: Bounds of ``--members``: one to crash, one to stop, one that stays.
MIN_MEMBERS = 3
MAX_MEMBERS = 20

#: How long a member process may take to start and be seen up (a cold
#: interpreter importing tooz on a slow machine takes a few seconds).
START_DEADLINE = 30.0

#: Pause between steps on a terminal, so a person can read; none in pipes.
PAUSE = 1.0

#: How long member processes get to leave before being killed.
STOP_GRACE = 5.0


def member_name(index: int) -> str:
    """The id of the demo's ``index``-th member (Nova: a host)."""
    return f"host-{index}"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


# -- member processes ---------------------------------------------------------


class MemberProcess:
    """One ``servicegroup join`` child process."""

    def __init__(
        self,
        member_id: str,
        group_id: str,
        config_files: Sequence[str],
        capabilities: Mapping[str, str],
        log_dir: str,
    ) -> None:
        self.member_id = member_id
        self.capabilities = dict(capabilities)
        self._argv = [sys.executable, "-m", "servicegroup.cmd.main", "join"]
        self._argv += [group_id, member_id, "--exit-with-parent"]
        for path in config_files:
            self._argv += ["--config-file", path]
        self._log_path = os.path.join(log_dir, f"{member_id}.log")
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, capabilities: Mapping[str, str] | None = None) -> None:
        """Start (or start again) the process."""
        if capabilities is not None:
            self.capabilities = dict(capabilities)
        argv = list(self._argv)
        for key, value in sorted(self.capabilities.items()):
            argv += ["--capability", f"{key}={value}"]
        with open(self._log_path, "ab") as log:
            # A session of its own: Ctrl-C in the terminal reaches the demo
            # only, which then stops its members in order.
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def running(self) -> bool:
        """Whether the process exists and has not exited."""
        return self._proc is not None and self._proc.poll() is None

    def send(self, signum: int) -> None:
        """Send a signal if the process is running."""
        if self._proc is not None and self.running:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(signum)

    def wait(self, timeout: float) -> int | None:
        """The exit status, or None if still running after ``timeout``."""
        if self._proc is None:
            return None
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def log_tail(self, lines: int = 5) -> str:
        """The end of the process's output, for error messages."""
        try:
            with open(self._log_path, encoding="utf-8", errors="replace") as log:
                tail = " | ".join(log.read().strip().splitlines()[-lines:])
        except OSError:
            tail = ""
        return tail or "(no output)"

    @property
    def returncode(self) -> int | None:
        """The exit status once exited, else None."""
        return None if self._proc is None else self._proc.poll()


class Fleet:
    """The member processes; all stopped on the way out, whatever happens."""

    def __init__(self) -> None:
        self.members: dict[str, MemberProcess] = {}

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc_info: object) -> None:
        # A second Ctrl-C (or a SIGTERM) must not cut the cleanup short and
        # leave members behind.
        previous = {
            signum: signal.signal(signum, signal.SIG_IGN)
            for signum in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            self.stop_all()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def stop_all(self, grace: float = STOP_GRACE) -> None:
        """SIGTERM every member (they leave), SIGKILL those still running."""
        running = [m for m in self.members.values() if m.running]
        for member in running:
            member.send(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for member in running:
            if member.wait(max(0.0, deadline - time.monotonic())) is None:
                member.send(signal.SIGKILL)
                member.wait(grace)


# -- what the observer sees ---------------------------------------------------


@dataclasses.dataclass
class Transition:
    """The latest change of one member as this observer saw it."""

    up: bool
    wall: datetime.datetime
    monotonic: float


class View:
    """The demo's observer: membership changes, stamped when they arrive."""

    def __init__(self, backend: sg_backend.Backend, group_id: str) -> None:
        self.backend = backend
        self.group_id = group_id
        self.changes: queue.Queue[
            tuple[float, datetime.datetime, membership.MembershipChange]
        ]
        self.changes = queue.Queue()
        self.latest: dict[str, Transition] = {}

    def _on_change(self, change: membership.MembershipChange) -> None:
        # The refresh thread: take the time now; the main thread prints.
        self.changes.put((time.monotonic(), _now(), change))

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        """Receive changes of the group while inside the block."""
        api = self.backend.api
        unwatch = self.backend.call(
            lambda: api.watch(self.group_id, self._on_change),
            f"reading group {self.group_id}",
        )
        try:
            yield
        finally:
            unwatch()

    def next_events(self, timeout: float) -> list[tuple[str, Transition]]:
        """Transitions that arrived, waiting up to ``timeout`` for the first."""
        found: list[tuple[str, Transition]] = []
        try:
            item = self.changes.get(timeout=timeout)
            while True:
                mono, wall, change = item
                for member in sorted(change.left):
                    found.append((member, Transition(False, wall, mono)))
                for member in sorted(change.joined):
                    found.append((member, Transition(True, wall, mono)))
                item = self.changes.get_nowait()
        except queue.Empty:
            pass
        for member, transition in found:
            self.latest[member] = transition
        return found

    def is_up(self, member_id: str) -> bool:
        """Whether the observer has seen the member up (latest change)."""
        seen = self.latest.get(member_id)
        return seen is not None and seen.up

    def up(self) -> list[str]:
        """Members seen up, sorted."""
        return sorted(m for m, t in self.latest.items() if t.up)


# -- the ring -----------------------------------------------------------------


class Placement(Mapping[str, str]):
    """Work item -> owning member on one ring (``""`` on an empty ring).

    The ring is kept: what moved from one placement to the next is a
    :class:`~servicegroup.ring.Rebalance`, computed as a
    :class:`~servicegroup.partition.Partitioner` computes it for its users.
    """

    def __init__(self, hash_ring: ring.HashRing) -> None:
        self.ring = hash_ring
        self._owners = {item: hash_ring.owner(item) or "" for item in RING_ITEMS}

    def __getitem__(self, item: str) -> str:
        return self._owners[item]

    def __iter__(self) -> Iterator[str]:
        return iter(self._owners)

    def __len__(self) -> int:
        return len(self._owners)


def ring_owners(members: Sequence[str]) -> Placement:
    """Item -> owning member on a hash ring of ``members``."""
    return Placement(ring.HashRing(sorted(members)))


def _counts(counter: Mapping[str, int]) -> str:
    return ", ".join(f"{member} {count}" for member, count in sorted(counter.items()))


def ring_shares(owners: Mapping[str, str]) -> str:
    """How many items each member owns."""
    counts = collections.Counter(owners.values())
    return (
        f"Hash ring: {render.thousands(len(owners))} work items over "
        f"{len(counts)} members: {_counts(counts)}."
    )


def ring_moves(before: Placement, after: Placement) -> list[str]:
    """What a membership change did to the ring, in sentences."""
    # The demo only observes (no member_id), and the sentences name no
    # group (so an empty group_id).
    change = ring.Rebalance.between(before.ring, after.ring, group_id="")
    moved = change.moved(RING_ITEMS)
    gone, came = sorted(change.left), sorted(change.joined)
    sources = collections.Counter(before[item] for item in moved)
    targets = collections.Counter(after[item] for item in moved)
    share = 100 * len(moved) / len(RING_ITEMS)
    lines = [
        f"Hash ring: {len(moved)} of {render.thousands(len(RING_ITEMS))} items "
        f"moved ({share:.1f}%)."
    ]
    if gone and set(sources) <= set(gone):
        lines.append(
            f"Only the items of {', '.join(gone)} moved, to the members left "
            f"({_counts(targets)}); every other item stayed where it was."
        )
    elif came and set(targets) <= set(came):
        lines.append(
            f"Only items now owned by {', '.join(came)} moved, taken from "
            f"{_counts(sources)}; every other item stayed where it was."
        )
    elif moved:
        lines.append(f"From {_counts(sources)}; to {_counts(targets)}.")
    return lines


# -- the demo -----------------------------------------------------------------


@dataclasses.dataclass
class Results:
    """What the demo measured, in seconds."""

    all_up: float = 0.0
    crash_detected: float = 0.0
    leave_detected: float = 0.0
    restart_up: float = 0.0


class Demo:
    """The steps, their output and their measurements."""

    def __init__(
        self,
        backend: sg_backend.Backend,
        group_id: str,
        fleet: Fleet,
        out: IO[str],
        count: int,
        config_files: Sequence[str],
        log_dir: str,
    ) -> None:
        self.backend = backend
        #: What the member processes read (the demo's file last).
        self.config_files = list(config_files)
        self.log_dir = log_dir
        self.group_id = group_id
        self.fleet = fleet
        self.view = View(backend, group_id)
        self.area = render.LiveArea(out)
        self.style = render.Style.for_stream(out)
        self.count = count
        self.results = Results()
        settings = backend.settings
        self.report_interval = float(settings["report_interval"])
        self.down_time = float(settings["service_down_time"])
        self.refresh = float(settings["refresh_interval"])

    # -- output -----------------------------------------------------------

    def say(self, text: str = "", sgr: str | None = None) -> None:
        self.area.print(self.style(text, sgr))

    def heading(self, text: str) -> None:
        self.say()
        self.say(text, render.BOLD)

    def table(self) -> list[str]:
        members = self.backend.api.get_members(self.group_id)
        since = {m: t.wall for m, t in self.view.latest.items()}
        lines = render.member_table(members, _now(), since, self.style)
        return [f"   {line}" for line in lines]

    def show_table(self) -> None:
        self.area.clear()
        self.say()
        for line in self.table():
            self.say(line)

    # -- waiting ----------------------------------------------------------

    def wait_for(
        self,
        done: Callable[[], bool],
        limit: float,
        waiting: str,
        status: Callable[[float], str] | None = None,
    ) -> None:
        """Report events until ``done()``; fail after ``limit`` seconds.

        On a terminal the table and ``status(elapsed)`` (by default, what we
        wait for) are redrawn in place meanwhile.
        """
        started = time.monotonic()
        while True:
            for member, transition in self.view.next_events(0.05):
                state = "up" if transition.up else "down"
                color = render.GREEN if transition.up else render.RED
                self.say(
                    f"   {render.clock_time(transition.wall)}  {member} "
                    f"{self.style(state, color)}"
                )
            if done():
                self.area.clear()
                return
            elapsed = time.monotonic() - started
            if elapsed > limit:
                self.area.clear()
                raise errors.CommandError(
                    f"the demo gave up waiting {render.seconds(limit)} for "
                    f"{waiting}; {self._member_logs()}",
                    errors.ExitCode.FAILED,
                )
            if self.area.live:
                text = (
                    status(elapsed)
                    if status
                    else f"waiting for {waiting}... {elapsed:.1f} s"
                )
                self.area.update(
                    [*self.table(), "", self.style(f"   {text}", render.DIM)]
                )

    def pause(self) -> None:
        if self.area.live:
            deadline = time.monotonic() + PAUSE
            self.wait_for(
                lambda: time.monotonic() >= deadline,
                PAUSE + 1,
                "the next step",
                lambda elapsed: f"next step in {max(0.0, PAUSE - elapsed):.1f} s",
            )

    def _member_logs(self) -> str:
        parts = []
        for member in self.fleet.members.values():
            state = "running" if member.running else "exited"
            parts.append(f"{member.member_id} ({state}): {member.log_tail(2)}")
        return "member output: " + "; ".join(parts)

    # -- steps ------------------------------------------------------------

    def run(self) -> Results:
        started = time.monotonic()
        with self.view.watching():
            self.start_members()
            owners = ring_owners(self.view.up())
            self.say(f"   {ring_shares(owners)}")
            self.pause()
            owners = self.crash(owners)
            self.pause()
            before_stop = owners
            owners, stopped = self.stop_one(owners)
            self.pause()
            self.restart(owners, stopped, before_stop)
            self.pause()
            self.finish()
        self.summary(time.monotonic() - started)
        return self.results

    def start_members(self) -> None:
        ids = [member_name(index) for index in range(1, self.count + 1)]
        self.heading(
            f"1. Starting {self.count} members: servicegroup join "
            f"{self.group_id} {ids[0]} ..."
        )
        started = time.monotonic()
        for index, member_id in enumerate(ids):
            process = MemberProcess(
                member_id,
                self.group_id,
                self.config_files,
                {"zone": f"az{index % 2 + 1}", "version": "1.0"},
                self.log_dir,
            )
            self.fleet.members[member_id] = process
            process.start()
        self.wait_for(
            lambda: self._started(ids),
            START_DEADLINE,
            f"all {self.count} members to be seen up",
        )
        self.results.all_up = time.monotonic() - started
        self.say(
            f"   All {self.count} members are up, "
            f"{render.seconds(self.results.all_up)} after starting them "
            "(mostly Python starting up)."
        )
        self.show_table()
        self.say()

    def _started(self, ids: Sequence[str]) -> bool:
        """Whether all of ``ids`` are seen up; fails at once if one died."""
        for member_id in ids:
            process = self.fleet.members[member_id]
            if not process.running:
                raise errors.CommandError(
                    f"member process {member_id} exited with status "
                    f"{process.returncode} while starting; its output: "
                    f"{process.log_tail()}",
                    errors.ExitCode.FAILED,
                )
        return all(self.view.is_up(m) for m in ids)

    def _ensure_up(self, member: MemberProcess) -> None:
        # On an overloaded machine a member whose heartbeats stalled for
        # service_down_time is (rightly) seen down; measure from up only.
        self.wait_for(
            lambda: self.view.is_up(member.member_id),
            START_DEADLINE,
            f"{member.member_id} to be seen up",
        )

    def _after(self, seen: float, action: float) -> float:
        if seen < action:
            # The down came before the signal: heartbeats had stalled.
            self.say(
                "   (it was seen down before the signal: this machine is too "
                "busy for the demo's short intervals)"
            )
        return max(0.0, seen - action)

    def crash(self, owners: Placement) -> Placement:
        victim = self.fleet.members[member_name(2)]
        self.heading(
            f"2. Killing {victim.member_id} with SIGKILL: a crash, it cannot "
            "say goodbye."
        )
        self._ensure_up(victim)
        killed = time.monotonic()
        victim.send(signal.SIGKILL)
        victim.wait(STOP_GRACE)
        self.wait_for(
            lambda: not self.view.is_up(victim.member_id),
            self.down_time * 3 + 10,
            f"{victim.member_id} to be seen down",
        )
        seen = self.view.latest[victim.member_id].monotonic
        self.results.crash_detected = self._after(seen, killed)
        low = max(0.0, self.down_time - self.report_interval)
        high = self.down_time + self.refresh
        self.say(
            f"   {victim.member_id} was seen down "
            f"{render.seconds(self.results.crash_detected)} after SIGKILL "
            f"(service_down_time is {render.setting(self.down_time)}: expect "
            f"{low:.1f} to {high:.1f} s, as its last heartbeat was up to "
            f"{render.setting(self.report_interval)} before the kill and this "
            f"view refreshes every {render.setting(self.refresh)})."
        )
        self.show_table()
        after = ring_owners(self.view.up())
        self.say()
        for line in ring_moves(owners, after):
            self.say(f"   {line}")
        return after

    def stop_one(self, owners: Placement) -> tuple[Placement, MemberProcess]:
        member = self.fleet.members[member_name(3)]
        self.heading(
            f"3. Stopping {member.member_id} with SIGTERM: a clean stop, it "
            "leaves the group."
        )
        self._ensure_up(member)
        stopped = time.monotonic()
        member.send(signal.SIGTERM)
        self.wait_for(
            lambda: not self.view.is_up(member.member_id),
            self.down_time * 3 + 10,
            f"{member.member_id} to be seen down",
        )
        seen = self.view.latest[member.member_id].monotonic
        self.results.leave_detected = self._after(seen, stopped)
        status = member.wait(STOP_GRACE)
        self.say(
            f"   {member.member_id} was seen down "
            f"{render.seconds(self.results.leave_detected)} after SIGTERM, "
            f"without waiting for service_down_time "
            f"({render.setting(self.down_time)}); it exited with status {status}."
        )
        self.show_table()
        after = ring_owners(self.view.up())
        self.say()
        for line in ring_moves(owners, after):
            self.say(f"   {line}")
        return after, member

    def restart(
        self,
        owners: Placement,
        member: MemberProcess,
        before_stop: Placement,
    ) -> None:
        self.heading(f"4. Restarting {member.member_id}, now advertising version=1.1.")
        started = time.monotonic()
        member.start({**member.capabilities, "version": "1.1"})
        self.wait_for(
            lambda: self._started([member.member_id]),
            START_DEADLINE,
            f"{member.member_id} to be seen up again",
        )
        self.results.restart_up = time.monotonic() - started
        self.say(
            f"   {member.member_id} is up again, "
            f"{render.seconds(self.results.restart_up)} after starting it."
        )
        self.show_table()
        after = ring_owners(self.view.up())
        self.say()
        for line in ring_moves(owners, after):
            self.say(f"   {line}")
        if after == before_stop:
            # The ring is a function of the membership alone: the same
            # members give the same placement, on every process.
            self.say(
                f"   {member.member_id} got back exactly the items it owned "
                "before it stopped."
            )

    def finish(self) -> None:
        self.heading("5. Stopping the other members: each leaves the group.")
        running = [m for m in self.fleet.members.values() if m.running]
        for member in running:
            member.send(signal.SIGTERM)
        self.wait_for(
            lambda: not self.view.up(),
            self.down_time * 3 + 10,
            "every member to be seen down",
        )
        for member in running:
            member.wait(STOP_GRACE)
        self.show_table()

    def summary(self, total: float) -> None:
        results = self.results
        self.heading("Summary")
        rows = [
            [
                "crash (SIGKILL) seen down after",
                render.seconds(results.crash_detected),
                f"service_down_time {render.setting(self.down_time)}",
            ],
            [
                "clean stop (SIGTERM) seen down after",
                render.seconds(results.leave_detected),
                f"refresh interval {render.setting(self.refresh)}",
            ],
            [
                "restarted member seen up after",
                render.seconds(results.restart_up),
                "includes starting Python",
            ],
        ]
        for line in render.table(["", "MEASURED", "CONFIGURED"], rows)[1:]:
            self.say(f"   {line}")
        self.say(f"   The demo took {render.seconds(total)}.")
        self.say()
        self.say("Try it yourself, on this host with no server to install:")
        self.say("   servicegroup join compute host1 --capability zone=az1 &")
        self.say("   servicegroup members compute")
        self.say("   kill %1                     # host1 leaves the group at once")
        self.say("   servicegroup watch compute  # live; join more from another shell")
        self.say(
            "Services on several hosts share a backend: add --url "
            "redis://HOST:6379 (or kazoo://, etcd3+http://, memcached://)."
        )


def _conf_value(value: object) -> str:
    # oslo.config interpolates $name in values: a '$' in a password must
    # be doubled to stay a '$'.
    return str(value).replace("$", "$$")


def _write_conf(path: str, url: str) -> None:
    lines = ["[DEFAULT]", f"servicegroup_tooz_url = {_conf_value(url)}"]
    lines += [f"{name} = {value}" for name, value in DEMO_TIMING.items()]
    # The URL may hold a password: readable by this user only.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as conf_file:
        conf_file.write("\n".join(lines) + "\n")


def _is_default_url(conf: cfg.ConfigOpts) -> bool:
    default = f"file://{conf.servicegroup_state_path}/tooz"
    return bool(conf.servicegroup_tooz_url == default)


def demo(args: argparse.Namespace, conf: cfg.ConfigOpts, out: IO[str]) -> int:
    """Run the demo; exit 0 when every step saw what it expected."""
    if not MIN_MEMBERS <= args.members <= MAX_MEMBERS:
        raise errors.CommandError(
            f"--members must be from {MIN_MEMBERS} to {MAX_MEMBERS}, not "
            f"{args.members}",
            errors.ExitCode.USAGE,
        )
    private = args.url is None and _is_default_url(conf)
    # SIGTERM stops the demo as Ctrl-C does: members are cleaned up.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with tempfile.TemporaryDirectory(
        prefix="servicegroup-demo-", ignore_cleanup_errors=True
    ) as workdir:
        if private:
            url = f"file://{workdir}/tooz"
            group_id = args.group or "compute"
        else:
            url = str(conf.servicegroup_tooz_url)
            group_id = args.group or f"compute-demo-{secrets.token_hex(3)}"
        validation.group_id(group_id)
        for name, value in DEMO_TIMING.items():
            conf.set_override(name, value)
        conf.set_override("servicegroup_tooz_url", url)
        demo_conf = os.path.join(workdir, "demo.conf")
        _write_conf(demo_conf, url)
        with sg_backend.open_backend(conf) as backend:
            # A group the demo creates on a real backend is deleted at the
            # end, however the demo ends; one that was there is left alone.
            created = not private and group_id not in backend.groups()
            try:
                _run(args, backend, group_id, demo_conf, workdir, private, out)
            finally:
                if created:
                    _delete_group(backend, group_id, DEMO_TIMING)
    return errors.ExitCode.OK


def _delete_group(
    backend: sg_backend.Backend, group_id: str, timing: Mapping[str, float]
) -> None:
    """Delete the demo's group once the backend has nobody in it.

    A member killed rather than stopped stays in the backend until its
    heartbeat expires (``service_down_time``), so deleting is retried for
    about that long; a failure is a warning, not the demo's failure.
    """
    deadline = time.monotonic() + float(timing["service_down_time"]) * 2 + 1
    while True:
        try:
            backend.call(
                lambda: backend.api.delete_group(group_id),
                f"deleting group {group_id}",
            )
            return
        except exceptions.GroupNotFound:
            return
        except exceptions.GroupNotEmpty:
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        except exceptions.ServiceGroupError as exc:
            LOG.warning("Could not delete the demo's group %s: %s", group_id, exc)
            return
    LOG.warning(
        "The demo's group %s still has a member in the backend; delete it "
        "later with: servicegroup groups --delete-empty",
        group_id,
    )


def _run(
    args: argparse.Namespace,
    backend: sg_backend.Backend,
    group_id: str,
    demo_conf: str,
    workdir: str,
    private: bool,
    out: IO[str],
) -> None:
    with Fleet() as fleet:
        runner = Demo(
            backend,
            group_id,
            fleet,
            out,
            args.members,
            config_files=[*(args.config_file or []), demo_conf],
            log_dir=workdir,
        )
        where = (
            f"a private directory, {backend.url}, removed at the end"
            if private
            else f"{backend.url}, in a fresh group"
        )
        runner.say(
            f"servicegroup demo: {args.members} member processes in group "
            f"{group_id} on {where}.",
            render.BOLD,
        )
        runner.say(
            "Each member heartbeats every "
            f"{render.setting(runner.report_interval)} and is declared down "
            f"after {render.setting(runner.down_time)} without one; this "
            f"observer refreshes its view every {render.setting(runner.refresh)}."
        )
        runner.run()
