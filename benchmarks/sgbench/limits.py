"""Backend limits that the scale runs do not reach on their own.

ZooKeeper refuses more than ``maxClientCnxns`` connections from one client
address (60 by default; the test launcher sets it to 0, unlimited). With one
coordinator per member, a process hosting many members, or many services
behind one NAT address, hits it. This starts a server with ZooKeeper's
default and joins more members than that from one process.
"""

from __future__ import annotations

import time
from typing import Any

import servicegroup
from servicegroup.testing import servers
from sgbench import backends

#: ZooKeeper's own default for maxClientCnxns.
ZK_DEFAULT_MAX_CLIENT_CNXNS = 60


class _DefaultCapZooKeeper(servers.ZooKeeperServer):
    """A ZooKeeper server with ZooKeeper's default per-address cap."""

    def _prepare(self) -> None:
        super()._prepare()
        with open(self.config_path) as fh:
            config = fh.read()
        config = config.replace(
            "maxClientCnxns=0", f"maxClientCnxns={ZK_DEFAULT_MAX_CLIENT_CNXNS}"
        )
        with open(self.config_path, "w") as fh:
            fh.write(config)


def zookeeper_connection_cap(members: int = 80, wait: float = 20.0) -> dict[str, Any]:
    """Join ``members`` from one process to a default-capped ZooKeeper."""
    server = _DefaultCapZooKeeper()
    server.start()
    api = None
    try:
        api = servicegroup.API(
            conf=backends.make_conf(
                server.url, report_interval=2.0, service_down_time=6.0
            )
        )
        group = "capped"
        ids = [f"host{i:03d}" for i in range(members)]
        for member in ids:
            api.join(member, group)
        deadline = time.monotonic() + wait
        joined = 0
        while time.monotonic() < deadline:
            joined = sum(api.is_registered(member, group) for member in ids)
            if joined == members:
                break
            time.sleep(0.2)
        return {
            "max_client_cnxns": ZK_DEFAULT_MAX_CLIENT_CNXNS,
            "members": members,
            "joined": joined,
            # mntr cannot be asked: its own connection would be refused too.
            "log_refusals": server.log_tail(5000).count("Too many connections"),
            "waited_seconds": wait,
        }
    finally:
        if api is not None:
            backends.stop_api(api)
        server.close()
