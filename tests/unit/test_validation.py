"""Bad input is refused before any network traffic, with a clear error."""

from __future__ import annotations

import pytest

from servicegroup import exceptions, validation


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("", "must not be empty"),
        ("a" * 161, "the limit is 160"),
        ("a/b", "'/'"),
        ("a\x00b", "'\\x00'"),
        ("a b", "' '"),
        ("hôte", "'ô'"),
        (b"host1", "must be a str"),
        (None, "must be a str"),
    ],
)
def test_bad_member_ids(value: object, fragment: str) -> None:
    with pytest.raises(exceptions.InvalidArgument) as info:
        validation.member_id(value)
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)


def test_group_ids_have_their_own_limit() -> None:
    assert validation.group_id("g" * 64) == "g" * 64
    with pytest.raises(exceptions.InvalidArgument, match="limit is 64"):
        validation.group_id("g" * 65)


def test_good_ids_pass_unchanged() -> None:
    assert validation.member_id("compute-1.example.org") == "compute-1.example.org"
    assert validation.member_id("a@b:c") == "a@b:c"


@pytest.mark.parametrize(
    ("caps", "fragment"),
    [
        ({"when": object()}, "JSON-serialisable"),
        ({1: "x"}, "keys must be str"),
        ({"nested": {2: "x"}}, "keys must be str"),
        ({"x": float("nan")}, "JSON-serialisable"),
        ({"big": "x" * 5000}, "the limit is 4096"),
        (["not", "a", "mapping"], "must be a mapping"),
    ],
)
def test_bad_capabilities(caps: object, fragment: str) -> None:
    with pytest.raises(exceptions.InvalidArgument, match=fragment):
        validation.capabilities(caps)  # type: ignore[arg-type]


def test_capabilities_are_normalised_like_every_backend_returns_them() -> None:
    caps = validation.capabilities({"versions": (1, 2), "ok": True})
    assert caps == {"versions": [1, 2], "ok": True}
    assert validation.capabilities(None) == {}
