"""SQLite implementation of `RoomStore` (storage/rooms.py), on the storage's writer and read connection.

Every write goes through the group committer, whose one transaction per batch
is also where ends run (after the batch's other writes): an append and an end
are never interleaved, so an append that finds the conversation active is in
the transcript the end leaves behind, and one that comes after finds it ended.
Other processes on the file (the CLI) wait for SQLite's write lock.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Sequence
from typing import Any

from palaver.domain.conversation import ENDS_FROM
from palaver.storage.rooms import json_text
from palaver.storage.sqlite_writer import GroupCommitter

# One statement: the next index, and nothing at all unless the conversation can still be joined.
_APPEND = (
    "INSERT INTO conversation_turns (conversation_id, idx, entry) "
    "SELECT ?1, coalesce((SELECT max(idx) + 1 FROM conversation_turns WHERE conversation_id = ?1), 0), ?2 "
    "WHERE EXISTS (SELECT 1 FROM conversations WHERE conversation_id = ?1 "
    f"             AND status = '{ENDS_FROM}' AND deleted_at IS NULL)"
)
# The ids given (a JSON array) that are not an active, visible conversation: one lookup of the
# unique index per id, however many there are.
_CLOSED_AMONG = (
    "SELECT j.value FROM json_each(?) AS j WHERE NOT EXISTS ("
    "SELECT 1 FROM conversations c WHERE c.conversation_id = j.value "
    f"AND c.status = '{ENDS_FROM}' AND c.deleted_at IS NULL)"
)
# Take the lease if nobody holds it, `host` does, or it has lapsed (?4 is now); else change nothing
# and return no row.
_CLAIM_HOST = (
    "INSERT INTO room_hosts (conversation_id, host, until) VALUES (?1, ?2, ?3) "
    "ON CONFLICT (conversation_id) DO UPDATE SET host = excluded.host, until = excluded.until "
    "WHERE room_hosts.host = excluded.host OR room_hosts.until <= ?4 "
    "RETURNING 1"
)


# For the outbox reader (storage/sqlite_outbox.py, `read_outbox`): an ended conversation's transcript, its
# entries' stored text joined into one JSON array, byte for byte (the delivery worker renders
# `transcription_ready` from it). About 1.5 µs per ended change: left out where only the
# shutdown is rendered.
TRANSCRIPT_OF_ENDED = (
    "CASE WHEN o.change = 'ended' THEN (SELECT '[' || group_concat(entry, ',') || ']' FROM "
    "(SELECT entry FROM conversation_turns t WHERE t.conversation_id = o.conversation_id ORDER BY idx)) END"
)


class SQLiteRooms:
    def __init__(self, writer: GroupCommitter, read: sqlite3.Connection) -> None:
        self._writer = writer
        self._read = read
        # Secrets are never changed once made: read once per process.
        self._secrets: dict[str, bytes] = {}

    async def append_turn(self, conversation_id: str, entry: dict[str, Any]) -> bool:
        text = json_text(entry)  # here, so an entry that is not JSON fails its caller, not the batch
        return await self._writer.submit(lambda c: c.execute(_APPEND, (conversation_id, text)).rowcount == 1)

    async def turns(self, conversation_id: str) -> list[dict[str, Any]]:
        rows = self._read.execute(
            "SELECT entry FROM conversation_turns WHERE conversation_id = ? ORDER BY idx", (conversation_id,)
        ).fetchall()
        return [json.loads(entry) for (entry,) in rows]

    async def closed_among(self, conversation_ids: Sequence[str]) -> set[str]:
        if not conversation_ids:
            return set()
        rows = self._read.execute(_CLOSED_AMONG, (json.dumps(list(conversation_ids)),)).fetchall()
        return {value for (value,) in rows}

    async def claim_host(self, conversation_id: str, host: str, now: float, lease: float) -> bool:
        return conversation_id in await self.claim_hosts([conversation_id], host, now, lease)

    async def claim_hosts(self, conversation_ids: Sequence[str], host: str, now: float, lease: float) -> set[str]:
        def op(c: sqlite3.Connection) -> set[str]:
            return {cid for cid in conversation_ids if c.execute(_CLAIM_HOST, (cid, host, now + lease, now)).fetchall()}

        return await self._writer.submit(op)

    async def release_host(self, conversation_id: str, host: str) -> None:
        sql, args = "DELETE FROM room_hosts WHERE conversation_id = ? AND host = ?", (conversation_id, host)
        await self._writer.submit(lambda c: c.execute(sql, args))

    async def shared_secret(self, name: str) -> bytes:
        known = self._secrets.get(name)
        if known is not None:
            return known

        def op(c: sqlite3.Connection) -> bytes:
            # Whoever inserts first wins; everyone, this caller included, reads back the stored value.
            c.execute(
                "INSERT INTO shared_secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                (name, secrets.token_bytes(32)),
            )
            return bytes(c.execute("SELECT value FROM shared_secrets WHERE name = ?", (name,)).fetchone()[0])

        value = await self._writer.submit(op)
        self._secrets[name] = value
        return value


def purge_room(conn: sqlite3.Connection, conversation_id: str) -> None:
    """What a hard delete removes besides the conversation's row (in the delete's transaction)."""
    conn.execute("DELETE FROM conversation_turns WHERE conversation_id = ?", (conversation_id,))
    conn.execute("DELETE FROM room_hosts WHERE conversation_id = ?", (conversation_id,))
