"""The results as a markdown table, a JSON file and an optional PNG plot."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from bench.stats import ratio
from bench.workloads import Outcome

# (workload, figure, label, target text).  The ratio column is messenger
# divided by relay, whatever the figure: > 1 is "more than the baseline".
ROWS: Sequence[tuple[str, str, str, str]] = (
    ("W1", "msg_per_s", "delivered msg/s", ">= 25,000"),
    ("W1", "p50_ms", "latency p50 ms", ""),
    ("W1", "p99_ms", "latency p99 ms", ""),
    ("W1", "max_ms", "latency max ms", ""),
    ("W1", "server_cpu_us_per_msg", "server CPU µs/msg", "<= 35"),
    ("W1", "server_core_pct", "server CPU % of a core", ""),
    ("W1", "loadgen_cpu_us_per_msg", "loadgen CPU µs/msg", ""),
    ("W1", "loadgen_core_pct", "loadgen CPU % of a core", ""),
    ("W1", "server_wait_pct", "server waiting for a CPU, % of the time", "noise: ~0"),
    ("W1", "loadgen_wait_pct", "loadgen waiting for a CPU, % of the time", "noise: ~0"),
    ("W2", "line_per_s", "delivered lines/s", ""),
    ("W2", "p50_ms", "latency p50 ms", ""),
    ("W2", "p99_ms", "latency p99 ms", ""),
    ("W2", "server_cpu_us_per_line", "server CPU µs/line", "<= 1.5x relay"),
    ("W2", "server_core_pct", "server CPU % of a core", ""),
    ("W2", "loadgen_core_pct", "loadgen CPU % of a core", ""),
    ("W2", "server_wait_pct", "server waiting for a CPU, % of the time", "noise: ~0"),
    ("W3", "clients", "connections", ""),
    ("W3", "login_all_s", "time to log all in, s", "<= 3 (10,000)"),
    ("W3", "logins_per_s", "RESUMEs/s", ""),
    ("W3", "until_server_idle_s", "until the server is idle, s", ""),
    ("W3", "rss_idle_mb", "server RSS before, MiB", ""),
    ("W3", "rss_kb_per_conn", "server RSS KiB/connection", "<= 3"),
    ("W3", "server_cpu_us_per_login", "server CPU µs/login", ""),
    ("W3", "events_received", "event lines received", ""),
    ("W3", "loadgen_core_pct", "loadgen CPU % of a core", ""),
    ("W3", "server_wait_pct", "server waiting for a CPU, % of the time", "noise: ~0"),
    ("W4", "messages", "backlog, messages", ""),
    ("W4", "msg_per_s", "drained msg/s (LOGIN to last ACK)", ">= 30,000"),
    ("W4", "server_cpu_us_per_msg", "server CPU µs/msg", ""),
    ("W4", "fill_msg_per_s", "fill: accepted MSG/s (not timed)", ""),
    ("W4", "loadgen_core_pct", "loadgen CPU % of a core", ""),
    ("W4", "server_wait_pct", "server waiting for a CPU, % of the time", "noise: ~0"),
    ("W5-resume", "logins", "RESUMEs", ""),
    ("W5-resume", "logins_per_s", "RESUMEs/s (connect, RESUME, QUIT)", ""),
    ("W5-resume", "p99_ms", "RESUME latency p99 ms", ""),
    ("W5-resume", "server_cpu_us_per_login", "server CPU µs/RESUME", "<= 300"),
    ("W5-resume", "server_wait_pct", "server waiting for a CPU, % of the time", "noise: ~0"),
    ("W5-login", "logins", "password LOGINs (default Argon2)", ""),
    ("W5-login", "logins_per_s", "password LOGINs/s", ""),
    ("W5-login", "p99_ms", "LOGIN latency p99 ms", ""),
    ("W5-login", "server_cpu_us_per_login", "server CPU µs/LOGIN", ""),
)

CHECK_KEYS = (
    "delivered",
    "lost",
    "duplicated",
    "misdelivered",
    "redelivered",
    "rejected",
    "unanswered",
    "dlv_missing",
    "logged_in",
    "dropped",
    "ok",
    "failed",
    "timed_out",
    "server_exit",
)

#: Checks that must be zero (or False) for a run to count as correct.
MUST_BE_ZERO = (
    "lost",
    "duplicated",
    "misdelivered",
    "rejected",
    "unanswered",
    "dlv_missing",
    "failed",
    "dropped",
    "echoed",
    "timed_out",
)


def problems(outcome: Outcome) -> list[str]:
    """Why a run is not correct; empty if it is."""
    found = []
    if outcome.error:
        found.append(outcome.error)
    for key in MUST_BE_ZERO:
        value = outcome.checks.get(key)
        if value:
            found.append(f"{key}={value}")
    if "server_exit" in outcome.checks and outcome.checks["server_exit"] != 0:
        found.append(
            f"server exit status {outcome.checks['server_exit']} on SIGTERM (None: killed)"
        )
    return found


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value >= 1000:
            return f"{value:,.0f}"
        if value >= 100:
            return f"{value:.0f}"
        if value >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    return str(value)


def _index(outcomes: Sequence[Outcome]) -> dict[tuple[str, str], Outcome]:
    return {(o.workload, o.target): o for o in outcomes}


def ratios(outcomes: Sequence[Outcome]) -> dict[str, dict[str, float | None]]:
    """messenger ÷ relay for every figure both have, per workload."""
    by = _index(outcomes)
    out: dict[str, dict[str, float | None]] = {}
    for (workload, target), outcome in by.items():
        relay = by.get((workload, "relay"))
        if target != "messenger" or relay is None:
            continue
        out[workload] = {
            key: ratio(value, relay.figures.get(key))
            for key, value in outcome.figures.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
        }
    return out


def markdown(
    outcomes: Sequence[Outcome],
    scaling: Sequence[Outcome],
    meta: dict[str, Any],
    notes: Sequence[str],
) -> str:
    by = _index(outcomes)
    lines = ["# Messenger benchmark", ""]
    lines.append(
        f"{meta.get('started', '')}; {meta.get('cpus')} CPUs, load average {meta.get('loadavg_before')} "
        f"before and {meta.get('loadavg_after')} after; database on {meta.get('db_fs')}; "
        f"load generator on {meta.get('loadgen_loop', '?')}; sizes: {meta.get('size_name')}; "
        f"commit {meta.get('commit', '?')}."
    )
    lines.append("")
    if outcomes:
        lines += [
            "| workload | figure | messenger | relay | messenger ÷ relay | target |",
            "|---|---|---:|---:|---:|---|",
        ]
        for workload, key, label, target in ROWS:
            m = by.get((workload, "messenger"))
            r = by.get((workload, "relay"))
            if m is None and r is None:
                continue
            mv = m.figures.get(key) if m else None
            rv = r.figures.get(key) if r else None
            if mv is None and rv is None:
                continue
            rt = ratio(mv, rv)
            lines.append(
                f"| {workload} | {label} | {_fmt(mv)} | {_fmt(rv)} | "
                f"{'-' if rt is None else f'{rt:.2f}×'} | {target} |"
            )
        lines.append("")
        lines += [
            "## Correctness",
            "",
            "| workload | target | " + " | ".join(CHECK_KEYS) + " | status |",
            "|---|---|" + "---:|" * len(CHECK_KEYS) + "---|",
        ]
        for o in outcomes:
            status = "; ".join(problems(o)) or "ok"
            lines.append(
                f"| {o.workload} | {o.target} | "
                + " | ".join(_fmt(o.checks.get(k)) for k in CHECK_KEYS)
                + f" | {status} |"
            )
        lines.append("")
    if scaling:
        lines += scaling_table(scaling)
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)


def scaling_table(scaling: Sequence[Outcome]) -> list[str]:
    by = _index(scaling)
    counts = sorted({int(o.workload.split("-")[1]) for o in scaling})
    lines = [
        "## Scaling: direct messages as the number of clients grows",
        "",
        "| clients | messenger msg/s | relay msg/s | ratio | messenger p99 ms | relay p99 ms "
        "| messenger CPU µs/msg | relay CPU µs/msg | loadgen % core (m / r) | status |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for n in counts:
        m = by.get((f"scale-{n}", "messenger"))
        r = by.get((f"scale-{n}", "relay"))
        mf = m.figures if m else {}
        rf = r.figures if r else {}
        rt = ratio(mf.get("msg_per_s"), rf.get("msg_per_s"))
        status = "; ".join(p for o in (m, r) if o for p in problems(o)) or "ok"
        lines.append(
            f"| {n:,} | {_fmt(mf.get('msg_per_s'))} | {_fmt(rf.get('msg_per_s'))} | "
            f"{'-' if rt is None else f'{rt:.2f}×'} | {_fmt(mf.get('p99_ms'))} | {_fmt(rf.get('p99_ms'))} | "
            f"{_fmt(mf.get('server_cpu_us_per_msg'))} | {_fmt(rf.get('server_cpu_us_per_msg'))} | "
            f"{_fmt(mf.get('loadgen_core_pct'))} / {_fmt(rf.get('loadgen_core_pct'))} | {status} |"
        )
    lines.append("")
    return lines


def to_json(
    outcomes: Sequence[Outcome],
    scaling: Sequence[Outcome],
    meta: dict[str, Any],
    notes: Sequence[str],
) -> dict[str, Any]:
    every = list(outcomes) + list(scaling)
    return {
        "meta": meta,
        "notes": list(notes),
        "outcomes": [dict(asdict(o), problems=problems(o)) for o in outcomes],
        "scaling": [dict(asdict(o), problems=problems(o)) for o in scaling],
        "ratios_messenger_over_relay": ratios(every),
        "ok": all(not problems(o) for o in every),
    }


def write_json(path: str, data: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=False)
        f.write("\n")


def plot(path: str, outcomes: Sequence[Outcome], scaling: Sequence[Outcome]) -> str | None:
    """A PNG; returns why not if it cannot (no matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no plot (pip install matplotlib)"
    if scaling:
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
        by = _index(scaling)
        counts = sorted({int(o.workload.split("-")[1]) for o in scaling})
        for target, style in (("messenger", "o-"), ("relay", "s--")):
            found = [(n, by.get((f"scale-{n}", target))) for n in counts]
            points = [(n, o.figures) for n, o in found if o is not None and not o.error]
            if not points:
                continue
            xs = [n for n, _ in points]
            for ax, key in zip(axes, ("msg_per_s", "p99_ms", "server_cpu_us_per_msg")):
                ax.plot(xs, [f.get(key) for _, f in points], style, label=target)
        for ax, title in zip(
            axes, ("delivered messages/s", "latency p99 (ms)", "server CPU µs per message")
        ):
            ax.set_xscale("log")
            ax.set_xlabel("clients")
            ax.set_title(title)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
        axes[1].set_yscale("log")
    else:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        by = _index(outcomes)
        keys = (
            ("W1", "server_cpu_us_per_msg"),
            ("W2", "server_cpu_us_per_line"),
            ("W4", "server_cpu_us_per_msg"),
        )
        labels = [w for w, _ in keys]
        for offset, target in ((-0.2, "messenger"), (0.2, "relay")):
            values = [_figure(by.get((w, target)), k) for w, k in keys]
            ax.bar([i + offset for i in range(len(keys))], values, width=0.4, label=target)
        ax.set_xticks(range(len(keys)), labels)
        ax.set_ylabel("server CPU µs per delivered message/line")
        ax.legend()
        ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None


def _figure(outcome: Outcome | None, key: str) -> float:
    """One figure of an outcome for a bar, 0 where there is none."""
    if outcome is None:
        return 0
    return outcome.figures.get(key) or 0
