"""Configuration options of servicegroup (oslo.config).

Options live in ``[DEFAULT]`` under Nova's names so an existing ``nova.conf``
keeps working; new tuning options carry the ``servicegroup_`` prefix.
:func:`register_opts` tolerates a host service (Nova) that registered
``report_interval`` or ``service_down_time`` itself: its definitions win.

The legacy inputs of the deprecated ``mc`` and ``zk`` drivers
(:data:`legacy_opts`, :data:`zookeeper_opts`) are marked
``deprecated_for_removal``; :mod:`servicegroup.drivers.legacy` turns them
into tooz URLs.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Mapping
from typing import Any

from oslo_config import cfg

LOG = logging.getLogger(__name__)

#: Where the embedded ``file://`` backend keeps its state unless configured.
DEFAULT_STATE_PATH = os.path.join(
    os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"),
    "servicegroup",
)

#: How much longer than ``report_interval`` ``service_down_time`` becomes
#: when it was configured too short (what Nova does).
DOWN_TIME_FACTOR = 2.5

service_group_opts: list[cfg.Opt] = [
    cfg.StrOpt(
        "servicegroup_driver",
        default="tooz",
        help="The driver that tells which services are alive. Plugins are "
        "found in the 'servicegroup.drivers' entry point namespace; 'tooz' "
        "is the supported one, 'mc' and 'zk' are deprecated shims that "
        "delegate to it.",
    ),
    cfg.StrOpt(
        "servicegroup_tooz_url",
        default="file://$servicegroup_state_path/tooz",
        secret=True,
        help="The tooz coordination backend URL, for example "
        "'kazoo://zk1:2181', 'etcd3+http://etcd:2379', "
        "'redis://redis:6379', 'memcached://memcached:11211' or "
        "'file:///var/lib/servicegroup'. The default keeps membership in a "
        "local directory, which only works for services on one host.",
    ),
    cfg.StrOpt(
        "servicegroup_state_path",
        default=DEFAULT_STATE_PATH,
        sample_default="~/.local/state/servicegroup",
        help="Directory for local state, used by the default file:// backend URL.",
    ),
    cfg.FloatOpt(
        "report_interval",
        default=10.0,
        min=0.01,
        help="Seconds between two heartbeats of a joined service.",
    ),
    cfg.FloatOpt(
        "service_down_time",
        default=60.0,
        min=0.01,
        help="Seconds without a heartbeat after which a service is "
        "considered down. It must be longer than report_interval; when it "
        "is not, 2.5 times report_interval is used instead.",
    ),
    cfg.FloatOpt(
        "servicegroup_refresh_interval",
        default=1.0,
        min=0.01,
        help="Seconds between two refreshes of the local view of a group "
        "that answers is_up without network traffic. A graceful leave is "
        "seen by observers within this time.",
    ),
    cfg.FloatOpt(
        "servicegroup_backend_timeout",
        default=5.0,
        min=0.01,
        help="Seconds to wait for one backend operation, and for the first "
        "view of a group, before giving up on it.",
    ),
    cfg.FloatOpt(
        "servicegroup_retry_max_interval",
        default=10.0,
        min=0.01,
        help="Upper bound, in seconds, of the exponential backoff between "
        "attempts to reach a backend that is down. report_interval is used "
        "when it is smaller, so a recovered backend sees every member again "
        "within one report_interval.",
    ),
]


#: Why the legacy options exist and what replaces them (shown in the sample).
_LEGACY_REASON = (
    "Read only by the deprecated '{driver}' servicegroup driver, which "
    "now builds a tooz URL from it. Set servicegroup_driver = tooz and "
    "servicegroup_tooz_url = {example} instead (see the migration guide)."
)

#: Nova's own ``[DEFAULT]`` options read by the deprecated ``mc`` driver.
legacy_opts: list[cfg.Opt] = [
    cfg.ListOpt(
        "memcached_servers",
        # Nova's definition (memorycache.py): None means an in-process
        # cache, which the mc driver refuses since it cannot be shared.
        default=None,
        deprecated_for_removal=True,
        deprecated_reason=_LEGACY_REASON.format(
            driver="mc", example="memcached://HOST:11211"
        ),
        help="Memcached servers, as a list of HOST:PORT, used by the "
        "deprecated 'mc' servicegroup driver. tooz keeps a group in one key "
        "on one server, so only the first server is used: put twemproxy in "
        "front of several servers and list the proxy alone.",
    ),
]

ZOOKEEPER_GROUP = "zookeeper"


def _zookeeper_group() -> cfg.OptGroup:
    # A new object each time: ConfigOpts.register_group makes a shallow
    # copy, so one shared OptGroup would share its options (and their
    # overrides) between every ConfigOpts it was registered in.
    return cfg.OptGroup(
        ZOOKEEPER_GROUP,
        title="ZooKeeper servicegroup driver options (deprecated)",
        help="Options of the deprecated 'zk' servicegroup driver, which now "
        "builds a kazoo:// tooz URL from them.",
    )


#: Nova's ``[zookeeper]`` options, read by the deprecated ``zk`` driver.
zookeeper_opts: list[cfg.Opt] = [
    cfg.StrOpt(
        "address",
        deprecated_for_removal=True,
        deprecated_reason=_LEGACY_REASON.format(
            driver="zk", example="kazoo://HOST1:2181?hosts=HOST2:2181"
        ),
        help="The ZooKeeper servers, as HOST1:PORT,HOST2:PORT,... "
        "Every server is given to the tooz kazoo driver.",
    ),
    cfg.IntOpt(
        "recv_timeout",
        default=4000,
        deprecated_for_removal=True,
        deprecated_reason=_LEGACY_REASON.format(
            driver="zk", example="kazoo://HOST:2181?timeout=4"
        ),
        help="The ZooKeeper session timeout, in milliseconds (rounded up to "
        "whole seconds). A service is down once its session expires, so "
        "this, not service_down_time, is how long a silent service stays "
        "up, as with the Liberty driver.",
    ),
    cfg.StrOpt(
        "sg_prefix",
        default="/servicegroups",
        deprecated_for_removal=True,
        deprecated_reason=_LEGACY_REASON.format(
            driver="zk", example="kazoo://HOST:2181?namespace=servicegroups"
        ),
        help="The znode under which groups are kept; it becomes the tooz "
        "namespace (groups are its children).",
    ),
    cfg.IntOpt(
        "sg_retry_interval",
        default=5,
        deprecated_for_removal=True,
        deprecated_reason="Read only by the deprecated 'zk' servicegroup "
        "driver. Set servicegroup_retry_max_interval instead (see the "
        "migration guide).",
        help="Seconds to wait before trying to join again after the "
        "connection to ZooKeeper is lost. Used as "
        "servicegroup_retry_max_interval when it is smaller.",
    ),
]


@dataclasses.dataclass(frozen=True)
class Timing:
    """The timing a driver runs with, after validation and adjustment."""

    report_interval: float
    service_down_time: float
    refresh_interval: float
    backend_timeout: float
    retry_max_interval: float


#: Options Nova defines itself (``nova/conf/service.py`` and
#: ``nova/conf/servicegroup.py``), with its own types, defaults and choices.
NOVA_OPTION_NAMES = frozenset(
    {"servicegroup_driver", "report_interval", "service_down_time"}
)


def _register(conf: cfg.ConfigOpts, opt: cfg.Opt, group: str | None = None) -> bool:
    """Register ``opt``; False when the host defined it differently."""
    try:
        conf.register_opt(opt, group=group)
    except cfg.DuplicateOptError:
        where = f"[{group}] " if group else ""
        LOG.debug("Option %s%s is already registered by the host", where, opt.name)
        return False
    return True


def register_opts(conf: cfg.ConfigOpts) -> frozenset[str]:
    """Register the servicegroup options into ``conf``.

    An option the host already registered under the same name (Nova's
    ``report_interval`` and ``service_down_time``) is kept as it is.

    :returns: the names of the ``[DEFAULT]`` options the host defined
        differently, whose definitions are in force.
    """
    # Nova (and other hosts) may define memcached_servers and [zookeeper]
    # themselves, with other help texts or defaults: theirs win too.
    host_owned = frozenset(
        opt.name
        for opt in [*service_group_opts, *legacy_opts]
        if not _register(conf, opt)
    )
    if ZOOKEEPER_GROUP not in conf:
        conf.register_group(_zookeeper_group())
    for opt in zookeeper_opts:
        _register(conf, opt, ZOOKEEPER_GROUP)
    return host_owned


def register_host_opts(conf: cfg.ConfigOpts) -> None:
    """Register only the options a host like Nova does not define itself.

    Nova registers ``servicegroup_driver``, ``report_interval`` and
    ``service_down_time`` when ``nova.conf`` is imported; registering ours
    as well would make one of the two raise ``DuplicateOptError``,
    whichever comes second. So only the ``servicegroup_*`` options are
    registered; :func:`with_host_defaults` reads the others.
    """
    for opt in service_group_opts:
        if opt.name not in NOVA_OPTION_NAMES:
            _register(conf, opt)


class ConfOverlay:
    """The host's options with a few values replaced, for one driver.

    A driver reads its options from ``conf``; this gives it other values
    without overriding the host's ConfigOpts, which other code (Nova's)
    shares.
    """

    def __init__(self, conf: cfg.ConfigOpts, values: Mapping[str, Any]) -> None:
        self._conf = conf
        self._values = dict(values)

    def __getattr__(self, name: str) -> Any:
        if name in self._values:
            return self._values[name]
        return getattr(self._conf, name)

    def __getitem__(self, name: str) -> Any:
        if name in self._values:
            return self._values[name]
        return self._conf[name]


def with_host_defaults(conf: cfg.ConfigOpts) -> cfg.ConfigOpts:
    """``conf``, with our defaults for the host's options it does not have.

    For a host that is not Nova and registered none of Nova's names; they
    are read, never registered (see :func:`register_host_opts`).
    """
    missing = {
        opt.name: opt.default
        for opt in service_group_opts
        if opt.name in NOVA_OPTION_NAMES and opt.name not in conf
    }
    if not missing:
        return conf
    return ConfOverlay(conf, missing)  # type: ignore[return-value]


def list_opts() -> list[tuple[str | cfg.OptGroup, list[cfg.Opt]]]:
    """The options by group, for ``oslo-config-generator``."""
    return [
        ("DEFAULT", [*service_group_opts, *legacy_opts]),
        (_zookeeper_group(), list(zookeeper_opts)),
    ]


def share_adjusted_down_time(conf: cfg.ConfigOpts) -> None:
    """Fix a ``service_down_time`` too short on ``conf`` itself.

    What Nova's servicegroup API does, so that the host and the library
    agree on one value: ``service_down_time <= report_interval`` becomes
    ``2.5 * report_interval`` as an override, with a warning.
    """
    report_interval = float(conf.report_interval)
    service_down_time = float(conf.service_down_time)
    if service_down_time > report_interval:
        return
    adjusted = report_interval * DOWN_TIME_FACTOR
    LOG.warning(
        "service_down_time (%s s) must be longer than report_interval "
        "(%s s); setting it to %s s",
        service_down_time,
        report_interval,
        adjusted,
    )
    try:
        conf.set_override("service_down_time", adjusted)
    except ValueError:
        # Nova's option is an IntOpt: round up, never below 2.5 reports.
        conf.set_override("service_down_time", math.ceil(adjusted))


def timing_from_conf(conf: cfg.ConfigOpts) -> Timing:
    """Read the timing options, fixing a ``service_down_time`` too short.

    A service that is declared down before it had a chance to report twice
    would flap, so ``service_down_time <= report_interval`` becomes
    ``2.5 * report_interval`` with a warning, as Nova does.
    """
    report_interval = float(conf.report_interval)
    service_down_time = float(conf.service_down_time)
    if service_down_time <= report_interval:
        adjusted = report_interval * DOWN_TIME_FACTOR
        LOG.warning(
            "service_down_time (%s s) must be longer than report_interval "
            "(%s s); using %s s instead",
            service_down_time,
            report_interval,
            adjusted,
        )
        service_down_time = adjusted
    return Timing(
        report_interval=report_interval,
        service_down_time=service_down_time,
        refresh_interval=float(conf.servicegroup_refresh_interval),
        backend_timeout=float(conf.servicegroup_backend_timeout),
        retry_max_interval=min(
            float(conf.servicegroup_retry_max_interval), report_interval
        ),
    )
