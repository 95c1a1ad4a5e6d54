"""Entry point of the ``servicegroup`` command: arguments, dispatch, exit codes.

Each subcommand lives in its own module and is imported only when it runs,
so ``servicegroup --help`` and the demo's member processes start quickly.
Every failure ends here, in :func:`main`, as one sentence on stderr and an
exit code from :class:`servicegroup.cmd.errors.ExitCode`; secrets from the
backend URL are masked in everything the command writes to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import logging
import os
import sys
import textwrap
import traceback
import warnings
from collections.abc import Sequence
from typing import IO, Any

from servicegroup.cmd import backend as sg_backend
from servicegroup.cmd import errors, render

PROG = "servicegroup"

DESCRIPTION = """\
Which members of a group of services are alive, on tooz.

Start with `servicegroup demo`: it needs no server. The other commands talk
to the backend named by --url or by servicegroup_tooz_url in the
configuration files (default: a directory under ~/.local/state, which only
works for services on one host)."""

#: Subcommand -> (module, function, one-line help).
COMMANDS: dict[str, tuple[str, str, str]] = {
    "demo": (
        "servicegroup.cmd.demo",
        "demo",
        "show what servicegroup does with member processes (no server needed)",
    ),
    "members": ("servicegroup.cmd.query", "members", "list the members of a group"),
    "groups": ("servicegroup.cmd.query", "groups", "list the groups and who is up"),
    "watch": ("servicegroup.cmd.watch", "watch", "follow a group live"),
    "join": (
        "servicegroup.cmd.agent",
        "join",
        "join a group and heartbeat until SIGTERM or Ctrl-C, then leave",
    ),
    "check": (
        "servicegroup.cmd.query",
        "check",
        "check that the backend answers, for monitoring",
    ),
}


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the epilog's layout (the exit code table)."""


def _common_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """Options every subcommand takes, before or after its name.

    On subparsers the defaults are SUPPRESS, so a value given before the
    subcommand name is not overwritten by the subparser's default.
    """

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--url",
        default=default(None),
        help="the tooz backend URL (overrides servicegroup_tooz_url), for "
        "example redis://127.0.0.1:6379 or file:///var/lib/servicegroup",
    )
    parser.add_argument(
        "--config-file",
        action="append",
        metavar="PATH",
        default=default(None),
        help="an oslo.config file to read (repeatable; later files win); "
        "without it, servicegroup.conf is searched in ~/.servicegroup/, ~/, "
        "/etc/servicegroup/ and /etc/",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default(0),
        help="log more (-v: info, -vv: debug) on stderr",
    )


def _format_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        choices=render.FORMATS,
        default="table",
        help="output format (default: table)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the whole command."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=errors.EXIT_CODES_HELP,
        formatter_class=_Formatter,
    )
    try:
        version = importlib.metadata.version("servicegroup")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    parser.add_argument("--version", action="version", version=f"%(prog)s {version}")
    _common_options(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, description: str) -> argparse.ArgumentParser:
        command = sub.add_parser(
            name,
            help=COMMANDS[name][2],
            # The raw formatter keeps the epilog's table; wrap the prose.
            description=textwrap.fill(description, 79),
            epilog=errors.EXIT_CODES_HELP,
            formatter_class=_Formatter,
        )
        _common_options(command, suppress=True)
        return command

    demo = add(
        "demo",
        "Start member processes in group 'compute', show them in a live "
        "table, kill one with SIGKILL and measure how long until it is seen "
        "down, stop one gracefully (down at once), restart it, and show how "
        "a hash ring of 1,000 work items moves. Without --url (or a URL in "
        "the configuration files) everything happens in a private "
        "temporary directory, removed at the end; with a URL the demo uses "
        "a fresh group named compute-demo-XXXXXX so it never touches real "
        "groups. Takes a few seconds (about ten on a terminal, which "
        "pauses between steps).",
    )
    demo.add_argument(
        "--members",
        type=int,
        default=4,
        metavar="N",
        help="how many member processes to start, 3 to 20 (default: 4)",
    )
    demo.add_argument(
        "--group", help="the group to use instead of compute or compute-demo-XXXXXX"
    )

    members = add(
        "members",
        "List the members of GROUP, up or down, with their latest heartbeat "
        "(its age and its time in UTC) and capabilities. The backends forget "
        "a member once it is down, so the members listed as down are those "
        "this command saw before on this host (remembered under "
        "servicegroup_state_path for a week after their latest heartbeat).",
    )
    members.add_argument("group", metavar="GROUP")
    _format_option(members)

    groups = add(
        "groups",
        "List every group on the backend and who is up in each. A group "
        "stays on the backend when its members leave; --delete-empty removes "
        "the groups nobody is up in.",
    )
    groups.add_argument(
        "--non-empty",
        action="store_true",
        help="list only the groups with at least one member up",
    )
    groups.add_argument(
        "--delete-empty",
        action="store_true",
        help="delete the groups with no member up (a group a member joins "
        "meanwhile is kept)",
    )
    _format_option(groups)

    watch = add(
        "watch",
        "Follow GROUP until SIGINT or SIGTERM. On a terminal the table is "
        "redrawn in place; otherwise each event is one line (--format json: "
        "JSON Lines): a snapshot first, then one line per member going up "
        "or down, and stale/fresh when the backend stops or resumes "
        "answering.",
    )
    watch.add_argument("group", metavar="GROUP")
    _format_option(watch)

    join = add(
        "join",
        "Join MEMBER to GROUP and heartbeat for it, as a service embedding "
        "the library would, until SIGTERM or SIGINT; then leave the group, "
        "so observers see the member down at once.",
    )
    join.add_argument("group", metavar="GROUP")
    join.add_argument("member", metavar="MEMBER")
    join.add_argument(
        "--capability",
        action="append",
        metavar="KEY=VALUE",
        help="advertise a capability (repeatable); KEY=VALUE stores a "
        'string, KEY:=JSON any JSON value (weight:=2, zones:=["a","b"])',
    )
    join.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="leave and exit when the parent process exits (for supervisors "
        "that may die without stopping their children)",
    )

    check = add(
        "check",
        "Make one real round trip to the backend. Exit 0 and print the "
        "round-trip time when it answers; otherwise exit non-zero with a "
        "one-line reason on stderr.",
    )
    check.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="give up after this long (default: servicegroup_backend_timeout, 5 s)",
    )
    _format_option(check)
    return parser


def _setup_logging(verbose: int, scrub: sg_backend.Scrubber) -> None:
    level = (logging.WARNING, logging.INFO)[verbose] if verbose < 2 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        sg_backend.ScrubbingFormatter(
            scrub, "%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    if verbose < 2:
        # kazoo logs every failed connection attempt at WARNING; the
        # command reports the outcome itself.
        logging.getLogger("kazoo").setLevel(logging.ERROR)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    if args.command == "check" and args.timeout is not None:
        if args.timeout <= 0:
            raise errors.CommandError(
                "--timeout must be a positive number of seconds", errors.ExitCode.USAGE
            )
        return {"servicegroup_backend_timeout": args.timeout}
    return {}


def _fail(message: str, scrub: sg_backend.Scrubber, err: IO[str]) -> None:
    err.write(scrub(f"{PROG}: {message}") + "\n")
    err.flush()


def _json_error(
    args: argparse.Namespace,
    out: IO[str],
    scrub: sg_backend.Scrubber,
    message: str,
    code: int,
    url: str | None,
    exc: BaseException | None = None,
) -> None:
    """With ``--format json``, the error as a JSON object on stdout too.

    Scripts reading stdout then always get a document, on success or
    failure; the sentence still goes to stderr for people. ``watch``
    writes JSON Lines, so its error is one line as well.
    """
    if getattr(args, "format", None) != "json":
        return
    document: dict[str, Any] = {"command": args.command}
    if url:
        document["url"] = url
    if isinstance(exc, errors.CommandError):
        document.update(exc.details)
    document.update(status="error", error=message, exit_code=int(code))
    if args.command == "watch":
        text = json.dumps(document, sort_keys=True, default=str)
    else:
        text = render.dumps(document)
    try:
        out.write(scrub(text) + "\n")
        out.flush()
    except (BrokenPipeError, ValueError):
        # Nobody reads stdout any more: stderr still has the sentence.
        pass


def _quiet_library_warnings() -> None:
    """Keep warnings meant for developers of other projects off stderr.

    futurist (under tooz) imports eventlet when it is installed, and
    eventlet 0.40+ then warns that it is deprecated: ten lines before every
    command's output, about nothing the operator can change. ``-W`` or
    ``PYTHONWARNINGS`` still show them.
    """
    if not sys.warnoptions:
        warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")


def run(argv: Sequence[str] | None = None, out: IO[str] | None = None) -> int:
    """Parse ``argv`` and run the subcommand; returns the exit code."""
    _quiet_library_warnings()
    out = out or sys.stdout
    err = sys.stderr
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help(err)
        return errors.ExitCode.USAGE
    scrub = sg_backend.Scrubber(sg_backend.secrets_in_url(args.url))
    _setup_logging(args.verbose, scrub)
    url: str | None = None
    try:
        conf = sg_backend.load_conf(args.config_file, args.url, _overrides(args))
        raw_url = conf.servicegroup_tooz_url
        scrub.add(sg_backend.secrets_in_url(raw_url))
        from servicegroup.drivers import tooz as tooz_driver

        url = tooz_driver.redact_url(str(raw_url))
        module_name, function, _ = COMMANDS[args.command]
        command = getattr(importlib.import_module(module_name), function)
        return int(command(args, conf, out))
    except KeyboardInterrupt:
        _fail("interrupted", scrub, err)
        _json_error(args, out, scrub, "interrupted", errors.ExitCode.INTERRUPTED, url)
        return errors.ExitCode.INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`servicegroup watch g | head -1`): not an
        # error. Point stdout at /dev/null so the interpreter's final flush
        # does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return errors.ExitCode.OK
    except Exception as exc:  # noqa: BLE001 - every failure becomes a sentence
        message, code = errors.explain(exc, url)
        _fail(message, scrub, err)
        _json_error(args, out, scrub, message, code, url, exc)
        if args.verbose:
            err.write(scrub("".join(traceback.format_exception(exc))))
        return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit code."""
    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
