-- Messenger schema, version 2: a log of changes made behind the running
-- nodes' backs (messenger-admin).  Nodes read the highest id every few
-- seconds (one index look-up) and, when it moved, re-read what changed.
-- Ids are given by the writer (MAX + 1 under its write lock), so the table
-- needs no engine-specific identity column.

CREATE TABLE changes (
    id         INTEGER PRIMARY KEY,
    kind       TEXT NOT NULL,            -- what changed: 'admin' for now
    created_at REAL NOT NULL
);
