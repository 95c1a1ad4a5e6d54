"""Run Nova's functional tests in a matrix of concurrency modes and drivers.

Called by tools/run-nova-tests.sh with the Nova stage's virtualenv (where
nova, stestr and servicegroup are installed); not part of servicegroup.

Each cell runs the same stestr selection (tools/nova/tests.txt plus the
driver probe, in every worker) in fresh stestr repositories, with Nova's
servicegroup driver chosen through oslo.config's environment source:

- ``db``: Nova's own database driver, the baseline; no ``OS_DEFAULT__*``.
- ``tooz-fake``: ``OS_DEFAULT__SERVICEGROUP_DRIVER=tooz`` on ``fake://``,
  servicegroup's in-memory tooz backend (one per test process).
- ``tooz-redis``: the same on real Redis servers started for the cell on
  free loopback ports (servicegroup.testing.servers.RedisServer), one per
  worker, stopped after.

A cell's tests are split over ``--concurrency`` stestr processes run at
once (one worker each), balanced by the times of the mode's db run.

The exit status is non-zero when a test that passed with ``db`` in a mode
does not pass with a tooz driver in that mode, when the driver probe fails
in any cell, or when a baseline ran no test. Tests on the ``--db-only`` list
(tools/nova/db-only.txt: their up/down can only come from database rows, by
construction) run and are reported, but do not fail the stage.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator

MODES = {
    # Nova 34's functional tests default to eventlet (its tox env says so).
    "eventlet": {"OS_NOVA_DISABLE_EVENTLET_PATCHING": "False"},
    "threading": {"OS_NOVA_DISABLE_EVENTLET_PATCHING": "True"},
}
DRIVERS = ("db", "tooz-fake", "tooz-redis")
FAKE_URL = "fake://nova-tests"
PROBE = r"^nova\.tests\.functional\.test_servicegroup_probe\."

# As Nova's tox.ini sets them for its functional envs.
BASE_ENV = {
    "LANGUAGE": "en_US",
    "LC_ALL": "C.UTF-8",
    "OS_STDOUT_CAPTURE": "1",
    "OS_STDERR_CAPTURE": "1",
    "OS_TEST_TIMEOUT": "160",
    "PYTHONDONTWRITEBYTECODE": "1",
    "NOVA_RAISE_ON_GREENLET_LEAK": "True",
}
# Variables that would change what a cell runs if they leaked in.
_SCRUB = re.compile(
    r"^(OS_DEFAULT__SERVICEGROUP_|SERVICEGROUP_NOVA_PROBE_|OS_NOVA_DISABLE_"
    r"|OS_TEST_|OS_DEBUG$|GENERATE_SAMPLES$)"
)


@dataclasses.dataclass
class Cell:
    mode: str
    driver: str
    statuses: dict[str, str] = dataclasses.field(default_factory=dict)
    details: dict[str, str] = dataclasses.field(default_factory=dict)
    durations: dict[str, float] = dataclasses.field(default_factory=dict)
    probes: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    returncode: int | None = None
    log: str = ""

    def count(self, *statuses: str) -> int:
        return sum(1 for s in self.statuses.values() if s in statuses)


def read_filters(path: str) -> list[str]:
    filters = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                filters.append(line)
    return filters


def read_subunit(
    stream: bytes,
) -> tuple[dict[str, str], dict[str, str], dict[str, float]]:
    """Test id -> status ('success', 'fail', 'skip', ...), failure text, s."""
    import subunit
    import testtools

    statuses: dict[str, str] = {}
    details: dict[str, str] = {}
    durations: dict[str, float] = {}

    def on_test(test: dict) -> None:  # type: ignore[type-arg]
        test_id = test["id"]
        status = test["status"]
        # Class-level fixture failures come as a pseudo test, keep them.
        statuses[test_id] = status
        begin, end = test["timestamps"]
        if begin is not None and end is not None:
            durations[test_id] = (end - begin).total_seconds()
        if status in ("fail", "uxsuccess"):
            parts = []
            for name, content in test["details"].items():
                if name in ("traceback", "reason") or "traceback" in name:
                    parts.append(content.as_text())
            details[test_id] = "\n".join(parts)

    result = testtools.StreamToDict(on_test)
    result.startTestRun()
    try:
        subunit.ByteStreamToStreamResult(
            io.BytesIO(stream), non_subunit_name="stdout"
        ).run(result)
    finally:
        result.stopTestRun()
    return statuses, details, durations


def stestr_repo(path: str, site: str, stestr: str, env: dict[str, str]) -> str:
    """An stestr repository at ``path`` for Nova's functional tests."""
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, ".stestr.conf"), "w", encoding="utf-8") as f:
        f.write(
            "[DEFAULT]\n"
            f"test_path={os.path.join(site, 'nova', 'tests', 'functional')}\n"
            f"top_dir={site}\n"
        )
    subprocess.run([stestr, "init"], cwd=path, env=env, check=True, capture_output=True)
    return path


def list_tests(stestr: str, site: str, work: str, filters: list[str]) -> list[str]:
    """The ids the filters select, the probe first."""
    repo = stestr_repo(os.path.join(work, "list"), site, stestr, dict(os.environ))
    out = subprocess.run(
        [stestr, "list", PROBE, *filters],
        cwd=repo,
        env={**os.environ, **BASE_ENV},
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    ids = sorted({ln.strip() for ln in out.splitlines() if ln.startswith("nova.")})
    return sorted(ids, key=lambda t: not re.match(PROBE, t))


def partition(ids: list[str], n: int, times: dict[str, float]) -> list[list[str]]:
    """``n`` lists of ids, the probe in each, balanced by known run times."""
    probe = [t for t in ids if re.match(PROBE, t)]
    rest = [t for t in ids if t not in probe]
    # Longest first onto the least loaded; unknown times count as 2 s, and
    # ties keep the sorted order, so neighbours (one class) spread out.
    rest.sort(key=lambda t: -times.get(t, 2.0))
    parts: list[list[str]] = [list(probe) for _ in range(n)]
    loads = [0.0] * n
    for t in rest:
        k = loads.index(min(loads))
        parts[k].append(t)
        loads[k] += times.get(t, 2.0)
    return [p for p in parts if len(p) > len(probe)] or [list(ids)]


def run_cell(
    cell: Cell,
    *,
    venv_bin: str,
    site: str,
    work: str,
    parts: list[list[str]],
    urls: list[str | None],
    timeout: float,
) -> None:
    """Run each part in its own stestr process (one worker) at once.

    Rather than one ``stestr run --concurrency N``, so each worker can have
    its own environment: with a real Redis each worker gets its own server,
    as each has its own in-memory sqlite and ``fake://`` backend. Nova's tests
    reuse host names (host1, compute1, src, ...) that in parallel workers
    sharing one Redis would be one member.
    """
    stestr = os.path.abspath(os.path.join(venv_bin, "stestr"))
    cell.log = os.path.join(work, f"{cell.mode}-{cell.driver}")
    procs = []
    start = time.monotonic()
    for k, (ids, url) in enumerate(zip(parts, urls, strict=True)):
        env = {n: v for n, v in os.environ.items() if not _SCRUB.match(n)}
        env.update(BASE_ENV)
        env.update(MODES[cell.mode])
        env["SERVICEGROUP_NOVA_PROBE_DRIVER"] = "db" if url is None else "tooz"
        if url is not None:
            env["OS_DEFAULT__SERVICEGROUP_DRIVER"] = "tooz"
            env["OS_DEFAULT__SERVICEGROUP_TOOZ_URL"] = url
            env["SERVICEGROUP_NOVA_PROBE_URL"] = url
        repo = stestr_repo(os.path.join(cell.log, f"worker{k}"), site, stestr, env)
        load_list = os.path.join(repo, "tests.txt")
        with open(load_list, "w", encoding="utf-8") as f:
            f.writelines(t + "\n" for t in ids)
        cmd = [stestr, "run", "--concurrency", "1", "--load-list", load_list]
        log = open(os.path.join(repo, "stestr.log"), "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            cmd, cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        procs.append((proc, log, repo, env))
    deadline = start + timeout
    codes = []
    try:
        for proc, _log, _repo, _env in procs:
            try:
                remaining = max(1.0, deadline - time.monotonic())
                codes.append(proc.wait(timeout=remaining))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                codes.append(-signal.SIGKILL)
                print(
                    f"  {cell.mode}/{cell.driver}: a worker killed after "
                    f"{timeout:.0f} s"
                )
    finally:
        # Also when this runner is stopped: no worker outlives it.
        for proc, log, _repo, _env in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            log.close()
    cell.seconds = time.monotonic() - start
    cell.returncode = max(codes, key=abs)
    for _proc, _log, repo, env in procs:
        last = subprocess.run(
            [stestr, "last", "--subunit"], cwd=repo, env=env, capture_output=True
        )
        statuses, details, durations = read_subunit(last.stdout)
        for t, st in statuses.items():
            if re.match(PROBE, t):
                cell.probes.append(st)
            else:
                cell.statuses[t] = st
        cell.details.update(details)
        cell.durations.update(durations)


@contextlib.contextmanager
def backends(driver: str, n: int) -> Iterator[list[str | None]]:
    """The tooz URL for each of ``n`` workers (None: Nova's db driver)."""
    if driver == "db":
        yield [None] * n
    elif driver == "tooz-fake":
        yield [FAKE_URL] * n  # in memory: private to each worker process
    elif driver == "tooz-redis":
        with warnings.catch_warnings():
            # servicegroup imports tooz, which imports futurist, which warns
            # that eventlet is deprecated: not this runner's business.
            warnings.simplefilter("ignore")
            from servicegroup.testing.servers import RedisServer

        with contextlib.ExitStack() as stack:
            servers = [stack.enter_context(RedisServer()) for _ in range(n)]
            yield [server.url for server in servers]
    else:
        raise ValueError(driver)


def short_id(test_id: str) -> str:
    return test_id.removeprefix("nova.tests.functional.")


def tail(text: str, lines: int, width: int = 240) -> str:
    # Nova's "Wait for state change failed" puts the server, with the fault's
    # traceback escaped inside it, on one line: unfold it, cut long lines.
    text = text.replace("\\n", "\n")
    kept = text.rstrip().splitlines()[-lines:]
    return "\n".join("      " + line[:width] for line in kept)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--venv-bin", required=True)
    parser.add_argument("--site", required=True, help="site-packages with nova")
    parser.add_argument("--work", required=True, help="stestr repositories, logs")
    parser.add_argument("--tests", required=True, help="file of stestr filters")
    parser.add_argument("--threading-excludes", help="Nova's excludes file")
    parser.add_argument("--db-only", help="file of regexes of db-only tests")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--drivers", default=",".join(DRIVERS))
    parser.add_argument(
        "--concurrency",
        type=int,
        default=3,
        help="stestr processes per cell, run at once (default 3: the tests "
        "mostly wait, on 2 cores 3 finish sooner than 2)",
    )
    parser.add_argument("--cell-timeout", type=float, default=600.0)
    parser.add_argument("--traceback-lines", type=int, default=25)
    args = parser.parse_args(argv)
    # SIGTERM unwinds like an exception: workers killed, Redis servers stopped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    modes = [m for m in args.modes.split(",") if m]
    drivers = [d for d in args.drivers.split(",") if d]
    for m in modes:
        if m not in MODES:
            parser.error(f"unknown mode {m!r}; known: {', '.join(MODES)}")
    for d in drivers:
        if d not in DRIVERS:
            parser.error(f"unknown driver {d!r}; known: {', '.join(DRIVERS)}")
    if "db" not in drivers:
        parser.error("the db driver is the baseline and must be in --drivers")
    filters = read_filters(args.tests)
    db_only = (
        [re.compile(r) for r in read_filters(args.db_only)] if args.db_only else []
    )

    def is_db_only(test_id: str) -> bool:
        return any(r.search(test_id) for r in db_only)

    os.makedirs(args.work, exist_ok=True)

    excludes: list[re.Pattern[str]] = []
    if args.threading_excludes:
        # As Nova's tools/generate-exclude.sh and stestr's --exclude-list.
        excludes = [re.compile(r) for r in read_filters(args.threading_excludes)]
    stestr = os.path.abspath(os.path.join(args.venv_bin, "stestr"))
    all_ids = list_tests(stestr, args.site, args.work, filters)
    print(f"{len(all_ids)} tests, the probe included", flush=True)
    times: dict[str, float] = {}

    cells: list[Cell] = []
    for mode in modes:
        ids = all_ids
        if mode == "threading":
            ids = [t for t in ids if not any(r.search(t) for r in excludes)]
        for driver in drivers:
            cell = Cell(mode, driver)
            parts = partition(ids, args.concurrency, times)
            print(f"-- {mode} / {driver}: {len(parts)} workers", flush=True)
            with backends(driver, len(parts)) as urls:
                run_cell(
                    cell,
                    venv_bin=args.venv_bin,
                    site=args.site,
                    work=args.work,
                    parts=parts,
                    urls=urls,
                    timeout=args.cell_timeout,
                )
            if driver == "db":
                # Listed ids are without the scenario suffix ("(v2_1)") that
                # testscenarios adds when the test runs: sum per listed id.
                times.clear()
                for t, seconds in cell.durations.items():
                    listed = re.sub(r"\(.*\)$", "", t)
                    times[listed] = times.get(listed, 0.0) + seconds
            print(
                f"   {mode} / {driver}: {cell.count('success')} passed, "
                f"{cell.count('fail', 'uxsuccess')} failed, "
                f"{cell.count('skip')} skipped in {cell.seconds:.0f} s "
                f"(logs {cell.log})",
                flush=True,
            )
            cells.append(cell)

    problems: list[str] = []
    print("\nNova functional tests per mode and servicegroup driver")
    header = f"{'mode':<10} {'driver':<11} {'passed':>6} {'failed':>6} "
    header += f"{'skipped':>7} {'time':>7}  failed of them db-only"
    print(header)
    print("-" * len(header))
    for cell in cells:
        print(
            f"{cell.mode:<10} {cell.driver:<11} {cell.count('success'):>6} "
            f"{cell.count('fail', 'uxsuccess'):>6} {cell.count('skip'):>7} "
            f"{cell.seconds:>6.0f}s  "
            + str(sum(
                1 for t, st in cell.statuses.items()
                if st in ("fail", "uxsuccess") and is_db_only(t)
            ))
        )  # fmt: skip
    print()

    by_key = {(c.mode, c.driver): c for c in cells}
    known: dict[str, list[str]] = {}
    shown: set[str] = set()
    for cell in cells:
        if not cell.probes or any(st != "success" for st in cell.probes):
            problems.append(
                f"{cell.mode}/{cell.driver}: the driver probe did not pass, so "
                "this cell may not have run the driver it names"
            )
    for mode in modes:
        base = by_key[(mode, "db")]
        passed = {t for t, s in base.statuses.items() if s == "success"}
        if not passed:
            problems.append(f"{mode}/db: the baseline passed no test")
        for t, s in sorted(base.statuses.items()):
            if s in ("fail", "uxsuccess"):
                print(f"note: {mode}/db (baseline) failed {short_id(t)}")
        for driver in drivers:
            if driver == "db":
                continue
            cell = by_key[(mode, driver)]
            for t in sorted(passed):
                s = cell.statuses.get(t, "not run")
                if s == "success":
                    continue
                if is_db_only(t):
                    known.setdefault(short_id(t), []).append(f"{mode}/{driver}")
                    continue
                problems.append(f"{mode}/{driver}: {short_id(t)}: {s} (db: passed)")
                if t in cell.details and t not in shown:
                    # One traceback a test; the other cells' are in their logs.
                    shown.add(t)
                    problems.append(tail(cell.details[t], args.traceback_lines))
    if known:
        print("Not passing with ours, db-only by construction (not counted):")
        for t, where in sorted(known.items()):
            print(f"  {t}: {', '.join(where)}")
    if problems:
        print("FAILED: our driver does worse than the db driver:")
        for p in problems:
            print(p if p.startswith("      ") else f"  {p}")
        return 1
    print("OK: every test that passes with the db driver passes with ours.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
