"""One WebSocket connection seen as a line transport.

:class:`WebSocketConnection` receives the WebSocket's events and plays the
part of a TCP transport for an unchanged :class:`MessengerProtocol`: each
text message is fed to it as one line, each line it writes leaves as one
text message.  Flow control, the unsent-byte count, closing and the peer's
address map onto the HTTP connection underneath, so every limit of the TCP
server (line length, rate, idle time, slow readers, --max-clients) holds
as it is.

A text message that is not UTF-8 reaches the line protocol too, as the
bytes it carried, and gets the protocol's ``ERR|?|400|invalid UTF-8`` as
a TCP line does.  Twisted hands a protocol decoded text only, and wsproto,
under it, fails the connection (close code 1007) as soon as a text frame
does not decode; :func:`keep_undecodable_text` changes that one step (see
there why, and what happens should a new wsproto or Twisted not allow it).
"""

from __future__ import annotations

from codecs import IncrementalDecoder
from typing import Any

from twisted.internet.interfaces import IProtocol, IPushProducer
from twisted.protocols.policies import ProtocolWrapper
from twisted.python.failure import Failure
from twisted.web.server import Request
from twisted.web.websocket import WebSocketTransport
from wsproto.frame_protocol import MessageDecoder
from wsproto.utilities import LocalProtocolError

from messenger import wire

#: Close code for a connection the server ends (RFC 6455: normal closure).
NORMAL_CLOSURE = 1000
_BINARY = wire.RemoteProtocolError("?", 400, "binary messages are not supported")
_SEVERAL_LINES = wire.RemoteProtocolError("?", 400, "one line per WebSocket message")
#: Raw bytes of one unfinished message, per byte of --max-line, before the
#: message counts as too long: room for frame headers (a message may come
#: in many small frames) and for one read of the socket beyond the limit.
_FRAMING_ALLOWANCE = 8
_READ_SIZE = 65536
#: What the protocol's unsent-byte count reads from the socket transport.
_BUFFER_ATTRIBUTES = frozenset({"dataBuffer", "offset", "_tempDataLen"})
#: The error handler that turns each byte that is not UTF-8 into a lone
#: surrogate (U+DC80-U+DCFF) and back (PEP 383): text decoded with it and
#: encoded with it again is the very bytes received.
_KEEP_BYTES = "surrogateescape"


class _TextKeepingUndecodableBytes(MessageDecoder):
    """wsproto's reassembly of a message's frames with one change: the UTF-8
    decoder of a text message keeps the bytes it cannot decode, as lone
    surrogates, where wsproto's would raise (and fail the connection).

    wsproto makes a new decoder for every text message and uses it at
    once; it is handed over through ``decoder``, where the error handler
    is switched (codecs allow that during a decoder's life).
    """

    _utf8: IncrementalDecoder | None = None

    @property
    def decoder(self) -> IncrementalDecoder | None:
        return self._utf8

    @decoder.setter
    def decoder(self, decoder: IncrementalDecoder | None) -> None:
        if decoder is not None:
            decoder.errors = _KEEP_BYTES
        self._utf8 = decoder


def keep_undecodable_text(websocket: object) -> bool:
    """Have ``websocket`` (Twisted's WebSocket transport, before any frame
    is read) deliver text messages that are not UTF-8 instead of closing
    the connection with 1007; True if it could.

    RFC 6455 (section 8.1) would have the connection failed.  Messenger
    gives the protocol's own answer instead, as on TCP: a text message
    carries one protocol line, and a line that is not UTF-8 is the
    protocol's error to answer (``ERR|?|400|invalid UTF-8``, counted by
    the rate limit, the connection stays), not the transport's.  A
    browser cannot send such a message (it encodes every string it sends
    as UTF-8), so only other programs ever see the difference.

    Neither Twisted nor wsproto lets a user see the bytes of a text
    message, so this reaches in: Twisted's transport keeps the wsproto
    ``Connection`` as ``_wsconn``, which keeps its ``FrameProtocol`` as
    ``_proto``, which keeps its ``MessageDecoder`` as
    ``_message_decoder``; that one is replaced.  Were a later version laid
    out otherwise, nothing is replaced and wsproto's own behaviour (1007)
    remains; tests/test_web.py says so at once.
    """
    frames = getattr(getattr(websocket, "_wsconn", None), "_proto", None)
    decoder = getattr(frames, "_message_decoder", None)
    if type(decoder) is not MessageDecoder or decoder.opcode is not None:
        return False
    frames._message_decoder = _TextKeepingUndecodableBytes()  # type: ignore[union-attr]
    return True


class WebSocketConnection:
    """A :class:`twisted.web.websocket.WebSocketProtocol` that drives one
    line protocol, and that protocol's transport.

    ``socket`` is the HTTP connection's own transport (TCP, or TLS over
    TCP); ``channel`` the HTTP channel, still the socket's registered
    producer, through which our producer learns when the socket's send
    buffer is full.
    """

    def __init__(self, protocol: IProtocol, request: Request, max_line: int) -> None:
        self.protocol: Any = protocol
        self._channel: Any = request.channel
        self._socket: Any = request.channel.transport
        self._max_line = max_line
        self._websocket: WebSocketTransport | None = None
        self._partial = b""
        self._closed = False
        self._refusing = False
        #: Bytes read since the last complete message (an upper bound).
        self._unfinished = 0
        self._completed = False
        self.disconnecting = False

    # -- WebSocketProtocol -------------------------------------------------

    def negotiationStarted(self, transport: WebSocketTransport) -> None:
        self._websocket = transport
        keep_undecodable_text(transport)

    def negotiationFinished(self) -> None:
        # Only the line protocol's idle timeout counts from now on (Twisted
        # stops the HTTP channel's while a request is handled, and an
        # upgraded request never ends; this says so rather than rely on it).
        self._channel.setTimeout(None)
        self._bound_unfinished_messages()
        self.protocol.makeConnection(self)

    def _bound_unfinished_messages(self) -> None:
        """Twisted gathers a message's frames until it is complete, however
        long: count what is read meanwhile, and refuse the message as soon
        as it cannot fit in --max-line any more, as TCP does with a line."""
        receive = self._channel.dataReceived  # the upgraded connection's
        limit = self._max_line * _FRAMING_ALLOWANCE + _READ_SIZE

        def received(data: bytes) -> None:
            if self._refusing:
                return
            self._completed = False
            receive(data)
            if self._completed:
                self._unfinished = 0
            else:
                self._unfinished += len(data)
            if self._unfinished > limit and not (self._closed or self.disconnecting):
                self._too_long(b"")

        self._channel.dataReceived = received

    def textMessageReceived(self, message: str) -> None:
        self._completed = True
        if self._closed or self.disconnecting or self._refusing:
            return
        # The bytes received, UTF-8 or not (see keep_undecodable_text).
        data = message.encode("utf-8", _KEEP_BYTES)
        if data.endswith(b"\n"):
            data = data[:-1]
        if len(data) > self._max_line:
            self._too_long(data)
        elif b"\n" in data:
            self._error(_SEVERAL_LINES)
        else:
            self.protocol.dataReceived(data + b"\n")

    def bytesMessageReceived(self, data: bytes | bytearray) -> None:
        self._completed = True
        if not (self._closed or self.disconnecting or self._refusing):
            self._error(_BINARY)

    def pongReceived(self, payload: bytes) -> None:
        pass

    def connectionLost(self, reason: Failure) -> None:
        self._closed = True
        self.protocol.connectionLost(reason)

    def _too_long(self, data: bytes) -> None:
        # As for a TCP line that is too long: 413, BYE, close; and, as on
        # TCP, nothing read after it is looked at.
        self._refusing = True
        self.protocol.note_activity()
        self.protocol.lineLengthExceeded(data)

    def _error(self, error: wire.RemoteProtocolError) -> None:
        # A message the line protocol never sees still counts as activity.
        self.protocol.note_activity()
        session = self.protocol.session
        if session is not None and not session.closed:
            session.handle_error(error)

    # -- ITransport, for the line protocol ---------------------------------

    def write(self, data: bytes) -> None:
        if self._closed or self._websocket is None:
            return
        *lines, self._partial = (self._partial + data).split(b"\n")
        try:
            for line in lines:
                self._websocket.sendTextMessage(line.decode("utf-8"))
        except LocalProtocolError:
            # The browser's close frame came first: the socket is closing,
            # and what is left to say can no longer be sent.
            self._closed = True

    def writeSequence(self, data) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        if self._closed or self.disconnecting:
            return
        self.disconnecting = True
        try:
            if self._websocket is not None:
                self._websocket.loseConnection(NORMAL_CLOSURE)
                return
        except LocalProtocolError:
            pass  # the close handshake is already done
        self._socket.loseConnection()

    def abortConnection(self) -> None:
        self.disconnecting = True
        self._socket.abortConnection()

    def getPeer(self):
        return self._socket.getPeer()

    def getHost(self):
        return self._socket.getHost()

    # -- flow control ------------------------------------------------------

    def registerProducer(self, producer: IPushProducer, streaming: bool) -> None:
        self._channel.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        self._channel.unregisterProducer()

    def pauseProducing(self) -> None:
        self._socket.pauseProducing()

    def resumeProducing(self) -> None:
        self._socket.resumeProducing()

    def stopProducing(self) -> None:
        self._socket.stopProducing()

    def setTcpNoDelay(self, enabled: bool) -> None:
        self._tcp().setTcpNoDelay(enabled)

    @property
    def bufferSize(self) -> int | None:
        return getattr(self._tcp(), "bufferSize", None)

    @bufferSize.setter
    def bufferSize(self, size: int) -> None:
        self._tcp().bufferSize = size

    def _tcp(self) -> Any:
        socket = self._socket
        return socket.transport if isinstance(socket, ProtocolWrapper) else socket

    def __getattr__(self, name: str) -> Any:
        # The protocol measures a slow reader by the socket's unsent bytes.
        if name in _BUFFER_ATTRIBUTES:
            return getattr(self._socket, name)
        raise AttributeError(name)
