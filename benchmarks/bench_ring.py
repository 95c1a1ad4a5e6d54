"""servicegroup's HashRing side by side with four other ways to share keys.

Run from the repository root (needs the ``bench`` extra)::

    .venv/bin/python benchmarks/bench_ring.py                    # 10 .. 10,000
    .venv/bin/python benchmarks/bench_ring.py --sizes 10,100 --out /tmp/ring

In one run, on the same members (``rug-00000`` ...) and the same keys:

* **servicegroup** ``HashRing`` (the partition table);
* **tooz** ``HashRing`` as its users build it (32 MD5 points per member);
* **uhashring** with its ketama ring (160 points per member, MD5);
* **jump** consistent hash (``jump-consistent-hash``), members numbered in
  sorted order, the key hashed to 64 bits with BLAKE2b first;
* **rendezvous** (highest random weight), written the obvious way: the
  member with the largest BLAKE2b of key and member.

Balance is the largest and smallest share over the mean share. For the two
rings it is exact (arc lengths); for ours exact (the table). Jump and
rendezvous have no table of their own, so they are measured as one: the
owners of 65,536 fixed partitions, which is how a user would get a stable
lookup table out of them (their spread is the spread of any scheme that
places partitions independently). Movement is the share of the key space
(or of the partitions) whose owner changes when ``joiner`` joins or the
member in the middle leaves, over the ideal ``1/N``. Jump only renumbers:
a member leaving from the middle shifts every later member's number, which
is what that row shows. Lookup rates are one thread, best of three, on the
same byte keys; the ratio column is ours over each baseline.

Writes ``ring.md`` and ``ring.png`` to ``--out`` (default
``benchmarks/results``) and prints the tables.
"""

from __future__ import annotations

import argparse
import bisect
import gc
import hashlib
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import jump  # noqa: E402
import numpy as np  # noqa: E402
import uhashring  # noqa: E402
from bench_partition import Arcs  # noqa: E402
from tooz import hashring as tooz_hashring  # noqa: E402

from servicegroup.partition import HashRing  # noqa: E402

SCHEMES = ("servicegroup", "tooz", "uhashring", "jump", "rendezvous")
TABLE_BITS = 16  # the partition table jump and rendezvous are measured as
_KETAMA_SPACE = 1 << 32


def _hash64(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


class Ketama:
    """uhashring's ring as sorted points, for exact arcs."""

    def __init__(self, members: Sequence[str]) -> None:
        self.ring = uhashring.HashRing(nodes=list(members), hash_fn="ketama")
        runtime = self.ring.runtime
        self.points: list[int] = list(runtime._keys)
        self.owners: list[str] = [runtime._ring[p] for p in self.points]

    def owner_at(self, position: int) -> str:
        # Ketama maps a key to the first point at or above its hash.
        index = bisect.bisect_left(self.points, position)
        return self.owners[index if index < len(self.points) else 0]

    def shares(self) -> dict[str, float]:
        shares = dict.fromkeys(self.owners, 0.0)
        previous = self.points[-1] - _KETAMA_SPACE
        for point, owner in zip(self.points, self.owners, strict=True):
            shares[owner] += (point - previous) / _KETAMA_SPACE
            previous = point
        return shares

    def moved_share(self, other: Ketama) -> float:
        cuts = sorted(set(self.points) | set(other.points))
        moved = 0
        previous = cuts[-1] - _KETAMA_SPACE
        for cut in cuts:
            if self.owner_at(cut) != other.owner_at(cut):
                moved += cut - previous
            previous = cut
        return moved / _KETAMA_SPACE


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a cheap, good 64-bit mixer for numpy arrays."""
    values = values ^ (values >> np.uint64(30))
    values = values * np.uint64(0xBF58476D1CE4E5B9)
    values = values ^ (values >> np.uint64(27))
    values = values * np.uint64(0x94D049BB133111EB)
    return values ^ (values >> np.uint64(31))


def rendezvous_table(members: Sequence[str]) -> list[str]:
    """Owners of the 2**TABLE_BITS partitions by highest random weight."""
    ids = np.array([_hash64(m.encode()) for m in members], dtype=np.uint64)
    parts = _mix(np.arange(1 << TABLE_BITS, dtype=np.uint64) + np.uint64(1))
    best = np.empty(len(parts), dtype=np.int64)
    chunk = max(1, 2_000_000 // len(members))
    with np.errstate(over="ignore"):
        for start in range(0, len(parts), chunk):
            block = parts[start : start + chunk, None] ^ ids[None, :]
            best[start : start + chunk] = np.argmax(_mix(block), axis=1)
    return [members[i] for i in best.tolist()]


def jump_table(members: Sequence[str]) -> list[str]:
    count = len(members)
    return [
        members[jump.hash(_hash64(p.to_bytes(4, "big")), count)]
        for p in range(1 << TABLE_BITS)
    ]


def table_shares(table: Sequence[str], members: Sequence[str]) -> list[float]:
    counts = dict.fromkeys(members, 0)
    for owner in table:
        counts[owner] += 1
    return [c / len(table) for c in counts.values()]


def table_moved(before: Sequence[str], after: Sequence[str]) -> float:
    return sum(a != b for a, b in zip(before, after, strict=True)) / len(before)


def best_time(build: Callable[[], object], repeat: int = 2) -> tuple[object, float]:
    best, result = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = build()
        best = min(best, time.perf_counter() - start)
    return result, best


def rate(lookup: Callable[[bytes], object], keys: Sequence[bytes]) -> float:
    best = 0.0
    for _ in range(3):
        gc.collect()
        start = time.perf_counter()
        for key in keys:
            lookup(key)
        best = max(best, len(keys) / (time.perf_counter() - start))
    return best


@dataclass
class Result:
    size: int
    balance: dict[str, tuple[float, float]] = field(default_factory=dict)
    join: dict[str, float] = field(default_factory=dict)
    leave: dict[str, float] = field(default_factory=dict)
    lookups: dict[str, float] = field(default_factory=dict)
    build: dict[str, float] = field(default_factory=dict)


def spread(shares: Sequence[float]) -> tuple[float, float]:
    mean = 1.0 / len(shares)
    return max(shares) / mean, min(shares) / mean


def bench_size(size: int, keys: list[bytes]) -> Result:
    members = [f"rug-{i:05d}" for i in range(size)]
    joined = [*members, "joiner"]
    leaver = members[size // 2]
    rest = [m for m in members if m != leaver]
    out = Result(size)
    fewer = keys[: max(200, len(keys) // max(1, size // 10))]

    ours, out.build["servicegroup"] = best_time(lambda: HashRing(members))
    assert isinstance(ours, HashRing)
    out.balance["servicegroup"] = spread(list(ours.shares().values()))
    out.join["servicegroup"] = ours.moved_share(HashRing(joined)) * (size + 1)
    out.leave["servicegroup"] = ours.moved_share(HashRing(rest)) * size
    out.lookups["servicegroup"] = rate(ours.owner, keys)

    tooz, out.build["tooz"] = best_time(lambda: tooz_hashring.HashRing(members))
    assert isinstance(tooz, tooz_hashring.HashRing)
    arcs = Arcs.of(tooz)
    out.balance["tooz"] = spread(list(arcs.shares().values()))
    out.join["tooz"] = arcs.moved_share(Arcs.of(tooz_hashring.HashRing(joined))) * (
        size + 1
    )
    out.leave["tooz"] = arcs.moved_share(Arcs.of(tooz_hashring.HashRing(rest))) * size
    # get_nodes rebuilds its candidate set on every call: fewer keys.
    out.lookups["tooz"] = rate(tooz.get_nodes, fewer)

    ketama, out.build["uhashring"] = best_time(lambda: Ketama(members))
    assert isinstance(ketama, Ketama)
    out.balance["uhashring"] = spread(list(ketama.shares().values()))
    out.join["uhashring"] = ketama.moved_share(Ketama(joined)) * (size + 1)
    out.leave["uhashring"] = ketama.moved_share(Ketama(rest)) * size
    texts = [key.decode() for key in keys]
    out.lookups["uhashring"] = rate(ketama.ring.get_node, texts)  # type: ignore[arg-type]

    table, _ = best_time(lambda: jump_table(members), repeat=1)
    assert isinstance(table, list)
    out.balance["jump"] = spread(table_shares(table, members))
    out.join["jump"] = table_moved(table, jump_table(joined)) * (size + 1)
    out.leave["jump"] = table_moved(table, jump_table(rest)) * size
    out.build["jump"] = 0.0  # nothing to build: a function of the count

    def jump_owner(key: bytes) -> str:
        return members[jump.hash(_hash64(key), size)]

    out.lookups["jump"] = rate(jump_owner, keys)

    hrw = rendezvous_table(members)
    out.balance["rendezvous"] = spread(table_shares(hrw, members))
    out.join["rendezvous"] = table_moved(hrw, rendezvous_table(joined)) * (size + 1)
    out.leave["rendezvous"] = table_moved(hrw, rendezvous_table(rest)) * size
    out.build["rendezvous"] = 0.0
    encoded = [m.encode() for m in members]

    def hrw_owner(key: bytes) -> bytes:
        return max(encoded, key=lambda m: _hash64(key + m))

    out.lookups["rendezvous"] = rate(hrw_owner, keys[: max(20, 20_000 // size)])
    return out


def tables(results: list[Result]) -> str:
    def row(label: str, values: dict[str, float], fmt: str, size: int) -> str:
        ours = values["servicegroup"]
        cells = [format(values[s], fmt) for s in SCHEMES]
        ratios = [f"{ours / values[s]:.2f}" if values[s] else "-" for s in SCHEMES[1:]]
        return f"| {label} | {size} | " + " | ".join(cells + ratios) + " |"

    head = (
        "| metric | members | "
        + " | ".join(SCHEMES)
        + " | "
        + " | ".join(f"ours/{s}" for s in SCHEMES[1:])
        + " |\n|---|---:|"
        + "---:|" * (2 * len(SCHEMES) - 1)
    )
    lines = [
        f"Python {platform.python_version()} on {platform.machine()}, one "
        "thread, one run; jump and rendezvous measured as a table of "
        f"{1 << TABLE_BITS:,} partitions.",
        "",
        head,
    ]
    for r in results:
        lines.append(
            row(
                "max/mean share", {k: v[0] for k, v in r.balance.items()}, ".3f", r.size
            )
        )
    for r in results:
        lines.append(
            row(
                "min/mean share", {k: v[1] for k, v in r.balance.items()}, ".3f", r.size
            )
        )
    for r in results:
        lines.append(row("moved/ideal, join", r.join, ".3f", r.size))
    for r in results:
        lines.append(row("moved/ideal, leave", r.leave, ".3f", r.size))
    for r in results:
        lines.append(row("lookups/s", r.lookups, ",.0f", r.size))
    for r in results:
        lines.append(row("build (s)", r.build, ".3f", r.size))
    return "\n".join(lines) + "\n"


def plot(results: list[Result], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r.size for r in results]
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    panels = [
        ("max/mean share (1.0 is perfect)", [r.balance for r in results], 0),
        ("moved/ideal on join (1.0 is minimal)", [r.join for r in results], None),
        ("lookups per second", [r.lookups for r in results], None),
        ("build time (s)", [r.build for r in results], None),
    ]
    for ax, (title, data, pick) in zip(axes.flat, panels, strict=True):
        for scheme in SCHEMES:
            values = [
                d[scheme][pick] if pick is not None else d[scheme]  # type: ignore[index]
                for d in data
            ]
            ax.plot(sizes, values, marker="o", label=scheme)
        ax.set_xscale("log")
        if "lookups" in title or "build" in title:
            ax.set_yscale("symlog" if "build" in title else "log")
        ax.set_title(title)
        ax.set_xlabel("members")
        ax.grid(True, alpha=0.3)
    axes.flat[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes",
        type=lambda text: [int(part) for part in text.split(",")],
        default=[10, 100, 1000, 10000],
    )
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    keys = [f"router-{i:08d}".encode() for i in range(args.keys)]
    results = []
    for size in args.sizes:
        results.append(bench_size(size, keys))
        print(f"... {size} members done", file=sys.stderr, flush=True)
    text = tables(results)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ring.md").write_text(text)
    plot(results, args.out / "ring.png")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
