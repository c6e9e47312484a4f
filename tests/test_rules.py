"""docs/protocol.md, "Conversation rules" 1 to 6."""

from twisted.trial.unittest import SynchronousTestCase

from tests.support.harness import HELLO, Harness, timestamp

#: Every command that needs a login, as a well-formed line with good values.
NEEDS_LOGIN = [
    ("TOKEN", "TOKEN"),
    ("MSG", "MSG|bob|hi"),
    ("SEND", "SEND|c1|bob|hi"),
    ("BCST", "BCST|hi"),
    ("WHO", "WHO"),
    ("WHOIS", "WHOIS|bob"),
    ("JOIN", "JOIN|#room"),
    ("PART", "PART|#general"),
    ("ROOMS", "ROOMS"),
    ("MEMBERS", "MEMBERS|#general"),
    ("HISTORY", "HISTORY|bob|10"),
    ("HISTORY", "HISTORY|#general|10|before|5"),
    ("NAME", "NAME|Bobby"),
    ("PASSWD", "PASSWD|password1|password2"),
]


def err_prefix(line):
    """``ERR|VERB|code`` of an error line (the reason text is free)."""
    return "|".join(line.split("|")[:3])


class ConnectRuleTests(SynchronousTestCase):
    """Rule 1 (BYE|503|server full at --max-clients: tests/test_limits.py)."""

    def test_connection_gets_hello_first(self):
        """On connect the server sends HELLO|1|<server name>."""
        client = Harness().connect(greet=False)
        self.assertEqual(client.lines(), [HELLO])


class ReplyOrderTests(SynchronousTestCase):
    """Rule 2: one final reply per command except ACK, in order; pipelining."""

    def test_pipelined_commands_get_one_reply_each_in_order_while_some_wait(self):
        """Every command gets exactly one reply, in the order sent, even when LOGIN waits on a hash and MSG on a commit."""
        h = Harness(hash_delay=0.5)
        h.register("alice")
        h.register("bob")
        client = h.connect()
        client.send(
            "LOGIN|alice|password1",
            "WHO",
            "MSG|bob|hi",
            "PING|1",
            "WHOIS|bob",
            "JOIN|#x",
            "MSG|#x|yo",
            "ROOMS",
            "HISTORY|#x|10",
            "ACK|1",
            "PING|2",
        )
        h.settle()
        self.assertEqual(client.lines(), [])  # the hash is still running
        h.advance(0.5)
        self.assertEqual(
            client.lines(),
            [
                "OK|LOGIN|alice|Alice",
                "OK|WHO|alice",
                "OK|MSG|1",
                "OK|PING|1",
                "OK|WHOIS|bob|offline|-|Bob",
                "OK|JOIN|#x",
                "OK|MSG|2",
                "OK|ROOMS|#general|#x",
                f"H|#x|2|alice|{timestamp(h.now())}|yo",
                "OK|HISTORY|#x|1",
                "OK|PING|2",
            ],
        )

    def test_quick_reply_waits_behind_the_reply_to_an_earlier_slow_command(self):
        """A PING after a MSG is answered after OK|MSG, which waits for the commit."""
        h = Harness()
        alice, bob = h.users("alice", "bob")
        alice.send("MSG|bob|hi", "PING")
        self.assertEqual(alice.lines(), [])  # not committed yet
        h.settle()
        self.assertEqual(alice.lines(), ["OK|MSG|1", "OK|PING"])

    def test_usr_login_and_msg_may_be_pipelined(self):
        """Clients may pipeline commands without waiting: USR, LOGIN and MSG in one packet."""
        h = Harness(hash_delay=0.25)
        h.register("alice")
        client = h.connect()
        client.send("USR|carol|password1|Carol", "LOGIN|carol|password1", "MSG|alice|hey", "WHO")
        for _ in range(3):
            h.advance(0.25)
        self.assertEqual(
            client.lines(),
            ["OK|USR|carol", "OK|LOGIN|carol|Carol", "OK|MSG|1", "OK|WHO|carol"],
        )

    def test_errors_are_replies_in_the_same_order(self):
        """Errors take their place in the reply order like successes."""
        h = Harness()
        alice, bob = h.users("alice", "bob")
        alice.send("MSG|bob|one", "MSG|nobody|x", "BOGUS", "MSG|bob|two", "JOIN|bad")
        h.settle()
        lines = alice.lines()
        self.assertEqual(
            [lines[0], err_prefix(lines[1]), err_prefix(lines[2]), lines[3], err_prefix(lines[4])],
            ["OK|MSG|1", "ERR|MSG|404", "ERR|?|400", "OK|MSG|2", "ERR|JOIN|400"],
        )


class EventTests(SynchronousTestCase):
    """Rule 3."""

    def test_events_may_arrive_between_replies_and_before_a_pending_reply(self):
        """Events may arrive at any time, between replies: here before the reply to a MSG still committing."""
        h = Harness()
        alice, bob, carol = h.users("alice", "bob", "carol")
        self.assertEqual(alice.command("JOIN|#team"), ["OK|JOIN|#team"])
        alice.send("MSG|bob|hi", "PING")
        self.assertEqual(carol.command("JOIN|#team"), ["OK|JOIN|#team"])
        h.settle()
        self.assertEqual(alice.lines(), ["JOINED|#team|carol", "OK|MSG|1", "OK|PING"])


class BeforeLoginTests(SynchronousTestCase):
    """Rule 4."""

    def setUp(self):
        self.h = Harness()
        self.h.register("bob")
        self.client = self.h.connect()

    def test_commands_needing_login_get_401_log_in_first(self):
        """Before login any well-formed command other than USR, LOGIN, RESUME, HELP, PING and QUIT gets ERR|VERB|401|log in first."""
        for verb, line in NEEDS_LOGIN:
            self.assertEqual(self.client.command(line), [f"ERR|{verb}|401|log in first"], line)
        self.assertFalse(self.client.closed)

    def test_lower_case_verbs_get_upper_case_401(self):
        """The 401 names the verb in upper case."""
        self.assertEqual(self.client.command("who"), ["ERR|WHO|401|log in first"])

    def test_help_ping_and_quit_work_before_login(self):
        """HELP, PING and QUIT are allowed before login."""
        self.assertEqual(self.client.command("PING"), ["OK|PING"])
        self.assertTrue(self.client.command("HELP")[0].startswith("OK|HELP|"))
        self.assertEqual(self.client.command("QUIT"), ["OK|QUIT", "BYE|200|goodbye"])

    def test_usr_login_and_resume_work_before_login(self):
        """USR, LOGIN and RESUME are allowed before login."""
        self.assertEqual(self.client.command("USR|carol|password1|Carol"), ["OK|USR|carol"])
        self.assertEqual(
            self.client.command("RESUME|carol|" + "A" * 43), ["ERR|RESUME|401|bad credentials"]
        )
        self.assertEqual(self.client.command("LOGIN|carol|password1"), ["OK|LOGIN|carol|Carol"])

    def test_well_formed_command_with_bad_values_gets_401_before_login(self):
        """Before login the values of a command are not checked: bad values still get 401."""
        for verb, line in [
            ("MSG", "MSG|not a user!|hi"),
            ("MSG", "MSG|bob|   "),
            ("SEND", "SEND|bad id!|bob|hi"),
            ("BCST", "BCST| "),
            ("WHOIS", "WHOIS|no/such"),
            ("JOIN", "JOIN|nohash"),
            ("PART", "PART|#BAD ROOM"),
            ("MEMBERS", "MEMBERS|x"),
            ("HISTORY", "HISTORY|bob|9999"),
            ("HISTORY", "HISTORY|#general|10|BEFORE|x"),
            ("NAME", "NAME|   "),
            ("PASSWD", "PASSWD|a\tb|c"),
        ]:
            self.assertEqual(self.client.command(line), [f"ERR|{verb}|401|log in first"], line)

    def test_unknown_verb_gets_400_not_401_before_login(self):
        """A line whose verb is unknown gets rule 5's 400 (verb ?) first."""
        for line in ["FOO", "FOO|bar", "|x", "M SG|bob|hi"]:
            reply = self.client.command(line)
            self.assertEqual(len(reply), 1, line)
            self.assertEqual(err_prefix(reply[0]), "ERR|?|400", line)

    def test_wrong_field_count_gets_400_not_401_before_login(self):
        """A line whose field count is wrong gets rule 5's 400 first."""
        for verb, line in [
            ("MSG", "MSG|bob"),
            ("WHO", "WHO|x"),
            ("TOKEN", "TOKEN|x"),
            ("HISTORY", "HISTORY|bob|10|before"),
            ("SEND", "SEND|c1|bob"),
            ("PASSWD", "PASSWD|only-one"),
        ]:
            reply = self.client.command(line)
            self.assertEqual(len(reply), 1, line)
            self.assertEqual(err_prefix(reply[0]), f"ERR|{verb}|400", line)


class ParseErrorTests(SynchronousTestCase):
    """Rule 5."""

    def setUp(self):
        self.h = Harness()
        (self.alice,) = self.h.users("alice")

    def test_unknown_verb_gets_err_question_mark_400_and_connection_stays_open(self):
        """Where even the verb is unknown: ERR|?|400|<what is wrong>; the connection stays open."""
        reply = self.alice.command("FROB|x")
        self.assertEqual(len(reply), 1)
        self.assertEqual(err_prefix(reply[0]), "ERR|?|400")
        self.assertTrue(len(reply[0].split("|", 3)[3]) > 0)
        self.assertFalse(self.alice.closed)
        self.assertEqual(self.alice.command("PING"), ["OK|PING"])

    def test_wrong_field_count_gets_400_naming_the_verb(self):
        """A line that cannot be parsed gets ERR|VERB|400|<what is wrong>."""
        for verb, line in [
            ("MSG", "MSG|bob"),
            ("WHOIS", "WHOIS"),
            ("JOIN", "join|#a|#b"),
            ("QUIT", "QUIT|now"),
        ]:
            reply = self.alice.command(line)
            self.assertEqual(len(reply), 1, line)
            self.assertEqual(err_prefix(reply[0]), f"ERR|{verb}|400", line)
        self.assertFalse(self.alice.closed)

    def test_bad_value_after_login_gets_400(self):
        """After login the values are checked: a bad one is a 400."""
        for verb, line in [
            ("MSG", "MSG|not a user!|hi"),
            ("WHOIS", "WHOIS|" + "a" * 33),
            ("JOIN", "JOIN|nohash"),
            ("HISTORY", "HISTORY|#general|ten"),
        ]:
            reply = self.alice.command(line)
            self.assertEqual(len(reply), 1, line)
            self.assertEqual(err_prefix(reply[0]), f"ERR|{verb}|400", line)


class AckRuleTests(SynchronousTestCase):
    """Rule 6."""

    def setUp(self):
        self.h = Harness()
        self.alice, self.bob = self.h.users("alice", "bob")

    def test_ack_gets_no_reply(self):
        """ACK never gets a reply."""
        self.alice.send("MSG|bob|hi")
        self.h.settle()
        self.bob.clear()
        self.assertEqual(self.bob.command("ACK|1", "PING"), ["OK|PING"])

    def test_malformed_ack_gets_no_reply(self):
        """A malformed ACK is ignored: no reply, not even an error."""
        self.assertEqual(
            self.bob.command(
                "ACK",
                "ACK|",
                "ACK|abc",
                "ACK|0",
                "ACK|-1",
                "ACK|1|2",
                "ack|x|y|z",
                "ACK|01",
                "PING",
            ),
            ["OK|PING"],
        )
        self.assertFalse(self.bob.closed)

    def test_unknown_ack_gets_no_reply(self):
        """An ACK of an unknown id is ignored."""
        self.assertEqual(self.bob.command("ACK|12345", "PING"), ["OK|PING"])

    def test_repeated_ack_gets_no_reply(self):
        """An ACK of an already acknowledged id is ignored (and the sender gets one DLV)."""
        self.alice.command("MSG|bob|hi")
        self.assertEqual(self.bob.lines(), ["R|alice|1|hi"])
        self.assertEqual(self.bob.command("ACK|1", "ACK|1", "ACK|1", "PING"), ["OK|PING"])
        self.assertEqual(self.alice.lines(), [f"DLV|1|bob|{timestamp(self.h.now())}"])

    def test_premature_ack_before_login_gets_no_reply(self):
        """An ACK before login is ignored: no 401."""
        client = self.h.connect()
        self.assertEqual(client.command("ACK|1", "ACK", "ACK|x", "PING"), ["OK|PING"])

    def test_ack_of_someone_elses_message_is_ignored(self):
        """An ACK for a message that is not yours changes nothing."""
        carol = self.h.users("carol")[0]
        self.h.clear_all()
        self.alice.command("MSG|bob|hi")
        self.bob.clear()
        self.assertEqual(carol.command("ACK|1"), [])
        self.assertEqual(self.alice.lines(), [])  # no DLV
        self.h.advance(2)
        self.assertEqual(self.bob.lines(), ["R|alice|1|hi"])  # still unacknowledged
