"""Storage: an interface (``IMessageStore``), one implementation on two
database engines (SQLite, the embedded default, and PostgreSQL for several
nodes), and the one factory both the server and the admin tool use.

Nothing above this package knows SQL, and nothing in it knows the wire
format.
"""

from __future__ import annotations

from typing import Any

from messenger.store.engines import DatabaseError, Engine, engine_for, is_postgres_uri
from messenger.store.interface import (
    AckResult,
    BatchResult,
    IMessageStore,
    LoginRecord,
    MessageRejected,
    NewMessage,
    Receipt,
    StorageUnavailable,
    StoredMessage,
    UserRecord,
)


def prepare_database(database: str) -> int:
    """Create or upgrade the database of ``--db`` (a path, or a
    ``postgresql://`` URI) synchronously, before the reactor starts; its
    schema version.  Raises :class:`DatabaseError` with one clear line."""
    from messenger.store.database import prepare_database as prepare

    return prepare(engine_for(database))


def open_store(database: str, reactor: Any) -> IMessageStore:
    """The store of ``--db``: a path (SQLite) or a ``postgresql://`` URI."""
    from messenger.store.database import DatabaseStore

    store: IMessageStore = DatabaseStore(engine_for(database), reactor)
    return store


__all__ = [
    "AckResult",
    "BatchResult",
    "DatabaseError",
    "Engine",
    "IMessageStore",
    "LoginRecord",
    "MessageRejected",
    "NewMessage",
    "Receipt",
    "StorageUnavailable",
    "StoredMessage",
    "UserRecord",
    "engine_for",
    "is_postgres_uri",
    "open_store",
    "prepare_database",
]
