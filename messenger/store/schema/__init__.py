"""Versioned schema files, applied in order by ``upgrade_schema_txn``.

``vN.sql`` is shared by both engines and written in the plain SQL they have
in common, with SQLite's type names: the PostgreSQL engine reads ``REAL``
as ``DOUBLE PRECISION`` and ``INTEGER`` as ``BIGINT`` (SQLite's are 8 bytes,
PostgreSQL's 4) and ``INTEGER PRIMARY KEY AUTOINCREMENT`` as an identity
column (see ``PostgresEngine.schema_statement``).  Where a version cannot
be said in both, ``vN.<engine>.sql`` (``v3.postgresql.sql``, ``v3.sqlite.sql``)
replaces ``vN.sql`` for that engine.  A file, once released, never changes:
databases in the field have applied it.
"""
