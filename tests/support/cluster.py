"""Several real ``twistd messenger`` nodes that behave as one server.

``ClusterProcess`` starts N nodes on free ports of 127.0.0.1, all on one
database and one Redis bus (``--db``, ``--bus``, ``--node-id``), and hands
out clients round robin, one node each, the way a TCP load balancer would.
It has the interface of :class:`tests.support.server.ServerProcess` that
the integration tests use (``client()``, ``stop()``, ``kill()``,
``restart()``, ``wait()``, ``log_text()``, ``process.send_signal()``...),
applied to every node at once, so a test written for one server runs
unchanged on a cluster::

    server = start_server(self, "--rate", "1000")   # one node, or N with
    alice = server.client()                        # ``topology`` set on the
    bob = server.client()                          # test class

The database is the PostgreSQL server of :mod:`tests.support.postgres`
shared by the test run, one database per cluster (or one SQLite file with
``database="sqlite"``); the bus is a redis-server of the cluster's own
(:mod:`tests.support.redis`).  Each node is a :class:`Node` (a
``ServerProcess``) with its own log, printed when a test fails.  Services that are not installed skip the test, or fail it when
``MESSENGER_REQUIRE_SERVICES=1`` (CI).  Everything uses 127.0.0.1 only.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

from tests.support.postgres import PostgresServer, shared_server, skip_unless_postgres
from tests.support.redis import RedisServer
from tests.support.server import (
    DEFAULT_TIMEOUT,
    LineClient,
    ServerProcess,
)

# -- the database --------------------------------------------------------------


def postgres_database(testcase, private: bool = False) -> tuple[PostgresServer, str]:
    """A fresh database: in the PostgreSQL server shared by the whole test
    run (tests/support/postgres.py), dropped with the test, or in a server
    of the test's own with ``private`` (the failure tests stop it)."""
    skip_unless_postgres()
    if private:
        server = PostgresServer()
        testcase.addCleanup(server.cleanup)
        server.start()
        return server, server.create_database()
    server = shared_server()
    uri = server.create_database()
    testcase.addCleanup(server.drop_database, uri)
    return server, uri


# -- the nodes ------------------------------------------------------------------


class Node(ServerProcess):
    """One node of a cluster: a ``ServerProcess`` on the cluster's database
    and bus, named ``node1``, ``node2``... with ``--node-id``."""

    def __init__(self, testcase, cluster: ClusterProcess, name: str, *extra_args: str, **kwargs):
        self.cluster = cluster
        self.name = name
        super().__init__(testcase, *extra_args, start=False, **kwargs)
        self.db = cluster.db

    def command(self) -> list[str]:
        args = super().command()
        after_db = args.index("--db") + 2
        return args[:after_db] + self.cluster.node_args(self) + args[after_db:]


class _Processes:
    """``cluster.process``: signals go to every node that is running."""

    def __init__(self, nodes: Sequence[Node]) -> None:
        self._nodes = nodes

    def send_signal(self, signum: int) -> None:
        for node in self._nodes:
            if node.process is not None and node.running:
                node.process.send_signal(signum)

    def poll(self) -> int | None:
        codes: list[int | None] = [
            node.process.poll() if node.process else 0 for node in self._nodes
        ]
        if any(code is None for code in codes):
            return None
        return next((code for code in codes if code), 0)

    @property
    def pids(self) -> list[int]:
        return [node.process.pid for node in self._nodes if node.process is not None]


class ClusterProcess:
    """N nodes on one database and one bus; clients round robin.

    ``extra_args`` go to every node.  ``nodes`` is the number of nodes;
    ``database`` is ``"postgresql"`` (the default) or ``"sqlite"``;
    ``private_postgres`` gives the cluster a PostgreSQL server of its own
    (the failure tests stop it).
    """

    def __init__(
        self,
        testcase,
        *extra_args: str,
        nodes: int = 3,
        database: str | None = None,
        private_postgres: bool = False,
        start: bool = True,
        ready_timeout: float = 60.0,
        **node_kwargs: Any,
    ) -> None:
        self._testcase = testcase
        self.directory = tempfile.mkdtemp(prefix="messenger-cluster-")
        testcase.addCleanup(shutil.rmtree, self.directory, True)
        # Cleanups run last registered first: the nodes (registered below)
        # are gone before their bus and database.
        self.redis = RedisServer.start_or_skip(testcase)
        self.postgres: PostgresServer | None = None
        self.db = self._make_database(testcase, database, private_postgres)
        self.nodes = [
            Node(
                testcase,
                self,
                f"node{i + 1}",
                *extra_args,
                ready_timeout=ready_timeout,
                **node_kwargs,
            )
            for i in range(nodes)
        ]
        self.process = _Processes(self.nodes)
        self._next_client = 0
        if start:
            self.start()

    def _make_database(self, testcase, database: str | None, private_postgres: bool) -> str:
        self.database = database or "postgresql"
        if self.database == "sqlite":
            return os.path.join(self.directory, "cluster.sqlite3")
        self.postgres, url = postgres_database(testcase, private=private_postgres)
        return url

    def node_args(self, node: Node) -> list[str]:
        return ["--node-id", node.name, "--bus", self.redis.url]

    # -- life cycle ------------------------------------------------------------

    def start(self) -> None:
        """Start every node that is not running.  The first one alone first
        when the database is new: it creates the schema."""
        waiting = [node for node in self.nodes if not node.running]
        try:
            if waiting and waiting[0] is self.nodes[0]:
                self.nodes[0].start()
                waiting = waiting[1:]
            for node in waiting:
                node.spawn()
            for node in waiting:
                node.wait_ready()
        except BaseException:
            self.kill()
            raise

    @property
    def running(self) -> bool:
        return any(node.running for node in self.nodes)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM to every node at once; 0 if each exited with 0, else the
        first other status (AssertionError if one is not out in time)."""
        running = [node for node in self.nodes if node.running]
        self.process.send_signal(signal.SIGTERM)
        return self._first_failure([node.wait(timeout) for node in running])

    def wait(self, timeout: float = 10.0) -> int:
        return self._first_failure(
            [node.wait(timeout) for node in self.nodes if node.process is not None]
        )

    def kill(self) -> int:
        """SIGKILL every node."""
        return self._first_failure([node.kill() for node in self.nodes if node.process is not None])

    def restart(self, *extra_args: str) -> None:
        if self.running:
            self.stop()
        for node in self.nodes:
            if extra_args:
                node.extra_args = list(extra_args)
        self.start()

    @staticmethod
    def _first_failure(codes: list[int]) -> int:
        return next((code for code in codes if code != 0), 0)

    # -- clients ----------------------------------------------------------------

    @property
    def port(self) -> int:
        """The first node's port (for tests that only need one address)."""
        return self.nodes[0].port

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    def next_node(self) -> Node:
        """The next node, round robin over the running ones."""
        running = [node for node in self.nodes if node.running] or self.nodes
        node = running[self._next_client % len(running)]
        self._next_client += 1
        return node

    def client(
        self, timeout: float = DEFAULT_TIMEOUT, node: int | None = None, **kwargs
    ) -> LineClient:
        """A client of the next node (or of ``nodes[node]``), HELLO read."""
        target = self.next_node() if node is None else self.nodes[node]
        return target.client(timeout=timeout, **kwargs)

    # -- logs -------------------------------------------------------------------

    def log_text(self) -> str:
        return "".join(f"===== {node.name}\n{node.log_text()}" for node in self.nodes)

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(f"===== {node.name}\n{node.log_tail(lines)}" for node in self.nodes)


# -- topologies for the shared test suites ------------------------------------------


def three_nodes(testcase, *args: str, **kwargs: Any) -> ClusterProcess:
    """3 nodes on PostgreSQL and Redis, one client per node in turn."""
    return ClusterProcess(testcase, *args, nodes=3, **kwargs)


def start_server(testcase, *args: str, **kwargs: Any) -> ServerProcess | ClusterProcess:
    """The server a shared test runs against: one ``ServerProcess``, or what
    the test class's ``topology`` (e.g. :func:`three_nodes`) makes."""
    topology: Callable[..., Any] = getattr(type(testcase), "topology", ServerProcess)
    return topology(testcase, *args, **kwargs)
