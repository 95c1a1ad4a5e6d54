"""A RUG-style worker: live members share N resources on a hash ring.

Start a few in separate terminals (they meet in a local directory)::

    python examples/rug_worker.py --member rug-1
    python examples/rug_worker.py --member rug-2 --weight 2
    python examples/rug_worker.py --member rug-3

Each joins the group ``rug``, takes the routers it owns and prints what it
takes and releases whenever a worker comes or goes. Ctrl-C (or SIGTERM)
stops one cleanly: it stops claiming its routers at once, leaves the group,
and the others take them over within one refresh interval. ``kill -9``
one instead to see a crash: the others wait ``service_down_time`` first.

With ``--url`` any backend servicegroup supports works, e.g.
``--url redis://127.0.0.1:6379``. ``--json`` prints one JSON object per
event instead of text (used by the test suite).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import queue
import signal
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType

from oslo_config import cfg

import servicegroup
from servicegroup import conf as sg_conf
from servicegroup.partition import Partitioner, Rebalance

LOG = logging.getLogger("rug_worker")


class Worker:
    """Owns a share of the routers and follows the group as it changes."""

    def __init__(
        self,
        api: servicegroup.API,
        member_id: str,
        group_id: str,
        resources: Sequence[str],
        as_json: bool,
    ) -> None:
        self.api = api
        self.member_id = member_id
        self.group_id = group_id
        self.resources = list(resources)
        self.as_json = as_json
        self.owned: set[str] = set()
        # Rebalances arrive on the library's refresh thread; the callback
        # only queues them so the refresh thread is never held up by work.
        self.changes: queue.Queue[Rebalance | None] = queue.Queue()
        self.partitioner = Partitioner(api, group_id, member_id)

    def run(self, stop: threading.Event) -> None:
        unsubscribe = self.partitioner.on_rebalance(self.changes.put, initial=True)
        try:
            while not stop.is_set():
                try:
                    change = self.changes.get(timeout=0.5)
                except queue.Empty:
                    continue
                if change is not None:
                    self.apply(change)
        finally:
            unsubscribe()
            self.shutdown()

    def apply(self, change: Rebalance) -> None:
        # The chain of rebalances starts from an empty ring (initial=True)
        # and skips nothing, so applying the deltas keeps ``owned`` exact.
        took = change.gained(self.resources)
        released = change.lost(self.resources)
        self.owned.difference_update(released)
        self.owned.update(took)
        self.report(
            "rebalance",
            members=sorted(change.new.members),
            took=took,
            released=released,
        )

    def shutdown(self) -> None:
        # Stop claiming before leaving, so no router has two owners while
        # the others still see this member up.
        self.partitioner.close()
        released = sorted(self.owned)
        self.owned.clear()
        self.report("stopped", members=[], took=[], released=released)
        self.api.leave(self.member_id, self.group_id)
        self.api.stop()

    def report(
        self,
        event: str,
        *,
        members: list[str],
        took: list[str],
        released: list[str],
    ) -> None:
        if not self.as_json:
            print(
                f"{self.member_id}: {event}: took {_brief(took)}; released "
                f"{_brief(released)}; owns {len(self.owned)} of "
                f"{len(self.resources)}; members: "
                f"{', '.join(members) or '-'}",
                flush=True,
            )
            return
        # A digest of the whole owner map lets a test compare the views of
        # many workers at a glance.
        ring = self.partitioner.ring
        owners = "\n".join(f"{r}={ring.owner(r)}" for r in self.resources)
        record = {
            "event": event,
            "member": self.member_id,
            "time": time.time(),
            "members": members,
            "took": took,
            "released": released,
            "owned": sorted(self.owned),
            "ring": hashlib.sha256(owners.encode()).hexdigest()[:16],
        }
        print(json.dumps(record), flush=True)


def _brief(names: list[str]) -> str:
    if not names:
        return "nothing"
    shown = ", ".join(names[:3])
    more = f" and {len(names) - 3} more" if len(names) > 3 else ""
    return f"{len(names)} ({shown}{more})"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--member", required=True, help="this worker's id")
    parser.add_argument("--group", default="rug")
    parser.add_argument("--resources", type=int, default=1000, help="routers to share")
    parser.add_argument("--weight", type=float, default=1.0)
    parser.add_argument(
        "--url",
        default="file:///tmp/servicegroup-rug-demo",
        help="servicegroup_tooz_url (default: a local directory)",
    )
    parser.add_argument("--report-interval", type=float, default=1.0)
    parser.add_argument("--service-down-time", type=float, default=5.0)
    parser.add_argument("--refresh-interval", type=float, default=0.5)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--debug", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    conf = cfg.ConfigOpts()
    sg_conf.register_opts(conf)
    conf([], project="servicegroup", default_config_files=[])
    conf.set_override("servicegroup_tooz_url", args.url)
    conf.set_override("report_interval", args.report_interval)
    conf.set_override("service_down_time", args.service_down_time)
    conf.set_override("servicegroup_refresh_interval", args.refresh_interval)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    api = servicegroup.API(conf=conf)
    api.join(args.member, args.group, capabilities={"weight": args.weight})
    resources = [f"router-{i}" for i in range(args.resources)]
    Worker(api, args.member, args.group, resources, args.json).run(stop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
