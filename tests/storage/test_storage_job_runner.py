"""The job runner over each backend: jobs run once, failures retried then given up, a dead holder's job resumed."""

from __future__ import annotations

import asyncio

from palaver.domain.clock import ManualClock
from palaver.service.jobs import JobKind, JobRunner
from palaver.storage import Storage
from palaver.storage.resources import JobRecord


def test_jobs_run_once_retry_then_give_up(storage: Storage, run, records) -> None:
    clock = ManualClock(1000.0)
    ran: list[tuple[str, int]] = []
    gave_up: list[tuple[str, str]] = []

    async def work(job: JobRecord) -> None:
        ran.append((job.resource_id, job.attempts))
        if job.resource_id.startswith("bad"):
            raise RuntimeError("download failed")

    async def give_up(job: JobRecord, reason: str) -> None:
        gave_up.append((job.resource_id, reason))

    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        runner = JobRunner(storage.resources, clock, retry_s=30, lease_s=600, concurrency=5)
        runner.register("training", JobKind(work, give_up, max_attempts=2))
        await runner.submit("training", "a1", "good1")
        await runner.submit("training", "a1", "bad1")
        assert await runner.run_due() == 2
        assert sorted(ran) == [("bad1", 1), ("good1", 1)] and gave_up == []
        assert await runner.run_due() == 0  # the failure waits for its retry time, the success is done
        clock.advance(31)
        assert await runner.run_due() == 1
        assert ran[-1] == ("bad1", 2) and gave_up == [("bad1", "download failed")]
        clock.advance(10_000)
        assert await runner.run_due() == 0  # given up: never again

    run(scenario())


def test_a_job_whose_holder_died_is_resumed_after_its_lease(storage: Storage, run, records) -> None:
    clock = ManualClock(1000.0)
    ran: list[str] = []

    async def work(job: JobRecord) -> None:
        ran.append(job.job_id)

    async def nothing(job: JobRecord, reason: str) -> None:
        raise AssertionError("not given up")

    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        await storage.resources.add_job(JobRecord("j1", "training", "r1", "a1", 0), 1000.0, 1000.0)
        # Another process claimed it and died without finishing.
        assert [j.job_id for j in await storage.resources.claim_jobs(["training"], 1000.0, 600, 10)] == ["j1"]
        runner = JobRunner(storage.resources, clock, lease_s=600)
        runner.register("training", JobKind(work, nothing))
        assert await runner.run_due() == 0
        clock.advance(601)
        assert await runner.run_due() == 1 and ran == ["j1"]

    run(scenario())


def test_the_loop_runs_submitted_jobs_promptly(storage: Storage, run, records) -> None:
    done = asyncio.Event()

    async def work(job: JobRecord) -> None:
        done.set()

    async def nothing(job: JobRecord, reason: str) -> None: ...

    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        runner = JobRunner(storage.resources, ManualClock(0.0), poll_s=30)
        runner.register("documents", JobKind(work, nothing))
        loop_task = asyncio.create_task(runner.run())
        await asyncio.sleep(0.05)
        await runner.submit("documents", "a1", "d1")  # wakes the loop: no 30 s poll wait
        await asyncio.wait_for(done.wait(), 5)
        loop_task.cancel()
        await runner.close()

    run(scenario())
