"""The client's connection and session against StringTransport and task.Clock.

The server's side is written by hand from docs/protocol.md: each test feeds the
lines a server would send and checks the lines the client sends back and
what it shows.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from OpenSSL import SSL
from twisted.application.internet import ClientService
from twisted.internet import defer, error, task
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial import unittest
from zope.interface import implementer

from messenger.client import commands, render
from messenger.client.app import announcing
from messenger.client.protocol import (
    KEEPALIVE_INTERVAL,
    RESPONSE_TIMEOUT,
    ServerConnection,
    ServerConnectionFactory,
)
from messenger.client.session import (
    BYE_TIMEOUT,
    CATCH_UP_LIMIT,
    QUIT_TIMEOUT,
    RATE_LIMIT_RETRY,
    ClientIds,
    ClientSession,
    LoginSettings,
)

TS = "2026-11-22T09:30:00.123Z"
TOKEN = "T" * 40
PASSWORD = "password1"


class FakeTerminal:
    """Records what the session shows and asks."""

    def __init__(self, interactive: bool = False) -> None:
        self.interactive = interactive
        self.lines: list[str] = []
        self.questions: list[tuple] = []
        self.echo = True
        self.status: int | None = None

    def show(self, text: str) -> None:
        self.lines.append(text)

    def ask(self, question: str, secret: bool) -> None:
        self.questions.append((question, secret))
        if secret:
            self.echo = False

    def answered(self, secret: bool) -> None:
        self.echo = True

    def exit(self, status: int) -> None:
        self.status = status

    def take(self) -> list[str]:
        lines, self.lines = self.lines, []
        return lines

    def text(self) -> str:
        return "\n".join(self.lines)


class Rig:
    """A session, its clock and terminal, and the current fake connection."""

    def __init__(
        self,
        login: LoginSettings | None = None,
        interactive: bool = False,
        one_shot: commands.SendText | None = None,
    ) -> None:
        self.clock = task.Clock()
        self.terminal = FakeTerminal(interactive)
        if login is None:
            login = LoginSettings(username="alice", password=lambda: PASSWORD)
        self.session = ClientSession(
            self.terminal,
            self.clock,
            server="tcp:test:10000",
            login=login,
            new_client_id=ClientIds("c"),
            one_shot=one_shot,
            # Times in UTC whatever the machine's zone, so lines are predictable.
            style=render.Style(color=False, tz=UTC),
        )
        self.factory = ServerConnectionFactory(self.session, self.clock)
        self.proto: ServerConnection | None = None
        self.transport: StringTransport | None = None

    def connect(self, hello: bool = True) -> ServerConnection:
        self.proto = self.factory.buildProtocol(None)
        self.transport = StringTransport()
        self.proto.makeConnection(self.transport)
        if hello:
            self.server("HELLO|1|messenger")
        return self.proto

    def connected(self) -> tuple[ServerConnection, StringTransport]:
        assert self.proto is not None and self.transport is not None, "connect() first"
        return self.proto, self.transport

    def server(self, *lines: str) -> None:
        """Lines from the server (CRLF, as telnet-minded servers may send)."""
        proto, _ = self.connected()
        for line in lines:
            proto.dataReceived(line.encode("utf-8") + b"\r\n")

    def sent(self) -> list[str]:
        """Lines the client sent since the last call."""
        _, transport = self.connected()
        data = transport.value().decode("utf-8")
        transport.clear()
        return data.splitlines()

    def drop(self, reason=None) -> None:
        self.connected()[0].connectionLost(Failure(reason or error.ConnectionLost()))

    def log_in(self, rooms: str = "#general", newest: int = 5) -> None:
        """Connect and complete a first login, with the room baseline."""
        self.connect()
        assert self.sent() == [f"LOGIN|alice|{PASSWORD}"]
        self.server("OK|LOGIN|alice|Alice")
        assert self.sent() == ["TOKEN", "ROOMS"]
        self.server(f"OK|TOKEN|{TOKEN}", f"OK|ROOMS|{rooms}")
        baselines = self.sent()
        for room in rooms.split("|"):
            assert f"HISTORY|{room}|1" in baselines
            self.server(f"H|{room}|{newest}|bob|{TS}|old", f"OK|HISTORY|{room}|1")
        self.terminal.take()

    def know(self, *names: str) -> None:
        """Pretend display names were learned, so messages show at once."""
        for name in names:
            self.session.state.learn_name(name, name.capitalize())


# --------------------------------------------------------------------------
# The connection itself


class ConnectionTests(unittest.TestCase):
    def test_lf_delimiter_and_trailing_cr_dropped(self):
        """Lines end with LF; a CR before it is dropped; empty lines ignored."""
        rig = Rig()
        rig.connect(hello=False)
        self.assertEqual(rig.proto.delimiter, b"\n")
        rig.proto.dataReceived(b"HELLO|1|messenger\r\n\n\r\n")
        self.assertEqual(rig.sent(), [f"LOGIN|alice|{PASSWORD}"])

    def test_replies_matched_in_order_with_events_between(self):
        """OK/ERR go to the oldest command waiting; events in between are events."""
        rig = Rig()
        rig.log_in()
        rig.know("bob")
        rig.session.handle("/who")
        rig.session.handle("/whois nobody")
        rig.sent()
        rig.server("ON|bob", "OK|WHO|alice|bob", "OFF|bob", "ERR|WHOIS|404|no such user")
        lines = rig.terminal.take()
        self.assertEqual(lines[0], "  00:00 bob is online")
        self.assertEqual(lines[1], "Online: alice, bob")
        self.assertEqual(lines[2], "  00:00 bob went offline")
        self.assertEqual(lines[3], "!! /whois: no such user (404)")
        self.assertEqual(len(rig.proto.pending), 0)

    def test_history_lines_belong_to_their_reply(self):
        """H lines are collected for the HISTORY they answer."""
        rig = Rig()
        rig.log_in()
        rig.know("bob")
        rig.session.handle("/history bob 2")
        self.assertEqual(rig.sent(), ["HISTORY|bob|2"])
        rig.server(f"H|bob|7|bob|{TS}|first", f"H|bob|8|alice|{TS}|second", "OK|HISTORY|bob|2")
        text = rig.terminal.text()
        self.assertIn("@bob Bob: first", text)
        self.assertIn("@bob Alice: second", text)
        self.assertLess(text.index("first"), text.index("second"))

    def test_reply_out_of_step_drops_the_connection(self):
        """A reply naming another verb than expected aborts rather than guess."""
        rig = Rig()
        rig.log_in()
        rig.session.handle("hello")
        rig.sent()
        rig.server("OK|WHO|alice", "OK|SEND|5")
        self.assertTrue(rig.transport.disconnected)  # abortConnection, not a clean close
        self.assertIn("expected a reply to SEND", rig.terminal.text())
        self.assertNotIn("Message 5 sent", rig.terminal.text())  # ignored once out of step
        rig.drop(error.ConnectionAborted())
        rig.connect()
        rig.sent()
        rig.server("OK|RESUME|alice|Alice")
        self.assertIn("SEND|c-1|#general|hello", rig.sent())

    def test_malformed_server_line_is_reported_and_ignored(self):
        """A line the parser refuses is shown as a problem; the connection stays."""
        rig = Rig()
        rig.log_in()
        rig.server("NONSENSE|x")
        self.assertIn("does not understand", rig.terminal.text())
        self.assertFalse(rig.transport.disconnecting)

    def test_ack_expects_no_reply(self):
        """ACK never gets a pending entry (the server never answers it)."""
        rig = Rig()
        rig.log_in()
        rig.know("bob")
        rig.server("R|bob|9|hi")
        self.assertEqual(rig.sent(), ["ACK|9"])
        self.assertEqual(len(rig.proto.pending), 0)


class KeepaliveTests(unittest.TestCase):
    def test_ping_sent_after_interval(self):
        """An idle connection sends PING every KEEPALIVE_INTERVAL seconds."""
        rig = Rig()
        rig.log_in()
        rig.clock.advance(KEEPALIVE_INTERVAL - 1)
        self.assertEqual(rig.sent(), [])
        rig.clock.advance(1)
        self.assertEqual(rig.sent(), ["PING"])
        rig.server("OK|PING")
        rig.clock.advance(KEEPALIVE_INTERVAL)
        self.assertEqual(rig.sent(), ["PING"])

    def test_ping_reply_is_silent(self):
        """The OK to a keepalive PING shows nothing."""
        rig = Rig()
        rig.log_in()
        rig.clock.advance(KEEPALIVE_INTERVAL)
        rig.server("OK|PING")
        self.assertEqual(rig.terminal.lines, [])

    def test_unanswered_ping_drops_the_connection(self):
        """No answer to PING within RESPONSE_TIMEOUT aborts the connection."""
        rig = Rig()
        rig.log_in()
        rig.clock.advance(KEEPALIVE_INTERVAL)
        self.assertEqual(rig.sent(), ["PING"])
        rig.clock.advance(RESPONSE_TIMEOUT - 1)
        self.assertFalse(rig.proto.timed_out)
        rig.clock.advance(1)
        self.assertTrue(rig.proto.timed_out)
        rig.drop(error.ConnectionAborted())
        self.assertIn("the server stopped answering", rig.terminal.text())

    def test_traffic_extends_the_ping_deadline(self):
        """Lines arriving while a PING waits show the connection is alive."""
        rig = Rig()
        rig.log_in()
        rig.clock.advance(KEEPALIVE_INTERVAL)
        rig.clock.advance(RESPONSE_TIMEOUT - 1)
        rig.server("ON|carol")
        rig.clock.advance(RESPONSE_TIMEOUT - 1)
        self.assertFalse(rig.proto.timed_out)

    def test_no_hello_drops_the_connection(self):
        """A server that never says HELLO is given up on."""
        rig = Rig()
        rig.connect(hello=False)
        rig.clock.advance(RESPONSE_TIMEOUT)
        self.assertTrue(rig.proto.timed_out)

    def test_timers_stop_when_connection_closes(self):
        """No PING is written to a connection that is gone."""
        rig = Rig()
        rig.log_in()
        rig.drop()
        rig.clock.advance(KEEPALIVE_INTERVAL * 3)
        self.assertEqual(rig.sent(), [])
        self.assertEqual(rig.clock.getDelayedCalls(), [])


# --------------------------------------------------------------------------
# Logging in


class LoginTests(unittest.TestCase):
    def test_login_then_token_and_rooms(self):
        """After HELLO: LOGIN; after its OK: TOKEN, ROOMS, and a room baseline."""
        rig = Rig()
        rig.connect()
        self.assertEqual(rig.sent(), [f"LOGIN|alice|{PASSWORD}"])
        rig.server("OK|LOGIN|alice|Alice")
        self.assertEqual(rig.sent(), ["TOKEN", "ROOMS"])
        self.assertIn("logged in as Alice;", rig.terminal.text())
        rig.server(f"OK|TOKEN|{TOKEN}", "OK|ROOMS|#general|#dev")
        self.assertEqual(rig.sent(), ["HISTORY|#general|1", "HISTORY|#dev|1"])
        self.assertEqual(rig.session.token, TOKEN)

    def test_password_is_not_kept(self):
        """Once LOGIN is answered, the password is nowhere in the session."""
        rig = Rig()
        rig.log_in()
        self.assertNotIn(PASSWORD, repr(vars(rig.session)))
        self.assertNotIn(PASSWORD, repr(list(rig.proto.pending)))

    def test_prompts_for_username_and_password_without_echo(self):
        """Without --user or a password source, both are asked; the password secretly."""
        rig = Rig(LoginSettings(), interactive=True)
        rig.connect()
        self.assertEqual(rig.terminal.questions, [("Username (or /signup): ", False)])
        rig.session.line_typed("Alice")
        self.assertEqual(rig.terminal.questions[-1], ("Password: ", True))
        self.assertFalse(rig.terminal.echo)
        rig.session.line_typed(PASSWORD)
        self.assertTrue(rig.terminal.echo)
        self.assertEqual(rig.sent(), [f"LOGIN|alice|{PASSWORD}"])

    def test_bad_credentials_ask_again_when_typed(self):
        """A person who mistyped is told so and asked again."""
        rig = Rig(LoginSettings(username="alice"), interactive=True)
        rig.connect()
        rig.session.line_typed("wrong-pass")
        rig.sent()
        rig.server("ERR|LOGIN|401|bad credentials")
        self.assertIn("wrong user name or password", rig.terminal.text())
        self.assertEqual(rig.terminal.questions[-1], ("Password: ", True))
        rig.session.line_typed(PASSWORD)
        self.assertEqual(rig.sent(), [f"LOGIN|alice|{PASSWORD}"])
        self.assertIsNone(rig.terminal.status)

    def test_bad_credentials_from_file_exit(self):
        """Scripted credentials that are wrong end the client with status 1."""
        rig = Rig()
        rig.connect()
        rig.server("ERR|LOGIN|401|bad credentials")
        self.assertEqual(rig.terminal.status, 1)
        self.assertIn("wrong user name or password", rig.terminal.text())

    def test_too_many_failed_logins_exit(self):
        """429 on LOGIN before ever logging in is a clear, final error."""
        rig = Rig()
        rig.connect()
        rig.server("ERR|LOGIN|429|too many failed logins")
        self.assertEqual(rig.terminal.status, 1)
        self.assertIn("too many failed logins", rig.terminal.text())

    def test_signup_from_the_prompt(self):
        """/signup at the prompt asks name, display name, password twice; USR and LOGIN follow."""
        rig = Rig(LoginSettings(), interactive=True)
        rig.connect()
        for answer in ("/signup", "carol", "Carol C", "longpassword", "longpassword"):
            rig.session.line_typed(answer)
        self.assertEqual(
            [q for q, _ in rig.terminal.questions],
            [
                "Username (or /signup): ",
                "New username: ",
                "Display name [carol]: ",
                "Password: ",
                "Password again: ",
            ],
        )
        self.assertEqual(rig.sent(), ["USR|carol|longpassword|Carol C", "LOGIN|carol|longpassword"])
        rig.server("OK|USR|carol", "OK|LOGIN|carol|Carol C")
        self.assertIn("account carol created", rig.terminal.text())
        self.assertIn("logged in as Carol C (carol)", rig.terminal.text())

    def test_signup_with_different_passwords_asks_again(self):
        """Two different passwords at sign-up are refused before sending."""
        rig = Rig(LoginSettings(), interactive=True)
        rig.connect()
        for answer in ("/signup", "carol", "", "longpassword", "other-password"):
            rig.session.line_typed(answer)
        self.assertIn("the passwords differ", rig.terminal.text())
        self.assertEqual(rig.sent(), [])

    def test_scripted_signup_of_existing_account_logs_in(self):
        """--signup for an account that exists just logs in (idempotent for scripts)."""
        rig = Rig(LoginSettings(username="alice", password=lambda: PASSWORD, signup=True))
        rig.connect()
        self.assertEqual(rig.sent(), [f"USR|alice|{PASSWORD}|alice", f"LOGIN|alice|{PASSWORD}"])
        rig.server("ERR|USR|409|username taken", "OK|LOGIN|alice|Alice")
        self.assertIn("exists; logging in", rig.terminal.text())
        self.assertTrue(rig.session.ready)

    def test_signup_only_at_first_login(self):
        """A reconnect without a token logs in again but never repeats USR."""
        rig = Rig(LoginSettings(username="alice", password=lambda: PASSWORD, signup=True))
        rig.connect()
        rig.sent()
        rig.server("OK|USR|alice", "OK|LOGIN|alice|Alice")
        rig.drop()  # before OK|TOKEN: no token to resume with
        rig.connect()
        self.assertEqual(rig.sent(), [f"LOGIN|alice|{PASSWORD}"])

    def test_signup_refused_exits_for_scripts(self):
        """A scripted sign-up the server refuses (short password) ends with status 1."""
        rig = Rig(LoginSettings(username="alice", password=lambda: "short", signup=True))
        rig.connect()
        rig.server("ERR|USR|400|password too short", "ERR|LOGIN|401|bad credentials")
        self.assertIn("password too short", rig.terminal.text())
        self.assertEqual(rig.terminal.status, 1)

    def test_input_ending_before_credentials_exits(self):
        """A pipe that ends before a password is given ends the client clearly."""
        rig = Rig(LoginSettings(username="alice"))
        rig.connect()
        rig.session.input_closed()
        self.assertEqual(rig.terminal.status, 1)
        self.assertIn("MESSENGER_PASSWORD", rig.terminal.text())

    def test_lines_piped_before_login_run_after_it(self):
        """Lines that arrive before login wait for it, then run in order."""
        rig = Rig()
        rig.session.line_typed("hello")
        rig.session.line_typed("/join #dev")
        rig.session.line_typed("in dev")
        rig.connect()
        rig.sent()
        rig.server("OK|LOGIN|alice|Alice")
        self.assertEqual(
            rig.sent(),
            ["TOKEN", "ROOMS", "SEND|c-1|#general|hello", "JOIN|#dev", "SEND|c-2|#dev|in dev"],
        )

    def test_wrong_protocol_version_exits(self):
        """A server speaking another protocol version is refused."""
        rig = Rig()
        rig.connect(hello=False)
        rig.server("HELLO|2|future")
        self.assertEqual(rig.terminal.status, 1)
        self.assertIn("protocol version 2", rig.terminal.text())


# --------------------------------------------------------------------------
# Receiving


class ReceiveTests(unittest.TestCase):
    def test_direct_message_shown_then_acknowledged(self):
        """An R is shown, and only then ACKed."""
        rig = Rig()
        rig.log_in()
        rig.know("bob")
        order = []
        rig.terminal.show = lambda text: order.append(("show", text))
        real_ack = rig.proto.send_ack
        rig.proto.send_ack = lambda msgid: (order.append(("ack", msgid)), real_ack(msgid))
        rig.server("R|bob|43|yes!")
        self.assertEqual(order, [("show", "* 00:00 @bob Bob: yes!"), ("ack", 43)])
        self.assertEqual(rig.sent(), ["ACK|43"])

    def test_duplicate_direct_message_not_shown_but_acked_again(self):
        """A redelivered R (same msgid) is acknowledged again, never shown twice."""
        rig = Rig()
        rig.log_in()
        rig.know("bob")
        rig.server("R|bob|43|yes!", "R|bob|43|yes!")
        self.assertEqual(len([ln for ln in rig.terminal.lines if "yes!" in ln]), 1)
        self.assertEqual(rig.sent(), ["ACK|43", "ACK|43"])

    def test_duplicate_after_reconnect_not_shown(self):
        """A message redelivered at the next login is not shown again."""
        rig = Rig()
        rig.log_in()
        rig.know("bob")
        rig.server("R|bob|43|yes!")
        rig.drop()
        rig.connect()
        rig.sent()
        rig.server("OK|RESUME|alice|Alice", "R|bob|43|yes!")
        self.assertEqual(len([ln for ln in rig.terminal.lines if "yes!" in ln]), 1)
        self.assertIn("ACK|43", rig.sent())

    def test_duplicate_room_message_not_shown(self):
        """The same room message id is shown once."""
        rig = Rig()
        rig.log_in()
        rig.know("bob")
        rig.server("C|#general|bob|50|hey", "C|#general|bob|50|hey")
        self.assertEqual(rig.terminal.lines, ["  00:00 #general Bob: hey"])
        self.assertEqual(rig.sent(), [])  # room messages are not acknowledged

    def test_unknown_sender_looked_up_before_showing(self):
        """A sender whose display name is unknown is looked up once; the message waits."""
        rig = Rig()
        rig.log_in()
        rig.server("R|bob|43|hi", "R|bob|44|again")
        self.assertEqual(rig.sent(), ["WHOIS|bob"])
        self.assertEqual(rig.terminal.lines, [])
        rig.server("OK|WHOIS|bob|online|-|Robert")
        self.assertEqual(
            rig.terminal.lines,
            ["* 00:00 @bob Robert (bob): hi", "* 00:00 @bob Robert (bob): again"],
        )
        self.assertEqual(rig.sent(), ["ACK|43", "ACK|44"])

    def test_order_kept_while_waiting_for_a_name(self):
        """Events after a message that waits for a name wait behind it."""
        rig = Rig()
        rig.log_in()
        rig.server("C|#general|bob|60|first", "ON|carol")
        self.assertEqual(rig.terminal.lines, [])
        rig.server("ERR|WHOIS|404|no such user")
        self.assertEqual(
            rig.terminal.lines, ["  00:00 #general bob: first", "  00:00 carol is online"]
        )

    def test_unfocused_message_marked_and_counted(self):
        """A message for another conversation is marked and listed by /inbox."""
        rig = Rig()
        rig.log_in()
        rig.know("bob", "carol")
        rig.server(
            "R|bob|43|one", "R|bob|44|two", "C|#dev|carol|45|three", "C|#general|carol|46|here"
        )
        lines = rig.terminal.take()
        self.assertTrue(lines[0].startswith("* "))
        self.assertTrue(lines[3].startswith("  "))
        rig.session.handle("/inbox")
        self.assertEqual(rig.terminal.take(), ["Unread: @bob (2), #dev (1)"])

    def test_chat_moves_focus_and_clears_unread(self):
        """/chat NAME moves the focus there; its unread count goes."""
        rig = Rig()
        rig.log_in()
        rig.know("bob")
        rig.server("R|bob|43|one")
        rig.session.handle("/chat bob")
        rig.session.handle("/inbox")
        self.assertEqual(
            rig.terminal.lines[-2:], ["-- now talking with bob", "-- no unread messages"]
        )
        rig.session.handle("plain line")
        self.assertEqual(rig.sent()[-1], "SEND|c-1|bob|plain line")

    def test_delivery_receipt_shown(self):
        """DLV shows as 'delivered to NAME'."""
        rig = Rig()
        rig.log_in()
        rig.server(f"DLV|41|bob|{TS}")
        self.assertEqual(rig.terminal.lines, ["  delivered to bob (message 41, 09:30)"])

    def test_membership_events_shown(self):
        """JOINED and PARTED are one line each."""
        rig = Rig()
        rig.log_in()
        rig.server("JOINED|#general|bob", "PARTED|#general|bob")
        self.assertEqual(
            rig.terminal.lines, ["  00:00 bob joined #general", "  00:00 bob left #general"]
        )


# --------------------------------------------------------------------------
# Sending


class SendTests(unittest.TestCase):
    def test_plain_line_sent_with_fresh_client_id(self):
        """Every message goes out as SEND with a new client id."""
        rig = Rig()
        rig.log_in()
        rig.session.handle("hello")
        rig.session.handle("@bob hi")
        self.assertEqual(rig.sent(), ["SEND|c-1|#general|hello", "SEND|c-2|bob|hi"])

    def test_sent_confirmation_is_short(self):
        """OK|SEND shows as 'Message N sent'."""
        rig = Rig()
        rig.log_in()
        rig.session.handle("hello")
        rig.server("OK|SEND|41")
        self.assertEqual(rig.terminal.lines, ["Message 41 sent"])

    def test_text_is_escaped_on_the_wire(self):
        """A newline or backslash in the text is sent as \\n or \\\\."""
        rig = Rig(one_shot=commands.SendText("bob", "one\ntwo\\"))
        rig.connect()
        rig.sent()
        rig.server("OK|LOGIN|alice|Alice")
        self.assertEqual(rig.sent(), ["SEND|c-1|bob|one\\ntwo\\\\"])

    def test_failed_send_is_reported(self):
        """An ERR to SEND says which message was not sent and why."""
        rig = Rig()
        rig.log_in()
        rig.session.handle("@nobody hi")
        rig.server("ERR|SEND|404|no such user")
        self.assertEqual(rig.terminal.lines, ["!! not sent to @nobody: no such user (404)"])

    def test_rate_limited_send_is_retried_with_same_client_id(self):
        """A SEND refused for the rate limit is tried again, same client id."""
        rig = Rig()
        rig.log_in()
        rig.session.handle("hello")
        rig.sent()
        rig.server("ERR|SEND|429|rate limit")
        self.assertEqual(rig.sent(), [])
        rig.clock.advance(RATE_LIMIT_RETRY)
        self.assertEqual(rig.sent(), ["SEND|c-1|#general|hello"])

    def test_usage_error_shown(self):
        """A misused command shows its usage line and sends nothing."""
        rig = Rig()
        rig.log_in()
        rig.session.handle("/msg bob")
        self.assertEqual(rig.terminal.lines, ["!! usage: /msg NAME TEXT"])
        self.assertEqual(rig.sent(), [])


# --------------------------------------------------------------------------
# Reconnecting


class ReconnectTests(unittest.TestCase):
    def test_drop_is_announced(self):
        """Losing the connection after login says so and does not exit."""
        rig = Rig()
        rig.log_in()
        rig.drop()
        self.assertIn("disconnected: the connection was lost", rig.terminal.text())
        self.assertIsNone(rig.terminal.status)

    def test_reconnect_resumes_with_token(self):
        """The next login is RESUME with the token, not the password."""
        rig = Rig(LoginSettings(username="alice", password=lambda: self.fail("password read")))
        rig.session.login.password = lambda: PASSWORD
        rig.log_in()
        rig.session.login.password = lambda: self.fail("password read again")
        rig.drop()
        rig.connect()
        self.assertEqual(rig.sent(), [f"RESUME|alice|{TOKEN}"])
        rig.server("OK|RESUME|alice|Alice")
        self.assertIn("reconnected (session resumed)", rig.terminal.text())

    def test_unanswered_sends_resent_after_reconnect(self):
        """Messages without OK are sent again, same client ids, in order."""
        rig = Rig()
        rig.log_in()
        rig.session.handle("one")
        rig.session.handle("two")
        rig.session.handle("three")
        rig.server("OK|SEND|10")
        rig.sent()
        rig.drop()
        rig.connect()
        rig.sent()
        rig.server("OK|RESUME|alice|Alice")
        sent = rig.sent()
        self.assertEqual(
            [ln for ln in sent if ln.startswith("SEND")],
            ["SEND|c-2|#general|two", "SEND|c-3|#general|three"],
        )

    def test_typed_while_disconnected_sent_after_older_ones(self):
        """Lines typed during an outage go out after the unanswered ones."""
        rig = Rig()
        rig.log_in()
        rig.session.handle("before")
        rig.drop()
        rig.session.handle("during")
        self.assertIn("will be sent after reconnecting", rig.terminal.text())
        rig.connect()
        rig.sent()
        rig.server("OK|RESUME|alice|Alice")
        self.assertEqual(
            [ln for ln in rig.sent() if ln.startswith("SEND")],
            ["SEND|c-1|#general|before", "SEND|c-2|#general|during"],
        )

    def test_catch_up_rooms_after_last_seen_id(self):
        """After a reconnect each room is read from the newest id seen there."""
        rig = Rig()
        rig.log_in(rooms="#general|#dev", newest=5)
        rig.know("bob")
        rig.server("C|#dev|bob|9|seen live")
        rig.drop()
        rig.connect()
        rig.sent()
        rig.server("OK|RESUME|alice|Alice")
        self.assertEqual(
            rig.sent(),
            [
                f"HISTORY|#general|{CATCH_UP_LIMIT}|after|5",
                f"HISTORY|#dev|{CATCH_UP_LIMIT}|after|9",
            ],
        )
        rig.terminal.take()
        rig.server(
            f"H|#general|11|bob|{TS}|missed",
            "OK|HISTORY|#general|1",
            f"H|#dev|9|bob|{TS}|seen live",
            f"H|#dev|12|bob|{TS}|missed too",
            "OK|HISTORY|#dev|2",
        )
        self.assertEqual(
            rig.terminal.lines,
            ["  2026-11-22 09:30 #general Bob: missed", "* 2026-11-22 09:30 #dev Bob: missed too"],
        )

    def test_rooms_asked_again_if_first_answer_was_lost(self):
        """A drop before OK|ROOMS: the next login asks ROOMS again."""
        rig = Rig()
        rig.connect()
        rig.sent()
        rig.server("OK|LOGIN|alice|Alice", f"OK|TOKEN|{TOKEN}")
        rig.drop()
        rig.connect()
        rig.sent()
        rig.server("OK|RESUME|alice|Alice")
        self.assertEqual(rig.sent(), ["ROOMS"])

    def test_catch_up_pages_while_replies_are_full(self):
        """A full catch-up page asks for the next one after its newest id."""
        rig = Rig()
        rig.log_in(newest=5)
        rig.know("bob")
        rig.drop()
        rig.connect()
        rig.sent()
        rig.server("OK|RESUME|alice|Alice")
        rig.sent()
        page = [f"H|#general|{100 + i}|bob|{TS}|m{i}" for i in range(CATCH_UP_LIMIT)]
        rig.server(*page, f"OK|HISTORY|#general|{CATCH_UP_LIMIT}")
        self.assertEqual(
            rig.sent(), [f"HISTORY|#general|{CATCH_UP_LIMIT}|after|{99 + CATCH_UP_LIMIT}"]
        )

    def test_catch_up_does_not_show_my_own_messages(self):
        """My own messages in a catch-up are already on screen."""
        rig = Rig()
        rig.log_in()
        rig.drop()
        rig.connect()
        rig.sent()
        rig.server("OK|RESUME|alice|Alice")
        rig.terminal.take()
        rig.server(f"H|#general|20|alice|{TS}|mine", "OK|HISTORY|#general|1")
        self.assertEqual(rig.terminal.lines, [])

    def test_expired_token_falls_back_to_password(self):
        """RESUME refused (401): log in with the password again, then a new token."""
        rig = Rig()
        rig.log_in()
        rig.drop()
        rig.connect()
        self.assertEqual(rig.sent(), [f"RESUME|alice|{TOKEN}"])
        rig.server("ERR|RESUME|401|bad token")
        self.assertEqual(rig.sent(), [f"LOGIN|alice|{PASSWORD}"])
        rig.server("OK|LOGIN|alice|Alice")
        self.assertEqual(rig.sent()[0], "TOKEN")

    def test_user_commands_resent_but_not_internal_ones(self):
        """An unanswered /join is sent again; an old catch-up or PING is not."""
        rig = Rig()
        rig.log_in()
        rig.session.handle("/join #dev")
        rig.clock.advance(KEEPALIVE_INTERVAL)
        self.assertEqual(rig.sent(), ["JOIN|#dev", "PING"])
        rig.drop()
        rig.connect()
        rig.sent()
        rig.server("OK|RESUME|alice|Alice")
        sent = rig.sent()
        self.assertIn("JOIN|#dev", sent)
        self.assertNotIn("PING", sent)

    def test_server_shutdown_then_reconnect(self):
        """BYE 503 (server restart) after login is announced; the next connection resumes."""
        rig = Rig()
        rig.log_in()
        rig.server("BYE|503|server shutting down")
        rig.drop(error.ConnectionDone())
        self.assertIn("server said: server shutting down (503)", rig.terminal.text())
        rig.session.reconnecting(2.0)
        self.assertIn("reconnecting in 2 s", rig.terminal.text())
        rig.connect()
        self.assertEqual(rig.sent(), [f"RESUME|alice|{TOKEN}"])

    def test_client_service_reconnects_with_backoff(self):
        """Under ClientService, a lost connection is retried after the policy's delay."""
        rig = Rig()
        endpoint = FakeEndpoint()
        delays = []
        service = ClientService(
            endpoint,
            rig.factory,
            retryPolicy=announcing(lambda attempt: 2.0**attempt, delays.append),
            clock=rig.clock,
        )
        service.startService()
        rig.proto, rig.transport = endpoint.complete()
        rig.server("HELLO|1|messenger")
        rig.sent()
        rig.server("OK|LOGIN|alice|Alice", f"OK|TOKEN|{TOKEN}", "OK|ROOMS|#general")
        rig.sent()
        rig.proto.connectionLost(Failure(error.ConnectionDone()))
        self.assertEqual(delays, [2.0])
        self.assertEqual(len(endpoint.attempts), 1)
        rig.clock.advance(2.0)
        self.assertEqual(len(endpoint.attempts), 2)
        rig.proto, rig.transport = endpoint.complete()
        rig.server("HELLO|1|messenger")
        self.assertEqual(rig.sent(), [f"RESUME|alice|{TOKEN}"])
        stopped = service.stopService()
        rig.proto.connectionLost(Failure(error.ConnectionDone()))
        self.successResultOf(stopped)


@implementer(IStreamClientEndpoint)
class FakeEndpoint:
    """Connection attempts the test completes by hand, on StringTransports."""

    def __init__(self) -> None:
        self.attempts: list[tuple[Any, defer.Deferred[Any]]] = []

    def connect(self, factory):
        d = defer.Deferred()
        self.attempts.append((factory, d))
        return d

    def complete(self):
        factory, d = self.attempts[-1]
        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        d.callback(protocol)
        # The proxy ClientService wraps around ours, for connectionLost.
        return protocol, transport


# --------------------------------------------------------------------------
# Errors that end the client


class FatalTests(unittest.TestCase):
    def test_refused_connection(self):
        """A refused first connection says so and exits 1."""
        rig = Rig()
        rig.session.connect_failed(Failure(error.ConnectionRefusedError()))
        self.assertEqual(rig.terminal.status, 1)
        self.assertIn("cannot connect to tcp:test:10000: connection refused", rig.terminal.text())

    def test_server_full(self):
        """BYE 503 server full before login is a clear, final error."""
        rig = Rig()
        rig.connect(hello=False)
        rig.server("BYE|503|server full")
        rig.drop(error.ConnectionDone())
        self.assertEqual(rig.terminal.status, 1)
        self.assertIn("the server is full", rig.terminal.text())

    def test_untrusted_certificate(self):
        """A TLS certificate that does not verify is final, never retried."""
        rig = Rig()
        rig.connect(hello=False)
        rig.drop(SSL.Error([("SSL routines", "", "certificate verify failed")]))
        self.assertEqual(rig.terminal.status, 1)
        self.assertIn("does not verify", rig.terminal.text())

    def test_untrusted_certificate_after_login(self):
        """Even after a login, a certificate that stops verifying ends the client."""
        rig = Rig()
        rig.log_in()
        rig.drop()
        rig.connect(hello=False)
        rig.drop(SSL.Error([("SSL routines", "", "certificate verify failed")]))
        self.assertEqual(rig.terminal.status, 1)

    def test_wrong_host_name_certificate(self):
        """A certificate for another host name is refused."""
        from service_identity import VerificationError

        rig = Rig()
        rig.connect(hello=False)
        rig.drop(VerificationError(errors=["no match"]))
        self.assertEqual(rig.terminal.status, 1)
        self.assertIn("not for this host name", rig.terminal.text())

    def test_logged_in_elsewhere(self):
        """BYE 409 (logged in elsewhere) stops this client rather than fight."""
        rig = Rig()
        rig.log_in()
        rig.server("BYE|409|logged in elsewhere")
        rig.drop(error.ConnectionDone())
        self.assertEqual(rig.terminal.status, 1)
        self.assertIn("logged in somewhere else", rig.terminal.text())

    def test_disconnect_before_first_login(self):
        """A connection closed before the first login ends the client."""
        rig = Rig()
        rig.connect()
        rig.drop(error.ConnectionDone())
        self.assertEqual(rig.terminal.status, 1)
        self.assertIn("before logging in", rig.terminal.text())


# --------------------------------------------------------------------------
# Other commands


class CommandTests(unittest.TestCase):
    def test_join_moves_focus_at_once(self):
        """A line after /join goes to the new room even before the OK."""
        rig = Rig()
        rig.log_in()
        rig.session.handle("/join #dev")
        rig.session.handle("hi dev")
        self.assertEqual(rig.sent(), ["JOIN|#dev", "SEND|c-1|#dev|hi dev"])
        rig.server("OK|JOIN|#dev")
        self.assertIn("joined #dev", rig.terminal.text())
        self.assertEqual(rig.sent(), ["HISTORY|#dev|1"])  # the baseline for catch-ups

    def test_failed_join_restores_focus(self):
        """If the join fails, the focus goes back."""
        rig = Rig()
        rig.log_in()
        rig.session.handle("/join #dev")
        rig.server("ERR|JOIN|400|bad room name")
        self.assertEqual(rig.session.state.focus, "#general")

    def test_part_moves_focus_to_general(self):
        """/part of the room in focus moves the focus to #general."""
        rig = Rig()
        rig.log_in(rooms="#general|#dev")
        rig.session.handle("/chat #dev")
        rig.session.handle("/part #dev")
        self.assertEqual(rig.session.state.focus, "#general")
        rig.server("OK|PART|#dev")
        self.assertNotIn("#dev", rig.session.state.rooms)

    def test_lists(self):
        """/rooms, /members, /who and /whois show the server's answers."""
        rig = Rig()
        rig.log_in()
        for line in ("/rooms", "/members", "/who", "/whois bob"):
            rig.session.handle(line)
        self.assertEqual(rig.sent(), ["ROOMS", "MEMBERS|#general", "WHO", "WHOIS|bob"])
        rig.server(
            "OK|ROOMS|#general|#dev",
            "OK|MEMBERS|#general|alice|bob",
            "OK|WHO|alice",
            f"OK|WHOIS|bob|offline|{TS}|Bob",
        )
        self.assertEqual(
            rig.terminal.lines,
            [
                "Your rooms: #general, #dev",
                "Members of #general: alice, bob",
                "Online: alice",
                "Bob: offline, last seen 2026-11-22 09:30",
            ],
        )

    def test_members_of_a_direct_focus_is_usage(self):
        """/members with a person in focus needs a room."""
        rig = Rig()
        rig.log_in()
        rig.session.handle("/chat bob")
        rig.session.handle("/members")
        self.assertIn("usage: /members", rig.terminal.text())

    def test_name(self):
        """/name changes the display name."""
        rig = Rig()
        rig.log_in()
        rig.session.handle("/name Alice L")
        self.assertEqual(rig.sent(), ["NAME|Alice L"])
        rig.server("OK|NAME|Alice L")
        self.assertEqual(rig.session.state.display_name, "Alice L")

    def test_passwd_asks_secretly_and_renews_token(self):
        """/passwd asks three times without echo; after OK a fresh TOKEN is asked."""
        rig = Rig(interactive=True)
        rig.log_in()
        rig.session.handle("/passwd")
        for answer in (PASSWORD, "new-password", "new-password"):
            self.assertFalse(rig.terminal.echo)
            rig.session.line_typed(answer)
        self.assertTrue(all(secret for _, secret in rig.terminal.questions[-3:]))
        self.assertEqual(rig.sent(), [f"PASSWD|{PASSWORD}|new-password"])
        rig.server("OK|PASSWD")
        self.assertEqual(rig.sent(), ["TOKEN"])
        self.assertIsNone(rig.session.token)
        rig.server("OK|TOKEN|" + "N" * 40)
        self.assertEqual(rig.session.token, "N" * 40)

    def test_passwd_mismatch_sends_nothing(self):
        """Two different new passwords leave the password unchanged."""
        rig = Rig(interactive=True)
        rig.log_in()
        rig.session.handle("/passwd")
        for answer in (PASSWORD, "new-password", "other-password"):
            rig.session.line_typed(answer)
        self.assertEqual(rig.sent(), [])
        self.assertIn("the new passwords differ", rig.terminal.text())

    def test_help_is_local(self):
        """/help is answered by the client itself."""
        rig = Rig()
        rig.log_in()
        rig.session.handle("/help")
        self.assertIn("/msg NAME TEXT", rig.terminal.text())
        self.assertEqual(rig.sent(), [])

    def test_signup_after_login_is_refused(self):
        """/signup once logged in explains itself."""
        rig = Rig()
        rig.log_in()
        rig.session.handle("/signup")
        self.assertIn("logged in already", rig.terminal.text())


# --------------------------------------------------------------------------
# Quitting


class QuitTests(unittest.TestCase):
    def test_quit_sends_quit_and_exits_when_closed(self):
        """/quit sends QUIT; the close after BYE ends the client with 0."""
        rig = Rig()
        rig.log_in()
        rig.session.line_typed("/quit")
        self.assertEqual(rig.sent(), ["QUIT"])
        rig.server("OK|QUIT", "BYE|200|goodbye")
        rig.drop(error.ConnectionDone())
        self.assertEqual(rig.terminal.status, 0)

    def test_quit_exits_even_if_server_never_closes(self):
        """A server that does not close after QUIT does not keep us."""
        rig = Rig()
        rig.log_in()
        rig.session.line_typed("!exit")
        rig.clock.advance(BYE_TIMEOUT)
        self.assertEqual(rig.terminal.status, 0)

    def test_end_of_input_waits_for_unsent_messages(self):
        """Ctrl-D or the end of a pipe quits once every message is confirmed."""
        rig = Rig()
        rig.log_in()
        rig.session.line_typed("last words")
        rig.session.input_closed()
        self.assertEqual(rig.sent(), ["SEND|c-1|#general|last words"])
        rig.server("OK|SEND|77")
        self.assertEqual(rig.sent(), ["QUIT"])
        rig.drop(error.ConnectionDone())
        self.assertEqual(rig.terminal.status, 0)

    def test_quit_gives_up_on_unsent_after_timeout(self):
        """If messages cannot be sent in time, quit anyway, say so, exit 1."""
        rig = Rig()
        rig.log_in()
        rig.drop()
        rig.session.line_typed("stuck")
        rig.session.line_typed("/quit")
        self.assertIsNone(rig.terminal.status)
        rig.clock.advance(QUIT_TIMEOUT)
        self.assertEqual(rig.terminal.status, 1)
        self.assertIn("1 message(s) could not be sent", rig.terminal.text())

    def test_quit_while_disconnected_with_nothing_pending_is_immediate(self):
        """Nothing to send and no connection: /quit exits at once."""
        rig = Rig()
        rig.log_in()
        rig.drop()
        rig.session.line_typed("/quit")
        self.assertEqual(rig.terminal.status, 0)

    def test_quit_at_the_login_prompt(self):
        """/quit typed at a prompt leaves."""
        rig = Rig(LoginSettings(), interactive=True)
        rig.connect()
        rig.session.line_typed("/quit")
        self.assertEqual(rig.terminal.status, 0)


class OneShotTests(unittest.TestCase):
    def test_one_shot_send_exits_0_after_ok(self):
        """messenger-client send: SEND after login, exit 0 once OK arrives."""
        rig = Rig(one_shot=commands.SendText("bob", "lunch?"))
        rig.connect()
        rig.sent()
        rig.server("OK|LOGIN|alice|Alice")
        self.assertEqual(rig.sent(), ["SEND|c-1|bob|lunch?"])  # no TOKEN for a one-shot
        rig.server("OK|SEND|41")
        self.assertEqual(rig.terminal.lines, ["Message 41 sent"])
        self.assertEqual(rig.sent(), ["QUIT"])
        rig.drop(error.ConnectionDone())
        self.assertEqual(rig.terminal.status, 0)

    def test_one_shot_failure_exits_1(self):
        """A refused one-shot message exits 1."""
        rig = Rig(one_shot=commands.SendText("nobody", "hi"))
        rig.connect()
        rig.server("OK|LOGIN|alice|Alice", "ERR|SEND|404|no such user")
        rig.drop(error.ConnectionDone())
        self.assertEqual(rig.terminal.status, 1)

    def test_one_shot_leaves_messages_for_the_person(self):
        """A one-shot neither shows nor acknowledges pending messages."""
        rig = Rig(one_shot=commands.SendText("bob", "hi"))
        rig.connect()
        rig.sent()
        rig.server("OK|LOGIN|alice|Alice", "R|bob|40|unread")
        self.assertEqual(rig.sent(), ["SEND|c-1|bob|hi"])
        self.assertEqual(rig.terminal.lines, [])
