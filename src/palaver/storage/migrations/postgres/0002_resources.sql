-- The resources conversations are made of: one table for all of them, as in SQLite's
-- 0005_resources.sql (see there). The body is text, not jsonb: jsonb reorders keys, and
-- the bytes a client reads back must not depend on the backend.
CREATE TABLE resources (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         text NOT NULL,
    resource_id  text NOT NULL,
    account_id   text NOT NULL REFERENCES accounts(account_id),
    body         text NOT NULL,
    version      integer NOT NULL DEFAULT 1,
    created_at   text NOT NULL,
    updated_at   text NOT NULL,
    UNIQUE (kind, resource_id)
);
CREATE INDEX resources_account ON resources(account_id, kind, seq);

CREATE TABLE jobs (
    job_id          text PRIMARY KEY,
    kind            text NOT NULL,
    resource_id     text NOT NULL,
    account_id      text NOT NULL,
    state           text NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    run_after_epoch double precision NOT NULL,
    created_epoch   double precision NOT NULL
);
CREATE INDEX jobs_due ON jobs(run_after_epoch) WHERE state = 'pending';
