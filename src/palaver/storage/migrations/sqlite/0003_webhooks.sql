-- Webhooks: each account's signing secret, the outbox, and every attempt.
ALTER TABLE accounts ADD COLUMN webhook_secret TEXT;  -- whsec_<base64>; created on first use

-- One row per event to deliver, written in the same transaction as the change
-- that caused it.
CREATE TABLE webhook_deliveries (
    delivery_id        INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id           TEXT NOT NULL UNIQUE,   -- the webhook-id header, the same on every retry
    conversation_id    TEXT NOT NULL,
    account_id         TEXT NOT NULL,
    event_type         TEXT NOT NULL,
    url                TEXT NOT NULL,
    body               TEXT NOT NULL,          -- the exact bytes sent
    status             TEXT NOT NULL DEFAULT 'pending',  -- pending | delivered | failed
    attempts           INTEGER NOT NULL DEFAULT 0,
    created_epoch      REAL NOT NULL,
    next_attempt_epoch REAL NOT NULL DEFAULT 0,
    last_status_code   INTEGER,
    last_error         TEXT,
    finished_epoch     REAL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_attempt_epoch) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_conversation ON webhook_deliveries(conversation_id, delivery_id);

CREATE TABLE webhook_attempts (
    delivery_id  INTEGER NOT NULL REFERENCES webhook_deliveries(delivery_id),
    attempt      INTEGER NOT NULL,
    at_epoch     REAL NOT NULL,
    status_code  INTEGER,          -- NULL: no HTTP response (network error, timeout, refused target)
    latency_ms   REAL,
    error        TEXT,
    PRIMARY KEY (delivery_id, attempt)
);
