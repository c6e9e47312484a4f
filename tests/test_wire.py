"""The wire protocol (docs/protocol.md), rule by rule, against messenger.wire.

Each test is named after one rule of the protocol and states it in its
docstring, so that this file reads like the specification it checks.  The
last classes state the properties every line has, checked with hypothesis:
formatting then parsing is the identity, and parsing arbitrary text fails
only with :class:`RemoteProtocolError`.
"""

import dataclasses
import itertools

from hypothesis import given, settings, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from messenger import wire
from messenger.wire import (
    Acknowledge,
    Broadcast,
    Bye,
    CreateAccount,
    Delivered,
    DirectMessage,
    Err,
    Hello,
    Help,
    History,
    HistoryLine,
    InvalidValue,
    Join,
    LocalProtocolError,
    Login,
    LookUpUser,
    MalformedLine,
    MemberJoined,
    MemberParted,
    MyRooms,
    NewToken,
    Ok,
    Part,
    Ping,
    Quit,
    RemoteProtocolError,
    Resume,
    RoomMembers,
    RoomMessage,
    SendMessage,
    SendMessageOnce,
    SetDisplayName,
    SetPassword,
    UserOffline,
    UserOnline,
    WhoIsOnline,
    escape_body,
    parse_command,
    parse_server_line,
    unescape_body,
)
from tests.support.verbs import verb_of

# Deterministic (the same examples on every run, so CI is reproducible), no
# example database written into the checkout, and no deadline, which only
# makes a slow CI machine flaky.
reproducible = settings(derandomize=True, database=None, deadline=None)

TOKEN = "A" * 16 + "z" * 8 + "0123456_"  # 32 characters of the token alphabet

#: Every client verb the protocol defines, in docs/protocol.md's order.
CLIENT_VERBS = (
    "USR LOGIN TOKEN RESUME MSG SEND BCST ACK WHO WHOIS JOIN PART ROOMS "
    "MEMBERS HISTORY NAME PASSWD PING HELP QUIT"
).split()

#: For each client verb, a valid field list of every count it accepts.
VALID_FIELDS: dict[str, list[list[str]]] = {
    "USR": [["alice", "correct horse", "Alice"]],
    "LOGIN": [["alice", "correct horse"]],
    "TOKEN": [[]],
    "RESUME": [["alice", TOKEN]],
    "MSG": [["bob", "hi"]],
    "SEND": [["c1", "bob", "hi"]],
    "BCST": [["hi"]],
    "ACK": [["1"]],
    "WHO": [[]],
    "WHOIS": [["bob"]],
    "JOIN": [["#a"]],
    "PART": [["#a"]],
    "ROOMS": [[]],
    "MEMBERS": [["#a"]],
    "HISTORY": [["bob", "10"], ["bob", "10", "before", "5"]],
    "NAME": [["Alice"]],
    "PASSWD": [["old password", "new password"]],
    "PING": [[], ["tok"]],
    "HELP": [[]],
    "QUIT": [[]],
}

#: The events of rule 3: they may arrive at any time, between replies.
EVENTS = (
    DirectMessage,
    RoomMessage,
    Delivered,
    UserOnline,
    UserOffline,
    MemberJoined,
    MemberParted,
    Bye,
)

#: Verbs whose last field is a message body, which may hold "|".
BODY_VERBS = ("MSG", "SEND", "BCST")


def line_of(verb, fields):
    return "|".join([verb] + list(fields))


class ParseMixin:
    """Assertions shared by the test cases."""

    def assertParses(self, line, expected, canonical=None):
        """`line` parses to `expected`, whose to_line is `canonical`."""
        command = parse_command(line)
        self.assertEqual(command, expected, line)
        self.assertEqual(command.to_line(), line if canonical is None else canonical)
        return command

    def assertRejected(self, line, error, verb, parse=parse_command):
        """`line` fails with `error` (exactly), answered ERR|verb|400."""
        e = self.assertRaises(RemoteProtocolError, parse, line)
        self.assertIs(type(e), error, f"{line!r}: {e!r}")
        self.assertEqual((e.verb, e.code), (verb, 400), line)
        return e

    def assertMalformed(self, line, verb):
        return self.assertRejected(line, MalformedLine, verb)

    def assertInvalid(self, line, verb):
        return self.assertRejected(line, InvalidValue, verb)


# --------------------------------------------------------------------------
# Client commands: the valid forms


class ClientCommandsTests(ParseMixin, SynchronousTestCase):
    def test_usr(self):
        """USR|username|password|display_name creates an account."""
        self.assertParses(
            "USR|alice|correct horse|Alice Liddell",
            CreateAccount("alice", "correct horse", "Alice Liddell"),
        )

    def test_login(self):
        """LOGIN|username|password logs in."""
        self.assertParses("LOGIN|alice|correct horse", Login("alice", "correct horse"))

    def test_token(self):
        """TOKEN takes no field."""
        self.assertParses("TOKEN", NewToken())

    def test_resume(self):
        """RESUME|username|token logs in with a session token."""
        self.assertParses(f"RESUME|alice|{TOKEN}", Resume("alice", TOKEN))

    def test_msg(self):
        """MSG|target|text sends to a user or a room."""
        self.assertParses("MSG|bob|are you there?", SendMessage("bob", "are you there?"))
        self.assertParses("MSG|#general|hello", SendMessage("#general", "hello"))

    def test_send(self):
        """SEND|client_id|target|text is MSG with an idempotency key."""
        self.assertParses("SEND|c-1_x|bob|hi", SendMessageOnce("c-1_x", "bob", "hi"))
        self.assertParses("SEND|c1|#room|hi", SendMessageOnce("c1", "#room", "hi"))

    def test_bcst(self):
        """BCST|text sends to #general."""
        self.assertParses("BCST|hello, everyone!", Broadcast("hello, everyone!"))

    def test_ack(self):
        """ACK|msgid acknowledges a direct message."""
        self.assertParses("ACK|43", Acknowledge(43))

    def test_who(self):
        """WHO takes no field."""
        self.assertParses("WHO", WhoIsOnline())

    def test_whois(self):
        """WHOIS|username asks about one user."""
        self.assertParses("WHOIS|bob", LookUpUser("bob"))

    def test_join(self):
        """JOIN|#room joins (or creates) a room."""
        self.assertParses("JOIN|#a-b_1", Join("#a-b_1"))

    def test_part(self):
        """PART|#room leaves a room."""
        self.assertParses("PART|#a", Part("#a"))

    def test_rooms(self):
        """ROOMS takes no field."""
        self.assertParses("ROOMS", MyRooms())

    def test_members(self):
        """MEMBERS|#room lists a room's members."""
        self.assertParses("MEMBERS|#general", RoomMembers("#general"))

    def test_history_newest(self):
        """HISTORY|target|limit reads the newest messages."""
        self.assertParses("HISTORY|bob|10", History("bob", 10))
        self.assertParses("HISTORY|#general|500", History("#general", 500))

    def test_history_before(self):
        """HISTORY|target|limit|before|msgid pages back."""
        self.assertParses("HISTORY|bob|1|before|41", History("bob", 1, "before", 41))

    def test_history_after(self):
        """HISTORY|target|limit|after|msgid catches up."""
        self.assertParses("HISTORY|#a|10|after|41", History("#a", 10, "after", 41))

    def test_history_after_zero(self):
        """after|0 reads from the first message."""
        self.assertParses("HISTORY|bob|10|after|0", History("bob", 10, "after", 0))

    def test_name(self):
        """NAME|display_name changes the display name."""
        self.assertParses("NAME|Alice Liddell", SetDisplayName("Alice Liddell"))

    def test_passwd(self):
        """PASSWD|old|new changes the password."""
        self.assertParses("PASSWD|old secret|new secret", SetPassword("old secret", "new secret"))

    def test_ping(self):
        """A bare PING has no token."""
        self.assertParses("PING", Ping(None))

    def test_ping_token(self):
        """PING|token carries a token to echo as given."""
        self.assertParses("PING|Tok en", Ping("Tok en"))

    def test_ping_empty_token(self):
        """PING| carries an empty token, echoed as empty (not as a bare PING)."""
        self.assertParses("PING|", Ping(""))
        self.assertNotEqual(parse_command("PING|"), parse_command("PING"))

    def test_help(self):
        """HELP takes no field."""
        self.assertParses("HELP", Help())

    def test_quit(self):
        """QUIT takes no field."""
        self.assertParses("QUIT", Quit())

    def test_every_verb_has_a_command(self):
        """Every command of docs/protocol.md parses, and nothing else is a command."""
        self.assertEqual(list(wire.CLIENT_COMMANDS), CLIENT_VERBS)
        for verb, forms in VALID_FIELDS.items():
            for fields in forms:
                self.assertEqual(parse_command(line_of(verb, fields)).NAME, verb)

    def test_help_lists_every_verb(self):
        """HELP lists every command verb of the protocol, space separated."""
        self.assertEqual(wire.HELP_TEXT.split(" "), CLIENT_VERBS)

    def test_before_login(self):
        """Only USR, LOGIN, RESUME, HELP, PING and QUIT are allowed before login."""
        allowed = {v for v, cls in wire.CLIENT_COMMANDS.items() if cls.BEFORE_LOGIN}
        self.assertEqual(allowed, {"USR", "LOGIN", "RESUME", "HELP", "PING", "QUIT"})

    def test_commands_are_frozen_values(self):
        """A parsed command is an immutable, hashable value."""
        command = parse_command("MSG|bob|hi")
        self.assertEqual(hash(command), hash(SendMessage("bob", "hi")))
        self.assertRaises(dataclasses.FrozenInstanceError, setattr, command, "text", "x")


class CanonicalFormTests(ParseMixin, SynchronousTestCase):
    def test_verb_case_insensitive(self):
        """The verb is case-insensitive on input; to_line writes it upper case."""
        self.assertParses("msg|bob|hi", SendMessage("bob", "hi"), "MSG|bob|hi")
        self.assertParses("Who", WhoIsOnline(), "WHO")
        self.assertParses("pInG|x", Ping("x"), "PING|x")

    def test_verb_ascii_only(self):
        """Only ASCII case folds: "paßwd", "uſr" or "bcﬆ" are not verbs."""
        for line in ("pa\xdfwd|a|b", "u\u017fr|a|b|c", "bc\ufb06|hi", "jo\u0131n|#a"):
            self.assertMalformed(line, "?")

    def test_username_lower_case(self):
        """Usernames are case-insensitive; the canonical form is lower case."""
        self.assertParses("WHOIS|BoB", LookUpUser("bob"), "WHOIS|bob")
        self.assertParses("LOGIN|Alice|pw", Login("alice", "pw"), "LOGIN|alice|pw")
        self.assertParses(f"RESUME|ALICE|{TOKEN}", Resume("alice", TOKEN), f"RESUME|alice|{TOKEN}")

    def test_username_alphabet(self):
        """A username is 1-32 of A-Z a-z 0-9 _ . -."""
        self.assertParses("WHOIS|a", LookUpUser("a"))
        self.assertParses("WHOIS|" + "x" * 32, LookUpUser("x" * 32))
        self.assertParses("WHOIS|A.b-C_9", LookUpUser("a.b-c_9"), "WHOIS|a.b-c_9")

    def test_room_lower_case(self):
        """Room names are lower-cased on input."""
        self.assertParses("JOIN|#General", Join("#general"), "JOIN|#general")
        self.assertParses("MSG|#ROOM|hi", SendMessage("#room", "hi"), "MSG|#room|hi")
        self.assertParses("HISTORY|#Ab|5", History("#ab", 5), "HISTORY|#ab|5")

    def test_room_alphabet(self):
        """A room is # then 1-32 of a-z 0-9 _ -."""
        self.assertParses("JOIN|#" + "r" * 32, Join("#" + "r" * 32))
        self.assertParses("JOIN|#0_-z", Join("#0_-z"))

    def test_target_user_or_room(self):
        """A target starting with # is a room, anything else a username."""
        self.assertParses("MSG|Bob|hi", SendMessage("bob", "hi"), "MSG|bob|hi")
        self.assertParses("SEND|k|#R|hi", SendMessageOnce("k", "#r", "hi"), "SEND|k|#r|hi")

    def test_display_name_stripped(self):
        """Leading and trailing spaces of a display name are stripped."""
        self.assertParses("NAME|  Alice L  ", SetDisplayName("Alice L"), "NAME|Alice L")
        self.assertParses("USR|a|pw| Al ", CreateAccount("a", "pw", "Al"), "USR|a|pw|Al")

    def test_display_name_length_after_strip(self):
        """A display name is 1-64 characters once stripped."""
        name = "n" * 64
        self.assertParses(f"NAME|  {name}  ", SetDisplayName(name), f"NAME|{name}")
        self.assertParses("NAME|\xe9", SetDisplayName("\xe9"))

    def test_password_kept_as_is(self):
        """A password is not stripped or folded: spaces and case count."""
        self.assertParses("LOGIN|a| Pass Word ", Login("a", " Pass Word "))

    def test_password_length(self):
        """A password is 1-128 characters (the minimum is the server's business)."""
        self.assertParses("LOGIN|a|x", Login("a", "x"))
        self.assertParses("LOGIN|a|" + "p" * 128, Login("a", "p" * 128))

    def test_client_id_case_sensitive(self):
        """A client_id is 1-64 of A-Z a-z 0-9 _ -, and case-sensitive."""
        self.assertParses("SEND|AbC|bob|hi", SendMessageOnce("AbC", "bob", "hi"))
        self.assertParses("SEND|" + "K" * 64 + "|bob|hi", SendMessageOnce("K" * 64, "bob", "hi"))
        self.assertNotEqual(parse_command("SEND|a|b|c"), parse_command("SEND|A|b|c"))

    def test_token_length(self):
        """A session token is 32-128 of A-Z a-z 0-9 _ -."""
        long_token = "t" * 128
        self.assertParses(f"RESUME|a|{long_token}", Resume("a", long_token))

    def test_body_relayed_exactly(self):
        """A body is opaque: spaces, backslashes and case are kept."""
        self.assertParses("MSG|bob|  Hi \\n there  ", SendMessage("bob", "  Hi \\n there  "))

    def test_body_not_white_space(self):
        """A body needs one character outside White_Space; U+001C is outside it."""
        self.assertParses("MSG|bob|\x1c", SendMessage("bob", "\x1c"))
        self.assertParses("BCST| \u3000x\xa0", Broadcast(" \u3000x\xa0"))


# --------------------------------------------------------------------------
# Fields and "|"


class PipeTests(ParseMixin, SynchronousTestCase):
    def test_msg_body_may_hold_pipe(self):
        """The MSG text is the rest of the line and may contain |."""
        self.assertParses(
            "MSG|bob|are you there? a|b is fine here",
            SendMessage("bob", "are you there? a|b is fine here"),
        )

    def test_send_body_may_hold_pipe(self):
        """The SEND text is the rest of the line and may contain |."""
        self.assertParses("SEND|c1|#a|x||y|", SendMessageOnce("c1", "#a", "x||y|"))

    def test_bcst_body_may_hold_pipe(self):
        """The BCST text is the rest of the line and may contain |."""
        self.assertParses("BCST||", Broadcast("|"))
        self.assertParses("BCST|a|b|c", Broadcast("a|b|c"))

    def test_server_bodies_may_hold_pipe(self):
        """The last field of R, C, H, ERR and BYE may contain |."""
        cases = [
            ("R|bob|43|a|b", DirectMessage("bob", 43, "a|b")),
            ("C|#a|bob|44|a|b|", RoomMessage("#a", "bob", 44, "a|b|")),
            (
                "H|bob|45|alice|2026-11-22T09:30:00.123Z|x|y",
                HistoryLine("bob", 45, "alice", "2026-11-22T09:30:00.123Z", "x|y"),
            ),
            ("ERR|MSG|404|no such user|bob", Err("MSG", 404, "no such user|bob")),
            ("BYE|503|a|b", Bye(503, "a|b")),
        ]
        for line, message in cases:
            self.assertEqual(parse_server_line(line), message, line)
            self.assertEqual(message.to_line(), line)

    def test_no_other_field_holds_pipe(self):
        """A | anywhere but in a body adds a field, and the line is malformed."""
        for line, verb in [
            ("WHO|x", "WHO"),
            ("JOIN|#a|b", "JOIN"),
            ("PING|a|b", "PING"),
            ("NAME|Al|ice", "NAME"),
            ("LOGIN|alice|pass|word", "LOGIN"),
            ("PASSWD|a|b|c", "PASSWD"),
            ("USR|alice|pw|Alice|Liddell", "USR"),
            ("ACK|1|2", "ACK"),
        ]:
            self.assertMalformed(line, verb)

    def test_trailing_pipe_is_a_field(self):
        """A trailing | adds an empty field: WHO| is malformed, PING| is not."""
        self.assertMalformed("WHO|", "WHO")
        self.assertMalformed("QUIT|", "QUIT")
        self.assertMalformed("JOIN|#a|", "JOIN")
        self.assertParses("PING|", Ping(""))

    def test_to_line_refuses_pipe_outside_body(self):
        """Formatting a | into a field that is not a body is our bug, not a line."""
        for message in [
            CreateAccount("a", "p|w", "n"),
            CreateAccount("a", "pw", "n|x"),
            Login("a", "p|w"),
            SetPassword("a|b", "c"),
            LookUpUser("a|b"),
            Join("#a|b"),
            SendMessage("a|b", "x"),
            SendMessageOnce("c|1", "b", "x"),
            History("a|b", 1),
            SetDisplayName("a|b"),
            Ping("a|b"),
            Ok("WHO", ("a|b",)),
            Ok("W|HO"),
            Err("M|SG", 400, "x"),
            Hello(1, "a|b"),
            DirectMessage("a|b", 1, "x"),
            RoomMessage("#a", "b|c", 1, "x"),
            HistoryLine("a", 1, "b|c", "t", "x"),
            Delivered(1, "a|b", "t"),
            UserOnline("a|b"),
            UserOffline("a|b"),
            MemberJoined("#a", "b|c"),
            MemberParted("#a|b", "c"),
        ]:
            self.assertRaises(LocalProtocolError, message.to_line)


# --------------------------------------------------------------------------
# Client commands: structure (MalformedLine) and values (InvalidValue)


class StructureTests(ParseMixin, SynchronousTestCase):
    def test_unknown_verb(self):
        """An unknown verb gets ERR|?|400."""
        e = self.assertMalformed("FOO|bar", "?")
        self.assertTrue(e.to_err().to_line().startswith("ERR|?|400|"))
        self.assertMalformed("WHOM", "?")
        self.assertMalformed(" WHO", "?")
        self.assertMalformed("R|bob|1|hi", "?")

    def test_empty_verb(self):
        """An empty verb is unknown: ERR|?|400."""
        self.assertMalformed("", "?")
        self.assertMalformed("|", "?")
        self.assertMalformed("|WHO", "?")

    def test_wrong_field_count(self):
        """Each verb takes only the field counts its row shows; others are 400."""
        for verb, forms in VALID_FIELDS.items():
            counts = {len(fields) for fields in forms}
            example = max(forms, key=len)
            for count in range(0, 7):
                if count in counts or (verb in BODY_VERBS and count > max(counts)):
                    continue
                fields = (example + ["x"] * count)[:count]
                self.assertMalformed(line_of(verb, fields), verb)

    def test_field_count_checked_before_values(self):
        """A wrong field count is malformed even when the values are bad too."""
        self.assertMalformed("JOIN|no room|x", "JOIN")
        self.assertMalformed("ACK|zero|1", "ACK")
        self.assertMalformed("HISTORY|!|0|sideways", "HISTORY")

    def test_error_verb_is_upper_case(self):
        """An error names the verb in upper case, however it was typed."""
        self.assertMalformed("who|x", "WHO")
        self.assertInvalid("join|nohash", "JOIN")

    def test_error_reply(self):
        """A RemoteProtocolError is answered ERR|VERB|code|reason."""
        e = self.assertInvalid("ACK|0", "ACK")
        self.assertEqual(e.to_err(), Err("ACK", 400, e.reason))
        self.assertEqual(e.to_err().to_line(), f"ERR|ACK|400|{e.reason}")
        self.assertTrue(e.reason)

    def test_verb_of(self):
        """verb_of names the upper-case verb of a known command, else ?."""
        self.assertEqual(verb_of("msg|x"), "MSG")
        self.assertEqual(verb_of("WHO|too|many"), "WHO")
        self.assertEqual(verb_of("PING"), "PING")
        self.assertEqual(verb_of("nope|x"), "?")
        self.assertEqual(verb_of(""), "?")
        self.assertEqual(verb_of("|MSG"), "?")
        self.assertEqual(verb_of("pa\xdfwd|a|b"), "?")


class ValueTests(ParseMixin, SynchronousTestCase):
    def test_username_too_long(self):
        """A username has at most 32 characters."""
        self.assertInvalid("WHOIS|" + "a" * 33, "WHOIS")
        self.assertInvalid("LOGIN|" + "a" * 33 + "|pw", "LOGIN")

    def test_username_bad_characters(self):
        """A username has only A-Z a-z 0-9 _ . - (and at least one)."""
        for name in ("", "a b", "a#b", "#a", "\xe9t\xe9", "a\tb", "a\n", "\u212a", "a+b"):
            self.assertInvalid(f"WHOIS|{name}", "WHOIS")
        self.assertInvalid("USR|a!|password|Name", "USR")
        self.assertInvalid(f"RESUME|a b|{TOKEN}", "RESUME")
        self.assertInvalid("MSG|a b|hi", "MSG")

    def test_room_needs_hash(self):
        """A room name starts with #."""
        self.assertInvalid("JOIN|general", "JOIN")
        self.assertInvalid("PART|general", "PART")
        self.assertInvalid("MEMBERS|general", "MEMBERS")

    def test_room_too_long(self):
        """A room name has 1-32 characters after the #."""
        self.assertInvalid("JOIN|#" + "a" * 33, "JOIN")
        self.assertInvalid("JOIN|#", "JOIN")
        self.assertInvalid("MSG|#|hi", "MSG")

    def test_room_bad_characters(self):
        """A room name has only a-z 0-9 _ - after the #, in ASCII."""
        for room in ("#a.b", "#a b", "##a", "#\xe9", "#a#", "#\u212a", "#a\n"):
            self.assertInvalid(f"JOIN|{room}", "JOIN")
        self.assertInvalid("HISTORY|#a.b|5", "HISTORY")
        self.assertInvalid("SEND|c|#a!|hi", "SEND")

    def test_display_name_empty(self):
        """A display name that is empty once stripped is refused."""
        self.assertInvalid("NAME|", "NAME")
        self.assertInvalid("NAME|   ", "NAME")
        self.assertInvalid("USR|a|pw| ", "USR")

    def test_display_name_too_long(self):
        """A display name has at most 64 characters."""
        self.assertInvalid("NAME|" + "n" * 65, "NAME")

    def test_display_name_control_character(self):
        """A display name has no control character (Cc: C0, DEL, C1; tab too)."""
        for char in ("\t", "\x00", "\x1b", "\x7f", "\x85", "\x9f"):
            self.assertInvalid(f"NAME|Al{char}ice", "NAME")
        # Only spaces are stripped, so a surrounding tab is still refused.
        self.assertInvalid("NAME|\tAlice", "NAME")

    def test_password_too_long(self):
        """A password has at most 128 characters."""
        self.assertInvalid("LOGIN|a|" + "p" * 129, "LOGIN")
        self.assertInvalid("PASSWD|old|" + "p" * 129, "PASSWD")

    def test_password_empty(self):
        """A password has at least one character."""
        self.assertInvalid("LOGIN|a|", "LOGIN")
        self.assertInvalid("USR|a||Name", "USR")
        self.assertInvalid("PASSWD||new", "PASSWD")

    def test_password_control_character(self):
        """A password has no control character."""
        for char in ("\t", "\x00", "\x7f", "\x85"):
            self.assertInvalid(f"LOGIN|a|pass{char}word", "LOGIN")
        self.assertInvalid("PASSWD|old\x01|new", "PASSWD")

    def test_body_empty(self):
        """A body must not be empty."""
        self.assertInvalid("MSG|bob|", "MSG")
        self.assertInvalid("SEND|c1|bob|", "SEND")
        self.assertInvalid("BCST|", "BCST")

    def test_body_only_white_space(self):
        """A body made only of Unicode White_Space is empty."""
        for body in (
            " ",
            "\t",
            " \x0b\x0c\r",
            "\xa0",
            "\u3000",
            "\u2028",
            "\x85",
            "\u1680\u2000\u200a\u2029\u202f\u205f",
        ):
            self.assertInvalid(f"MSG|bob|{body}", "MSG")
            self.assertInvalid(f"SEND|c1|#a|{body}", "SEND")
            self.assertInvalid(f"BCST|{body}", "BCST")

    def test_body_white_space_is_unicode_not_isspace(self):
        """U+001C-U+001F are not White_Space (though str.isspace says so)."""
        for char in "\x1c\x1d\x1e\x1f":
            self.assertParses(f"BCST|{char}", Broadcast(char))
        # And zero-width space, U+200B, is not White_Space either.
        self.assertParses("BCST|\u200b", Broadcast("\u200b"))

    def test_client_id_too_long(self):
        """A client_id has at most 64 characters."""
        self.assertInvalid("SEND|" + "k" * 65 + "|bob|hi", "SEND")

    def test_client_id_bad_characters(self):
        """A client_id has only A-Z a-z 0-9 _ - (and at least one)."""
        for client_id in ("", "a.b", "a b", "a#", "\xe9"):
            self.assertInvalid(f"SEND|{client_id}|bob|hi", "SEND")

    def test_ack_msgid(self):
        """An ACK names a positive integer message id."""
        for msgid in ("", "x", "0", "-1", "+1", "1.0", " 1", "01", "\u0663", "\xb2"):
            self.assertInvalid(f"ACK|{msgid}", "ACK")

    def test_history_limit(self):
        """The HISTORY limit is an integer in 1-500."""
        for limit in ("0", "501", "x", "", "-1", "1e2", "010", "9" * 30):
            self.assertInvalid(f"HISTORY|bob|{limit}", "HISTORY")
            self.assertInvalid(f"HISTORY|bob|{limit}|after|0", "HISTORY")

    def test_history_direction(self):
        """The cursor direction is exactly lower-case before or after."""
        for direction in ("BEFORE", "After", "", "since", " before", "before "):
            self.assertInvalid(f"HISTORY|bob|10|{direction}|5", "HISTORY")

    def test_history_cursor(self):
        """The cursor is a message id, or 0."""
        for cursor in ("x", "", "-1", "1.5", "01"):
            self.assertInvalid(f"HISTORY|bob|10|before|{cursor}", "HISTORY")
            self.assertInvalid(f"HISTORY|bob|10|after|{cursor}", "HISTORY")

    def test_history_target(self):
        """The HISTORY target is a username or a room."""
        self.assertInvalid("HISTORY|a b|10", "HISTORY")
        self.assertInvalid("HISTORY||10", "HISTORY")

    def test_resume_with_malformed_token_parses(self):
        """A malformed token is a bad token (401, a failed login), not a parse error."""
        for token in ("t" * 31, "t" * 129, "", TOKEN[:-1] + ".", TOKEN[:-1] + " "):
            self.assertEqual(parse_command(f"RESUME|alice|{token}"), Resume("alice", token))

    def test_no_value_checks_on_fieldless_commands(self):
        """Commands without fields have no values to refuse."""
        for verb in ("TOKEN", "WHO", "ROOMS", "HELP", "QUIT", "PING"):
            self.assertEqual(parse_command(verb).NAME, verb)


# --------------------------------------------------------------------------
# Body escaping in the reference client


class EscapeTests(SynchronousTestCase):
    def test_escape_newline_and_backslash(self):
        """A newline is written \\n and a backslash \\\\."""
        self.assertEqual(escape_body("a\nb\\c"), "a\\nb\\\\c")
        self.assertNotIn("\n", escape_body("\n\n"))

    def test_unescape_inverts_escape(self):
        """unescape_body(escape_body(text)) is text."""
        for text in ("", "plain", "a\nb", "\\", "\\n", "\\\n\\", "x\\\\n\ny", "\n"):
            self.assertEqual(unescape_body(escape_body(text)), text, repr(text))

    def test_unescape_lone_backslash(self):
        """A backslash not followed by n or \\ is kept as it is."""
        self.assertEqual(unescape_body("a\\tb\\"), "a\\tb\\")

    @reproducible
    @given(st.text())
    def test_escape_round_trip(self, text):
        """Escaping gives one line, and unescaping it gives the text back."""
        escaped = escape_body(text)
        self.assertNotIn("\n", escaped)
        self.assertEqual(unescape_body(escaped), text)


# --------------------------------------------------------------------------
# Server lines


class ServerLineTests(ParseMixin, SynchronousTestCase):
    def assertServerLine(self, line, message):
        self.assertEqual(parse_server_line(line), message, line)
        self.assertEqual(message.to_line(), line)

    def test_hello(self):
        """HELLO|version|server name greets a new connection."""
        self.assertServerLine("HELLO|1|messenger", Hello(1, "messenger"))

    def test_ok(self):
        """OK|VERB|fields... is a success reply, with any number of fields."""
        self.assertServerLine("OK|QUIT", Ok("QUIT"))
        self.assertServerLine("OK|MSG|41", Ok("MSG", ("41",)))
        self.assertServerLine("OK|PING|", Ok("PING", ("",)))
        self.assertServerLine("OK|WHO|alice|bob|carol", Ok("WHO", ("alice", "bob", "carol")))
        self.assertEqual(wire.ok("MSG", "41"), Ok("MSG", ("41",)))

    def test_err(self):
        """ERR|VERB|code|reason is a failure reply."""
        self.assertServerLine("ERR|?|400|unknown command", Err("?", 400, "unknown command"))
        self.assertServerLine(
            "ERR|LOGIN|401|bad credentials", wire.err("LOGIN", 401, "bad credentials")
        )

    def test_events(self):
        """R, C, DLV, ON, OFF, JOINED, PARTED and BYE are events."""
        cases = [
            ("R|bob|43|yes!", DirectMessage("bob", 43, "yes!")),
            ("C|#general|bob|44|hi", RoomMessage("#general", "bob", 44, "hi")),
            (
                "DLV|41|bob|2026-11-22T09:30:00.123Z",
                Delivered(41, "bob", "2026-11-22T09:30:00.123Z"),
            ),
            ("ON|bob", UserOnline("bob")),
            ("OFF|bob", UserOffline("bob")),
            ("JOINED|#a|bob", MemberJoined("#a", "bob")),
            ("PARTED|#a|bob", MemberParted("#a", "bob")),
            ("BYE|200|goodbye", wire.BYE_GOODBYE),
        ]
        for line, message in cases:
            self.assertServerLine(line, message)
            self.assertIsInstance(message, EVENTS)

    def test_history_line(self):
        """H|target|msgid|sender|timestamp|text is one history line."""
        self.assertServerLine(
            "H|#a|7|bob|2026-11-22T09:30:00.123Z|hi",
            HistoryLine("#a", 7, "bob", "2026-11-22T09:30:00.123Z", "hi"),
        )

    def test_fixed_replies(self):
        """The fixed BYE and ERR lines are the ones docs/protocol.md gives."""
        self.assertEqual(wire.BYE_SERVER_FULL.to_line(), "BYE|503|server full")
        self.assertEqual(wire.BYE_SHUTDOWN.to_line(), "BYE|503|server shutting down")
        self.assertEqual(wire.BYE_IDLE.to_line(), "BYE|408|idle timeout")
        self.assertEqual(wire.BYE_TOO_SLOW.to_line(), "BYE|408|too slow")
        self.assertEqual(wire.BYE_TAKEOVER.to_line(), "BYE|409|logged in elsewhere")
        self.assertEqual(wire.BYE_LINE_TOO_LONG.to_line(), "BYE|413|line too long")
        self.assertEqual(wire.BYE_TOO_MANY_FAILURES.to_line(), "BYE|429|too many failed logins")
        self.assertEqual(wire.ERR_LINE_TOO_LONG.to_line(), "ERR|?|413|line too long")
        self.assertEqual(wire.InvalidUtf8().to_err().to_line(), "ERR|?|400|invalid UTF-8")

    def test_server_unknown_verb(self):
        """A server line whose verb is unknown (or not upper case) is malformed."""
        for line in ("", "NOPE|x", "|OK", "ok|MSG|1", "ACK|1"):
            self.assertRejected(line, MalformedLine, "?", parse_server_line)

    def test_server_wrong_field_count(self):
        """Server lines take their field counts too."""
        for line, verb in [
            ("OK", "OK"),
            ("HELLO|1", "HELLO"),
            ("HELLO|1|a|b", "HELLO"),
            ("ERR|MSG|400", "ERR"),
            ("R|bob|1", "R"),
            ("C|#a|bob|1", "C"),
            ("H|#a|1|bob|t", "H"),
            ("DLV|1|bob", "DLV"),
            ("DLV|1|bob|t|x", "DLV"),
            ("ON", "ON"),
            ("ON|a|b", "ON"),
            ("OFF|a|b", "OFF"),
            ("JOINED|#a", "JOINED"),
            ("PARTED|#a|b|c", "PARTED"),
            ("BYE|200", "BYE"),
        ]:
            self.assertRejected(line, MalformedLine, verb, parse_server_line)

    def test_server_numbers(self):
        """Versions, codes and message ids are ASCII decimal numbers."""
        for line in (
            "HELLO|x|messenger",
            "HELLO|\xb2|messenger",
            "ERR|MSG|4o4|x",
            "ERR|MSG|\xb2|x",
            "ERR|MSG|\u0663\u0660\u0660|x",
            "BYE|-1|x",
            "BYE|" + "9" * 5000 + "|x",
            "R|bob|0|x",
            "R|bob|x|y",
            "C|#a|b|-1|x",
            "H|#a|01|b|t|x",
            "DLV||bob|t",
        ):
            self.assertRaises(MalformedLine, parse_server_line, line)


# --------------------------------------------------------------------------
# Properties


def _text(exclude="", **kwargs):
    """Text of any characters but surrogates, line ends and `exclude`."""
    alphabet = st.characters(exclude_categories=("Cs",), exclude_characters="\n\r" + exclude)
    return st.text(alphabet, **kwargs)


usernames = st.from_regex(r"[a-z0-9_.\-]{1,32}", fullmatch=True)
rooms = st.from_regex(r"#[a-z0-9_\-]{1,32}", fullmatch=True)
targets = usernames | rooms
passwords = st.text(
    st.characters(exclude_categories=("Cc", "Cs"), exclude_characters="|"),
    min_size=1,
    max_size=128,
)
display_names = (
    st.text(
        st.characters(exclude_categories=("Cc", "Cs"), exclude_characters="|"),
        min_size=1,
        max_size=64,
    )
    .map(lambda s: s.strip(" "))
    .filter(bool)
)
bodies = st.builds(
    lambda before, char, after: before + char + after,
    _text(max_size=20),
    st.characters(exclude_categories=["Cs"], exclude_characters="\n\r").filter(
        lambda c: c not in wire.WHITE_SPACE
    ),
    _text(max_size=20),
)
client_ids = st.from_regex(r"[A-Za-z0-9_\-]{1,64}", fullmatch=True)
tokens = st.from_regex(r"[A-Za-z0-9_\-]{32,128}", fullmatch=True)
msgids = st.integers(1, 2**63 - 1)
histories = st.one_of(
    st.builds(History, targets, st.integers(1, 500)),
    st.builds(
        History,
        targets,
        st.integers(1, 500),
        st.sampled_from(["before", "after"]),
        st.integers(0, 2**63 - 1),
    ),
)

commands = st.one_of(
    st.builds(CreateAccount, usernames, passwords, display_names),
    st.builds(Login, usernames, passwords),
    st.builds(NewToken),
    st.builds(Resume, usernames, tokens),
    st.builds(SendMessage, targets, bodies),
    st.builds(SendMessageOnce, client_ids, targets, bodies),
    st.builds(Broadcast, bodies),
    st.builds(Acknowledge, msgids),
    st.builds(WhoIsOnline),
    st.builds(LookUpUser, usernames),
    st.builds(Join, rooms),
    st.builds(Part, rooms),
    st.builds(MyRooms),
    st.builds(RoomMembers, rooms),
    histories,
    st.builds(SetDisplayName, display_names),
    st.builds(SetPassword, passwords, passwords),
    st.builds(Ping, st.none() | _text(exclude="|")),
    st.builds(Help),
    st.builds(Quit),
)

fields = _text(exclude="|", max_size=10)
server_verbs = st.sampled_from(CLIENT_VERBS + ["?"])
timestamps = st.from_regex(
    r"20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9]\.[0-9]{3}Z",
    fullmatch=True,
)
codes = st.integers(100, 599)
reasons = _text(max_size=30)

server_messages = st.one_of(
    st.builds(Hello, st.integers(0, 10**6), fields),
    st.builds(Ok, server_verbs, st.lists(fields, max_size=5).map(tuple)),
    st.builds(Err, server_verbs, codes, reasons),
    st.builds(HistoryLine, targets, msgids, usernames, timestamps, bodies),
    st.builds(DirectMessage, usernames, msgids, bodies),
    st.builds(RoomMessage, rooms, usernames, msgids, bodies),
    st.builds(Delivered, msgids, usernames, timestamps),
    st.builds(UserOnline, usernames),
    st.builds(UserOffline, usernames),
    st.builds(MemberJoined, rooms, usernames),
    st.builds(MemberParted, rooms, usernames),
    st.builds(Bye, codes, reasons),
)

#: Pieces that lines are made of, so random lines often get past the verb.
fragments = st.one_of(
    st.sampled_from(
        CLIENT_VERBS
        + [v.lower() for v in CLIENT_VERBS]
        + list(wire.SERVER_MESSAGES)
        + [
            "|",
            "|",
            "|",
            "#",
            "#general",
            "before",
            "after",
            "BEFORE",
            "0",
            "1",
            "500",
            "501",
            "-1",
            "9" * 25,
            " ",
            "\t",
            "\xa0",
            "\u3000",
            "\x85",
            "\xb2",
            "\u0663",
            "\u212a",
            "\xdf",
            "\u017f",
            "\ufb06",
            "\\",
            "\\n",
            TOKEN,
            "2026-11-22T09:30:00.123Z",
            "alice",
            "Bob",
        ]
    ),
    st.text(max_size=3),
    st.from_regex(r"[0-9]{1,4}", fullmatch=True),
)
_field_text = st.lists(fragments, min_size=1, max_size=3).map("".join)
#: (verb, field count) pairs: every count each verb of both directions takes.
_shapes = sorted(
    {(verb.upper(), len(f)) for verb, forms in VALID_FIELDS.items() for f in forms}
    | {
        (name, count)
        for name, cls in wire.SERVER_MESSAGES.items()
        for count in list(cls.FIELD_COUNTS)[:4]
    }
)
fragment_lines = st.one_of(
    # Lines of the right shape, with fields made of pieces: many get past
    # the structure check and reach the value checks.
    st.sampled_from(_shapes).flatmap(
        lambda shape: st.lists(_field_text, min_size=shape[1], max_size=shape[1]).map(
            lambda fields: "|".join([shape[0]] + fields)
        )
    ),
    # Lines of any shape.
    st.lists(fragments, max_size=8).map("".join),
)


class RoundTripProperties(SynchronousTestCase):
    @reproducible
    @given(commands)
    def test_command_round_trip(self, command):
        """Formatting a valid command then parsing the line gives it back."""
        self.assertEqual(parse_command(command.to_line()), command)

    @reproducible
    @given(commands)
    def test_command_verb_case(self, command):
        """A command parses the same whatever the case of its verb."""
        line = command.to_line()
        verb, sep, rest = line.partition("|")
        self.assertEqual(parse_command(verb.lower() + sep + rest), command)

    @reproducible
    @given(st.from_regex(r"[A-Za-z0-9_.\-]{1,32}", fullmatch=True), passwords)
    def test_username_canonical(self, username, password):
        """Any spelling of a username parses to its lower-case form."""
        command = parse_command(f"LOGIN|{username}|{password}")
        self.assertEqual(command, Login(username.lower(), password))

    @reproducible
    @given(server_messages)
    def test_server_message_round_trip(self, message):
        """Formatting a server message then parsing the line gives it back."""
        self.assertEqual(parse_server_line(message.to_line()), message)


class RobustnessProperties(SynchronousTestCase):
    def check_command(self, line):
        try:
            command = parse_command(line)
        except RemoteProtocolError as e:
            self.assertIsInstance(e, (MalformedLine, InvalidValue))
            self.assertEqual(e.code, 400)
            # The reply to a bad line names the verb verb_of finds in it.
            self.assertEqual(e.verb, verb_of(line))
            self.assertEqual(parse_server_line(e.to_err().to_line()), e.to_err())
        else:
            # A parsed command's canonical line is a fixed point.
            self.assertEqual(parse_command(command.to_line()), command)
            self.assertEqual(command.NAME, verb_of(line))

    def check_server_line(self, line):
        try:
            message = parse_server_line(line)
        except RemoteProtocolError as e:
            self.assertIsInstance(e, MalformedLine)
            self.assertIn(e.verb, ["?"] + list(wire.SERVER_MESSAGES))
        else:
            self.assertEqual(parse_server_line(message.to_line()), message)

    @reproducible
    @given(st.text())
    def test_parse_command_any_text(self, line):
        """parse_command fails on any text only with RemoteProtocolError."""
        self.check_command(line)

    @reproducible
    @given(fragment_lines)
    def test_parse_command_fragments(self, line):
        """parse_command fails on lines of protocol pieces only with RemoteProtocolError."""
        self.check_command(line)

    @reproducible
    @given(st.text())
    def test_parse_server_line_any_text(self, line):
        """parse_server_line fails on any text only with RemoteProtocolError."""
        self.check_server_line(line)

    @reproducible
    @given(fragment_lines)
    def test_parse_server_line_fragments(self, line):
        """parse_server_line fails on lines of protocol pieces only with RemoteProtocolError."""
        self.check_server_line(line)


def _outcome(parse, line):
    """What parsing ``line`` gives: the message, or the error's every detail."""
    try:
        return parse(line)
    except RemoteProtocolError as e:
        return (type(e), e.verb, e.code, e.reason)


#: For each verb with a fast path: for each field, values that are valid or
#: invalid in each way that field can be.
_targets = ["bob", "Bob", "#general", "#Ok", "#", "b b", "\u212a", ""]
_bodies = ["hi", "hi|there", " x", " ", "\u3000", "\x85\t", "", "x\x1f"]
_ids = ["1", "12", "0", "012", "\xb2", "-1", "9" * 20, ""]
_names = ["bob", "b|b", "", "c-1", "c 1"]
_FAST_SHAPES = {
    "MSG": (_targets, _bodies),
    "SEND": (_names, _targets, _bodies),
    "ACK": (_ids,),
    "R": (_names, _ids, _bodies),
    "C": (_targets, _names, _ids, _bodies),
    "DLV": (_ids, _names, _names),
    "OK": (["MSG", "WHO"], _ids),
}


def _fast_path_lines():
    """Every combination of those values, with each verb also in lower case,
    with a field too few and a field too many."""
    for verb, shape in _FAST_SHAPES.items():
        for fields in itertools.product(*shape):
            for spelling in (verb, verb.lower()):
                line = "|".join([spelling, *fields])
                yield line
                yield line + "|x"
                yield line.rpartition("|")[0]


class FastPathProperties(SynchronousTestCase):
    """The fast paths for the hottest lines are only a shortcut: whatever the
    line, they give what the declared fields give."""

    @reproducible
    @given(st.one_of(fragment_lines, commands.map(lambda c: c.to_line())))
    def test_command_fast_path_is_the_declared_path(self, line):
        """parse_command gives what the declared fields give, for any line."""
        self.assertEqual(_outcome(parse_command, line), _outcome(wire.parse_command_declared, line))

    @reproducible
    @given(st.one_of(fragment_lines, server_messages.map(lambda m: m.to_line())))
    def test_server_fast_path_is_the_declared_path(self, line):
        """parse_server_line gives what the declared fields give, for any line."""
        self.assertEqual(
            _outcome(parse_server_line, line), _outcome(wire.parse_server_line_declared, line)
        )

    def test_fast_paths_every_combination(self):
        """Every combination of good and bad fields of the hot verbs parses the
        same on the fast path as through the declared fields."""
        for line in _fast_path_lines():
            self.assertEqual(
                _outcome(parse_command, line), _outcome(wire.parse_command_declared, line), line
            )
            self.assertEqual(
                _outcome(parse_server_line, line),
                _outcome(wire.parse_server_line_declared, line),
                line,
            )

    def test_fast_paths_taken(self):
        """The hottest lines do take the fast path (else it would be dead code)."""
        from messenger.wire import commands, server

        for fast, rest in [
            (commands._fast_msg, "bob|hi"),
            (commands._fast_send, "c1|#a|hi"),
            (commands._fast_ack, "12"),
            (server._fast_r, "bob|1|hi"),
            (server._fast_c, "#a|bob|1|hi"),
            (server._fast_dlv, "1|bob|2026-11-22T09:30:00.123Z"),
        ]:
            self.assertIsNotNone(fast(rest), rest)
