"""The end transition on PostgreSQL: a batch of end requests as one statement (storage/postgres_batches.py).

Exactly once, across any number of processes: the statement updates only rows
still `active`, taking them in conversation-id order (so two overlapping batches
cannot deadlock). A row another transaction is ending or deleting is waited for
and then re-read by PostgreSQL itself, so it ends in one of them only, and the
answer reflects what that other transaction did.
"""

from __future__ import annotations

import asyncpg

from palaver.domain.conversation import ENDS_FROM, ENDS_IN, EndOutcome
from palaver.storage.base import EndRequest

# One statement: end the named rows still active, queue their webhooks, and say for every request
# whether it ended the conversation, found it ended, or found nothing.
#
# The UPDATE finds its rows one by one through the primary key, in the order of the arrays, which
# the caller sorts by id: that order is the lock order, so two overlapping batches cannot
# deadlock. Only the id is a condition an index could serve: the rest of the test sits in a CASE,
# which the planner cannot match to an index or a partial index's predicate, so no statistics can
# turn the statement into a walk of the account's or the active conversations' index (measured
# on a new 20,000-row table with the account or the status in the condition: 300-800 ms a batch;
# plans checked with the statistics of an empty table, of an all-ended table and fresh ones,
# custom and generic, 3 to 500 ids: always a nested loop over the primary key). An UPDATE that
# meets a row another transaction is changing waits for it and tests the row as that left it, so
# only one transaction ends a conversation.
#
# Rows the UPDATE left alone (ended before, deleted, another account's, unknown) are read again
# with FOR SHARE, which waits for a transaction still changing the row and then sees the row as
# it left it, while the rest of the statement sees the database as it was when the statement
# began: so an end racing a delete answers as the locked row says. Another account's rows fail
# the CASE before the lock and are never locked. Before, every row was locked first (FOR UPDATE)
# and then updated: two changes to each row, and ~55 against ~34-44 us of PostgreSQL's CPU per
# end in 64-end batches (docs/performance.md).
END_MANY = f"""
WITH r AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[])
        AS r(cid, acc, reason, at, epoch)
),
ended AS (
    UPDATE conversations c
    SET status = '{ENDS_IN}', shutdown_reason = r.reason, updated_at = r.at, ended_at = r.at,
        deadline = NULL, deadline_reason = NULL
    FROM r
    WHERE c.conversation_id = r.cid
      AND CASE WHEN c.status = '{ENDS_FROM}' THEN c.deleted_at IS NULL AND c.account_id = r.acc ELSE false END
    RETURNING c.conversation_id, c.account_id, c.callback_url, r.epoch
),
queued AS (
    INSERT INTO webhook_outbox (conversation_id, change, at_epoch)
    SELECT conversation_id, 'ended', epoch FROM ended WHERE callback_url <> ''
),
seen AS (
    SELECT c.conversation_id, c.account_id
    FROM r CROSS JOIN LATERAL (
        SELECT conversation_id, account_id, deleted_at FROM conversations
        WHERE conversation_id = r.cid AND CASE WHEN account_id = r.acc THEN true ELSE false END
        FOR SHARE
    ) AS c
    WHERE c.deleted_at IS NULL AND NOT EXISTS (SELECT 1 FROM ended e WHERE e.conversation_id = r.cid)
)
SELECT r.cid, r.acc, e.conversation_id IS NOT NULL AS ended, s.conversation_id IS NOT NULL AS visible
FROM r
LEFT JOIN ended e ON e.conversation_id = r.cid AND e.account_id = r.acc
LEFT JOIN seen s ON s.conversation_id = r.cid AND s.account_id = r.acc
"""


async def end_many(conn: asyncpg.Connection, ends: list[EndRequest]) -> list[EndOutcome | BaseException]:
    """Run the end statement for these requests on `conn` (inside the caller's transaction, if any).

    Several requests for one conversation: the first makes the transition (its reason
    and time are stored), the others find it ended.
    """
    first: dict[tuple[str, str], EndRequest] = {}
    for e in ends:
        first.setdefault((e.conversation_id, e.account_id), e)
    unique = sorted(first.values(), key=lambda e: (e.conversation_id, e.account_id))
    rows = await conn.fetch(
        END_MANY,
        [e.conversation_id for e in unique],
        [e.account_id for e in unique],
        [e.reason for e in unique],
        [e.at for e in unique],
        [e.at_epoch for e in unique],
    )
    found = {(row[0], row[1]): (row[2], row[3]) for row in rows}
    outcomes: list[EndOutcome | BaseException] = []
    for e in ends:
        key = (e.conversation_id, e.account_id)
        ended, visible = found.get(key, (False, False))
        if ended and first[key] is e:
            outcomes.append(EndOutcome.ENDED)
        elif ended or visible:
            outcomes.append(EndOutcome.ALREADY_ENDED)
        else:
            outcomes.append(EndOutcome.NOT_FOUND)
    return outcomes
