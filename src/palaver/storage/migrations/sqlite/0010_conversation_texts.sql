-- The create's large text out of the row every end rewrites. An end changes a conversation's
-- status, times and reason; SQLite rewrites the whole row, and a row longer than a page (a
-- persona's system prompt is often kilobytes) spills into overflow pages that the end writes
-- again too. New conversations keep '' and '{}' in these columns of their row and the text
-- here; rows made before this migration keep theirs (reads take whichever is set), so nothing
-- is copied and an older Palaver still reading this file shows new conversations with an
-- empty prompt and request rather than failing. decisions.md #109.
CREATE TABLE conversation_texts (
    conversation_seq INTEGER PRIMARY KEY,  -- conversations.seq
    system_prompt    TEXT NOT NULL,
    request          TEXT NOT NULL         -- the accepted create body (JSON), kept whole
);
