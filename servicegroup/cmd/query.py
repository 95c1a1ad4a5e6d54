"""The one-shot subcommands: ``members``, ``groups`` and ``check``."""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from typing import IO, Any

from oslo_config import cfg

from servicegroup import validation
from servicegroup.cmd import backend as sg_backend
from servicegroup.cmd import errors, render


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def members(args: argparse.Namespace, conf: cfg.ConfigOpts, out: IO[str]) -> int:
    """Print the members of a group that this observer can see."""
    group_id = validation.group_id(args.group)
    with sg_backend.open_backend(conf) as backend:
        # One network round trip that also tells an unknown group (exit 3)
        # from an empty one: the local view treats both alike.
        backend.require_group(group_id)
        found = backend.call(
            lambda: backend.api.get_members(group_id), f"reading group {group_id}"
        )
        if args.format == "json":
            out.write(
                render.dumps(render.members_document(backend.url, group_id, found))
            )
            out.write("\n")
        elif not found:
            out.write(f"No member of group {group_id} is up.\n")
        else:
            style = render.Style.for_stream(out)
            for line in render.member_table(found, _now(), style=style):
                out.write(f"{line}\n")
        if any(m.stale for m in found):
            sys.stderr.write(
                "servicegroup: warning: the backend stopped answering while "
                "reading; members marked stale are from the last good view\n"
            )
    return errors.ExitCode.OK


def groups(args: argparse.Namespace, conf: cfg.ConfigOpts, out: IO[str]) -> int:
    """Print every group on the backend and who is up in each."""
    with sg_backend.open_backend(conf) as backend:
        names = backend.groups()
        up_by_group: dict[str, list[str]] = {}
        for name in names:
            try:
                group_id = validation.group_id(name)
            except ValueError:
                # Another tooz user's group with an id we would not create
                # (a '/' in it): list it, we cannot ask about its members.
                up_by_group[name] = []
                continue
            up_by_group[name] = backend.call(
                lambda g=group_id: backend.api.get_all(g),  # type: ignore[misc]
                f"reading group {group_id}",
            )
        if args.format == "json":
            out.write(render.dumps(render.groups_document(backend.url, up_by_group)))
            out.write("\n")
        elif not names:
            out.write(f"There are no groups on {backend.url}.\n")
        else:
            for line in render.group_table(up_by_group):
                out.write(f"{line}\n")
    return errors.ExitCode.OK


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
            message, code = errors.explain(exc, backend.url)
            if args.format == "json":
                report.update(status="error", error=message, exit_code=int(code))
                out.write(render.dumps(report) + "\n")
            raise errors.CommandError(message, code) from exc
    report.update(
        status="ok",
        connect_ms=round((connected - started) * 1000, 3),
        round_trip_ms=round((done - connected) * 1000, 3),
        groups=len(found),
    )
    if args.format == "json":
        out.write(render.dumps(report) + "\n")
    else:
        out.write(
            f"OK: {report['url']} answered in {report['round_trip_ms']:.1f} ms "
            f"(connecting and first answer {report['connect_ms']:.1f} ms; "
            f"{len(found)} group{'' if len(found) == 1 else 's'})\n"
        )
    return errors.ExitCode.OK
