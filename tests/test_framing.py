"""docs/protocol.md, "Framing", "Names and values" and rule 1 (HELLO).

Also two end-to-end tests that join a server protocol and a minimal client
protocol with ``twisted.internet.iosim`` (the test helper module is
``twisted.test.iosim``) and pump bytes both ways.
"""

from hypothesis import given, settings, strategies as st
from twisted.internet.address import IPv4Address
from twisted.protocols.basic import LineReceiver
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase

from messenger.wire import WHITE_SPACE
from tests.support.harness import HELLO, Harness

SMALL = 64  # --max-line for the length tests


class HelloTests(SynchronousTestCase):
    def test_server_greets_with_hello_version_1_and_its_name(self):
        """On connect the server sends HELLO|1|<server name>."""
        h = Harness(name="chat.example")
        client = h.connect(greet=False)
        self.assertEqual(client.lines(), ["HELLO|1|chat.example"])
        self.assertFalse(client.closed)

    def test_default_server_name_is_messenger(self):
        """The greeting of a server with default options is HELLO|1|messenger."""
        client = Harness().connect(greet=False)
        self.assertEqual(client.lines(), ["HELLO|1|messenger"])


class LineEndingTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness(max_line=SMALL)
        self.client = self.h.connect()

    def test_line_may_end_with_lf(self):
        """A line ends with LF."""
        self.assertEqual(self.client.command("PING|lf"), ["OK|PING|lf"])

    def test_line_may_end_with_crlf_and_the_cr_is_dropped(self):
        """A CR right before the LF is dropped, so CRLF works too."""
        self.client.send("PING|crlf", end="\r\n")
        self.h.settle()
        self.assertEqual(self.client.lines(), ["OK|PING|crlf"])

    def test_crlf_and_lf_lines_may_be_mixed_in_one_stream(self):
        """CRLF and LF both work, on the same connection."""
        self.client.send_bytes(b"PING|1\r\nPING|2\nPING|3\r\n")
        self.h.settle()
        self.assertEqual(self.client.lines(), ["OK|PING|1", "OK|PING|2", "OK|PING|3"])

    def test_empty_lines_are_ignored(self):
        """Empty lines (LF or CRLF alone) get no reply."""
        self.client.send_bytes(b"\n\r\n\n\r\nPING\n\n")
        self.h.settle()
        self.assertEqual(self.client.lines(), ["OK|PING"])
        self.assertFalse(self.client.closed)

    def test_line_split_across_packets_is_one_line(self):
        """The stream is framed by LF, not by the packets it arrives in."""
        self.client.send_bytes(b"PI")
        self.client.send_bytes(b"NG|ab")
        self.assertEqual(self.client.lines(), [])
        self.client.send_bytes(b"c\r")
        self.client.send_bytes(b"\nPING|d\n")
        self.h.settle()
        self.assertEqual(self.client.lines(), ["OK|PING|abc", "OK|PING|d"])


class LineLengthTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness(max_line=SMALL)
        self.client = self.h.connect()

    def ping_line(self, length: int) -> bytes:
        return b"PING|" + b"x" * (length - len(b"PING|"))

    def assertTooLong(self, client):
        self.assertEqual(client.lines(), ["ERR|?|413|line too long", "BYE|413|line too long"])
        self.assertTrue(client.closed)

    def test_line_of_exactly_max_line_bytes_is_accepted(self):
        """A line is at most --max-line bytes without its LF."""
        line = self.ping_line(SMALL)
        self.client.send_bytes(line + b"\n")
        self.h.settle()
        self.assertEqual(self.client.lines(), ["OK|" + line.decode()])
        self.assertFalse(self.client.closed)

    def test_line_of_exactly_max_line_bytes_is_accepted_with_crlf(self):
        """The CR of a CRLF terminator does not count against --max-line."""
        line = self.ping_line(SMALL)
        self.client.send_bytes(line + b"\r\n")
        self.h.settle()
        self.assertEqual(self.client.lines(), ["OK|" + line.decode()])
        self.assertFalse(self.client.closed)

    def test_longer_line_gets_err_413_then_bye_413_and_close(self):
        """A longer line: ERR|?|413|line too long, BYE|413|line too long, close."""
        self.client.send_bytes(self.ping_line(SMALL + 1) + b"\n")
        self.h.settle()
        self.assertTooLong(self.client)

    def test_longer_line_with_crlf_gets_413(self):
        """--max-line + 1 bytes before CRLF is too long as well."""
        self.client.send_bytes(self.ping_line(SMALL + 1) + b"\r\n")
        self.h.settle()
        self.assertTooLong(self.client)

    def test_long_partial_line_sent_in_pieces_gets_413(self):
        """The limit holds for a line that grows over many packets."""
        for _ in range(SMALL):
            self.client.send_bytes(b"xy")
        self.h.settle()
        self.assertTooLong(self.client)

    def test_lines_after_a_too_long_line_get_no_reply(self):
        """After BYE the server closes: the rest of the input is not read."""
        self.client.send_bytes(self.ping_line(SMALL + 1) + b"\nPING\n")
        self.h.settle()
        self.assertTooLong(self.client)

    def test_line_too_long_reply_keeps_its_place_after_earlier_replies(self):
        """Rule 2 holds for the 413 too: replies to earlier commands come first, then ERR|?|413, BYE|413."""
        h = Harness(max_line=SMALL)
        alice, bob = h.users("alice", "bob")
        alice.send_bytes(b"MSG|bob|sent before the long line\n" + self.ping_line(SMALL + 1) + b"\n")
        h.settle()
        self.assertEqual(
            alice.lines(),
            ["OK|MSG|1", "ERR|?|413|line too long", "BYE|413|line too long"],
        )
        self.assertTrue(alice.closed)

    def test_longest_body_is_relayed_whole_even_if_the_r_line_is_longer(self):
        """A MSG line of exactly --max-line bytes is accepted and its body relayed whole."""
        h = Harness()
        alice, bob = h.users("alice", "bob")
        body = "b" * (8192 - len("MSG|bob|"))
        alice.send_bytes(f"MSG|bob|{body}\r\n".encode())
        h.settle()
        self.assertEqual(alice.lines(), ["OK|MSG|1"])
        self.assertEqual(bob.lines(), [f"R|alice|1|{body}"])

    def test_max_line_counts_bytes_not_characters(self):
        """The limit is in bytes of UTF-8: 'é' counts as two."""
        ok = b"PING|" + "é".encode() * ((SMALL - 5) // 2)
        self.client.send_bytes(ok + b"\n")
        self.h.settle()
        self.assertEqual(self.client.lines(), ["OK|" + ok.decode()])
        too_long = b"PING|" + "é".encode() * 30  # 65 bytes, 35 characters
        self.assertEqual(len(too_long), SMALL + 1)
        self.client.send_bytes(too_long + b"\n")
        self.h.settle()
        self.assertTooLong(self.client)

    def test_default_max_line_is_8192_bytes(self):
        """Without --max-line a line may hold 8192 bytes, not one more."""
        h = Harness()
        client = h.connect()
        ok = b"PING|" + b"y" * (8192 - 5)
        client.send_bytes(ok + b"\r\n")
        h.settle()
        self.assertEqual(client.lines(), ["OK|" + ok.decode()])
        client.send_bytes(ok + b"y\n")
        h.settle()
        self.assertTooLong(client)


class EncodingTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness()
        self.client = self.h.connect()

    def test_invalid_utf8_gets_400_and_the_connection_stays_open(self):
        """A line that is not valid UTF-8: ERR|?|400|invalid UTF-8; the connection stays open."""
        self.client.send_bytes(b"PING|\xff\xfe\n")
        self.h.settle()
        self.assertEqual(self.client.lines(), ["ERR|?|400|invalid UTF-8"])
        self.assertFalse(self.client.closed)
        self.assertEqual(self.client.command("PING"), ["OK|PING"])

    def test_invalid_utf8_reply_keeps_its_place_in_the_reply_order(self):
        """The 400 for invalid UTF-8 is a reply like any other, in order."""
        h = Harness()
        alice, bob = h.users("alice", "bob")
        alice.send_bytes(b"MSG|bob|hi\nPING|\xff\nPING\n")
        h.settle()
        self.assertEqual(alice.lines(), ["OK|MSG|1", "ERR|?|400|invalid UTF-8", "OK|PING"])

    def test_truncated_utf8_sequence_is_invalid(self):
        """A multi-byte sequence cut short by the end of the line is not UTF-8."""
        self.client.send_bytes(b"PING|\xc3\n")
        self.h.settle()
        self.assertEqual(self.client.lines(), ["ERR|?|400|invalid UTF-8"])

    def test_non_ascii_text_is_relayed_as_utf8(self):
        """Lines are UTF-8 text in both directions."""
        self.client.send_bytes("PING|żółw 🐢\n".encode())
        self.h.settle()
        self.assertEqual(self.client.lines(), ["OK|PING|żółw 🐢"])


class FieldTests(SynchronousTestCase):
    def test_verbs_are_case_insensitive_and_replies_upper_case(self):
        """The verb is case-insensitive on input, upper case in everything the server sends."""
        h = Harness()
        client = h.connect()
        self.assertEqual(
            client.command("ping", "Ping|a", "pInG|b"),
            ["OK|PING", "OK|PING|a", "OK|PING|b"],
        )
        self.assertEqual(client.command("nosuchverb|x")[0].split("|")[:3], ["ERR", "?", "400"])
        self.assertEqual(client.command("msg")[0].split("|")[:3], ["ERR", "MSG", "400"])

    def test_message_body_is_the_rest_of_the_line_and_may_contain_pipes(self):
        """Where the last field is a message body, it is the rest of the line
        and may contain any number of |."""
        h = Harness()
        alice, bob = h.users("alice", "bob")
        self.assertEqual(alice.command("MSG|bob|a|b||c|"), ["OK|MSG|1"])
        self.assertEqual(bob.lines(), ["R|alice|1|a|b||c|"])
        self.assertEqual(alice.command("BCST||x|"), ["OK|BCST|2"])
        self.assertEqual(bob.lines(), ["C|#general|alice|2||x|"])
        pipes = "|" * 5000
        self.assertEqual(alice.command("MSG|bob|" + pipes), ["OK|MSG|3"])
        self.assertEqual(bob.lines(), ["R|alice|3|" + pipes])
        self.assertEqual(alice.command("BCST|" + pipes), ["OK|BCST|4"])
        self.assertEqual(bob.lines(), ["C|#general|alice|4|" + pipes])

    def test_other_fields_never_contain_pipes(self):
        """No other field ever contains |: an extra | is a wrong field count, 400."""
        h = Harness()
        client = h.connect()
        for line, verb in [("PING|a|b", "PING"), ("HELP|", "HELP"), ("LOGIN|a|b|c", "LOGIN")]:
            reply = client.command(line)
            self.assertEqual(len(reply), 1, line)
            self.assertEqual(reply[0].split("|")[:3], ["ERR", verb, "400"], line)

    def test_body_is_relayed_exactly(self):
        """The body is opaque to the server: it relays it exactly."""
        h = Harness()
        alice, bob = h.users("alice", "bob")
        body = "  two\\nlines, a \\\\ backslash\tand a tab, trailing space "
        self.assertEqual(alice.command(f"MSG|bob|{body}"), ["OK|MSG|1"])
        self.assertEqual(bob.lines(), [f"R|alice|1|{body}"])

    @settings(max_examples=150, deadline=None)
    @given(
        body=st.text(
            alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\n"),
            min_size=1,
            max_size=300,
        ).filter(lambda b: not b.endswith("\r") and any(c not in WHITE_SPACE for c in b))
    )
    def test_any_body_is_relayed_exactly_property(self, body):
        """For any body with a non-White_Space character, R carries exactly the text MSG sent."""
        if not hasattr(self, "relay"):
            h = Harness(rate=10**6, burst=10**6)
            self.relay = (h,) + tuple(h.users("alice", "bob"))
        h, alice, bob = self.relay
        alice.send(f"MSG|bob|{body}")
        h.settle()
        (ok,) = alice.lines()
        msgid = ok.split("|")[2]
        self.assertEqual(bob.lines(), [f"R|alice|{msgid}|{body}"])
        bob.send(f"ACK|{msgid}")
        h.settle()
        alice.clear()

    @settings(max_examples=50, deadline=None)
    @given(verb=st.sampled_from(["ping", "help", "who"]), data=st.data())
    def test_any_casing_of_a_verb_is_the_same_verb_property(self, verb, data):
        """The verb is case-insensitive on input, upper case in everything the server sends."""
        flips = data.draw(st.lists(st.booleans(), min_size=len(verb), max_size=len(verb)))
        typed = "".join(c.upper() if f else c for c, f in zip(verb, flips))
        h = Harness()
        reply = h.connect().command(typed)
        self.assertEqual(len(reply), 1)
        self.assertTrue(
            reply[0].startswith(("OK|" + verb.upper(), "ERR|" + verb.upper() + "|401")), reply
        )

    def test_usernames_are_case_insensitive_and_sent_in_lower_case(self):
        """A username is case-insensitive; every line the server sends uses the lower-case form."""
        h = Harness()
        client = h.connect()
        self.assertEqual(client.command("USR|Alice.B-1_|password1|Alice"), ["OK|USR|alice.b-1_"])
        h.register("bob")
        self.assertEqual(
            client.command("LOGIN|ALICE.b-1_|password1"), ["OK|LOGIN|alice.b-1_|Alice"]
        )
        bob = h.login("BOB")
        self.assertEqual(client.command("MSG|BoB|hi"), ["ON|bob", "OK|MSG|1"])
        self.assertEqual(bob.lines(), ["R|alice.b-1_|1|hi"])
        self.assertEqual(client.command("WHOIS|BOB"), ["OK|WHOIS|bob|online|-|Bob"])

    def test_room_names_are_lower_cased(self):
        """A room's input is lower-cased."""
        h = Harness()
        (alice,) = h.users("alice")
        self.assertEqual(alice.command("JOIN|#Chat_Room-1"), ["OK|JOIN|#chat_room-1"])
        self.assertEqual(alice.command("MEMBERS|#CHAT_ROOM-1"), ["OK|MEMBERS|#chat_room-1|alice"])


# -- in-memory round trips with iosim ----------------------------------------


class LineClient(LineReceiver):
    """A minimal client: records every line and whether it was disconnected."""

    delimiter = b"\n"

    def __init__(self):
        self.received = []
        self.disconnected = False

    def lineReceived(self, line):
        self.received.append(line.decode("utf-8"))

    def connectionLost(self, reason):
        self.disconnected = True

    def say(self, *lines):
        for line in lines:
            self.sendLine(line.encode("utf-8"))

    def take(self):
        lines, self.received = self.received, []
        return lines


class IOSimTests(SynchronousTestCase):
    def test_round_trip_from_hello_to_quit(self):
        """A client and the server joined in memory: the example conversation of docs/protocol.md."""
        h = Harness()
        client, server, pump = iosim.connectedServerAndClient(
            lambda: h.factory.buildProtocol(None), LineClient, clock=h.clock
        )
        self.assertEqual(client.take(), [HELLO])
        client.say("USR|alice|correct horse|Alice Liddell", "LOGIN|alice|correct horse", "PING|rt")
        pump.flush()
        self.assertEqual(
            client.take(),
            ["OK|USR|alice", "OK|LOGIN|alice|Alice Liddell", "OK|PING|rt"],
        )
        client.say("QUIT")
        pump.flush()
        self.assertEqual(client.take(), ["OK|QUIT", "BYE|200|goodbye"])
        self.assertTrue(client.disconnected)
        self.assertEqual(h.service.connections, set())

    def test_direct_message_ack_and_receipt_between_two_connected_clients(self):
        """MSG -> OK|MSG, R to the recipient, ACK -> DLV to the sender, over two in-memory connections."""
        h = Harness()
        h.register("alice")
        h.register("bob")
        pumps, clients = [], []
        for port in (5001, 5002):
            server = h.factory.buildProtocol(None)
            client = LineClient()
            pumps.append(
                iosim.connect(
                    server,
                    iosim.FakeTransport(
                        server, True, peerAddress=IPv4Address("TCP", "10.1.1.1", port)
                    ),
                    client,
                    iosim.FakeTransport(client, False),
                    clock=h.clock,
                )
            )
            clients.append(client)
        alice, bob = clients

        def flush():
            for _ in range(3):
                for pump in pumps:
                    pump.flush()

        alice.say("LOGIN|alice|password1")
        bob.say("LOGIN|bob|password1")
        flush()
        self.assertEqual(alice.take(), [HELLO, "OK|LOGIN|alice|Alice", "ON|bob"])
        self.assertEqual(bob.take(), [HELLO, "OK|LOGIN|bob|Bob"])
        alice.say("MSG|bob|are you there? a|b is fine here")
        flush()
        self.assertEqual(alice.take(), ["OK|MSG|1"])
        self.assertEqual(bob.take(), ["R|alice|1|are you there? a|b is fine here"])
        bob.say("ACK|1")
        flush()
        self.assertEqual(bob.take(), [])
        self.assertEqual(alice.take(), ["DLV|1|bob|2026-11-22T09:30:00.000Z"])
