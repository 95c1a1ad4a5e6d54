"""Options: registration next to a host's own, the published list, the sample."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from oslo_config import cfg

from servicegroup import conf as sg_conf

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "etc" / "servicegroup.conf.sample"
GENERATOR_CONFIG = ROOT / "etc" / "oslo-config-generator" / "servicegroup.conf"

LEGACY_DEFAULT = {"memcached_servers"}
LEGACY_ZOOKEEPER = {"address", "recv_timeout", "sg_prefix", "sg_retry_interval"}


def parsed(conf: cfg.ConfigOpts | None = None) -> cfg.ConfigOpts:
    conf = conf or cfg.ConfigOpts()
    sg_conf.register_opts(conf)
    conf([], project="servicegroup", default_config_files=[])
    return conf


def all_opts() -> list[tuple[str, cfg.Opt]]:
    return [
        (getattr(group, "name", group), opt)
        for group, opts in sg_conf.list_opts()
        for opt in opts
    ]


def test_defaults() -> None:
    conf = parsed()
    assert conf.servicegroup_driver == "tooz"
    assert conf.report_interval == 10.0
    assert conf.service_down_time == 60.0
    assert conf.memcached_servers is None
    assert conf.zookeeper.address is None
    assert conf.zookeeper.recv_timeout == 4000
    assert conf.zookeeper.sg_prefix == "/servicegroups"
    assert conf.zookeeper.sg_retry_interval == 5


def test_register_opts_is_idempotent() -> None:
    conf = parsed()
    sg_conf.register_opts(conf)
    sg_conf.register_opts(conf)
    assert conf.zookeeper.recv_timeout == 4000


def test_the_hosts_own_definitions_win(caplog: pytest.LogCaptureFixture) -> None:
    """Nova registers these itself, with other help texts and types."""
    conf = cfg.ConfigOpts()
    conf.register_opt(cfg.IntOpt("report_interval", default=10, help="Nova's."))
    conf.register_opt(
        cfg.ListOpt(
            "memcached_servers", help="Memcached servers or None for in process cache."
        )
    )
    conf.register_group(cfg.OptGroup("zookeeper", title="Nova's zookeeper group"))
    conf.register_opt(
        cfg.StrOpt("address", help="The ZooKeeper addresses."), group="zookeeper"
    )
    caplog.set_level(logging.DEBUG, logger="servicegroup.conf")
    sg_conf.register_opts(conf)
    conf([], default_config_files=[])
    assert conf.report_interval == 10 and isinstance(conf.report_interval, int)
    assert conf.zookeeper.address is None
    assert conf.zookeeper.sg_prefix == "/servicegroups"  # ours, added
    assert not conf._get_opt_info("memcached_servers")["opt"].deprecated_for_removal
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "memcached_servers" in messages and "[zookeeper] address" in messages


def test_overrides_are_not_shared_between_configurations() -> None:
    """ConfigOpts copies an OptGroup shallowly: a module-level group would
    carry one configuration's overrides into every other."""
    first, second = parsed(), parsed()
    first.set_override("address", "zk1:2181", group="zookeeper")
    assert second.zookeeper.address is None
    # Each list_opts() hands out its own group object, for the same reason.
    assert sg_conf.list_opts()[1][0] is not sg_conf.list_opts()[1][0]


def test_list_opts_publishes_every_option_once() -> None:
    names = [(group, opt.name) for group, opt in all_opts()]
    assert len(names) == len(set(names))
    groups = {group for group, _ in names}
    assert groups == {"DEFAULT", "zookeeper"}
    existing = {opt.name for opt in sg_conf.service_group_opts}
    assert existing <= {name for group, name in names if group == "DEFAULT"}


def test_only_the_legacy_options_are_deprecated() -> None:
    deprecated = {
        (group, opt.name) for group, opt in all_opts() if opt.deprecated_for_removal
    }
    assert deprecated == {("DEFAULT", n) for n in LEGACY_DEFAULT} | {
        ("zookeeper", n) for n in LEGACY_ZOOKEEPER
    }
    for _, opt in all_opts():
        if opt.deprecated_for_removal:
            assert "migration guide" in (opt.deprecated_reason or ""), opt.name


@pytest.mark.parametrize("name", [opt.name for _, opt in all_opts()])
def test_help_is_a_sentence(name: str) -> None:
    [opt] = [opt for _, opt in all_opts() if opt.name == name]
    assert opt.help and opt.help[0].isupper() and opt.help.endswith("."), opt.help


def test_the_url_is_secret() -> None:
    [url] = [opt for _, opt in all_opts() if opt.name == "servicegroup_tooz_url"]
    assert url.secret


def test_timing_adjusts_a_down_time_too_short(
    caplog: pytest.LogCaptureFixture,
) -> None:
    conf = parsed()
    conf.set_override("report_interval", 10.0)
    conf.set_override("service_down_time", 10.0)
    conf.set_override("servicegroup_retry_max_interval", 30.0)
    timing = sg_conf.timing_from_conf(conf)
    assert timing.service_down_time == 25.0
    # The retry cap never exceeds report_interval.
    assert timing.retry_max_interval == 10.0
    assert "using 25.0 s instead" in caplog.text


def generate_sample(env: dict[str, str], output: Path) -> str:
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from oslo_config import generator; "
            "sys.exit(generator.main(sys.argv[1:]))",
            "--config-file",
            str(GENERATOR_CONFIG),
            "--output-file",
            str(output),
        ],
        check=True,
        cwd=ROOT,
        env=env,
    )
    return output.read_text()


def test_the_sample_does_not_depend_on_the_machine(tmp_path: Path) -> None:
    base = {k: v for k, v in os.environ.items() if k != "XDG_STATE_HOME"}
    one = generate_sample({**base, "HOME": "/home/alice"}, tmp_path / "one.conf.sample")
    two = generate_sample(
        {**base, "HOME": "/root", "XDG_STATE_HOME": "/var/state"},
        tmp_path / "two.conf.sample",
    )
    assert one == two
    assert "/home/alice" not in one


def test_the_shipped_sample_is_current(tmp_path: Path) -> None:
    fresh = generate_sample(dict(os.environ), tmp_path / "fresh.conf.sample")
    assert fresh == SAMPLE.read_text(), (
        "etc/servicegroup.conf.sample is out of date: run 'tox -e genconfig'"
    )


def test_the_sample_marks_the_legacy_options() -> None:
    text = SAMPLE.read_text()
    for name in sorted(LEGACY_DEFAULT | LEGACY_ZOOKEEPER):
        section = text.split(f"#{name} =")[0].rsplit("\n\n", 1)[-1]
        assert "# DEPRECATED:" in section, name
        assert "This option is deprecated for removal." in section, name
    assert "\n[zookeeper]\n" in text
