"""Creating conversations on PostgreSQL: a batch of creates as one transaction (storage/postgres_batches.py).

Measured before batching: one create was a transaction of four round trips, and
the server spent its CPU on them (1,300-1,600 creates/s against SQLite's 3,700
on the same machine, docs/performance.md). A batch costs four or five round
trips whatever its size.

The concurrency limit, per account with a `max_concurrent`, is checked the way
postgres.py explains: the limited accounts' rows are locked (in id order), their
active conversations counted, and the batch's creates admitted in their order
while slots remain. Unlimited accounts take no lock.
"""

from __future__ import annotations

import asyncpg

from palaver.domain.conversation import ENDS_FROM
from palaver.domain.errors import ConcurrencyLimitReached
from palaver.storage.base import ConversationRecord
from palaver.storage.rows import conversation_row

_COLUMNS = (
    "conversation_id, account_id, conversation_name, status, test_mode, replica_id, persona_id, "
    "callback_url, system_prompt, meeting_token, request, shutdown_reason, created_at, updated_at, ended_at, "
    "created_epoch, max_call_duration, participant_absent_timeout, participant_left_timeout, deadline, deadline_reason"
)
_TYPES = (
    "text, text, text, text, bool, text, text, text, text, text, text, text, text, text, text, "
    "float8, int4, int4, int4, float8, text"
).split(", ")

INSERT_MANY = f"""
WITH r AS (
    SELECT * FROM unnest({", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(_TYPES))}) AS r({_COLUMNS})
),
inserted AS (
    INSERT INTO conversations ({_COLUMNS}) SELECT {_COLUMNS} FROM r
    ON CONFLICT (conversation_id) DO NOTHING
    RETURNING conversation_id, callback_url, test_mode, created_epoch
),
queued AS (
    INSERT INTO webhook_outbox (conversation_id, change, at_epoch)
    SELECT conversation_id, 'created', created_epoch FROM inserted WHERE callback_url <> '' AND NOT test_mode
)
SELECT conversation_id FROM inserted
"""

_FREE_SLOTS = f"""
SELECT a.account_id, a.max_concurrent - (
    SELECT count(*) FROM (
        SELECT 1 FROM conversations c
        WHERE c.account_id = a.account_id AND c.status = '{ENDS_FROM}' AND c.deleted_at IS NULL
        LIMIT a.max_concurrent
    ) AS active
)
FROM accounts a WHERE a.account_id = ANY($1::text[]) AND a.max_concurrent IS NOT NULL
"""


def _duplicate(conversation_id: str) -> asyncpg.UniqueViolationError:
    return asyncpg.UniqueViolationError(
        f'duplicate key value violates unique constraint "conversations_pkey": {conversation_id}'
    )


async def insert_many(conn: asyncpg.Connection, records: list[ConversationRecord]) -> list[None | BaseException]:
    """Insert the conversations in one transaction; each gets None, or its own error (limit, duplicate id)."""
    outcomes: list[None | BaseException] = [None] * len(records)
    accounts = sorted({r.account_id for r in records if not r.test_mode})
    async with conn.transaction():
        free: dict[str, int] = {}
        limited = (
            [
                a
                for (a,) in await conn.fetch(
                    "SELECT account_id FROM accounts WHERE account_id = ANY($1::text[]) AND max_concurrent IS NOT NULL",
                    accounts,
                )
            ]
            if accounts
            else []
        )
        if limited:
            # Lock first, then count in a statement of its own: it sees every create committed
            # by whoever held these locks before.
            await conn.execute(
                "SELECT 1 FROM accounts WHERE account_id = ANY($1::text[]) ORDER BY account_id FOR UPDATE", limited
            )
            free = {a: n for a, n in await conn.fetch(_FREE_SLOTS, limited)}
        admitted: list[int] = []
        ids_in_batch: set[str] = set()
        for i, record in enumerate(records):
            if record.conversation_id in ids_in_batch:
                outcomes[i] = _duplicate(record.conversation_id)
                continue
            if not record.test_mode and record.account_id in free:
                if free[record.account_id] <= 0:
                    outcomes[i] = ConcurrencyLimitReached()
                    continue
                free[record.account_id] -= 1
            ids_in_batch.add(record.conversation_id)
            admitted.append(i)
        if admitted:
            columns = list(zip(*(conversation_row(records[i]) for i in admitted), strict=True))
            inserted = {row[0] for row in await conn.fetch(INSERT_MANY, *(list(c) for c in columns))}
            for i in admitted:
                if records[i].conversation_id not in inserted:
                    outcomes[i] = _duplicate(records[i].conversation_id)
    return outcomes
