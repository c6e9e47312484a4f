"""What differs between SQLite and PostgreSQL, in one object per engine.

The SQL of :mod:`messenger.store.txns` and :mod:`messenger.store.admin_txns`
is written once, with ``?`` parameters and the syntax both engines share
(``ON CONFLICT``, ``RETURNING``, ``UPDATE ... FROM``).  An engine owns the
rest, as Synapse's ``BaseDatabaseEngine`` does: the parameter style, the
write lock, the system catalog, the types of the schema files, identity
columns and their sequences, how a batch's rows and lists are passed
(``VALUES`` and ``IN`` on SQLite; ``unnest`` and ``= ANY`` of arrays on
PostgreSQL, one prepared statement whatever the count), pipelining, how to
connect, and which errors mean "the database is away" rather than "this
statement is wrong".

The ``*_txn`` functions get a :class:`Txn`: a DB-API cursor that knows its
engine and converts each statement's parameter style once.
"""

from __future__ import annotations

import abc
import os
import re
import sqlite3
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

#: How long a writer waits for another process (the server, or
#: messenger-admin) holding the write lock, in seconds: SQLite's busy
#: timeout; on PostgreSQL the admin tool's ``lock_timeout``.  The one home
#: of this number.
BUSY_TIMEOUT = 10.0

#: The key of PostgreSQL's advisory lock that every writing transaction of
#: every node takes: batches commit one after another, so message ids
#: increase in commit order across nodes (see IMessageStore).
WRITE_LOCK_KEY = 0x6D657373  # "mess"

#: Statements in a batch hold at most this many parameters: under SQLite's
#: oldest limit (999), and small enough for any engine.
MAX_PARAMETERS = 900


class Cursor(Protocol):
    """The part of a DB-API cursor the store uses."""

    rowcount: int
    connection: Any

    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...
    def executemany(self, sql: str, params: Iterable[Sequence[Any]]) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class Rows(Protocol):
    """Rows to be read later: a cursor, or rows already known."""

    def fetchall(self) -> list[Any]: ...


class _KnownRows:
    __slots__ = ("_rows",)

    def __init__(self, rows: list[Any]) -> None:
        self._rows = rows

    def fetchall(self) -> list[Any]:
        return self._rows


class Txn:
    """A cursor inside one transaction, with the engine that runs it."""

    __slots__ = ("engine", "_cursor", "_convert")

    def __init__(self, engine: Engine, cursor: Cursor) -> None:
        self.engine = engine
        self._cursor = cursor
        self._convert = engine.convert

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._cursor.execute(self._convert(sql), params)

    def executemany(self, sql: str, params: Iterable[Sequence[Any]]) -> None:
        self._cursor.executemany(self._convert(sql), params)

    def submit(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        """Run a statement on a cursor of its own, whose rows are read
        later.  Inside :meth:`Engine.pipeline` on PostgreSQL the statements
        submitted before the first read travel to the server together (one
        round trip, not one each); SQLite runs each at once."""
        cursor: Cursor = self._cursor.connection.cursor()
        cursor.execute(self._convert(sql), params)
        return cursor

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def connection(self) -> Any:
        return self._cursor.connection


class DatabaseError(Exception):
    """The database cannot be used; the message says why, in one line."""


class Engine(abc.ABC):
    """The seam: one subclass per database engine."""

    #: The engine's name, as said in logs.
    name: str
    #: The DB-API module adbapi loads.
    dbapi_name: str

    def __init__(self, database: str, busy_timeout: float = BUSY_TIMEOUT) -> None:
        self.database = database
        #: How long a writer waits for the write lock another process holds.
        self.busy_timeout = busy_timeout

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"

    def describe(self) -> str:
        """The database, as said in messages (never with a password)."""
        return self.database

    def convert(self, sql: str) -> str:
        """The statement in this engine's parameter style."""
        return sql

    def schema_statement(self, sql: str) -> str:
        """A statement of a shared schema file, in this engine's types."""
        return sql

    def in_list(
        self, column: str, column_type: str, values: Sequence[Any]
    ) -> tuple[str, list[Any]]:
        """``column IN (...)`` for ``values`` (at most MAX_PARAMETERS of
        them, of SQL type ``column_type``), as SQL and its parameters."""
        return f"{column} IN ({', '.join('?' * len(values))})", list(values)

    def rows(
        self, alias: str, types: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> tuple[str, list[Any]]:
        """A table ``alias`` of ``rows`` to join with (``UPDATE ... FROM``),
        as SQL and its parameters: columns ``column1``, ``column2``... of
        the given SQL ``types``; at most MAX_PARAMETERS values."""
        marks = f"({', '.join('?' * len(types))})"
        return (
            f"(VALUES {', '.join([marks] * len(rows))}) AS {alias}",
            [value for row in rows for value in row],
        )

    def pipeline(self, txn: Txn) -> AbstractContextManager[Any]:
        """Statements :meth:`Txn.submit`-ted inside travel together."""
        return nullcontext()

    def submit_insert(
        self, txn: Txn, head: str, types: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> list[Rows]:
        """Submit the insert of ``rows`` (``head``: ``INSERT INTO table
        (columns)``; ``types``: the columns' SQL types); read the new ids,
        in row order, with :func:`inserted_ids`.

        Multi-row ``VALUES ... RETURNING id``, a statement per
        MAX_PARAMETERS.  Inside one statement the rows are numbered in
        order, and the write lock is held, so sorting the returned ids
        gives each row its own.
        """
        if not rows:
            return []
        width = len(rows[0])
        per_statement = MAX_PARAMETERS // width
        row_marks = f"({', '.join('?' * width)})"
        return [
            txn.submit(
                f"{head} VALUES {', '.join([row_marks] * len(chunk))} RETURNING id",
                [value for row in chunk for value in row],
            )
            for chunk in (
                rows[start : start + per_statement] for start in range(0, len(rows), per_statement)
            )
        ]

    def insert_returning_ids(
        self, txn: Txn, head: str, types: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> list[int]:
        """:meth:`submit_insert`, and its ids."""
        return inserted_ids(self.submit_insert(txn, head, types, rows))

    @abc.abstractmethod
    def greatest(self, a: str, b: str) -> str:
        """SQL for the larger of two values."""

    @abc.abstractmethod
    def begin_write(self, txn: Txn) -> None:
        """Take the write lock now, before the transaction's first read."""

    @abc.abstractmethod
    def begin_reads(self, txn: Txn) -> None:
        """Make the reads that follow, on a pool connection, one snapshot
        where that costs no round trip."""

    @abc.abstractmethod
    def begin_read(self, txn: Txn) -> None:
        """Start a transaction whose reads are one snapshot (autocommit
        connections only: the admin tool's)."""

    @abc.abstractmethod
    def table_exists(self, txn: Txn, table: str) -> bool: ...

    @abc.abstractmethod
    def has_tables(self, txn: Txn) -> bool:
        """Whether the database holds any table at all."""

    @abc.abstractmethod
    def highest_id_ever(self, txn: Txn, table: str) -> int:
        """The highest id the table's identity column ever handed out."""

    @abc.abstractmethod
    def ids_given(self, txn: Txn, table: str) -> None:
        """Rows were inserted with explicit ids: move the identity past them."""

    @abc.abstractmethod
    def connect(self, create: bool = True, autocommit: bool = False) -> Any:
        """A configured DB-API connection, for work outside the reactor."""

    @abc.abstractmethod
    def connect_manual(self, create: bool) -> Any:
        """A connection on which :meth:`begin_read` or :meth:`begin_write`
        starts each transaction (the admin tool's); ``create``: the database
        may be created."""

    @abc.abstractmethod
    def pool_arguments(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """adbapi.ConnectionPool's arguments after the module name."""

    def is_unavailable(self, error: BaseException) -> bool:
        """True when ``error`` means the database is away, not that the
        statement was wrong."""
        return False

    @abc.abstractmethod
    def error_types(self) -> tuple[type[BaseException], ...]:
        """The engine's DB-API error classes."""


class SqliteEngine(Engine):
    """The embedded default: a file, one writer at a time."""

    name = "sqlite"
    dbapi_name = "sqlite3"

    def greatest(self, a: str, b: str) -> str:
        """SQL for the larger of two values."""
        return f"MAX({a}, {b})"

    def submit_insert(
        self, txn: Txn, head: str, types: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> list[Rows]:
        """One ``executemany``: a prepared statement run per row costs about
        a third less CPU per row than a multi-row ``VALUES ... RETURNING``.

        Rows inserted without explicit ids by one statement get consecutive
        ids (the highest so far plus one, AUTOINCREMENT or not: a
        transaction is SQLite's only writer), so the last one gives them
        all.  Rows with explicit ids (an ``id`` column first) go the
        general way."""
        if not rows or head.partition("(")[2].lstrip().startswith("id,"):
            return super().submit_insert(txn, head, types, rows)
        marks = ", ".join("?" * len(rows[0]))
        txn.executemany(f"{head} VALUES ({marks})", rows)
        txn.execute("SELECT last_insert_rowid()")
        last = int(txn.fetchone()[0])
        return [_KnownRows([(i,) for i in range(last - len(rows) + 1, last + 1)])]

    # -- transactions -------------------------------------------------------

    def begin_write(self, txn: Txn) -> None:
        """Take the write lock now, before the transaction's first read.

        Python's sqlite3 begins a transaction only at the first change, so
        what was read before it could be changed by another process (say
        messenger-admin) in between.
        """
        try:
            txn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            if "within a transaction" not in str(e):
                raise

    def begin_read(self, txn: Txn) -> None:
        """Start a transaction whose reads are one snapshot (autocommit
        connections only: the admin tool's)."""
        txn.execute("BEGIN DEFERRED")

    def begin_reads(self, txn: Txn) -> None:
        """Python's sqlite3 begins no transaction before a SELECT, so each
        read would be a transaction of its own, each taking and leaving
        the WAL's read lock: one transaction is one snapshot, and cheaper
        (the pool commits it)."""
        if not txn.connection.in_transaction:
            txn.execute("BEGIN DEFERRED")

    # -- catalog ------------------------------------------------------------

    def table_exists(self, txn: Txn, table: str) -> bool:
        txn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,))
        return txn.fetchone() is not None

    def has_tables(self, txn: Txn) -> bool:
        txn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'")
        return bool(txn.fetchone()[0])

    def highest_id_ever(self, txn: Txn, table: str) -> int:
        """The highest id the table's identity column ever handed out."""
        txn.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,))
        row = txn.fetchone()
        return int(row[0]) if row else 0

    def ids_given(self, txn: Txn, table: str) -> None:
        """Rows were inserted with explicit ids: move the identity past
        them (SQLite's AUTOINCREMENT does that by itself)."""

    # -- connections ----------------------------------------------------------

    def connect(self, create: bool = True, autocommit: bool = False) -> Any:
        """A configured DB-API connection, for work outside the reactor."""
        from urllib.request import pathname2url

        mode = "rwc" if create else "rw"
        conn = sqlite3.connect(
            f"file:{pathname2url(self.database)}?mode={mode}",
            uri=True,
            timeout=self.busy_timeout,
            isolation_level=None if autocommit else "DEFERRED",
        )
        try:
            self.configure(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def connect_manual(self, create: bool) -> Any:
        return self.connect(create=create, autocommit=True)

    def configure(self, conn: Any) -> None:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        # 64 MiB of page cache instead of 2: the message table and its three
        # indexes outgrow 2 MiB within minutes of traffic, and every page
        # read back from the OS costs a copy (W1: 71 -> 63 µs per message).
        conn.execute("PRAGMA cache_size=-65536")

    def pool_arguments(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """adbapi.ConnectionPool's arguments after the module name."""
        return (self.database,), {
            "check_same_thread": False,
            "timeout": self.busy_timeout,
            "cp_openfun": self.configure,
        }

    def error_types(self) -> tuple[type[BaseException], ...]:
        return (sqlite3.Error,)


class PostgresEngine(Engine):
    name = "postgresql"
    dbapi_name = "psycopg"

    def describe(self) -> str:
        parts = urlsplit(self.database)
        if parts.password is None:
            return self.database
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))

    def __init__(self, database: str, busy_timeout: float = BUSY_TIMEOUT) -> None:
        super().__init__(database, busy_timeout)
        self._converted: dict[str, str] = {}

    def convert(self, sql: str) -> str:
        converted = self._converted.get(sql)
        if converted is None:
            # No statement holds a '?' or '%' inside a string literal.
            converted = sql.replace("%", "%%").replace("?", "%s")
            self._converted[sql] = converted
        return converted

    #: SQLite's REAL and INTEGER are 8 bytes; PostgreSQL's are 4.
    _TYPES = [
        (re.compile(r"\bINTEGER PRIMARY KEY AUTOINCREMENT\b", re.I),
         "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
        (re.compile(r"\bREAL\b", re.I), "DOUBLE PRECISION"),
        (re.compile(r"\bINTEGER\b", re.I), "BIGINT"),
    ]  # fmt: skip

    def schema_statement(self, sql: str) -> str:
        for pattern, replacement in self._TYPES:
            sql = pattern.sub(replacement, sql)
        return sql

    def greatest(self, a: str, b: str) -> str:
        return f"GREATEST({a}, {b})"

    def in_list(
        self, column: str, column_type: str, values: Sequence[Any]
    ) -> tuple[str, list[Any]]:
        # One typed array parameter: one statement text whatever the count
        # (psycopg prepares it once), and the same type whatever the values.
        return f"{column} = ANY(?::{column_type}[])", [list(values)]

    def rows(
        self, alias: str, types: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> tuple[str, list[Any]]:
        # unnest: one array parameter per column, one statement text for any
        # number of rows (prepared once), and typed columns.  Measured on an
        # ACK batch of 100: 147 us per row with a CASE over the ids, far
        # less this way.
        arrays = ", ".join(f"?::{column_type}[]" for column_type in types)
        names = ", ".join(f"column{i}" for i in range(1, len(types) + 1))
        columns = [list(column) for column in zip(*rows, strict=True)]
        return f"unnest({arrays}) AS {alias}({names})", columns

    def pipeline(self, txn: Txn) -> AbstractContextManager[Any]:
        # psycopg's pipeline mode: a group commit's dozen statements in
        # three round trips (reads; inserts and updates; the rest with the
        # commit) instead of one each.
        pipeline: AbstractContextManager[Any] = txn.connection.pipeline()
        return pipeline

    def submit_insert(
        self, txn: Txn, head: str, types: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> list[Rows]:
        """One ``INSERT ... SELECT FROM unnest(arrays)``: one parameter per
        column whatever the number of rows.  Measured against multi-row
        VALUES, ``executemany`` (psycopg pipelines it) and an explicit
        pipeline, inserting 100 and 1,000 rows per transaction on this
        machine (client CPU per row, then wall time per row with the
        commit): unnest 7.9/5.3 us and 83/17 us; executemany 11.9/8.6 us
        and 101/31 us; pipeline 15.4/12.7 us and 70/30 us; VALUES 19.9/13.1
        us and 121/52 us."""
        if not rows:
            return []
        # A function scan yields the arrays in order and ids are drawn row
        # by row, under the write lock: sorted, they are the rows' own.
        arrays = ", ".join(f"?::{column_type}[]" for column_type in types)
        return [
            txn.submit(
                f"{head} SELECT * FROM unnest({arrays}) RETURNING id",
                [list(column) for column in zip(*rows, strict=True)],
            )
        ]

    def begin_write(self, txn: Txn) -> None:
        """One writer at a time across every node and messenger-admin, as
        on SQLite: the lock is held until the transaction ends, so a later
        batch allocates its ids only after the earlier one is visible."""
        txn.execute("SELECT pg_advisory_xact_lock(?)", (WRITE_LOCK_KEY,))

    def begin_reads(self, txn: Txn) -> None:
        """Nothing: one snapshot would cost a round trip (SET TRANSACTION),
        and the pool's transactions read committed, statement by statement."""

    def begin_read(self, txn: Txn) -> None:
        # psycopg has begun the transaction; this must be its first statement.
        txn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")

    def table_exists(self, txn: Txn, table: str) -> bool:
        txn.execute("SELECT to_regclass(?) IS NOT NULL", (table,))
        return bool(txn.fetchone()[0])

    def has_tables(self, txn: Txn) -> bool:
        txn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()"
        )
        return bool(txn.fetchone()[0])

    def highest_id_ever(self, txn: Txn, table: str) -> int:
        txn.execute(f"SELECT last_value, is_called FROM {table}_id_seq")
        last_value, is_called = txn.fetchone()
        return int(last_value) if is_called else 0

    def ids_given(self, txn: Txn, table: str) -> None:
        txn.execute(
            f"SELECT setval('{table}_id_seq', GREATEST((SELECT max(id) FROM {table}),"
            f" (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {table}_id_seq), 1))"
        )

    def connect(self, create: bool = True, autocommit: bool = False) -> Any:
        import psycopg

        return psycopg.connect(self.database, autocommit=autocommit, **self._connect_options())

    def connect_manual(self, create: bool) -> Any:
        conn = self.connect(autocommit=False)
        # The advisory lock waits at most this long (0 would mean forever).
        timeout = max(int(self.busy_timeout * 1000), 1)
        conn.execute(f"SET lock_timeout = {timeout}")
        conn.commit()
        return conn

    def _connect_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"connect_timeout": 5}
        if "application_name" not in self.database:
            options["application_name"] = f"messenger-{os.getpid()}"
        return options

    def pool_arguments(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (self.database,), self._connect_options()

    def is_unavailable(self, error: BaseException) -> bool:
        import psycopg
        from twisted.enterprise.adbapi import ConnectionLost

        return isinstance(error, (psycopg.OperationalError, psycopg.InterfaceError, ConnectionLost))

    def error_types(self) -> tuple[type[BaseException], ...]:
        import psycopg

        return (psycopg.Error,)


def inserted_ids(cursors: Sequence[Rows]) -> list[int]:
    """The ids of :meth:`Engine.submit_insert`'s rows, in row order."""
    ids: list[int] = []
    for cursor in cursors:
        ids.extend(sorted(row[0] for row in cursor.fetchall()))
    return ids


def is_postgres_uri(database: str) -> bool:
    return database.startswith(("postgresql://", "postgres://"))


def engine_for(database: str, busy_timeout: float = BUSY_TIMEOUT) -> Engine:
    """The engine of ``--db``: a ``postgresql://`` URI, or an SQLite path."""
    if is_postgres_uri(database):
        return PostgresEngine(database, busy_timeout)
    return SqliteEngine(database, busy_timeout)
