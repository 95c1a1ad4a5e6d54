"""RESULTS.md and PNG plots from the results of one run."""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Sequence
from typing import Any

from sgbench import hotpath, observer


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
    for name, result in (results.get("observer") or {}).items():
        lines += observer.targets(name, result)
    for soak in results.get("soak", []):
        lines.append(_soak_target(soak))
    return lines


#: The soak's counts that must be zero, and what the report calls them.
_SOAK_COUNTS = (
    ("false_downs", "false downs"),
    ("ghosts", "ghosts"),
    ("lost_joins", "lost joins"),
    ("slow_stops", "slow stops"),
)


def _soak_target(soak: dict[str, Any]) -> str:
    counts = ", ".join(f"{soak[k]} {what}" for k, what in _SOAK_COUNTS)
    failed = sum(soak[k] for k, _ in _SOAK_COUNTS) + soak.get("observer_errors", 0)
    exits = summary(soak["term_exits"])
    return (
        f"{'MISSED' if failed else 'MET'}: soak on {soak['backend']}, "
        f"{soak['seconds'] / 60:g} min ({soak['members']} members, "
        f"{soak['restarts']} server restarts, {len(soak['term_exits'])} "
        f"SIGTERMs): {counts}; SIGTERM to exit max {_fmt(exits['max'], 2)} s "
        f"(bound {soak['stop_bound']:g} s)"
    )


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

    for name, result in (results.get("observer") or {}).items():
        out += _observer_section(name, result)

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

    for soak in results.get("soak", []):
        out += _soak_section(soak)

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


#: How each backend's synthetic population is made (observer section).
_POPULATIONS = {
    "zookeeper": "one kazoo session owning N member nodes in tooz's layout",
    "redis": "the group hash and N heartbeat keys, kept alive by pipelines",
    "etcd": "N keys under the group's prefix on one lease, kept alive",
}


def _observer_section(name: str, result: dict[str, Any]) -> list[str]:
    """One backend's observer cost next to tooz's own read (issue 14)."""
    out = [
        f"## {name} observer: refresh cost",
        "",
        f"A synthetic population ({_POPULATIONS.get(name, 'N members')}) and "
        "one observer. *refresh*: the observer's read of "
        "the group with nothing changed (what the view calls every "
        "refresh_interval); *view refresh*: the same plus building the view; "
        "*cold*: the first, full read. *tooz*: the same run's raw "
        "`get_members_with_capabilities` on the same group. Operations "
        "('packets'): counted by the server.",
        "",
    ]
    rows = []
    for r in result.get("latency", []):
        if "refresh" not in r:
            rows.append([r["n"], *["-"] * 8, r.get("error", "")])
            continue
        rows.append(
            [
                r["n"],
                r["refresh"]["p50_ms"],
                r["refresh"]["p95_ms"],
                r["view_refresh"]["p50_ms"],
                r["cold_ms"],
                r["packets_per_refresh"],
                r["tooz_refresh"]["p50_ms"],
                r["tooz_packets_per_refresh"],
                f"{r['ratio']:.4f}",
                "",
            ]
        )
    out += _table(
        [
            "N",
            "refresh p50 ms",
            "p95 ms",
            "view refresh p50 ms",
            "cold ms",
            "packets/refresh",
            "tooz refresh p50 ms",
            "tooz packets/refresh",
            "refresh ÷ tooz",
            "",
        ],
        rows,
    )
    idle = result.get("idle") or {}
    if idle:
        out += [
            f"Idle: an observer API (refresh_interval 1 s) watching {idle['n']:,} "
            f"members for {idle['window_s']:g} s: packets per second the server "
            "received from it, net of the population's own; *tooz*: tooz's "
            "whole-group read once a second instead.",
            "",
        ]
        rows = [["nothing changes", idle["idle"], idle["tooz_idle"]]]
        if "beating" in idle:
            out[-2] += (
                " *beating*: the population rewrites every record once per "
                f"{idle['report_interval']:g} s, as joined members' heartbeats "
                "do; each rewrite is a change, which the observer reads."
            )
            rows.append(["beating", idle["beating"], idle["tooz_beating"]])
        out += _table(["records", "observer packets/s", "tooz packets/s"], rows)
        ratios = [
            f"{what}: {ours / theirs:.4f}" for what, ours, theirs in rows if theirs
        ]
        if ratios:
            out += ["Observer ÷ tooz: " + "; ".join(ratios) + ".", ""]
    return out


#: Rows of a soak's memory table at most (samples are thinned to fit).
_SOAK_ROWS = 13


def _soak_section(soak: dict[str, Any]) -> list[str]:
    """One backend's soak: counts, latencies, memory over time, incidents."""
    st = soak["settings"]
    actions = soak["actions"]
    out = [
        f"## Soak on {soak['backend']} ({soak['seconds'] / 60:g} min)",
        "",
        f"{soak['members']} member ids, one process each, joining, leaving, "
        "paused (SIGSTOP, shorter or longer than service_down_time), killed "
        "and stopped (SIGTERM, also while paused) at random, ids reused; the "
        f"server restarted empty every ~{st['restart_every']:g} s. "
        f"report_interval {st['report_interval']:g} s, service_down_time "
        f"{st['service_down_time']:g} s, refresh_interval "
        f"{st['refresh_interval']:g} s, backend_timeout "
        f"{st['backend_timeout']:g} s. Definitions of the counts: "
        "`benchmarks/sgbench/soak.py`. A *restart dip* is the documented "
        "limit of a server that lost its data between two refreshes "
        "(failure model, Limits): slower members seen down until they "
        "rejoin, within report_interval + retry_max_interval.",
        "",
        "Actions: " + ", ".join(f"{k} {v:,}" for k, v in sorted(actions.items())),
        "",
    ]
    out += _table(
        [
            "false downs",
            "ghosts",
            "lost joins",
            "slow stops",
            "restart dips (allowed), longest s",
            "SIGTERM exit p50 / max s",
            "join seen p50 / max s",
            "rejoin seen max s",
            "down after leave / SIGTERM / kill, max s",
        ],
        [
            [
                soak["false_downs"],
                soak["ghosts"],
                soak["lost_joins"],
                soak["slow_stops"],
                f"{soak.get('restart_dips', 0)}, "
                f"{_fmt(summary(soak['down_episodes'])['max'], 2)}",
                "{} / {}".format(
                    *(_fmt(summary(soak["term_exits"])[q], 2) for q in ("p50", "max"))
                ),
                "{} / {}".format(
                    *(_fmt(summary(soak["join_latency"])[q], 2) for q in ("p50", "max"))
                ),
                _fmt(summary(soak["rejoin_latency"])["max"], 2),
                " / ".join(
                    _fmt(summary(soak["gone_latency"][k])["max"], 2)
                    for k in ("leave", "term", "kill")
                ),
            ]
        ],
    )
    samples = soak.get("samples", [])
    if samples:
        step = max(1, math.ceil(len(samples) / _SOAK_ROWS))
        shown = samples[::step]
        if shown[-1] is not samples[-1]:
            shown.append(samples[-1])
        out += [
            "Memory and threads over time: member processes (RSS median and "
            "max, threads), the steady member (never killed or stopped), and "
            "the observer (this process's RSS, the library's threads in it).",
            "",
        ]
        out += _table(
            [
                "t s",
                "processes",
                "member RSS MiB median / max",
                "member threads min-max",
                "steady RSS MiB",
                "steady threads",
                "observer RSS MiB",
                "observer threads",
            ],
            [
                [
                    r["t"],
                    r["processes"],
                    f"{_fmt(r['member_rss_mib_median'])} / "
                    f"{_fmt(r['member_rss_mib_max'])}",
                    "-"
                    if r["member_threads_min"] is None
                    else f"{r['member_threads_min']}-{r['member_threads_max']}",
                    r["steady_rss_mib"],
                    r["steady_threads"],
                    r["observer_rss_mib"],
                    r["observer_threads"],
                ]
                for r in shown
            ],
        )
    incidents = soak.get("incidents", [])
    if incidents:
        out += [f"Incidents (the first 10; member logs in `{soak['logs']}`):", ""]
        out += [
            f"- {i['at']:.1f} s {i['kind']}: {i['member']} pid {i['pid']}: "
            f"{i['detail']}; before: "
            + "; ".join(f"{t:.1f} {what}" for t, what in i["history"][-5:])
            for i in incidents[:10]
        ]
        out.append("")
    return out


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
    soaks = [r for r in results.get("soak", []) if r.get("samples")]
    if soaks:
        fig, (rss, threads) = plt.subplots(1, 2, figsize=(11, 4))
        for soak in soaks:
            ts = [r["t"] / 60 for r in soak["samples"]]
            for ax, key, label in (
                (rss, "steady_rss_mib", "steady member"),
                (rss, "member_rss_mib_max", "members, max"),
                (rss, "observer_rss_mib", "observer"),
                (threads, "steady_threads", "steady member"),
                (threads, "member_threads_max", "members, max"),
                (threads, "observer_threads", "observer (library)"),
            ):
                points = [
                    (t, r[key])
                    for t, r in zip(ts, soak["samples"], strict=True)
                    if r.get(key) is not None
                ]
                if points:
                    xs, ys = zip(*points, strict=True)
                    ax.plot(xs, ys, label=f"{soak['backend']}: {label}")
        rss.set_title("RSS (MiB)")
        threads.set_title("threads")
        for ax in (rss, threads):
            ax.set_xlabel("minutes")
            ax.legend(fontsize=7)
        fig.suptitle("Soak: memory and threads over time")
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, "soak.png"), dpi=100)
        plt.close(fig)
        written.append("soak.png")
    return written
