"""A throw-away ``redis-server`` for tests and the benchmark.

``RedisServer`` starts one on a free port of 127.0.0.1, with no
persistence (``--save ''``, ``--appendonly no``) in a temporary directory,
waits until it answers ``PING``, and stops it (and removes the directory)
on ``stop``.  A plain class, usable outside a test case::

    redis = RedisServer.start_or_skip(testcase)   # in a test
    redis = RedisServer(); redis.start()          # anywhere; redis.stop() after
    redis.url                                     # redis://127.0.0.1:PORT/0

When ``redis-server`` is not installed, ``start_or_skip`` skips the test
with a one-line reason, unless MESSENGER_REQUIRE_SERVICES=1 is set (as in
CI): then the test fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from tests.support.server import HOST, free_port

REQUIRE_SERVICES = "MESSENGER_REQUIRE_SERVICES"


class ServiceMissing(Exception):
    """The service's program is not installed."""


def redis_server_binary() -> str | None:
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
    )


class RedisServer:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.directory: str | None = None
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    @classmethod
    def start_or_skip(cls, testcase) -> RedisServer:
        """Start one for ``testcase`` (stopped at its cleanup), or skip."""
        server = cls()
        try:
            server.start()
        except ServiceMissing as e:
            if os.environ.get(REQUIRE_SERVICES) == "1":
                testcase.fail(f"{e} (and {REQUIRE_SERVICES}=1)")
            from twisted.trial.unittest import SkipTest

            raise SkipTest(str(e)) from None
        testcase.addCleanup(server.cleanup)
        return server

    def start(self, timeout: float = 10.0) -> None:
        binary = redis_server_binary()
        if binary is None:
            raise ServiceMissing("redis-server is not installed")
        if self.directory is None:
            self.directory = tempfile.mkdtemp(prefix="messenger-redis-")
        log = open(os.path.join(self.directory, "redis.log"), "ab")
        self.process = subprocess.Popen(
            [
                binary,
                "--port", str(self.port),
                "--bind", HOST,
                "--save", "",
                "--appendonly", "no",
                "--dir", self.directory,
                "--protected-mode", "yes",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.log_tail()}")
            if self.ping():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not answer PING in time")

    def ping(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def connected_clients(self) -> int:
        """How many clients are connected now, not counting this question's
        own connection (``INFO clients``); -1 if the server does not answer."""
        try:
            with socket.create_connection((HOST, self.port), timeout=10) as s:
                s.sendall(b"INFO clients\r\n")
                reply = b""
                while b"connected_clients:" not in reply or not reply.endswith(b"\r\n"):
                    data = s.recv(4096)
                    if not data:
                        return -1
                    reply += data
        except OSError:
            return -1
        count = reply.split(b"connected_clients:", 1)[1].split(b"\r\n", 1)[0]
        return int(count) - 1

    def stop(self) -> None:
        """Stop the server (keeping its directory, for a restart)."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def cleanup(self) -> None:
        self.stop()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 20) -> str:
        if self.directory is None:
            return ""
        try:
            with open(os.path.join(self.directory, "redis.log"), errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""
