-- Messenger schema, version 1.
-- Times are seconds since the epoch (REAL); the layers above format them.

CREATE TABLE users (
    username      TEXT PRIMARY KEY,        -- canonical (lower case)
    password_hash TEXT NOT NULL,           -- Argon2id, never clear text
    display_name  TEXT NOT NULL,
    created_at    REAL NOT NULL,
    last_seen     REAL,                    -- last logout; NULL if never seen
    -- Unacknowledged direct messages waiting for this user, kept here so the
    -- --max-pending check is one row read inside the commit transaction.
    pending_count INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE tokens (
    token_hash TEXT PRIMARY KEY,           -- SHA-256 of the token, hex
    username   TEXT NOT NULL REFERENCES users(username) ON DELETE CASCADE,
    expires_at REAL NOT NULL
);
CREATE INDEX tokens_by_user ON tokens(username);

CREATE TABLE rooms (
    name       TEXT PRIMARY KEY,
    created_at REAL NOT NULL
);

CREATE TABLE room_members (
    room      TEXT NOT NULL REFERENCES rooms(name) ON DELETE CASCADE,
    username  TEXT NOT NULL REFERENCES users(username) ON DELETE CASCADE,
    joined_at REAL NOT NULL,
    PRIMARY KEY (room, username)
);
CREATE INDEX room_members_by_user ON room_members(username);

-- AUTOINCREMENT: ids are never reused, so they increase in the order the
-- messages were accepted even after rows are deleted.
CREATE TABLE messages (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    sender       TEXT NOT NULL,
    recipient    TEXT,                     -- direct message: the user
    room         TEXT,                     -- room message: the room
    conversation TEXT NOT NULL,            -- room name, or 'dm:a:b' (a < b)
    body         TEXT NOT NULL,
    created_at   REAL NOT NULL,
    delivered_at REAL,                     -- when the recipient ACKed
    receipt_sent INTEGER NOT NULL DEFAULT 0  -- DLV handed to the sender
);
CREATE INDEX messages_by_conversation ON messages(conversation, id);
CREATE INDEX messages_pending ON messages(recipient, id)
    WHERE recipient IS NOT NULL AND delivered_at IS NULL;
CREATE INDEX messages_receipts ON messages(sender, id)
    WHERE delivered_at IS NOT NULL AND receipt_sent = 0;

-- SEND's idempotency keys: (sender, client_id) -> the first message.
CREATE TABLE send_keys (
    sender     TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    message_id INTEGER NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (sender, client_id)
);

-- Every account is a member of #general (PROTOCOL.md; the name's one home
-- in code is messenger.wire.GENERAL_ROOM).  The room is made here, with the
-- schema, so that it exists before the first account on every engine and
-- for messenger-admin too, whichever program opens the database first.
INSERT INTO rooms (name, created_at) VALUES ('#general', 0);
