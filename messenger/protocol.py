"""The line protocol: bytes in, commands to the session, events back out.

It frames, decodes and parses lines and writes what the session sends; the
rules of the conversation live in :mod:`messenger.session` and
:mod:`messenger.service`, not here.  It also enforces what only the
connection can see: line length, UTF-8, idle time and a reader too slow to
keep up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.internet.protocol import ServerFactory, connectionDone
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.protocols.policies import ProtocolWrapper
from twisted.python.failure import Failure
from zope.interface import implementer

from messenger import wire
from messenger.config import ServerConfig
from messenger.limits import IdleDeadlines
from messenger.session import IPeer, Session

if TYPE_CHECKING:
    from messenger.service import MessengerService

_INVALID_UTF8 = wire.InvalidUtf8()

#: Output held for the end of the reactor turn is written at once past
#: this many bytes (a big reply must reach the transport, and fill it, as
#: it is made: that is what stops the reading of further commands).
FLUSH_AT = 16384


def unsent_bytes(transport) -> int | None:
    """Bytes written to ``transport`` that the kernel has not taken yet.

    Twisted's TCP transport (and a TLS wrapper, which forwards attribute
    look-ups to it) keeps them in its write buffers; other transports do
    not say, and then None.
    """
    try:
        return len(transport.dataBuffer) - transport.offset + transport._tempDataLen
    except (AttributeError, TypeError):
        return None


@implementer(IPushProducer)
class OutputThrottle:
    """Registered with the transport to learn when its send buffer is full.

    While the transport is paused, deliveries stop (the messages stay
    stored), no further commands are read (a client's own requests pace it)
    and the events still pushed (room lines, presence, ...) are counted.  A
    reader is too slow when the pushed events it has not read pass
    ``--max-outbuf`` or when it stays stuck for longer than
    ``--idle-timeout``; replies to its own commands never make it so.
    """

    __slots__ = ("_protocol", "paused", "events", "replies", "_deadline")

    def __init__(self, protocol: MessengerProtocol) -> None:
        self._protocol = protocol
        self.paused = False
        #: Bytes of events and of replies written since the pause.
        self.events = 0
        self.replies = 0
        self._deadline: IDelayedCall | None = None

    def pauseProducing(self) -> None:
        if self.paused:
            return
        self.paused = True
        self.events = 0
        self.replies = 0
        factory = self._protocol.factory
        self._deadline = factory.clock.callLater(
            factory.config.idle_timeout, self._protocol.too_slow
        )
        self._protocol.output_paused()

    def resumeProducing(self) -> None:
        self.paused = False
        self.events = 0
        self.replies = 0
        self.cancel_deadline()
        self._protocol.output_resumed()

    def stopProducing(self) -> None:
        self.paused = True
        self.cancel_deadline()

    def cancel_deadline(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def unread_events(self, transport: object) -> int:
        """The bytes of pushed events the reader has not taken yet.

        Where the transport tells its unsent bytes, those less the replies
        written since the pause (reading stops at the pause, so they are few
        and recent); otherwise the events written since the pause.
        """
        unsent = unsent_bytes(transport)
        if unsent is None:
            return self.events
        return unsent - min(self.replies, unsent)


@implementer(IPeer)
class MessengerProtocol(LineReceiver):
    log = Logger()
    delimiter = b"\n"
    #: A TCP transport (or TLS, or a test's StringTransport): what the code
    #: below uses of it (producers, abortConnection, bufferSize, ...) is more
    #: than ITransport says.
    transport: Any

    # Defaults for state most connections never change: kept on the class,
    # they cost an idle connection nothing.
    _refusing = False
    #: Barriers under way: commands are not read until they are done.
    _read_holds = 0
    #: Lines held for one write at the end of this reactor turn, their
    #: size, and how many of those bytes are pushed events.
    _out: list[bytes] | None = None
    _out_size = 0
    _out_events = 0

    @property
    def MAX_LENGTH(self) -> int:  # type: ignore[override]
        """LineReceiver's limit, the same for every connection: read from
        the factory rather than kept in each connection's dict."""
        return self.factory.max_length

    def __init__(self, factory: MessengerFactory) -> None:
        self.factory = factory
        self.session: Session | None = None
        self.address = "?"
        self._throttle = OutputThrottle(self)
        #: Unsent bytes past which the transport pauses its producer.
        self._full_at = 0
        self._connected_at = 0.0

    # -- IPeer ----------------------------------------------------------------

    def _encode(self, message: wire.ServerMessage) -> bytes:
        factory = self.factory
        # A room line or a presence event goes to many connections in a row:
        # encode it once (messages are frozen, so identity is enough).
        if message is not factory.last_sent:
            factory.last_sent = message
            factory.last_sent_bytes = message.to_line().encode("utf-8") + b"\n"
        return factory.last_sent_bytes

    def send(self, message: wire.ServerMessage) -> None:
        """Write a pushed event: these are what --max-outbuf limits."""
        # A room line's fan-out calls this once per member: _encode's cache
        # and _write's common case are written out here.
        factory = self.factory
        if message is factory.last_sent:
            data = factory.last_sent_bytes
        else:
            data = self._encode(message)
        if factory.coalesce_writes:
            out = self._out
            size = len(data)
            if out is not None and self._out_size + size < FLUSH_AT:
                # _hold's common case: more for a turn already held.
                out.append(data)
                self._out_events += size
                self._out_size += size
            else:
                self._hold(data, size)
        else:
            self.transport.write(data)
            if self._throttle.paused:
                self._written_while_paused(data, len(data))

    def reply(self, message: wire.ServerMessage) -> None:
        """Write a reply to the client's own command: never too slow, however
        large, because no further command is read while the output is full."""
        data = self._encode(message)
        if self.factory.coalesce_writes:
            self._hold(data, 0)
        else:
            self._write(data, 0)

    def _hold(self, data: bytes, events: int) -> None:
        """Keep ``data`` for one write per connection per reactor turn."""
        out = self._out
        if out is None:
            out = self._out = []
            self.factory.flush_later(self)
        out.append(data)
        self._out_events += events
        self._out_size += len(data)
        if self._out_size >= FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        """Write the lines held for this turn, in order, in one write."""
        out = self._out
        if out is None:
            return
        events = self._out_events
        self._out = None
        self._out_size = self._out_events = 0
        self._write(out[0] if len(out) == 1 else b"".join(out), events)

    def _write(self, data: bytes, events: int) -> None:
        """Write ``data``, of which ``events`` bytes are pushed events."""
        self.transport.write(data)
        if self._throttle.paused:
            self._written_while_paused(data, events)

    def _written_while_paused(self, data: bytes, events: int) -> None:
        """``data`` was written to a paused transport (or paused it)."""
        throttle = self._throttle
        throttle.events += events
        throttle.replies += len(data) - events
        if events and throttle.unread_events(self.transport) > self.factory.config.max_outbuf:
            self.too_slow()
        elif not self.paused:
            self._update_reading()  # a TLS pause may have become a full buffer

    def too_slow(self) -> None:
        if self.session is not None and not self.session.closed:
            self.log.info("{address} reads too slowly: closing", address=self.address)
            self.session.close(wire.BYE_TOO_SLOW)

    def close(self, bye: wire.Bye) -> None:
        if self._throttle.paused:
            self._out = None  # dropped with the rest of the buffer below
        else:
            self.flush()
        stuck = self._throttle.paused
        self.transport.write(bye.to_line().encode("utf-8") + b"\n")
        self.factory.idle.stop(self)
        self._throttle.cancel_deadline()
        # Were the BYE to fill the buffer, the transport would pause and later
        # resume its producer instead of closing.
        self.transport.unregisterProducer()
        if stuck:
            # Its buffer would never drain: drop it rather than wait.
            self.transport.abortConnection()
            return
        self.transport.loseConnection()
        # A client that reads nothing would hold the connection, and its
        # --max-clients slot, for ever: give it one more idle period, after
        # which timeoutConnection drops it (nothing it sends counts now).
        self._refusing = True
        self.factory.idle.start(self)

    def pause_reading(self) -> None:
        self._read_holds += 1
        self._update_reading()

    def resume_reading(self) -> None:
        self._read_holds -= 1
        self._update_reading()

    def _update_reading(self) -> None:
        """Read commands unless a barrier or a full send buffer holds them."""
        hold = self._read_holds > 0 or (self._throttle.paused and self._send_buffer_full())
        if hold == self.paused:
            return
        transport = self.transport
        if transport is None or transport.disconnecting:
            return
        if hold:
            self.pauseProducing()
        else:
            self.resumeProducing()

    def _send_buffer_full(self) -> bool:
        """Whether the transport's pause means a full buffer.

        TLS also pauses its producer while its handshake is under way; to
        stop reading then would stall the handshake for good.
        """
        unsent = unsent_bytes(self.transport)
        return unsent is None or unsent > self._full_at

    # -- connection ---------------------------------------------------------

    def connectionMade(self) -> None:
        peer = self.transport.getPeer()
        self.address = getattr(peer, "host", str(peer))
        outcome = self.factory.service.connect(self)
        if isinstance(outcome, wire.Bye):
            self.transport.write(outcome.to_line().encode("utf-8") + b"\n")
            self.transport.loseConnection()
            return
        self.session = outcome
        self._connected_at = self.factory.clock.seconds()
        try:
            # Without it room fan-out stalls on delayed ACKs.
            self.transport.setTcpNoDelay(True)
        except AttributeError:
            pass  # not TCP (a test transport, say)
        self._limit_send_buffer()
        self.transport.registerProducer(self._throttle, True)
        self.factory.idle.start(self)
        self.send(self.factory.hello)

    def _limit_send_buffer(self) -> None:
        """Have the transport pause deliveries at half of --max-outbuf at
        the latest, so the other half is room for replies and room lines
        before the reader counts as too slow."""
        tcp: Any = self.transport
        if isinstance(tcp, ProtocolWrapper):
            tcp = tcp.transport
        size = getattr(tcp, "bufferSize", None)
        if isinstance(size, int):
            self._full_at = min(size, max(1, self.factory.config.max_outbuf // 2))
            tcp.bufferSize = self._full_at

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.factory.idle.stop(self)
        self._throttle.cancel_deadline()
        self._out = None
        session = self.session
        if session is not None:
            # One line per connection, naming its user if it logged in: a log
            # line costs about as much as the rest of a connect, RESUME and
            # QUIT (tens of µs), so there is none at connect or login.
            self.log.info(
                "connection from {address} closed after {seconds:.1f} s{user}",
                address=self.address,
                seconds=self.factory.clock.seconds() - self._connected_at,
                user="" if session.username is None else f" ({session.username})",
            )
            session.disconnected()
            self.session = None

    def timeoutConnection(self) -> None:
        if self._refusing and self.transport.disconnecting:
            self.transport.abortConnection()  # told BYE an idle period ago
        elif self.session is not None:
            self.session.close(wire.BYE_IDLE)
        else:
            self.transport.loseConnection()

    def output_paused(self) -> None:
        self._update_reading()
        if self.session is not None:
            self.session.output_paused()

    def output_resumed(self) -> None:
        if self.session is not None:
            self.session.output_resumed()
        self._update_reading()

    # -- input ----------------------------------------------------------------

    def note_activity(self) -> None:
        """The peer sent something: the idle deadline starts again.  Any byte
        counts, even a line not finished yet (a transport that drops some
        input before it gets here, such as the WebSocket's, calls this too)."""
        self.factory.idle.touch(self)

    def dataReceived(self, data: bytes) -> None:
        if self._refusing:
            return
        self.note_activity()
        super().dataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        session = self.session
        if session is None or session.closed or self._refusing:
            return
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > self.factory.config.max_line:
            self.lineLengthExceeded(line)
            return
        if not line:
            return
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            if line.split(b"|", 1)[0].upper() != b"ACK":  # rule 6: never an answer
                session.handle_error(_INVALID_UTF8)
            return
        try:
            command = wire.parse_command(text)
        except wire.RemoteProtocolError as error:
            session.handle_error(error)
            return
        session.handle(command)

    def lineLengthExceeded(self, line: bytes) -> None:
        # Nothing after a too-long line can be trusted to start a line:
        # read no more, and let the session answer in turn and close.
        self._refusing = True
        self.clearLineBuffer()
        if self.session is None:
            self.transport.loseConnection()
            return
        self.session.line_too_long()


class MessengerFactory(ServerFactory):
    noisy = False

    def __init__(
        self,
        service: MessengerService,
        config: ServerConfig,
        clock: IReactorTime,
        coalesce_writes: bool = False,
    ) -> None:
        self.service = service
        self.config = config
        self.clock = clock
        self.last_sent: wire.ServerMessage | None = None
        #: The greeting, made once: every connection gets the same.
        self.hello = wire.Hello(wire.PROTOCOL_VERSION, config.name)
        self.last_sent_bytes = b""
        # A line may end with CRLF: leave room for the CR before the LF.
        self.max_length = config.max_line + 1
        #: Write each connection's lines of one reactor turn at once, at the
        #: end of the turn: a write is costly on a WebSocket (a frame each)
        #: and on TCP (Twisted's bookkeeping, see messenger.tap).
        self.coalesce_writes = coalesce_writes
        #: --idle-timeout for every connection, on one timer.
        self.idle: IdleDeadlines[MessengerProtocol] = IdleDeadlines(
            clock, config.idle_timeout, MessengerProtocol.timeoutConnection
        )
        self._unflushed: list[MessengerProtocol] = []

    def flush_later(self, protocol: MessengerProtocol) -> None:
        """Have ``protocol.flush`` called at the end of this reactor turn."""
        if not self._unflushed:
            self.clock.callLater(0, self._flush_all)
        self._unflushed.append(protocol)

    def _flush_all(self) -> None:
        protocols, self._unflushed = self._unflushed, []
        for protocol in protocols:
            protocol.flush()

    def buildProtocol(self, addr) -> MessengerProtocol:
        return MessengerProtocol(self)
