"""The webhook side of SQLite storage: signing secrets and the outbox the delivery worker reads.

A mixin of `SQLiteStorage` (the `Storage` interface keeps these methods on the storage itself),
kept apart because it is what the delivery worker's process uses, and sqlite.py holds the rest.
"""

from __future__ import annotations

import sqlite3
import time

from palaver.domain.conversation import History, parse_turns
from palaver.domain.signing import new_secret
from palaver.storage.base import OutboxChange
from palaver.storage.sqlite_rooms import TRANSCRIPT_OF_ENDED
from palaver.storage.sqlite_writer import GroupCommitter

_MAX_SEQ = 2**63 - 1  # SQLite's largest integer: "no upper bound" for an outbox read


class SQLiteWebhookOutbox:
    _read: sqlite3.Connection
    _writer: GroupCommitter

    async def webhook_secret(self, account_id: str) -> str:
        row = self._read.execute("SELECT webhook_secret FROM accounts WHERE account_id = ?", (account_id,)).fetchone()
        if row is None or not row[0]:
            raise KeyError(account_id)
        return str(row[0])

    async def rotate_webhook_secret(self, account_id: str) -> str | None:
        secret = new_secret()

        def op(conn: sqlite3.Connection) -> str | None:
            cur = conn.execute("UPDATE accounts SET webhook_secret = ? WHERE account_id = ?", (secret, account_id))
            return secret if cur.rowcount == 1 else None

        return await self._writer.submit(op)

    async def webhook_secrets(self) -> dict[str, str]:
        rows = self._read.execute("SELECT account_id, webhook_secret FROM accounts WHERE webhook_secret IS NOT NULL")
        return dict(rows.fetchall())

    async def read_outbox(
        self, after_seq: int, limit: int, through_seq: int | None = None, *, transcripts: bool = True
    ) -> list[OutboxChange]:
        rows = self._read.execute(
            "SELECT o.seq, o.conversation_id, o.change, o.detail, o.at_epoch, c.account_id, c.test_mode, "
            "c.replica_id, c.callback_url, COALESCE(ct.system_prompt, c.system_prompt), c.created_at, c.ended_at, "
            f"c.shutdown_reason, {TRANSCRIPT_OF_ENDED if transcripts else 'NULL'} "
            "FROM webhook_outbox o LEFT JOIN conversations c ON c.conversation_id = o.conversation_id "
            "LEFT JOIN conversation_texts ct ON ct.conversation_seq = c.seq "
            "WHERE o.seq > ? AND o.seq <= ? ORDER BY o.seq LIMIT ?",
            (after_seq, _MAX_SEQ if through_seq is None else through_seq, limit),
        ).fetchall()
        return [
            OutboxChange(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                r[5],
                None
                if r[5] is None
                else History(r[1], bool(r[6]), r[7], r[8], r[9], r[10], r[11], r[12], parse_turns(r[13])),
            )
            for r in rows
        ]

    async def trim_outbox(self, through_seq: int, limit: int) -> int:
        # A range of the primary key from the oldest row: seqs only have gaps where a
        # transaction rolled back, so this deletes at most `limit` rows, usually that many.
        return await self._writer.submit(
            lambda c: (
                c.execute(
                    "DELETE FROM webhook_outbox WHERE seq <= ? AND seq < (SELECT MIN(seq) FROM webhook_outbox) + ?",
                    (through_seq, limit),
                ).rowcount
            )
        )

    async def request_replay(self, event_id: str, conversation_id: str) -> None:
        await self._writer.submit(
            lambda c: c.execute(
                "INSERT INTO webhook_outbox (conversation_id, change, detail, at_epoch) VALUES (?, 'replay', ?, ?)",
                (conversation_id, event_id, time.time()),
            )
        )
