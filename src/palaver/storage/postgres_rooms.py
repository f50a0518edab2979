"""PostgreSQL implementation of `RoomStore` (storage/rooms.py), on the storage's pool.

An append and an end of the same conversation, in any two processes, must not
interleave: an append that found the conversation active but committed after
the end would add a turn to a transcript already delivered. So the append
locks the conversation's row (`FOR NO KEY UPDATE`, by updating it) before it
checks and writes, and every path out of `active` locks the same row (the
batched end by its UPDATE, delete and the timers `FOR UPDATE`): whichever
comes second waits for the other's commit and then sees what it did. `FOR
SHARE` would be enough against the end, but two appends of one room would then
both read the same last index; this lock also queues them (it conflicts with
no foreign-key check, and a room appends a few turns a second at most).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from typing import Any

import asyncpg

from palaver.domain.conversation import ENDS_FROM
from palaver.storage.postgres_pool import LazyPool
from palaver.storage.rooms import json_text

# The primary key alone in the condition, the rest checked on the locked row (decision #66). In
# READ COMMITTED a row another transaction is ending is waited for and then read as it left it.
# One statement, one round trip: the UPDATE takes the conversation's row lock (an end waits for it,
# or it waits for the end and then sees the row as the end left it) and counts the turn, so the
# index is dense and two appends of one room cannot take the same one. Found through the primary key
# alone (decision #66); the status is read from the updated row. A refused append still counts on
# the row: harmless, since an ended or deleted conversation never takes another turn. Measured under
# the rooms benchmark: the earlier lock, read and insert in a transaction (4 round trips) were 38 %
# of an API process's time.
_APPEND = (
    "WITH counted AS ("
    "  UPDATE conversations SET turns = turns + 1 WHERE conversation_id = $1 "
    f"  RETURNING turns, status = '{ENDS_FROM}' AND deleted_at IS NULL AS open"
    ") INSERT INTO conversation_turns (conversation_id, idx, entry) "
    "SELECT $1, turns - 1, $2 FROM counted WHERE open RETURNING 1"
)
# Through the primary key alone: with the status in the condition, the planner could walk the
# partial index of every active conversation instead (decision #66). Measured with 3,000 ids over
# 50,000 conversations: 4 ms in the server, 8 ms for the caller; a lateral lookup per id (which no
# statistics can turn into a scan) took 10 and 13, NOT EXISTS chose a hash anti-join over the table.
_OPEN_AMONG = (
    f"SELECT conversation_id, status = '{ENDS_FROM}' AND deleted_at IS NULL FROM conversations "
    "WHERE conversation_id = ANY($1::text[])"
)
# As in SQLite (storage/sqlite_rooms.py): take the lease if free, held by `host`, or lapsed at $4.
# Concurrent claims of a new room: one inserts, the other waits for it and then sees its row.
# Many rooms in one statement, in id order: two processes renewing overlapping rooms lock them in
# the same order, so they cannot deadlock.
_CLAIM_HOSTS = (
    "INSERT INTO room_hosts (conversation_id, host, until) "
    "SELECT id, $2, $3 FROM unnest($1::text[]) AS id ORDER BY id "
    "ON CONFLICT (conversation_id) DO UPDATE SET host = excluded.host, until = excluded.until "
    "WHERE room_hosts.host = excluded.host OR room_hosts.until <= $4 "
    "RETURNING conversation_id"
)


def transcript_of_ended(outbox: str) -> str:
    """An ended conversation's transcript for the outbox row aliased `outbox`: its entries' stored text
    joined into one JSON array, byte for byte (the delivery worker renders `transcription_ready`)."""
    return (
        f"CASE WHEN {outbox}.change = 'ended' THEN (SELECT '[' || string_agg(x.entry, ',' ORDER BY x.idx) || ']' "
        f"FROM conversation_turns x WHERE x.conversation_id = {outbox}.conversation_id) END"
    )


class PostgresRooms:
    def __init__(self, pool: LazyPool) -> None:
        self._pool = pool
        # Secrets are never changed once made: read once per process.
        self._secrets: dict[str, bytes] = {}

    async def append_turn(self, conversation_id: str, entry: dict[str, Any]) -> bool:
        text = json_text(entry)
        pool = await self._pool.get()
        return await pool.fetchval(_APPEND, conversation_id, text) is not None

    async def turns(self, conversation_id: str) -> list[dict[str, Any]]:
        pool = await self._pool.get()
        rows = await pool.fetch(
            "SELECT entry FROM conversation_turns WHERE conversation_id = $1 ORDER BY idx", conversation_id
        )
        return [json.loads(row[0]) for row in rows]

    async def closed_among(self, conversation_ids: Sequence[str]) -> set[str]:
        if not conversation_ids:
            return set()
        pool = await self._pool.get()
        rows = await pool.fetch(_OPEN_AMONG, list(conversation_ids))
        return set(conversation_ids).difference(row[0] for row in rows if row[1])

    async def claim_host(self, conversation_id: str, host: str, now: float, lease: float) -> bool:
        return conversation_id in await self.claim_hosts([conversation_id], host, now, lease)

    async def claim_hosts(self, conversation_ids: Sequence[str], host: str, now: float, lease: float) -> set[str]:
        pool = await self._pool.get()
        rows = await pool.fetch(_CLAIM_HOSTS, sorted(set(conversation_ids)), host, now + lease, now)
        return {row[0] for row in rows}

    async def release_host(self, conversation_id: str, host: str) -> None:
        pool = await self._pool.get()
        await pool.execute("DELETE FROM room_hosts WHERE conversation_id = $1 AND host = $2", conversation_id, host)

    async def shared_secret(self, name: str) -> bytes:
        known = self._secrets.get(name)
        if known is not None:
            return known
        pool = await self._pool.get()
        # Two statements, not one: a racing insert is waited for by ours, and only a new
        # statement's snapshot sees the row it committed.
        await pool.execute(
            "INSERT INTO shared_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            name,
            secrets.token_bytes(32),
        )
        value = bytes(await pool.fetchval("SELECT value FROM shared_secrets WHERE name = $1", name))
        self._secrets[name] = value
        return value


async def purge_room(conn: asyncpg.Connection, conversation_id: str) -> None:
    """What a hard delete removes besides the conversation's row (in the delete's transaction)."""
    await conn.execute(
        "WITH turns AS (DELETE FROM conversation_turns WHERE conversation_id = $1) "
        "DELETE FROM room_hosts WHERE conversation_id = $1",
        conversation_id,
    )
