-- The resources conversations are made of (personas/PALs, replicas/faces, tools,
-- objectives, guardrails, dictionaries, documents, ...): one table for all of
-- them, each row one account's object as the JSON Tavus clients read back.
-- Each resource's rules live in its service module; storage only keeps the
-- document, whose key order is kept byte for byte (TEXT, not a JSON type), and
-- a version that makes every read-modify-write (JSON Patch, attach/detach) a
-- compare-and-swap.
CREATE TABLE resources (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,  -- creation order, for newest-first lists
    kind         TEXT NOT NULL,                      -- persona | replica | tool | objectives | ...
    resource_id  TEXT NOT NULL,
    account_id   TEXT NOT NULL REFERENCES accounts(account_id),
    body         TEXT NOT NULL,                      -- JSON object
    version      INTEGER NOT NULL DEFAULT 1,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    UNIQUE (kind, resource_id)
);
CREATE INDEX resources_account ON resources(account_id, kind, seq);

-- Durable background work on a resource (replica training, document processing):
-- a row per job, claimed with a lease so that a job whose process died is taken
-- over once its lease runs out.
CREATE TABLE jobs (
    job_id          TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,      -- what runs it: replica_training | document_processing | ...
    resource_id     TEXT NOT NULL,
    account_id      TEXT NOT NULL,
    state           TEXT NOT NULL,      -- pending | done
    attempts        INTEGER NOT NULL DEFAULT 0,
    run_after_epoch REAL NOT NULL,      -- not before; a claim moves it to the end of the lease
    created_epoch   REAL NOT NULL
);
CREATE INDEX jobs_due ON jobs(run_after_epoch) WHERE state = 'pending';
