"""Opening the server's database from the admin tool, on either engine.

The tool works on the very database a running server uses, through the
server's engine (:mod:`messenger.store.engines`): an SQLite file with the
server's PRAGMAs, or a ``postgresql://`` URI.  It does each command in one
short transaction.  Readers never wait; a write waits up to the busy
timeout for the server's current commit (SQLite's busy timeout, or
PostgreSQL's ``lock_timeout`` on the shared write lock), then gives up with
:class:`DatabaseLocked`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from messenger.admin import AdminError
from messenger.store import admin_txns, txns
from messenger.store.engines import BUSY_TIMEOUT, Txn, engine_for, is_postgres_uri

#: The server's own (messenger.store.engines.BUSY_TIMEOUT).
DEFAULT_BUSY_TIMEOUT = BUSY_TIMEOUT


class DatabaseLocked(AdminError):
    pass


class Database:
    """One connection to a Messenger database, for one admin command.

    ``create``: make the database (with the schema) if it does not exist
    (SQLite: the file; PostgreSQL: the schema in an empty database); if it
    was made here and the command fails, :meth:`discard` removes it again.
    """

    def __init__(
        self, path: str, busy_timeout: float = DEFAULT_BUSY_TIMEOUT, create: bool = False
    ) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self.created = False
        self.engine = engine_for(path, busy_timeout)
        self.where = self.engine.describe()
        self._create = create
        self.conn: Any = None
        postgres = is_postgres_uri(path)
        if not postgres and os.path.isdir(path):
            raise AdminError(f"{path} is a directory, not a database file")
        exists = postgres or os.path.exists(path)
        if not exists and not create:
            raise AdminError(
                f"no database at {path}: give the server's database with --db "
                "(or --config), or create one with 'import --create'"
            )
        try:
            self.conn = self.engine.connect_manual(create=not exists)
        except self.engine.error_types() as e:
            raise self._translate(e) from None
        self.created = not exists
        try:
            self._check_schema()
        except BaseException:
            self.close()
            self.discard()
            raise

    # -- schema ---------------------------------------------------------------

    def _check_schema(self) -> None:
        with self.read() as txn:
            version, has_tables = admin_txns.is_messenger_database_txn(txn)
        latest = txns.latest_schema_version(self.engine.name)
        if version == 0:
            if has_tables:
                raise AdminError(f"{self.where} is a database, but not a Messenger one")
            if not (self.created or (self._create and is_postgres_uri(self.path))):
                raise AdminError(
                    f"{self.where} is empty: start the server once to initialise it, "
                    "or use 'import --create'"
                )
            with self.write() as txn:
                txns.upgrade_schema_txn(txn)
        elif version > latest:
            raise AdminError(
                f"{self.where} has schema version {version}, newer than this "
                f"messenger-admin knows ({latest}): use the messenger-admin of that server"
            )
        elif version < latest:
            raise AdminError(
                f"{self.where} has schema version {version}; this messenger-admin needs "
                f"{latest}: start the new server once to upgrade the database"
            )

    # -- transactions ---------------------------------------------------

    @contextmanager
    def read(self) -> Iterator[Txn]:
        """A read transaction: every read inside sees one snapshot."""
        with self._transaction(self.engine.begin_read) as txn:
            yield txn

    @contextmanager
    def write(self) -> Iterator[Txn]:
        """A write transaction: committed if the block ends normally, rolled
        back (nothing written at all) if it raises."""
        with self._transaction(self.engine.begin_write) as txn:
            yield txn
            # Running nodes poll the change log to pick this up.
            txns.record_change_txn(txn, "admin", time.time())

    @contextmanager
    def _transaction(self, begin: Callable[[Txn], None]) -> Iterator[Txn]:
        errors = self.engine.error_types()
        cur = self.conn.cursor()
        txn = Txn(self.engine, cur)
        try:
            try:
                begin(txn)
            except errors as e:
                self._rollback()
                raise self._translate(e) from None
            try:
                yield txn
                self.conn.commit()
            except errors as e:
                self._rollback()
                raise self._translate(e) from None
            except BaseException:
                self._rollback()
                raise
        finally:
            cur.close()

    def _rollback(self) -> None:
        try:
            self.conn.rollback()
        except self.engine.error_types():
            pass

    def _translate(self, error: BaseException) -> AdminError:
        text = str(error).strip()
        where = self.where
        if "locked" in text or "busy" in text or "lock timeout" in text:
            return DatabaseLocked(
                f"the database {where} is locked by another process "
                f"(waited {self.busy_timeout:g} s): try again, or wait longer with --busy-timeout"
            )
        if self.engine.is_unavailable(error):
            return AdminError(f"cannot reach the database {where}: {text.splitlines()[0]}")
        if "unable to open" in text:
            return AdminError(f"cannot open the database {where}: {text}")
        if "not a database" in text:
            return AdminError(f"{where} is not an SQLite database")
        if "readonly" in text:
            return AdminError(
                f"cannot write to {where}: {text} (check the file's owner and permissions)"
            )
        return AdminError(f"database error in {where}: {text}")

    # -- end ------------------------------------------------------------

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def discard(self) -> None:
        """Remove the database file again if this object created it (a
        PostgreSQL database is never dropped)."""
        if not self.created:
            return
        self.close()
        for suffix in ("", "-wal", "-shm", "-journal"):
            try:
                os.remove(self.path + suffix)
            except FileNotFoundError:
                pass
        self.created = False

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
