"""How the ``servicegroup`` command renders members, groups and events."""

from __future__ import annotations

import datetime
import io
import json
import re

import pytest

from servicegroup import Member
from servicegroup.cmd import render

UTC = datetime.timezone.utc
NOW = datetime.datetime(2024, 5, 1, 12, 0, 10, tzinfo=UTC)


def member(
    member_id: str,
    up: bool = True,
    stale: bool = False,
    age: float | None = 0.5,
    **capabilities: object,
) -> Member:
    return Member(
        id=member_id,
        group_id="compute",
        is_up=up,
        capabilities=capabilities,
        updated_at=None if age is None else NOW - datetime.timedelta(seconds=age),
        stale=stale,
    )


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


# -- tables -------------------------------------------------------------------


def test_table_aligns_columns_and_strips_trailing_spaces() -> None:
    lines = render.table(["A", "LONGER"], [["xxx", "1"], ["y", ""]])
    assert lines == ["A    LONGER", "xxx  1", "y"]


def test_colours_do_not_break_alignment() -> None:
    style = render.Style(color=True)
    rows = [[render.Cell("up", render.GREEN), "x"], ["down", "y"]]
    lines = render.table(["STATE", "V"], rows, style)
    plain = [render_strip(line) for line in lines]
    assert plain == ["STATE  V", "up     x", "down   y"]
    assert "\x1b[32mup\x1b[0m" in lines[1]


def render_strip(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_style_is_plain_for_pipes_and_with_no_color(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert render.Style.for_stream(io.StringIO()) == render.Style(color=False)
    assert render.Style.for_stream(TTY()) == render.Style(color=True)
    monkeypatch.setenv("NO_COLOR", "1")
    assert render.Style.for_stream(TTY()) == render.Style(color=False)
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("TERM", "dumb")
    assert not render.is_terminal(TTY())


# -- values -------------------------------------------------------------------


def test_capabilities_are_sorted_pairs_with_json_for_non_strings() -> None:
    text = render.capabilities_text({"zone": "az1", "weight": 2, "tags": ["a", "b"]})
    assert text == 'tags=["a","b"] weight=2 zone=az1'
    assert render.capabilities_text({}) == "-"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0.00 s"),
        (0.214, "0.21 s"),
        (9.99, "9.99 s"),
        (42.4, "42 s"),
        (600, "10 min"),
        (3 * 3600, "3 h"),
        (3 * 86400, "3 d"),
    ],
)
def test_seconds(value: float, text: str) -> None:
    assert render.seconds(value) == text


def test_settings_read_as_configured() -> None:
    assert render.setting(0.5) == "0.5 s"
    assert render.setting(60.0) == "60 s"


def test_age() -> None:
    assert render.age(NOW - datetime.timedelta(seconds=1.5), NOW) == "1.50 s ago"
    assert render.age(None, NOW) == "-"
    # Another host's clock slightly ahead: not a negative age.
    assert render.age(NOW + datetime.timedelta(seconds=0.3), NOW) == "just now"


def test_times() -> None:
    assert render.iso(NOW) == "2024-05-01T12:00:10.000Z"
    assert render.iso(None) is None
    other_zone = NOW.astimezone(datetime.timezone(datetime.timedelta(hours=2)))
    assert render.iso(other_zone) == "2024-05-01T12:00:10.000Z"
    assert render.clock_time(None) == "-"
    assert len(render.clock_time(NOW)) == len("12:00:10.000")
    assert render.thousands(1000) == "1,000"


# -- members and groups -------------------------------------------------------


def test_member_table_of_a_one_shot_observer() -> None:
    members = [
        member("host1", zone="az1"),
        member("host2", up=False, age=75),
        member("host3", stale=True, age=None),
    ]
    assert render.member_table(members, NOW) == [
        "MEMBER  STATE       LAST HEARTBEAT  CAPABILITIES",
        "host1   up          0.50 s ago      zone=az1",
        "host2   down        75 s ago        -",
        "host3   up (stale)  -               -",
    ]


def test_member_table_with_absolute_times() -> None:
    members = [member("host1", zone="az1"), member("host2", up=False, age=75)]
    assert render.member_table(members, NOW, absolute=True) == [
        "MEMBER  STATE  LAST HEARTBEAT  UPDATED AT (UTC)          CAPABILITIES",
        "host1   up     0.50 s ago      2024-05-01T12:00:09.500Z  zone=az1",
        "host2   down   75 s ago        2024-05-01T11:58:55.000Z  -",
    ]


def test_member_table_of_a_live_observer_has_since() -> None:
    since = {"host1": NOW}
    lines = render.member_table([member("host1"), member("host2")], NOW, since)
    assert lines[0].split() == [
        "MEMBER",
        "STATE",
        "SINCE",
        "LAST",
        "HEARTBEAT",
        "CAPABILITIES",
    ]
    assert render.clock_time(NOW) in lines[1]
    # Seen up before the observer started: unknown since when.
    assert lines[2].split()[2] == "-"


def test_state_colours() -> None:
    assert render.state_cell(member("a")).sgr == render.GREEN
    assert render.state_cell(member("a", up=False)).sgr == render.RED
    assert render.state_cell(member("a", stale=True)).sgr == render.YELLOW


def test_members_document_is_json() -> None:
    document = render.members_document(
        "redis://:***@h:6379", "compute", [member("host1", weight=2)]
    )
    assert json.loads(render.dumps(document)) == {
        "url": "redis://:***@h:6379",
        "group": "compute",
        "members": [
            {
                "id": "host1",
                "group": "compute",
                "up": True,
                "stale": False,
                "updated_at": "2024-05-01T12:00:09.500Z",
                "capabilities": {"weight": 2},
            }
        ],
    }


def test_groups_table_and_document() -> None:
    up = {"conductor": [], "compute": ["host1", "host2"]}
    assert render.group_table(up) == [
        "GROUP      UP  MEMBERS UP",
        "compute    2   host1 host2",
        "conductor  0   -",
    ]
    assert render.groups_document("file:///x", up) == {
        "url": "file:///x",
        "groups": [
            {"group": "compute", "up": ["host1", "host2"]},
            {"group": "conductor", "up": []},
        ],
    }


# -- events -------------------------------------------------------------------


def test_events_from_a_change_downs_first() -> None:
    events = render.events_from_change(
        NOW, "compute", {"b", "c"}, joined={"c", "b"}, left={"a"}
    )
    assert [(e.kind, e.member) for e in events] == [
        ("down", "a"),
        ("up", "b"),
        ("up", "c"),
    ]
    assert all(e.up == ("b", "c") for e in events)


def test_event_lines() -> None:
    def line(kind: str, who: str | None, up: tuple[str, ...]) -> str:
        return render.event_line(render.Event(NOW, "compute", kind, who, up))

    stamp = "2024-05-01T12:00:10.000Z compute"
    assert line("snapshot", None, ("a", "b")) == f"{stamp} snapshot: 2 up: a, b"
    assert line("up", "b", ("a", "b")) == f"{stamp} up b (2 up: a, b)"
    assert line("down", "a", ()) == f"{stamp} down a (0 up: none)"
    assert line("stale", None, ("a",)).startswith(f"{stamp} stale: ")
    assert line("fresh", None, ("a",)).startswith(f"{stamp} fresh: ")


def test_event_json_is_one_line() -> None:
    event = render.Event(NOW, "compute", "up", "b", ("a", "b"))
    text = render.event_json(event)
    assert "\n" not in text
    assert json.loads(text) == {
        "time": "2024-05-01T12:00:10.000Z",
        "group": "compute",
        "event": "up",
        "member": "b",
        "up": ["a", "b"],
    }
    snapshot = render.Event(NOW, "compute", "snapshot", None, ())
    assert "member" not in json.loads(render.event_json(snapshot))


# -- the live area ------------------------------------------------------------


def test_live_area_prints_only_permanent_lines_to_a_pipe() -> None:
    out = io.StringIO()
    area = render.LiveArea(out)
    assert not area.live
    area.update(["table"])
    area.print("event")
    area.clear()
    assert out.getvalue() == "event\n"


def test_live_area_redraws_in_place_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TERM", "xterm")
    out = TTY()
    area = render.LiveArea(out)
    assert area.live
    area.update(["a", "b"])
    area.update(["c"])
    area.print("event")
    area.clear()
    assert out.getvalue() == (
        "a\nb\n"
        "\x1b[2F\x1b[Jc\n"  # up two lines, clear, draw
        "\x1b[1F\x1b[Jevent\nc\n"  # the event above, the block again
        "\x1b[1F\x1b[J"  # gone
    )
