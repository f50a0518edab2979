-- Ending a conversation no longer deletes an entry from a partial index of active
-- conversations. Ends come in any order, so that entry sat on a page of its own
-- and every end wrote one more random page to the WAL: ~14 us of an end's ~40 us
-- in isolation on a 1.2-million-conversation database (docs/performance.md).
-- `status=active` lists count from accounts.active_conversations (kept by every
-- transition, exact) and walk conversations_visible newest first, stopping at the
-- last active one (storage/sqlite.py, decisions.md #107).
-- Safe while an older Palaver still serves: its queries stay correct, only its
-- `status=active` lists slower.
DROP INDEX IF EXISTS conversations_active;
