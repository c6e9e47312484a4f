"""The SQL of Messenger, written once, as synchronous transaction functions.

Each ``*_txn`` function takes a DB-API cursor and runs inside a transaction
that its caller (adbapi's ``runInteraction``) commits.  Parameters use the
``?`` style; an engine with another style converts the text once (as
Synapse's database engines do) rather than the SQL being written twice.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from importlib import resources

from messenger.store.interface import (
    AckResult,
    BatchResult,
    LoginRecord,
    MessageRejected,
    NewMessage,
    Receipt,
    StoredMessage,
    UserRecord,
    conversation_key,
)

GENERAL_ROOM = "#general"
SEND_KEY_LIFETIME = 24 * 60 * 60

_SCHEMA_PACKAGE = "messenger.store.schema"


def schema_versions() -> list[tuple[int, str]]:
    """Every schema file shipped with the package, as (version, sql)."""
    files = []
    for entry in resources.files(_SCHEMA_PACKAGE).iterdir():
        name = entry.name
        if name.startswith("v") and name.endswith(".sql"):
            files.append((int(name[1:-4]), entry.read_text(encoding="utf-8")))
    return sorted(files)


def current_version_txn(cur) -> int:
    cur.execute("SELECT name FROM sqlite_master WHERE type='table' AND name='schema_version'")
    if cur.fetchone() is None:
        return 0
    cur.execute("SELECT version FROM schema_version")
    row = cur.fetchone()
    return row[0] if row else 0


def begin_write_txn(cur) -> None:
    """Take the write lock now, before the transaction's first read.

    Python's sqlite3 would begin the transaction only at the first change,
    so what was read before it could be changed by another process (say
    messenger-admin) in between.  Another engine says this its own way
    (PostgreSQL: row locks); this is the one place to change.
    """
    try:
        cur.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError:
        pass  # already in a transaction


def upgrade_schema_txn(cur) -> int:
    """Apply every schema file newer than the database.  Returns the version.

    All of it in one transaction, begun explicitly: Python's sqlite3 begins
    one implicitly only before data changes, so each CREATE would otherwise
    commit on its own, and a crash half-way would leave a database that can
    be neither used nor upgraded.
    """
    begin_write_txn(cur)
    version = current_version_txn(cur)
    if version == 0:
        cur.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        cur.execute("INSERT INTO schema_version (version) VALUES (0)")
    for number, sql in schema_versions():
        if number <= version:
            continue
        for statement in _statements(sql):
            cur.execute(statement)
        cur.execute("UPDATE schema_version SET version = ?", (number,))
        version = number
    return version


def _statements(sql: str) -> list[str]:
    # Schema files hold plain DDL and INSERTs; no statement holds a ';'
    # inside a string, so splitting on it is safe.
    lines = [line.split("--", 1)[0] for line in sql.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


# --------------------------------------------------------------------------
# accounts

_USER_COLUMNS = "username, password_hash, display_name, created_at, last_seen, pending_count"


def create_user_txn(cur, username: str, password_hash: str, display_name: str, now: float) -> bool:
    cur.execute("SELECT 1 FROM users WHERE username = ?", (username,))
    if cur.fetchone() is not None:
        return False
    cur.execute(
        "INSERT INTO users (username, password_hash, display_name, created_at) VALUES (?, ?, ?, ?)",
        (username, password_hash, display_name, now),
    )
    cur.execute(
        "INSERT OR IGNORE INTO room_members (room, username, joined_at) VALUES (?, ?, ?)",
        (GENERAL_ROOM, username, now),
    )
    return True


def get_user_txn(cur, username: str) -> UserRecord | None:
    cur.execute(f"SELECT {_USER_COLUMNS} FROM users WHERE username = ?", (username,))
    row = cur.fetchone()
    return UserRecord(*row) if row else None


def set_display_name_txn(cur, username: str, display_name: str) -> None:
    cur.execute("UPDATE users SET display_name = ? WHERE username = ?", (display_name, username))


def set_password_hash_txn(cur, username: str, password_hash: str) -> None:
    cur.execute("UPDATE users SET password_hash = ? WHERE username = ?", (password_hash, username))
    cur.execute("DELETE FROM tokens WHERE username = ?", (username,))


def set_last_seen_txn(cur, usernames: Sequence[str], when: float) -> None:
    if not usernames:
        return  # not even an empty transaction
    cur.executemany(
        "UPDATE users SET last_seen = ? WHERE username = ?", [(when, u) for u in usernames]
    )


def add_token_txn(cur, username: str, token_hash: str, expires_at: float) -> None:
    cur.execute(
        "INSERT INTO tokens (token_hash, username, expires_at) VALUES (?, ?, ?)",
        (token_hash, username, expires_at),
    )


def token_valid_txn(cur, username: str, token_hash: str, now: float) -> bool:
    cur.execute(
        "SELECT expires_at FROM tokens WHERE token_hash = ? AND username = ?",
        (token_hash, username),
    )
    row = cur.fetchone()
    return row is not None and row[0] > now


def login_record_txn(cur, username: str) -> LoginRecord | None:
    user = get_user_txn(cur, username)
    if user is None:
        return None
    return LoginRecord(user, frozenset(rooms_of_txn(cur, username)))


def resume_record_txn(cur, username: str, token_hash: str, now: float) -> LoginRecord | None:
    if not token_valid_txn(cur, username, token_hash, now):
        return None
    return login_record_txn(cur, username)


# --------------------------------------------------------------------------
# messages


def commit_batch_txn(
    cur,
    messages: Sequence[NewMessage],
    acks: Sequence[tuple[str, int]],
    receipts_sent: Sequence[int],
    now: float,
    max_pending: int,
) -> BatchResult:
    """One group commit.  Statements per row are what a batch costs, so the
    mailbox counters are read and written once per user, not per row."""
    # The counters read here are written back at the end.
    begin_write_txn(cur)
    pending = _PendingCounts(cur)
    results = [_store_message(cur, m, now, max_pending, pending) for m in messages]
    ack_results = [_ack(cur, recipient, msgid, now, pending) for recipient, msgid in acks]
    pending.write()
    for start in range(0, len(receipts_sent), _IDS_PER_STATEMENT):
        chunk = receipts_sent[start : start + _IDS_PER_STATEMENT]
        cur.execute(
            f"UPDATE messages SET receipt_sent = 1 WHERE id IN ({','.join('?' * len(chunk))})",
            chunk,
        )
    return BatchResult(results, ack_results)


#: Below SQLite's oldest limit on host parameters (999).
_IDS_PER_STATEMENT = 500


class _PendingCounts:
    """Each recipient's count of unacknowledged messages during a batch."""

    def __init__(self, cur) -> None:
        self._cur = cur
        self._counts: dict[str, int] = {}
        self._changed: set[str] = set()

    def get(self, username: str) -> int | None:
        """The count, or None if there is no such user."""
        if username not in self._counts:
            self._cur.execute("SELECT pending_count FROM users WHERE username = ?", (username,))
            row = self._cur.fetchone()
            if row is None:
                return None
            self._counts[username] = row[0]
        return self._counts[username]

    def add(self, username: str, n: int) -> None:
        count = self.get(username)
        if count is not None:
            self._counts[username] = max(count + n, 0)
            self._changed.add(username)

    def write(self) -> None:
        if self._changed:
            self._cur.executemany(
                "UPDATE users SET pending_count = ? WHERE username = ?",
                [(self._counts[u], u) for u in self._changed],
            )


def _store_message(cur, m: NewMessage, now: float, max_pending: int, pending: _PendingCounts):
    if m.client_id is not None:
        cur.execute(
            "SELECT k.message_id, k.created_at, m.sender, m.recipient, m.room, m.body,"
            " m.created_at FROM send_keys k JOIN messages m ON m.id = k.message_id"
            " WHERE k.sender = ? AND k.client_id = ?",
            (m.sender, m.client_id),
        )
        row = cur.fetchone()
        if row is not None and row[1] > now - SEND_KEY_LIFETIME:
            return StoredMessage(row[0], row[2], row[3], row[4], row[5], row[6], duplicate=True)
    if m.recipient is not None:
        count = pending.get(m.recipient)
        if count is None:
            return MessageRejected.NO_SUCH_USER
        if count >= max_pending:
            return MessageRejected.MAILBOX_FULL
        conversation = conversation_key(m.sender, m.recipient)
        receipt_sent = 0
    else:
        cur.execute(
            "SELECT EXISTS (SELECT 1 FROM rooms WHERE name = ?),"
            " EXISTS (SELECT 1 FROM room_members WHERE room = ? AND username = ?)",
            (m.room, m.room, m.sender),
        )
        room_exists, is_member = cur.fetchone()
        if not room_exists:
            return MessageRejected.NO_SUCH_ROOM
        if not is_member:
            return MessageRejected.NOT_A_MEMBER
        conversation = conversation_key(m.room)
        receipt_sent = 1  # room messages have no receipts
    cur.execute(
        "INSERT INTO messages (sender, recipient, room, conversation, body, created_at,"
        " receipt_sent) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (m.sender, m.recipient, m.room, conversation, m.body, now, receipt_sent),
    )
    msgid = cur.lastrowid
    if m.recipient is not None:
        pending.add(m.recipient, 1)
    if m.client_id is not None:
        cur.execute(
            "INSERT OR REPLACE INTO send_keys (sender, client_id, message_id, created_at)"
            " VALUES (?, ?, ?, ?)",
            (m.sender, m.client_id, msgid, now),
        )
    return StoredMessage(msgid, m.sender, m.recipient, m.room, m.body, now)


def _ack(cur, recipient: str, msgid: int, now: float, pending: _PendingCounts) -> AckResult | None:
    cur.execute(
        "UPDATE messages SET delivered_at = ?"
        " WHERE id = ? AND recipient = ? AND delivered_at IS NULL RETURNING sender",
        (now, msgid, recipient),
    )
    row = cur.fetchone()
    if row is None:
        return None
    pending.add(recipient, -1)
    return AckResult(msgid, row[0], recipient, now)


_MESSAGE_COLUMNS = "id, sender, recipient, room, body, created_at"


def pending_messages_txn(cur, recipient: str, after_id: int, limit: int) -> list[StoredMessage]:
    cur.execute(
        f"SELECT {_MESSAGE_COLUMNS} FROM messages"
        " WHERE recipient = ? AND delivered_at IS NULL AND id > ?"
        " ORDER BY id LIMIT ?",
        (recipient, after_id, limit),
    )
    return [StoredMessage(*row) for row in cur.fetchall()]


def pending_receipts_txn(cur, sender: str) -> list[Receipt]:
    cur.execute(
        "SELECT id, recipient, delivered_at FROM messages"
        " WHERE sender = ? AND delivered_at IS NOT NULL AND receipt_sent = 0"
        " ORDER BY id",
        (sender,),
    )
    return [Receipt(*row) for row in cur.fetchall()]


def history_txn(
    cur, conversation: str, limit: int, direction: str | None, cursor: int | None
) -> list[StoredMessage]:
    if direction == "after":
        cur.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation = ? AND id > ?"
            " ORDER BY id LIMIT ?",
            (conversation, cursor, limit),
        )
        return [StoredMessage(*row) for row in cur.fetchall()]
    if direction == "before":
        cur.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation = ? AND id < ?"
            " ORDER BY id DESC LIMIT ?",
            (conversation, cursor, limit),
        )
    else:
        cur.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation = ?"
            " ORDER BY id DESC LIMIT ?",
            (conversation, limit),
        )
    return [StoredMessage(*row) for row in reversed(cur.fetchall())]


# --------------------------------------------------------------------------
# rooms


def load_memberships_txn(cur) -> dict[str, set[str]]:
    rooms: dict[str, set[str]] = {}
    cur.execute("SELECT name FROM rooms")
    for (name,) in cur.fetchall():
        rooms[name] = set()
    cur.execute("SELECT room, username FROM room_members")
    for room, username in cur.fetchall():
        rooms.setdefault(room, set()).add(username)
    return rooms


def rooms_of_txn(cur, username: str) -> set[str]:
    cur.execute("SELECT room FROM room_members WHERE username = ?", (username,))
    return {room for (room,) in cur.fetchall()}


def count_waiting_txn(cur) -> int:
    cur.execute("SELECT COALESCE(SUM(pending_count), 0) FROM users")
    return cur.fetchone()[0]


def join_room_txn(cur, room: str, username: str, now: float) -> bool:
    cur.execute("INSERT OR IGNORE INTO rooms (name, created_at) VALUES (?, ?)", (room, now))
    cur.execute(
        "INSERT OR IGNORE INTO room_members (room, username, joined_at) VALUES (?, ?, ?)",
        (room, username, now),
    )
    return cur.rowcount == 1


def part_room_txn(cur, room: str, username: str) -> bool:
    cur.execute("DELETE FROM room_members WHERE room = ? AND username = ?", (room, username))
    return cur.rowcount == 1


# --------------------------------------------------------------------------
# changes made outside the nodes (schema version 2)

#: Rows of the change log kept; nodes only ever read the highest id.
CHANGES_KEPT = 100


def record_change_txn(cur: sqlite3.Cursor, kind: str, now: float) -> None:
    """Note that something nodes hold in memory changed (inside the writer's
    transaction, which holds the write lock)."""
    cur.execute(
        "INSERT INTO changes (id, kind, created_at)"
        " SELECT COALESCE(MAX(id), 0) + 1, ?, ? FROM changes",
        (kind, now),
    )
    cur.execute(
        "DELETE FROM changes WHERE id <= (SELECT MAX(id) FROM changes) - ?", (CHANGES_KEPT,)
    )


def last_change_txn(cur: sqlite3.Cursor) -> int:
    """The id of the latest change noted, 0 if none."""
    cur.execute("SELECT COALESCE(MAX(id), 0) FROM changes")
    return int(cur.fetchone()[0])


# --------------------------------------------------------------------------
# catching up after a lost bus message


def last_message_id_txn(cur: sqlite3.Cursor) -> int:
    """The newest message id, 0 if none."""
    cur.execute("SELECT COALESCE(MAX(id), 0) FROM messages")
    return int(cur.fetchone()[0])


def room_messages_since_txn(cur: sqlite3.Cursor, after_id: int, limit: int) -> list[StoredMessage]:
    """Room messages with an id above ``after_id``, oldest first."""
    cur.execute(
        f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE id > ? AND room IS NOT NULL"
        " ORDER BY id LIMIT ?",
        (after_id, limit),
    )
    return [StoredMessage(*row) for row in cur.fetchall()]
