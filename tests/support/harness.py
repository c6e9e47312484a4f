"""An in-memory Messenger server for unit tests.

Everything is deterministic: the service runs on ``ImmediateSqliteStore``
(an in-memory SQLite database whose Deferreds fire at once) and a
``task.Clock``; clients are ``MessengerProtocol`` instances attached to
``StringTransport``.  Group commits happen on ``clock.advance(0)``, which
:meth:`Harness.settle` does until nothing more is due; it also plays the
part of the reactor by calling ``connectionLost`` on connections the server
has closed.

Typical use::

    h = Harness(max_pending=3)
    alice, bob = h.users("alice", "bob")
    alice.send("MSG|bob|hi")
    h.settle()
    self.assertEqual(alice.lines(), ["OK|MSG|1"])
    self.assertEqual(bob.lines(), ["R|alice|1|hi"])
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from messenger.config import ServerConfig
from messenger.passwords import PasswordHasher
from messenger.protocol import MessengerFactory, MessengerProtocol
from messenger.service import MessengerService
from messenger.store.sqlite import ImmediateSqliteStore
from messenger.timefmt import rfc3339

#: The harness clock starts at 2026-11-22T09:30:00Z, so timestamps read well.
START = 1795339800.0
PASSWORD = "password1"
HELLO = "HELLO|1|messenger"


def timestamp(seconds: float) -> str:
    """A clock time as the protocol writes it."""
    return rfc3339(seconds)


def database_path(testcase) -> str:
    """A database file in a temporary directory removed after ``testcase``.

    (``TestCase.mktemp`` would create it under the current directory, which
    under pytest is the project.)
    """
    directory = tempfile.mkdtemp(prefix="messenger-test-")
    testcase.addCleanup(shutil.rmtree, directory, True)
    return os.path.join(directory, "messenger.sqlite")


class Client:
    """One connection to the harness server, seen from the client side."""

    def __init__(
        self, harness: Harness, protocol: MessengerProtocol, transport: StringTransport
    ) -> None:
        self.harness = harness
        self.protocol = protocol
        self.transport = transport
        self.lost = False
        self._held: list[str] = []

    # -- input to the server ----------------------------------------------

    def send(self, *lines: str, end: str = "\n") -> None:
        """Send each line, terminated by ``end``, in one chunk of bytes."""
        self.send_bytes("".join(line + end for line in lines).encode("utf-8"))

    def send_bytes(self, data: bytes) -> None:
        if not self.lost:
            self.protocol.dataReceived(data)

    def command(self, *lines: str) -> list[str]:
        """Send, let the server settle, and return (and clear) what came back."""
        self.send(*lines)
        self.harness.settle()
        return self.lines()

    # -- output from the server ---------------------------------------

    def lines(self) -> list[str]:
        """Every line the server sent since the last call, then forget them."""
        lines = self._held + self._take()
        self._held = []
        return lines

    def peek(self) -> list[str]:
        """Like :meth:`lines`, without forgetting them."""
        self._held += self._take()
        return list(self._held)

    def _take(self) -> list[str]:
        data = self.transport.value()
        self.transport.clear()
        if not data:
            return []
        text = data.decode("utf-8")
        assert text.endswith("\n"), f"server output ends mid-line: {text!r}"
        return text[:-1].split("\n")

    def clear(self) -> None:
        self.lines()

    # -- connection state -----------------------------------------------

    @property
    def closed(self) -> bool:
        """The server closed (or aborted) this connection."""
        return bool(self.transport.disconnecting)

    @property
    def aborted(self) -> bool:
        """The server dropped this connection without waiting for its buffer."""
        return bool(self.transport.disconnected)

    def disconnect(self) -> None:
        """The client went away (or the server's close completed)."""
        if not self.lost:
            self.lost = True
            self.transport.disconnecting = True
            self.protocol.connectionLost(Failure(ConnectionDone()))

    @property
    def producer(self):
        """What the server registered to hear about a full send buffer."""
        return self.transport.producer


class Harness:
    """A MessengerService with a clock, an in-memory store and clients."""

    def __init__(
        self,
        hash_delay: float | None = None,
        store=None,
        start: float = START,
        clock: task.Clock | None = None,
        bus=None,
        node_id: str | None = None,
        **options,
    ) -> None:
        # Nodes of one in-process cluster share a clock (and a store).
        if clock is None:
            clock = task.Clock()
            clock.advance(start)
        self.clock = clock
        options.setdefault("argon2_time_cost", 1)
        options.setdefault("argon2_memory_cost", 8)
        self.config = ServerConfig(**options)
        self.hash_delay = hash_delay
        run: Callable[..., Deferred[Any]]
        if hash_delay is None:
            run = maybeDeferred
        else:
            # Password hashing takes ``hash_delay`` seconds of clock time,
            # as it would in the server's thread pool.
            def run(f: Callable[..., Any], *args: Any) -> Deferred[Any]:
                return task.deferLater(self.clock, hash_delay, f, *args)

        self.hasher = PasswordHasher(None, 1, 8, run_in_thread=run)
        self.store = store if store is not None else ImmediateSqliteStore()
        self.service = MessengerService(
            self.store, self.config, self.clock, self.hasher, bus=bus, node_id=node_id
        )
        self.service.startService()
        self.factory = MessengerFactory(self.service, self.config, self.clock)
        self.clients: list[Client] = []
        self._addresses = itertools.count(1)

    # -- time -----------------------------------------------------------------

    def now(self) -> float:
        return self.clock.seconds()

    def settle(self) -> None:
        """Run everything due now (group commits, ...) and deliver closes."""
        for _ in range(1000):
            progressed = False
            for client in list(self.clients):
                if client.closed and not client.lost:
                    client.disconnect()
                    progressed = True
            now = self.clock.seconds()
            if any(call.getTime() <= now for call in self.clock.getDelayedCalls()):
                self.clock.advance(0)
                progressed = True
            if not progressed:
                return
        raise AssertionError("the server never settles")

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of clock time pass, then settle."""
        self.clock.advance(seconds)
        self.settle()

    def finish_hashing(self) -> None:
        """Settle, letting one password hash (``hash_delay``) complete."""
        self.settle()
        if self.hash_delay:
            self.advance(self.hash_delay)

    # -- connections ---------------------------------------------------------

    def connect(self, address: str | None = None, greet: bool = True) -> Client:
        """Open a connection; by default from an address of its own.

        With ``greet`` the HELLO line is checked and consumed.
        """
        if address is None:
            address = "10.0.%d.%d" % divmod(next(self._addresses), 250)
        protocol = self.factory.buildProtocol(IPv4Address("TCP", address, 40000))
        transport = StringTransport(peerAddress=IPv4Address("TCP", address, 40000))
        protocol.makeConnection(transport)
        client = Client(self, protocol, transport)
        self.clients.append(client)
        if greet:
            first = client.lines()
            assert first == [HELLO], f"expected the greeting, got {first!r}"
        return client

    # -- accounts --------------------------------------------------------------

    def register(
        self, username: str, password: str = PASSWORD, display_name: str | None = None
    ) -> None:
        """Create an account over a connection of its own, then close it."""
        if display_name is None:
            display_name = username.capitalize()
        client = self.connect()
        client.send(f"USR|{username}|{password}|{display_name}")
        self.finish_hashing()
        lines = client.lines()
        assert lines == [f"OK|USR|{username.lower()}"], lines
        client.disconnect()
        self.settle()

    def login(self, username: str, password: str = PASSWORD, address: str | None = None) -> Client:
        """A new connection logged in as ``username``.

        The greeting and ``OK|LOGIN`` are consumed; events that follow the
        login (pending ``R`` and ``DLV``) stay readable with ``lines()``.
        """
        client = self.connect(address)
        client.send(f"LOGIN|{username}|{password}")
        self.finish_hashing()
        lines = client.lines()
        assert lines and lines[0].startswith(f"OK|LOGIN|{username.lower()}|"), lines
        client._held = lines[1:]
        return client

    def users(self, *usernames: str) -> list[Client]:
        """Register every user, log each in, and clear everyone's output."""
        for name in usernames:
            self.register(name)
        clients = [self.login(name) for name in usernames]
        for client in clients:
            client.clear()
        return clients

    def clear_all(self) -> None:
        for client in self.clients:
            client.clear()
