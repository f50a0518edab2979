-- Live rooms: the transcript, the room's host and the shared secrets, as in SQLite's
-- 0008_rooms.sql (see there), plus the bodies of room-bus messages too large for NOTIFY.
CREATE TABLE conversation_turns (
    conversation_id text NOT NULL,
    idx             integer NOT NULL,
    entry           text NOT NULL,    -- JSON text, not jsonb: the key order is kept byte for byte
    PRIMARY KEY (conversation_id, idx)
);

CREATE TABLE room_hosts (
    conversation_id text PRIMARY KEY,
    host            text NOT NULL,
    until           double precision NOT NULL  -- epoch seconds
);

CREATE TABLE shared_secrets (
    name  text PRIMARY KEY,
    value bytea NOT NULL
);

-- The room bus (storage/postgres_bus.py) sends a message over 7,900 bytes as a NOTIFY naming
-- its row here; every listening process reads it within moments, and rows older than a minute
-- are deleted by the publishers. A queue of short-lived rows: vacuumed early.
CREATE TABLE room_messages (
    id              bigserial PRIMARY KEY,
    conversation_id text NOT NULL,
    body            text NOT NULL,
    created_epoch   double precision NOT NULL
) WITH (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 100);

-- How many turns a conversation's transcript holds: the append counts on the conversation's row,
-- so one statement both takes the row's lock and gives the next index (storage/postgres_rooms.py).
-- A constant default: adding it does not rewrite the table.
ALTER TABLE conversations ADD COLUMN turns integer NOT NULL DEFAULT 0;
