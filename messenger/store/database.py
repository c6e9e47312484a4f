"""The store: the ``*_txn`` functions run through adbapi on one engine.

One class for both engines; what differs lives in the engine
(:mod:`messenger.store.engines`).  Each call runs its transaction function
in adbapi's thread pool and fires once the transaction has committed.

One connection does all the work on either engine, so calls run, and their
Deferreds fire, in the order they were made (see ``IMessageStore``).  On
SQLite that costs nothing (one writer at a time anyway).  On PostgreSQL the
throughput comes from group commit, not from parallel connections: one
batch is a handful of statements whatever its size, sent in three round
trips (pipeline mode), with every row-sized parameter an array (``unnest``).

Measured on this 2-core machine (shared, so noisy): inserting 100 / 1,000
rows in one transaction cost, per row, 7.9 / 5.3 us of client CPU with
``unnest``, 11.9 / 8.6 with ``executemany`` (which psycopg pipelines), 15.4
/ 12.7 with an explicit pipeline of single inserts and 19.9 / 13.1 with a
multi-row ``VALUES``; ``unnest`` was also the fastest in wall time at those
sizes.  An ACK batch of 100 as ``UPDATE ... FROM unnest(...)`` cost 16 us of
backend time per row, against 147 with ``WHERE id IN (...) AND recipient =
CASE id ...``.  The benchmark's W1 (200 clients, 40,000 messages, quick
sizes otherwise): SQLite 51-57 us of server CPU per message; PostgreSQL
81-90, of which 32-37 in PostgreSQL's processes (the node's own share is
SQLite's).  In PostgreSQL (pg_stat_statements, batches of 50) a message
costs about 23 us marking it delivered, 9 inserting it, 9 marking its
receipt handed over, 9 for the mailbox counters: row versions and index
entries, not round trips any more.

When PostgreSQL is away (stopped, restarting, the network cut) a call fails
with :class:`StorageUnavailable`; adbapi drops the broken connection and
the next call opens a new one, so the node recovers by itself once the
server is back.  A commit that fails this way may or may not have been
made: its messages were not acknowledged, and SEND's idempotency key lets a
client retry safely.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from twisted.enterprise import adbapi
from twisted.internet.defer import Deferred, fail, succeed
from twisted.python.failure import Failure
from zope.interface import implementer

from messenger.store import txns
from messenger.store.engines import DatabaseError, Engine, Txn
from messenger.store.interface import (
    BatchResult,
    IMessageStore,
    LoginRecord,
    NewMessage,
    Receipt,
    StorageUnavailable,
    StoredMessage,
    UserRecord,
)

R = TypeVar("R")


def prepare_database(engine: Engine) -> int:
    """Create or upgrade the database now, synchronously; its version.

    Run before the reactor starts, so that a database that cannot be used
    stops the server with a clear error and a failing exit status.
    """
    try:
        conn = engine.connect()
        try:
            version = txns.upgrade_schema_txn(Txn(engine, conn.cursor()))
            conn.commit()
            return version
        finally:
            conn.close()
    except engine.error_types() as e:
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DatabaseError(f"cannot use the database {engine.describe()}: {message}") from None


class _Pool(adbapi.ConnectionPool):
    """adbapi's pool, running each interaction on the raw DB-API cursor.

    Without adbapi's per-call connection and transaction wrappers (a
    ``__getattr__`` on every ``execute``).  A connection that cannot even
    roll back is broken (the server went away): it is dropped quietly and
    the next call connects again.  When that is found during the
    interaction, before the commit, nothing of it was committed (the server
    ends a transaction whose connection is gone), so it is run once more on
    a fresh connection: the first call after PostgreSQL came back works.
    A failed commit is never repeated: whether it was made is unknown.
    """

    def _runInteraction(self, interaction: Callable[..., R], *args: Any, **kw: Any) -> R:
        for attempt in (1, 2):
            conn = self.connect()
            try:
                cursor = conn.cursor()
                result = interaction(cursor, *args, **kw)
                cursor.close()
            except BaseException:
                if self._rolled_back(conn) or attempt == 2:
                    raise
                continue  # the connection was broken: once more, on a new one
            try:
                conn.commit()
            except BaseException:
                self._rolled_back(conn)
                raise
            return result
        raise AssertionError("unreachable")

    def _rolled_back(self, conn: Any) -> bool:
        """Roll back; False if the connection is broken (and now dropped)."""
        try:
            conn.rollback()
            return True
        except BaseException:
            self.disconnect(conn)
            return False


@implementer(IMessageStore)
class DatabaseStore:
    def __init__(self, engine: Engine, reactor: Any) -> None:
        self.engine = engine
        args, kwargs = engine.pool_arguments()
        self._pool = _Pool(
            engine.dbapi_name, *args, cp_min=1, cp_max=1, cp_reactor=reactor, **kwargs
        )

    def _interaction(self, cursor: Any, function: Callable[..., R], *args: Any) -> R:
        return function(Txn(self.engine, cursor), *args)

    def _unavailable(self, failure: Failure) -> Failure:
        if self.engine.is_unavailable(failure.value):
            return Failure(StorageUnavailable(str(failure.value).strip()))
        return failure

    def _run(self, function: Callable[..., R], *args: Any) -> Deferred[R]:
        d: Deferred[R] = self._pool.runInteraction(self._interaction, function, *args)
        d.addErrback(self._unavailable)
        return d

    def open(self) -> Deferred[int]:
        return self._run(txns.upgrade_schema_txn)

    def close(self) -> None:
        self._pool.close()

    def create_user(
        self, username: str, password_hash: str, display_name: str, now: float
    ) -> Deferred[bool]:
        return self._run(txns.create_user_txn, username, password_hash, display_name, now)

    def get_user(self, username: str) -> Deferred[UserRecord | None]:
        return self._run(txns.get_user_txn, username)

    def set_display_name(self, username: str, display_name: str) -> Deferred[None]:
        return self._run(txns.set_display_name_txn, username, display_name)

    def set_password_hash(self, username: str, password_hash: str) -> Deferred[None]:
        return self._run(txns.set_password_hash_txn, username, password_hash)

    def set_last_seen(self, usernames: Sequence[str], when: float) -> Deferred[None]:
        if isinstance(usernames, str):
            raise TypeError("set_last_seen takes a sequence of usernames")
        return self._run(txns.set_last_seen_txn, list(usernames), when)

    def add_token(self, username: str, token_hash: str, expires_at: float) -> Deferred[None]:
        return self._run(txns.add_token_txn, username, token_hash, expires_at)

    def login_record(self, username: str, pending_page: int = 0) -> Deferred[LoginRecord | None]:
        return self._run(txns.login_record_txn, username, pending_page)

    def resume_record(
        self, username: str, token_hash: str, now: float, pending_page: int = 0
    ) -> Deferred[LoginRecord | None]:
        return self._run(txns.resume_record_txn, username, token_hash, now, pending_page)

    def commit_batch(
        self,
        messages: Sequence[NewMessage],
        acks: Sequence[tuple[str, int]],
        receipts_sent: Sequence[int],
        now: float,
        max_pending: int,
    ) -> Deferred[BatchResult]:
        return self._run(txns.commit_batch_txn, messages, acks, receipts_sent, now, max_pending)

    def pending_messages(
        self, recipient: str, after_id: int, limit: int
    ) -> Deferred[list[StoredMessage]]:
        return self._run(txns.pending_messages_txn, recipient, after_id, limit)

    def pending_receipts(self, sender: str) -> Deferred[list[Receipt]]:
        return self._run(txns.pending_receipts_txn, sender)

    def history(
        self, conversation: str, limit: int, direction: str | None, cursor: int | None
    ) -> Deferred[list[StoredMessage]]:
        return self._run(txns.history_txn, conversation, limit, direction, cursor)

    def count_waiting(self) -> Deferred[int]:
        return self._run(txns.count_waiting_txn)

    def load_memberships(self) -> Deferred[dict[str, set[str]]]:
        return self._run(txns.load_memberships_txn)

    def join_room(self, room: str, username: str, now: float) -> Deferred[bool]:
        return self._run(txns.join_room_txn, room, username, now)

    def part_room(self, room: str, username: str) -> Deferred[bool]:
        return self._run(txns.part_room_txn, room, username)

    def last_change(self) -> Deferred[int]:
        return self._run(txns.last_change_txn)

    def last_message_id(self) -> Deferred[int]:
        return self._run(txns.last_message_id_txn)

    def room_messages_since(self, after_id: int, limit: int) -> Deferred[list[StoredMessage]]:
        return self._run(txns.room_messages_since_txn, after_id, limit)


@implementer(IMessageStore)
class ImmediateStore(DatabaseStore):
    """The same SQL run at once on the calling thread, with already-fired
    Deferreds: for unit tests driven by ``task.Clock`` and for tools that
    have no reactor thread pool.  Never use it inside a running server: it
    blocks the reactor on the database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conn = engine.connect()

    def _run(self, function: Callable[..., R], *args: Any) -> Deferred[R]:
        cursor = self._conn.cursor()
        try:
            result = function(Txn(self.engine, cursor), *args)
            self._conn.commit()
        except Exception:
            failure = Failure()
            try:
                self._conn.rollback()
            except Exception:
                pass
            return fail(self._unavailable(failure))
        finally:
            cursor.close()
        return succeed(result)

    def close(self) -> None:
        self._conn.close()
