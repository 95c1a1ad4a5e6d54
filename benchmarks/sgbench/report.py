"""RESULTS.md and PNG plots from the results of one run."""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Sequence
from typing import Any

from sgbench import hotpath


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(cell) for cell in row) + " |" for row in rows]
    return lines + [""]


def _pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summary(values: Sequence[float]) -> dict[str, float]:
    """p50, p95 and max of ``values``."""
    if not values:
        return {"p50": float("nan"), "p95": float("nan"), "max": float("nan")}
    return {
        "p50": statistics.median(values),
        "p95": _pct(values, 0.95),
        "max": max(values),
    }


def targets(results: dict[str, Any]) -> list[str]:
    """MET/MISSED lines for the targets of the issue."""
    lines = []
    for backend, hot in results.get("hot", {}).items():
        if backend == "memcached_get" or "is_up" not in hot:
            continue
        rate = hot["is_up"]["per_second"]
        ratio = rate / hotpath.TARGET_PER_SECOND
        verdict = "MET" if ratio >= 1 else "MISSED"
        lines.append(
            f"{verdict}: is_up on {backend} with {hot['n']} members: "
            f"{rate:,.0f}/s in one thread, {ratio:.2f} x the target of "
            f"{hotpath.TARGET_PER_SECOND:,}/s"
        )
    return lines


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    out = [
        "# servicegroup benchmarks",
        "",
        f"Run {results['started']} ({'quick' if results['quick'] else 'full'}), "
        f"{results['duration']:.0f} s. Command: `{results['command']}`",
        "",
        "## Machine",
        "",
        f"- {m['nproc']} CPUs: {m['cpu']}; memory {m['memory']}; "
        f"Linux {m['kernel']}; Python {m['python']}; {m['java']}",
        "- servers: " + ", ".join(results.get("servers", {}).values()),
        "- clients: " + ", ".join(f"{k} {v}" for k, v in m["clients"].items()),
        "",
        "## Targets",
        "",
    ]
    out += [f"- {line}" for line in targets(results)] or ["- (no hot path run)"]
    out.append("")

    hot = results.get("hot", {})
    if hot:
        mc = hot.get("memcached_get", {}).get("per_second")
        out += [
            "## is_up hot path (calls per second, one thread)",
            "",
            "Baselines: raw tooz `get_members(group).get()` per question on the "
            "same backend, and one pymemcache GET per question (old Nova `mc` "
            f"driver) = {_fmt(mc)}/s.",
            "",
        ]
        rows = []
        for backend, h in hot.items():
            if backend == "memcached_get":
                continue
            rate = h["is_up"]["per_second"]
            raw = h.get("raw_tooz", {}).get("per_second")
            rows.append(
                [
                    backend,
                    h["n"],
                    rate,
                    h["service_is_up"]["per_second"],
                    h["is_up (unknown member)"]["per_second"],
                    raw,
                    f"{rate / raw:,.0f} x" if raw else "-",
                    f"{rate / mc:,.0f} x" if mc else "-",
                ]
            )
        out += _table(
            [
                "backend",
                "members",
                "is_up/s",
                "service_is_up/s",
                "is_up unknown member/s",
                "raw tooz get_members/s",
                "is_up ÷ raw tooz",
                "is_up ÷ memcached GET",
            ],
            rows,
        )

    scale = results.get("scale", [])
    if scale:
        out += [
            "## Scale",
            "",
            "Members hosted by worker processes (at most 1,000 each, one tooz "
            "coordinator, connection and heartbeat thread per member); "
            f"report_interval {scale[0]['report_interval']:g} s, "
            f"service_down_time {scale[0]['service_down_time']:g} s. "
            "*joined*: every member accepted by the backend; *visible*: an "
            "observer's `get_all` lists all N. *refresh*: one read of the whole "
            "group (what the background refresh does). Operations and bytes are "
            "counted by the server (Redis commandstats, memcached stats, "
            "ZooKeeper mntr packets incl. pings, etcd gRPC calls).",
            "",
        ]
        rows = [
            [
                r["backend"],
                r["n"],
                r.get("join_seconds"),
                r.get("visible_seconds"),
                r.get("refresh_p50_ms"),
                r.get("refresh_p95_ms"),
                r.get("ops_per_refresh"),
                r["get_all_local_ms"] * 1000
                if r.get("get_all_local_ms") is not None
                else None,
                r.get("ops_per_round"),
                r.get("ops_per_member_round"),
                (r["bytes_per_round"] / 1024)
                if r.get("bytes_per_round") is not None
                else None,
                r.get("rss_per_member_kib"),
                r.get("threads_per_member"),
                "; ".join(
                    x
                    for x in (
                        r.get("limit"),
                        r.get("error"),
                        "refresh never returned" if r.get("refresh_hung") else "",
                        f"refresh failed: {r['refresh_error']}"
                        if r.get("refresh_error")
                        else "",
                        "API.stop() hung" if r.get("stop_hung") else "",
                    )
                    if x
                ),
            ]
            for r in scale
        ]
        out += _table(
            [
                "backend",
                "N",
                "joined s",
                "visible s",
                "refresh p50 ms",
                "refresh p95 ms",
                "ops/refresh",
                "get_all local µs",
                "ops/round",
                "ops/member/round",
                "KiB/round",
                "RSS KiB/member",
                "threads/member",
                "limit hit",
            ],
            rows,
        )

    failure = results.get("failure", [])
    if failure:
        f0 = failure[0]
        out += [
            "## Failure detection",
            "",
            f"report_interval {f0['report_interval']:g} s, service_down_time "
            f"{f0['service_down_time']:g} s, refresh_interval "
            f"{f0['refresh_interval']:g} s; one member per process; from the "
            "signal to the first `is_up` False at an observer polling every 5 ms. "
            "*kill*: SIGKILL (the backend expires the member); *leave*: SIGTERM, "
            "the member's `API.stop()` leaves. Values in seconds, then as a "
            "multiple of service_down_time.",
            "",
        ]
        rows = []
        for f in failure:
            down = f["service_down_time"]
            k, lv = summary(f["kill"]), summary(f["leave"])
            rows.append(
                [
                    f["backend"],
                    len(f["kill"]),
                    k["p50"],
                    k["p95"],
                    k["max"],
                    f"{k['p50'] / down:.2f} / {k['p95'] / down:.2f} / "
                    f"{k['max'] / down:.2f}",
                    len(f["leave"]),
                    lv["p50"],
                    lv["p95"],
                    lv["max"],
                    f"{lv['p50'] / down:.2f} / {lv['p95'] / down:.2f} / "
                    f"{lv['max'] / down:.2f}",
                    f["missed"],
                ]
            )
        out += _table(
            [
                "backend",
                "kills",
                "kill p50 s",
                "p95 s",
                "max s",
                "kill ×down p50/p95/max",
                "leaves",
                "leave p50 s",
                "p95 s",
                "max s",
                "leave ×down p50/p95/max",
                "never seen down",
            ],
            rows,
        )

    recovery = results.get("recovery", [])
    if recovery:
        r0 = recovery[0]
        out += [
            "## Recovery after a backend restart",
            "",
            "The server is SIGKILLed and started again (data wiped, or kept "
            "for the servers that persist it), with N members "
            f"heartbeating (report_interval {r0['report_interval']:g} s, "
            f"service_down_time {r0['service_down_time']:g} s, refresh_interval "
            f"{r0['refresh_interval']:g} s). Times from the server answering "
            "again: the observer's first fresh view, and the first fresh view "
            "listing all N.",
            "",
        ]
        rows = [
            [
                r["backend"],
                "empty" if r.get("wiped", True) else "kept",
                r["n"],
                r.get("restart_seconds"),
                r.get("observer_back_seconds"),
                r.get("recovered_seconds"),
                r.get("lowest_seen"),
                "" if "recovered_seconds" in r else "NOT RECOVERED",
            ]
            for r in recovery
        ]
        out += _table(
            [
                "backend",
                "data",
                "N",
                "kill + start s",
                "observer back s",
                "whole membership s",
                "lowest count seen",
                "",
            ],
            rows,
        )

    limits = results.get("limits", [])
    if limits:
        out += ["## Limits found", ""]
        out += [f"- {line}" for line in limits]
        out.append("")
    if results.get("partition"):
        out += ["## Hash ring (benchmarks/bench_partition.py)", ""]
        out += [results["partition"].strip(), ""]
    if results.get("errors"):
        out += ["## Errors", ""]
        out += [f"- {e}" for e in results["errors"]]
        out.append("")
    if results.get("plots"):
        out += ["## Plots", ""]
        out += [f"![{p}]({p})" for p in results["plots"]]
        out.append("")
    return "\n".join(out)


def plots(results: dict[str, Any], out_dir: str) -> list[str]:
    """Write PNGs; returns their file names (empty without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    written = []

    hot = {k: v for k, v in results.get("hot", {}).items() if k != "memcached_get"}
    if hot:
        fig, ax = plt.subplots(figsize=(8, 4))
        labels, values = [], []
        for backend, h in hot.items():
            labels += [f"{backend} is_up", f"{backend} raw tooz"]
            values += [
                h["is_up"]["per_second"],
                h.get("raw_tooz", {}).get("per_second", float("nan")),
            ]
        mc = results["hot"].get("memcached_get", {}).get("per_second")
        if mc:
            labels.append("memcached GET (Nova mc)")
            values.append(mc)
        ax.barh(labels, values, color="tab:blue")
        ax.axvline(hotpath.TARGET_PER_SECOND, color="tab:red", linestyle="--")
        ax.set_xscale("log")
        ax.set_xlabel("questions per second, one thread (log)")
        ax.set_title("is_up against the baselines (red: 1,000,000/s target)")
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, "hotpath.png"), dpi=100)
        plt.close(fig)
        written.append("hotpath.png")

    scale = results.get("scale", [])
    if scale:
        fig, axes = plt.subplots(2, 2, figsize=(10, 7))
        panels = [
            ("visible_seconds", "time until all visible (s)"),
            ("refresh_p50_ms", "refresh of the whole group, p50 (ms)"),
            ("ops_per_member_round", "server ops per member per heartbeat round"),
            ("rss_per_member_kib", "client RSS per member (KiB)"),
        ]
        for ax, (key, title) in zip(axes.flat, panels, strict=True):
            for backend in dict.fromkeys(r["backend"] for r in scale):
                points = [
                    (r["n"], r[key])
                    for r in scale
                    if r["backend"] == backend and r.get(key) is not None
                ]
                if points:
                    xs, ys = zip(*points, strict=True)
                    ax.plot(xs, ys, marker="o", label=backend)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("members")
            ax.set_title(title, fontsize=10)
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, "scale.png"), dpi=100)
        plt.close(fig)
        written.append("scale.png")

    failure = results.get("failure", [])
    if failure:
        fig, ax = plt.subplots(figsize=(8, 4))
        data, labels = [], []
        for f in failure:
            down = f["service_down_time"]
            for kind in ("kill", "leave"):
                if f[kind]:
                    data.append([v / down for v in f[kind]])
                    labels.append(f"{f['backend']}\n{kind}")
        if data:
            ax.boxplot(data, whis=(0, 100))
            ax.set_xticks(range(1, len(labels) + 1), labels, fontsize=8)
            ax.axhline(1.0, color="tab:red", linestyle="--")
            ax.set_ylabel("detection time / service_down_time")
            ax.set_title("From SIGKILL or graceful stop to is_up False")
            fig.tight_layout()
            fig.savefig(os.path.join(out_dir, "failure.png"), dpi=100)
            written.append("failure.png")
        plt.close(fig)

    recovery = [r for r in results.get("recovery", []) if "recovered_seconds" in r]
    if recovery:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.bar(
            [
                f"{r['backend']}\n{'empty' if r.get('wiped', True) else 'kept'}"
                for r in recovery
            ],
            [r["recovered_seconds"] for r in recovery],
            color="tab:green",
        )
        ax.set_ylabel("seconds")
        ax.set_title("Backend restarted: until the whole membership is back")
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, "recovery.png"), dpi=100)
        plt.close(fig)
        written.append("recovery.png")
    return written
