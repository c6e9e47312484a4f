"""docs/protocol.md: HISTORY."""

from twisted.trial.unittest import SynchronousTestCase

from tests.support.harness import Harness, timestamp


def err_prefix(line):
    return "|".join(line.split("|")[:3])


class RoomHistoryTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness()
        self.alice, self.bob = self.h.users("alice", "bob")
        self.times = {}
        # Messages 1-6 in #general, one a second, alternating senders.
        for n in range(1, 7):
            sender = self.alice if n % 2 else self.bob
            self.times[n] = self.h.now()
            sender.send(f"MSG|#general|m{n}")
            self.h.settle()
            self.assertIn(f"OK|MSG|{n}", sender.lines())
            self.h.advance(1)
        self.h.clear_all()

    def h_line(self, n):
        sender = "alice" if n % 2 else "bob"
        return f"H|#general|{n}|{sender}|{timestamp(self.times[n])}|m{n}"

    def expect(self, ids):
        return [self.h_line(n) for n in ids] + [f"OK|HISTORY|#general|{len(ids)}"]

    def test_history_without_cursor_returns_the_newest_limit_messages_oldest_first(self):
        """HISTORY|target|limit: the newest limit messages, oldest first, then OK|HISTORY|target|count."""
        self.assertEqual(self.alice.command("HISTORY|#general|3"), self.expect([4, 5, 6]))

    def test_history_line_format(self):
        """H|target|msgid|sender|timestamp|text, the timestamp RFC 3339 UTC with milliseconds."""
        self.assertEqual(
            self.alice.command("HISTORY|#general|1"),
            ["H|#general|6|bob|2026-11-22T09:30:05.000Z|m6", "OK|HISTORY|#general|1"],
        )

    def test_limit_larger_than_the_history_returns_everything(self):
        """The count is the number of H lines returned."""
        self.assertEqual(
            self.alice.command("HISTORY|#general|500"), self.expect([1, 2, 3, 4, 5, 6])
        )

    def test_before_returns_the_newest_limit_messages_older_than_msgid(self):
        """before|msgid: the newest limit messages older than msgid (paging back), oldest first."""
        self.assertEqual(self.alice.command("HISTORY|#general|2|before|5"), self.expect([3, 4]))
        self.assertEqual(self.alice.command("HISTORY|#general|10|before|3"), self.expect([1, 2]))
        self.assertEqual(self.alice.command("HISTORY|#general|10|before|1"), self.expect([]))

    def test_after_returns_the_oldest_limit_messages_newer_than_msgid(self):
        """after|msgid: the oldest limit messages newer than msgid (catching up), oldest first."""
        self.assertEqual(self.alice.command("HISTORY|#general|2|after|2"), self.expect([3, 4]))
        self.assertEqual(self.alice.command("HISTORY|#general|10|after|4"), self.expect([5, 6]))
        self.assertEqual(self.alice.command("HISTORY|#general|10|after|6"), self.expect([]))

    def test_after_zero_reads_from_the_first_message(self):
        """after|0 reads from the first message."""
        self.assertEqual(self.alice.command("HISTORY|#general|2|after|0"), self.expect([1, 2]))

    def test_cursor_words_are_lower_case(self):
        """The words before and after are lower case: others are a 400."""
        for line in [
            "HISTORY|#general|2|BEFORE|5",
            "HISTORY|#general|2|After|2",
            "HISTORY|#general|2|since|2",
        ]:
            reply = self.alice.command(line)
            self.assertEqual(len(reply), 1, line)
            self.assertEqual(err_prefix(reply[0]), "ERR|HISTORY|400", line)

    def test_bad_cursor_is_400(self):
        """The cursor is a message id."""
        for line in [
            "HISTORY|#general|2|before|x",
            "HISTORY|#general|2|after|-1",
            "HISTORY|#general|2|after|",
        ]:
            self.assertEqual(err_prefix(self.alice.command(line)[0]), "ERR|HISTORY|400", line)

    def test_limit_outside_1_to_500_is_400(self):
        """HISTORY: 400 limit outside 1-500."""
        for limit in ["0", "501", "-1", "", "ten", "1.5", "99999999999999999999999"]:
            reply = self.alice.command(f"HISTORY|#general|{limit}")
            self.assertEqual(len(reply), 1, limit)
            self.assertEqual(err_prefix(reply[0]), "ERR|HISTORY|400", limit)

    def test_room_target_is_lower_cased(self):
        """The target in H and OK lines is the canonical room name."""
        self.assertEqual(self.alice.command("HISTORY|#GENERAL|1"), self.expect([6]))

    def test_history_of_a_room_you_are_not_a_member_of_is_403(self):
        """HISTORY: 403 not a member of the room."""
        self.bob.command("JOIN|#private", "MSG|#private|secret")
        self.assertEqual(
            err_prefix(self.alice.command("HISTORY|#private|10")[0]), "ERR|HISTORY|403"
        )

    def test_history_of_unknown_room_is_404(self):
        """HISTORY: 404 for a room that does not exist."""
        self.assertEqual(
            err_prefix(self.alice.command("HISTORY|#nowhere|10")[0]), "ERR|HISTORY|404"
        )

    def test_empty_room_history_has_count_zero(self):
        """Zero H lines, then OK|HISTORY|target|0."""
        self.alice.command("JOIN|#quiet")
        self.assertEqual(self.alice.command("HISTORY|#quiet|10"), ["OK|HISTORY|#quiet|0"])

    def test_history_includes_a_message_sent_just_before(self):
        """A pipelined MSG then HISTORY: the history includes the message."""
        self.alice.send("MSG|#general|m7", "HISTORY|#general|1")
        self.h.settle()
        self.assertEqual(
            self.alice.lines(),
            [
                "OK|MSG|7",
                f"H|#general|7|alice|{timestamp(self.h.now())}|m7",
                "OK|HISTORY|#general|1",
            ],
        )

    def test_history_body_keeps_pipes(self):
        """A body with | is returned exactly."""
        self.alice.command("MSG|#general|a|b|c")
        self.assertEqual(
            self.alice.command("HISTORY|#general|1"),
            [f"H|#general|7|alice|{timestamp(self.h.now())}|a|b|c", "OK|HISTORY|#general|1"],
        )


class DirectHistoryTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness()
        self.alice, self.bob, self.carol = self.h.users("alice", "bob", "carol")
        self.t0 = timestamp(self.h.now())

    def test_history_with_a_user_reads_the_direct_conversation_in_both_directions(self):
        """HISTORY with a username reads the direct conversation between you and that user."""
        self.alice.command("MSG|bob|hi bob")
        self.bob.command("MSG|alice|hi alice")
        self.alice.command("MSG|carol|not for bob")
        self.carol.command("MSG|bob|not for alice")
        self.alice.command("MSG|#general|room, not direct")
        self.h.clear_all()
        t = self.t0
        self.assertEqual(
            self.alice.command("HISTORY|bob|10"),
            [f"H|bob|1|alice|{t}|hi bob", f"H|bob|2|bob|{t}|hi alice", "OK|HISTORY|bob|2"],
        )
        self.assertEqual(
            self.bob.command("HISTORY|ALICE|10"),
            [f"H|alice|1|alice|{t}|hi bob", f"H|alice|2|bob|{t}|hi alice", "OK|HISTORY|alice|2"],
        )

    def test_direct_history_pages_like_room_history(self):
        """before and after work on direct conversations."""
        for n in range(1, 5):
            self.alice.command(f"MSG|bob|{n}")
        self.bob.clear()
        t = self.t0
        self.assertEqual(
            self.bob.command("HISTORY|alice|2|before|4"),
            [f"H|alice|2|alice|{t}|2", f"H|alice|3|alice|{t}|3", "OK|HISTORY|alice|2"],
        )
        self.assertEqual(
            self.bob.command("HISTORY|alice|1|after|0"),
            [f"H|alice|1|alice|{t}|1", "OK|HISTORY|alice|1"],
        )

    def test_direct_history_includes_unacknowledged_and_acknowledged_messages(self):
        """History is every stored message, delivered or not."""
        self.alice.command("MSG|bob|one", "MSG|bob|two")
        self.bob.command("ACK|1")
        self.assertEqual(self.alice.command("HISTORY|bob|10")[-1], "OK|HISTORY|bob|2")

    def test_history_with_a_user_you_never_talked_to_is_empty(self):
        """A direct conversation without messages: count 0."""
        self.assertEqual(self.alice.command("HISTORY|carol|10"), ["OK|HISTORY|carol|0"])

    def test_history_with_unknown_user_is_404(self):
        """HISTORY: 404 for a user who does not exist."""
        self.assertEqual(err_prefix(self.alice.command("HISTORY|nobody|10")[0]), "ERR|HISTORY|404")
