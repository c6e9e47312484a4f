"""Issue 4: the server withstands hostile input.

Garbage bytes, broken UTF-8, floods of separators and fields, overlong lines
(also trickled byte by byte), injection-looking values, spoofed events and
reads of other people's conversations.  The limits themselves (connections,
idle timeout, rate limit) are tested in tests/test_limits.py and readers that
do not read in tests/test_slow_reader.py.

Every test here is deterministic: the in-memory harness
(:mod:`tests.support.harness`: ``ImmediateSqliteStore``, ``task.Clock``,
``StringTransport``), no sleeps, Hypothesis derandomized without a
database.  Each test's docstring names the rule it checks (docs/protocol.md).

The figures of the fuzz test go into the JSON file named by
``MESSENGER_RELIABILITY_REPORT`` when it is set.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile

import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from messenger import wire
from messenger.store.sqlite import ImmediateSqliteStore
from tests.support.harness import PASSWORD, Harness
from tests.support.probes import LoggedFailures
from tests.support.report import merge_report
from tests.support.verbs import verb_of

#: Generous per-connection command allowance, for tests about something else.
NO_RATE_LIMIT = dict(rate=1e9, burst=10**9)
BAD_CREDENTIALS = "ERR|LOGIN|401|bad credentials"


# -- helpers ------------------------------------------------------------------


def replies(lines: list[str]) -> list[str]:
    """Final replies (rule 2) among ``lines``, events left out."""
    return [line for line in lines if line.startswith(("OK|", "ERR|"))]


# -- random bytes ---------------------------------------------------------------

_VERBS = sorted(wire.CLIENT_COMMANDS)
_verb_bytes = (
    st.sampled_from(_VERBS)
    .flatmap(lambda v: st.sampled_from([v, v.lower(), v.capitalize()]))
    .map(lambda v: v.encode("ascii"))
)
_random_line = st.one_of(
    # arbitrary bytes: NUL, CR, |, broken UTF-8, anything but LF
    st.binary(max_size=120),
    # a real verb followed by arbitrary bytes
    st.tuples(_verb_bytes, st.binary(max_size=120)).map(lambda t: t[0] + t[1]),
    # a real verb with random binary fields
    st.tuples(_verb_bytes, st.lists(st.binary(max_size=24), max_size=6)).map(
        lambda t: t[0] + b"".join(b"|" + field for field in t[1])
    ),
    # text, lone surrogates (which encode to invalid UTF-8) included
    st.text(max_size=60).map(lambda s: s.encode("utf-8", "surrogatepass")),
)
_terminator = st.sampled_from([b"\n", b"\r\n", b"\r\r\n", b"\n\n"])


def _expected_reply(raw: bytes) -> str | None:
    """The verb the one reply to a line must name ("?" where the verb is
    unreadable or unknown), or None for an ACK line (no reply).  Lines that
    would end the session or change the password are rejected with
    ``assume``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "?"
    verb = verb_of(text)
    if verb == "ACK":
        return None
    try:
        command = wire.parse_command(text)
    except wire.RemoteProtocolError:
        return verb
    # QUIT closes; PASSWD with the right old password would change it.
    assume(not isinstance(command, (wire.Quit, wire.SetPassword)))
    return command.NAME


def _ack_verb(raw: bytes) -> bool:
    return raw.split(b"|", 1)[0].upper() == b"ACK"


class RandomBytesTests(SynchronousTestCase):
    @pytest.mark.slow  # a storm of random lines (hypothesis, hundreds of examples)
    def test_random_bytes_get_one_reply_per_line_and_the_connection_stays_usable(self):
        """Rules 2, 5, 6 and Framing: lines of arbitrary bytes (NUL, broken
        UTF-8, |, CR, split into arbitrary dataReceived chunks) never make the
        server raise; each non-empty line gets exactly one reply, in order,
        naming its verb (ERR, or OK if it happens to be valid), an ACK line
        none; no 500; a PING afterwards gets OK|PING."""
        errors = LoggedFailures(self)
        stats = {"examples": 0, "lines": 0, "bytes": 0, "ok": 0, "invalid_utf8": 0}

        @settings(
            max_examples=600,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(st.data())
        def run(data):
            lines = data.draw(
                st.lists(st.tuples(_random_line, _terminator), min_size=1, max_size=25)
            )
            stream = b"".join(line + end for line, end in lines)
            # The stream splits into lines at each LF, whatever was generated.
            expected = []
            for raw in stream.split(b"\n")[:-1]:
                if raw.endswith(b"\r"):
                    raw = raw[:-1]
                if not raw:
                    continue
                # A non-UTF-8 ACK line: see test_ack_line_with_invalid_utf8_gets_no_reply.
                assume(not (_ack_verb(raw) and _expected_reply(raw) == "?"))
                verb = _expected_reply(raw)
                if verb is not None:
                    expected.append(verb)
            cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
            chunks = [stream[a:b] for a, b in zip([0] + cuts, cuts + [len(stream)])]

            h = Harness(**NO_RATE_LIMIT)
            (alice,) = h.users("alice")
            for chunk in chunks:
                alice.send_bytes(chunk)
            h.settle()
            got = replies(alice.lines())
            self.assertEqual([line.split("|")[1] for line in got], expected, got)
            for line in got:
                if line.startswith("ERR|"):
                    code = line.split("|")[2]
                    self.assertIn(code, {"400", "401", "403", "404", "409"}, line)
                    if line.split("|")[1] == "?" and code == "400":
                        self.assertIn(
                            line, ["ERR|?|400|invalid UTF-8", "ERR|?|400|unknown command"]
                        )
            self.assertFalse(alice.closed)
            self.assertEqual(alice.command("PING|still-there"), ["OK|PING|still-there"])
            self.assertEqual(errors.take(), [])
            stats["examples"] += 1
            stats["lines"] += len(expected)
            stats["bytes"] += len(stream)
            stats["ok"] += sum(line.startswith("OK|") for line in got)
            stats["invalid_utf8"] += got.count("ERR|?|400|invalid UTF-8")

        run()
        merge_report(
            {
                "hostile_fuzz_inputs_tried": stats["examples"],
                "hostile_fuzz_lines_answered": stats["lines"],
                "hostile_fuzz_bytes_sent": stats["bytes"],
                "hostile_fuzz_lines_valid": stats["ok"],
                "hostile_fuzz_lines_invalid_utf8": stats["invalid_utf8"],
            }
        )

    def test_ack_line_with_invalid_utf8_gets_no_reply(self):
        """Rule 6: ACK never gets a reply, not even an error -- a malformed
        ACK is ignored, and one whose id is not UTF-8 is malformed."""
        h = Harness()
        (alice,) = h.users("alice")
        alice.send_bytes(b"ACK|\xff\xfe\nack|1\xc3\nPING\n")
        h.settle()
        self.assertEqual(alice.lines(), ["OK|PING"])

    def test_nul_bytes_and_control_characters_inside_fields_are_harmless(self):
        """Names and values: a NUL or other control character is refused in
        names and passwords (400) and relayed untouched in a body."""
        h = Harness()
        alice, bob = h.users("alice", "bob")
        for line in (
            "NAME|Al\x00ice",
            "PASSWD|password1|pass\x00word2",
            "JOIN|#ro\x00om",
            "WHOIS|b\x00b",
        ):
            with self.subTest(line=line):
                (reply,) = alice.command(line)
                self.assertRegex(reply, r"^ERR\|[A-Z]+\|400\|")
        fresh = h.connect()
        self.assertEqual(
            fresh.command("USR|ca\x00rol|password1|Carol"), ["ERR|USR|400|invalid username"]
        )
        self.assertEqual(alice.command("MSG|bob|a\x00b\x07c\x1bd\x7f"), ["OK|MSG|1"])
        self.assertEqual(bob.lines(), ["R|alice|1|a\x00b\x07c\x1bd\x7f"])


# -- floods of separators and overlong lines -----------------------------------


class FloodTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness(**NO_RATE_LIMIT)
        self.alice, self.bob = self.h.users("alice", "bob")

    def test_line_of_8000_pipes_gets_one_400(self):
        """Rule 5: a line of 8000 '|' (empty verb) gets one ERR|?|400; the connection stays open."""
        self.assertEqual(self.alice.command("|" * 8000), ["ERR|?|400|unknown command"])
        self.assertFalse(self.alice.closed)
        self.assertEqual(self.alice.command("PING"), ["OK|PING"])

    def test_thousands_of_fields_get_one_short_reply_per_line(self):
        """Rules 2 and 5: a known verb followed by 5000 fields gets exactly one
        reply (400: wrong field count), short, not an echo; ACK gets none."""
        for verb in _VERBS:
            if verb in ("BCST", "ACK"):
                continue
            # MSG and SEND: the rest is the body of a message to user "x".
            code = "404" if verb in ("MSG", "SEND") else "400"
            with self.subTest(verb=verb):
                lines = self.alice.command(verb + "|x" * 4000)
                self.assertEqual(len(lines), 1, lines)
                self.assertTrue(lines[0].startswith(f"ERR|{verb}|{code}|"), lines[0])
                self.assertLess(len(lines[0]), 100)
        self.assertEqual(self.alice.command("ACK" + "|1" * 4000), [])
        self.assertEqual(self.alice.command("a|" * 4000), ["ERR|?|400|unknown command"])
        self.assertFalse(self.alice.closed)

    def test_huge_line_without_lf_gets_413_before_more_than_max_line_plus_one_bytes_are_buffered(
        self,
    ):
        """Framing: a line longer than --max-line is refused as soon as it is
        too long, not when (if ever) its LF arrives: the server never holds
        more than --max-line + 1 bytes (room for a CR) of it, and says 413 as
        soon as more have arrived."""
        for chunk_size in (1, 7, 1000, 8193, 8194, 100000):
            with self.subTest(chunk_size=chunk_size):
                h = Harness()
                client = h.connect()
                protocol = client.protocol
                fed = 0
                while not client.closed:
                    self.assertLess(fed, 200000, "never refused")
                    client.protocol.dataReceived(b"x" * chunk_size)
                    fed += chunk_size
                    self.assertLessEqual(len(protocol._buffer), 8193)
                    if fed <= 8193:
                        self.assertEqual(client.peek(), [])
                        self.assertFalse(client.closed)
                self.assertLess(fed - chunk_size, 8194, "refused late")
                self.assertEqual(
                    client.lines(), ["ERR|?|413|line too long", "BYE|413|line too long"]
                )

    def test_a_line_trickled_byte_by_byte_is_still_bounded_by_max_line(self):
        """Framing and Limits: a client that keeps a connection alive by
        trickling one byte at a time never finishes a line longer than
        --max-line: it gets 413 and the close at the first byte that makes the
        line certainly too long (max-line + 2 bytes without LF: one more could
        still be a CR)."""
        h = Harness(idle_timeout=30, max_line=64)
        client = h.connect()
        sent = 0
        while not client.closed:
            client.send_bytes(b"x")
            sent += 1
            h.advance(29)
        self.assertEqual(sent, 66)
        self.assertEqual(client.lines(), ["ERR|?|413|line too long", "BYE|413|line too long"])

    def test_pipelined_input_is_not_read_while_a_login_is_checked(self):
        """docs/protocol.md, order of replies: while a barrier command (LOGIN)
        is being checked the server stops reading the socket, so a client
        cannot pile up unbounded input behind a slow password hash."""
        h = Harness(hash_delay=1.0)
        h.register("carol")
        carol = h.connect()
        carol.send("LOGIN|carol|password1")
        h.settle()
        self.assertEqual(carol.transport.producerState, "paused")
        h.advance(1.0)
        self.assertEqual(carol.transport.producerState, "producing")
        self.assertEqual(carol.lines(), ["OK|LOGIN|carol|Carol"])


# -- injection and impersonation ------------------------------------------------

SQL_LIKE = [
    "'); DROP TABLE users;--",
    "%s %d {0} {name}",
    '" OR "1"="1',
    "1; DELETE FROM messages WHERE 1=1; --",
    "%(password)s %n %x {0.__class__}",
    "Robert'); DROP TABLE students;-- \\' \\\" `id`",
]


class InjectionTests(SynchronousTestCase):
    def setUp(self):
        self.directory = tempfile.mkdtemp(prefix="messenger-hostile-")
        self.addCleanup(shutil.rmtree, self.directory, ignore_errors=True)
        self.path = os.path.join(self.directory, "messenger.sqlite3")
        self.h = Harness(store=ImmediateSqliteStore(self.path), **NO_RATE_LIMIT)
        self.alice, self.bob = self.h.users("alice", "bob")

    def tables(self):
        with sqlite3.connect(self.path) as db:
            names = sorted(
                r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")
            )
            users = [r[0] for r in db.execute("SELECT username FROM users ORDER BY username")]
        return names, users

    def test_sql_like_password_and_display_name_are_stored_exactly(self):
        """Names and values: a password and display name that look like SQL or
        format strings are plain values: sign-up, login and WHOIS give them back
        exactly, and every table and account is intact."""
        tables_before, _ = self.tables()
        client = self.h.connect()
        password, display = SQL_LIKE[0], SQL_LIKE[0]
        self.assertEqual(client.command(f"USR|bobby|{password}|{display}"), ["OK|USR|bobby"])
        self.assertEqual(client.command(f"LOGIN|bobby|{password}"), [f"OK|LOGIN|bobby|{display}"])
        for name in SQL_LIKE[1:]:
            self.assertEqual(client.command(f"NAME|{name}"), [f"OK|NAME|{name}"])
            self.assertEqual(
                replies(self.alice.command("WHOIS|bobby")), [f"OK|WHOIS|bobby|online|-|{name}"]
            )
        tables, users = self.tables()
        self.assertEqual(tables, tables_before)
        self.assertEqual(users, ["alice", "bob", "bobby"])
        again = self.h.connect()
        self.assertEqual(again.command(f"LOGIN|alice|{PASSWORD}")[0], "OK|LOGIN|alice|Alice")

    def test_sql_like_bodies_are_relayed_and_kept_byte_exactly(self):
        """Framing: the body is opaque and relayed exactly; HISTORY shows it verbatim (direct and room)."""
        self.assertEqual(self.bob.command("JOIN|#sql"), ["OK|JOIN|#sql"])
        self.assertEqual(self.alice.command("JOIN|#sql")[-1], "OK|JOIN|#sql")
        self.bob.clear()
        for n, body in enumerate(SQL_LIKE, start=1):
            self.assertEqual(self.alice.command(f"MSG|bob|{body}"), [f"OK|MSG|{2 * n - 1}"])
            self.assertEqual(self.alice.command(f"MSG|#sql|{body}"), [f"OK|MSG|{2 * n}"])
            self.assertEqual(
                self.bob.lines(), [f"R|alice|{2 * n - 1}|{body}", f"C|#sql|alice|{2 * n}|{body}"]
            )
        for target, _first in (("alice", 1), ("#sql", 2)):
            lines = self.bob.command(f"HISTORY|{target}|50")
            self.assertEqual(lines[-1], f"OK|HISTORY|{target}|{len(SQL_LIKE)}")
            bodies = [line.split("|", 5)[5] for line in lines[:-1]]
            self.assertEqual(bodies, SQL_LIKE)
            senders = {line.split("|")[3] for line in lines[:-1]}
            self.assertEqual(senders, {"alice"})
        tables, users = self.tables()
        self.assertIn("users", tables)
        self.assertEqual(users, ["alice", "bob"])

    def test_sql_like_usernames_rooms_and_targets_are_refused_as_bad_values(self):
        """Names and values: usernames are A-Z a-z 0-9 _ . -, rooms a-z 0-9 _ -:
        anything else (quotes, spaces, semicolons) is a 400 and reaches nothing."""
        fresh = self.h.connect()
        self.assertEqual(
            fresh.command("USR|x' OR '1'='1|password1|X"), ["ERR|USR|400|invalid username"]
        )
        self.assertEqual(
            fresh.command("LOGIN|alice'--|password1"), ["ERR|LOGIN|400|invalid username"]
        )
        self.assertEqual(fresh.command("LOGIN|alice|' OR '1'='1"), [BAD_CREDENTIALS])
        for line in (
            "HISTORY|bob' OR 1=1--|10",
            "HISTORY|#general';--|10",
            "JOIN|#x');DROP",
            "MSG|bob;--|hi",
            "WHOIS|%s",
            "MEMBERS|#{0}",
        ):
            with self.subTest(line=line):
                lines = self.alice.command(line)
                self.assertEqual(len(lines), 1)
                self.assertRegex(lines[0], r"^ERR\|[A-Z]+\|400\|")
        tables, users = self.tables()
        self.assertEqual(users, ["alice", "bob"])


class SpoofingTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness(**NO_RATE_LIMIT)
        self.alice, self.bob, self.mallory = self.h.users("alice", "bob", "mallory")

    def test_msg_body_that_looks_like_an_r_line_is_relayed_as_the_body(self):
        """Events: R carries the authenticated sender; MSG has no sender field,
        so a body starting R|alice|... arrives as mallory's text."""
        self.assertEqual(self.mallory.command("MSG|bob|R|alice|1|pay mallory"), ["OK|MSG|1"])
        self.assertEqual(self.bob.lines(), ["R|mallory|1|R|alice|1|pay mallory"])
        self.assertEqual(self.mallory.command("MSG|bob|alice|hello"), ["OK|MSG|2"])
        self.assertEqual(self.bob.lines(), ["R|mallory|2|alice|hello"])
        self.assertEqual(self.mallory.command("SEND|c1|bob|R|alice|3|x"), ["OK|SEND|3"])
        self.assertEqual(self.bob.lines(), ["R|mallory|3|R|alice|3|x"])

    def test_room_body_that_looks_like_a_c_line_is_relayed_as_the_body(self):
        """Events: C carries the room and the authenticated sender, then the body as sent."""
        self.assertEqual(
            self.mallory.command("BCST|C|#general|alice|1|meeting moved"), ["OK|BCST|1"]
        )
        self.assertEqual(
            self.bob.lines(), ["C|#general|mallory|1|C|#general|alice|1|meeting moved"]
        )
        self.assertEqual(
            self.alice.lines(), ["C|#general|mallory|1|C|#general|alice|1|meeting moved"]
        )

    def test_history_names_the_real_sender(self):
        """HISTORY: the H line's sender is who sent it, whatever the body says."""
        self.mallory.command("MSG|bob|R|alice|1|hi")
        self.bob.clear()
        lines = self.bob.command("HISTORY|mallory|10")
        self.assertEqual(len(lines), 2)
        self.assertRegex(lines[0], r"^H\|mallory\|1\|mallory\|[^|]+\|R\|alice\|1\|hi$")

    def test_a_line_feed_cannot_smuggle_a_second_event_into_a_body(self):
        """Framing: a line ends at LF, so text after it is a new command from the sender, never part of an event."""
        self.mallory.send("MSG|bob|hi\nR|alice|9|fake")
        self.h.settle()
        self.assertEqual(self.mallory.lines(), ["OK|MSG|1", "ERR|?|400|unknown command"])
        self.assertEqual(self.bob.lines(), ["R|mallory|1|hi"])

    def test_other_casings_and_lookalikes_of_a_username_cannot_be_registered(self):
        """Names and values: usernames are case-insensitive and ASCII only, so
        ALICE is alice (409) and a Cyrillic or Kelvin-sign lookalike is refused (400)."""
        fresh = self.h.connect()
        self.assertEqual(fresh.command("USR|ALICE|password1|Alice"), ["ERR|USR|409|username taken"])
        for lookalike in ("\u0430lice", "alic\u0435", "\u212aarl", "alice\u200b", " alice"):
            with self.subTest(name=lookalike):
                self.assertEqual(
                    fresh.command(f"USR|{lookalike}|password1|X"), ["ERR|USR|400|invalid username"]
                )

    def test_acknowledging_someone_elses_message_does_nothing(self):
        """Delivery: only the recipient's ACK counts (docs/protocol.md: an ACK
        is taken for messages sent on the current connection): mallory
        acknowledging alice's message to bob sends no DLV and stops no retry."""
        self.assertEqual(self.alice.command("MSG|bob|for bob only"), ["OK|MSG|1"])
        self.assertEqual(self.bob.lines(), ["R|alice|1|for bob only"])
        self.mallory.send("ACK|1")
        self.h.advance(2)
        self.assertEqual(self.alice.lines(), [])
        self.assertEqual(self.mallory.lines(), [])
        self.assertEqual(self.bob.lines(), ["R|alice|1|for bob only"])  # retried


class PrivacyTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness(**NO_RATE_LIMIT)
        self.alice, self.bob, self.carol = self.h.users("alice", "bob", "carol")
        self.alice.command("MSG|bob|alice to bob: secret")
        self.bob.command("MSG|alice|bob to alice: secret")
        self.carol.command("MSG|bob|carol to bob")
        self.bob.command("MSG|carol|bob to carol")
        self.h.clear_all()

    def test_direct_history_is_only_the_readers_own_conversation(self):
        """HISTORY with a username reads the conversation between you and that
        user: carol's HISTORY|bob shows carol<->bob only, never alice<->bob,
        with every cursor."""
        for command in ("HISTORY|bob|500", "HISTORY|bob|500|after|0", "HISTORY|bob|500|before|999"):
            with self.subTest(command=command):
                lines = self.carol.command(command)
                self.assertEqual(lines[-1], "OK|HISTORY|bob|2")
                self.assertEqual(
                    [line.split("|", 5)[5] for line in lines[:-1]], ["carol to bob", "bob to carol"]
                )
        for command in ("HISTORY|alice|500", "HISTORY|alice|500|after|0", "HISTORY|carol|500"):
            with self.subTest(command=command):
                self.assertEqual(self.carol.command(command)[-1].rsplit("|", 1)[1], "0")
        for line in self.carol.command("HISTORY|ALICE|500|after|0"):
            self.assertNotIn("secret", line)

    def test_non_member_reading_a_room_history_gets_403(self):
        """HISTORY of a room needs membership: a non-member gets 403, with any cursor."""
        self.alice.command("JOIN|#private")
        self.assertEqual(self.bob.command("JOIN|#private"), ["OK|JOIN|#private"])
        self.alice.command("MSG|#private|room secret")
        self.h.clear_all()
        for command in (
            "HISTORY|#private|500",
            "HISTORY|#private|500|after|0",
            "HISTORY|#private|500|before|999",
            "HISTORY|#PRIVATE|1",
        ):
            with self.subTest(command=command):
                self.assertEqual(self.carol.command(command), ["ERR|HISTORY|403|not a member"])
        self.assertEqual(self.carol.command("MSG|#private|let me in"), ["ERR|MSG|403|not a member"])
        self.assertEqual(self.alice.lines() + self.bob.lines(), [])

    def test_a_member_who_parted_cannot_read_the_room_any_more(self):
        """HISTORY of a room needs membership now, not at some earlier time."""
        self.carol.command("JOIN|#private")
        self.carol.command("PART|#private")
        self.alice.command("JOIN|#private")
        self.alice.command("MSG|#private|after carol left")
        self.assertEqual(
            self.carol.command("HISTORY|#private|10"), ["ERR|HISTORY|403|not a member"]
        )
