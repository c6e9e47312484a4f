"""Commands: what a client may send (docs/protocol.md, Commands).

Each class names its verb and declares its fields once, as typed attributes
whose annotation carries the check (:class:`~messenger.wire.lines.Field`);
:func:`parse_command` reads a line through them.  The lines a server reads
most (``MSG``, ``SEND``, ``ACK``) first try a fast path that gives exactly
what the declared path gives, or defers to it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, ClassVar

from messenger.wire.lines import Field, Line, MalformedLine, line_map, split_fields
from messenger.wire.values import (
    _CLIENT_ID_RE,
    _MSGID_RE,
    WHITE_SPACE,
    as_is,
    canonical_room,
    canonical_target,
    canonical_username,
    check_body,
    check_client_id,
    check_direction,
    check_password,
    clean_display_name,
    parse_history_cursor,
    parse_history_limit,
    parse_msgid,
)

Username = Annotated[str, Field(canonical_username)]
Password = Annotated[str, Field(check_password)]
DisplayName = Annotated[str, Field(clean_display_name)]
Room = Annotated[str, Field(canonical_room)]
Target = Annotated[str, Field(canonical_target)]
ClientId = Annotated[str, Field(check_client_id)]
Body = Annotated[str, Field(check_body, rest_of_line=True)]
MessageId = Annotated[int, Field(parse_msgid)]
HistoryLimit = Annotated[int, Field(parse_history_limit)]
Direction = Annotated[str, Field(check_direction)]
Cursor = Annotated[int, Field(parse_history_cursor)]
#: Not checked while parsing: a malformed RESUME token is a bad token (401,
#: a failed login), and PING echoes its token as given.
Unchecked = Annotated[str, Field(as_is)]


class Command(Line):
    #: Allowed before login (docs/protocol.md#rule-4).
    BEFORE_LOGIN: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class CreateAccount(Command):
    NAME = "USR"
    BEFORE_LOGIN = True
    username: Username
    password: Password
    display_name: DisplayName


@dataclass(frozen=True, slots=True)
class Login(Command):
    NAME = "LOGIN"
    BEFORE_LOGIN = True
    username: Username
    password: Password


@dataclass(frozen=True, slots=True)
class NewToken(Command):
    NAME = "TOKEN"


@dataclass(frozen=True, slots=True)
class Resume(Command):
    NAME = "RESUME"
    BEFORE_LOGIN = True
    username: Username
    token: Unchecked


@dataclass(frozen=True, slots=True)
class SendMessage(Command):
    NAME = "MSG"
    target: Target
    text: Body


@dataclass(frozen=True, slots=True)
class SendMessageOnce(Command):
    NAME = "SEND"
    client_id: ClientId
    target: Target
    text: Body


@dataclass(frozen=True, slots=True)
class Broadcast(Command):
    NAME = "BCST"
    text: Body


@dataclass(frozen=True, slots=True)
class Acknowledge(Command):
    NAME = "ACK"
    msgid: MessageId


@dataclass(frozen=True, slots=True)
class WhoIsOnline(Command):
    NAME = "WHO"


@dataclass(frozen=True, slots=True)
class LookUpUser(Command):
    NAME = "WHOIS"
    username: Username


@dataclass(frozen=True, slots=True)
class Join(Command):
    NAME = "JOIN"
    room: Room


@dataclass(frozen=True, slots=True)
class Part(Command):
    NAME = "PART"
    room: Room


@dataclass(frozen=True, slots=True)
class MyRooms(Command):
    NAME = "ROOMS"


@dataclass(frozen=True, slots=True)
class RoomMembers(Command):
    NAME = "MEMBERS"
    room: Room


@dataclass(frozen=True, slots=True)
class History(Command):
    """``direction`` is None (newest), ``"before"`` or ``"after"``."""

    NAME = "HISTORY"
    target: Target
    limit: HistoryLimit
    direction: Direction | None = None
    cursor: Cursor | None = None


@dataclass(frozen=True, slots=True)
class SetDisplayName(Command):
    NAME = "NAME"
    display_name: DisplayName


@dataclass(frozen=True, slots=True)
class SetPassword(Command):
    NAME = "PASSWD"
    old: Password
    new: Password


@dataclass(frozen=True, slots=True)
class Ping(Command):
    """``token`` is None for a bare PING, else echoed as given (even empty)."""

    NAME = "PING"
    BEFORE_LOGIN = True
    token: Unchecked | None = None


@dataclass(frozen=True, slots=True)
class Help(Command):
    NAME = "HELP"
    BEFORE_LOGIN = True


@dataclass(frozen=True, slots=True)
class Quit(Command):
    NAME = "QUIT"
    BEFORE_LOGIN = True


#: What a client may send, by verb, in the order docs/protocol.md lists them.
CLIENT_COMMANDS: dict[str, type[Command]] = line_map(
    CreateAccount,
    Login,
    NewToken,
    Resume,
    SendMessage,
    SendMessageOnce,
    Broadcast,
    Acknowledge,
    WhoIsOnline,
    LookUpUser,
    Join,
    Part,
    MyRooms,
    RoomMembers,
    History,
    SetDisplayName,
    SetPassword,
    Ping,
    Help,
    Quit,
)

#: The verbs HELP lists, in the order docs/protocol.md gives them.
HELP_TEXT = " ".join(CLIENT_COMMANDS)


def parse_command(line: str) -> Command:
    """Parse one line from a client (without its terminator).

    Raises :class:`MalformedLine` or :class:`InvalidValue`, and nothing else.
    """
    verb, sep, rest = line.partition("|")
    fast = _FAST_COMMANDS.get(verb)
    if fast is not None and sep:
        command = fast(rest)
        if command is not None:
            return command
    return parse_command_declared(line)


def parse_command_declared(line: str) -> Command:
    """:func:`parse_command` through the declared fields only (no fast path)."""
    verb, sep, rest = line.partition("|")
    # isascii(): str.upper() maps e.g. "ß" to "SS" and "ſ" to "S".
    verb = verb.upper() if verb.isascii() else "?"
    cls = CLIENT_COMMANDS.get(verb)
    if cls is None:
        raise MalformedLine("?", "unknown command")
    return cls.from_fields(split_fields(verb, cls, rest if sep else None))


# --------------------------------------------------------------------------
# Fast paths.  Each takes what follows "VERB|" and returns the command the
# declared path would return, or None to let the declared path decide (and
# raise the right error).  They accept only what they can prove valid
# cheaply; tests/test_wire.py checks them against the declared path.

_TARGETS: dict[str, str] = {}  # known-good target text -> canonical form
_TARGETS_MAX = 4096


def _fast_target(text: str) -> str | None:
    target = _TARGETS.get(text)
    if target is None:
        try:
            target = canonical_target(text)
        except ValueError:
            return None
        if len(_TARGETS) >= _TARGETS_MAX:
            _TARGETS.clear()
        _TARGETS[text] = target
    return target


def _fast_msg(rest: str) -> Command | None:
    target, sep, text = rest.partition("|")
    if not sep or not text or text[0] in WHITE_SPACE:
        return None
    canonical = _fast_target(target)
    return None if canonical is None else SendMessage(canonical, text)


def _fast_send(rest: str) -> Command | None:
    parts = rest.split("|", 2)
    if len(parts) != 3:
        return None
    client_id, target, text = parts
    if not text or text[0] in WHITE_SPACE or not _CLIENT_ID_RE.match(client_id):
        return None
    canonical = _fast_target(target)
    return None if canonical is None else SendMessageOnce(client_id, canonical, text)


def _fast_ack(rest: str) -> Command | None:
    return Acknowledge(int(rest)) if _MSGID_RE.match(rest) else None


_FAST_COMMANDS: dict[str, Callable[[str], Command | None]] = {
    "MSG": _fast_msg,
    "SEND": _fast_send,
    "ACK": _fast_ack,
}
