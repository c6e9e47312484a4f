"""What the user types, turned into an intent or a usage error.

Pure: no Twisted, no I/O.  :func:`parse_input` takes one line as typed and
returns one of the frozen intent classes below, a :class:`UsageError`
holding the usage line of the command that was misused, or ``None`` for a
blank line.  Values that the protocol restricts (user names, rooms, display
names, message text) are checked here with the wire module's own checks, so
a mistake is reported before anything is sent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from messenger import wire

#: How many history lines ``/history`` asks for when no limit is given.
DEFAULT_HISTORY_LIMIT = 20

#: The largest message text, in UTF-8 bytes after escaping.  A protocol line
#: is at most 8192 bytes; this leaves room for ``SEND|<64-char client id>|``
#: and the longest target.
MAX_TEXT_BYTES = 8000


# --------------------------------------------------------------------------
# Intents


@dataclass(frozen=True)
class SendText:
    """Send ``text`` to ``target``; ``None`` means the conversation in focus."""

    target: str | None
    text: str


@dataclass(frozen=True)
class Focus:
    """Move the focus (where plain lines go) to a room or a user."""

    target: str


@dataclass(frozen=True)
class JoinRoom:
    room: str


@dataclass(frozen=True)
class PartRoom:
    room: str


@dataclass(frozen=True)
class ListRooms:
    pass


@dataclass(frozen=True)
class ListMembers:
    """``room`` is ``None`` for the room in focus."""

    room: str | None


@dataclass(frozen=True)
class ListOnline:
    pass


@dataclass(frozen=True)
class LookUp:
    username: str


@dataclass(frozen=True)
class ShowHistory:
    """``target`` is ``None`` for the conversation in focus."""

    target: str | None
    limit: int = DEFAULT_HISTORY_LIMIT


@dataclass(frozen=True)
class SetName:
    display_name: str


@dataclass(frozen=True)
class ChangePassword:
    """The passwords are asked for afterwards, without echo, never typed inline."""


@dataclass(frozen=True)
class ShowHelp:
    pass


@dataclass(frozen=True)
class ShowInbox:
    pass


@dataclass(frozen=True)
class SignUp:
    pass


@dataclass(frozen=True)
class QuitClient:
    pass


@dataclass(frozen=True)
class UsageError:
    """The line could not be understood; ``message`` says how to use it."""

    message: str


Intent = (
    SendText
    | Focus
    | JoinRoom
    | PartRoom
    | ListRooms
    | ListMembers
    | ListOnline
    | LookUp
    | ShowHistory
    | SetName
    | ChangePassword
    | ShowHelp
    | ShowInbox
    | SignUp
    | QuitClient
)


# --------------------------------------------------------------------------
# Usage lines, also the text of /help


#: (command, arguments, what it does), in the order /help lists them.
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("/msg", "NAME TEXT", "send a direct message (also: @NAME TEXT)"),
    ("/chat", "NAME|#ROOM", "talk to a person or in a room: plain lines go there"),
    ("/join", "#ROOM", "join a room (creating it if new) and move there"),
    ("/part", "#ROOM", "leave a room"),
    ("/rooms", "", "list the rooms you are in"),
    ("/members", "[#ROOM]", "list a room's members"),
    ("/who", "", "list who is online"),
    ("/whois", "NAME", "show a person's display name and when last seen"),
    ("/history", "[NAME|#ROOM] [LIMIT]", "show earlier messages (20 by default)"),
    ("/inbox", "", "list conversations with unread messages"),
    ("/name", "DISPLAY NAME", "change your display name"),
    ("/passwd", "", "change your password (asks for it)"),
    ("/signup", "", "create an account (before logging in)"),
    ("/help", "", "show this help"),
    ("/quit", "", "leave (also: !exit, Ctrl-D)"),
)

_USAGE: dict[str, str] = {name: f"usage: {name} {args}".rstrip() for name, args, _ in COMMANDS}
_USAGE["@"] = "usage: @NAME TEXT"


def usage(command: str) -> str:
    """The usage line of a command, e.g. ``usage("/msg")``."""
    return _USAGE[command]


def help_text() -> str:
    """Every command with its arguments and what it does."""
    width = max(len(f"{name} {args}") for name, args, _ in COMMANDS)
    lines = ["Commands:"]
    for name, args, what in COMMANDS:
        lines.append(f"  {(name + ' ' + args).ljust(width)}  {what}")
    lines.append(
        "Anything else is sent to the conversation in focus "
        "(start it with // to send a line beginning with /)."
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Parsing


class _Bad(Exception):
    """Internal: the arguments of ``command`` are wrong."""

    def __init__(self, command: str, detail: str = "") -> None:
        super().__init__(command)
        self.command = command
        self.detail = detail


def _target(command: str, value: str) -> str:
    try:
        return wire.canonical_target(value)
    except ValueError as e:
        raise _Bad(command, f"{value!r}: {e}") from None


def _room(command: str, value: str) -> str:
    # "#" is optional when the command only ever takes a room.
    if not value.startswith("#"):
        value = "#" + value
    try:
        return wire.canonical_room(value)
    except ValueError as e:
        raise _Bad(command, f"{value!r}: {e}") from None


def _username(command: str, value: str) -> str:
    try:
        return wire.canonical_username(value)
    except ValueError as e:
        raise _Bad(command, f"{value!r}: {e}") from None


def _text(command: str, value: str) -> str:
    try:
        wire.check_body(value)
    except ValueError:
        raise _Bad(command, "the message is empty") from None
    if len(wire.escape_body(value).encode("utf-8")) > MAX_TEXT_BYTES:
        raise _Bad(command, f"the message is longer than {MAX_TEXT_BYTES} bytes")
    return value


def _no_args(command: str, rest: str) -> None:
    if rest:
        raise _Bad(command)


def _send(command: str, rest: str) -> SendText:
    target, _, text = rest.partition(" ")
    if not target or not text.strip():
        raise _Bad(command)
    return SendText(_target(command, target), _text(command, text))


def _one(command: str, rest: str) -> str:
    words = rest.split()
    if len(words) != 1:
        raise _Bad(command)
    return words[0]


def _history(rest: str) -> ShowHistory:
    words = rest.split()
    if len(words) > 2:
        raise _Bad("/history")
    target = _target("/history", words[0]) if words else None
    limit = DEFAULT_HISTORY_LIMIT
    if len(words) == 2:
        if not words[1].isdigit() or not 1 <= int(words[1]) <= wire.HISTORY_LIMIT_MAX:
            raise _Bad("/history", f"LIMIT must be 1-{wire.HISTORY_LIMIT_MAX}")
        limit = int(words[1])
    return ShowHistory(target, limit)


def _name(rest: str) -> SetName:
    if not rest.strip():
        raise _Bad("/name")
    try:
        return SetName(wire.clean_display_name(rest))
    except ValueError as e:
        raise _Bad("/name", str(e)) from None


def _members(rest: str) -> ListMembers:
    words = rest.split()
    if len(words) > 1:
        raise _Bad("/members")
    return ListMembers(_room("/members", words[0]) if words else None)


def _parse_slash(command: str, rest: str) -> Intent:
    if command == "/msg":
        return _send(command, rest)
    if command == "/chat":
        return Focus(_target(command, _one(command, rest)))
    if command == "/join":
        return JoinRoom(_room(command, _one(command, rest)))
    if command == "/part":
        return PartRoom(_room(command, _one(command, rest)))
    if command == "/members":
        return _members(rest)
    if command == "/whois":
        return LookUp(_username(command, _one(command, rest)))
    if command == "/history":
        return _history(rest)
    if command == "/name":
        return _name(rest)
    simple: dict[str, Callable[[], Intent]] = {
        "/rooms": ListRooms,
        "/who": ListOnline,
        "/inbox": ShowInbox,
        "/passwd": ChangePassword,
        "/signup": SignUp,
        "/help": ShowHelp,
        "/quit": QuitClient,
    }
    _no_args(command, rest)
    return simple[command]()


_ALIASES = {"/exit": "/quit", "/q": "/quit", "/m": "/msg", "/j": "/join", "/?": "/help"}


def parse_input(line: str) -> Intent | UsageError | None:
    """Turn one typed line into an intent, a usage error, or None (blank)."""
    line = line.rstrip("\r\n")
    stripped = line.strip()
    if not stripped:
        return None
    if stripped.lower() == "!exit":
        return QuitClient()
    if stripped.startswith("//"):
        # An escaped slash: the text itself begins with "/".
        return _text_intent(line.lstrip()[1:])
    if stripped.startswith("/"):
        command, _, rest = stripped.partition(" ")
        command = _ALIASES.get(command.lower(), command.lower())
        if command not in _USAGE:
            return UsageError(f"unknown command {command}; /help lists the commands")
        try:
            return _parse_slash(command, rest.strip() if command != "/msg" else rest.lstrip())
        except _Bad as bad:
            return _usage_error(bad)
    if stripped.startswith("@"):
        target, _, text = stripped[1:].partition(" ")
        try:
            if not target or not text.strip():
                raise _Bad("@")
            return SendText(_target("@", target), _text("@", text))
        except _Bad as bad:
            return _usage_error(bad)
    return _text_intent(line)


def _text_intent(text: str) -> SendText | UsageError:
    try:
        return SendText(None, _text("message", text))
    except _Bad as bad:
        return UsageError(bad.detail)


def _usage_error(bad: _Bad) -> UsageError:
    line = _USAGE[bad.command]
    return UsageError(f"{line} ({bad.detail})" if bad.detail else line)
