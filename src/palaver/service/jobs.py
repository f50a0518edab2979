"""Durable background jobs: replica training, document processing.

A job is a row (storage/resources.py) that any process may claim; a claim is a
lease, so a job whose process dies mid-way is claimed again once the lease runs
out, by whichever process is up. Handlers are therefore written to be run again
from the start: each reads its resource's stored state, does the work, and
records the outcome with a compare-and-swap on the resource.

A handler returns normally when the job is over (succeeded, or failed in a way
it has recorded on the resource, such as footage that breaks the rules). An
exception means "try again later": the job stays pending and is claimed again
after `retry_s`; after `max_attempts` claims it is given up, and the kind's
`give_up` hook records that on the resource.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from palaver.domain.clock import Clock
from palaver.storage.resources import JobRecord, ResourceStore

log = logging.getLogger("palaver.jobs")

# Long enough for the slowest job to finish (downloads are capped in size and time), short
# enough that a job whose process died is taken over within minutes.
DEFAULT_LEASE_S = 600.0
DEFAULT_RETRY_S = 30.0
DEFAULT_MAX_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class JobKind:
    run: Callable[[JobRecord], Awaitable[None]]
    give_up: Callable[[JobRecord, str], Awaitable[None]]  # the job failed for good: record it (reason given)
    max_attempts: int = DEFAULT_MAX_ATTEMPTS


class JobRunner:
    def __init__(
        self,
        store: ResourceStore,
        clock: Clock,
        *,
        lease_s: float = DEFAULT_LEASE_S,
        retry_s: float = DEFAULT_RETRY_S,
        poll_s: float = 0.5,
        concurrency: int = 2,
    ) -> None:
        self._store = store
        self._clock = clock
        self._lease_s = lease_s
        self._retry_s = retry_s
        self._poll_s = poll_s
        self._concurrency = concurrency
        self._kinds: dict[str, JobKind] = {}
        self._running: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()

    def register(self, kind: str, job_kind: JobKind) -> None:
        self._kinds[kind] = job_kind

    def new_job(self, kind: str, account_id: str, resource_id: str) -> JobRecord:
        """A job to store with the change that calls for it (`Resources.add`/`change` with `job=`),
        so the two commit together; call `wake` once they have."""
        if kind not in self._kinds:
            raise ValueError(f"no handler for job kind {kind!r}")
        return JobRecord("j" + secrets.token_hex(8), kind, resource_id, account_id, 0)

    def wake(self) -> None:
        """Claim now instead of at the next poll (a job was just queued)."""
        self._wake.set()

    async def submit(self, kind: str, account_id: str, resource_id: str) -> str:
        """Queue a job on its own, durable from the moment this returns; it starts within a poll interval."""
        job = self.new_job(kind, account_id, resource_id)
        now = self._clock.now()
        await self._store.add_job(job, now, now)
        self.wake()
        return job.job_id

    async def _claim(self) -> list[JobRecord]:
        """Due jobs of the registered kinds, up to the free concurrency, each leased to this process."""
        free = self._concurrency - len(self._running)
        if free <= 0 or not self._kinds:
            return []
        return await self._store.claim_jobs(sorted(self._kinds), self._clock.now(), self._lease_s, free)

    async def run_due(self) -> int:
        """Claim what is due and run it to the end; returns how many ran (tests: with a manual clock,
        one call runs one round)."""
        claimed = await self._claim()
        await asyncio.gather(*(self._run(job) for job in claimed))
        return len(claimed)

    async def run(self) -> None:
        """Claim and run jobs until cancelled; jobs run concurrently, up to `concurrency` at a time."""
        while True:
            self._wake.clear()  # before claiming: a job submitted during the claim wakes the wait below
            try:
                for job in await self._claim():
                    task = asyncio.create_task(self._run(job), name=f"palaver-job-{job.job_id}")
                    self._running.add(task)
                    task.add_done_callback(self._running.discard)
            except Exception:
                log.exception("claiming jobs failed")
            try:
                await asyncio.wait_for(self._wake.wait(), self._poll_s)
            except TimeoutError:
                pass

    async def close(self) -> None:
        """Stop the jobs in flight; their leases run out and another process (or the next start) resumes them."""
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)

    async def _run(self, job: JobRecord) -> None:
        kind = self._kinds[job.kind]
        try:
            await kind.run(job)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure is either retried or recorded
            log.warning("job %s (%s %s) attempt %d failed: %s", job.job_id, job.kind, job.resource_id, job.attempts,
                        exc)  # fmt: skip
            if job.attempts < kind.max_attempts:
                await self._store.retry_job(job.job_id, self._clock.now() + self._retry_s)
                return
            try:
                await kind.give_up(job, str(exc) or type(exc).__name__)
            except Exception:
                log.exception("recording the failure of job %s failed", job.job_id)
        await self._store.finish_job(job.job_id)
