-- Webhooks, second shape. The outbox now holds one row per state change that
-- implies webhooks (a conversation created or ended), written in the change's own
-- transaction, plus operator commands for the delivery worker (purge, replay).
-- Events are rendered from the conversation row's facts, so the row says which
-- change happened, not the bytes to send: one narrow insert per end instead of
-- two rendered ones. Each event's delivery state and every attempt live in the
-- delivery ledger, a database file of the delivery worker's own
-- (migrations/sqlite_ledger), so sending webhooks never takes this database's
-- write lock away from requests.
CREATE TABLE webhook_outbox (
    -- AUTOINCREMENT: a seq is never reused once trimmed rows are gone, so the
    -- delivery worker's cursor (the last seq it took) stays meaningful.
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id TEXT NOT NULL,
    change          TEXT NOT NULL,   -- created | ended | purged | replay
    detail          TEXT,            -- replay: the event_id to send again
    at_epoch        REAL NOT NULL
);

-- Deliveries still pending in the 0003 outbox are carried over as the changes
-- that caused them (the ledger renders the same events, with the same ids, from
-- them); the attempt history of 0003 is not carried over.
INSERT INTO webhook_outbox (conversation_id, change, at_epoch)
SELECT conversation_id, change, MIN(created_epoch)
FROM (
    SELECT delivery_id, conversation_id, created_epoch,
           CASE event_type WHEN 'system.replica_joined' THEN 'created' ELSE 'ended' END AS change
    FROM webhook_deliveries WHERE status = 'pending'
)
GROUP BY conversation_id, change
ORDER BY MIN(delivery_id);

DROP TABLE webhook_attempts;
DROP TABLE webhook_deliveries;
