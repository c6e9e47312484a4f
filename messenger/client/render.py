"""Server messages turned into text a person reads.

Pure: no Twisted, no I/O, no clock.  Every function takes what it shows
(and the time to show, where the protocol gives none) and returns a string
without a trailing newline; :class:`Style` adds ANSI colours or not.

Everything the server relays is untrusted text: a message body, a user
name or a reason could hold terminal escape sequences or Unicode direction
overrides meant to rewrite the screen or disguise a sender.  :func:`clean`
makes every such character visible and harmless before it is shown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from messenger import wire

# ANSI SGR codes.
_RESET = "\x1b[0m"
_CODES = {
    "dim": "\x1b[2m",
    "bold": "\x1b[1m",
    "red": "\x1b[31m",
    "green": "\x1b[32m",
    "yellow": "\x1b[33m",
    "magenta": "\x1b[35m",
    "cyan": "\x1b[36m",
}

# C0 and C1 controls and DEL (newline and tab are handled on their own),
# plus the bidirectional formatting characters.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")

#: Marks a message for a conversation that is not in focus.
UNFOCUSED_MARK = "*"


@dataclass(frozen=True)
class Style:
    """Colours on or off; ``tz`` is where times are shown (None: local)."""

    color: bool = False
    tz: tzinfo | None = None

    def paint(self, text: str, *styles: str) -> str:
        if not self.color or not styles:
            return text
        return "".join(_CODES[s] for s in styles) + text + _RESET


def _caret(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if code < 0x20:
        return "^" + chr(code + 0x40)
    if code == 0x7F:
        return "^?"
    return "\ufffd"


def clean(text: str) -> str:
    """Make control and direction-override characters visible and inert.

    A tab becomes a space; a newline is kept (callers that need one line
    pass text without newlines, or use :func:`clean_line`).
    """
    return _UNSAFE.sub(_caret, text.replace("\t", " "))


def clean_line(text: str) -> str:
    """:func:`clean`, and a newline shown as ``^J`` (for one-line fields)."""
    return clean(text).replace("\n", "^J")


# --------------------------------------------------------------------------
# Names and times


def conversation_label(target: str) -> str:
    """``#room`` for a room, ``@name`` for a direct conversation."""
    return clean_line(target) if wire.is_room(target) else "@" + clean_line(target)


def sender_label(username: str, display_name: str | None) -> str:
    """The display name, with the user name when it differs.

    The user name is shown whenever it is not just the display name in
    another case, so nobody can pass for someone else by taking their
    display name.
    """
    username = clean_line(username)
    if not display_name:
        return username
    display_name = clean_line(display_name)
    if display_name.lower() == username.lower():
        return display_name
    return f"{display_name} ({username})"


def parse_timestamp(value: str) -> datetime | None:
    """An RFC 3339 UTC timestamp from the server, or None if unreadable."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def clock_time(when: datetime, style: Style, now: datetime | None = None) -> str:
    """``HH:MM``, with the date in front when it is not the day of ``now``."""
    local = when.astimezone(style.tz)
    if now is not None and local.date() != now.astimezone(style.tz).date():
        return local.strftime("%Y-%m-%d %H:%M")
    return local.strftime("%H:%M")


def from_epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


# --------------------------------------------------------------------------
# Messages


def message(
    style: Style,
    when: datetime,
    conversation: str,
    sender: str,
    text: str,
    *,
    focused: bool = True,
    now: datetime | None = None,
) -> str:
    """One message: time, conversation, sender, text.

    ``conversation`` is a room or the other party's user name; ``sender`` is
    already a label (see :func:`sender_label`); ``text`` is the body as it
    came over the wire, with ``\\n`` escapes.  Lines after the first are
    indented so a multi-line message reads as one block.
    """
    mark = style.paint(UNFOCUSED_MARK, "yellow", "bold") if not focused else " "
    label = conversation_label(conversation)
    label = style.paint(label, "cyan" if wire.is_room(conversation) else "magenta")
    head = f"{mark} {style.paint(clock_time(when, style, now), 'dim')} {label} "
    head += style.paint(sender + ":", "bold")
    lines = clean(wire.unescape_body(text)).split("\n")
    out = [f"{head} {lines[0]}"]
    out.extend("    " + line for line in lines[1:])
    return "\n".join(out)


def sent(msgid: int, style: Style) -> str:
    """The short confirmation that the server stored a message."""
    return style.paint(f"Message {msgid} sent", "dim")


def delivered(msgid: int, recipient: str, when: datetime | None, style: Style) -> str:
    """A receipt: the recipient acknowledged message ``msgid``."""
    at = f", {clock_time(when, style)}" if when is not None else ""
    return style.paint(f"  delivered to {clean_line(recipient)} (message {msgid}{at})", "dim")


def event_line(style: Style, when: datetime, text: str) -> str:
    """A presence or membership event: one dim line."""
    return style.paint(f"  {clock_time(when, style)} {text}", "dim")


def online(username: str, when: datetime, style: Style) -> str:
    return event_line(style, when, f"{clean_line(username)} is online")


def offline(username: str, when: datetime, style: Style) -> str:
    return event_line(style, when, f"{clean_line(username)} went offline")


def joined(room: str, username: str, when: datetime, style: Style) -> str:
    return event_line(style, when, f"{clean_line(username)} joined {clean_line(room)}")


def parted(room: str, username: str, when: datetime, style: Style) -> str:
    return event_line(style, when, f"{clean_line(username)} left {clean_line(room)}")


# --------------------------------------------------------------------------
# Replies and notices


def notice(text: str, style: Style) -> str:
    """Something the client itself says (connection state, confirmations)."""
    return style.paint(f"-- {text}", "dim")


def error(text: str, style: Style) -> str:
    return style.paint(f"!! {text}", "red")


def server_error(code: int, reason: str, style: Style, what: str = "") -> str:
    """An ``ERR`` reply, optionally saying which action it refused."""
    prefix = f"{what}: " if what else ""
    return error(f"{prefix}{clean_line(reason)} ({code})", style)


def word_list(title: str, words: Iterable[str], style: Style, empty: str = "none") -> str:
    items = [clean_line(w) for w in words]
    return f"{style.paint(title, 'bold')} {', '.join(items) if items else empty}"


def whois(
    username: str,
    status: str,
    last_seen: str,
    display_name: str,
    style: Style,
    now: datetime | None = None,
) -> str:
    label = sender_label(username, display_name)
    if status == "online":
        state = style.paint("online", "green")
    else:
        seen = parse_timestamp(last_seen) if last_seen != "-" else None
        state = "offline" + (f", last seen {clock_time(seen, style, now)}" if seen else "")
    return f"{style.paint(label, 'bold')}: {state}"


def inbox(counts: Mapping[str, int], style: Style) -> str:
    """``/inbox``: conversations with unread messages and how many."""
    if not counts:
        return notice("no unread messages", style)
    parts = [f"{conversation_label(c)} ({n})" for c, n in counts.items()]
    return f"{style.paint('Unread:', 'bold')} {', '.join(parts)}"


def focus(target: str, style: Style) -> str:
    if wire.is_room(target):
        return notice(f"now talking in {clean_line(target)}", style)
    return notice(f"now talking with {clean_line(target)}", style)
