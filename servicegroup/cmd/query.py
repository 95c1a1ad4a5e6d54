"""The one-shot subcommands: ``members``, ``groups`` and ``check``."""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from typing import IO, Any

from oslo_config import cfg

from servicegroup import exceptions, validation
from servicegroup.cmd import backend as sg_backend
from servicegroup.cmd import errors, render, seen


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _record(
    conf: cfg.ConfigOpts, backend: sg_backend.Backend, group_id: str
) -> seen.Record:
    state_dir = os.path.expanduser(str(conf.servicegroup_state_path))
    return seen.Record(state_dir, backend.url, group_id)


def members(args: argparse.Namespace, conf: cfg.ConfigOpts, out: IO[str]) -> int:
    """Print the members of a group: those up, and those seen before, down."""
    group_id = validation.group_id(args.group)
    with sg_backend.open_backend(conf) as backend:
        # One network round trip that also tells an unknown group (exit 3)
        # from an empty one: the local view treats both alike.
        backend.require_group(group_id)
        found = backend.call(
            lambda: backend.api.get_members(group_id), f"reading group {group_id}"
        )
        now = _now()
        listed = _record(conf, backend, group_id).merge(found, now)
        if args.format == "json":
            out.write(
                render.dumps(render.members_document(backend.url, group_id, listed))
            )
            out.write("\n")
        elif not listed:
            out.write(f"No member of group {group_id} is up.\n")
        else:
            style = render.Style.for_stream(out)
            lines = render.member_table(listed, now, style=style, absolute=True)
            for line in lines:
                out.write(f"{line}\n")
        if any(m.stale for m in found):
            sys.stderr.write(
                "servicegroup: warning: the backend stopped answering while "
                "reading; members marked stale are from the last good view\n"
            )
    return errors.ExitCode.OK


def _delete_empty(
    conf: cfg.ConfigOpts,
    backend: sg_backend.Backend,
    up_by_group: dict[str, list[str]],
    deletable: set[str],
) -> tuple[list[str], dict[str, str]]:
    """Delete the groups with nobody up; returns (deleted, kept -> why)."""
    deleted: list[str] = []
    kept: dict[str, str] = {}
    for group_id in sorted(g for g, up in up_by_group.items() if not up):
        if group_id not in deletable:
            kept[group_id] = "its id is not one servicegroup uses"
            continue
        try:
            backend.call(
                lambda g=group_id: backend.api.delete_group(g),  # type: ignore[misc]
                f"deleting group {group_id}",
            )
        except exceptions.GroupNotEmpty:
            # A member came up since the listing: the group is in use.
            kept[group_id] = "a member is up in it now"
            continue
        except exceptions.GroupNotFound:
            pass  # deleted by someone else meanwhile: gone all the same
        _record(conf, backend, group_id).forget()
        deleted.append(group_id)
    for group_id in deleted:
        del up_by_group[group_id]
    return deleted, kept


def groups(args: argparse.Namespace, conf: cfg.ConfigOpts, out: IO[str]) -> int:
    """Print every group on the backend and who is up in each."""
    with sg_backend.open_backend(conf) as backend:
        names = backend.groups()
        up_by_group: dict[str, list[str]] = {}
        deletable: set[str] = set()
        for name in names:
            try:
                group_id = validation.group_id(name)
            except ValueError:
                # Another tooz user's group with an id we would not create
                # (a '/' in it): list it, we cannot ask about its members.
                up_by_group[name] = []
                continue
            deletable.add(group_id)
            up_by_group[name] = backend.call(
                lambda g=group_id: backend.api.get_all(g),  # type: ignore[misc]
                f"reading group {group_id}",
            )
        deleted: list[str] = []
        kept: dict[str, str] = {}
        if args.delete_empty:
            deleted, kept = _delete_empty(conf, backend, up_by_group, deletable)
        hidden = 0
        if args.non_empty:
            empty = [g for g, up in up_by_group.items() if not up]
            hidden = len(empty)
            for group_id in empty:
                del up_by_group[group_id]
        if args.format == "json":
            document = render.groups_document(backend.url, up_by_group)
            if args.delete_empty:
                document["deleted"] = deleted
                document["kept"] = [
                    {"group": g, "reason": why} for g, why in sorted(kept.items())
                ]
            out.write(render.dumps(document))
            out.write("\n")
            return errors.ExitCode.OK
        for group_id in deleted:
            out.write(f"Deleted group {group_id}: nobody was up in it.\n")
        for group_id, why in sorted(kept.items()):
            out.write(f"Kept group {group_id}: {why}.\n")
        if up_by_group:
            for line in render.group_table(up_by_group):
                out.write(f"{line}\n")
        elif hidden:
            out.write(
                f"Nobody is up in any group on {backend.url} "
                f"({hidden} empty group{'' if hidden == 1 else 's'} hidden).\n"
            )
        elif not deleted:
            out.write(f"There are no groups on {backend.url}.\n")
    return errors.ExitCode.OK


#: What ``check`` reports of the driver's settings: the timeout asked for,
#: the one the server granted, and when dead members expire.
_EXPIRY_KEYS = (
    "service_down_time",
    "membership_timeout",
    "granted_membership_timeout",
    "expiry",
)


def check(args: argparse.Namespace, conf: cfg.ConfigOpts, out: IO[str]) -> int:
    """Exit 0 when the backend answers, with the round-trip time.

    The first call connects; a second one measures the round trip a
    service would see once connected. Both run under ``--timeout``.
    """
    timeout = sg_backend.backend_timeout(conf)
    report: dict[str, Any] = {}
    with sg_backend.open_backend(conf) as backend:
        report.update(url=backend.url, backend=backend.settings.get("backend"))
        try:
            started = time.monotonic()
            backend.call(backend.api.get_groups, "connecting", timeout)
            connected = time.monotonic()
            remaining = max(0.001, timeout - (connected - started))
            found = backend.call(backend.api.get_groups, "listing groups", remaining)
            done = time.monotonic()
        except Exception as exc:
            # The command's error document (--format json) carries these.
            message, code = errors.explain(exc, backend.url)
            raise errors.CommandError(message, code, report) from exc
    report.update(
        status="ok",
        connect_ms=round((connected - started) * 1000, 3),
        round_trip_ms=round((done - connected) * 1000, 3),
        groups=len(found),
    )
    # Read again now that a coordinator connected: what the server granted
    # (a ZooKeeper session timeout, an etcd lease TTL) is known only then.
    settings = backend.api.describe()
    for key in _EXPIRY_KEYS:
        if key in settings:
            report[key] = settings[key]
    if args.format == "json":
        out.write(render.dumps(report) + "\n")
    else:
        out.write(
            f"OK: {report['url']} answered in {report['round_trip_ms']:.1f} ms "
            f"(connecting and first answer {report['connect_ms']:.1f} ms; "
            f"{len(found)} group{'' if len(found) == 1 else 's'})\n"
        )
        if report.get("expiry"):
            out.write(f"Expiry: {report['expiry']}.\n")
    return errors.ExitCode.OK
