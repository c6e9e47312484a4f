"""The embedded default store, SQLite, and its synchronous twin for tests.

Commits are durable (WAL with ``synchronous=FULL``); the service groups many
messages into one commit (see :mod:`messenger.batching`), which is what
makes that affordable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import implementer

from messenger.store.database import DatabaseStore
from messenger.store.engines import SqliteEngine, Txn
from messenger.store.interface import IMessageStore

R = TypeVar("R")


@implementer(IMessageStore)
class SqliteStore(DatabaseStore):
    def __init__(self, path: str, reactor: Any) -> None:
        super().__init__(SqliteEngine(path), reactor)
        self.path = path


@implementer(IMessageStore)
class ImmediateSqliteStore(DatabaseStore):
    """The same SQL run at once on the calling thread, with already-fired
    Deferreds: for unit tests driven by ``task.Clock`` and for tools that
    have no reactor thread pool.  Never use it inside a running server: it
    blocks the reactor on the disk."""

    def __init__(self, path: str = ":memory:") -> None:
        self.path = path
        self.engine = SqliteEngine(path)
        self._conn = self.engine.connect()

    def _run(self, function: Callable[..., R], *args: Any) -> Deferred[R]:
        cursor = self._conn.cursor()
        try:
            result = function(Txn(self.engine, cursor), *args)
            self._conn.commit()
        except Exception:
            self._conn.rollback()
            return fail()
        finally:
            cursor.close()
        return succeed(result)

    def close(self) -> None:
        self._conn.close()
