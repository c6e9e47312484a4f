"""Server messages: replies and events (docs/protocol.md, Events).

Declared like the commands (one class per verb, fields as annotated
attributes).  The server's values are trusted to be what the protocol says,
so only the fields a client computes with (ids, codes, the version) are
checked; any failure is a :class:`~messenger.wire.lines.MalformedLine`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, ClassVar

from messenger.wire.lines import (
    Field,
    Line,
    LocalProtocolError,
    MalformedLine,
    RemoteProtocolError,
    line_map,
    split_fields,
)
from messenger.wire.values import _MSGID_RE, as_is, parse_code, parse_msgid, parse_version

Text = Annotated[str, Field(as_is)]
Body = Annotated[str, Field(as_is, rest_of_line=True)]
MessageId = Annotated[int, Field(parse_msgid)]
Code = Annotated[int, Field(parse_code)]
Version = Annotated[int, Field(parse_version)]


class ServerMessage(Line):
    VALUE_ERROR: ClassVar[Callable[[str, str], RemoteProtocolError]] = MalformedLine


@dataclass(frozen=True, slots=True)
class Hello(ServerMessage):
    NAME = "HELLO"
    version: Version
    server_name: Text


@dataclass(frozen=True, slots=True)
class Ok(ServerMessage):
    """``OK|VERB|fields...``; what the fields mean depends on the verb."""

    NAME = "OK"
    FIELD_COUNTS = range(1, 1_000_000)
    verb: str
    fields: tuple[str, ...] = ()

    @classmethod
    def from_fields(cls, fields: list[str]) -> Ok:
        return cls(fields[0], tuple(fields[1:]))

    def to_fields(self) -> tuple[str, ...]:
        return (self.verb, *self.fields)

    def to_line(self) -> str:
        # Line.to_line's rules, written out: one of the hot path's lines.
        fields = self.fields
        line = "|".join(("OK", self.verb, *fields))
        if line.count("|") != len(fields) + 1 or "\n" in line:
            raise LocalProtocolError(f"a field of {self.to_fields()!r} holds '|' or a line feed")
        return line


@dataclass(frozen=True, slots=True)
class Err(ServerMessage):
    NAME = "ERR"
    verb: Text
    code: Code
    reason: Body


@dataclass(frozen=True, slots=True)
class HistoryLine(ServerMessage):
    """One history line."""

    NAME = "H"
    target: Text
    msgid: MessageId
    sender: Text
    timestamp: Text
    text: Body


@dataclass(frozen=True, slots=True)
class DirectMessage(ServerMessage):
    """A direct message for the receiving user."""

    NAME = "R"
    sender: Text
    msgid: MessageId
    text: Body

    def to_line(self) -> str:
        # Line.to_line's rules, written out: one of the hot path's lines.
        sender, text = self.sender, self.text
        if "|" in sender or "\n" in sender or "\n" in text:
            raise LocalProtocolError(f"a field of {self.to_fields()!r} holds '|' or a line feed")
        return f"R|{sender}|{self.msgid}|{text}"


@dataclass(frozen=True, slots=True)
class RoomMessage(ServerMessage):
    """A message in a room."""

    NAME = "C"
    room: Text
    sender: Text
    msgid: MessageId
    text: Body


@dataclass(frozen=True, slots=True)
class Delivered(ServerMessage):
    NAME = "DLV"
    msgid: MessageId
    recipient: Text
    timestamp: Text

    def to_line(self) -> str:
        # Line.to_line's rules, written out: one of the hot path's lines.
        recipient, timestamp = self.recipient, self.timestamp
        if "|" in recipient or "|" in timestamp or "\n" in recipient or "\n" in timestamp:
            raise LocalProtocolError(f"a field of {self.to_fields()!r} holds '|' or a line feed")
        return f"DLV|{self.msgid}|{recipient}|{timestamp}"


@dataclass(frozen=True, slots=True)
class UserOnline(ServerMessage):
    NAME = "ON"
    username: Text


@dataclass(frozen=True, slots=True)
class UserOffline(ServerMessage):
    NAME = "OFF"
    username: Text


@dataclass(frozen=True, slots=True)
class MemberJoined(ServerMessage):
    NAME = "JOINED"
    room: Text
    username: Text


@dataclass(frozen=True, slots=True)
class MemberParted(ServerMessage):
    NAME = "PARTED"
    room: Text
    username: Text


@dataclass(frozen=True, slots=True)
class Bye(ServerMessage):
    NAME = "BYE"
    code: Code
    reason: Body


#: What a server may send, by verb.
SERVER_MESSAGES: dict[str, type[ServerMessage]] = line_map(
    Hello,
    Ok,
    Err,
    HistoryLine,
    DirectMessage,
    RoomMessage,
    Delivered,
    UserOnline,
    UserOffline,
    MemberJoined,
    MemberParted,
    Bye,
)


def parse_server_line(line: str) -> ServerMessage:
    """Parse one line from a server (for clients).  Raises MalformedLine."""
    verb, sep, rest = line.partition("|")
    fast = _FAST_MESSAGES.get(verb)
    if fast is not None and sep:
        message = fast(rest)
        if message is not None:
            return message
    return parse_server_line_declared(line)


def parse_server_line_declared(line: str) -> ServerMessage:
    """:func:`parse_server_line` through the declared fields only."""
    verb, sep, rest = line.partition("|")
    cls = SERVER_MESSAGES.get(verb)
    if cls is None:
        raise MalformedLine("?", "unknown server message")
    return cls.from_fields(split_fields(verb, cls, rest if sep else None))


# Fast paths for the events a client reads most, as for the commands: the
# declared path's result, or None to let the declared path decide.


def _fast_r(rest: str) -> ServerMessage | None:
    parts = rest.split("|", 2)
    if len(parts) != 3 or not _MSGID_RE.match(parts[1]):
        return None
    return DirectMessage(parts[0], int(parts[1]), parts[2])


def _fast_c(rest: str) -> ServerMessage | None:
    parts = rest.split("|", 3)
    if len(parts) != 4 or not _MSGID_RE.match(parts[2]):
        return None
    return RoomMessage(parts[0], parts[1], int(parts[2]), parts[3])


def _fast_dlv(rest: str) -> ServerMessage | None:
    parts = rest.split("|")
    if len(parts) != 3 or not _MSGID_RE.match(parts[0]):
        return None
    return Delivered(int(parts[0]), parts[1], parts[2])


_FAST_MESSAGES: dict[str, Callable[[str], ServerMessage | None]] = {
    "R": _fast_r,
    "C": _fast_c,
    "DLV": _fast_dlv,
}


# Replies the server builds often, as helpers so that each reason text is
# written in one place.


def ok(verb: str, *fields: str) -> Ok:
    return Ok(verb, fields)


def err(verb: str, code: int, reason: str) -> Err:
    return Err(verb, code, reason)


def log_in_first(verb: str) -> Err:
    """Rule 4: a command that needs login, before login."""
    return Err(verb, 401, "log in first")


def rate_limited(verb: str) -> Err:
    return Err(verb, 429, "rate limit")


def server_error(verb: str) -> Err:
    """The command failed on our side (the store, a bug): 500."""
    return Err(verb, 500, "server error")


def too_many_failed_logins(verb: str) -> Err:
    return Err(verb, 429, "too many failed logins")


def storage_unavailable(verb: str) -> Err:
    """The database is away (the store reconnects by itself): 503, and the
    client may try again (docs/protocol.md, "One server, many processes")."""
    return Err(verb, 503, "storage unavailable")


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
