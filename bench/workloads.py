"""The workloads W1-W5 and the scaling sweep, from the harness's side.

For each workload and each target (``messenger``, and the ``relay``
baseline where it can run the workload) the harness starts a fresh server
on 127.0.0.1, starts the load generator(s), lets them prepare (log in, fill
a backlog), samples the server's CPU time and memory from ``/proc``, says
go, and samples again once the load generator reports and the server has
gone idle.  The two targets of one workload run back to back, so that their
ratio compares like with like on a shared machine.

Users are signed up (``USR``) and given tokens (``TOKEN``) once per
population size, through the protocol, on a server that is then stopped;
every measured server starts on a copy of that database.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from bench import procstat, profiling
from bench.relay import TOKEN as RELAY_TOKEN
from bench.runner import Loadgen
from bench.servers import FAST_ARGON2, UNLIMITED_RATE, Cluster, Reaper, ServerProcess, Services
from bench.stats import summarize_us, unpack_latencies

TARGETS = ("relay", "messenger")
PASSWORD = "bench-password-1"


@dataclass(frozen=True)
class Sizes:
    """Every size of every workload; ``QUICK`` is the --quick variant."""

    w1_clients: int = 200
    w1_messages: int = 300_000
    window: int = 8
    w2_members: int = 100
    w2_senders: int = 10
    w2_messages: int = 2_000
    w3_clients: int = 10_000
    w4_messages: int = 50_000
    w5_resumes: int = 10_000
    w5_resume_concurrency: int = 100
    w5_logins: int = 64
    w5_login_concurrency: int = 8
    scaling_clients: tuple[int, ...] = (10, 100, 1_000, 10_000)
    scaling_messages: int = 100_000
    body_size: int = 64
    loadgen_procs: int = 1


QUICK = Sizes(
    w1_clients=20,
    w1_messages=3_000,
    w2_members=20,
    w2_senders=4,
    w2_messages=200,
    w3_clients=300,
    w4_messages=3_000,
    w5_resumes=300,
    w5_resume_concurrency=20,
    w5_logins=8,
    w5_login_concurrency=4,
    scaling_clients=(10, 100),
    scaling_messages=3_000,
)


@dataclass
class Population:
    """Users with passwords and tokens; for the messenger, a database."""

    count: int
    path: str  # JSON: {"users": [[name, password, token], ...]}
    db: str | None = None
    setup_s: float = 0.0


@dataclass
class Outcome:
    """One workload on one target."""

    workload: str
    target: str
    figures: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def log(message: str) -> None:
    sys.stderr.write(time.strftime("%H:%M:%S ") + message + "\n")
    sys.stderr.flush()


class Bench:
    """Everything one invocation shares: sizes, options, temporary files,
    started processes and the populations built so far."""

    def __init__(
        self,
        sizes: Sizes,
        root: str,
        reaper: Reaper,
        use_uvloop: bool = True,
        server_args: Sequence[str] = (),
        py_spy_dir: str | None = None,
        source_addresses: int = 64,
        services: Services | None = None,
        nodes: int = 1,
    ) -> None:
        self.source_addresses = source_addresses
        #: PostgreSQL and Redis when the messenger runs on them.
        self.services = services
        self.nodes = nodes
        self.sizes = sizes
        self.py_spy_dir = py_spy_dir
        self.loadgen_loop = "?"
        self.root = root
        self.reaper = reaper
        self.use_uvloop = use_uvloop
        self.server_args = list(server_args)
        self.notes: list[str] = []
        self._populations: dict[tuple, Population] = {}
        self._counter = 0
        soft, hard, warning = procstat.raise_nofile(
            max(sizes.w3_clients, max(sizes.scaling_clients)) + 1024
        )
        self.nofile = soft
        if warning:
            self.notes.append(warning)

    # -- helpers --------------------------------------------------------------

    def new_dir(self, name: str) -> str:
        self._counter += 1
        path = os.path.join(self.root, f"{self._counter:02d}-{name}")
        os.makedirs(path)
        return path

    def new_database(self, template: str | None = None) -> str | None:
        """A new PostgreSQL database (a copy of ``template``) when the
        messenger runs on PostgreSQL, else None (an SQLite file in the run's
        directory)."""
        if self.services is None or not self.services.on_postgres:
            return None
        return self.services.new_database(template)

    def max_clients(self, wanted: int) -> int:
        """``wanted`` clients, or as many as the descriptor limit allows."""
        usable = self.nofile - 200
        if wanted > usable:
            self.notes.append(
                f"only {usable} clients instead of {wanted}: file descriptor limit {self.nofile}"
            )
            return max(2, usable)
        return wanted

    def messenger_args(
        self, clients: int, default_cost: bool = False, extra: Sequence[str] = ()
    ) -> list[str]:
        args = list(UNLIMITED_RATE) + ["--max-clients", str(max(1000, clients + 200))]
        if not default_cost:
            args += FAST_ARGON2
        return args + list(extra) + self.server_args

    def loadgen_spec(
        self, mode: str, timeout: float, prepare_timeout: float | None = None, **params: Any
    ) -> dict[str, Any]:
        """``timeout`` bounds the measured phase, ``prepare_timeout`` the
        logins (or the backlog fill) before it."""
        prepare_timeout = prepare_timeout or timeout
        return {
            "mode": mode,
            "timeout": timeout,
            "prepare_timeout": prepare_timeout,
            "deadline": prepare_timeout + 3 * timeout + 600,
            "go_timeout": 3 * timeout + 300,
            "uvloop": self.use_uvloop,
            "nofile": self.nofile,
            "body_size": self.sizes.body_size,
            "source_addresses": self.source_addresses,
            "logins_per_address": 16,
            **params,
        }

    # -- populations ----------------------------------------------------------

    def population(self, target: str, count: int, default_cost: bool = False) -> Population:
        key = (target, count, default_cost)
        if key in self._populations:
            return self._populations[key]
        if target == "relay":
            path = os.path.join(self.root, f"relay-users-{count}.json")
            with open(path, "w", encoding="utf-8") as f:
                json.dump(
                    {
                        "users": [
                            [f"u{i:05d}", PASSWORD, RELAY_TOKEN.decode()] for i in range(count)
                        ]
                    },
                    f,
                )
            population = Population(count, path)
        else:
            population = self._sign_up(count, default_cost)
        self._populations[key] = population
        return population

    def _sign_up(self, count: int, default_cost: bool) -> Population:
        cost = "default-cost" if default_cost else "fast"
        workdir = self.new_dir(f"users-{count}-{cost}")
        log(f"signing up {count} users ({cost} Argon2)")
        server = ServerProcess(
            self.reaper,
            "messenger",
            workdir,
            self.messenger_args(count, default_cost),
            db=self.new_database(),
        ).start()
        path = os.path.join(workdir, "users.json")
        timeout = 120 + count * (0.2 if default_cost else 0.02)
        started = time.monotonic()
        loadgen = Loadgen(
            self.reaper,
            self.loadgen_spec(
                "setup",
                timeout,
                port=server.port,
                count=count,
                population=path,
                password=PASSWORD,
                token_connections=min(64, max(1, count // 4)),
            ),
            os.path.join(workdir, "loadgen.log"),
        )
        try:
            loadgen.expect("ready", 60)
            loadgen.send("go")
            result = loadgen.expect("result", timeout + 60)
        finally:
            loadgen.close()
            status = server.stop()
        if status != 0:
            raise RuntimeError(
                f"the messenger did not stop cleanly after sign-up (status {status})"
            )
        log(f"  {count} users in {result['sign_up_s']:.1f} s, tokens in {result['tokens_s']:.1f} s")
        return Population(count, path, server.db, time.monotonic() - started)

    # -- one measured run -------------------------------------------------------

    def measure(
        self,
        workload: str,
        target: str,
        population: Population,
        specs: list[dict[str, Any]],
        server_args: Sequence[str] = (),
        hold: bool = False,
        timeout: float = 300,
        prepare_timeout: float | None = None,
    ) -> dict[str, Any]:
        """Start a server and the load generators, run one measured phase,
        stop everything; the raw results and the server's samples."""
        workdir = self.new_dir(f"{workload}-{target}")
        server: ServerProcess | Cluster
        if target == "messenger":
            run_db = None
            if self.services is not None and self.services.on_postgres:
                run_db = self.services.new_database(template=population.db)
            elif population.db:
                for suffix in ("", "-wal", "-shm"):
                    if os.path.exists(population.db + suffix):
                        shutil.copy(
                            population.db + suffix,
                            os.path.join(workdir, "messenger.sqlite3" + suffix),
                        )
            server = Cluster(self.reaper, workdir, server_args, run_db, self.nodes, self.services)
        else:
            server = ServerProcess(self.reaper, target, workdir)
        server.start()
        #: The processes whose CPU is the server's: every node, and
        #: PostgreSQL's and Redis's processes when they are used.
        pids: int | list[int] = server.pids() if isinstance(server, Cluster) else server.pid
        service_pids = self.services.pids() if self.services and target == "messenger" else []
        ports = server.ports if isinstance(server, Cluster) else [server.port]
        out: dict[str, Any] = {"server_pid": server.pid}
        loadgens: list[Loadgen] = []
        spy = None
        try:
            started_idle = procstat.sample(pids)
            for i, spec in enumerate(specs):
                spec = dict(spec, port=server.port, ports=ports, population=population.path)
                loadgens.append(
                    Loadgen(self.reaper, spec, os.path.join(workdir, f"loadgen{i}.log"))
                )
            out["loadgen_loop"] = self.loadgen_loop = loadgens[0].info.get("loop", "?")
            out["ready"] = [
                lg.expect("ready", (prepare_timeout or timeout) + 30) for lg in loadgens
            ]
            server.check_alive()
            # After 10,000 logins the server may still be writing ON events.
            before = procstat.settle(
                pids, timeout=min(600.0, max(30.0, (prepare_timeout or timeout) / 2))
            )
            services_before = procstat.sample(service_pids)
            if self.py_spy_dir and target == "messenger":
                spy = profiling.PySpy(self.reaper, server.pid, self.py_spy_dir, workload)
            out["rss_idle_fresh"] = started_idle.rss
            out["rss_before"] = before.rss
            for lg in loadgens:
                lg.send("go")
            if hold:
                out["hold"] = [lg.expect("hold", timeout + 30) for lg in loadgens]
                held_at = time.monotonic()
                at_hold = procstat.sample(pids)
                settled = procstat.settle(pids, timeout=min(120.0, timeout), quiet=0.5)
                out["hold_cpu_s"] = at_hold.cpu - before.cpu
                out["hold_settled_cpu_s"] = settled.cpu - before.cpu
                out["hold_settle_s"] = settled.at - held_at
                out["hold_wait_s"] = settled.wait - before.wait
                out["rss_held"] = settled.rss
                for lg in loadgens:
                    lg.send("release")
            out["results"] = [lg.expect("result", timeout + 30) for lg in loadgens]
            if spy is not None:
                out["profile"] = spy.stop()
            after = procstat.settle(pids, timeout=30)
            server.check_alive()
            for lg in loadgens:
                lg.send("release")  # now they disconnect, outside the window
            out["cpu_s"] = after.cpu - before.cpu
            # Of which PostgreSQL's and Redis's processes (0 on SQLite).
            out["services_cpu_s"] = procstat.sample(service_pids).cpu - services_before.cpu
            out["cpu_window_s"] = after.at - before.at
            out["wait_s"] = after.wait - before.wait
            out["rss_after"] = after.rss
        finally:
            if spy is not None:
                spy.stop()
            for lg in loadgens:
                lg.close()
            out["exit_status"] = server.stop()
            out["server_errors"] = server.error_lines()
        return out


# --------------------------------------------------------------------------
# figures shared by the message workloads


#: The correctness counts of a traffic run (each must be 0 but "delivered").
_TRAFFIC_CHECKS = (
    "delivered",
    "lost",
    "duplicated",
    "redelivered",
    "rejected",
    "unanswered",
    "misdelivered",
    "echoed",
    "dlv_missing",
)


def _merge_traffic(raw: dict[str, Any]) -> dict[str, Any]:
    results = raw["results"]
    merged: dict[str, Any] = {}
    for key in (*_TRAFFIC_CHECKS, "accepted"):
        values = [r.get(key) for r in results if r.get(key) is not None]
        if values:
            merged[key] = sum(values)
    merged["timed_out"] = any(r.get("timed_out") for r in results)
    merged["start"] = min(r["start"] for r in results)
    merged["end"] = max(r["end"] for r in results)
    merged["loadgen_cpu_s"] = sum(r["loadgen_cpu_s"] for r in results)
    merged["loadgen_wall_s"] = max(r["loadgen_wall_s"] for r in results)
    merged["loadgen_wait_s"] = sum(r.get("loadgen_wait_s", 0.0) for r in results)
    merged["latency"] = summarize_us(unpack_latencies(r.get("latencies_us", "") for r in results))
    merged["byes"] = sum((r.get("byes", []) for r in results), [])[:5]
    merged["unexpected"] = sum((r.get("unexpected", []) for r in results), [])[:5]
    merged["errors"] = [r.get("errors") for r in results if r.get("errors", {}).get("counts")]
    return merged


def _traffic_figures(
    raw: dict[str, Any], unit: str
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    m = _merge_traffic(raw)
    elapsed = max(1e-9, m["end"] - m["start"])
    delivered = m.get("delivered", 0)
    lat = m["latency"]
    figures = {
        f"{unit}_per_s": delivered / elapsed,
        "p50_ms": lat["p50_ms"],
        "p99_ms": lat["p99_ms"],
        "max_ms": lat["max_ms"],
        f"server_cpu_us_per_{unit}": raw["cpu_s"] * 1e6 / delivered if delivered else None,
        "server_core_pct": 100.0 * raw["cpu_s"] / elapsed,
        f"loadgen_cpu_us_per_{unit}": m["loadgen_cpu_s"] * 1e6 / delivered if delivered else None,
        "loadgen_core_pct": 100.0 * m["loadgen_cpu_s"] / max(1e-9, m["loadgen_wall_s"]),
        "server_wait_pct": 100.0 * raw["wait_s"] / elapsed,
        "loadgen_wait_pct": 100.0 * m["loadgen_wait_s"] / max(1e-9, m["loadgen_wall_s"]),
        "elapsed_s": elapsed,
    }
    checks = {k: m.get(k) for k in _TRAFFIC_CHECKS if m.get(k) is not None}
    checks["timed_out"] = m["timed_out"]
    checks.update(_server_checks(raw))
    details = {
        "byes": m["byes"],
        "unexpected": m["unexpected"],
        "errors": m["errors"],
        "server_cpu_s": raw["cpu_s"],
        "services_cpu_s": raw.get("services_cpu_s", 0.0),
        "loadgen_cpu_s": m["loadgen_cpu_s"],
        "server_errors": raw.get("server_errors"),
        "ready": raw.get("ready"),
        "loadgen_loop": raw.get("loadgen_loop"),
    }
    return figures, checks, details


def _server_checks(raw: dict[str, Any]) -> dict[str, Any]:
    """The server must exit with status 0 on SIGTERM (None: it had to be killed)."""
    return {"server_exit": raw.get("exit_status")}


def _outcome(workload: str, target: str, run: Callable[[], Outcome]) -> Outcome:
    log(f"{workload} on the {target}")
    try:
        outcome = run()
    except Exception as e:  # one failed run must not lose the others
        first_line = (str(e).splitlines() or [""])[0]
        log(f"  {workload} on the {target} failed: {type(e).__name__}: {e}")
        return Outcome(
            workload,
            target,
            error=f"{type(e).__name__}: {first_line}",
            details={"exception": str(e)},
        )
    brief = ", ".join(f"{k}={_short(v)}" for k, v in list(outcome.figures.items())[:4])
    log(f"  {brief}")
    return outcome


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


# --------------------------------------------------------------------------
# W1: direct messages (and the scaling sweep)


def direct(bench: Bench, target: str, clients: int, messages: int, workload: str = "W1") -> Outcome:
    def run() -> Outcome:
        sizes = bench.sizes
        n = bench.max_clients(clients)
        population = bench.population(target, n)
        procs = max(1, min(sizes.loadgen_procs, n // 2))
        timeout = max(60.0, messages / 500.0 + n / 50.0)
        # 10,000 logins, each fanning ON out to everyone online, take minutes.
        prepare_timeout = 120.0 + n * 0.1
        specs = []
        for p in range(procs):
            first, last = p * n // procs, (p + 1) * n // procs
            share = messages * (last - first) // n
            specs.append(
                bench.loadgen_spec(
                    "direct",
                    timeout,
                    prepare_timeout,
                    users=[first, last],
                    messages=max(share, last - first),
                    window=sizes.window,
                    expect_dlv=(target == "messenger"),
                    seed=p + 1,
                    connect_concurrency=256,
                )
            )
        raw = bench.measure(
            workload,
            target,
            population,
            specs,
            bench.messenger_args(n),
            timeout=timeout,
            prepare_timeout=prepare_timeout,
        )
        figures, checks, details = _traffic_figures(raw, "msg")
        figures = {"clients": n, "loadgen_procs": procs, **figures}
        return Outcome(workload, target, figures, checks, details)

    return _outcome(workload, target, run)


# --------------------------------------------------------------------------
# W2: room fan-out


def room(bench: Bench, target: str) -> Outcome:
    def run() -> Outcome:
        sizes = bench.sizes
        population = bench.population(target, sizes.w2_members)
        lines = sizes.w2_messages * (sizes.w2_members - 1)
        timeout = max(60.0, lines / 2000.0)
        spec = bench.loadgen_spec(
            "room",
            timeout,
            120.0 + sizes.w2_members * 0.1,
            members=sizes.w2_members,
            senders=sizes.w2_senders,
            messages=sizes.w2_messages,
            window=sizes.window,
            room="#bench",
        )
        raw = bench.measure(
            "W2",
            target,
            population,
            [spec],
            bench.messenger_args(sizes.w2_members),
            timeout=timeout,
            prepare_timeout=spec["prepare_timeout"],
        )
        figures, checks, details = _traffic_figures(raw, "line")
        figures = {"members": sizes.w2_members, "senders": sizes.w2_senders, **figures}
        return Outcome("W2", target, figures, checks, details)

    return _outcome("W2", target, run)


# --------------------------------------------------------------------------
# W3: idle connections


def idle(bench: Bench, target: str) -> Outcome:
    def run() -> Outcome:
        n = bench.max_clients(bench.sizes.w3_clients)
        population = bench.population(target, n)
        # With everyone in #general, 10,000 logins took 8 minutes (ON fan-out).
        timeout = max(60.0, n / 10.0)
        spec = bench.loadgen_spec("idle", timeout, clients=n, connect_concurrency=256)
        raw = bench.measure(
            "W3", target, population, [spec], bench.messenger_args(n), hold=True, timeout=timeout
        )
        result = raw["results"][0]
        logged_in = result["logged_in"]
        rss_delta = raw["rss_held"] - raw["rss_before"]
        figures = {
            "clients": n,
            "login_all_s": result["login_s"],
            "logins_per_s": logged_in / max(1e-9, result["login_s"]),
            "until_server_idle_s": result["login_s"] + raw["hold_settle_s"],
            "rss_idle_mb": raw["rss_before"] / 2**20,
            "rss_held_mb": raw["rss_held"] / 2**20,
            "rss_kb_per_conn": rss_delta / 1024 / max(1, min(logged_in, result["still_open"])),
            "server_cpu_us_per_login": raw["hold_settled_cpu_s"] * 1e6 / max(1, logged_in),
            "events_received": result["events"],
            "server_wait_pct": 100.0
            * raw["hold_wait_s"]
            / max(1e-9, result["login_s"] + raw["hold_settle_s"]),
            "loadgen_core_pct": 100.0
            * result["loadgen_cpu_s"]
            / max(1e-9, result["loadgen_wall_s"]),
        }
        checks = {
            "logged_in": logged_in,
            "failed": result["failed"],
            "dropped": logged_in - result["still_open"],
            "timed_out": result["timed_out"],
            **_server_checks(raw),
        }
        details = {
            "byes": result["byes"][:5],
            "errors": result["errors"],
            "server_errors": raw["server_errors"],
            "hold_settle_s": raw["hold_settle_s"],
        }
        return Outcome("W3", target, figures, checks, details)

    return _outcome("W3", target, run)


# --------------------------------------------------------------------------
# W4: backlog drain


def backlog(bench: Bench, target: str = "messenger") -> Outcome:
    def run() -> Outcome:
        messages = bench.sizes.w4_messages
        population = bench.population(target, 5)
        timeout = max(60.0, messages / 500.0)
        spec = bench.loadgen_spec(
            "backlog", timeout, 60.0 + messages / 500.0, messages=messages, sources=4
        )
        args = bench.messenger_args(5, extra=["--max-pending", str(max(10_000, messages + 1_000))])
        raw = bench.measure(
            "W4",
            target,
            population,
            [spec],
            args,
            timeout=timeout,
            prepare_timeout=spec["prepare_timeout"],
        )
        result = raw["results"][0]
        elapsed = max(1e-9, result["end"] - result["start"])
        delivered = result["delivered"]
        figures = {
            "messages": messages,
            "msg_per_s": delivered / elapsed,
            "drain_s": elapsed,
            "server_cpu_us_per_msg": raw["cpu_s"] * 1e6 / max(1, delivered),
            "loadgen_core_pct": 100.0
            * result["loadgen_cpu_s"]
            / max(1e-9, result["loadgen_wall_s"]),
            "fill_msg_per_s": raw["ready"][0]["fill_rate"],
            "server_wait_pct": 100.0 * raw["wait_s"] / elapsed,
        }
        checks = {
            k: result[k] for k in ("delivered", "lost", "duplicated", "redelivered", "timed_out")
        }
        checks.update(_server_checks(raw))
        details = {
            "byes": result["byes"],
            "unexpected": result["unexpected"],
            "errors": result["errors"],
            "server_errors": raw["server_errors"],
            "server_cpu_s": raw["cpu_s"],
            "services_cpu_s": raw.get("services_cpu_s", 0.0),
        }
        return Outcome("W4", target, figures, checks, details)

    return _outcome("W4", target, run)


# --------------------------------------------------------------------------
# W5: login storms


def storm(bench: Bench, target: str, verb: str) -> Outcome:
    workload = "W5-resume" if verb == "RESUME" else "W5-login"

    def run() -> Outcome:
        sizes = bench.sizes
        if verb == "RESUME":
            count, concurrency = sizes.w5_resumes, sizes.w5_resume_concurrency
            population = bench.population(target, bench.max_clients(count))
            args = bench.messenger_args(concurrency)
        else:
            count, concurrency = sizes.w5_logins, sizes.w5_login_concurrency
            # Users signed up at the default cost: the hash carries its cost.
            population = bench.population(target, concurrency, default_cost=True)
            args = bench.messenger_args(concurrency, default_cost=True)
        timeout = max(60.0, count / (20.0 if verb == "RESUME" else 2.0))
        spec = bench.loadgen_spec(
            "storm",
            timeout,
            count=count,
            concurrency=concurrency,
            verb=verb,
            users=population.count,
            connect_concurrency=256,
        )
        raw = bench.measure(workload, target, population, [spec], args, timeout=timeout)
        result = raw["results"][0]
        elapsed = max(1e-9, result["end"] - result["start"])
        lat = summarize_us(unpack_latencies([result["latencies_us"]]))
        figures = {
            "logins": count,
            "concurrency": concurrency,
            "logins_per_s": result["ok"] / elapsed,
            "p50_ms": lat["p50_ms"],
            "p99_ms": lat["p99_ms"],
            "server_cpu_us_per_login": raw["cpu_s"] * 1e6 / max(1, result["ok"]),
            "loadgen_core_pct": 100.0
            * result["loadgen_cpu_s"]
            / max(1e-9, result["loadgen_wall_s"]),
            "server_wait_pct": 100.0 * raw["wait_s"] / elapsed,
        }
        checks = {
            "ok": result["ok"],
            "failed": result["failed"],
            "timed_out": result["timed_out"],
            **_server_checks(raw),
        }
        details = {"errors": result["errors"], "server_errors": raw["server_errors"]}
        return Outcome(workload, target, figures, checks, details)

    return _outcome(workload, target, run)


# --------------------------------------------------------------------------
# the whole run


WORKLOADS = ("W1", "W2", "W3", "W4", "W5")


def run_all(bench: Bench, selected: Sequence[str], targets: Sequence[str]) -> list[Outcome]:
    """Each selected workload, its baseline (relay) right before it."""
    sizes = bench.sizes
    outcomes: list[Outcome] = []
    with_messenger = "messenger" in targets
    for name in selected:
        if name == "W1":
            for target in targets:
                outcomes.append(direct(bench, target, sizes.w1_clients, sizes.w1_messages))
        elif name == "W2":
            for target in targets:
                outcomes.append(room(bench, target))
        elif name == "W3":
            for target in targets:
                outcomes.append(idle(bench, target))
        elif name == "W4" and with_messenger:
            outcomes.append(backlog(bench))
        elif name == "W5":
            for target in targets:
                outcomes.append(storm(bench, target, "RESUME"))
            if with_messenger:
                outcomes.append(storm(bench, "messenger", "LOGIN"))
    return outcomes


def run_scaling(bench: Bench, targets: Sequence[str]) -> list[Outcome]:
    outcomes = []
    for clients in bench.sizes.scaling_clients:
        messages = max(bench.sizes.scaling_messages, 2 * clients)
        for target in targets:
            outcomes.append(direct(bench, target, clients, messages, workload=f"scale-{clients}"))
    return outcomes


def sizes_with(base: Sizes, **overrides: Any) -> Sizes:
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})


def sizes_dict(sizes: Sizes) -> dict[str, Any]:
    return asdict(sizes)
