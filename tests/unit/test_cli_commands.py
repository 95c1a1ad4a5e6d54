"""The ``servicegroup`` command's pieces, in process: arguments, errors,
secrets, deadlines, the demo's ring, and whole runs on the ``fake://``
backend. The real command, as a subprocess, is tested in
``tests/functional/test_cli.py``.
"""

from __future__ import annotations

import collections
import datetime
import io
import json
import logging
import os
import pathlib
import re
import signal
import threading
import time
from collections.abc import Iterator

import pytest
from oslo_config import cfg

import servicegroup
from servicegroup import exceptions
from servicegroup.cmd import agent, demo, errors, main, query
from servicegroup.cmd import backend as sg_backend
from servicegroup.testing import fake_backend

DOC = pathlib.Path(__file__).parents[2] / "doc" / "source" / "cli.rst"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    # main.run() configures the root logger as the command does.
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main.run(list(argv), out=out)
    return code, out.getvalue()


# -- arguments ----------------------------------------------------------------


def test_common_options_before_or_after_the_command() -> None:
    parser = main.build_parser()
    before = parser.parse_args(["--url", "redis://a", "members", "g"])
    after = parser.parse_args(["members", "g", "--url", "redis://a"])
    assert before.url == after.url == "redis://a"
    both = parser.parse_args(
        ["--config-file", "a.conf", "groups", "--config-file", "b.conf"]
    )
    # Given after the command, the option replaces what came before it.
    assert both.config_file == ["b.conf"]
    assert parser.parse_args(["groups"]).url is None


def test_every_command_is_dispatched() -> None:
    parser = main.build_parser()
    for name, (module, function, _) in main.COMMANDS.items():
        __import__(module)
        assert callable(getattr(__import__(module, fromlist=[function]), function))
        assert name in parser.format_help()


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        (None, {}),
        (["zone=az1"], {"zone": "az1"}),
        (["version=1.10"], {"version": "1.10"}),
        (["weight:=2", 'tags:=["a"]'], {"weight": 2, "tags": ["a"]}),
        (["url=http://x/?a=b"], {"url": "http://x/?a=b"}),
        (["empty="], {"empty": ""}),
    ],
)
def test_capabilities(items: list[str] | None, expected: dict[str, object]) -> None:
    assert agent.parse_capabilities(items) == expected


@pytest.mark.parametrize("item", ["novalue", "=x", ":=1", "k:=[1"])
def test_bad_capabilities_are_usage_errors(item: str) -> None:
    with pytest.raises(errors.CommandError) as caught:
        agent.parse_capabilities([item])
    assert caught.value.code is errors.ExitCode.USAGE


# -- errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "code", "start"),
    [
        (exceptions.UnknownDriver("x"), 2, "the driver is not usable"),
        (exceptions.UnknownBackend("x"), 2, "the backend URL is not usable"),
        (exceptions.InvalidURL("x"), 2, "the backend URL is not valid"),
        (exceptions.InvalidArgument("x"), 2, "invalid argument"),
        (exceptions.BackendTimeout("x"), 1, "the backend at U did not answer"),
        (exceptions.BackendUnavailable("x"), 1, "cannot reach the backend at U"),
        (exceptions.GroupNotFound("x"), 1, "the backend at U failed"),
        (cfg.ConfigFilesNotFoundError(["/a.conf"]), 2, "cannot read the conf"),
        (cfg.ConfigFileParseError("/a.conf", "bad"), 2, "the configuration is"),
        (errors.CommandError("said", errors.ExitCode.UNKNOWN_GROUP), 3, "said"),
        (RuntimeError("bug"), 1, "unexpected error: RuntimeError: bug"),
    ],
)
def test_explain(exc: BaseException, code: int, start: str) -> None:
    message, exit_code = errors.explain(exc, "U")
    assert exit_code == code
    assert message.startswith(start)
    assert "\n" not in message


def test_explain_names_the_backend_once() -> None:
    exc = exceptions.BackendUnavailable("connecting to redis://h:1: refused.")
    message, _ = errors.explain(exc, "redis://h:1")
    assert message == "cannot reach the backend: connecting to redis://h:1: refused"
    empty = exceptions.BackendError("connecting to etcd: ConnectionFailedError: ")
    assert errors.explain(empty)[0].endswith("ConnectionFailedError")


def test_a_bad_value_names_the_file_and_the_option(tmp_path: pathlib.Path) -> None:
    # oslo.config's own message holds the repr of a LocationInfo.
    path = tmp_path / "bad.conf"
    path.write_text("[DEFAULT]\nreport_interval = often\n")
    conf = sg_backend.load_conf([str(path)])
    with pytest.raises(cfg.ConfigFileValueError) as caught:
        conf.report_interval  # noqa: B018 - reading it converts the value
    message, code = errors.explain(caught.value)
    assert code == errors.ExitCode.USAGE
    assert message == (
        f"the configuration file {path} sets report_interval to a value that "
        "is not valid: could not convert string to float: 'often'"
    )


def test_a_bad_value_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OS_DEFAULT__SERVICE_DOWN_TIME", "-1")
    conf = sg_backend.load_conf([])
    with pytest.raises(cfg.ConfigSourceValueError) as caught:
        conf.service_down_time  # noqa: B018
    message, _ = errors.explain(caught.value)
    assert message.startswith(
        "the environment variable OS_DEFAULT__SERVICE_DOWN_TIME sets "
        "service_down_time to a value that is not valid: "
    )
    assert "LocationInfo" not in message


def _documented_codes(text: str) -> dict[int, str]:
    return {
        int(m.group(1)): m.group(2)
        for m in re.finditer(r"^\s+(\d+)\s+(\S.*)$", text, re.M)
    }


def test_exit_codes_are_documented_in_help_and_docs() -> None:
    codes = {int(code) for code in errors.ExitCode}
    assert set(_documented_codes(errors.EXIT_CODES_HELP)) == codes
    # The docs table: ``N``  description.
    doc = DOC.read_text()
    documented = {int(n) for n in re.findall(r"^``(\d+)``\s", doc, re.M)}
    assert documented == codes


# -- secrets ------------------------------------------------------------------


def test_secrets_in_urls() -> None:
    assert sg_backend.secrets_in_url("redis://:pw@h:1") == ["pw"]
    found = sg_backend.secrets_in_url("redis://u:p%40ss@h:1/?sentinel_password=s2")
    assert {"p%40ss", "p@ss", "s2"} <= set(found)
    assert sg_backend.secrets_in_url("redis://h:1") == []
    assert sg_backend.secrets_in_url(None) == []
    # Unparseable (bad port), the password is still found.
    assert "pw" in sg_backend.secrets_in_url("redis://u:pw@h:99999999")


def test_scrubber_masks_longest_first() -> None:
    scrub = sg_backend.Scrubber(["pw"])
    scrub.add(["pw-long"])
    assert scrub("a pw-long b pw c") == "a *** b *** c"


def test_logs_and_tracebacks_are_scrubbed() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        sg_backend.ScrubbingFormatter(sg_backend.Scrubber(["s3cr3t"]), "%(message)s")
    )
    log = logging.getLogger("test_cli_scrub")
    log.addHandler(handler)
    log.propagate = False
    try:
        try:
            raise ValueError("bad s3cr3t")
        except ValueError:
            log.exception("connecting with %s", "s3cr3t")
    finally:
        log.removeHandler(handler)
    assert "s3cr3t" not in stream.getvalue()
    assert "ValueError: bad ***" in stream.getvalue()


# -- deadlines ----------------------------------------------------------------


def test_call_with_deadline_returns_or_raises_what_the_call_did() -> None:
    assert sg_backend.call_with_deadline(lambda: 42, 1.0, "x") == 42
    with pytest.raises(KeyError):
        sg_backend.call_with_deadline(lambda: {}["k"], 1.0, "x")


def test_call_with_deadline_abandons_a_stuck_call() -> None:
    release = threading.Event()
    started = time.monotonic()
    with pytest.raises(exceptions.BackendTimeout, match="listing: no answer within"):
        sg_backend.call_with_deadline(lambda: release.wait(30), 0.2, "listing")
    assert time.monotonic() - started < 5
    release.set()


def test_load_conf_reads_files_and_url_wins(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "sg.conf"
    path.write_text(
        "[DEFAULT]\nservicegroup_tooz_url = redis://a:6379\nreport_interval = 3\n"
    )
    conf = sg_backend.load_conf([str(path)])
    assert conf.servicegroup_tooz_url == "redis://a:6379"
    assert conf.report_interval == 3
    conf = sg_backend.load_conf([str(path)], "file:///x", {"report_interval": 1})
    assert conf.servicegroup_tooz_url == "file:///x"
    assert conf.report_interval == 1
    with pytest.raises(cfg.ConfigFilesNotFoundError):
        sg_backend.load_conf([str(tmp_path / "missing.conf")])


# -- the demo's ring ----------------------------------------------------------


def test_ring_moves_only_the_leaver_items() -> None:
    before = demo.ring_owners(["a", "b", "c", "d"])
    after = demo.ring_owners(["a", "c", "d"])
    counts = collections.Counter(before.values())
    assert sum(counts.values()) == len(demo.RING_ITEMS) == 1000
    lines = demo.ring_moves(before, after)
    assert lines[0] == f"Hash ring: {counts['b']} of 1,000 items moved " + (
        f"({counts['b'] / 10:.1f}%)."
    )
    assert lines[1].startswith("Only the items of b moved, to the members left")
    back = demo.ring_moves(after, before)
    assert back[1].startswith("Only items now owned by b moved, taken from")
    # Same members, same placement: the ring is a function of membership.
    assert demo.ring_owners(["d", "c", "b", "a"]) == before
    assert demo.ring_shares(before).startswith("Hash ring: 1,000 work items over 4")


# -- whole runs on the fake backend -------------------------------------------


def test_groups_and_members_on_the_fake_backend() -> None:
    url = "fake://test-cli-commands"
    code, out = run("--url", url, "groups")
    assert code == 0
    assert out == f"There are no groups on {url}.\n"
    code, out = run("--url", url, "members", "compute")
    assert code == errors.ExitCode.UNKNOWN_GROUP
    assert out == ""


@pytest.fixture
def state_conf(tmp_path: pathlib.Path) -> str:
    """A configuration file keeping the command's state in the test's directory."""
    path = tmp_path / "sg.conf"
    path.write_text(f"[DEFAULT]\nservicegroup_state_path = {tmp_path / 'state'}\n")
    return str(path)


@pytest.fixture
def fake_api() -> Iterator[tuple[str, servicegroup.API]]:
    """An API on a fresh fake:// store, as another process would be."""
    name = f"test-cli-{time.monotonic_ns()}"
    conf = sg_backend.load_conf([], f"fake://{name}")
    api = servicegroup.API(conf=conf)
    yield f"fake://{name}", api
    api.stop()
    fake_backend.drop_store(name)


def test_members_lists_down_members_with_their_heartbeat_time(
    fake_api: tuple[str, servicegroup.API], state_conf: str
) -> None:
    url, api = fake_api
    common = ["--url", url, "--config-file", state_conf]
    api.join("host1", "compute", capabilities={"zone": "az1"})
    api.join("host2", "compute")
    assert api.get_all("compute") == ["host1", "host2"]  # waits for the joins
    code, out = run(*common, "members", "compute")
    assert code == 0
    iso = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    assert re.fullmatch(
        r"MEMBER\s+STATE\s+LAST HEARTBEAT\s+UPDATED AT \(UTC\)\s+CAPABILITIES\n"
        rf"host1\s+up\s+\S.* ago\s+{iso}\s+zone=az1\n"
        rf"host2\s+up\s+\S.* ago\s+{iso}\s+-\n",
        out,
    ), out
    [host2_time] = re.findall(rf"^host2\s+up.*?({iso})", out, re.M)

    api.leave("host2", "compute")  # the backend forgets host2 at once
    code, out = run(*common, "members", "compute")
    assert code == 0
    assert re.search(rf"^host2\s+down\s+\S.* ago\s+{host2_time}\s+-$", out, re.M)
    assert re.search(r"^host1\s+up\s", out, re.M)
    code, out = run(*common, "members", "compute", "--format", "json")
    by_id = {m["id"]: m for m in json.loads(out)["members"]}
    assert by_id["host2"]["up"] is False
    assert by_id["host2"]["updated_at"] == host2_time
    assert by_id["host1"]["up"] is True


def test_down_members_are_forgotten_after_a_week(
    fake_api: tuple[str, servicegroup.API],
    state_conf: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, api = fake_api
    common = ["--url", url, "--config-file", state_conf]
    api.join("host1", "compute")
    assert api.get_all("compute") == ["host1"]
    assert run(*common, "members", "compute")[0] == 0
    api.leave("host1", "compute")
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=8)
    monkeypatch.setattr(query, "_now", lambda: later)
    assert run(*common, "members", "compute") == (
        0,
        "No member of group compute is up.\n",
    )


def test_groups_hides_and_deletes_empty_groups(
    fake_api: tuple[str, servicegroup.API], state_conf: str
) -> None:
    url, api = fake_api
    common = ["--url", url, "--config-file", state_conf]
    api.join("host1", "compute")
    api.join("host2", "conductor")
    assert api.get_all("compute") == ["host1"]
    assert api.get_all("conductor") == ["host2"]
    api.leave("host2", "conductor")  # done on the backend when it returns
    code, out = run(*common, "groups")
    assert code == 0
    assert re.search(r"^conductor\s+0\s+-$", out, re.M)
    code, out = run(*common, "groups", "--non-empty")
    assert (code, out.splitlines()) == (
        0,
        ["GROUP    UP  MEMBERS UP", "compute  1   host1"],
    )
    code, out = run(*common, "groups", "--delete-empty", "--format", "json")
    assert code == 0
    document = json.loads(out)
    assert document["deleted"] == ["conductor"]
    assert [g["group"] for g in document["groups"]] == ["compute"]
    assert sorted(api.get_groups()) == ["compute"]
    code, out = run(*common, "groups", "--delete-empty")
    assert (code, out.splitlines()[0]) == (0, "GROUP    UP  MEMBERS UP")
    api.leave("host1", "compute")
    code, out = run(*common, "groups", "--delete-empty")
    assert (code, out) == (0, "Deleted group compute: nobody was up in it.\n")
    assert api.get_groups() == []


def test_unknown_group_names_only_the_group_and_close_ones(
    fake_api: tuple[str, servicegroup.API], state_conf: str
) -> None:
    url, api = fake_api
    for index in range(50):
        api.join("h", f"group-{index}")
    api.join("h", "compute")
    assert api.get_all("compute") == ["h"]
    assert api.get_all("group-49") == ["h"]
    code, out = run("--url", url, "members", "computer")
    assert (code, out) == (errors.ExitCode.UNKNOWN_GROUP, "")
    with pytest.raises(errors.CommandError) as caught:
        sg_backend.Backend(sg_backend.load_conf([], url)).require_group("computer")
    assert str(caught.value) == (
        f"there is no group 'computer' on {url} (did you mean compute?)"
    )
    with pytest.raises(errors.CommandError) as caught:
        sg_backend.Backend(sg_backend.load_conf([], url)).require_group("xyz")
    assert str(caught.value) == f"there is no group 'xyz' on {url}"


@pytest.mark.parametrize(
    ("args", "reachable"),
    [
        (["members", "nope"], True),
        (["watch", "nope"], True),
        (["members", "compute"], False),
        (["groups"], False),
        (["watch", "compute"], False),
        (["check"], False),
    ],
)
def test_json_errors_are_documents_on_stdout(
    args: list[str], reachable: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"test-cli-json-{time.monotonic_ns()}"
    fake_backend.store(name).set_reachable(reachable)
    try:
        code, out = run(
            "--url",
            f"fake://{name}",
            *args,
            "--format",
            "json",
            "--config-file",
            os.devnull,
        )
    finally:
        fake_backend.drop_store(name)
    err = capsys.readouterr().err
    assert code == (errors.ExitCode.UNKNOWN_GROUP if reachable else 1)
    document = json.loads(out)
    assert document["status"] == "error"
    assert document["command"] == args[0]
    assert document["exit_code"] == code
    assert document["url"] == f"fake://{name}"
    assert err == f"servicegroup: {document['error']}\n"
    if args[0] == "watch":
        assert out.count("\n") == 1  # JSON Lines: one line


def test_check_on_the_fake_backend() -> None:
    code, out = run("--url", "fake://test-cli-check", "check")
    assert code == 0
    assert re.match(r"OK: fake://test-cli-check answered in \d+\.\d ms", out)


def test_errors_are_one_sentence_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run("--url", "nosuch://x", "groups")
    assert code == errors.ExitCode.USAGE
    assert out == ""
    err = capsys.readouterr().err
    assert err.startswith("servicegroup: the backend URL is not usable: URL scheme")
    assert err.count("\n") == 1


def test_demo_fails_at_once_when_a_member_cannot_start(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Members that exit at once (as with a broken installation): the demo
    # says so with the member's status instead of waiting for its deadline.
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    monkeypatch.setattr(demo, "START_DEADLINE", 20.0)
    monkeypatch.setattr(demo.sys, "executable", "/bin/false")
    handler = signal.getsignal(signal.SIGTERM)
    started = time.monotonic()
    try:
        code, out = run("demo", "--members", "3")
    finally:
        signal.signal(signal.SIGTERM, handler)
    assert code == errors.ExitCode.FAILED
    assert time.monotonic() - started < 15
    assert "1. Starting 3 members" in out
    err = capsys.readouterr().err
    assert "member process host-1 exited with status 1 while starting" in err
