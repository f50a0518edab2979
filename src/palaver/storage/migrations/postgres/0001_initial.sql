-- Palaver on PostgreSQL: the state of the SQLite schema after its migrations 0001-0004, plus the
-- delivery ledger, which here lives in the same database (docs/decisions.md, "PostgreSQL").
-- Columns keep SQLite's names and meanings; timestamps stay ISO-8601 text so the bytes on the
-- wire are the same whichever backend stored them.

CREATE TABLE accounts (
    account_id      text PRIMARY KEY,
    name            text NOT NULL DEFAULT '',
    max_concurrent  integer,            -- NULL: unlimited
    created_at      text NOT NULL,
    webhook_secret  text                -- whsec_<base64>
);

CREATE TABLE api_keys (
    key_id      text PRIMARY KEY,
    account_id  text NOT NULL REFERENCES accounts(account_id),
    name        text NOT NULL DEFAULT '',
    lookup      text NOT NULL,          -- first characters of the key: an index, not a secret
    key_hash    text NOT NULL,          -- hex SHA-256 of the whole key
    created_at  text NOT NULL,
    revoked_at  text
);
CREATE INDEX api_keys_lookup ON api_keys(lookup);

CREATE TABLE conversations (
    conversation_id            text PRIMARY KEY,
    seq                        bigint GENERATED ALWAYS AS IDENTITY,  -- creation order, for newest-first lists
    account_id                 text NOT NULL REFERENCES accounts(account_id),
    conversation_name          text NOT NULL,
    status                     text NOT NULL,
    test_mode                  boolean NOT NULL DEFAULT false,
    replica_id                 text NOT NULL,
    persona_id                 text NOT NULL,
    callback_url               text NOT NULL DEFAULT '',
    system_prompt              text NOT NULL DEFAULT '',
    meeting_token              text,
    request                    text NOT NULL,  -- the accepted create body (JSON), kept byte for byte
    shutdown_reason            text,
    created_at                 text NOT NULL,
    updated_at                 text NOT NULL,
    ended_at                   text,
    deleted_at                 text,
    created_epoch              double precision,
    max_call_duration          integer NOT NULL DEFAULT 3600,
    participant_absent_timeout integer NOT NULL DEFAULT 300,
    participant_left_timeout   integer NOT NULL DEFAULT 0,
    participants               integer NOT NULL DEFAULT 0,
    ever_joined                boolean NOT NULL DEFAULT false,
    last_left_epoch            double precision,
    deadline                   double precision,  -- epoch seconds; NULL when no timer runs
    deadline_reason            text               -- the shutdown_reason it fires with
);
-- Lists and counts of visible conversations, newest first.
CREATE INDEX conversations_visible ON conversations(account_id, seq) WHERE deleted_at IS NULL;
-- `status=active` lists and the concurrency count of accounts with a limit.
CREATE INDEX conversations_active ON conversations(account_id, seq) WHERE status = 'active' AND deleted_at IS NULL;
-- Timers. Every transition out of `active` clears the deadline in the same UPDATE, so the
-- index holds active conversations only.
CREATE INDEX conversations_deadline ON conversations(deadline) WHERE deadline IS NOT NULL;

-- One row per change that implies webhooks, written in the change's own transaction; the
-- delivery workers take (delete) them in seq order, one taker at a time, and render the events.
-- A queue: rows are short-lived, so dead ones are vacuumed early rather than at 20 % of the table.
CREATE TABLE webhook_outbox (
    seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    conversation_id text NOT NULL,
    change          text NOT NULL,   -- created | ended | purged | replay
    detail          text,            -- replay: the event_id to send again
    at_epoch        double precision NOT NULL
) WITH (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000);

-- The delivery ledger: every webhook, claimed by one delivery worker at a time.
CREATE TABLE webhook_deliveries (
    delivery_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id           text NOT NULL UNIQUE,    -- the webhook-id header, the same on every retry
    conversation_id    text NOT NULL,
    account_id         text NOT NULL,
    event_type         text NOT NULL,
    event_rank         smallint NOT NULL,       -- its place among the conversation's events
    url                text NOT NULL,
    body               text NOT NULL,           -- the exact bytes sent
    status             text NOT NULL DEFAULT 'pending',  -- pending | delivered | failed
    attempts           integer NOT NULL DEFAULT 0,
    created_epoch      double precision NOT NULL,
    next_attempt_epoch double precision NOT NULL DEFAULT 0,
    last_status_code   integer,
    last_error         text,
    finished_epoch     double precision,
    claimed_by         text,                    -- the worker sending it now ...
    claimed_until      double precision         -- ... until then: a dead worker's claim runs out
-- Room on each page, so that claiming a delivery (no indexed column changes) is a HOT update: no
-- new index entries, and old versions pruned on the page without waiting for vacuum. And a queue's
-- dead rows vacuumed early, since the claim query walks the pending index over them.
) WITH (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000);
-- What is due, oldest first.
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries(next_attempt_epoch, delivery_id) WHERE status = 'pending';
-- A conversation's deliveries in order (the verbose view, and "is an earlier event still pending?").
CREATE INDEX webhook_deliveries_conversation ON webhook_deliveries(conversation_id, event_rank);

CREATE TABLE webhook_attempts (
    delivery_id  bigint NOT NULL REFERENCES webhook_deliveries(delivery_id) ON DELETE CASCADE,
    attempt      integer NOT NULL,   -- numbered across replays: the history keeps every attempt
    at_epoch     double precision NOT NULL,
    status_code  integer,            -- NULL: no HTTP response (network error, timeout, refused target)
    latency_ms   double precision,
    error        text,
    PRIMARY KEY (delivery_id, attempt)
);

-- Running totals for GET /metrics: 'outcome:<outcome>' | 'le:<bucket upper bound>' | 'latency_sum'.
CREATE TABLE webhook_attempt_totals (
    name  text PRIMARY KEY,
    value double precision NOT NULL
);
