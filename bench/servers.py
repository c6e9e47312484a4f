"""Start, watch and stop the servers under test, on 127.0.0.1 only.

``messenger`` is the real thing, ``twistd -n messenger`` with a database in
a temporary directory (SQLite), or on PostgreSQL, one node or several
sharing the database and a Redis bus (:class:`Services`, :class:`Cluster`);
``relay`` is the bare baseline of :mod:`bench.relay`.
Every process started here is registered with a :class:`Reaper`, which
kills whatever is still running when the harness exits for any reason.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence

from bench.ports import HOST, free_port

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]

#: Password hashing cheap enough to sign up thousands of users (W1-W4).
FAST_ARGON2 = ("--argon2-time-cost", "1", "--argon2-memory-cost", "8")
#: Rate limit out of the way of the load clients (the default is 20/s).
UNLIMITED_RATE = ("--rate", "1000000", "--burst", "1000000")


class ServerFailed(RuntimeError):
    """A server did not start, or died while it was being measured."""


def die_with_parent() -> None:
    """preexec_fn: the child gets SIGKILL if the harness dies, even by
    SIGKILL itself, when nothing else could clean up (Linux only)."""
    try:
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def child_env() -> dict:
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = REPO_ROOT + (os.pathsep + path if path else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Reaper:
    """Every child process the harness started; ``kill_all`` at exit."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen] = []

    def add(self, proc: subprocess.Popen) -> subprocess.Popen:
        self._procs.append(proc)
        return proc

    def kill_all(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                try:
                    proc.kill()
                except OSError:
                    pass
        for proc in self._procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self._procs.clear()


class ServerProcess:
    """One server process (messenger or relay) and its log file."""

    def __init__(
        self,
        reaper: Reaper,
        kind: str,
        workdir: str,
        args: Sequence[str] = (),
        port: int | None = None,
        db: str | None = None,
        name: str | None = None,
    ) -> None:
        if kind not in ("messenger", "relay"):
            raise ValueError(kind)
        self.kind = kind
        self.workdir = workdir
        self.args = list(args)
        self.port = port or free_port()
        #: An SQLite path in the work directory, or a postgresql:// URI.
        self.db = db or os.path.join(workdir, "messenger.sqlite3")
        self.log_path = os.path.join(workdir, f"{name or kind}.log")
        self._reaper = reaper
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def command(self) -> list[str]:
        if self.kind == "relay":
            return [sys.executable, "-m", "bench.relay", "--port", str(self.port)] + self.args
        return (
            TWISTD
            + [
                "-n",
                "--pidfile",
                "",
                "messenger",
                "--listen",
                f"tcp:{self.port}:interface={HOST}",
                "--db",
                self.db,
            ]
            + self.args
        )

    def start(self, timeout: float = 60.0) -> ServerProcess:
        os.makedirs(self.workdir, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = self._reaper.add(
                subprocess.Popen(
                    self.command(),
                    cwd=self.workdir,
                    env=child_env(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    preexec_fn=die_with_parent,
                )
            )
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        """Until a connection gets HELLO (the messenger says BYE|503 while
        its store is still opening)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with socket.create_connection((HOST, self.port), timeout=2) as s:
                    s.settimeout(2)
                    data = b""
                    while b"\n" not in data and len(data) < 4096:
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    if data.startswith(b"HELLO|"):
                        s.sendall(b"QUIT\n")
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise ServerFailed(
            f"{self.kind} did not say HELLO within {timeout:.0f} s; see {self.log_path}\n{self.log_tail()}"
        )

    def check_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            code = None if self.proc is None else self.proc.returncode
            raise ServerFailed(
                f"{self.kind} exited (status {code}); see {self.log_path}\n{self.log_tail()}"
            )

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL if it is still there after ``timeout``."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            return None

    def log_tail(self, lines: int = 20) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 8192))
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def error_lines(self, limit: int = 5) -> list[str]:
        """Tracebacks and failures in the log, for the report."""
        found = []
        try:
            with open(self.log_path, "rb") as f:
                for raw in f:
                    if b"Traceback" in raw or b"Unhandled" in raw or b" failed" in raw:
                        found.append(raw.decode("utf-8", "replace").rstrip())
                        if len(found) >= limit:
                            break
        except OSError:
            pass
        return found


class Services:
    """PostgreSQL and Redis for ``--db postgres`` and ``--nodes N``.

    ``database``: ``"sqlite"`` (nothing to start), ``"postgres"`` (a
    temporary PostgreSQL started here with tests/support/postgres.py), or a
    ``postgresql://`` URI of a server the user runs (databases are created
    on it, its CPU is not counted).  Redis is started when ``redis``.
    """

    def __init__(self, reaper: Reaper, workdir: str, database: str, redis: bool) -> None:
        self.database = database
        self.postgres = None
        self._admin_uri: str | None = None
        self._names = 0
        self.redis_proc: subprocess.Popen | None = None
        self.redis_uri: str | None = None
        if database == "postgres":
            from tests.support.postgres import PostgresServer

            self.postgres = PostgresServer()
            self.postgres.start()
            self._admin_uri = self.postgres.uri()
        elif database.startswith(("postgresql://", "postgres://")):
            self._admin_uri = database
        if redis:
            port = free_port()
            self.redis_proc = reaper.add(
                subprocess.Popen(
                    ["redis-server", "--port", str(port), "--bind", HOST, "--save", "",
                     "--appendonly", "no"],
                    cwd=workdir,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    preexec_fn=die_with_parent,
                )
            )  # fmt: skip
            self.redis_uri = f"redis://{HOST}:{port}/0"
            _wait_for_port(port, "redis-server")

    @property
    def on_postgres(self) -> bool:
        return self._admin_uri is not None

    def new_database(self, template: str | None = None) -> str:
        """A new PostgreSQL database (a copy of ``template``'s URI); its URI."""
        import psycopg

        assert self._admin_uri is not None
        self._names += 1
        name = f"bench_{os.getpid()}_{self._names}"
        copy = ""
        if template is not None:
            copy = f' TEMPLATE "{template.rsplit("/", 1)[1].split("?")[0]}"'
        with psycopg.connect(self._admin_uri, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"{copy}')
        base = self._admin_uri.split("?")[0].rsplit("/", 1)[0]
        return f"{base}/{name}"

    def pids(self) -> list[int]:
        """The service processes whose CPU counts as the server's."""
        pids = self.postgres.pids() if self.postgres is not None else []
        if self.redis_proc is not None and self.redis_proc.poll() is None:
            pids.append(self.redis_proc.pid)
        return pids

    def stop(self) -> None:
        if self.redis_proc is not None and self.redis_proc.poll() is None:
            self.redis_proc.terminate()
            self.redis_proc.wait(timeout=10)
        if self.postgres is not None:
            self.postgres.cleanup()


def _wait_for_port(port: int, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise ServerFailed(f"{what} did not listen on {port} within {timeout:.0f} s")


class Cluster:
    """``nodes`` messenger processes on one database (each with the Redis
    bus when there are several), seen by the workloads as one server: the
    ports to spread clients over, and every process whose CPU counts."""

    def __init__(
        self,
        reaper: Reaper,
        workdir: str,
        args: Sequence[str],
        db: str | None,
        nodes: int,
        services: Services | None,
    ) -> None:
        self.services = services
        self.nodes: list[ServerProcess] = []
        for i in range(nodes):
            node_args = list(args)
            if nodes > 1:
                assert services is not None and services.redis_uri is not None
                node_args += ["--bus", services.redis_uri, "--node-id", f"node{i + 1}"]
            self.nodes.append(
                ServerProcess(reaper, "messenger", workdir, node_args, db=db, name=f"node{i + 1}")
            )

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    @property
    def port(self) -> int:
        return self.nodes[0].port

    @property
    def pid(self) -> int:
        return self.nodes[0].pid

    def pids(self) -> list[int]:
        pids = [node.pid for node in self.nodes]
        if self.services is not None:
            pids += self.services.pids()
        return pids

    def start(self) -> Cluster:
        for node in self.nodes:
            node.start()
        return self

    def check_alive(self) -> None:
        for node in self.nodes:
            node.check_alive()

    def stop(self) -> int | None:
        """Every node's SIGTERM; the first status that is not 0, else 0."""
        statuses = [node.stop() for node in self.nodes]
        return next((status for status in statuses if status != 0), 0)

    def error_lines(self, limit: int = 5) -> list[str]:
        return [line for node in self.nodes for line in node.error_lines(limit)][:limit]
