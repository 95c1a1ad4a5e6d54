"""Configuration, the API and bounded backend calls for the subcommands.

Configuration comes from oslo.config files (``--config-file``, else
oslo.config's usual search for ``servicegroup.conf``), with ``--url``
overriding ``servicegroup_tooz_url``, so the command sees exactly what a
service configured the same way sees.

Every call that may touch the network runs under a deadline: some tooz
drivers retry connecting far longer than ``servicegroup_backend_timeout``
(redis-py retries a refused connection for about a minute; kazoo waits a
whole session timeout), and an operator's command, or a monitoring probe,
must answer in bounded time whatever the backend does.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import re
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from oslo_config import cfg

from servicegroup import api as sg_api
from servicegroup import conf as sg_conf
from servicegroup import exceptions
from servicegroup.cmd import errors

LOG = logging.getLogger(__name__)

T = TypeVar("T")

#: Extra time given to a call beyond the backend timeout, so the library's
#: own (more precise) timeout error wins when it comes.
DEADLINE_MARGIN = 0.5


def load_conf(
    config_files: Sequence[str] | None,
    url: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> cfg.ConfigOpts:
    """Options from ``config_files`` (or oslo's search), then overrides.

    :raises cfg.Error: a file is missing or not valid.
    """
    conf = cfg.ConfigOpts()
    sg_conf.register_opts(conf)
    if config_files:
        conf(
            args=[],
            project="servicegroup",
            default_config_files=list(config_files),
            default_config_dirs=[],
        )
    else:
        conf(args=[], project="servicegroup")
    if url is not None:
        conf.set_override("servicegroup_tooz_url", url)
    for name, value in (overrides or {}).items():
        conf.set_override(name, value)
    return conf


def secrets_in_url(url: object) -> list[str]:
    """The secrets a URL carries: its password and secret query values.

    Both the text as written and its percent-decoded form are returned,
    since either may end up in a message.
    """
    # Imported here: the tooz package imports futurist, which imports
    # eventlet, whose deprecation warning the command silences only once it
    # runs (cmd.main._quiet_library_warnings).
    from servicegroup.drivers.tooz import urls as tooz_urls

    if not isinstance(url, str):
        return []
    try:
        parts = urllib.parse.urlsplit(url)
        found = [parts.password or ""]
        for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
            if tooz_urls.is_secret_option(key):
                found.append(value)
    except ValueError:
        # An unparseable URL may still hold a password between ':' and '@'.
        match = re.search(r"://[^/@:]*:([^/@]*)@", url)
        found = [match.group(1)] if match else []
    secrets: set[str] = set()
    for value in found:
        if value:
            secrets.add(value)
            secrets.add(urllib.parse.unquote(value))
            secrets.add(urllib.parse.quote(value, safe=""))
    # Longest first, so a secret containing another is masked whole.
    return sorted(secrets, key=len, reverse=True)


class Scrubber:
    """Masks known secrets in any text the command writes."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Mask these too."""
        merged = set(self._secrets) | {s for s in secrets if s}
        self._secrets = sorted(merged, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


class ScrubbingFormatter(logging.Formatter):
    """A log formatter whose output, tracebacks included, holds no secret."""

    def __init__(self, scrub: Scrubber, fmt: str, datefmt: str | None = None) -> None:
        super().__init__(fmt, datefmt)
        self._scrub = scrub

    def format(self, record: logging.LogRecord) -> str:
        return self._scrub(super().format(record))


def backend_timeout(conf: cfg.ConfigOpts) -> float:
    """``servicegroup_backend_timeout`` as a float."""
    return float(conf.servicegroup_backend_timeout)


def call_with_deadline(fn: Callable[[], T], timeout: float, what: str) -> T:
    """``fn()``, or BackendTimeout if it has not returned within ``timeout``.

    ``fn`` runs on a daemon thread that is abandoned when the deadline
    passes: a client library stuck retrying must not keep the command (or
    the interpreter's exit) waiting.
    """
    outcome: list[tuple[bool, Any]] = []
    done = threading.Event()

    def run() -> None:
        try:
            outcome.append((True, fn()))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            outcome.append((False, exc))
        finally:
            done.set()

    threading.Thread(target=run, name=f"servicegroup-cli-{what}", daemon=True).start()
    if not done.wait(timeout):
        raise exceptions.BackendTimeout(f"{what}: no answer within {timeout:g} s")
    ok, value = outcome[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


class Backend:
    """The API of one command run, with deadlines on its network calls."""

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self.conf = conf
        self.timeout = backend_timeout(conf)
        self.api = sg_api.API(conf=conf)
        #: The effective settings, password masked.
        self.settings = dict(self.api.describe())
        self.url = str(self.settings.get("url", ""))

    def call(self, fn: Callable[[], T], what: str, timeout: float | None = None) -> T:
        """``fn()`` within the backend timeout (plus a margin)."""
        limit = self.timeout + DEADLINE_MARGIN if timeout is None else timeout
        return call_with_deadline(fn, limit, what)

    def groups(self) -> list[str]:
        """Every group on the backend (a network call)."""
        return self.call(self.api.get_groups, "listing groups")

    def require_group(self, group_id: str) -> None:
        """Raise CommandError (exit 3) unless ``group_id`` exists.

        The message names the group and at most a few groups with a close
        name (a typo), never the whole list: a backend may hold hundreds.
        """
        groups = self.groups()
        if group_id in groups:
            return
        close = difflib.get_close_matches(group_id, groups, n=3, cutoff=0.75)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        raise errors.CommandError(
            f"there is no group {group_id!r} on {self.url}{hint}",
            errors.ExitCode.UNKNOWN_GROUP,
        )

    def close(self, timeout: float | None = None) -> None:
        """Stop the API (leaving what this process joined), bounded in time.

        Waits at most ``timeout`` seconds (the backend timeout plus a margin
        when None); what is not done by then is abandoned.
        """
        limit = self.timeout + DEADLINE_MARGIN if timeout is None else timeout
        try:
            call_with_deadline(self.api.stop, limit, "stopping")
        except exceptions.ServiceGroupError as exc:
            LOG.debug("Ignoring an error while stopping: %s", exc)


#: How long an interrupted command waits for the API to stop. Ctrl-C means
#: now: the one-shot commands hold no member whose leave could be lost, and
#: a backend that does not answer would otherwise keep the operator waiting
#: a whole backend timeout.
INTERRUPTED_STOP_TIMEOUT = 0.5


@contextlib.contextmanager
def open_backend(conf: cfg.ConfigOpts) -> Iterator[Backend]:
    """A :class:`Backend` stopped on the way out, however the block ends."""
    backend = Backend(conf)
    try:
        yield backend
    except KeyboardInterrupt:
        backend.close(INTERRUPTED_STOP_TIMEOUT)
        raise
    except BaseException:
        backend.close()
        raise
    backend.close()
