-- A conversation's deliveries are found through the event_id index instead: every
-- event_id is "<conversation_id>.<event type>", so they are one range of it
-- (sqlite_ledger.py, _OF_CONVERSATION). Conversation ids are random, so each new
-- row of this index landed on a page of its own: measured, with 140,000 rows
-- stored it cost 7 us of the ~37 an ingested and recorded delivery took, and
-- the cost grows with the ledger.
DROP INDEX deliveries_conversation;
