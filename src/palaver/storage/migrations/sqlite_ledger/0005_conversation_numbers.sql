-- Deliveries are keyed by (conversation number, event type) instead of by event_id.
--
-- Why: event ids start with the conversation id, which is random, so each new
-- delivery's entry in the event_id index landed on a page of its own, and every
-- page a transaction dirties is written to the WAL and copied again at the
-- checkpoint. Measured (docs/performance.md), the cost of storing a delivery
-- doubled as the ledger grew from nothing to 300,000 rows. A conversation now
-- gets a number when the ledger first sees it (one random insert per
-- conversation, in ledger_conversations, when its replica joins), and its
-- deliveries are indexed by that number: conversations end in roughly the
-- order they started, so the deliveries of a burst of ends go to neighbouring
-- pages at the recent end of the index, however large the ledger has grown.
CREATE TABLE ledger_conversations (
    conversation_no INTEGER PRIMARY KEY,   -- in the order the ledger first saw them
    conversation_id TEXT NOT NULL UNIQUE
);
INSERT INTO ledger_conversations (conversation_id)
    SELECT conversation_id FROM deliveries GROUP BY conversation_id ORDER BY MIN(delivery_id);

CREATE TABLE deliveries_by_number (
    delivery_id        INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_no    INTEGER NOT NULL,
    event_id           TEXT NOT NULL,      -- the webhook-id header: "<conversation_id>.<event_type>"
    conversation_id    TEXT NOT NULL,
    account_id         TEXT NOT NULL,
    event_type         TEXT NOT NULL,
    url                TEXT NOT NULL,
    body               TEXT NOT NULL,
    status             TEXT NOT NULL DEFAULT 'pending',
    attempts           INTEGER NOT NULL DEFAULT 0,
    created_epoch      REAL NOT NULL,
    next_attempt_epoch REAL NOT NULL DEFAULT 0,
    last_status_code   INTEGER,
    last_error         TEXT,
    finished_epoch     REAL
);
INSERT INTO deliveries_by_number (
    delivery_id, conversation_no, event_id, conversation_id, account_id, event_type, url, body, status,
    attempts, created_epoch, next_attempt_epoch, last_status_code, last_error, finished_epoch
)
    SELECT d.delivery_id, c.conversation_no, d.event_id, d.conversation_id, d.account_id, d.event_type, d.url,
           d.body, d.status, d.attempts, d.created_epoch, d.next_attempt_epoch, d.last_status_code, d.last_error,
           d.finished_epoch
    FROM deliveries d JOIN ledger_conversations c ON c.conversation_id = d.conversation_id
    ORDER BY d.delivery_id;
-- Delivery ids are never given twice (an attempt that finishes after its delivery
-- was purged is dropped by id: sqlite_ledger.py, record), so the new table goes on
-- from the old AUTOINCREMENT high-water mark, not from the highest id still stored.
DELETE FROM sqlite_sequence WHERE name = 'deliveries_by_number';
UPDATE sqlite_sequence SET name = 'deliveries_by_number' WHERE name = 'deliveries';
DROP TABLE deliveries;
ALTER TABLE deliveries_by_number RENAME TO deliveries;
-- One event of each type per conversation: what the event_id's uniqueness said before.
CREATE UNIQUE INDEX deliveries_event ON deliveries(conversation_no, event_type);
CREATE INDEX deliveries_pending ON deliveries(delivery_id) WHERE status = 'pending';
