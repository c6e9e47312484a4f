"""The embedded default store: SQLite through adbapi.

One connection in one thread does all the work: SQLite allows one writer at
a time anyway, and a single thread keeps every operation in submission
order.  Commits are durable (WAL with ``synchronous=FULL``); the service
groups many messages into one commit (see :mod:`messenger.batching`), which
is what makes that affordable.
"""

from __future__ import annotations

import sqlite3
from typing import cast

from twisted.enterprise import adbapi
from twisted.internet.defer import Deferred
from zope.interface import implementer

from messenger.store import txns
from messenger.store.interface import IMessageStore, StoredMessage

#: How long a statement waits for another process (say messenger-admin)
#: holding the write lock, in seconds.
BUSY_TIMEOUT = 10.0


def _configure(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")


class DatabaseError(Exception):
    """The database cannot be used; the message says why, in one line."""


def prepare_database(path: str) -> int:
    """Create or upgrade the database at ``path`` now, synchronously.

    Run before the reactor starts, so that a database that cannot be opened
    stops the server with a clear error and a failing exit status.
    """
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT)
        try:
            _configure(conn)
            version = txns.upgrade_schema_txn(conn.cursor())
            conn.commit()
            return version
        finally:
            conn.close()
    except sqlite3.Error as e:
        raise DatabaseError(f"cannot use the database {path}: {e}") from None


@implementer(IMessageStore)
class SqliteStore:
    def __init__(self, path: str, reactor) -> None:
        self.path = path
        self._pool = adbapi.ConnectionPool(
            "sqlite3",
            path,
            check_same_thread=False,
            timeout=BUSY_TIMEOUT,
            cp_min=1,
            cp_max=1,
            cp_openfun=_configure,
            cp_reactor=reactor,
        )

    def _run(self, txn_function, *args):
        return self._pool.runInteraction(txn_function, *args)

    def open(self):
        return self._run(txns.upgrade_schema_txn)

    def close(self):
        self._pool.close()

    def create_user(self, username, password_hash, display_name, now):
        return self._run(txns.create_user_txn, username, password_hash, display_name, now)

    def get_user(self, username):
        return self._run(txns.get_user_txn, username)

    def set_display_name(self, username, display_name):
        return self._run(txns.set_display_name_txn, username, display_name)

    def set_password_hash(self, username, password_hash):
        return self._run(txns.set_password_hash_txn, username, password_hash)

    def set_last_seen(self, usernames, when):
        if isinstance(usernames, str):
            raise TypeError("set_last_seen takes a sequence of usernames")
        return self._run(txns.set_last_seen_txn, list(usernames), when)

    def add_token(self, username, token_hash, expires_at):
        return self._run(txns.add_token_txn, username, token_hash, expires_at)

    def login_record(self, username):
        return self._run(txns.login_record_txn, username)

    def resume_record(self, username, token_hash, now):
        return self._run(txns.resume_record_txn, username, token_hash, now)

    def commit_batch(self, messages, acks, receipts_sent, now, max_pending):
        return self._run(txns.commit_batch_txn, messages, acks, receipts_sent, now, max_pending)

    def pending_messages(self, recipient, after_id, limit):
        return self._run(txns.pending_messages_txn, recipient, after_id, limit)

    def pending_receipts(self, sender):
        return self._run(txns.pending_receipts_txn, sender)

    def history(self, conversation, limit, direction, cursor):
        return self._run(txns.history_txn, conversation, limit, direction, cursor)

    def count_waiting(self):
        return self._run(txns.count_waiting_txn)

    def load_memberships(self):
        return self._run(txns.load_memberships_txn)

    def join_room(self, room, username, now):
        return self._run(txns.join_room_txn, room, username, now)

    def part_room(self, room, username):
        return self._run(txns.part_room_txn, room, username)

    def last_change(self) -> Deferred[int]:
        return cast("Deferred[int]", self._run(txns.last_change_txn))

    def last_message_id(self) -> Deferred[int]:
        return cast("Deferred[int]", self._run(txns.last_message_id_txn))

    def room_messages_since(self, after_id: int, limit: int) -> Deferred[list[StoredMessage]]:
        return cast(
            "Deferred[list[StoredMessage]]",
            self._run(txns.room_messages_since_txn, after_id, limit),
        )


@implementer(IMessageStore)
class ImmediateSqliteStore(SqliteStore):
    """The same SQL run at once on the calling thread, with already-fired
    Deferreds: for unit tests driven by ``task.Clock`` and for tools that
    have no reactor thread pool.  Never use it inside a running server: it
    blocks the reactor on the disk."""

    def __init__(self, path: str = ":memory:") -> None:
        self.path = path
        self._conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT)
        _configure(self._conn)

    def _run(self, txn_function, *args):
        from twisted.internet.defer import fail, succeed

        cursor = self._conn.cursor()
        try:
            result = txn_function(cursor, *args)
            self._conn.commit()
        except Exception:
            self._conn.rollback()
            return fail()
        finally:
            cursor.close()
        return succeed(result)

    def close(self):
        self._conn.close()
