-- Accounts own everything; API keys are stored only as SHA-256 hashes.
CREATE TABLE accounts (
    account_id      TEXT PRIMARY KEY,
    name            TEXT NOT NULL DEFAULT '',
    max_concurrent  INTEGER,            -- NULL: unlimited
    active_conversations INTEGER NOT NULL DEFAULT 0,  -- active non-test conversations, kept by every transition
    created_at      TEXT NOT NULL
);

CREATE TABLE api_keys (
    key_id      TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts(account_id),
    name        TEXT NOT NULL DEFAULT '',
    lookup      TEXT NOT NULL,          -- first characters of the key: an index, not a secret
    key_hash    TEXT NOT NULL,          -- hex SHA-256 of the whole key
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);
CREATE INDEX api_keys_lookup ON api_keys(lookup);

CREATE TABLE conversations (
    seq                     INTEGER PRIMARY KEY AUTOINCREMENT,  -- creation order, for newest-first lists
    conversation_id         TEXT NOT NULL UNIQUE,
    account_id              TEXT NOT NULL REFERENCES accounts(account_id),
    conversation_name       TEXT NOT NULL,
    status                  TEXT NOT NULL,
    test_mode               INTEGER NOT NULL DEFAULT 0,
    replica_id              TEXT NOT NULL,
    persona_id              TEXT NOT NULL,
    callback_url            TEXT NOT NULL DEFAULT '',
    system_prompt           TEXT NOT NULL DEFAULT '',
    meeting_token           TEXT,
    request                 TEXT NOT NULL,  -- the accepted create body (JSON), kept whole
    shutdown_reason         TEXT,           -- with ended_at: the facts the shutdown event is rendered from
    created_at              TEXT NOT NULL,
    updated_at              TEXT NOT NULL,
    ended_at                TEXT,
    deleted_at              TEXT
);
-- Lists and counts of visible conversations, newest first.
CREATE INDEX conversations_visible ON conversations(account_id, seq) WHERE deleted_at IS NULL;
-- `status=active` lists. Partial on purpose: an end only deletes its entry here.
-- A full (account_id, status, seq) index made every end also insert into an
-- ever-growing `ended` range, and ends slowed by half as the table grew.
CREATE INDEX conversations_active ON conversations(account_id, seq) WHERE status = 'active' AND deleted_at IS NULL;
