"""``python -m bench``: run the workloads, print a table, write JSON/PNG.

    python -m bench                       # W1-W5 at full size, with the relay baseline
    python -m bench --quick               # everything small, under a minute
    python -m bench --workloads W1,W4 --w1-messages 50000 --json out.json
    python -m bench --scaling --workloads none --plot scaling.png
    python -m bench --quick --workloads W1,W2 --db postgres          # a temporary PostgreSQL
    python -m bench --db postgres --nodes 2                          # two nodes and Redis
    python -m bench --db postgresql://me@127.0.0.1/postgres          # your PostgreSQL

The exit status is 0 when every run was correct (nothing lost, duplicated,
refused or timed out), 1 otherwise; speed never fails a run.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import shutil
import signal
import subprocess
import sys
import tempfile

from bench import procstat, report, workloads
from bench.servers import FAST_ARGON2, REPO_ROOT, UNLIMITED_RATE, Reaper, Services


def _int_list(text: str) -> list[int]:
    return [int(x.replace("_", "")) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="small sizes, scaling sweep included: everything in under a minute",
    )
    p.add_argument(
        "--workloads", default="W1,W2,W3,W4,W5", help="comma-separated subset of W1..W5, or 'none'"
    )
    p.add_argument(
        "--targets", default="relay,messenger", help="servers to measure: messenger, relay"
    )
    p.add_argument(
        "--scaling", action="store_true", help="also sweep direct messages over --scaling-clients"
    )
    p.add_argument("--json", metavar="PATH", help="write every result to this JSON file")
    p.add_argument("--markdown", metavar="PATH", help="also write the table to this file")
    p.add_argument("--plot", metavar="PATH", help="PNG plot (needs matplotlib)")
    p.add_argument(
        "--tmpdir", metavar="DIR", help="where the temporary databases go [default: system temp]"
    )
    p.add_argument(
        "--keep", action="store_true", help="keep the temporary directory (logs, databases)"
    )
    p.add_argument(
        "--no-uvloop", action="store_true", help="plain asyncio loop in the load generator"
    )
    p.add_argument(
        "--server-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for twistd messenger (repeatable), e.g. --server-arg=--window=200",
    )
    p.add_argument(
        "--source-addresses",
        type=int,
        default=64,
        metavar="N",
        help="loopback source addresses (127.0.0.1, .2, ...) the load generator spreads over",
    )
    p.add_argument(
        "--py-spy",
        metavar="DIR",
        help="record a py-spy flame graph of every messenger run into DIR (adds load)",
    )
    p.add_argument(
        "--db",
        default="sqlite",
        metavar="sqlite|postgres|URI",
        help="the messenger's database: SQLite files, a temporary PostgreSQL started here "
        "('postgres', its CPU counted as the server's), or a postgresql:// URI of yours "
        "(databases are created on it)",
    )
    p.add_argument(
        "--nodes",
        type=int,
        default=1,
        metavar="N",
        help="messenger nodes on one PostgreSQL database, with a redis-server started here "
        "for --bus when N > 1; clients are spread round-robin over them",
    )
    sizes = p.add_argument_group("sizes (defaults are the full sizes; --quick changes them)")
    for name, kind in (
        ("w1-clients", int),
        ("w1-messages", int),
        ("window", int),
        ("w2-members", int),
        ("w2-senders", int),
        ("w2-messages", int),
        ("w3-clients", int),
        ("w4-messages", int),
        ("w5-resumes", int),
        ("w5-resume-concurrency", int),
        ("w5-logins", int),
        ("w5-login-concurrency", int),
        ("scaling-messages", int),
        ("body-size", int),
        ("loadgen-procs", int),
    ):
        sizes.add_argument(f"--{name}", type=kind, default=None)
    sizes.add_argument(
        "--scaling-clients", type=_int_list, default=None, help="e.g. 10,100,1000,10000"
    )
    args = p.parse_args(argv)
    args.workload_list = (
        []
        if args.workloads.strip().lower() == "none"
        else [w.strip().upper() for w in args.workloads.split(",") if w.strip()]
    )
    unknown = set(args.workload_list) - set(workloads.WORKLOADS)
    if unknown:
        p.error(f"unknown workloads: {', '.join(sorted(unknown))}")
    if args.nodes < 1:
        p.error("--nodes: at least 1")
    if args.nodes > 1 and args.db == "sqlite":
        p.error("--nodes N > 1 needs --db postgres or a postgresql:// URI")
    args.target_list = [t.strip() for t in args.targets.split(",") if t.strip()]
    if set(args.target_list) - set(workloads.TARGETS) or not args.target_list:
        p.error("--targets: messenger and/or relay")
    # The baseline runs first, right before the messenger on the same workload.
    args.target_list.sort(key=workloads.TARGETS.index)
    return args


def build_sizes(args: argparse.Namespace) -> workloads.Sizes:
    base = workloads.QUICK if args.quick else workloads.Sizes()
    overrides = {
        f: getattr(args, f)
        for f in (
            "w1_clients",
            "w1_messages",
            "window",
            "w2_members",
            "w2_senders",
            "w2_messages",
            "w3_clients",
            "w4_messages",
            "w5_resumes",
            "w5_resume_concurrency",
            "w5_logins",
            "w5_login_concurrency",
            "scaling_messages",
            "body_size",
            "loadgen_procs",
        )
    }
    if args.scaling_clients:
        overrides["scaling_clients"] = tuple(args.scaling_clients)
    return workloads.sizes_with(base, **overrides)


def git_commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "messenger"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return head + ("+uncommitted changes in messenger/" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "?"


def standard_notes(args: argparse.Namespace) -> list[str]:
    notes = [
        "The messenger runs with `" + " ".join(FAST_ARGON2) + "` (cheap password hashing, so "
        "thousands of sign-ups are quick) everywhere except W5's password LOGINs, which use the "
        "default Argon2 cost (users signed up at that cost: a hash carries its own cost).",
        "The messenger runs with `" + " ".join(UNLIMITED_RATE) + "`: the default limit of 20 "
        "commands/s per connection would throttle the load clients. `--max-clients` is raised to "
        "the number of clients plus 200, and W4 passes `--max-pending` above its backlog.",
        "Every messenger run starts a fresh server on a copy of a database where the users were "
        "signed up (USR) and given tokens (TOKEN) through the protocol; clients log in with RESUME "
        "(W4's user with LOGIN).",
        "Server CPU is utime+stime of the whole server process (all threads) from /proc, from just "
        "before 'go' until the server is idle again after the last client event (trailing commits "
        "included); resolution 10 ms. Figures are noisy on a shared machine: compare ratios. "
        "'waiting for a CPU' is the run-queue wait of the process's threads (/proc/PID/task/*/schedstat) "
        "as a share of the wall time: well above 0, other processes were taking the CPUs.",
        f"The load generator connects from {args.source_addresses} loopback source addresses "
        "(127.0.0.1, .2, ...; always to 127.0.0.1), at most 16 logins in flight per address, as "
        "many hosts would: the server limits logins per source address (20 failures a minute; "
        "password checks queued 4 at a time), which is protection, not the capacity measured here.",
        "The relay (bench/relay.py) has no storage, no presence, no flow control and no checks; "
        "the ratio column is messenger ÷ relay, measured back to back.",
    ]
    notes.append(
        "Every user is a member of #general (the server makes it so); ON/OFF go only "
        "through rooms of at most --presence-room-limit members (default 200), so not "
        "through #general once it is larger (--server-arg=--presence-room-limit=N to change)."
    )
    if args.py_spy:
        notes.append("py-spy was sampling the messenger during the runs: its figures are slower.")
    if args.server_arg:
        notes.append("Extra messenger arguments: " + " ".join(args.server_arg))
    return notes


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = build_sizes(args)
    # SIGTERM unwinds like Ctrl-C, so that every child process is killed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = tempfile.mkdtemp(prefix="messenger-bench-", dir=args.tmpdir)
    reaper = Reaper()
    meta = {
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "size_name": "quick" if args.quick else "full",
        "sizes": workloads.sizes_dict(sizes),
        "cpus": procstat.cpu_count(),
        "loadavg_before": " ".join(f"{x:.2f}" for x in procstat.loadavg()),
        "python": platform.python_version(),
        "db_fs": procstat.filesystem_type(root),
        "commit": git_commit(),
        "workdir": root,
    }
    notes = standard_notes(args)
    outcomes: list[workloads.Outcome] = []
    scaling: list[workloads.Outcome] = []
    services = None
    meta["db"] = args.db.split("@")[-1] if "://" in args.db else args.db
    meta["nodes"] = args.nodes
    try:
        if args.db != "sqlite" or args.nodes > 1:
            services = Services(reaper, root, args.db, redis=args.nodes > 1)
            notes.append(
                f"The messenger runs on PostgreSQL ({meta['db']}) with {args.nodes} node(s)"
                + (", each with --bus on a redis-server started here" if args.nodes > 1 else "")
                + "; server CPU is the sum over every node"
                + (" and the PostgreSQL and Redis processes" if services.postgres else "")
                + ". Clients connect to the nodes round-robin."
            )
        bench = workloads.Bench(
            sizes,
            root,
            reaper,
            use_uvloop=not args.no_uvloop,
            server_args=args.server_arg,
            py_spy_dir=args.py_spy,
            source_addresses=args.source_addresses,
            services=services,
            nodes=args.nodes,
        )
        workloads.log(f"working in {root}")
        outcomes = workloads.run_all(bench, args.workload_list, args.target_list)
        if args.scaling or args.quick:
            scaling = workloads.run_scaling(bench, args.target_list)
        notes += bench.notes
        meta["loadgen_loop"] = bench.loadgen_loop
    finally:
        reaper.kill_all()
        if services is not None:
            services.stop()
        meta["loadavg_after"] = " ".join(f"{x:.2f}" for x in procstat.loadavg())
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    notes = list(dict.fromkeys(notes))
    text = report.markdown(outcomes, scaling, meta, notes)
    print(text)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    data = report.to_json(outcomes, scaling, meta, notes)
    if args.json:
        report.write_json(args.json, data)
    if args.plot:
        why_not = report.plot(args.plot, outcomes, scaling)
        if why_not:
            workloads.log(why_not)
    return 0 if data["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
