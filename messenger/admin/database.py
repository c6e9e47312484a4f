"""Opening the server's SQLite database from the admin tool.

The tool works on the very file a running server uses: it opens it with the
server's PRAGMAs (WAL, ``synchronous=FULL``, foreign keys) and the same
busy timeout, and does each command in one short transaction.  In WAL mode
readers never wait; a write waits up to the busy timeout for the server's
current commit, then gives up with :class:`DatabaseLocked`.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager

from messenger.admin import AdminError
from messenger.store import admin_txns, txns

#: As the server's store (messenger.store.sqlite.BUSY_TIMEOUT).
DEFAULT_BUSY_TIMEOUT = 10.0


class DatabaseLocked(AdminError):
    pass


def latest_schema_version() -> int:
    return txns.schema_versions()[-1][0]


class Database:
    """One connection to a Messenger database, for one admin command.

    ``create``: make the file (with the schema) if it does not exist; if it
    was made here and the command fails, :meth:`discard` removes it again.
    """

    def __init__(
        self, path: str, busy_timeout: float = DEFAULT_BUSY_TIMEOUT, create: bool = False
    ) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self.created = False
        if os.path.isdir(path):
            raise AdminError(f"{path} is a directory, not a database file")
        exists = os.path.exists(path)
        if not exists and not create:
            raise AdminError(
                f"no database at {path}: give the server's database with --db "
                "(or --config), or create one with 'import --create'"
            )
        try:
            self.conn = admin_txns.connect(path, busy_timeout, create=not exists)
        except sqlite3.Error as e:
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
        with self.read() as cur:
            version, has_tables = admin_txns.is_messenger_database_txn(cur)
        latest = latest_schema_version()
        if version == 0:
            if has_tables:
                raise AdminError(f"{self.path} is an SQLite database but not a Messenger one")
            if not self.created:
                raise AdminError(
                    f"{self.path} is empty: start the server once to initialise it, "
                    "or use 'import --create'"
                )
            with self.write() as cur:
                txns.upgrade_schema_txn(cur)
        elif version > latest:
            raise AdminError(
                f"{self.path} has schema version {version}, newer than this "
                f"messenger-admin knows ({latest}): use the messenger-admin of that server"
            )
        elif version < latest:
            raise AdminError(
                f"{self.path} has schema version {version}; this messenger-admin needs "
                f"{latest}: start the new server once to upgrade the database"
            )

    # -- transactions ---------------------------------------------------

    @contextmanager
    def read(self) -> Iterator[sqlite3.Cursor]:
        """A read transaction: every read inside sees one snapshot."""
        with self._transaction(admin_txns.begin_read_txn) as cur:
            yield cur

    @contextmanager
    def write(self) -> Iterator[sqlite3.Cursor]:
        """A write transaction: committed if the block ends normally, rolled
        back (nothing written at all) if it raises."""
        with self._transaction(admin_txns.begin_write_txn) as cur:
            yield cur
            # Running nodes poll the change log to pick this up.
            txns.record_change_txn(cur, "admin", time.time())

    @contextmanager
    def _transaction(self, begin) -> Iterator[sqlite3.Cursor]:
        cur = self.conn.cursor()
        try:
            try:
                begin(cur)
            except sqlite3.Error as e:
                raise self._translate(e) from None
            try:
                yield cur
                self.conn.commit()
            except sqlite3.Error as e:
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
        except sqlite3.Error:
            pass

    def _translate(self, error: sqlite3.Error) -> AdminError:
        text = str(error)
        if isinstance(error, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
            return DatabaseLocked(
                f"the database {self.path} is locked by another process "
                f"(waited {self.busy_timeout:g} s): try again, or wait longer with --busy-timeout"
            )
        if "unable to open" in text:
            return AdminError(f"cannot open the database {self.path}: {text}")
        if "not a database" in text:
            return AdminError(f"{self.path} is not an SQLite database")
        if "readonly" in text:
            return AdminError(
                f"cannot write to {self.path}: {text} (check the file's owner and permissions)"
            )
        return AdminError(f"database error in {self.path}: {text}")

    # -- end ------------------------------------------------------------

    def close(self) -> None:
        conn = getattr(self, "conn", None)
        if conn is not None:
            conn.close()
            self.conn = None

    def discard(self) -> None:
        """Remove the database file again if this object created it."""
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

    def __exit__(self, *exc) -> None:
        self.close()
