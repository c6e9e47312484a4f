"""The client's command parser: what the user types -> intent or usage error."""

from twisted.trial import unittest

from messenger.client import commands as c
from messenger.client.commands import parse_input


class PlainTextTests(unittest.TestCase):
    def test_plain_line_goes_to_focus(self):
        """A line that is not a command is text for the conversation in focus."""
        self.assertEqual(parse_input("hello there"), c.SendText(None, "hello there"))

    def test_plain_line_keeps_pipes_and_backslashes(self):
        """The text is taken as typed: | and \\ are not special to the user."""
        self.assertEqual(parse_input(r"a|b \n c"), c.SendText(None, r"a|b \n c"))

    def test_blank_line_is_nothing(self):
        """An empty or white-space line does nothing."""
        self.assertIsNone(parse_input(""))
        self.assertIsNone(parse_input("   \t "))

    def test_trailing_newline_and_cr_are_dropped(self):
        """A line read with its CR LF gives the same text as without."""
        self.assertEqual(parse_input("hi\r\n"), c.SendText(None, "hi"))

    def test_double_slash_sends_a_line_starting_with_slash(self):
        """//text sends /text instead of being a command."""
        self.assertEqual(parse_input("//shrug"), c.SendText(None, "/shrug"))

    def test_too_long_text_is_refused(self):
        """Text longer than a protocol line allows is refused before sending."""
        result = parse_input("x" * (c.MAX_TEXT_BYTES + 1))
        self.assertIsInstance(result, c.UsageError)
        self.assertIn("longer than", result.message)

    def test_text_at_the_limit_is_accepted(self):
        """Text of exactly MAX_TEXT_BYTES is fine."""
        self.assertEqual(
            parse_input("x" * c.MAX_TEXT_BYTES), c.SendText(None, "x" * c.MAX_TEXT_BYTES)
        )


class DirectMessageTests(unittest.TestCase):
    def test_msg(self):
        """/msg NAME TEXT sends a direct message; the name is canonical."""
        self.assertEqual(
            parse_input("/msg Bob lunch? at 12|1"), c.SendText("bob", "lunch? at 12|1")
        )

    def test_msg_to_room(self):
        """/msg #room TEXT sends to a room."""
        self.assertEqual(parse_input("/msg #Dev hi"), c.SendText("#dev", "hi"))

    def test_at_sign(self):
        """@NAME TEXT is the short form of /msg."""
        self.assertEqual(parse_input("@bob lunch?"), c.SendText("bob", "lunch?"))

    def test_msg_without_text_is_usage(self):
        """/msg with no text gives its usage line."""
        self.assertEqual(parse_input("/msg bob"), c.UsageError("usage: /msg NAME TEXT"))
        self.assertEqual(parse_input("/msg bob    "), c.UsageError("usage: /msg NAME TEXT"))
        self.assertEqual(parse_input("/msg"), c.UsageError("usage: /msg NAME TEXT"))

    def test_at_without_text_is_usage(self):
        """@NAME alone gives the @ usage line."""
        self.assertEqual(parse_input("@bob"), c.UsageError("usage: @NAME TEXT"))
        self.assertEqual(parse_input("@ hi"), c.UsageError("usage: @NAME TEXT"))

    def test_msg_to_invalid_name_is_usage(self):
        """A target that is not a user name or room is refused with the reason."""
        result = parse_input("/msg b*b hi")
        self.assertIsInstance(result, c.UsageError)
        self.assertTrue(result.message.startswith("usage: /msg NAME TEXT ("))
        self.assertIn("invalid username", result.message)


class FocusAndRoomTests(unittest.TestCase):
    def test_chat_user(self):
        """/chat NAME moves the focus to a direct conversation."""
        self.assertEqual(parse_input("/chat Bob"), c.Focus("bob"))

    def test_chat_room(self):
        """/chat #room moves the focus to a room."""
        self.assertEqual(parse_input("/chat #dev"), c.Focus("#dev"))

    def test_chat_without_target_is_usage(self):
        """/chat needs exactly one target."""
        self.assertEqual(parse_input("/chat"), c.UsageError("usage: /chat NAME|#ROOM"))
        self.assertEqual(parse_input("/chat a b"), c.UsageError("usage: /chat NAME|#ROOM"))

    def test_join(self):
        """/join #room joins; the room name is lower-cased."""
        self.assertEqual(parse_input("/join #Dev"), c.JoinRoom("#dev"))

    def test_join_without_hash(self):
        """The # may be left out where only a room makes sense."""
        self.assertEqual(parse_input("/join dev"), c.JoinRoom("#dev"))

    def test_join_bad_room_is_usage(self):
        """A room name with forbidden characters is refused."""
        result = parse_input("/join #no.dots")
        self.assertIsInstance(result, c.UsageError)
        self.assertIn("usage: /join #ROOM", result.message)

    def test_join_without_room_is_usage(self):
        """/join needs a room."""
        self.assertEqual(parse_input("/join"), c.UsageError("usage: /join #ROOM"))

    def test_part(self):
        """/part #room leaves a room."""
        self.assertEqual(parse_input("/part #dev"), c.PartRoom("#dev"))

    def test_part_without_room_is_usage(self):
        """/part needs a room."""
        self.assertEqual(parse_input("/part"), c.UsageError("usage: /part #ROOM"))

    def test_rooms(self):
        """/rooms lists my rooms."""
        self.assertEqual(parse_input("/rooms"), c.ListRooms())

    def test_rooms_with_argument_is_usage(self):
        """/rooms takes no argument."""
        self.assertEqual(parse_input("/rooms x"), c.UsageError("usage: /rooms"))

    def test_members(self):
        """/members #room lists a room's members."""
        self.assertEqual(parse_input("/members #dev"), c.ListMembers("#dev"))

    def test_members_of_focus(self):
        """/members alone means the room in focus."""
        self.assertEqual(parse_input("/members"), c.ListMembers(None))

    def test_members_with_two_rooms_is_usage(self):
        """/members takes at most one room."""
        self.assertEqual(parse_input("/members #a #b"), c.UsageError("usage: /members [#ROOM]"))


class OtherCommandTests(unittest.TestCase):
    def test_who(self):
        """/who lists who is online."""
        self.assertEqual(parse_input("/who"), c.ListOnline())

    def test_who_with_argument_is_usage(self):
        """/who takes no argument."""
        self.assertEqual(parse_input("/who bob"), c.UsageError("usage: /who"))

    def test_whois(self):
        """/whois NAME looks a user up."""
        self.assertEqual(parse_input("/whois Bob"), c.LookUp("bob"))

    def test_whois_without_name_is_usage(self):
        """/whois needs a name."""
        self.assertEqual(parse_input("/whois"), c.UsageError("usage: /whois NAME"))

    def test_history_with_target_and_limit(self):
        """/history bob 20 asks for 20 lines of the conversation with bob."""
        self.assertEqual(parse_input("/history bob 20"), c.ShowHistory("bob", 20))

    def test_history_of_room(self):
        """/history works for rooms too, with the default limit."""
        self.assertEqual(
            parse_input("/history #dev"), c.ShowHistory("#dev", c.DEFAULT_HISTORY_LIMIT)
        )

    def test_history_of_focus(self):
        """/history alone means the conversation in focus."""
        self.assertEqual(parse_input("/history"), c.ShowHistory(None, c.DEFAULT_HISTORY_LIMIT))

    def test_history_bad_limit_is_usage(self):
        """The limit must be 1-500."""
        for bad in ("0", "501", "ten", "-1"):
            result = parse_input(f"/history bob {bad}")
            self.assertIsInstance(result, c.UsageError, bad)
            self.assertIn("LIMIT must be 1-500", result.message)

    def test_history_too_many_arguments_is_usage(self):
        """/history takes at most a target and a limit."""
        self.assertEqual(
            parse_input("/history bob 20 x"), c.UsageError("usage: /history [NAME|#ROOM] [LIMIT]")
        )

    def test_name(self):
        """/name sets the display name, spaces inside kept, outside stripped."""
        self.assertEqual(parse_input("/name   Alice  Liddell "), c.SetName("Alice  Liddell"))

    def test_name_without_value_is_usage(self):
        """/name needs a name."""
        self.assertEqual(parse_input("/name"), c.UsageError("usage: /name DISPLAY NAME"))

    def test_name_with_pipe_is_usage(self):
        """A display name may not hold |."""
        result = parse_input("/name a|b")
        self.assertIsInstance(result, c.UsageError)
        self.assertIn("forbidden character", result.message)

    def test_passwd(self):
        """/passwd asks for the passwords afterwards."""
        self.assertEqual(parse_input("/passwd"), c.ChangePassword())

    def test_passwd_with_arguments_is_usage(self):
        """Passwords are never typed on the command line, where they echo."""
        self.assertEqual(parse_input("/passwd old new"), c.UsageError("usage: /passwd"))

    def test_inbox(self):
        """/inbox lists unread conversations."""
        self.assertEqual(parse_input("/inbox"), c.ShowInbox())

    def test_signup(self):
        """/signup starts creating an account."""
        self.assertEqual(parse_input("/signup"), c.SignUp())

    def test_help(self):
        """/help shows the commands."""
        self.assertEqual(parse_input("/help"), c.ShowHelp())

    def test_quit(self):
        """/quit, /exit and !exit all quit."""
        for line in ("/quit", "/exit", "!exit", "  /QUIT  "):
            self.assertEqual(parse_input(line), c.QuitClient(), line)

    def test_quit_with_argument_is_usage(self):
        """/quit takes no argument."""
        self.assertEqual(parse_input("/quit now"), c.UsageError("usage: /quit"))

    def test_commands_are_case_insensitive(self):
        """/WHO is /who."""
        self.assertEqual(parse_input("/WHO"), c.ListOnline())

    def test_unknown_command(self):
        """An unknown /command says so and points to /help."""
        self.assertEqual(
            parse_input("/frobnicate"),
            c.UsageError("unknown command /frobnicate; /help lists the commands"),
        )


class HelpTextTests(unittest.TestCase):
    def test_help_lists_every_command(self):
        """Every command with a usage line appears in /help."""
        text = c.help_text()
        for name, _, _ in c.COMMANDS:
            self.assertIn(name, text)

    def test_every_command_has_a_usage_line(self):
        """usage() knows every command /help lists."""
        for name, _, _ in c.COMMANDS:
            self.assertTrue(c.usage(name).startswith(f"usage: {name}"))
