"""The SQL of ``messenger-admin``, as synchronous transaction functions.

Same style as :mod:`messenger.store.txns`: each ``*_txn`` function takes a
:class:`~messenger.store.engines.Txn` and runs inside a transaction its
caller commits (the admin tool opens the database itself, through the same
engine as the server, and runs these synchronously).  What
the server's own functions already do (creating a user, changing a
password hash or display name, joining a room) is reused from there rather
than written again.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from messenger.store import txns
from messenger.store.engines import Txn
from messenger.store.interface import UserRecord, conversation_key


@dataclass(frozen=True, slots=True)
class RoomSummary:
    name: str
    created_at: float
    members: int
    messages: int


@dataclass(frozen=True, slots=True)
class Member:
    username: str
    joined_at: float


@dataclass(frozen=True, slots=True)
class Stats:
    accounts: int
    rooms: int
    #: Every message kept, direct and room, delivered or not.
    messages: int
    #: Direct messages not acknowledged by their recipient yet.
    waiting: int
    #: When the oldest waiting message was accepted, or None.
    oldest_waiting: float | None


@dataclass(frozen=True, slots=True)
class MessageRow:
    """A stored message with every column an export keeps."""

    msgid: int
    sender: str
    recipient: str | None
    room: str | None
    body: str
    created_at: float
    delivered_at: float | None
    receipt_sent: bool


# --------------------------------------------------------------------------
# schema


def is_messenger_database_txn(txn: Txn) -> tuple[int, bool]:
    """The schema version (0 when there is none) and whether the database
    holds any table at all (an empty database can be given the schema)."""
    has_tables = txn.engine.has_tables(txn)
    return txns.current_version_txn(txn), has_tables


# --------------------------------------------------------------------------
# users


def list_users_txn(txn: Txn) -> list[UserRecord]:
    txn.execute(f"SELECT {txns.USER_COLUMNS} FROM users ORDER BY username")
    return [UserRecord(*row) for row in txn.fetchall()]


def existing_usernames_txn(txn: Txn, usernames: Iterable[str]) -> list[str]:
    """Which of ``usernames`` already have an account, sorted."""
    found = []
    for username in usernames:
        txn.execute("SELECT 1 FROM users WHERE username = ?", (username,))
        if txn.fetchone() is not None:
            found.append(username)
    return sorted(found)


def direct_message_count_txn(txn: Txn, username: str) -> int:
    """Direct messages sent or received by ``username``."""
    txn.execute(
        "SELECT count(*) FROM messages WHERE recipient = ? OR (sender = ? AND recipient IS NOT NULL)",
        (username, username),
    )
    return int(txn.fetchone()[0])


def delete_user_txn(txn: Txn, username: str) -> bool:
    """Delete an account with its tokens, memberships, idempotency keys and
    direct conversations (both directions).

    Room messages it wrote stay: they belong to the room's history.  The
    waiting count of anyone it had sent unacknowledged messages to goes
    down by those messages.  Returns False if there was no such user.
    """
    txn.execute("SELECT 1 FROM users WHERE username = ?", (username,))
    if txn.fetchone() is None:
        return False
    txn.execute(
        "SELECT recipient, count(*) FROM messages"
        " WHERE sender = ? AND recipient IS NOT NULL AND recipient != ?"
        " AND delivered_at IS NULL GROUP BY recipient",
        (username, username),
    )
    lowered = txn.engine.greatest("pending_count - ?", "0")
    for recipient, count in txn.fetchall():
        txn.execute(
            f"UPDATE users SET pending_count = {lowered} WHERE username = ?", (count, recipient)
        )
    txn.execute(
        "DELETE FROM send_keys WHERE sender = ? OR message_id IN"
        " (SELECT id FROM messages WHERE recipient = ? OR (sender = ? AND recipient IS NOT NULL))",
        (username, username, username),
    )
    txn.execute(
        "DELETE FROM messages WHERE recipient = ? OR (sender = ? AND recipient IS NOT NULL)",
        (username, username),
    )
    # tokens and room_members go with the user (ON DELETE CASCADE), but say
    # so explicitly in case foreign keys were not switched on.
    txn.execute("DELETE FROM tokens WHERE username = ?", (username,))
    txn.execute("DELETE FROM room_members WHERE username = ?", (username,))
    txn.execute("DELETE FROM users WHERE username = ?", (username,))
    return True


def update_user_txn(txn: Txn, username: str, password_hash: str, display_name: str | None) -> None:
    """Replace the password hash (revoking tokens) and, if given, the display name."""
    txns.set_password_hash_txn(txn, username, password_hash)
    if display_name is not None:
        txns.set_display_name_txn(txn, username, display_name)


def import_user_txn(
    txn: Txn,
    username: str,
    password_hash: str,
    display_name: str,
    created_at: float,
    last_seen: float | None,
) -> bool:
    """Create an imported account (a member of #general, as every account
    is), keeping its creation and last-seen times.  False if taken."""
    if not txns.create_user_txn(txn, username, password_hash, display_name, created_at):
        return False
    if last_seen is not None:
        txns.set_last_seen_txn(txn, [username], last_seen)
    return True


# --------------------------------------------------------------------------
# rooms


def list_rooms_txn(txn: Txn) -> list[RoomSummary]:
    txn.execute(
        "SELECT r.name, r.created_at,"
        " (SELECT count(*) FROM room_members m WHERE m.room = r.name),"
        " (SELECT count(*) FROM messages g WHERE g.conversation = r.name)"
        " FROM rooms r ORDER BY r.name"
    )
    return [RoomSummary(*row) for row in txn.fetchall()]


def room_members_txn(txn: Txn, room: str) -> list[Member] | None:
    """The members of ``room`` by username, or None if there is no such room."""
    txn.execute("SELECT 1 FROM rooms WHERE name = ?", (room,))
    if txn.fetchone() is None:
        return None
    txn.execute(
        "SELECT username, joined_at FROM room_members WHERE room = ? ORDER BY username",
        (room,),
    )
    return [Member(*row) for row in txn.fetchall()]


def ensure_room_txn(txn: Txn, room: str, created_at: float) -> bool:
    """Create the room if needed.  True if it was created."""
    txn.execute(
        "INSERT INTO rooms (name, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
        (room, created_at),
    )
    return txn.rowcount == 1


def add_member_txn(txn: Txn, room: str, username: str, joined_at: float) -> bool:
    """Add a member (the room is created if needed).  True if newly added."""
    return txns.join_room_txn(txn, room, username, joined_at)


# --------------------------------------------------------------------------
# messages


def stats_txn(txn: Txn) -> Stats:
    txn.execute("SELECT count(*) FROM users")
    accounts = txn.fetchone()[0]
    txn.execute("SELECT count(*) FROM rooms")
    rooms = txn.fetchone()[0]
    txn.execute("SELECT count(*) FROM messages")
    messages = txn.fetchone()[0]
    txn.execute(
        "SELECT count(*), min(created_at) FROM messages"
        " WHERE recipient IS NOT NULL AND delivered_at IS NULL"
    )
    waiting, oldest = txn.fetchone()
    return Stats(accounts, rooms, messages, waiting, oldest)


_MESSAGE_COLUMNS = "id, sender, recipient, room, body, created_at, delivered_at, receipt_sent"


def messages_page_txn(txn: Txn, after_id: int, limit: int) -> list[MessageRow]:
    """Messages with an id above ``after_id``, in id order, at most ``limit``."""
    txn.execute(
        f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE id > ? ORDER BY id LIMIT ?",
        (after_id, limit),
    )
    return [
        MessageRow(row[0], row[1], row[2], row[3], row[4], row[5], row[6], bool(row[7]))
        for row in txn.fetchall()
    ]


def iter_messages_txn(txn: Txn, page_size: int = 1000) -> Iterator[MessageRow]:
    """Every message in id order, a page at a time (use inside one
    transaction so that the pages are one consistent snapshot)."""
    after = 0
    while True:
        page = messages_page_txn(txn, after, page_size)
        if not page:
            return
        yield from page
        after = page[-1].msgid


def highest_message_id_txn(txn: Txn) -> int:
    """The highest message id the database ever assigned (ids are never reused)."""
    txn.execute("SELECT max(id) FROM messages")
    highest = txn.fetchone()[0] or 0
    return max(int(highest), txn.engine.highest_id_ever(txn, "messages"))


def insert_messages_txn(txn: Txn, messages: Sequence[MessageRow], keep_ids: bool) -> list[int]:
    """Store imported messages in the given order; returns their ids.

    With ``keep_ids`` each keeps its ``msgid`` (the caller checks that they
    are all above :func:`highest_message_id_txn`); otherwise the database
    numbers them.  Waiting counts are not touched: call
    :func:`recount_pending_txn` afterwards.
    """
    rows: list[tuple[object, ...]] = []
    for m in messages:
        if m.recipient is not None:
            conversation = conversation_key(m.sender, m.recipient)
            receipt_sent = 1 if m.receipt_sent else 0
        else:
            assert m.room is not None  # a message has a recipient or a room
            conversation = conversation_key(m.room)
            receipt_sent = 1
        row = (m.sender, m.recipient, m.room, conversation, m.body, m.created_at, m.delivered_at)
        rows.append(((m.msgid,) if keep_ids else ()) + row + (receipt_sent,))
    columns = "sender, recipient, room, conversation, body, created_at, delivered_at, receipt_sent"
    types: tuple[str, ...] = ("text", "text", "text", "text", "text", "float8", "float8", "int8")
    if keep_ids:
        columns, types = f"id, {columns}", ("int8", *types)
    ids = txn.engine.insert_returning_ids(txn, f"INSERT INTO messages ({columns})", types, rows)
    if keep_ids:
        txn.engine.ids_given(txn, "messages")
    return ids


def recount_pending_txn(txn: Txn) -> None:
    """Set every user's waiting count from the messages themselves."""
    txn.execute(
        "UPDATE users SET pending_count = (SELECT count(*) FROM messages"
        " WHERE messages.recipient = users.username AND messages.delivered_at IS NULL)"
    )


def all_members_txn(txn: Txn) -> list[tuple[str, str, float]]:
    """Every membership as (room, username, joined_at), by room then user."""
    txn.execute("SELECT room, username, joined_at FROM room_members ORDER BY room, username")
    return [tuple(row) for row in txn.fetchall()]
