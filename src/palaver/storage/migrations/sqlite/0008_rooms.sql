-- Live rooms (storage/rooms.py): what must outlive the process that serves a room.
--
-- The transcript: one row per turn, `entry` the JSON text of one transcript entry
-- (compact, key order kept), `idx` its place from 0. Rows are written only while
-- the conversation is active and visible, so the transcript the end delivers is
-- final; a hard delete removes them with the conversation, a soft delete keeps
-- them. WITHOUT ROWID: a conversation's turns sit together in the primary key.
CREATE TABLE conversation_turns (
    conversation_id TEXT NOT NULL,
    idx             INTEGER NOT NULL,
    entry           TEXT NOT NULL,
    PRIMARY KEY (conversation_id, idx)
) WITHOUT ROWID;

-- Which process hosts a room's replica: a lease (epoch seconds) the host renews,
-- which another process may take once it has lapsed. Released by deleting the row.
CREATE TABLE room_hosts (
    conversation_id TEXT PRIMARY KEY,
    host            TEXT NOT NULL,
    until           REAL NOT NULL
) WITHOUT ROWID;

-- Secrets every process must share (the key meeting tokens are signed with),
-- made by whichever process asks first.
CREATE TABLE shared_secrets (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;
