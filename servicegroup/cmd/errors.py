"""Exit codes of the ``servicegroup`` command and the sentences for errors.

Every failure the command reports goes through :func:`explain`, which turns
an exception into one line an operator can act on and the exit code that
goes with it. The codes are part of the command's interface (monitoring
and scripts branch on them), so they are listed once, here, and printed in
``--help`` from :data:`EXIT_CODES_HELP`.
"""

from __future__ import annotations

import enum
import re

from oslo_config import cfg

from servicegroup import exceptions


class ExitCode(enum.IntEnum):
    """What the process exit status means."""

    #: It worked (``check``: the backend answered).
    OK = 0
    #: The backend could not be reached, did not answer in time or failed;
    #: or the demo did not see what it expected.
    FAILED = 1
    #: The command line or the configuration is wrong: bad arguments, bad
    #: URL, unknown driver or backend, unreadable configuration file.
    USAGE = 2
    #: The group does not exist on the backend (``members``, ``watch``).
    UNKNOWN_GROUP = 3
    #: Interrupted (Ctrl-C) before a one-shot command finished.
    INTERRUPTED = 130


#: The exit codes as ``--help`` and the documentation show them.
EXIT_CODES_HELP = """\
exit status:
  0    success (check: the backend answered)
  1    the backend is unreachable, timed out or failed (check failed),
       or the demo did not see what it expected
  2    usage or configuration error: bad arguments, bad URL, unknown
       driver or backend, unreadable configuration file
  3    the group does not exist on the backend (members, watch)
  130  interrupted (Ctrl-C) before a one-shot command or the demo
       finished

join, watch and demo stop on SIGINT (Ctrl-C) or SIGTERM; join and watch
then exit 0 (join leaves its group first)."""


class CommandError(Exception):
    """A failure the command explains in one sentence and an exit code."""

    def __init__(
        self,
        message: str,
        code: ExitCode = ExitCode.FAILED,
        details: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        #: What the command knew when it failed (``check``: the backend),
        #: added to the error document of ``--format json``.
        self.details = dict(details or {})


def _without_trailing_period(text: str) -> str:
    # Client libraries end messages with '.', or with ': ' and nothing
    # after it when their own message is empty.
    return text.rstrip().rstrip(":.").rstrip()


#: How oslo.config words a bad value: ``Value for option NAME from
#: LocationInfo(location=<Locations.user: ...>, detail='FILE') is not valid:
#: WHY`` (the location is a repr; older releases put a plain word there).
_BAD_VALUE = re.compile(
    r"Value for option (?P<option>\S+) from (?P<where>.*?) is not valid: (?P<why>.*)",
    re.DOTALL,
)
_LOCATION = re.compile(
    r"LocationInfo\(location=<Locations\.(?P<kind>\w+)[^>]*>, detail=(?P<detail>.*)\)"
)
#: Where an option's value came from, for oslo.config's location kinds
#: other than a file.
_SOURCES = {
    "command_line": "the command line",
    "environment": "the environment variable",
    "opt_default": "the default",
    "set_default": "the default",
    "set_override": "an override",
}


def _bad_value(text: str) -> str | None:
    """oslo.config's bad-value message as a sentence naming file and option."""
    match = _BAD_VALUE.fullmatch(text.strip())
    if match is None:
        return None
    option, where, why = match["option"], match["where"], match["why"]
    location = _LOCATION.fullmatch(where)
    if location is not None:
        detail = location["detail"].strip()
        if len(detail) >= 2 and detail[0] == detail[-1] and detail[0] in "'\"":
            detail = detail[1:-1]
        kind = location["kind"]
        if kind == "user" and detail:
            where = f"the configuration file {detail}"
        else:
            where = _SOURCES.get(kind, kind.replace("_", " "))
            if detail and detail != "None":
                where = f"{where} {detail}"
    why = _without_trailing_period(why)
    return f"{where} sets {option} to a value that is not valid: {why}"


def explain(exc: BaseException, url: str | None = None) -> tuple[str, ExitCode]:
    """One sentence for ``exc`` and the exit code it means.

    :param url: the backend URL, already redacted, to say which backend
        failed when the exception does not.
    """
    if isinstance(exc, CommandError):
        return str(exc), exc.code
    detail = _without_trailing_period(str(exc))
    where = f" at {url}" if url and url not in detail else ""
    if isinstance(exc, exceptions.UnknownDriver):
        return f"the driver is not usable: {detail}", ExitCode.USAGE
    if isinstance(exc, exceptions.UnknownBackend):
        return f"the backend URL is not usable: {detail}", ExitCode.USAGE
    if isinstance(exc, exceptions.MissingDependency):
        return f"the backend is not installed: {detail}", ExitCode.USAGE
    if isinstance(exc, exceptions.ConfigurationError):
        return f"the backend URL is not valid: {detail}", ExitCode.USAGE
    if isinstance(exc, exceptions.InvalidArgument):
        return f"invalid argument: {detail}", ExitCode.USAGE
    if isinstance(exc, exceptions.BackendTimeout):
        return f"the backend{where} did not answer in time: {detail}", ExitCode.FAILED
    if isinstance(exc, exceptions.BackendUnavailable):
        return f"cannot reach the backend{where}: {detail}", ExitCode.FAILED
    if isinstance(exc, exceptions.BackendError):
        return f"the backend{where} failed: {detail}", ExitCode.FAILED
    if isinstance(exc, cfg.ConfigFilesNotFoundError):
        files = ", ".join(exc.config_files)
        return (
            f"cannot read the configuration file {files}: it is missing or "
            "not readable",
            ExitCode.USAGE,
        )
    if isinstance(exc, cfg.ConfigSourceValueError):
        sentence = _bad_value(str(exc))
        if sentence is not None:
            return sentence, ExitCode.USAGE
        return f"the configuration is not valid: {detail}", ExitCode.USAGE
    if isinstance(exc, cfg.ConfigFileParseError):
        return f"the configuration is not valid: {detail}", ExitCode.USAGE
    if isinstance(exc, cfg.Error):
        return f"the configuration is not valid: {detail}", ExitCode.USAGE
    if isinstance(exc, exceptions.ServiceGroupError):
        return detail, ExitCode.FAILED
    return (
        f"unexpected error: {type(exc).__name__}: {detail} (run with --verbose "
        "for the traceback)",
        ExitCode.FAILED,
    )
