"""A lean asyncio client connection for the load generator.

It speaks just enough of docs/protocol.md to drive load: lines are bytes (never
decoded unless needed), final replies (``OK``/``ERR``) are matched to the
commands in the order they were sent (rule 2), and events (``R``, ``C``,
``DLV``, ``ON``, ``BYE``, ...) go to a handler whenever they come, between
replies.  Writes are coalesced: everything a connection is asked to send
during one turn of the event loop leaves in one ``write``.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from collections.abc import Callable

HOST = "127.0.0.1"

#: A reply callback gets the reply line, or None if the connection closed
#: before the reply came.
ReplyCallback = Callable[[bytes | None], None]


class Handler:
    """What a connection does with events; scenarios override methods.

    The default counts every event and ignores it.
    """

    def __init__(self) -> None:
        self.events = 0
        self.byes: list[bytes] = []
        self.unexpected: list[bytes] = []

    def on_r(self, conn: Conn, line: bytes) -> None:
        self.events += 1
        # Acknowledge anyway: the server re-sends an unacknowledged R.
        conn.send(b"ACK|" + line.split(b"|", 3)[2] + b"\n")

    def on_c(self, conn: Conn, line: bytes) -> None:
        self.events += 1

    def on_dlv(self, conn: Conn, line: bytes) -> None:
        self.events += 1

    def on_event(self, conn: Conn, line: bytes) -> None:
        """ON, OFF, JOINED, PARTED."""
        self.events += 1

    def on_bye(self, conn: Conn, line: bytes) -> None:
        if len(self.byes) < 20:
            self.byes.append(line)

    def on_unexpected(self, conn: Conn, line: bytes) -> None:
        if len(self.unexpected) < 20:
            self.unexpected.append(line)

    def on_closed(self, conn: Conn) -> None:
        pass


class Flusher:
    """Writes every connection's buffered output once per loop turn."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._dirty: list[Conn] = []
        self._scheduled = False

    def mark(self, conn: Conn) -> None:
        self._dirty.append(conn)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        dirty, self._dirty = self._dirty, []
        for conn in dirty:
            conn.flush()


class Conn(asyncio.Protocol):
    """One client connection."""

    def __init__(self, flusher: Flusher, handler: Handler, tag=None) -> None:
        self.flusher = flusher
        self.handler = handler
        self.tag = tag  # the scenario's object for this connection
        self.transport: asyncio.Transport | None = None
        self.replies: deque[ReplyCallback] = deque()
        self.hello: bytes | None = None
        self.closed = False
        self.lost: asyncio.Future = asyncio.get_event_loop().create_future()
        self._buf = b""
        self._out: list[bytes] = []

    # -- asyncio.Protocol ---------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        if self._out:
            self.flusher.mark(self)

    def data_received(self, data: bytes) -> None:
        if self._buf:
            data = self._buf + data
        lines = data.split(b"\n")
        self._buf = lines.pop()
        dispatch = _DISPATCH
        for line in lines:
            kind = dispatch.get(line[:2])
            if kind is None:
                if line:
                    self.handler.on_unexpected(self, line)
            elif kind == 0:  # OK / ERR: the next reply
                if self.replies:
                    self.replies.popleft()(line)
                else:
                    self.handler.on_unexpected(self, line)
            elif kind == 1:
                self.handler.on_r(self, line)
            elif kind == 2:
                self.handler.on_c(self, line)
            elif kind == 3:
                self.handler.on_dlv(self, line)
            elif kind == 4:
                self.handler.on_event(self, line)
            elif kind == 5:
                self.handler.on_bye(self, line)
            elif kind == 6:
                self.hello = line

    def connection_lost(self, exc) -> None:
        self.closed = True
        replies, self.replies = self.replies, deque()
        for callback in replies:
            callback(None)
        if not self.lost.done():
            self.lost.set_result(None)
        self.handler.on_closed(self)

    # -- sending --------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Queue ``data`` (whole lines) for the next flush."""
        if not self._out:
            self.flusher.mark(self)
        self._out.append(data)

    def command(self, data: bytes, callback: ReplyCallback) -> None:
        """Send one command line; ``callback`` gets its reply."""
        self.replies.append(callback)
        self.send(data)

    def request(self, data: bytes) -> asyncio.Future:
        """Send one command line; the future gets its reply (None if the
        connection closed first)."""
        future = asyncio.get_event_loop().create_future()

        def done(line: bytes | None) -> None:
            if not future.done():
                future.set_result(line)

        self.command(data, done)
        return future

    def flush(self) -> None:
        if self._out and self.transport is not None and not self.closed:
            self.transport.write(b"".join(self._out))
            self._out.clear()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.flush()
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.abort()


_DISPATCH = {
    b"OK": 0,
    b"ER": 0,
    b"R|": 1,
    b"C|": 2,
    b"DL": 3,
    b"ON": 4,
    b"OF": 4,
    b"JO": 4,
    b"PA": 4,
    b"BY": 5,
    b"HE": 6,
}


async def connect(
    port: int,
    flusher: Flusher,
    handler: Handler,
    tag=None,
    host: str = HOST,
    source: str | None = None,
) -> Conn:
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(
        lambda: Conn(flusher, handler, tag), host, port, local_addr=(source, 0) if source else None
    )
    return conn


class Sources:
    """Loopback source addresses (127.0.0.1, 127.0.0.2, ...) to spread the
    connections over, each with at most ``logins`` logins in flight.

    The server limits logins per source address (failures per minute,
    password checks queued a few at a time): protection, not capacity.  Many
    addresses make the load look like the many hosts of a real reconnect
    storm, and give each address its own range of ephemeral ports.  The
    destination is always 127.0.0.1.
    """

    def __init__(self, count: int = 64, logins: int = 16) -> None:
        count = max(1, min(count, 250 * 250))
        self.addresses = [f"127.0.{i // 250}.{i % 250 + 1}" for i in range(count)]
        self.logins = {a: asyncio.Semaphore(logins) for a in self.addresses}
        self._next = 0

    def pick(self) -> str:
        address = self.addresses[self._next % len(self.addresses)]
        self._next += 1
        return address


async def bounded_connect(
    port: int,
    flusher: Flusher,
    handler: Handler,
    tag,
    limit: asyncio.Semaphore,
    attempts: int = 3,
    source: str | None = None,
) -> Conn:
    """Connect with at most ``limit`` handshakes in flight; a refused or
    reset connect (a full listen queue) is retried a few times."""
    last_error: BaseException | None = None
    for attempt in range(attempts):
        async with limit:
            try:
                return await asyncio.wait_for(
                    connect(port, flusher, handler, tag, source=source), 30
                )
            except (TimeoutError, OSError) as e:
                last_error = e
        await asyncio.sleep(0.05 * (attempt + 1))
    raise ConnectionError(f"cannot connect after {attempts} attempts: {last_error!r}")


async def open_and_login(
    port: int,
    flusher: Flusher,
    handler: Handler,
    tag,
    limit: asyncio.Semaphore,
    sources: Sources,
    lines: list[bytes],
) -> tuple[Conn, list]:
    """Connect from the next source address and send ``lines`` (a login
    first, maybe more pipelined behind it); returns the connection and the
    reply futures, the login's already answered.  The source's login slot
    is held from the connect until that answer."""
    source = sources.pick()
    async with sources.logins[source]:
        conn = await bounded_connect(port, flusher, handler, tag, limit, source=source)
        replies = [conn.request(line) for line in lines]
        await replies[0]
    return conn, replies


def is_ok(line: bytes | None) -> bool:
    return line is not None and line.startswith(b"OK|")
