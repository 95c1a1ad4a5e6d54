"""``servicegroup join GROUP MEMBER``: a heartbeating member until stopped.

The agent is what a service embedding the library does, as a process: it
joins, heartbeats through the library, reports when its own observer sees
it up (or down, while the backend is away), and on SIGTERM or SIGINT it
leaves the group so observers see it down at once rather than after
``service_down_time``. The demo runs its members with this same code.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from collections.abc import Sequence
from typing import IO, Any

from oslo_config import cfg

from servicegroup import validation
from servicegroup.cmd import backend as sg_backend
from servicegroup.cmd import errors, render, signals

#: How often the agent looks at its own state and at its parent.
POLL_INTERVAL = 0.1


def parse_capabilities(items: Sequence[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` (a string) or ``KEY:=JSON`` (any JSON value) pairs.

    Values are strings unless asked otherwise, so ``version=1.10`` stays
    ``"1.10"`` instead of becoming the number 1.1.
    """
    capabilities: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key or key == ":":
            raise errors.CommandError(
                f"--capability takes KEY=VALUE or KEY:=JSON, not {item!r}",
                errors.ExitCode.USAGE,
            )
        if key.endswith(":"):
            key = key[:-1]
            try:
                capabilities[key] = json.loads(value)
            except ValueError as exc:
                raise errors.CommandError(
                    f"--capability {item!r}: the value after ':=' is not JSON ({exc})",
                    errors.ExitCode.USAGE,
                ) from exc
        else:
            capabilities[key] = value
    return capabilities


def _say(out: IO[str], text: str) -> None:
    stamp = render.iso(datetime.datetime.now(datetime.timezone.utc))
    out.write(f"{stamp} {text}\n")
    out.flush()


def join(args: argparse.Namespace, conf: cfg.ConfigOpts, out: IO[str]) -> int:
    """Join, heartbeat until SIGTERM or SIGINT, then leave."""
    group_id = validation.group_id(args.group)
    member_id = validation.member_id(args.member)
    capabilities = validation.capabilities(parse_capabilities(args.capability))
    stop = signals.StopRequest().install()
    # Remembered now: once the parent is gone we are re-parented, and the
    # parent id changes.
    parent = os.getppid() if args.exit_with_parent else None
    with sg_backend.open_backend(conf) as backend:
        api = backend.api
        name = f"member {member_id} of group {group_id}"
        if api.is_up(member_id, group_id):
            sys.stderr.write(
                f"servicegroup: warning: {name} is already up (another "
                "process?); joining replaces it\n"
            )
        api.join(member_id, group_id, capabilities=capabilities)
        _say(
            out,
            f"{name} joining on {backend.url} (heartbeat every "
            f"{render.seconds(float(backend.settings['report_interval']))}, "
            "down after "
            f"{render.seconds(float(backend.settings['service_down_time']))} "
            "without one); SIGTERM or Ctrl-C leaves the group",
        )
        seen_up: bool | None = None
        while not stop.wait(POLL_INTERVAL):
            if parent is not None and os.getppid() != parent:
                _say(out, f"{name}: the parent process exited")
                break
            up = api.is_up(member_id, group_id)
            if up != seen_up and (seen_up is not None or up):
                _say(out, f"{name} is {'up' if up else 'down; rejoining'}")
            seen_up = up
        _say(out, f"{name} leaving")
        api.leave(member_id, group_id)
        if seen_up:
            _say(out, f"{name} left")
        else:
            # Never seen up (the backend was away or refused us): there was
            # no entry to remove, and saying "left" would suggest there was.
            _say(out, f"{name} stopped; it was not up, so there was nothing to leave")
    return errors.ExitCode.OK
