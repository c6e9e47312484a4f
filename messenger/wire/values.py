"""The values the protocol's fields hold: limits, names, and their checks.

Every check takes the text of one field and returns its value (canonical
form, stripped name, number) or raises ValueError with the reason a reply
gives; :mod:`messenger.wire.lines` turns that into the right protocol error.
"""

from __future__ import annotations

import re

PROTOCOL_VERSION = 1

# Limits fixed by the protocol (the ones the server may change are options).
USERNAME_MAX = 32
ROOM_NAME_MAX = 32
DISPLAY_NAME_MAX = 64
PASSWORD_MAX = 128
CLIENT_ID_MAX = 64
HISTORY_LIMIT_MAX = 500
TOKEN_MIN, TOKEN_MAX = 32, 128

#: The room every account is a member of (docs/protocol.md, Names and values).
GENERAL_ROOM = "#general"

#: HISTORY's two cursor directions.
BEFORE = "before"
AFTER = "after"

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


def as_is(value: str) -> str:
    """A field the protocol does not constrain (checked later, if at all)."""
    return value


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


def parse_history_limit(value: str) -> int:
    if not _COUNT_RE.match(value) or not 1 <= int(value) <= HISTORY_LIMIT_MAX:
        raise ValueError(f"limit must be 1-{HISTORY_LIMIT_MAX}")
    return int(value)


def parse_history_cursor(value: str) -> int:
    if not _COUNT_RE.match(value):
        raise ValueError("bad message id")
    return int(value)


def check_direction(value: str) -> str:
    if value not in (BEFORE, AFTER):
        raise ValueError(f"cursor must be '{BEFORE}' or '{AFTER}'")
    return value


def parse_version(value: str) -> int:
    if not _COUNT_RE.match(value):
        raise ValueError("bad version")
    return int(value)


def parse_code(value: str) -> int:
    if not _COUNT_RE.match(value):
        raise ValueError("bad code")
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
