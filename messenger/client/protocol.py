"""One connection to a Messenger server: framing, replies, keepalive.

:class:`ServerConnection` is deliberately thin.  It splits the byte stream
into lines, parses each with :func:`messenger.wire.parse_server_line` (the
same module the server uses, so there is one parser), and matches every
``OK``/``ERR`` to the oldest command still waiting for one: the server
answers every command except ``ACK`` exactly once and in order, and events
may arrive in between.  ``H`` lines belong to the ``HISTORY`` they answer.

Everything the client *does* with those messages lives in
:mod:`messenger.client.session`, which outlives each connection.  The
connection tells it what happened through the small :class:`Listener`
interface, so it can be tested against a StringTransport and a task.Clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol as TypingProtocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime, ITransport
from twisted.internet.protocol import Factory
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure

from messenger import wire

#: Seconds between PINGs.  The server closes a connection that says nothing
#: for 300 s (its default --idle-timeout); PING also shows that the
#: connection is still alive in the other direction.
KEEPALIVE_INTERVAL = 60.0

#: Seconds to wait for the server to say anything (HELLO after connecting,
#: anything after a PING) before the connection is declared dead.
RESPONSE_TIMEOUT = 20.0


@dataclass
class Reply:
    """The final answer to one command, with the ``H`` lines before it."""

    final: wire.Ok | wire.Err
    history: tuple[wire.HistoryLine, ...] = ()

    @property
    def ok(self) -> bool:
        return isinstance(self.final, wire.Ok)

    @property
    def fields(self) -> tuple[str, ...]:
        """The fields after ``OK|VERB``; none for an error."""
        return self.final.fields if isinstance(self.final, wire.Ok) else ()

    @property
    def error(self) -> wire.Err:
        """The ``ERR`` line; only for a reply that is not :attr:`ok`."""
        if not isinstance(self.final, wire.Err):
            raise ValueError(f"not an error: {self.final}")
        return self.final


ReplyHandler = Callable[[Reply], None]


@dataclass
class Pending:
    """A command sent on this connection that has no OK or ERR yet."""

    command: wire.Command
    on_reply: ReplyHandler | None
    #: Send it again on the next connection if this one drops first.
    resend: bool = False
    history: list[wire.HistoryLine] = field(default_factory=list)


class Listener(TypingProtocol):
    """What a connection reports to the client session."""

    def connection_made(self, connection: ServerConnection) -> None: ...

    def hello(self, connection: ServerConnection, hello: wire.Hello) -> None: ...

    def event(self, connection: ServerConnection, event: wire.ServerMessage) -> None: ...

    def protocol_violation(self, connection: ServerConnection, line: str, problem: str) -> None: ...

    def connection_lost(
        self,
        connection: ServerConnection,
        reason: Failure,
        unanswered: list[Pending],
        bye: wire.Bye | None,
    ) -> None: ...


class ServerConnection(LineReceiver):
    """The client's side of one TCP or TLS connection."""

    delimiter = b"\n"
    # Lines from the server can be longer than the 8192 bytes the server
    # accepts: an R or C line adds a header to a body that may be that long.
    MAX_LENGTH = 64 * 1024

    def __init__(
        self,
        listener: Listener,
        clock: IReactorTime,
        keepalive_interval: float = KEEPALIVE_INTERVAL,
        response_timeout: float = RESPONSE_TIMEOUT,
    ) -> None:
        self.listener = listener
        self.clock = clock
        self.keepalive_interval = keepalive_interval
        self.response_timeout = response_timeout
        self.pending: deque[Pending] = deque()
        self.connected_to_server = False
        self.bye: wire.Bye | None = None
        self.timed_out = False
        #: Replies went out of step: ignore the rest until the connection is gone.
        self._broken = False
        self._ping_call: IDelayedCall | None = None
        self._deadline: IDelayedCall | None = None

    # -- Twisted callbacks

    def connectionMade(self) -> None:
        self.connected_to_server = True
        # Until HELLO arrives the server owes us a line.
        self._expect_answer()
        self.listener.connection_made(self)

    def lineReceived(self, raw: bytes) -> None:
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if not raw or self._broken:
            return
        if self._deadline is not None:
            # Data is flowing, so the connection is alive; a PING's answer may
            # still be queued behind slower replies, so wait for it afresh.
            self._deadline.reset(self.response_timeout)
        line = raw.decode("utf-8", errors="replace")
        try:
            message = wire.parse_server_line(line)
        except wire.RemoteProtocolError as e:
            self.listener.protocol_violation(self, line, e.reason)
            return
        if isinstance(message, (wire.Ok, wire.Err)):
            self._final(line, message)
        elif isinstance(message, wire.HistoryLine):
            self._history_line(line, message)
        elif isinstance(message, wire.Hello):
            self._cancel_deadline()
            self._schedule_ping()
            self.listener.hello(self, message)
        else:
            if isinstance(message, wire.Bye):
                self.bye = message
            self.listener.event(self, message)

    def lineLengthExceeded(self, line: bytes) -> None:
        self.listener.protocol_violation(self, "", "line too long")
        self._transport().loseConnection()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.connected_to_server = False
        self._cancel_deadline()
        if self._ping_call is not None and self._ping_call.active():
            self._ping_call.cancel()
        self._ping_call = None
        unanswered = list(self.pending)
        self.pending.clear()
        self.listener.connection_lost(self, reason, unanswered, self.bye)

    # -- Sending

    def request(
        self,
        command: wire.Command,
        on_reply: ReplyHandler | None = None,
        resend: bool = False,
    ) -> None:
        """Send a command that will get exactly one OK or ERR."""
        if isinstance(command, wire.Acknowledge):
            raise wire.LocalProtocolError("ACK gets no reply; use send_ack")
        self.pending.append(Pending(command, on_reply, resend))
        self._write(command)

    def send_ack(self, msgid: int) -> None:
        self._write(wire.Acknowledge(msgid))

    def _write(self, command: wire.Command) -> None:
        self.sendLine(command.to_line().encode("utf-8"))

    def _transport(self) -> ITransport:
        assert self.transport is not None, "not connected"
        return self.transport

    def close(self) -> None:
        self._transport().loseConnection()

    def abort(self) -> None:
        abort = getattr(self.transport, "abortConnection", None)
        (abort or self._transport().loseConnection)()

    # -- Replies

    def _final(self, line: str, message: wire.Ok | wire.Err) -> None:
        if not self.pending:
            self.listener.protocol_violation(self, line, "a reply to no command")
            return
        pending = self.pending[0]
        if message.verb not in (pending.command.NAME, "?"):
            # Replies are matched by order.  Once that is off we no longer know
            # which reply is which (was that SEND stored?), so do not guess:
            # drop the connection, and what is unanswered is sent again.
            self.listener.protocol_violation(
                self, line, f"expected a reply to {pending.command.NAME}"
            )
            self._broken = True
            self.abort()
            return
        self.pending.popleft()
        if isinstance(pending.command, wire.Ping) and self._deadline is not None:
            self._cancel_deadline()
        if pending.on_reply is not None:
            pending.on_reply(Reply(message, tuple(pending.history)))

    def _history_line(self, line: str, message: wire.HistoryLine) -> None:
        for pending in self.pending:
            if isinstance(pending.command, wire.History):
                pending.history.append(message)
                return
        self.listener.protocol_violation(self, line, "a history line with no HISTORY")

    # -- Keepalive

    def _schedule_ping(self) -> None:
        if self.keepalive_interval > 0:
            self._ping_call = self.clock.callLater(self.keepalive_interval, self._ping)

    def _ping(self) -> None:
        self._ping_call = None
        if not self.connected_to_server:
            return
        self.request(wire.Ping())
        self._expect_answer()
        self._schedule_ping()

    def _expect_answer(self) -> None:
        if self._deadline is None or not self._deadline.active():
            self._deadline = self.clock.callLater(self.response_timeout, self._dead)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _dead(self) -> None:
        # Nothing came back in time: the network or the server is gone.
        # Abort rather than close, since a clean close would wait for the
        # very peer that stopped answering.
        self._deadline = None
        self.timed_out = True
        self.abort()


class ServerConnectionFactory(Factory):
    """Builds one :class:`ServerConnection` per connection attempt."""

    def __init__(
        self,
        listener: Listener,
        clock: IReactorTime,
        keepalive_interval: float = KEEPALIVE_INTERVAL,
        response_timeout: float = RESPONSE_TIMEOUT,
    ) -> None:
        self.listener = listener
        self.clock = clock
        self.keepalive_interval = keepalive_interval
        self.response_timeout = response_timeout

    def buildProtocol(self, addr) -> ServerConnection:
        connection = ServerConnection(
            self.listener, self.clock, self.keepalive_interval, self.response_timeout
        )
        connection.factory = self
        return connection
