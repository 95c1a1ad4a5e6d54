"""A local directory (``file://``): one host only.

What differs from the other backends, all of it here: the URL must name a
directory; the timing is the file driver's ``timeout`` (whole seconds: a
member file's age); our driver adds the ``update_capabilities`` tooz's
lacks and deletes a group whose member files all expired; and a directory
that does not exist yet is created by tooz, which is said once it happened.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import tempfile
import time
import urllib.parse
import weakref
from typing import Any

from tooz import coordination
from tooz import utils as tooz_utils
from tooz.drivers import file as tooz_file

from servicegroup import conf as sg_conf
from servicegroup import exceptions
from servicegroup.drivers.tooz import compat, server_limits
from servicegroup.drivers.tooz.backends import base

LOG = logging.getLogger(__name__)

# Fail at import, naming what is missing, if this tooz lacks the private
# names the driver below and the base policy use (the optional drivers check
# theirs when they are first built).
compat.check_core()


def _fresh_barriers_in_child() -> None:
    # tooz's file driver keeps one barrier per lock path for all its
    # coordinators in a process (a class attribute), held while a call runs
    # under the directory's lock. A thread of the parent may hold one at the
    # fork; that thread does not exist in the child, whose new coordinators
    # would wait on it for ever (an observer forked during the parent's
    # refresh never answered again). The parent's coordinators, orphaned in
    # the child, keep the old ones.
    tooz_file.FileDriver._barriers = weakref.WeakValueDictionary()


os.register_at_fork(after_in_child=_fresh_barriers_in_child)


class _FileDriver(tooz_file.FileDriver):
    """tooz's file driver plus the ``update_capabilities`` it lacks.

    The heartbeat rewrites the member record, so the file's mtime (which the
    driver uses for liveness) and the stored timestamp move together.
    """

    def update_capabilities(
        self, group_id: bytes, capabilities: coordination.Capabilities | None
    ) -> coordination.CoordAsyncResult[None]:
        group_dir = os.path.join(self._group_dir, self._make_filesystem_safe(group_id))
        me_path = os.path.join(group_dir, f"{self._safe_member_id}.raw")

        def _update() -> None:
            with self._driver_lock:
                if not os.path.exists(os.path.join(group_dir, ".metadata")):
                    raise coordination.GroupNotCreated(group_id)
                try:
                    with open(me_path, "rb") as fh:
                        details = tooz_utils.loads(fh.read())
                except FileNotFoundError:
                    raise coordination.MemberNotJoined(
                        group_id, self._member_id
                    ) from None
                details["capabilities"] = capabilities
                fd, tmp_path = tempfile.mkstemp(".tooz", dir=self._tmpdir)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(tooz_utils.dumps(details))
                os.replace(tmp_path, me_path)

        return tooz_file.FileFutureResult(self._executor.submit(_update))

    def delete_group(self, group_id: bytes) -> coordination.CoordAsyncResult[None]:
        # tooz refuses to delete a group while any member file is left, even
        # one whose member expired long ago (a killed process never removes
        # its file): those are removed first, as other backends expire them.
        group_dir = os.path.join(self._group_dir, self._make_filesystem_safe(group_id))
        with self._driver_lock:
            try:
                entries = os.listdir(group_dir)
            except FileNotFoundError:
                entries = []
            for entry in entries:
                path = os.path.join(group_dir, entry)
                if entry.endswith(".raw") and not self._is_alive(path):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
        return super().delete_group(group_id)

    def _is_alive(self, path: str) -> bool:
        # The same rule as tooz's get_members: written within the timeout.
        try:
            age = time.time() - os.stat(path).st_mtime
        except FileNotFoundError:
            return False
        return 0 <= age <= self._timeout


class FileTerms(server_limits.ServerTerms):
    """The file driver judges a member by its file's age."""

    expires_by = "the age of their file"


class FileBackend(base.Backend):
    """A directory shared by the processes of one host."""

    schemes = ("file",)
    membership_option = "timeout"
    own_executor = True
    terms = FileTerms()

    def __init__(
        self, url: str, parts: urllib.parse.SplitResult, timing: sg_conf.Timing
    ) -> None:
        super().__init__(url, parts, timing)
        #: A directory that does not exist yet: tooz creates it, with its
        #: missing parents, and that is said once it happened.
        self._will_create = parts.path if not os.path.isdir(parts.path) else None

    @classmethod
    def check_url(cls, parts: urllib.parse.SplitResult, shown: str) -> None:
        if not parts.path:
            raise exceptions.InvalidURL(
                f"{shown!r} has no directory; use file:///absolute/path"
            )

    def timing_options(self) -> dict[str, Any]:
        return {"timeout": math.ceil(self.timing.service_down_time)}

    @classmethod
    def driver_class(cls) -> type[base.Coordinator]:
        return _FileDriver

    def started(self, coord: base.Coordinator) -> None:
        if self._will_create is not None:
            created, self._will_create = self._will_create, None
            LOG.warning(
                "The file:// backend directory %s did not exist and was created "
                "(with any missing parent): every service on this host must "
                "use this same directory to see each other",
                created,
            )
