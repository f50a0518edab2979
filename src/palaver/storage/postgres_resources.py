"""PostgreSQL implementation of `ResourceStore`, on the storage's pool.

Job claims use `FOR UPDATE SKIP LOCKED`, so processes claiming at the same
moment each take different jobs instead of queueing on the same rows.
"""

from __future__ import annotations

import json
from typing import Any

from palaver.storage.postgres_pool import LazyPool
from palaver.storage.resources import Callback, JobRecord, ResourceRecord, dump

_COLUMNS = "kind, resource_id, account_id, body, version, created_at, updated_at"


def _record(row: Any) -> ResourceRecord:
    kind, resource_id, account_id, body, version, created_at, updated_at = row
    return ResourceRecord(kind, resource_id, account_id, json.loads(body), version, created_at, updated_at)


class PostgresResources:
    def __init__(self, pool: LazyPool) -> None:
        self._pool = pool

    async def insert(self, record: ResourceRecord, job: JobRecord | None = None, at_epoch: float = 0.0) -> None:
        r = record
        pool = await self._pool.get()
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(
                f"INSERT INTO resources ({_COLUMNS}) VALUES ($1, $2, $3, $4, 1, $5, $6)",
                r.kind,
                r.resource_id,
                r.account_id,
                dump(r.body),
                r.created_at,
                r.updated_at,
            )
            if job is not None:
                await _insert_job(conn, job, at_epoch, at_epoch)

    async def get(self, kind: str, account_id: str, resource_id: str) -> ResourceRecord | None:
        pool = await self._pool.get()
        row = await pool.fetchrow(
            f"SELECT {_COLUMNS} FROM resources WHERE kind = $1 AND resource_id = $2 AND account_id = $3",
            kind,
            resource_id,
            account_id,
        )
        return _record(row) if row else None

    async def lookup(self, kind: str, resource_id: str) -> ResourceRecord | None:
        pool = await self._pool.get()
        row = await pool.fetchrow(
            f"SELECT {_COLUMNS} FROM resources WHERE kind = $1 AND resource_id = $2", kind, resource_id
        )
        return _record(row) if row else None

    async def list(self, kind: str, account_id: str) -> list[ResourceRecord]:
        pool = await self._pool.get()
        rows = await pool.fetch(
            f"SELECT {_COLUMNS} FROM resources WHERE account_id = $1 AND kind = $2 ORDER BY seq DESC",
            account_id,
            kind,
        )
        return [_record(row) for row in rows]

    async def replace(
        self, record: ResourceRecord, expected_version: int, job: JobRecord | None = None, at_epoch: float = 0.0
    ) -> bool:
        r = record
        pool = await self._pool.get()
        async with pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                "UPDATE resources SET body = $1, updated_at = $2, version = version + 1 "
                "WHERE kind = $3 AND resource_id = $4 AND account_id = $5 AND version = $6",
                dump(r.body),
                r.updated_at,
                r.kind,
                r.resource_id,
                r.account_id,
                expected_version,
            )
            if status != "UPDATE 1":
                return False
            if job is not None:
                await _insert_job(conn, job, at_epoch, at_epoch)
            return True

    async def delete(self, kind: str, account_id: str, resource_id: str) -> bool:
        pool = await self._pool.get()
        status = await pool.execute(
            "DELETE FROM resources WHERE kind = $1 AND resource_id = $2 AND account_id = $3",
            kind,
            resource_id,
            account_id,
        )
        return status == "DELETE 1"

    async def enqueue_callback(self, callback: Callback, at_epoch: float) -> None:
        pool = await self._pool.get()
        await pool.execute(
            "INSERT INTO webhook_outbox (conversation_id, change, detail, at_epoch) VALUES ($1, 'callback', $2, $3)",
            callback.key,
            callback.detail(),
            at_epoch,
        )

    # jobs -----------------------------------------------------------------------------------------

    async def add_job(self, job: JobRecord, run_after_epoch: float, created_epoch: float) -> None:
        pool = await self._pool.get()
        await _insert_job(pool, job, run_after_epoch, created_epoch)

    async def claim_jobs(self, kinds: list[str], now: float, lease_s: float, limit: int) -> list[JobRecord]:
        pool = await self._pool.get()
        rows = await pool.fetch(
            "UPDATE jobs SET attempts = jobs.attempts + 1, run_after_epoch = $1 FROM ("
            "SELECT job_id FROM jobs WHERE state = 'pending' AND run_after_epoch <= $2 AND kind = ANY($3::text[]) "
            "ORDER BY run_after_epoch LIMIT $4 FOR UPDATE SKIP LOCKED) AS due WHERE jobs.job_id = due.job_id "
            "RETURNING jobs.job_id, jobs.kind, jobs.resource_id, jobs.account_id, jobs.attempts",
            now + lease_s,
            now,
            kinds,
            limit,
        )
        return [JobRecord(*row) for row in rows]

    async def retry_job(self, job_id: str, run_after_epoch: float) -> None:
        pool = await self._pool.get()
        await pool.execute(
            "UPDATE jobs SET run_after_epoch = $1 WHERE job_id = $2 AND state = 'pending'", run_after_epoch, job_id
        )

    async def finish_job(self, job_id: str) -> None:
        pool = await self._pool.get()
        await pool.execute("UPDATE jobs SET state = 'done' WHERE job_id = $1", job_id)


async def _insert_job(conn: Any, j: JobRecord, run_after_epoch: float, created_epoch: float) -> None:
    await conn.execute(
        "INSERT INTO jobs (job_id, kind, resource_id, account_id, state, attempts, run_after_epoch, created_epoch) "
        "VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7)",
        j.job_id,
        j.kind,
        j.resource_id,
        j.account_id,
        j.attempts,
        run_after_epoch,
        created_epoch,
    )
