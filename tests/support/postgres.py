"""A throw-away PostgreSQL server for tests and the benchmark.

:class:`PostgresServer` is a plain class (no pytest in it): ``initdb`` into
a temporary directory, run as an unprivileged user (``postgres`` when we are
root: PostgreSQL refuses to run as root), listening on a free 127.0.0.1
port only, with ``fsync`` on as in production.  A fresh database per test is
cheap (``CREATE DATABASE`` from a small template); the server itself is
started once per test session (:func:`shared_server`) and stopped at exit.

:func:`require_postgres` is the tests' rule for a missing binary: skip with
a one-line reason, or fail when ``MESSENGER_REQUIRE_SERVICES=1`` (CI).
"""

from __future__ import annotations

import atexit
import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile

from tests.support.server import HOST, free_port

USER = "messenger"
_SEARCH = ["/usr/lib/postgresql/*/bin", "/usr/local/pgsql/bin"]


def find_bindir() -> str | None:
    """The directory of ``initdb`` and ``postgres``, or None."""
    on_path = shutil.which("initdb")
    if on_path:
        return os.path.dirname(on_path)
    for pattern in _SEARCH:
        for directory in sorted(glob.glob(pattern), reverse=True):
            if os.path.exists(os.path.join(directory, "initdb")):
                return directory
    return None


class PostgresServer:
    def __init__(self, bindir: str | None = None) -> None:
        found = bindir or find_bindir()
        if found is None:
            raise FileNotFoundError("PostgreSQL is not installed (no initdb found)")
        self.bindir = found
        self.directory = tempfile.mkdtemp(prefix="messenger-pg-")
        self.data = os.path.join(self.directory, "data")
        self.log = os.path.join(self.directory, "postgres.log")
        self.port = free_port()
        self._names = itertools.count(1)
        self._schemas_database: str | None = None
        self._run_as: list[str] = []
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(self.directory, account.pw_uid, account.pw_gid)
            self._run_as = ["runuser", "-u", "postgres", "--"]
        self._initdb()

    def _command(self, name: str, *args: str) -> list[str]:
        return [*self._run_as, os.path.join(self.bindir, name), *args]

    def _initdb(self) -> None:
        subprocess.run(
            self._command(
                "initdb", "-D", self.data, "-U", USER, "-A", "trust", "-E", "UTF8", "--no-sync"
            ),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    @property
    def running(self) -> bool:
        return os.path.exists(os.path.join(self.data, "postmaster.pid"))

    def start(self) -> None:
        """Start (or start again, on the same port and data)."""
        options = (
            f"-p {self.port} -c listen_addresses={HOST} -k {self.directory}"
            " -c fsync=on -c max_connections=200 -c shared_buffers=64MB"
        )
        subprocess.run(
            self._command("pg_ctl", "-D", self.data, "-l", self.log, "-o", options, "-w", "start"),
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop, keeping the data (``start`` brings it back)."""
        if self.running:
            subprocess.run(
                self._command("pg_ctl", "-D", self.data, "-m", mode, "-w", "stop"),
                check=False,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

    def cleanup(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)

    def uri(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@{HOST}:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; its URI."""
        import psycopg

        if name is None:
            name = f"test_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.uri(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.uri(name)

    def fresh_schema(self) -> str:
        """The URI of an empty schema of its own in a shared database (a
        few milliseconds, where a new database takes a few hundred)."""
        import psycopg

        if self._schemas_database is None:
            self._schemas_database = self.create_database("schemas")
        name = f"s_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self._schemas_database, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {name}")
        return f"{self._schemas_database}?options=-csearch_path%3D{name}"

    def drop_database(self, uri: str) -> None:
        import psycopg

        name = uri.rsplit("/", 1)[1]
        with psycopg.connect(self.uri(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def pids(self) -> list[int]:
        """Every process of the server (for CPU accounting)."""
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                postmaster = int(f.readline())
        except (OSError, ValueError):
            return []
        children = subprocess.run(
            ["pgrep", "-P", str(postmaster)], capture_output=True, text=True
        ).stdout.split()
        return [postmaster, *(int(pid) for pid in children)]


_shared: PostgresServer | None = None


def shared_server() -> PostgresServer:
    """One running server for the whole process, stopped at exit."""
    global _shared
    if _shared is None:
        server = PostgresServer()
        atexit.register(server.cleanup)
        server.start()
        _shared = server
    return _shared


def skip_unless_postgres() -> None:
    """Skip the calling test when PostgreSQL is not installed, or fail it
    when MESSENGER_REQUIRE_SERVICES=1 (CI must never pass by skipping)."""
    import pytest

    if find_bindir() is None:
        reason = "PostgreSQL is not installed (initdb not found)"
        if os.environ.get("MESSENGER_REQUIRE_SERVICES") == "1":
            pytest.fail(reason + " and MESSENGER_REQUIRE_SERVICES=1", pytrace=False)
        pytest.skip(reason)


def require_postgres() -> PostgresServer:
    """The shared server (see :func:`skip_unless_postgres`)."""
    skip_unless_postgres()
    return shared_server()
