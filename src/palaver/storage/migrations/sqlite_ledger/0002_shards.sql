-- Several delivery workers share the ledger, each owning the conversations whose
-- id hashes to its shard (delivery/shards.py). Each keeps its own cursor into the
-- outbox; `shards` records how many there were when the cursors were set, so a
-- worker started with another count resets them all to the lowest (re-taking a
-- few changes is harmless: an event already stored is skipped).
CREATE TABLE ingest_cursors (
    shard      INTEGER PRIMARY KEY,
    shards     INTEGER NOT NULL,
    outbox_seq INTEGER NOT NULL
);
INSERT INTO ingest_cursors (shard, shards, outbox_seq) SELECT 0, 1, outbox_seq FROM ingest_cursor;
DROP TABLE ingest_cursor;
