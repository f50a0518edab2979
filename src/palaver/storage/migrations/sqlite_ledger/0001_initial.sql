-- The delivery ledger: what became of every webhook. Written only by the
-- delivery worker (palaver deliver), read by the server (verbose view, metrics)
-- and the CLI (webhooks list). It lives in a file of its own next to the main
-- database so that its writes never wait for, or hold up, the API's writes.

-- How far into the main database's webhook_outbox the ledger has taken changes.
-- Advanced in the same transaction as the deliveries those changes produced.
CREATE TABLE ingest_cursor (
    only       INTEGER PRIMARY KEY CHECK (only = 1),
    outbox_seq INTEGER NOT NULL
);
INSERT INTO ingest_cursor (only, outbox_seq) VALUES (1, 0);

-- One row per event to deliver, with the exact body sent on every attempt.
CREATE TABLE deliveries (
    delivery_id        INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id           TEXT NOT NULL UNIQUE,   -- the webhook-id header, the same on every retry
    conversation_id    TEXT NOT NULL,
    account_id         TEXT NOT NULL,
    event_type         TEXT NOT NULL,
    url                TEXT NOT NULL,
    body               TEXT NOT NULL,
    status             TEXT NOT NULL DEFAULT 'pending',  -- pending | delivered | failed
    attempts           INTEGER NOT NULL DEFAULT 0,
    created_epoch      REAL NOT NULL,
    next_attempt_epoch REAL NOT NULL DEFAULT 0,
    last_status_code   INTEGER,
    last_error         TEXT,
    finished_epoch     REAL
);
CREATE INDEX deliveries_pending ON deliveries(delivery_id) WHERE status = 'pending';
CREATE INDEX deliveries_conversation ON deliveries(conversation_id, delivery_id);

CREATE TABLE attempts (
    delivery_id  INTEGER NOT NULL,
    attempt      INTEGER NOT NULL,   -- numbered across replays: the history keeps every attempt
    at_epoch     REAL NOT NULL,
    status_code  INTEGER,            -- NULL: no HTTP response (network error, timeout, refused target)
    latency_ms   REAL,
    error        TEXT,
    PRIMARY KEY (delivery_id, attempt)
);

-- Running totals for GET /metrics (attempts by outcome, the latency histogram),
-- kept as the attempts are recorded so a scrape reads a few rows, not every attempt.
CREATE TABLE attempt_totals (
    name  TEXT PRIMARY KEY,   -- 'outcome:<outcome>' | 'le:<bucket upper bound>' | 'latency_sum'
    value REAL NOT NULL
);
