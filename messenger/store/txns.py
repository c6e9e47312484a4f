"""The SQL of Messenger, written once, as synchronous transaction functions.

Each ``*_txn`` function takes a :class:`~messenger.store.engines.Txn` (a
DB-API cursor that knows its engine) and runs inside a transaction that its
caller (adbapi's ``runInteraction``, or the admin tool) commits.  Statements
use ``?`` parameters and the syntax SQLite and PostgreSQL share
(``ON CONFLICT``, ``RETURNING``); the engine converts the parameter style
and says what differs (the write lock, the catalog), as Synapse's database
engines do, rather than the SQL being written twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from importlib import resources
from importlib.resources.abc import Traversable
from typing import TypeVar

from messenger.store.engines import MAX_PARAMETERS, Cursor, Txn, inserted_ids
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
from messenger.wire import GENERAL_ROOM

SEND_KEY_LIFETIME = 24 * 60 * 60

T = TypeVar("T")

_SCHEMA_PACKAGE = "messenger.store.schema"


def schema_versions(
    engine_name: str, files: Iterable[Traversable] | None = None
) -> list[tuple[int, str]]:
    """Every schema file (by default those shipped with the package), as
    (version, sql), oldest first.

    ``vN.sql`` is shared; ``vN.<engine>.sql`` (``v3.postgresql.sql``), if
    present, replaces it for that engine, for what cannot be said in both.
    """
    shared: dict[int, str] = {}
    own: dict[int, str] = {}
    for entry in files if files is not None else resources.files(_SCHEMA_PACKAGE).iterdir():
        name = entry.name
        if not (name.startswith("v") and name.endswith(".sql")):
            continue
        number, _, engine = name[1:-4].partition(".")
        if not number.isdigit():
            continue
        if not engine:
            shared[int(number)] = entry.read_text(encoding="utf-8")
        elif engine == engine_name:
            own[int(number)] = entry.read_text(encoding="utf-8")
    return sorted({**shared, **own}.items())


def latest_schema_version(engine_name: str) -> int:
    return schema_versions(engine_name)[-1][0]


def current_version_txn(txn: Txn) -> int:
    if not txn.engine.table_exists(txn, "schema_version"):
        return 0
    txn.execute("SELECT version FROM schema_version")
    row = txn.fetchone()
    return int(row[0]) if row else 0


def upgrade_schema_txn(txn: Txn, versions: Sequence[tuple[int, str]] | None = None) -> int:
    """Apply every schema file newer than the database.  Returns the version.

    All of it in one transaction, under the write lock: on SQLite the lock
    also begins the transaction (Python's sqlite3 begins one implicitly only
    before data changes, so each CREATE would otherwise commit on its own);
    on PostgreSQL it keeps two nodes starting at once from both upgrading.
    """
    engine = txn.engine
    engine.begin_write(txn)
    version = current_version_txn(txn)
    if version == 0:
        txn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        txn.execute("INSERT INTO schema_version (version) VALUES (0)")
    if versions is None:
        versions = schema_versions(engine.name)
    for number, sql in versions:
        if number <= version:
            continue
        for statement in _statements(sql):
            txn.execute(engine.schema_statement(statement))
        txn.execute("UPDATE schema_version SET version = ?", (number,))
        version = number
    return version


def _statements(sql: str) -> list[str]:
    # Schema files hold plain DDL and INSERTs; no statement holds a ';'
    # inside a string, so splitting on it is safe.
    lines = [line.split("--", 1)[0] for line in sql.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


# --------------------------------------------------------------------------
# accounts

USER_COLUMNS = "username, password_hash, display_name, created_at, last_seen, pending_count"
_USER_COLUMNS_OF_U = ", ".join(f"u.{column}" for column in USER_COLUMNS.split(", "))


def create_user_txn(
    txn: Txn, username: str, password_hash: str, display_name: str, now: float
) -> bool:
    txn.execute(
        "INSERT INTO users (username, password_hash, display_name, created_at)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (username) DO NOTHING",
        (username, password_hash, display_name, now),
    )
    if txn.rowcount != 1:
        return False
    txn.execute(
        "INSERT INTO room_members (room, username, joined_at) VALUES (?, ?, ?)"
        " ON CONFLICT DO NOTHING",
        (GENERAL_ROOM, username, now),
    )
    return True


def get_user_txn(txn: Txn, username: str) -> UserRecord | None:
    txn.execute(f"SELECT {USER_COLUMNS} FROM users WHERE username = ?", (username,))
    row = txn.fetchone()
    return UserRecord(*row) if row else None


def set_display_name_txn(txn: Txn, username: str, display_name: str) -> None:
    txn.execute("UPDATE users SET display_name = ? WHERE username = ?", (display_name, username))


def set_password_hash_txn(txn: Txn, username: str, password_hash: str) -> None:
    txn.execute("UPDATE users SET password_hash = ? WHERE username = ?", (password_hash, username))
    txn.execute("DELETE FROM tokens WHERE username = ?", (username,))


def set_last_seen_txn(txn: Txn, usernames: Sequence[str], when: float) -> None:
    if not usernames:
        return  # not even an empty transaction
    txn.executemany(
        "UPDATE users SET last_seen = ? WHERE username = ?", [(when, u) for u in usernames]
    )


def add_token_txn(txn: Txn, username: str, token_hash: str, expires_at: float) -> None:
    txn.execute(
        "INSERT INTO tokens (token_hash, username, expires_at) VALUES (?, ?, ?)",
        (token_hash, username, expires_at),
    )


def token_valid_txn(txn: Txn, username: str, token_hash: str, now: float) -> bool:
    txn.execute(
        "SELECT expires_at FROM tokens WHERE token_hash = ? AND username = ?",
        (token_hash, username),
    )
    row = txn.fetchone()
    return row is not None and bool(row[0] > now)


def login_record_txn(txn: Txn, username: str, pending_page: int = 0) -> LoginRecord | None:
    """The account and its rooms; with ``pending_page`` above 0, also that
    many of its oldest pending messages and all its pending receipts."""
    txn.engine.begin_reads(txn)
    user = get_user_txn(txn, username)
    if user is None:
        return None
    return _login_record(txn, user, pending_page)


def _login_record(txn: Txn, user: UserRecord, pending_page: int) -> LoginRecord:
    username = user.username
    rooms = frozenset(rooms_of_txn(txn, username))
    if pending_page <= 0:
        return LoginRecord(user, rooms)
    return LoginRecord(
        user,
        rooms,
        pending_messages_txn(txn, username, 0, pending_page),
        pending_receipts_txn(txn, username),
    )


def resume_record_txn(
    txn: Txn, username: str, token_hash: str, now: float, pending_page: int = 0
) -> LoginRecord | None:
    """:func:`login_record_txn` if the token is the user's and unexpired;
    the token and the account are read in one statement."""
    txn.engine.begin_reads(txn)
    txn.execute(
        f"SELECT {_USER_COLUMNS_OF_U} FROM tokens t JOIN users u ON u.username = t.username"
        " WHERE t.token_hash = ? AND t.username = ? AND t.expires_at > ?",
        (token_hash, username, now),
    )
    row = txn.fetchone()
    if row is None:
        return None
    return _login_record(txn, UserRecord(*row), pending_page)


# --------------------------------------------------------------------------
# messages


def commit_batch_txn(
    txn: Txn,
    messages: Sequence[NewMessage],
    acks: Sequence[tuple[str, int]],
    receipts_sent: Sequence[int],
    now: float,
    max_pending: int,
) -> BatchResult:
    """One group commit, in a constant number of statements and round trips.

    Statements per row are what a batch costs (on PostgreSQL each is a
    round trip), so every kind of read and write is one statement for the
    whole batch (or a few, for batches larger than :data:`MAX_PARAMETERS`):
    earlier SENDs, mailbox counters, rooms and memberships, the inserts,
    the idempotency keys, the ACKs, the counters written back, the receipt
    marks.  Statements that do not wait for each other are submitted
    together (PostgreSQL's pipeline): the reads; then the inserts, ACKs and
    receipt marks; then the keys and counters, sent with the commit.

    Outcomes are those of handling the batch in order: a message is checked
    against the mailbox counts the earlier ones of the batch left, a SEND
    repeated inside the batch is a duplicate of the first.
    """
    engine = txn.engine
    with engine.pipeline(txn):
        # The write lock first: the counters read here are written back at
        # the end, and ids are allocated under it (see IMessageStore).
        engine.begin_write(txn)
        recipients = {m.recipient for m in messages if m.recipient is not None}
        counts = _PendingCounts.submit(txn, recipients | {recipient for recipient, _ in acks})
        earlier_sends = _submit_earlier_sends(txn, messages)
        room_checks = _submit_room_checks(txn, messages)
        pending = _PendingCounts(txn, counts)
        earlier = _earlier_sends(earlier_sends, now)
        rooms, memberships = _room_checks(*room_checks)

        outcomes: list[StoredMessage | MessageRejected | int] = []  # int: index into rows
        rows: list[_Row] = []
        keys: dict[tuple[str, str], int] = {}  # this batch's SEND keys -> index into rows
        for m in messages:
            key = (m.sender, m.client_id) if m.client_id is not None else None
            if key is not None:
                if key in earlier:
                    outcomes.append(earlier[key])
                    continue
                if key in keys:
                    outcomes.append(-1 - keys[key])  # a duplicate of a row of this batch
                    continue
            if m.recipient is not None:
                count = pending.get(m.recipient)
                if count is None:
                    outcomes.append(MessageRejected.NO_SUCH_USER)
                    continue
                if count >= max_pending:
                    outcomes.append(MessageRejected.MAILBOX_FULL)
                    continue
                pending.add(m.recipient, 1)
                conversation = conversation_key(m.sender, m.recipient)
                receipt_sent = 0
            else:
                assert m.room is not None  # a message has a recipient or a room
                if m.room not in rooms:
                    outcomes.append(MessageRejected.NO_SUCH_ROOM)
                    continue
                if (m.room, m.sender) not in memberships:
                    outcomes.append(MessageRejected.NOT_A_MEMBER)
                    continue
                conversation = m.room
                receipt_sent = 1  # room messages have no receipts
            if key is not None:
                keys[key] = len(rows)
            outcomes.append(len(rows))
            rows.append((m.sender, m.recipient, m.room, conversation, m.body, now, receipt_sent))

        inserts = engine.submit_insert(txn, _INSERT_MESSAGE, _INSERT_MESSAGE_TYPES, rows)
        acked = _submit_acks(txn, acks, now)
        for chunk in _chunks(receipts_sent, MAX_PARAMETERS):
            condition, params = engine.in_list("id", "int8", chunk)
            txn.submit(f"UPDATE messages SET receipt_sent = 1 WHERE {condition}", params)
        ids = inserted_ids(inserts)
        ack_results = _ack_results(acked, acks, now, pending)

        if keys:
            _submit_send_keys(
                txn, [(sender, client_id, ids[i], now) for (sender, client_id), i in keys.items()]
            )
        pending.write()

    results: list[StoredMessage | MessageRejected] = []
    for outcome in outcomes:
        if isinstance(outcome, int):
            index = outcome if outcome >= 0 else -1 - outcome
            sender, recipient, room, _, body, _, _ = rows[index]
            results.append(
                StoredMessage(ids[index], sender, recipient, room, body, now, duplicate=outcome < 0)
            )
        else:
            results.append(outcome)
    return BatchResult(results, ack_results)


#: A message row to insert: sender, recipient, room, conversation, body,
#: created_at, receipt_sent.
_Row = tuple[str, str | None, str | None, str, str, float, int]

_INSERT_MESSAGE = (
    "INSERT INTO messages (sender, recipient, room, conversation, body, created_at, receipt_sent)"
)
_INSERT_MESSAGE_TYPES = ("text", "text", "text", "text", "text", "float8", "int8")


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class _PendingCounts:
    """Each recipient's count of unacknowledged messages during a batch:
    read in one statement, written back in one."""

    @staticmethod
    def submit(txn: Txn, usernames: Iterable[str]) -> list[Cursor]:
        wanted = list(usernames)
        cursors = []
        for chunk in _chunks(wanted, MAX_PARAMETERS):
            condition, params = txn.engine.in_list("username", "text", chunk)
            cursors.append(
                txn.submit(f"SELECT username, pending_count FROM users WHERE {condition}", params)
            )
        return cursors

    def __init__(self, txn: Txn, submitted: Sequence[Cursor]) -> None:
        self._txn = txn
        self._counts: dict[str, int] = {}
        self._changed: set[str] = set()
        for cursor in submitted:
            for username, count in cursor.fetchall():
                self._counts[username] = count

    def get(self, username: str) -> int | None:
        """The count, or None if there is no such user."""
        return self._counts.get(username)

    def add(self, username: str, n: int) -> None:
        count = self._counts.get(username)
        if count is not None:
            self._counts[username] = max(count + n, 0)
            self._changed.add(username)

    def write(self) -> None:
        changed = [(u, self._counts[u]) for u in self._changed]
        engine = self._txn.engine
        for chunk in _chunks(changed, MAX_PARAMETERS // 2):
            rows, params = engine.rows("a", ("text", "int8"), chunk)
            self._txn.submit(
                f"UPDATE users SET pending_count = a.column2 FROM {rows}"
                " WHERE users.username = a.column1",
                params,
            )


def _submit_earlier_sends(txn: Txn, messages: Sequence[NewMessage]) -> list[Cursor]:
    """Look up the messages stored by earlier SENDs of this batch's keys."""
    keys = list({(m.sender, m.client_id) for m in messages if m.client_id is not None})
    cursors = []
    for chunk in _chunks(keys, MAX_PARAMETERS // 2):
        rows, params = txn.engine.rows("a", ("text", "text"), chunk)
        cursors.append(
            txn.submit(
                "SELECT k.sender, k.client_id, k.message_id, k.created_at, m.recipient, m.room,"
                f" m.body, m.created_at FROM {rows}"
                " JOIN send_keys k ON k.sender = a.column1 AND k.client_id = a.column2"
                " JOIN messages m ON m.id = k.message_id",
                params,
            )
        )
    return cursors


def _earlier_sends(submitted: Sequence[Cursor], now: float) -> dict[tuple[str, str], StoredMessage]:
    """Those earlier messages still within their key's lifetime, marked
    duplicate."""
    found: dict[tuple[str, str], StoredMessage] = {}
    for cursor in submitted:
        for (
            sender,
            client_id,
            msgid,
            key_created,
            recipient,
            room,
            body,
            created,
        ) in cursor.fetchall():
            if key_created > now - SEND_KEY_LIFETIME:
                found[(sender, client_id)] = StoredMessage(
                    msgid, sender, recipient, room, body, created, duplicate=True
                )
    return found


def _submit_send_keys(txn: Txn, keys: Sequence[tuple[str, str, int, float]]) -> None:
    for chunk in _chunks(keys, MAX_PARAMETERS // 4):
        rows, params = txn.engine.rows("a", ("text", "text", "int8", "float8"), chunk)
        # "WHERE true": SQLite's parser needs it between a SELECT and ON CONFLICT.
        txn.submit(
            "INSERT INTO send_keys (sender, client_id, message_id, created_at)"
            f" SELECT a.column1, a.column2, a.column3, a.column4 FROM {rows} WHERE true"
            " ON CONFLICT (sender, client_id)"
            " DO UPDATE SET message_id = excluded.message_id, created_at = excluded.created_at",
            params,
        )


def _submit_room_checks(
    txn: Txn, messages: Sequence[NewMessage]
) -> tuple[list[Cursor], list[Cursor]]:
    """Look up which rooms of the batch exist, and which (room, sender)
    pairs are memberships."""
    pairs = list({(m.room, m.sender) for m in messages if m.room is not None})
    names = list({room for room, _ in pairs})
    rooms = []
    for chunk in _chunks(names, MAX_PARAMETERS):
        condition, params = txn.engine.in_list("name", "text", chunk)
        rooms.append(txn.submit(f"SELECT name FROM rooms WHERE {condition}", params))
    members = []
    for pair_chunk in _chunks(pairs, MAX_PARAMETERS // 2):
        rows, params = txn.engine.rows("a", ("text", "text"), pair_chunk)
        members.append(
            txn.submit(
                f"SELECT m.room, m.username FROM {rows}"
                " JOIN room_members m ON m.room = a.column1 AND m.username = a.column2",
                params,
            )
        )
    return rooms, members


def _room_checks(
    rooms: Sequence[Cursor], members: Sequence[Cursor]
) -> tuple[set[str], set[tuple[str, str]]]:
    found_rooms = {name for cursor in rooms for (name,) in cursor.fetchall()}
    found_members = {(room, user) for cursor in members for room, user in cursor.fetchall()}
    return found_rooms, found_members


def _submit_acks(txn: Txn, acks: Sequence[tuple[str, int]], now: float) -> list[Cursor]:
    """Mark acknowledged messages delivered: one statement per batch.  An
    ACK counts only from the message's recipient, and only once."""
    pairs = list(dict.fromkeys((msgid, recipient) for recipient, msgid in acks))
    cursors = []
    for chunk in _chunks(pairs, MAX_PARAMETERS // 2):
        rows, params = txn.engine.rows("a", ("int8", "text"), chunk)
        cursors.append(
            txn.submit(
                f"UPDATE messages SET delivered_at = ? FROM {rows}"
                " WHERE messages.id = a.column1 AND messages.recipient = a.column2"
                " AND messages.delivered_at IS NULL"
                " RETURNING messages.id, messages.recipient, messages.sender",
                [now, *params],
            )
        )
    return cursors


def _ack_results(
    submitted: Sequence[Cursor],
    acks: Sequence[tuple[str, int]],
    now: float,
    pending: _PendingCounts,
) -> list[AckResult | None]:
    acked: dict[tuple[int, str], str] = {}
    for cursor in submitted:
        acked.update(((msgid, recipient), sender) for msgid, recipient, sender in cursor.fetchall())
    results: list[AckResult | None] = []
    for recipient, msgid in acks:
        sender = acked.pop((msgid, recipient), None)
        if sender is None:
            results.append(None)
        else:
            pending.add(recipient, -1)
            results.append(AckResult(msgid, sender, recipient, now))
    return results


_MESSAGE_COLUMNS = "id, sender, recipient, room, body, created_at"


def pending_messages_txn(
    txn: Txn, recipient: str, after_id: int, limit: int
) -> list[StoredMessage]:
    txn.execute(
        f"SELECT {_MESSAGE_COLUMNS} FROM messages"
        " WHERE recipient = ? AND delivered_at IS NULL AND id > ?"
        " ORDER BY id LIMIT ?",
        (recipient, after_id, limit),
    )
    return [StoredMessage(*row) for row in txn.fetchall()]


def pending_receipts_txn(txn: Txn, sender: str) -> list[Receipt]:
    txn.execute(
        "SELECT id, recipient, delivered_at FROM messages"
        " WHERE sender = ? AND delivered_at IS NOT NULL AND receipt_sent = 0"
        " ORDER BY id",
        (sender,),
    )
    return [Receipt(*row) for row in txn.fetchall()]


def history_txn(
    txn: Txn, conversation: str, limit: int, direction: str | None, cursor: int | None
) -> list[StoredMessage]:
    if direction == "after":
        txn.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation = ? AND id > ?"
            " ORDER BY id LIMIT ?",
            (conversation, cursor, limit),
        )
        return [StoredMessage(*row) for row in txn.fetchall()]
    if direction == "before":
        txn.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation = ? AND id < ?"
            " ORDER BY id DESC LIMIT ?",
            (conversation, cursor, limit),
        )
    else:
        txn.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation = ?"
            " ORDER BY id DESC LIMIT ?",
            (conversation, limit),
        )
    return [StoredMessage(*row) for row in reversed(txn.fetchall())]


# --------------------------------------------------------------------------
# rooms


def load_memberships_txn(txn: Txn) -> dict[str, set[str]]:
    rooms: dict[str, set[str]] = {}
    txn.execute("SELECT name FROM rooms")
    for (name,) in txn.fetchall():
        rooms[name] = set()
    txn.execute("SELECT room, username FROM room_members")
    for room, username in txn.fetchall():
        rooms.setdefault(room, set()).add(username)
    return rooms


def rooms_of_txn(txn: Txn, username: str) -> set[str]:
    txn.execute("SELECT room FROM room_members WHERE username = ?", (username,))
    return {room for (room,) in txn.fetchall()}


def count_waiting_txn(txn: Txn) -> int:
    txn.execute("SELECT COALESCE(SUM(pending_count), 0) FROM users")
    return int(txn.fetchone()[0])  # PostgreSQL's SUM of BIGINT is a NUMERIC


def join_room_txn(txn: Txn, room: str, username: str, now: float) -> bool:
    txn.execute(
        "INSERT INTO rooms (name, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING", (room, now)
    )
    txn.execute(
        "INSERT INTO room_members (room, username, joined_at) VALUES (?, ?, ?)"
        " ON CONFLICT DO NOTHING",
        (room, username, now),
    )
    return txn.rowcount == 1


def part_room_txn(txn: Txn, room: str, username: str) -> bool:
    txn.execute("DELETE FROM room_members WHERE room = ? AND username = ?", (room, username))
    return txn.rowcount == 1


# --------------------------------------------------------------------------
# changes made outside the nodes (schema version 2)

#: Rows of the change log kept; nodes only ever read the highest id.
CHANGES_KEPT = 100


def record_change_txn(txn: Txn, kind: str, now: float) -> None:
    """Note that something nodes hold in memory changed (inside the writer's
    transaction, which holds the write lock)."""
    txn.execute(
        "INSERT INTO changes (id, kind, created_at)"
        " SELECT COALESCE(MAX(id), 0) + 1, ?, ? FROM changes",
        (kind, now),
    )
    txn.execute(
        "DELETE FROM changes WHERE id <= (SELECT MAX(id) FROM changes) - ?", (CHANGES_KEPT,)
    )


def last_change_txn(txn: Txn) -> int:
    """The id of the latest change noted, 0 if none."""
    txn.execute("SELECT COALESCE(MAX(id), 0) FROM changes")
    return int(txn.fetchone()[0])


# --------------------------------------------------------------------------
# catching up after a lost bus message


def last_message_id_txn(txn: Txn) -> int:
    """The newest message id, 0 if none."""
    txn.execute("SELECT COALESCE(MAX(id), 0) FROM messages")
    return int(txn.fetchone()[0])


def room_messages_since_txn(txn: Txn, after_id: int, limit: int) -> list[StoredMessage]:
    """Room messages with an id above ``after_id``, oldest first."""
    txn.execute(
        f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE id > ? AND room IS NOT NULL"
        " ORDER BY id LIMIT ?",
        (after_id, limit),
    )
    return [StoredMessage(*row) for row in txn.fetchall()]
