"""Soak: members come and go at random while the backend restarts empty.

Each member id runs in a process of its own (``sgbench.soak_member``), as a
host service would. At random, per member: it joins, leaves and joins again
in the same process, is paused (SIGSTOP, shorter or longer than
``service_down_time``, then SIGCONT, sometimes followed at once by
SIGTERM), killed (SIGKILL) or stopped (SIGTERM: ``API.stop()``). A process
that ended is replaced by a new one under the same id (ids are reused). One
member, the *steady* one, is never killed or stopped, so its memory and
threads show what a long-lived process accumulates. Meanwhile the server is
SIGKILLed and started again, empty, every ``restart_every`` seconds.

An observer in this process (an ``API`` that joins nothing) asks ``is_up``
for every id every 20 ms and reads the record it holds (``get_members``,
also a local lookup): the capabilities name the process (``pid``) and its
join (``seq``), so each answer is attributed to one *incarnation* of the id.
With R = ``report_interval``, D = ``service_down_time``, F =
``refresh_interval``, B = ``backend_timeout``, G = R + ``retry_max_interval``
(the observer's grace after a backend lost a group, see
``MembershipCache._held``), E = the backend's effective membership timeout
(``describe()``; memcached: ``ceil(D) + 1``, plus F because a memcached
reader keeps a member whose key vanished until it could have expired), S =
``slack`` (a loaded machine) and M = 0.5 s:

*entitled up*
    An incarnation is entitled up from the first moment the observer sees
    it (its record, ``is_up`` True) until it is told to leave, killed or
    SIGTERMed; a pause ends the entitlement only once the member may
    legitimately have vanished: ``D - R - M`` after SIGSTOP (its last beat
    may have been up to R before the pause), or ``G - M`` after the server
    answered again from a restart that fell during the pause or within
    ``R + B`` before it (the backend lost the record and the member could
    not write it again). A member paused past that point is entitled again
    only once seen again with a record written after SIGCONT.

*false down*
    ``is_up`` False for an id whose current incarnation is entitled up.
    Counted once per episode (until it is seen up again). One exception,
    a documented limit (``doc/source/failure-model.rst``, "Limits"): a
    server that lost its data between two refreshes of the observer, and
    got the group back from a member faster than the others, shows the
    slower ones down until they rejoin. A down that begins within
    ``G + F + S`` after the server answered again is a *restart dip*,
    counted apart (``restart_dips``); if it lasts past that, it is a false
    down all the same.

*ghost*
    ``is_up`` True, with the record of an incarnation that was killed,
    SIGTERMed or told to leave at time t, later than ``t + E + F + S``; if
    the server restarted (killed at or before that deadline, answering
    again at t_a), not before ``t_a + G + F + S`` either (the grace keeps
    members the backend lost up for G). Counted once per incarnation.

*lost join*
    A join (a new process's, a ``join`` after a ``leave``, or the rejoin
    after a pause that ended the entitlement) that the observer has not
    seen within ``R + F + S`` of ``join`` returning (of SIGCONT for a
    rejoin), or of the server answering again when it was restarting
    meanwhile. A join cut short by a pause, kill or stop is not counted.

*slow stop*
    A SIGTERMed process that took more than ``B + stop_slack`` to exit
    (``API.stop()`` promises to return within B); one that has not exited
    ``B + 15`` s after SIGTERM is SIGKILLed and counted as *hung*.

All four counts must be zero. Member RSS and threads (``/proc``) and the
observer's (this process's RSS, the library's threads) are sampled every
``sample_every`` seconds. Each member's stderr (library logs at INFO, and
the stack dumps a slow stop makes, see ``soak_member``) is kept in
``<out>/soak-<backend>-logs`` for the processes an incident involved.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import math
import os
import random
import shutil
import signal
import statistics
import threading
import time
from typing import IO, Any

import servicegroup
from sgbench import backends, procs

LOG = logging.getLogger(__name__)

#: Seconds between two observer polls, and two rounds of the chaos loop.
POLL = 0.02
TICK = 0.05
#: M of the module docstring.
MARGIN = 0.5
#: A SIGTERMed process still running this long after B is SIGKILLed.
HANG_KILL_AFTER = 15.0


@dataclasses.dataclass(frozen=True)
class Settings:
    """One soak run; times in seconds."""

    #: How long the chaos lasts (start-up and the final stop come on top).
    seconds: float
    #: Member ids, one process each; the first one is the steady member.
    members: int = 6
    report_interval: float = 1.0
    service_down_time: float = 3.0
    refresh_interval: float = 0.5
    backend_timeout: float = 2.0
    #: Mean time between two server restarts (each drawn ±20 %).
    restart_every: float = 45.0
    #: Mean time between two actions on one member (exponential).
    action_every: float = 6.0
    sample_every: float = 10.0
    #: S of the module docstring.
    slack: float = 1.5
    #: What a SIGTERMed process may take on top of B to exit.
    stop_slack: float = 1.0
    seed: int = 1

    @property
    def grace(self) -> float:
        """G: the observer's grace after the backend lost a group.

        ``retry_max_interval`` is capped at ``report_interval`` (its default,
        10 s, is more than the soak's report_interval).
        """
        return self.report_interval + min(10.0, self.report_interval)

    @property
    def join_bound(self) -> float:
        return self.report_interval + self.refresh_interval + self.slack


#: An hour, the server restarting every 45 s (the run of issue 12).
FULL = Settings(seconds=3600.0)
#: The CI run (tests/functional/test_soak.py): shorter periods.
QUICK = Settings(seconds=30.0, restart_every=10.0, action_every=4.0, sample_every=5.0)


def settings_for(minutes: float, restart_every: float | None = None) -> Settings:
    """Settings for a run of ``minutes``: short runs get shorter periods."""
    base = FULL if minutes >= 10 else QUICK
    return dataclasses.replace(
        base,
        seconds=minutes * 60.0,
        restart_every=base.restart_every if restart_every is None else restart_every,
    )


@dataclasses.dataclass
class _Pending:
    """A join the observer has not seen yet."""

    kind: str  # "join" or "rejoin"
    seq: int
    since: float  # monotonic
    since_wall: float
    counted: bool = False


@dataclasses.dataclass
class _Restart:
    killed: float
    answered: float | None = None


@dataclasses.dataclass
class _Slot:
    """One member id and the process holding it now."""

    index: int
    member: str
    steady: bool
    worker: procs.Worker | None = None
    log: IO[bytes] | None = None
    log_path: str = ""
    pid: int = 0
    seq: int = 0
    #: empty (no process), starting, joined, leaving, left, joining,
    #: stopping (SIGTERM sent), dead (SIGKILL sent).
    state: str = "empty"
    paused_at: float | None = None
    #: Whether this pause ended the entitlement (see the module docstring).
    pause_excused: bool = False
    resume_at: float = 0.0
    term_at: float | None = None
    entitled_from: float | None = None
    pending: _Pending | None = None
    #: (pid, seq) -> when that incarnation was gone; (pid, 0): all of pid's.
    gone: dict[tuple[int, int], float] = dataclasses.field(default_factory=dict)
    ghosted: set[tuple[int, int]] = dataclasses.field(default_factory=set)
    #: (pid, seq) told to go -> (when, "leave"/"term"/"kill"), until seen down.
    leaving: dict[tuple[int, int], tuple[float, str]] = dataclasses.field(
        default_factory=dict
    )
    down_since: float | None = None
    #: Whether the down episode under way was counted as a false down.
    down_counted: bool = False
    term_sent: float | None = None
    exited_at: float | None = None
    next_action: float = 0.0
    #: (seconds since the start, what happened), for incident reports.
    history: collections.deque[tuple[float, str]] = dataclasses.field(
        default_factory=lambda: collections.deque(maxlen=12)
    )


def _proc_status(pid: int) -> tuple[int, int] | None:
    """(RSS bytes, threads) of a process, from /proc; None if gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            fields = dict(line.split(":", 1) for line in fh if ":" in line)
    except OSError:
        return None
    try:
        rss = int(fields["VmRSS"].split()[0]) * 1024
        return rss, int(fields["Threads"])
    except (KeyError, ValueError, IndexError):
        return None


class _Soak:
    def __init__(
        self, backend: backends.Backend, settings: Settings, out_dir: str
    ) -> None:
        self.backend = backend
        self.s = settings
        self.rng = random.Random(settings.seed)
        self.group = f"soak-{int(time.time() * 1000)}"
        self.log_dir = os.path.join(out_dir, f"soak-{backend.name}-logs")
        shutil.rmtree(self.log_dir, ignore_errors=True)
        os.makedirs(self.log_dir)
        self.lock = threading.RLock()
        self.t0 = time.monotonic()
        self.slots = [
            _Slot(i, f"soak-m{i}", steady=(i == 0)) for i in range(settings.members)
        ]
        self.restarts: list[_Restart] = []
        self.incidents: list[dict[str, Any]] = []
        self.counts = collections.Counter[str]()
        self.actions = collections.Counter[str]()
        self.term_exits: list[float] = []
        self.join_latency: dict[str, list[float]] = {"join": [], "rejoin": []}
        #: From a leave, SIGTERM or SIGKILL to the first is_up False.
        self.gone_latency: dict[str, list[float]] = {
            "leave": [],
            "term": [],
            "kill": [],
        }
        self.down_episodes: list[float] = []
        #: Downs that fell in a restart dip (see _dip_until): allowed.
        self.restart_dips = 0
        self.samples: list[dict[str, Any]] = []
        self.observer = servicegroup.API(
            conf=backends.make_conf(
                backend.url,
                report_interval=settings.report_interval,
                service_down_time=settings.service_down_time,
                refresh_interval=settings.refresh_interval,
                backend_timeout=settings.backend_timeout,
            )
        )
        effective = float(
            self.observer.describe().get("membership_timeout")
            or settings.service_down_time
        )
        if backend.name == "memcached":
            effective += settings.refresh_interval
        #: E of the module docstring.
        self.expiry = max(effective, settings.service_down_time)
        self.done = threading.Event()
        self.final = False
        self.restart_rng = random.Random(settings.seed + 1)

    # -- time and bounds ---------------------------------------------------

    def rel(self, t: float) -> float:
        return t - self.t0

    def _note(self, slot: _Slot, what: str) -> None:
        slot.history.append((round(self.rel(time.monotonic()), 2), what))

    def _extend(self, deadline: float, bound: float) -> float:
        """``deadline`` pushed past every restart that began before it."""
        for restart in self.restarts:
            if restart.killed > deadline:
                break
            answered = restart.answered
            if answered is None:
                return math.inf  # the server is down: wait for it
            deadline = max(deadline, answered + bound)
        return deadline

    def _ghost_deadline(self, gone_at: float) -> float:
        s = self.s
        deadline = gone_at + self.expiry + s.refresh_interval + s.slack
        for restart in self.restarts:
            if restart.killed > deadline:
                break
            if restart.answered is None:
                return math.inf
            deadline = max(
                deadline, restart.answered + s.grace + s.refresh_interval + s.slack
            )
        return deadline

    def _excused(self, slot: _Slot, now: float) -> bool:
        """Whether a pause ended the entitlement of ``slot`` by ``now``."""
        paused = slot.paused_at
        if paused is None:
            return False
        s = self.s
        if now >= paused + s.service_down_time - s.report_interval - MARGIN:
            return True
        for restart in self.restarts:
            answered = restart.answered
            if (
                answered is not None
                and answered >= paused - s.report_interval - s.backend_timeout
                and now >= answered + s.grace - MARGIN
            ):
                return True
        return False

    def _dip_until(self, since: float) -> float | None:
        """End of the restart dip a down seen at ``since`` falls in, if any.

        The documented limit (doc/source/failure-model.rst, "Limits"): a
        backend that lost its data between two refreshes, and got the group
        back from a faster member, shows the slower ones down until they
        rejoin, within R + C (C = ``retry_max_interval``) of it answering.
        """
        s = self.s
        span = s.grace + s.refresh_interval + s.slack
        for restart in self.restarts:
            answered = restart.answered
            if answered is not None and answered <= since <= answered + span:
                return answered + span
        return None

    # -- incidents ---------------------------------------------------------

    def _incident(self, kind: str, slot: _Slot, detail: str, pid: int) -> None:
        self.counts[kind] += 1
        restarts = [
            (
                round(self.rel(r.killed), 2),
                None if r.answered is None else round(self.rel(r.answered), 2),
            )
            for r in self.restarts[-3:]
        ]
        record = {
            "kind": kind,
            "at": round(self.rel(time.monotonic()), 2),
            "member": slot.member,
            "pid": pid,
            "detail": detail,
            "history": list(slot.history),
            "restarts": restarts,
            "log": os.path.join(self.log_dir, f"{slot.member}-{pid}.log"),
        }
        self.incidents.append(record)
        LOG.warning("soak %s: %s %s", self.backend.name, kind, json.dumps(record))

    # -- the observer --------------------------------------------------------

    def observe_loop(self) -> None:
        while not self.done.wait(POLL):
            try:
                self.observe_once()
            except Exception:  # noqa: BLE001 - the soak must go on and say so
                LOG.exception("soak observer failed")
                self.counts["observer errors"] += 1

    def observe_once(self) -> None:
        view = {m.id: m for m in self.observer.get_members(self.group)}
        with self.lock:
            now = time.monotonic()
            for slot in self.slots:
                up = self.observer.is_up(slot.member, self.group)
                self._check(slot, now, up, view.get(slot.member))

    def _check(
        self, slot: _Slot, now: float, up: bool, record: servicegroup.Member | None
    ) -> None:
        s = self.s
        caps = record.capabilities if record is not None else {}
        owner = (int(caps.get("pid", 0) or 0), int(caps.get("seq", 0) or 0))
        # Joins that were seen, or not in time.
        pending = slot.pending
        if pending is not None:
            fresh = pending.kind == "join" or (
                record is not None
                and record.updated_at is not None
                and record.updated_at.timestamp() >= pending.since_wall
            )
            if up and owner == (slot.pid, pending.seq) and fresh:
                self.join_latency[pending.kind].append(now - pending.since)
                slot.pending = None
                slot.entitled_from = now
            elif not pending.counted:
                deadline = self._extend(pending.since + s.join_bound, s.join_bound)
                if now > deadline:
                    pending.counted = True
                    self._incident(
                        "lost joins",
                        slot,
                        f"{pending.kind} seq {pending.seq} not seen "
                        f"{now - pending.since:.2f} s after it returned "
                        f"(bound {s.join_bound:.2f} s, up={up}, record={owner})",
                        slot.pid,
                    )
        # False downs.
        if slot.paused_at is not None and not slot.pause_excused:
            if slot.entitled_from is not None and self._excused(slot, now):
                slot.pause_excused = True
                slot.entitled_from = None
        if slot.entitled_from is not None and not up:
            if slot.down_since is None:
                slot.down_since = now
                slot.down_counted = False
                if self._dip_until(now) is not None:
                    self.restart_dips += 1
            dip_until = self._dip_until(slot.down_since)
            if not slot.down_counted and (dip_until is None or now > dip_until):
                slot.down_counted = True
                self._incident(
                    "false downs",
                    slot,
                    f"seen down since {self.rel(slot.down_since):.2f}, entitled "
                    f"up since {self.rel(slot.entitled_from):.2f} (state "
                    f"{slot.state}, paused {slot.paused_at is not None})",
                    slot.pid,
                )
        elif slot.down_since is not None:
            self.down_episodes.append(now - slot.down_since)
            slot.down_since = None
        # Leaves, stops and kills: how soon they are seen, and ghosts.
        for key, (since, kind) in list(slot.leaving.items()):
            if not up or owner[0] != key[0] or key[1] and owner != key:
                self.gone_latency[kind].append(now - since)
                del slot.leaving[key]
        if not up or owner == (0, 0):
            return
        gone_at = min(
            (
                t
                for t in (slot.gone.get(owner), slot.gone.get((owner[0], 0)))
                if t is not None
            ),
            default=None,
        )
        if (
            gone_at is not None
            and owner not in slot.ghosted
            and now > self._ghost_deadline(gone_at)
        ):
            slot.ghosted.add(owner)
            self._incident(
                "ghosts",
                slot,
                f"incarnation {owner} seen up {now - gone_at:.2f} s after it "
                f"was gone (state {slot.state})",
                owner[0],
            )

    # -- member processes ---------------------------------------------------

    def _spawn(self, slot: _Slot) -> None:
        s = self.s
        spec = {
            "url": self.backend.url,
            "group": self.group,
            "member": slot.member,
            "report_interval": s.report_interval,
            "service_down_time": s.service_down_time,
            "refresh_interval": s.refresh_interval,
            "backend_timeout": s.backend_timeout,
            "dump_after": s.backend_timeout + 0.5,
        }
        tmp = os.path.join(self.log_dir, f"{slot.member}-starting.log")
        log = open(tmp, "wb")  # noqa: SIM115 - closed when the process ends
        worker = procs.Worker(spec, module="sgbench.soak_member", stderr=log)
        path = os.path.join(self.log_dir, f"{slot.member}-{worker.proc.pid}.log")
        os.rename(tmp, path)
        with self.lock:
            slot.worker, slot.log, slot.log_path = worker, log, path
            slot.pid, slot.seq = worker.proc.pid, 0
            slot.state = "starting"
            slot.paused_at = None
            slot.term_sent = slot.exited_at = slot.term_at = None
            slot.next_action = self._next(slot)
            self.actions["spawn"] += 1
            self._note(slot, f"spawn pid {slot.pid}")
        threading.Thread(
            target=self._wait_exit, args=(slot, worker), daemon=True
        ).start()

    def _wait_exit(self, slot: _Slot, worker: procs.Worker) -> None:
        worker.proc.wait()
        exited = time.monotonic()
        with self.lock:
            if slot.worker is worker:
                slot.exited_at = exited

    def _next(self, slot: _Slot) -> float:
        return time.monotonic() + self.rng.expovariate(1.0 / self.s.action_every)

    def _events(self, slot: _Slot) -> None:
        worker = slot.worker
        if worker is None:
            return
        while True:
            try:
                event = worker.events.get_nowait()
            except Exception:  # noqa: BLE001 - queue.Empty
                return
            name = event["event"]
            if name == "joined":
                slot.seq = int(event["seq"])
                if slot.state in ("starting", "joining"):
                    slot.state = "joined"
                    if slot.paused_at is None:
                        slot.pending = _Pending(
                            "join", slot.seq, event["mono"], event["wall"]
                        )
                    else:
                        slot.pause_excused = True
                self._note(slot, f"joined seq {slot.seq}")
            elif name == "left":
                if slot.state == "leaving":
                    slot.state = "left"
                self._note(slot, f"left in {event['seconds']:.2f} s")
            elif name == "stopped":
                self._note(slot, f"stop() returned in {event['seconds']:.2f} s")

    def _finish_process(self, slot: _Slot, now: float) -> None:
        """The process of ``slot`` exited: account, then free the id."""
        assert slot.worker is not None and slot.exited_at is not None
        if slot.term_sent is not None:
            took = slot.exited_at - slot.term_sent
            self.term_exits.append(took)
            self._note(slot, f"exited {took:.2f} s after SIGTERM")
            bound = self.s.backend_timeout + self.s.stop_slack
            if took > bound and slot.state != "hung":
                self._incident(
                    "slow stops",
                    slot,
                    f"exited {took:.2f} s after SIGTERM (bound {bound:.1f} s)",
                    slot.pid,
                )
        else:
            self._note(slot, "exited")
        slot.gone.setdefault((slot.pid, 0), slot.exited_at)
        for stream in (slot.worker.proc.stdin, slot.worker.proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        if slot.log is not None:
            slot.log.close()
        slot.worker = None
        slot.log = None
        slot.state = "empty"
        slot.paused_at = None
        slot.entitled_from = None
        slot.pending = None
        slot.next_action = now + self.rng.uniform(0.0, 1.5)

    def _gone(self, slot: _Slot, now: float, kind: str) -> None:
        key = (slot.pid, slot.seq) if kind == "leave" else (slot.pid, 0)
        slot.gone.setdefault(key, now)
        if slot.seq and slot.entitled_from is not None:
            slot.leaving.setdefault(key, (now, kind))
        slot.entitled_from = None
        slot.pending = None
        slot.down_since = None

    def _signal(self, slot: _Slot, sig: int) -> None:
        worker = slot.worker
        if worker is not None and worker.proc.poll() is None:
            try:
                worker.proc.send_signal(sig)
            except ProcessLookupError:
                pass

    def _act(self, slot: _Slot, now: float) -> None:
        """One random action on ``slot``, by its state."""
        s = self.s
        state = slot.state
        if state in ("starting", "joining", "leaving", "dead"):
            slot.next_action = now + 0.2
            return
        if state == "stopping":
            if now > (slot.term_sent or now) + s.backend_timeout + HANG_KILL_AFTER:
                self._incident(
                    "hung stops",
                    slot,
                    f"still running {now - (slot.term_sent or now):.1f} s after "
                    "SIGTERM: killed",
                    slot.pid,
                )
                slot.state = "hung"
                self._signal(slot, signal.SIGUSR1)
                time.sleep(0.2)
                self._signal(slot, signal.SIGKILL)
            slot.next_action = now + 0.5
            return
        if slot.paused_at is not None:
            if now < slot.resume_at:
                return
            roll = self.rng.random()
            if not slot.steady and roll < 0.15:
                self._kill(slot, now, "kill while paused")
                return
            if not slot.steady and roll < 0.35:
                # What a service manager does to a stopped process: systemd
                # sends SIGTERM then SIGCONT, tests/support's MemberProcess
                # SIGCONT then SIGTERM; both at once.
                self._term(slot, now, "SIGTERM while paused", paused=True)
                return
            self._signal(slot, signal.SIGCONT)
            self.actions["resume"] += 1
            self._note(slot, f"SIGCONT after {now - slot.paused_at:.2f} s")
            if slot.state == "joined" and (
                slot.pause_excused or slot.entitled_from is None
            ):
                slot.pending = _Pending("rejoin", slot.seq, now, time.time())
            slot.paused_at = None
            slot.pause_excused = False
            slot.next_action = self._next(slot)
            if not slot.steady and self.rng.random() < 0.25:
                # A stop while the member may be joining again.
                slot.term_at = now + self.rng.uniform(0.0, 0.6 * s.report_interval)
                slot.next_action = slot.term_at
            return
        if slot.term_at is not None:
            slot.term_at = None
            self._term(slot, now, "SIGTERM right after SIGCONT")
            return
        roll = self.rng.random()
        if state == "left":
            if roll < 0.6 or slot.steady:
                slot.state = "joining"
                if slot.worker is not None:
                    slot.worker.send("join")
                self.actions["join"] += 1
                self._note(slot, "join")
            elif roll < 0.8:
                self._term(slot, now, "SIGTERM while left")
            else:
                self._kill(slot, now, "kill while left")
            return
        # joined and running
        short = 0.5 * (s.service_down_time - s.report_interval)
        if roll < 0.2:
            self._pause(slot, now, self.rng.uniform(0.1, short), "short")
        elif roll < 0.4:
            long = s.service_down_time + s.report_interval
            self._pause(slot, now, self.rng.uniform(long, 2 * long), "long")
        elif roll < 0.55 or slot.steady:
            slot.state = "leaving"
            self._gone(slot, now, "leave")
            if slot.worker is not None:
                slot.worker.send("leave")
            self.actions["leave"] += 1
            self._note(slot, "leave")
            slot.next_action = self._next(slot)
        elif roll < 0.75:
            self._kill(slot, now, "kill")
        else:
            self._term(slot, now, "SIGTERM")

    def _pause(self, slot: _Slot, now: float, seconds: float, kind: str) -> None:
        self._signal(slot, signal.SIGSTOP)
        slot.paused_at = now
        slot.pause_excused = False
        slot.resume_at = now + seconds
        slot.next_action = slot.resume_at
        if slot.pending is not None:
            slot.pending = None  # cut short: seen or not, it does not count
            slot.pause_excused = True
        self.actions[f"pause {kind}"] += 1
        self._note(slot, f"SIGSTOP for {seconds:.2f} s")

    def _kill(self, slot: _Slot, now: float, what: str) -> None:
        self._signal(slot, signal.SIGKILL)
        self._gone(slot, now, "kill")
        slot.state = "dead"
        slot.paused_at = None
        self.actions["kill"] += 1
        self._note(slot, what)

    def _term(
        self, slot: _Slot, now: float, what: str, *, paused: bool = False
    ) -> None:
        if paused:
            first, then = signal.SIGTERM, signal.SIGCONT
            if self.rng.random() < 0.5:
                first, then = then, first
            self._signal(slot, first)
            self._signal(slot, then)
            what = f"{what}: {first.name}, {then.name}"
            self.actions["term while paused"] += 1
            slot.paused_at = None
        else:
            self._signal(slot, signal.SIGTERM)
        self._gone(slot, now, "term")
        slot.state = "stopping"
        slot.term_sent = now
        self.actions["term"] += 1
        self._note(slot, what)
        slot.next_action = now + 0.5

    # -- the server ---------------------------------------------------------

    def restart_loop(self, until: float) -> None:
        while True:
            wait = self.s.restart_every * self.restart_rng.uniform(0.8, 1.2)
            if time.monotonic() + wait > until or self.done.wait(wait):
                return
            restart = _Restart(time.monotonic())
            with self.lock:
                self.restarts.append(restart)
            self.backend.server.kill()
            shutil.rmtree(self.backend.server.data_dir, ignore_errors=True)
            self.backend.server.start()
            with self.lock:
                restart.answered = time.monotonic()
            self.actions["server restart"] += 1
            LOG.info(
                "soak %s: server restarted at %.1f s (down %.2f s)",
                self.backend.name,
                self.rel(restart.killed),
                restart.answered - restart.killed,
            )

    # -- memory and threads -------------------------------------------------

    def sample(self) -> None:
        members = []
        steady = None
        with self.lock:
            pids = [(s.pid, s.steady) for s in self.slots if s.worker is not None]
        for pid, is_steady in pids:
            got = _proc_status(pid)
            if got is None:
                continue
            members.append(got)
            if is_steady:
                steady = got
        own = _proc_status(os.getpid())
        library_threads = sum(
            1 for t in threading.enumerate() if t.name.startswith("servicegroup")
        )
        row: dict[str, Any] = {
            "t": self.rel(time.monotonic()),
            "processes": len(members),
            "member_rss_mib_median": statistics.median(m[0] for m in members) / 2**20
            if members
            else None,
            "member_rss_mib_max": max(m[0] for m in members) / 2**20
            if members
            else None,
            "member_threads_min": min(m[1] for m in members) if members else None,
            "member_threads_max": max(m[1] for m in members) if members else None,
            "steady_rss_mib": steady[0] / 2**20 if steady else None,
            "steady_threads": steady[1] if steady else None,
            "observer_rss_mib": own[0] / 2**20 if own else None,
            "observer_threads": library_threads,
        }
        self.samples.append(row)

    # -- the run --------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        s = self.s
        self.observer.get_all(self.group)  # start watching the group
        for slot in self.slots:
            self._spawn(slot)
        # Start-up (imports, first joins) is not part of the soak.
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline:
            with self.lock:
                for slot in self.slots:
                    self._events(slot)
                joined = all(slot.state == "joined" for slot in self.slots)
            if joined and len(self.observer.get_all(self.group)) == len(self.slots):
                break
            time.sleep(TICK)
        else:
            raise RuntimeError("soak members did not all join within 60 s")
        with self.lock:
            self.t0 = now = time.monotonic()
            for slot in self.slots:
                slot.pending = None
                slot.entitled_from = now
                slot.next_action = self._next(slot)
        end = self.t0 + s.seconds
        observer = threading.Thread(target=self.observe_loop, name="soak-observer")
        restarter = threading.Thread(
            target=self.restart_loop, args=(end,), name="soak-restarts"
        )
        observer.start()
        restarter.start()
        next_sample = self.t0
        try:
            while time.monotonic() < end:
                self._tick()
                if time.monotonic() >= next_sample:
                    self.sample()
                    next_sample += s.sample_every
                time.sleep(TICK)
            restarter.join()
            self._final_stop()
            self.sample()
        finally:
            self.done.set()
            observer.join(10.0)
            restarter.join(30.0)
            with self.lock:
                for slot in self.slots:
                    self._signal(slot, signal.SIGCONT)
                    self._signal(slot, signal.SIGKILL)
            backends.stop_api(self.observer)
        return self._result()

    def _tick(self) -> None:
        spawn = []
        with self.lock:
            now = time.monotonic()
            for slot in self.slots:
                self._events(slot)
                if slot.worker is not None and slot.exited_at is not None:
                    self._finish_process(slot, now)
                if self.final:
                    if slot.worker is not None and slot.state == "stopping":
                        self._act(slot, now)  # kills a hung one
                elif slot.worker is None:
                    if now >= slot.next_action:
                        spawn.append(slot)
                elif now >= slot.next_action:
                    self._act(slot, now)
        for slot in spawn:
            self._spawn(slot)

    def _final_stop(self) -> None:
        """Stop every member (SIGTERM, counted), then look for ghosts."""
        s = self.s
        with self.lock:
            self.final = True
            now = time.monotonic()
            for slot in self.slots:
                if slot.worker is None or slot.state in ("dead", "stopping", "hung"):
                    continue
                paused = slot.paused_at is not None
                self._term(slot, now, "final SIGTERM", paused=paused)
        deadline = time.monotonic() + s.backend_timeout + HANG_KILL_AFTER + 1.0
        while time.monotonic() < deadline:
            self._tick()
            with self.lock:
                if all(slot.worker is None for slot in self.slots):
                    break
            time.sleep(TICK)
        # Long enough for any ghost to show.
        time.sleep(self.expiry + s.refresh_interval + s.slack + 0.5)

    def _result(self) -> dict[str, Any]:
        s = self.s
        keep = {os.path.basename(i["log"]) for i in self.incidents if i.get("log")}
        for name in os.listdir(self.log_dir):
            if name not in keep:
                os.unlink(os.path.join(self.log_dir, name))
        if not keep:
            shutil.rmtree(self.log_dir, ignore_errors=True)
        bound = s.backend_timeout + s.stop_slack
        return {
            "backend": self.backend.name,
            "seconds": s.seconds,
            "settings": dataclasses.asdict(s),
            "expiry": self.expiry,
            "members": s.members,
            "false_downs": self.counts["false downs"],
            "ghosts": self.counts["ghosts"],
            "lost_joins": self.counts["lost joins"],
            "slow_stops": self.counts["slow stops"] + self.counts["hung stops"],
            "hung_stops": self.counts["hung stops"],
            "observer_errors": self.counts["observer errors"],
            "stop_bound": bound,
            "term_exits": self.term_exits,
            "join_latency": self.join_latency["join"],
            "rejoin_latency": self.join_latency["rejoin"],
            "gone_latency": self.gone_latency,
            "down_episodes": self.down_episodes,
            "restart_dips": self.restart_dips,
            "actions": dict(self.actions),
            "restarts": len(self.restarts),
            "samples": self.samples,
            "incidents": self.incidents,
            "logs": self.log_dir if keep else None,
        }


def failures(result: dict[str, Any]) -> int:
    """The counts that must be zero, summed."""
    keys = ("false_downs", "ghosts", "lost_joins", "slow_stops", "observer_errors")
    return sum(result[k] for k in keys)


def run(backend: backends.Backend, settings: Settings, out_dir: str) -> dict[str, Any]:
    """One soak run on ``backend`` (whose server it restarts)."""
    return _Soak(backend, settings, out_dir).run()
