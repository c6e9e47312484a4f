"""The Messenger wire protocol, version 1, without any I/O.

This module turns one decoded line into a typed, frozen command (or a
:class:`RemoteProtocolError` saying what the peer got wrong) and turns
replies and events back into lines.  It imports nothing from Twisted, so the
server, the client and the tests all share one parser.

Parsing happens in two stages, because PROTOCOL.md rule 4 needs them apart:

1. structure: is the verb known, and is the field count one the verb takes?
   A failure here is a :class:`MalformedLine` (always answered with 400).
2. values: is the username a username, the limit a number, ...?  A failure
   here is an :class:`InvalidValue`; before login the server answers a
   command that needs login with 401 instead, since values are only checked
   after login.

A verb whose last field is a message body is split with a maxsplit, so the
body is the rest of the line and may hold ``|``.  No other field may.

The module is modelled on Synapse's ``replication/tcp/commands.py`` (one
class per verb with ``NAME``, ``from_fields``/``to_line`` and a command map
per direction) and on h11's error split: :class:`RemoteProtocolError` is the
peer's mistake, :class:`LocalProtocolError` is ours.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, TypeVar

PROTOCOL_VERSION = 1
DELIMITER = b"\n"

# Limits fixed by the protocol (the ones the server may change are options).
USERNAME_MAX = 32
ROOM_NAME_MAX = 32
DISPLAY_NAME_MAX = 64
PASSWORD_MAX = 128
CLIENT_ID_MAX = 64
HISTORY_LIMIT_MAX = 500
TOKEN_MIN, TOKEN_MAX = 32, 128

GENERAL_ROOM = "#general"

_USERNAME_RE = re.compile(r"[A-Za-z0-9_.\-]{1,%d}\Z" % USERNAME_MAX)
_ROOM_RE = re.compile(r"#[a-z0-9_\-]{1,%d}\Z" % ROOM_NAME_MAX)
_CLIENT_ID_RE = re.compile(r"[A-Za-z0-9_\-]{1,%d}\Z" % CLIENT_ID_MAX)
_TOKEN_RE = re.compile(r"[A-Za-z0-9_\-]{%d,%d}\Z" % (TOKEN_MIN, TOKEN_MAX))
_MSGID_RE = re.compile(r"[1-9][0-9]{0,18}\Z")
_COUNT_RE = re.compile(r"(0|[1-9][0-9]{0,18})\Z")

# Unicode's White_Space property, exactly.  str.isspace() is not the same set:
# it also accepts U+001C..U+001F, which are not White_Space.
WHITE_SPACE = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
# Unicode category Cc: C0 controls, DEL and C1 controls.
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f]")


class RemoteProtocolError(Exception):
    """The peer sent something the protocol does not allow.

    ``verb`` is the upper-case verb the reply names, or ``"?"`` when even the
    verb could not be read; the server answers ``ERR|verb|code|reason``.
    """

    def __init__(self, verb: str, code: int, reason: str) -> None:
        super().__init__(f"{verb} {code} {reason}")
        self.verb = verb
        self.code = code
        self.reason = reason

    def to_err(self) -> Err:
        return Err(self.verb, self.code, self.reason)


class MalformedLine(RemoteProtocolError):
    """Unknown verb or wrong field count (rule 5): always 400."""

    def __init__(self, verb: str, reason: str) -> None:
        super().__init__(verb, 400, reason)


class InvalidValue(RemoteProtocolError):
    """The line is well formed but a value is not acceptable: 400."""

    def __init__(self, verb: str, reason: str) -> None:
        super().__init__(verb, 400, reason)


class LocalProtocolError(Exception):
    """We tried to send something the protocol does not allow: our bug."""


# --------------------------------------------------------------------------
# Values


def canonical_username(value: str) -> str:
    """Return the canonical (lower-case) form of a username.

    Raises ValueError if it is not a username.
    """
    if not _USERNAME_RE.match(value):
        raise ValueError("invalid username")
    return value.lower()


def is_room(target: str) -> bool:
    return target.startswith("#")


def canonical_room(value: str) -> str:
    """Return the canonical (lower-case) form of a room name."""
    lowered = value.lower()
    # isascii(): str.lower() maps KELVIN SIGN (U+212A) to an ASCII "k".
    if not value.isascii() or not _ROOM_RE.match(lowered):
        raise ValueError("invalid room name")
    return lowered


def canonical_target(value: str) -> str:
    """A message or history target: a room or a username."""
    if is_room(value):
        return canonical_room(value)
    return canonical_username(value)


def clean_display_name(value: str) -> str:
    """Strip surrounding spaces and check what remains."""
    stripped = value.strip(" ")
    if not 1 <= len(stripped) <= DISPLAY_NAME_MAX:
        raise ValueError(f"display name must be 1-{DISPLAY_NAME_MAX} characters")
    if "|" in stripped or _CONTROL_RE.search(stripped):
        raise ValueError("display name has a forbidden character")
    return stripped


def check_password(value: str) -> str:
    if not 1 <= len(value) <= PASSWORD_MAX:
        raise ValueError(f"password must be 1-{PASSWORD_MAX} characters")
    if "|" in value or _CONTROL_RE.search(value):
        raise ValueError("password has a forbidden character")
    return value


def check_body(value: str) -> str:
    """A message body must hold something other than white space."""
    for char in value:
        if char not in WHITE_SPACE:
            return value
    raise ValueError("empty text")


def check_client_id(value: str) -> str:
    if not _CLIENT_ID_RE.match(value):
        raise ValueError("bad client_id")
    return value


def check_token(value: str) -> str:
    if not _TOKEN_RE.match(value):
        raise ValueError("bad token")
    return value


def parse_msgid(value: str) -> int:
    if not _MSGID_RE.match(value):
        raise ValueError("bad message id")
    return int(value)


def escape_body(text: str) -> str:
    """How the reference client writes a multi-line text on one line."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def unescape_body(body: str) -> str:
    """Inverse of :func:`escape_body`; a lone backslash stays as it is."""
    out = []
    i = 0
    while i < len(body):
        char = body[i]
        if char == "\\" and i + 1 < len(body) and body[i + 1] in "\\n":
            out.append("\n" if body[i + 1] == "n" else "\\")
            i += 2
        else:
            out.append(char)
            i += 1
    return "".join(out)


# --------------------------------------------------------------------------
# Line splitting shared by both directions


_M = TypeVar("_M", bound="Message")


class Message:
    """One line of the protocol, in either direction."""

    NAME: ClassVar[str]
    # How many fields may follow the verb.
    FIELD_COUNTS: ClassVar[Sequence[int]]
    # True when the last field is a message body (the rest of the line).
    BODY: ClassVar[bool] = False

    @classmethod
    def from_fields(cls: type[_M], fields: list) -> _M:
        raise NotImplementedError

    def to_fields(self) -> tuple[str, ...]:
        raise NotImplementedError

    def to_line(self) -> str:
        fields = self.to_fields()
        if not fields:
            return self.NAME
        for field in fields[:-1] if self.BODY else fields:
            _no_pipe(field)
        line = self.NAME + "|" + "|".join(fields)
        if "\n" in line:
            # A raw LF would end the line early: the rest would be read as
            # another command.  Bodies carry newlines escaped as \n.
            raise LocalProtocolError("a field holds a line feed")
        return line


def _split(verb: str, cls: type[Message], rest: str | None) -> list:
    if rest is None:
        fields: list = []
    elif cls.BODY:
        fields = rest.split("|", max(cls.FIELD_COUNTS) - 1)
    else:
        fields = rest.split("|")
    if len(fields) not in cls.FIELD_COUNTS:
        counts = " or ".join(str(n) for n in cls.FIELD_COUNTS[:4])
        raise MalformedLine(verb, f"{verb} takes {counts} fields")
    return fields


def _no_pipe(field: str) -> str:
    if "|" in field:
        raise LocalProtocolError(f"field {field!r} holds '|'")
    return field


# --------------------------------------------------------------------------
# Commands: client to server


class Command(Message):
    #: Allowed before login (rule 4).
    BEFORE_LOGIN: ClassVar[bool] = False


def _value(verb: str, check, value: str):
    try:
        return check(value)
    except ValueError as e:
        raise InvalidValue(verb, str(e)) from None


@dataclass(frozen=True, slots=True)
class Usr(Command):
    NAME = "USR"
    FIELD_COUNTS = (3,)
    BEFORE_LOGIN = True
    username: str
    password: str
    display_name: str

    @classmethod
    def from_fields(cls, fields):
        return cls(
            _value(cls.NAME, canonical_username, fields[0]),
            _value(cls.NAME, check_password, fields[1]),
            _value(cls.NAME, clean_display_name, fields[2]),
        )

    def to_fields(self):
        return (self.username, self.password, self.display_name)


@dataclass(frozen=True, slots=True)
class Login(Command):
    NAME = "LOGIN"
    FIELD_COUNTS = (2,)
    BEFORE_LOGIN = True
    username: str
    password: str

    @classmethod
    def from_fields(cls, fields):
        return cls(
            _value(cls.NAME, canonical_username, fields[0]),
            _value(cls.NAME, check_password, fields[1]),
        )

    def to_fields(self):
        return (self.username, self.password)


@dataclass(frozen=True, slots=True)
class Token(Command):
    NAME = "TOKEN"
    FIELD_COUNTS = (0,)

    @classmethod
    def from_fields(cls, fields):
        return cls()

    def to_fields(self):
        return ()


@dataclass(frozen=True, slots=True)
class Resume(Command):
    NAME = "RESUME"
    FIELD_COUNTS = (2,)
    BEFORE_LOGIN = True
    username: str
    token: str

    @classmethod
    def from_fields(cls, fields):
        # A malformed token is not a parse error but a bad token: 401, and
        # it counts as a failed login like any other wrong token.
        return cls(_value(cls.NAME, canonical_username, fields[0]), fields[1])

    def to_fields(self):
        return (self.username, self.token)


@dataclass(frozen=True, slots=True)
class Msg(Command):
    NAME = "MSG"
    FIELD_COUNTS = (2,)
    BODY = True
    target: str
    text: str

    @classmethod
    def from_fields(cls, fields):
        return cls(
            _value(cls.NAME, canonical_target, fields[0]),
            _value(cls.NAME, check_body, fields[1]),
        )

    def to_fields(self):
        return (_no_pipe(self.target), self.text)


@dataclass(frozen=True, slots=True)
class Send(Command):
    NAME = "SEND"
    FIELD_COUNTS = (3,)
    BODY = True
    client_id: str
    target: str
    text: str

    @classmethod
    def from_fields(cls, fields):
        return cls(
            _value(cls.NAME, check_client_id, fields[0]),
            _value(cls.NAME, canonical_target, fields[1]),
            _value(cls.NAME, check_body, fields[2]),
        )

    def to_fields(self):
        return (_no_pipe(self.client_id), _no_pipe(self.target), self.text)


@dataclass(frozen=True, slots=True)
class Bcst(Command):
    NAME = "BCST"
    FIELD_COUNTS = (1,)
    BODY = True
    text: str

    @classmethod
    def from_fields(cls, fields):
        return cls(_value(cls.NAME, check_body, fields[0]))

    def to_fields(self):
        return (self.text,)


@dataclass(frozen=True, slots=True)
class Ack(Command):
    NAME = "ACK"
    FIELD_COUNTS = (1,)
    msgid: int

    @classmethod
    def from_fields(cls, fields):
        return cls(_value(cls.NAME, parse_msgid, fields[0]))

    def to_fields(self):
        return (str(self.msgid),)


@dataclass(frozen=True, slots=True)
class Who(Command):
    NAME = "WHO"
    FIELD_COUNTS = (0,)

    @classmethod
    def from_fields(cls, fields):
        return cls()

    def to_fields(self):
        return ()


@dataclass(frozen=True, slots=True)
class Whois(Command):
    NAME = "WHOIS"
    FIELD_COUNTS = (1,)
    username: str

    @classmethod
    def from_fields(cls, fields):
        return cls(_value(cls.NAME, canonical_username, fields[0]))

    def to_fields(self):
        return (self.username,)


@dataclass(frozen=True, slots=True)
class Join(Command):
    NAME = "JOIN"
    FIELD_COUNTS = (1,)
    room: str

    @classmethod
    def from_fields(cls, fields):
        return cls(_value(cls.NAME, canonical_room, fields[0]))

    def to_fields(self):
        return (self.room,)


@dataclass(frozen=True, slots=True)
class Part(Command):
    NAME = "PART"
    FIELD_COUNTS = (1,)
    room: str

    @classmethod
    def from_fields(cls, fields):
        return cls(_value(cls.NAME, canonical_room, fields[0]))

    def to_fields(self):
        return (self.room,)


@dataclass(frozen=True, slots=True)
class Rooms(Command):
    NAME = "ROOMS"
    FIELD_COUNTS = (0,)

    @classmethod
    def from_fields(cls, fields):
        return cls()

    def to_fields(self):
        return ()


@dataclass(frozen=True, slots=True)
class Members(Command):
    NAME = "MEMBERS"
    FIELD_COUNTS = (1,)
    room: str

    @classmethod
    def from_fields(cls, fields):
        return cls(_value(cls.NAME, canonical_room, fields[0]))

    def to_fields(self):
        return (self.room,)


BEFORE = "before"
AFTER = "after"


def _history_limit(value: str) -> int:
    if not _COUNT_RE.match(value) or not 1 <= int(value) <= HISTORY_LIMIT_MAX:
        raise ValueError(f"limit must be 1-{HISTORY_LIMIT_MAX}")
    return int(value)


def _history_cursor(value: str) -> int:
    if not _COUNT_RE.match(value):
        raise ValueError("bad message id")
    return int(value)


@dataclass(frozen=True, slots=True)
class History(Command):
    """``direction`` is None (newest), ``"before"`` or ``"after"``."""

    NAME = "HISTORY"
    FIELD_COUNTS = (2, 4)
    target: str
    limit: int
    direction: str | None = None
    cursor: int | None = None

    @classmethod
    def from_fields(cls, fields):
        target = _value(cls.NAME, canonical_target, fields[0])
        limit = _value(cls.NAME, _history_limit, fields[1])
        if len(fields) == 2:
            return cls(target, limit)
        if fields[2] not in (BEFORE, AFTER):
            raise InvalidValue(cls.NAME, "cursor must be 'before' or 'after'")
        return cls(target, limit, fields[2], _value(cls.NAME, _history_cursor, fields[3]))

    def to_fields(self):
        if self.direction is None:
            return (self.target, str(self.limit))
        return (self.target, str(self.limit), self.direction, str(self.cursor))


@dataclass(frozen=True, slots=True)
class Name(Command):
    NAME = "NAME"
    FIELD_COUNTS = (1,)
    display_name: str

    @classmethod
    def from_fields(cls, fields):
        return cls(_value(cls.NAME, clean_display_name, fields[0]))

    def to_fields(self):
        return (_no_pipe(self.display_name),)


@dataclass(frozen=True, slots=True)
class Passwd(Command):
    NAME = "PASSWD"
    FIELD_COUNTS = (2,)
    old: str
    new: str

    @classmethod
    def from_fields(cls, fields):
        return cls(
            _value(cls.NAME, check_password, fields[0]),
            _value(cls.NAME, check_password, fields[1]),
        )

    def to_fields(self):
        return (self.old, self.new)


@dataclass(frozen=True, slots=True)
class Ping(Command):
    """``token`` is None for a bare PING, else echoed as given (even empty)."""

    NAME = "PING"
    FIELD_COUNTS = (0, 1)
    BEFORE_LOGIN = True
    token: str | None = None

    @classmethod
    def from_fields(cls, fields):
        return cls(fields[0] if fields else None)

    def to_fields(self):
        return () if self.token is None else (_no_pipe(self.token),)


@dataclass(frozen=True, slots=True)
class Help(Command):
    NAME = "HELP"
    FIELD_COUNTS = (0,)
    BEFORE_LOGIN = True

    @classmethod
    def from_fields(cls, fields):
        return cls()

    def to_fields(self):
        return ()


@dataclass(frozen=True, slots=True)
class Quit(Command):
    NAME = "QUIT"
    FIELD_COUNTS = (0,)
    BEFORE_LOGIN = True

    @classmethod
    def from_fields(cls, fields):
        return cls()

    def to_fields(self):
        return ()


#: What a client may send, by verb.
CLIENT_COMMANDS: dict[str, type[Command]] = {
    cls.NAME: cls
    for cls in (
        Usr,
        Login,
        Token,
        Resume,
        Msg,
        Send,
        Bcst,
        Ack,
        Who,
        Whois,
        Join,
        Part,
        Rooms,
        Members,
        History,
        Name,
        Passwd,
        Ping,
        Help,
        Quit,
    )
}

#: The verbs HELP lists, in the order PROTOCOL.md gives them.
HELP_TEXT = " ".join(CLIENT_COMMANDS)


def parse_command(line: str) -> Command:
    """Parse one line from a client (without its terminator).

    Raises :class:`MalformedLine` or :class:`InvalidValue`, and nothing else.
    """
    verb, sep, rest = line.partition("|")
    # isascii(): str.upper() maps e.g. "ß" to "SS" and "ſ" to "S".
    verb = verb.upper() if verb.isascii() else "?"
    cls = CLIENT_COMMANDS.get(verb)
    if cls is None:
        raise MalformedLine("?", "unknown command")
    fields = _split(verb, cls, rest if sep else None)
    return cls.from_fields(fields)


def verb_of(line: str) -> str:
    """The upper-case verb a reply to this line names, or ``"?"``."""
    verb = line.partition("|")[0]
    verb = verb.upper() if verb.isascii() else "?"
    return verb if verb in CLIENT_COMMANDS else "?"


# --------------------------------------------------------------------------
# Server to client: replies and events


def _msgid_field(value: str) -> int:
    try:
        return parse_msgid(value)
    except ValueError:
        raise MalformedLine("?", "bad message id") from None


class ServerMessage(Message):
    pass


@dataclass(frozen=True, slots=True)
class Hello(ServerMessage):
    NAME = "HELLO"
    FIELD_COUNTS = (2,)
    version: int
    server_name: str

    @classmethod
    def from_fields(cls, fields):
        if not _COUNT_RE.match(fields[0]):
            raise MalformedLine(cls.NAME, "bad version")
        return cls(int(fields[0]), fields[1])

    def to_fields(self):
        return (str(self.version), _no_pipe(self.server_name))


@dataclass(frozen=True, slots=True)
class Ok(ServerMessage):
    """``OK|VERB|fields...``; what the fields mean depends on the verb."""

    NAME = "OK"
    FIELD_COUNTS = range(1, 1_000_000)
    verb: str
    fields: tuple[str, ...] = ()

    @classmethod
    def from_fields(cls, fields):
        return cls(fields[0], tuple(fields[1:]))

    def to_fields(self):
        return (self.verb,) + tuple(_no_pipe(f) for f in self.fields)


@dataclass(frozen=True, slots=True)
class Err(ServerMessage):
    NAME = "ERR"
    FIELD_COUNTS = (3,)
    BODY = True
    verb: str
    code: int
    reason: str

    @classmethod
    def from_fields(cls, fields):
        if not _COUNT_RE.match(fields[1]):
            raise MalformedLine(cls.NAME, "bad code")
        return cls(fields[0], int(fields[1]), fields[2])

    def to_fields(self):
        return (self.verb, str(self.code), self.reason)


@dataclass(frozen=True, slots=True)
class H(ServerMessage):
    """One history line."""

    NAME = "H"
    FIELD_COUNTS = (5,)
    BODY = True
    target: str
    msgid: int
    sender: str
    timestamp: str
    text: str

    @classmethod
    def from_fields(cls, fields):
        return cls(fields[0], _msgid_field(fields[1]), fields[2], fields[3], fields[4])

    def to_fields(self):
        return (self.target, str(self.msgid), self.sender, self.timestamp, self.text)


@dataclass(frozen=True, slots=True)
class R(ServerMessage):
    """A direct message for the receiving user."""

    NAME = "R"
    FIELD_COUNTS = (3,)
    BODY = True
    sender: str
    msgid: int
    text: str

    @classmethod
    def from_fields(cls, fields):
        return cls(fields[0], _msgid_field(fields[1]), fields[2])

    def to_fields(self):
        return (self.sender, str(self.msgid), self.text)


@dataclass(frozen=True, slots=True)
class C(ServerMessage):
    """A message in a room."""

    NAME = "C"
    FIELD_COUNTS = (4,)
    BODY = True
    room: str
    sender: str
    msgid: int
    text: str

    @classmethod
    def from_fields(cls, fields):
        return cls(fields[0], fields[1], _msgid_field(fields[2]), fields[3])

    def to_fields(self):
        return (self.room, self.sender, str(self.msgid), self.text)


@dataclass(frozen=True, slots=True)
class Dlv(ServerMessage):
    NAME = "DLV"
    FIELD_COUNTS = (3,)
    msgid: int
    recipient: str
    timestamp: str

    @classmethod
    def from_fields(cls, fields):
        return cls(_msgid_field(fields[0]), fields[1], fields[2])

    def to_fields(self):
        return (str(self.msgid), self.recipient, self.timestamp)


@dataclass(frozen=True, slots=True)
class On(ServerMessage):
    NAME = "ON"
    FIELD_COUNTS = (1,)
    username: str

    @classmethod
    def from_fields(cls, fields):
        return cls(fields[0])

    def to_fields(self):
        return (self.username,)


@dataclass(frozen=True, slots=True)
class Off(ServerMessage):
    NAME = "OFF"
    FIELD_COUNTS = (1,)
    username: str

    @classmethod
    def from_fields(cls, fields):
        return cls(fields[0])

    def to_fields(self):
        return (self.username,)


@dataclass(frozen=True, slots=True)
class Joined(ServerMessage):
    NAME = "JOINED"
    FIELD_COUNTS = (2,)
    room: str
    username: str

    @classmethod
    def from_fields(cls, fields):
        return cls(fields[0], fields[1])

    def to_fields(self):
        return (self.room, self.username)


@dataclass(frozen=True, slots=True)
class Parted(ServerMessage):
    NAME = "PARTED"
    FIELD_COUNTS = (2,)
    room: str
    username: str

    @classmethod
    def from_fields(cls, fields):
        return cls(fields[0], fields[1])

    def to_fields(self):
        return (self.room, self.username)


@dataclass(frozen=True, slots=True)
class Bye(ServerMessage):
    NAME = "BYE"
    FIELD_COUNTS = (2,)
    BODY = True
    code: int
    reason: str

    @classmethod
    def from_fields(cls, fields):
        if not _COUNT_RE.match(fields[0]):
            raise MalformedLine(cls.NAME, "bad code")
        return cls(int(fields[0]), fields[1])

    def to_fields(self):
        return (str(self.code), self.reason)


#: What a server may send, by verb.
SERVER_MESSAGES: dict[str, type[ServerMessage]] = {
    cls.NAME: cls for cls in (Hello, Ok, Err, H, R, C, Dlv, On, Off, Joined, Parted, Bye)
}

#: Events may arrive at any time, between replies (rule 3).
EVENTS = (R, C, Dlv, On, Off, Joined, Parted, Bye)

Event = R | C | Dlv | On | Off | Joined | Parted | Bye


def parse_server_line(line: str) -> ServerMessage:
    """Parse one line from a server (for clients).  Raises MalformedLine."""
    verb, sep, rest = line.partition("|")
    cls = SERVER_MESSAGES.get(verb)
    if cls is None:
        raise MalformedLine("?", "unknown server message")
    return cls.from_fields(_split(verb, cls, rest if sep else None))


# Replies the server builds often, as helpers so that the reason texts stay
# in one place.


def ok(verb: str, *fields: str) -> Ok:
    return Ok(verb, tuple(fields))


def err(verb: str, code: int, reason: str) -> Err:
    return Err(verb, code, reason)


BYE_GOODBYE = Bye(200, "goodbye")
BYE_SERVER_FULL = Bye(503, "server full")
BYE_SHUTDOWN = Bye(503, "server shutting down")
BYE_STARTING = Bye(503, "server starting")
BYE_IDLE = Bye(408, "idle timeout")
BYE_TOO_SLOW = Bye(408, "too slow")
BYE_TAKEOVER = Bye(409, "logged in elsewhere")
BYE_LINE_TOO_LONG = Bye(413, "line too long")
BYE_TOO_MANY_FAILURES = Bye(429, "too many failed logins")
ERR_LINE_TOO_LONG = Err("?", 413, "line too long")
ERR_INVALID_UTF8 = Err("?", 400, "invalid UTF-8")
