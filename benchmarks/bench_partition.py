"""Compare servicegroup's HashRing with tooz's, built from the same members.

Run from the repository root::

    .venv/bin/python benchmarks/bench_partition.py           # full run
    .venv/bin/python benchmarks/bench_partition.py --quick   # a minute less

Prints a markdown table. Balance and movement are exact shares of the key
space, not samples: for servicegroup they come from the partition table,
for tooz from the lengths of the arcs of its ring (tooz maps a key to the
first ring point above the key's MD5). Sampling a million keys would only
add noise (at 1,000 members, 1,000 keys each vary by 3%). Lookups are
timed on the same byte keys in one thread.

tooz's ring is built as its users build it: ``HashRing(members)``, 32
points per member, MD5.
"""

from __future__ import annotations

import argparse
import bisect
import gc
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tooz import hashring as tooz_hashring  # noqa: E402

from servicegroup.partition import HashRing  # noqa: E402

_TOOZ_SPACE = 1 << 128  # MD5


@dataclass(frozen=True)
class Arcs:
    """tooz's ring as sorted points and the member owning up to each."""

    points: list[int]
    owners: list[str]

    @classmethod
    def of(cls, ring: tooz_hashring.HashRing) -> Arcs:
        points = sorted(ring._ring)
        return cls(points, [ring._ring[p] for p in points])

    def owner_at(self, position: int) -> str:
        index = bisect.bisect(self.points, position)
        return self.owners[index if index < len(self.points) else 0]

    def shares(self) -> dict[str, float]:
        shares: dict[str, float] = dict.fromkeys(self.owners, 0.0)
        previous = self.points[-1] - _TOOZ_SPACE
        for point, owner in zip(self.points, self.owners, strict=True):
            shares[owner] += (point - previous) / _TOOZ_SPACE
            previous = point
        return shares

    def moved_share(self, other: Arcs) -> float:
        """Share of the key space whose owner differs in ``other``."""
        # Between two consecutive points of the union, both rings have
        # one owner; sample it at the interval's upper end.
        cuts = sorted(set(self.points) | set(other.points))
        moved = 0
        previous = cuts[-1] - _TOOZ_SPACE
        for cut in cuts:
            probe = cut - 1
            if self.owner_at(probe % _TOOZ_SPACE) != other.owner_at(
                probe % _TOOZ_SPACE
            ):
                moved += cut - previous
            previous = cut
        return moved / _TOOZ_SPACE


def timed(build: Callable[[], object]) -> tuple[object, float]:
    """The result of ``build`` and its best time of three."""
    best = float("inf")
    for _ in range(3):
        gc.collect()
        start = time.perf_counter()
        result = build()
        best = min(best, time.perf_counter() - start)
    return result, best


def lookups_per_second(lookup: Callable[[bytes], object], keys: list[bytes]) -> float:
    best = 0.0
    for _ in range(3):
        gc.collect()
        start = time.perf_counter()
        for key in keys:
            lookup(key)
        best = max(best, len(keys) / (time.perf_counter() - start))
    return best


def spread(values: Sequence[float]) -> str:
    """Mean and worst (farthest from 1.0) of moved/ideal ratios."""
    worst = max(values, key=lambda v: abs(v - 1.0))
    return f"{statistics.fmean(values):.3f} (worst {worst:.3f})"


@dataclass
class Row:
    metric: str
    size: int
    ours: str
    tooz: str
    ratio: str


def bench_size(size: int, trials: int, keys: int, rng: random.Random) -> list[Row]:
    """Every metric at one group size, over ``trials`` random groups."""
    balance: tuple[list[float], list[float]] = ([], [])
    joins: tuple[list[float], list[float]] = ([], [])
    leaves: tuple[list[float], list[float]] = ([], [])
    for trial in range(trials):
        members = [f"rug-{rng.getrandbits(40):010x}" for _ in range(size)]
        ours = HashRing(members)
        arcs = Arcs.of(tooz_hashring.HashRing(members))
        balance[0].append(max(ours.shares().values()) * size)
        balance[1].append(max(arcs.shares().values()) * size)

        joiner = f"joiner-{trial}-{rng.getrandbits(32):08x}"
        joined = [*members, joiner]
        leaver = members[rng.randrange(size)]
        rest = [m for m in members if m != leaver]
        joins[0].append(ours.moved_share(HashRing(joined)) * (size + 1))
        leaves[0].append(ours.moved_share(HashRing(rest)) * size)
        tooz_joined = Arcs.of(tooz_hashring.HashRing(joined))
        joins[1].append(arcs.moved_share(tooz_joined) * (size + 1))
        tooz_rest = Arcs.of(tooz_hashring.HashRing(rest))
        leaves[1].append(arcs.moved_share(tooz_rest) * size)

    # Build times and lookup rates: the last group of the loop.
    built, our_build = timed(lambda: HashRing(members))
    theirs, tooz_build = timed(lambda: tooz_hashring.HashRing(members))
    assert isinstance(built, HashRing)
    assert isinstance(theirs, tooz_hashring.HashRing)
    sample = [f"router-{rng.getrandbits(64):016x}".encode() for _ in range(keys)]
    # tooz's get_nodes rebuilds its candidate set on every call; time it on
    # fewer keys so the run stays short (the rate is what is compared).
    tooz_sample = sample[: max(2000, keys // max(1, size // 20))]
    our_rate = lookups_per_second(built.owner, sample)
    tooz_rate = lookups_per_second(theirs.get_nodes, tooz_sample)

    our_balance = statistics.fmean(balance[0])
    tooz_balance = statistics.fmean(balance[1])
    return [
        Row(
            "build time (s)",
            size,
            f"{our_build:.3f}",
            f"{tooz_build:.3f}",
            f"{our_build / tooz_build:.0f}",
        ),
        Row(
            "balance max/mean share",
            size,
            f"{our_balance:.3f} (worst {max(balance[0]):.3f})",
            f"{tooz_balance:.3f} (worst {max(balance[1]):.3f})",
            f"{our_balance / tooz_balance:.2f}",
        ),
        Row("moved/ideal on join", size, spread(joins[0]), spread(joins[1]), ""),
        Row("moved/ideal on leave", size, spread(leaves[0]), spread(leaves[1]), ""),
        Row(
            "lookups per second",
            size,
            f"{our_rate:,.0f}",
            f"{tooz_rate:,.0f}",
            f"{our_rate / tooz_rate:.1f}",
        ),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer trials and keys")
    parser.add_argument(
        "--sizes",
        type=lambda text: [int(part) for part in text.split(",")],
        default=[10, 100, 1000],
        help="comma-separated member counts (default 10,100,1000)",
    )
    parser.add_argument("--seed", type=int, default=20150701)
    args = parser.parse_args(argv)
    trials = 2 if args.quick else 6
    keys = 50_000 if args.quick else 300_000
    rng = random.Random(args.seed)

    rows: list[Row] = []
    for size in args.sizes:
        rows.extend(bench_size(size, trials, keys, rng))
        print(f"... {size} members done", file=sys.stderr)

    print(
        f"Python {platform.python_version()} on {platform.machine()}, "
        f"one thread; {trials} random groups per size (mean, and worst of "
        f"them); moved/ideal is the moved share of the key space times N.\n"
    )
    print("| metric | members | servicegroup | tooz HashRing | ratio |")
    print("|---|---:|---:|---:|---:|")
    for row in sorted(rows, key=lambda r: (r.metric, r.size)):
        print(f"| {row.metric} | {row.size} | {row.ours} | {row.tooz} | {row.ratio} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
