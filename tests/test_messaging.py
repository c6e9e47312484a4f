"""docs/protocol.md: MSG, SEND, BCST, WHO, WHOIS, PING, HELP, QUIT and the R, C and DLV events."""

import sqlite3

from twisted.internet.defer import fail
from twisted.trial.unittest import SynchronousTestCase

from messenger.store.sqlite import ImmediateSqliteStore
from tests.support.harness import START, Harness, timestamp

DAY = 24 * 60 * 60

ALL_VERBS = {
    "USR",
    "LOGIN",
    "TOKEN",
    "RESUME",
    "MSG",
    "SEND",
    "BCST",
    "ACK",
    "WHO",
    "WHOIS",
    "JOIN",
    "PART",
    "ROOMS",
    "MEMBERS",
    "HISTORY",
    "NAME",
    "PASSWD",
    "PING",
    "HELP",
    "QUIT",
}


def err_prefix(line):
    return "|".join(line.split("|")[:3])


class MsgTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness()
        self.alice, self.bob = self.h.users("alice", "bob")

    def test_msg_to_a_user_is_answered_with_its_msgid_and_delivered_as_r(self):
        """MSG|target|text -> OK|MSG|msgid; the recipient gets R|sender|msgid|text."""
        self.assertEqual(self.alice.command("MSG|bob|hello"), ["OK|MSG|1"])
        self.assertEqual(self.bob.lines(), ["R|alice|1|hello"])

    def test_ok_is_sent_only_once_the_message_is_committed(self):
        """When the server answers OK|MSG|msgid the message is committed to storage."""
        self.alice.send("MSG|bob|hello")
        self.assertEqual(self.alice.lines(), [])
        self.assertEqual(
            self.h.store._conn.execute("SELECT count(*) FROM messages").fetchone()[0], 0
        )
        self.h.settle()
        self.assertEqual(self.alice.lines(), ["OK|MSG|1"])
        self.assertEqual(
            self.h.store._conn.execute(
                "SELECT id, sender, recipient, body FROM messages"
            ).fetchall(),
            [(1, "alice", "bob", "hello")],
        )

    def test_message_ids_increase_in_the_order_messages_were_accepted(self):
        """A message id is a positive integer, unique, increasing in acceptance order."""
        self.alice.send("MSG|bob|one", "MSG|#general|two")
        self.bob.send("MSG|alice|three")
        self.h.settle()
        self.alice.send("BCST|four")
        self.h.settle()
        self.assertEqual(self.alice.lines(), ["OK|MSG|1", "OK|MSG|2", "R|bob|3|three", "OK|BCST|4"])
        self.assertEqual(
            self.bob.lines(),
            ["R|alice|1|one", "C|#general|alice|2|two", "OK|MSG|3", "C|#general|alice|4|four"],
        )

    def test_msg_to_yourself_is_delivered_to_you(self):
        """A direct message to yourself is an ordinary direct message."""
        # R is an event and may come before or after the reply (rule 3).
        self.assertCountEqual(
            self.alice.command("MSG|alice|note to self"), ["OK|MSG|1", "R|alice|1|note to self"]
        )

    def test_msg_to_unknown_user_is_404(self):
        """MSG: 404 no such user."""
        reply = self.alice.command("MSG|nobody|hello")
        self.assertEqual(err_prefix(reply[0]), "ERR|MSG|404")
        self.assertEqual(len(reply), 1)

    def test_msg_to_unknown_room_is_404(self):
        """MSG: 404 no such room."""
        self.assertEqual(err_prefix(self.alice.command("MSG|#nowhere|hello")[0]), "ERR|MSG|404")

    def test_msg_to_room_you_are_not_a_member_of_is_403(self):
        """MSG: 403 not a member of the room."""
        self.bob.command("JOIN|#private")
        self.assertEqual(err_prefix(self.alice.command("MSG|#private|hello")[0]), "ERR|MSG|403")
        self.assertEqual(self.bob.lines(), [])

    def test_msg_with_only_white_space_is_400(self):
        """MSG: 400 empty text; the body must hold a character outside White_Space."""
        for body in ["", " ", "   ", "\t", " \u00a0\u2003\u3000\u2028 "]:
            reply = self.alice.command(f"MSG|bob|{body}")
            self.assertEqual(err_prefix(reply[0]), "ERR|MSG|400", repr(body))
        self.assertEqual(self.bob.lines(), [])

    def test_body_with_one_character_outside_white_space_is_accepted(self):
        """Characters outside Unicode's White_Space count as text, even invisible ones."""
        for n, body in enumerate([" x ", "\u200b", "\x1c"], start=1):
            self.assertEqual(self.alice.command(f"MSG|bob|{body}"), [f"OK|MSG|{n}"], repr(body))

    def test_msg_to_full_mailbox_is_429(self):
        """At most --max-pending unacknowledged messages wait for one recipient; over it ERR|MSG|429|mailbox full."""
        h = Harness(max_pending=3)
        alice, bob = h.users("alice", "bob")
        bob.disconnect()
        h.settle()
        alice.clear()
        for n in (1, 2, 3):
            self.assertEqual(alice.command(f"MSG|bob|{n}"), [f"OK|MSG|{n}"])
        self.assertEqual(alice.command("MSG|bob|4"), ["ERR|MSG|429|mailbox full"])
        self.assertEqual(err_prefix(alice.command("SEND|k|bob|4")[0]), "ERR|SEND|429")

    def test_acknowledged_messages_free_the_mailbox(self):
        """Only unacknowledged messages count against --max-pending."""
        h = Harness(max_pending=2)
        alice, bob = h.users("alice", "bob")
        alice.command("MSG|bob|1", "MSG|bob|2")
        self.assertEqual(alice.command("MSG|bob|3"), ["ERR|MSG|429|mailbox full"])
        bob.command("ACK|1")
        alice.clear()
        self.assertEqual(alice.command("MSG|bob|3"), ["OK|MSG|3"])

    def test_pipelined_messages_respect_the_mailbox_limit(self):
        """--max-pending holds within one group commit too."""
        h = Harness(max_pending=2)
        alice, bob = h.users("alice", "bob")
        self.assertEqual(
            alice.command("MSG|bob|1", "MSG|bob|2", "MSG|bob|3"),
            ["OK|MSG|1", "OK|MSG|2", "ERR|MSG|429|mailbox full"],
        )
        self.assertEqual(bob.lines(), ["R|alice|1|1", "R|alice|2|2"])

    def test_room_messages_do_not_fill_the_mailbox(self):
        """The mailbox limit is for direct messages."""
        h = Harness(max_pending=1)
        alice, bob = h.users("alice", "bob")
        alice.command("MSG|bob|1")
        self.assertEqual(alice.command("MSG|#general|room"), ["OK|MSG|2"])


class SendTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness(idle_timeout=10**9)
        self.alice, self.bob = self.h.users("alice", "bob")

    def stored(self):
        return self.h.store._conn.execute("SELECT count(*) FROM messages").fetchone()[0]

    def test_send_is_msg_with_a_client_id(self):
        """SEND|client_id|target|text -> OK|SEND|msgid, delivered like MSG."""
        self.assertEqual(self.alice.command("SEND|c-1|bob|hello|world"), ["OK|SEND|1"])
        self.assertEqual(self.bob.lines(), ["R|alice|1|hello|world"])

    def test_send_again_with_the_same_client_id_returns_the_first_msgid_and_stores_nothing(self):
        """The same client_id from the same user within 24 h: nothing new stored or delivered, OK|SEND|<msgid of the first>."""
        self.assertEqual(self.alice.command("SEND|c-1|bob|hello"), ["OK|SEND|1"])
        self.assertEqual(self.bob.lines(), ["R|alice|1|hello"])
        self.assertEqual(self.alice.command("SEND|c-1|bob|hello"), ["OK|SEND|1"])
        self.assertEqual(self.alice.command("SEND|c-1|bob|hello again"), ["OK|SEND|1"])
        self.assertEqual(self.bob.lines(), [])
        self.assertEqual(self.stored(), 1)

    def test_resend_after_reconnect_is_not_delivered_twice(self):
        """A client re-sends SENDs that had no OK after a drop; the message is stored and delivered once."""
        self.alice.send("SEND|c-1|bob|hello")
        self.alice.disconnect()  # the connection drops before the OK arrives
        self.h.settle()
        self.assertCountEqual(self.bob.lines(), ["R|alice|1|hello", "OFF|alice"])
        alice = self.h.login("alice")
        self.assertEqual(alice.command("SEND|c-1|bob|hello"), ["OK|SEND|1"])
        self.assertEqual(self.bob.lines(), ["ON|alice"])
        self.assertEqual(self.stored(), 1)

    def test_duplicate_send_in_one_pipeline_is_stored_once(self):
        """Two SENDs with one client_id, pipelined into one commit, are one message."""
        self.alice.send("SEND|dup|bob|x", "SEND|dup|bob|x")
        self.h.settle()
        self.assertEqual(self.alice.lines(), ["OK|SEND|1", "OK|SEND|1"])
        self.assertEqual(self.bob.lines(), ["R|alice|1|x"])
        self.assertEqual(self.stored(), 1)

    def test_duplicate_send_of_an_acknowledged_message_produces_no_event(self):
        """A duplicate SEND delivers nothing new: no R, no second DLV."""
        self.alice.command("SEND|c-1|bob|hello")
        self.bob.command("ACK|1")
        self.alice.clear()
        self.assertEqual(self.alice.command("SEND|c-1|bob|hello"), ["OK|SEND|1"])
        self.h.advance(5)
        self.assertEqual(self.bob.lines(), [])
        self.assertEqual(self.alice.lines(), [])

    def test_same_client_id_after_24_hours_is_a_new_message(self):
        """The idempotency key lasts 24 hours."""
        self.alice.command("SEND|c-1|bob|hello")
        self.bob.command("ACK|1")
        self.h.advance(DAY - 1)
        self.h.clear_all()
        self.assertEqual(self.alice.command("SEND|c-1|bob|hello"), ["OK|SEND|1"])
        self.h.advance(2)
        self.assertEqual(self.alice.command("SEND|c-1|bob|hello"), ["OK|SEND|2"])
        self.assertEqual(self.bob.lines(), ["R|alice|2|hello"])

    def test_different_users_may_use_the_same_client_id(self):
        """client_id is per user."""
        self.assertEqual(self.alice.command("SEND|same|bob|from alice"), ["OK|SEND|1"])
        self.assertEqual(
            self.bob.command("SEND|same|alice|from bob"), ["R|alice|1|from alice", "OK|SEND|2"]
        )
        self.assertEqual(self.alice.lines(), ["R|bob|2|from bob"])

    def test_client_id_is_case_sensitive(self):
        """client_id is case-sensitive."""
        self.assertEqual(self.alice.command("SEND|abc|bob|1"), ["OK|SEND|1"])
        self.assertEqual(self.alice.command("SEND|ABC|bob|2"), ["OK|SEND|2"])

    def test_bad_client_id_is_400(self):
        """SEND: 400 bad client_id (1-64 of A-Z a-z 0-9 _ -)."""
        for client_id in ["", "a b", "a.b", "x" * 65, "é"]:
            reply = self.alice.command(f"SEND|{client_id}|bob|hi")
            self.assertEqual(err_prefix(reply[0]), "ERR|SEND|400", repr(client_id))
        self.assertEqual(self.alice.command(f"SEND|{'x' * 64}|bob|hi"), ["OK|SEND|1"])

    def test_send_has_the_errors_of_msg(self):
        """SEND: as MSG (404, 403, 400)."""
        self.bob.command("JOIN|#private")
        self.assertEqual(err_prefix(self.alice.command("SEND|a|nobody|hi")[0]), "ERR|SEND|404")
        self.assertEqual(err_prefix(self.alice.command("SEND|b|#nowhere|hi")[0]), "ERR|SEND|404")
        self.assertEqual(err_prefix(self.alice.command("SEND|c|#private|hi")[0]), "ERR|SEND|403")
        self.assertEqual(err_prefix(self.alice.command("SEND|d|bob| ")[0]), "ERR|SEND|400")

    def test_resent_send_gets_the_first_msgid_even_when_the_mailbox_is_full(self):
        """A re-sent SEND is answered OK|SEND|<msgid of the first>, whatever happened since."""
        h = Harness(max_pending=1)
        alice, bob = h.users("alice", "bob")
        self.assertEqual(alice.command("SEND|k1|bob|only one fits"), ["OK|SEND|1"])
        self.assertEqual(alice.command("MSG|bob|full"), ["ERR|MSG|429|mailbox full"])
        self.assertEqual(alice.command("SEND|k1|bob|only one fits"), ["OK|SEND|1"])

    def test_resent_send_to_a_room_left_since_gets_the_first_msgid(self):
        """Same client_id within 24 h: OK|SEND|<msgid of the first>, even if the sender has left the room since."""
        self.alice.command("JOIN|#team")
        self.assertEqual(self.alice.command("SEND|r1|#team|hello team"), ["OK|SEND|1"])
        self.assertEqual(self.alice.command("PART|#team"), ["OK|PART|#team"])
        self.assertEqual(self.alice.command("SEND|r1|#team|hello team"), ["OK|SEND|1"])

    def test_send_to_a_room(self):
        """SEND works for room targets too."""
        self.assertEqual(self.alice.command("SEND|r1|#general|hi all"), ["OK|SEND|1"])
        self.assertEqual(self.alice.command("SEND|r1|#general|hi all"), ["OK|SEND|1"])
        self.assertEqual(self.bob.lines(), ["C|#general|alice|1|hi all"])


class BcstTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness()
        self.alice, self.bob, self.carol = self.h.users("alice", "bob", "carol")

    def test_bcst_is_a_message_to_general(self):
        """BCST|text -> OK|BCST|msgid, the same as MSG|#general|text."""
        self.assertEqual(self.alice.command("BCST|hello, everyone!"), ["OK|BCST|1"])
        self.assertEqual(self.bob.lines(), ["C|#general|alice|1|hello, everyone!"])
        self.assertEqual(self.carol.lines(), ["C|#general|alice|1|hello, everyone!"])
        self.assertEqual(self.alice.lines(), [])

    def test_bcst_with_empty_text_is_400(self):
        """BCST: as MSG, 400 empty text."""
        self.assertEqual(err_prefix(self.alice.command("BCST|  ")[0]), "ERR|BCST|400")

    def test_bcst_from_someone_who_left_general_is_403(self):
        """BCST: as MSG, 403 not a member of #general."""
        self.alice.command("PART|#general")
        self.assertEqual(err_prefix(self.alice.command("BCST|hi")[0]), "ERR|BCST|403")


class WhoTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness(idle_timeout=10**9)

    def test_who_lists_every_online_user_sorted(self):
        """WHO -> OK|WHO|user1|user2|... (every online user, sorted)."""
        zed, alice, bob = self.h.users("zed", "Alice", "bob")
        self.h.register("carol")  # offline
        self.h.clear_all()
        self.assertEqual(zed.command("WHO"), ["OK|WHO|alice|bob|zed"])
        bob.disconnect()
        self.h.settle()
        self.assertEqual(zed.command("WHO"), ["OFF|bob", "OK|WHO|alice|zed"])

    def test_whois_of_online_user(self):
        """WHOIS|username -> OK|WHOIS|username|online|-|display_name."""
        alice, bob = self.h.users("alice", "bob")
        self.assertEqual(alice.command("WHOIS|BOB"), ["OK|WHOIS|bob|online|-|Bob"])

    def test_whois_of_offline_user_gives_last_seen(self):
        """WHOIS of an offline user gives the time they were last seen."""
        alice, bob = self.h.users("alice", "bob")
        self.h.advance(90.25)
        bob.command("QUIT")
        self.h.advance(60)
        self.assertEqual(
            alice.command("WHOIS|bob"),
            ["OFF|bob", "OK|WHOIS|bob|offline|2026-11-22T09:31:30.250Z|Bob"],
        )

    def test_whois_of_user_never_seen_gives_dash(self):
        """last_seen is - when never seen."""
        (alice,) = self.h.users("alice")
        self.h.register("carol", display_name="Carol C.")
        alice.clear()
        self.assertEqual(alice.command("WHOIS|carol"), ["OK|WHOIS|carol|offline|-|Carol C."])

    def test_whois_of_unknown_user_is_404(self):
        """WHOIS: 404."""
        (alice,) = self.h.users("alice")
        self.assertEqual(err_prefix(alice.command("WHOIS|nobody")[0]), "ERR|WHOIS|404")


class ConnectionCommandTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness()
        (self.alice,) = self.h.users("alice")

    def test_ping_gets_ok_ping(self):
        """PING -> OK|PING."""
        self.assertEqual(self.alice.command("PING"), ["OK|PING"])

    def test_ping_with_token_echoes_it_as_given(self):
        """PING|token -> OK|PING|token, echoed as given."""
        self.assertEqual(self.alice.command("PING|abc 123 "), ["OK|PING|abc 123 "])

    def test_ping_with_empty_token_echoes_the_empty_token(self):
        """PING| -> OK|PING| (the token echoed even empty)."""
        self.assertEqual(self.alice.command("PING|"), ["OK|PING|"])

    def test_help_lists_every_command_verb(self):
        """HELP -> OK|HELP|<every command verb of this protocol, space separated>."""
        reply = self.alice.command("HELP")
        self.assertEqual(len(reply), 1)
        fields = reply[0].split("|")
        self.assertEqual(fields[:2], ["OK", "HELP"])
        self.assertEqual(len(fields), 3)
        verbs = fields[2].split(" ")
        self.assertEqual(sorted(verbs), sorted(ALL_VERBS))

    def test_quit_gets_ok_then_bye_200_then_close(self):
        """QUIT -> OK|QUIT, BYE|200|goodbye, then the server closes."""
        self.assertEqual(self.alice.command("QUIT"), ["OK|QUIT", "BYE|200|goodbye"])
        self.assertTrue(self.alice.closed)

    def test_commands_after_quit_get_no_reply(self):
        """Nothing is answered after BYE."""
        self.assertEqual(self.alice.command("QUIT", "PING", "WHO"), ["OK|QUIT", "BYE|200|goodbye"])

    def test_quit_waits_for_earlier_replies(self):
        """QUIT's reply comes after the replies to earlier commands, in order."""
        self.h.register("bob")
        self.alice.clear()
        self.assertEqual(
            self.alice.command("MSG|bob|bye", "QUIT"), ["OK|MSG|1", "OK|QUIT", "BYE|200|goodbye"]
        )


class DirectEventTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness()
        self.alice, self.bob = self.h.users("alice", "bob")

    def test_r_is_sent_to_an_online_recipient_at_once(self):
        """R|sender|msgid|text: a direct message for you."""
        self.alice.command("MSG|bob|now")
        self.assertEqual(self.bob.lines(), ["R|alice|1|now"])

    def test_dlv_is_sent_to_the_online_sender_when_the_recipient_acks(self):
        """When the recipient acknowledges, the sender gets DLV|msgid|recipient|timestamp at once if online."""
        self.alice.command("MSG|bob|hi")
        self.h.advance(1.5)
        self.bob.clear()
        self.bob.send("ACK|1")
        self.h.settle()
        self.assertEqual(self.alice.lines(), ["DLV|1|bob|2026-11-22T09:30:01.500Z"])

    def test_dlv_is_sent_at_the_senders_next_login_if_offline(self):
        """Otherwise the sender gets DLV at its next login, once."""
        self.alice.command("MSG|bob|hi")
        self.alice.disconnect()
        self.h.advance(3)
        self.bob.clear()
        self.bob.command("ACK|1")
        alice = self.h.login("alice")
        self.assertEqual(alice.lines(), [f"DLV|1|bob|{timestamp(START + 3)}"])
        alice.disconnect()
        self.h.settle()
        self.assertEqual(self.h.login("alice").lines(), [])

    def test_dlv_is_handed_over_once_when_the_sender_logs_in_as_the_ack_commits(self):
        """A receipt is handed over once: a login in the same turn as the
        recipient's ACK gets the DLV live or from the store, never both."""
        self.alice.command("MSG|bob|hi")
        self.alice.disconnect()
        self.h.settle()
        self.bob.clear()
        self.bob.send("ACK|1")
        alice = self.h.connect()
        alice.send("LOGIN|alice|password1")
        self.h.settle()
        self.assertEqual(alice.lines(), ["OK|LOGIN|alice|Alice", f"DLV|1|bob|{timestamp(START)}"])
        alice.disconnect()
        self.h.settle()
        self.assertEqual(self.h.login("alice").lines(), [])

    def test_dlv_is_kept_for_next_login_when_the_sender_quits_as_the_ack_commits(self):
        """A receipt due to a session that has just quit stays pending and
        comes at the sender's next login."""
        self.alice.command("MSG|bob|hi")
        self.bob.clear()
        self.alice.send("QUIT")
        self.bob.send("ACK|1")
        self.h.clock.advance(0)  # the ack commits before the connection is gone
        self.h.settle()
        self.assertEqual(self.alice.lines(), ["OK|QUIT", "BYE|200|goodbye"])
        self.assertEqual(self.h.login("alice").lines(), [f"DLV|1|bob|{timestamp(START)}"])

    def test_dlv_is_kept_when_the_sender_quits_after_the_ack_in_the_same_turn(self):
        """The recipient's ACK comes first, then the sender's QUIT, both
        before the commit: the sender gets the DLV at its next login, once."""
        self.alice.command("MSG|bob|hi")
        self.bob.clear()
        self.bob.send("ACK|1")
        self.alice.send("QUIT")
        self.h.settle()
        self.assertEqual(self.alice.lines(), ["OK|QUIT", "BYE|200|goodbye"])
        alice = self.h.login("alice")
        self.assertEqual(alice.lines(), [f"DLV|1|bob|{timestamp(START)}"])
        alice.disconnect()
        self.h.settle()
        self.assertEqual(self.h.login("alice").lines(), [])

    def test_dlv_is_kept_when_the_sender_drops_after_the_ack_in_the_same_turn(self):
        """The same when the sender's connection is lost before the commit."""
        self.alice.command("MSG|bob|hi")
        self.bob.clear()
        self.bob.send("ACK|1")
        self.alice.disconnect()
        self.h.settle()
        self.assertEqual(self.alice.lines(), [])
        self.assertEqual(self.h.login("alice").lines(), [f"DLV|1|bob|{timestamp(START)}"])

    def test_a_sender_dropping_and_logging_in_again_before_the_commit_gets_the_dlv_once(self):
        """A sender that drops and logs in again on a new connection while
        the recipient's ACK waits for its commit gets the receipt once."""
        self.alice.command("MSG|bob|hi")
        self.bob.clear()
        self.bob.send("ACK|1")
        self.alice.disconnect()
        alice = self.h.connect()
        alice.send("LOGIN|alice|password1")
        self.h.settle()
        self.assertEqual(alice.lines(), ["OK|LOGIN|alice|Alice", f"DLV|1|bob|{timestamp(START)}"])
        alice.disconnect()
        self.h.settle()
        self.assertEqual(self.h.login("alice").lines(), [])

    def test_pending_r_and_dlv_follow_ok_login(self):
        """LOGIN -> OK|LOGIN|..., then the pending R and DLV events."""
        self.alice.command("MSG|bob|hi")
        self.alice.disconnect()
        self.h.settle()
        self.bob.command("ACK|1", "MSG|alice|ho")
        self.bob.disconnect()
        self.h.settle()
        lines = self.h.connect().command("LOGIN|alice|password1")
        self.assertEqual(lines[0], "OK|LOGIN|alice|Alice")
        self.assertCountEqual(lines[1:], ["R|bob|2|ho", f"DLV|1|bob|{timestamp(START)}"])


class _FailingCommits(ImmediateSqliteStore):
    """A store whose next group commits fail, as on a full disk."""

    failures = 0

    def commit_batch(self, *args):
        if self.failures:
            self.failures -= 1
            return fail(sqlite3.OperationalError("database or disk is full"))
        return super().commit_batch(*args)


class CommitFailureTests(SynchronousTestCase):
    def setUp(self):
        self.store = _FailingCommits()
        self.h = Harness(store=self.store)
        self.alice, self.bob = self.h.users("alice", "bob")

    def test_a_failed_commit_is_answered_500_and_the_message_is_not_delivered(self):
        """A message whose commit fails gets ERR|MSG|500|server error (no OK,
        so the sender knows to send it again) and reaches nobody."""
        self.store.failures = 1
        self.assertEqual(
            self.alice.command("MSG|bob|lost?", "PING"), ["ERR|MSG|500|server error", "OK|PING"]
        )
        self.assertEqual(self.bob.lines(), [])
        self.assertEqual(len(self.flushLoggedErrors(sqlite3.OperationalError)), 2)

    def test_the_server_carries_on_after_a_failed_commit(self):
        """The next commit works: the sender's re-send is delivered."""
        self.store.failures = 1
        self.alice.command("MSG|bob|lost?")
        self.flushLoggedErrors(sqlite3.OperationalError)
        self.assertEqual(self.alice.command("MSG|bob|again"), ["OK|MSG|1"])
        self.assertEqual(self.bob.lines(), ["R|alice|1|again"])

    def test_an_ack_whose_commit_fails_is_delivered_again_at_next_login(self):
        """An ACK that could not be recorded leaves the message pending: it
        comes again at the recipient's next login, and no DLV is sent."""
        self.alice.command("MSG|bob|hi")
        self.bob.clear()
        self.store.failures = 1
        self.bob.command("ACK|1")
        self.flushLoggedErrors(sqlite3.OperationalError)
        self.assertEqual(self.alice.lines(), [])
        self.bob.disconnect()
        self.h.settle()
        self.assertEqual(self.h.login("bob").lines(), ["R|alice|1|hi"])
