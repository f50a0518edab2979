"""SQLite implementation of `ResourceStore`: the storage's writer and read connection, shared.

Writes go through the group committer like every other write of the process
(one writer per process, SQLite's lock between processes); reads use the read
connection on the loop, which in WAL mode never waits for a writer.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from palaver.storage.resources import Callback, JobRecord, ResourceRecord, dump
from palaver.storage.sqlite_writer import GroupCommitter

_COLUMNS = "kind, resource_id, account_id, body, version, created_at, updated_at"


def _record(row: tuple[Any, ...]) -> ResourceRecord:
    kind, resource_id, account_id, body, version, created_at, updated_at = row
    return ResourceRecord(kind, resource_id, account_id, json.loads(body), version, created_at, updated_at)


class SQLiteResources:
    def __init__(self, writer: GroupCommitter, read: sqlite3.Connection) -> None:
        self._writer = writer
        self._read = read

    async def insert(self, record: ResourceRecord, job: JobRecord | None = None, at_epoch: float = 0.0) -> None:
        r = record

        def op(c: sqlite3.Connection) -> None:
            c.execute(
                f"INSERT INTO resources ({_COLUMNS}) VALUES (?, ?, ?, ?, 1, ?, ?)",
                (r.kind, r.resource_id, r.account_id, dump(r.body), r.created_at, r.updated_at),
            )
            if job is not None:
                _insert_job(c, job, at_epoch, at_epoch)

        await self._writer.submit(op)

    async def get(self, kind: str, account_id: str, resource_id: str) -> ResourceRecord | None:
        row = self._read.execute(
            f"SELECT {_COLUMNS} FROM resources WHERE kind = ? AND resource_id = ? AND account_id = ?",
            (kind, resource_id, account_id),
        ).fetchone()
        return _record(row) if row else None

    async def lookup(self, kind: str, resource_id: str) -> ResourceRecord | None:
        row = self._read.execute(
            f"SELECT {_COLUMNS} FROM resources WHERE kind = ? AND resource_id = ?", (kind, resource_id)
        ).fetchone()
        return _record(row) if row else None

    async def list(self, kind: str, account_id: str) -> list[ResourceRecord]:
        rows = self._read.execute(
            f"SELECT {_COLUMNS} FROM resources WHERE account_id = ? AND kind = ? ORDER BY seq DESC",
            (account_id, kind),
        ).fetchall()
        return [_record(row) for row in rows]

    async def replace(
        self, record: ResourceRecord, expected_version: int, job: JobRecord | None = None, at_epoch: float = 0.0
    ) -> bool:
        r = record

        def op(c: sqlite3.Connection) -> bool:
            cur = c.execute(
                "UPDATE resources SET body = ?, updated_at = ?, version = version + 1 "
                "WHERE kind = ? AND resource_id = ? AND account_id = ? AND version = ?",
                (dump(r.body), r.updated_at, r.kind, r.resource_id, r.account_id, expected_version),
            )
            if cur.rowcount != 1:
                return False
            if job is not None:
                _insert_job(c, job, at_epoch, at_epoch)
            return True

        return await self._writer.submit(op)

    async def delete(self, kind: str, account_id: str, resource_id: str) -> bool:
        def op(c: sqlite3.Connection) -> bool:
            cur = c.execute(
                "DELETE FROM resources WHERE kind = ? AND resource_id = ? AND account_id = ?",
                (kind, resource_id, account_id),
            )
            return cur.rowcount == 1

        return await self._writer.submit(op)

    async def enqueue_callback(self, callback: Callback, at_epoch: float) -> None:
        await self._writer.submit(
            lambda c: c.execute(
                "INSERT INTO webhook_outbox (conversation_id, change, detail, at_epoch) VALUES (?, 'callback', ?, ?)",
                (callback.key, callback.detail(), at_epoch),
            )
        )

    # jobs -----------------------------------------------------------------------------------------

    async def add_job(self, job: JobRecord, run_after_epoch: float, created_epoch: float) -> None:
        await self._writer.submit(lambda c: _insert_job(c, job, run_after_epoch, created_epoch))

    async def claim_jobs(self, kinds: list[str], now: float, lease_s: float, limit: int) -> list[JobRecord]:
        marks = ", ".join("?" * len(kinds))

        def op(c: sqlite3.Connection) -> list[JobRecord]:
            # One statement inside the writer's transaction: no other process can claim in between.
            rows = c.execute(
                f"UPDATE jobs SET attempts = attempts + 1, run_after_epoch = ? WHERE job_id IN ("
                f"SELECT job_id FROM jobs WHERE state = 'pending' AND run_after_epoch <= ? AND kind IN ({marks}) "
                "ORDER BY run_after_epoch LIMIT ?) "
                "RETURNING job_id, kind, resource_id, account_id, attempts",
                (now + lease_s, now, *kinds, limit),
            ).fetchall()
            return [JobRecord(*row) for row in rows]

        return await self._writer.submit(op)

    async def retry_job(self, job_id: str, run_after_epoch: float) -> None:
        await self._writer.submit(
            lambda c: c.execute(
                "UPDATE jobs SET run_after_epoch = ? WHERE job_id = ? AND state = 'pending'", (run_after_epoch, job_id)
            )
        )

    async def finish_job(self, job_id: str) -> None:
        await self._writer.submit(lambda c: c.execute("UPDATE jobs SET state = 'done' WHERE job_id = ?", (job_id,)))


def _insert_job(c: sqlite3.Connection, j: JobRecord, run_after_epoch: float, created_epoch: float) -> None:
    c.execute(
        "INSERT INTO jobs (job_id, kind, resource_id, account_id, state, attempts, run_after_epoch, created_epoch) "
        "VALUES (?, ?, ?, ?, 'pending', ?, ?, ?)",
        (j.job_id, j.kind, j.resource_id, j.account_id, j.attempts, run_after_epoch, created_epoch),
    )
