"""A socket model for slow-reader tests: Twisted's own TCP send buffering
(``abstract.FileDescriptor``) over a socket whose peer reads only when the
test says so, so a test sees what a real ``tcp.Server`` transport does with
the server's writes and closes, which a ``StringTransport`` cannot."""

from __future__ import annotations

from twisted.internet import abstract
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionAborted
from twisted.internet.interfaces import IProtocol
from twisted.python.failure import Failure

from tests.support.harness import Harness


class _FDSet:
    """The few IReactorFDSet calls a FileDescriptor makes, recorded."""

    def __init__(self) -> None:
        self.readers: set[object] = set()
        self.writers: set[object] = set()

    def addReader(self, reader) -> None:
        self.readers.add(reader)

    def removeReader(self, reader) -> None:
        self.readers.discard(reader)

    def addWriter(self, writer) -> None:
        self.writers.add(writer)

    def removeWriter(self, writer) -> None:
        self.writers.discard(writer)


class SocketModel(abstract.FileDescriptor):
    """Twisted's TCP send path over a socket the test controls.

    Writes, the user-space buffer, pausing the registered streaming producer
    past ``bufferSize``, resuming it once the buffer is empty and
    ``loseConnection`` waiting for the buffer to drain are all
    ``abstract.FileDescriptor``'s own code, as in ``tcp.Server``.  Only the
    socket is fake: ``writeSomeData`` takes at most ``room`` bytes (what the
    kernel and the peer can still take); :meth:`peer_reads` makes room, as
    the client reading does.  :meth:`flush` is the reactor calling
    ``doWrite`` while the descriptor wants to write.
    """

    def __init__(self, clock, address: str, buffer_size: int, room: int = 0) -> None:
        self._fds = _FDSet()
        super().__init__(reactor=self._fds)  # type: ignore[arg-type]  # the calls it makes
        self.connected = 1
        self.bufferSize = buffer_size
        self.clock = clock
        self.room = room
        self.received = b""
        self._read_upto = 0
        self.protocol: IProtocol | None = None
        self.lost: Failure | None = None
        self.aborted = False
        self._address = IPv4Address("TCP", address, 40000)

    # ITransport bits the server uses
    def getPeer(self):
        return self._address

    def getHost(self):
        return IPv4Address("TCP", "127.0.0.1", 7777)

    def setTcpNoDelay(self, enabled) -> None:
        pass

    def abortConnection(self) -> None:
        # As tcp._AbortingMixin: drop the buffer, connectionLost soon.
        if self.disconnected or self.aborted:
            return
        self.aborted = True
        self.stopReading()
        self.stopWriting()
        self.clock.callLater(0, self._lose, ConnectionAborted())

    # the fake socket
    def writeSomeData(self, data) -> int:
        n = min(len(data), self.room)
        self.room -= n
        self.received += bytes(data[:n])
        return n

    @property
    def unsent(self) -> int:
        """Bytes in the user-space send buffer (what a slow reader costs)."""
        return len(self.dataBuffer) - self.offset + self._tempDataLen

    def flush(self) -> None:
        while self in self._fds.writers and self.lost is None:
            before = (self.unsent, len(self.received))
            result = self.doWrite()
            if result is not None:
                self._lose(result)
                return
            if (self.unsent, len(self.received)) == before:
                return

    def peer_reads(self, n: int) -> None:
        self.room += n
        self.flush()

    def lines(self) -> list[str]:
        """Complete lines received since the last call."""
        data = self.received[self._read_upto :]
        end = data.rfind(b"\n") + 1
        self._read_upto += end
        return data[:end].decode("utf-8").split("\n")[:-1] if end else []

    def _lose(self, reason) -> None:
        if self.lost is not None:
            return
        self.lost = reason if isinstance(reason, Failure) else Failure(reason)
        abstract.FileDescriptor.connectionLost(self, self.lost)
        assert self.protocol is not None
        self.protocol.connectionLost(self.lost)


def model_connection(h: Harness, address: str, buffer_size: int, room: int) -> SocketModel:
    protocol = h.factory.buildProtocol(IPv4Address("TCP", address, 40000))
    transport = SocketModel(h.clock, address, buffer_size, room)
    transport.protocol = protocol
    protocol.makeConnection(transport)
    transport.flush()
    return transport


def settle_models(h: Harness, *models: SocketModel) -> None:
    for _ in range(100):
        h.settle()
        for model in models:
            model.flush()
        if not any(c.getTime() <= h.clock.seconds() for c in h.clock.getDelayedCalls()):
            return
        h.clock.advance(0)
