"""The client's renderer: server messages -> text a person reads."""

from datetime import UTC, datetime, timedelta, timezone

from twisted.trial import unittest

from messenger.client import render

PLAIN = render.Style(color=False, tz=UTC)
COLOR = render.Style(color=True, tz=UTC)
NOON = datetime(2026, 11, 22, 12, 5, tzinfo=UTC)


class MessageTests(unittest.TestCase):
    def test_room_message(self):
        """A room message shows time, room, sender and text."""
        self.assertEqual(
            render.message(PLAIN, NOON, "#general", "Alice (alice)", "hello"),
            "  12:05 #general Alice (alice): hello",
        )

    def test_direct_message(self):
        """A direct message shows the other party as @name."""
        self.assertEqual(
            render.message(PLAIN, NOON, "bob", "bob", "lunch?"), "  12:05 @bob bob: lunch?"
        )

    def test_unfocused_message_is_marked(self):
        """A message for a conversation not in focus starts with a mark."""
        line = render.message(PLAIN, NOON, "#dev", "bob", "hi", focused=False)
        self.assertEqual(line, "* 12:05 #dev bob: hi")

    def test_newline_escapes_become_lines(self):
        """\\n in the body is shown as a new, indented line; \\\\ as a backslash."""
        self.assertEqual(
            render.message(PLAIN, NOON, "bob", "bob", r"one\ntwo\\three"),
            "  12:05 @bob bob: one\n    two\\three",
        )

    def test_pipes_in_text_are_shown(self):
        """A | in the body is ordinary text."""
        self.assertTrue(render.message(PLAIN, NOON, "bob", "bob", "a|b").endswith("bob: a|b"))

    def test_terminal_escapes_are_neutralised(self):
        """An ESC sequence in a body cannot reach the terminal."""
        line = render.message(PLAIN, NOON, "bob", "bob", "\x1b[2Jgotcha\x07")
        self.assertNotIn("\x1b", line)
        self.assertNotIn("\x07", line)
        self.assertIn("^[[2Jgotcha^G", line)

    def test_direction_overrides_are_neutralised(self):
        """A right-to-left override cannot reorder what is shown."""
        self.assertNotIn("\u202e", render.message(PLAIN, NOON, "bob", "bob", "abc\u202edef"))

    def test_other_day_shows_date(self):
        """A message from another day than now shows its date."""
        yesterday = NOON - timedelta(days=1)
        line = render.message(PLAIN, yesterday, "#general", "bob", "hi", now=NOON)
        self.assertIn("2026-11-21 12:05", line)

    def test_color_only_when_asked(self):
        """Without colour there is no escape code; with it, there is."""
        self.assertNotIn("\x1b", render.message(PLAIN, NOON, "#general", "bob", "hi"))
        self.assertIn("\x1b[", render.message(COLOR, NOON, "#general", "bob", "hi"))

    def test_time_is_shown_in_the_styles_zone(self):
        """Times are converted to the display zone."""
        zone = timezone(timedelta(hours=2))
        style = render.Style(tz=zone)
        self.assertIn(" 14:05 ", render.message(style, NOON, "bob", "bob", "hi"))


class SenderLabelTests(unittest.TestCase):
    def test_display_name_and_username(self):
        """A display name that differs from the user name shows both."""
        self.assertEqual(render.sender_label("alice", "Alice Liddell"), "Alice Liddell (alice)")

    def test_same_name_shown_once(self):
        """A display name that is the user name in another case shows once."""
        self.assertEqual(render.sender_label("bob", "Bob"), "Bob")

    def test_unknown_display_name(self):
        """Without a display name the user name is shown."""
        self.assertEqual(render.sender_label("bob", None), "bob")

    def test_impersonation_is_visible(self):
        """Someone taking another's display name still shows their own user name."""
        self.assertEqual(render.sender_label("mallory", "alice"), "alice (mallory)")


class ShortLineTests(unittest.TestCase):
    def test_sent_confirmation(self):
        """An OK for a message is the short 'Message N sent'."""
        self.assertEqual(render.sent(41, PLAIN), "Message 41 sent")

    def test_delivery_receipt(self):
        """A DLV shows as 'delivered to NAME'."""
        self.assertEqual(
            render.delivered(41, "bob", NOON, PLAIN), "  delivered to bob (message 41, 12:05)"
        )

    def test_presence_and_membership_are_one_dim_line_each(self):
        """ON, OFF, JOINED and PARTED are single lines, dim in colour."""
        lines = [
            render.online("bob", NOON, COLOR),
            render.offline("bob", NOON, COLOR),
            render.joined("#dev", "bob", NOON, COLOR),
            render.parted("#dev", "bob", NOON, COLOR),
        ]
        for line in lines:
            self.assertNotIn("\n", line)
            self.assertTrue(line.startswith("\x1b[2m"), line)
        self.assertEqual(render.online("bob", NOON, PLAIN), "  12:05 bob is online")
        self.assertEqual(render.offline("bob", NOON, PLAIN), "  12:05 bob went offline")
        self.assertEqual(render.joined("#dev", "bob", NOON, PLAIN), "  12:05 bob joined #dev")
        self.assertEqual(render.parted("#dev", "bob", NOON, PLAIN), "  12:05 bob left #dev")

    def test_server_error(self):
        """An ERR shows its reason, code and what it refused."""
        self.assertEqual(
            render.server_error(404, "no such user", PLAIN, "not sent to @bob"),
            "!! not sent to @bob: no such user (404)",
        )

    def test_one_line_fields_cannot_break_lines(self):
        """A newline in a one-line field (reason, name) is shown, not obeyed."""
        self.assertEqual(render.server_error(400, "a\nb", PLAIN), "!! a^Jb (400)")


class ListTests(unittest.TestCase):
    def test_inbox_with_counts(self):
        """/inbox lists conversations with their unread counts."""
        self.assertEqual(render.inbox({"bob": 2, "#dev": 5}, PLAIN), "Unread: @bob (2), #dev (5)")

    def test_empty_inbox(self):
        """/inbox with nothing unread says so."""
        self.assertEqual(render.inbox({}, PLAIN), "-- no unread messages")

    def test_word_list(self):
        """/who, /rooms and /members are one line of names."""
        self.assertEqual(render.word_list("Online:", ["alice", "bob"], PLAIN), "Online: alice, bob")
        self.assertEqual(render.word_list("Online:", [], PLAIN, empty="nobody"), "Online: nobody")

    def test_whois_online(self):
        """/whois of someone online."""
        self.assertEqual(render.whois("bob", "online", "-", "Bob", PLAIN), "Bob: online")

    def test_whois_offline_with_last_seen(self):
        """/whois of someone offline shows when they were last seen."""
        self.assertEqual(
            render.whois("alice", "offline", "2026-11-22T09:30:00.123Z", "Alice", PLAIN, NOON),
            "Alice: offline, last seen 09:30",
        )

    def test_focus(self):
        """Moving the focus says where plain lines go now."""
        self.assertEqual(render.focus("#dev", PLAIN), "-- now talking in #dev")
        self.assertEqual(render.focus("bob", PLAIN), "-- now talking with bob")


class TimestampTests(unittest.TestCase):
    def test_parse_protocol_timestamp(self):
        """An RFC 3339 UTC timestamp with milliseconds is read."""
        self.assertEqual(
            render.parse_timestamp("2026-11-22T09:30:00.123Z"),
            datetime(2026, 11, 22, 9, 30, 0, 123000, tzinfo=UTC),
        )

    def test_bad_timestamp_is_none(self):
        """Garbage does not crash the renderer."""
        self.assertIsNone(render.parse_timestamp("yesterday"))
