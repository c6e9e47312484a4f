"""The web transport: a WebSocket at /ws carries the line protocol, one line
per text message, through the same protocol and session code as TCP; the
page is served with strict security headers."""

from __future__ import annotations

import os
import shutil
import tempfile
from types import SimpleNamespace

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial import unittest
from wsproto import Connection, ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

from messenger import tap
from messenger.web.connection import keep_undecodable_text
from messenger.web.site import make_site
from tests.support.harness import HELLO, PASSWORD, Harness
from tests.support.websocket_frames import CONTINUATION, client_frame, text_frame

HOST = "chat.test"
ORIGIN = f"http://{HOST}"


class WebClient:
    """A browser's WebSocket to the harness server, over a StringTransport."""

    def __init__(
        self,
        harness: Harness,
        origin: str | None = ORIGIN,
        allowed_origins: tuple[str, ...] = (),
        address: str = "10.9.0.1",
    ) -> None:
        self.harness = harness
        site = make_site(harness.factory, allowed_origins)
        peer = IPv4Address("TCP", address, 50000)
        self.transport = StringTransport(peerAddress=peer)
        self.channel = site.buildProtocol(peer)
        self.channel.makeConnection(self.transport)
        self.ws = WSConnection(ConnectionType.CLIENT)
        headers = [(b"Origin", origin.encode())] if origin is not None else []
        self.channel.dataReceived(
            self.ws.send(Request(host=HOST, target="/ws", extra_headers=headers))
        )
        self.status: int | None = None
        self.body = b""
        self.closed_with: int | None = None
        self._texts: list[str] = []
        self._read()

    @property
    def accepted(self) -> bool:
        return self.status == 101

    def _read(self) -> None:
        data = self.transport.value()
        self.transport.clear()
        if data:
            self.ws.receive_data(data)
        for event in self.ws.events():
            if isinstance(event, AcceptConnection):
                self.status = 101
            elif isinstance(event, RejectConnection):
                self.status = event.status_code
            elif isinstance(event, RejectData):
                self.body += event.data
            elif isinstance(event, TextMessage):
                self._texts.append(event.data)
            elif isinstance(event, CloseConnection):
                self.closed_with = event.code

    def send(self, text: str) -> None:
        self.channel.dataReceived(self.ws.send(TextMessage(text)))

    def send_bytes(self, data: bytes) -> None:
        self.channel.dataReceived(self.ws.send(BytesMessage(data)))

    def send_undecoded(self, *chunks: bytes) -> None:
        """One text message of these raw bytes, UTF-8 or not, one frame per
        chunk (wsproto would only send UTF-8)."""
        frames = [
            client_frame(CONTINUATION, chunk, fin=False) if n else text_frame(chunk, fin=False)
            for n, chunk in enumerate(chunks[:-1])
        ]
        last = client_frame(CONTINUATION, chunks[-1]) if frames else text_frame(chunks[-1])
        self.channel.dataReceived(b"".join(frames) + last)

    def messages(self) -> list[str]:
        """Every text message received since the last call."""
        self.harness.settle()
        self._read()
        texts, self._texts = self._texts, []
        return texts

    def command(self, text: str) -> list[str]:
        self.send(text)
        self.harness.finish_hashing()
        return self.messages()


def logged_in(harness: Harness, username: str = "alice") -> WebClient:
    harness.register(username)
    client = WebClient(harness)
    assert client.messages() == [HELLO]
    assert client.command(f"LOGIN|{username}|{PASSWORD}")[0].startswith("OK|LOGIN|")
    return client


class WebSocketLines(unittest.TestCase):
    def test_the_connection_is_greeted_like_a_tcp_one(self) -> None:
        """After the upgrade the first message is HELLO, as on TCP."""
        client = WebClient(Harness())
        self.assertTrue(client.accepted)
        self.assertEqual(client.messages(), [HELLO])

    def test_a_line_in_gives_the_same_replies_as_on_tcp(self) -> None:
        """The same commands get the same replies over WebSocket and TCP."""
        commands = ["HELP", "PING|abc", "WHO", "NOPE", "ROOMS", "JOIN|#web", "MEMBERS|#web"]
        web_harness, tcp_harness = Harness(), Harness()
        web = logged_in(web_harness)
        tcp_harness.register("alice")
        tcp = tcp_harness.login("alice")
        tcp.clear()
        for command in commands:
            self.assertEqual(web.command(command), tcp.command(command), command)

    def test_each_line_is_one_text_message_without_terminator(self) -> None:
        """Replies and events arrive one per message, with no LF."""
        harness = Harness()
        alice = logged_in(harness, "alice")
        bob = logged_in(harness, "bob")
        alice.messages()
        self.assertEqual(bob.command("MSG|alice|hi | there"), ["OK|MSG|1"])
        self.assertEqual(alice.messages(), ["R|bob|1|hi | there"])

    def test_a_trailing_newline_is_allowed(self) -> None:
        """A message ending with LF or CRLF is still one line."""
        client = logged_in(Harness())
        self.assertEqual(client.command("PING|a\n"), ["OK|PING|a"])
        self.assertEqual(client.command("PING|b\r\n"), ["OK|PING|b"])

    def test_a_websocket_user_and_a_tcp_user_talk_both_ways(self) -> None:
        """Both transports share one service: a direct message crosses."""
        harness = Harness()
        web = logged_in(harness, "alice")
        harness.register("bob")
        tcp = harness.login("bob")
        tcp.clear()
        web.messages()
        self.assertEqual(web.command("MSG|bob|from the browser"), ["OK|MSG|1"])
        self.assertEqual(tcp.lines(), ["R|alice|1|from the browser"])
        tcp.send("ACK|1", "MSG|alice|from the terminal")
        harness.settle()
        self.assertEqual(tcp.lines(), ["OK|MSG|2"])
        self.assertCountEqual(
            web.messages(), [f"DLV|1|bob|{harness_time(harness)}", "R|bob|2|from the terminal"]
        )


def harness_time(harness: Harness) -> str:
    from tests.support.harness import timestamp

    return timestamp(harness.now())


class WebSocketErrors(unittest.TestCase):
    def test_events_after_the_browser_closed_are_dropped_quietly(self) -> None:
        """Once the browser's close frame is in, lines for it are dropped
        (no error) until the connection is gone."""
        harness = Harness()
        alice = logged_in(harness, "alice")
        harness.register("bob")
        bob = harness.login("bob")
        alice.messages()
        alice.channel.dataReceived(alice.ws.send(CloseConnection(1000)))
        self.assertEqual(alice.messages(), [])
        self.assertEqual(alice.closed_with, 1000)
        bob.send("MSG|alice|are you there?")
        harness.settle()
        self.assertEqual(bob.lines(), ["OK|MSG|1"])
        alice.channel.connectionLost(Failure(ConnectionDone()))
        harness.settle()

    def test_a_binary_message_gets_400_and_the_connection_stays(self) -> None:
        """Binary frames are refused with the protocol's 400, not a close."""
        client = logged_in(Harness())
        client.send_bytes(b"PING")
        self.assertEqual(client.messages(), ["ERR|?|400|binary messages are not supported"])
        self.assertEqual(client.command("PING"), ["OK|PING"])

    def test_several_lines_in_one_message_get_400(self) -> None:
        """A text message carries exactly one line."""
        client = logged_in(Harness())
        self.assertEqual(client.command("PING\nPING"), ["ERR|?|400|one line per WebSocket message"])
        self.assertEqual(client.command("PING"), ["OK|PING"])

    def test_a_message_longer_than_max_line_gets_413_bye_and_close(self) -> None:
        """Over --max-line: ERR 413, BYE 413, then the WebSocket closes."""
        client = logged_in(Harness(max_line=100))
        client.send("MSG|#general|" + "x" * 100)
        self.assertEqual(client.messages(), ["ERR|?|413|line too long", "BYE|413|line too long"])
        self.assertEqual(client.closed_with, 1000)
        self.assertTrue(client.transport.disconnecting)

    def test_a_long_message_is_refused_before_it_is_complete(self) -> None:
        """The server does not gather an endless message: once what came of
        it cannot fit in --max-line, it answers 413 and closes."""
        client = logged_in(Harness(max_line=100))
        chunk = "x" * 10_000
        for _ in range(20):
            client.channel.dataReceived(client.ws.send(TextMessage(chunk, message_finished=False)))
            if client.transport.disconnecting:
                break
        self.assertTrue(client.transport.disconnecting)
        self.assertEqual(client.messages(), ["ERR|?|413|line too long", "BYE|413|line too long"])

    def test_many_short_messages_in_one_read_are_not_too_long(self) -> None:
        """The guard counts unfinished messages, not traffic."""
        client = logged_in(Harness(max_line=100))
        data = b"".join(client.ws.send(TextMessage(f"PING|{n}")) for n in range(90))
        client.channel.dataReceived(data)
        self.assertEqual(client.messages(), [f"OK|PING|{n}" for n in range(90)])

    def test_a_message_of_exactly_max_line_bytes_is_accepted(self) -> None:
        """The limit counts UTF-8 bytes, as on TCP."""
        client = logged_in(Harness(max_line=100))
        token = "é" * 47 + "x"  # 5 + 94 + 1 = 100 bytes
        self.assertEqual(client.command("PING|" + token), ["OK|PING|" + token])
        client.send("PING|" + token + "y")
        self.assertEqual(client.messages()[0], "ERR|?|413|line too long")

    def test_binary_messages_count_against_the_rate_limit(self) -> None:
        """Errors for binary messages use the command allowance, as on TCP."""
        client = logged_in(Harness(burst=2, rate=0.001))
        client.send_bytes(b"x")
        client.send_bytes(b"x")
        self.assertEqual(
            client.messages(),
            ["ERR|?|400|binary messages are not supported", "ERR|?|429|rate limit"],
        )


class TextThatIsNotUtf8(unittest.TestCase):
    """A text message that is not UTF-8 is a protocol line that is not
    UTF-8: the same ERR as on TCP, and the connection stays (not the
    WebSocket close 1007 that wsproto would send on its own)."""

    def test_a_text_message_that_is_not_utf8_gets_400_and_the_connection_stays(self) -> None:
        """ERR|?|400|invalid UTF-8, then the next line is answered."""
        client = logged_in(Harness())
        client.send_undecoded(b"PING|\xff")
        self.assertEqual(client.messages(), ["ERR|?|400|invalid UTF-8"])
        self.assertIsNone(client.closed_with)
        self.assertFalse(client.transport.disconnecting)
        self.assertEqual(client.command("PING|after"), ["OK|PING|after"])

    def test_the_replies_are_those_of_the_same_bytes_on_tcp(self) -> None:
        """Whatever the bytes, a WebSocket client gets what a TCP client
        sending them as a line gets (an ACK is never answered, rule 6)."""
        lines = [
            b"PING|\xff",
            b"\xc3",  # a character cut short at the end of the message
            b"MSG|#general|\xed\xa0\x80",  # a surrogate, which UTF-8 excludes
            b"ACK|\xfe",
            b"\x80\x80|x",
            "PING|é".encode(),
        ]
        web_harness, tcp_harness = Harness(), Harness()
        web = logged_in(web_harness)
        tcp_harness.register("alice")
        tcp = tcp_harness.login("alice")
        tcp.clear()
        for line in lines:
            web.send_undecoded(line)
            tcp.send_bytes(line + b"\n")
            tcp_harness.settle()
            self.assertEqual(web.messages(), tcp.lines(), line)

    def test_a_message_in_several_frames_is_decoded_as_a_whole(self) -> None:
        """A character split between two frames is one character; bytes
        that are not UTF-8 in a later frame still get the 400."""
        client = logged_in(Harness())
        e_acute = "é".encode()
        client.send_undecoded(b"PING|caf" + e_acute[:1], e_acute[1:] + b"!")
        self.assertEqual(client.messages(), ["OK|PING|café!"])
        client.send_undecoded(b"PING|ok ", b"then \xff", b" more")
        self.assertEqual(client.messages(), ["ERR|?|400|invalid UTF-8"])
        self.assertEqual(client.command("PING"), ["OK|PING"])

    def test_lines_that_are_not_utf8_count_against_the_rate_limit(self) -> None:
        """A flood of them is throttled like any command, as on TCP."""
        client = logged_in(Harness(burst=3, rate=0.001))  # LOGIN took one
        for _ in range(3):
            client.send_undecoded(b"\xff")
        self.assertEqual(
            client.messages(),
            ["ERR|?|400|invalid UTF-8", "ERR|?|400|invalid UTF-8", "ERR|?|429|rate limit"],
        )

    def test_the_hook_keeps_the_bytes_and_changes_nothing_it_does_not_know(self) -> None:
        """On Twisted's layout (a wsproto Connection as ``_wsconn``) the
        hook makes undecodable bytes come through as lone surrogates; on any
        other it changes nothing (wsproto's close with 1007 remains) rather
        than fail the upgrade."""
        connection = Connection(ConnectionType.SERVER)
        websocket = SimpleNamespace(_wsconn=connection)
        self.assertTrue(keep_undecodable_text(websocket))
        connection.receive_data(text_frame(b"caf\xe9 \xc3\xa9"))
        [message] = connection.events()
        assert isinstance(message, TextMessage)
        self.assertEqual(message.data, "caf\udce9 é")
        self.assertFalse(keep_undecodable_text(websocket))  # not twice
        self.assertFalse(keep_undecodable_text(object()))
        self.assertFalse(keep_undecodable_text(SimpleNamespace(_wsconn=SimpleNamespace())))

    def test_the_limit_counts_the_bytes_received(self) -> None:
        """--max-line counts the message's bytes, whether UTF-8 or not."""
        client = logged_in(Harness(max_line=100))
        client.send_undecoded(b"PING|" + b"\xff" * 95)
        self.assertEqual(client.messages(), ["ERR|?|400|invalid UTF-8"])
        client.send_undecoded(b"PING|" + b"\xff" * 96)
        self.assertEqual(client.messages(), ["ERR|?|413|line too long", "BYE|413|line too long"])


class WebSocketLimits(unittest.TestCase):
    def test_idle_timeout_closes_a_quiet_websocket(self) -> None:
        """Without a line for --idle-timeout seconds: BYE 408 and close."""
        harness = Harness(idle_timeout=30)
        client = WebClient(harness)
        client.messages()
        harness.advance(29)
        self.assertEqual(client.messages(), [])
        harness.advance(1)
        self.assertEqual(client.messages(), ["BYE|408|idle timeout"])
        self.assertEqual(client.closed_with, 1000)

    def test_messages_keep_the_connection_alive(self) -> None:
        """Every message counts as activity, even a refused binary one."""
        harness = Harness(idle_timeout=30)
        client = WebClient(harness)
        client.messages()
        harness.advance(20)
        client.send_bytes(b"x")
        harness.advance(20)
        self.assertEqual(client.messages(), ["ERR|?|400|binary messages are not supported"])

    def test_a_reader_too_slow_is_closed(self) -> None:
        """Room lines piling up past --max-outbuf while the socket is full:
        BYE 408 too slow, and the connection is dropped."""
        harness = Harness(max_outbuf=2000, rate=1000, burst=1000)
        alice = logged_in(harness, "alice")
        harness.register("bob")
        bob = harness.login("bob")
        alice.messages()
        socket_producer = alice.transport.producer
        assert socket_producer is not None
        socket_producer.pauseProducing()  # alice's socket is full
        for n in range(40):
            bob.send(f"MSG|#general|line {n:02} " + "x" * 60)
        harness.settle()
        self.assertTrue(alice.transport.disconnecting)
        self.assertIn("BYE|408|too slow", alice.messages())

    def test_the_rate_limit_holds(self) -> None:
        """Over --burst commands at once: 429, as on TCP."""
        client = logged_in(Harness(burst=3, rate=0.001))
        replies = [client.command("PING") for _ in range(3)]
        self.assertEqual(replies, [["OK|PING"], ["OK|PING"], ["ERR|PING|429|rate limit"]])

    def test_a_quiet_http_connection_is_closed_after_a_minute(self) -> None:
        """Before any upgrade an idle HTTP connection is not kept for hours."""
        harness = Harness()
        site = make_site(harness.factory)
        transport = StringTransport()
        channel = site.buildProtocol(IPv4Address("TCP", "10.0.0.1", 1))
        channel.makeConnection(transport)
        harness.clock.advance(59)
        self.assertFalse(transport.disconnecting)
        harness.clock.advance(1)
        self.assertTrue(transport.disconnecting)

    def test_after_the_upgrade_only_the_protocol_s_idle_timeout_counts(self) -> None:
        """The HTTP timeout stops at the upgrade: a WebSocket that sends a
        PING now and then stays open far longer than a minute."""
        harness = Harness(idle_timeout=300)
        client = logged_in(harness)
        for _ in range(5):
            harness.advance(250)
            self.assertEqual(client.command("PING"), ["OK|PING"])
        self.assertFalse(client.transport.disconnecting)

    def test_max_clients_counts_websockets_too(self) -> None:
        """Over --max-clients a WebSocket gets BYE 503 and is closed."""
        harness = Harness(max_clients=1)
        harness.connect()
        client = WebClient(harness)
        self.assertEqual(client.messages(), ["BYE|503|server full"])
        self.assertEqual(client.closed_with, 1000)

    def test_a_full_send_buffer_holds_back_deliveries(self) -> None:
        """While the socket's send buffer is full, direct messages wait."""
        harness = Harness()
        alice = logged_in(harness, "alice")
        bob = logged_in(harness, "bob")
        alice.messages()
        socket_producer = alice.transport.producer
        assert socket_producer is not None
        socket_producer.pauseProducing()  # what a full socket does
        self.assertEqual(bob.command("MSG|alice|wait"), ["OK|MSG|1"])
        self.assertEqual(alice.messages(), [])
        socket_producer.resumeProducing()
        self.assertEqual(alice.messages(), ["R|bob|1|wait"])


class Origins(unittest.TestCase):
    def test_a_foreign_origin_is_refused_with_403(self) -> None:
        """Another site's page cannot open a connection."""
        client = WebClient(Harness(), origin="http://evil.example")
        self.assertEqual(client.status, 403)

    def test_the_page_s_own_origin_is_accepted(self) -> None:
        """The origin the page was served from (Host header) is accepted."""
        self.assertTrue(WebClient(Harness(), origin="HTTP://Chat.Test:80").accepted)

    def test_another_scheme_is_refused(self) -> None:
        """https://host is not the same origin as an http:// page."""
        self.assertEqual(WebClient(Harness(), origin=f"https://{HOST}").status, 403)

    def test_a_web_origin_option_is_accepted(self) -> None:
        """--web-origin names the public origin behind a reverse proxy."""
        client = WebClient(
            Harness(),
            origin="https://chat.example.org",
            allowed_origins=("https://chat.example.org/",),
        )
        self.assertTrue(client.accepted)

    def test_a_request_without_origin_is_accepted(self) -> None:
        """Programs send no Origin; only browsers need the check."""
        self.assertTrue(WebClient(Harness(), origin=None).accepted)


class Page(unittest.TestCase):
    """The page over a real loopback HTTP connection."""

    def setUp(self) -> None:
        from twisted.internet import reactor

        self.reactor = reactor
        site = make_site(Harness().factory)
        self.port = reactor.listenTCP(0, site, interface="127.0.0.1")  # type: ignore[arg-type]
        self.addCleanup(self.port.stopListening)

    async def get(self, path: str):
        from twisted.web.client import Agent, readBody

        agent = Agent(self.reactor)
        url = f"http://127.0.0.1:{self.port.getHost().port}{path}"  # type: ignore[attr-defined]
        response = await agent.request(b"GET", url.encode())
        body = await readBody(response)
        return response.code, response.headers, body

    def run_async(self, coroutine):
        from twisted.internet.defer import ensureDeferred

        return ensureDeferred(coroutine)

    def test_the_page_is_served_at_the_root(self):
        """GET / returns the web client's HTML."""

        async def check() -> None:
            status, headers, body = await self.get("/")
            self.assertEqual(status, 200)
            self.assertEqual(headers.getRawHeaders(b"content-type"), [b"text/html; charset=utf-8"])
            self.assertIn(b"<!doctype html>", body.lower())

        return self.run_async(check())

    def test_scripts_are_served_as_javascript(self):
        """ES modules need a JavaScript type (nosniff is on)."""

        async def check() -> None:
            status, headers, _ = await self.get("/js/main.js")
            self.assertEqual(status, 200)
            self.assertEqual(
                headers.getRawHeaders(b"content-type"), [b"text/javascript; charset=utf-8"]
            )

        return self.run_async(check())

    def test_every_response_carries_the_security_headers(self):
        """CSP without inline script or remote source, nosniff, no referrer."""

        async def check() -> None:
            for path in ("/", "/js/main.js", "/missing"):
                _, headers, _ = await self.get(path)
                csp = headers.getRawHeaders(b"content-security-policy")[0].decode()
                self.assertIn("script-src 'self';", csp)
                self.assertIn("default-src 'none'", csp)
                self.assertNotIn("unsafe-inline", csp)
                self.assertNotIn("http", csp)
                self.assertEqual(headers.getRawHeaders(b"x-content-type-options"), [b"nosniff"])
                self.assertEqual(headers.getRawHeaders(b"referrer-policy"), [b"no-referrer"])

        return self.run_async(check())

    def test_directories_are_not_listed(self):
        """A directory without an index is 404, not a listing."""

        async def check() -> None:
            status, _, body = await self.get("/js/")
            self.assertEqual(status, 404)
            self.assertNotIn(b"main.js", body)

        return self.run_async(check())

    def test_the_html_has_no_inline_script(self):
        """Every script is a file of the page's own origin."""

        async def check() -> None:
            _, _, body = await self.get("/")
            self.assertNotRegex(body, rb"<script(?![^>]*\ssrc=)[^>]*>")

        return self.run_async(check())


class Options(unittest.TestCase):
    def parse(self, *args: str) -> tap.Options:
        options = tap.Options()
        options.parseOptions(list(args))
        return options

    def test_web_is_repeatable(self) -> None:
        """--web may be given several times; none means no web server."""
        self.assertEqual(self.parse()["web"], [])
        options = self.parse("--web", "tcp:8080", "--web", "tcp:8081")
        self.assertEqual(options["web"], ["tcp:8080", "tcp:8081"])

    def test_web_origin_is_repeatable(self) -> None:
        """--web-origin collects every origin given."""
        options = self.parse(
            "--web-origin", "https://a.example", "--web-origin", "https://b.example"
        )
        self.assertEqual(options["web-origin"], ["https://a.example", "https://b.example"])

    def test_a_bad_web_endpoint_is_a_usage_error(self) -> None:
        """An endpoint string that does not parse stops the start."""
        from twisted.python import usage

        self.assertRaises(usage.UsageError, self.parse, "--web", "nonsense:1")

    def test_web_options_come_from_the_config_file(self) -> None:
        """[messenger] web = ... and web-origin = ..., space separated."""
        directory = tempfile.mkdtemp(prefix="messenger-test-")
        self.addCleanup(shutil.rmtree, directory, True)
        path = os.path.join(directory, "messenger.ini")
        with open(path, "w") as f:
            f.write("[messenger]\nweb = tcp:8080 tcp:8081\nweb-origin = https://a.example\n")
        options = self.parse("--config", path)
        self.assertEqual(options["web"], ["tcp:8080", "tcp:8081"])
        self.assertEqual(options["web-origin"], ["https://a.example"])
