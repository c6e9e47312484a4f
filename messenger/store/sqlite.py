"""The embedded default store, SQLite, and its synchronous twin for tests.

Commits are durable (WAL with ``synchronous=FULL``); the service groups many
messages into one commit (see :mod:`messenger.batching`), which is what
makes that affordable.
"""

from __future__ import annotations

from typing import Any

from zope.interface import implementer

from messenger.store.database import DatabaseStore, ImmediateStore
from messenger.store.engines import SqliteEngine
from messenger.store.interface import IMessageStore


@implementer(IMessageStore)
class SqliteStore(DatabaseStore):
    def __init__(self, path: str, reactor: Any) -> None:
        super().__init__(SqliteEngine(path), reactor)
        self.path = path


@implementer(IMessageStore)
class ImmediateSqliteStore(ImmediateStore):
    """:class:`ImmediateStore` on an SQLite file (in memory by default)."""

    def __init__(self, path: str = ":memory:") -> None:
        super().__init__(SqliteEngine(path))
        self.path = path
