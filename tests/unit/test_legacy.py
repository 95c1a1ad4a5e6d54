"""The deprecated mc and zk shims: URLs built, warnings, and what they run.

Nothing here talks to a server: building a driver does not connect (the
first join or question does), so a shim is checked through what it built.
The real backends are in tests/functional/test_legacy.py.
"""

from __future__ import annotations

import logging
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from oslo_config import cfg
from tooz import coordination

import servicegroup
from servicegroup import conf as sg_conf
from servicegroup import exceptions
from servicegroup.drivers import legacy
from servicegroup.drivers import tooz as tooz_driver


def make_conf(**overrides: Any) -> cfg.ConfigOpts:
    """Options registered and parsed; ``zookeeper__x`` sets ``[zookeeper] x``."""
    conf = cfg.ConfigOpts()
    sg_conf.register_opts(conf)
    conf([], project="servicegroup", default_config_files=[])
    for name, value in overrides.items():
        group, _, opt = name.rpartition("__")
        conf.set_override(opt, value, group=group or None)
    return conf


def line_of(marker: str) -> int:
    """The line of this file holding ``marker`` (where a warning must point)."""
    for number, line in enumerate(Path(__file__).read_text().splitlines(), 1):
        if marker in line and "line_of(" not in line:
            return number
    raise AssertionError(f"{marker} not found")


def deprecations(record: pytest.WarningsRecorder) -> list[warnings.WarningMessage]:
    """The shim's warnings among those recorded (a ResourceWarning from a
    socket collected meanwhile may be recorded too)."""
    return [
        w
        for w in record
        if issubclass(w.category, DeprecationWarning)
        and "is deprecated for removal" in str(w.message)
    ]


def legacy_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING and r.name.startswith("servicegroup")
    ]


@pytest.fixture
def stop_later() -> Iterator[list[Any]]:
    """Drivers and APIs to stop at the end of the test."""
    things: list[Any] = []
    yield things
    for thing in things:
        thing.stop()


# -- memcached URLs -------------------------------------------------------------


@pytest.mark.parametrize(
    ("servers", "url"),
    [
        (["10.0.0.1:11211"], "memcached://10.0.0.1:11211"),
        (["mc.example.org"], "memcached://mc.example.org:11211"),
        ([" 10.0.0.1:22122 "], "memcached://10.0.0.1:22122"),
        (["inet:10.0.0.1:11211"], "memcached://10.0.0.1:11211"),
        (["inet6:[2001:db8::1]:11211"], "memcached://[2001:db8::1]:11211"),
        (["[::1]"], "memcached://[::1]:11211"),
        ("10.0.0.1:11211,10.0.0.2:11211", "memcached://10.0.0.1:11211"),
    ],
)
def test_memcached_url(servers: Any, url: str) -> None:
    assert legacy.memcached_url(servers)[0] == url


def test_memcached_url_uses_the_first_server_and_names_the_others() -> None:
    url, ignored = legacy.memcached_url(["a:1", "b", "[::1]:3"])
    assert url == "memcached://a:1"
    assert ignored == ["b:11211", "[::1]:3"]


@pytest.mark.parametrize(
    ("servers", "complaint"),
    [
        (None, "in-process cache"),
        ([], "in-process cache"),
        (["", " "], "in-process cache"),
        (["unix:/run/memcached.sock"], "Unix socket"),
        (["/run/memcached.sock"], "Unix socket"),
        (["host:port"], "not HOST:PORT"),
        (["::1:11211"], "not HOST:PORT"),
        (["user@host:11211"], "not HOST:PORT"),
    ],
)
def test_memcached_url_rejects(servers: Any, complaint: str) -> None:
    with pytest.raises(exceptions.ConfigurationError, match=complaint):
        legacy.memcached_url(servers)


# -- ZooKeeper URLs -------------------------------------------------------------


def test_zookeeper_url_liberty_defaults() -> None:
    url = legacy.zookeeper_url("zk1:2181,zk2:2181,zk3:2181")
    assert url == (
        "kazoo://zk1:2181?hosts=zk2:2181&hosts=zk3:2181&timeout=4"
        "&namespace=servicegroups"
    )


@pytest.mark.parametrize(
    ("recv_timeout", "timeout"),
    [(4000, 4), (1500, 2), (1, 1), (60000, 60), (0, None), (-5, None), (None, None)],
)
def test_session_timeout_rounds_up_to_whole_seconds(
    recv_timeout: int | None, timeout: int | None
) -> None:
    assert legacy.session_timeout_seconds(recv_timeout) == timeout
    url = legacy.zookeeper_url("zk1", recv_timeout)
    if timeout is None:
        assert "timeout=" not in url
    else:
        assert f"timeout={timeout}&" in url


@pytest.mark.parametrize(
    ("prefix", "namespace"),
    [
        ("/servicegroups", "servicegroups"),
        ("servicegroups", "servicegroups"),
        ("/nova/servicegroups/", "nova/servicegroups"),
    ],
)
def test_zookeeper_namespace(prefix: str, namespace: str) -> None:
    assert legacy.zookeeper_namespace(prefix) == namespace


@pytest.mark.parametrize("prefix", ["/", "", None, "/a//b"])
def test_zookeeper_namespace_rejects(prefix: str | None) -> None:
    with pytest.raises(exceptions.ConfigurationError, match="sg_prefix"):
        legacy.zookeeper_namespace(prefix)


@pytest.mark.parametrize(
    ("address", "complaint"),
    [
        (None, "needs \\[zookeeper\\] address"),
        (" , ", "needs \\[zookeeper\\] address"),
        ("zk1:2181,zk2:2181/nova", "chroot"),
        ("zk1:twentyone", "not HOST:PORT"),
    ],
)
def test_zookeeper_url_rejects(address: str | None, complaint: str) -> None:
    with pytest.raises(exceptions.ConfigurationError, match=complaint):
        legacy.zookeeper_url(address)


def test_zookeeper_url_reaches_kazoo_intact() -> None:
    """tooz gives kazoo every host, the session timeout and the namespace."""
    url = legacy.zookeeper_url("zk1:2181, zk2:2182,[::1]:2183", 2500, "/nova/sg")
    coord = coordination.get_coordinator(url, b"member")  # not started
    assert coord._coord.hosts == [("zk1", 2181), ("zk2", 2182), ("::1", 2183)]
    assert coord._coord._session_timeout == 3000
    assert coord._base_path() == "/nova/sg"
    assert coord._path_group(b"compute") == "/nova/sg/compute"


def test_built_urls_pass_the_tooz_driver_checks() -> None:
    tooz_driver.parse_url(legacy.memcached_url(["[::1]:1"])[0])
    tooz_driver.parse_url(legacy.zookeeper_url("a:1,b:2"))


# -- the drivers, through servicegroup.API --------------------------------------


def test_mc_through_the_api(
    caplog: pytest.LogCaptureFixture, stop_later: list[Any]
) -> None:
    conf = make_conf(
        servicegroup_driver="mc",
        memcached_servers=["10.0.0.1:11211"],
        service_down_time=45.0,
    )
    with pytest.warns(DeprecationWarning) as record:
        api = servicegroup.API(conf=conf)  # mc-api-line
    stop_later.append(api)
    assert isinstance(api.driver, legacy.MemcachedDriver)
    [warning] = deprecations(record)
    # stevedore and servicegroup.api are skipped: the warning names the
    # line that asked for the API.
    assert warning.filename == __file__
    assert warning.lineno == line_of("# mc-api-line")
    assert '"servicegroup_driver = tooz"' in str(warning.message)
    assert '"servicegroup_tooz_url = memcached://10.0.0.1:11211"' in str(
        warning.message
    )
    described = api.describe()
    assert described["driver"] == "mc"
    assert described["deprecated"] is True
    assert described["url"] == "memcached://10.0.0.1:11211"
    # The membership timeout is service_down_time's, as the key expiry of
    # Nova's mc driver was, plus memcached's one-second clock tick.
    assert described["membership_timeout"] == 46.0
    assert "memcached://10.0.0.1:11211" in repr(api.driver)

    [log] = legacy_warnings(caplog)
    assert log.name == "servicegroup.drivers.legacy"
    message = log.getMessage()
    assert "\n" not in message
    assert '"servicegroup_driver = tooz"' in message
    assert '"servicegroup_tooz_url = memcached://10.0.0.1:11211"' in message


def test_mc_with_several_servers_uses_the_first_and_says_so(
    caplog: pytest.LogCaptureFixture, stop_later: list[Any]
) -> None:
    conf = make_conf(
        servicegroup_driver="mc",
        memcached_servers=["10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3"],
    )
    with pytest.warns(DeprecationWarning):
        api = servicegroup.API(conf=conf)
    stop_later.append(api)
    assert api.describe()["url"] == "memcached://10.0.0.1:11211"
    deprecation, several = legacy_warnings(caplog)
    assert "deprecated" in deprecation.getMessage()
    text = several.getMessage()
    assert "using 10.0.0.1:11211" in text
    assert "ignoring 10.0.0.2:11211, 10.0.0.3:11211" in text
    assert "twemproxy" in text


def test_zk_through_the_api(
    caplog: pytest.LogCaptureFixture, stop_later: list[Any]
) -> None:
    conf = make_conf(
        servicegroup_driver="zk",
        zookeeper__address="zk1:2181,zk2:2181",
        zookeeper__recv_timeout=6500,
        zookeeper__sg_prefix="/nova-sg",
        zookeeper__sg_retry_interval=3,
    )
    with pytest.warns(DeprecationWarning) as record:
        api = servicegroup.API(conf=conf)  # zk-api-line
    stop_later.append(api)
    assert isinstance(api.driver, legacy.ZooKeeperDriver)
    [warning] = deprecations(record)
    assert (warning.filename, warning.lineno) == (__file__, line_of("# zk-api-line"))
    url = "kazoo://zk1:2181?hosts=zk2:2181&timeout=7&namespace=nova-sg"
    described = api.describe()
    assert described["url"] == url
    assert described["driver"] == "zk"
    # recv_timeout, not service_down_time, is the session timeout.
    assert described["membership_timeout"] == 7.0
    assert described["service_down_time"] == 60.0
    assert isinstance(api.driver, legacy.ZooKeeperDriver)
    assert api.driver.timing.retry_max_interval == 3.0

    [log] = legacy_warnings(caplog)
    message = log.getMessage()
    for line in (
        "servicegroup_driver = tooz",
        f"servicegroup_tooz_url = {url}",
        "servicegroup_retry_max_interval = 3",
    ):
        assert f'"{line}"' in message
        assert f'"{line}"' in str(warning.message)


def test_zk_does_not_change_the_hosts_configuration(stop_later: list[Any]) -> None:
    conf = make_conf(servicegroup_driver="zk", zookeeper__address="zk1")
    with pytest.warns(DeprecationWarning):
        driver = legacy.ZooKeeperDriver(conf)
    stop_later.append(driver)
    assert driver.timing.retry_max_interval == 5.0  # sg_retry_interval default
    assert conf.servicegroup_retry_max_interval == 10.0


@pytest.mark.parametrize(
    ("sg_retry_interval", "cap", "named"),
    [(5, 5.0, True), (30, 10.0, False), (10, 10.0, False), (0, 10.0, False)],
)
def test_sg_retry_interval_only_shortens_the_retry_cap(
    sg_retry_interval: int,
    cap: float,
    named: bool,
    caplog: pytest.LogCaptureFixture,
    stop_later: list[Any],
) -> None:
    conf = make_conf(
        zookeeper__address="zk1", zookeeper__sg_retry_interval=sg_retry_interval
    )
    with pytest.warns(DeprecationWarning):
        driver = legacy.ZooKeeperDriver(conf)
    stop_later.append(driver)
    assert driver.timing.retry_max_interval == cap
    [log] = legacy_warnings(caplog)
    assert ("servicegroup_retry_max_interval" in log.getMessage()) is named


def test_direct_construction_warns_at_the_caller(stop_later: list[Any]) -> None:
    conf = make_conf(memcached_servers=["127.0.0.1:1"])
    with pytest.warns(DeprecationWarning, match="servicegroup_driver = mc") as rec:
        driver = legacy.MemcachedDriver(conf)  # direct-line
    stop_later.append(driver)
    [warning] = deprecations(rec)
    assert (warning.filename, warning.lineno) == (__file__, line_of("# direct-line"))


def test_the_warning_is_a_deprecation_that_users_can_escalate() -> None:
    """Projects running with -W error see the shim fail, not pass silently."""
    conf = make_conf(memcached_servers=["127.0.0.1:1"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        with pytest.raises(DeprecationWarning):
            legacy.MemcachedDriver(conf)


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        ({"servicegroup_driver": "mc"}, "memcached_servers"),
        ({"servicegroup_driver": "zk"}, "address"),
        (
            {
                "servicegroup_driver": "zk",
                "zookeeper__address": "zk1",
                "zookeeper__sg_prefix": "/",
            },
            "sg_prefix",
        ),
    ],
)
def test_bad_legacy_configuration_fails_before_warning(
    overrides: dict[str, Any], complaint: str
) -> None:
    conf = make_conf(**overrides)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(exceptions.ConfigurationError, match=complaint):
            servicegroup.API(conf=conf)
    assert not caught


def test_a_liberty_nova_conf_works_unchanged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, stop_later: list[Any]
) -> None:
    """A nova.conf of the Liberty era, read as it is."""
    nova_conf = tmp_path / "nova.conf"
    nova_conf.write_text(
        textwrap.dedent(
            """\
            [DEFAULT]
            servicegroup_driver = zk
            report_interval = 10
            service_down_time = 60

            [zookeeper]
            address = 192.0.2.10:2181,192.0.2.11:2181,192.0.2.12:2181
            recv_timeout = 4000
            sg_prefix = /servicegroups
            sg_retry_interval = 5
            """
        )
    )
    conf = cfg.ConfigOpts()
    sg_conf.register_opts(conf)
    conf(["--config-file", str(nova_conf)], project="nova")
    with pytest.warns(DeprecationWarning):
        api = servicegroup.API(conf=conf)
    stop_later.append(api)
    assert api.describe()["url"] == (
        "kazoo://192.0.2.10:2181?hosts=192.0.2.11:2181&hosts=192.0.2.12:2181"
        "&timeout=4&namespace=servicegroups"
    )


def test_nova_registered_memcached_servers_itself(stop_later: list[Any]) -> None:
    """Nova's own definition of the option wins, and the shim reads it."""
    conf = cfg.ConfigOpts()
    conf.register_opt(
        cfg.ListOpt(
            "memcached_servers", help="Memcached servers or None for in process cache."
        )
    )
    sg_conf.register_opts(conf)
    conf([], default_config_files=[])
    conf.set_override("memcached_servers", ["192.0.2.1:11211"])
    conf.set_override("servicegroup_driver", "mc")
    with pytest.warns(DeprecationWarning):
        api = servicegroup.API(conf=conf)
    stop_later.append(api)
    assert api.describe()["url"] == "memcached://192.0.2.1:11211"


def test_unknown_driver_lists_the_shims() -> None:
    conf = make_conf(servicegroup_driver="nope")
    with pytest.raises(exceptions.UnknownDriver) as info:
        servicegroup.API(conf=conf)
    assert "mc, tooz, zk" in str(info.value)


def _with_oslo_cache_options(conf: cfg.ConfigOpts) -> None:
    # The two options of oslo.cache's [cache] group the mc driver reads,
    # as oslo_cache.configure() registers them (Nova calls it).
    conf.register_group(cfg.OptGroup("cache"))
    conf.register_opts(
        [
            cfg.BoolOpt("enabled", default=False),
            cfg.ListOpt("memcache_servers", default=["localhost:11211"]),
        ],
        group="cache",
    )


@pytest.mark.parametrize(
    ("enabled", "default_servers", "url"),
    [
        (True, None, "memcached://192.0.2.7:11211"),
        (True, ["192.0.2.1:11211"], "memcached://192.0.2.1:11211"),
        (False, ["192.0.2.1:11211"], "memcached://192.0.2.1:11211"),
    ],
)
def test_mc_reads_novas_cache_section(
    stop_later: list[Any], enabled: bool, default_servers: Any, url: str
) -> None:
    """Since Newton Nova's mc driver takes its servers from [cache]."""
    conf = make_conf(servicegroup_driver="mc")
    _with_oslo_cache_options(conf)
    conf.set_override("enabled", enabled, group="cache")
    conf.set_override("memcache_servers", ["192.0.2.7:11211"], group="cache")
    conf.set_override("memcached_servers", default_servers)
    with pytest.warns(DeprecationWarning):
        api = servicegroup.API(conf=conf)
    stop_later.append(api)
    assert api.describe()["url"] == url


def test_mc_ignores_a_disabled_cache_section() -> None:
    conf = make_conf(servicegroup_driver="mc")
    _with_oslo_cache_options(conf)
    conf.set_override("memcache_servers", ["192.0.2.7:11211"], group="cache")
    with pytest.raises(exceptions.ConfigurationError):
        servicegroup.API(conf=conf)
