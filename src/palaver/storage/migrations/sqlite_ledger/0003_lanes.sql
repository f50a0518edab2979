-- A cursor per shard and per lane (domain/lanes.py): a worker takes the system
-- events of outbox changes first and their application events later, when the
-- system lane has caught up. The application cursor never passes the system
-- cursor of its shard. Both start where the shard's single cursor was.
CREATE TABLE ingest_lane_cursors (
    shard      INTEGER NOT NULL,
    lane       TEXT NOT NULL,     -- system | application
    shards     INTEGER NOT NULL,
    outbox_seq INTEGER NOT NULL,
    PRIMARY KEY (shard, lane)
);
INSERT INTO ingest_lane_cursors (shard, lane, shards, outbox_seq)
    SELECT shard, 'system', shards, outbox_seq FROM ingest_cursors
    UNION ALL
    SELECT shard, 'application', shards, outbox_seq FROM ingest_cursors;
DROP TABLE ingest_cursors;
