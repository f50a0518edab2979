-- Timers: the facts they are computed from, and the earliest pending deadline.
ALTER TABLE conversations ADD COLUMN created_epoch REAL;
ALTER TABLE conversations ADD COLUMN max_call_duration INTEGER NOT NULL DEFAULT 3600;
ALTER TABLE conversations ADD COLUMN participant_absent_timeout INTEGER NOT NULL DEFAULT 300;
ALTER TABLE conversations ADD COLUMN participant_left_timeout INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN participants INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN ever_joined INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN last_left_epoch REAL;
ALTER TABLE conversations ADD COLUMN deadline REAL;              -- epoch seconds; NULL when no timer runs
ALTER TABLE conversations ADD COLUMN deadline_reason TEXT;       -- the shutdown_reason it fires with
-- Not partial on status: an end leaves its row's entry alone (the end path stays
-- one index lighter) and the timer tick clears deadlines of ended rows once they
-- come due, in the background.
CREATE INDEX conversations_deadline ON conversations(deadline) WHERE deadline IS NOT NULL;
