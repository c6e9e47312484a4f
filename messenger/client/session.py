"""The client's behaviour, across connections.

A :class:`ClientSession` lives as long as the process.  Connections come and
go (:mod:`messenger.client.protocol` reports them); the session logs in on
each one, keeps what was typed until the server has accepted it, shows what
arrives, and decides when to give up.  It talks to the person through the
small :class:`Terminal` interface and to time through the clock it is given,
so all of it runs in unit tests against StringTransport and task.Clock.

The guarantees, and where they are kept:

- Nothing typed is lost or doubled: every message goes out as ``SEND`` with
  a fresh client id, and every command still waiting for its reply when a
  connection drops is sent again on the next one (``Pending.resend``).  The
  server stores a ``SEND`` only once per client id, so that is safe.
- Nothing is shown twice: message ids already handled are in
  ``state.seen``; a redelivered ``R`` is acknowledged again but not shown.
- No hole after an outage: on every login after the first, each room is
  caught up with ``HISTORY|#room|limit|after|<newest id seen there>``.
- No password in memory: it is read (or asked for), put on one ``LOGIN``
  line and dropped; later logins use ``RESUME`` with the token asked for by
  ``TOKEN`` right after the first one.
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime
from itertools import count
from typing import Any, Protocol as TypingProtocol

from twisted.internet import defer, error
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from messenger import wire
from messenger.client import commands, render
from messenger.client.incoming import ServerLines
from messenger.client.login import InputEnded, LoginFlow, LoginSettings
from messenger.client.protocol import Pending, Reply, ServerConnection
from messenger.client.state import ClientState, DisplayQueue

#: How many history lines one catch-up request asks for; while a reply is
#: full, the next page is asked for.
CATCH_UP_LIMIT = 500

#: After ``ERR|SEND|429|rate limit`` the message was not stored; try again.
RATE_LIMIT_RETRY = 1.0

#: How long ``/quit`` (or the end of input) waits for unsent messages.
QUIT_TIMEOUT = 10.0

#: How long to wait for the server to close after ``QUIT``.
BYE_TIMEOUT = 3.0

#: Exit statuses.
EXIT_OK = 0
EXIT_FAILURE = 1


class Terminal(TypingProtocol):
    """What the session needs from the screen and keyboard."""

    #: True when a person types at a terminal (prompts are shown, echo can
    #: be turned off); False for a pipe.
    interactive: bool

    def show(self, text: str) -> None:
        """Write ``text`` and a newline."""

    def ask(self, question: str, secret: bool) -> None:
        """A prompt: the next input line answers it; ``secret`` turns echo off."""

    def answered(self, secret: bool) -> None:
        """The prompt was answered (turn echo back on)."""

    def exit(self, status: int) -> None:
        """Stop everything and leave the process with ``status``."""


class ClientIds:
    """Fresh ``SEND`` client ids: a random per-process prefix and a counter.

    The prefix makes ids from different runs differ (the server remembers
    them for 24 hours); the counter makes them differ within a run.
    """

    def __init__(self, prefix: str | None = None) -> None:
        self.prefix = prefix or secrets.token_hex(8)
        self._counter = count(1)

    def __call__(self) -> str:
        return f"{self.prefix}-{next(self._counter)}"


_END_OF_INPUT = object()


def describe_failure(reason: Failure) -> str:
    """A short human reason for a connection that failed or dropped."""
    if reason.check(error.ConnectionRefusedError):
        return "connection refused (is the server running, and is the address right?)"
    if reason.check(error.DNSLookupError):
        return "the host name could not be resolved"
    if reason.check(error.TimeoutError, error.UserError):
        return "the connection attempt timed out"
    if reason.check(error.ConnectionDone):
        return "the server closed the connection"
    if reason.check(error.ConnectionLost, error.ConnectionAborted):
        return "the connection was lost"
    tls = tls_problem(reason)
    if tls:
        return tls
    return reason.getErrorMessage()


def tls_problem(reason: Failure) -> str | None:
    """If ``reason`` is a failed TLS handshake or host check, say what failed."""
    try:
        from OpenSSL import SSL
        from service_identity import VerificationError
    except ImportError:  # pragma: no cover - both are dependencies
        return None
    if reason.check(VerificationError):
        return (
            f"the server's TLS certificate is not for this host name ({reason.getErrorMessage()})"
        )
    if reason.check(SSL.Error):
        detail = str(reason.value)
        if "certificate verify failed" in detail or "unknown ca" in detail:
            return (
                "the server's TLS certificate does not verify: it is not "
                "signed by a trusted authority (use --ca with the server's "
                "CA certificate)"
            )
        return f"the TLS handshake failed ({detail})"
    return None


class ClientSession(LoginFlow, ServerLines):
    """The client, across connections; see the module docstring."""

    def __init__(
        self,
        terminal: Terminal,
        clock: IReactorTime,
        *,
        server: str,
        login: LoginSettings,
        style: render.Style | None = None,
        one_shot: commands.SendText | None = None,
        new_client_id: Callable[[], str] | None = None,
        quit_timeout: float = QUIT_TIMEOUT,
    ) -> None:
        self.terminal = terminal
        self.clock = clock
        self.server = server
        self.login = login
        self.style = style if style is not None else render.Style()
        self.one_shot = one_shot
        self.new_client_id = new_client_id or ClientIds()
        self.quit_timeout = quit_timeout
        self.state = ClientState()

        self.connection: ServerConnection | None = None
        #: Logged in on the current connection.
        self.ready = False
        #: Logged in at least once: from then on a drop means "reconnect".
        self.ever_ready = False
        self.token: str | None = None
        self.done = False
        self.quitting = False
        self.exit_status = EXIT_OK

        #: Commands to send once logged in (typed while disconnected, or
        #: unanswered when the last connection dropped), in order.
        self.outbox: list[Pending] = []
        #: SENDs waiting out a rate limit before they are tried again.
        self._retrying: dict[str, IDelayedCall] = {}
        #: Typed lines not handled yet (before the first login, or waiting
        #: for a question to be asked).
        self._input: deque[object] = deque()
        self._question: defer.Deferred | None = None
        self._question_secret = False
        self._logging_in = False
        self._signup_failed = False
        #: The rooms we are in have been learned (ROOMS answered once).
        self._rooms_known = False

        self._display: DisplayQueue[Callable[[], None]] = DisplayQueue()
        #: Message ids received but still queued for display.
        self._queued_ids: set[int] = set()
        self._lookups: set[str] = set()

        self._quit_timer: IDelayedCall | None = None
        self._bye_timer: IDelayedCall | None = None
        self._quit_sent = False

    # ------------------------------------------------------------------
    # Output helpers

    def now(self) -> datetime:
        """The clock's time (the protocol gives none for live messages)."""
        return render.from_epoch(self.clock.seconds())

    def show(self, text: str) -> None:
        if not self.done:
            self.terminal.show(text)

    def notice(self, text: str) -> None:
        self.show(render.notice(text, self.style))

    def error(self, text: str) -> None:
        self.show(render.error(text, self.style))

    def fatal(self, text: str) -> None:
        """Say why, and stop: the client cannot usefully go on."""
        if self.done:
            return
        self.error(text)
        self._finish(EXIT_FAILURE)

    # ------------------------------------------------------------------
    # Connections (the protocol.Listener interface)

    def connection_made(self, connection: ServerConnection) -> None:
        self.connection = connection
        self.ready = False
        self._quit_sent = False

    def hello(self, connection: ServerConnection, hello: wire.Hello) -> None:
        if hello.version != wire.PROTOCOL_VERSION:
            self.fatal(
                f"the server speaks protocol version {hello.version}; "
                f"this client speaks version {wire.PROTOCOL_VERSION}"
            )
            return
        if not self.ever_ready and self.one_shot is None:
            self.notice(f"connected to {render.clean_line(hello.server_name)} ({self.server})")
        self._log_in(connection)

    def protocol_violation(self, connection: ServerConnection, line: str, problem: str) -> None:
        self.error(
            f"the server sent something this client does not understand "
            f"({problem}): {render.clean_line(line[:200])}"
        )

    def connection_lost(
        self,
        connection: ServerConnection,
        reason: Failure,
        unanswered: list[Pending],
        bye: wire.Bye | None,
    ) -> None:
        if connection is self.connection:
            self.connection = None
        was_ready, self.ready = self.ready, False
        self._lookups.clear()
        # Keep what the person asked for, in order, ahead of anything typed
        # since: it was typed first.
        self.outbox[:0] = [p for p in unanswered if p.resend]
        if any(isinstance(p.command, wire.SetPassword) for p in unanswered):
            self.error(
                "the connection dropped during /passwd; the password may or may not have changed"
            )
        # Whatever waited for a display name is shown now, with user names.
        for show in self._display.release_all():
            show()
        if self.done:
            return
        if self.quitting and (self._quit_sent or not self._outstanding()):
            self._finish(self.exit_status if not self._unsent_count() else EXIT_FAILURE)
            return

        tls = tls_problem(reason) if reason is not None else None
        if tls:
            # Never retry or fall back: a certificate that does not verify may
            # be someone in the middle.
            self.fatal(f"cannot connect securely to {self.server}: {tls}")
            return
        if bye is not None:
            if bye.code == 409:
                self.fatal(
                    "you logged in somewhere else, so this client stops "
                    f"(server said: {render.clean_line(bye.reason)})"
                )
                return
            if bye.code == 503 and not self.ever_ready:
                self.fatal(
                    f"the server is full or shutting down "
                    f"({render.clean_line(bye.reason)}); try again later"
                )
                return
            if bye.code == 429 and not self.ever_ready:
                self.fatal(f"login refused: {render.clean_line(bye.reason)}")
                return
            why = f"server said: {render.clean_line(bye.reason)} ({bye.code})"
        elif connection.timed_out:
            why = "the server stopped answering"
        else:
            why = describe_failure(reason)
        if not self.ever_ready:
            self.fatal(f"disconnected from {self.server} before logging in: {why}")
            return
        if was_ready or self.one_shot is None:
            self.notice(f"disconnected: {why}")

    def connect_failed(self, reason: Failure) -> None:
        """The very first connection attempt failed: say why and stop."""
        if reason.check(defer.CancelledError):
            return
        self.fatal(f"cannot connect to {self.server}: {describe_failure(reason)}")

    def reconnecting(self, delay: float) -> None:
        """The connection service will try again in ``delay`` seconds."""
        if self.ever_ready and not self.done:
            unsent = self._unsent_count()
            waiting = (
                f"; {unsent} message{'s' if unsent != 1 else ''} will be sent then"
                if unsent
                else ""
            )
            self.notice(f"reconnecting in {delay:.0f} s{waiting}")

    # ------------------------------------------------------------------
    # Logging in

    def _logged_in(
        self, connection: ServerConnection, fields: Sequence[str], resumed: bool
    ) -> None:
        if connection is not self.connection or self.done:
            return
        username = fields[0] if fields else self.login.username
        # The login sent a user name, so the reply's (or the one sent) is known.
        assert username is not None
        display_name = fields[1] if len(fields) > 1 else username
        first = not self.ever_ready
        self.state.username = username
        self.state.display_name = display_name
        # Other names are kept across reconnects: a whole user base coming
        # back after a server restart should not look everybody up again.
        self.state.learn_name(username, display_name)
        self.ready = True
        self.ever_ready = True
        if self.token is None and self.one_shot is None:
            connection.request(wire.NewToken(), self._got_token)
        if self.one_shot is None:
            if first:
                self.notice(
                    f"logged in as {render.sender_label(username, display_name)}; "
                    f"talking in {self.state.focus}; /help lists the commands"
                )
            else:
                self.notice("reconnected" + (" (session resumed)" if resumed else ""))
            if self._rooms_known:
                for room in list(self.state.rooms):
                    self._catch_up(room)
            else:
                # First login, or its ROOMS went unanswered: learn them now.
                connection.request(wire.MyRooms(), self._first_rooms)
        self._flush_outbox()
        if first and self.one_shot is not None:
            self._send_text(self.one_shot.target, self.one_shot.text, self._one_shot_sent)
        self._pump_input()
        self._maybe_finish()

    # ------------------------------------------------------------------
    # Rooms: the baseline after the first login, the catch-up after others

    def _first_rooms(self, reply: Reply) -> None:
        if not reply.ok:
            return
        self._rooms_known = True
        self.state.set_rooms(list(reply.fields))
        for room in self.state.rooms:
            self._baseline(room)

    def _baseline(self, room: str) -> None:
        """Learn the newest id in ``room`` (without showing it)."""

        def got(reply: Reply) -> None:
            if reply.ok:
                self.state.last_seen.setdefault(room, 0)
                for line in reply.history:
                    self.state.seen.add(line.msgid)
                    self.state.note_room_message(room, line.msgid)

        self._request(wire.History(room, 1), got, user=False)

    def _catch_up(self, room: str) -> None:
        after = self.state.last_seen.get(room)
        if after is None:
            self._baseline(room)
            return
        self._request(
            wire.History(room, CATCH_UP_LIMIT, wire.AFTER, after),
            lambda reply: self._caught_up(room, reply),
            user=False,
        )

    def _caught_up(self, room: str, reply: Reply) -> None:
        if not reply.ok:
            return  # e.g. no longer a member: nothing to catch up
        for line in reply.history:
            self.state.note_room_message(room, line.msgid)
            if line.sender == self.state.username:
                # Typed here, so already on the screen.
                self.state.seen.add(line.msgid)
                continue
            if self.state.seen.add(line.msgid):
                self._queue_message(
                    room,
                    line.sender,
                    line.text,
                    render.parse_timestamp(line.timestamp) or self.now(),
                )
        if len(reply.history) >= CATCH_UP_LIMIT:
            self._catch_up(room)

    # ------------------------------------------------------------------
    # Incoming messages

    # ------------------------------------------------------------------
    # Input

    def line_typed(self, line: str) -> None:
        """One line from the keyboard or the pipe, without its newline."""
        self._input.append(line)
        self._pump_input()

    def input_closed(self) -> None:
        """End of input (Ctrl-D, or the end of a pipe): quit once it is all done."""
        self._input.append(_END_OF_INPUT)
        self._pump_input()

    def _pump_input(self) -> None:
        while self._input and not self.done:
            if self._question is not None:
                self._answer(self._input.popleft())
            elif self.ever_ready:
                item = self._input.popleft()
                if self.one_shot is not None:
                    continue  # a one-shot send reads stdin only for prompts
                if item is _END_OF_INPUT:
                    self.quit()
                else:
                    self.handle(item)  # type: ignore[arg-type]
            else:
                return  # before the first login, lines wait for it

    def _ask(self, question: str, secret: bool = False) -> defer.Deferred[str]:
        d: defer.Deferred[str] = defer.Deferred()
        self._question = d
        self._question_secret = secret
        self.terminal.ask(question, secret)
        # Answer at once if the line is already there (a pipe).
        if self._input:
            self._answer(self._input.popleft())
        return d

    def _answer(self, item: object) -> None:
        d, self._question = self._question, None
        assert d is not None
        self.terminal.answered(self._question_secret)
        if item is _END_OF_INPUT:
            self._input.appendleft(item)  # still ends the input afterwards
            d.errback(InputEnded())
        elif isinstance(item, str) and item.strip().lower() in ("/quit", "!exit"):
            self._input.appendleft(_END_OF_INPUT)
            d.errback(InputEnded())
        else:
            d.callback(item)

    def handle(self, line: str) -> None:
        """Carry out one typed line (after the first login)."""
        intent = commands.parse_input(line)
        if intent is not None:
            _INTENT_HANDLERS[type(intent)](self, intent)

    def _usage_error(self, intent: commands.UsageError) -> None:
        self.error(intent.message)

    def _send_typed(self, intent: commands.SendText) -> None:
        self._send_text(intent.target, intent.text)

    def _focus(self, intent: commands.Focus) -> None:
        self.state.set_focus(intent.target)
        self.show(render.focus(intent.target, self.style))
        if wire.is_room(intent.target) and intent.target not in self.state.rooms:
            self.notice(f"you are not in {intent.target}; /join {intent.target} to join it")

    def _join_room(self, intent: commands.JoinRoom) -> None:
        self._join(intent.room)

    def _part_room(self, intent: commands.PartRoom) -> None:
        self._part(intent.room)

    def _list_rooms(self, intent: commands.ListRooms) -> None:
        self._request(wire.MyRooms(), self._rooms_listed)

    def _list_members(self, intent: commands.ListMembers) -> None:
        room = intent.room or self.state.focus
        if not wire.is_room(room):
            self.error(commands.usage("/members") + " (the focus is not a room)")
            return
        self._request(wire.RoomMembers(room), self._members_listed)

    def _list_online(self, intent: commands.ListOnline) -> None:
        self._request(wire.WhoIsOnline(), self._who_listed)

    def _look_up_typed(self, intent: commands.LookUp) -> None:
        self._request(wire.LookUpUser(intent.username), self._whois_shown)

    def _show_history(self, intent: commands.ShowHistory) -> None:
        target = intent.target or self.state.focus
        self._request(
            wire.History(target, intent.limit), lambda reply: self._history_shown(target, reply)
        )

    def _set_name(self, intent: commands.SetName) -> None:
        self._request(wire.SetDisplayName(intent.display_name), self._renamed)

    def _change_password_typed(self, intent: commands.ChangePassword) -> None:
        self._change_password()

    def _show_help(self, intent: commands.ShowHelp) -> None:
        self.show(commands.help_text())

    def _show_inbox(self, intent: commands.ShowInbox) -> None:
        self.show(render.inbox(self.state.unread, self.style))

    def _sign_up_typed(self, intent: commands.SignUp) -> None:
        self.error("you are logged in already; /signup is for the login prompt")

    def _quit_typed(self, intent: commands.QuitClient) -> None:
        self.quit()

    # ------------------------------------------------------------------
    # Sending

    def _request(
        self, command: wire.Command, on_reply: Callable[[Reply], None], user: bool = True
    ) -> None:
        """Send now if logged in; else keep it for the next login.

        ``user`` commands wait in the outbox while disconnected and are sent
        again if a connection drops before their reply; internal ones (like
        a catch-up) are only sent on the current connection, since every
        login makes its own.
        """

        def handle(reply: Reply) -> None:
            on_reply(reply)
            self._maybe_finish()

        if self.ready and self.connection is not None:
            self.connection.request(command, handle, resend=user)
        elif user:
            self.outbox.append(Pending(command, handle, resend=True))

    def _flush_outbox(self) -> None:
        outbox, self.outbox = self.outbox, []
        for pending in outbox:
            assert self.connection is not None
            self.connection.request(pending.command, pending.on_reply, resend=True)

    def _send_text(
        self, target: str | None, text: str, on_done: Callable[[bool], None] | None = None
    ) -> None:
        target = target or self.state.focus
        command = wire.SendMessageOnce(self.new_client_id(), target, wire.escape_body(text))
        if not (self.ready and self.connection is not None) and self.ever_ready:
            self.notice("not connected: the message will be sent after reconnecting")
        self._request(command, lambda reply: self._sent(command, reply, on_done))

    def _sent(
        self, command: wire.SendMessageOnce, reply: Reply, on_done: Callable[[bool], None] | None
    ) -> None:
        if reply.ok:
            try:
                msgid = wire.parse_msgid(reply.fields[0])
            except (ValueError, IndexError):
                self.error(f"the server confirmed a message without a valid id: {reply.final}")
                return
            # Our own message, so a catch-up never shows it as news.
            self.state.seen.add(msgid)
            if wire.is_room(command.target):
                self.state.note_room_message(command.target, msgid)
            self.show(render.sent(msgid, self.style))
            if on_done:
                on_done(True)
            return
        err = reply.final
        assert isinstance(err, wire.Err)
        if err.code == 429 and "rate" in err.reason:
            # Not stored: try again shortly with the same client id.
            def again() -> None:
                self._retrying.pop(command.client_id, None)
                self._request(command, lambda r: self._sent(command, r, on_done))

            self._retrying[command.client_id] = self.clock.callLater(RATE_LIMIT_RETRY, again)
            return
        where = render.conversation_label(command.target)
        self.show(render.server_error(err.code, err.reason, self.style, f"not sent to {where}"))
        # A script learns from the exit status that something was not sent.
        self.exit_status = EXIT_FAILURE
        if on_done:
            on_done(False)

    def _one_shot_sent(self, ok: bool) -> None:
        self.quit()

    # ------------------------------------------------------------------
    # Other commands

    def _join(self, room: str) -> None:
        before = self.state.focus
        # The focus moves at once, so a line typed right after the /join goes
        # to the room even before the server's OK (scripts rely on it).
        self.state.set_focus(room)

        def joined(reply: Reply) -> None:
            if reply.ok:
                new = room not in self.state.rooms
                self.state.join(room)
                self.notice(f"joined {room}; talking there now")
                if new and room not in self.state.last_seen:
                    self._baseline(room)
            else:
                if self.state.focus == room:
                    self.state.set_focus(before)
                self.show(
                    render.server_error(
                        reply.error.code, reply.error.reason, self.style, f"cannot join {room}"
                    )
                )

        self._request(wire.Join(room), joined)

    def _part(self, room: str) -> None:
        if self.state.focus == room:
            self.state.set_focus(wire.GENERAL_ROOM)

        def parted(reply: Reply) -> None:
            if reply.ok:
                self.state.part(room)
                self.notice(f"left {room}; talking in {self.state.focus}")
            else:
                self.show(
                    render.server_error(
                        reply.error.code, reply.error.reason, self.style, f"cannot leave {room}"
                    )
                )

        self._request(wire.Part(room), parted)

    def _change_password(self) -> None:
        async def ask() -> None:
            old = await self._ask("Current password: ", secret=True)
            new = await self._ask("New password: ", secret=True)
            again = await self._ask("New password again: ", secret=True)
            if new != again:
                self.error("the new passwords differ; the password is unchanged")
                return
            try:
                command = wire.SetPassword(wire.check_password(old), wire.check_password(new))
            except ValueError as e:
                self.error(f"{e}; the password is unchanged")
                return
            if not (self.ready and self.connection is not None):
                self.error("not connected; try /passwd again later")
                return
            # Never kept for a re-send: a password change is not repeated blindly.
            self.connection.request(command, self._password_changed)

        d = defer.ensureDeferred(ask())
        # The input ended or the client is stopping: nothing to change then.
        d.addErrback(lambda f: f.trap(InputEnded, defer.CancelledError))
        d.addCallback(lambda _: self._pump_input())

    # ------------------------------------------------------------------
    # Quitting

    def _unsent_count(self) -> int:
        pending = self.connection.pending if self.connection is not None else ()
        return (
            sum(isinstance(p.command, wire.SendMessageOnce) for p in self.outbox)
            + sum(isinstance(p.command, wire.SendMessageOnce) for p in pending)
            + len(self._retrying)
        )

    def _outstanding(self) -> bool:
        """Is anything typed still waiting to be sent, answered or shown?"""
        if self.outbox or self._retrying or len(self._display):
            return True
        if any(item is not _END_OF_INPUT for item in self._input):
            return True
        if self.connection is not None:
            return any(not isinstance(p.command, wire.Ping) for p in self.connection.pending)
        return False

    def quit(self) -> None:
        """Leave once everything typed has been sent (or the wait runs out)."""
        if self.quitting or self.done:
            return
        self.quitting = True
        if self._outstanding():
            unsent = self._unsent_count()
            if unsent and not self.ready:
                self.notice(
                    f"waiting up to {self.quit_timeout:.0f} s for {unsent} message(s) to be sent"
                )
            self._quit_timer = self.clock.callLater(self.quit_timeout, self._give_up)
        self._maybe_finish()

    def _maybe_finish(self) -> None:
        if not self.quitting or self.done or self._quit_sent or self._outstanding():
            return
        if self.connection is not None and self.ready:
            self._quit_sent = True
            self.connection.request(wire.Quit())
            # The server answers and closes; connection_lost then finishes.
            self._bye_timer = self.clock.callLater(BYE_TIMEOUT, self._finish_after_quit)
        else:
            self._finish(self.exit_status)

    def _finish_after_quit(self) -> None:
        self._bye_timer = None
        self._finish(self.exit_status)

    def _give_up(self) -> None:
        self._quit_timer = None
        unsent = self._unsent_count()
        if unsent:
            self.error(f"{unsent} message(s) could not be sent")
            self._finish(EXIT_FAILURE)
        else:
            self._finish(self.exit_status)

    def _finish(self, status: int) -> None:
        if self.done:
            return
        self.done = True
        for call in [self._quit_timer, self._bye_timer, *self._retrying.values()]:
            if call is not None and call.active():
                call.cancel()
        self._retrying.clear()
        if self._question is not None:
            d, self._question = self._question, None
            self.terminal.answered(self._question_secret)
            d.addErrback(lambda f: None)
            d.cancel()
        self.exit_status = status
        self.terminal.exit(status)


#: What each typed command does (commands.parse_input's intents).
_INTENT_HANDLERS: dict[type, Callable[[ClientSession, Any], None]] = {
    commands.UsageError: ClientSession._usage_error,
    commands.SendText: ClientSession._send_typed,
    commands.Focus: ClientSession._focus,
    commands.JoinRoom: ClientSession._join_room,
    commands.PartRoom: ClientSession._part_room,
    commands.ListRooms: ClientSession._list_rooms,
    commands.ListMembers: ClientSession._list_members,
    commands.ListOnline: ClientSession._list_online,
    commands.LookUp: ClientSession._look_up_typed,
    commands.ShowHistory: ClientSession._show_history,
    commands.SetName: ClientSession._set_name,
    commands.ChangePassword: ClientSession._change_password_typed,
    commands.ShowHelp: ClientSession._show_help,
    commands.ShowInbox: ClientSession._show_inbox,
    commands.SignUp: ClientSession._sign_up_typed,
    commands.QuitClient: ClientSession._quit_typed,
}
